// src/sync/grace_period.h — read-side sections and grace periods (user-space RCU).
//
// Defines:
//   sync::ReadEnter / ReadExit / ReadSection   mark code that reads shared padhook state
//   sync::Synchronize                          wait until no reader can hold what was unpublished
//   sync::RetireCookie / GraceElapsed          the same, deferred: reuse once a grace period passed
//
// Readers are padhook's hot paths (metadata lookups, later the trampoline and
// the handlers it runs). They take no lock and execute no fence: each thread
// writes only its own record; the writer pays with one membarrier() per grace
// period (an "asymmetric fence", as in liburcu's memb flavour).
//
// ---------------------------------------------------------------------------
// Shared state, who writes it, who reads it
//
//   g_epoch                 written by Synchronize (fetch_add, seq_cst, under
//                           g_sync_mutex); read by RetireCookie.
//   padhook_reader_word     (g_epoch << 16) | 1: the word an outermost ReadEnter
//                           stores, precomputed so the trampoline's read-section
//                           entry is one load and one store. Written by
//                           Synchronize right after g_epoch (seq_cst, same
//                           lock); read by readers (acquire: a plain load in the
//                           trampoline). A reader that reads a stale (older)
//                           word only makes the writer wait for it longer.
//   tls_record              this thread's record; &g_unregistered until the
//                           thread's first read section registers it. The
//                           unregistered record's word claims "inside a
//                           section", so the trampoline's single nesting test
//                           also catches unregistered threads (slow path).
//   g_completed             written by Synchronize at its end (release); read by
//                           GraceElapsed (acquire). Every reader that started
//                           with an epoch < g_completed has left its section.
//   ThreadRecord::word      written ONLY by its owning thread (and that thread's
//                           signal handlers), with one plain store per
//                           ReadEnter/ReadExit: (epoch << 16) | nesting, or 0
//                           when outside every section. Read by Synchronize.
//   record registry         records are carved from never-freed chunks
//                           (chunk pointers published with release, count with
//                           fetch_add); released records go on a lock-free free
//                           stack. Scanning is always safe: records never move
//                           and are never unmapped.
//
// ---------------------------------------------------------------------------
// The protocol
//
// Reader (any thread, any time, also from a signal handler):
//   R1. rec = this thread's record (first use: take one from the registry;
//       async-signal-safe: no lock, no malloc).
//   R2. ReadEnter: w = rec->word; rec->word = nesting(w) ? w + 1
//                                            : padhook_reader_word;   (one store)
//   R3. read shared pointers; use what they point to.
//   R4. ReadExit:  w = rec->word; rec->word = nesting(w) == 1 ? 0 : w - 1. (one
//       store, release: the reads of R3 complete before it is visible)
//   A signal handler that interrupts R2 or R4 between its load and its store
//   runs a complete Enter/Exit pair, which leaves the word as it found it, so
//   the interrupted store is still right.
//
// Writer (Synchronize, serialized by g_sync_mutex):
//   W1. (caller) unpublish: make the old object unreachable with a store.
//   W2. target = ++g_epoch; padhook_reader_word = (target << 16) | 1 (seq_cst).
//   W3. AsymmetricFence(): membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) makes
//       every running thread of this process execute a full barrier (a thread
//       not running passes one when it is switched in). So for each reader,
//       either its R2 store is visible to W4, or its R3 loads happen after the
//       barrier and see W1.
//   W4. wait until every record is outside a section (nesting 0) or entered
//       with epoch >= target (it loaded the reader word after W2, so after
//       W1: it cannot hold the old object). Waiting sleeps; it never spins on a
//       2-CPU machine.
//   W5. g_completed = target (release).
//
// A reader that blocks inside its section blocks Synchronize: handlers must
// not block indefinitely. Synchronize must not be called from inside a read
// section of the calling thread (it would wait for itself); it returns
// kBusy instead of deadlocking.
//
// fork(): the child keeps only the forking thread, so every other record is
// reset to quiescent in the child (pthread_atfork).
#pragma once

#include <atomic>
#include <cstdint>

#include "padhook/status.h"

// The word an outermost ReadEnter stores (see the table above). C linkage: the
// trampoline reads it directly (through a hidden alias, without the GOT).
extern "C" std::atomic<uint64_t> padhook_reader_word;

namespace padhook::sync {

struct alignas(64) ThreadRecord {
  std::atomic<uint64_t> word{0};                  // (epoch << 16) | nesting; 0 outside sections
  std::atomic<ThreadRecord*> next_free{nullptr};  // free-stack link (registry only)
  std::atomic<bool> in_use{false};                // owned by a live thread
  uint32_t index = 0;  // position in the registry; written once when the record is carved
  // Hooked calls whose handlers this thread skipped (recursion guard). Written
  // only by the owning thread (relaxed), summed by RecursionSkips().
  std::atomic<uint64_t> skipped{0};
};

inline constexpr uint64_t kNestingMask = 0xFFFF;
inline constexpr int kEpochShift = 16;

// Internal state that the inline reader needs. Do not touch directly.
namespace internal {
extern std::atomic<uint64_t> g_epoch;
// What tls_record points at before the thread registers: word == 1 (nesting
// 1, epoch 0), never written, never scanned by Synchronize.
extern ThreadRecord g_unregistered;
// constinit: no dynamic initialization, so no TLS wrapper call on each access.
extern constinit thread_local ThreadRecord* tls_record __attribute__((tls_model("initial-exec")));
ThreadRecord* RegisterThisThread() noexcept;   // slow path of R1
ThreadRecord* RegisterInitialized() noexcept;  // RegisterThisThread once Initialize() ran
// The trampoline's slow path, possibly in a signal handler: never waits.
// Null (the call is skipped and counted in RecursionSkips) when Initialize()
// has not completed yet.
ThreadRecord* RegisterThisThreadFromSignalSafeContext() noexcept;
}  // namespace internal

// One-time set-up (thread-exit key, fork handler, membarrier registration).
// Not async-signal-safe: attach calls it before it publishes anything, so
// that a hooked call never has to.
void Initialize();

inline void ReadEnter() noexcept {
  ThreadRecord* rec = internal::tls_record;
  if (__builtin_expect(rec == &internal::g_unregistered, 0)) rec = internal::RegisterThisThread();
  const uint64_t w = rec->word.load(std::memory_order_relaxed);
  rec->word.store((w & kNestingMask) ? w + 1 : padhook_reader_word.load(std::memory_order_acquire),
                  std::memory_order_relaxed);
  // Keep the compiler from hoisting R3's loads above R2; the hardware side
  // is the writer's membarrier (W3).
  std::atomic_signal_fence(std::memory_order_seq_cst);
}

inline void ReadExit() noexcept {
  std::atomic_signal_fence(std::memory_order_seq_cst);
  ThreadRecord* rec = internal::tls_record;
  const uint64_t w = rec->word.load(std::memory_order_relaxed);
  rec->word.store((w & kNestingMask) == 1 ? 0 : w - 1, std::memory_order_release);
}

// True when this thread is inside a read section.
inline bool InReadSection() noexcept {
  ThreadRecord* rec = internal::tls_record;
  return rec != &internal::g_unregistered &&
         (rec->word.load(std::memory_order_relaxed) & kNestingMask) != 0;
}

class ReadSection {
 public:
  ReadSection() noexcept { ReadEnter(); }
  ~ReadSection() { ReadExit(); }
  ReadSection(const ReadSection&) = delete;
  ReadSection& operator=(const ReadSection&) = delete;
};

// Waits for one grace period: on return, no reader still holds anything that
// was unpublished before the call. kBusy if called inside a read section.
Status Synchronize();

// Deferred form. After unpublishing an object, take a cookie; once
// GraceElapsed(cookie), no reader can still hold the object and it may be
// freed or reused. A later Synchronize() (by anyone) makes it elapse.
uint64_t RetireCookie() noexcept;
bool GraceElapsed(uint64_t cookie) noexcept;

// Makes the kernel interrupt every CPU currently running this process
// (mprotect of a touched page: TLB shootdown IPIs). Returning from the
// interrupt is a full barrier and serializes the CPU there: the fallback for
// both membarrier commands padhook uses.
void InterruptAllCpus();

// Statistics, for tests and benchmarks.
uint64_t GracePeriodsCompleted() noexcept;
// Sum of ThreadRecord::skipped over all threads.
uint64_t RecursionSkips() noexcept;
// Thread records carved so far (records of exited threads are reused).
uint32_t RecordsClaimed() noexcept;
// How the asymmetric fence is made: "membarrier" or "mprotect" (fallback).
const char* FenceMethod() noexcept;

}  // namespace padhook::sync
