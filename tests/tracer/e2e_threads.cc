// e2e_threads: two worker threads next to main, each calling a leaf a
// known number of times.
#include <pthread.h>

#include <cstdio>
#include <thread>

#define E2E_FN __attribute__((noinline))

namespace e2e {

volatile long sink;

E2E_FN long compute(long x) {
  sink = x;
  return x * 2 + 1;
}

E2E_FN long worker(int calls) {
  long sum = 0;
  for (int i = 0; i < calls; ++i) sum += compute(i);
  return sum + 1;
}

E2E_FN void run_threads() {
  long a = 0, b = 0;
  std::thread first([&] {
    pthread_setname_np(pthread_self(), "e2e-first");
    a = worker(3);
  });
  first.join();  // one after the other: the trace does not depend on scheduling
  std::thread second([&] {
    pthread_setname_np(pthread_self(), "e2e-second");
    b = worker(5);
  });
  second.join();
  std::printf("sums %ld %ld\n", a, b);
}

}  // namespace e2e

int main() {
  e2e::run_threads();
  e2e::compute(7);
  return 0;
}
