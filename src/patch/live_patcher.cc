// Live patching of function entries.
//
// A site is the kSiteSize bytes after the entry (after endbr64, if any). It
// holds a NOP (unpatched) or `call stub` (patched); the stub, within rel32
// reach of the module, jumps to the global trampoline (one stub per site kind,
// arch::StubKind: the trampoline's entry point then knows where the entry is).
//
// ---------------------------------------------------------------------------
// Protocol A: single store (site inside one aligned 8-byte word, fast mode)
//   A1. Read the 8-byte word; check the site holds the expected instruction.
//   A2. One aligned 8-byte store writes the new instruction (TextWriter
//       guarantee 3). A CPU fetching the word sees either instruction whole:
//       both are single 5-byte instructions at the same address. The other
//       bytes of the word get back the values A1 read.
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
//   A trap delivered even later, when its table is gone (the thread was
//   descheduled while two more batches ran), is recognized by its cause (an
//   int3: SI_KERNEL) and by the byte now at the address: the head of a site
//   instruction, no int3 any more; it is resumed at the site too.
//   Any other SIGTRAP is passed to the handler the application installed
//   (or the default action): padhook never swallows a signal that is not its own.
//
// Protocol C: converting 1-byte NOP runs (GCC), before the first patch on a page
//   The int3 protocol is not enough for a run of 1-byte NOPs: a thread can be
//   stopped between two of them, and would resume in the middle of the new
//   instruction. So when a batch would patch a site that is still a NOP run:
//   C1. Pick a real-time signal nobody handles; install a handler.
//   C2. Send it to every other thread (/proc/self/task, tgkill); repeat until
//       no new thread appears. Each handler counts itself in and waits (futex,
//       no spinning).
//   C3. With every other thread stopped, rewrite into one 5-byte NOP every NOP
//       run on the pages of those sites: the batch's own, and those of every
//       other function of the module whose site lies on such a page (one
//       TextWriter batch, verified). The pages are about to be copied on
//       write anyway; converting their neighbours spares later batches a stop,
//       and leaving the rest of the module alone spares copying all its pages.
//   C4. Release the threads. Each checks its own interrupted PC: inside a
//       converted run (site < pc < site + kSiteSize) it moves the PC to
//       site + kSiteSize, which is what executing the remaining NOPs would
//       have done. It checks the same in the contexts saved by signal
//       handlers it was already running when the stop signal came (found in
//       their frames on the stack: arch::OuterSignalContexts): such a handler
//       returns later to a PC the stop handler's own context does not show.
//       (Found by the soak: a SIGUSR1 handler interrupted a NOP run, the
//       stop signal interrupted the handler, and the thread later resumed
//       inside the new 5-byte NOP: SIGILL.)
//   C5. Wait until every thread has left the handler; restore the signal's
//       previous disposition. A thread that does not arrive in time (it blocks
//       the signal) fails the conversion before anything is written.
//   The bytes are the record: a site that reads as a NOP run was not
//   converted yet. Afterwards the sites are single NOPs and use protocols A
//   or B. A conversion is permanent, even when the batch that needed it fails.
//
// Shared variables
//   g_inflight[2], g_inflight_current: written by the patching thread under
//     g_patch_mutex (release), read by the SIGTRAP handler (acquire).
//   g_stop: the stop-the-world state; written by the controller before the
//     first signal is sent, read and counted by the handlers (atomics, futex
//     waits); freed once every handler that entered has left (C5).
//   g_site_heads: written once under g_patch_mutex before the SIGTRAP
//     handler is installed; read by the handler.
//   g_breakpoint_hits, g_chained_traps, g_late_traps: counters (relaxed).
//   g_stubs, g_stats: written under g_patch_mutex only.
//
// Batches (ChangeSites): all or nothing, in at most two TextWriter batches.
//   S1. Fast mode, unless the batch's first site is still a NOP run (a first
//       attach): the optimistic pass. No plan: one TextWriter batch writes
//       protocol A (A1, A2) at every site that is ready for it (a known kind,
//       in one word, converted, a stub in reach: made here if needed), the
//       stores computed from the function list as the writer asks for them.
//       Every other site gets no store and is left for S2; a site is never
//       written and then undone because of another one. Barrier (A3). If the
//       writer failed (bytes not as expected...), it undid the pass: S2 then
//       does the whole batch again (and reports why it cannot).
//   S2. The planned pass, for the whole batch in strict mode or after a failed
//       S1, else for the sites S1 left: plan every site (kind, stub, protocol,
//       pages), convert the NOP runs (C), publish B's in-flight sites (B1),
//       and write one TextWriter batch: a phase of A words and B's int3s, then
//       B's tails, then B's heads, with a barrier between phases (B2..B4) and
//       after (A3). On failure the writer undid it (barriers between the
//       undone phases), and the sites S1 changed are changed back by a planned
//       batch the other way.
// The stores are never kept in a list: a batch of 100,000 sites allocates a
// few words per site.
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
#include <mutex>
#include <new>
#include <string>
#include <thread>

#include "arch.h"
#include "fault/fault.h"
#include "format.h"
#include "padhook/text_writer.h"
#include "sync/grace_period.h"

namespace padhook::patch {
namespace {

using arch::kSiteSize;
using Bytes = std::array<uint8_t, kSiteSize>;

std::mutex g_patch_mutex;  // serializes ChangeSites, stub creation, conversions
PatcherStats g_stats;      // under g_patch_mutex, except the atomics below
std::atomic<uint64_t> g_breakpoint_hits{0};
std::atomic<uint64_t> g_chained_traps{0};
std::atomic<uint64_t> g_late_traps{0};
// The first byte of a final site instruction (the NOP, the call): written
// once under g_patch_mutex before the SIGTRAP handler that reads them is
// installed (sigaction orders the two).
uint8_t g_site_heads[2] = {0, 0};

uintptr_t SiteOf(const Function& f) { return f.entry + f.site.landing_pad; }

// True when the site still holds the compiler's run of 1-byte NOPs.
bool IsNopRun(uintptr_t site) {
  uint32_t head;
  std::memcpy(&head, reinterpret_cast<const void*>(site), 4);  // no atomicity needed: a yes/no hint
  return head == 0x90909090u &&
         __atomic_load_n(reinterpret_cast<const uint8_t*>(site + 4), __ATOMIC_ACQUIRE) == 0x90;
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
    registered =
        syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE, 0, 0) == 0;
  });
  ++g_stats.sync_rounds;
  if (registered && !fault::Fail(fault::Kind::kMembarrier) &&
      syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE, 0, 0) == 0) {
    return;
  }
  sync::InterruptAllCpus();  // without membarrier: an IPI to every CPU is serializing
}

// ---- Stubs within reach of each module ----------------------------------------

struct StubPage {
  uintptr_t address;  // one page; the stub is at its start
};
std::vector<StubPage> g_stubs;

bool InReach(uintptr_t stub, uintptr_t low, uintptr_t high) {
  // Every stub of the page, from every byte of the module.
  const uint64_t margin = arch::kCallReach - 2 * kSiteSize - arch::kStubKinds * arch::kStubSize;
  return (stub >= low ? stub - low : low - stub) < margin &&
         (stub >= high ? stub - high : high - stub) < margin;
}

// The stub page's bytes: one stub per kind at its start, int3 everywhere else.
void StubPageBytes(uintptr_t at, uint8_t* page_bytes, size_t page) {
  std::memset(page_bytes, arch::kBreakpoint, page);
  for (size_t kind = 0; kind < arch::kStubKinds; ++kind) {
    std::array<uint8_t, arch::kStubSize> code;
    const uintptr_t stub = at + kind * arch::kStubSize;
    arch::EncodeJumpStub(stub, arch::TrampolineEntry(kind), code);
    std::memcpy(page_bytes + kind * arch::kStubSize, code.data(), code.size());
  }
}

// Where a site of `f` calls, given its module's stub page.
uintptr_t CallTargetOf(const Function& f, uintptr_t stub_page) {
  return stub_page + arch::kStubSize * arch::StubKind(f.site.landing_pad);
}

// Strict mode: the page is mapped read+execute from the start and written
// through the TextWriter (/proc/self/mem): it is never writable, and no
// protection ever gains PROT_EXEC (which PR_SET_MDWE refuses).
Status FillStubPageStrict(uintptr_t at, size_t page) {
  std::vector<uint8_t> bytes(page);
  StubPageBytes(at, bytes.data(), page);
  CodeBatch batch;
  batch.Reserve(page / 8);
  const uint64_t zero = 0;
  for (size_t off = 0; off < page; off += 8) batch.Add(at + off, &zero, bytes.data() + off, 8);
  return TextWriter::Process().Apply(batch);
}

// `strict`: the writer's mode, decided by the caller (the optimistic pass,
// which runs inside a TextWriter batch, is fast mode only and must not use
// the writer).
Result<uintptr_t> MakeStubNear(uintptr_t low, uintptr_t high, bool strict) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  // Room for the new page's record before it is mapped: a std::bad_alloc
  // after the mmap would leak the page.
  g_stubs.reserve(g_stubs.size() + 1);
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
      void* mem = fault::Fail(fault::Kind::kMmap)
                      ? MAP_FAILED
                      : mmap(reinterpret_cast<void*>(hint), page,
                             strict ? PROT_READ | PROT_EXEC : PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
      if (mem == MAP_FAILED) continue;  // taken (or refused): the next place
      const auto at = reinterpret_cast<uintptr_t>(mem);
      if (at != hint) {  // old kernels ignore MAP_FIXED_NOREPLACE
        munmap(mem, page);
        continue;
      }
      if (strict) {
        Status filled;
        try {
          filled = FillStubPageStrict(at, page);
        } catch (const std::bad_alloc&) {
          munmap(mem, page);  // never published: no thread can run it
          throw;
        }
        if (!filled.ok()) {
          munmap(mem, page);
          return Status(filled.code(), "writing the trampoline stub: " + filled.message());
        }
        g_stubs.push_back({at});
        return at;
      }
      StubPageBytes(at, static_cast<uint8_t*>(mem), page);
      // Written while writable only, then read+execute: never W and X at once.
      const int protected_rx = fault::Fail(fault::Kind::kMprotect)
                                   ? (errno = ENOMEM, -1)
                                   : mprotect(mem, page, PROT_READ | PROT_EXEC);
      if (protected_rx != 0) {
        const int err = errno;
        munmap(mem, page);
        return Status::FromErrno(
            err, "making the trampoline stub executable" +
                     std::string(err == EACCES ? " (refused: PR_SET_MDWE or an LSM; "
                                                 "use PADHOOK_STRICT_WX=1)"
                                               : ""));
      }
      g_stubs.push_back({at});
      return at;
    }
  }
  return Status(Errc::kOutOfMemory,
                "no free page within call reach of " + AddressText(low) + "-" + AddressText(high));
}

Result<uintptr_t> CallTargetLocked(const Function& function, bool strict) {
  const uintptr_t low =
      function.module && function.module->low ? function.module->low : function.entry;
  const uintptr_t high =
      function.module && function.module->high ? function.module->high : function.entry;
  for (const StubPage& stub : g_stubs) {
    if (InReach(stub.address, low, high)) return stub.address;
  }
  return MakeStubNear(low, high, strict);
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
  // A late trap: the thread executed one of padhook's int3s, but was
  // descheduled before its handler ran, long enough for that batch to finish
  // and two more to publish their tables (the barriers wait for running
  // CPUs, not for a pending signal). The int3 is gone: the byte is now the
  // head of a final site instruction (call or NOP), so running from the site
  // again is what the thread would have done without the int3. Only a trap
  // raised by an int3 instruction (SI_KERNEL) qualifies; any other SIGTRAP,
  // or an int3 still in place, is the application's.
  if (info != nullptr && info->si_code == SI_KERNEL) {
    const uint8_t now = __atomic_load_n(reinterpret_cast<const uint8_t*>(site), __ATOMIC_ACQUIRE);
    if (now != arch::kBreakpoint && (now == g_site_heads[0] || now == g_site_heads[1])) {
      g_late_traps.fetch_add(1, std::memory_order_relaxed);
      arch::SetContextPc(ucontext, site);
      return;
    }
  }
  PassOnTrap(sig, info, ucontext);
}

Status InstallSigtrapLocked() {
  if (g_sigtrap_installed.load(std::memory_order_relaxed)) return Status::Ok();
  {
    Bytes nop, call;
    arch::EncodeSiteNop(nop);
    (void)arch::EncodeCall(0x1000, 0x2000, call);
    g_site_heads[0] = nop[0];
    g_site_heads[1] = call[0];
  }
  struct sigaction sa = {};
  sa.sa_sigaction = OnSigtrap;
  sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  if (fault::Fail(fault::Kind::kSigaction) ? (errno = EINVAL, true)
                                           : sigaction(SIGTRAP, &sa, &g_previous_sigtrap) != 0) {
    return Status::FromErrno(errno, "installing padhook's SIGTRAP handler");
  }
  g_sigtrap_installed.store(true, std::memory_order_release);
  return Status::Ok();
}

// Publishes `sites` as the current in-flight table (B1). The table two
// generations old is freed or reused: its traps were all delivered long ago
// (a whole batch with three barriers has passed since).
Status PublishInflightLocked(std::vector<uintptr_t> sites) {
  if (!std::is_sorted(sites.begin(), sites.end())) std::sort(sites.begin(), sites.end());
  const unsigned next = g_inflight_current.load(std::memory_order_relaxed) ^ 1;
  // A table that fits in a page takes generation `next`'s own page, kept
  // from one batch to the next: a small batch (one function) maps nothing.
  static void* small_pages[2] = {nullptr, nullptr};  // under g_patch_mutex; never unmapped
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t bytes = sizeof(InflightTable) + sizeof(uintptr_t) * sites.size();
  void* mem;
  if (bytes <= page) {
    if (small_pages[next] == nullptr) {
      small_pages[next] =
          fault::Fail(fault::Kind::kMmap)
              ? (errno = ENOMEM, MAP_FAILED)
              : mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (small_pages[next] == MAP_FAILED) {
        small_pages[next] = nullptr;
        return Status::FromErrno(errno, "allocating the in-flight breakpoint table");
      }
    }
    mem = small_pages[next];
  } else {
    mem = fault::Fail(fault::Kind::kMmap)
              ? (errno = ENOMEM, MAP_FAILED)
              : mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
      return Status::FromErrno(errno, "allocating the in-flight breakpoint table");
  }
  // The table two generations old (in slot `next`) goes now; when it is the
  // small page it is emptied before it is refilled.
  InflightTable* old = g_inflight[next].exchange(nullptr, std::memory_order_acq_rel);
  if (old != nullptr && old != small_pages[next]) {
    munmap(old, sizeof(InflightTable) + sizeof(uintptr_t) * old->count);
  }
  auto* table = static_cast<InflightTable*>(mem);
  table->count = sites.size();
  std::copy(sites.begin(), sites.end(), table->sites);
  g_inflight[next].store(table, std::memory_order_release);
  g_inflight_current.store(next, std::memory_order_release);
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
  std::vector<uintptr_t> runs;   // the converted sites, sorted
  std::atomic<uint64_t> moved{0};
  std::atomic<uint64_t> moved_outer{0};  // of those, contexts of signal handlers already running
};
// Signal handlers nested in each other, at most, whose contexts C4 checks.
constexpr size_t kMaxOuterContexts = 8;
StopState* g_stop = nullptr;  // set before the first signal is sent

void OnStopSignal(int, siginfo_t*, void* ucontext) {
  const int saved_errno = errno;
  StopState* st = g_stop;
  st->arrived.fetch_add(1, std::memory_order_acq_rel);
  Futex(&st->arrived, FUTEX_WAKE_PRIVATE, 1);
  while (st->released.load(std::memory_order_acquire) == 0) {
    Futex(&st->released, FUTEX_WAIT_PRIVATE, 0);
  }
  // C4, for the context this handler returns to and for those of signal
  // handlers the thread was already running (it returns to those later).
  void* contexts[1 + kMaxOuterContexts] = {ucontext};
  const size_t count = 1 + arch::OuterSignalContexts(ucontext, contexts + 1, kMaxOuterContexts);
  const auto& runs = st->runs;
  for (size_t i = 0; i < count; ++i) {
    const uintptr_t pc = arch::ContextPc(contexts[i]);
    auto it = std::upper_bound(runs.begin(), runs.end(), pc);  // first site > pc
    if (it == runs.begin()) continue;
    const uintptr_t site = *(it - 1);
    if (pc > site && pc < site + kSiteSize) {
      arch::SetContextPc(contexts[i], site + kSiteSize);
      st->moved.fetch_add(1, std::memory_order_relaxed);
      if (i > 0) st->moved_outer.fetch_add(1, std::memory_order_relaxed);
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

const Bytes kNopRunBytes = {0x90, 0x90, 0x90, 0x90, 0x90};

uint64_t AsWord(const Bytes& b) {
  uint64_t w = 0;
  std::memcpy(&w, b.data(), kSiteSize);
  return w;
}

// C3's stores: every site of `runs` (sorted), NOP run -> one NOP.
class RunConversion final : public StoreSource {
 public:
  explicit RunConversion(const std::vector<uintptr_t>& runs) : runs_(runs) {}
  size_t phase_count() const override { return runs_.empty() ? 0 : 1; }
  size_t phase_size(size_t) const override { return runs_.size(); }
  void Fill(size_t, size_t first, size_t count, CodeStore* out) const override {
    for (size_t k = 0; k < count; ++k) out[k] = {runs_[first + k], run_, nop_, kSiteSize};
  }

 private:
  const std::vector<uintptr_t>& runs_;
  const uint64_t run_ = AsWord(kNopRunBytes);
  const uint64_t nop_ = AsWord(SiteNop());
};

// Protocol C for the given NOP-run sites (sorted, unique).
Status ConvertNopRunsLocked(std::vector<uintptr_t> sites) {
  if (sites.empty()) return Status::Ok();
  // The handlers read the sites (C4) through the state, which must outlive a
  // handler entered late: it owns them.
  auto state = std::make_unique<StopState>();
  state->runs = std::move(sites);
  const std::vector<uintptr_t>& runs = state->runs;
  const RunConversion conversion(runs);
  PageSet pages;
  for (uintptr_t site : runs) pages.Add(site, kSiteSize);

  // Everything that allocates happens before the first thread stops: a
  // stopped thread may hold the malloc lock.
  Result<std::unique_ptr<TextWriter::Prepared>> prepared =
      TextWriter::Process().Prepare(conversion, pages);
  if (!prepared.ok()) return prepared.status();
  constexpr size_t kMaxThreads = 1 << 16;
  std::vector<pid_t> stopped, current;
  stopped.reserve(kMaxThreads);
  current.reserve(kMaxThreads);

  const int sig = PickStopSignal();  // C1
  if (sig < 0) return Status(Errc::kUnsupported, "no free real-time signal to stop threads with");
  g_stop = state.get();
  struct sigaction sa = {}, previous = {};
  sa.sa_sigaction = OnStopSignal;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigfillset(&sa.sa_mask);
  if (fault::Fail(fault::Kind::kSigaction) ? (errno = EINVAL, true)
                                           : sigaction(sig, &sa, &previous) != 0) {
    g_stop = nullptr;
    return Status::FromErrno(errno, "installing the stop signal");
  }

  bool all_stopped = true;  // C2
  int signal_error = 0;     // a thread that could not be signalled (not ESRCH)
  for (int round = 0; round < 100 && signal_error == 0; ++round) {
    OtherThreads(&current);
    size_t sent = 0;
    for (pid_t tid : current) {
      if (std::find(stopped.begin(), stopped.end(), tid) != stopped.end()) continue;
      const long rc = fault::Fail(fault::Kind::kTgkill) ? (errno = EAGAIN, -1)
                                                        : syscall(SYS_tgkill, getpid(), tid, sig);
      if (rc != 0) {
        // ESRCH: it exited meanwhile. Anything else (EAGAIN: the queue of
        // real-time signals is full) leaves a thread running: converting now
        // could resume it in the middle of a new instruction.
        if (errno != ESRCH) {
          signal_error = errno;
          break;
        }
        continue;
      }
      if (stopped.size() >= stopped.capacity()) {
        signal_error = E2BIG;  // more threads than the list holds: it was signalled, not counted
        break;
      }
      stopped.push_back(tid);
      ++sent;
    }
    if (signal_error != 0) {
      all_stopped = false;
      // The threads already signalled are waited for below (C5) like any other.
      (void)WaitFor(state->arrived, static_cast<int>(stopped.size()),
                    std::chrono::milliseconds(2000));
      break;
    }
    if (sent == 0) break;
    if (!WaitFor(state->arrived, static_cast<int>(stopped.size()),
                 std::chrono::milliseconds(2000))) {
      all_stopped = false;
      break;
    }
  }
  const bool written = all_stopped && (*prepared)->Commit();  // C3
  state->released.store(1, std::memory_order_release);        // C4
  Futex(&state->released, FUTEX_WAKE_PRIVATE, INT32_MAX);
  // C5: every thread that arrived leaves the handler (it was released).
  while (!WaitFor(state->departed, state->arrived.load(), std::chrono::milliseconds(1000))) {
  }
  // A signal still pending for a thread that never arrived (it exited, or
  // blocks the signal) is discarded by SIG_IGN before the old disposition
  // (usually SIG_DFL: terminate) comes back.
  struct sigaction ignore = {};
  ignore.sa_handler = SIG_IGN;
  sigaction(sig, &ignore, nullptr);
  sigaction(sig, &previous, nullptr);
  ++g_stats.stop_the_world;
  g_stats.threads_moved += state->moved.load();
  g_stats.outer_contexts_moved += state->moved_outer.load();
  if (!all_stopped) {
    // A handler may still be entered late (the signal was delivered just
    // before SIG_IGN): the state must outlive it, so it is never freed.
    (void)state.release();
    if (signal_error != 0) {
      return Status::FromErrno(signal_error,
                               "could not signal a thread to stop it (real-time signal " +
                                   std::to_string(sig) + "); nothing was written");
    }
    return Status(Errc::kBusy, "a thread did not stop within 2 s (does it block real-time signal " +
                                   std::to_string(sig) + "?); nothing was written");
  }
  // Every thread that was sent the signal arrived and left: no handler can
  // read the state any more.
  g_stop = nullptr;
  if (!written) return (*prepared)->Describe();
  g_stats.converted_sites += runs.size();
  return Status::Ok();  // `prepared` (which reads `runs`) goes before `state`
}

// The sites of `functions` (being patched, still NOP runs) and every other NOP
// run on their pages (C3), sorted.
std::vector<uintptr_t> RunsOnTheirPages(const std::vector<const Function*>& functions) {
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  std::vector<uintptr_t> runs;
  std::vector<std::pair<const Module*, uintptr_t>> pages;  // (module, page)
  for (const Function* f : functions) {
    const uintptr_t site = SiteOf(*f);
    if (f->module == nullptr) {
      runs.push_back(site);
      continue;
    }
    for (uintptr_t p = site & ~(page - 1); p < site + kSiteSize; p += page) {
      if (pages.empty() || pages.back() != std::make_pair(f->module, p))
        pages.emplace_back(f->module, p);
    }
  }
  std::sort(pages.begin(), pages.end());
  pages.erase(std::unique(pages.begin(), pages.end()), pages.end());
  for (const auto& [module, p] : pages) {
    // Functions whose site may touch page p: entry in [p - 8, p + page).
    auto it = std::lower_bound(module->functions.begin(), module->functions.end(), p - 8,
                               [](const Function& g, uintptr_t value) { return g.entry < value; });
    for (; it != module->functions.end() && it->entry < p + page; ++it) {
      const uintptr_t s = SiteOf(*it);
      if (s + kSiteSize <= p || s >= p + page) continue;
      if (it->site.kind == SiteKind::kNopRun && it->site.slot != SlotState::kUnexpected &&
          IsNopRun(s)) {
        runs.push_back(s);
      }
    }
  }
  // Pages in order, functions in order within a page: usually sorted already.
  if (!std::is_sorted(runs.begin(), runs.end())) std::sort(runs.begin(), runs.end());
  runs.erase(std::unique(runs.begin(), runs.end()), runs.end());
  return runs;
}

// The stub each module's sites call (made before the batch is written).
struct StubChoice {
  const Module* module;
  uintptr_t stub;
};

// The stores of one ChangeSites batch, computed from the function list each
// time the writer asks (planning only listed the sites that use protocol B).
//   phase 0: protocol A words (A2) and B's int3s (B2)
//   phase 1: B's tails (B3)          phase 2: B's heads (B4)
// A site's bytes are kept in a word: byte i is bits 8i..8i+7.
//
// Optimistic (fast mode, no plan made): every site that is ready for
// protocol A (a known kind, in one word, a NOP run already converted, its
// module's stub found or made here) is written; any other gets no store
// (size 0) and is listed in skipped(), for ChangeSites to hand to the planned
// path. So a site is never written and then undone because of another one.
class SiteWrites final : public StoreSource {
 public:
  SiteWrites(std::span<const Function* const> functions, bool to_call,
             std::vector<StubChoice>* stubs, const std::vector<uint32_t>& single,
             const std::vector<uint32_t>& breakpoint, bool optimistic,
             std::span<SiteMemo* const> memos = {})
      : functions_(functions),
        memos_(memos),
        to_call_(to_call),
        stubs_(stubs),
        single_(single),
        breakpoint_(breakpoint),
        all_single_(breakpoint.empty()),
        optimistic_(optimistic),
        single_count_(breakpoint.empty() ? functions.size() : single.size()) {
    // Skip runs inside the writer's batch (noexcept: pages may be writable):
    // room for every function now, so that it never allocates.
    if (optimistic_) skipped_.reserve(functions.size());
  }

  size_t phase_count() const override { return breakpoint_.empty() ? (single_count_ ? 1 : 0) : 3; }
  // Optimistic: the functions that got no store, in batch order, once each.
  const std::vector<const Function*>& Skipped() const noexcept { return skipped_; }
  // The function of store i of phase 0 (optimistic batches have one phase).
  const Function* FunctionOf(size_t i) const noexcept { return functions_[i]; }
  size_t phase_size(size_t phase) const override {
    return phase == 0 ? single_count_ + breakpoint_.size() : breakpoint_.size();
  }

  void Fill(size_t phase, size_t first, size_t count, CodeStore* out) const override {
    if (phase == 0 && all_single_) {  // the common batch: protocol A only
      if (!memos_.empty()) {
        if (to_call_) {
          for (size_t k = 0; k < count; ++k) out[k] = MemoStore<true>(first + k);
        } else {
          for (size_t k = 0; k < count; ++k) out[k] = MemoStore<false>(first + k);
        }
      } else if (to_call_) {
        for (size_t k = 0; k < count; ++k) out[k] = WordStore<true>(*functions_[first + k]);
      } else {
        for (size_t k = 0; k < count; ++k) out[k] = WordStore<false>(*functions_[first + k]);
      }
      return;
    }
    for (size_t k = 0; k < count; ++k) {
      const size_t i = first + k;
      if (phase == 0 && i < single_count_) {
        out[k] = to_call_ ? WordStore<true>(*functions_[single_[i]])
                          : WordStore<false>(*functions_[single_[i]]);
        continue;
      }
      const Function& f = *functions_[breakpoint_[phase == 0 ? i - single_count_ : i]];
      const uintptr_t site = SiteOf(f);
      const uint64_t nop = NopOf(f), call = CallOf(site, CallTargetOf(f, StubOf(f)));
      const uint64_t from = to_call_ ? nop : call, to = to_call_ ? call : nop;
      if (phase == 0) {  // B2: int3 over byte 0
        out[k] = {site, from & 0xff, arch::kBreakpoint, 1};
      } else if (phase == 1) {  // B3: the tail, behind the int3
        out[k] = {site + 1, from >> 8, to >> 8, kSiteSize - 1};
      } else {  // B4: the new byte 0
        out[k] = {site, arch::kBreakpoint, to & 0xff, 1};
      }
    }
  }

 private:
  // The site's bytes unpatched: the compiler's single NOP, or the one a NOP
  // run was converted to (protocol C).
  [[gnu::always_inline]] uint64_t NopOf(const Function& f) const {
    if (f.site.kind != SiteKind::kSingleNop) return nop_;
    uint64_t nop = 0;
    std::memcpy(&nop, f.site.original, kSiteSize);
    return nop;
  }
  [[gnu::always_inline]] static uint64_t CallOf(uintptr_t site, uintptr_t target) {
    Bytes call;
    (void)arch::EncodeCall(site, target, call);  // reach checked by the plan, or by StubOf
    return AsWord(call);
  }

  // A2 from the function's memo when it has one; made (and remembered) when
  // its memo is empty. Only the optimistic pass has memos.
  template <bool kToCall>
  [[gnu::always_inline]] CodeStore MemoStore(size_t i) const {
    SiteMemo* memo = memos_[i];
    if (memo != nullptr && memo->word != 0) [[likely]] {
      return kToCall ? CodeStore{memo->word, memo->unpatched, memo->patched, 8}
                     : CodeStore{memo->word, memo->patched, memo->unpatched, 8};
    }
    const CodeStore s = WordStore<kToCall>(*functions_[i]);
    if (memo != nullptr && s.size == 8) {
      *memo = {s.address, kToCall ? s.expected : s.replacement,
               kToCall ? s.replacement : s.expected};
    }
    return s;
  }

  // A2: the aligned 8-byte word holding the site, its other 3 bytes as they
  // are now (A1).
  template <bool kToCall>
  [[gnu::always_inline]] CodeStore WordStore(const Function& f) const {
    const uintptr_t site = SiteOf(f);
    const SiteKind kind = f.site.kind;
    if (optimistic_ &&
        ((kind != SiteKind::kSingleNop && kind != SiteKind::kNopRun) || site % 8 + kSiteSize > 8)) {
      return Skip(f);
    }
    const uintptr_t stub = f.module == cached_module_ ? cached_stub_ : StubOf(f);
    if (stub == 0) return Skip(f);
    const uintptr_t word = site & ~uintptr_t{7};
    const unsigned shift = 8 * static_cast<unsigned>(site % 8);
    const uint64_t live =
        __atomic_load_n(reinterpret_cast<const uint64_t*>(word), __ATOMIC_ACQUIRE);
    if (kToCall && optimistic_ && kind == SiteKind::kNopRun &&
        ((live >> shift) & kSiteMask) == nop_run_) {
      return Skip(f);  // protocol C first
    }
    const uint64_t now = live & ~(kSiteMask << shift);
    const uint64_t nop = NopOf(f), call = CallOf(site, CallTargetOf(f, stub));
    return kToCall ? CodeStore{word, now | (nop << shift), now | (call << shift), 8}
                   : CodeStore{word, now | (call << shift), now | (nop << shift), 8};
  }

  // No store for f (optimistic): the planned path will do it.
  // Fill may be asked again for the same stores (rollback): a function is
  // listed once, so skipped_ never outgrows the room reserved for it.
  [[gnu::noinline]] CodeStore Skip(const Function& f) const noexcept {
    if (skipped_.empty() || skipped_.back()->entry < f.entry ||
        std::find(skipped_.begin(), skipped_.end(), &f) == skipped_.end()) {
      if (skipped_.size() < skipped_.capacity()) skipped_.push_back(&f);
    }
    return {SiteOf(f), 0, 0, 0};
  }

  // The stub of f's module; 0 when there is none in reach (optimistic only:
  // a plan has made every one).
  [[gnu::noinline]] uintptr_t StubOf(const Function& f) const {
    if (f.module == cached_module_) return cached_stub_;
    uintptr_t stub = 0;
    for (const StubChoice& c : *stubs_) {
      if (c.module == f.module) stub = c.stub;
    }
    if (stub == 0 && optimistic_ && f.module != nullptr) {
      // Inside the writer's batch (noexcept): a stub that cannot be made,
      // for want of memory too, skips the site; the planned path makes it
      // or says why it cannot.
      try {
        stubs_->reserve(stubs_->size() + 1);
        Result<uintptr_t> made = CallTargetLocked(f, /*strict=*/false);  // optimistic: fast mode
        if (made.ok()) {
          stub = *made;
          stubs_->push_back({f.module, stub});
        }
      } catch (const std::bad_alloc&) {
        stub = 0;
      }
    }
    if (stub == 0) return 0;
    cached_module_ = f.module;
    cached_stub_ = stub;
    return stub;
  }

  static constexpr uint64_t kSiteMask = (uint64_t{1} << (8 * kSiteSize)) - 1;
  std::span<const Function* const> functions_;
  std::span<SiteMemo* const> memos_;
  bool to_call_;
  std::vector<StubChoice>* stubs_;
  const std::vector<uint32_t>& single_;
  const std::vector<uint32_t>& breakpoint_;
  bool all_single_;
  bool optimistic_;
  size_t single_count_;
  uint64_t nop_ = AsWord(SiteNop());
  uint64_t nop_run_ = AsWord(kNopRunBytes);
  // Optimistic: the functions given no store, once each (Skip), within the
  // capacity reserved by the constructor.
  mutable std::vector<const Function*> skipped_;
  mutable const Module* cached_module_ = reinterpret_cast<const Module*>(~uintptr_t{0});
  mutable uintptr_t cached_stub_ = 0;
};

// The planned batch: protocols, stubs, pages and NOP-run conversion decided
// before anything is written.
Status ChangeSitesPlanned(std::span<const Function* const> functions, bool to_call) {
  const bool strict = TextWriter::Process().mode() == WriteMode::kStrict;

  // Plan: the protocol of each site, the stub of each module, the pages, the
  // NOP runs to convert first.
  std::vector<StubChoice> stubs;
  std::vector<uint32_t> breakpoint;
  std::vector<const Function*> unconverted;
  PageSet pages;
  const Module* module = nullptr;
  uintptr_t stub = 0;
  for (size_t i = 0; i < functions.size(); ++i) {
    const Function& f = *functions[i];
    if (f.site.kind != SiteKind::kSingleNop && f.site.kind != SiteKind::kNopRun) {
      return Status(Errc::kUnexpectedBytes,
                    f.name + " at " + AddressText(f.entry) + ": " + arch::DescribeSite(f.site));
    }
    const uintptr_t site = SiteOf(f);
    if (stub == 0 || f.module != module) {
      module = f.module;
      stub = 0;
      for (const StubChoice& c : stubs) {
        if (c.module == module) stub = c.stub;
      }
      if (stub == 0) {
        Result<uintptr_t> target = CallTargetLocked(f, strict);
        if (!target.ok()) return target.status();
        stub = *target;
        stubs.push_back({module, stub});
      }
    }
    if (module == nullptr) {  // a module's stub is in reach of all of it (InReach)
      Bytes call;
      if (!arch::EncodeCall(site, CallTargetOf(f, stub), call))
        return Status(Errc::kUnsupported, "stub out of call reach of " + f.name);
    }
    // Still the compiler's run of 1-byte NOPs (not converted yet, or put
    // back by someone after a failed batch): it must be converted first.
    if (to_call && f.site.kind == SiteKind::kNopRun && IsNopRun(site)) unconverted.push_back(&f);
    if (!strict && site % 8 + kSiteSize <= 8) {
      pages.Add(site & ~uintptr_t{7}, 8);
    } else {
      breakpoint.push_back(static_cast<uint32_t>(i));
      pages.Add(site, kSiteSize);
    }
  }
  // A mixed batch lists its protocol A sites too.
  std::vector<uint32_t> single;
  if (!breakpoint.empty() && breakpoint.size() < functions.size()) {
    single.reserve(functions.size() - breakpoint.size());
    size_t next_breakpoint = 0;
    for (uint32_t i = 0; i < functions.size(); ++i) {
      if (next_breakpoint < breakpoint.size() && breakpoint[next_breakpoint] == i) {
        ++next_breakpoint;
      } else {
        single.push_back(i);
      }
    }
  }

  if (!unconverted.empty()) {
    if (Status converted = ConvertNopRunsLocked(RunsOnTheirPages(unconverted)); !converted.ok()) {
      return converted;
    }
  }

  if (!breakpoint.empty()) {  // B1
    if (Status installed = InstallSigtrapLocked(); !installed.ok()) return installed;
    std::vector<uintptr_t> sites;
    sites.reserve(breakpoint.size());
    for (uint32_t i : breakpoint) sites.push_back(SiteOf(*functions[i]));
    if (Status published = PublishInflightLocked(std::move(sites)); !published.ok())
      return published;
  }
  const SiteWrites writes(functions, to_call, &stubs, single, breakpoint, /*optimistic=*/false);
  // A2 and B2..B4, with B's barriers between the phases; on failure the
  // writer has undone everything, with the barriers between undone phases.
  Status written =
      TextWriter::Process().Apply(writes, pages, breakpoint.empty() ? nullptr : SyncCores);
  SyncCores();  // A3 (and B4's barrier; after a rollback, the undo's)
  if (!written.ok()) return written;
  g_stats.single_store_sites += functions.size() - breakpoint.size();
  g_stats.breakpoint_sites += breakpoint.size();
  return Status::Ok();
}

// Undoes an optimistic batch that was written: its stores reversed, but none
// for the functions it skipped (they were not written). Allocates nothing, so
// that the undo cannot fail for want of memory (the writer's own batch aside).
class UndoOptimistic final : public StoreSource {
 public:
  explicit UndoOptimistic(const SiteWrites& writes) : writes_(writes) {}
  size_t phase_count() const override { return writes_.phase_count(); }
  size_t phase_size(size_t phase) const override { return writes_.phase_size(phase); }
  void Fill(size_t phase, size_t first, size_t count, CodeStore* out) const override {
    writes_.Fill(phase, first, count, out);  // the same stores: the memos, or the live words
    const std::vector<const Function*>& skipped = writes_.Skipped();
    for (size_t k = 0; k < count; ++k) {
      // A linear search: this runs only when the batch's second half failed.
      if (out[k].size == 0 || std::find(skipped.begin(), skipped.end(),
                                        writes_.FunctionOf(first + k)) != skipped.end()) {
        out[k] = {out[k].address, 0, 0, 0};
        continue;
      }
      std::swap(out[k].expected, out[k].replacement);
    }
  }

 private:
  const SiteWrites& writes_;
};

Status ChangeSitesLocked(std::span<const Function* const> functions, bool to_call,
                         const PageSet* site_pages, std::span<SiteMemo* const> memos) {
  ++g_stats.batches;
  if (functions.empty()) return Status::Ok();
  const Function& first = *functions.front();
  const bool first_unconverted = to_call && first.site.kind == SiteKind::kNopRun &&
                                 __atomic_load_n(reinterpret_cast<const uint8_t*>(SiteOf(first)),
                                                 __ATOMIC_ACQUIRE) == kNopRunBytes[0];
  if (TextWriter::Process().mode() == WriteMode::kFast && !first_unconverted) {
    // Optimistic: one pass, no plan, for every site ready for protocol A;
    // the others are then done by the planned path, as a second batch.
    PageSet pages;
    if (site_pages == nullptr) {
      for (const Function* f : functions) AddSitePages(f->entry, &pages);
      site_pages = &pages;
    }
    std::vector<StubChoice> stubs;
    const std::vector<uint32_t> none;
    const SiteWrites writes(
        functions, to_call, &stubs, none, none, /*optimistic=*/true,
        memos.size() == functions.size() ? memos : std::span<SiteMemo* const>());
    const Status written = TextWriter::Process().Apply(writes, *site_pages);
    SyncCores();  // A3 (after a failure: the undone stores, too, are gone from every pipeline)
    if (written.ok()) {
      // From here the first batch is written: nothing may throw before it is
      // complete or undone.
      const std::vector<const Function*>& skipped = writes.Skipped();
      g_stats.single_store_sites += functions.size() - skipped.size();
      if (skipped.empty()) return Status::Ok();
      ++g_stats.replanned_batches;
      Status rest;
      try {
        rest = ChangeSitesPlanned(skipped, to_call);
      } catch (const std::bad_alloc&) {  // it wrote nothing (see ChangeSites)
        rest = Status(Errc::kOutOfMemory, "out of memory");
      }
      if (rest.ok()) return Status::Ok();
      // All or nothing: put back the sites the first batch changed.
      Status undone;
      try {
        const UndoOptimistic undo(writes);
        undone = TextWriter::Process().Apply(undo, *site_pages);
      } catch (const std::bad_alloc&) {
        undone = Status(Errc::kOutOfMemory, "out of memory");
      }
      SyncCores();
      if (!undone.ok()) {
        return Status(
            rest.code(),
            rest.message() + "; undoing the rest of the batch ALSO failed: " + undone.message());
      }
      return rest;
    }
    // A site was not what it should be (another tool's bytes...): the writer
    // undid the batch; the planned path does it again, or says why it cannot.
    // The memos may be what was wrong: they are made again next time.
    ++g_stats.replanned_batches;
    for (SiteMemo* memo : memos) {
      if (memo != nullptr) memo->word = 0;
    }
  }
  return ChangeSitesPlanned(functions, to_call);
}

}  // namespace

// Every std::bad_alloc below is thrown before a site is written, or after
// the batch was undone (ChangeSitesLocked handles the one place in between):
// it becomes a Status here, so that callers can roll back by Status alone.
Status ChangeSites(std::span<const Function* const> functions, bool to_call,
                   const PageSet* site_pages, std::span<SiteMemo* const> memos) {
  std::lock_guard<std::mutex> lock(g_patch_mutex);
  try {
    return ChangeSitesLocked(functions, to_call, site_pages, memos);
  } catch (const std::bad_alloc&) {
    try {
      return Status(Errc::kOutOfMemory,
                    "out of memory while planning the code writes (every site is as before)");
    } catch (const std::bad_alloc&) {
      return Status(Errc::kOutOfMemory, "out of memory");  // fits the string: cannot throw
    }
  }
}

PatcherStats Stats() {
  std::lock_guard<std::mutex> lock(g_patch_mutex);
  PatcherStats s = g_stats;
  s.breakpoint_hits = g_breakpoint_hits.load();
  s.chained_traps = g_chained_traps.load();
  s.late_traps = g_late_traps.load();
  return s;
}

}  // namespace padhook::patch
