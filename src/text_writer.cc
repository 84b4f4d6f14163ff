// TextWriter: the guarantees are numbered at the top of padhook/text_writer.h.
//
// Cost model (measured on the 2-vCPU KVM guest of docs/benchmarks.md): an
// mprotect pair costs 2.5-6 us plus ~0.2 us per present page, a PROCMAP_QUERY
// ioctl 0.6 us, a pwrite to /proc/self/mem ~1.5 us plus ~1 us per page. So a
// batch makes one mprotect pair per run of pages (kFast) and one pwrite per
// cluster of neighbouring stores (kStrict), never one per store, and the
// per-store work is a load, a compare, a store and a load.
#include "padhook/text_writer.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "fault/fault.h"
#include "format.h"

namespace padhook {
namespace {

// kStrict: stores of a phase closer than this share one pwrite. Below a page,
// so the bytes between two stores of a pwrite lie on the pages of those two
// stores, which the window checked are mapped and readable.
constexpr uintptr_t kStrictMaxGap = 2048;
// kStrict: the most bytes one pwrite covers (the size of TextWriter::chunk_).
constexpr size_t kStrictMaxChunk = 128 * 1024;
// kFast: runs of pages in one mapping at most this many pages apart share one
// mprotect pair (a pair costs more than changing ~16 more page table entries).
constexpr uintptr_t kFastMaxGapPages = 16;
// prctl(PR_GET_MDWE) and its flag (Linux 6.3; Debian 12's headers predate them).
constexpr int kPrGetMdwe = 66;
constexpr int kPrMdweRefuseExecGain = 1;
// Tries of one undo store before the rollback reports it failed.
constexpr int kUndoAttempts = 4;
// Stores asked from a StoreSource at a time (on the stack).
constexpr size_t kFillBlock = 128;

// The system calls of the writer, each behind its fault-injection point
// (src/fault/fault.h): a failure injected there looks like the real one.
int Mprotect(uintptr_t address, size_t length, int prot) noexcept {
  if (fault::Fail(fault::Kind::kMprotect)) {
    errno = ENOMEM;
    return -1;
  }
  return mprotect(reinterpret_cast<void*>(address), length, prot);
}
ssize_t Pwrite(int fd, const void* buffer, size_t length, uintptr_t address) noexcept {
  if (fault::Fail(fault::Kind::kPwrite)) {
    errno = EIO;
    return -1;
  }
  return pwrite(fd, buffer, length, static_cast<off_t>(address));
}

// Read once at load time: the per-store paths use it without a guard.
const uintptr_t g_page_size = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
uintptr_t PageSize() { return g_page_size; }

uint64_t Mask(uint32_t size) { return size >= 8 ? ~uint64_t{0} : (uint64_t{1} << (8 * size)) - 1; }

std::string Hex(uint64_t bytes, uint32_t n) {
  std::string s;
  char buf[4];
  for (uint32_t i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof(buf), i ? " %02x" : "%02x",
                  static_cast<unsigned>((bytes >> (8 * i)) & 0xff));
    s += buf;
  }
  return s;
}

// kFast reads and writes. One access when size and alignment allow (guarantee
// 3), else a copy in any grouping. Code bytes are not C++ objects: the atomics
// and barriers only keep the compiler from merging, splitting, reordering or
// skipping these accesses (a read-back must really read).
// Keeps the compiler from assuming what code bytes hold across this point.
inline void CompilerBarrier() noexcept { asm volatile("" ::: "memory"); }

[[gnu::always_inline]] inline uint64_t LoadCode(uintptr_t address, uint32_t size) noexcept {
  if (size == 8 && address % 8 == 0)
    return __atomic_load_n(reinterpret_cast<const uint64_t*>(address), __ATOMIC_ACQUIRE);
  if (size == 4 && address % 4 == 0)
    return __atomic_load_n(reinterpret_cast<const uint32_t*>(address), __ATOMIC_ACQUIRE);
  if (size == 2 && address % 2 == 0)
    return __atomic_load_n(reinterpret_cast<const uint16_t*>(address), __ATOMIC_ACQUIRE);
  if (size == 1)
    return __atomic_load_n(reinterpret_cast<const uint8_t*>(address), __ATOMIC_ACQUIRE);
  // No single access: guarantee 3 promises nothing, so any grouping will do.
  uint64_t value = 0;
  CompilerBarrier();  // really read: not merged with the stores around it
  switch (size) {
    case 3:
      std::memcpy(&value, reinterpret_cast<const void*>(address), 3);
      break;
    case 5:
      std::memcpy(&value, reinterpret_cast<const void*>(address), 5);
      break;
    case 6:
      std::memcpy(&value, reinterpret_cast<const void*>(address), 6);
      break;
    case 7:
      std::memcpy(&value, reinterpret_cast<const void*>(address), 7);
      break;
    default:
      std::memcpy(&value, reinterpret_cast<const void*>(address), size & 7 ? size & 7 : 8);
      break;
  }
  CompilerBarrier();
  return value;
}

[[gnu::always_inline]] inline void StoreCode(uintptr_t address, uint64_t value,
                                             uint32_t size) noexcept {
  if (size == 8 && address % 8 == 0) {
    __atomic_store_n(reinterpret_cast<uint64_t*>(address), value, __ATOMIC_RELEASE);
  } else if (size == 4 && address % 4 == 0) {
    __atomic_store_n(reinterpret_cast<uint32_t*>(address), static_cast<uint32_t>(value),
                     __ATOMIC_RELEASE);
  } else if (size == 2 && address % 2 == 0) {
    __atomic_store_n(reinterpret_cast<uint16_t*>(address), static_cast<uint16_t>(value),
                     __ATOMIC_RELEASE);
  } else if (size == 1) {
    __atomic_store_n(reinterpret_cast<uint8_t*>(address), static_cast<uint8_t>(value),
                     __ATOMIC_RELEASE);
  } else {
    CompilerBarrier();
    switch (size) {
      case 3:
        std::memcpy(reinterpret_cast<void*>(address), &value, 3);
        break;
      case 5:
        std::memcpy(reinterpret_cast<void*>(address), &value, 5);
        break;
      case 6:
        std::memcpy(reinterpret_cast<void*>(address), &value, 6);
        break;
      case 7:
        std::memcpy(reinterpret_cast<void*>(address), &value, 7);
        break;
      default:
        std::memcpy(reinterpret_cast<void*>(address), &value, size & 7 ? size & 7 : 8);
        break;
    }
    CompilerBarrier();
  }
}

// Guarantees 2..4 for one store in kFast mode: 0 when done, 1 when the bytes
// were not as expected (nothing stored), 2 when they do not read back;
// *found gets the bytes seen. One access of the store's width when its
// alignment allows (guarantee 3).
template <typename T>
[[gnu::always_inline]] inline int StoreVerifiedAs(uintptr_t address, uint64_t expected,
                                                  uint64_t replacement, uint64_t* found) noexcept {
  T* at = reinterpret_cast<T*>(address);
  const T now = __atomic_load_n(at, __ATOMIC_ACQUIRE);
  if (now != static_cast<T>(expected)) {
    *found = now;
    return 1;
  }
  __atomic_store_n(at, static_cast<T>(replacement), __ATOMIC_RELEASE);
  const T back = __atomic_load_n(at, __ATOMIC_ACQUIRE);
  if (back != static_cast<T>(replacement)) {
    *found = back;
    return 2;
  }
  return 0;
}

[[gnu::always_inline]] inline int StoreVerified(uintptr_t address, uint64_t expected,
                                                uint64_t replacement, uint32_t size,
                                                uint64_t* found) noexcept {
  switch (size) {
    case 8:
      if (address % 8 == 0) return StoreVerifiedAs<uint64_t>(address, expected, replacement, found);
      break;
    case 4:
      if (address % 4 == 0) return StoreVerifiedAs<uint32_t>(address, expected, replacement, found);
      break;
    case 2:
      if (address % 2 == 0) return StoreVerifiedAs<uint16_t>(address, expected, replacement, found);
      break;
    case 1:
      return StoreVerifiedAs<uint8_t>(address, expected, replacement, found);
  }
  const uint64_t mask = Mask(size);
  const uint64_t now = LoadCode(address, size);
  if ((now ^ expected) & mask) {
    *found = now;
    return 1;
  }
  StoreCode(address, replacement, size);
  const uint64_t back = LoadCode(address, size);
  if ((back ^ replacement) & mask) {
    *found = back;
    return 2;
  }
  return 0;
}

// The low `size` bytes of `value` from/to a byte buffer (kStrict's chunk).
uint64_t LoadBuffer(const uint8_t* at, uint32_t size) noexcept {
  uint64_t value = 0;
  std::memcpy(&value, at, size);
  return value;
}

int ProtFromMaps(const std::string& perms) {
  int prot = 0;
  if (perms.size() >= 3) {
    if (perms[0] == 'r') prot |= PROT_READ;
    if (perms[1] == 'w') prot |= PROT_WRITE;
    if (perms[2] == 'x') prot |= PROT_EXEC;
  }
  return prot;
}

struct Mapping {
  uintptr_t begin, end;
  int prot;
};

// PROCMAP_QUERY (Linux 6.11): the mapping containing an address, straight from
// the kernel's VMA tree, without formatting and parsing all of /proc/self/maps
// (which costs ~100 us in a process whose text padhook has been writing).
// Declared here because Debian 12's kernel headers predate it.
struct ProcmapQuery {
  uint64_t size;
  uint64_t query_flags;
  uint64_t query_addr;
  uint64_t vma_start;
  uint64_t vma_end;
  uint64_t vma_flags;
  uint64_t vma_page_size;
  uint64_t vma_offset;
  uint64_t inode;
  uint32_t dev_major;
  uint32_t dev_minor;
  uint32_t vma_name_size;
  uint32_t build_id_size;
  uint64_t vma_name_addr;
  uint64_t build_id_addr;
};
constexpr unsigned long kProcmapQuery = _IOWR('f', 17, ProcmapQuery);
constexpr uint64_t kProcmapReadable = 1, kProcmapWritable = 2, kProcmapExecutable = 4;

// /proc/self/maps, opened once per process (a descriptor opened before fork()
// describes the parent). Only used under the TextWriter mutex.
int MapsFd() {
  static int fd = -1;
  static pid_t owner = 0;
  if (fd < 0 || owner != getpid()) {
    if (fd >= 0) close(fd);
    fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    owner = getpid();
  }
  return fd;
}

Result<Mapping> QueryMappingByParsing(uintptr_t address) {
  std::ifstream maps("/proc/self/maps");
  if (!maps) return Status::FromErrno(errno, "reading /proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    uintptr_t begin, end;
    char perms[8] = {};
    if (std::sscanf(line.c_str(), "%" SCNxPTR "-%" SCNxPTR " %7s", &begin, &end, perms) == 3 &&
        begin <= address && address < end) {
      return Mapping{begin, end, ProtFromMaps(perms)};
    }
  }
  return Status(Errc::kInvalidArgument, "address " + AddressText(address) + " is not mapped");
}

Result<Mapping> QueryMapping(uintptr_t address) {
  static bool ioctl_works = true;  // under the TextWriter mutex
  if (ioctl_works) {
    ProcmapQuery q = {};
    q.size = sizeof(q);
    q.query_addr = address;
    if (ioctl(MapsFd(), kProcmapQuery, &q) == 0) {
      int prot = 0;
      if (q.vma_flags & kProcmapReadable) prot |= PROT_READ;
      if (q.vma_flags & kProcmapWritable) prot |= PROT_WRITE;
      if (q.vma_flags & kProcmapExecutable) prot |= PROT_EXEC;
      return Mapping{q.vma_start, q.vma_end, prot};
    }
    if (errno == ENOENT) {
      return Status(Errc::kInvalidArgument, "address " + AddressText(address) + " is not mapped");
    }
    ioctl_works = false;  // older kernel (ENOTTY) or no /proc: parse instead
  }
  return QueryMappingByParsing(address);
}

}  // namespace

// What went wrong in a batch, recorded without allocating (Commit runs while
// other threads are stopped); turned into a message afterwards.
struct TextWriter::Failure {
  enum Kind { kNone, kMismatch, kReadBack, kWriteError, kOutside } kind = kNone;
  uintptr_t address = 0;
  uint32_t size = 0;
  uint64_t found = 0;
  uint64_t wanted = 0;  // expected (kMismatch) or written (kReadBack)
  int error = 0;        // errno (kWriteError)
  bool rollback_failed = false;
  uintptr_t rollback_address = 0;
  uint32_t rollback_size = 0;
  uint64_t rollback_found = 0, rollback_wanted = 0;

  void Set(Kind k, uintptr_t at, uint32_t n, uint64_t now, uint64_t want, int err = 0) noexcept {
    kind = k;
    address = at;
    size = n;
    found = now;
    wanted = want;
    error = err;
  }

  Status ToStatus() const {
    std::string message;
    Errc code = Errc::kUnexpectedBytes;
    switch (kind) {
      case kMismatch:
        message = "code at " + AddressText(address) + " is " + Hex(found, size) + ", expected " +
                  Hex(wanted, size) + " (another tool may have patched it)";
        break;
      case kReadBack:
        message = "code at " + AddressText(address) + " reads back as " + Hex(found, size) +
                  " after writing " + Hex(wanted, size);
        break;
      case kWriteError:
        code = Errc::kSystem;
        message = "writing code at " + AddressText(address) +
                  " via /proc/self/mem: " + std::strerror(error ? error : EIO);
        break;
      case kOutside:
        code = Errc::kInvalidArgument;
        message = "code store at " + AddressText(address) + " lies outside the pages of its batch";
        break;
      case kNone:
        message = "code write failed";
        break;
    }
    if (rollback_failed) {
      message += "; rollback ALSO failed: code at " + AddressText(rollback_address) + " is " +
                 Hex(rollback_found, rollback_size) + ", expected " +
                 Hex(rollback_wanted, rollback_size);
    }
    return Status(code, std::move(message));
  }
};

// The pages of a batch, ready to be written: kFast makes each run writable
// (keeping its other permissions) and restores the original protections when
// it goes out of scope, on every path; kStrict only checks that every page is
// mapped and readable (it reads code with plain loads). Runs are split where
// mappings end, so each has one original protection.
class TextWriter::Window {
 public:
  static constexpr int kRestoreAttempts = 4;
  Window(const PageSet& pages, WriteMode mode, uint64_t* mprotect_count)
      : mprotect_count_(mprotect_count) {
    status_ = PlanRuns(pages.Ranges());
    if (!status_.ok()) return;
    for (Run& run : runs_) {
      if (mode == WriteMode::kStrict) {
        if (!(run.original_prot & PROT_READ)) {
          status_ = Status(Errc::kInvalidArgument,
                           "code at " + AddressText(run.begin) + " is not readable");
          return;
        }
        continue;
      }
      if (run.original_prot & PROT_WRITE) continue;
      ++*mprotect_count_;
      if (Mprotect(run.begin, run.end - run.begin, run.original_prot | PROT_WRITE) != 0) {
        const int err = errno;
        status_ = Status::FromErrno(
            err, "making code at " + AddressText(run.begin) + " writable (fast write mode)" +
                     (err == EACCES ? "; the kernel forbids writable+executable mappings here "
                                      "(PR_SET_MDWE or an LSM): use the strict write mode "
                                      "(PADHOOK_WRITE_MODE=strict)"
                                    : ""));
        return;
      }
      run.changed = true;
    }
  }

  ~Window() {
    for (Run& run : runs_) {
      if (!run.changed) continue;
      // Restoring can fail only transiently (ENOMEM: the kernel could not
      // split or merge the mapping's records), so it is tried a few times;
      // if it still fails the pages stay writable, the lesser harm than
      // aborting (tests/fault_test.cc injects one failure here and checks
      // that no page is left writable).
      for (int attempt = 0; attempt < kRestoreAttempts; ++attempt) {
        ++*mprotect_count_;
        if (Mprotect(run.begin, run.end - run.begin, run.original_prot) == 0) break;
      }
    }
  }

  Window(const Window&) = delete;
  Window& operator=(const Window&) = delete;

  const Status& status() const { return status_; }

  // True when [address, address + size) lies in the window's runs. Stores
  // come in address order, so the run of the previous one is tried first.
  [[gnu::always_inline]] bool Covers(uintptr_t address, size_t size) const noexcept {
    if (address >= last_begin_ && address + size <= last_end_) [[likely]]
      return true;
    return CoversSlow(address, size);
  }

 private:
  [[gnu::noinline]] bool CoversSlow(uintptr_t address, size_t size) const noexcept {
    size_t r = cursor_;
    if (r >= runs_.size() || address < runs_[r].begin || address >= runs_[r].end) {
      auto it = std::upper_bound(runs_.begin(), runs_.end(), address,
                                 [](uintptr_t value, const Run& run) { return value < run.begin; });
      if (it == runs_.begin()) return false;
      r = static_cast<size_t>(it - runs_.begin()) - 1;
      if (address >= runs_[r].end) return false;
      cursor_ = r;
    }
    last_begin_ = runs_[r].begin;
    last_end_ = runs_[r].end;
    for (uintptr_t covered = runs_[r].end; covered < address + size; covered = runs_[r].end) {
      if (++r >= runs_.size() || runs_[r].begin != covered) return false;
    }
    return true;
  }

  struct Run {
    uintptr_t begin;
    uintptr_t end;
    int original_prot;
    bool changed = false;
  };

  // One run per stretch of one mapping; page ranges of the same mapping less
  // than kFastMaxGapPages apart are joined (the pages between are mapped: the
  // mapping covers them).
  Status PlanRuns(const std::vector<std::pair<uintptr_t, uintptr_t>>& ranges) {
    const uintptr_t max_gap = kFastMaxGapPages * PageSize();
    size_t i = 0;
    uintptr_t at = ranges.empty() ? 0 : ranges[0].first;
    while (i < ranges.size()) {
      Result<Mapping> m = QueryMapping(at);
      if (!m.ok()) return m.status();
      uintptr_t stop = std::min(ranges[i].second, m->end);
      if (stop == ranges[i].second) {
        ++i;
        while (i < ranges.size() && ranges[i].first < m->end && ranges[i].first - stop <= max_gap) {
          stop = std::min(ranges[i].second, m->end);
          if (stop != ranges[i].second) break;  // goes on past this mapping
          ++i;
        }
      }
      runs_.push_back(Run{at, stop, m->prot});
      if (i < ranges.size()) at = std::max(stop, ranges[i].first);
    }
    return Status::Ok();
  }

  std::vector<Run> runs_;
  mutable size_t cursor_ = 0;
  mutable uintptr_t last_begin_ = 0, last_end_ = 0;  // the run Covers found last
  Status status_;
  uint64_t* mprotect_count_;
};

// ---- PageSet, CodeBatch -----------------------------------------------------

void PageSet::AddRange(uintptr_t address, size_t size) {
  const uintptr_t page = PageSize(), mask = ~(page - 1);
  const uintptr_t first = address & mask;
  const uintptr_t end = ((address + size - 1) & mask) + page;
  if (!ranges_.empty() && first >= ranges_.back().first && first <= ranges_.back().second) {
    ranges_.back().second = std::max(ranges_.back().second, end);
  } else {
    // Only a range that starts after the last one keeps the list sorted and
    // disjoint without a merge.
    if (!ranges_.empty() && first < ranges_.back().second) sorted_ = false;
    ranges_.emplace_back(first, end);
  }
  last_first_ = ranges_.back().first;
  last_end_ = ranges_.back().second;
}

const std::vector<std::pair<uintptr_t, uintptr_t>>& PageSet::Ranges() const {
  if (!sorted_) {
    std::sort(ranges_.begin(), ranges_.end());
    size_t kept = 0;
    for (const auto& r : ranges_) {
      if (kept > 0 && r.first <= ranges_[kept - 1].second) {
        ranges_[kept - 1].second = std::max(ranges_[kept - 1].second, r.second);
      } else {
        ranges_[kept++] = r;
      }
    }
    ranges_.resize(kept);
    sorted_ = true;
  }
  return ranges_;
}

void CodeBatch::Add(uintptr_t address, const void* expected, const void* replacement, size_t size) {
  CodeStore s;
  s.address = address;
  s.size = static_cast<uint32_t>(std::min<size_t>(size, 8));
  std::memcpy(&s.expected, expected, s.size);
  std::memcpy(&s.replacement, replacement, s.size);
  Add(s);
}

void CodeBatch::Add(const CodeStore& store) {
  stores_.push_back(store);
  if (store.size != 0) pages_.Add(store.address, store.size);
}

void CodeBatch::EndPhase() {
  if (stores_.size() > (phase_ends_.empty() ? 0 : phase_ends_.back()))
    phase_ends_.push_back(stores_.size());
}

size_t CodeBatch::phase_count() const {
  const size_t closed = phase_ends_.size();
  return closed + (stores_.size() > (closed ? phase_ends_.back() : 0) ? 1 : 0);
}

size_t CodeBatch::phase_size(size_t phase) const {
  const size_t end = phase < phase_ends_.size() ? phase_ends_[phase] : stores_.size();
  return end - PhaseBegin(phase);
}

void CodeBatch::Fill(size_t phase, size_t first, size_t count, CodeStore* out) const {
  std::memcpy(out, stores_.data() + PhaseBegin(phase) + first, count * sizeof(CodeStore));
}

// ---- TextWriter ---------------------------------------------------------------

const char* WriteModeName(WriteMode mode) noexcept {
  return mode == WriteMode::kStrict ? "strict" : "fast";
}

CodeWrite CodeWrite::Make(uintptr_t address, std::span<const uint8_t> expected,
                          std::span<const uint8_t> replacement) {
  CodeWrite w;
  w.address = address;
  w.size = static_cast<uint8_t>(std::min(expected.size(), kMaxBytes));
  std::memcpy(w.expected, expected.data(), w.size);
  std::memcpy(w.replacement, replacement.data(), std::min<size_t>(replacement.size(), w.size));
  return w;
}

TextWriter& TextWriter::Process() {
  static TextWriter* writer = new TextWriter();  // never destroyed: used until exit
  return *writer;
}

namespace {
bool MdweRefusesExecGain() noexcept {
  const int flags = prctl(kPrGetMdwe, 0, 0, 0, 0);
  return flags > 0 && (flags & kPrMdweRefuseExecGain) != 0;
}

WriteMode DefaultWriteMode() noexcept {
  // PADHOOK_STRICT_WX=1 (for a tracer to pass on to the traced program) or
  // PADHOOK_WRITE_MODE=strict ask for W^X; PADHOOK_STRICT_WX=0 and
  // PADHOOK_WRITE_MODE=fast for the fast mode. Under MDWE the fast mode
  // cannot work (the kernel refuses writable+executable pages), so strict is
  // the default there.
  const char* wx = std::getenv("PADHOOK_STRICT_WX");
  const char* mode = std::getenv("PADHOOK_WRITE_MODE");
  if ((wx != nullptr && *wx != '\0' && std::strcmp(wx, "0") != 0) ||
      (mode != nullptr && std::strcmp(mode, "strict") == 0)) {
    return WriteMode::kStrict;
  }
  if ((wx != nullptr && std::strcmp(wx, "0") == 0) ||
      (mode != nullptr && std::strcmp(mode, "fast") == 0)) {
    return WriteMode::kFast;
  }
  return MdweRefusesExecGain() ? WriteMode::kStrict : WriteMode::kFast;
}
}  // namespace

TextWriter::TextWriter() : mode_(DefaultWriteMode()) {}

WriteMode TextWriter::mode() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return mode_;
}

void TextWriter::set_mode(WriteMode mode) {
  std::lock_guard<std::mutex> lock(mutex_);
  mode_ = mode;
}

TextWriter::Stats TextWriter::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

Status TextWriter::Apply(std::span<const CodeWrite> writes) {
  CodeBatch batch;
  batch.Reserve(writes.size());
  for (const CodeWrite& w : writes) {
    if (w.size == 0 || w.size > CodeWrite::kMaxBytes || w.address == 0) {
      return Status(Errc::kInvalidArgument, "bad code write at " + AddressText(w.address));
    }
    // Longer than 8 bytes: in 8-byte pieces of one phase (such a write was
    // never one store).
    for (size_t at = 0; at < w.size; at += 8) {
      batch.Add(w.address + at, w.expected + at, w.replacement + at,
                std::min<size_t>(8, w.size - at));
    }
    batch.EndPhase();
  }
  return Apply(batch);
}

Status TextWriter::Apply(const CodeBatch& batch, void (*between_phases)()) {
  for (const CodeStore& s : batch.stores()) {
    if (s.size == 0 || s.size > 8 || s.address == 0) {
      return Status(Errc::kInvalidArgument, "bad code store at " + AddressText(s.address));
    }
  }
  return Apply(batch, batch.pages(), between_phases);
}

Status TextWriter::Apply(const StoreSource& source, const PageSet& pages,
                         void (*between_phases)()) {
  std::lock_guard<std::mutex> lock(mutex_);
  return ApplyLocked(source, pages, between_phases);
}

Status TextWriter::ApplyLocked(const StoreSource& source, const PageSet& pages,
                               void (*between_phases)()) {
  ++stats_.batches;
  size_t stores = 0;
  for (size_t p = 0; p < source.phase_count(); ++p) stores += source.phase_size(p);
  if (stores == 0) return Status::Ok();
  if (mode_ == WriteMode::kStrict) {
    if (Status opened = OpenProcMemLocked(); !opened.ok()) return opened;
  }
  const Window window(pages, mode_, &stats_.protection_changes);
  if (!window.status().ok()) return window.status();
  Failure failure;
  if (RunLocked(source, window, between_phases, &failure)) return Status::Ok();
  return failure.ToStatus();
}

Status TextWriter::OpenProcMemLocked() {
  if (chunk_.size() < kStrictMaxChunk) chunk_.resize(kStrictMaxChunk);
  if (proc_mem_fd_ >= 0 && proc_mem_pid_ == getpid()) return Status::Ok();
  // A descriptor opened before fork() still refers to the PARENT's memory.
  if (proc_mem_fd_ >= 0) close(proc_mem_fd_);
  if (fault::Fail(fault::Kind::kOpen)) {
    proc_mem_fd_ = -1;
    errno = EMFILE;
  } else {
    proc_mem_fd_ = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
  }
  proc_mem_pid_ = getpid();
  if (proc_mem_fd_ < 0) return Status::FromErrno(errno, "opening /proc/self/mem (strict write mode)");
  return Status::Ok();
}

bool TextWriter::RunLocked(const StoreSource& source, const Window& window,
                           void (*between_phases)(), Failure* failure) noexcept {
  const size_t phases = source.phase_count();
  for (size_t p = 0; p < phases; ++p) {
    if (p > 0 && between_phases != nullptr) between_phases();
    size_t stored = 0;
    const bool ok = mode_ == WriteMode::kStrict
                        ? RunPhaseStrict(source, window, p, &stored, failure)
                        : RunPhaseFast(source, window, p, &stored, failure);
    if (!ok) {
      RollbackLocked(source, p, stored, between_phases, failure);
      return false;
    }
  }
  return true;
}

// Guarantees 2..4 for one phase, store by store. *stored: how many of its
// stores (from the first) may have been made, for the rollback.
bool TextWriter::RunPhaseFast(const StoreSource& source, const Window& window, size_t phase,
                              size_t* stored, Failure* failure) noexcept {
  const size_t n = source.phase_size(phase);
  CodeStore block[kFillBlock];
  for (size_t first = 0; first < n; first += kFillBlock) {
    const size_t count = std::min(kFillBlock, n - first);
    source.Fill(phase, first, count, block);
    int64_t made = static_cast<int64_t>(count);  // stores in the block, empty places taken off
    for (size_t k = 0; k < count; ++k) {
      const CodeStore& s = block[k];
      uint64_t found;
      int failed;
      if (s.size == 8 && s.address % 8 == 0 && window.Covers(s.address, 8)) [[likely]] {
        failed = StoreVerifiedAs<uint64_t>(s.address, s.expected, s.replacement,
                                           &found);  // protocol A's word
      } else if (s.size == 0) {
        --made;  // an empty place of the phase
        continue;
      } else if (s.size > 8 || !window.Covers(s.address, s.size)) {
        *stored = first + k;
        stats_.writes += k;
        failure->Set(Failure::kOutside, s.address, s.size, 0, 0);
        return false;
      } else {
        failed = StoreVerified(s.address, s.expected, s.replacement, s.size, &found);
      }
      if (failed) [[unlikely]] {
        const bool stored_it = failed == 2;
        *stored = first + k + stored_it;
        stats_.writes += k + stored_it;
        failure->Set(stored_it ? Failure::kReadBack : Failure::kMismatch, s.address, s.size, found,
                     stored_it ? s.replacement : s.expected);
        return false;
      }
    }
    stats_.writes += static_cast<uint64_t>(made);
  }
  *stored = n;
  return true;
}

// The same with one pwrite per cluster of neighbouring stores: the cluster's
// bytes are copied (plain loads: the window checked the pages), each store is
// verified and applied to the copy in order, then the copy is written in one
// pwrite and read back. A store that is not as expected stops its cluster
// before anything of it is written.
bool TextWriter::RunPhaseStrict(const StoreSource& source, const Window& window, size_t phase,
                                size_t* stored, Failure* failure) noexcept {
  const size_t n = source.phase_size(phase);
  CodeStore block[kFillBlock];
  uint8_t* buffer = chunk_.data();
  uintptr_t low = 0;          // the open cluster's first byte,
  size_t length = 0;          // how many of its bytes are in buffer,
  size_t cluster_first = 0;   // and its first store,
  size_t cluster_stores = 0;  // and how many stores it has
  bool open = false;
  for (size_t first = 0; first < n; first += kFillBlock) {
    const size_t count = std::min(kFillBlock, n - first);
    source.Fill(phase, first, count, block);
    for (size_t k = 0; k < count; ++k) {
      const CodeStore& s = block[k];
      const size_t i = first + k;
      if (s.size == 0) continue;  // an empty slot of the phase
      if (s.size > 8 || !window.Covers(s.address, s.size)) {
        *stored = open ? cluster_first : i;
        failure->Set(Failure::kOutside, s.address, s.size, 0, 0);
        return false;
      }
      if (open && (s.address < low || s.address > low + length + kStrictMaxGap ||
                   s.address + s.size - low > kStrictMaxChunk)) {
        *stored = i;  // the cluster's stores were attempted
        if (!FlushChunkLocked(low, length, failure)) return false;
        stats_.writes += cluster_stores;
        open = false;
      }
      if (!open) {
        open = true;
        low = s.address;
        length = 0;
        cluster_first = i;
        cluster_stores = 0;
      }
      ++cluster_stores;
      const size_t needed = s.address + s.size - low;
      if (needed > length) {
        std::memcpy(buffer + length, reinterpret_cast<const void*>(low + length), needed - length);
        length = needed;
      }
      uint8_t* at = buffer + (s.address - low);
      const uint64_t now = LoadBuffer(at, s.size);
      if ((now ^ s.expected) & Mask(s.size)) {
        *stored = cluster_first;
        failure->Set(Failure::kMismatch, s.address, s.size, now, s.expected);
        return false;
      }
      std::memcpy(at, &s.replacement, s.size);
    }
  }
  *stored = n;
  if (open) {
    if (!FlushChunkLocked(low, length, failure)) return false;
    stats_.writes += cluster_stores;
  }
  return true;
}

// kStrict: writes chunk_[0, length) at `low` with one pwrite, then reads it back.
bool TextWriter::FlushChunkLocked(uintptr_t low, size_t length, Failure* failure) noexcept {
  const uint8_t* buffer = chunk_.data();
  ++stats_.proc_mem_writes;
  errno = 0;
  const ssize_t n = Pwrite(proc_mem_fd_, buffer, length, low);
  if (n != static_cast<ssize_t>(length)) {
    failure->Set(Failure::kWriteError, low, 0, 0, 0, n < 0 ? errno : EIO);
    return false;
  }
  const auto* now = reinterpret_cast<const uint8_t*>(low);
  if (std::memcmp(now, buffer, length) != 0) {
    size_t at = 0;
    while (now[at] == buffer[at]) ++at;
    const uint32_t size = static_cast<uint32_t>(std::min<size_t>(8, length - at));
    failure->Set(Failure::kReadBack, low + at, size, LoadCode(low + at, size),
                 LoadBuffer(buffer + at, size));
    return false;
  }
  return true;
}

bool TextWriter::StoreOneLocked(uintptr_t address, uint64_t value, uint32_t size) noexcept {
  ++stats_.writes;
  if (mode_ == WriteMode::kFast) {
    StoreCode(address, value, size);
    return true;
  }
  ++stats_.proc_mem_writes;
  return Pwrite(proc_mem_fd_, &value, size, address) == static_cast<ssize_t>(size);
}

// Guarantee 5: undoes the first `stored` stores of `phase`, then every earlier
// phase, in reverse order, with the barrier between phases. A store is undone
// only where its bytes are still what it wrote; where they are what it
// expected, it never landed (a failed pwrite) and there is nothing to undo;
// anything else is reported (and the rest still undone).
void TextWriter::RollbackLocked(const StoreSource& source, size_t phase, size_t stored,
                                void (*between_phases)(), Failure* failure) noexcept {
  ++stats_.rollbacks;
  CodeStore block[kFillBlock];
  for (size_t p = phase;; --p) {
    size_t end = p == phase ? stored : source.phase_size(p);
    while (end > 0) {
      const size_t first = end > kFillBlock ? end - kFillBlock : 0;
      source.Fill(p, first, end - first, block);
      for (size_t k = end - first; k-- > 0;) {
        const CodeStore& s = block[k];
        if (s.size == 0) continue;
        const uint64_t mask = Mask(s.size);
        const uint64_t now = LoadCode(s.address, s.size);
        bool ok = ((now ^ s.expected) & mask) == 0;
        // A write that fails (a pwrite refused for want of memory) is tried
        // again: giving up leaves the batch half undone.
        for (int attempt = 0; !ok && attempt < kUndoAttempts &&
                              ((LoadCode(s.address, s.size) ^ s.replacement) & mask) == 0;
             ++attempt) {
          ok = StoreOneLocked(s.address, s.expected, s.size) &&
               ((LoadCode(s.address, s.size) ^ s.expected) & mask) == 0;
        }
        if (!ok && !failure->rollback_failed) {
          failure->rollback_failed = true;
          failure->rollback_address = s.address;
          failure->rollback_size = s.size;
          failure->rollback_found = LoadCode(s.address, s.size);
          failure->rollback_wanted = s.expected;
        }
      }
      end = first;
    }
    if (p == 0) break;
    if (between_phases != nullptr) between_phases();
  }
}

struct TextWriter::Prepared::State {
  std::unique_ptr<Window> window;
  Failure failure;
};

TextWriter::Prepared::Prepared(TextWriter* writer)
    : writer_(writer), lock_(writer->mutex_), state_(std::make_unique<State>()) {}

TextWriter::Prepared::~Prepared() = default;

Result<std::unique_ptr<TextWriter::Prepared>> TextWriter::Prepare(const StoreSource& source,
                                                                  const PageSet& pages) {
  std::unique_ptr<Prepared> prepared(new Prepared(this));
  prepared->source_ = &source;
  ++stats_.batches;
  if (mode_ == WriteMode::kStrict) {
    if (Status opened = OpenProcMemLocked(); !opened.ok()) return opened;
  }
  prepared->state_->window = std::make_unique<Window>(pages, mode_, &stats_.protection_changes);
  if (!prepared->state_->window->status().ok()) return prepared->state_->window->status();
  return prepared;
}

bool TextWriter::Prepared::Commit() noexcept {
  return writer_->RunLocked(*source_, *state_->window, nullptr, &state_->failure);
}

Status TextWriter::Prepared::Describe() const { return state_->failure.ToStatus(); }

}  // namespace padhook
