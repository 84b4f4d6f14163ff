// padhook/metadata.h — per-function metadata found from the function's address.
//
// Defines:
//   padhook::MetaEntry      one function's metadata (one cache line)
//   padhook::MetadataTable  get/put/lookup over the process-wide table
//
// Each function that padhook works on gets an entry in one table. The entry's
// index is written into the function's own padding, as `mov eax, imm32` in the
// 5 bytes before the entry (docs/layout.md), so the entry of any function is
// found from its address with no hash and no search:
//
//   MetaEntry* e = MetadataTable::Lookup(entry);   // ~10 instructions, no lock
//
// The table never moves (a reserved region, committed as it grows), and an
// index is reused only after a grace period, so a reader that found an entry
// may use it until it leaves its read section (sync::ReadSection). The full
// protocol is at the top of src/metadata.cc.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "padhook/function_table.h"
#include "padhook/status.h"

namespace padhook {

struct alignas(64) MetaEntry {
  // Entry address of the function that owns this entry; 0 when free.
  // Written under the table mutex: set (release) before the index is
  // published in the padding, cleared (release) after it is retracted.
  // Read by Lookup (acquire) to validate what the padding named.
  std::atomic<uintptr_t> function{0};
  // For padhook's attachment machinery (handler lists): written by attach /
  // detach under their own lock, read by the trampoline (acquire). Null when
  // nothing is attached. Cleared when the entry is put for the last time.
  std::atomic<void*> data{nullptr};
  // Number of Get()s not yet Put(). Guarded by the table mutex.
  uint32_t users = 0;
  // This entry's index in the table (constant once the entry is committed).
  uint32_t index = 0;
};
static_assert(sizeof(MetaEntry) == 64);

class MetadataTable {
 public:
  // Capacity grows by doubling from kInitialCapacity up to kMaxEntries; the
  // address range for kMaxEntries is reserved once and never moves.
  static constexpr uint32_t kInitialCapacity = 256;
  static constexpr uint32_t kMaxEntries = 1u << 22;  // 4M functions, 256 MiB reserved

  // The table of this process.
  static MetadataTable& Process();

  // The entry of `function`, created on first use (its index written into
  // the padding, verified). Each Get must be balanced by a Put.
  // Errors: kNoPadding (padding too small), kUnexpectedBytes (padding or entry
  // holds bytes padhook did not write), kOutOfMemory, kSystem (write failed).
  Result<MetaEntry*> Get(const Function& function);
  // Same, for the instrumented function whose entry is `entry` (looked up in
  // FunctionTable::Process(), refreshed if needed). kNotFound for an address
  // that is not the entry of an instrumented function.
  Result<MetaEntry*> Get(uintptr_t entry);

  // Drops one user. At zero users the padding gets its NOPs back and the index
  // is retired; it is reused once a grace period has passed.
  // Errors: kNotFound (the function has no entry), kUnexpectedBytes.
  Status Put(const Function& function);
  Status Put(uintptr_t entry);

  // Batch forms: one text-write batch for all slots, all or nothing. A batch
  // must not name the same function twice.
  Result<std::vector<MetaEntry*>> GetMany(std::span<const Function* const> functions);
  Status PutMany(std::span<const Function* const> functions);

  // Hot path. `entry` must be the entry of an instrumented function (the bytes
  // before it are read). Returns its entry, or null when it has none. Call it
  // inside a sync::ReadSection and use the result only there.
  static MetaEntry* Lookup(uintptr_t entry) noexcept;

  // Statistics.
  uint32_t capacity() const noexcept { return g_capacity.load(std::memory_order_acquire); }
  size_t live() const;        // entries in use
  size_t retired() const;     // indices waiting for a grace period
  size_t growth_steps() const;

 private:
  MetadataTable() = default;
  Result<uint32_t> AllocateIndexLocked();
  // G1 for one function: why it cannot hold an index, or Ok.
  static Status CheckUsable(const Function& function);
  Status GrowLocked();
  void RecycleRetiredLocked();
  Status HoldModuleLocked(const Function& function);
  void ReleaseModuleLocked(const Function& function);
  friend struct MetadataTableAccess;  // the inline hot path (src/metadata_inline.h)

  // Read by Lookup on every call; written once (base) or under mutex_
  // (capacity, release after the pages are committed).
  static inline std::atomic<MetaEntry*> g_base{nullptr};
  static inline std::atomic<uint32_t> g_capacity{0};

  mutable std::mutex mutex_;  // guards everything below and every MetaEntry::users
  uint32_t next_unused_ = 0;  // indices [next_unused_, capacity) were never handed out
  std::vector<uint32_t> free_;  // indices whose grace period has passed
  struct Retired {
    uint32_t index;
    uint64_t cookie;  // sync::RetireCookie() at retirement
  };
  std::vector<Retired> retired_;  // oldest first
  size_t live_ = 0;
  uint64_t recycled_at_grace_ = ~0ull;  // GracePeriodsCompleted() at the last recycling pass
  size_t growth_steps_ = 0;
  // Modules with live entries are kept loaded (dlopen RTLD_NOLOAD reference)
  // so that dlclose() cannot unmap padding that holds an index.
  struct ModuleHold {
    void* handle;
    size_t entries;
  };
  std::map<std::string, ModuleHold> holds_;  // by module path
};

}  // namespace padhook
