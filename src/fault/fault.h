// padhook/src/fault: fault-injection points for tests.
//
// Every system call padhook makes while it attaches or detaches (mmap,
// mprotect, opening /proc/self/mem, pwrite, membarrier, sigaction, tgkill)
// goes through a check `if (fault::Fail(fault::Kind::kX)) { errno = ...; fail }`
// placed right before it. A test arms one kind with a number N: the N-th such
// call from then on fails (once, with the errno the site reports), every other
// call is made normally. tests/fault_test.cc runs N = 1, 2, ... for each kind
// until an attach (and a detach) completes without reaching the N-th call.
//
// Cost when not armed: one relaxed load of g_armed per system call made on
// the attach/detach paths (never on the path of a hooked call).
//
// Shared state
//   g_armed: written (release) by Arm/Disarm, on the test's thread; read
//     (relaxed, then acquire in FailSlow) at every fault point, by whatever
//     thread makes the call (the attaching thread; the SIGTRAP and stop-signal
//     handlers make no call that has a fault point).
//   the armed kind, its countdown and the per-kind counters: atomics, written
//     by Arm (before g_armed is released) and by FailSlow (fetch_sub/add).
//   t_alloc_armed (fault.cc, thread_local): set by Arm(kAlloc) and cleared by
//     Disarm, on the arming thread; read by FailAlloc on the same thread only.
//     Allocation is the one kind counted on the arming thread alone: other
//     threads (gtest, the program's workers, a traced program's threads)
//     allocate all the time and must not consume the countdown.
//
// Allocations (kAlloc) have no fault point inside padhook: whoever owns the
// process's allocator calls FailAlloc() in its operator new (tests/fault_test.cc
// replaces the global operator new; the tracer runtime counts its own
// allocations, src/tracer/runtime.cc) and throws std::bad_alloc when it is true.
#pragma once

#include <atomic>
#include <cstdint>

namespace padhook::fault {

enum class Kind : unsigned {
  kMmap,        // mmap: stub pages, in-flight tables, the metadata table
  kMprotect,    // mprotect: the fast mode's window (open and close), stub pages, table growth
  kOpen,        // open("/proc/self/mem") for the strict mode
  kPwrite,      // pwrite to /proc/self/mem (strict writes and their undo)
  kMembarrier,  // membarrier (SYNC_CORE rounds, grace periods): has a fallback
  kSigaction,   // installing the SIGTRAP and stop-the-world handlers
  kTgkill,      // signalling a thread to stop it (protocol C)
  kAlloc,       // operator new on the arming thread (FailAlloc): std::bad_alloc
  kFtruncate,   // ftruncate/fallocate of a trace buffer file (tracer runtime)
  kCount
};

const char* KindName(Kind kind) noexcept;

extern std::atomic<bool> g_armed;
bool FailSlow(Kind kind) noexcept;

// True when the call of `kind` about to be made must fail instead.
[[gnu::always_inline]] inline bool Fail(Kind kind) noexcept {
  return g_armed.load(std::memory_order_relaxed) && FailSlow(kind);
}

// True when the allocation about to be made on this thread must fail: armed
// for kAlloc, on this thread. Makes no allocation (called from operator new).
bool FailAllocSlow() noexcept;
[[gnu::always_inline]] inline bool FailAlloc() noexcept {
  return g_armed.load(std::memory_order_relaxed) && FailAllocSlow();
}

// Parses "kind:nth" (a kind's KindName, nth >= 1), as PADHOOK_TRACE_FAULT
// holds it; false when malformed.
bool Parse(const char* text, Kind* kind, uint64_t* nth) noexcept;

// Test side. The nth call (1-based) of `kind` made after Arm fails; the
// counters below count from Arm.
void Arm(Kind kind, uint64_t nth) noexcept;
void Disarm() noexcept;
uint64_t Calls(Kind kind) noexcept;     // calls of `kind` seen at fault points since Arm
uint64_t Injected(Kind kind) noexcept;  // of them, failed on purpose (0 or 1)

}  // namespace padhook::fault
