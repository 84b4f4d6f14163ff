// bench/call_loop.h — the call loop shared by call_overhead_benchmark.cc and
// bench/xray/xray_driver.cc, so padhook and XRay are timed and counted through
// the same code. `n` indirect calls of `fn`, each result feeding the next
// (a dependency chain the compiler cannot drop). The asm barrier hides `fn`
// from the optimizer on every iteration: the call is never devirtualized,
// hoisted or inlined.
//
// callgrind: --toggle-collect='*bench_call_loop*' counts exactly the loop and
// everything it calls (leaf, trampoline, dispatcher, handlers).
#pragma once

extern "C" __attribute__((noinline)) inline long bench_call_loop(int (*fn)(int), long n) {
  int acc = 0;
  for (long i = 0; i < n; ++i) {
    asm volatile("" : "+r"(fn));
    acc = fn(acc);
  }
  return acc;
}
