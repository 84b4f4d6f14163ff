// The trace reader (tools/padhook/trace_reader.h) on synthetic files: header
// errors with their exact messages, event decoding (deltas, time words, lost
// words, the end of the data, unknown sub-kinds), exit matching, and the
// directory (function tables, fork images, unknown ids).
#include "trace_reader.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "synthetic_trace.h"

namespace padhook::trace {
namespace {

namespace fs = std::filesystem;
using synthetic::ThreadEvents;

std::vector<Event> DecodeAll(const std::vector<uint8_t>& bytes, std::string* warning = nullptr,
                             uint64_t* end = nullptr) {
  EventHeader header;
  EXPECT_EQ(ParseEventHeader(bytes, "t.events", &header), std::nullopt);
  EventDecoder decoder(bytes, header.base_time, "t.events");
  std::vector<Event> events;
  Event event;
  while (decoder.Next(event)) events.push_back(event);
  if (warning) *warning = decoder.warning();
  if (end) *end = decoder.offset();
  return events;
}

void Put32(std::vector<uint8_t>& bytes, size_t at, uint32_t value) {
  std::memcpy(&bytes[at], &value, 4);
}

// ---- Headers ----

TEST(EventHeader, ParsesEveryField) {
  ThreadEvents thread(12, 34, 5000, "worker-thread-name-too-long");
  const auto bytes = thread.Bytes(/*closed=*/true, /*events_lost=*/7);
  EventHeader header;
  ASSERT_EQ(ParseEventHeader(bytes, "x", &header), std::nullopt);
  EXPECT_EQ(header.version, 1u);
  EXPECT_EQ(header.header_size, 64u);
  EXPECT_EQ(header.pid, 12u);
  EXPECT_EQ(header.tid, 34u);
  EXPECT_EQ(header.base_time, 5000u);
  EXPECT_EQ(header.events_lost, 7u);
  EXPECT_TRUE(header.closed());
  EXPECT_EQ(header.thread_name, "worker-thread-na");  // 16 bytes, no NUL
}

TEST(EventHeader, ShortFileNamesFileAndOffset) {
  auto bytes = ThreadEvents(1, 1, 0).Bytes(true);
  bytes.resize(10);
  EventHeader header;
  EXPECT_EQ(ParseEventHeader(bytes, "d/1-1.events", &header),
            "d/1-1.events: byte 10: the file ends inside its 64-byte header (it has 10 bytes)");
  EXPECT_EQ(ParseEventHeader({}, "e", &header),
            "e: byte 0: the file ends inside its 64-byte header (it has 0 bytes)");
}

TEST(EventHeader, BadMagic) {
  auto bytes = ThreadEvents(1, 1, 0).Bytes(true);
  std::memcpy(bytes.data(), "PHEVENT\x02", 8);
  EventHeader header;
  EXPECT_EQ(ParseEventHeader(bytes, "f", &header),
            "f: byte 0: bad magic \"PHEVENT\\x02\" (expected \"PHEVENT1\"): not a padhook events "
            "file");
}

TEST(EventHeader, BadVersion) {
  auto bytes = ThreadEvents(1, 1, 0).Bytes(true);
  Put32(bytes, 8, 2);
  EventHeader header;
  EXPECT_EQ(ParseEventHeader(bytes, "f", &header),
            "f: byte 8: unsupported version 2 (this reader knows 1)");
}

TEST(EventHeader, BadHeaderSize) {
  auto bytes = ThreadEvents(1, 1, 0).Bytes(true);
  Put32(bytes, 12, 128);
  EventHeader header;
  EXPECT_EQ(ParseEventHeader(bytes, "f", &header), "f: byte 12: bad header size 128 (expected 64)");
}

// ---- Events ----

TEST(EventDecoder, DeltasAccumulateFromTheBaseTime) {
  ThreadEvents thread(1, 1, 1000);
  thread.Entry(5, 1010);
  thread.Entry(4194303, 1010);  // the largest id, a zero delta
  thread.Exit(4194303, 1500);
  thread.Unwound(5, (uint64_t{1} << 40) - 1 + 1500);  // the largest delta
  const auto events = DecodeAll(thread.Bytes(true));
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0].type, EventType::kEntry);
  EXPECT_EQ(events[0].function, 5u);
  EXPECT_EQ(events[0].time, 1010u);
  EXPECT_EQ(events[1].function, 4194303u);
  EXPECT_EQ(events[1].time, 1010u);
  EXPECT_EQ(events[2].type, EventType::kExit);
  EXPECT_EQ(events[2].time, 1500u);
  EXPECT_EQ(events[3].type, EventType::kUnwound);
  EXPECT_EQ(events[3].time, (uint64_t{1} << 40) - 1 + 1500);
}

TEST(EventDecoder, TimeWordSetsTheAbsoluteTime) {
  ThreadEvents thread(1, 1, 1000);
  thread.Entry(1, 1100);
  thread.Exit(1, 1100 + (uint64_t{1} << 40));  // needs the time word
  ASSERT_EQ(thread.word_count(), 4u);
  thread.Entry(2, 1100 + (uint64_t{1} << 40) + 7);  // a delta from the absolute time
  const auto events = DecodeAll(thread.Bytes(true));
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[1].time, 1100 + (uint64_t{1} << 40));
  EXPECT_EQ(events[2].time, 1100 + (uint64_t{1} << 40) + 7);
}

TEST(EventDecoder, TimeWordWithoutItsTimeStopsWithAWarning) {
  ThreadEvents thread(1, 1, 0);
  thread.Entry(1, 10);
  thread.Raw(synthetic::SpecialWord(1, 0));  // the file ends after it
  std::string warning;
  uint64_t end = 0;
  const auto events = DecodeAll(thread.Bytes(false), &warning, &end);
  EXPECT_EQ(events.size(), 1u);
  EXPECT_EQ(warning,
            "t.events: byte 72: a time word without the time after it (the file ends); the data "
            "ends here");
  EXPECT_EQ(end, 72u);
}

TEST(EventDecoder, LostWordCarriesItsCount) {
  ThreadEvents thread(1, 1, 0);
  thread.Entry(1, 10);
  thread.Lost(12345);
  thread.Exit(1, 30);
  const auto events = DecodeAll(thread.Bytes(true));
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[1].type, EventType::kLost);
  EXPECT_EQ(events[1].lost, 12345u);
  EXPECT_EQ(events[1].time, 10u);
  EXPECT_EQ(events[2].time, 30u);
}

TEST(EventDecoder, UnknownSubKindStopsThereWithAWarning) {
  ThreadEvents thread(1, 1, 0);
  thread.Entry(1, 10);
  thread.Exit(1, 20);
  thread.Raw(synthetic::SpecialWord(7, 99));  // at byte 64 + 2 * 8
  thread.Entry(1, 30);
  std::string warning;
  uint64_t end = 0;
  const auto events = DecodeAll(thread.Bytes(true), &warning, &end);
  EXPECT_EQ(events.size(), 2u);
  EXPECT_EQ(warning,
            "t.events: byte 80: unknown special sub-kind 7 (word 0x000000006300001c); the events "
            "after it are ignored");
  EXPECT_EQ(end, 80u);
}

TEST(EventDecoder, ZeroWordAndPartialWordEndTheData) {
  ThreadEvents thread(1, 1, 0);
  thread.Entry(1, 10);
  auto bytes = thread.Bytes(false, 0, /*zero_words=*/3);
  bytes.push_back(0xff);  // a partial word after the zeros
  std::string warning;
  uint64_t end = 0;
  EXPECT_EQ(DecodeAll(bytes, &warning, &end).size(), 1u);
  EXPECT_EQ(warning, "");
  EXPECT_EQ(end, 72u);

  auto partial = thread.Bytes(false);
  partial.insert(partial.end(), {0x05, 0x00, 0x00});  // a word cut by the end of the file
  EXPECT_EQ(DecodeAll(partial, &warning).size(), 1u);
  EXPECT_EQ(warning, "");
}

TEST(EventDecoder, NeverReadsPastShortInput) {
  const std::vector<uint8_t> bytes(63, 0xff);
  EventDecoder decoder(bytes, 0, "x");
  Event event;
  EXPECT_FALSE(decoder.Next(event));
}

// ---- Matching ----

struct Recorded {
  uint32_t function;
  size_t depth;
  uint64_t entry, end, child_time;
  CallEnd how;
  bool outermost;
};

struct RecordingSink {
  std::vector<Recorded> calls;
  std::vector<std::pair<uint32_t, bool>> without_entry;
  std::vector<uint64_t> lost;
  void Enter(const OpenCall&, size_t) {}
  void Leave(const OpenCall& call, size_t depth, uint64_t end, CallEnd how, bool outermost) {
    calls.push_back({call.function, depth, call.entry, end, call.child_time, how, outermost});
  }
  void ExitWithoutEntry(uint32_t function, uint64_t, bool unwound) {
    without_entry.push_back({function, unwound});
  }
  void Lost(uint64_t count, uint64_t, size_t) { lost.push_back(count); }
};

MatchCounts Match(const ThreadEvents& thread, RecordingSink& sink, bool closed = true) {
  static OpenCounts open;
  const auto bytes = thread.Bytes(closed);
  EventDecoder decoder(bytes, 0, "t");
  return MatchCalls(decoder, sink, open);
}

TEST(MatchCalls, NestedCallsAndSelfTime) {
  ThreadEvents t(1, 1, 0);
  t.Entry(1, 10);
  t.Entry(2, 20), t.Exit(2, 50);
  t.Entry(3, 60), t.Exit(3, 70);
  t.Exit(1, 100);
  RecordingSink sink;
  const MatchCounts counts = Match(t, sink);
  ASSERT_EQ(sink.calls.size(), 3u);
  EXPECT_EQ(sink.calls[2].function, 1u);
  EXPECT_EQ(sink.calls[2].child_time, 40u);  // 30 + 10: self is 90 - 40
  EXPECT_EQ(sink.calls[2].end, 100u);
  EXPECT_EQ(sink.calls[0].depth, 1u);
  EXPECT_EQ(counts.calls, 3u);
  EXPECT_EQ(counts.events, 6u);
  EXPECT_EQ(counts.max_depth, 2u);
}

TEST(MatchCalls, RecursionIsOutermostOnlyOnce) {
  ThreadEvents t(1, 1, 0);
  t.Entry(7, 10), t.Entry(7, 20), t.Exit(7, 30), t.Exit(7, 40);
  RecordingSink sink;
  Match(t, sink);
  ASSERT_EQ(sink.calls.size(), 2u);
  EXPECT_FALSE(sink.calls[0].outermost);
  EXPECT_TRUE(sink.calls[1].outermost);
}

TEST(MatchCalls, UnwoundExitsEndCalls) {
  ThreadEvents t(1, 1, 0);
  t.Entry(1, 10), t.Entry(2, 20), t.Unwound(2, 25), t.Unwound(1, 30);
  RecordingSink sink;
  const MatchCounts counts = Match(t, sink);
  ASSERT_EQ(sink.calls.size(), 2u);
  EXPECT_EQ(sink.calls[0].how, CallEnd::kUnwound);
  EXPECT_EQ(sink.calls[1].how, CallEnd::kUnwound);
  EXPECT_EQ(sink.calls[1].end, 30u);
  EXPECT_EQ(counts.unwound, 2u);
}

TEST(MatchCalls, ExitWithoutEntryIsCountedAndSkipped) {
  ThreadEvents t(1, 1, 0);
  t.Exit(9, 5);  // entered before the attach
  t.Entry(1, 10);
  t.Unwound(4, 15);  // not open either
  t.Exit(1, 20);
  RecordingSink sink;
  const MatchCounts counts = Match(t, sink);
  EXPECT_EQ(counts.exits_without_entry, 2u);
  ASSERT_EQ(sink.without_entry.size(), 2u);
  EXPECT_EQ(sink.without_entry[0], std::make_pair(9u, false));
  EXPECT_EQ(sink.without_entry[1], std::make_pair(4u, true));
  ASSERT_EQ(sink.calls.size(), 1u);
  EXPECT_EQ(sink.calls[0].how, CallEnd::kReturned);
  EXPECT_EQ(sink.calls[0].end - sink.calls[0].entry, 10u);
}

TEST(MatchCalls, ExitOfACallerEndsCallsThatLostTheirExit) {
  ThreadEvents t(1, 1, 0);
  t.Entry(1, 10), t.Entry(2, 20), t.Entry(3, 30);
  t.Exit(1, 50);  // 3 and 2 lost their exits
  RecordingSink sink;
  const MatchCounts counts = Match(t, sink);
  ASSERT_EQ(sink.calls.size(), 3u);
  EXPECT_EQ(sink.calls[0].function, 3u);
  EXPECT_EQ(sink.calls[0].how, CallEnd::kExitMissing);
  EXPECT_EQ(sink.calls[1].how, CallEnd::kExitMissing);
  EXPECT_EQ(sink.calls[2].how, CallEnd::kReturned);
  EXPECT_EQ(sink.calls[2].child_time, 30u);
  EXPECT_EQ(counts.exits_missing, 2u);
}

TEST(MatchCalls, EntriesOpenAtTheEndAreUnfinished) {
  ThreadEvents t(1, 1, 0);
  t.Entry(1, 10), t.Entry(2, 20), t.Entry(3, 30), t.Exit(3, 35);
  RecordingSink sink;
  const MatchCounts counts = Match(t, sink, /*closed=*/false);
  ASSERT_EQ(sink.calls.size(), 3u);
  EXPECT_EQ(sink.calls[1].function, 2u);
  EXPECT_EQ(sink.calls[1].how, CallEnd::kUnfinished);
  EXPECT_EQ(sink.calls[1].end, 35u);  // the thread's last event
  EXPECT_EQ(sink.calls[2].how, CallEnd::kUnfinished);
  EXPECT_EQ(counts.unfinished, 2u);

  // The counters are back to zero for the next thread: 1 is not open.
  ThreadEvents next(1, 2, 0);
  next.Exit(1, 5);
  RecordingSink next_sink;
  EXPECT_EQ(Match(next, next_sink).exits_without_entry, 1u);
}

TEST(MatchCalls, LostWordsAreCounted) {
  ThreadEvents t(1, 1, 0);
  t.Entry(1, 10), t.Lost(5), t.Lost(6), t.Exit(1, 20);
  RecordingSink sink;
  const MatchCounts counts = Match(t, sink);
  EXPECT_EQ(counts.lost_words, 2u);
  EXPECT_EQ(counts.events_lost, 11u);
  EXPECT_EQ(sink.lost, (std::vector<uint64_t>{5, 6}));
}

// ---- Directories ----

class TraceDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("padhook_trace_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string OpenError(const fs::path& dir) {
    try {
      Trace::Open(dir);
    } catch (const TraceError& error) {
      return error.what();
    }
    return "";
  }
  synthetic::Process SimpleProcess(const std::string& key) {
    synthetic::Process p;
    p.key = key;
    p.pid = std::stoi(key);
    p.program = "/bin/p";
    p.Module(0, 0x1000, "/bin/p");
    p.Function(0, 0, 0x10, 4, "zero");
    p.Function(3, 0, 0x30, 4, "three");
    return p;
  }
  fs::path dir_;
};

TEST_F(TraceDir, MissingEmptyAndForeignDirectories) {
  EXPECT_EQ(OpenError(dir_ / "nope"),
            (dir_ / "nope").string() +
                ": no such directory (record a trace with `padhook record -- PROGRAM`, or name "
                "one with -i DIR)");
  EXPECT_EQ(OpenError(dir_), dir_.string() + ": empty directory, not a padhook trace");
  std::ofstream(dir_ / "notes.txt") << "hello";
  EXPECT_EQ(OpenError(dir_), dir_.string() + ": not a padhook trace (no *.process.json file)");
  EXPECT_EQ(OpenError(dir_ / "notes.txt"), (dir_ / "notes.txt").string() + ": not a directory");
}

TEST_F(TraceDir, BadEventsHeaderIsAnErrorNamingTheFile) {
  SimpleProcess("10").Write(dir_);
  auto bytes = ThreadEvents(10, 11, 0).Bytes(true);
  Put32(bytes, 8, 9);
  ThreadEvents::WriteFile(dir_ / "10-11.events", bytes);
  ThreadEvents(10, 12, 0).Write(dir_, "10", true);     // a good one next to it
  ThreadEvents::WriteFile(dir_ / "10-13.events", {});  // created, never written
  Trace trace = Trace::Open(dir_);
  const std::vector<std::string> expected = {
      (dir_ / "10-11.events").string() +
          ": byte 8: unsupported version 9 (this reader knows 1); the file is left out",
      (dir_ / "10-13.events").string() +
          ": byte 0: the file ends inside its 64-byte header (it has 0 bytes); the file is left "
          "out"};
  std::vector<std::string> errors = trace.errors();
  std::sort(errors.begin(), errors.end());
  EXPECT_EQ(errors, expected);
  ASSERT_EQ(trace.images().size(), 1u);
  ASSERT_EQ(trace.images()[0].threads.size(), 1u);
  EXPECT_EQ(trace.images()[0].threads[0].tid, 12u);
}

TEST_F(TraceDir, FunctionTablesAndForkedImagesShareFunctions) {
  synthetic::Process parent = SimpleProcess("10");
  parent.functions += "F\t3\t0\t40\t8\tthree v2\n";  // a reused id: the last one wins
  parent.functions += "F\tx\t0\t40\t8\tbad\n";       // malformed
  parent.functions += "F\t9\t0\t90\t8\tcut";         // no newline: the writer stopped
  parent.Write(dir_);
  synthetic::Process child = SimpleProcess("12");
  child.ppid = 10;
  child.Write(dir_);
  ThreadEvents(10, 10, 0).Write(dir_, "10", true);
  ThreadEvents(12, 12, 0).Write(dir_, "12", true);
  ThreadEvents(77, 77, 0).Write(dir_, "77", true);  // no process file

  Trace trace = Trace::Open(dir_);
  ASSERT_EQ(trace.images().size(), 2u);
  const ProcessImage& p = trace.images()[0];
  EXPECT_EQ(p.key, "10");
  EXPECT_EQ(p.program, "/bin/p");
  ASSERT_EQ(p.modules.size(), 1u);
  EXPECT_EQ(p.modules[0].load_bias, 0x1000u);
  ASSERT_EQ(p.functions.size(), 2u);
  EXPECT_EQ(p.functions.at(3).name, "three v2");
  EXPECT_EQ(p.functions.at(3).offset, 0x40u);
  // "zero" is one function of both images; "three" (child) and "three v2"
  // (parent) are two.
  EXPECT_EQ(trace.Resolve(0, 0), trace.Resolve(1, 0));
  EXPECT_NE(trace.Resolve(0, 3), trace.Resolve(1, 3));
  EXPECT_EQ(trace.functions()[trace.Resolve(1, 3)].name, "three");
  EXPECT_EQ(trace.functions()[trace.Resolve(0, 3)].module, "/bin/p");
  const uint32_t unknown = trace.Resolve(0, 5);
  EXPECT_EQ(trace.functions()[unknown].name, "<unknown function #5>");
  EXPECT_FALSE(trace.functions()[unknown].known);
  EXPECT_EQ(trace.Resolve(0, 5), unknown);

  const std::string functions = (dir_ / "10.functions").string();
  std::vector<std::string> expected = {
      functions +
          ":5: malformed F line (expected F<tab>id<tab>module<tab>offset-hex<tab>size<tab>"
          "name); line ignored",
      functions + ":6: the last line has no end (the writer was stopped); ignored",
      (dir_ / "77-77.events").string() + ": no 77.process.json for it; the file is ignored"};
  EXPECT_EQ(trace.warnings(), expected);
}

}  // namespace
}  // namespace padhook::trace
