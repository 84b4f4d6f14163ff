// Grace periods: see the protocol at the top of grace_period.h.
#include "sync/grace_period.h"

#include <linux/membarrier.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>

#include "fault/fault.h"

std::atomic<uint64_t> padhook_reader_word{(1u << padhook::sync::kEpochShift) | 1};
// The same variable under a name that binds inside libpadhook, for trampoline.S.
extern "C" __attribute__((alias("padhook_reader_word"), visibility("hidden"))) std::atomic<uint64_t>
    padhook_reader_word_local;

namespace padhook::sync {
namespace internal {

std::atomic<uint64_t> g_epoch{1};
ThreadRecord g_unregistered{1};
constinit thread_local ThreadRecord* tls_record __attribute__((tls_model("initial-exec"))) =
    &g_unregistered;

}  // namespace internal

namespace {

using internal::g_epoch;
using internal::tls_record;

// ---- Record registry --------------------------------------------------------
//
// Records are addressed by a 32-bit index: chunk = index / kRecordsPerChunk.
// g_chunks[i]: written once (CAS from null, release) by the thread that maps
//   chunk i; read (acquire) by RegisterThisThread and Synchronize.
// g_records_claimed: fetch_add by RegisterThisThread; read by Synchronize
//   (acquire) as the number of records that may be in use.
// g_free_head: (tag << 32) | (index + 1), 0 when empty; CAS by push (thread
//   exit) and pop (thread start); the tag defeats ABA.

constexpr uint32_t kRecordsPerChunk = 1024;  // 64 KiB of records per chunk
constexpr uint32_t kMaxChunks = 4096;        // 4M threads over a process lifetime

std::atomic<ThreadRecord*> g_chunks[kMaxChunks];
std::atomic<uint32_t> g_records_claimed{0};
std::atomic<uint64_t> g_free_head{0};
std::atomic<uint64_t> g_completed{1};
std::atomic<uint64_t> g_grace_periods{0};

pthread_key_t g_exit_key;
std::once_flag g_init_once;
// Set (release) at the end of InitOnce; read (acquire) by
// RegisterThisThreadFromSignalSafeContext, which must not wait on
// g_init_once: a signal handler could interrupt InitOnce on its own thread.
std::atomic<bool> g_initialized{false};
// Hooked calls skipped because their thread could not register yet.
std::atomic<uint64_t> g_unregistered_skips{0};
std::mutex g_sync_mutex;  // serializes Synchronize (W2..W5)

enum class Fence { kUnknown, kMembarrier, kMprotect };
std::atomic<Fence> g_fence{Fence::kUnknown};
void* g_fence_page = nullptr;  // written once under g_init_once; mprotect fallback only

ThreadRecord* RecordAt(uint32_t index) noexcept {
  ThreadRecord* chunk = g_chunks[index / kRecordsPerChunk].load(std::memory_order_acquire);
  return chunk == nullptr ? nullptr : &chunk[index % kRecordsPerChunk];
}

void PushFree(ThreadRecord* rec) noexcept {
  const uint32_t index = rec->index;
  uint64_t head = g_free_head.load(std::memory_order_acquire);
  for (;;) {
    const uint32_t next_index = static_cast<uint32_t>(head);  // index + 1 of the old top
    rec->next_free.store(next_index ? RecordAt(next_index - 1) : nullptr,
                         std::memory_order_relaxed);
    const uint64_t tag = (head >> 32) + 1;
    if (g_free_head.compare_exchange_weak(head, (tag << 32) | (index + 1),
                                          std::memory_order_release, std::memory_order_acquire)) {
      return;
    }
  }
}

ThreadRecord* PopFree() noexcept {
  uint64_t head = g_free_head.load(std::memory_order_acquire);
  for (;;) {
    const uint32_t top = static_cast<uint32_t>(head);
    if (top == 0) return nullptr;
    ThreadRecord* rec = RecordAt(top - 1);
    ThreadRecord* next = rec->next_free.load(std::memory_order_relaxed);
    const uint32_t next_index = next ? next->index + 1 : 0;
    const uint64_t tag = (head >> 32) + 1;
    if (g_free_head.compare_exchange_weak(head, (tag << 32) | next_index, std::memory_order_acquire,
                                          std::memory_order_acquire)) {
      return rec;
    }
  }
}

ThreadRecord* ClaimNewRecord() noexcept {
  const uint32_t index = g_records_claimed.fetch_add(1, std::memory_order_acq_rel);
  const uint32_t chunk_index = index / kRecordsPerChunk;
  if (chunk_index >= kMaxChunks) return nullptr;
  std::atomic<ThreadRecord*>& slot = g_chunks[chunk_index];
  if (slot.load(std::memory_order_acquire) == nullptr) {
    // mmap rather than new: this may run in a signal handler.
    void* mem = mmap(nullptr, sizeof(ThreadRecord) * kRecordsPerChunk, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return nullptr;
    ThreadRecord* expected = nullptr;
    if (!slot.compare_exchange_strong(expected, static_cast<ThreadRecord*>(mem),
                                      std::memory_order_acq_rel)) {
      munmap(mem, sizeof(ThreadRecord) * kRecordsPerChunk);  // another thread won
    }
  }
  ThreadRecord* rec = RecordAt(index);
  rec->index = index;
  return rec;
}

void ReleaseRecord(void* arg) {
  auto* rec = static_cast<ThreadRecord*>(arg);
  // The thread is exiting: whatever it was reading, it is done with it.
  rec->word.store(0, std::memory_order_release);
  rec->in_use.store(false, std::memory_order_release);
  if (tls_record == rec) tls_record = &internal::g_unregistered;
  PushFree(rec);
}

void ResetAfterFork() {
  // Only the forking thread exists in the child; its own record stays.
  const uint32_t claimed = g_records_claimed.load(std::memory_order_acquire);
  for (uint32_t i = 0; i < claimed; ++i) {
    ThreadRecord* rec = RecordAt(i);
    if (rec != nullptr && rec != tls_record) rec->word.store(0, std::memory_order_relaxed);
  }
}

void InitOnce() {
  pthread_key_create(&g_exit_key, ReleaseRecord);
  pthread_atfork(nullptr, nullptr, ResetAfterFork);
  g_fence_page = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (g_fence_page != MAP_FAILED) *static_cast<volatile char*>(g_fence_page) = 1;
  if (syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0) {
    g_fence.store(Fence::kMembarrier, std::memory_order_release);
    return;
  }
  // Fallback for kernels without membarrier: changing the protection of a
  // page this process has touched makes the kernel interrupt every CPU that
  // runs this process (TLB shootdown); the interrupt is a full barrier there.
  g_fence.store(Fence::kMprotect, std::memory_order_release);
}

void InitOnceAndPublish() {
  InitOnce();
  g_initialized.store(true, std::memory_order_release);
}

void AsymmetricFence() {
  std::call_once(g_init_once, InitOnceAndPublish);
  if (g_fence.load(std::memory_order_acquire) == Fence::kMembarrier &&
      !fault::Fail(fault::Kind::kMembarrier) &&
      syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0) {
    return;
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);
  InterruptAllCpus();
}

// Sleeps a little longer each time: a reader on the other CPU needs the CPU
// this thread would spin on.
void Backoff(unsigned attempt) {
  if (attempt < 4) {
    sched_yield();
    return;
  }
  const long ns = attempt < 20 ? 20'000L * (attempt - 3) : 1'000'000L;
  timespec ts{0, ns};
  nanosleep(&ts, nullptr);
}

}  // namespace

namespace internal {

ThreadRecord* RegisterThisThread() noexcept {
  std::call_once(g_init_once, InitOnceAndPublish);
  return RegisterInitialized();
}

ThreadRecord* RegisterThisThreadFromSignalSafeContext() noexcept {
  if (!g_initialized.load(std::memory_order_acquire)) {
    g_unregistered_skips.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  return RegisterInitialized();
}

}  // namespace internal

void Initialize() { std::call_once(g_init_once, InitOnceAndPublish); }

namespace internal {

// Async-signal-safe once InitOnce has run: a lock-free pop or claim, and a key
// slot below 32 (inside the thread descriptor, no allocation).
ThreadRecord* RegisterInitialized() noexcept {
  ThreadRecord* rec = PopFree();
  if (rec == nullptr) rec = ClaimNewRecord();
  if (rec == nullptr) {
    // Out of records (4M threads) or memory: nothing sane is left to do on a
    // hot path that cannot fail.
    static const char kMsg[] = "padhook: cannot register thread for read sections\n";
    (void)!write(2, kMsg, sizeof(kMsg) - 1);
    abort();
  }
  rec->word.store(0, std::memory_order_relaxed);
  rec->in_use.store(true, std::memory_order_relaxed);
  tls_record = rec;
  // Key slots below 32 live inside the thread descriptor: no allocation.
  pthread_setspecific(g_exit_key, rec);
  return rec;
}

}  // namespace internal

void InterruptAllCpus() {
  std::call_once(g_init_once, InitOnceAndPublish);
  if (g_fence_page == nullptr || g_fence_page == MAP_FAILED) return;
  mprotect(g_fence_page, 4096, PROT_READ);
  *static_cast<volatile char*>(g_fence_page);
  mprotect(g_fence_page, 4096, PROT_READ | PROT_WRITE);
  *static_cast<volatile char*>(g_fence_page) = 1;
}

Status Synchronize() {
  if (InReadSection()) {
    return Status(Errc::kBusy,
                  "Synchronize() called inside a read section: it would wait for itself");
  }
  std::lock_guard<std::mutex> lock(g_sync_mutex);
  const uint64_t target = g_epoch.fetch_add(1, std::memory_order_seq_cst) + 1;  // W2
  padhook_reader_word.store((target << kEpochShift) | 1, std::memory_order_seq_cst);
  AsymmetricFence();  // W3
  const uint32_t claimed = g_records_claimed.load(std::memory_order_acquire);
  for (uint32_t i = 0; i < claimed; ++i) {  // W4
    ThreadRecord* rec = RecordAt(i);
    if (rec == nullptr) continue;
    for (unsigned attempt = 0;; ++attempt) {
      const uint64_t w = rec->word.load(std::memory_order_acquire);
      if ((w & kNestingMask) == 0 || (w >> kEpochShift) >= target) break;
      Backoff(attempt);
    }
  }
  g_completed.store(target, std::memory_order_release);  // W5
  g_grace_periods.fetch_add(1, std::memory_order_relaxed);
  return Status::Ok();
}

uint64_t RetireCookie() noexcept { return g_epoch.load(std::memory_order_seq_cst); }

bool GraceElapsed(uint64_t cookie) noexcept {
  return g_completed.load(std::memory_order_acquire) > cookie;
}

uint64_t GracePeriodsCompleted() noexcept {
  return g_grace_periods.load(std::memory_order_relaxed);
}

uint64_t RecursionSkips() noexcept {
  uint64_t sum = g_unregistered_skips.load(std::memory_order_relaxed);
  const uint32_t claimed = g_records_claimed.load(std::memory_order_acquire);
  for (uint32_t i = 0; i < claimed; ++i) {
    if (ThreadRecord* rec = RecordAt(i)) sum += rec->skipped.load(std::memory_order_relaxed);
  }
  return sum;
}

uint32_t RecordsClaimed() noexcept { return g_records_claimed.load(std::memory_order_relaxed); }

const char* FenceMethod() noexcept {
  std::call_once(g_init_once, InitOnceAndPublish);
  return g_fence.load(std::memory_order_acquire) == Fence::kMembarrier ? "membarrier" : "mprotect";
}

}  // namespace padhook::sync
