// Per-call cost of a hooked tiny leaf, state by state (the attach issue):
//
//   uninstrumented        (a) the leaf built without padhook's flags
//   unpatched_fresh       (b) instrumented, never patched: the compiler's NOPs
//                             (g++: five 1-byte NOPs, clang: one 5-byte NOP)
//   unpatched             (b) instrumented, attached and detached once: the
//                             canonical 5-byte NOP the patcher restores
//   clients/N             (c, d) N clients on the leaf, each with an empty
//                             on_entry handler (N = 1 is state c)
//   no_vector/N           as clients/N, every client passing
//                             PADHOOK_HOOKS_NO_VECTOR (xmm0-7 not saved)
//   entry_exit/1          one client with empty on_entry and on_exit handlers
//   entry_exit/promises   the same, passing PADHOOK_HOOKS_NO_VECTOR and
//                             PADHOOK_HOOKS_NO_ENTRY_TIME (no clock read)
//   record_like/c_api     one client whose on_entry and on_exit do what a
//                             tracer's do, minus the files: take the event's
//                             timestamp and the function's index, append one
//                             8-byte word to a per-thread ring (NO_VECTOR),
//                             through the C API
//   record_like/inline    the same with padhook's internal inline accessors
//                             (hooks/call_frame.h, hooks/clock.h, arch.h)
//   one_client/others_100k    (e) one client on the leaf while another client
//                             is attached to 100,000 other functions
//   one_client/other_clients_100  (e) one client on the leaf while 100 other
//                             clients are attached to 100 other functions
//   one_client/both       (e) both of the above at once
//   one_client/others_N   one client on the leaf, another client on N other
//                             functions (N = 1k, 10k; with 100k above: the
//                             scaling of docs/benchmarks.md)
//   one_client/other_clients_N  one client on the leaf, N other clients on
//                             N other functions (N = 1, 10; 100 above)
//   spread/unpatched, spread/entry, spread/entry_exit   1,024 different
//                             functions called in a fixed shuffled order
//                             (unpatched; one NO_VECTOR client with an empty
//                             on_entry; the same with on_exit too): what a
//                             single leaf hides, indirect branches that see
//                             many targets and code that no longer fits the
//                             caches (experiments/exit-return-prediction/)
//
// Every state but spread/* uses the same call loop (bench/call_loop.h: an
// indirect call per iteration, results chained) and the same leaf body.
//
// Wall time: run the binary (Google Benchmark; counter ns_per_call). Use
//   --benchmark_repetitions=5 (medians) on a noisy machine. A state's set-up
// is kept until another state runs, so random interleaving works but redoes
// the set-up at every switch (slow for the 100,000-function states).
//
// Instructions per call: bench/call_overhead_callgrind.sh BUILD_DIR, which
// runs `call_overhead_benchmark --count STATE CALLS` under callgrind,
// collecting only inside bench_call_loop, and divides by CALLS.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "call_loop.h"
#include "hooks/clock.h"
#include "padhook/hooks.h"

#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#else
#define CALLGRIND_START_INSTRUMENTATION
#endif

extern "C" int leaf_plain(int);
extern "C" int leaf_fresh(int);
extern "C" int leaf_cycled(int);
extern "C" int leaf_hooked(int);
extern "C" int (*many_fn_at(size_t i))(int);
extern "C" const size_t many_fn_count;

// record_like: bench/record_like_handlers.cc.
void RecordEvent(padhook_call* c, void*);
void RecordEventInline(padhook_call* c, void*);
extern const padhook::ClockScale* g_scale;

namespace {

void EmptyHandler(padhook_call*, void*) {}
__attribute__((target("general-regs-only"))) void EmptyHandlerNoVector(padhook_call*, void*) {}

int g_record_like = 0;  // set by the state before its World is made: 1 C API, 2 inline

[[noreturn]] void Die(const char* what, const padhook::Status& s) {
  std::fprintf(stderr, "%s: %s\n", what, s.ToString().c_str());
  std::abort();
}

padhook::Attachment MustAttach(std::span<const void* const> fns, void* data, bool no_vector = false,
                               bool with_exit = false) {
  padhook::Hooks h;
  h.on_entry = no_vector ? EmptyHandlerNoVector : EmptyHandler;
  if (with_exit) h.on_exit = no_vector ? EmptyHandlerNoVector : EmptyHandler;
  if (with_exit && g_record_like) {
    g_scale = &padhook::GetClockScale();
    h.on_entry = h.on_exit = g_record_like == 1 ? RecordEvent : RecordEventInline;
  }
  h.user_data = data;
  h.flags = no_vector ? PADHOOK_HOOKS_NO_VECTOR : 0;
  // An empty on_exit never asks for the entry time either.
  if (no_vector && with_exit) h.flags |= PADHOOK_HOOKS_NO_ENTRY_TIME;
  padhook::Result<padhook::Attachment> a = padhook::AttachAddresses(fns, h);
  if (!a.ok()) Die("attach", a.status());
  return std::move(*a);
}

padhook::Attachment MustAttachOne(const void* fn, void* data, bool no_vector = false,
                                  bool with_exit = false) {
  return MustAttach(std::span<const void* const>(&fn, 1), data, no_vector, with_exit);
}

// The state a benchmark runs in; destroying it detaches everything.
struct World {
  std::vector<padhook::Attachment> clients;     // on leaf_hooked
  padhook::Attachment others_100k;              // one client on up to 100,000 functions
  std::vector<padhook::Attachment> others_100;  // up to 100 clients on as many other functions
  int data[128] = {};

  World(int clients_on_leaf, size_t others, int other_clients, bool no_vector, bool with_exit) {
    if (others > 0) {
      std::vector<const void*> fns;
      for (size_t i = 0; i < others && i < many_fn_count; ++i) {
        fns.push_back(reinterpret_cast<const void*>(many_fn_at(i)));
      }
      others_100k = MustAttach(fns, &data[126]);
    }
    if (other_clients > 0) {
      for (size_t i = 0; i < static_cast<size_t>(other_clients); ++i) {
        others_100.push_back(MustAttachOne(
            reinterpret_cast<const void*>(many_fn_at(i * 997 % many_fn_count)), &data[127]));
      }
    }
    for (int i = 0; i < clients_on_leaf; ++i) {
      clients.push_back(MustAttachOne(reinterpret_cast<const void*>(&leaf_hooked), &data[i % 100],
                                      no_vector, with_exit));
    }
  }
};

// leaf_cycled: attached and detached once, so its site holds the patcher's NOP.
// Done only for that state: the first patch in a module converts every g++
// NOP run of the module, which would make unpatched_fresh unfresh (the
// benchmark registers unpatched_fresh before every state that attaches).
void CycleOnce() {
  static bool done = false;
  if (done) return;
  done = true;
  int d = 0;
  padhook::Attachment a = MustAttachOne(reinterpret_cast<const void*>(&leaf_cycled), &d);
  if (padhook::Status s = a.Detach(); !s.ok()) Die("detach", s);
}

struct State {
  const char* name;
  int (*fn)(int);
  int clients;
  size_t others;      // functions attached by one other client
  int other_clients;  // other clients, each on one other function
  bool no_vector = false;
  bool with_exit = false;
  int record_like = 0;
};

const State kStates[] = {
    {"uninstrumented", leaf_plain, 0, 0, 0},
    {"unpatched_fresh", leaf_fresh, 0, 0, 0},
    {"unpatched", leaf_cycled, 0, 0, 0},
    {"clients/1", leaf_hooked, 1, 0, 0},
    {"clients/2", leaf_hooked, 2, 0, 0},
    {"clients/10", leaf_hooked, 10, 0, 0},
    {"clients/100", leaf_hooked, 100, 0, 0},
    {"one_client/others_100k", leaf_hooked, 1, 100000, 0},
    {"one_client/other_clients_100", leaf_hooked, 1, 0, 100},
    {"one_client/both", leaf_hooked, 1, 100000, 100},
    {"no_vector/1", leaf_hooked, 1, 0, 0, true},
    {"no_vector/100", leaf_hooked, 100, 0, 0, true},
    {"entry_exit/1", leaf_hooked, 1, 0, 0, false, true},
    {"entry_exit/promises", leaf_hooked, 1, 0, 0, true, true},
    {"record_like/c_api", leaf_hooked, 1, 0, 0, true, true, 1},
    {"record_like/inline", leaf_hooked, 1, 0, 0, true, true, 2},
    {"one_client/others_1k", leaf_hooked, 1, 1000, 0},
    {"one_client/others_10k", leaf_hooked, 1, 10000, 0},
    {"one_client/other_clients_1", leaf_hooked, 1, 0, 1},
    {"one_client/other_clients_10", leaf_hooked, 1, 0, 10},
};

constexpr long kInner = 1000;

// The world of the last state run, kept while Google Benchmark calls Run again
// for the same state (it does several times per repetition): attaching
// 100,000 functions for every call would dominate the run time.
std::unique_ptr<World> g_world;
const State* g_world_state = nullptr;

// The counter every state reports: wall time per call of the loop.
void ReportNsPerCall(benchmark::State& state, long calls_per_iteration) {
  state.counters["ns_per_call"] =
      benchmark::Counter(static_cast<double>(state.iterations() * calls_per_iteration),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void Run(benchmark::State& state, const State* s) {
  if (s->fn == leaf_cycled) CycleOnce();
  if (g_world_state != s) {
    g_world.reset();  // detach the previous state's clients first
    g_record_like = s->record_like;
    g_world = std::make_unique<World>(s->clients, s->others, s->other_clients, s->no_vector,
                                      s->with_exit);
    g_world_state = s;
  }
  benchmark::DoNotOptimize(bench_call_loop(s->fn, kInner));  // warm
  for (auto _ : state) benchmark::DoNotOptimize(bench_call_loop(s->fn, kInner));
  ReportNsPerCall(state, kInner);
}

int CountMode(const std::string& name, long calls) {
  for (const State& s : kStates) {
    if (name != s.name) continue;
    if (s.fn == leaf_cycled) CycleOnce();
    g_record_like = s.record_like;
    World world(s.clients, s.others, s.other_clients, s.no_vector, s.with_exit);
    benchmark::DoNotOptimize(bench_call_loop(s.fn, 1000));  // warm (first-call work: thread record)
    // Under callgrind --instr-atstart=no the set-up above runs uninstrumented
    // (attaching 100,000 functions is slow under valgrind); --toggle-collect
    // then counts only the loop below.
    CALLGRIND_START_INSTRUMENTATION;
    benchmark::DoNotOptimize(bench_call_loop(s.fn, calls));
    std::printf("calls %ld\n", calls);
    return 0;
  }
  std::fprintf(stderr, "unknown state %s; states:", name.c_str());
  for (const State& s : kStates) std::fprintf(stderr, " %s", s.name);
  std::fprintf(stderr, "\n");
  return 2;
}

// ---- spread/*: many functions ------------------------------------------------------

constexpr size_t kSpread = 1024;

// kSpread functions of the 100,000-function module, in a fixed shuffled order.
const std::vector<int (*)(int)>& SpreadFunctions() {
  static const std::vector<int (*)(int)> fns = [] {
    std::vector<int (*)(int)> v;
    for (size_t i = 0; i < kSpread; ++i) v.push_back(many_fn_at(i));
    uint64_t x = 88172645463325252ull;  // xorshift: the same order in every run
    for (size_t i = v.size() - 1; i > 0; --i) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      std::swap(v[i], v[x % (i + 1)]);
    }
    return v;
  }();
  return fns;
}

extern "C" __attribute__((noinline)) long bench_spread_loop(int (*const* fns)(int), long n) {
  int acc = 0;
  for (long i = 0; i < n; ++i) acc = fns[i & (kSpread - 1)](acc);
  return acc;
}

// mode: 0 unpatched (attached and detached once: the patcher's NOP), 1 entry, 2 entry+exit.
void RunSpread(benchmark::State& state, int mode) {
  g_world.reset();
  g_world_state = nullptr;
  const std::vector<int (*)(int)>& fns = SpreadFunctions();
  std::vector<const void*> addresses;
  for (int (*f)(int) : fns) addresses.push_back(reinterpret_cast<const void*>(f));
  int data = 0;
  padhook::Attachment a = MustAttach(addresses, &data, /*no_vector=*/true, /*with_exit=*/mode == 2);
  if (mode == 0) {
    if (padhook::Status s = a.Detach(); !s.ok()) Die("detach", s);
  }
  benchmark::DoNotOptimize(bench_spread_loop(fns.data(), 4 * kSpread));  // warm
  for (auto _ : state) benchmark::DoNotOptimize(bench_spread_loop(fns.data(), 4 * kSpread));
  ReportNsPerCall(state, 4 * kSpread);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::strcmp(argv[1], "--count") == 0)
    return CountMode(argv[2], std::atol(argv[3]));
  for (const State& s : kStates) benchmark::RegisterBenchmark(s.name, Run, &s);
  benchmark::RegisterBenchmark("spread/unpatched", RunSpread, 0);
  benchmark::RegisterBenchmark("spread/entry", RunSpread, 1);
  benchmark::RegisterBenchmark("spread/entry_exit", RunSpread, 2);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
