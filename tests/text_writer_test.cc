// TextWriter: verify-before-write, all-or-nothing batches, both modes.
#include "padhook/text_writer.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#ifndef PR_SET_MDWE
#define PR_SET_MDWE 65
#define PR_MDWE_REFUSE_EXEC_GAIN 1
#endif

namespace padhook {
namespace {

// A page of "code" (0x90s then a ret) mapped read+execute, like text.
class CodePage {
 public:
  CodePage() {
    mem_ = static_cast<uint8_t*>(
        mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    std::memset(mem_, 0x90, 4096);
    mem_[4095] = 0xc3;
    mprotect(mem_, 4096, PROT_READ | PROT_EXEC);
  }
  ~CodePage() { munmap(mem_, 4096); }
  uint8_t* data() const { return mem_; }
  uintptr_t at(size_t offset) const { return reinterpret_cast<uintptr_t>(mem_ + offset); }

  // The permissions /proc/self/maps shows for the page ("r-xp").
  std::string Perms() const {
    std::ifstream maps("/proc/self/maps");
    std::string line;
    while (std::getline(maps, line)) {
      uintptr_t begin, end;
      char perms[8];
      if (std::sscanf(line.c_str(), "%lx-%lx %7s", &begin, &end, perms) == 3 &&
          begin <= at(0) && at(0) < end) {
        return perms;
      }
    }
    return "";
  }

 private:
  uint8_t* mem_;
};

const uint8_t kNop5[] = {0x90, 0x90, 0x90, 0x90, 0x90};
const uint8_t kCall[] = {0xe8, 0x11, 0x22, 0x33, 0x44};

std::string AddressOf(uintptr_t address) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "0x%lx", static_cast<unsigned long>(address));
  return buf;
}

class TextWriterTest : public ::testing::TestWithParam<WriteMode> {
 protected:
  void SetUp() override {
    saved_ = TextWriter::Process().mode();
    TextWriter::Process().set_mode(GetParam());
  }
  void TearDown() override { TextWriter::Process().set_mode(saved_); }
  WriteMode saved_;
};

TEST_P(TextWriterTest, WritesAndKeepsProtection) {
  CodePage page;
  const auto before = TextWriter::Process().stats();
  const CodeWrite w = CodeWrite::Make(page.at(64), kNop5, kCall);
  ASSERT_TRUE(TextWriter::Process().Apply({&w, 1}).ok());
  EXPECT_EQ(std::memcmp(page.data() + 64, kCall, 5), 0);
  EXPECT_EQ(page.Perms(), "r-xp");
  const auto after = TextWriter::Process().stats();
  if (GetParam() == WriteMode::kStrict) {
    EXPECT_EQ(after.protection_changes, before.protection_changes) << "strict mode changed a protection";
    EXPECT_EQ(after.proc_mem_writes, before.proc_mem_writes + 1);
  } else {
    EXPECT_EQ(after.protection_changes, before.protection_changes + 2);  // RWX, then back
  }
}

TEST_P(TextWriterTest, RefusesUnexpectedBytesAndWritesNothing) {
  CodePage page;
  const CodeWrite ok = CodeWrite::Make(page.at(0), kNop5, kCall);
  const uint8_t int3[] = {0xcc, 0x90, 0x90, 0x90, 0x90};
  const CodeWrite wrong = CodeWrite::Make(page.at(100), int3, kCall);  // page holds NOPs there
  const CodeWrite batch[] = {ok, wrong};
  const Status s = TextWriter::Process().Apply(batch);
  EXPECT_EQ(s.code(), Errc::kUnexpectedBytes);
  EXPECT_NE(s.message().find("90 90 90 90 90"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("expected cc 90 90 90 90"), std::string::npos) << s.message();
  // All or nothing: the first write was rolled back.
  EXPECT_EQ(std::memcmp(page.data(), kNop5, 5), 0);
  EXPECT_EQ(page.Perms(), "r-xp");
}

// A foreign byte that happens to equal what padhook meant to write (another
// tool's int3 where padhook's protocol writes int3) must survive a failed
// batch: the rollback undoes only what padhook stored.
TEST_P(TextWriterTest, RollbackNeverWritesOverBytesItDidNotStore) {
  CodePage page;
  const uint8_t int3 = 0xcc, nop_head = 0x0f;
  const CodeWrite plant = CodeWrite::Make(page.at(32), kNop5, {&int3, 1});  // the "other tool"
  ASSERT_TRUE(TextWriter::Process().Apply({&plant, 1}).ok());
  const CodeWrite first = CodeWrite::Make(page.at(0), kNop5, kCall);
  const CodeWrite ours = CodeWrite::Make(page.at(32), {&nop_head, 1}, {&int3, 1});
  const CodeWrite batch[] = {first, ours};
  EXPECT_EQ(TextWriter::Process().Apply(batch).code(), Errc::kUnexpectedBytes);
  EXPECT_EQ(page.data()[32], 0xcc) << "padhook overwrote a byte it never wrote";
  EXPECT_EQ(std::memcmp(page.data(), kNop5, 5), 0) << "the first write was not rolled back";
}

TEST_P(TextWriterTest, RollsBackEveryWriteOfAFailedBatch) {
  CodePage page;
  std::vector<CodeWrite> batch;
  for (int i = 0; i < 50; ++i) batch.push_back(CodeWrite::Make(page.at(16 * i), kNop5, kCall));
  const uint8_t other[] = {0x0f, 0x1f, 0x44, 0x00, 0x08};
  batch.push_back(CodeWrite::Make(page.at(4000), other, kCall));  // fails: bytes are NOPs
  const auto before = TextWriter::Process().stats();
  EXPECT_EQ(TextWriter::Process().Apply(batch).code(), Errc::kUnexpectedBytes);
  for (int i = 0; i < 4095; ++i) ASSERT_EQ(page.data()[i], 0x90) << "byte " << i << " left written";
  EXPECT_EQ(TextWriter::Process().stats().rollbacks, before.rollbacks + 1);
}

TEST_P(TextWriterTest, WritesHappenInOrder) {
  // The second write expects what the first one wrote: only ordered
  // verify-then-write accepts this batch.
  CodePage page;
  const uint8_t mid[] = {0xb8, 0x01, 0x00, 0x00, 0x00};
  const uint8_t last[] = {0xb8, 0x02, 0x00, 0x00, 0x00};
  const CodeWrite batch[] = {CodeWrite::Make(page.at(8), kNop5, mid),
                             CodeWrite::Make(page.at(8), mid, last)};
  ASSERT_TRUE(TextWriter::Process().Apply(batch).ok());
  EXPECT_EQ(std::memcmp(page.data() + 8, last, 5), 0);
}

TEST_P(TextWriterTest, WritesAcrossTwoPages) {
  uint8_t* mem = static_cast<uint8_t*>(
      mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  std::memset(mem, 0x90, 8192);
  mprotect(mem, 8192, PROT_READ | PROT_EXEC);
  const CodeWrite w = CodeWrite::Make(reinterpret_cast<uintptr_t>(mem) + 4094, kNop5, kCall);
  ASSERT_TRUE(TextWriter::Process().Apply({&w, 1}).ok());
  EXPECT_EQ(std::memcmp(mem + 4094, kCall, 5), 0);
  munmap(mem, 8192);
}

TEST_P(TextWriterTest, UnmappedAddressIsAClearError) {
  void* hole = mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  munmap(hole, 4096);
  const CodeWrite w = CodeWrite::Make(reinterpret_cast<uintptr_t>(hole), kNop5, kCall);
  const Status s = TextWriter::Process().Apply({&w, 1});
  EXPECT_FALSE(s.ok());
  EXPECT_FALSE(s.message().empty());
}

TEST_P(TextWriterTest, ChildAfterForkWritesItsOwnMemory) {
  CodePage page;
  // Open the strict descriptor (if any) in the parent first.
  const CodeWrite w = CodeWrite::Make(page.at(0), kNop5, kCall);
  ASSERT_TRUE(TextWriter::Process().Apply({&w, 1}).ok());
  const CodeWrite back = CodeWrite::Make(page.at(0), kCall, kNop5);
  const pid_t pid = fork();
  if (pid == 0) _exit(TextWriter::Process().Apply({&back, 1}).ok() && page.data()[0] == 0x90 ? 0 : 1);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(page.data()[0], 0xe8) << "the child's write landed in the parent";
}

// ---- The batched form: CodeBatch / StoreSource -------------------------------------

std::atomic<int> g_barriers{0};
void CountBarrier() { g_barriers.fetch_add(1); }

TEST_P(TextWriterTest, PhasesRunInOrderWithTheBarrierBetween) {
  CodePage page;
  // Phase 2 expects what phase 1 wrote: the phases are ordered.
  const uint8_t mid[] = {0xb8, 0x01, 0x00, 0x00, 0x00};
  CodeBatch batch;
  for (int i = 0; i < 20; ++i) batch.Add(page.at(16 * i), kNop5, mid, 5);
  batch.EndPhase();
  for (int i = 0; i < 20; ++i) batch.Add(page.at(16 * i), mid, kCall, 5);
  batch.EndPhase();
  batch.Add(page.at(1000), kNop5, kCall, 1);
  EXPECT_EQ(batch.phase_count(), 3u);
  g_barriers = 0;
  const auto before = TextWriter::Process().stats();
  ASSERT_TRUE(TextWriter::Process().Apply(batch, CountBarrier).ok());
  EXPECT_EQ(g_barriers.load(), 2) << "one barrier between each two phases";
  for (int i = 0; i < 20; ++i) EXPECT_EQ(std::memcmp(page.data() + 16 * i, kCall, 5), 0) << i;
  EXPECT_EQ(page.data()[1000], kCall[0]);
  EXPECT_EQ(page.Perms(), "r-xp");
  const auto after = TextWriter::Process().stats();
  if (GetParam() == WriteMode::kStrict) {
    // One pwrite per phase: the stores of a phase lie close together.
    EXPECT_EQ(after.proc_mem_writes, before.proc_mem_writes + 3);
  } else {
    EXPECT_EQ(after.protection_changes, before.protection_changes + 2)
        << "one window for the batch";
  }
}

TEST_P(TextWriterTest, StrictWritesAClusterAtOnceAndKeepsTheBytesBetween) {
  CodePage page;
  for (int i = 0; i < 4000; ++i) ASSERT_EQ(page.data()[i], 0x90);
  // Distinct bytes between the stores, which a cluster's pwrite rewrites.
  const uint8_t pattern[] = {0x0f, 0x1f, 0x44, 0x00, 0x08};
  std::vector<CodeWrite> prepare;
  for (int i = 0; i < 40; ++i)
    prepare.push_back(CodeWrite::Make(page.at(100 * i + 50), kNop5, pattern));
  ASSERT_TRUE(TextWriter::Process().Apply(prepare).ok());
  CodeBatch batch;
  for (int i = 0; i < 40; ++i) batch.Add(page.at(100 * i), kNop5, kCall, 5);
  const auto before = TextWriter::Process().stats();
  ASSERT_TRUE(TextWriter::Process().Apply(batch).ok());
  const auto after = TextWriter::Process().stats();
  if (GetParam() == WriteMode::kStrict) {
    EXPECT_EQ(after.proc_mem_writes, before.proc_mem_writes + 1);
  }
  EXPECT_EQ(after.writes, before.writes + 40);
  for (int i = 0; i < 40; ++i) {
    EXPECT_EQ(std::memcmp(page.data() + 100 * i, kCall, 5), 0) << i;
    EXPECT_EQ(std::memcmp(page.data() + 100 * i + 50, pattern, 5), 0)
        << "bytes between stores changed " << i;
    for (int j = 5; j < 50; ++j) ASSERT_EQ(page.data()[100 * i + j], 0x90) << i << "+" << j;
  }
}

TEST_P(TextWriterTest, AFailedPhaseUndoesEveryPhaseInReverseWithBarriers) {
  CodePage page;
  const uint8_t int3 = 0xcc;
  CodeBatch batch;
  for (int i = 0; i < 30; ++i) batch.Add(page.at(16 * i), kNop5, &int3, 1);  // like B2
  batch.EndPhase();
  for (int i = 0; i < 30; ++i) batch.Add(page.at(16 * i + 1), kNop5 + 1, kCall + 1, 4);  // like B3
  batch.EndPhase();
  for (int i = 0; i < 30; ++i) {
    // like B4; the 20th expects a byte that is not there
    const uint8_t expected = i == 20 ? 0x0f : int3;
    batch.Add(page.at(16 * i), &expected, kCall, 1);
  }
  g_barriers = 0;
  const auto before = TextWriter::Process().stats();
  const Status s = TextWriter::Process().Apply(batch, CountBarrier);
  EXPECT_EQ(s.code(), Errc::kUnexpectedBytes) << s.ToString();
  EXPECT_NE(s.message().find(AddressOf(page.at(16 * 20))), std::string::npos) << s.message();
  EXPECT_EQ(g_barriers.load(), 4) << "2 forward, 2 between the undone phases";
  for (int i = 0; i < 4095; ++i) ASSERT_EQ(page.data()[i], 0x90) << "byte " << i << " left written";
  EXPECT_EQ(TextWriter::Process().stats().rollbacks, before.rollbacks + 1);
}

TEST_P(TextWriterTest, AStoreOutsideTheDeclaredPagesFailsTheBatch) {
  CodePage page, other;
  CodeBatch batch;
  batch.Add(page.at(0), kNop5, kCall, 5);
  PageSet pages = batch.pages();  // the first page only
  batch.Add(other.at(0), kNop5, kCall, 5);
  const Status s = TextWriter::Process().Apply(batch, pages);
  EXPECT_EQ(s.code(), Errc::kInvalidArgument) << s.ToString();
  EXPECT_EQ(std::memcmp(page.data(), kNop5, 5), 0) << "the first store was not undone";
  EXPECT_EQ(std::memcmp(other.data(), kNop5, 5), 0) << "a store outside the window was made";
  EXPECT_EQ(other.Perms(), "r-xp");
}

// A source that makes its stores on demand, with empty places (size 0).
class EveryOtherSlot final : public StoreSource {
 public:
  explicit EveryOtherSlot(uintptr_t base) : base_(base) {}
  size_t phase_count() const override { return 1; }
  size_t phase_size(size_t) const override { return 1000; }
  void Fill(size_t, size_t first, size_t count, CodeStore* out) const override {
    for (size_t k = 0; k < count; ++k) {
      const size_t i = first + k;
      out[k] = i % 2 ? CodeStore{} : CodeStore{base_ + 4 * i, 0x90909090, 0x11223344, 4};
    }
    ++fills;
  }
  mutable int fills = 0;

 private:
  uintptr_t base_;
};

TEST_P(TextWriterTest, AStoreSourceIsAskedInBlocksAndEmptyPlacesAreSkipped) {
  CodePage page;
  const EveryOtherSlot source(page.at(0));
  PageSet pages;
  pages.Add(page.at(0), 4000);
  const auto before = TextWriter::Process().stats();
  ASSERT_TRUE(TextWriter::Process().Apply(source, pages).ok());
  EXPECT_GE(source.fills, 2) << "1000 stores in one Fill: the writer should ask in blocks";
  EXPECT_EQ(TextWriter::Process().stats().writes, before.writes + 500);
  for (size_t i = 0; i < 1000; ++i) {
    uint32_t v;
    std::memcpy(&v, page.data() + 4 * i, 4);
    ASSERT_EQ(v, i % 2 ? 0x90909090u : 0x11223344u) << i;
  }
}

INSTANTIATE_TEST_SUITE_P(BothModes, TextWriterTest,
                         ::testing::Values(WriteMode::kFast, WriteMode::kStrict),
                         [](const auto& info) { return std::string(WriteModeName(info.param)); });

// Under PR_SET_MDWE no mapping may become writable+executable: the fast mode
// must fail with a message pointing at the strict mode, which must work.
TEST(TextWriterMdweTest, StrictModeWorksWhereWriteExecuteIsForbidden) {
  const pid_t pid = fork();
  if (pid == 0) {
    CodePage page;
    if (prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0) _exit(77);
    const CodeWrite w = CodeWrite::Make(page.at(0), kNop5, kCall);
    TextWriter::Process().set_mode(WriteMode::kFast);
    const Status fast = TextWriter::Process().Apply({&w, 1});
    if (fast.ok() || fast.message().find("strict") == std::string::npos) _exit(2);
    if (page.data()[0] != 0x90) _exit(3);
    TextWriter::Process().set_mode(WriteMode::kStrict);
    if (!TextWriter::Process().Apply({&w, 1}).ok()) _exit(4);
    _exit(page.data()[0] == 0xe8 ? 0 : 5);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 77) GTEST_FAIL() << "PR_SET_MDWE unsupported by this kernel";
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace padhook
