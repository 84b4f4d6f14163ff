// Grace periods: Synchronize waits exactly for readers that may hold old data.
#include "sync/grace_period.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace padhook::sync {
namespace {

using namespace std::chrono_literals;

TEST(GracePeriodTest, NoReadersCompletesAndCounts) {
  const uint64_t before = GracePeriodsCompleted();
  ASSERT_TRUE(Synchronize().ok());
  EXPECT_EQ(GracePeriodsCompleted(), before + 1);
  EXPECT_STREQ(FenceMethod(), "membarrier");  // the kernels padhook targets have it
}

TEST(GracePeriodTest, WaitsForAReaderThatEnteredBefore) {
  std::atomic<bool> entered{false}, left{false};
  std::thread reader([&] {
    ReadSection section;
    entered = true;
    std::this_thread::sleep_for(150ms);
    left = true;
  });
  while (!entered) std::this_thread::yield();
  ASSERT_TRUE(Synchronize().ok());
  EXPECT_TRUE(left.load()) << "Synchronize returned while a reader was still inside";
  reader.join();
}

TEST(GracePeriodTest, DoesNotWaitForReadersThatEnteredAfter) {
  // A reader that entered after the grace period started holds only new data.
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    while (!stop) {
      ReadSection section;
      std::this_thread::sleep_for(1ms);
    }
  });
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(Synchronize().ok());
  stop = true;
  reader.join();
}

TEST(GracePeriodTest, RefusesToWaitForItself) {
  ReadSection section;
  const Status s = Synchronize();
  EXPECT_EQ(s.code(), Errc::kBusy);
  EXPECT_NE(s.message().find("inside a read section"), std::string::npos);
}

TEST(GracePeriodTest, CookieElapsesAfterAGracePeriod) {
  const uint64_t cookie = RetireCookie();
  EXPECT_FALSE(GraceElapsed(cookie));
  ASSERT_TRUE(Synchronize().ok());
  EXPECT_TRUE(GraceElapsed(cookie));
}

std::atomic<int> g_handler_nesting_seen{-1};

void NestedReaderHandler(int) {
  ReadEnter();
  g_handler_nesting_seen = InReadSection() ? 1 : 0;
  ReadExit();
}

TEST(GracePeriodTest, SignalHandlerSectionsNestInsideTheInterruptedOne) {
  struct sigaction sa = {}, old = {};
  sa.sa_handler = NestedReaderHandler;
  sigaction(SIGUSR1, &sa, &old);
  {
    ReadSection outer;
    raise(SIGUSR1);
    EXPECT_EQ(g_handler_nesting_seen.load(), 1);
    EXPECT_TRUE(InReadSection()) << "the handler's exit ended the interrupted section";
  }
  EXPECT_FALSE(InReadSection());
  sigaction(SIGUSR1, &old, nullptr);
}

TEST(GracePeriodTest, ThreadRecordsAreReusedAfterThreadsExit) {
  for (int round = 0; round < 200; ++round) {
    std::thread t([] { ReadSection section; });
    t.join();
  }
  // Records of exited threads go back to the free stack: 200 sequential
  // threads need a handful of records, not 200.
  EXPECT_LT(RecordsClaimed(), 20u);
}

TEST(GracePeriodTest, ForkChildDoesNotWaitForParentThreads) {
  std::atomic<bool> entered{false}, stop{false};
  std::thread reader([&] {
    ReadSection section;
    entered = true;
    while (!stop) std::this_thread::sleep_for(1ms);
  });
  while (!entered) std::this_thread::yield();
  const pid_t pid = fork();
  if (pid == 0) {
    alarm(10);  // a hang would be the failure
    _exit(Synchronize().ok() ? 0 : 1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  stop = true;
  reader.join();
  ASSERT_TRUE(WIFEXITED(status)) << "child hung or crashed";
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

// The property everything else rests on: an object unpublished and then
// freed after Synchronize() is never seen by a reader.
TEST(GracePeriodTest, StressReadersNeverSeeFreedObjects) {
  struct Object {
    std::atomic<uint64_t> canary;
  };
  constexpr uint64_t kAlive = 0xA11CE, kDead = 0xDEAD;
  std::vector<Object> pool(64);
  for (auto& o : pool) o.canary = kAlive;
  std::atomic<Object*> published{&pool[0]};
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> reads{0}, bad{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&] {
      uint64_t local = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        ReadSection section;
        Object* o = published.load(std::memory_order_acquire);
        for (int spin = 0; spin < 50; ++spin) {
          if (o->canary.load(std::memory_order_relaxed) != kAlive) bad.fetch_add(1);
        }
        ++local;
      }
      reads += local;
    });
  }
  size_t next = 1;
  // Run for at least 1.5 s and 300 swaps, whichever is later; a loaded
  // machine only makes it take longer (capped at 30 s).
  const auto start = std::chrono::steady_clock::now();
  uint64_t swaps = 0;
  while ((std::chrono::steady_clock::now() - start < 1500ms || swaps < 300) &&
         std::chrono::steady_clock::now() - start < 30s) {
    Object* fresh = &pool[next];
    next = (next + 1) % pool.size();
    fresh->canary = kAlive;
    Object* old = published.exchange(fresh, std::memory_order_acq_rel);
    ASSERT_TRUE(Synchronize().ok());
    old->canary = kDead;  // "free" it
    ++swaps;
  }
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(bad.load(), 0u) << "a reader saw an object freed after a grace period";
  EXPECT_GE(swaps, 300u);
  EXPECT_GT(reads.load(), 0u);
}

}  // namespace
}  // namespace padhook::sync
