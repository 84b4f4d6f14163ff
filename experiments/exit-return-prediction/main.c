// Cost of the ways an entry patch can get control back when the function
// returns, on a leaf `return x;`, per call (see README.md).
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

long f_plain(long), f_entry(long), f_hijack(long), f_hijack_ret(long), f_jmp(long), f_jmp_ind(long);

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}

__attribute__((noinline)) static long run(long (*f)(long), long n) {
  long s = 0;
  for (long i = 0; i < n; i++) s += f(i);
  return s;
}

// Two functions alternating: the global trampoline's indirect call into the
// body then has two targets.
__attribute__((noinline)) static long run_two(long n) {
  long s = 0;
  for (long i = 0; i < n; i += 2) s += f_jmp(i) + f_jmp_ind(i);
  return s;
}

static int cmp(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

int main(void) {
  enum { kRounds = 9, kVariants = 6 };
  const long n = 50000000;
  const char* names[kVariants] = {"plain (NOP at entry)", "call at entry, empty trampoline",
                                  "call at entry, return hijacked, jmp back",
                                  "call at entry, return hijacked, ret back",
                                  "jmp at entry, body called from trampoline",
                                  "same, two functions alternating"};
  long (*fs[kVariants])(long) = {f_plain, f_entry, f_hijack, f_hijack_ret, f_jmp, NULL};
  double t[kVariants][kRounds];
  volatile long sink = 0;
  for (int r = 0; r < kRounds; r++) {
    for (int k = 0; k < kVariants; k++) {  // interleaved: a noisy moment hits every variant
      double start = now_ns();
      sink += fs[k] ? run(fs[k], n) : run_two(n);
      t[k][r] = (now_ns() - start) / n;
    }
  }
  for (int k = 0; k < kVariants; k++) {
    qsort(t[k], kRounds, sizeof(double), cmp);
    printf("%-44s %6.2f ns/call (median of %d)\n", names[k], t[k][kRounds / 2], kRounds);
  }
  return (int)(sink & 0);
}
