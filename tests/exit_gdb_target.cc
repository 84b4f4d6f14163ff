// A program for the gdb backtrace test (tests/check_gdb_backtrace.cmake):
// walk() from the g++ -O2 exit fixture, hooked with an exit handler so its
// return addresses are redirected, recurses 3 deep and calls
// padhook_gdb_bottom, where gdb stops and prints the backtrace.
#include <cstdio>

#include "padhook/padhook.h"

#define ET_PREFIX gcc_O2_
#include "fixtures/exit_targets.inc"
#undef ET_PREFIX

extern "C" __attribute__((noinline)) void padhook_gdb_bottom(void*) { asm volatile(""); }

int main() {
  padhook_hooks h = {nullptr, [](padhook_call*, void*) {}, nullptr, 0};
  padhook_attachment* a = nullptr;
  if (padhook_attach_address(reinterpret_cast<void*>(&gcc_O2_walk), &h, &a) != PADHOOK_OK) {
    std::fprintf(stderr, "attach: %s\n", padhook_last_error());
    return 1;
  }
  gcc_O2_walk(3, padhook_gdb_bottom, nullptr);
  return padhook_detach(a) == PADHOOK_OK ? 0 : 1;
}
