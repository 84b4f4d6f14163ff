// e2e_basic: nested calls, a leaf called in a loop, recursion. Every traced
// function is in namespace e2e (recorded with -F 'e2e::*' -F main, so the
// C++ library's inline functions, which differ between -O0 and -O2 and
// between compilers, stay out) and never inlined or tail-called.
#include <cstdio>

// noipa (GCC): no partial inlining either (GCC 12 -O2 splits fib's "n < 2"
// test into its callers and calls an uninstrumented fib.part.0).
#if defined(__clang__)
#define E2E_FN __attribute__((noinline))
#else
#define E2E_FN __attribute__((noinline, noipa))
#endif

namespace e2e {

volatile int sink;

E2E_FN int lex(int token) {
  sink = token;
  return token + 1;
}

E2E_FN int parse(int tokens) {
  int sum = 0;
  for (int i = 0; i < tokens; ++i) sum += lex(i);
  return sum + 1;
}

E2E_FN int fib(int n) {
  if (n < 2) return n + (sink & 0);
  const int a = fib(n - 1);
  const int b = fib(n - 2);
  sink = b;  // after the call: -O2 must not turn it into a loop (tail recursion)
  return a + b;
}

}  // namespace e2e

int main() {
  const int parsed = e2e::parse(3);
  const int f = e2e::fib(4);
  std::printf("parsed %d fib %d\n", parsed, f);
  return 0;
}
