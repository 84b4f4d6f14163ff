// padhook's clock (src/hooks/clock.h): a calibration whose window another
// sample started (what `padhook record` passes its program in
// PADHOOK_TRACE_CLOCK_START) converts as accurately as one of its own, and a
// start that cannot be a sample of this machine is refused.
//
// The calibration is made once per process, so each case runs in a forked
// child and reports through its exit status.
#include "hooks/clock.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <iterator>

namespace padhook {
namespace {

uint64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

// This thread's CPU time: sampling a calibration window busy-waits, so it
// shows there even on a loaded machine, where wall time also counts
// preemptions (which once could exceed the bound below).
uint64_t ThreadCpuNs() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

void SleepNs(uint64_t ns) {
  const timespec ts{static_cast<time_t>(ns / 1'000'000'000u),
                    static_cast<long>(ns % 1'000'000'000u)};
  nanosleep(&ts, nullptr);
}

// Runs `body` in a child; returns its exit status (-1: it did not exit).
int InChild(const std::function<int()>& body) {
  const pid_t child = fork();
  if (child == 0) _exit(body());
  int status = 0;
  if (child < 0 || waitpid(child, &status, 0) != child || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

// 0 when the published conversion agrees with CLOCK_MONOTONIC: a rate within
// 0.05% of one measured over 50 ms, and converted times within 50 us.
int CheckConversion() {
  const ClockScale& scale = GetClockScale();
  const ClockSample a = TakeClockSample();
  SleepNs(50'000'000);
  const ClockSample b = TakeClockSample();
  const double measured = static_cast<double>(b.ns - a.ns) / static_cast<double>(b.ticks - a.ticks);
  const double calibrated = static_cast<double>(scale.ns_per_tick_q32) / 4294967296.0;
  if (calibrated < measured * 0.9995 || calibrated > measured * 1.0005) return 10;
  const int64_t off = static_cast<int64_t>(ClockToNs(b.ticks) - b.ns);
  if (off < -50'000 || off > 50'000) return 11;
  return 0;
}

TEST(Clock, CalibratesFromAStartTakenEarlier) {
  EXPECT_EQ(InChild([] {
              const ClockSample start = TakeClockSample();
              SleepNs(3'000'000);  // longer than the 1 ms window: nothing left to sample
              const uint64_t before = ThreadCpuNs();
              if (!CalibrateClockFrom(start)) return 1;
              if (ThreadCpuNs() - before > 500'000) return 2;  // did not sample a window of its own
              return CheckConversion();
            }),
            0);
}

TEST(Clock, SamplesTheRestOfAShortWindow) {
  EXPECT_EQ(InChild([] {
              const ClockSample start = TakeClockSample();
              if (!CalibrateClockFrom(start)) return 1;
              if (MonotonicNs() - start.ns < 1'000'000) return 2;  // the window is 1 ms at least
              return CheckConversion();
            }),
            0);
}

TEST(Clock, RefusesStartsThatCannotBeSamplesOfThisMachine) {
  // Each made from a sample the child takes just before, so that the time
  // the fork takes does not make any of them plausible.
  using Make = ClockSample (*)(ClockSample now);
  const Make bad[] = {
      // in the future
      [](ClockSample now) {
        return ClockSample{now.ticks, now.ns + 1'000'000'000};
      },
      // ticks ahead
      [](ClockSample now) {
        return ClockSample{now.ticks + (uint64_t{1} << 40), now.ns};
      },
      // 100 ms in 1000 ticks (and what passed since): no TSC is that slow
      [](ClockSample now) {
        return ClockSample{now.ticks - 1000, now.ns - 100'000'000};
      },
      // 2^50 ticks in no time: no TSC is that fast
      [](ClockSample now) {
        return ClockSample{now.ticks - (uint64_t{1} << 50), now.ns};
      },
      // older than 10 s
      [](ClockSample now) {
        return ClockSample{now.ticks - 1000, now.ns - 20'000'000'000};
      },
  };
  for (size_t i = 0; i < std::size(bad); ++i) {
    const Make make = bad[i];
    EXPECT_EQ(InChild([make] {
                return CalibrateClockFrom(make(TakeClockSample())) ? 1 : CheckConversion();
              }),
              0)
        << "case " << i;
  }
}

TEST(Clock, AStartDoesNotReplaceAPublishedCalibration) {
  EXPECT_EQ(InChild([] {
              const ClockScale& scale = GetClockScale();
              const uint64_t q32 = scale.ns_per_tick_q32;
              if (CalibrateClockFrom(TakeClockSample())) return 1;
              return GetClockScale().ns_per_tick_q32 == q32 && &GetClockScale() == &scale ? 0 : 2;
            }),
            0);
}

}  // namespace
}  // namespace padhook
