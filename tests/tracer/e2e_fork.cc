// e2e_fork: a process that forks; the child works and exits, the parent
// waits and works. Each process has its own trace image.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

// noipa (GCC): no partial inlining either (GCC 12 -O2 splits fib's "n < 2"
// test into its callers and calls an uninstrumented fib.part.0).
#if defined(__clang__)
#define E2E_FN __attribute__((noinline))
#else
#define E2E_FN __attribute__((noinline, noipa))
#endif

namespace e2e {

volatile int sink;

E2E_FN int step(int x) {
  sink = x;
  return x + 1;
}

E2E_FN int child_work() {
  int sum = 0;
  for (int i = 0; i < 4; ++i) sum += step(i);
  return sum + 1;
}

E2E_FN int parent_work() {
  int sum = 0;
  for (int i = 0; i < 2; ++i) sum += step(i);
  return sum + 1;
}

E2E_FN int before_fork() { return step(100) + 1; }

}  // namespace e2e

int main() {
  e2e::before_fork();
  std::fflush(stdout);
  const pid_t child = fork();
  if (child < 0) return 1;
  if (child == 0) {
    const int value = e2e::child_work();
    std::exit(value == 11 ? 0 : 1);
  }
  int status = 0;
  waitpid(child, &status, 0);
  e2e::parent_work();
  std::printf("child %s\n", WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "ok" : "failed");
  return 0;
}
