// Exits through the per-thread shadow stack and the return-address mirror:
// protocol E1..E4 at the top of shadow_stack.h.
#include "hooks/shadow_stack.h"

#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>
#include <unwind.h>

#include <atomic>
#include <cstdlib>
#include <mutex>

#include "hooks/clock.h"
#include "hooks/handler_block.h"
#include "sync/grace_period.h"

// The fast paths of E1 and E2..E4 are in trampoline.S, which reads this.
extern "C" {
constinit thread_local padhook::ShadowStack padhook_tls_shadow
    __attribute__((visibility("hidden"), tls_model("initial-exec"))) = {};
}

namespace padhook {
namespace {

ShadowStack& Shadow() { return padhook_tls_shadow; }

std::atomic<uint64_t> g_exits_lost{0};
pthread_key_t g_exit_key;
std::once_flag g_key_once;

enum ChunkState : uint8_t {
  kChunkUnknown = 0,
  kChunkMapping = 1,
  kChunkMapped = 2,
  kChunkUnusable = 3
};
constexpr uint64_t kChunkSize = 1ull << kMirrorChunkShift;
constexpr uint64_t kChunkCount = kMirrorAddressEnd >> kMirrorChunkShift;
std::atomic<std::atomic<uint8_t>*> g_chunk_state{nullptr};

void CountLost() { g_exits_lost.fetch_add(1, std::memory_order_relaxed); }

void ReleaseAtThreadExit(void*) {
  UnwindAllShadowFrames();
  ShadowStack& s = Shadow();
  if (s.base != nullptr) munmap(s.base, kShadowCapacity * sizeof(ShadowFrame));
  s.base = s.top = s.limit = nullptr;
}

// First redirected call of this thread. mmap and pthread_setspecific (key
// below 32: no allocation) are async-signal-safe; call_once is not, so the key
// is created by the first attach of an exit handler (EnsureShadowKey).
bool MapShadowStack(ShadowStack& s) {
  void* mem = mmap(nullptr, kShadowCapacity * sizeof(ShadowFrame), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) return false;
  s.base = s.top = static_cast<ShadowFrame*>(mem);
  s.limit = s.base + kShadowCapacity;
  pthread_setspecific(g_exit_key, &s);
  return true;
}

std::atomic<uint8_t>* ChunkStates() {
  std::atomic<uint8_t>* states = g_chunk_state.load(std::memory_order_acquire);
  if (states != nullptr) return states;
  void* mem = mmap(nullptr, kChunkCount, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) return nullptr;
  auto* fresh = static_cast<std::atomic<uint8_t>*>(mem);
  if (!g_chunk_state.compare_exchange_strong(states, fresh, std::memory_order_acq_rel)) {
    munmap(mem, kChunkCount);  // another thread installed its table first
    return states;
  }
  return fresh;
}

// Makes sure the mirror covers stack address `retp` and points the thread's
// cache at its chunk. Async-signal-safe; false: the call cannot be redirected.
bool CoverMirror(ShadowStack& s, uint64_t retp) {
  int64_t offset;
  uint64_t rt;
  if (retp < kMirrorLowEnd) {
    offset = kMirrorLowOffset;
    rt = reinterpret_cast<uint64_t>(&padhook_return_trampoline_low);
  } else if (retp >= kMirrorHighStart && retp < kMirrorAddressEnd) {
    offset = kMirrorHighOffset;
    rt = reinterpret_cast<uint64_t>(&padhook_return_trampoline_high);
  } else {
    return false;
  }
  std::atomic<uint8_t>* states = ChunkStates();
  if (states == nullptr) return false;
  std::atomic<uint8_t>& state = states[retp >> kMirrorChunkShift];
  const uint64_t lo = retp & ~(kChunkSize - 1);
  for (int waits = 0;; ++waits) {
    uint8_t st = state.load(std::memory_order_acquire);
    if (st == kChunkMapped) break;
    if (st == kChunkUnusable) return false;
    if (st == kChunkUnknown &&
        state.compare_exchange_strong(st, kChunkMapping, std::memory_order_acq_rel)) {
      s.mapping_mirror = true;
      void* want = reinterpret_cast<void*>(lo + offset);
      void* got = mmap(want, kChunkSize, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
      if (got != MAP_FAILED && got != want) {  // a kernel without MAP_FIXED_NOREPLACE
        munmap(got, kChunkSize);
        got = MAP_FAILED;
      }
      state.store(got == MAP_FAILED ? kChunkUnusable : kChunkMapped, std::memory_order_release);
      s.mapping_mirror = false;
      if (got == MAP_FAILED) return false;
      break;
    }
    // Another thread is mapping this chunk: wait for it, unless the mapper is
    // the code this signal handler interrupted, or it takes far too long.
    if (st == kChunkMapping && (s.mapping_mirror || waits > 10000)) return false;
    sched_yield();
  }
  if (offset == s.mirror_offset && (lo == s.mirror_hi || lo + kChunkSize == s.mirror_lo)) {
    if (lo < s.mirror_lo) {  // adjacent: one longer range
      s.mirror_lo = lo;
    } else {
      s.mirror_hi = lo + kChunkSize;
    }
  } else {
    s.mirror_lo = lo;
    s.mirror_hi = lo + kChunkSize;
  }
  s.mirror_offset = offset;
  s.return_trampoline = rt;
  return true;
}

uint64_t* MirrorOf(uint64_t retp, int64_t offset) {
  return reinterpret_cast<uint64_t*>(retp + static_cast<uint64_t>(offset));
}

// A frame with the slots above it that padhook_call's accessors read
// (continuation, return address), for exits not delivered by a return trampoline.
struct StandaloneCall {
  padhook_call call;
  uint64_t continuation;
  uint64_t return_address;
};

// E3 for one frame. The caller is inside a read section.
void RunExitHandlers(const ShadowFrame& f, padhook_call* call) {
  const auto* meta = static_cast<const MetaEntry*>(f.meta);
  if (meta->function.load(std::memory_order_acquire) != f.function) return;  // entry reused
  const HandlerBlock* block = BlockOf(meta);
  if (block == nullptr) return;
  for (const ExitCall* c = block->exit_calls(); c->handler != nullptr; ++c) {
    if (c->seq <= f.max_seq) c->handler(call, c->user_data);
  }
}

void DeliverUnwound(const ShadowFrame& f) {
  StandaloneCall c = {};
  c.call.function = f.function;
  c.call.divert_target_or_entry_time = f.entry_time;
  c.call.stamp = kStampExit | kStampUnwound;
  const int64_t offset = f.retp < kMirrorLowEnd ? kMirrorLowOffset : kMirrorHighOffset;
  c.return_address = *MirrorOf(f.retp, offset);
  RunExitHandlers(f, &c.call);
}

// Pops every frame whose retp is below `retp` (or equal, when `inclusive`),
// delivering each as unwound when `deliver` (the caller is then inside a read
// section).
void PopDead(ShadowStack& s, uint64_t retp, bool inclusive, bool deliver) {
  while (s.top != s.base) {
    const ShadowFrame& f = s.top[-1];
    if (f.retp > retp || (!inclusive && f.retp == retp)) break;
    const ShadowFrame dead = f;
    --s.top;
    if (deliver) DeliverUnwound(dead);
  }
}

// True when this thread is inside a read section already (a handler's own
// hooked calls, or a signal handler that interrupted one) or not registered.
bool Nested() {
  sync::ThreadRecord* rec = sync::internal::tls_record;
  return rec == &sync::internal::g_unregistered ||
         (rec->word.load(std::memory_order_relaxed) & sync::kNestingMask) != 0;
}

}  // namespace

uint64_t ExitsLost() noexcept { return g_exits_lost.load(std::memory_order_relaxed); }

void EnsureShadowKey() {
  std::call_once(g_key_once, [] { pthread_key_create(&g_exit_key, ReleaseAtThreadExit); });
}

void UnwindAllShadowFrames() noexcept {
  ShadowStack& s = Shadow();
  if (s.base == nullptr || s.top == s.base) return;
  if (Nested()) {
    PopDead(s, UINT64_MAX, true, false);
    return;
  }
  sync::ReadSection section;
  PopDead(s, UINT64_MAX, true, true);
}

}  // namespace padhook

using namespace padhook;

// Called from trampoline.S, maybe with a misaligned stack: realigns.
extern "C" __attribute__((visibility("hidden"), force_align_arg_pointer)) void padhook_exit_push(padhook_call* frame) {
  ShadowStack& s = Shadow();
  if (__builtin_expect(s.base == nullptr, 0) && !MapShadowStack(s)) return CountLost();
  uint64_t* slot = &frame->continuation() + 1;  // the function's return-address slot
  const auto retp = reinterpret_cast<uint64_t>(slot);
  if (retp - s.mirror_lo >= s.mirror_hi - s.mirror_lo && !CoverMirror(s, retp)) {
    return CountLost();
  }
  // A tail call: the function was jumped to from a hooked function whose
  // return address this slot already redirected. The RT then ends both
  // frames, innermost first. Otherwise a frame with this very slot is a dead
  // one whose stack was reused.
  const bool tail_call = *slot == s.return_trampoline;
  PopDead(s, retp, /*inclusive=*/!tail_call, true);
  if (s.top == s.limit) return CountLost();
  const auto* block = static_cast<const HandlerBlock*>(frame->block);
  uint64_t time = frame->stamp & kStampTimeMask;
  if (time == 0 && (block->flags & kBlockNeedsEntryTime) != 0) {
    time = ReadClock() & kStampTimeMask;
    frame->stamp = time;
  }
  *s.top = {retp, frame->meta, frame->function, block->max_seq, time};
  std::atomic_signal_fence(std::memory_order_seq_cst);  // the frame before its top
  ++s.top;
  if (!tail_call) *MirrorOf(retp, s.mirror_offset) = *slot;
  std::atomic_signal_fence(std::memory_order_seq_cst);  // top and mirror before the slot
  *slot = s.return_trampoline;
}

// Called from trampoline.S, maybe with a misaligned stack: realigns.
extern "C" __attribute__((visibility("hidden"), force_align_arg_pointer)) void padhook_exit_pop_dead(padhook_call* frame) {
  ShadowStack& s = Shadow();
  if (s.base == nullptr) return;
  uint64_t* slot = &frame->continuation() + 1;
  const bool tail_call = s.return_trampoline != 0 && *slot == s.return_trampoline;
  PopDead(s, reinterpret_cast<uint64_t>(slot), /*inclusive=*/!tail_call, true);
}

// Called from trampoline.S, maybe with a misaligned stack: realigns.
extern "C" __attribute__((visibility("hidden"), force_align_arg_pointer)) uint64_t padhook_exit_dispatch(
    padhook_call* frame, int64_t mirror_offset) {
  ShadowStack& s = Shadow();
  uint64_t* slot = &frame->continuation() + 1;
  const auto retp = reinterpret_cast<uint64_t>(slot);
  const uint64_t real_return = *MirrorOf(retp, mirror_offset);
  *slot = real_return;  // for padhook_call_caller
  const bool nested = Nested();
  if (!nested) sync::ReadEnter();
  PopDead(s, retp, false, !nested);  // frames below this one were unwound
  bool matched = false;
  while (s.top != s.base && s.top[-1].retp == retp) {  // several after tail calls
    const ShadowFrame f = *--s.top;
    matched = true;
    if (nested) continue;
    frame->function = f.function;
    frame->divert_target_or_entry_time = f.entry_time;
    frame->stamp = kStampExit;
    RunExitHandlers(f, frame);
  }
  if (!nested) sync::ReadExit();
  if (!matched) CountLost();  // the shadow stack lost this frame; the return is still right
  return real_return;
}

// The personality routine of the return trampolines' FDEs: an exception or a
// forced unwind (pthread_exit, pthread_cancel) is leaving a redirected frame.
// The context a personality routine gets is that of the RT pseudo-frame
// before its own CFA rule is applied, so _Unwind_GetCFA gives the hooked
// function's CFA, retp + 8. In the cleanup phase the frame's shadow frames
// (and any dead ones below) are popped and delivered as unwound.
extern "C" __attribute__((visibility("hidden"))) _Unwind_Reason_Code padhook_rt_personality(
    int, _Unwind_Action actions, uint64_t, _Unwind_Exception*, _Unwind_Context* context) {
  if ((actions & _UA_CLEANUP_PHASE) == 0) return _URC_CONTINUE_UNWIND;
  ShadowStack& s = Shadow();
  if (s.base == nullptr) return _URC_CONTINUE_UNWIND;
  const uint64_t retp = _Unwind_GetCFA(context) - 8;
  if (Nested()) {
    PopDead(s, retp, true, false);
  } else {
    sync::ReadSection section;
    PopDead(s, retp, true, true);
  }
  return _URC_CONTINUE_UNWIND;
}
