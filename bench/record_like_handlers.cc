// The handlers of call_overhead_benchmark's record_like states: what a
// tracer's on_entry and on_exit do, minus the files. Each event appends one
// 8-byte word (kind, function index, ns since the thread's previous event;
// docs/trace-format.md) to a per-thread ring.
//
// Built with -mgeneral-regs-only (bench/CMakeLists.txt), so they keep the
// PADHOOK_HOOKS_NO_VECTOR promise and padhook's inline helpers inline into
// them (a target("general-regs-only") attribute on the function alone would
// stop GCC from inlining them).
#include <cstdint>

#include "hooks/call_frame.h"
#include "hooks/clock.h"

namespace {

struct RecordRing {
  uint64_t words[1 << 12];
  uint32_t next;
  uint64_t last_ns;
};
thread_local RecordRing tls_ring __attribute__((tls_model("initial-exec")));

void Append(uint64_t kind, uint32_t index, uint64_t now) {
  RecordRing& ring = tls_ring;
  ring.words[ring.next++ % (1 << 12)] = kind | uint64_t{index} << 2 | (now - ring.last_ns) << 24;
  ring.last_ns = now;
}

}  // namespace

const padhook::ClockScale* g_scale = nullptr;

// Through the C API (calls into libpadhook).
void RecordEvent(padhook_call* c, void*) {
  const uint64_t now = padhook_call_timestamp(c);
  const uint64_t kind = padhook_call_is_exit(c) ? (padhook_call_is_unwound(c) ? 3 : 2) : 1;
  Append(kind, padhook_call_function_index(c), now);
}

// With padhook's internal inline helpers (what an in-tree tracer can use):
// the frame read directly, the clock read and converted inline.
void RecordEventInline(padhook_call* c, void*) {
  uint64_t ticks = c->stamp & padhook::kStampTimeMask;
  if (ticks == 0) {
    ticks = padhook::ReadClock() & padhook::kStampTimeMask;
    c->stamp |= ticks;
  }
  const uint64_t kind = c->stamp >> 62 == 0 ? 1 : (c->stamp & padhook::kStampUnwound ? 3 : 2);
  // The function's metadata index, from its padding (`mov eax, imm32` right
  // before the entry: the function is attached, so the slot holds it).
  uint32_t index;
  __builtin_memcpy(&index, reinterpret_cast<const char*>(c->function) - 4, sizeof(index));
  Append(kind, index, padhook::TicksToNs(*g_scale, ticks));
}
