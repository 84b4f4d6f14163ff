// padhook_soak: a long stress run (minutes; not part of CI: see
// tests/CMakeLists.txt). Worker threads call instrumented
// functions (plain calls, recursion, C++ exceptions through hooked frames,
// calls from a signal handler, forked children calling them) while the main
// thread attaches and detaches three clients (two with entry and exit
// handlers) over and over, another thread sends signals, and another dlopen()s
// and dlclose()s an instrumented library while the clients' glob attaches
// rescan the process's modules.
//
// The balance check: each worker keeps, per client, a stack of the functions
// whose entry it saw (thread_local, fixed size: signal-safe). In a loop
// iteration during which a client stayed fully attached (its state word,
// odd while attached, did not change), every entry must be matched by an exit
// of the same function in LIFO order (unwound exits included), the stack must
// be empty at the end, and the handler must have seen at least every call the
// iteration made. A violation counts as imbalance; it must be zero.
//
//   padhook_soak [--seconds N] [--workers N] [--library PATH] [--signal-us N]
#include <dlfcn.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "padhook/hooks.h"
#include "padhook/metadata.h"
#include "padhook/padhook.h"
#include "reliab_support.h"

extern "C" {
int soak_leaf(int x);
int soak_pair(int x);
int soak_recurse(int depth, int x);
int soak_in_signal(int x);
}
int soak_thrower(int depth, int x);

// GCC 12's AddressSanitizer does not lock its allocator around fork() (LLVM
// added that in December 2023: llvm-project pull request 75290), so a child
// forked while another thread holds the allocator's lock deadlocks at its
// first allocation; the soak's ASan runs hung there (the child in
// std::runtime_error's constructor). Under ASan the child does not throw.
#ifdef PADHOOK_RELIAB_ASAN
constexpr bool kForkChildMayAllocate = false;
#else
constexpr bool kForkChildMayAllocate = true;
#endif

namespace {

using namespace std::chrono_literals;

constexpr int kClients =
    3;  // 0: soak_* (entry+exit), 1: stress fns + soak_leaf (entry+exit), 2: all (entry)
constexpr int kMaxDepth = 512;

// Per worker thread, per client: written by the thread's own handlers (and
// its signal handler's hooked calls, which nest), read by the thread itself.
struct ThreadCheck {
  uintptr_t stack[kMaxDepth];
  int depth = 0;
  uint64_t entries = 0, exits = 0, unwound = 0, order_errors = 0, underflows = 0;
  // entries - exits in one word: a signal handler's hooked calls change it
  // and change it back before the interrupted code reads it again, so one
  // load is a consistent snapshot (two counters read apart are not).
  int64_t balance = 0;
};
thread_local ThreadCheck tls_check[kClients];

// The last events of each worker thread (clients 0 and 1), for the report of
// a violation: what happened, not only that it did. Written by the thread's
// handlers and signal handler (a signal handler's writes nest), read by the
// thread itself at the end of an iteration.
enum EventKind : uint8_t { kEntryEvent, kExitEvent, kUnwoundEvent, kSignalIn, kSignalOut };
struct Event {
  uint8_t kind, client;
  int16_t depth;  // the client's depth after the event
  uint32_t iteration;
  uintptr_t function;
  uintptr_t caller;  // the return address the call will return to
};
constexpr unsigned kRing = 256;
thread_local Event tls_ring[kRing];
thread_local unsigned tls_ring_next = 0;
thread_local uint32_t tls_iteration = 0;
void Log(EventKind kind, int client, int depth, uintptr_t function, uintptr_t caller) {
  // One instruction reserves the slot (lock xadd): a signal handler that
  // interrupts a Log gets the next slot instead of sharing this one.
  tls_ring[__atomic_fetch_add(&tls_ring_next, 1u, __ATOMIC_RELAXED) % kRing] = {
      static_cast<uint8_t>(kind),
      static_cast<uint8_t>(client),
      static_cast<int16_t>(depth),
      tls_iteration,
      function,
      caller};
}
thread_local bool tls_worker = false;
thread_local uint64_t tls_signal_calls = 0;  // hooked calls made by this thread's signal handler

// Written by the main thread (seq_cst), read by workers: odd while the client
// is fully attached (set after attach returned, cleared before detach).
std::atomic<uint64_t> g_state[kClients];
// Totals, added to by any thread (relaxed; read at the end).
std::atomic<uint64_t> g_entries{0}, g_exits{0}, g_unwound{0}, g_other_thread_events{0};
std::atomic<uint64_t> g_signal_calls{0}, g_wrong{0}, g_fork_failures{0};

void OnEntry(padhook_call* c, void* data) {
  g_entries.fetch_add(1, std::memory_order_relaxed);
  if (!tls_worker) {
    g_other_thread_events.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const int client = static_cast<int>(reinterpret_cast<intptr_t>(data));
  ThreadCheck& t = tls_check[client];
  ++t.entries;
  ++t.balance;
  if (t.depth < kMaxDepth) t.stack[t.depth] = reinterpret_cast<uintptr_t>(padhook_call_function(c));
  ++t.depth;
  if (client < 2) {
    Log(kEntryEvent, client, t.depth, reinterpret_cast<uintptr_t>(padhook_call_function(c)),
        reinterpret_cast<uintptr_t>(padhook_call_caller(c)));
  }
}

void OnExit(padhook_call* c, void* data) {
  g_exits.fetch_add(1, std::memory_order_relaxed);
  if (padhook_call_is_unwound(c)) g_unwound.fetch_add(1, std::memory_order_relaxed);
  if (!tls_worker) {
    g_other_thread_events.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const int client = static_cast<int>(reinterpret_cast<intptr_t>(data));
  ThreadCheck& t = tls_check[client];
  ++t.exits;
  --t.balance;
  if (padhook_call_is_unwound(c)) ++t.unwound;
  if (client < 2) {
    Log(padhook_call_is_unwound(c) ? kUnwoundEvent : kExitEvent, client, t.depth - 1,
        reinterpret_cast<uintptr_t>(padhook_call_function(c)),
        reinterpret_cast<uintptr_t>(padhook_call_caller(c)));
  }
  if (t.depth == 0) {
    ++t.underflows;
    return;
  }
  --t.depth;
  if (t.depth < kMaxDepth &&
      t.stack[t.depth] != reinterpret_cast<uintptr_t>(padhook_call_function(c)))
    ++t.order_errors;
}

// Signal-handler calls that left a client's balance changed although the
// client stayed attached throughout the handler (checked by the handler
// itself: an imbalance made between two iterations is otherwise only seen as
// a frame "left open" in the next one). The first one's details, for the
// report; written by the handler that finds it first (exchange on g_sig_bad).
std::atomic<uint64_t> g_signal_imbalance{0};
std::atomic<bool> g_sig_bad{false};
struct SignalViolation {
  int client;
  int64_t balance_delta;
  int depth_before, depth_after;
  uintptr_t top;  // the function on top of the client's stack after the handler
} g_sig_violation;

void OnSignal(int) {
  const int saved = errno;
  uint64_t state[2];
  int64_t balance[2];
  int depth[2];
  for (int c = 0; c < 2 && tls_worker; ++c) {
    state[c] = g_state[c].load();
    balance[c] = tls_check[c].balance;
    depth[c] = tls_check[c].depth;
  }
  // The client 0 depth as the handler finds it, and (signal-out) as it
  // leaves it.
  if (tls_worker) Log(kSignalIn, 0, tls_check[0].depth, 0, 0);
  if (soak_in_signal(7) != ((7 * 5 + 1) ^ 0x55)) g_wrong.fetch_add(1, std::memory_order_relaxed);
  for (int c = 0; c < 2 && tls_worker; ++c) {
    if ((state[c] & 1) == 0 || g_state[c].load() != state[c]) continue;
    const ThreadCheck& k = tls_check[c];
    if (k.balance == balance[c] && k.depth == depth[c]) continue;
    g_signal_imbalance.fetch_add(1, std::memory_order_relaxed);
    if (!g_sig_bad.exchange(true)) {
      g_sig_violation = {c, k.balance - balance[c], depth[c], k.depth,
                         k.depth > 0 && k.depth <= kMaxDepth ? k.stack[k.depth - 1] : 0};
    }
  }
  if (tls_worker) Log(kSignalOut, 0, tls_check[0].depth, 0, 0);
  g_signal_calls.fetch_add(1, std::memory_order_relaxed);
  ++tls_signal_calls;
  errno = saved;
}

struct Totals {  // per worker, summed at the end
  uint64_t iterations = 0, checked = 0, imbalance = 0, calls = 0, exceptions = 0, forks = 0;
  uint64_t missed = 0, unbalanced = 0, left_open = 0, misordered = 0;  // imbalance, by kind
  // Exits out of order in iterations during which the client was attached or
  // detached: not a violation, reported for information. A detach removes the
  // client function by function (attach.cc, D1), so while it runs a call to a
  // function already done (say, in a signal handler) loses its exit, and then
  // the exit of its caller, whose function is not done yet, still arrives:
  // the stack here shows the lost one on top.
  uint64_t transition_misordered = 0;
};

std::vector<std::pair<const char*, uintptr_t>> KnownFunctions() {
  return {{"soak_leaf", reinterpret_cast<uintptr_t>(&soak_leaf)},
          {"soak_pair", reinterpret_cast<uintptr_t>(&soak_pair)},
          {"soak_recurse", reinterpret_cast<uintptr_t>(&soak_recurse)},
          {"soak_in_signal", reinterpret_cast<uintptr_t>(&soak_in_signal)},
          {"soak_thrower", reinterpret_cast<uintptr_t>(&soak_thrower)}};
}

// Says what a violating iteration did, the first few times: enough to tell a
// lost exit of an exception's frames from one of a signal handler's call.
std::atomic<int> g_reports{0};
void ReportViolation(int worker, int client, const ThreadCheck& k, int64_t balance_delta,
                     uint64_t entries, uint64_t expected, bool threw, int throw_depth,
                     int recurse_depth, uint64_t signal_calls, bool forked) {
  if (g_reports.fetch_add(1) >= 5) return;
  std::string stack;
  for (int i = 0; i < k.depth && i < kMaxDepth && i < 8; ++i) {
    char address[32];
    std::snprintf(address, sizeof address, "%#lx ", static_cast<unsigned long>(k.stack[i]));
    stack += address;
  }
  std::string names;
  for (const auto& [name, address] : KnownFunctions()) {
    char line[64];
    std::snprintf(line, sizeof line, " %s=%#lx", name, static_cast<unsigned long>(address));
    names += line;
  }
  std::string ring;
  static const char* const kKinds[] = {"entry", "exit", "unwound", "signal-in", "signal-out"};
  for (unsigned i = 0; i < kRing; ++i) {
    const Event& e = tls_ring[(tls_ring_next + i) % kRing];
    if (e.function == 0 && e.kind < kSignalIn) continue;
    char line[160];
    std::snprintf(line, sizeof line, "\n    it %u %-10s client %u depth %d fn %#lx caller %#lx",
                  e.iteration, kKinds[e.kind], e.client, e.depth,
                  static_cast<unsigned long>(e.function), static_cast<unsigned long>(e.caller));
    ring += line;
  }
  std::fprintf(stderr,
               "soak: violation: functions:%s; this thread's last events (iteration %u):%s\n",
               names.c_str(), tls_iteration, ring.c_str());
  std::fprintf(stderr,
               "soak: violation: worker %d client %d: balance changed by %ld, depth %d (open: "
               "%s), %lu entries for %lu calls; this iteration threw through %d frames: %s, "
               "recursed %d, signal-handler calls %lu, forked %s\n",
               worker, client, static_cast<long>(balance_delta), k.depth, stack.c_str(),
               static_cast<unsigned long>(entries), static_cast<unsigned long>(expected),
               throw_depth, threw ? "yes" : "no", recurse_depth,
               static_cast<unsigned long>(signal_calls), forked ? "yes" : "no");
}

// One worker: loops until stop; returns its figures.
void Worker(int id, const std::vector<padhook::reliab::Fn>& fns, const std::atomic<bool>& stop,
            Totals* out, std::atomic<pid_t>* tid) {
  tls_worker = true;
  tid->store(static_cast<pid_t>(syscall(SYS_gettid)));
  std::vector<int> offset(fns.size());
  for (size_t f = 0; f < fns.size(); ++f) offset[f] = fns[f](0);
  uint64_t last_state[kClients] = {};
  std::mt19937 rng(static_cast<unsigned>(id) * 7919u + 1u);
  Totals t;
  while (!stop.load(std::memory_order_relaxed)) {
    ++tls_iteration;
    uint64_t s0[kClients], e0[kClients], o0[kClients];
    int64_t b0[kClients];
    for (int c = 0; c < kClients; ++c) {
      s0[c] = g_state[c].load();
      if (s0[c] != last_state[c]) tls_check[c].depth = 0;  // frames of an earlier lifetime
      last_state[c] = s0[c];
      e0[c] = tls_check[c].entries;
      b0[c] = tls_check[c].balance;
      o0[c] = tls_check[c].order_errors + tls_check[c].underflows;
    }
    // The calls of one iteration, and how many hooked calls they make.
    uint64_t soak_calls = 0, stress_calls = 0, leaf_calls = 0;
    const uint64_t signal_calls0 = tls_signal_calls;
    bool threw = false, forked = false;
    int throw_depth = -1;
    const int x = static_cast<int>(rng() % 1000);
    if (soak_pair(x) != (x * 5 + 1) + ((x + 1) * 5 + 1)) ++g_wrong;
    soak_calls += 3, leaf_calls += 2;
    const int depth = static_cast<int>(rng() % 40);
    if (soak_recurse(depth, x) != x * 5 + 1 + depth) ++g_wrong;
    soak_calls += static_cast<uint64_t>(depth) + 2, leaf_calls += 1;
    if (rng() % 4 == 0) {
      const int d = static_cast<int>(rng() % 12);
      threw = true, throw_depth = d;
      try {
        (void)soak_thrower(d, x);
        ++g_wrong;
      } catch (const std::runtime_error&) {
        ++t.exceptions;
      }
      soak_calls += static_cast<uint64_t>(d) + 1;
    }
    for (size_t f = rng() % 7; f < fns.size(); f += 7) {
      if (fns[f](x) != x * 3 + offset[f]) ++g_wrong;
      ++stress_calls;
    }
    if (rng() % 3000 == 0) {  // a child that calls hooked functions, then exits
      forked = true;
      const pid_t pid = fork();
      if (pid == 0) {
        bool ok = soak_pair(3) == 16 + 21 && soak_recurse(5, 2) == 16;
        if (kForkChildMayAllocate) {
          try {
            (void)soak_thrower(3, 1);
            ok = false;
          } catch (const std::runtime_error&) {
          }
        }
        _exit(ok ? 0 : 1);
      }
      int status = 0;
      if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
          WEXITSTATUS(status) != 0) {
        ++g_fork_failures;
      }
      ++t.forks;
    }
    t.calls += soak_calls + stress_calls;
    ++t.iterations;
    const uint64_t expected[kClients] = {soak_calls, stress_calls + leaf_calls,
                                         soak_calls + stress_calls};
    for (int c = 0; c < kClients; ++c) {
      // The counters first, then the state: a signal handler may run between
      // any two reads here, and its calls change the counters. Read after
      // the state, they could include a handler's call that entered before a
      // detach began and, rightly, got no exit (found: a "left open" frame
      // of soak_in_signal whose detach started after s1 was read). Read
      // before, everything they count happened while the state was s1.
      const ThreadCheck& live = tls_check[c];
      struct {
        uint64_t entries, order_errors, underflows;
        int64_t balance;
        int depth;
      } const k = {live.entries, live.order_errors, live.underflows, live.balance, live.depth};
      std::atomic_signal_fence(std::memory_order_seq_cst);  // the reads above, then the state
      const uint64_t s1 = g_state[c].load();
      const uint64_t order = k.order_errors + k.underflows - o0[c];
      if (s1 != s0[c] || (s0[c] & 1) == 0) {  // not fully attached throughout
        t.transition_misordered += order;
        continue;
      }
      t.misordered += order;
      const uint64_t entries = k.entries - e0[c];
      ++t.checked;
      const bool missed = entries < expected[c];            // a call the handler did not see
      const bool unbalanced = c < 2 && k.balance != b0[c];  // entry+exit clients
      const bool left_open = c < 2 && k.depth != 0;
      t.missed += missed, t.unbalanced += unbalanced, t.left_open += left_open;
      if (missed || unbalanced || left_open || order != 0) {
        ReportViolation(id, c, live, k.balance - b0[c], entries, expected[c], threw, throw_depth,
                        depth, tls_signal_calls - signal_calls0, forked);
      }
    }
  }
  t.imbalance = t.missed + t.unbalanced + t.left_open + t.misordered;
  *out = t;
}

}  // namespace

int main(int argc, char** argv) {
  int seconds = 60, workers = 4, signal_us = 200;
  std::string library;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--seconds") == 0)
      seconds = std::atoi(argv[i + 1]);
    else if (std::strcmp(argv[i], "--workers") == 0)
      workers = std::atoi(argv[i + 1]);
    else if (std::strcmp(argv[i], "--library") == 0)
      library = argv[i + 1];
    else if (std::strcmp(argv[i], "--signal-us") == 0)
      signal_us = std::atoi(argv[i + 1]);
  }
  if (argc % 2 == 0 || seconds <= 0 || workers <= 0 || signal_us <= 0) {
    std::fprintf(stderr,
                 "usage: %s [--seconds N] [--workers N] [--library PATH] [--signal-us N]\n"
                 "  --signal-us N: a SIGUSR1 to each worker every N to 5N us (default 200)\n",
                 argv[0]);
    return 2;
  }

  struct sigaction sa = {};
  sa.sa_handler = OnSignal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR1, &sa, nullptr);

  const std::vector<padhook::reliab::Fn> fns = padhook::reliab::StressFunctions(50);
  std::atomic<bool> stop{false};
  std::vector<Totals> totals(static_cast<size_t>(workers));
  std::vector<std::atomic<pid_t>> tids(static_cast<size_t>(workers));
  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back(Worker, w, std::cref(fns), std::cref(stop), &totals[w], &tids[w]);
  }
  uint64_t signals_sent = 0, dl_cycles = 0, dl_wrong = 0;
  std::thread signaller([&] {
    std::mt19937 rng(5);
    while (!stop.load()) {
      for (auto& tid : tids) {
        if (tid.load() > 0 && syscall(SYS_tgkill, getpid(), tid.load(), SIGUSR1) == 0)
          ++signals_sent;
      }
      std::this_thread::sleep_for(
          std::chrono::microseconds(signal_us + rng() % (4 * static_cast<unsigned>(signal_us))));
    }
  });
  std::thread loader([&] {
    if (library.empty()) return;
    while (!stop.load()) {
      void* h = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (h == nullptr) {
        ++dl_wrong;
        std::this_thread::sleep_for(10ms);
        continue;
      }
      auto add = reinterpret_cast<int (*)(int, int)>(dlsym(h, "fxlib_add"));
      if (add == nullptr || add(2, 3) != 5) ++dl_wrong;
      dlclose(h);
      ++dl_cycles;
    }
  });

  std::vector<const void*> client1;
  for (auto f : fns) client1.push_back(reinterpret_cast<const void*>(f));
  client1.push_back(reinterpret_cast<const void*>(&soak_leaf));
  std::vector<const void*> all = client1;
  for (auto f : {&soak_pair, &soak_in_signal}) all.push_back(reinterpret_cast<const void*>(f));
  all.push_back(reinterpret_cast<const void*>(static_cast<int (*)(int, int)>(&soak_recurse)));
  all.push_back(reinterpret_cast<const void*>(static_cast<int (*)(int, int)>(&soak_thrower)));

  std::optional<padhook::Attachment> att[kClients];
  uint64_t attaches = 0, detaches = 0, failures = 0;
  std::mt19937 rng(1);
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + std::chrono::seconds(seconds);
  auto attach = [&](int c) {
    const padhook::Hooks hooks{OnEntry, c < 2 ? OnExit : nullptr,
                               reinterpret_cast<void*>(static_cast<intptr_t>(c))};
    padhook::Result<padhook::Attachment> a =
        c == 0 ? padhook::AttachGlob("soak_*", hooks)
               : padhook::AttachAddresses(c == 1 ? client1 : all, hooks);
    if (!a.ok()) {
      std::fprintf(stderr, "attach %d failed: %s\n", c, a.status().ToString().c_str());
      ++failures;
      return;
    }
    att[c] = std::move(*a);
    ++attaches;
    g_state[c].fetch_add(1);  // odd: fully attached
  };
  auto detach = [&](int c) {
    g_state[c].fetch_add(1);  // even: detaching
    if (padhook::Status s = att[c]->Detach(); !s.ok()) {
      std::fprintf(stderr, "detach %d failed: %s\n", c, s.ToString().c_str());
      ++failures;
    }
    ++detaches;
  };
  uint64_t next_report = 10;
  while (std::chrono::steady_clock::now() < deadline && failures == 0) {
    const int c = static_cast<int>(rng() % kClients);
    if (g_state[c].load() & 1) {
      detach(c);
    } else {
      attach(c);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 3000));
    if (rng() % 200 == 0) (void)padhook::MetadataTable::Process().Trim();
    const auto elapsed = std::chrono::steady_clock::now() - start;
    if (elapsed > std::chrono::seconds(next_report)) {
      std::printf("  %3lds: %lu attaches, %lu detaches, %lu events\n",
                  static_cast<long>(next_report), static_cast<unsigned long>(attaches),
                  static_cast<unsigned long>(detaches),
                  static_cast<unsigned long>(g_entries.load() + g_exits.load()));
      std::fflush(stdout);
      next_report += 10;
    }
  }
  for (int c = 0; c < kClients; ++c) {
    if (g_state[c].load() & 1) detach(c);
  }
  stop = true;
  for (auto& t : threads) t.join();
  signaller.join();
  loader.join();

  Totals sum;
  for (const Totals& t : totals) {
    sum.iterations += t.iterations, sum.checked += t.checked, sum.imbalance += t.imbalance;
    sum.calls += t.calls, sum.exceptions += t.exceptions, sum.forks += t.forks;
    sum.missed += t.missed, sum.unbalanced += t.unbalanced, sum.left_open += t.left_open;
    sum.misordered += t.misordered, sum.transition_misordered += t.transition_misordered;
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "soak: %.0f s, %d workers: %lu calls in %lu iterations, %lu hooked events (%lu entries, "
      "%lu exits of which %lu unwound), %lu exceptions, %lu signals sent (%lu hooked calls in "
      "handlers), %lu forks (%lu failed), %lu dlopen/dlclose cycles (%lu wrong), %lu attaches, "
      "%lu detaches, %lu attach/detach failures, %lu client-iterations checked, imbalance %lu, "
      "wrong results %lu, exits lost %lu\n",
      secs, workers, static_cast<unsigned long>(sum.calls),
      static_cast<unsigned long>(sum.iterations),
      static_cast<unsigned long>(g_entries.load() + g_exits.load()),
      static_cast<unsigned long>(g_entries.load()), static_cast<unsigned long>(g_exits.load()),
      static_cast<unsigned long>(g_unwound.load()), static_cast<unsigned long>(sum.exceptions),
      static_cast<unsigned long>(signals_sent), static_cast<unsigned long>(g_signal_calls.load()),
      static_cast<unsigned long>(sum.forks), static_cast<unsigned long>(g_fork_failures.load()),
      static_cast<unsigned long>(dl_cycles), static_cast<unsigned long>(dl_wrong),
      static_cast<unsigned long>(attaches), static_cast<unsigned long>(detaches),
      static_cast<unsigned long>(failures), static_cast<unsigned long>(sum.checked),
      static_cast<unsigned long>(sum.imbalance), static_cast<unsigned long>(g_wrong.load()),
      static_cast<unsigned long>(padhook_exits_lost()));
  if (g_sig_bad.load()) {
    const SignalViolation& v = g_sig_violation;
    Dl_info info{};
    const bool named =
        dladdr(reinterpret_cast<const void*>(v.top), &info) != 0 && info.dli_sname != nullptr;
    std::printf(
        "soak: %lu signal-handler calls changed a client's balance; the first: client %d, "
        "balance %+ld, depth %d -> %d, on top: %s\n",
        static_cast<unsigned long>(g_signal_imbalance.load()), v.client,
        static_cast<long>(v.balance_delta), v.depth_before, v.depth_after,
        named ? info.dli_sname : "?");
  }
  std::printf("soak: recursion-guard skips %lu\n",
              static_cast<unsigned long>(padhook_recursion_skips()));
  const bool ok = sum.imbalance == 0 && g_signal_imbalance.load() == 0 && g_wrong.load() == 0 &&
                  g_fork_failures.load() == 0 && failures == 0 && dl_wrong == 0 &&
                  sum.checked > 0 && attaches > 0 && (library.empty() || dl_cycles > 0);
  std::printf(
      "soak: imbalance by kind: %lu calls missed, %lu entry/exit counts unequal, %lu left "
      "open, %lu out of order (and %lu out of order across an attach or detach, not counted)\n",
      static_cast<unsigned long>(sum.missed), static_cast<unsigned long>(sum.unbalanced),
      static_cast<unsigned long>(sum.left_open), static_cast<unsigned long>(sum.misordered),
      static_cast<unsigned long>(sum.transition_misordered));
  std::printf("soak: %s\n", ok ? "PASS" : "FAIL");
  return ok ? 0 : 1;
}
