// e2e_exceptions: an exception thrown two calls down, caught and rethrown
// on the way, caught above: the frames it leaves end "unwound".
#include <cstdio>
#include <stdexcept>

// noipa (GCC): no partial inlining either (GCC 12 -O2 splits fib's "n < 2"
// test into its callers and calls an uninstrumented fib.part.0).
#if defined(__clang__)
#define E2E_FN __attribute__((noinline))
#else
#define E2E_FN __attribute__((noinline, noipa))
#endif

namespace e2e {

volatile int sink;

E2E_FN void thrower(int x) {
  sink = x;
  if (x > 0) throw std::runtime_error("e2e");
}

E2E_FN void middle(int x) {
  try {
    thrower(x);
  } catch (const std::exception&) {
    sink = -1;
    throw;  // the same exception, on up
  }
  sink = 2;
}

E2E_FN int outer(int x) {
  try {
    middle(x);
  } catch (const std::runtime_error&) {
    return 1;
  }
  return 0;
}

E2E_FN int leaf() { return sink + 1; }

}  // namespace e2e

int main() {
  const int caught = e2e::outer(1);
  const int clean = e2e::outer(0);
  e2e::leaf();
  std::printf("caught %d clean %d\n", caught, clean);
  return 0;
}
