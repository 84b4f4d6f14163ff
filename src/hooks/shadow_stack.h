// src/hooks/shadow_stack.h — exits: the per-thread shadow stack of hooked
// calls whose return address was redirected to a return trampoline, and the
// return-address mirror that keeps unwinders and exceptions working.
//
// ---------------------------------------------------------------------------
// The mirror
//   A redirected call's real return address is stored at retp + D, where retp
//   is the address of its return-address slot and D is a constant: +16 TiB
//   for stacks below 16 TiB (valgrind's, non-PIE heaps), -16 TiB for stacks at
//   48 TiB and above (every thread stack and PIE heap of a normal process).
//   Each class has its own return trampoline (RT), whose CFI tells unwinders
//   "the caller's return address is at CFA + D - 9" (CFA = retp + 9), so
//   backtrace(), _Unwind_Backtrace, gdb and C++ exceptions walk through a
//   redirected frame to the real caller. RT returns to the mirrored address,
//   never to one taken from the shadow stack: a confused shadow stack can lose
//   exit events but cannot misdirect a return.
//   Mirror memory is mapped per 4 MiB chunk of stack addresses, on first use,
//   with MAP_FIXED_NOREPLACE | MAP_NORESERVE (only touched pages cost memory)
//   and never unmapped. A chunk whose mirror cannot be mapped (the range is
//   taken, or the stack lies between 16 and 48 TiB) is remembered as unusable;
//   calls there are not redirected and are counted in padhook_exits_lost().
//
// Shared state, who writes it, who reads it
//   g_chunk_state[stack address >> 22] (atomic bytes, one table of 32 MiB
//     reserved on first use): 0 unknown -> 1 being mapped (CAS by the one
//     thread that maps it) -> 2 mapped | 3 unusable (release store by that
//     thread). Read with acquire by any thread about to use the chunk; once
//     2 or 3 it never changes.
//   Mirror words: written and read by the thread whose stack slot they mirror
//     (and by its signal handlers, for their own slots only).
//   tls_shadow (ShadowStack): written and read only by its own thread and
//     that thread's signal handlers. Frames are pushed and popped at the top
//     only; a signal handler's calls push and pop above whatever the
//     interrupted code had, and leave the stack as they found it.
//
// The protocol, per hooked call whose block has exit handlers
//   E1. (entry, inside the read section) Before the entry handlers, pop
//       frames whose retp <= this retp: their functions' frames are gone
//       (longjmp, a thread stack reused) and each gets an exit flagged as
//       unwound. Except a tail call: the slot already holds this class's RT
//       (the tail-calling function's frame, same retp, stays, and so does its
//       mirror word). After them, make sure the mirror covers retp (else: not
//       redirected, counted). Push a frame {retp, metadata entry, function, the
//       block's max_seq, entry time}; then write the real return address into
//       the mirror (unless a tail call); only then store RT into the slot: a
//       signal arriving in between sees a consistent stack.
//   E2. (return) RT arrives with rsp = retp + 8. Pop (as unwound) every frame
//       whose retp is below, then every frame whose retp matches (one, or
//       several after tail calls, innermost first) and put the mirrored
//       address back into the slot (what padhook_call_caller reads).
//   E3. Run exit handlers inside a read section, for each popped frame: those
//       of the clients in the function's *current* block whose seq <= the
//       frame's max_seq (they were attached when the call entered and still
//       are); if the metadata entry now belongs to another function
//       (everything was detached and the entry reused), none.
//   E4. Return to the mirrored address with the return registers as the
//       handlers left them.
//   Unwinding (exception, pthread_exit/cancel): each redirected frame has an
//   RT pseudo-frame above it whose personality routine pops its shadow
//   frame(s) and delivers them as unwound, in the cleanup phase.
//   A full shadow stack (kShadowCapacity frames) does not redirect the call
//   and counts it (padhook_exits_lost); it never crashes.
#pragma once

#include <cstddef>
#include <cstdint>

#include "hooks/call_frame.h"

namespace padhook {

struct ShadowFrame {
  uint64_t retp;        // 0: address of the function's return-address slot
  const void* meta;     // 8
  uint64_t function;    // 16
  uint64_t max_seq;     // 24
  uint64_t entry_time;  // 32: ReadClock ticks (hooks/clock.h)
};

// A thread's shadow stack and mirror cache (padhook_tls_shadow; the offsets
// are read by trampoline.S).
struct ShadowStack {
  ShadowFrame* top;    // 0: next free frame; null until the thread's first redirected call
  ShadowFrame* limit;  // 8
  ShadowFrame* base;   // 16
  // Stack addresses [mirror_lo, mirror_hi) are known to have a mapped mirror
  // at mirror_offset; return_trampoline is that class's RT.
  uint64_t mirror_lo;          // 24
  uint64_t mirror_hi;          // 32
  int64_t mirror_offset;       // 40
  uint64_t return_trampoline;  // 48
  bool mapping_mirror;         // this thread is mapping a chunk (its signal handlers must not wait)
};
static_assert(sizeof(ShadowFrame) == 40 && offsetof(ShadowStack, return_trampoline) == 48);

inline constexpr uint64_t kShadowCapacity = (16u << 20) / sizeof(ShadowFrame);  // 16 MiB reserved

// The mirror's geometry (see above).
inline constexpr uint64_t kMirrorChunkShift = 22;
inline constexpr uint64_t kMirrorLowEnd = 16ull << 40;     // stacks below: D = +16 TiB
inline constexpr uint64_t kMirrorHighStart = 48ull << 40;  // stacks from here: D = -16 TiB
inline constexpr uint64_t kMirrorAddressEnd = 1ull << 47;
inline constexpr int64_t kMirrorLowOffset = 16ll << 40;
inline constexpr int64_t kMirrorHighOffset = -(16ll << 40);

// Exits this process could not promise: a shadow stack was full, or a stack's
// mirror could not be mapped.
uint64_t ExitsLost() noexcept;

// Creates the thread-exit key that frees shadow stacks; call before
// publishing a block with exit handlers (not async-signal-safe).
void EnsureShadowKey();

// Delivers an unwound exit for every frame still on this thread's shadow
// stack (thread exit).
void UnwindAllShadowFrames() noexcept;

}  // namespace padhook

// trampoline.S: the return trampolines of the two mirror classes.
extern "C" void padhook_return_trampoline_low();
extern "C" void padhook_return_trampoline_high();
// E1: from the trampoline, inside the read section, after the entry handlers.
extern "C" void padhook_exit_push(padhook_call* frame);
// E1's pops, from the trampoline before the entry handlers when the top frame
// is dead, so that its unwound exit comes before this call's entry.
extern "C" void padhook_exit_pop_dead(padhook_call* frame);
// E2..E3: from a return trampoline; returns the real return address.
extern "C" uint64_t padhook_exit_dispatch(padhook_call* frame, int64_t mirror_offset);
