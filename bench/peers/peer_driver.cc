// The driver of the peers runner (bench/peers.sh): calls peer_leaf
// (peer_leaf.cc, built with one tool's flags) through bench/call_loop.h, the
// loop the other call benchmarks use. Compiled without instrumentation flags,
// once per tool, with PEER_XRAY or PEER_PADHOOK for the tools that are set up
// from inside the process (bench/peers/CMakeLists.txt).
//
//   peer_driver --time STATE CALLS REPS   REPS timed loops of CALLS calls after
//       one warm-up loop of CALLS/10; prints the median, min and max ns per call
//   peer_driver --count STATE CALLS       one loop of CALLS calls for
//       callgrind --instr-atstart=no --toggle-collect='*bench_call_loop*'
//   peer_driver --empty                   returns at once (start-up cost of a
//       tracer that runs the program)
//
// STATE:
//   run          the leaf as built (plain, -finstrument-functions, -pg, or run
//                under a tracer that the runner starts: uftrace, bpftrace)
//   unpatched    (XRay, padhook) instrumented, not patched; padhook's leaf is
//                attached and detached once first, so its entry holds the NOP
//                the patcher leaves behind
//   patched      (XRay) __xray_patch() with an empty handler (entry and exit)
//   entry        (padhook) one client, empty on_entry
//   entry_nv     (padhook) the same, client passes PADHOOK_HOOKS_NO_VECTOR
//   entry_exit   (padhook) one client, empty on_entry and on_exit
// Output: `key value` pairs on one line.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "call_loop.h"

#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#else
#define CALLGRIND_START_INSTRUMENTATION
#endif

#if defined(PEER_XRAY)
#include <xray/xray_interface.h>
#elif defined(PEER_PADHOOK)
#include "padhook/padhook.h"
#endif

extern "C" int peer_leaf(int);

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "peer_driver: %s\n", what.c_str());
  std::exit(1);
}

#if defined(PEER_XRAY)
void EmptyXrayHandler(int32_t, XRayEntryType) {}
#elif defined(PEER_PADHOOK)
void EmptyHandler(padhook_call*, void*) {}
__attribute__((target("general-regs-only"))) void EmptyHandlerNoVector(padhook_call*, void*) {}

padhook_attachment* Attach(padhook_handler on_entry, padhook_handler on_exit, unsigned flags) {
  padhook_hooks hooks = {on_entry, on_exit, nullptr, flags};
  padhook_attachment* a = nullptr;
  const int err = padhook_attach_address(reinterpret_cast<void*>(&peer_leaf), &hooks, &a);
  if (err < 0) Fail(std::string("attach: ") + padhook_strerror(err) + ": " + padhook_last_error());
  return a;
}
#endif

// Puts the leaf in STATE; unknown states fail.
void Enter(const std::string& state) {
  if (state == "run") return;
#if defined(PEER_XRAY)
  if (state == "unpatched") return;
  if (state == "patched") {
    if (__xray_set_handler(EmptyXrayHandler) != 1) Fail("__xray_set_handler");
    if (__xray_patch() != SUCCESS) Fail("__xray_patch");
    return;
  }
#elif defined(PEER_PADHOOK)
  if (state == "unpatched") {
    if (padhook_detach(Attach(EmptyHandler, nullptr, 0)) < 0) Fail("detach");
    return;
  }
  if (state == "entry") return (void)Attach(EmptyHandler, nullptr, 0);
  if (state == "entry_nv")
    return (void)Attach(EmptyHandlerNoVector, nullptr, PADHOOK_HOOKS_NO_VECTOR);
  if (state == "entry_exit") return (void)Attach(EmptyHandler, EmptyHandler, 0);
#endif
  Fail("unknown state " + state + " for this build");
}

double NsPerCall(long calls) {
  const Clock::time_point t0 = Clock::now();
  const long sink = bench_call_loop(peer_leaf, calls);
  const double ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
  asm volatile("" : : "r"(sink));
  return ns / static_cast<double>(calls);
}

int Time(const std::string& state, long calls, int reps) {
  Enter(state);
  (void)NsPerCall(std::max(1L, calls / 10));  // warm (first-call work, page faults)
  std::vector<double> v;
  for (int r = 0; r < reps; ++r) v.push_back(NsPerCall(calls));
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  const double median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  std::printf("state %s calls %ld reps %d ns_per_call %.3f min %.3f max %.3f\n", state.c_str(),
              calls, reps, median, v.front(), v.back());
  return 0;
}

int Count(const std::string& state, long calls) {
  Enter(state);
  long sink = bench_call_loop(peer_leaf, 1000);  // warm, uncounted
  CALLGRIND_START_INSTRUMENTATION;
  sink += bench_call_loop(peer_leaf, calls);
  asm volatile("" : : "r"(sink));
  std::printf("calls %ld\n", calls);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  if (argc == 5 && std::strcmp(argv[1], "--time") == 0)
    return Time(argv[2], std::atol(argv[3]), std::atoi(argv[4]));
  if (argc == 4 && std::strcmp(argv[1], "--count") == 0) return Count(argv[2], std::atol(argv[3]));
  if (argc == 2 && std::strcmp(argv[1], "--empty") == 0) return 0;
  std::fprintf(stderr, "usage: %s --time STATE CALLS REPS | --count STATE CALLS | --empty\n",
               argv[0]);
  return 2;
}
