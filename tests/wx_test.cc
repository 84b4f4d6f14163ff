// Strict W^X mode: no mapping of the process is ever writable and executable
// at once, while attach/detach storms patch functions that other threads run.
//
// A sampler thread reads /proc/self/maps continuously and records every
// snapshot with a mapping that is rwx, or a writable shared alias of
// executable file pages (reliab_support.h). The first test shows the checker
// catches both kinds (so a pass of the storm means something); the storm
// runs in the strict mode from a fresh process (ctest runs each test case in
// its own process), so stub pages, NOP-run conversion (protocol C), int3
// batches (protocol B) and metadata slots are all made under the sampler.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>

#include "padhook/hooks.h"
#include "padhook/metadata.h"
#include "padhook/text_writer.h"
#include "patch/live_patcher.h"
#include "reliab_support.h"

namespace padhook {
namespace {

using namespace std::chrono_literals;
using reliab::ParseMaps;
using reliab::ReadMaps;
using reliab::WxViolations;

// Samples /proc/self/maps from construction to Stop() (RAII: the destructor
// stops it). Shared: stop_ (owner writes, sampler reads); samples_ (sampler
// writes, owner reads after join); violations_, first_ (sampler writes, owner
// reads after join).
class MapsSampler {
 public:
  MapsSampler() {
    thread_ = std::thread([this] {
      while (!stop_.load(std::memory_order_relaxed)) {
        const std::string found = WxViolations(ParseMaps(ReadMaps()));
        ++samples_;
        if (!found.empty()) {
          if (violations_ == 0) first_ = found;
          ++violations_;
        }
      }
    });
  }
  ~MapsSampler() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  uint64_t samples() const { return samples_; }
  uint64_t violations() const { return violations_; }
  const std::string& first() const { return first_; }

 private:
  std::atomic<bool> stop_{false};
  uint64_t samples_ = 0, violations_ = 0;
  std::string first_;
  std::thread thread_;
};

// RAII for a mapping made by a test.
struct Mapping {
  void* at;
  size_t size;
  ~Mapping() {
    if (at != MAP_FAILED) munmap(at, size);
  }
};

TEST(WxCheckTest, CatchesRwxMappingsAndWritableAliases) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  EXPECT_EQ(WxViolations(ParseMaps(ReadMaps())), "") << "the test process starts clean";
  {
    Mapping rwx{
        mmap(nullptr, page, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
        page};
    ASSERT_NE(rwx.at, MAP_FAILED) << "this kernel refuses rwx mappings (MDWE?)";
    const std::string found = WxViolations(ParseMaps(ReadMaps()));
    EXPECT_NE(found.find("rwx mapping"), std::string::npos) << found;
  }
  {
    // The second-mapping technique: one memfd mapped r-x and rw- shared.
    const int fd = memfd_create("wx_alias", MFD_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ftruncate(fd, static_cast<off_t>(page)), 0);
    Mapping x{mmap(nullptr, page, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0), page};
    Mapping w{mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), page};
    close(fd);
    ASSERT_NE(x.at, MAP_FAILED);
    ASSERT_NE(w.at, MAP_FAILED);
    const std::string found = WxViolations(ParseMaps(ReadMaps()));
    EXPECT_NE(found.find("writable alias"), std::string::npos) << found;
  }
  EXPECT_EQ(WxViolations(ParseMaps(ReadMaps())), "");
}

// The fast mode's window is rwx: the same sampler sees it when the writer
// holds a window open long enough (here: one opened on the test's own
// anonymous code page and held by a phase barrier that sleeps).
void SleepBetweenPhases() { std::this_thread::sleep_for(50ms); }

TEST(WxCheckTest, SamplerSeesTheFastModesWindow) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  Mapping code{mmap(nullptr, page, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
               page};
  ASSERT_NE(code.at, MAP_FAILED);
  TextWriter::Process().set_mode(WriteMode::kFast);
  CodeBatch batch;
  const uint64_t zero = 0, one = 1, two = 2;
  const auto at = reinterpret_cast<uintptr_t>(code.at);
  batch.Add(at, &zero, &one, 8);
  batch.EndPhase();
  batch.Add(at, &one, &two, 8);
  MapsSampler sampler;
  ASSERT_TRUE(TextWriter::Process().Apply(batch, SleepBetweenPhases).ok());
  sampler.Stop();
  EXPECT_GT(sampler.violations(), 0u)
      << "the fast mode's rwx window was not seen in " << sampler.samples() << " samples";
  EXPECT_EQ(WxViolations(ParseMaps(ReadMaps())), "") << "the window was not closed";
}

std::atomic<uint64_t> g_entries{0};
void CountEntry(padhook_call*, void*) { g_entries.fetch_add(1, std::memory_order_relaxed); }

TEST(WxStrictTest, NoWritableExecutableMappingDuringAttachDetachStorms) {
  TextWriter::Process().set_mode(WriteMode::kStrict);
  const std::vector<reliab::Fn> fns = reliab::StressFunctions(50);
  std::vector<const void*> all;
  for (reliab::Fn f : fns) all.push_back(reinterpret_cast<const void*>(f));
  const TextWriter::Stats before = TextWriter::Process().stats();

  MapsSampler sampler;
  reliab::Workers workers(fns, 2);
  std::mt19937 rng(11);
  uint64_t cycles = 0;
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < 3s || cycles < 30) {
    std::vector<const void*> some;
    for (const void* f : all) {
      if (rng() % 3 == 0) some.push_back(f);
    }
    Hooks hooks{CountEntry, nullptr, nullptr};
    Result<Attachment> a = AttachAddresses(all, hooks);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    Result<Attachment> b = AttachAddresses(some, hooks);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 2000));
    ASSERT_TRUE(a->Detach().ok());
    ASSERT_TRUE(b->Detach().ok());
    if (cycles % 10 == 9) {
      ASSERT_TRUE(MetadataTable::Process().Trim().ok());
    }
    ++cycles;
  }
  workers.Stop();
  sampler.Stop();
  const TextWriter::Stats after = TextWriter::Process().stats();
  const patch::PatcherStats patcher = patch::Stats();
  EXPECT_EQ(sampler.violations(), 0u) << "first violation: " << sampler.first();
  EXPECT_GT(sampler.samples(), 100u);
  EXPECT_EQ(workers.wrong(), 0u);
  EXPECT_GT(g_entries.load(), 0u) << "no hooked call was seen: nothing was really patched";
  EXPECT_EQ(after.protection_changes, before.protection_changes) << "strict mode used mprotect";
  EXPECT_GT(after.proc_mem_writes, before.proc_mem_writes);
  EXPECT_EQ(patcher.stop_the_world, 1u) << "g++'s NOP runs are converted under the sampler too";
  std::printf(
      "strict W^X storm: %lu attach/detach cycles of %zu+ functions, %lu calls, %lu "
      "hooked, %lu maps samples, %lu violations, %lu pwrites, int3 hits %lu\n",
      static_cast<unsigned long>(cycles), all.size(), static_cast<unsigned long>(workers.calls()),
      static_cast<unsigned long>(g_entries.load()), static_cast<unsigned long>(sampler.samples()),
      static_cast<unsigned long>(sampler.violations()),
      static_cast<unsigned long>(after.proc_mem_writes - before.proc_mem_writes),
      static_cast<unsigned long>(patcher.breakpoint_hits));
}

}  // namespace
}  // namespace padhook
