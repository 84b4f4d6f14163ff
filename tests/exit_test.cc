// Exit handlers (src/hooks/shadow_stack.h): return values, entry times,
// recursion, tail calls, longjmp, exceptions, pthread_exit and cancel, stack
// walking, signals, fork, threads, and which clients owe which exits.
// Every test runs over fixtures/exit_targets.inc built by g++ and clang++ at
// -O0 and -O2, checks the exact sequence or count of events, and where the
// program computes something, checks that it computes the same untraced.
#include <dlfcn.h>
#include <execinfo.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <unwind.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
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
  void (*throw_down)(int, int*);
  int (*catch_below)(int, int*);
  int (*rethrow_below)(int, int*);
  void (*exit_down)(int, int*);
  void (*cancel_down)(int, int*, volatile int*);
  void (*walk)(int, void (*)(void*), void*);
  int (*raise_inside)(int);
  int (*call_fork)();
};

#define EXIT_VARIANT(p)                                                                        \
  Variant {                                                                                    \
#p, &p##add, &p##half, &p##depth, &p##tail_outer, &p##tail_inner, &p##jump_down, &p##slow, \
        &p##throw_down, &p##catch_below, &p##rethrow_below, &p##exit_down, &p##cancel_down,    \
        &p##walk, &p##raise_inside, &p##call_fork                                              \
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
           void* data = nullptr, uint32_t flags = 0) {
    padhook_hooks h = {entry, exit, data, flags};
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

// ---- A misaligned stack ------------------------------------------------------------

// Calls fn(a, b) with rsp = 8 (mod 16) at the call, as GCC's
// -fipa-stack-alignment (on at -O2) does for callees it knows need no
// alignment: the hooked function, and so the trampoline, start misaligned.
extern "C" int CallMisaligned(int (*fn)(int, int), int a, int b);
asm(R"(
  .text
  .globl CallMisaligned
  .type CallMisaligned, @function
CallMisaligned:
  .cfi_startproc
  mov %rdi, %rax
  mov %esi, %edi
  mov %edx, %esi
  call *%rax
  ret
  .cfi_endproc
  .size CallMisaligned, . - CallMisaligned
)");

// How far a 16-byte aligned local of the handler is from 16-byte alignment:
// the compiler places it assuming the ABI's alignment at the handler's entry.
std::atomic<int> g_worst_misalignment{-1};
// Handlers whose backtrace() did not reach CallMisaligned (the unwind
// information of the stack adjustment is wrong).
std::atomic<int> g_lost_walks{0};
__attribute__((noinline)) void NoteAlignment(padhook_call*, void*) {
  alignas(16) char local[16];
  uintptr_t address = reinterpret_cast<uintptr_t>(local);
  asm volatile("" : "+r"(address) : : "memory");  // the compiler "knows" it is aligned
  const int off = static_cast<int>(address % 16);
  g_worst_misalignment.store(std::max(g_worst_misalignment.load(), off));
  void* frames[32];
  const int n = backtrace(frames, 32);
  const auto low = reinterpret_cast<uintptr_t>(&CallMisaligned);
  bool reached = false;
  for (int i = 0; i < n; ++i) {
    const auto pc = reinterpret_cast<uintptr_t>(frames[i]);
    reached |= pc > low && pc <= low + 16;  // the return address after its call
  }
  if (!reached) g_lost_walks.fetch_add(1);
}

TEST_P(ExitTest, HandlersRunOnAnAlignedStackWhenTheCallerDidNotAlignIt) {
  const Variant& v = V();
  ASSERT_EQ(CallMisaligned(v.add, 2, 3), 5);  // untraced
  {
    Attached a({Addr(v.add)}, NoteAlignment, NoteAlignment);
    g_worst_misalignment = -1;
    g_lost_walks = 0;
    EXPECT_EQ(CallMisaligned(v.add, 2, 3), 5);
    EXPECT_EQ(g_worst_misalignment.load(), 0) << "a handler ran on a misaligned stack";
    EXPECT_EQ(g_lost_walks.load(), 0) << "backtrace() from a handler did not reach the caller";
  }
  // Entry only: each of the trampoline's entry paths aligns on its own (one
  // handler without and with vector registers, several handlers).
  struct EntryPath {
    const char* name;
    uint32_t flags;
    int clients;
  };
  for (const EntryPath& path :
       {EntryPath{"one, no vector", PADHOOK_HOOKS_NO_VECTOR, 1}, EntryPath{"one, vector", 0, 1},
        EntryPath{"two", 0, 2}, EntryPath{"two, no vector", PADHOOK_HOOKS_NO_VECTOR, 2}}) {
    SCOPED_TRACE(path.name);
    Attached a({Addr(v.add)}, NoteAlignment, nullptr, nullptr, path.flags);
    std::optional<Attached> b;
    if (path.clients == 2)
      b.emplace(std::vector<void*>{Addr(v.add)}, NoteAlignment, nullptr, nullptr, path.flags);
    g_worst_misalignment = -1;
    g_lost_walks = 0;
    EXPECT_EQ(CallMisaligned(v.add, 40, 2), 42);
    EXPECT_EQ(g_worst_misalignment.load(), 0) << "a handler ran on a misaligned stack";
    EXPECT_EQ(g_lost_walks.load(), 0) << "backtrace() from a handler did not reach the caller";
    g_worst_misalignment = -1;
    EXPECT_EQ(v.add(40, 2), 42);  // and on an aligned one
    EXPECT_EQ(g_worst_misalignment.load(), 0) << "a handler ran on a misaligned stack";
  }
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

uint64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

TEST_P(ExitTest, TimesAreNanosecondsOnClockMonotonicsScale) {
  const Variant& v = V();
  Times t;
  Attached a({Addr(v.slow)}, TimeEntry, TimeExit, &t);
  volatile int go = 0;
  std::atomic<uint64_t> released{0};
  std::thread releaser([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    released = MonotonicNs();
    go = 1;
  });
  const uint64_t before = MonotonicNs();
  EXPECT_EQ(v.slow(&go), 11);  // spins until released
  const uint64_t after = MonotonicNs();
  releaser.join();
  // Bracketed by clock_gettime readings: entry between `before` and the
  // release, exit between the release and `after`. The TSC conversion is
  // calibrated over ~1 ms: allow 1% of the span and a little.
  const uint64_t slack = (after - before) / 100 + 200'000;
  EXPECT_GE(t.entry_seen + slack, before);
  EXPECT_LE(t.entry_seen, released.load() + slack);
  EXPECT_GE(t.exit_time + slack, released.load());
  EXPECT_LE(t.exit_time, after + slack);
  EXPECT_EQ(t.exit_entry_time, t.entry_seen);
}

void SeeEntryTime(padhook_call* c, void* out) {
  *static_cast<uint64_t*>(out) = padhook_call_entry_time(c);
}

TEST_P(ExitTest, WithNoEntryTimeNoClockIsReadUnlessAnotherClientNeedsIt) {
  const Variant& v = V();
  uint64_t promised = 1, unpromised = 0;
  padhook_hooks h = {nullptr, SeeEntryTime, &promised, PADHOOK_HOOKS_NO_ENTRY_TIME};
  padhook_attachment* a = nullptr;
  ASSERT_EQ(padhook_attach_address(Addr(v.add), &h, &a), PADHOOK_OK) << padhook_last_error();
  EXPECT_EQ(v.add(1, 2), 3);
  EXPECT_EQ(promised, 0u) << "every client promised: no entry time taken";
  {
    Attached other({Addr(v.add)}, nullptr, SeeEntryTime, &unpromised);
    EXPECT_EQ(v.add(1, 2), 3);
    EXPECT_NE(unpromised, 0u);
    EXPECT_EQ(promised, unpromised) << "one entry time per call, shared by all clients";
  }
  Times t;
  {
    Attached stamping({Addr(v.add)}, TimeEntry, nullptr, &t);  // an entry handler takes one
    EXPECT_EQ(v.add(1, 2), 3);
  }
  EXPECT_NE(t.entry_seen, 0u);
  EXPECT_EQ(promised, t.entry_seen);
  EXPECT_EQ(padhook_detach(a), PADHOOK_OK);
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

// Runs fn on a thread with a stack of `stack_bytes`.
template <typename F>
void OnBigStack(size_t stack_bytes, F fn) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, stack_bytes);
  pthread_t thread;
  ASSERT_EQ(pthread_create(
                &thread, &attr,
                [](void* p) -> void* {
                  (*static_cast<F*>(p))();
                  return nullptr;
                },
                &fn),
            0);
  pthread_attr_destroy(&attr);
  ASSERT_EQ(pthread_join(thread, nullptr), 0);
}

TEST_P(ExitTest, DeeperThanTheShadowStackIsCountedNeverACrash) {
  const Variant& v = V();
  constexpr int kDepth = 500'000;  // the shadow stack holds 419,430 frames
  int untraced = 0;
  OnBigStack(256u << 20, [&] { untraced = v.depth(kDepth); });
  std::atomic<long> counts[2] = {0, 0};
  padhook_hooks h = {[](padhook_call*, void* d) { static_cast<std::atomic<long>*>(d)[0]++; },
                     [](padhook_call*, void* d) { static_cast<std::atomic<long>*>(d)[1]++; },
                     counts, 0};
  padhook_attachment* a = nullptr;
  ASSERT_EQ(padhook_attach_address(Addr(v.depth), &h, &a), PADHOOK_OK) << padhook_last_error();
  const uint64_t lost_before = padhook_exits_lost();
  int traced = 0;
  OnBigStack(256u << 20, [&] { traced = v.depth(kDepth); });
  const uint64_t lost = padhook_exits_lost() - lost_before;
  ASSERT_EQ(padhook_detach(a), PADHOOK_OK);
  EXPECT_EQ(traced, untraced);
  EXPECT_EQ(counts[0].load(), kDepth + 1);
  EXPECT_EQ(lost, static_cast<uint64_t>(kDepth + 1 - (16u << 20) / 40));
  EXPECT_EQ(static_cast<uint64_t>(counts[1].load()), kDepth + 1 - lost);
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
  for (int i = 0; i < 4; ++i) expected.push_back({const_cast<void*>(jd), 'U'});
  expected.push_back({const_cast<void*>(add), 'E'});
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

// ---- Unwinding ---------------------------------------------------------------------

std::vector<Event> Repeat(const void* fn, char kind, int n) {
  return std::vector<Event>(n, Event{const_cast<void*>(fn), kind});
}
std::vector<Event> Concat(std::initializer_list<std::vector<Event>> parts) {
  std::vector<Event> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

TEST_P(ExitTest, AnExceptionThroughHookedFramesIsCaughtWhereItWouldBe) {
  const Variant& v = V();
  int untraced_dtors = 0;
  const int untraced = v.catch_below(3, &untraced_dtors);
  ASSERT_EQ(untraced, 43);
  ASSERT_EQ(untraced_dtors, 4);
  const uint64_t lost = padhook_exits_lost();
  Attached a({Addr(v.catch_below), Addr(v.throw_down)}, RecordEntry, RecordExit);
  int dtors = 0;
  EXPECT_EQ(v.catch_below(3, &dtors), untraced);
  EXPECT_EQ(dtors, untraced_dtors) << "every destructor ran";
  const void* c = Addr(v.catch_below);
  const void* t = Addr(v.throw_down);
  EXPECT_EQ(events_, Concat({{{const_cast<void*>(c), 'E'}},
                             Repeat(t, 'E', 4),
                             Repeat(t, 'U', 4),
                             {{const_cast<void*>(c), 'X'}}}))
      << Describe(events_, {{Addr(v.catch_below), "catch"}, {Addr(v.throw_down), "throw"}});
  EXPECT_EQ(padhook_exits_lost(), lost);
}

TEST_P(ExitTest, ARethrownExceptionLeavesEveryHookedFrameUnwound) {
  const Variant& v = V();
  auto run = [&](int* dtors) {
    try {
      v.rethrow_below(2, dtors);
    } catch (int value) {
      return value;
    }
    return -1;
  };
  int untraced_dtors = 0;
  const int untraced = run(&untraced_dtors);
  ASSERT_EQ(untraced, 40);
  ASSERT_EQ(untraced_dtors, 4);
  Attached a({Addr(v.rethrow_below), Addr(v.throw_down)}, RecordEntry, RecordExit);
  int dtors = 0;
  EXPECT_EQ(run(&dtors), untraced);
  EXPECT_EQ(dtors, untraced_dtors);
  const void* r = Addr(v.rethrow_below);
  const void* t = Addr(v.throw_down);
  EXPECT_EQ(events_, Concat({{{const_cast<void*>(r), 'E'}},
                             Repeat(t, 'E', 3),
                             Repeat(t, 'U', 3),
                             {{const_cast<void*>(r), 'U'}}}))
      << Describe(events_, {{Addr(v.rethrow_below), "rethrow"}, {Addr(v.throw_down), "throw"}});
}

// Runs fn on a new pthread (not std::thread: its start routine must not
// stand between a forced unwind and pthread's own frame), with events recorded
// into *events.
template <typename F>
void OnPthread(std::vector<Event>* events, F fn) {
  struct Arg {
    std::vector<Event>* events;
    F* fn;
  } arg{events, &fn};
  pthread_t thread;
  ASSERT_EQ(pthread_create(
                &thread, nullptr,
                [](void* p) -> void* {
                  auto* a = static_cast<Arg*>(p);
                  tls_events = a->events;
                  (*a->fn)();
                  return nullptr;
                },
                &arg),
            0);
  ASSERT_EQ(pthread_join(thread, nullptr), 0);
}

TEST_P(ExitTest, PthreadExitFromHookedFramesRunsDestructorsAndUnwoundExits) {
  const Variant& v = V();
  int untraced_dtors = 0;
  std::vector<Event> ignored;
  OnPthread(&ignored, [&] { v.exit_down(5, &untraced_dtors); });
  ASSERT_EQ(untraced_dtors, 6);
  Attached a({Addr(v.exit_down)}, RecordEntry, RecordExit);
  int dtors = 0;
  std::vector<Event> events;
  OnPthread(&events, [&] { v.exit_down(5, &dtors); });
  EXPECT_EQ(dtors, untraced_dtors);
  const void* e = Addr(v.exit_down);
  EXPECT_EQ(events, Concat({Repeat(e, 'E', 6), Repeat(e, 'U', 6)}));
}

TEST_P(ExitTest, PthreadCancelInHookedFramesRunsDestructorsAndUnwoundExits) {
  const Variant& v = V();
  auto run = [&](int* dtors, std::vector<Event>* events) {
    volatile int ready = 0;
    struct Arg {
      const Variant* v;
      int* dtors;
      volatile int* ready;
      std::vector<Event>* events;
    } arg{&v, dtors, &ready, events};
    pthread_t thread;
    ASSERT_EQ(pthread_create(
                  &thread, nullptr,
                  [](void* p) -> void* {
                    auto* a = static_cast<Arg*>(p);
                    tls_events = a->events;
                    a->v->cancel_down(4, a->dtors, a->ready);
                    return nullptr;
                  },
                  &arg),
              0);
    while (ready == 0) std::this_thread::yield();
    ASSERT_EQ(pthread_cancel(thread), 0);
    void* result = nullptr;
    ASSERT_EQ(pthread_join(thread, &result), 0);
    EXPECT_EQ(result, PTHREAD_CANCELED);
  };
  int untraced_dtors = 0;
  std::vector<Event> ignored;
  run(&untraced_dtors, &ignored);
  ASSERT_EQ(untraced_dtors, 5);
  Attached a({Addr(v.cancel_down)}, RecordEntry, RecordExit);
  int dtors = 0;
  std::vector<Event> events;
  run(&dtors, &events);
  EXPECT_EQ(dtors, untraced_dtors);
  const void* c = Addr(v.cancel_down);
  EXPECT_EQ(events, Concat({Repeat(c, 'E', 5), Repeat(c, 'U', 5)}));
}

TEST_P(ExitTest, ThreadsThatExitLeaveNoShadowStackBehind) {
  const Variant& v = V();
  Counter counter;
  Attached a({Addr(v.add), Addr(v.exit_down)}, CountEntry, CountExit, &counter);
  auto virtual_kib = [] {  // VmSize: a leaked shadow stack would add 16 MiB per thread
    FILE* f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f) != nullptr) {
      if (std::strncmp(line, "VmSize:", 7) == 0) kib = std::atol(line + 7);
    }
    fclose(f);
    return kib;
  };
  auto run_threads = [&] {
    for (int i = 0; i < 50; ++i) {
      std::thread([&] { EXPECT_EQ(v.add(i, 1), i + 1); }).join();
      int dtors = 0;
      std::vector<Event> ignored;
      OnPthread(&ignored, [&] { v.exit_down(2, &dtors); });  // exits with hooked frames
    }
  };
  run_threads();  // warm up: glibc's stack cache, mirror chunks
  const long before = virtual_kib();
  ASSERT_GT(before, 0);
  run_threads();
  EXPECT_LE(virtual_kib(), before + 4 * 1024) << "100 threads came and went";
  EXPECT_EQ(counter.entries.load(), 2 * 50 * 4);
  EXPECT_EQ(counter.exits.load(), 2 * 50 * 4);
}

// ---- Stack walking ----------------------------------------------------------------

struct Frames {
  std::vector<void*> ips;
  bool use_unwind = false;
};

void CollectFrames(void* p) {
  auto* f = static_cast<Frames*>(p);
  if (f->use_unwind) {
    _Unwind_Backtrace(
        [](_Unwind_Context* ctx, void* arg) {
          static_cast<std::vector<void*>*>(arg)->push_back(
              reinterpret_cast<void*>(_Unwind_GetIP(ctx)));
          return _URC_NO_REASON;
        },
        &f->ips);
  } else {
    void* buf[128];
    const int n = backtrace(buf, 128);
    f->ips.assign(buf, buf + n);
  }
}

bool InLibpadhook(void* ip) {
  Dl_info info;
  return dladdr(ip, &info) != 0 && info.dli_fname != nullptr &&
         std::strstr(info.dli_fname, "libpadhook") != nullptr;
}

// The frames seen from below walk(3): untraced, then with walk hooked (one
// call site for both, so the callers' return addresses are the same).
std::vector<void*> WalkFrames(const Variant& v, bool traced, bool use_unwind, int* rt_frames) {
  std::optional<Attached> a;
  if (traced) a.emplace(std::vector<void*>{Addr(v.walk)}, RecordEntry, RecordExit);
  Frames f;
  f.use_unwind = use_unwind;
  v.walk(3, CollectFrames, &f);
  *rt_frames = 0;
  std::vector<void*> real;
  for (void* ip : f.ips) {
    if (InLibpadhook(ip)) {
      ++*rt_frames;  // a return trampoline's pseudo-frame
    } else {
      real.push_back(ip);
    }
  }
  return real;
}

TEST_P(ExitTest, BacktraceShowsTheRealCallersThroughRedirectedFrames) {
  for (bool use_unwind : {false, true}) {
    SCOPED_TRACE(use_unwind ? "_Unwind_Backtrace" : "backtrace");
    int rt_untraced = 0, rt_traced = 0;
    std::vector<void*> untraced, traced;
    for (int i = 0; i < 2; ++i) {
      (i == 0 ? untraced : traced) =
          WalkFrames(V(), i == 1, use_unwind, i == 0 ? &rt_untraced : &rt_traced);
    }
    EXPECT_EQ(rt_untraced, 0);
    EXPECT_EQ(rt_traced, 4) << "one return-trampoline frame per hooked walk() frame";
    EXPECT_EQ(traced, untraced);
    EXPECT_GE(untraced.size(), 6u);
  }
}

// ---- Signals and fork ---------------------------------------------------------------

std::atomic<int (*)(int, int)> g_signal_add{nullptr};
std::atomic<int> g_signal_result{0};

TEST_P(ExitTest, HookedCallsInASignalHandlerAreTracedAndNested) {
  const Variant& v = V();
  g_signal_add = v.add;
  struct sigaction sa = {}, old = {};
  sa.sa_handler = [](int) { g_signal_result = g_signal_add.load()(20, 22); };
  ASSERT_EQ(sigaction(SIGUSR1, &sa, &old), 0);
  EXPECT_EQ(v.raise_inside(SIGUSR1), 5);  // untraced
  EXPECT_EQ(g_signal_result.exchange(0), 42);
  {
    Attached a({Addr(v.raise_inside), Addr(v.add)}, RecordEntry, RecordExit);
    EXPECT_EQ(v.raise_inside(SIGUSR1), 5);
    EXPECT_EQ(g_signal_result.exchange(0), 42);
  }
  sigaction(SIGUSR1, &old, nullptr);
  const std::vector<Event> expected = {{Addr(v.raise_inside), 'E'},
                                       {Addr(v.add), 'E'},
                                       {Addr(v.add), 'X'},
                                       {Addr(v.raise_inside), 'X'}};
  EXPECT_EQ(events_, expected) << Describe(
      events_, {{Addr(v.raise_inside), "raise_inside"}, {Addr(v.add), "add"}});
}

sigjmp_buf g_signal_jump;

TEST_P(ExitTest, SiglongjmpFromASignalHandlerOverHookedFramesDeliversUnwoundExits) {
  const Variant& v = V();
  struct sigaction sa = {}, old = {};
  sa.sa_handler = [](int) { siglongjmp(g_signal_jump, 3); };
  ASSERT_EQ(sigaction(SIGUSR2, &sa, &old), 0);
  auto run = [&] {
    volatile int jumped = 0;
    if (sigsetjmp(g_signal_jump, 1) == 0) {
      v.raise_inside(SIGUSR2);  // does not return: the handler jumps out of it
    } else {
      jumped = 1;
    }
    return jumped + v.add(1, 2);  // the next hooked call notices the dead frame
  };
  const int untraced = run();
  ASSERT_EQ(untraced, 4);
  {
    Attached a({Addr(v.raise_inside), Addr(v.add)}, RecordEntry, RecordExit);
    EXPECT_EQ(run(), untraced);
  }
  sigaction(SIGUSR2, &old, nullptr);
  const std::vector<Event> expected = {{Addr(v.raise_inside), 'E'},
                                       {Addr(v.raise_inside), 'U'},
                                       {Addr(v.add), 'E'},
                                       {Addr(v.add), 'X'}};
  EXPECT_EQ(events_, expected) << Describe(
      events_, {{Addr(v.raise_inside), "raise_inside"}, {Addr(v.add), "add"}});
}

TEST_P(ExitTest, AForkedChildReturnsThroughRedirectedFramesAndKeepsTracing) {
  const Variant& v = V();
  Attached a({Addr(v.call_fork), Addr(v.add)}, RecordEntry, RecordExit);
  const pid_t pid = v.call_fork();
  ASSERT_GE(pid, 0);
  const std::vector<Event> forked = {{Addr(v.call_fork), 'E'}, {Addr(v.call_fork), 'X'}};
  if (pid == 0) {  // the child: report through the exit status only
    bool ok = events_ == forked;
    ok = ok && v.add(2, 3) == 5;
    ok = ok && events_.size() == 4 && events_[2] == Event{Addr(v.add), 'E'} &&
         events_[3] == Event{Addr(v.add), 'X'};
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "the child crashed: status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 0) << "the child saw wrong events";
  EXPECT_EQ(events_, forked);
}

INSTANTIATE_TEST_SUITE_P(All, ExitTest, ::testing::Range(0, 4),
                         [](const ::testing::TestParamInfo<int>& info) {
                           std::string n = kVariants[info.param].name;
                           return n.substr(0, n.size() - 1);
                         });

}  // namespace

// ---- Stress ---------------------------------------------------------------------------

namespace stress {

// The long-lived client counts per thread (handlers run on the calling thread,
// signal handlers included); churning clients count globally per attachment.
thread_local long t_entries = 0, t_exits = 0;
void SteadyEntry(padhook_call*, void*) { ++t_entries; }
void SteadyExit(padhook_call*, void*) { ++t_exits; }

std::atomic<int (*)(int, int)> g_add{nullptr};
std::atomic<long> g_signal_calls{0};
void OnSignal(int) {
  if (g_add.load()(1, 2) == 3) g_signal_calls.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace stress

// Threads that throw and catch, longjmp and take signals inside hooked
// functions, while clients with exit handlers come and go: the client
// attached throughout sees balanced entries and exits on every thread, a
// churning client never sees more exits than entries, and every result is
// the untraced one.
TEST(ExitStressTest, ExceptionsLongjmpAndSignalsWhileClientsComeAndGo) {
  using namespace stress;
  const Variant& v0 = kVariants[1];  // gcc -O2
  const Variant& v1 = kVariants[2];  // clang -O0
  g_add = v0.add;
  struct sigaction sa = {}, old = {};
  sa.sa_handler = OnSignal;
  sa.sa_flags = SA_RESTART;
  ASSERT_EQ(sigaction(SIGUSR1, &sa, &old), 0);
  std::vector<void*> functions;
  for (const Variant* v : {&v0, &v1}) {
    for (void* f : {Addr(v->add), Addr(v->depth), Addr(v->catch_below), Addr(v->throw_down),
                    Addr(v->jump_down), Addr(v->raise_inside)}) {
      functions.push_back(f);
    }
  }
  const uint64_t lost = padhook_exits_lost();
  std::atomic<bool> stop{false};
  std::atomic<long> wrong{0}, calls{0};
  constexpr int kWorkers = 3;
  long entries[kWorkers] = {}, exits[kWorkers] = {};
  {
    Attached steady(functions, stress::SteadyEntry, stress::SteadyExit);
    std::vector<std::thread> workers;
    for (int w = 0; w < kWorkers; ++w) {
      workers.emplace_back([&, w] {
        const Variant& v = w % 2 == 0 ? v0 : v1;
        while (!stop.load(std::memory_order_relaxed)) {
          int dtors = 0;
          if (v.catch_below(3, &dtors) != 43 || dtors != 4) wrong++;
          jmp_buf buf;
          if (setjmp(buf) == 0) v.jump_down(&buf, 2);
          if (v.depth(10) != 55) wrong++;
          if (v.raise_inside(SIGUSR1) != 5) wrong++;
          calls++;
        }
        if (v.add(1, 1) != 2) wrong++;  // pops the last longjmp's frames
        entries[w] = stress::t_entries;
        exits[w] = stress::t_exits;
      });
    }
    std::thread signaller([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        for (auto& t : workers) pthread_kill(t.native_handle(), SIGUSR1);
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    });
    long cycles = 0;
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(1500);
    while (std::chrono::steady_clock::now() < end) {
      Counter churn;
      {
        Attached a(functions, CountEntry, CountExit, &churn);
        std::this_thread::sleep_for(std::chrono::microseconds(300));
      }
      const int in = churn.entries.load(), out = churn.exits.load();
      EXPECT_LE(out, in) << "an exit without its entry, cycle " << cycles;
      ++cycles;
    }
    stop = true;
    signaller.join();
    for (auto& t : workers) t.join();
    EXPECT_GT(cycles, 10);
  }
  sigaction(SIGUSR1, &old, nullptr);
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GT(calls.load(), 100);
  EXPECT_GT(g_signal_calls.load(), 0);
  for (int w = 0; w < kWorkers; ++w) {
    EXPECT_GT(entries[w], 0);
    EXPECT_EQ(entries[w], exits[w]) << "worker " << w;
  }
  EXPECT_EQ(padhook_exits_lost(), lost);
}
