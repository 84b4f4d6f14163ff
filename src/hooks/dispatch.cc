// The dispatcher: the C++ half of the trampoline (R1..R4 of attach.cc).
#include <sys/syscall.h>
#include <unistd.h>

#include "arch.h"
#include "hooks/call_frame.h"
#include "hooks/handler_block.h"
#include "metadata_inline.h"
#include "sync/grace_period.h"

namespace padhook {
namespace {
thread_local uint64_t tls_tid __attribute__((tls_model("initial-exec"))) = 0;

}  // namespace

uint64_t CurrentThreadId() {
  if (tls_tid == 0) tls_tid = static_cast<uint64_t>(syscall(SYS_gettid));
  return tls_tid;
}

}  // namespace padhook

// The dispatcher: called by the trampoline with the call frame (R1..R4).
extern "C" __attribute__((visibility("hidden"))) void padhook_dispatch_entry(padhook_call* call) {
  using namespace padhook;
  const uintptr_t entry = arch::EntryFromSiteReturn(call->site_return());
  call->function = entry;
  sync::ThreadRecord* rec = sync::internal::tls_record;
  if (__builtin_expect(rec == nullptr, 0)) rec = sync::internal::RegisterThisThread();
  const uint64_t word = rec->word.load(std::memory_order_relaxed);
  if (word & sync::kNestingMask) {  // R1: recursion guard
    rec->skipped.store(rec->skipped.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    return;
  }
  rec->word.store(
      (sync::internal::g_epoch.load(std::memory_order_acquire) << sync::kEpochShift) | 1,
      std::memory_order_relaxed);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  if (MetaEntry* e = MetadataTableAccess::Lookup(entry)) {  // R2
    if (const HandlerBlock* block = BlockOf(e)) {
      for (uint32_t i = 0; i < block->count; ++i) {  // R3
        const HandlerSlot& slot = block->slots[i];
        if (slot.on_entry == nullptr) continue;
        slot.on_entry(call, slot.user_data);
        if (call->action != kContinue) break;
      }
    }
  }
  std::atomic_signal_fence(std::memory_order_seq_cst);  // R4
  rec->word.store(0, std::memory_order_release);
}
