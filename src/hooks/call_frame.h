// src/hooks/call_frame.h — struct padhook_call: the frame the trampoline builds.
//
// The layout is fixed by src/arch/x86_64/trampoline.S (offsets in its header
// comment); the static_asserts below keep the two in step.
#pragma once

#include <cstddef>
#include <cstdint>

#include "padhook/padhook.h"

// trampoline.S. Continuations a handler may set: skip returns to the
// function's caller with the frame's rax/rdx; divert jumps to divert_target.
extern "C" void padhook_skip_return();
extern "C" void padhook_divert_return();

struct padhook_call {
  uint64_t gpr[8];  // rdi rsi rdx rcx r8 r9 rax r10, restored from here
  // xmm0-7, restored from here; saved only when a handler on the function may
  // touch vector registers (PADHOOK_HOOKS_NO_VECTOR): otherwise undefined.
  // No alignas(16): a call made on a misaligned stack (GCC's
  // -fipa-stack-alignment, see trampoline.S) has its frame 8 bytes off, and
  // the trampolines save these with movups; a 16-byte alignment requirement
  // would make every member access undefined (UBSan reports it).
  uint8_t xmm[8][16];
  uint64_t function;   // entry address of the hooked function
  uint64_t saved_rbx;  // the trampoline's own
  // Entry: padhook_divert_return jumps here. Exit: the call's entry time
  // (ReadClock ticks, hooks/clock.h).
  uint64_t divert_target_or_entry_time;
  // Bits 0..61: this event's time in ReadClock ticks, taken on first request
  // (0: not yet).
  // Bit 63: an exit frame; bit 62: an exit delivered because the frame was
  // unwound (exception, longjmp, thread exit), not returned from.
  uint64_t stamp;
  // Entry, when the block has exit handlers: the block and the metadata entry
  // the dispatcher found it through (padhook_exit_push uses both).
  const void* block;
  const void* meta;
  // Above the frame, pushed by the hooked call: where the trampoline returns
  // to (the function's body, or padhook_skip_return, or a replacement), the
  // function's return address, then its stack arguments.
  uint64_t& continuation() { return reinterpret_cast<uint64_t*>(this + 1)[0]; }
  uint64_t continuation() const { return reinterpret_cast<const uint64_t*>(this + 1)[0]; }
  uint64_t return_address() const { return reinterpret_cast<const uint64_t*>(this + 1)[1]; }
  uint64_t* stack_args() { return reinterpret_cast<uint64_t*>(this + 1) + 2; }
  const uint64_t* stack_args() const { return reinterpret_cast<const uint64_t*>(this + 1) + 2; }
};

namespace padhook {
inline constexpr uint64_t kStampExit = 1ull << 63;
inline constexpr uint64_t kStampUnwound = 1ull << 62;
inline constexpr uint64_t kStampTimeMask = (1ull << 62) - 1;
inline constexpr unsigned kRegisterArgs = 6;
inline constexpr unsigned kRdxSlot = 2;
inline constexpr unsigned kRaxSlot = 6;
}  // namespace padhook

static_assert(offsetof(padhook_call, xmm) == 64);
static_assert(offsetof(padhook_call, function) == 192);
static_assert(offsetof(padhook_call, saved_rbx) == 200);
static_assert(offsetof(padhook_call, divert_target_or_entry_time) == 208);
static_assert(offsetof(padhook_call, stamp) == 216);
static_assert(offsetof(padhook_call, block) == 224);
static_assert(offsetof(padhook_call, meta) == 232);
static_assert(sizeof(padhook_call) == 240, "FRAME in trampoline.S");
