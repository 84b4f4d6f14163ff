// The ISA port's byte-level contract: classification and slot encoding.
#include "arch.h"

#include <dlfcn.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/ucontext.h>

#include <string>
#include <vector>

namespace padhook::arch {
namespace {

std::vector<uint8_t> Nops(size_t n) { return std::vector<uint8_t>(n, 0x90); }

TEST(ArchTest, GccNopRunWithEmptySlot) {
  const auto prefix = Nops(8);
  std::vector<uint8_t> entry = Nops(5);
  entry.insert(entry.end(), {0x8d, 0x47, 0x01, 0xc3});  // lea 1(%rdi),%eax; ret
  const PatchSite site = ClassifyPatchArea(prefix, entry, 0x1008);
  EXPECT_EQ(site.kind, SiteKind::kNopRun);
  EXPECT_EQ(site.slot, SlotState::kEmpty);
  EXPECT_EQ(site.landing_pad, 0);
  EXPECT_EQ(site.site_size, 5);
  EXPECT_EQ(site.prefix_size, 8);
  EXPECT_TRUE(site.site_in_one_word);
  EXPECT_TRUE(site.usable());
}

TEST(ArchTest, ClangNopWithEndbr) {
  const auto prefix = Nops(12);
  const std::vector<uint8_t> entry = {0xf3, 0x0f, 0x1e, 0xfa, 0x0f, 0x1f, 0x44, 0x00, 0x08, 0xc3};
  const PatchSite site = ClassifyPatchArea(prefix, entry, 0x100c);
  EXPECT_EQ(site.kind, SiteKind::kSingleNop);
  EXPECT_EQ(site.landing_pad, 4);
  EXPECT_TRUE(site.site_in_one_word);  // 0x1010..0x1014
  EXPECT_EQ(DescribeSite(site), "endbr64, clang 5-byte NOP");
}

TEST(ArchTest, SiteCrossingAWordIsReported) {
  const std::vector<uint8_t> entry = {0x0f, 0x1f, 0x44, 0x00, 0x08};
  EXPECT_FALSE(ClassifyPatchArea(Nops(8), entry, 0x1005).site_in_one_word);
  EXPECT_TRUE(ClassifyPatchArea(Nops(8), entry, 0x1003).site_in_one_word);
}

TEST(ArchTest, UnexpectedEntryBytes) {
  const std::vector<uint8_t> int3 = {0xcc, 0x90, 0x90, 0x90, 0x90};
  EXPECT_EQ(ClassifyPatchArea(Nops(8), int3, 0x1008).kind, SiteKind::kUnexpected);
  const std::vector<uint8_t> call = {0xe8, 0x00, 0x00, 0x00, 0x00};
  EXPECT_EQ(ClassifyPatchArea(Nops(8), call, 0x1008).kind, SiteKind::kUnexpected);
  const std::vector<uint8_t> short_run = {0x90, 0x90, 0x55};
  const PatchSite site = ClassifyPatchArea(Nops(8), short_run, 0x1008);
  EXPECT_EQ(site.kind, SiteKind::kUnexpected);
  EXPECT_FALSE(site.usable());
}

TEST(ArchTest, SlotStates) {
  const auto entry = Nops(5);
  EXPECT_EQ(ClassifyPatchArea(Nops(4), entry, 0x1004).slot, SlotState::kTooSmall);
  EXPECT_EQ(ClassifyPatchArea({}, entry, 0x1000).slot, SlotState::kTooSmall);
  std::vector<uint8_t> with_index = {0x90, 0x90, 0x90, 0xb8, 7, 0, 0, 0};
  EXPECT_EQ(ClassifyPatchArea(with_index, entry, 0x1008).slot, SlotState::kIndex);
  std::vector<uint8_t> foreign = {0x90, 0x90, 0x90, 0xe8, 1, 2, 3, 4};  // someone's call
  EXPECT_EQ(ClassifyPatchArea(foreign, entry, 0x1008).slot, SlotState::kUnexpected);
  std::vector<uint8_t> dirty_head = {0xcc, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90};
  EXPECT_EQ(ClassifyPatchArea(dirty_head, entry, 0x1008).slot, SlotState::kUnexpected);
}

TEST(ArchTest, SlotEncodingRoundTrips) {
  for (uint32_t index : {0u, 1u, 255u, 0x12345678u, 0xffffffffu}) {
    std::array<uint8_t, kMetaSlotSize> slot;
    EncodeMetaSlot(index, slot);
    EXPECT_EQ(slot[kMetaSlotCommitOffset], 0xB8);
    uint32_t decoded = 0;
    ASSERT_TRUE(DecodeMetaSlot(slot, &decoded));
    EXPECT_EQ(decoded, index);
  }
  std::array<uint8_t, kMetaSlotSize> empty;
  EncodeEmptyMetaSlot(empty);
  uint32_t ignored;
  EXPECT_FALSE(DecodeMetaSlot(empty, &ignored));
  EXPECT_EQ(empty, (std::array<uint8_t, 5>{0x90, 0x90, 0x90, 0x90, 0x90}));
}

TEST(ArchTest, ReadMetaIndexReadsTheBytesBeforeTheEntry) {
  alignas(16) uint8_t buffer[16] = {0x90, 0x90, 0x90, 0xb8, 0x2a, 0x00, 0x00, 0x00,
                                    0x90, 0x90, 0x90, 0x90, 0x90, 0xc3, 0x00, 0x00};
  uint32_t index = 0;
  ASSERT_TRUE(ReadMetaIndex(reinterpret_cast<uintptr_t>(buffer + 8), &index));
  EXPECT_EQ(index, 42u);
  buffer[3] = 0x90;
  EXPECT_FALSE(ReadMetaIndex(reinterpret_cast<uintptr_t>(buffer + 8), &index));
}

TEST(ArchTest, RecommendedLayoutsKeepIndexAndSiteAligned) {
  for (bool landing_pads : {false, true}) {
    const Layout layout = RecommendedLayout(landing_pads);
    const unsigned entry = layout.nops_before_entry;  // offset from the aligned patch area
    const unsigned index_at = entry - 4;
    const unsigned site_at = entry + (landing_pads ? 4 : 0);
    EXPECT_EQ(index_at % 4, 0u) << landing_pads;
    EXPECT_LE(site_at % 8 + kSiteSize, 8u) << landing_pads;
    EXPECT_EQ(layout.total_nops - layout.nops_before_entry, kSiteSize);
    EXPECT_EQ(layout.function_alignment % 8, 0u);
  }
  const auto flags = CompilerFlags(Compiler::kGcc, false);
  ASSERT_EQ(flags.size(), 2u);
  EXPECT_EQ(flags[0], "-fpatchable-function-entry=13,8");
  EXPECT_EQ(flags[1], "-falign-functions=16");
  const auto cet = CompilerFlags(Compiler::kClang, true);
  ASSERT_EQ(cet.size(), 3u);
  EXPECT_EQ(cet[0], "-fpatchable-function-entry=17,12");
  EXPECT_EQ(cet[2], "-fcf-protection=full");
}

}  // namespace
}  // namespace padhook::arch

// ---- Contexts of signal handlers already running ------------------------------
//
// A SIGUSR1 handler raises SIGUSR2; the SIGUSR2 handler asks for the outer
// contexts: the first is the one SIGUSR1 interrupted (the code that raised
// it), and writing its PC changes where the SIGUSR1 handler returns to.
namespace outer_contexts {

volatile sig_atomic_t g_found = -1;
uintptr_t g_outer_pc = 0;
uintptr_t g_outer_sp = 0;
volatile sig_atomic_t g_resumed_at_label = 0;

void OnUsr2(int, siginfo_t*, void* ucontext) {
  void* outer[8];
  g_found = static_cast<int>(padhook::arch::OuterSignalContexts(ucontext, outer, 8));
  if (g_found >= 1) {
    g_outer_pc = padhook::arch::ContextPc(outer[0]);
    g_outer_sp =
        static_cast<uintptr_t>(static_cast<ucontext_t*>(outer[0])->uc_mcontext.gregs[REG_RSP]);
  }
}

void OnUsr1(int) { raise(SIGUSR2); }

}  // namespace outer_contexts

// Installs OnUsr2 for SIGUSR2 (and, per test, a SIGUSR1 handler); restores
// both afterwards.
class OuterSignalContexts : public testing::Test {
 protected:
  void SetUp() override {
#if defined(__SANITIZE_THREAD__)
    GTEST_SKIP() << "ThreadSanitizer runs signal handlers itself, later, from its own frames: "
                    "there is no kernel signal frame to find (padhook's patching is not run "
                    "under TSan either)";
#endif
    struct sigaction usr2 = {};
    usr2.sa_sigaction = outer_contexts::OnUsr2;
    usr2.sa_flags = SA_SIGINFO;
    ASSERT_EQ(sigaction(SIGUSR1, nullptr, &old1_), 0);
    ASSERT_EQ(sigaction(SIGUSR2, &usr2, &old2_), 0);
    outer_contexts::g_found = -1;
  }
  void TearDown() override {
    sigaction(SIGUSR1, &old1_, nullptr);
    sigaction(SIGUSR2, &old2_, nullptr);
  }
  static void SetUsr1(void (*handler)(int)) {
    struct sigaction usr1 = {};
    usr1.sa_handler = handler;
    ASSERT_EQ(sigaction(SIGUSR1, &usr1, nullptr), 0);
  }

 private:
  struct sigaction old1_ = {}, old2_ = {};
};

TEST_F(OuterSignalContexts, FindsTheInterruptedHandlersContext) {
  using namespace outer_contexts;
  SetUsr1(OnUsr1);
  // SIGUSR1 is delivered on the way out of the tgkill system call: the outer
  // context's PC is right after the syscall instruction of raise().
  const uintptr_t sp_before = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
  raise(SIGUSR1);
  ASSERT_EQ(g_found, 1) << "one handler (SIGUSR1's) was running around SIGUSR2's";
  Dl_info info{};
  ASSERT_NE(dladdr(reinterpret_cast<void*>(g_outer_pc), &info), 0);
  ASSERT_NE(info.dli_fname, nullptr);
  EXPECT_NE(std::string(info.dli_fname).find("libc.so"), std::string::npos)
      << "the outer PC should be in raise(), in libc: " << info.dli_fname;
  EXPECT_LT(g_outer_sp, sp_before) << "raise()'s stack is below this test's frame";
  EXPECT_GT(g_outer_sp + 65536, sp_before);
}

TEST_F(OuterSignalContexts, FindsNoneOutsideNestedHandlers) {
  using namespace outer_contexts;
  raise(SIGUSR2);
  EXPECT_EQ(g_found, 0);
}

// Two signals delivered at once (both pending when they are unblocked): the
// kernel sets up SIGUSR1's frame, then SIGUSR2's on top of it, so SIGUSR2's
// handler interrupts SIGUSR1's before its first instruction, with the
// frame's restorer right at the interrupted stack pointer.
TEST_F(OuterSignalContexts, FindsAHandlerNotStartedYet) {
  using namespace outer_contexts;
  SetUsr1([](int) {});
  sigset_t both, previous;
  sigemptyset(&both);
  sigaddset(&both, SIGUSR1);
  sigaddset(&both, SIGUSR2);
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &both, &previous), 0);
  raise(SIGUSR1);
  raise(SIGUSR2);
  ASSERT_EQ(pthread_sigmask(SIG_SETMASK, &previous, nullptr), 0);  // both delivered here
  ASSERT_EQ(g_found, 1);
  Dl_info info{};
  ASSERT_NE(dladdr(reinterpret_cast<void*>(g_outer_pc), &info), 0);
  EXPECT_NE(std::string(info.dli_fname).find("libc.so"), std::string::npos)
      << "the outer PC should be in pthread_sigmask(), in libc: " << info.dli_fname;
}
