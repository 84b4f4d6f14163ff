// Attach and detach cost (the attach issue): batches of 1,000 / 10,000 /
// 100,000 instrumented functions (bench/fixture many_functions), one client
// with an empty on_entry handler, padhook::AttachAddresses; and one function
// at a time. Both TextWriter modes (fast: mprotect window; strict: pwrite to
// /proc/self/mem).
//
//   attach_benchmark --cold MODE N          FIRST attach of N functions in this
//       process, then its detach (copy-on-write faults of the text pages,
//       conversion of g++'s NOP runs, stub page creation). Function discovery
//       (FunctionTable::Refresh) is done and timed before, separately. Run it
//       in a fresh process per sample.
//   attach_benchmark --steady MODE N REPS   one untimed attach+detach, then REPS
//       timed attach and detach rounds: median/min/max of each way.
//   attach_benchmark --single MODE REPS     attach and detach of one function,
//       REPS times (after one untimed round): median/min/max.
//   attach_benchmark --count MODE N OP      for callgrind (--instr-atstart=no
//       --toggle-collect='*CountedOp*'): OP is one of cold_attach (the first
//       attach of N functions in the process), attach, detach (steady: after
//       one untimed attach+detach round); only OP runs inside CountedOp.
//   attach_benchmark                        all of the above (cold only for the
//       first batch size: it is cold only once per process), both modes.
//
// MODE is fast or strict. Output lines are `key value` pairs, one sample per
// line, for bench/run_attach_issue.sh.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "padhook/hooks.h"
#include "padhook/text_writer.h"

#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#else
#define CALLGRIND_START_INSTRUMENTATION
#endif

extern "C" int (*many_fn_at(size_t i))(int);
extern "C" const size_t many_fn_count;

namespace {

using Clock = std::chrono::steady_clock;

void EmptyHandler(padhook_call*, void*) {}

[[noreturn]] void Die(const char* what, const padhook::Status& s) {
  std::fprintf(stderr, "%s: %s\n", what, s.ToString().c_str());
  std::exit(1);
}

double NsSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
}

std::vector<const void*> Batch(size_t n) {
  if (n > many_fn_count) {
    std::fprintf(stderr, "batch %zu > %zu functions\n", n, many_fn_count);
    std::exit(2);
  }
  std::vector<const void*> fns;
  fns.reserve(n);
  for (size_t i = 0; i < n; ++i) fns.push_back(reinterpret_cast<const void*>(many_fn_at(i)));
  return fns;
}

padhook::Hooks EmptyHooks() {
  padhook::Hooks h;
  h.on_entry = EmptyHandler;
  return h;
}

// Times one attach and one detach of `fns`; returns {attach_ns, detach_ns}.
std::pair<double, double> Round(const std::vector<const void*>& fns) {
  const padhook::Hooks hooks = EmptyHooks();
  Clock::time_point t0 = Clock::now();
  padhook::Result<padhook::Attachment> a = padhook::AttachAddresses(fns, hooks);
  const double attach_ns = NsSince(t0);
  if (!a.ok()) Die("attach", a.status());
  t0 = Clock::now();
  padhook::Status s = a->Detach();
  const double detach_ns = NsSince(t0);
  if (!s.ok()) Die("detach", s);
  return {attach_ns, detach_ns};
}

void SetMode(const std::string& mode) {
  if (mode == "fast") {
    padhook::TextWriter::Process().set_mode(padhook::WriteMode::kFast);
  } else if (mode == "strict") {
    padhook::TextWriter::Process().set_mode(padhook::WriteMode::kStrict);
  } else {
    std::fprintf(stderr, "mode must be fast or strict, not %s\n", mode.c_str());
    std::exit(2);
  }
}

void Discover() {
  const Clock::time_point t0 = Clock::now();
  if (padhook::Status s = padhook::FunctionTable::Process().Refresh(); !s.ok()) Die("discovery", s);
  std::printf("discovery_us %.1f\n", NsSince(t0) / 1e3);
}

struct Summary {
  double median, min, max;
};
Summary Summarize(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  const double median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  return {median, v.front(), v.back()};
}

long MinorFaults() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_minflt;
}

void Cold(const std::string& mode, size_t n) {
  const std::vector<const void*> fns = Batch(n);
  const long faults_before = MinorFaults();
  const auto [attach_ns, detach_ns] = Round(fns);
  // Page faults are most of a first attach's cost: copy-on-write of the text
  // pages and the first touch of metadata and stub pages.
  std::printf("cold mode %s batch %zu attach_us %.1f detach_us %.1f attach_ns_per_fn %.1f detach_ns_per_fn %.1f "
              "page_faults %ld\n",
              mode.c_str(), n, attach_ns / 1e3, detach_ns / 1e3, attach_ns / n, detach_ns / n,
              MinorFaults() - faults_before);
}

// One untimed warm-up round, then `reps` timed attach+detach rounds: the
// attach and detach summaries.
std::pair<Summary, Summary> MeasureRounds(const std::vector<const void*>& fns, int reps) {
  (void)Round(fns);
  std::vector<double> att, det;
  for (int r = 0; r < reps; ++r) {
    const auto [a, d] = Round(fns);
    att.push_back(a);
    det.push_back(d);
  }
  return {Summarize(att), Summarize(det)};
}

void Steady(const std::string& mode, size_t n, int reps) {
  const auto [sa, sd] = MeasureRounds(Batch(n), reps);
  std::printf("steady mode %s batch %zu reps %d attach_us %.1f attach_min_us %.1f attach_max_us %.1f "
              "detach_us %.1f detach_min_us %.1f detach_max_us %.1f attach_ns_per_fn %.1f detach_ns_per_fn %.1f\n",
              mode.c_str(), n, reps, sa.median / 1e3, sa.min / 1e3, sa.max / 1e3, sd.median / 1e3,
              sd.min / 1e3, sd.max / 1e3, sa.median / n, sd.median / n);
}

void Single(const std::string& mode, int reps) {
  // A function no batch above starts with, so the batch runs do not warm it.
  const auto [sa, sd] =
      MeasureRounds({reinterpret_cast<const void*>(many_fn_at(many_fn_count - 1))}, reps);
  std::printf("single mode %s reps %d attach_us %.2f attach_min_us %.2f attach_max_us %.2f "
              "detach_us %.2f detach_min_us %.2f detach_max_us %.2f\n",
              mode.c_str(), reps, sa.median / 1e3, sa.min / 1e3, sa.max / 1e3, sd.median / 1e3, sd.min / 1e3,
              sd.max / 1e3);
}

// The one operation callgrind counts (--toggle-collect='*CountedOp*').
template <typename F>
__attribute__((noinline)) auto CountedOp(F f) {
  return f();
}

int Count(const std::string& op, size_t n) {
  if (op != "cold_attach" && op != "attach" && op != "detach") {
    std::fprintf(stderr, "OP must be cold_attach, attach or detach, not %s\n", op.c_str());
    return 2;
  }
  const std::vector<const void*> fns = Batch(n);
  const padhook::Hooks hooks = EmptyHooks();
  if (op != "cold_attach") (void)Round(fns);  // steady state
  CALLGRIND_START_INSTRUMENTATION;
  padhook::Result<padhook::Attachment> a =
      op == "detach" ? padhook::AttachAddresses(fns, hooks)
                     : CountedOp([&] { return padhook::AttachAddresses(fns, hooks); });
  if (!a.ok()) Die("attach", a.status());
  const padhook::Status s = op == "detach" ? CountedOp([&] { return a->Detach(); }) : a->Detach();
  if (!s.ok()) Die("detach", s);
  std::printf("count op %s batch %zu\n", op.c_str(), n);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  if (argc == 4 && std::strcmp(argv[1], "--cold") == 0) {
    SetMode(argv[2]);
    Discover();
    Cold(argv[2], std::strtoul(argv[3], nullptr, 10));
    return 0;
  }
  if (argc == 5 && std::strcmp(argv[1], "--steady") == 0) {
    SetMode(argv[2]);
    Discover();
    Steady(argv[2], std::strtoul(argv[3], nullptr, 10), std::atoi(argv[4]));
    return 0;
  }
  if (argc == 4 && std::strcmp(argv[1], "--single") == 0) {
    SetMode(argv[2]);
    Discover();
    Single(argv[2], std::atoi(argv[3]));
    return 0;
  }
  if (argc == 5 && std::strcmp(argv[1], "--count") == 0) {
    SetMode(argv[2]);
    Discover();
    return Count(argv[4], std::strtoul(argv[3], nullptr, 10));
  }
  if (argc != 1) {
    std::fprintf(stderr,
                 "usage: %s [--cold MODE N | --steady MODE N REPS | --single MODE REPS | --count "
                 "MODE N OP]  (MODE: fast, strict)\n",
                 argv[0]);
    return 2;
  }
  Discover();
  SetMode("fast");
  Cold("fast", 10000);
  for (const char* mode : {"fast", "strict"}) {
    SetMode(mode);
    for (size_t n : {1000, 10000, 100000}) Steady(mode, n, 5);
    Single(mode, 1001);
  }
  return 0;
}
