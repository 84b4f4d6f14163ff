// src/hooks/call_frame.h — struct padhook_call: the frame the trampoline builds.
//
// The layout is fixed by src/arch/x86_64/trampoline.S (offsets in its header
// comment); the static_asserts below keep the two in step.
#pragma once

#include <cstddef>
#include <cstdint>

#include "padhook/padhook.h"

struct padhook_call {
  uint64_t gpr[8];  // rdi rsi rdx rcx r8 r9 rax r10
  alignas(16) uint8_t xmm[8][16];
  uint64_t action;    // padhook::kContinue / kSkip / kDivert
  uint64_t value;     // skip: rax; divert: target
  uint64_t value2;    // skip: rdx
  uint64_t function;  // entry address, filled in by the dispatcher
  // Above the frame, pushed by the hooked call: the site return address, the
  // function's return address, then its stack arguments.
  uint64_t site_return() const { return reinterpret_cast<const uint64_t*>(this + 1)[0]; }
  uint64_t return_address() const { return reinterpret_cast<const uint64_t*>(this + 1)[1]; }
  uint64_t* stack_args() { return reinterpret_cast<uint64_t*>(this + 1) + 2; }
  const uint64_t* stack_args() const { return reinterpret_cast<const uint64_t*>(this + 1) + 2; }
};

namespace padhook {
inline constexpr uint64_t kContinue = 0, kSkip = 1, kDivert = 2;
inline constexpr unsigned kRegisterArgs = 6;
inline constexpr unsigned kRaxSlot = 6;
}  // namespace padhook

static_assert(offsetof(padhook_call, xmm) == 64);
static_assert(offsetof(padhook_call, action) == 192);
static_assert(offsetof(padhook_call, value) == 200);
static_assert(offsetof(padhook_call, value2) == 208);
static_assert(sizeof(padhook_call) == 224, "FRAME in trampoline.S");
