// Attaching handlers to live functions: the C API (padhook/padhook.h) and the
// C++ one (padhook/hooks.h) on real instrumented code built by both compilers
// in both layouts (fixtures/patch_targets.inc, four copies in this binary), in
// both write modes. What a handler sees and can change of a call, several
// clients on one function, all-or-nothing batches, the recursion guard,
// SIGTRAP chaining, and functions in a dlopen()ed library.
//
// ctest runs every test case in its own process (gtest_discover_tests), so each
// starts with unpatched code: in particular GCC's 1-byte NOP runs are still
// unconverted when a test starts.
#include <dlfcn.h>
#include <execinfo.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/ucontext.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "padhook/function_table.h"
#include "padhook/hooks.h"
#include "padhook/metadata.h"
#include "padhook/padhook.h"
#include "padhook/text_writer.h"
#include "patch/live_patcher.h"

#define PT_PREFIX gcc_plain_
#include "fixtures/patch_targets.inc"
#undef PT_PREFIX
#define PT_PREFIX gcc_cet_
#include "fixtures/patch_targets.inc"
#undef PT_PREFIX
#define PT_PREFIX clang_plain_
#include "fixtures/patch_targets.inc"
#undef PT_PREFIX
#define PT_PREFIX clang_cet_
#include "fixtures/patch_targets.inc"
#undef PT_PREFIX

namespace padhook {
namespace {

// ---- The four copies of the fixture functions --------------------------------

struct Variant {
  const char* name;  // the prefix without its trailing '_'
  bool gcc;          // built by g++: sites start as 1-byte NOP runs
  bool landing_pad;  // built with -fcf-protection=full: endbr64 at the entry
  int (*add)(int, int);
  long (*sum8)(long, long, long, long, long, long, long, long);
  double (*scale)(double, double);
  int (*vsum)(int, ...);
  int (*recurse)(int);
  int (*fault_prone)(int);
  int (*original)(int);
  int (*replacement)(int);
  int (*victim)(int);
  volatile int* fault_prone_runs;
  volatile int* original_runs;
};

#define PT_VARIANT(prefix, is_gcc, is_cet)                                                   \
  Variant {                                                                                  \
#prefix, is_gcc, is_cet, &prefix##_add, &prefix##_sum8, &prefix##_scale, &prefix##_vsum, \
        &prefix##_recurse, &prefix##_fault_prone, &prefix##_original, &prefix##_replacement, \
        &prefix##_victim, &prefix##_fault_prone_runs, &prefix##_original_runs                \
  }

const Variant kVariants[] = {
    PT_VARIANT(gcc_plain, true, false),
    PT_VARIANT(gcc_cet, true, true),
    PT_VARIANT(clang_plain, false, false),
    PT_VARIANT(clang_cet, false, true),
};
constexpr int kVariantCount = sizeof(kVariants) / sizeof(kVariants[0]);
constexpr size_t kFunctionsPerVariant = PT_FUNCTIONS_PER_COPY;

void* Addr(auto* fn) { return reinterpret_cast<void*>(fn); }

// ---- Bytes of code -------------------------------------------------------------

using Bytes5 = std::array<uint8_t, 5>;
const Bytes5 kNopRun = {0x90, 0x90, 0x90, 0x90, 0x90};  // GCC's site, and every empty slot
const Bytes5 kNop5 = {0x0f, 0x1f, 0x44, 0x00, 0x00};    // GCC's site once converted
// clang 14's site: nopl 8(%rax,%rax,1) (0f 1f 44 00 08); any 5-byte nopl disp8.
bool IsNopl5(const Bytes5& b) {
  return b[0] == 0x0f && b[1] == 0x1f && b[2] == 0x44 && b[3] == 0x00;
}
const uint8_t kEndbr64[] = {0xf3, 0x0f, 0x1e, 0xfa};

bool HasEndbr(const void* entry) { return std::memcmp(entry, kEndbr64, 4) == 0; }

uintptr_t SiteOf(const void* entry) {
  return reinterpret_cast<uintptr_t>(entry) + (HasEndbr(entry) ? 4 : 0);
}

Bytes5 Read5(uintptr_t at) {
  Bytes5 b;
  std::memcpy(b.data(), reinterpret_cast<const void*>(at), 5);
  return b;
}

Bytes5 SiteBytes(const void* entry) { return Read5(SiteOf(entry)); }
Bytes5 SlotBytes(const void* entry) { return Read5(reinterpret_cast<uintptr_t>(entry) - 5); }

// After the last detach a function's metadata entry stays cached ("dormant",
// src/metadata.cc): the slot keeps its index until the table is trimmed.
::testing::AssertionResult SlotDormantThenEmptyAfterTrim(
    std::initializer_list<const void*> entries) {
  size_t i = 0;
  for (const void* entry : entries) {
    if (SlotBytes(entry)[0] != 0xb8)
      return ::testing::AssertionFailure() << "no dormant index in slot " << i;
    ++i;
  }
  if (Status trimmed = MetadataTable::Process().Trim(); !trimmed.ok()) {
    return ::testing::AssertionFailure() << "Trim: " << trimmed.ToString();
  }
  i = 0;
  for (const void* entry : entries) {
    for (uint8_t b : SlotBytes(entry)) {
      if (b != 0x90)
        return ::testing::AssertionFailure() << "slot " << i << " not empty after Trim";
    }
    ++i;
  }
  return ::testing::AssertionSuccess();
}
::testing::AssertionResult SlotDormantThenEmptyAfterTrim(const void* entry) {
  return SlotDormantThenEmptyAfterTrim({entry});
}

uintptr_t PageOf(uintptr_t address) { return address & ~uintptr_t{4095}; }

std::string Hex(const Bytes5& b) {
  std::string s;
  char buf[4];
  for (uint8_t x : b) {
    std::snprintf(buf, sizeof(buf), "%02x ", x);
    s += buf;
  }
  return s;
}

// Where a patched site's call goes.
uintptr_t CallTarget(const void* entry) {
  const uintptr_t site = SiteOf(entry);
  int32_t rel;
  std::memcpy(&rel, reinterpret_cast<const void*>(site + 1), 4);
  return site + 5 + static_cast<intptr_t>(rel);
}

uint64_t Gettid() { return static_cast<uint64_t>(syscall(SYS_gettid)); }

// Calls through helpers that are not tail calls, so a handler's caller is
// known to be inside them.
volatile long g_sink;
__attribute__((noinline)) int CallAdd(int (*fn)(int, int), int a, int b) {
  const int r = fn(a, b);
  g_sink = r;
  return r;
}
constexpr uintptr_t kHelperMaxSize = 256;

// ---- Handlers -----------------------------------------------------------------

struct Seen {
  std::atomic<int> count{0};
  void* function = nullptr;
  void* caller = nullptr;
  uint64_t thread = 0;
  uint32_t index = 0;
  uint64_t args[8] = {};
};

void Record(padhook_call* c, void* data) {
  auto* s = static_cast<Seen*>(data);
  s->function = padhook_call_function(c);
  s->caller = padhook_call_caller(c);
  s->thread = padhook_call_thread(c);
  s->index = padhook_call_function_index(c);
  for (unsigned i = 0; i < 6; ++i) s->args[i] = padhook_call_arg(c, i);
  s->count.fetch_add(1);
}

void Count(padhook_call*, void* data) { static_cast<std::atomic<int>*>(data)->fetch_add(1); }

padhook_hooks HooksFor(padhook_handler h, void* data) { return padhook_hooks{h, nullptr, data, 0}; }

// ---- Fixtures -------------------------------------------------------------------

using Param = std::tuple<int, WriteMode>;

std::string ParamName(const ::testing::TestParamInfo<Param>& info) {
  return std::string(kVariants[std::get<0>(info.param)].name) + "_" +
         WriteModeName(std::get<1>(info.param));
}

class PatchTest : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    TextWriter::Process().set_mode(std::get<1>(GetParam()));
    // Scan now, before any test changes a byte: the table classifies every
    // site as the compiler emitted it.
    ASSERT_TRUE(FunctionTable::Process().Refresh().ok());
    const Variant& v = V();
    ASSERT_EQ(HasEndbr(Addr(v.add)), v.landing_pad) << v.name;
  }
  const Variant& V() const { return kVariants[std::get<0>(GetParam())]; }
  bool strict() const { return std::get<1>(GetParam()) == WriteMode::kStrict; }
  // A site as the compiler emitted it: GCC's run of 1-byte NOPs, or clang's
  // single 5-byte NOP.
  ::testing::AssertionResult IsFreshSite(const Bytes5& b) const {
    if (V().gcc ? b == kNopRun : IsNopl5(b)) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "not the compiler's site: " << Hex(b);
  }
  // The bytes an unpatched site holds after its first patch: GCC's NOP run is
  // converted to one 5-byte NOP once, clang's NOP is restored exactly.
  Bytes5 Unpatched(const Bytes5& fresh) const { return V().gcc ? kNop5 : fresh; }
};

INSTANTIATE_TEST_SUITE_P(All, PatchTest,
                         ::testing::Combine(::testing::Range(0, kVariantCount),
                                            ::testing::Values(WriteMode::kFast,
                                                              WriteMode::kStrict)),
                         ParamName);

// ---- 1. Attach by address ---------------------------------------------------------

TEST_P(PatchTest, AttachByAddressSeesTheCallAndDetachRestoresTheSite) {
  const Variant& v = V();
  void* fn = Addr(v.add);
  const Bytes5 original = SiteBytes(fn);
  ASSERT_TRUE(IsFreshSite(original));
  ASSERT_EQ(SlotBytes(fn), kNopRun);

  Seen seen;
  padhook_hooks hooks = HooksFor(Record, &seen);
  padhook_attachment* a = nullptr;
  ASSERT_EQ(padhook_attach_address(fn, &hooks, &a), PADHOOK_OK) << padhook_last_error();
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(padhook_attachment_size(a), 1u);
  EXPECT_EQ(SiteBytes(fn)[0], 0xe8) << "the site holds a call: " << Hex(SiteBytes(fn));
  EXPECT_EQ(SlotBytes(fn)[0], 0xb8) << "the slot holds the metadata index";
  const intptr_t distance = static_cast<intptr_t>(CallTarget(fn) - SiteOf(fn));
  EXPECT_LT(std::abs(distance), intptr_t{1} << 31);

  for (int i = 0; i < 3; ++i) EXPECT_EQ(CallAdd(v.add, 2, i), 2 + i);
  EXPECT_EQ(seen.count.load(), 3);
  EXPECT_EQ(seen.function, fn);
  const auto caller = reinterpret_cast<uintptr_t>(seen.caller);
  const auto helper = reinterpret_cast<uintptr_t>(&CallAdd);
  EXPECT_NE(seen.caller, nullptr);
  EXPECT_GT(caller, helper);
  EXPECT_LT(caller, helper + kHelperMaxSize) << "the caller is CallAdd";
  EXPECT_EQ(seen.thread, Gettid());
  // The handler's index is the one in the padding, and the one the C API gives.
  uint32_t slot_index;
  std::memcpy(&slot_index, SlotBytes(fn).data() + 1, sizeof(slot_index));
  EXPECT_EQ(seen.index, slot_index);
  EXPECT_EQ(padhook_function_index(fn), int64_t{slot_index});
  EXPECT_EQ(seen.args[0], 2u);
  EXPECT_EQ(seen.args[1], 2u);

  ASSERT_EQ(padhook_detach(a), PADHOOK_OK) << padhook_last_error();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(CallAdd(v.add, 5, i), 5 + i);
  EXPECT_EQ(seen.count.load(), 3) << "a handler ran after detach";
  const Bytes5 after_first = SiteBytes(fn);
  EXPECT_EQ(after_first, Unpatched(original)) << Hex(after_first);  // GCC: converted once
  const Bytes5 dormant_slot = SlotBytes(fn);
  EXPECT_EQ(dormant_slot[0], 0xb8) << "the metadata entry stays cached (dormant)";

  // Protocol C converts every NOP run on the pages it patches: the sites of
  // the other functions there too, and a later attach stops no thread again.
  // Beyond those pages nothing is converted (nor copied on write).
  const uint64_t conversions = patch::Stats().stop_the_world;
  EXPECT_EQ(conversions, v.gcc ? 1u : 0u);
  struct Other {
    void* fn;
    std::function<bool()> call;  // true when it returned the right value
  };
  const Other others[] = {
      {Addr(v.sum8), [&v] { return v.sum8(1, 1, 1, 1, 1, 1, 1, 1) == 36; }},
      {Addr(v.scale), [&v] { return v.scale(2.0, 0.5) == 1.0; }},
      {Addr(v.recurse), [&v] { return v.recurse(3) == 6; }},
      {Addr(v.fault_prone), [&v] { return v.fault_prone(2) == 7; }},
      {Addr(v.replacement), [&v] { return v.replacement(1) == 10; }},
      {Addr(v.victim), [&v] { return v.victim(6) == 1; }},
  };
  const Other* neighbour = nullptr;
  for (const Other& other : others) {
    const Bytes5 bytes = SiteBytes(other.fn);
    if (PageOf(SiteOf(other.fn)) == PageOf(SiteOf(fn)) ||
        PageOf(SiteOf(other.fn) + 4) == PageOf(SiteOf(fn))) {
      EXPECT_TRUE(v.gcc ? bytes == kNop5 : IsNopl5(bytes)) << Hex(bytes);
      neighbour = &other;
    } else if (PageOf(SiteOf(other.fn)) != PageOf(SiteOf(fn) + 4)) {
      EXPECT_TRUE(IsFreshSite(bytes)) << "a site on another page was converted";
    }
  }
  if (neighbour != nullptr) {
    std::atomic<int> neighbour_calls{0};
    padhook_hooks neighbour_hooks = HooksFor(Count, &neighbour_calls);
    ASSERT_EQ(padhook_attach_address(neighbour->fn, &neighbour_hooks, &a), PADHOOK_OK)
        << padhook_last_error();
    EXPECT_TRUE(neighbour->call());
    EXPECT_GE(neighbour_calls.load(), 1);
    ASSERT_EQ(padhook_detach(a), PADHOOK_OK) << padhook_last_error();
    EXPECT_EQ(patch::Stats().stop_the_world, conversions);
  } else {
    RecordProperty("neighbour_on_the_page", "none");
  }

  // A second round leaves exactly the bytes of the first detach, and writes
  // nothing but the site: the dormant metadata entry is reused as it is.
  const uint64_t writes = TextWriter::Process().stats().writes;
  ASSERT_EQ(padhook_attach_address(fn, &hooks, &a), PADHOOK_OK) << padhook_last_error();
  EXPECT_EQ(SlotBytes(fn), dormant_slot);
  EXPECT_EQ(CallAdd(v.add, 1, 1), 2);
  EXPECT_EQ(seen.count.load(), 4);
  ASSERT_EQ(padhook_detach(a), PADHOOK_OK) << padhook_last_error();
  EXPECT_EQ(TextWriter::Process().stats().writes, writes + (strict() ? 6 : 2))
      << "one store per way (3 with int3)";
  EXPECT_EQ(SiteBytes(fn), after_first);
  EXPECT_TRUE(SlotDormantThenEmptyAfterTrim(fn));
  EXPECT_EQ(CallAdd(v.add, 1, 1), 2);
  EXPECT_EQ(seen.count.load(), 4);

  // Trimmed: the next attach publishes a new index, and it all works again.
  ASSERT_EQ(padhook_attach_address(fn, &hooks, &a), PADHOOK_OK) << padhook_last_error();
  EXPECT_EQ(SlotBytes(fn)[0], 0xb8);
  EXPECT_EQ(CallAdd(v.add, 2, 2), 4);
  EXPECT_EQ(seen.count.load(), 5);
  ASSERT_EQ(padhook_detach(a), PADHOOK_OK) << padhook_last_error();
  EXPECT_TRUE(SlotDormantThenEmptyAfterTrim(fn));
}

// ---- 2. Several clients on one function --------------------------------------------

struct Client {
  int id;
  int count = 0;
  std::vector<int>* order;
};

void ClientHandler(padhook_call*, void* data) {
  auto* c = static_cast<Client*>(data);
  ++c->count;
  c->order->push_back(c->id);
}

TEST_P(PatchTest, SeveralClientsRunInAttachOrderAndDetachIndependently) {
  const Variant& v = V();
  void* fn = Addr(v.scale);
  const Bytes5 fresh = SiteBytes(fn);
  std::vector<int> order;
  Client clients[3] = {{1, 0, &order}, {2, 0, &order}, {3, 0, &order}};
  padhook_attachment* a[3] = {};
  for (int i = 0; i < 3; ++i) {
    padhook_hooks hooks = HooksFor(ClientHandler, &clients[i]);
    ASSERT_EQ(padhook_attach_address(fn, &hooks, &a[i]), PADHOOK_OK) << padhook_last_error();
  }
  EXPECT_EQ(v.scale(2.0, 4.0), 8.0);
  EXPECT_EQ(v.scale(3.0, 4.0), 12.0);
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3, 1, 2, 3}));
  for (const Client& c : clients) EXPECT_EQ(c.count, 2) << c.id;

  order.clear();
  ASSERT_EQ(padhook_detach(a[1]), PADHOOK_OK) << padhook_last_error();
  EXPECT_EQ(SiteBytes(fn)[0], 0xe8) << "still patched for the other two";
  EXPECT_EQ(v.scale(1.5, 2.0), 3.0);
  EXPECT_EQ(order, (std::vector<int>{1, 3}));
  EXPECT_EQ(clients[0].count, 3);
  EXPECT_EQ(clients[1].count, 2);
  EXPECT_EQ(clients[2].count, 3);

  order.clear();
  ASSERT_EQ(padhook_detach(a[0]), PADHOOK_OK) << padhook_last_error();
  EXPECT_EQ(v.scale(1.0, 2.0), 2.0);
  EXPECT_EQ(order, (std::vector<int>{3}));
  ASSERT_EQ(padhook_detach(a[2]), PADHOOK_OK) << padhook_last_error();
  order.clear();
  EXPECT_EQ(v.scale(1.0, 3.0), 3.0);
  EXPECT_TRUE(order.empty());
  EXPECT_EQ(SiteBytes(fn), Unpatched(fresh)) << Hex(SiteBytes(fn)) << " (was " << Hex(fresh) << ")";
  EXPECT_TRUE(SlotDormantThenEmptyAfterTrim(fn));
}

// ---- 3. Skip ------------------------------------------------------------------------

void SkipThirteen(padhook_call* c, void* data) {
  static_cast<std::atomic<int>*>(data)->fetch_add(1);
  if (static_cast<int>(padhook_call_arg(c, 0)) == 13) padhook_call_skip(c, 1234);
}

TEST_P(PatchTest, SkipReturnsTheHandlersValueWithoutRunningTheBody) {
  const Variant& v = V();
  std::atomic<int> calls{0};
  padhook_hooks hooks = HooksFor(SkipThirteen, &calls);
  padhook_attachment* a = nullptr;
  ASSERT_EQ(padhook_attach_address(Addr(v.fault_prone), &hooks, &a), PADHOOK_OK)
      << padhook_last_error();
  const int runs = *v.fault_prone_runs;
  EXPECT_EQ(v.fault_prone(13), 1234);
  EXPECT_EQ(*v.fault_prone_runs, runs) << "the body ran";
  EXPECT_EQ(v.fault_prone(2), 7);
  EXPECT_EQ(*v.fault_prone_runs, runs + 1);
  EXPECT_EQ(v.fault_prone(13), 1234);
  EXPECT_EQ(v.fault_prone(-4), -11);
  EXPECT_EQ(*v.fault_prone_runs, runs + 2);
  EXPECT_EQ(calls.load(), 4);
  ASSERT_EQ(padhook_detach(a), PADHOOK_OK) << padhook_last_error();
  EXPECT_EQ(v.fault_prone(13), 40) << "detached: the body runs again";
  EXPECT_EQ(*v.fault_prone_runs, runs + 3);
}

// ---- 4. Divert ----------------------------------------------------------------------

struct DivertData {
  void* replacement;
  bool rewrite;  // add 1 to the argument first
  int calls = 0;
};

void DivertHandler(padhook_call* c, void* data) {
  auto* d = static_cast<DivertData*>(data);
  ++d->calls;
  if (d->rewrite) padhook_call_set_arg(c, 0, padhook_call_arg(c, 0) + 1);
  padhook_call_divert(c, d->replacement);
}

TEST_P(PatchTest, DivertRunsTheReplacementWithTheArguments) {
  const Variant& v = V();
  for (bool rewrite : {false, true}) {
    SCOPED_TRACE(rewrite ? "argument rewritten" : "argument as passed");
    DivertData d{Addr(v.replacement), rewrite};
    padhook_hooks hooks = HooksFor(DivertHandler, &d);
    padhook_attachment* a = nullptr;
    ASSERT_EQ(padhook_attach_address(Addr(v.original), &hooks, &a), PADHOOK_OK)
        << padhook_last_error();
    const int runs = *v.original_runs;
    for (int x : {0, 5, -9, 1000}) {
      EXPECT_EQ(v.original(x), v.replacement(rewrite ? x + 1 : x)) << x;
    }
    EXPECT_EQ(*v.original_runs, runs) << "the original body ran";
    EXPECT_EQ(d.calls, 4);
    ASSERT_EQ(padhook_detach(a), PADHOOK_OK) << padhook_last_error();
    EXPECT_EQ(v.original(5), 11);
    EXPECT_EQ(*v.original_runs, runs + 1);
  }
}

// ---- 4b. Clients stay independent of each other's skip and divert ------------------

void SkipAlways(padhook_call* c, void* data) {
  static_cast<std::atomic<int>*>(data)->fetch_add(1);
  padhook_call_skip(c, 777);
}

TEST_P(PatchTest, EveryClientRunsEvenAfterAnEarlierOneSkips) {
  const Variant& v = V();
  std::atomic<int> skipper{0}, counter{0};
  padhook_hooks skip = HooksFor(SkipAlways, &skipper);
  padhook_hooks count = HooksFor(Count, &counter);
  padhook_attachment* a = nullptr;
  padhook_attachment* b = nullptr;
  ASSERT_EQ(padhook_attach_address(Addr(v.fault_prone), &skip, &a), PADHOOK_OK)
      << padhook_last_error();
  ASSERT_EQ(padhook_attach_address(Addr(v.fault_prone), &count, &b), PADHOOK_OK)
      << padhook_last_error();
  const int runs = *v.fault_prone_runs;
  EXPECT_EQ(v.fault_prone(2), 777);
  EXPECT_EQ(v.fault_prone(3), 777);
  EXPECT_EQ(*v.fault_prone_runs, runs) << "the body ran";
  EXPECT_EQ(skipper.load(), 2);
  EXPECT_EQ(counter.load(), 2) << "the second client did not see calls the first one skipped";
  ASSERT_EQ(padhook_detach(a), PADHOOK_OK) << padhook_last_error();
  EXPECT_EQ(v.fault_prone(2), 7);
  EXPECT_EQ(counter.load(), 3);
  ASSERT_EQ(padhook_detach(b), PADHOOK_OK) << padhook_last_error();
}

// ---- 4c. Vector registers ------------------------------------------------------------

// A client that promises not to touch vector registers: the trampoline then
// does not save xmm0-7, and the function must still get its doubles.
__attribute__((target("general-regs-only"))) void CountNoVector(padhook_call*, void* data) {
  __atomic_fetch_add(static_cast<int*>(data), 1, __ATOMIC_RELAXED);
}

// A client that makes no promise and clobbers every argument register.
void ClobberVectors(padhook_call*, void* data) {
  ++*static_cast<int*>(data);
  asm volatile(
      "xorps %%xmm0, %%xmm0\n xorps %%xmm1, %%xmm1\n xorps %%xmm2, %%xmm2\n xorps %%xmm3, %%xmm3\n"
      "xorps %%xmm4, %%xmm4\n xorps %%xmm5, %%xmm5\n xorps %%xmm6, %%xmm6\n xorps %%xmm7, %%xmm7" ::
          : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7");
}

TEST_P(PatchTest, VectorRegistersAreSavedUnlessEveryClientPromisesNotToTouchThem) {
  const Variant& v = V();
  int quiet = 0, loud = 0;
  padhook_hooks no_vector = {CountNoVector, nullptr, &quiet, PADHOOK_HOOKS_NO_VECTOR};
  padhook_hooks clobber = HooksFor(ClobberVectors, &loud);
  padhook_attachment* a = nullptr;
  padhook_attachment* b = nullptr;
  ASSERT_EQ(padhook_attach_address(Addr(v.scale), &no_vector, &a), PADHOOK_OK)
      << padhook_last_error();
  EXPECT_EQ(v.scale(2.5, -3.0), -7.5);
  EXPECT_EQ(v.vsum(1 | (2 << 8), 1, 1.5, 2.0), 1 + 3);
  EXPECT_EQ(quiet, 1);
  ASSERT_EQ(padhook_attach_address(Addr(v.scale), &clobber, &b), PADHOOK_OK)
      << padhook_last_error();
  EXPECT_EQ(v.scale(2.5, -3.0), -7.5) << "xmm0/xmm1 were not restored";
  EXPECT_EQ(quiet, 2);
  EXPECT_EQ(loud, 1);
  ASSERT_EQ(padhook_detach(a), PADHOOK_OK) << padhook_last_error();
  EXPECT_EQ(v.scale(4.0, 0.5), 2.0);
  EXPECT_EQ(loud, 2);
  ASSERT_EQ(padhook_detach(b), PADHOOK_OK) << padhook_last_error();
}

// ---- 4d. Unwinding through the trampoline ----------------------------------------------

struct WalkData {
  uintptr_t function = 0;      // the hooked function's entry
  bool skip = false;           // skip the call before walking
  int frames_in_function = 0;  // frames whose pc lies in the first bytes of the function
  int depth = 0;
};

void WalkStack(padhook_call* c, void* data) {
  auto* d = static_cast<WalkData*>(data);
  if (d->skip) padhook_call_skip(c, 5);
  void* pcs[64];
  d->depth = backtrace(pcs, 64);
  d->frames_in_function = 0;
  for (int i = 0; i < d->depth; ++i) {
    const auto pc = reinterpret_cast<uintptr_t>(pcs[i]);
    if (pc > d->function && pc <= d->function + 16) ++d->frames_in_function;
  }
}

TEST_P(PatchTest, BacktraceFromAHandlerWalksThroughTheTrampolineToTheCaller) {
  const Variant& v = V();
  WalkData d;
  d.function = reinterpret_cast<uintptr_t>(Addr(v.fault_prone));
  padhook_hooks hooks = HooksFor(WalkStack, &d);
  padhook_attachment* a = nullptr;
  ASSERT_EQ(padhook_attach_address(Addr(v.fault_prone), &hooks, &a), PADHOOK_OK)
      << padhook_last_error();
  EXPECT_EQ(v.fault_prone(2), 7);
  EXPECT_EQ(d.frames_in_function, 1) << "the hooked function is not on the walked stack";
  // The test's own frames (and main) are below it: the walk got past the
  // function's frame into its callers.
  EXPECT_GE(d.depth, 6);
  d.skip = true;  // continuation = padhook_skip_return: still walkable
  EXPECT_EQ(v.fault_prone(2), 5);
  EXPECT_EQ(d.frames_in_function, 0);
  EXPECT_GE(d.depth, 6);
  ASSERT_EQ(padhook_detach(a), PADHOOK_OK) << padhook_last_error();
}

// ---- 5. Arguments -------------------------------------------------------------------

struct ArgData {
  int calls = 0;
  uint64_t ints[8] = {};
  double doubles[8] = {};
  unsigned vector_count = ~0u;
};

void Sum8Handler(padhook_call* c, void* data) {
  auto* d = static_cast<ArgData*>(data);
  ++d->calls;
  for (unsigned i = 0; i < 8; ++i) d->ints[i] = padhook_call_arg(c, i);
  padhook_call_set_arg(c, 0, 1000);  // a register
  padhook_call_set_arg(c, 7, 100);   // the second stack argument
}

void ScaleHandler(padhook_call* c, void* data) {
  auto* d = static_cast<ArgData*>(data);
  ++d->calls;
  d->doubles[0] = padhook_call_arg_double(c, 0);
  d->doubles[1] = padhook_call_arg_double(c, 1);
  padhook_call_set_arg_double(c, 1, 10.0);
}

void VsumHandler(padhook_call* c, void* data) {
  auto* d = static_cast<ArgData*>(data);
  ++d->calls;
  d->vector_count = padhook_call_vector_count(c);
  for (unsigned i = 0; i < 6; ++i) d->ints[i] = padhook_call_arg(c, i);
  for (unsigned i = 0; i < 8; ++i) d->doubles[i] = padhook_call_arg_double(c, i);
}

TEST_P(PatchTest, HandlersReadAndRewriteArguments) {
  const Variant& v = V();
  {
    ArgData d;
    padhook_hooks hooks = HooksFor(Sum8Handler, &d);
    padhook_attachment* a = nullptr;
    ASSERT_EQ(padhook_attach_address(Addr(v.sum8), &hooks, &a), PADHOOK_OK) << padhook_last_error();
    const long r = v.sum8(1, 2, 3, 4, 5, 6, 7, 8);
    EXPECT_EQ(d.calls, 1);
    for (unsigned i = 0; i < 8; ++i) EXPECT_EQ(d.ints[i], i + 1) << "argument " << i;
    EXPECT_EQ(r, 1000 + 2 * 2 + 3 * 3 + 4 * 4 + 5 * 5 + 6 * 6 + 7 * 7 + 8 * 100);
    // Negative values, and the caller's own copies are its own business: a
    // second call sees what it passes.
    EXPECT_EQ(v.sum8(-1, -2, -3, -4, -5, -6, -7, -8),
              1000 - 2 * 2 - 3 * 3 - 4 * 4 - 5 * 5 - 6 * 6 - 7 * 7 + 8 * 100);
    EXPECT_EQ(static_cast<long>(d.ints[6]), -7);
    EXPECT_EQ(static_cast<long>(d.ints[7]), -8);
    ASSERT_EQ(padhook_detach(a), PADHOOK_OK) << padhook_last_error();
    EXPECT_EQ(v.sum8(1, 1, 1, 1, 1, 1, 1, 1), 36);
  }
  {
    ArgData d;
    padhook_hooks hooks = HooksFor(ScaleHandler, &d);
    padhook_attachment* a = nullptr;
    ASSERT_EQ(padhook_attach_address(Addr(v.scale), &hooks, &a), PADHOOK_OK)
        << padhook_last_error();
    EXPECT_EQ(v.scale(2.5, -3.0), 25.0);
    EXPECT_EQ(d.doubles[0], 2.5);
    EXPECT_EQ(d.doubles[1], -3.0);
    ASSERT_EQ(padhook_detach(a), PADHOOK_OK) << padhook_last_error();
    EXPECT_EQ(v.scale(2.5, -3.0), -7.5);
  }
  {
    ArgData d;
    padhook_hooks hooks = HooksFor(VsumHandler, &d);
    padhook_attachment* a = nullptr;
    ASSERT_EQ(padhook_attach_address(Addr(v.vsum), &hooks, &a), PADHOOK_OK) << padhook_last_error();
    // Two ints, three doubles: al = 3.
    EXPECT_EQ(v.vsum(2 | (3 << 8), 10, 20, 1.5, 2.5, 3.25), 30 + 7);
    EXPECT_EQ(d.vector_count, 3u);
    EXPECT_EQ(d.ints[0], 2u | (3u << 8));
    EXPECT_EQ(d.ints[1], 10u);
    EXPECT_EQ(d.ints[2], 20u);
    EXPECT_EQ(d.doubles[0], 1.5);
    EXPECT_EQ(d.doubles[1], 2.5);
    EXPECT_EQ(d.doubles[2], 3.25);
    // Only ints: al = 0.
    EXPECT_EQ(v.vsum(4, 1, 2, 3, 4), 10);
    EXPECT_EQ(d.vector_count, 0u);
    EXPECT_EQ(d.ints[4], 4u);
    // Six doubles after one int.
    EXPECT_EQ(v.vsum(1 | (6 << 8), 7, 1.0, 2.0, 3.0, 4.0, 5.0, 6.5), 7 + 21);
    EXPECT_EQ(d.vector_count, 6u);
    EXPECT_EQ(d.doubles[5], 6.5);
    EXPECT_EQ(d.calls, 3);
    ASSERT_EQ(padhook_detach(a), PADHOOK_OK) << padhook_last_error();
    EXPECT_EQ(v.vsum(1 | (1 << 8), 1, 2.0), 3);
    EXPECT_EQ(d.calls, 3);
  }
}

// A recursive function: every level is a hooked call of its own (the handler
// is not running while the body recurses, so the recursion guard stays out).
TEST_P(PatchTest, EveryLevelOfARecursiveFunctionRunsTheHandler) {
  const Variant& v = V();
  std::atomic<int> calls{0};
  padhook_hooks hooks = HooksFor(Count, &calls);
  padhook_attachment* a = nullptr;
  ASSERT_EQ(padhook_attach_address(Addr(v.recurse), &hooks, &a), PADHOOK_OK)
      << padhook_last_error();
  const uint64_t skips = padhook_recursion_skips();
  EXPECT_EQ(v.recurse(5), 15);
  EXPECT_EQ(calls.load(), 6);  // n = 5 .. 0
  EXPECT_EQ(v.recurse(100), 5050);
  EXPECT_EQ(calls.load(), 6 + 101);
  EXPECT_EQ(padhook_recursion_skips(), skips);
  ASSERT_EQ(padhook_detach(a), PADHOOK_OK) << padhook_last_error();
  EXPECT_EQ(v.recurse(5), 15);
  EXPECT_EQ(calls.load(), 107);
}

// ---- 6. By glob and by name --------------------------------------------------------

TEST_P(PatchTest, AttachByGlobAndByName) {
  const Variant& v = V();
  std::atomic<int> calls{0};
  padhook_hooks hooks = HooksFor(Count, &calls);
  const std::string glob = std::string(v.name) + "_*";
  padhook_attachment* a = nullptr;
  ASSERT_EQ(padhook_attach_pattern(glob.c_str(), &hooks, &a), PADHOOK_OK) << padhook_last_error();
  EXPECT_EQ(padhook_attachment_size(a), kFunctionsPerVariant);
  EXPECT_EQ(v.add(1, 2), 3);
  EXPECT_EQ(v.scale(2.0, 2.0), 4.0);
  EXPECT_EQ(v.victim(10), 5);
  EXPECT_EQ(calls.load(), 3);
  // Another copy's functions are not covered.
  const Variant& other = kVariants[(std::get<0>(GetParam()) + 1) % kVariantCount];
  EXPECT_EQ(other.add(1, 2), 3);
  EXPECT_EQ(calls.load(), 3);
  ASSERT_EQ(padhook_detach(a), PADHOOK_OK) << padhook_last_error();
  EXPECT_EQ(v.add(1, 2), 3);
  EXPECT_EQ(calls.load(), 3);

  const std::string name = std::string(v.name) + "_add";
  ASSERT_EQ(padhook_attach_name(name.c_str(), &hooks, &a), PADHOOK_OK) << padhook_last_error();
  EXPECT_EQ(padhook_attachment_size(a), 1u);
  EXPECT_EQ(v.add(4, 5), 9);
  EXPECT_EQ(v.scale(1.0, 1.0), 1.0);
  EXPECT_EQ(calls.load(), 4);
  ASSERT_EQ(padhook_detach(a), PADHOOK_OK) << padhook_last_error();

  const std::string nothing = std::string(v.name) + "_no_such_function_*";
  a = reinterpret_cast<padhook_attachment*>(0x1);
  EXPECT_EQ(padhook_attach_pattern(nothing.c_str(), &hooks, &a), PADHOOK_ENOTFOUND);
  EXPECT_EQ(a, nullptr);
  EXPECT_NE(std::string(padhook_last_error()).find(nothing), std::string::npos)
      << padhook_last_error();
  const std::string no_name = std::string(v.name) + "_addd";
  EXPECT_EQ(padhook_attach_name(no_name.c_str(), &hooks, &a), PADHOOK_ENOTFOUND);
  EXPECT_NE(std::string(padhook_last_error()).find(no_name), std::string::npos)
      << padhook_last_error();
  EXPECT_EQ(calls.load(), 4);
}

// ---- 7. All or nothing -----------------------------------------------------------------

TEST_P(PatchTest, ABatchWithOneForeignSiteChangesNothing) {
  const Variant& v = V();
  void* victim = Addr(v.victim);
  void* ok[] = {Addr(v.add), Addr(v.scale)};
  void* batch[] = {ok[0], ok[1], victim};
  Bytes5 fresh[3];
  for (int i = 0; i < 3; ++i) fresh[i] = SiteBytes(batch[i]);
  Bytes5 sites[2], slots[2];
  for (int i = 0; i < 2; ++i) {
    sites[i] = SiteBytes(ok[i]);
    slots[i] = SlotBytes(ok[i]);
    ASSERT_EQ(slots[i], kNopRun);
  }
  const TextWriter::Stats writer_before = TextWriter::Process().stats();

  // Someone else's breakpoint on victim's site.
  const uintptr_t vsite = SiteOf(victim);
  const uint8_t first = *reinterpret_cast<const uint8_t*>(vsite);
  const uint8_t int3 = 0xcc;
  const CodeWrite corrupt = CodeWrite::Make(vsite, {&first, 1}, {&int3, 1});
  ASSERT_TRUE(TextWriter::Process().Apply({&corrupt, 1}).ok());
  const Bytes5 victim_site = SiteBytes(victim);

  std::atomic<int> calls{0};
  padhook_hooks hooks = HooksFor(Count, &calls);
  padhook_attachment* a = reinterpret_cast<padhook_attachment*>(0x1);
  EXPECT_EQ(padhook_attach_addresses(batch, 3, &hooks, &a), PADHOOK_EUNEXPECTED)
      << padhook_last_error();
  EXPECT_EQ(a, nullptr);
  EXPECT_STRNE(padhook_last_error(), "");
  for (int i = 0; i < 2; ++i) {
    // GCC's NOP runs of the module were converted (protocol C) before the
    // batch failed; the conversion is permanent by design (live_patcher.cc).
    EXPECT_EQ(SiteBytes(ok[i]), Unpatched(sites[i])) << i << ": " << Hex(SiteBytes(ok[i]));
    EXPECT_EQ(SlotBytes(ok[i]), kNopRun) << i << ": " << Hex(SlotBytes(ok[i]));
  }
  EXPECT_EQ(SiteBytes(victim), victim_site) << "padhook wrote over a foreign byte";
  EXPECT_EQ(SlotBytes(victim), kNopRun);
  EXPECT_EQ(v.add(3, 4), 7);
  EXPECT_EQ(v.scale(3.0, 4.0), 12.0);
  EXPECT_EQ(calls.load(), 0) << "a handler of the failed batch ran";
  EXPECT_GT(TextWriter::Process().stats().writes, writer_before.writes + 1) << "nothing was tried";

  const CodeWrite restore = CodeWrite::Make(vsite, {&int3, 1}, {&first, 1});
  ASSERT_TRUE(TextWriter::Process().Apply({&restore, 1}).ok());

  // Nothing was left half attached: all three attach and detach cleanly now.
  ASSERT_EQ(padhook_attach_addresses(batch, 3, &hooks, &a), PADHOOK_OK) << padhook_last_error();
  EXPECT_EQ(padhook_attachment_size(a), 3u);
  EXPECT_EQ(v.add(3, 4), 7);
  EXPECT_EQ(v.victim(3), -2);
  EXPECT_EQ(calls.load(), 2);
  ASSERT_EQ(padhook_detach(a), PADHOOK_OK) << padhook_last_error();
  for (int i = 0; i < 3; ++i) {
    void* f = batch[i];
    EXPECT_EQ(SiteBytes(f), Unpatched(fresh[i])) << i << ": " << Hex(SiteBytes(f));
  }
  EXPECT_TRUE(SlotDormantThenEmptyAfterTrim({batch[0], batch[1], batch[2]}));
}

// ---- 8. Recursion guard ------------------------------------------------------------------

struct GuardData {
  const Variant* v;
  int add_calls = 0;
  int scale_calls = 0;
  int inner_add = 0;
  double inner_scale = 0;
};

void GuardHandler(padhook_call* c, void* data) {
  auto* d = static_cast<GuardData*>(data);
  if (padhook_call_function(c) == Addr(d->v->scale)) {
    ++d->scale_calls;
    return;
  }
  ++d->add_calls;
  d->inner_add = d->v->add(40, 2);  // hooked: its handlers are skipped
  d->inner_scale = d->v->scale(1.5, 4.0);
}

TEST_P(PatchTest, AHookedCallFromAHandlerSkipsTheHandlers) {
  const Variant& v = V();
  GuardData d{&v};
  padhook_hooks hooks = HooksFor(GuardHandler, &d);
  void* both[] = {Addr(v.add), Addr(v.scale)};
  padhook_attachment* a = nullptr;
  ASSERT_EQ(padhook_attach_addresses(both, 2, &hooks, &a), PADHOOK_OK) << padhook_last_error();
  const uint64_t skips = padhook_recursion_skips();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(v.add(i, 10), i + 10);
  EXPECT_EQ(d.add_calls, 3);
  EXPECT_EQ(d.scale_calls, 0) << "scale's handler ran from inside add's";
  EXPECT_EQ(d.inner_add, 42);
  EXPECT_EQ(d.inner_scale, 6.0);
  EXPECT_EQ(padhook_recursion_skips(), skips + 6);
  // Outside a handler, scale runs its handler as usual.
  EXPECT_EQ(v.scale(2.0, 2.0), 4.0);
  EXPECT_EQ(d.scale_calls, 1);
  EXPECT_EQ(padhook_recursion_skips(), skips + 6);
  ASSERT_EQ(padhook_detach(a), PADHOOK_OK) << padhook_last_error();
}

// ---- 10. Errors ----------------------------------------------------------------------------

struct DetachFromInside {
  padhook_attachment* self = nullptr;
  int result = 1;
  int calls = 0;
};

void DetachSelf(padhook_call*, void* data) {
  auto* d = static_cast<DetachFromInside*>(data);
  ++d->calls;
  if (d->self != nullptr) d->result = padhook_detach(d->self);
}

void Nop(padhook_call*, void*) {}

TEST_P(PatchTest, ErrorsAreReportedWithTheirCodes) {
  const Variant& v = V();
  void* fn = Addr(v.add);
  padhook_attachment* a = nullptr;
  padhook_hooks none = {nullptr, nullptr, nullptr, 0};
  EXPECT_EQ(padhook_attach_address(fn, &none, &a), PADHOOK_EINVAL);
  padhook_hooks hooks = HooksFor(Nop, nullptr);
  EXPECT_EQ(padhook_attach_address(fn, nullptr, &a), PADHOOK_EINVAL);
  EXPECT_EQ(padhook_attach_address(nullptr, &hooks, &a), PADHOOK_EINVAL);
  EXPECT_EQ(padhook_attach_address(fn, &hooks, nullptr), PADHOOK_EINVAL);
  EXPECT_EQ(padhook_attach_pattern(nullptr, &hooks, &a), PADHOOK_EINVAL);
  EXPECT_EQ(padhook_attach_name(nullptr, &hooks, &a), PADHOOK_EINVAL);
  EXPECT_EQ(padhook_attach_addresses(nullptr, 1, &hooks, &a), PADHOOK_EINVAL);
  EXPECT_EQ(padhook_detach(nullptr), PADHOOK_EINVAL);
  // Not an instrumented function's entry.
  EXPECT_EQ(padhook_attach_address(reinterpret_cast<char*>(fn) + 1, &hooks, &a), PADHOOK_ENOTFOUND);
  EXPECT_EQ(padhook_attach_address(Addr(&CallAdd), &hooks, &a), PADHOOK_ENOTFOUND);
  EXPECT_STREQ(padhook_strerror(PADHOOK_EUNEXPECTED), "unexpected-bytes");
  EXPECT_STREQ(padhook_strerror(PADHOOK_OK), padhook_strerror(0));
  EXPECT_STREQ(padhook_strerror(-1000), "unknown-error");
  EXPECT_TRUE(IsFreshSite(SiteBytes(fn))) << "a failed attach changed the site";
  EXPECT_EQ(SlotBytes(fn), kNopRun);

  DetachFromInside d;
  padhook_hooks self_hooks = HooksFor(DetachSelf, &d);
  ASSERT_EQ(padhook_attach_address(fn, &self_hooks, &d.self), PADHOOK_OK) << padhook_last_error();
  EXPECT_EQ(v.add(1, 1), 2);
  EXPECT_EQ(d.result, PADHOOK_EBUSY);
  EXPECT_EQ(d.calls, 1);
  padhook_attachment* self = d.self;
  d.self = nullptr;
  EXPECT_EQ(v.add(2, 2), 4);
  EXPECT_EQ(d.calls, 2) << "the attachment stopped working after the refused detach";
  EXPECT_EQ(padhook_attachment_size(self), 1u);
  ASSERT_EQ(padhook_detach(self), PADHOOK_OK) << padhook_last_error();
  EXPECT_EQ(v.add(3, 3), 6);
  EXPECT_EQ(d.calls, 2);
}

// ---- 11. C++ RAII --------------------------------------------------------------------------

TEST_P(PatchTest, AttachmentDetachesWhenDestroyed) {
  const Variant& v = V();
  const Bytes5 fresh = SiteBytes(Addr(v.victim));
  std::atomic<int> calls{0};
  Hooks hooks;
  hooks.on_entry = Count;
  hooks.user_data = &calls;
  {
    Attachment kept;
    {
      Result<Attachment> a = AttachAddress(Addr(v.victim), hooks);
      ASSERT_TRUE(a.ok()) << a.status().ToString();
      EXPECT_TRUE(a->attached());
      EXPECT_EQ(a->size(), 1u);
      EXPECT_EQ(v.victim(1), -4);
      EXPECT_EQ(calls.load(), 1);
      kept = std::move(*a);
      EXPECT_FALSE(a->attached());
    }  // the moved-from attachment goes: nothing detached
    EXPECT_TRUE(kept.attached());
    EXPECT_EQ(v.victim(2), -3);
    EXPECT_EQ(calls.load(), 2);
  }  // detached here
  EXPECT_EQ(v.victim(3), -2);
  EXPECT_EQ(calls.load(), 2);
  EXPECT_EQ(SiteBytes(Addr(v.victim)), Unpatched(fresh)) << Hex(SiteBytes(Addr(v.victim)));
  EXPECT_TRUE(SlotDormantThenEmptyAfterTrim(Addr(v.victim)));

  // By glob, and an explicit Detach() before destruction.
  Result<Attachment> g = AttachGlob(std::string(v.name) + "_vi*", hooks);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ(g->size(), 1u);
  EXPECT_EQ(v.victim(0), -5);
  EXPECT_EQ(calls.load(), 3);
  EXPECT_TRUE(g->Detach().ok());
  EXPECT_FALSE(g->attached());
  EXPECT_EQ(v.victim(0), -5);
  EXPECT_EQ(calls.load(), 3);
}

// ---- 9. The application's SIGTRAP handler ----------------------------------------------------

class SigtrapTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    // Strict mode patches every site with the int3 protocol, which installs
    // padhook's SIGTRAP handler.
    TextWriter::Process().set_mode(WriteMode::kStrict);
    ASSERT_TRUE(FunctionTable::Process().Refresh().ok());
  }
  const Variant& V() const { return kVariants[GetParam()]; }
  // Attaches and detaches once, through the int3 protocol.
  void PatchOnce() {
    const patch::PatcherStats before = patch::Stats();
    std::atomic<int> calls{0};
    padhook_hooks hooks = HooksFor(Count, &calls);
    padhook_attachment* a = nullptr;
    ASSERT_EQ(padhook_attach_address(Addr(V().add), &hooks, &a), PADHOOK_OK)
        << padhook_last_error();
    EXPECT_EQ(V().add(1, 2), 3);
    ASSERT_EQ(padhook_detach(a), PADHOOK_OK) << padhook_last_error();
    EXPECT_EQ(calls.load(), 1);
    EXPECT_EQ(patch::Stats().breakpoint_sites, before.breakpoint_sites + 2)
        << "not the int3 protocol";
  }
};

INSTANTIATE_TEST_SUITE_P(All, SigtrapTest, ::testing::Range(0, kVariantCount),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return std::string(kVariants[info.param].name);
                         });

std::atomic<int> g_app_traps{0};
std::atomic<uintptr_t> g_app_trap_pc{0};

void AppSigtrap(int sig, siginfo_t* info, void* ucontext) {
  if (sig == SIGTRAP && info != nullptr && ucontext != nullptr) {
    g_app_traps.fetch_add(1);
    g_app_trap_pc.store(
        static_cast<uintptr_t>(static_cast<ucontext_t*>(ucontext)->uc_mcontext.gregs[REG_RIP]));
  }
}

__attribute__((noinline)) uintptr_t ExecuteInt3() {
  uintptr_t after;
  __asm__ volatile("int3\n\tlea 0(%%rip), %0" : "=r"(after));
  return after;
}

TEST_P(SigtrapTest, TheApplicationsHandlerStillGetsItsTraps) {
  struct sigaction sa = {}, old = {};
  sa.sa_sigaction = AppSigtrap;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  ASSERT_EQ(sigaction(SIGTRAP, &sa, &old), 0);
  PatchOnce();
  if (HasFatalFailure()) return;
  struct sigaction now = {};
  ASSERT_EQ(sigaction(SIGTRAP, nullptr, &now), 0);
  EXPECT_NE(now.sa_sigaction, AppSigtrap)
      << "padhook's handler is not installed: the test proves nothing";

  const uint64_t chained = patch::Stats().chained_traps;
  ASSERT_EQ(raise(SIGTRAP), 0);
  EXPECT_EQ(g_app_traps.load(), 1);
  const uintptr_t after = ExecuteInt3();
  EXPECT_EQ(g_app_traps.load(), 2);
  // The int3 is one byte before the lea, which is 7 bytes: the handler saw
  // the PC right after the int3, as the kernel reported it.
  EXPECT_EQ(g_app_trap_pc.load(), after - 7);
  EXPECT_EQ(patch::Stats().chained_traps, chained + 2);
  // Patching again still leaves the application's handler in the chain.
  PatchOnce();
  ExecuteInt3();
  EXPECT_EQ(g_app_traps.load(), 3);
}

TEST_P(SigtrapTest, AForeignInt3StillKillsAProgramWithoutAHandler) {
  struct sigaction dfl = {};
  ASSERT_EQ(sigaction(SIGTRAP, nullptr, &dfl), 0);
  ASSERT_EQ(dfl.sa_handler, SIG_DFL);
  PatchOnce();
  if (HasFatalFailure()) return;
  for (bool use_raise : {false, true}) {
    SCOPED_TRACE(use_raise ? "raise(SIGTRAP)" : "int3");
    fflush(nullptr);
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      struct rlimit no_core = {0, 0};
      setrlimit(RLIMIT_CORE, &no_core);
      if (use_raise) {
        raise(SIGTRAP);
      } else {
        ExecuteInt3();
      }
      _exit(0);  // survived: wrong
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFSIGNALED(status))
        << "exit status " << (WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    if (WIFSIGNALED(status)) {
      EXPECT_EQ(WTERMSIG(status), SIGTRAP);
    }
  }
}

// ---- 12. A dlopen()ed library ----------------------------------------------------------------

using LibParam = std::tuple<std::string, WriteMode>;

class LibraryPatchTest : public ::testing::TestWithParam<LibParam> {
 protected:
  void SetUp() override { TextWriter::Process().set_mode(std::get<1>(GetParam())); }
  std::string Path() const {
    return std::string(PATCH_FIXTURE_DIR) + "/libfixture_" + std::get<0>(GetParam()) + ".so";
  }
};

INSTANTIATE_TEST_SUITE_P(
    All, LibraryPatchTest,
    ::testing::Combine(::testing::Values("gcc_plain", "gcc_cet", "clang_plain", "clang_cet"),
                       ::testing::Values(WriteMode::kFast, WriteMode::kStrict)),
    [](const ::testing::TestParamInfo<LibParam>& info) {
      return std::get<0>(info.param) + "_" + WriteModeName(std::get<1>(info.param));
    });

TEST_P(LibraryPatchTest, FunctionsOfALoadedLibraryAttachAndTheLibraryUnloads) {
  const std::string path = Path();
  void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(lib, nullptr) << dlerror();
  auto* add = reinterpret_cast<int (*)(int, int)>(dlsym(lib, "fxlib_add"));
  auto* call = reinterpret_cast<int (*)(int)>(dlsym(lib, "fxlib_call"));
  ASSERT_NE(add, nullptr);
  ASSERT_NE(call, nullptr);
  const Bytes5 before = SiteBytes(Addr(add));
  const auto exe_distance =
      reinterpret_cast<uintptr_t>(add) > reinterpret_cast<uintptr_t>(&CallAdd)
          ? reinterpret_cast<uintptr_t>(add) - reinterpret_cast<uintptr_t>(&CallAdd)
          : reinterpret_cast<uintptr_t>(&CallAdd) - reinterpret_cast<uintptr_t>(add);
  RecordProperty("distance_from_executable", std::to_string(exe_distance));

  Seen seen;
  padhook_hooks hooks = HooksFor(Record, &seen);
  padhook_attachment* a = nullptr;
  ASSERT_EQ(padhook_attach_address(Addr(add), &hooks, &a), PADHOOK_OK) << padhook_last_error();
  EXPECT_EQ(SiteBytes(Addr(add))[0], 0xe8);
  const uintptr_t stub = CallTarget(Addr(add));
  Dl_info info = {};
  EXPECT_EQ(dladdr(reinterpret_cast<void*>(stub), &info), 0)
      << "the stub is padhook's own page, in no module";
  EXPECT_EQ(add(20, 22), 42);
  EXPECT_EQ(seen.count.load(), 1);
  EXPECT_EQ(seen.function, Addr(add));
  EXPECT_EQ(seen.args[0], 20u);
  EXPECT_EQ(call(4), 10);  // calls fxlib_add inside the library
  EXPECT_EQ(seen.count.load(), 2);
  EXPECT_EQ(seen.args[0], 4u);
  ASSERT_EQ(padhook_detach(a), PADHOOK_OK) << padhook_last_error();
  EXPECT_EQ(add(1, 2), 3);
  EXPECT_EQ(seen.count.load(), 2);
  // GCC's NOP run is converted once; clang's NOP is restored exactly.
  EXPECT_EQ(SiteBytes(Addr(add)), std::get<0>(GetParam()).starts_with("gcc") ? kNop5 : before)
      << Hex(SiteBytes(Addr(add))) << " (was " << Hex(before) << ")";
  EXPECT_EQ(SlotBytes(Addr(add))[0], 0xb8) << "the metadata entry stays cached (dormant)";
  const size_t dormant = MetadataTable::Process().dormant();
  EXPECT_GE(dormant, 1u);

  // A dormant entry does not keep its library loaded.
  const uintptr_t old_add = reinterpret_cast<uintptr_t>(add);
  ASSERT_EQ(dlclose(lib), 0) << dlerror();
  EXPECT_EQ(dlopen(path.c_str(), RTLD_NOW | RTLD_NOLOAD), nullptr) << "the library is still loaded";
  EXPECT_EQ(padhook_attach_name("fxlib_add", &hooks, &a), PADHOOK_ENOTFOUND)
      << "an unloaded function";

  // Loaded again (usually at the same address: the old entry, still naming
  // that address, is stale): its fresh padding gets a new entry, and it all
  // works; the stale entry is dropped without touching the unmapped or
  // reloaded memory.
  lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(lib, nullptr) << dlerror();
  add = reinterpret_cast<int (*)(int, int)>(dlsym(lib, "fxlib_add"));
  ASSERT_NE(add, nullptr);
  RecordProperty("reloaded_at_same_address",
                 reinterpret_cast<uintptr_t>(add) == old_add ? "yes" : "no");
  EXPECT_EQ(SlotBytes(Addr(add)), kNopRun) << "a reloaded library has its file's bytes";
  ASSERT_EQ(padhook_attach_address(Addr(add), &hooks, &a), PADHOOK_OK) << padhook_last_error();
  EXPECT_EQ(add(5, 6), 11);
  EXPECT_EQ(seen.count.load(), 3);
  EXPECT_EQ(seen.function, Addr(add));
  ASSERT_EQ(padhook_detach(a), PADHOOK_OK) << padhook_last_error();
  EXPECT_EQ(add(5, 6), 11);
  EXPECT_EQ(seen.count.load(), 3);
  ASSERT_EQ(dlclose(lib), 0) << dlerror();
  EXPECT_EQ(dlopen(path.c_str(), RTLD_NOW | RTLD_NOLOAD), nullptr) << "the library is still loaded";
  ASSERT_TRUE(MetadataTable::Process().Trim().ok());
  EXPECT_EQ(MetadataTable::Process().dormant(), 0u)
      << "stale entries of an unloaded library were kept";
}

// ---- 13. Protocol C and a signal handler that interrupted a NOP run ----------
//
// A thread is interrupted in the middle of a GCC NOP run by a signal, and its
// handler is still running when padhook converts the run: the stop signal
// interrupts the handler, so the PC to move past the run is the one saved in
// the first signal's frame (C4 of live_patcher.cc). The thread is walked to
// the exact byte with the trap flag: its SIGTRAP handler parks it at site+1.
// Run in a fresh process (death-test style "threadsafe" re-executes this
// test alone), where the fixture's page has not been converted yet.
namespace nested_signal {

std::atomic<int> g_state{0};  // 0 stepping, 1 parked inside the run, 2 released
uintptr_t g_site = 0;

void OnStep(int, siginfo_t*, void* ucontext) {
  auto* uc = static_cast<ucontext_t*>(ucontext);
  if (static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RIP]) != g_site + 1) return;  // step on
  uc->uc_mcontext.gregs[REG_EFL] &= ~greg_t{0x100};  // the trap flag off: stepping ends
  g_state.store(1);
  while (g_state.load() != 2) sched_yield();
}

int StepInto(int (*add)(int, int)) {
  // Trap after every instruction from here (below the red zone: pushfq
  // writes under rsp).
  asm volatile("sub $128, %%rsp\n\tpushfq\n\torq $0x100, (%%rsp)\n\tpopfq\n\tadd $128, %%rsp" ::
                   : "memory", "cc");
  return add(2, 3);
}

int Run() {
  const Variant& v = kVariants[0];  // gcc_plain: 1-byte NOP runs
  g_site = SiteOf(Addr(v.add));
  if (Read5(g_site) != kNopRun) return 10;  // already converted: not a fresh process
  struct sigaction sa = {};
  sa.sa_sigaction = OnStep;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);  // the stop signal must be able to interrupt it
  if (sigaction(SIGTRAP, &sa, nullptr) != 0) return 11;
  std::atomic<int> result{0};
  std::thread stepped([&] { result = StepInto(v.add); });
  while (g_state.load() != 1) sched_yield();
  std::atomic<int> seen{0};
  padhook_hooks hooks = HooksFor(Count, &seen);
  padhook_attachment* a = nullptr;
  if (padhook_attach_address(Addr(v.add), &hooks, &a) != PADHOOK_OK) return 12;
  if (Read5(g_site)[0] != 0xe8) return 13;  // converted and patched under the parked thread
  g_state.store(2);
  stepped.join();  // it resumes past the run (the call it was in is not seen)
  if (result.load() != 5) return 14;
  if (patch::Stats().outer_contexts_moved < 1) return 15;
  if (v.add(4, 5) != 9 || seen.load() != 1) return 16;
  return padhook_detach(a) == PADHOOK_OK ? 0 : 17;
}

}  // namespace nested_signal

TEST(ProtocolC, MovesAThreadOutOfARunItsSignalHandlerInterrupted) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(std::_Exit(nested_signal::Run()), testing::ExitedWithCode(0), "")
      << "exit codes: 10 page already converted, 13 site not patched, 14 wrong result, 15 not "
         "moved, 16 not traced after; a crash: resumed inside the new instruction";
}

}  // namespace
}  // namespace padhook
