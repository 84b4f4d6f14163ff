// The metadata table: get/put/lookup on real instrumented functions, in both
// write modes, including lookups racing get/put/trim while the table grows.
//
// ctest runs every test case in its own process (gtest_discover_tests), so each
// starts with an empty table; each also trims the table when it ends, so that
// the binary can run them all in one process too.
#include "padhook/metadata.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "padhook/text_writer.h"
#include "sync/grace_period.h"

extern "C" int (*many_fn_at(size_t i))(int);
extern "C" const size_t many_fn_count;
extern "C" int meta_no_padding(int);
extern "C" int meta_victim(int);

namespace padhook {
namespace {

using namespace std::chrono_literals;

uintptr_t Fn(size_t i) { return reinterpret_cast<uintptr_t>(many_fn_at(i)); }
const size_t meta_fn_count = many_fn_count;

std::array<uint8_t, 5> SlotBytes(uintptr_t entry) {
  std::array<uint8_t, 5> b;
  std::memcpy(b.data(), reinterpret_cast<const void*>(entry - 5), 5);
  return b;
}

const std::array<uint8_t, 5> kEmptySlot = {0x90, 0x90, 0x90, 0x90, 0x90};

class MetadataTest : public ::testing::TestWithParam<WriteMode> {
 protected:
  void SetUp() override {
    TextWriter::Process().set_mode(GetParam());
    ASSERT_TRUE(FunctionTable::Process().Refresh().ok());
    ASSERT_GE(meta_fn_count, 5000u);
  }
  void TearDown() override { EXPECT_TRUE(table.Trim().ok()); }
  MetadataTable& table = MetadataTable::Process();
};

TEST_P(MetadataTest, GetWritesTheIndexIntoThePaddingAndLookupFindsIt) {
  const uintptr_t f = Fn(0);
  ASSERT_EQ(SlotBytes(f), kEmptySlot);
  EXPECT_EQ(MetadataTable::Lookup(f), nullptr);
  Result<MetaEntry*> e = table.Get(f);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  const auto slot = SlotBytes(f);
  EXPECT_EQ(slot[0], 0xB8) << "mov eax, imm32";
  uint32_t index;
  std::memcpy(&index, slot.data() + 1, 4);
  EXPECT_EQ(index, (*e)->index);
  EXPECT_EQ((*e)->function.load(), f);
  EXPECT_EQ((f - 4) % 4, 0u) << "the index is 4-byte aligned in the recommended layout";
  EXPECT_EQ(MetadataTable::Lookup(f), *e);
  EXPECT_EQ(many_fn_at(0)(2), 6 + 1000) << "the function still runs";
  ASSERT_TRUE(table.Put(f).ok());
}

TEST_P(MetadataTest, GetIsCountedAndTheLastPutLeavesTheEntryDormant) {
  const uintptr_t f = Fn(1);
  Result<MetaEntry*> a = table.Get(f);
  Result<MetaEntry*> b = table.Get(f);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_EQ((*a)->users, 2u);
  EXPECT_EQ(table.live(), 1u);
  const size_t retired = table.retired(), dormant = table.dormant();
  ASSERT_TRUE(table.Put(f).ok());
  EXPECT_EQ(MetadataTable::Lookup(f), *a) << "one user left";
  ASSERT_TRUE(table.Put(f).ok());
  // Dormant: the padding keeps the index, Lookup finds an entry with no data.
  const auto slot = SlotBytes(f);
  EXPECT_EQ(slot[0], 0xB8);
  EXPECT_EQ(MetadataTable::Lookup(f), *a);
  EXPECT_EQ((*a)->data.load(), nullptr);
  EXPECT_EQ(table.live(), 0u);
  EXPECT_EQ(table.dormant(), dormant + 1);
  EXPECT_EQ(table.retired(), retired);
  EXPECT_EQ(table.Put(f).code(), Errc::kNotFound) << "put without get";

  // Reviving it writes no code and gives the same entry.
  const uint64_t writes = TextWriter::Process().stats().writes;
  Result<MetaEntry*> again = table.Get(f);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *a);
  EXPECT_EQ(TextWriter::Process().stats().writes, writes) << "a dormant entry was written again";
  EXPECT_EQ(table.live(), 1u);
  EXPECT_EQ(table.dormant(), dormant);
  ASSERT_TRUE(table.Put(f).ok());

  // Trim retracts it: NOPs again, the index retired.
  ASSERT_TRUE(table.Trim().ok());
  EXPECT_EQ(SlotBytes(f), kEmptySlot);
  EXPECT_EQ(MetadataTable::Lookup(f), nullptr);
  EXPECT_EQ(table.dormant(), 0u);
  EXPECT_EQ(table.retired(), retired + 1);
  EXPECT_EQ(table.Put(f).code(), Errc::kNotFound);
}

TEST_P(MetadataTest, BadInputGivesClearErrors) {
  // Not a function entry: an address inside a function, and a non-instrumented function.
  const Status inside = table.Get(Fn(2) + 1).status();
  EXPECT_EQ(inside.code(), Errc::kNotFound);
  EXPECT_NE(inside.message().find("not the entry of an instrumented function"), std::string::npos);
  EXPECT_EQ(table.Get(reinterpret_cast<uintptr_t>(&memcmp)).status().code(), Errc::kNotFound);
  EXPECT_EQ(table.Put(Fn(2)).code(), Errc::kNotFound);

  const Status no_padding = table.Get(reinterpret_cast<uintptr_t>(&meta_no_padding)).status();
  EXPECT_EQ(no_padding.code(), Errc::kNoPadding) << no_padding.ToString();
  EXPECT_NE(no_padding.message().find("padhook flags"), std::string::npos);
}

TEST_P(MetadataTest, RefusesPaddingThatSomeoneElseWrote) {
  const uintptr_t victim = reinterpret_cast<uintptr_t>(&meta_victim);
  const uint8_t nops[] = {0x90, 0x90, 0x90, 0x90, 0x90};
  const uint8_t foreign[] = {0xe8, 0x01, 0x02, 0x03, 0x04};  // another tool's call
  const CodeWrite corrupt = CodeWrite::Make(victim - 5, nops, foreign);
  ASSERT_TRUE(TextWriter::Process().Apply({&corrupt, 1}).ok());
  const Status s = table.Get(victim).status();
  EXPECT_EQ(s.code(), Errc::kUnexpectedBytes) << s.ToString();
  EXPECT_EQ(std::memcmp(reinterpret_cast<void*>(victim - 5), foreign, 5), 0) << "padhook wrote over it";
  const CodeWrite restore = CodeWrite::Make(victim - 5, foreign, nops);
  ASSERT_TRUE(TextWriter::Process().Apply({&restore, 1}).ok());

  // An index padhook did not hand out (as if another padhook-like tool ran).
  const uint8_t stray[] = {0xb8, 0x39, 0x05, 0x00, 0x00};
  const CodeWrite stray_write = CodeWrite::Make(victim - 5, nops, stray);
  ASSERT_TRUE(TextWriter::Process().Apply({&stray_write, 1}).ok());
  EXPECT_EQ(table.Get(victim).status().code(), Errc::kUnexpectedBytes);
  EXPECT_EQ(MetadataTable::Lookup(victim), nullptr) << "a stray index must not resolve";
  const CodeWrite unstray = CodeWrite::Make(victim - 5, stray, nops);
  ASSERT_TRUE(TextWriter::Process().Apply({&unstray, 1}).ok());
  ASSERT_TRUE(table.Get(victim).ok());
  ASSERT_TRUE(table.Put(victim).ok());
}

TEST_P(MetadataTest, IndexIsReusedOnlyAfterAGracePeriod) {
  Result<MetaEntry*> first = table.Get(Fn(10));
  ASSERT_TRUE(first.ok());
  const uint32_t retired_index = (*first)->index;
  ASSERT_TRUE(table.Put(Fn(10)).ok());
  ASSERT_TRUE(table.Trim().ok());  // retract the dormant entry: its index is retired
  // No grace period yet: a reader may still hold the entry. (Run after other
  // tests in one process, the table may wait for one itself, A5: from then
  // on reuse is allowed.)
  const uint64_t graces = sync::GracePeriodsCompleted();
  for (size_t i = 11; i < 11 + 300; ++i) {
    Result<MetaEntry*> e = table.Get(Fn(i));
    ASSERT_TRUE(e.ok());
    if (sync::GracePeriodsCompleted() != graces) continue;
    EXPECT_NE((*e)->index, retired_index) << "reused before a grace period";
  }
  const bool fresh_process = sync::GracePeriodsCompleted() == graces;
  ASSERT_TRUE(sync::Synchronize().ok());
  Result<MetaEntry*> after = table.Get(Fn(400));
  ASSERT_TRUE(after.ok());
  if (fresh_process) {
    EXPECT_EQ((*after)->index, retired_index) << "recycled once the grace period passed";
    EXPECT_EQ(table.retired(), 0u);
  }
  for (size_t i = 11; i < 11 + 300; ++i) ASSERT_TRUE(table.Put(Fn(i)).ok());
  ASSERT_TRUE(table.Put(Fn(400)).ok());
}

TEST_P(MetadataTest, GrowsPastSeveralStepsWithoutMoving) {
  std::vector<MetaEntry*> entries;
  for (size_t i = 0; i < 5000; ++i) {
    Result<MetaEntry*> e = table.Get(Fn(i));
    ASSERT_TRUE(e.ok()) << i << ": " << e.status().ToString();
    entries.push_back(*e);
  }
  EXPECT_GE(table.capacity(), 5000u);
  EXPECT_GE(table.growth_steps(), 5u);  // 256, 512, ..., 8192
  std::set<uint32_t> indices;
  for (size_t i = 0; i < 5000; ++i) {
    // Entries handed out before the growth are still where they were.
    EXPECT_EQ(MetadataTable::Lookup(Fn(i)), entries[i]);
    indices.insert(entries[i]->index);
  }
  EXPECT_EQ(indices.size(), 5000u) << "two live functions share an index";
  for (size_t i = 0; i < 5000; ++i) ASSERT_TRUE(table.Put(Fn(i)).ok());
  EXPECT_EQ(table.dormant(), 5000u);
  // A second round finds every entry where it was, and writes nothing.
  const uint64_t writes = TextWriter::Process().stats().writes;
  for (size_t i = 0; i < 5000; ++i) {
    Result<MetaEntry*> e = table.Get(Fn(i));
    ASSERT_TRUE(e.ok());
    ASSERT_EQ(*e, entries[i]);
  }
  EXPECT_EQ(TextWriter::Process().stats().writes, writes);
  for (size_t i = 0; i < 5000; ++i) ASSERT_TRUE(table.Put(Fn(i)).ok());
  ASSERT_TRUE(table.Trim().ok());
  for (size_t i = 0; i < 5000; ++i) ASSERT_EQ(SlotBytes(Fn(i)), kEmptySlot) << i;
}

// Readers look functions up without locks while writers get and put them,
// trim the dormant entries (so that indices are retracted and reused), and
// the table grows. What must never happen:
//  - a reader's entry names another function while the reader holds it
//    (an index reused before the grace period);
//  - a function held the whole time is not found;
//  - a crash, or padding left written after the last put.
TEST_P(MetadataTest, StressLookupsRaceGetPutAndGrowth) {
  constexpr size_t kPinned = 64;
  for (size_t i = 0; i < kPinned; ++i) ASSERT_TRUE(table.Get(Fn(i)).ok());
  const size_t growth_before = table.growth_steps();

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> lookups{0}, hits{0}, wrong_owner{0}, pinned_missed{0}, gets{0},
      gets_so_far{0};
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      std::mt19937 rng(r);
      uint64_t local = 0, local_hits = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        const size_t i = rng() % meta_fn_count;
        const uintptr_t f = Fn(i);
        sync::ReadSection section;
        MetaEntry* e = MetadataTable::Lookup(f);
        if (e != nullptr) {
          ++local_hits;
          for (int k = 0; k < 8; ++k) {
            const uintptr_t owner = e->function.load(std::memory_order_acquire);
            if (owner != f && owner != 0) wrong_owner.fetch_add(1);
          }
        } else if (i < kPinned) {
          pinned_missed.fetch_add(1);
        }
        ++local;
      }
      lookups += local;
      hits += local_hits;
    });
  }
  for (int w = 0; w < 2; ++w) {
    threads.emplace_back([&, w] {
      // Each writer owns half of the unpinned functions, so its gets and puts balance.
      std::mt19937 rng(100 + w);
      const size_t begin = kPinned + w * (meta_fn_count - kPinned) / 2;
      const size_t end = kPinned + (w + 1) * (meta_fn_count - kPinned) / 2;
      std::vector<size_t> held;
      uint64_t local = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        if (held.size() < 1500 && (held.empty() || rng() % 3 != 0)) {
          const size_t i = begin + rng() % (end - begin);
          if (table.Get(Fn(i)).ok()) {
            held.push_back(i);
            ++local;
            gets_so_far.fetch_add(1, std::memory_order_relaxed);
          }
        } else {
          const size_t k = rng() % held.size();
          ASSERT_TRUE(table.Put(Fn(held[k])).ok());
          held[k] = held.back();
          held.pop_back();
        }
        if (local % 2000 == 0) {
          ASSERT_TRUE(table.Trim().ok());         // retract: indices get reused
          ASSERT_TRUE(sync::Synchronize().ok());  // as a detach would
        }
      }
      for (size_t i : held) ASSERT_TRUE(table.Put(Fn(i)).ok());
      gets += local;
    });
  }
  // At least 1.5 s, and enough gets that indices must have been reused
  // (three times the final capacity); capped at 60 s on a loaded machine.
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < 60s &&
         (std::chrono::steady_clock::now() - start < 1500ms ||
          gets_so_far.load() < 3 * uint64_t{table.capacity()})) {
    std::this_thread::sleep_for(20ms);
  }
  stop = true;
  for (auto& t : threads) t.join();

  EXPECT_EQ(wrong_owner.load(), 0u) << "an index was reused while a reader held it";
  EXPECT_EQ(pinned_missed.load(), 0u) << "a function with a live entry was not found";
  EXPECT_GT(table.growth_steps(), growth_before) << "the table did not grow during the race";
  EXPECT_GT(lookups.load(), 10000u);
  EXPECT_GT(hits.load(), 0u);
  EXPECT_GE(gets.load(), 3 * uint64_t{table.capacity()}) << "indices were not reused";
  for (size_t i = 0; i < kPinned; ++i) ASSERT_TRUE(table.Put(Fn(i)).ok());
  EXPECT_EQ(table.live(), 0u);
  ASSERT_TRUE(table.Trim().ok());
  EXPECT_EQ(table.dormant(), 0u);
  for (size_t i = 0; i < meta_fn_count; ++i) ASSERT_EQ(SlotBytes(Fn(i)), kEmptySlot) << i;
}

INSTANTIATE_TEST_SUITE_P(BothModes, MetadataTest,
                         ::testing::Values(WriteMode::kFast, WriteMode::kStrict),
                         [](const auto& info) { return std::string(WriteModeName(info.param)); });

}  // namespace
}  // namespace padhook
