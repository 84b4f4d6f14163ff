// tests/tracer/handlers_test.cc — the tracer's handlers on fake call frames,
// writing into a buffer the test owns: the word encoding and the rare paths
// the end-to-end tests cannot reach on purpose (a delta over 40 bits, a clock
// going backwards, a closed gate, a buffer that cannot grow, the min-duration
// rewind after a time prefix).
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "hooks/call_frame.h"
#include "tracer/thread_buffer.h"
#include "tracer/trace_format.h"

namespace padhook::tracer {
namespace {

using trace::kDeltaShift;

constexpr uint64_t kMaxDelta = (uint64_t{1} << 40) - 1;

// A function "entry" whose slot holds `id` in the 4 bytes before it.
struct FakeFunction {
  alignas(16) uint8_t bytes[16] = {};
  explicit FakeFunction(uint32_t id) { std::memcpy(bytes + 4, &id, 4); }
  uint64_t entry() const { return reinterpret_cast<uint64_t>(bytes + 8); }
};

class HandlersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // ns == ticks.
    g_clock = {0, 0, uint64_t{1} << 32};
    g_max_depth = UINT32_MAX;
    g_min_duration_ns = 0;
    words_.assign(64, 0);
    header_ = {};
    ThreadBuffer& t = t_buffer;
    t = {};
    t.window = words_.data();
    t.window_offset = 4096;  // not the file's first page: no header words in it
    t.window_bytes = words_.size() * 8;
    t.start = t.pos = words_.data();
    t.end = words_.data() + words_.size() - 1;
    t.prev_ns = 1000;
    t.state = kOpen;
    // No runtime state: growing fails, the window cannot be replaced.
    t.header = &header_;
  }
  void TearDown() override { t_buffer = {}; }

  void Event(const FakeFunction& f, uint64_t ticks, bool exit, bool unwound = false) {
    padhook_call call{};
    call.function = f.entry();
    call.stamp = ticks | (exit ? kStampExit : 0) | (unwound ? kStampUnwound : 0);
    (exit ? ExitHandler() : EntryHandler())(&call, &gate_);
  }
  size_t Written() const { return static_cast<size_t>(t_buffer.pos - words_.data()); }
  static uint64_t Word(uint64_t kind, uint64_t id, uint64_t delta) {
    return kind | id << trace::kIdShift | delta << kDeltaShift;
  }

  std::vector<uint64_t> words_;
  trace::EventHeader header_{};
  uint8_t gate_ = 1;
};

TEST_F(HandlersTest, WordsCarryKindIdAndDelta) {
  FakeFunction f(12345), g(7);
  Event(f, 1500, false);
  Event(g, 1600, false);
  Event(g, 1601, true, /*unwound=*/true);
  Event(f, 2000, true);
  ASSERT_EQ(Written(), 4u);
  EXPECT_EQ(words_[0], Word(trace::kKindEntry, 12345, 500));
  EXPECT_EQ(words_[1], Word(trace::kKindEntry, 7, 100));
  EXPECT_EQ(words_[2], Word(trace::kKindUnwound, 7, 1));
  EXPECT_EQ(words_[3], Word(trace::kKindExit, 12345, 399));
  EXPECT_EQ(t_buffer.prev_ns, 2000u);
}

TEST_F(HandlersTest, DeltaOver40BitsGetsATimeWordWithAnExactTime) {
  FakeFunction f(3);
  const uint64_t later = 1000 + kMaxDelta + 12347;  // low bits not 0 mod 4
  Event(f, later, false);
  ASSERT_EQ(Written(), 3u);
  EXPECT_EQ(words_[0], trace::SpecialWord(trace::kSpecialTime, 0));
  EXPECT_EQ(words_[1] & 3, 0u) << "an absolute time never looks like an entry";
  EXPECT_EQ(words_[1] + (words_[2] >> kDeltaShift), later) << "time exact";
  EXPECT_EQ(words_[2] & 3, trace::kKindEntry);
  EXPECT_EQ(t_buffer.prev_ns, later);
  // Just under the limit: one word.
  Event(f, later + kMaxDelta, true);
  EXPECT_EQ(Written(), 4u);
  EXPECT_EQ(words_[3], Word(trace::kKindExit, 3, kMaxDelta));
}

TEST_F(HandlersTest, ClockGoingBackwardsKeepsTheOrder) {
  FakeFunction f(1);
  Event(f, 900, false);  // before prev_ns (1000)
  ASSERT_EQ(Written(), 1u);
  EXPECT_EQ(words_[0], Word(trace::kKindEntry, 1, 0));
  EXPECT_EQ(t_buffer.prev_ns, 1000u);
}

TEST_F(HandlersTest, MinDurationRewindsOnlyChildlessShortCalls) {
  g_min_duration_ns = 100;
  FakeFunction parent(1), child(2);
  Event(parent, 1010, false);
  Event(child, 1020, false);
  Event(child, 1050, true);  // 30 ns, no child: gone
  ASSERT_EQ(Written(), 1u);
  EXPECT_EQ(words_[1], 0u) << "the rewound entry is erased";
  EXPECT_EQ(t_buffer.prev_ns, 1010u) << "back to the parent's entry time";
  Event(parent, 1090, true);  // 80 ns, its only child dropped: gone too
  EXPECT_EQ(Written(), 0u);
  EXPECT_EQ(t_buffer.prev_ns, 1000u);
  // A long call stays, and so does a short parent of a recorded child.
  Event(parent, 2000, false);
  Event(child, 2010, false);
  Event(child, 2500, true);   // 490 ns: kept
  Event(parent, 2520, true);  // 520 ns with a recorded child: kept
  ASSERT_EQ(Written(), 4u);
  EXPECT_EQ(words_[3], Word(trace::kKindExit, 1, 20));
}

TEST_F(HandlersTest, MinDurationDoesNotRewindPastATimeWord) {
  g_min_duration_ns = 100;
  FakeFunction f(5);
  const uint64_t later = 1000 + kMaxDelta + 1;
  Event(f, later, false);  // time word, absolute time, entry
  Event(f, later + 10, true);
  EXPECT_EQ(Written(), 2u) << "entry gone, the time words stay";
  EXPECT_EQ(t_buffer.prev_ns, words_[1]);
  Event(f, later + 20, false);
  Event(f, later + 500, true);
  ASSERT_EQ(Written(), 4u);
  EXPECT_EQ(words_[1] + (words_[2] >> kDeltaShift), later + 20);
}

TEST_F(HandlersTest, DepthLimitCountsEveryCall) {
  g_max_depth = 1;
  FakeFunction a(1), b(2);
  Event(a, 1001, false);
  Event(b, 1002, false);  // depth 2: not written
  Event(b, 1003, true);
  Event(a, 1004, true);
  ASSERT_EQ(Written(), 2u);
  EXPECT_EQ(words_[0], Word(trace::kKindEntry, 1, 1));
  EXPECT_EQ(words_[1], Word(trace::kKindExit, 1, 3));
  EXPECT_EQ(t_buffer.depth, 0u);
}

TEST_F(HandlersTest, ClosedGateDropsIntoOneLostWord) {
  FakeFunction f(9);
  Event(f, 1001, false);
  gate_ = 0;
  Event(f, 1002, false);
  Event(f, 1003, true);
  Event(f, 1004, true);
  gate_ = 1;
  Event(f, 1010, true);
  ASSERT_EQ(Written(), 3u);
  EXPECT_EQ(words_[1], trace::SpecialWord(trace::kSpecialLost, 3));
  EXPECT_EQ(words_[2], Word(trace::kKindExit, 9, 9)) << "delta from the last event written";
  EXPECT_EQ(header_.events_lost, 3u);
}

TEST_F(HandlersTest, FullBufferThatCannotGrowCountsEveryDrop) {
  FakeFunction f(4);
  const size_t capacity = words_.size() - 1;  // one word kept for the marker
  for (size_t i = 0; i < capacity + 2000; ++i) Event(f, 1001 + i, i % 2 != 0);
  ASSERT_EQ(t_buffer.state, kDropping);
  EXPECT_EQ(Written(), capacity + 1);
  EXPECT_EQ(words_[capacity], trace::SpecialWord(trace::kSpecialLost, 2000));
  EXPECT_EQ(header_.events_lost, 2000u);
  for (size_t i = 0; i < capacity; ++i) EXPECT_NE(words_[i] & 3, 0u) << i;
}

}  // namespace
}  // namespace padhook::tracer
