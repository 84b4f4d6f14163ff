// padhook against LLVM XRay, in one process, through the same call loop
// (bench/call_loop.h). Built by clang++ (bench/xray/CMakeLists.txt): the XRay
// objects (leaf_xray, 10,000 many_functions) with -fxray-instrument
// -fxray-instruction-threshold=1, this file without (it has no sleds), linked
// with -fxray-instrument (pulls in the XRay runtime) and with padhook's leaf
// objects (bench/call_overhead_leaf.cc, built with padhook's flags) and
// libpadhook.
//
//   xray_driver --calls ROUNDS CALLS   ns per call, rounds alternating between
//       the states below (each round times every state once); prints every
//       round and the medians.
//   xray_driver --count STATE CALLS    one loop of CALLS calls in STATE, for
//       callgrind --toggle-collect='*bench_call_loop*'
//   xray_driver --patch-all REPS       __xray_patch()/__xray_unpatch() of every
//       sled (10,001 functions): the first patch of the process (cold: copy-on-
//       write faults) and then REPS rounds (median/min/max)
//   xray_driver --count-patch OP        for callgrind (--instr-atstart=no
//       --toggle-collect='*CountedOp*'): OP is cold_patch_all (the first
//       __xray_patch() of the process), patch_all, unpatch_all (after one
//       patch+unpatch round), patch_one (__xray_patch_function of leaf_xray,
//       after one round)
//   xray_driver --patch-one REPS       __xray_patch_function/__xray_unpatch_function
//       of one function, REPS times (median/min/max)
//
// States: plain (leaf without instrumentation), xray_unpatched, xray_patched
// (empty handler: it gets entry and exit), padhook_unpatched (leaf_cycled:
// attached and detached once), padhook_one (leaf_hooked, one client with an
// empty on_entry handler).
#include <xray/xray_interface.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "call_loop.h"
#include "padhook/padhook.h"

#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#else
#define CALLGRIND_START_INSTRUMENTATION
#endif

extern "C" int leaf_plain(int);
extern "C" int leaf_xray(int);
extern "C" int leaf_cycled(int);
extern "C" int leaf_hooked(int);

namespace {

using Clock = std::chrono::steady_clock;

void EmptyXrayHandler(int32_t, XRayEntryType) {}
void EmptyPadhookHandler(padhook_call*, void*) {}

[[noreturn]] void Fail(const char* what) {
  std::fprintf(stderr, "%s failed\n", what);
  std::exit(1);
}

int32_t XrayIdOf(const void* fn) {
  const size_t max = __xray_max_function_id();
  for (size_t id = 1; id <= max; ++id) {
    if (__xray_function_address(static_cast<int32_t>(id)) == reinterpret_cast<uintptr_t>(fn)) {
      return static_cast<int32_t>(id);
    }
  }
  Fail("finding the XRay id of leaf_xray");
}

void Check(XRayPatchingStatus s, const char* what) {
  if (s != SUCCESS) Fail(what);
}

padhook_attachment* PadhookAttach(void* fn) {
  static padhook_hooks hooks = {EmptyPadhookHandler, nullptr, nullptr};
  padhook_attachment* a = nullptr;
  const int err = padhook_attach_address(fn, &hooks, &a);
  if (err < 0) {
    std::fprintf(stderr, "padhook attach: %s: %s\n", padhook_strerror(err), padhook_last_error());
    std::exit(1);
  }
  return a;
}

struct Setup {
  int32_t xray_id;
  padhook_attachment* hooked;
  Setup() {
    if (__xray_set_handler(EmptyXrayHandler) != 1) Fail("__xray_set_handler");
    xray_id = XrayIdOf(reinterpret_cast<const void*>(&leaf_xray));
    padhook_detach(PadhookAttach(reinterpret_cast<void*>(&leaf_cycled)));  // cycled once
    hooked = PadhookAttach(reinterpret_cast<void*>(&leaf_hooked));
  }
};

struct StateDef {
  const char* name;
  int (*fn)(int);
  int xray;  // -1 unpatch leaf_xray first, 1 patch it, 0 leave it
};
const StateDef kStates[] = {
    {"plain", leaf_plain, 0},
    {"xray_unpatched", leaf_xray, -1},
    {"xray_patched", leaf_xray, 1},
    {"padhook_unpatched", leaf_cycled, 0},
    {"padhook_one", leaf_hooked, 0},
};

void Enter(const Setup& s, const StateDef& st) {
  if (st.xray < 0) Check(__xray_unpatch_function(s.xray_id), "__xray_unpatch_function");
  if (st.xray > 0) Check(__xray_patch_function(s.xray_id), "__xray_patch_function");
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int Calls(int rounds, long calls) {
  Setup s;
  constexpr size_t kN = sizeof(kStates) / sizeof(kStates[0]);
  std::vector<double> ns[kN];
  for (int r = 0; r < rounds; ++r) {
    std::printf("round %d", r);
    for (size_t i = 0; i < kN; ++i) {
      Enter(s, kStates[i]);
      (void)bench_call_loop(kStates[i].fn, calls / 10);  // warm
      const Clock::time_point t0 = Clock::now();
      const long sink = bench_call_loop(kStates[i].fn, calls);
      const double t = std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / calls;
      asm volatile("" : : "r"(sink));
      ns[i].push_back(t);
      std::printf(" %s %.3f", kStates[i].name, t);
    }
    std::printf("\n");
  }
  std::printf("median");
  for (size_t i = 0; i < kN; ++i) std::printf(" %s %.3f", kStates[i].name, Median(ns[i]));
  std::printf("\n");
  return 0;
}

int Count(const std::string& name, long calls) {
  Setup s;
  for (const StateDef& st : kStates) {
    if (name != st.name) continue;
    Enter(s, st);
    long sink = bench_call_loop(st.fn, 1000);  // warm
    CALLGRIND_START_INSTRUMENTATION;            // see call_overhead_benchmark.cc
    sink += bench_call_loop(st.fn, calls);
    asm volatile("" : : "r"(sink));
    std::printf("calls %ld\n", calls);
    return 0;
  }
  std::fprintf(stderr, "unknown state %s\n", name.c_str());
  return 2;
}

template <typename F>
double TimeUs(F f) {
  const Clock::time_point t0 = Clock::now();
  f();
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

void PrintSummary(const char* key, std::vector<double> v) {
  std::sort(v.begin(), v.end());
  std::printf(" %s_us %.2f %s_min_us %.2f %s_max_us %.2f", key, Median(v), key, v.front(), key, v.back());
}

int PatchAll(int reps) {
  if (__xray_set_handler(EmptyXrayHandler) != 1) Fail("__xray_set_handler");
  const double cold_patch = TimeUs([] { Check(__xray_patch(), "__xray_patch"); });
  const double cold_unpatch = TimeUs([] { Check(__xray_unpatch(), "__xray_unpatch"); });
  std::vector<double> p, u;
  for (int r = 0; r < reps; ++r) {
    p.push_back(TimeUs([] { Check(__xray_patch(), "__xray_patch"); }));
    u.push_back(TimeUs([] { Check(__xray_unpatch(), "__xray_unpatch"); }));
  }
  std::printf("patch_all functions %zu cold_patch_us %.2f cold_unpatch_us %.2f", __xray_max_function_id(),
              cold_patch, cold_unpatch);
  PrintSummary("patch", p);
  PrintSummary("unpatch", u);
  std::printf("\n");
  return 0;
}

int PatchOne(int reps) {
  if (__xray_set_handler(EmptyXrayHandler) != 1) Fail("__xray_set_handler");
  const int32_t id = XrayIdOf(reinterpret_cast<const void*>(&leaf_xray));
  Check(__xray_patch_function(id), "__xray_patch_function");  // untimed first round
  Check(__xray_unpatch_function(id), "__xray_unpatch_function");
  std::vector<double> p, u;
  for (int r = 0; r < reps; ++r) {
    p.push_back(TimeUs([id] { Check(__xray_patch_function(id), "__xray_patch_function"); }));
    u.push_back(TimeUs([id] { Check(__xray_unpatch_function(id), "__xray_unpatch_function"); }));
  }
  std::printf("patch_one reps %d", reps);
  PrintSummary("patch", p);
  PrintSummary("unpatch", u);
  std::printf("\n");
  return 0;
}

template <typename F>
__attribute__((noinline)) auto CountedOp(F f) {
  return f();
}

int CountPatch(const std::string& op) {
  if (__xray_set_handler(EmptyXrayHandler) != 1) Fail("__xray_set_handler");
  const int32_t id = XrayIdOf(reinterpret_cast<const void*>(&leaf_xray));
  if (op == "patch_one") {
    Check(__xray_patch_function(id), "__xray_patch_function");
    Check(__xray_unpatch_function(id), "__xray_unpatch_function");
    CALLGRIND_START_INSTRUMENTATION;
    Check(CountedOp([id] { return __xray_patch_function(id); }), "__xray_patch_function");
  } else if (op == "cold_patch_all" || op == "patch_all" || op == "unpatch_all") {
    if (op != "cold_patch_all") {
      Check(__xray_patch(), "__xray_patch");
      Check(__xray_unpatch(), "__xray_unpatch");
    }
    CALLGRIND_START_INSTRUMENTATION;
    if (op == "unpatch_all") {
      Check(__xray_patch(), "__xray_patch");
      Check(CountedOp([] { return __xray_unpatch(); }), "__xray_unpatch");
    } else {
      Check(CountedOp([] { return __xray_patch(); }), "__xray_patch");
    }
  } else {
    std::fprintf(stderr, "OP must be cold_patch_all, patch_all, unpatch_all or patch_one\n");
    return 2;
  }
  std::printf("count_patch op %s functions %zu\n", op.c_str(), __xray_max_function_id());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  if (argc == 4 && std::strcmp(argv[1], "--calls") == 0) return Calls(std::atoi(argv[2]), std::atol(argv[3]));
  if (argc == 4 && std::strcmp(argv[1], "--count") == 0) return Count(argv[2], std::atol(argv[3]));
  if (argc == 3 && std::strcmp(argv[1], "--patch-all") == 0) return PatchAll(std::atoi(argv[2]));
  if (argc == 3 && std::strcmp(argv[1], "--patch-one") == 0) return PatchOne(std::atoi(argv[2]));
  if (argc == 3 && std::strcmp(argv[1], "--count-patch") == 0) return CountPatch(argv[2]);
  std::fprintf(stderr,
               "usage: %s --calls ROUNDS CALLS | --count STATE CALLS | --patch-all REPS | "
               "--patch-one REPS | "
               "--count-patch OP\n",
               argv[0]);
  return 2;
}
