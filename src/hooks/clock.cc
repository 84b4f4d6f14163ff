// TSC to nanoseconds: see src/hooks/clock.h.
#include "hooks/clock.h"

#include <time.h>

#include <atomic>

namespace padhook {
namespace {

using Calibration = ClockScale;

// Every thread that finds no calibration makes its own and offers it in one of
// these (a static pool: no allocation in a signal handler) with a CAS; slots
// are claimed with fetch_add, so each is written by one thread, before its CAS.
constexpr unsigned kSlots = 64;
Calibration g_slots[kSlots];
std::atomic<unsigned> g_slots_used{0};
std::atomic<const Calibration*> g_calibration{nullptr};

uint64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

// One (ticks, ns) pair, taken where the clock_gettime calls bracketing the
// TSC read were closest together (the least preempted of a few tries).
ClockSample Sample() {
  ClockSample sample{};
  uint64_t best = UINT64_MAX;
  for (int i = 0; i < 16; ++i) {
    const uint64_t before = MonotonicNs();
    const uint64_t t = ReadClock();
    const uint64_t after = MonotonicNs();
    if (after - before < best) {
      best = after - before;
      sample.ticks = t;
      sample.ns = before + (after - before) / 2;
    }
  }
  return sample;
}

constexpr uint64_t kWindowNs = 1'000'000;            // the shortest calibration window
constexpr uint64_t kOldestStartNs = 10'000'000'000;  // CalibrateClockFrom: older starts are ignored

// ns per tick (fixed point, 32 fraction bits) between two samples, or 0 when
// the ticks did not advance.
uint64_t Rate(const ClockSample& first, const ClockSample& last) {
  if (last.ticks <= first.ticks) return 0;
  return static_cast<uint64_t>((static_cast<unsigned __int128>(last.ns - first.ns) << 32) /
                               (last.ticks - first.ticks));
}

// A rate some TSC has: 100 MHz to 20 GHz.
bool Plausible(uint64_t ns_per_tick_q32) {
  return ns_per_tick_q32 >= (uint64_t{1} << 32) / 20 && ns_per_tick_q32 <= (uint64_t{10} << 32);
}

// Calibrates over [first, a sample at least kWindowNs later] and returns the
// published calibration (this thread's own if it is the first to publish, or
// if the pool is exhausted). `start`, when given, is the first sample;
// *used says whether it was (it is not when it cannot be right: see
// CalibrateClockFrom).
Calibration Calibrate(const ClockSample* start = nullptr, bool* used = nullptr) {
  ClockSample first = Sample();
  ClockSample last;
  bool from_start = false;
  if (start != nullptr && start->ns <= first.ns && first.ns - start->ns <= kOldestStartNs &&
      start->ticks < first.ticks) {
    from_start = true;
    last = first;
    first = *start;
  } else {
    last = Sample();
  }
  while (last.ns - first.ns < kWindowNs && last.ticks > first.ticks) last = Sample();
  uint64_t rate = Rate(first, last);
  if (from_start && !Plausible(rate)) {
    // Not a sample of this machine's clocks after all: a window of our own.
    from_start = false;
    first = last;
    do {
      last = Sample();
    } while (last.ns - first.ns < kWindowNs && last.ticks > first.ticks);
    rate = Rate(first, last);
  }
  if (used != nullptr) *used = from_start;
  Calibration mine;
  mine.base_ticks = last.ticks;
  mine.base_ns = last.ns;
  mine.ns_per_tick_q32 = rate != 0 ? rate : 1ull << 32;
  const unsigned slot = g_slots_used.fetch_add(1, std::memory_order_relaxed);
  const Calibration* published = g_calibration.load(std::memory_order_acquire);
  if (published != nullptr) return *published;
  if (slot >= kSlots) return mine;
  g_slots[slot] = mine;
  if (g_calibration.compare_exchange_strong(published, &g_slots[slot], std::memory_order_acq_rel)) {
    return mine;
  }
  return *published;
}

}  // namespace

void CalibrateClock() noexcept {
  if (g_calibration.load(std::memory_order_acquire) == nullptr) Calibrate();
}

ClockSample TakeClockSample() noexcept { return Sample(); }

bool CalibrateClockFrom(ClockSample start) noexcept {
  if (g_calibration.load(std::memory_order_acquire) != nullptr) return false;
  bool used = false;
  Calibrate(&start, &used);
  return used;
}

const ClockScale& GetClockScale() noexcept {
  const Calibration* published;
  // Calibrate() publishes, unless kSlots racing calibrations took every slot
  // first; one of those publishes when it finishes.
  while ((published = g_calibration.load(std::memory_order_acquire)) == nullptr) Calibrate();
  return *published;
}

uint64_t ClockToNs(uint64_t ticks) noexcept {
  const Calibration* published = g_calibration.load(std::memory_order_acquire);
  const Calibration c = published != nullptr ? *published : Calibrate();
  return TicksToNs(c, ticks);
}

}  // namespace padhook
