// Fault injection: every system call padhook makes while attaching or
// detaching fails in turn (src/fault/fault.h: the N-th call of one kind, for
// N = 1, 2, ... until the operation completes without reaching it), for a
// batch of 60 functions, 10 neighbours from each of the six builds (every
// layout and both compilers: g++'s NOP runs use protocol C, odd layouts
// protocol B, plain ones protocol A), in both write
// modes, while two threads run those functions. Each case runs in a fresh
// child process (fork), so first-use paths (stub pages, the metadata table,
// signal handlers, /proc/self/mem) are reached too.
//
// For every case: the operation returns a clear error (or succeeds: some
// calls have a fallback), the process keeps running, threads always get the
// right results, and the code is either fully patched or fully restored,
// checked byte for byte against the program's file on disk (the patch area
// of each function: metadata slot, site, and the bytes around them). After a
// failure the same operation, not armed, must succeed: nothing was left
// half done. No mapping may be left writable and executable.
//
// Allocations (fault::Kind::kAlloc) fail the same way: this binary replaces
// the global operator new (below), which throws std::bad_alloc for the N-th
// allocation made by the arming thread between Arm and Disarm. They are
// injected through every API (C++ and C; by address, batch, name, glob).
#include "fault/fault.h"

#include <elf.h>
#include <gtest/gtest.h>
#include <link.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "padhook/hooks.h"
#include "padhook/metadata.h"
#include "padhook/padhook.h"
#include "padhook/text_writer.h"
#include "patch/live_patcher.h"
#include "reliab_support.h"
#ifdef PADHOOK_RELIAB_ASAN
#include <sanitizer/lsan_interface.h>
#endif

// ---- Allocation faults: the global operator new of this program ----------
//
// Every form of operator new asks fault::FailAlloc() (one relaxed load when
// not armed) and fails when it says so: the throwing forms with
// std::bad_alloc, the nothrow forms with null. Memory comes from malloc, so
// the matching deletes free it.
namespace {
void* Allocate(std::size_t n, std::size_t align) {
  if (padhook::fault::FailAlloc()) return nullptr;
  if (n == 0) n = 1;
  if (align <= alignof(std::max_align_t)) return std::malloc(n);
  void* p = nullptr;
  return posix_memalign(&p, align, n) == 0 ? p : nullptr;
}
void* AllocateOrThrow(std::size_t n, std::size_t align) {
  void* p = Allocate(n, align);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
}  // namespace

void* operator new(std::size_t n) { return AllocateOrThrow(n, 0); }
void* operator new[](std::size_t n) { return AllocateOrThrow(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) {
  return AllocateOrThrow(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return AllocateOrThrow(n, static_cast<std::size_t>(a));
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return Allocate(n, 0); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return Allocate(n, 0); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return Allocate(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return Allocate(n, static_cast<std::size_t>(a));
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

namespace padhook {
namespace {

using fault::Kind;

// The bytes of this program's file at a run-time address (PT_LOAD segments
// of the main program, through dl_iterate_phdr).
class ProgramFile {
 public:
  ProgramFile() {
    std::ifstream in("/proc/self/exe", std::ios::binary);
    bytes_.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    dl_iterate_phdr(
        [](dl_phdr_info* info, size_t, void* data) {
          auto* self = static_cast<ProgramFile*>(data);
          for (int i = 0; i < info->dlpi_phnum; ++i) {
            const ElfW(Phdr)& ph = info->dlpi_phdr[i];
            if (ph.p_type != PT_LOAD) continue;
            self->segments_.push_back(
                {info->dlpi_addr + ph.p_vaddr, ph.p_filesz, static_cast<uint64_t>(ph.p_offset)});
          }
          return 1;  // the first object is the program
        },
        this);
  }
  // False when [address, address + n) is not file-backed program text.
  bool Read(uintptr_t address, uint8_t* out, size_t n) const {
    for (const Segment& s : segments_) {
      if (address >= s.address && address + n <= s.address + s.size) {
        const uint64_t at = s.offset + (address - s.address);
        if (at + n > bytes_.size()) return false;
        std::memcpy(out, bytes_.data() + at, n);
        return true;
      }
    }
    return false;
  }

 private:
  struct Segment {
    uintptr_t address;
    uint64_t size, offset;
  };
  std::vector<char> bytes_;
  std::vector<Segment> segments_;
};

constexpr size_t kBefore = 5, kArea = 16;  // the slot (5 bytes), the entry and what follows
using Area = std::array<uint8_t, kArea>;

Area MemoryArea(reliab::Fn f) {
  Area a;
  std::memcpy(a.data(), reinterpret_cast<const uint8_t*>(f) - kBefore, kArea);
  return a;
}

size_t SiteIndex(const Area& file) {  // endbr64 at the entry: the site follows it
  static const uint8_t endbr64[4] = {0xf3, 0x0f, 0x1e, 0xfa};
  return kBefore + (std::memcmp(file.data() + kBefore, endbr64, 4) == 0 ? 4 : 0);
}

// "" when memory matches the file (restored), else what differs. The site
// may hold the single 5-byte NOP a run of 1-byte NOPs was converted to
// (permanent by design); the slot may hold a dormant `mov eax, imm32` when
// `dormant_ok` (after a successful attach and detach).
std::string CheckRestored(const Area& file, const Area& mem, bool dormant_ok) {
  static const uint8_t run[5] = {0x90, 0x90, 0x90, 0x90, 0x90};
  static const uint8_t nop5[5] = {0x0f, 0x1f, 0x44, 0x00, 0x00};
  const size_t site = SiteIndex(file);
  for (size_t i = 0; i < kArea; ++i) {
    if (mem[i] == file[i]) continue;
    if (i >= site && i < site + 5 && std::memcmp(file.data() + site, run, 5) == 0 &&
        std::memcmp(mem.data() + site, nop5, 5) == 0) {
      continue;
    }
    if (i < kBefore && dormant_ok && mem[0] == 0xb8) continue;
    return "byte " + std::to_string(i) + " differs from the file";
  }
  return "";
}

// "" when the site calls (e8) and the slot holds an index (b8), everything
// else as in the file.
std::string CheckPatched(const Area& file, const Area& mem) {
  const size_t site = SiteIndex(file);
  if (mem[site] != 0xe8) return "site is not a call";
  if (mem[0] != 0xb8) return "slot holds no metadata index";
  for (size_t i = kBefore; i < kArea; ++i) {
    if ((i < site || i >= site + 5) && mem[i] != file[i]) return "bytes around the site changed";
  }
  return "";
}

// A handler that counts the calls made on the probing thread only.
thread_local bool tls_probe = false;
thread_local uint64_t tls_seen = 0;
void Probe(padhook_call*, void*) {
  if (tls_probe) ++tls_seen;
}

struct Outcome {           // written by the child into a pipe
  int completed = 0;       // the armed operation returned success
  int error_clear = 0;     // on failure: a non-empty message and an error code
  uint64_t injected = 0;   // faults injected (0 or 1)
  uint64_t calls = 0;      // calls of the armed kind seen
  char problem[400] = {};  // the first check that failed ("" = none)
  char error[400] = {};    // the failure's Status
};

enum class Phase { kAttach, kDetach };

// How the functions are attached to and detached from.
enum class Api {
  kAddresses,   // AttachAddresses: the batch
  kAddress,     // AttachAddress: the first function only
  kName,        // AttachName: the first function, by its name
  kGlob,        // AttachGlob: the whole list, by a pattern matching exactly it
  kCAddresses,  // padhook_attach_addresses / padhook_detach
  kCPattern,    // padhook_attach_pattern / padhook_detach
};
const char* ApiName(Api api) {
  switch (api) {
    case Api::kAddresses:
      return "addresses";
    case Api::kAddress:
      return "address";
    case Api::kName:
      return "name";
    case Api::kGlob:
      return "glob";
    case Api::kCAddresses:
      return "c_addresses";
    case Api::kCPattern:
      return "c_pattern";
  }
  return "?";
}
// The functions of StressFunctions(10, true) (many_fns_2x[400..409]) by name.
constexpr const char* kFirstName = "many_fn_20_400";
constexpr const char* kAllPattern = "many_fn_2?_40?";
bool SingleFunction(Api api) { return api == Api::kAddress || api == Api::kName; }

// One client attached through `api`: the C++ Attachment or the C handle.
class Client {
 public:
  explicit Client(Api api) : api_(api) {}
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  ~Client() {
    if (c_ != nullptr) (void)padhook_detach(c_);
  }
  Status Attach(const std::vector<const void*>& addresses, const Hooks& hooks) {
    const padhook_hooks h{hooks.on_entry, hooks.on_exit, hooks.user_data, hooks.flags};
    Result<Attachment> a = Status(Errc::kInvalidArgument, "no API");
    switch (api_) {
      case Api::kAddresses:
        a = AttachAddresses(addresses, hooks);
        break;
      case Api::kAddress:
        a = AttachAddress(addresses.front(), hooks);
        break;
      case Api::kName:
        a = AttachName(kFirstName, hooks);
        break;
      case Api::kGlob:
        a = AttachGlob(kAllPattern, hooks);
        break;
      case Api::kCAddresses:
        return C(padhook_attach_addresses(const_cast<void* const*>(addresses.data()),
                                          addresses.size(), &h, &c_));
      case Api::kCPattern:
        return C(padhook_attach_pattern(kAllPattern, &h, &c_));
    }
    if (!a.ok()) return a.status();
    cpp_ = std::move(a).value();
    return Status::Ok();
  }
  Status Detach() {
    if (!IsC()) return cpp_.Detach();
    if (c_ == nullptr) return Status::Ok();
    const int rc = padhook_detach(c_);
    if (rc == PADHOOK_OK) c_ = nullptr;
    return C(rc);
  }
  bool attached() const { return IsC() ? c_ != nullptr : cpp_.attached(); }

 private:
  bool IsC() const { return api_ == Api::kCAddresses || api_ == Api::kCPattern; }
  static Status C(int rc) {
    if (rc == PADHOOK_OK) return Status::Ok();
    const char* detail = padhook_last_error();
    return Status(static_cast<Errc>(rc),
                  std::string(padhook_strerror(rc)) + ": " + (detail != nullptr ? detail : ""));
  }
  Api api_;
  Attachment cpp_;
  padhook_attachment* c_ = nullptr;
};

struct Child {
  const ProgramFile& file;
  const std::vector<reliab::Fn>& fns;
  std::vector<Area> file_areas;
  Outcome out;

  void Problem(const std::string& what) {
    if (out.problem[0] == '\0') std::snprintf(out.problem, sizeof(out.problem), "%s", what.c_str());
  }
  void ExpectAll(bool patched, bool dormant_ok, const char* when) {
    for (size_t f = 0; f < fns.size(); ++f) {
      const Area mem = MemoryArea(fns[f]);
      const std::string why = patched ? CheckPatched(file_areas[f], mem)
                                      : CheckRestored(file_areas[f], mem, dormant_ok);
      if (!why.empty()) {
        Problem(std::string(when) + ": function " + std::to_string(f) + ": " + why);
        return;
      }
    }
  }
  // Calls every function on this thread; the probe must see all or none.
  void ExpectHandlers(bool running, const char* when) {
    tls_probe = true;
    tls_seen = 0;
    for (reliab::Fn f : fns) (void)f(5);
    tls_probe = false;
    if (tls_seen != (running ? fns.size() : 0)) {
      Problem(std::string(when) + ": the handler saw " + std::to_string(tls_seen) + " of " +
              std::to_string(fns.size()) + " calls");
    }
  }
  void Failed(const Status& s) {
    out.error_clear = s.code() != Errc::kOk && !s.message().empty();
    std::snprintf(out.error, sizeof(out.error), "%s", s.ToString().c_str());
  }

  void Run(WriteMode mode, Phase phase, Api api, Kind kind, uint64_t nth) {
    TextWriter::Process().set_mode(mode);
    for (reliab::Fn f : fns) {
      Area a;
      if (!file.Read(reinterpret_cast<uintptr_t>(f) - kBefore, a.data(), kArea)) {
        Problem("function not found in the program file");
        return;
      }
      file_areas.push_back(a);
    }
    ExpectAll(false, false, "before");
    std::vector<const void*> addresses;
    for (reliab::Fn f : fns) addresses.push_back(reinterpret_cast<const void*>(f));
    Hooks hooks{Probe, nullptr, nullptr};
    reliab::Workers workers(fns, 2);
    // The threads run before anything is armed: a case (one function, a
    // failure at its first allocation) can be over before they start.
    while (workers.calls() == 0) std::this_thread::yield();

    if (phase == Phase::kAttach) {
      Client client(api);
      fault::Arm(kind, nth);
      const Status a = client.Attach(addresses, hooks);
      fault::Disarm();
      out.completed = a.ok();
      if (a.ok()) {
        ExpectAll(true, false, "after the attach");
        ExpectHandlers(true, "after the attach");
        if (Status d = client.Detach(); !d.ok()) Problem("detach (not armed): " + d.ToString());
      } else {
        Failed(a);
        if (client.attached()) Problem("a failed attach returned an attachment");
        ExpectAll(false, false, "after the failed attach");
        ExpectHandlers(false, "after the failed attach");
        Client again(api);
        if (Status s = again.Attach(addresses, hooks); !s.ok()) {
          Problem("attach again (not armed): " + s.ToString());
        } else {
          ExpectHandlers(true, "after attaching again");
          if (Status d = again.Detach(); !d.ok()) Problem("detach again: " + d.ToString());
        }
      }
    } else {
      Client client(api);
      if (Status a = client.Attach(addresses, hooks); !a.ok()) {
        Problem("attach (not armed): " + a.ToString());
        return;
      }
      fault::Arm(kind, nth);
      const Status d = client.Detach();
      fault::Disarm();
      out.completed = d.ok();
      if (!d.ok()) {
        Failed(d);
        if (!client.attached()) Problem("a failed detach left the attachment detached");
        ExpectAll(true, false, "after the failed detach");
        ExpectHandlers(true, "after the failed detach");
        if (Status again = client.Detach(); !again.ok())
          Problem("detach again: " + again.ToString());
      }
    }
    ExpectAll(false, true, "at the end");
    ExpectHandlers(false, "at the end");
    out.injected = fault::Injected(kind);
    out.calls = fault::Calls(kind);
    workers.Stop();
    if (workers.wrong() != 0) Problem("a call returned a wrong result");
    if (workers.calls() == 0) Problem("the worker threads made no call");
    const std::string wx = reliab::WxViolations(reliab::ParseMaps(reliab::ReadMaps()));
    if (!wx.empty()) Problem("left behind: " + wx);
  }
};

// Runs one case in a child process; false (with *problem) if the child died.
bool RunCase(const ProgramFile& file, const std::vector<reliab::Fn>& fns, WriteMode mode,
             Phase phase, Api api, Kind kind, uint64_t nth, Outcome* out, std::string* problem) {
  int fds[2];
  if (pipe(fds) != 0) {
    *problem = "pipe failed";
    return false;
  }
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    alarm(60);  // a hang fails the case instead of the whole test run
    Child child{file, fns, {}, {}};
    child.Run(mode, phase, api, kind, nth);
#ifdef PADHOOK_RELIAB_ASAN
    // The child ends with _exit, which skips LeakSanitizer's check at exit:
    // made here, so that a failure path that leaks is a problem of the case.
    if (__lsan_do_recoverable_leak_check() != 0) {
      child.Problem("LeakSanitizer found a leak (its report is on stderr)");
    }
#endif
    const ssize_t w = write(fds[1], &child.out, sizeof(child.out));
    _exit(w == static_cast<ssize_t>(sizeof(child.out)) ? 0 : 3);
  }
  close(fds[1]);
  ssize_t got = 0;
  for (ssize_t n; got < static_cast<ssize_t>(sizeof(*out)) &&
                  (n = read(fds[0], reinterpret_cast<char*>(out) + got, sizeof(*out) - got)) > 0;) {
    got += n;
  }
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (got != static_cast<ssize_t>(sizeof(*out)) || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    *problem = WIFSIGNALED(status) ? "child killed by signal " + std::to_string(WTERMSIG(status))
                                   : "child exited with " + std::to_string(WEXITSTATUS(status));
    return false;
  }
  return true;
}

// Kinds whose failure has a fallback: the operation must still succeed.
bool HasFallback(Kind kind) { return kind == Kind::kMembarrier; }

class FaultTest : public ::testing::TestWithParam<std::tuple<WriteMode, Phase>> {};

TEST_P(FaultTest, EveryInjectedFailureIsCleanAndRecoverable) {
  const auto [mode, phase] = GetParam();
  const ProgramFile file;
  // Neighbours: the strict mode then makes a few dozen pwrites per attach, not
  // hundreds (one child process per call, run under ASan in CI).
  const std::vector<reliab::Fn> fns = reliab::StressFunctions(10, /*contiguous=*/true);
  uint64_t cases = 0, injected = 0, survived = 0, errors = 0;
  for (unsigned k = 0; k < static_cast<unsigned>(Kind::kCount); ++k) {
    const auto kind = static_cast<Kind>(k);
    uint64_t kind_injected = 0;
    // A first attach makes thousands of allocations (the function table is
    // built from every module's symbols): every one of the first 100, then
    // a sample (each next one about 1/8 further), up to the completion.
    const bool sampled = kind == Kind::kAlloc;
    for (uint64_t nth = 1;; nth += sampled && nth >= 100 ? nth / 8 : 1) {
      ASSERT_LT(nth, sampled ? 10'000'000u : 400u)
          << fault::KindName(kind) << ": the operation never completed";
      Outcome out;
      std::string died;
      ++cases;
      ASSERT_TRUE(RunCase(file, fns, mode, phase, Api::kAddresses, kind, nth, &out, &died))
          << fault::KindName(kind) << " #" << nth << ": " << died;
      EXPECT_STREQ(out.problem, "")
          << fault::KindName(kind) << " #" << nth << " (error: " << out.error << ")";
      if (out.injected == 0) {
        // The operation completed before an nth call: every earlier one was tried.
        EXPECT_TRUE(out.completed) << fault::KindName(kind) << " #" << nth << ": " << out.error;
        EXPECT_LT(out.calls, nth);
        break;
      }
      ++injected;
      ++kind_injected;
      if (out.problem[0] == '\0') ++survived;
      if (!out.completed) {
        ++errors;
        EXPECT_TRUE(out.error_clear) << fault::KindName(kind) << " #" << nth;
        EXPECT_FALSE(HasFallback(kind))
            << fault::KindName(kind) << " #" << nth << " has a fallback but failed: " << out.error;
      }
      if (!out.completed && nth <= 3) {
        std::printf("  %s #%lu -> %s\n", fault::KindName(kind), static_cast<unsigned long>(nth),
                    out.error);
      }
    }
    std::printf("%s: %lu faults injected\n", fault::KindName(kind),
                static_cast<unsigned long>(kind_injected));
  }
  std::printf(
      "%s mode, %s: %lu cases, %lu faults injected, %lu survived (checks passed), %lu "
      "returned an error, %lu completed anyway\n",
      WriteModeName(mode), phase == Phase::kAttach ? "attach" : "detach",
      static_cast<unsigned long>(cases), static_cast<unsigned long>(injected),
      static_cast<unsigned long>(survived), static_cast<unsigned long>(errors),
      static_cast<unsigned long>(injected - errors));
  EXPECT_GT(injected, 0u);
  EXPECT_EQ(survived, injected);
}

// ---- Allocation failures through every API ---------------------------------
//
// The N-th allocation of an attach (or detach) fails, N = 1, 2, ... until the
// operation completes without reaching it, through each API (C++ and C, by
// address, batch, name, glob). The batch through AttachAddresses is covered
// by FaultTest in both modes; here every API, in fast mode.
class AllocFaultTest : public ::testing::TestWithParam<std::tuple<Api, Phase>> {};

TEST_P(AllocFaultTest, EveryFailedAllocationIsCleanAndRecoverable) {
  const auto [api, phase] = GetParam();
  const ProgramFile file;
  std::vector<reliab::Fn> fns = reliab::StressFunctions(10, /*contiguous=*/true);
  if (SingleFunction(api)) fns.resize(1);
  // The name and pattern APIs refresh the function table: done once here, so
  // that each child starts from the same table (as a long-running program).
  {
    Result<Attachment> warm = AttachGlob(kAllPattern, Hooks{Probe, nullptr, nullptr});
    ASSERT_TRUE(warm.ok()) << warm.status().ToString();
    ASSERT_EQ(warm->size(), 60u);
    ASSERT_TRUE(warm->Detach().ok());
    // Back to the file's bytes: retract the entries the warm-up left dormant.
    const Status trimmed = MetadataTable::Process().Trim();
    ASSERT_TRUE(trimmed.ok()) << trimmed.ToString();
  }
  uint64_t injected = 0, survived = 0, errors = 0, nth = 1;
  for (;; ++nth) {
    ASSERT_LT(nth, 2000u) << "the operation never completed";
    Outcome out;
    std::string died;
    ASSERT_TRUE(RunCase(file, fns, WriteMode::kFast, phase, api, Kind::kAlloc, nth, &out, &died))
        << "alloc #" << nth << ": " << died;
    EXPECT_STREQ(out.problem, "") << "alloc #" << nth << " (error: " << out.error << ")";
    if (out.injected == 0) {
      EXPECT_TRUE(out.completed) << "alloc #" << nth << ": " << out.error;
      EXPECT_LT(out.calls, nth);
      break;
    }
    ++injected;
    if (out.problem[0] == '\0') ++survived;
    if (!out.completed) {
      ++errors;
      EXPECT_TRUE(out.error_clear) << "alloc #" << nth;
      if (errors <= 2)
        std::printf("  alloc #%lu -> %s\n", static_cast<unsigned long>(nth), out.error);
    }
  }
  std::printf(
      "alloc, %s, %s: %lu faults injected, %lu survived (checks passed), %lu returned an "
      "error, %lu completed anyway\n",
      ApiName(api), phase == Phase::kAttach ? "attach" : "detach",
      static_cast<unsigned long>(injected), static_cast<unsigned long>(survived),
      static_cast<unsigned long>(errors), static_cast<unsigned long>(injected - errors));
  EXPECT_GT(injected, 0u);
  EXPECT_EQ(survived, injected);
}

INSTANTIATE_TEST_SUITE_P(ApisAndPhases, AllocFaultTest,
                         ::testing::Combine(::testing::Values(Api::kAddresses, Api::kAddress,
                                                              Api::kName, Api::kGlob,
                                                              Api::kCAddresses, Api::kCPattern),
                                            ::testing::Values(Phase::kAttach, Phase::kDetach)),
                         [](const auto& info) {
                           return std::string(ApiName(std::get<0>(info.param))) + "_" +
                                  (std::get<1>(info.param) == Phase::kAttach ? "attach" : "detach");
                         });

// ---- A breakpoint trap delivered after its batch is over -------------------
//
// A thread runs into one of protocol B's int3s but is descheduled before its
// SIGTRAP handler runs; meanwhile the batch finishes and two more batches
// publish their in-flight tables, so the site is in neither. Seen in CI under
// load (patch_stress_test, strict mode: the process died of SIGTRAP). Made
// deterministic here: a wrapper installed over padhook's SIGTRAP handler
// holds the trapped thread until the int3 is gone and two more int3 batches
// ran, then calls padhook's handler. Before the fix the trap was passed on
// to the default action and the process died.
struct sigaction g_padhook_trap;  // padhook's handler; written before the trap
std::atomic<int> g_trapped{0};    // written by the wrapper, read by the main thread
std::atomic<int> g_release{0};    // written by the main thread, read by the wrapper

void HoldingTrapHandler(int sig, siginfo_t* info, void* ucontext) {
  g_trapped.store(1);
  while (g_release.load() == 0) {
    timespec ts{0, 1'000'000};
    nanosleep(&ts, nullptr);
  }
  g_padhook_trap.sa_sigaction(sig, info, ucontext);
}

int LateTrapChild() {
  TextWriter::Process().set_mode(WriteMode::kStrict);  // every site uses int3
  const reliab::Fn f = many_fns_22[500];               // g++, odd layout
  const int offset = f(0);
  Hooks hooks{Probe, nullptr, nullptr};
  {  // installs padhook's SIGTRAP handler, converts the NOP run
    Result<Attachment> a = AttachAddress(reinterpret_cast<const void*>(f), hooks);
    if (!a.ok() || !a->Detach().ok()) return 10;
  }
  const uintptr_t site = reinterpret_cast<uintptr_t>(f);
  const uint8_t head = *reinterpret_cast<const uint8_t*>(site), int3 = 0xcc;
  if (head != 0x0f) return 11;  // the converted 5-byte NOP
  struct sigaction hold = {};
  hold.sa_sigaction = HoldingTrapHandler;
  hold.sa_flags = SA_SIGINFO;
  sigemptyset(&hold.sa_mask);
  if (sigaction(SIGTRAP, &hold, &g_padhook_trap) != 0 || !(g_padhook_trap.sa_flags & SA_SIGINFO)) {
    return 12;
  }
  // B2 of a batch: int3 over the site's first byte.
  const CodeWrite to_int3 = CodeWrite::Make(site, {&head, 1}, {&int3, 1});
  if (!TextWriter::Process().Apply({&to_int3, 1}).ok()) return 13;
  int result = 0;
  std::thread runner([&] { result = f(7); });
  while (g_trapped.load() == 0) std::this_thread::sleep_for(std::chrono::microseconds(100));
  // B4: the batch ends; then two more int3 batches on other functions.
  const CodeWrite from_int3 = CodeWrite::Make(site, {&int3, 1}, {&head, 1});
  if (!TextWriter::Process().Apply({&from_int3, 1}).ok()) return 14;
  for (int i = 0; i < 2; ++i) {
    Result<Attachment> other =
        AttachAddress(reinterpret_cast<const void*>(many_fns_22[600 + i]), hooks);
    if (!other.ok() || !other->Detach().ok()) return 15;
  }
  g_release.store(1);
  runner.join();
  if (result != 7 * 3 + offset) return 16;
  if (patch::Stats().late_traps != 1) return 17;
  return 0;
}

TEST(LateTrapTest, ATrapDeliveredAfterItsBatchResumesAtTheSite) {
  const pid_t pid = fork();
  if (pid == 0) _exit(LateTrapChild());
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_FALSE(WIFSIGNALED(status))
      << "the child died of signal " << WTERMSIG(status) << " (SIGTRAP = " << SIGTRAP << ")";
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "failed step (see LateTrapChild)";
}

INSTANTIATE_TEST_SUITE_P(ModesAndPhases, FaultTest,
                         ::testing::Combine(::testing::Values(WriteMode::kFast, WriteMode::kStrict),
                                            ::testing::Values(Phase::kAttach, Phase::kDetach)),
                         [](const auto& info) {
                           return std::string(WriteModeName(std::get<0>(info.param))) + "_" +
                                  (std::get<1>(info.param) == Phase::kAttach ? "attach" : "detach");
                         });

}  // namespace
}  // namespace padhook
