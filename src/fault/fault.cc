// Fault-injection points: see fault.h.
#include "fault/fault.h"

#include <cstdlib>
#include <cstring>

namespace padhook::fault {

std::atomic<bool> g_armed{false};

namespace {
constexpr unsigned kKinds = static_cast<unsigned>(Kind::kCount);
std::atomic<unsigned> g_kind{kKinds};      // the armed kind (written by Arm only)
std::atomic<uint64_t> g_countdown{0};      // calls of g_kind left before the failing one
std::atomic<uint64_t> g_calls[kKinds];     // since Arm
std::atomic<uint64_t> g_injected[kKinds];  // since Arm
// The thread that armed kAlloc (see fault.h). A thread_local of a trivial
// type in a library loaded at start-up: static TLS, so reading it from
// operator new allocates nothing.
thread_local bool t_alloc_armed = false;
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
    case Kind::kAlloc:
      return "alloc";
    case Kind::kFtruncate:
      return "ftruncate";
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

bool FailAllocSlow() noexcept { return t_alloc_armed && FailSlow(Kind::kAlloc); }

bool Parse(const char* text, Kind* kind, uint64_t* nth) noexcept {
  if (text == nullptr) return false;
  const char* colon = std::strchr(text, ':');
  if (colon == nullptr) return false;
  for (unsigned k = 0; k < kKinds; ++k) {
    const char* name = KindName(static_cast<Kind>(k));
    const size_t n = std::strlen(name);
    if (static_cast<size_t>(colon - text) != n || std::strncmp(text, name, n) != 0) continue;
    char* end = nullptr;
    const unsigned long long v = std::strtoull(colon + 1, &end, 10);
    if (end == colon + 1 || *end != '\0' || v == 0) return false;
    *kind = static_cast<Kind>(k);
    *nth = v;
    return true;
  }
  return false;
}

void Arm(Kind kind, uint64_t nth) noexcept {
  g_armed.store(false, std::memory_order_release);
  t_alloc_armed = kind == Kind::kAlloc;
  for (unsigned k = 0; k < kKinds; ++k) {
    g_calls[k].store(0, std::memory_order_relaxed);
    g_injected[k].store(0, std::memory_order_relaxed);
  }
  g_kind.store(static_cast<unsigned>(kind), std::memory_order_relaxed);
  g_countdown.store(nth, std::memory_order_relaxed);
  g_armed.store(true, std::memory_order_release);
}

void Disarm() noexcept {
  g_armed.store(false, std::memory_order_release);
  t_alloc_armed = false;
}

uint64_t Calls(Kind kind) noexcept {
  const auto k = static_cast<unsigned>(kind);
  return k < kKinds ? g_calls[k].load(std::memory_order_relaxed) : 0;
}

uint64_t Injected(Kind kind) noexcept {
  const auto k = static_cast<unsigned>(kind);
  return k < kKinds ? g_injected[k].load(std::memory_order_relaxed) : 0;
}

}  // namespace padhook::fault
