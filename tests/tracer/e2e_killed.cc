// e2e_killed: a program killed by SIGKILL three calls deep, after some
// finished calls: the readers must show what was recorded, the calls still
// open as unfinished, and `padhook info` must say the run ended abnormally.
#include <signal.h>
#include <unistd.h>

#include <cstdio>

// noipa (GCC): no partial inlining either (see e2e_basic.cc).
#if defined(__clang__)
#define E2E_FN __attribute__((noinline))
#else
#define E2E_FN __attribute__((noinline, noipa))
#endif

namespace e2e {

volatile int sink;

E2E_FN int work(int x) {
  sink = x;
  return x + 1;
}

E2E_FN void die() {
  std::fflush(stdout);
  kill(getpid(), SIGKILL);
  sink = 0;
}

E2E_FN void deeper() {
  work(2);
  die();
  sink = 3;
}

E2E_FN void top() {
  work(1);
  deeper();
  sink = 4;
}

}  // namespace e2e

int main() {
  e2e::top();
  return 0;
}
