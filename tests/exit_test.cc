// Exit handlers (src/hooks/shadow_stack.h): return values, entry times,
// recursion, tail calls, longjmp, threads, and which clients owe which exits.
// Every test runs over fixtures/exit_targets.inc built by g++ and clang++ at
// -O0 and -O2, and checks the exact sequence or count of events.
#include <gtest/gtest.h>
#include <setjmp.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "padhook/padhook.h"

#define ET_PREFIX gcc_O0_
#include "fixtures/exit_targets.inc"
#undef ET_PREFIX
#define ET_PREFIX gcc_O2_
#include "fixtures/exit_targets.inc"
#undef ET_PREFIX
#define ET_PREFIX clang_O0_
#include "fixtures/exit_targets.inc"
#undef ET_PREFIX
#define ET_PREFIX clang_O2_
#include "fixtures/exit_targets.inc"
#undef ET_PREFIX

namespace {

struct Variant {
  const char* name;
  int (*add)(int, int);
  double (*half)(double);
  int (*depth)(int);
  int (*tail_outer)(int);
  int (*tail_inner)(int);
  void (*jump_down)(jmp_buf*, int);
  int (*slow)(volatile int*);
};

#define EXIT_VARIANT(p)                                                                       \
  Variant {                                                                                   \
#p, &p##add, &p##half, &p##depth, &p##tail_outer, &p##tail_inner, &p##jump_down, &p##slow \
  }

const Variant kVariants[] = {EXIT_VARIANT(gcc_O0_), EXIT_VARIANT(gcc_O2_), EXIT_VARIANT(clang_O0_),
                             EXIT_VARIANT(clang_O2_)};

void* Addr(auto* fn) { return reinterpret_cast<void*>(fn); }

// One event as a handler saw it.
struct Event {
  void* function;
  char kind;  // 'E' entry, 'X' exit, 'U' unwound exit
  bool operator==(const Event&) const = default;
};

// Events of the calling thread (handlers run on the calling thread).
thread_local std::vector<Event>* tls_events = nullptr;

void RecordEntry(padhook_call* c, void*) {
  if (tls_events) tls_events->push_back({padhook_call_function(c), 'E'});
}
void RecordExit(padhook_call* c, void*) {
  if (tls_events)
    tls_events->push_back({padhook_call_function(c), padhook_call_is_unwound(c) ? 'U' : 'X'});
}

std::string Describe(const std::vector<Event>& events,
                     const std::vector<std::pair<void*, std::string>>& names) {
  std::string out;
  for (const Event& e : events) {
    std::string name = "?";
    for (const auto& [fn, n] : names) {
      if (fn == e.function) name = n;
    }
    out += std::string(1, e.kind) + ":" + name + " ";
  }
  return out;
}

struct Attached {
  padhook_attachment* a = nullptr;
  Attached(const std::vector<void*>& fns, padhook_handler entry, padhook_handler exit,
           void* data = nullptr) {
    padhook_hooks h = {entry, exit, data, 0};
    int err = padhook_attach_addresses(fns.data(), fns.size(), &h, &a);
    EXPECT_EQ(err, PADHOOK_OK) << padhook_last_error();
  }
  ~Attached() { Detach(); }
  void Detach() {
    if (a != nullptr) {
      EXPECT_EQ(padhook_detach(a), PADHOOK_OK) << padhook_last_error();
    }
    a = nullptr;
  }
};

class ExitTest : public ::testing::TestWithParam<int> {
 protected:
  const Variant& V() const { return kVariants[GetParam()]; }
  void SetUp() override { tls_events = &events_; }
  void TearDown() override { tls_events = nullptr; }
  std::vector<Event> events_;
};

// ---- Return values --------------------------------------------------------------

void AddHundred(padhook_call* c, void*) {
  padhook_call_set_return_value(c, padhook_call_return_value(c) + 100);
}
void TripleDouble(padhook_call* c, void* seen) {
  *static_cast<double*>(seen) = padhook_call_return_double(c);
  padhook_call_set_return_double(c, padhook_call_return_double(c) * 3);
}

TEST_P(ExitTest, ExitHandlersSeeAndReplaceTheReturnValue) {
  const Variant& v = V();
  EXPECT_EQ(v.add(2, 3), 5);  // untraced
  EXPECT_EQ(v.half(5.0), 2.5);
  {
    Attached a({Addr(v.add)}, nullptr, AddHundred);
    double seen = 0;
    Attached b({Addr(v.half)}, nullptr, TripleDouble, &seen);
    EXPECT_EQ(v.add(2, 3), 105);
    EXPECT_EQ(v.half(5.0), 7.5);
    EXPECT_EQ(seen, 2.5);
  }
  EXPECT_EQ(v.add(2, 3), 5) << "detached";
  EXPECT_EQ(v.half(5.0), 2.5);
}

void SkipWith9(padhook_call* c, void*) { padhook_call_skip(c, 9); }
void SeeValue(padhook_call* c, void* out) {
  *static_cast<uint64_t*>(out) = padhook_call_return_value(c);
}

TEST_P(ExitTest, ASkippedCallStillHasItsExitWithTheSkipValue) {
  const Variant& v = V();
  uint64_t seen = 0;
  Attached skip({Addr(v.add)}, SkipWith9, nullptr);
  Attached watch({Addr(v.add)}, RecordEntry, SeeValue, &seen);
  EXPECT_EQ(v.add(2, 3), 9);
  EXPECT_EQ(seen, 9u);
}

// ---- Times ------------------------------------------------------------------------

struct Times {
  uint64_t entry_seen = 0, exit_entry_time = 0, exit_time = 0;
};
void TimeEntry(padhook_call* c, void* t) {  // the outermost call's entry only
  if (static_cast<Times*>(t)->entry_seen == 0)
    static_cast<Times*>(t)->entry_seen = padhook_call_timestamp(c);
}
void TimeExit(padhook_call* c, void* t) {
  static_cast<Times*>(t)->exit_entry_time = padhook_call_entry_time(c);
  static_cast<Times*>(t)->exit_time = padhook_call_timestamp(c);
}

TEST_P(ExitTest, ExitHandlersKnowTheEntryTimeTheEntryHandlersSaw) {
  const Variant& v = V();
  Times t;
  Attached a({Addr(v.depth)}, TimeEntry, TimeExit, &t);
  EXPECT_EQ(v.depth(1), 1);
  EXPECT_NE(t.entry_seen, 0u);
  EXPECT_EQ(t.exit_entry_time, t.entry_seen) << "the outermost call's exit comes last";
  EXPECT_GE(t.exit_time, t.exit_entry_time);
}

// ---- Nesting ----------------------------------------------------------------------

TEST_P(ExitTest, RecursionOneHundredThousandDeepPairsEveryEntryWithItsExit) {
  const Variant& v = V();
  const int expected = v.depth(100'000);  // untraced
  std::atomic<long> entries{0}, exits{0};
  const uint64_t lost = padhook_exits_lost();
  {
    padhook_hooks h = {[](padhook_call*, void* d) { static_cast<std::atomic<long>*>(d)[0]++; },
                       [](padhook_call*, void* d) { static_cast<std::atomic<long>*>(d)[1]++; },
                       nullptr, 0};
    std::atomic<long> counts[2] = {0, 0};
    h.user_data = counts;
    padhook_attachment* a = nullptr;
    ASSERT_EQ(padhook_attach_address(Addr(v.depth), &h, &a), PADHOOK_OK) << padhook_last_error();
    EXPECT_EQ(v.depth(100'000), expected);
    entries = counts[0].load();
    exits = counts[1].load();
    ASSERT_EQ(padhook_detach(a), PADHOOK_OK);
  }
  EXPECT_EQ(entries.load(), 100'001);
  EXPECT_EQ(exits.load(), 100'001);
  EXPECT_EQ(padhook_exits_lost(), lost);
}

TEST_P(ExitTest, ATailCallGivesOneExitPerEntryInNestingOrder) {
  const Variant& v = V();
  Attached a({Addr(v.tail_outer), Addr(v.tail_inner)}, RecordEntry, RecordExit);
  EXPECT_EQ(v.tail_outer(4), 10);
  const std::vector<Event> expected = {{Addr(v.tail_outer), 'E'},
                                       {Addr(v.tail_inner), 'E'},
                                       {Addr(v.tail_inner), 'X'},
                                       {Addr(v.tail_outer), 'X'}};
  EXPECT_EQ(events_, expected) << Describe(
      events_, {{Addr(v.tail_outer), "outer"}, {Addr(v.tail_inner), "inner"}});
}

TEST_P(ExitTest, LongjmpOverHookedFramesDeliversUnwoundExits) {
  const Variant& v = V();
  Attached a({Addr(v.jump_down), Addr(v.add)}, RecordEntry, RecordExit);
  jmp_buf buf;
  volatile int jumped = 0;
  if (setjmp(buf) == 0) {
    v.jump_down(&buf, 3);  // 4 nested calls, none returns
  } else {
    jumped = 1;
  }
  ASSERT_EQ(jumped, 1);
  EXPECT_EQ(v.add(1, 2), 3);  // the next hooked call notices
  const void* jd = Addr(v.jump_down);
  const void* add = Addr(v.add);
  std::vector<Event> expected;
  for (int i = 0; i < 4; ++i) expected.push_back({const_cast<void*>(jd), 'E'});
  expected.push_back({const_cast<void*>(add), 'E'});
  for (int i = 0; i < 4; ++i) expected.push_back({const_cast<void*>(jd), 'U'});
  expected.push_back({const_cast<void*>(add), 'X'});
  EXPECT_EQ(events_, expected) << Describe(
      events_, {{Addr(v.jump_down), "jump_down"}, {Addr(v.add), "add"}});
}

// ---- Which clients owe which exits --------------------------------------------------

struct Counter {
  std::atomic<int> entries{0}, exits{0};
};
void CountEntry(padhook_call*, void* c) { static_cast<Counter*>(c)->entries++; }
void CountExit(padhook_call*, void* c) { static_cast<Counter*>(c)->exits++; }

TEST_P(ExitTest, OnlyClientsAttachedAtEntryAndStillAttachedAtReturnGetTheExit) {
  const Variant& v = V();
  Counter early, late, leaving;
  Attached a({Addr(v.slow)}, CountEntry, CountExit, &early);
  Attached c({Addr(v.slow)}, CountEntry, CountExit, &leaving);
  volatile int go = 0;
  std::atomic<int> result{0};
  std::thread t([&] { result = v.slow(&go); });
  while (early.entries.load() == 0) std::this_thread::yield();
  Attached b({Addr(v.slow)}, CountEntry, CountExit, &late);  // attached mid-call
  c.Detach();                                                // detached mid-call
  const int leaving_exits = leaving.exits.load();
  go = 1;
  t.join();
  EXPECT_EQ(result.load(), 11);
  EXPECT_EQ(early.entries.load(), 1);
  EXPECT_EQ(early.exits.load(), 1);
  EXPECT_EQ(late.entries.load(), 0);
  EXPECT_EQ(late.exits.load(), 0) << "an exit without its entry";
  EXPECT_EQ(leaving.exits.load(), leaving_exits) << "a handler ran after detach returned";
  EXPECT_EQ(leaving_exits, 0);
}

TEST_P(ExitTest, ThreadsGetBalancedEntriesAndExits) {
  const Variant& v = V();
  Counter counter;
  Attached a({Addr(v.add), Addr(v.depth)}, CountEntry, CountExit, &counter);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      for (int k = 0; k < 2000; ++k) {
        ASSERT_EQ(v.add(i, k), i + k);
        ASSERT_EQ(v.depth(5), 15);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(counter.entries.load(), 4 * 2000 * 7);
  EXPECT_EQ(counter.exits.load(), 4 * 2000 * 7);
}

INSTANTIATE_TEST_SUITE_P(All, ExitTest, ::testing::Range(0, 4),
                         [](const ::testing::TestParamInfo<int>& info) {
                           std::string n = kVariants[info.param].name;
                           return n.substr(0, n.size() - 1);
                         });

}  // namespace
