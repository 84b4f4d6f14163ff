// bench/tracer: the workload of bench_tracer.py. One instrumented leaf called
// N times in a loop; the program times the loop itself (so start-up and
// the trace's finalization are not in the per-call figure) and prints
// "ns_per_call <wall>" and "cpu_ns_per_call <thread CPU time>". Built twice from this one source:
// with padhook's flags (run plain = "unpatched", and under `padhook record`) and with -pg (run
// under `uftrace record`). Usage: tracer_workload [N [indirect]].
#include <time.h>

#include <cstdio>
#include <cstdlib>

extern "C" __attribute__((noinline)) int bench_leaf(int x) {
  asm volatile("" : "+r"(x));
  return x + 1;
}

extern "C" __attribute__((noinline)) int bench_loop(long n) {
  int acc = 0;
  for (long i = 0; i < n; ++i) acc = bench_leaf(acc);
  return acc;
}

// The same calls through a pointer: the compiler cannot see the callee, so it
// keeps the stack 16-byte aligned at each call. (Direct calls to a leaf GCC
// knows needs no alignment are made with the stack 8 bytes off at -O2,
// -fipa-stack-alignment, and padhook takes its slow path for those.)
int (*volatile g_leaf)(int) = bench_leaf;

extern "C" __attribute__((noinline)) int bench_loop_indirect(long n) {
  int acc = 0;
  for (long i = 0; i < n; ++i) acc = g_leaf(acc);
  return acc;
}

int main(int argc, char** argv) {
  const long n = argc > 1 ? atol(argv[1]) : 10'000'000;
  const bool indirect = argc > 2 && argv[2][0] == 'i';
  timespec t0, t1, c0, c1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
  const int acc = indirect ? bench_loop_indirect(n) : bench_loop(n);
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  const double ns = (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec);
  const double cpu = (c1.tv_sec - c0.tv_sec) * 1e9 + (c1.tv_nsec - c0.tv_nsec);
  // Wall time, and this thread's CPU time (the figure that survives a loaded
  // machine; it leaves out work done by other processes, e.g. uftrace's
  // recorder).
  printf("ns_per_call %.3f\ncpu_ns_per_call %.3f\ncalls %ld\nacc %d\n", ns / static_cast<double>(n),
         cpu / static_cast<double>(n), n, acc);
  return 0;
}
