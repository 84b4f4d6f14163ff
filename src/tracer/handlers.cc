// src/tracer/handlers.cc — the entry and exit handlers of libpadhook-trace.so:
// the hot path of `padhook record`.
//
// Built with -mgeneral-regs-only, so the hooks can promise
// PADHOOK_HOOKS_NO_VECTOR (the trampoline then skips saving xmm0-7 on entry).
// The slow path (runtime.cc, ordinary code, libc) is called through
// CallSaved, which saves and restores xmm0-7 around it.
//
// Common case of an event: one TLS base, the depth counter, one clock read
// (the TSC, once per event, shared with the call's other clients through the
// frame's stamp exactly as padhook_call_timestamp does, converted with
// padhook's calibration), one word stored; no call, no lock, no allocation,
// no system call. The frame is read directly (src/hooks/call_frame.h: this
// library is part of padhook): padhook_call_timestamp,
// padhook_call_function_index and padhook_call_is_unwound through the PLT
// cost about 90 instructions per call (callgrind), half of the handlers'.
//
// Word layout and special words: docs/trace-format.md, tracer/trace_format.h.
#include <cstdint>

#include "hooks/call_frame.h"
#include "padhook/padhook.h"
#include "tracer/thread_buffer.h"

namespace padhook::tracer {

__thread ThreadBuffer t_buffer __attribute__((tls_model("initial-exec")));
uint32_t g_max_depth = UINT32_MAX;
uint64_t g_min_duration_ns = 0;
Clock g_clock = {0, 0, uint64_t{1} << 32};

namespace {

using trace::kDeltaShift;
using trace::kIdShift;

// Calls the slow path with xmm0-7 preserved for the hooked function's
// arguments (the trampoline did not save them: PADHOOK_HOOKS_NO_VECTOR).
// The compiler emits no vector code here (-mgeneral-regs-only): the asm is
// the only thing that touches the registers.
__attribute__((noinline)) bool CallSaved(ThreadBuffer* t, uint64_t now, uint64_t words) {
  alignas(16) unsigned char saved[128];
  asm volatile(
      "movups %%xmm0, 0(%0)\n\tmovups %%xmm1, 16(%0)\n\tmovups %%xmm2, 32(%0)\n\t"
      "movups %%xmm3, 48(%0)\n\tmovups %%xmm4, 64(%0)\n\tmovups %%xmm5, 80(%0)\n\t"
      "movups %%xmm6, 96(%0)\n\tmovups %%xmm7, 112(%0)" ::"r"(saved)
      : "memory");
  const bool ok = MakeRoom(t, now, words);
  asm volatile(
      "movups 0(%0), %%xmm0\n\tmovups 16(%0), %%xmm1\n\tmovups 32(%0), %%xmm2\n\t"
      "movups 48(%0), %%xmm3\n\tmovups 64(%0), %%xmm4\n\tmovups 80(%0), %%xmm5\n\t"
      "movups 96(%0), %%xmm6\n\tmovups 112(%0), %%xmm7" ::"r"(saved)
      : "memory");
  return ok;
}

bool GateOpen(const void* gate) {
  return __atomic_load_n(static_cast<const uint8_t*>(gate), __ATOMIC_RELAXED) != 0;
}

// Everything but the common case: the batch's gate still closed, no room
// (first event of the thread, window full, dropping, closed), or a delta
// that does not fit in 40 bits (or a clock that went backwards).
__attribute__((noinline)) void PutSlow(ThreadBuffer& t, uint64_t word, uint64_t now,
                                       const void* gate) {
  if (!GateOpen(gate)) {
    CountGated(&t);
    return;
  }
  uint64_t previous = t.prev_ns;
  const bool needs_time = t.pos != nullptr && now >= previous && now - previous > trace::kMaxDelta;
  // Words: the event, plus `time` and its absolute value when the delta does
  // not fit (the thread's first event has delta 0 from the header's base).
  const uint64_t words = needs_time ? 3 : 1;
  if (t.pos == nullptr || t.pos + words > t.end) {
    if (!CallSaved(&t, now, words)) return;  // dropped and counted
    previous = t.prev_ns;                    // the first event sets prev_ns to the base time
  }
  uint64_t* p = t.pos;
  if (now < previous) {
    now = previous;  // the clock went backwards (TSC skew): keep the order
  } else if (now - previous > trace::kMaxDelta) {
    // The absolute time written has its low bits clear, so that the word can
    // never look like an entry (kind 1) to the min-duration rewind below;
    // the event's delta (0..3) carries the rest: times stay exact.
    const uint64_t base = now & ~uint64_t{3};
    *p++ = trace::SpecialWord(trace::kSpecialTime, 0);
    *p++ = base;
    previous = base;
  }
  *p++ = word | (now - previous) << kDeltaShift;
  t.pos = p;
  t.prev_ns = now;
}

inline void Put(ThreadBuffer& t, uint64_t word, uint64_t now, const void* gate) {
  uint64_t* p = t.pos;
  const uint64_t delta = now - t.prev_ns;
  // One test for all the rare cases: no room (or no file yet: pos == end ==
  // null), a delta over 40 bits (or negative), the gate closed.
  if (__builtin_expect(((delta >> 40) != 0) | (p >= t.end) | !GateOpen(gate), 0)) {
    PutSlow(t, word, now, gate);
    return;
  }
  *p = word | delta << kDeltaShift;
  t.pos = p + 1;
  t.prev_ns = now;
}

// The event's time, as padhook_call_timestamp would give it, without its two
// calls: the frame's TSC stamp (taken once per event, shared by all clients
// of the call), read here if no client took it yet, converted with the
// calibration padhook made (g_clock, copied from padhook::ClockToNs at start:
// the same ns, to the nanosecond's rounding).
inline uint64_t EventTime(padhook_call* call) {
  uint64_t ticks = call->stamp & kStampTimeMask;
  if (ticks == 0) {
    ticks = __builtin_ia32_rdtsc() & kStampTimeMask;
    call->stamp |= ticks;
  }
  // base_ticks lies 2^40 ticks (minutes) before the runtime started: the
  // difference is never negative, so one unsigned multiply does.
  const uint64_t delta = ticks - g_clock.base_ticks;
  return g_clock.base_ns +
         static_cast<uint64_t>((static_cast<unsigned __int128>(delta) * g_clock.ns_per_tick_q32) >>
                               32);
}

// The function's id: its metadata index, in the slot right before the entry
// (what padhook_call_function_index reads; attached functions always have one).
inline uint64_t FunctionId(const padhook_call* call) {
  uint32_t index;
  __builtin_memcpy(&index, reinterpret_cast<const void*>(call->function - 4), sizeof index);
  return index;
}

// The handlers, specialized on the options in use: without --depth no depth
// counter is kept, without --min-duration no rewind test is made.
template <bool kDepth>
void Entry(padhook_call* call, void* gate) {
  ThreadBuffer& t = t_buffer;
  if constexpr (kDepth) {
    // Every entry counts towards the depth, recorded or not, so that exits
    // find the same depth their entries saw.
    const uint32_t depth = ++t.depth;
    if (depth > g_max_depth) return;
  }
  const uint64_t now = EventTime(call);
  Put(t, trace::kKindEntry | FunctionId(call) << kIdShift, now, gate);
}

template <bool kDepth, bool kMinDuration>
void Exit(padhook_call* call, void* gate) {
  ThreadBuffer& t = t_buffer;
  if constexpr (kDepth) {
    const uint32_t depth = t.depth;
    t.depth = depth - (depth != 0);  // never below 0, whatever padhook delivers
    if (depth > g_max_depth) return;
  }
  const uint64_t now = EventTime(call);
  if constexpr (kMinDuration) {
    // When the last word written is an entry, it is this call's own (exits
    // match the innermost open entry, and a recorded child would have left
    // its exit after it): a call shorter than the limit disappears, entry
    // and all. Otherwise (a child was recorded) it stays.
    uint64_t* p = t.pos;
    if (now - t.prev_ns < g_min_duration_ns && p > t.start && (p[-1] & 3) == trace::kKindEntry) {
      t.prev_ns -= p[-1] >> kDeltaShift;
      p[-1] = 0;  // a killed process must not leave the dropped entry readable
      t.pos = p - 1;
      return;
    }
  }
  const uint64_t kind = trace::kKindExit + ((call->stamp & kStampUnwound) != 0);
  Put(t, kind | FunctionId(call) << kIdShift, now, gate);
}

}  // namespace

padhook_handler EntryHandler() { return g_max_depth != UINT32_MAX ? &Entry<true> : &Entry<false>; }

padhook_handler ExitHandler() {
  const bool depth = g_max_depth != UINT32_MAX;
  if (g_min_duration_ns != 0) return depth ? &Exit<true, true> : &Exit<false, true>;
  return depth ? &Exit<true, false> : &Exit<false, false>;
}

}  // namespace padhook::tracer
