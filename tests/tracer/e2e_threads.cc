// e2e_threads: two worker threads next to main, each calling a leaf a
// known number of times.
#include <pthread.h>

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

struct Job {
  const char* name;
  int calls;
  long sum;
};

// A plain function as the thread's start (no lambda: the C++ library's
// templates instantiated for a lambda carry e2e:: in their names).
E2E_FN void* thread_main(void* argument) {
  Job* job = static_cast<Job*>(argument);
  pthread_setname_np(pthread_self(), job->name);
  job->sum = worker(job->calls);
  return nullptr;
}

E2E_FN void run_threads() {
  Job jobs[2] = {{"e2e-first", 3, 0}, {"e2e-second", 5, 0}};
  for (Job& job : jobs) {  // one after the other: the trace does not depend on scheduling
    pthread_t thread;
    if (pthread_create(&thread, nullptr, thread_main, &job) != 0) std::abort();
    pthread_join(thread, nullptr);
  }
  std::printf("sums %ld %ld\n", jobs[0].sum, jobs[1].sum);
}

}  // namespace e2e

int main() {
  e2e::run_threads();
  e2e::compute(7);
  return 0;
}
