// TextWriter: the guarantees are numbered at the top of padhook/text_writer.h.
#include "padhook/text_writer.h"

#include "format.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
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

namespace padhook {
namespace {

uintptr_t PageSize() {
  static const uintptr_t size = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  return size;
}

std::string Hex(const uint8_t* bytes, size_t n) {
  std::string s;
  char buf[4];
  for (size_t i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof(buf), i ? " %02x" : "%02x", bytes[i]);
    s += buf;
  }
  return s;
}

// One store when size and alignment allow (guarantee 3), else a byte copy.
void StoreBytes(uintptr_t address, const uint8_t* bytes, size_t size) {
  auto aligned = [&](size_t n) { return size == n && address % n == 0; };
  if (aligned(8)) {
    uint64_t v;
    std::memcpy(&v, bytes, 8);
    __atomic_store_n(reinterpret_cast<uint64_t*>(address), v, __ATOMIC_RELEASE);
  } else if (aligned(4)) {
    uint32_t v;
    std::memcpy(&v, bytes, 4);
    __atomic_store_n(reinterpret_cast<uint32_t*>(address), v, __ATOMIC_RELEASE);
  } else if (aligned(2)) {
    uint16_t v;
    std::memcpy(&v, bytes, 2);
    __atomic_store_n(reinterpret_cast<uint16_t*>(address), v, __ATOMIC_RELEASE);
  } else if (size == 1) {
    __atomic_store_n(reinterpret_cast<uint8_t*>(address), bytes[0], __ATOMIC_RELEASE);
  } else {
    for (size_t i = 0; i < size; ++i) {
      __atomic_store_n(reinterpret_cast<uint8_t*>(address + i), bytes[i], __ATOMIC_RELEASE);
    }
  }
}

void LoadBytes(uintptr_t address, uint8_t* out, size_t size) {
  for (size_t i = 0; i < size; ++i) {
    out[i] = __atomic_load_n(reinterpret_cast<const uint8_t*>(address + i), __ATOMIC_ACQUIRE);
  }
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

// Makes the pages a batch touches writable (keeping their other permissions)
// and restores the original protections when it goes out of scope, on every
// path. Runs are split where /proc/self/maps shows different protections.
class WritableWindow {
 public:
  WritableWindow(std::span<const CodeWrite> writes, uint64_t* mprotect_count)
      : mprotect_count_(mprotect_count) {
    std::vector<std::pair<uintptr_t, uintptr_t>> pages;
    for (const CodeWrite& w : writes) {
      const uintptr_t first = w.address & ~(PageSize() - 1);
      const uintptr_t last = (w.address + w.size - 1) & ~(PageSize() - 1);
      pages.emplace_back(first, last + PageSize());
    }
    std::sort(pages.begin(), pages.end());
    std::vector<std::pair<uintptr_t, uintptr_t>> merged;
    for (const auto& p : pages) {
      if (!merged.empty() && p.first <= merged.back().second) {
        merged.back().second = std::max(merged.back().second, p.second);
      } else {
        merged.push_back(p);
      }
    }
    status_ = SplitByMappings(merged);
    if (!status_.ok()) return;
    for (Run& run : runs_) {
      if (run.original_prot & PROT_WRITE) continue;
      ++*mprotect_count_;
      if (mprotect(reinterpret_cast<void*>(run.begin), run.end - run.begin,
                   run.original_prot | PROT_WRITE) != 0) {
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

  ~WritableWindow() {
    for (Run& run : runs_) {
      if (!run.changed) continue;
      ++*mprotect_count_;
      // Restoring cannot meaningfully fail for a range we just changed; if it
      // did, leaving the pages writable is the lesser harm than aborting.
      mprotect(reinterpret_cast<void*>(run.begin), run.end - run.begin, run.original_prot);
    }
  }

  WritableWindow(const WritableWindow&) = delete;
  WritableWindow& operator=(const WritableWindow&) = delete;

  const Status& status() const { return status_; }

 private:
  struct Run {
    uintptr_t begin;
    uintptr_t end;
    int original_prot;
    bool changed = false;
  };

  Status SplitByMappings(const std::vector<std::pair<uintptr_t, uintptr_t>>& ranges) {
    for (const auto& [begin, end] : ranges) {
      uintptr_t at = begin;
      while (at < end) {
        Result<Mapping> m = QueryMapping(at);
        if (!m.ok()) return m.status();
        const uintptr_t stop = std::min(end, m->end);
        runs_.push_back(Run{at, stop, m->prot});
        at = stop;
      }
    }
    return Status::Ok();
  }

  std::vector<Run> runs_;
  Status status_;
  uint64_t* mprotect_count_;
};

}  // namespace

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

TextWriter::TextWriter() : mode_(WriteMode::kFast) {
  if (const char* env = std::getenv("PADHOOK_WRITE_MODE"); env && std::strcmp(env, "strict") == 0) {
    mode_ = WriteMode::kStrict;
  }
}

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
  for (const CodeWrite& w : writes) {
    if (w.size == 0 || w.size > CodeWrite::kMaxBytes || w.address == 0) {
      return Status(Errc::kInvalidArgument, "bad code write at " + AddressText(w.address));
    }
  }
  std::lock_guard<std::mutex> lock(mutex_);
  ++stats_.batches;
  if (mode_ == WriteMode::kStrict) return ApplyLocked(writes);
  WritableWindow window(writes, &stats_.protection_changes);
  if (!window.status().ok()) return window.status();
  return ApplyLocked(writes);
}

Status TextWriter::OpenProcMemLocked() {
  if (proc_mem_fd_ >= 0 && proc_mem_pid_ == getpid()) return Status::Ok();
  // A descriptor opened before fork() still refers to the PARENT's memory.
  if (proc_mem_fd_ >= 0) close(proc_mem_fd_);
  proc_mem_fd_ = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
  proc_mem_pid_ = getpid();
  if (proc_mem_fd_ < 0) return Status::FromErrno(errno, "opening /proc/self/mem (strict write mode)");
  return Status::Ok();
}

// In kStrict mode bytes are read through /proc/self/mem as well: an address
// that is not mapped gives EIO there instead of a fault here. (kFast mode
// has checked the mappings before any read.)
Status TextWriter::ReadLocked(uintptr_t address, uint8_t* out, size_t size) {
  if (mode_ == WriteMode::kFast) {
    LoadBytes(address, out, size);
    return Status::Ok();
  }
  if (Status opened = OpenProcMemLocked(); !opened.ok()) return opened;
  if (pread(proc_mem_fd_, out, size, static_cast<off_t>(address)) != static_cast<ssize_t>(size)) {
    return Status::FromErrno(errno ? errno : EIO, "reading code at " + AddressText(address));
  }
  return Status::Ok();
}

// Guarantees 1, 2, 4, 5. `forward` writes replacement over expected; a
// rollback writes expected over replacement. *stored tells whether the store
// happened (a failed pre-check stores nothing, whatever bytes it found).
Status TextWriter::WriteOne(const CodeWrite& w, bool forward, bool* stored) {
  *stored = false;
  const uint8_t* want_now = forward ? w.expected : w.replacement;
  const uint8_t* put = forward ? w.replacement : w.expected;
  uint8_t found[CodeWrite::kMaxBytes];
  if (Status read = ReadLocked(w.address, found, w.size); !read.ok()) return read;
  if (std::memcmp(found, want_now, w.size) != 0) {
    return Status(Errc::kUnexpectedBytes, "code at " + AddressText(w.address) + " is " +
                                              Hex(found, w.size) + ", expected " +
                                              Hex(want_now, w.size) +
                                              " (another tool may have patched it)");
  }
  if (mode_ == WriteMode::kStrict) {
    ++stats_.proc_mem_writes;
    errno = 0;
    const ssize_t n = pwrite(proc_mem_fd_, put, w.size, static_cast<off_t>(w.address));
    if (n != 0) *stored = true;  // a partial write changed bytes too: undo it
    if (n != static_cast<ssize_t>(w.size)) {
      return Status::FromErrno(n < 0 ? errno : EIO,
                               "writing code at " + AddressText(w.address) + " via /proc/self/mem");
    }
  } else {
    StoreBytes(w.address, put, w.size);
    *stored = true;
  }
  ++stats_.writes;
  if (Status read = ReadLocked(w.address, found, w.size); !read.ok()) return read;
  if (std::memcmp(found, put, w.size) != 0) {
    return Status(Errc::kUnexpectedBytes, "code at " + AddressText(w.address) + " reads back as " +
                                              Hex(found, w.size) + " after writing " +
                                              Hex(put, w.size));
  }
  return Status::Ok();
}

bool TextWriter::WriteOneQuiet(const CodeWrite& w, bool forward, bool* stored) noexcept {
  *stored = false;
  const uint8_t* want_now = forward ? w.expected : w.replacement;
  const uint8_t* put = forward ? w.replacement : w.expected;
  uint8_t found[CodeWrite::kMaxBytes];
  auto read = [&](uint8_t* out) {
    if (mode_ == WriteMode::kFast) {
      LoadBytes(w.address, out, w.size);
      return true;
    }
    return pread(proc_mem_fd_, out, w.size, static_cast<off_t>(w.address)) ==
           static_cast<ssize_t>(w.size);
  };
  if (!read(found) || std::memcmp(found, want_now, w.size) != 0) return false;
  if (mode_ == WriteMode::kStrict) {
    ++stats_.proc_mem_writes;
    const ssize_t n = pwrite(proc_mem_fd_, put, w.size, static_cast<off_t>(w.address));
    if (n != 0) *stored = true;
    if (n != static_cast<ssize_t>(w.size)) return false;
  } else {
    StoreBytes(w.address, put, w.size);
    *stored = true;
  }
  ++stats_.writes;
  return read(found) && std::memcmp(found, put, w.size) == 0;
}

struct TextWriter::Prepared::Window {
  WritableWindow window;
  Window(std::span<const CodeWrite> writes, uint64_t* count) : window(writes, count) {}
};

TextWriter::Prepared::Prepared(TextWriter* writer) : writer_(writer), lock_(writer->mutex_) {}

TextWriter::Prepared::~Prepared() = default;

Result<std::unique_ptr<TextWriter::Prepared>> TextWriter::Prepare(std::span<const CodeWrite> writes) {
  std::unique_ptr<Prepared> prepared(new Prepared(this));
  prepared->writes_.assign(writes.begin(), writes.end());
  ++stats_.batches;
  if (mode_ == WriteMode::kStrict) {
    if (Status opened = OpenProcMemLocked(); !opened.ok()) return opened;
  } else {
    prepared->window_ = std::make_unique<Prepared::Window>(writes, &stats_.protection_changes);
    if (!prepared->window_->window.status().ok()) return prepared->window_->window.status();
  }
  return prepared;
}

bool TextWriter::Prepared::Commit(size_t* failed_index) noexcept {
  for (size_t i = 0; i < writes_.size(); ++i) {
    bool stored = false;
    if (writer_->WriteOneQuiet(writes_[i], /*forward=*/true, &stored)) continue;
    *failed_index = i;
    ++writer_->stats_.rollbacks;
    for (size_t undo = stored ? i + 1 : i; undo-- > 0;) {
      bool restored = false;
      writer_->WriteOneQuiet(writes_[undo], /*forward=*/false, &restored);
    }
    return false;
  }
  return true;
}

Status TextWriter::Prepared::Describe(size_t failed_index) const {
  const CodeWrite& w = writes_[failed_index];
  uint8_t found[CodeWrite::kMaxBytes];
  LoadBytes(w.address, found, w.size);
  return Status(Errc::kUnexpectedBytes, "code at " + AddressText(w.address) + " is " +
                                            Hex(found, w.size) + ", expected " +
                                            Hex(w.expected, w.size) + " (batch rolled back)");
}

Status TextWriter::ApplyLocked(std::span<const CodeWrite> writes) {
  for (size_t i = 0; i < writes.size(); ++i) {
    bool stored = false;
    Status status = WriteOne(writes[i], /*forward=*/true, &stored);
    if (status.ok()) continue;
    ++stats_.rollbacks;
    // Undo what was stored: the failed write itself only if its store
    // happened (its read-back failed), never bytes it found but did not write.
    size_t undo = stored ? i + 1 : i;
    while (undo-- > 0) {
      bool restored = false;
      Status undone = WriteOne(writes[undo], /*forward=*/false, &restored);
      if (!undone.ok()) {
        return Status(status.code(), status.message() + "; rollback ALSO failed: " +
                                         undone.message());
      }
    }
    return status;
  }
  return Status::Ok();
}

}  // namespace padhook
