// src/hooks/clock.h — padhook's clock: the CPU's time-stamp counter, read in
// one instruction on hot paths, converted to nanoseconds only when a handler
// asks for a time.
//
// Handlers see nanoseconds on CLOCK_MONOTONIC's scale: the conversion is
// calibrated once per process against clock_gettime, over a window of at least
// 1 ms between two (ticks, ns) samples (by the first attach of an exit
// handler or the first conversion, whichever comes first). The window's first
// sample may come from another process on the same machine (CalibrateClockFrom:
// `padhook record` takes it before it starts the program), so that the
// program's start-up fills the window instead of ~1 ms of busy sampling. It assumes an invariant
// TSC (constant_tsc and nonstop_tsc in /proc/cpuinfo), which every x86-64 CPU of the last decade
// has; elsewhere durations drift with the CPU's frequency.
//
// Shared state: g_calibration (atomic pointer to an immutable Calibration,
// null until published). Written once by a release CAS from null by the
// first thread to finish calibrating; read with acquire by any thread.
// Calibration never waits for another thread, so it is async-signal-safe.
#pragma once

#include <cstdint>

namespace padhook {

// The builtin, not <x86intrin.h>: handlers built with -mgeneral-regs-only
// include this header, and clang rejects the intrinsics headers there.
inline uint64_t ReadClock() noexcept { return __builtin_ia32_rdtsc(); }

// The conversion from ReadClock() ticks to ns: immutable once published.
struct ClockScale {
  uint64_t base_ticks;
  uint64_t base_ns;
  uint64_t ns_per_tick_q32;  // ns per tick, fixed point with 32 fraction bits
};

// Makes sure the conversion is calibrated (spends ~1 ms the first time).
void CalibrateClock() noexcept;

// ReadClock() and CLOCK_MONOTONIC at (nearly) the same instant: the middle of
// the closest-together pair of clock_gettime calls around a TSC read, of a
// few tries (~1 us).
struct ClockSample {
  uint64_t ticks;
  uint64_t ns;
};
ClockSample TakeClockSample() noexcept;

// Like CalibrateClock, with `start` (a sample taken earlier, in this process
// or in another one on this machine: the TSC and CLOCK_MONOTONIC are
// machine-wide) as the window's first sample: only what is missing of the
// 1 ms window is spent sampling. A start that cannot be one (in the future,
// older than 10 s, or giving a rate no TSC has) is ignored: a full
// calibration then. Returns true when `start` was used.
bool CalibrateClockFrom(ClockSample start) noexcept;

// The published conversion (calibrating first if needed). The reference stays
// valid and unchanged for the life of the process, so a hot path (a tracer's
// handlers) can keep it and convert inline with TicksToNs: no call, no load
// of the shared pointer per event.
const ClockScale& GetClockScale() noexcept;

inline uint64_t TicksToNs(const ClockScale& scale, uint64_t ticks) noexcept {
  const int64_t delta = static_cast<int64_t>(ticks - scale.base_ticks);
  const __int128 scaled =
      static_cast<__int128>(delta) * static_cast<__int128>(scale.ns_per_tick_q32);
  return scale.base_ns + static_cast<uint64_t>(static_cast<int64_t>(scaled >> 32));
}

// A ReadClock() value in ns on CLOCK_MONOTONIC's scale.
uint64_t ClockToNs(uint64_t ticks) noexcept;

}  // namespace padhook
