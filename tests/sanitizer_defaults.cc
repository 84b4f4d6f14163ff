// Linked into every test program of a sanitizer build (PADHOOK_SANITIZE, see
// CMakeLists.txt): the sanitizers read these defaults at startup, so a test
// program run by hand behaves as under ctest. Options in the environment
// (ASAN_OPTIONS, ...) still override them.
#define PADHOOK_SANITIZER_HOOK extern "C" __attribute__((visibility("default"), used))

// UBSan stops at the first report (-fno-sanitize-recover=all); show where.
PADHOOK_SANITIZER_HOOK const char* __ubsan_default_options() { return "print_stacktrace=1"; }

// TSan: stop at the first report instead of exiting with 66 at the end.
PADHOOK_SANITIZER_HOOK const char* __tsan_default_options() { return "halt_on_error=1"; }

// Leaks padhook keeps on purpose. Each line is one allocation site, with why.
PADHOOK_SANITIZER_HOOK const char* __lsan_default_suppressions() {
  return
      // src/patch/live_patcher.cc, ConvertNopRunsLocked (protocol C): the
      // stop-the-world state (a StopState and its run list) is deliberately
      // never freed when a stop-signal handler may still be entered late, and
      // nothing points at it afterwards. (At b049217 that is every conversion
      // but the last: g_stop is overwritten by the next one.)
      "leak:ConvertNopRunsLocked\n";
}
