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
// 8-byte word: breakpoint protocol), 60 of each. Both write modes. A batch
// of all of them mixes protocols A and B: in the fast mode the optimistic
// pass writes the A sites and the planned pass the B sites, so exactly-once
// also checks that the two passes make one attach.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "padhook/hooks.h"
#include "padhook/metadata.h"
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

// Written only by one worker's thread (in its handler). The calls a handler
// sees form runs of consecutive sequence numbers; the exactly-once window must
// lie inside the last run. Before it, a stray call may be seen: one a thread
// made at the previous epoch's patched site but that reached the dispatcher
// only after that epoch detached and this one published its blocks (attach
// T2, before T3 patches the site) — its body had not run yet, so seeing it
// is right; the calls after it, before T3, are not seen.
struct Cell {
  int64_t first = -1, last = -1, count = 0, run_first = -1, repeats = 0;
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
    cell.first = cell.run_first = seq;
  } else if (seq <= cell.last) {
    ++cell.repeats;  // seen twice, or out of order
  } else if (seq != cell.last + 1) {
    cell.run_first = seq;  // calls in between were not seen: a new run
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
          ASSERT_EQ(c.repeats, 0) << "epoch " << k << " worker " << w << " function " << f
                                  << ": calls seen out of order or twice";
          if (wl < wf) continue;  // the worker did not call f inside the window
          ++checked_windows;
          ASSERT_GT(c.count, 0) << "epoch " << k << " worker " << w << " function " << f
                                << ": calls in the window were not seen";
          ASSERT_LE(c.run_first, wf) << "a call made while fully attached was missed (start)";
          ASSERT_GE(c.last, wl) << "a call made while fully attached was missed (end)";
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
  // g++ NOP runs: converted once, on the pages of the first batch (all of
  // them: every function is in it).
  EXPECT_EQ(stats.stop_the_world, 1u);
  std::printf("epochs %lu, calls %lu, windows checked %lu, int3 hits %lu, threads moved %lu\n",
              static_cast<unsigned long>(epochs), static_cast<unsigned long>(calls.load()),
              static_cast<unsigned long>(checked_windows),
              static_cast<unsigned long>(stats.breakpoint_hits),
              static_cast<unsigned long>(stats.threads_moved));
}

// Stress for the write path itself, with worker threads calling every g++
// function of the fixture (1-byte NOP runs; one-store, endbr64 and int3
// layouts) the whole time:
//   - NOP runs converted a page at a time (protocol C per batch), while
//     threads run through those very runs;
//   - batches that fail on a foreign site after other sites of the batch
//     were written (the optimistic pass and the planned one), undone while
//     threads run the sites: afterwards every site and slot is as before, and
//     no handler runs;
//   - dormant metadata trimmed and republished in between.
// Every call must return the right value throughout.
std::atomic<uint64_t> g_handler_calls{0};
std::atomic<bool> g_expect_no_handler{false};
std::atomic<uint64_t> g_unexpected_handler_calls{0};
void CountAll(padhook_call*, void*) {
  g_handler_calls.fetch_add(1, std::memory_order_relaxed);
  if (g_expect_no_handler.load(std::memory_order_relaxed)) g_unexpected_handler_calls.fetch_add(1);
}

TEST_P(PatchStressTest, PagesConvertedAndBatchesUndoneWhileThreadsRunThem) {
  TextWriter::Process().set_mode(GetParam());
  std::vector<Fn> fns;
  for (auto* table : {many_fns_20, many_fns_21, many_fns_22}) {
    for (int i = 0; i < 1000; ++i) fns.push_back(table[i]);
  }
  std::vector<int> offset(fns.size());
  for (size_t f = 0; f < fns.size(); ++f) offset[f] = fns[f](0);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> wrong{0}, calls{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&, w] {
      uint64_t local = 0;
      for (int32_t x = w; !stop.load(std::memory_order_relaxed); ++x) {
        for (size_t f = 0; f < fns.size(); ++f) {
          if (fns[f](x) != x * 3 + offset[f]) wrong.fetch_add(1);
        }
        local += fns.size();
      }
      calls += local;
    });
  }
  auto addr = [&](size_t f) { return reinterpret_cast<const void*>(fns[f]); };
  Hooks hooks{CountAll, nullptr, nullptr};
  const auto wait_for_calls = [] {
    const uint64_t seen = g_handler_calls.load();
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (g_handler_calls.load() == seen && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(50us);
    }
    return g_handler_calls.load() > seen;
  };

  // 1. One function per page of the plain g++ block, one attach each: every
  //    one that lands on a page with NOP runs left stops the world for it.
  const uint64_t stops_before = patch::Stats().stop_the_world;
  const bool fresh_process = patch::Stats().converted_sites == 0;
  for (size_t f = 0; f < 1000; f += 97) {
    Result<Attachment> a = AttachAddresses(std::vector<const void*>{addr(f)}, hooks);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    EXPECT_TRUE(wait_for_calls()) << "function " << f << " attached but its calls are not seen";
    ASSERT_TRUE(a->Detach().ok());
  }
  if (fresh_process) {
    EXPECT_GT(patch::Stats().stop_the_world, stops_before + 1);
  }

  // 2. Batches that fail at a foreign site in their middle.
  const size_t victim = 1500;  // endbr64 block: 2 protocol-A blocks around it in the batch
  const uintptr_t victim_site = reinterpret_cast<uintptr_t>(addr(victim)) + 4;
  std::vector<const void*> batch;
  for (size_t f = 0; f < fns.size(); f += 3) batch.push_back(addr(f));
  batch.push_back(addr(victim));
  auto site_bytes = [&](size_t f) {
    std::array<uint8_t, 16> b;
    const uintptr_t entry = reinterpret_cast<uintptr_t>(addr(f));
    std::memcpy(b.data(), reinterpret_cast<const void*>(entry - 5), b.size());  // slot and site
    return b;
  };
  // Convert every page first (one successful round), then note the bytes.
  {
    Result<Attachment> a = AttachAddresses(batch, hooks);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    ASSERT_TRUE(a->Detach().ok());
    ASSERT_TRUE(MetadataTable::Process().Trim().ok());
  }
  std::vector<std::array<uint8_t, 16>> before;
  for (size_t f = 0; f < fns.size(); ++f) before.push_back(site_bytes(f));
  // Another valid 5-byte NOP: threads run it fine, padhook must refuse it.
  const uint8_t ours[] = {0x0f, 0x1f, 0x44, 0x00, 0x00};
  const uint8_t foreign[] = {0x0f, 0x1f, 0x44, 0x00, 0x08};
  ASSERT_EQ(std::memcmp(reinterpret_cast<const void*>(victim_site), ours, 5), 0);
  const CodeWrite corrupt = CodeWrite::Make(victim_site, ours, foreign);
  ASSERT_TRUE(TextWriter::Process().Apply({&corrupt, 1}).ok());
  for (int round = 0; round < 20; ++round) {
    Result<Attachment> a = AttachAddresses(batch, hooks);
    ASSERT_FALSE(a.ok());
    EXPECT_EQ(a.status().code(), Errc::kUnexpectedBytes) << a.status().ToString();
    g_expect_no_handler = true;
    std::this_thread::sleep_for(2ms);  // no call may reach a handler now
    g_expect_no_handler = false;
    if (round % 5 == 4) {
      ASSERT_TRUE(MetadataTable::Process().Trim().ok());
    }
  }
  const CodeWrite restore = CodeWrite::Make(victim_site, foreign, ours);
  ASSERT_TRUE(TextWriter::Process().Apply({&restore, 1}).ok());
  ASSERT_TRUE(MetadataTable::Process().Trim().ok());
  for (size_t f = 0; f < fns.size(); ++f) {
    ASSERT_EQ(site_bytes(f), before[f])
        << "function " << f << ": the failed batches left bytes changed";
  }
  EXPECT_EQ(g_unexpected_handler_calls.load(), 0u)
      << "a handler ran after a failed attach returned";

  // 3. And the batch works again.
  {
    Result<Attachment> a = AttachAddresses(batch, hooks);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    EXPECT_TRUE(wait_for_calls());
    ASSERT_TRUE(a->Detach().ok());
  }
  stop = true;
  for (auto& t : workers) t.join();
  EXPECT_EQ(wrong.load(), 0u) << "a call returned a wrong result";
  EXPECT_GT(calls.load(), 0u);
  const patch::PatcherStats stats = patch::Stats();
  std::printf(
      "calls %lu, handler calls %lu, stops of the world %lu, threads moved %lu, replanned %lu\n",
      static_cast<unsigned long>(calls.load()), static_cast<unsigned long>(g_handler_calls.load()),
      static_cast<unsigned long>(stats.stop_the_world),
      static_cast<unsigned long>(stats.threads_moved),
      static_cast<unsigned long>(stats.replanned_batches));
}

INSTANTIATE_TEST_SUITE_P(BothModes, PatchStressTest,
                         ::testing::Values(WriteMode::kFast, WriteMode::kStrict),
                         [](const auto& info) { return std::string(WriteModeName(info.param)); });

}  // namespace
}  // namespace padhook
