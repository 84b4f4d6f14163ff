// Exits through the per-thread shadow stack: protocol E1..E4 at the top of
// shadow_stack.h.
#include "hooks/shadow_stack.h"

#include <pthread.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <mutex>

#include "hooks/handler_block.h"
#include "sync/grace_period.h"

namespace padhook {
namespace {

struct ShadowStack {
  ShadowFrame* base;  // null until the thread's first hijacked call
  ShadowFrame* top;   // next free frame
  ShadowFrame* limit;
};

constinit thread_local ShadowStack tls_shadow
    __attribute__((tls_model("initial-exec"))) = {nullptr, nullptr, nullptr};
std::atomic<uint64_t> g_exits_lost{0};
pthread_key_t g_exit_key;
std::once_flag g_key_once;

void ReleaseAtThreadExit(void*) {
  UnwindAllShadowFrames();
  ShadowStack& s = tls_shadow;
  if (s.base != nullptr) munmap(s.base, kShadowCapacity * sizeof(ShadowFrame));
  s = {nullptr, nullptr, nullptr};
}

// First hijacked call of this thread. mmap and pthread_setspecific (key below
// 32: no allocation) are async-signal-safe; call_once is not, so the key is
// created by the first attach of an exit handler (EnsureShadowKey).
bool MapShadowStack(ShadowStack& s) {
  void* mem = mmap(nullptr, kShadowCapacity * sizeof(ShadowFrame), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) return false;
  s.base = s.top = static_cast<ShadowFrame*>(mem);
  s.limit = s.base + kShadowCapacity;
  pthread_setspecific(g_exit_key, &s);
  return true;
}

// A frame with the slots above it that padhook_call's accessors read
// (continuation, return address), for exits not delivered by the trampoline.
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
  for (uint32_t i = 0; i < block->count; ++i) {
    const HandlerSlot& slot = block->slots()[i];
    if (slot.on_exit != nullptr && slot.owner->seq <= f.max_seq) slot.on_exit(call, slot.user_data);
  }
}

void DeliverUnwound(const ShadowFrame& f) {
  StandaloneCall c = {};
  c.call.function = f.function;
  c.call.divert_target_or_entry_time = f.entry_time;
  c.call.stamp = kStampExit | kStampUnwound;
  c.return_address = f.real_return;
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

}  // namespace

uint64_t NowNs() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

uint64_t ExitsLost() noexcept { return g_exits_lost.load(std::memory_order_relaxed); }

void EnsureShadowKey() {
  std::call_once(g_key_once, [] { pthread_key_create(&g_exit_key, ReleaseAtThreadExit); });
}

void UnwindAllShadowFrames() noexcept {
  ShadowStack& s = tls_shadow;
  if (s.base == nullptr || s.top == s.base) return;
  if (sync::InReadSection()) {
    PopDead(s, UINT64_MAX, true, false);
    return;
  }
  sync::ReadSection section;
  PopDead(s, UINT64_MAX, true, true);
}

}  // namespace padhook

using namespace padhook;

extern "C" __attribute__((visibility("hidden"))) void padhook_exit_push(padhook_call* frame) {
  ShadowStack& s = tls_shadow;
  if (__builtin_expect(s.base == nullptr, 0) && !MapShadowStack(s)) {
    g_exits_lost.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  uint64_t* slot = &frame->continuation() + 1;  // the function's return-address slot
  const auto retp = reinterpret_cast<uint64_t>(slot);
  // A tail call: the function was jumped to from a hooked function whose
  // return address this slot already redirected. The new frame returns to the
  // return trampoline itself, which then also ends the tail-calling frame:
  // one exit each, innermost first. Otherwise a frame with this very slot is
  // a dead one whose stack was reused.
  const bool tail_call = *slot == reinterpret_cast<uint64_t>(&padhook_return_trampoline);
  PopDead(s, retp, /*inclusive=*/!tail_call, true);
  if (s.top == s.limit) {
    g_exits_lost.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const auto* block = static_cast<const HandlerBlock*>(frame->block);
  uint64_t time = frame->stamp & kStampTimeMask;
  if (time == 0) {
    time = NowNs();
    frame->stamp = time;
  }
  *s.top = {*slot, retp, frame->meta, frame->function, block->max_seq, time};
  std::atomic_signal_fence(std::memory_order_seq_cst);  // the frame before its top
  ++s.top;
  std::atomic_signal_fence(std::memory_order_seq_cst);  // the top before the slot
  *slot = reinterpret_cast<uint64_t>(&padhook_return_trampoline);
}

extern "C" __attribute__((visibility("hidden"))) uint64_t padhook_exit_dispatch(
    padhook_call* frame) {
  ShadowStack& s = tls_shadow;
  uint64_t* slot = &frame->continuation() + 1;
  const auto retp = reinterpret_cast<uint64_t>(slot);
  sync::ThreadRecord* rec = sync::internal::tls_record;
  const bool nested = rec == &sync::internal::g_unregistered ||
                      (rec->word.load(std::memory_order_relaxed) & sync::kNestingMask) != 0;
  if (!nested) sync::ReadEnter();
  PopDead(s, retp, false, !nested);  // frames below this one were unwound
  if (s.top == s.base || s.top[-1].retp != retp) {
    static const char kMsg[] =
        "padhook: a return through padhook_return_trampoline has no shadow frame; cannot "
        "continue\n";
    (void)!write(2, kMsg, sizeof(kMsg) - 1);
    abort();
  }
  const ShadowFrame f = *--s.top;
  *slot = f.real_return;  // E2: unwinders from here on see the real caller
  if (!nested) {
    frame->function = f.function;
    frame->divert_target_or_entry_time = f.entry_time;
    frame->stamp = kStampExit;
    RunExitHandlers(f, frame);
    sync::ReadExit();
  }
  return f.real_return;
}
