// The soak test's instrumented functions (built with padhook's flags): plain
// calls, recursion, a C++ exception thrown through hooked frames, and a
// function the signal handler calls.
#include <stdexcept>

extern "C" {

__attribute__((noinline)) int soak_leaf(int x) { return x * 5 + 1; }

__attribute__((noinline)) int soak_pair(int x) { return soak_leaf(x) + soak_leaf(x + 1); }

__attribute__((noinline)) int soak_recurse(int depth, int x) {
  if (depth <= 0) return soak_leaf(x);
  int r = soak_recurse(depth - 1, x);
  asm volatile("" : "+r"(r));  // a real call per level: no tail-recursion elimination
  return r + 1;
}

__attribute__((noinline)) int soak_in_signal(int x) { return soak_leaf(x) ^ 0x55; }

}  // extern "C"

// Throws from `depth` hooked frames down; the catch is in the caller.
__attribute__((noinline)) int soak_thrower(int depth, int x) {
  if (depth <= 0) throw std::runtime_error("soak");
  int r = soak_thrower(depth - 1, x);  // never returns: throws from the bottom
  asm volatile("" : "+r"(r));
  return r + soak_leaf(x);
}
