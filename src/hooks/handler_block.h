// src/hooks/handler_block.h — the handlers of one function, as the dispatcher
// reads them.
//
// MetaEntry::data points at a HandlerBlock (or is null). A block is immutable
// once published: attach and detach (attach.cc) publish a new block and retire
// the old one, freed after a grace period. Blocks are shared by all functions
// of a batch that had the same previous block; `refs` counts those functions.
// The dispatcher (dispatch.cc, and the trampoline's fast path) reads blocks
// inside its read section only.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <new>
#include <vector>

#include "padhook/hooks.h"
#include "padhook/metadata.h"

namespace padhook {
namespace internal {
// One client's attachment (what padhook::Attachment owns).
struct AttachmentState {
  Hooks hooks;
  // Attach order, taken under the attach mutex when the attachment's first
  // block is made (HandlerBlock::Make); 0 before. Exit handlers use it to
  // tell clients that saw a call's entry from clients attached since.
  mutable uint64_t seq = 0;
  std::shared_ptr<const FunctionTable::Snapshot> snapshot;  // keeps `functions` valid
  std::vector<const Function*> functions;
};
}  // namespace internal

// One client's handlers on this function.
struct HandlerSlot {
  padhook_handler on_entry;
  padhook_handler on_exit;
  void* user_data;
  const internal::AttachmentState* owner;
};

// What the trampoline's fast path calls on entry, in attach order.
struct EntryCall {
  padhook_handler handler;
  void* user_data;
};

// What a return trampoline's fast path calls on exit, in attach order: the
// clients with an on_exit, each with its attach order (a call owes its exit
// to the clients whose seq is at most the max_seq of the block it entered with).
struct ExitCall {
  padhook_handler handler;
  void* user_data;
  uint64_t seq;
};

// Block flags (read by the trampoline: keep in sync with trampoline.S).
inline constexpr uint32_t kBlockNeedsVector = 1;     // some handler may touch vector registers
inline constexpr uint32_t kBlockHasExit = 2;         // some client has an on_exit
inline constexpr uint32_t kBlockNeedsEntryTime = 4;  // an on_exit may ask for the entry time
inline constexpr uint32_t kBlockManyEntryCalls = 8;  // more than one entry call (the fast
                                                     // path calls exactly one, without a loop)

// trampoline.S: does nothing. The entry call of a block whose clients have no
// on_entry, so that every block has at least one (the trampoline's loop then
// needs no test before its first call).
extern "C" void padhook_no_entry_handler(padhook_call*, void*);

// Layout, one allocation (offsets are read by trampoline.S):
//    0  flags, count, refs, reserved          (4 x uint32_t)
//   16  max_seq, exit_calls_offset            (2 x uint64_t)
//   32  EntryCall entry_calls[]   the slots' non-null on_entry (at least one:
//                                 padhook_no_entry_handler if none), then {null, null}
//    .  HandlerSlot slots[count]  every client, in attach order
//    .  ExitCall exit_calls[]     the slots' non-null on_exit, then {null, null, 0};
//                                 at byte exit_calls_offset from the block
struct HandlerBlock {
  uint32_t flags;
  uint32_t count;
  uint32_t refs;  // functions whose entry points here; under g_attach_mutex
  uint32_t reserved;
  // The highest AttachmentState::seq among the clients: a call that entered
  // with this block owes exits exactly to the clients (still attached when it
  // returns) whose seq is at most this.
  uint64_t max_seq;
  uint64_t exit_calls_offset;

  EntryCall* entry_calls() { return reinterpret_cast<EntryCall*>(this + 1); }
  const EntryCall* entry_calls() const { return reinterpret_cast<const EntryCall*>(this + 1); }
  HandlerSlot* slots() { return reinterpret_cast<HandlerSlot*>(entry_calls() + count + 1); }
  const HandlerSlot* slots() const {
    return reinterpret_cast<const HandlerSlot*>(entry_calls() + count + 1);
  }
  const ExitCall* exit_calls() const {
    return reinterpret_cast<const ExitCall*>(reinterpret_cast<const char*>(this) +
                                             exit_calls_offset);
  }

  static HandlerBlock* Make(const HandlerBlock* old, const internal::AttachmentState* add,
                            const internal::AttachmentState* remove) {
    std::vector<HandlerSlot> slots;
    std::vector<uint32_t> slot_flags;
    if (old != nullptr) {
      for (uint32_t i = 0; i < old->count; ++i) {
        const HandlerSlot& s = old->slots()[i];
        if (s.owner != remove) slots.push_back(s);
      }
    }
    static uint64_t next_seq = 0;  // under the attach mutex, like every Make
    if (add != nullptr && add->seq == 0) add->seq = ++next_seq;
    if (add != nullptr) {
      slots.push_back({add->hooks.on_entry, add->hooks.on_exit, add->hooks.user_data, add});
    }
    if (slots.empty()) return nullptr;
    const size_t count = slots.size();
    // entry_calls and exit_calls: at most `count` handlers (or the no-entry
    // one) and the terminator each.
    const size_t exit_offset =
        sizeof(HandlerBlock) + sizeof(EntryCall) * (count + 1) + sizeof(HandlerSlot) * count;
    void* mem = ::operator new(exit_offset + sizeof(ExitCall) * (count + 1));
    auto* block = static_cast<HandlerBlock*>(mem);
    block->flags = 0;
    block->count = static_cast<uint32_t>(count);
    block->refs = 0;
    block->reserved = 0;
    block->max_seq = 0;
    block->exit_calls_offset = exit_offset;
    auto* exit_call = reinterpret_cast<ExitCall*>(static_cast<char*>(mem) + exit_offset);
    EntryCall* call = block->entry_calls();
    for (const HandlerSlot& s : slots) {
      if ((s.owner->hooks.flags & PADHOOK_HOOKS_NO_VECTOR) == 0) block->flags |= kBlockNeedsVector;
      if (s.on_exit != nullptr) block->flags |= kBlockHasExit;
      if (s.on_exit != nullptr && (s.owner->hooks.flags & PADHOOK_HOOKS_NO_ENTRY_TIME) == 0) {
        block->flags |= kBlockNeedsEntryTime;
      }
      block->max_seq = std::max(block->max_seq, s.owner->seq);
      if (s.on_entry != nullptr) *call++ = {s.on_entry, s.user_data};
      if (s.on_exit != nullptr) *exit_call++ = {s.on_exit, s.user_data, s.owner->seq};
    }
    *exit_call = {nullptr, nullptr, 0};
    if (call == block->entry_calls()) *call++ = {padhook_no_entry_handler, nullptr};
    if (call - block->entry_calls() > 1) block->flags |= kBlockManyEntryCalls;
    while (call != block->entry_calls() + count + 1) *call++ = {nullptr, nullptr};
    std::copy(slots.begin(), slots.end(), block->slots());
    return block;
  }
  static void Free(HandlerBlock* block) { ::operator delete(block); }
};
static_assert(sizeof(HandlerBlock) == 32 && sizeof(EntryCall) == 16);

inline HandlerBlock* BlockOf(const MetaEntry* e) {
  return static_cast<HandlerBlock*>(e->data.load(std::memory_order_acquire));
}

}  // namespace padhook
