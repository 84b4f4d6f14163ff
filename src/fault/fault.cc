// Fault-injection points: see fault.h.
#include "fault/fault.h"

namespace padhook::fault {

std::atomic<bool> g_armed{false};

namespace {
constexpr unsigned kKinds = static_cast<unsigned>(Kind::kCount);
std::atomic<unsigned> g_kind{kKinds};      // the armed kind (written by Arm only)
std::atomic<uint64_t> g_countdown{0};      // calls of g_kind left before the failing one
std::atomic<uint64_t> g_calls[kKinds];     // since Arm
std::atomic<uint64_t> g_injected[kKinds];  // since Arm
}  // namespace

const char* KindName(Kind kind) noexcept {
  switch (kind) {
    case Kind::kMmap:
      return "mmap";
    case Kind::kMprotect:
      return "mprotect";
    case Kind::kOpen:
      return "open";
    case Kind::kPwrite:
      return "pwrite";
    case Kind::kMembarrier:
      return "membarrier";
    case Kind::kSigaction:
      return "sigaction";
    case Kind::kTgkill:
      return "tgkill";
    case Kind::kCount:
      break;
  }
  return "?";
}

bool FailSlow(Kind kind) noexcept {
  if (!g_armed.load(std::memory_order_acquire)) return false;
  const auto k = static_cast<unsigned>(kind);
  if (k >= kKinds) return false;
  g_calls[k].fetch_add(1, std::memory_order_relaxed);
  if (g_kind.load(std::memory_order_relaxed) != k) return false;
  // Exactly one caller sees the countdown go from 1 to 0.
  if (g_countdown.fetch_sub(1, std::memory_order_acq_rel) != 1) return false;
  g_injected[k].fetch_add(1, std::memory_order_relaxed);
  return true;
}

void Arm(Kind kind, uint64_t nth) noexcept {
  g_armed.store(false, std::memory_order_release);
  for (unsigned k = 0; k < kKinds; ++k) {
    g_calls[k].store(0, std::memory_order_relaxed);
    g_injected[k].store(0, std::memory_order_relaxed);
  }
  g_kind.store(static_cast<unsigned>(kind), std::memory_order_relaxed);
  g_countdown.store(nth, std::memory_order_relaxed);
  g_armed.store(true, std::memory_order_release);
}

void Disarm() noexcept { g_armed.store(false, std::memory_order_release); }

uint64_t Calls(Kind kind) noexcept {
  const auto k = static_cast<unsigned>(kind);
  return k < kKinds ? g_calls[k].load(std::memory_order_relaxed) : 0;
}

uint64_t Injected(Kind kind) noexcept {
  const auto k = static_cast<unsigned>(kind);
  return k < kKinds ? g_injected[k].load(std::memory_order_relaxed) : 0;
}

}  // namespace padhook::fault
