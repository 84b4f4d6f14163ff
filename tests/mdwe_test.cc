// Patching under PR_SET_MDWE(PR_MDWE_REFUSE_EXEC_GAIN): the kernel refuses
// every writable+executable mapping and every protection change that adds
// PROT_EXEC, for this process and its children, irreversibly. So this is its
// own program (run by ctest as one test), and main() sets MDWE before any
// test runs. A kernel without MDWE (before Linux 6.3) makes the program exit
// with 77, which ctest reports as SKIPPED with the reason printed here.
//
// Checked: padhook chooses the strict mode by itself under MDWE; attach and
// detach storms (stub pages, protocol C on g++'s NOP runs, protocol B) work
// while threads run the functions; the fast mode, forced, fails with a clear
// error and changes nothing.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/utsname.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "padhook/hooks.h"
#include "padhook/metadata.h"
#include "padhook/text_writer.h"
#include "patch/live_patcher.h"
#include "reliab_support.h"

#ifndef PR_SET_MDWE
#define PR_SET_MDWE 65
#define PR_GET_MDWE 66
#endif
#ifndef PR_MDWE_REFUSE_EXEC_GAIN
#define PR_MDWE_REFUSE_EXEC_GAIN 1
#endif

namespace padhook {
namespace {

using namespace std::chrono_literals;

std::atomic<uint64_t> g_entries{0};
void CountEntry(padhook_call*, void*) { g_entries.fetch_add(1, std::memory_order_relaxed); }

TEST(MdweTest, KernelRefusesExecGain) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  void* p = mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  errno = 0;
  EXPECT_NE(mprotect(p, page, PROT_READ | PROT_EXEC), 0) << "MDWE is not in force";
  EXPECT_EQ(errno, EACCES);
  munmap(p, page);
  EXPECT_EQ(
      mmap(nullptr, page, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
      MAP_FAILED);
}

TEST(MdweTest, StrictModeIsTheDefaultAndPatchesUnderThreads) {
  EXPECT_EQ(TextWriter::Process().mode(), WriteMode::kStrict)
      << "padhook did not choose the strict mode under MDWE";
  const std::vector<reliab::Fn> fns = reliab::StressFunctions(40);
  std::vector<const void*> all;
  for (reliab::Fn f : fns) all.push_back(reinterpret_cast<const void*>(f));
  reliab::Workers workers(fns, 2);
  uint64_t cycles = 0;
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < 2s || cycles < 20) {
    Hooks hooks{CountEntry, nullptr, nullptr};
    const uint64_t seen = g_entries.load();
    Result<Attachment> a = AttachAddresses(all, hooks);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    // Every function is hooked: direct calls from this thread are all seen.
    for (reliab::Fn f : fns) (void)f(1);
    EXPECT_GE(g_entries.load() - seen, fns.size());
    ASSERT_TRUE(a->Detach().ok());
    ++cycles;
  }
  workers.Stop();
  EXPECT_EQ(workers.wrong(), 0u);
  EXPECT_GT(workers.calls(), 0u);
  const patch::PatcherStats stats = patch::Stats();
  EXPECT_EQ(stats.stop_the_world, 1u);
  EXPECT_GT(stats.breakpoint_sites, 0u);
  std::printf("under MDWE: %lu attach/detach cycles of %zu functions, %lu calls, %lu hooked\n",
              static_cast<unsigned long>(cycles), all.size(),
              static_cast<unsigned long>(workers.calls()),
              static_cast<unsigned long>(g_entries.load()));
}

TEST(MdweTest, FastModeFailsClearlyAndChangesNothing) {
  TextWriter::Process().set_mode(WriteMode::kFast);
  const reliab::Fn f = many_fns_23[999];
  const auto entry = reinterpret_cast<const uint8_t*>(f);
  std::array<uint8_t, 16> before;
  std::memcpy(before.data(), entry - 8, before.size());
  Hooks hooks{CountEntry, nullptr, nullptr};
  Result<Attachment> a = AttachAddress(reinterpret_cast<const void*>(f), hooks);
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.status().message().find("PADHOOK_"), std::string::npos)
      << "the error should say how to get the strict mode: " << a.status().ToString();
  std::array<uint8_t, 16> after;
  std::memcpy(after.data(), entry - 8, after.size());
  EXPECT_EQ(before, after) << "a failed attach changed the patch area";
  TextWriter::Process().set_mode(WriteMode::kStrict);
  Result<Attachment> b = AttachAddress(reinterpret_cast<const void*>(f), hooks);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  ASSERT_TRUE(b->Detach().ok());
  std::printf("fast mode under MDWE: %s\n", a.status().ToString().c_str());
}

}  // namespace
}  // namespace padhook

int main(int argc, char** argv) {
  utsname u{};
  uname(&u);
  if (prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0) {
    std::printf(
        "SKIPPED: cannot set PR_SET_MDWE on kernel %s (%s; MDWE needs Linux >= 6.3): "
        "the patch tests under MDWE did not run\n",
        u.release, std::strerror(errno));
    return 77;
  }
  const int flags = prctl(PR_GET_MDWE, 0, 0, 0, 0);
  std::printf("kernel %s, PR_GET_MDWE = %d\n", u.release, flags);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
