// synth_trace: writes synthetic trace directories (docs/trace-format.md)
// for the readers' golden tests and benchmark.
//
//   synth_trace golden DIR        the fixed trace of tests/tracer/golden/
//   synth_trace corrupt DIR       the same with a bad header and an unknown word
//   synth_trace bench DIR CALLS   one thread making CALLS calls (streamed)
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include "synthetic_trace.h"

namespace fs = std::filesystem;
using padhook::synthetic::Process;
using padhook::synthetic::ThreadEvents;

namespace {

constexpr uint64_t kT0 = 1'000'000'000'000;  // 1000 s of CLOCK_MONOTONIC

void AppFunctions(Process& p) {
  p.Module(0, 0x555555554000, "/opt/app/app");
  p.Module(1, 0x7f1234560000, "/opt/app/libutil.so");
  p.Function(0, 0, 0x1130, 200, "main");
  p.Function(1, 0, 0x1200, 80, "parse(char const*)");
  p.Function(2, 0, 0x1250, 40, "lex");
  p.Function(3, 0, 0x1300, 60, "fib(int)");
  p.Function(4, 1, 0x2000, 30, "std::vector<int, std::allocator<int> >::push_back(int const&)");
  p.Function(5, 0, 0x1400, 50, "risky()");
  p.Function(6, 1, 0x2100, 20, "check(int)");
  p.Function(7, 0, 0x1500, 100, "worker");
  p.Function(8, 1, 0x2200, 90, "compute(double)");
  p.Function(9, 0, 0x1600, 10, "napping");
}

// Every case the readers handle: nesting, recursion, a leaf in a shared
// library, unwound exits, a lost marker, a gap that needs a time word, an
// exit without its entry, an exit lost under a caller's exit, unfinished
// calls in a file that was never closed, a fork and an exec.
void Golden(const fs::path& dir) {
  fs::create_directories(dir);
  enum { kMain, kParse, kLex, kFib, kPush, kRisky, kCheck, kWorker, kCompute, kNap };

  Process app;
  app.key = "1000";
  app.pid = 1000;
  app.ppid = 999;
  app.program = "/opt/app/app";
  app.argv = {"/opt/app/app", "--fast"};
  app.start_ns = kT0;
  app.functions_patched = 10;
  app.events_lost = 3;
  AppFunctions(app);
  app.Write(dir);

  ThreadEvents main_thread(1000, 1000, kT0, "app");
  auto& m = main_thread;
  m.Entry(kMain, kT0 + 100);
  m.Entry(kParse, kT0 + 300);
  m.Entry(kLex, kT0 + 400), m.Exit(kLex, kT0 + 1400);
  m.Entry(kLex, kT0 + 1500), m.Exit(kLex, kT0 + 2000);
  m.Exit(kParse, kT0 + 2600);
  m.Entry(kFib, kT0 + 3000);
  m.Entry(kFib, kT0 + 3100);
  m.Entry(kFib, kT0 + 3200), m.Exit(kFib, kT0 + 3300);
  m.Entry(kFib, kT0 + 3400), m.Exit(kFib, kT0 + 3600);
  m.Exit(kFib, kT0 + 3800);
  m.Entry(kFib, kT0 + 3900), m.Exit(kFib, kT0 + 4000);
  m.Exit(kFib, kT0 + 4200);
  m.Entry(kPush, kT0 + 4300), m.Exit(kPush, kT0 + 4350);
  m.Entry(kRisky, kT0 + 5000);
  m.Entry(kCheck, kT0 + 5100);
  m.Unwound(kCheck, kT0 + 5400);
  m.Unwound(kRisky, kT0 + 5500);
  m.Lost(3);
  m.Entry(kNap, kT0 + 6000);
  const uint64_t woke = kT0 + 6000 + 1'200'000'000'000;  // 1200 s: more than 40 bits of ns
  m.Exit(kNap, woke);
  m.Exit(kMain, woke + 1000);
  m.Write(dir, app.key, /*closed=*/true);

  ThreadEvents worker(1000, 1001, kT0 + 500, "worker");
  worker.Exit(kWorker, kT0 + 600);  // entered before the attach
  worker.Entry(kWorker, kT0 + 1000);
  worker.Entry(kCompute, kT0 + 1100);
  worker.Entry(kLex, kT0 + 1200);
  worker.Exit(kCompute, kT0 + 2000);  // lex's exit is missing
  worker.Entry(kCompute, kT0 + 2100);
  worker.Write(dir, app.key, /*closed=*/false, 0, /*zero_words=*/4);

  Process child = app;  // fork: the same functions
  child.key = "1002";
  child.pid = 1002;
  child.ppid = 1000;
  child.argv = {"/opt/app/app", "--fast"};
  child.start_ns = kT0 + 3000;
  child.events_lost = 0;
  child.ended = false;  // it exec'ed: that image never exits
  child.Write(dir);
  ThreadEvents child_thread(1002, 1002, kT0 + 3000, "app");
  child_thread.Entry(kCompute, kT0 + 3500), child_thread.Exit(kCompute, kT0 + 4500);
  child_thread.Write(dir, child.key, true);

  Process tool;  // the child exec'ed a tool, which was killed
  tool.key = "1002.1";
  tool.pid = 1002;
  tool.ppid = 1000;
  tool.exec_of = "1002";
  tool.program = "/usr/bin/tool";
  tool.argv = {"tool", "-v"};
  tool.start_ns = kT0 + 5000;
  tool.ended = false;
  tool.functions_patched = 2;
  tool.Module(0, 0, "/usr/bin/tool");
  tool.Function(0, 0, 0x401000, 10, "tool_main");
  tool.Function(1, 0, 0x401100, 10, "step");
  tool.Write(dir);
  ThreadEvents tool_thread(1002, 1002, kT0 + 5000, "tool");
  tool_thread.Entry(0, kT0 + 5100);
  tool_thread.Entry(1, kT0 + 5200), tool_thread.Exit(1, kT0 + 5300);
  tool_thread.Entry(1, kT0 + 5400), tool_thread.Exit(1, kT0 + 5600);
  tool_thread.Write(dir, tool.key, false);

  padhook::synthetic::WriteRecordJson(dir, {"/opt/app/app", "--fast"}, kT0, woke + 5000, 0, 0, "");
}

// One thread, `calls` calls of 100 functions under main, nested up to 8
// deep, 10-200 ns apart: the shape of a real program's trace, written as it
// is generated (never all in memory).
int Bench(const fs::path& dir, uint64_t calls) {
  fs::create_directories(dir);
  Process p;
  p.key = "1";
  p.pid = 1;
  p.program = "/bench/synthetic";
  p.argv = {"synthetic"};
  p.start_ns = kT0;
  p.functions_patched = 101;
  p.Module(0, 0x400000, "/bench/synthetic");
  p.Function(0, 0, 0x1000, 10, "main");
  for (uint32_t i = 1; i <= 100; ++i)
    p.Function(i, 0, 0x1000 + i * 0x40, 32, "bench::function_" + std::to_string(i) + "(int)");
  p.Write(dir);

  const fs::path path = dir / "1-1.events";
  FILE* out = std::fopen(path.c_str(), "wb");
  if (out == nullptr) return std::perror(path.c_str()), 1;
  static char buffer[1 << 20];
  std::setvbuf(out, buffer, _IOFBF, sizeof buffer);
  uint8_t header[64] = {};
  std::memcpy(header, "PHEVENT1", 8);
  const uint32_t u32[4] = {1, 64, 1, 1};
  std::memcpy(header + 8, u32, sizeof u32);
  const uint64_t base = kT0, flags = 1;
  std::memcpy(header + 24, &base, 8);
  std::memcpy(header + 40, &flags, 8);
  std::memcpy(header + 48, "synthetic", 9);
  std::fwrite(header, 1, sizeof header, out);

  uint64_t state = 0x9e3779b97f4a7c15;
  auto next = [&] {  // xorshift64
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;
    return state;
  };
  auto put = [&](uint64_t kind, uint32_t function) {
    const uint64_t word = padhook::synthetic::EventWord(kind, function, 10 + next() % 191);
    std::fwrite(&word, 8, 1, out);
  };
  uint32_t stack[16];
  int depth = 0;
  put(1, 0);  // main
  for (uint64_t made = 1; made < calls;) {
    if (depth < 8 && (depth == 0 || next() % 2 == 0)) {
      stack[depth++] = 1 + static_cast<uint32_t>(next() % 100);
      put(1, stack[depth - 1]);
      ++made;
    } else {
      put(2, stack[--depth]);
    }
  }
  while (depth > 0) put(2, stack[--depth]);
  put(2, 0);
  if (std::fclose(out) != 0) return std::perror(path.c_str()), 1;
  padhook::synthetic::WriteRecordJson(dir, {"synthetic"}, kT0, kT0 + 1, 0, 0, "");
  return 0;
}

// The golden trace plus two damaged files: one whose header is bad (an
// error: the file is left out) and one with an unknown special word after
// two events (a warning: its data ends there).
void Corrupt(const fs::path& dir) {
  Golden(dir);
  ThreadEvents cut(1000, 1003, kT0 + 700, "cut");
  cut.Entry(2, kT0 + 800);
  cut.Exit(2, kT0 + 900);
  cut.Raw(padhook::synthetic::SpecialWord(9, 0));  // at byte 80
  cut.Entry(2, kT0 + 1000);
  cut.Write(dir, "1000", true);
  auto bad = ThreadEvents(1000, 1004, kT0).Bytes(true);
  std::memcpy(bad.data(), "PHEVENT2", 8);
  ThreadEvents::WriteFile(dir / "1000-1004.events", bad);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], "golden") == 0) {
    Golden(argv[2]);
    return 0;
  }
  if (argc == 3 && std::strcmp(argv[1], "corrupt") == 0) {
    Corrupt(argv[2]);
    return 0;
  }
  if (argc == 4 && std::strcmp(argv[1], "bench") == 0) {
    return Bench(argv[2], std::strtoull(argv[3], nullptr, 10));
  }
  std::fprintf(stderr,
               "usage: synth_trace golden DIR | synth_trace corrupt DIR | synth_trace bench DIR "
               "CALLS\n");
  return 2;
}
