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
void Sample(uint64_t* ticks, uint64_t* ns) {
  uint64_t best = UINT64_MAX;
  for (int i = 0; i < 16; ++i) {
    const uint64_t before = MonotonicNs();
    const uint64_t t = ReadClock();
    const uint64_t after = MonotonicNs();
    if (after - before < best) {
      best = after - before;
      *ticks = t;
      *ns = before + (after - before) / 2;
    }
  }
}

// Calibrates and returns the published calibration (this thread's own if it
// is the first to publish, or if the pool is exhausted).
Calibration Calibrate() {
  uint64_t t0, n0, t1, n1;
  Sample(&t0, &n0);
  do {
    Sample(&t1, &n1);
  } while (n1 - n0 < 1'000'000 && t1 > t0);
  Calibration mine;
  mine.base_ticks = t1;
  mine.base_ns = n1;
  mine.ns_per_tick_q32 =
      t1 > t0 ? static_cast<uint64_t>((static_cast<unsigned __int128>(n1 - n0) << 32) / (t1 - t0))
              : 1ull << 32;
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
