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
  std::shared_ptr<const FunctionTable::Snapshot> snapshot;  // keeps `functions` valid
  std::vector<const Function*> functions;
};
}  // namespace internal

struct HandlerSlot {
  padhook_handler on_entry;
  padhook_handler on_exit;
  void* user_data;
  const internal::AttachmentState* owner;
};

struct HandlerBlock {
  uint32_t count;
  uint32_t refs;         // functions whose entry points here; under g_attach_mutex
  HandlerSlot slots[1];  // really `count`

  static HandlerBlock* Make(const HandlerBlock* old, const internal::AttachmentState* add,
                            const internal::AttachmentState* remove) {
    std::vector<HandlerSlot> slots;
    if (old != nullptr) {
      for (uint32_t i = 0; i < old->count; ++i) {
        if (old->slots[i].owner != remove) slots.push_back(old->slots[i]);
      }
    }
    if (add != nullptr)
      slots.push_back({add->hooks.on_entry, add->hooks.on_exit, add->hooks.user_data, add});
    if (slots.empty()) return nullptr;
    void* mem = ::operator new(sizeof(HandlerBlock) + sizeof(HandlerSlot) * slots.size());
    auto* block = static_cast<HandlerBlock*>(mem);
    block->count = static_cast<uint32_t>(slots.size());
    block->refs = 0;
    std::copy(slots.begin(), slots.end(), block->slots);
    return block;
  }
  static void Free(HandlerBlock* block) { ::operator delete(block); }
};

inline HandlerBlock* BlockOf(const MetaEntry* e) {
  return static_cast<HandlerBlock*>(e->data.load(std::memory_order_acquire));
}

}  // namespace padhook
