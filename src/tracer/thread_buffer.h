// src/tracer/thread_buffer.h — the per-thread event buffer of libpadhook-trace.so.
//
// The hot path (handlers.cc, built with -mgeneral-regs-only) writes one 8-byte
// word per event at `pos` and moves on; everything else (opening the thread's
// file, growing it, dropping when it cannot grow, closing it) is the slow
// path in runtime.cc, entered when `pos` reaches `end`.
//
// The buffer is a window: one MAP_SHARED mapping of the thread's
// `<key>-<tid>.events` file, [window_offset, window_offset + window_bytes).
// Growing fallocates more file and maps a new window that starts at the page
// holding `pos`, so the words already written stay where they are in the file
// and an event never straddles two mappings. Because the mapping is shared,
// every word stored is in the file (the page cache) at once: a SIGKILLed
// process leaves everything it wrote readable. The header lives in its own
// one-page mapping for the thread's lifetime.
//
// `end` is one word short of the window's end: the slow path always has a
// word left for a `lost` marker when the file cannot grow.
//
// Sharing: a ThreadBuffer lives in its thread's static TLS and is written only
// by that thread, with two exceptions: `next`/`prev` (the registry, written
// under the registry mutex by threads starting and ending), and, at fork, the
// child's atfork handler resets every buffer of the (now single-threaded)
// child. At process end the exiting thread reads other threads' headers'
// `events_lost` with relaxed atomic loads (their writers may still run).
#pragma once

#include <cstdint>

#include "padhook/padhook.h"
#include "tracer/trace_format.h"

namespace padhook::tracer {

enum BufferState : uint32_t {
  kNoFile = 0,    // no event yet on this thread (or reset after fork)
  kOpen = 1,      // window mapped, writing
  kDropping = 2,  // the file could not grow: events are counted, not written
  kClosed = 3,    // finalized (thread exit, process end) or the file could not be created
};

struct ThreadBuffer {
  // ---- hot path ----
  uint64_t* pos;     // next word to write; null until the thread's first event
  uint64_t* end;     // writing stops here (one word before the window's end)
  uint64_t* start;   // first data word of the window (words before it are not ours to read)
  uint64_t prev_ns;  // time of the last event written
  uint32_t depth;    // calls entered and not yet exited on this thread (all, recorded or not)
  uint32_t state;    // BufferState
  // ---- slow path ----
  uint32_t tid;
  char* path;                  // the events file (malloc'ed at open, freed at close)
  trace::EventHeader* header;  // one-page mapping of the file's first page
  uint64_t* window;            // the window's mapping
  uint64_t window_offset;      // file offset of `window` (page aligned)
  uint64_t window_bytes;
  uint64_t* lost_word;         // the `lost` marker being counted, or null
  uint64_t drops_until_retry;  // dropped events before the next attempt to grow
  ThreadBuffer* next;          // registry (runtime.cc), under the registry mutex
  ThreadBuffer* prev;
};

// This thread's buffer: zero-initialized static TLS, one %fs-relative access.
extern __thread ThreadBuffer t_buffer
    __attribute__((tls_model("initial-exec"), visibility("hidden")));

// Configuration, written by the constructor before the first attach and
// read-only afterwards (the attach's patching, which involves full barriers,
// orders the writes before any handler's reads).
extern uint32_t g_max_depth __attribute__((visibility("hidden")));        // UINT32_MAX: no limit
extern uint64_t g_min_duration_ns __attribute__((visibility("hidden")));  // 0: keep all

// padhook's TSC-to-ns conversion (src/hooks/clock.cc), copied at start so the
// handlers convert inline: ns = base_ns + ((ticks - base_ticks) * q32) >> 32.
struct Clock {
  uint64_t base_ticks;
  uint64_t base_ns;
  uint64_t ns_per_tick_q32;
};
extern Clock g_clock __attribute__((visibility("hidden")));

// Slow path (runtime.cc, ordinary code that may use vector registers: the
// handlers call it through CallSaved in handlers.cc). Makes room for `words`
// more words at t->pos: opens the thread's file on its first event, grows
// it, retries after drops. Returns false when the event must be dropped; it
// is then already counted (header events_lost and the `lost` marker).
// MakeRoom and CountGated realign the stack (force_align_arg_pointer): the
// handlers may be entered with a misaligned one (src/arch/x86_64/trampoline.S)
// and use general registers only, so only these ordinary-code entries care.
bool MakeRoom(ThreadBuffer* t, uint64_t now_ns, uint64_t words)
    __attribute__((visibility("hidden"), force_align_arg_pointer));
// Counts one event that was dropped because its batch's function lines were
// not written yet (see runtime.cc, "gates").
void CountGated(ThreadBuffer* t) __attribute__((visibility("hidden"), force_align_arg_pointer));

// The handlers (handlers.cc), specialized on the configuration above (read
// it once it is final). user_data: the batch's gate (a uint8_t, 1 once the
// batch's `F` lines are in the functions file).
padhook_handler EntryHandler() __attribute__((visibility("hidden")));
padhook_handler ExitHandler() __attribute__((visibility("hidden")));

}  // namespace padhook::tracer
