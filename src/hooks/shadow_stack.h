// src/hooks/shadow_stack.h — exits: the per-thread shadow stack of hooked
// calls whose return address was redirected to padhook_return_trampoline.
//
// ---------------------------------------------------------------------------
// Shared state, who writes it, who reads it
//   tls_shadow (ShadowStack): written and read only by its own thread and
//     that thread's signal handlers. Frames are pushed and popped at the top
//     only; a signal handler's calls push and pop above whatever the
//     interrupted code had, and leave the stack as they found it.
//
// The protocol, per hooked call whose block has exit handlers
//   E1. (entry, inside the read section, after the entry handlers) Push a
//       frame {real return, retp = address of the return-address slot, the
//       metadata entry, the function, the block's max_seq, entry time}, and
//       only then store padhook_return_trampoline into the slot: a signal
//       arriving in between sees a consistent stack.
//       First, frames whose retp <= this retp are popped: their functions'
//       frames are gone (longjmp, an exception, a thread stack reused), and
//       each gets an exit flagged as unwound. Except a tail call: the slot
//       already holds padhook_return_trampoline (the tail-calling function's
//       frame, same retp, stays); the new frame's real return is then the
//       return trampoline itself, so one return runs both exits in order.
//   E2. (return) padhook_return_trampoline arrives with rsp = retp + 8. Pop
//       (as unwound) every frame whose retp is below, then pop the frame whose
//       retp matches and put its real return address back into the slot, so
//       unwinders walking from an exit handler see the real caller.
//   E3. Run exit handlers inside a read section: those of the clients in the
//       function's *current* block whose seq <= the frame's max_seq (they
//       were attached when the call entered and still are); if the metadata
//       entry now belongs to another function (everything was detached and
//       the entry reused), none.
//   E4. Return to the real return address with the return registers as the
//       handlers left them.
//   A full shadow stack (kShadowCapacity frames) does not hijack the call and
//   counts it (padhook_exits_lost); it never crashes.
#pragma once

#include <cstdint>

#include "hooks/call_frame.h"

namespace padhook {

struct ShadowFrame {
  uint64_t real_return;
  uint64_t retp;  // address of the function's return-address slot
  const void* meta;
  uint64_t function;
  uint64_t max_seq;
  uint64_t entry_time;
};

inline constexpr uint64_t kShadowCapacity = (16u << 20) / sizeof(ShadowFrame);  // 16 MiB reserved

// Monotonic time in ns (CLOCK_MONOTONIC through the vDSO).
uint64_t NowNs() noexcept;

// Exits this process could not promise because a shadow stack was full.
uint64_t ExitsLost() noexcept;

// Creates the thread-exit key that frees shadow stacks; call before
// publishing a block with exit handlers (not async-signal-safe).
void EnsureShadowKey();

// Delivers an unwound exit for every frame still on this thread's shadow
// stack (thread exit).
void UnwindAllShadowFrames() noexcept;

}  // namespace padhook

// trampoline.S
extern "C" void padhook_return_trampoline();
// E1: from the trampoline, inside the read section, after the entry handlers.
extern "C" void padhook_exit_push(padhook_call* frame);
// E2..E3: from padhook_return_trampoline; returns the real return address.
extern "C" uint64_t padhook_exit_dispatch(padhook_call* frame);
