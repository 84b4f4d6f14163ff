// The dispatcher's slow path: the C++ half of the trampoline (R1..R4 of
// attach.cc; the fast path is in src/arch/x86_64/trampoline.S).
#include <sys/syscall.h>
#include <unistd.h>

#include "arch.h"
#include "hooks/call_frame.h"
#include "hooks/handler_block.h"
#include "hooks/shadow_stack.h"
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

// The slow path of the trampoline (trampoline.S): a thread not registered
// yet, or a hooked call made inside a read section (from a handler, or from a
// signal handler that interrupted one). xmm0-7 are saved in the frame.
// Called from trampoline.S, maybe with a misaligned stack: realigns.
extern "C" __attribute__((visibility("hidden"), force_align_arg_pointer)) void padhook_dispatch_slow(padhook_call* call) {
  using namespace padhook;
  sync::ThreadRecord* rec = sync::internal::tls_record;
  if (rec == &sync::internal::g_unregistered) {
    rec = sync::internal::RegisterThisThreadFromSignalSafeContext();
    if (rec == nullptr) return;  // padhook is still initializing: skipped, counted
  }
  const uint64_t word = rec->word.load(std::memory_order_relaxed);
  if (word & sync::kNestingMask) {  // R1: the recursion guard
    rec->skipped.store(rec->skipped.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    return;
  }
  rec->word.store(padhook_reader_word.load(std::memory_order_acquire), std::memory_order_relaxed);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  if (MetaEntry* e = MetadataTableAccess::Lookup(call->function)) {  // R2
    if (const HandlerBlock* block = BlockOf(e)) {
      // As the fast path: frames a longjmp left dead end before this entry.
      if (block->flags & kBlockHasExit) padhook_exit_pop_dead(call);
      for (const EntryCall* c = block->entry_calls(); c->handler != nullptr; ++c) {  // R3
        c->handler(call, c->user_data);
      }
      if (block->flags & kBlockHasExit) {
        call->block = block;
        call->meta = e;
        padhook_exit_push(call);
      }
    }
  }
  std::atomic_signal_fence(std::memory_order_seq_cst);  // R4
  rec->word.store(0, std::memory_order_release);
}
