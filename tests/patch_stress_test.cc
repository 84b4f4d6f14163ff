// Stress: worker threads call hundreds of instrumented functions in tight
// loops while the main thread attaches and detaches two clients continuously.
//
// What is checked, per attach epoch, per (worker, function):
//   - exactly once: every call the worker made between seeing "attached" (set
//     after attach returned) and seeing "detaching" (set before detach is
//     called) is seen by the handler exactly once. Each call passes its own
//     sequence number, so the handler sees a contiguous range of them that
//     must cover that window (no gap, no repeat);
//   - no handler runs after its detach returned;
//   - every call returns the right value.
// Functions: the same 1,000 built by g++ and by clang++ in three layouts
// (plain: one-store toggle; endbr64; an odd layout whose sites cross an
// 8-byte word: breakpoint protocol), 60 of each. Both write modes.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "padhook/hooks.h"
#include "padhook/text_writer.h"
#include "patch/live_patcher.h"

extern "C" {
extern int (*const many_fns_20[1000])(int);  // g++ plain
extern int (*const many_fns_21[1000])(int);  // g++ endbr64
extern int (*const many_fns_22[1000])(int);  // g++ odd
extern int (*const many_fns_23[1000])(int);  // clang++ plain
extern int (*const many_fns_24[1000])(int);  // clang++ endbr64
extern int (*const many_fns_25[1000])(int);  // clang++ odd
}

namespace padhook {
namespace {

using namespace std::chrono_literals;
using Fn = int (*)(int);

constexpr int kWorkers = 3;
constexpr int kPerVariant = 60;

struct Cell {  // written only by one worker's thread (in its handler)
  int64_t first = -1, last = -1, count = 0, gaps = 0;
};

struct Epoch {
  explicit Epoch(size_t functions) : cells(kWorkers * functions), n(functions) {}
  std::vector<Cell> cells;
  size_t n;
  std::vector<bool> covered;  // which functions this client attached
  std::atomic<bool> detached{false};
  std::atomic<uint64_t> after_detach{0};
  Cell& at(int w, size_t f) { return cells[w * n + f]; }
};

std::vector<Fn> g_fns;                // all functions under test
std::vector<std::pair<uintptr_t, size_t>> g_index;  // entry -> position, sorted
thread_local int tls_worker = -1;

size_t IndexOf(uintptr_t entry) {
  auto it = std::lower_bound(g_index.begin(), g_index.end(), std::make_pair(entry, size_t{0}));
  return it != g_index.end() && it->first == entry ? it->second : SIZE_MAX;
}

void CountingHandler(padhook_call* call, void* data) {
  auto* epoch = static_cast<Epoch*>(data);
  if (epoch->detached.load(std::memory_order_acquire)) epoch->after_detach.fetch_add(1);
  if (tls_worker < 0) return;
  const size_t f = IndexOf(reinterpret_cast<uintptr_t>(padhook_call_function(call)));
  if (f == SIZE_MAX) return;
  const auto seq = static_cast<int32_t>(padhook_call_arg(call, 0));
  Cell& cell = epoch->at(tls_worker, f);
  if (cell.count == 0) {
    cell.first = seq;
  } else if (seq != cell.last + 1) {
    ++cell.gaps;
  }
  cell.last = seq;
  ++cell.count;
}

struct WorkerWindow {  // written by the worker, read after it acknowledges
  std::vector<int64_t> first, last;
};

class PatchStressTest : public ::testing::TestWithParam<WriteMode> {
 protected:
  static void SetUpTestSuite() {
    for (auto* table : {many_fns_20, many_fns_21, many_fns_22, many_fns_23, many_fns_24, many_fns_25}) {
      for (int i = 0; i < kPerVariant; ++i) g_fns.push_back(table[i * (1000 / kPerVariant)]);
    }
    for (size_t i = 0; i < g_fns.size(); ++i) g_index.push_back({reinterpret_cast<uintptr_t>(g_fns[i]), i});
    std::sort(g_index.begin(), g_index.end());
  }
};

TEST_P(PatchStressTest, ExactCountsWhileAttachingAndDetaching) {
  TextWriter::Process().set_mode(GetParam());
  const size_t n = g_fns.size();
  std::vector<int> offset(n);
  for (size_t f = 0; f < n; ++f) offset[f] = g_fns[f](0);  // value of an unhooked call at 0

  // state: (epoch << 1) | attached
  std::atomic<uint64_t> state{0};
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> wrong{0}, calls{0};
  std::vector<std::atomic<uint64_t>> acked(kWorkers);
  std::vector<WorkerWindow> windows(kWorkers);
  for (auto& w : windows) {
    w.first.assign(n, 0);
    w.last.assign(n, -1);
  }

  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&, w] {
      tls_worker = w;
      std::vector<int32_t> seq(n, 1);
      uint64_t open_epoch = 0, local_calls = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        for (size_t f = 0; f < n; ++f) {
          const uint64_t s = state.load(std::memory_order_acquire);
          const uint64_t epoch = s >> 1;
          if ((s & 1) && open_epoch != epoch) {  // saw "attached": the window opens
            open_epoch = epoch;
            for (size_t g = 0; g < n; ++g) {
              windows[w].first[g] = seq[g];
              windows[w].last[g] = seq[g] - 1;
            }
          } else if (!(s & 1) && epoch != 0 && acked[w].load(std::memory_order_relaxed) != epoch) {
            for (size_t g = 0; g < n; ++g) {
              if (open_epoch != epoch) windows[w].first[g] = seq[g];  // never saw it open: empty
              windows[w].last[g] = seq[g] - 1;  // the window closes
            }
            acked[w].store(epoch, std::memory_order_release);
          }
          const int32_t x = seq[f]++;
          if (g_fns[f](x) != x * 3 + offset[f]) wrong.fetch_add(1);
          ++local_calls;
        }
      }
      calls += local_calls;
    });
  }

  std::mt19937 rng(7);
  uint64_t epochs = 0, checked_windows = 0;
  const auto start = std::chrono::steady_clock::now();
  // At least 2.5 s, 20 epochs, and 20 windows per function checked, whichever
  // comes last: a loaded machine gives fewer calls per window, so it runs longer.
  while (std::chrono::steady_clock::now() - start < 2500ms || epochs < 20 ||
         checked_windows < 20 * n) {
    if (std::chrono::steady_clock::now() - start > 60s) break;
    const uint64_t k = ++epochs;
    auto all = std::make_unique<Epoch>(n);
    auto some = std::make_unique<Epoch>(n);
    all->covered.assign(n, true);
    some->covered.assign(n, false);
    std::vector<const void*> all_fns, some_fns;
    for (size_t f = 0; f < n; ++f) {
      all_fns.push_back(reinterpret_cast<const void*>(g_fns[f]));
      if (rng() % 2) {
        some->covered[f] = true;
        some_fns.push_back(reinterpret_cast<const void*>(g_fns[f]));
      }
    }
    Hooks hooks_all{CountingHandler, nullptr, all.get()};
    Hooks hooks_some{CountingHandler, nullptr, some.get()};
    Result<Attachment> a = AttachAddresses(all_fns, hooks_all);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    Result<Attachment> b = AttachAddresses(some_fns, hooks_some);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    state.store((k << 1) | 1, std::memory_order_release);  // both fully attached
    std::this_thread::sleep_for(std::chrono::microseconds(500 + rng() % 3000));
    state.store(k << 1, std::memory_order_release);  // detaching from now on
    for (int w = 0; w < kWorkers; ++w) {
      while (acked[w].load(std::memory_order_acquire) != k) std::this_thread::sleep_for(100us);
    }
    // Detach in a random order; each one must stop its handler for good.
    auto detach = [](Result<Attachment>& att, Epoch& ep) {
      ASSERT_TRUE(att->Detach().ok());
      ep.detached.store(true, std::memory_order_release);
    };
    if (rng() % 2) {
      detach(b, *some);
      detach(a, *all);
    } else {
      detach(a, *all);
      detach(b, *some);
    }
    std::this_thread::sleep_for(300us);  // calls after detach must not reach the handlers

    for (Epoch* ep : {all.get(), some.get()}) {
      EXPECT_EQ(ep->after_detach.load(), 0u) << "a handler ran after its detach returned";
      for (int w = 0; w < kWorkers; ++w) {
        for (size_t f = 0; f < n; ++f) {
          const Cell& c = ep->at(w, f);
          const int64_t wf = windows[w].first[f], wl = windows[w].last[f];
          if (!ep->covered[f]) {
            ASSERT_EQ(c.count, 0) << "handler saw a function it was not attached to";
            continue;
          }
          ASSERT_EQ(c.gaps, 0) << "epoch " << k << " worker " << w << " function " << f
                               << ": calls seen out of order or twice";
          if (wl < wf) continue;  // the worker did not call f inside the window
          ++checked_windows;
          ASSERT_GT(c.count, 0) << "epoch " << k << " worker " << w << " function " << f
                                << ": calls in the window were not seen";
          ASSERT_LE(c.first, wf) << "a call made while fully attached was missed (start)";
          ASSERT_GE(c.last, wl) << "a call made while fully attached was missed (end)";
          ASSERT_EQ(c.count, c.last - c.first + 1);
        }
      }
    }
  }
  stop = true;
  for (auto& t : workers) t.join();
  EXPECT_EQ(wrong.load(), 0u) << "a hooked call returned a wrong result";
  EXPECT_GE(epochs, 20u);
  EXPECT_GE(checked_windows, 20 * n);  // exactly-once was checked on many real windows
  const patch::PatcherStats stats = patch::Stats();
  if (GetParam() == WriteMode::kFast) {
    EXPECT_GT(stats.single_store_sites, 0u);
  }
  EXPECT_GT(stats.breakpoint_sites, 0u);  // the odd layout (and strict mode) use int3
  EXPECT_EQ(stats.stop_the_world, 1u);    // g++ NOP runs: converted once for the module
  std::printf("epochs %lu, calls %lu, windows checked %lu, int3 hits %lu, threads moved %lu\n",
              static_cast<unsigned long>(epochs), static_cast<unsigned long>(calls.load()),
              static_cast<unsigned long>(checked_windows),
              static_cast<unsigned long>(stats.breakpoint_hits),
              static_cast<unsigned long>(stats.threads_moved));
}

INSTANTIATE_TEST_SUITE_P(BothModes, PatchStressTest,
                         ::testing::Values(WriteMode::kFast, WriteMode::kStrict),
                         [](const auto& info) { return std::string(WriteModeName(info.param)); });

}  // namespace
}  // namespace padhook
