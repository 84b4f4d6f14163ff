// src/metadata_inline.h — MetadataTable::Lookup, inlinable by padhook's own hot paths.
//
// The public MetadataTable::Lookup is this function behind a call; padhook's
// internal hot paths and the lookup benchmark include this header instead.
#pragma once

#include "arch.h"
#include "padhook/metadata.h"

namespace padhook {

struct MetadataTableAccess {
  // Ordering: the acquire load of the slot's opcode byte (in ReadMetaIndex)
  // pairs with the release store that published the index, which came after
  // the entry's `function` was set and the capacity covering it committed.
  static MetaEntry* Lookup(uintptr_t entry) noexcept {
    uint32_t index;
    if (!arch::ReadMetaIndex(entry, &index)) return nullptr;
    // A torn index (read while the slot is being retracted) is caught by one
    // of the two checks: out of range, or naming another function's entry.
    if (index >= MetadataTable::g_capacity.load(std::memory_order_relaxed)) return nullptr;
    MetaEntry* e = MetadataTable::g_base.load(std::memory_order_relaxed) + index;
    return e->function.load(std::memory_order_acquire) == entry ? e : nullptr;
  }
};

}  // namespace padhook
