// Live patching of function entries.
//
// A site is the kSiteSize bytes after the entry (after endbr64, if any). It
// holds a NOP (unpatched) or `call stub` (patched); the stub, within rel32
// reach of the module, jumps to the global trampoline.
//
// ---------------------------------------------------------------------------
// Protocol A: single store (site inside one aligned 8-byte word, fast mode)
//   A1. Read the 8-byte word; check the site holds the expected instruction.
//   A2. One aligned 8-byte store writes the new instruction (TextWriter
//       guarantee 3). A CPU fetching the word sees either instruction whole:
//       both are single 5-byte instructions at the same address.
//   A3. After the whole batch: one serializing barrier on every CPU running
//       this process (membarrier SYNC_CORE), so no CPU keeps executing the old
//       instruction from its pipeline once ChangeSites returns.
//
// Protocol B: breakpoint (any other site, and every site in strict mode)
//   B1. Publish the batch's sites in the in-flight table (read by the SIGTRAP
//       handler; the previous batch's table stays readable too, for traps
//       still being delivered).
//   B2. Write int3 over byte 0 of every site.              Barrier.
//   B3. Write bytes 1.. of every site (no CPU can start executing the site
//       past the int3 now, so these need no atomicity). Barrier.
//   B4. Write the new byte 0 of every site.                 Barrier.
//   A thread that hits an in-flight int3 is resumed at site + kSiteSize: it
//   behaves as if the site were the NOP (the patch is not complete, so the
//   call is not one an attachment promised to see). A thread whose trap is
//   delivered after B4 is resumed at the site, to run the final instruction.
//   Any other SIGTRAP is passed to the handler the application installed
//   (or the default action): padhook never swallows a signal that is not its own.
//
// Protocol C: converting 1-byte NOP runs (GCC), once per module
//   The int3 protocol is not enough for a run of 1-byte NOPs: a thread can be
//   stopped between two of them, and would resume in the middle of the new
//   instruction. So before the first patch in a module:
//   C1. Pick a real-time signal nobody handles; install a handler.
//   C2. Send it to every other thread (/proc/self/task, tgkill); repeat until
//       no new thread appears. Each handler counts itself in and waits (futex,
//       no spinning).
//   C3. With every other thread stopped, rewrite every NOP run of the module
//       into one 5-byte NOP (TextWriter batch, verified).
//   C4. Release the threads. Each checks its own interrupted PC: inside a
//       converted run (site < pc < site + kSiteSize) it moves the PC to
//       site + kSiteSize, which is what executing the remaining NOPs would
//       have done.
//   C5. Wait until every thread has left the handler; restore the signal's
//       previous disposition. A thread that does not arrive in time (it blocks
//       the signal) fails the conversion before anything is written.
//   Afterwards the module's sites are single NOPs and use protocols A or B.
//
// Shared variables
//   g_inflight[2], g_inflight_current: written by the patching thread under
//     g_patch_mutex (release), read by the SIGTRAP handler (acquire).
//   g_stop: the stop-the-world state; written by the controller, read and
//     counted by the handlers (atomics, futex waits).
//   g_stubs: written under g_patch_mutex only.
#include "patch/live_patcher.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "arch.h"
#include "format.h"
#include "padhook/text_writer.h"
#include "sync/grace_period.h"

extern "C" void padhook_trampoline();

namespace padhook::patch {
namespace {

using arch::kSiteSize;
using Bytes = std::array<uint8_t, kSiteSize>;

std::mutex g_patch_mutex;  // serializes ChangeSites, stub creation, conversions
PatcherStats g_stats;      // under g_patch_mutex, except the atomics below
std::atomic<uint64_t> g_breakpoint_hits{0};
std::atomic<uint64_t> g_chained_traps{0};

uintptr_t SiteOf(const Function& f) { return f.entry + f.site.landing_pad; }

Bytes ReadSite(uintptr_t site) {
  Bytes b;
  for (size_t i = 0; i < kSiteSize; ++i) {
    b[i] = __atomic_load_n(reinterpret_cast<const uint8_t*>(site + i), __ATOMIC_ACQUIRE);
  }
  return b;
}

Bytes SiteNop() {
  Bytes b;
  arch::EncodeSiteNop(b);
  return b;
}

// ---- Serializing barrier (A3, B2..B4) ---------------------------------------

void SyncCores() {
  static std::once_flag once;
  static bool registered = false;
  std::call_once(once, [] {
    registered = syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE, 0, 0) == 0;
  });
  ++g_stats.sync_rounds;
  if (registered && syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE, 0, 0) == 0) {
    return;
  }
  sync::InterruptAllCpus();  // without membarrier: an IPI to every CPU is serializing
}

// ---- Stubs within reach of each module ----------------------------------------

struct StubPage {
  uintptr_t address;  // one page; the stub is at its start
};
std::vector<StubPage> g_stubs;
// Modules whose NOP runs were converted (protocol C), by (path, bias); under
// g_patch_mutex. A module's snapshot keeps saying kNopRun: this is the record.
std::set<std::pair<std::string, uintptr_t>> g_converted_modules;

bool InReach(uintptr_t stub, uintptr_t low, uintptr_t high) {
  const uint64_t margin = arch::kCallReach - 2 * kSiteSize;
  return (stub >= low ? stub - low : low - stub) < margin &&
         (stub >= high ? stub - high : high - stub) < margin;
}

Result<uintptr_t> MakeStubNear(uintptr_t low, uintptr_t high) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  // Try below the module first, then above, moving away in 1 MiB steps.
  for (uint64_t distance = 1 << 20; distance < (1ull << 30) + (1ull << 29); distance += 1 << 20) {
    for (int side = 0; side < 2; ++side) {
      uintptr_t hint;
      if (side == 0) {
        if (low < distance + page) continue;
        hint = (low - distance) & ~(page - 1);
      } else {
        hint = (high + distance) & ~(page - 1);
      }
      if (!InReach(hint, low, high)) continue;
      void* mem = mmap(reinterpret_cast<void*>(hint), page, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
      if (mem == MAP_FAILED) continue;
      const auto at = reinterpret_cast<uintptr_t>(mem);
      if (at != hint) {  // old kernels ignore MAP_FIXED_NOREPLACE
        munmap(mem, page);
        continue;
      }
      std::array<uint8_t, arch::kStubSize> code;
      arch::EncodeJumpStub(at, reinterpret_cast<uintptr_t>(&padhook_trampoline), code);
      std::memset(mem, arch::kBreakpoint, page);
      std::memcpy(mem, code.data(), code.size());
      // Written while writable only, then read+execute: never W and X at once.
      if (mprotect(mem, page, PROT_READ | PROT_EXEC) != 0) {
        const int err = errno;
        munmap(mem, page);
        return Status::FromErrno(err, "making the trampoline stub executable");
      }
      g_stubs.push_back({at});
      return at;
    }
  }
  return Status(Errc::kOutOfMemory, "no free page within call reach of " + AddressText(low) + "-" + AddressText(high));
}

Result<uintptr_t> CallTargetLocked(const Function& function) {
  const uintptr_t low = function.module && function.module->low ? function.module->low : function.entry;
  const uintptr_t high = function.module && function.module->high ? function.module->high : function.entry;
  for (const StubPage& stub : g_stubs) {
    if (InReach(stub.address, low, high)) return stub.address;
  }
  return MakeStubNear(low, high);
}

// ---- In-flight breakpoints (protocol B) ----------------------------------------

// A sorted array of in-flight sites with their final bytes. Two generations:
// the current batch's and the previous one's, for late traps.
struct InflightTable {
  size_t count = 0;
  uintptr_t sites[1];  // really `count` entries (allocated with mmap)
};
std::atomic<InflightTable*> g_inflight[2];
std::atomic<unsigned> g_inflight_current{0};
struct sigaction g_previous_sigtrap;  // written once under g_patch_mutex
std::atomic<bool> g_sigtrap_installed{false};

bool InTable(const InflightTable* t, uintptr_t site) {
  if (t == nullptr) return false;
  return std::binary_search(t->sites, t->sites + t->count, site);
}

void PassOnTrap(int sig, siginfo_t* info, void* ucontext) {
  g_chained_traps.fetch_add(1, std::memory_order_relaxed);
  const struct sigaction& prev = g_previous_sigtrap;
  if (prev.sa_flags & SA_SIGINFO) {
    if (prev.sa_sigaction != nullptr) prev.sa_sigaction(sig, info, ucontext);
    return;
  }
  if (prev.sa_handler == SIG_IGN) return;
  if (prev.sa_handler != SIG_DFL && prev.sa_handler != nullptr) {
    prev.sa_handler(sig);
    return;
  }
  // Default action: die of SIGTRAP as the program would have without padhook.
  signal(sig, SIG_DFL);
  syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), sig);
}

void OnSigtrap(int sig, siginfo_t* info, void* ucontext) {
  const uintptr_t site = arch::BreakpointAddress(ucontext);
  const unsigned cur = g_inflight_current.load(std::memory_order_acquire);
  if (InTable(g_inflight[cur].load(std::memory_order_acquire), site) ||
      InTable(g_inflight[cur ^ 1].load(std::memory_order_acquire), site)) {
    g_breakpoint_hits.fetch_add(1, std::memory_order_relaxed);
    const uint8_t first = __atomic_load_n(reinterpret_cast<const uint8_t*>(site), __ATOMIC_ACQUIRE);
    // Still in flight: behave as the NOP. Already final: run the final instruction.
    arch::SetContextPc(ucontext, first == arch::kBreakpoint ? site + kSiteSize : site);
    return;
  }
  PassOnTrap(sig, info, ucontext);
}

Status InstallSigtrapLocked() {
  if (g_sigtrap_installed.load(std::memory_order_relaxed)) return Status::Ok();
  struct sigaction sa = {};
  sa.sa_sigaction = OnSigtrap;
  sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGTRAP, &sa, &g_previous_sigtrap) != 0) {
    return Status::FromErrno(errno, "installing padhook's SIGTRAP handler");
  }
  g_sigtrap_installed.store(true, std::memory_order_release);
  return Status::Ok();
}

// Publishes `sites` as the current in-flight table (B1). The table two
// generations old is freed: its traps were all delivered long ago (a whole
// batch with three barriers has passed since).
Status PublishInflightLocked(std::vector<uintptr_t> sites) {
  std::sort(sites.begin(), sites.end());
  const size_t bytes = sizeof(InflightTable) + sizeof(uintptr_t) * sites.size();
  void* mem = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return Status::FromErrno(errno, "allocating the in-flight breakpoint table");
  auto* table = static_cast<InflightTable*>(mem);
  table->count = sites.size();
  std::copy(sites.begin(), sites.end(), table->sites);
  const unsigned next = g_inflight_current.load(std::memory_order_relaxed) ^ 1;
  InflightTable* old = g_inflight[next].exchange(table, std::memory_order_acq_rel);
  g_inflight_current.store(next, std::memory_order_release);
  if (old != nullptr) {
    munmap(old, sizeof(InflightTable) + sizeof(uintptr_t) * old->count);
  }
  return Status::Ok();
}

// ---- Stop the world (protocol C) -------------------------------------------------

long Futex(std::atomic<int>* word, int op, int value) {
  return syscall(SYS_futex, reinterpret_cast<int*>(word), op, value, nullptr, nullptr, 0);
}

struct StopState {
  std::atomic<int> arrived{0};
  std::atomic<int> departed{0};
  std::atomic<int> released{0};  // futex word: 0 while stopped
  const std::vector<uintptr_t>* runs = nullptr;  // sorted converted sites
  std::atomic<uint64_t> moved{0};
};
StopState* g_stop = nullptr;  // set before the first signal is sent

void OnStopSignal(int, siginfo_t*, void* ucontext) {
  const int saved_errno = errno;
  StopState* st = g_stop;
  st->arrived.fetch_add(1, std::memory_order_acq_rel);
  Futex(&st->arrived, FUTEX_WAKE_PRIVATE, 1);
  while (st->released.load(std::memory_order_acquire) == 0) {
    Futex(&st->released, FUTEX_WAIT_PRIVATE, 0);
  }
  const uintptr_t pc = arch::ContextPc(ucontext);
  const auto& runs = *st->runs;
  auto it = std::upper_bound(runs.begin(), runs.end(), pc);  // first site > pc
  if (it != runs.begin()) {
    const uintptr_t site = *(it - 1);
    if (pc > site && pc < site + kSiteSize) {
      arch::SetContextPc(ucontext, site + kSiteSize);  // C4
      st->moved.fetch_add(1, std::memory_order_relaxed);
    }
  }
  st->departed.fetch_add(1, std::memory_order_acq_rel);
  Futex(&st->departed, FUTEX_WAKE_PRIVATE, 1);
  errno = saved_errno;
}

// Appends the ids of the other threads of this process to `out` (whose
// capacity is reserved beforehand: no allocation, threads may be stopped).
// Reads /proc/self/task with getdents64 into a stack buffer.
void OtherThreads(std::vector<pid_t>* out) {
  out->clear();
  const pid_t self = static_cast<pid_t>(syscall(SYS_gettid));
  const int fd = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  alignas(8) char buf[8192];
  for (;;) {
    const long n = syscall(SYS_getdents64, fd, buf, sizeof(buf));
    if (n <= 0) break;
    for (long at = 0; at < n;) {
      struct Dirent64 {
        uint64_t ino;
        int64_t off;
        unsigned short reclen;
        unsigned char type;
        char name[1];
      };
      const auto* e = reinterpret_cast<const Dirent64*>(buf + at);
      const pid_t tid = static_cast<pid_t>(std::atoi(e->name));
      if (tid > 0 && tid != self && out->size() < out->capacity()) out->push_back(tid);
      at += e->reclen;
    }
  }
  close(fd);
}

// Waits until `counter` reaches `target`, sleeping on the futex; false on timeout.
bool WaitFor(std::atomic<int>& counter, int target, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const int now = counter.load(std::memory_order_acquire);
    if (now >= target) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    timespec ts{0, 2'000'000};
    syscall(SYS_futex, reinterpret_cast<int*>(&counter), FUTEX_WAIT_PRIVATE, now, &ts, nullptr, 0);
  }
}

int PickStopSignal() {
  for (int sig = SIGRTMAX; sig >= SIGRTMIN; --sig) {
    struct sigaction cur;
    if (sigaction(sig, nullptr, &cur) == 0 && !(cur.sa_flags & SA_SIGINFO) &&
        cur.sa_handler == SIG_DFL) {
      return sig;
    }
  }
  return -1;
}

// Protocol C for the given NOP-run sites (all of one or more modules).
Status ConvertNopRunsLocked(const std::vector<const Function*>& functions) {
  std::vector<uintptr_t> runs;
  std::vector<CodeWrite> writes;
  const Bytes nop = SiteNop();
  for (const Function* f : functions) {
    const uintptr_t site = SiteOf(*f);
    const Bytes run = {0x90, 0x90, 0x90, 0x90, 0x90};
    if (ReadSite(site) != run) continue;  // already converted (or not ours: verified below)
    runs.push_back(site);
  }
  std::sort(runs.begin(), runs.end());
  runs.erase(std::unique(runs.begin(), runs.end()), runs.end());
  if (runs.empty()) return Status::Ok();
  for (uintptr_t site : runs) {
    const Bytes run = {0x90, 0x90, 0x90, 0x90, 0x90};
    writes.push_back(CodeWrite::Make(site, run, nop));
  }

  // Everything that allocates happens before the first thread stops: a
  // stopped thread may hold the malloc lock.
  Result<std::unique_ptr<TextWriter::Prepared>> prepared = TextWriter::Process().Prepare(writes);
  if (!prepared.ok()) return prepared.status();
  constexpr size_t kMaxThreads = 1 << 16;
  std::vector<pid_t> stopped, current;
  stopped.reserve(kMaxThreads);
  current.reserve(kMaxThreads);

  const int sig = PickStopSignal();  // C1
  if (sig < 0) return Status(Errc::kUnsupported, "no free real-time signal to stop threads with");
  // Never freed: a handler still being entered after a timeout may read it.
  StopState& state = *new StopState;
  state.runs = new std::vector<uintptr_t>(runs);
  g_stop = &state;
  struct sigaction sa = {}, previous = {};
  sa.sa_sigaction = OnStopSignal;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigfillset(&sa.sa_mask);
  if (sigaction(sig, &sa, &previous) != 0) return Status::FromErrno(errno, "installing the stop signal");

  bool all_stopped = true;  // C2
  for (int round = 0; round < 100; ++round) {
    OtherThreads(&current);
    size_t sent = 0;
    for (pid_t tid : current) {
      if (std::find(stopped.begin(), stopped.end(), tid) != stopped.end()) continue;
      if (syscall(SYS_tgkill, getpid(), tid, sig) == 0 && stopped.size() < stopped.capacity()) {
        stopped.push_back(tid);  // ESRCH: it exited meanwhile
        ++sent;
      }
    }
    if (sent == 0) break;
    if (!WaitFor(state.arrived, static_cast<int>(stopped.size()), std::chrono::milliseconds(2000))) {
      all_stopped = false;
      break;
    }
  }
  size_t failed_index = 0;
  const bool written = all_stopped && (*prepared)->Commit(&failed_index);  // C3
  state.released.store(1, std::memory_order_release);                     // C4
  Futex(&state.released, FUTEX_WAKE_PRIVATE, INT32_MAX);
  // C5: every thread that arrived leaves the handler (it was released).
  while (!WaitFor(state.departed, state.arrived.load(), std::chrono::milliseconds(1000))) {
  }
  // A signal still pending for a thread that never arrived (it exited, or
  // blocks the signal) is discarded by SIG_IGN before the old disposition
  // (usually SIG_DFL: terminate) comes back.
  struct sigaction ignore = {};
  ignore.sa_handler = SIG_IGN;
  sigaction(sig, &ignore, nullptr);
  sigaction(sig, &previous, nullptr);
  ++g_stats.stop_the_world;
  g_stats.threads_moved += state.moved.load();
  if (!all_stopped) {
    return Status(Errc::kBusy, "a thread did not stop within 2 s (does it block real-time signal " +
                                   std::to_string(sig) + "?); nothing was written");
  }
  if (!written) return (*prepared)->Describe(failed_index);
  return Status::Ok();
}

}  // namespace

Status ChangeSites(std::span<const SiteChange> changes) {
  std::lock_guard<std::mutex> lock(g_patch_mutex);
  ++g_stats.batches;
  if (changes.empty()) return Status::Ok();

  // Plan: the bytes each site goes from and to.
  struct Planned {
    uintptr_t site;
    Bytes from, to;
    bool single_store;
  };
  std::vector<Planned> plan;
  std::vector<const Function*> nop_runs;
  const bool strict = TextWriter::Process().mode() == WriteMode::kStrict;
  for (const SiteChange& c : changes) {
    const Function& f = *c.function;
    if (f.site.kind != SiteKind::kSingleNop && f.site.kind != SiteKind::kNopRun) {
      return Status(Errc::kUnexpectedBytes, f.name + " at " + AddressText(f.entry) + ": " + arch::DescribeSite(f.site));
    }
    Result<uintptr_t> target = CallTargetLocked(f);
    if (!target.ok()) return target.status();
    Bytes call;
    if (!arch::EncodeCall(SiteOf(f), *target, call)) {
      return Status(Errc::kUnsupported, "stub out of call reach of " + f.name);
    }
    // Still the compiler's run of 1-byte NOPs (not converted yet, or put
    // back by someone after a failed batch): it must be converted first.
    if (c.to_call && f.site.kind == SiteKind::kNopRun &&
        ReadSite(SiteOf(f)) == Bytes{0x90, 0x90, 0x90, 0x90, 0x90}) {
      nop_runs.push_back(&f);
    }
    const uintptr_t site = SiteOf(f);
    // The NOP this site holds unpatched: the compiler's own single NOP, or
    // the canonical one a NOP run was converted to.
    Bytes nop = SiteNop();
    if (f.site.kind == SiteKind::kSingleNop) std::copy_n(f.site.original, kSiteSize, nop.begin());
    plan.push_back({site, c.to_call ? nop : call, c.to_call ? call : nop,
                    !strict && site % 8 + kSiteSize <= 8});
  }
  if (!nop_runs.empty()) {
    // The first time a module is involved, convert all its NOP runs at once:
    // one stop of the world per module, not one per batch.
    std::vector<const Module*> modules;
    for (const Function* f : nop_runs) {
      if (f->module && std::find(modules.begin(), modules.end(), f->module) == modules.end() &&
          !g_converted_modules.count({f->module->path, f->module->bias})) {
        modules.push_back(f->module);
      }
    }
    for (const Module* m : modules) {
      for (const Function& g : m->functions) {
        if (g.site.kind == SiteKind::kNopRun && g.site.slot != SlotState::kUnexpected) nop_runs.push_back(&g);
      }
    }
    if (Status converted = ConvertNopRunsLocked(nop_runs); !converted.ok()) return converted;
    for (const Module* m : modules) g_converted_modules.insert({m->path, m->bias});
  }

  // Protocol A: one aligned 8-byte store per site, in one TextWriter batch.
  std::vector<CodeWrite> words;
  std::vector<uintptr_t> breakpoint_sites;
  for (const Planned& p : plan) {
    if (!p.single_store) {
      breakpoint_sites.push_back(p.site);
      continue;
    }
    const uintptr_t word = p.site & ~uintptr_t{7};
    uint8_t before[8], after[8];
    std::memcpy(before, reinterpret_cast<const void*>(word), 8);
    std::memcpy(before + (p.site - word), p.from.data(), kSiteSize);  // what A1 expects
    std::memcpy(after, before, 8);
    std::memcpy(after + (p.site - word), p.to.data(), kSiteSize);
    words.push_back(CodeWrite::Make(word, before, after));
  }
  if (!words.empty()) {
    if (Status written = TextWriter::Process().Apply(words); !written.ok()) return written;
    g_stats.single_store_sites += words.size();
  }

  // Protocol B for the rest.
  if (!breakpoint_sites.empty()) {
    auto undo_words = [&] {
      std::vector<CodeWrite> back;
      for (auto it = words.rbegin(); it != words.rend(); ++it) {
        back.push_back(CodeWrite::Make(it->address, {it->replacement, 8}, {it->expected, 8}));
      }
      (void)TextWriter::Process().Apply(back);
      SyncCores();
    };
    Status status = InstallSigtrapLocked();
    if (status.ok()) status = PublishInflightLocked(breakpoint_sites);  // B1
    std::vector<CodeWrite> step_int3, step_tail, step_head;
    for (const Planned& p : plan) {
      if (p.single_store) continue;
      const uint8_t int3 = arch::kBreakpoint;
      step_int3.push_back(CodeWrite::Make(p.site, {p.from.data(), 1}, {&int3, 1}));
      step_tail.push_back(CodeWrite::Make(p.site + 1, {p.from.data() + 1, kSiteSize - 1},
                                          {p.to.data() + 1, kSiteSize - 1}));
      step_head.push_back(CodeWrite::Make(p.site, {&int3, 1}, {p.to.data(), 1}));
    }
    if (status.ok()) status = TextWriter::Process().Apply(step_int3);  // B2
    if (!status.ok()) {
      undo_words();
      return status;
    }
    SyncCores();
    // Undo of B2 (and B3): with int3 still at byte 0 of every site, the tails
    // can be put back, then the heads; the sites end as they started.
    auto undo_breakpoints = [&](bool tails_written) {
      std::vector<CodeWrite> tails_back, heads_back;
      for (const CodeWrite& w : step_tail) {
        tails_back.push_back(CodeWrite::Make(w.address, {w.replacement, w.size}, {w.expected, w.size}));
      }
      for (const CodeWrite& w : step_int3) {
        heads_back.push_back(CodeWrite::Make(w.address, {w.replacement, 1}, {w.expected, 1}));
      }
      if (tails_written) {
        (void)TextWriter::Process().Apply(tails_back);
        SyncCores();
      }
      (void)TextWriter::Process().Apply(heads_back);
      SyncCores();
      undo_words();
    };
    status = TextWriter::Process().Apply(step_tail);  // B3
    if (!status.ok()) {
      undo_breakpoints(/*tails_written=*/false);
      return status;
    }
    SyncCores();
    status = TextWriter::Process().Apply(step_head);  // B4
    if (!status.ok()) {
      undo_breakpoints(/*tails_written=*/true);
      return status;
    }
    g_stats.breakpoint_sites += breakpoint_sites.size();
  }
  SyncCores();  // A3 (and B4's barrier)
  return Status::Ok();
}

PatcherStats Stats() {
  std::lock_guard<std::mutex> lock(g_patch_mutex);
  PatcherStats s = g_stats;
  s.breakpoint_hits = g_breakpoint_hits.load();
  s.chained_traps = g_chained_traps.load();
  return s;
}

}  // namespace padhook::patch
