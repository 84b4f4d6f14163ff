/* Measures the specialized trampolines above under callgrind: a clang-built
   leaf with a 5-byte entry NOP is patched to call each trampoline in turn.
   Prints nothing; run with valgrind --tool=callgrind --toggle-collect=loop_*. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

__thread uint64_t st_record __attribute__((tls_model("initial-exec")));
uint64_t st_reader_word = 1;
void st_handler(void* frame, void* data) { (void)frame; (void)data; }
void st_tramp_full(void);
void st_tramp_lean(void);

__attribute__((noinline, patchable_function_entry(5, 0))) int leaf(int x) { return x + 1; }

static void patch(void* fn, void* target) {
  uint8_t* p = fn;
  mprotect((void*)((uintptr_t)p & ~4095ul), 8192, PROT_READ | PROT_WRITE | PROT_EXEC);
  int32_t rel = (int32_t)((intptr_t)target - (intptr_t)(p + 5));
  p[0] = 0xe8;
  memcpy(p + 1, &rel, 4);
  mprotect((void*)((uintptr_t)p & ~4095ul), 8192, PROT_READ | PROT_EXEC);
}

__attribute__((noinline)) int loop_plain(int (*f)(int), int n) {
  int acc = 0;
  for (int i = 0; i < n; ++i) acc = f(acc);
  return acc;
}
__attribute__((noinline)) int loop_full(int (*f)(int), int n) { return loop_plain(f, n); }
__attribute__((noinline)) int loop_lean(int (*f)(int), int n) { return loop_plain(f, n); }

int main(void) {
  int (*volatile f)(int) = leaf;
  int n = 100000, r = 0;
  r += loop_plain(f, n);
  patch((void*)leaf, (void*)st_tramp_full);
  r += loop_full(f, n);
  patch((void*)leaf, (void*)st_tramp_lean);
  r += loop_lean(f, n);
  printf("%d\n", r == 3 * n ? 0 : 1);
  return 0;
}
