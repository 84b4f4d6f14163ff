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
// may use it until it leaves its read section (sync::ReadSection). An entry
// whose last user is gone stays cached ("dormant": its index stays in the
// padding) until its index is needed or Trim() is called, so that attaching
// the same function again writes nothing. The full protocol is at the top of
// src/metadata.cc.
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
  // nothing is attached. Cleared when the entry is put for the last time
  // (a dormant entry always has null data).
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

  // Drops one user. At zero users the entry goes dormant: it keeps its index
  // (in the padding too: Lookup still finds it, with null data) but no longer
  // keeps its module loaded; the next Get revives it without writing code.
  // Errors: kNotFound (the function has no live entry).
  Status Put(const Function& function);
  Status Put(uintptr_t entry);

  // Retracts every dormant entry: the padding gets its NOPs back and the
  // indices are retired (reused once a grace period has passed). Dormant
  // entries of modules no longer loaded are dropped without touching memory.
  Status Trim();

  // Batch forms, all or nothing: GetMany publishes every new index with one
  // text-write batch. A batch must not name the same function twice.
  // `created` (optional) receives the entries GetMany made (their padding held
  // NOPs before).
  Result<std::vector<MetaEntry*>> GetMany(std::span<const Function* const> functions,
                                          std::vector<MetaEntry*>* created = nullptr);
  Status PutMany(std::span<const Function* const> functions);
  // PutMany for entries the caller holds (each from its own Get or GetMany),
  // without looking them up again; every entry whose last user goes must
  // already have null data (the caller unpublished it). Errors: kNotFound
  // (an entry without users: nothing is changed).
  Status PutEntries(std::span<MetaEntry* const> entries);
  // The undo of a GetMany whose caller then failed: PutEntries of the
  // entries it returned, and the entries of `created` left without users are
  // retracted at once (the padding gets its NOPs back) instead of staying
  // dormant. Never throws: it runs while a std::bad_alloc unwinds; the
  // counting allocates nothing, and a retraction that cannot be made (the
  // writer failed, or no memory) leaves those entries dormant, which is
  // harmless (their `mov eax` is never executed) and said in the Status.
  Status UndoGetMany(std::span<MetaEntry* const> entries,
                     std::span<MetaEntry* const> created) noexcept;

  // Hot path. `entry` must be the entry of an instrumented function (the bytes
  // before it are read). Returns its entry, or null when it has none. Call it
  // inside a sync::ReadSection and use the result only there.
  static MetaEntry* Lookup(uintptr_t entry) noexcept;

  // Statistics.
  uint32_t capacity() const noexcept { return g_capacity.load(std::memory_order_acquire); }
  size_t live() const;     // entries in use (users > 0)
  size_t dormant() const;  // cached entries without users
  size_t retired() const;  // indices waiting for a grace period
  size_t growth_steps() const;

 private:
  // A module instance (path, load bias) that has live or dormant entries.
  struct ModuleRecord {
    std::string path;
    uintptr_t bias = 0;
    bool unloadable = false;  // a library (the main program never goes away)
    void* handle = nullptr;   // dlopen(RTLD_NOLOAD) reference while live > 0
    size_t live = 0;          // entries with users
    size_t dormant = 0;       // entries without users
  };

  MetadataTable() = default;
  Result<uint32_t> AllocateIndexLocked();
  // G1 for one function: why it cannot hold an index, or Ok.
  static Status CheckUsable(const Function& function);
  Status GrowLocked();
  void RecycleRetiredLocked();
  ModuleRecord* RecordLocked(const Function& function);
  Status HoldLocked(ModuleRecord* record);
  void ReleaseLocked(ModuleRecord* record);
  void CountRevivedLocked(ModuleRecord* record);
  // `unreferenced` may be null: the caller then closes by its own pass.
  void CountDormantLocked(ModuleRecord* record, std::vector<ModuleRecord*>* unreferenced);
  Status PutEntriesLocked(std::span<MetaEntry* const> entries) noexcept;
  void CloseUnreferencedLocked(std::span<ModuleRecord* const> unreferenced);
  void DropLocked(MetaEntry& entry, uint64_t cookie);
  Status ReclaimLocked(bool retract);
  Status PutManyLocked(std::span<const Function* const> functions,
                       std::span<MetaEntry* const> retract);
  friend struct MetadataTableAccess;  // the inline hot path (src/metadata_inline.h)

  // Read by Lookup on every call; written once (base) or under mutex_
  // (capacity, release after the pages are committed).
  static inline std::atomic<MetaEntry*> g_base{nullptr};
  static inline std::atomic<uint32_t> g_capacity{0};

  mutable std::mutex mutex_;    // guards everything below and every MetaEntry::users
  uint32_t next_unused_ = 0;    // indices [next_unused_, capacity) were never handed out
  std::vector<uint32_t> free_;  // indices whose grace period has passed
  struct Retired {
    uint32_t index;
    uint64_t cookie;  // sync::RetireCookie() at retirement
  };
  std::vector<Retired> retired_;  // oldest first
  size_t live_ = 0;
  size_t dormant_ = 0;
  uint64_t recycled_at_grace_ = ~0ull;       // GracePeriodsCompleted() at the last recycling pass
  unsigned long long unloads_at_sweep_ = 0;  // dl_iterate_phdr's dlpi_subs at the last stale sweep
  size_t growth_steps_ = 0;
  // The module of each handed-out index (by index; a reserved region like the
  // table, so that only the pages of used indices are ever touched).
  ModuleRecord** owners_ = nullptr;
  std::map<std::pair<std::string, uintptr_t>, ModuleRecord> records_;  // by (path, bias)
};

}  // namespace padhook
