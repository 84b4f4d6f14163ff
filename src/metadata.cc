// The per-function metadata table ("way 1" of the padding-metadata RFC), with
// the synchronization the RFC left open.
//
// ---------------------------------------------------------------------------
// Shared state, who writes it, who reads it
//
//   padding slot (5 bytes before each entry: NOPs, or B8 + imm32 index)
//       written under mutex_, through TextWriter (bytes verified before every
//       write): published by Get (G6), retracted by reclamation (R3); read by
//       Lookup on any thread, lock-free, and by Get/Put/reclamation under mutex_.
//   g_base      the reserved region; written once (release) before any index
//               is published; never changes, never unmapped.
//   padhook_metadata_base  the same address for the trampoline (a hidden
//               symbol it loads in one instruction: g_base is preemptible in
//               libpadhook.so); written once, right after g_base, before any
//               index is published (so before any site calls the trampoline).
//   g_capacity  committed entries; written under mutex_ (release) after the
//               pages are committed; read by Lookup to reject torn indices.
//               An entry is constructed when its index is first handed out
//               (A3); the committed bytes of one never handed out are the
//               kernel's zeros, which read as function == 0 (no owner).
//   MetaEntry::function  set (release) before the index is published; cleared
//               (release) only once the slot no longer names the entry
//               (retracted, R3, or found stale, R2); read by Lookup (acquire).
//   MetaEntry::data  attach/detach (src/hooks/attach.cc); set to null here
//               when the last user goes (P3).
//   MetaEntry::users, free_, retired_, next_unused_, owners_, records_,
//   live_, dormant_: mutex_ only.
//
// An entry is
//   free     function == 0: its index is in free_ or retired_, or never used.
//   live     users > 0: the slot names it; its module is held (G5).
//   dormant  users == 0, function != 0: its last user is gone (P3) and it is
//            kept as a cache. The slot still names it (unless its module was
//            unloaded: then it is stale, R2); Lookup finds it, with null data
//            (nothing runs); the next Get revives it without writing a byte.
//            Leaving `mov eax, imm32` in the padding is harmless: it is never
//            executed. A dormant entry does not keep its module loaded.
//
// ---------------------------------------------------------------------------
// Get(function), under mutex_
//   G1. Refuse what cannot hold an index: padding < 5 bytes (kNoPadding),
//       entry or padding bytes not as compiled (kUnexpectedBytes).
//   G2. Read the slot. If it names an entry owned by this function (index in
//       range, entry.function == address): live: users++, done. Dormant:
//       revive: hold its module (G5), users = 1, done; nothing is written.
//       Any other content but NOPs: kUnexpectedBytes.
//   G3. Allocate an index (A1..A6 below).
//   G4. Initialize the entry, then entry.function = address (release).
//   G5. Keep the function's module loaded while it has live entries: one
//       dlopen(RTLD_NOLOAD) reference per module instance, checked to be the
//       object loaded at the module's address, so dlclose cannot unmap a slot
//       padhook may write or a site padhook patched. (For a revived entry the
//       check also catches an index found in a module other than the one it
//       was made for: kNotFound.)
//   G6. One TextWriter batch for every new index of the call, two phases:
//       (a) the 4 index bytes over NOPs, (b) the opcode byte 0xB8 over its
//       NOP. (b) is a single-byte store and is the moment the index becomes
//       visible; readers test the opcode first (acquire), so they never see
//       an index whose bytes are incomplete. In the recommended layouts (a)
//       is one aligned 4-byte store as well.
//       If the batch fails it is rolled back by TextWriter; the indices were
//       never visible, so they go straight back to free_.
//
// Put(function), under mutex_
//   P1. Read the slot; it must name a live entry owned by this function
//       (kNotFound). (PutEntries: the caller names the entries it holds; one
//       without users is refused, kNotFound.) Every function of a batch is
//       checked before any is counted down.
//   P2. users--; done unless it reached zero.
//   P3. The entry goes dormant: data = null (PutEntries: the caller has
//       unpublished it already), its module's reference is dropped (after the
//       whole batch is counted: dlclose may unmap slots the batch still
//       reads). No byte is written and entry.function stays: a reader still
//       in a read section keeps a valid entry with no handlers.
//   UndoGetMany (a caller whose batch failed after GetMany): P1..P3, then the
//   entries that GetMany created and that are left without users are
//   retracted at once (R3, R5) while their modules are still referenced, so
//   the padding is as before the GetMany.
//
// Reclaiming dormant entries (ReclaimLocked), under mutex_
//   Dormant entries are kept (64 bytes each) until one of these; their number
//   is at most the number of distinct functions attached since the module was
//   loaded (a new Get of the same function revives its entry).
//   R1. For each module instance with dormant entries: is it still the object
//       loaded at its address? The main program always is; a library is asked
//       with dlopen(RTLD_NOLOAD) and its load address, and that reference
//       keeps it mapped until R4.
//   R2. Stale: the module is not loaded there any more (dlclose; another
//       object may be mapped there now), or the slot no longer names the
//       entry (the module was unloaded and loaded again at the same address:
//       fresh NOPs, or a newer index). Nothing of an unloaded module is read
//       or written: entry.function = 0 (release), retire (R5). Until then a
//       stale entry may share its function address with a live entry of the
//       reloaded module; Lookup only finds it through a torn read during a
//       retraction (R3), and its data is null: it runs nothing.
//   R3. Retract (Trim, or the table is full): one TextWriter batch, two
//       phases: (a) opcode 0xB8 -> NOP (from here on no new reader finds the
//       index), (b) index bytes -> NOPs. A reader that tested the opcode just
//       before (a) may read a torn index during (b): Lookup rejects it (out of
//       range, or entry.function != its address). Then entry.function = 0
//       (release): readers that passed the opcode test now fail validation.
//       If the batch fails, TextWriter rolled it back: the entries stay
//       dormant.
//   R4. Drop the references of R1.
//   R5. Retire the index with sync::RetireCookie(). A reader that validated
//       the entry before it was cleared may still use it inside its read
//       section: the index is reused only once sync::GraceElapsed(cookie).
//   When: Trim() retracts every dormant entry. Index allocation (A4) sweeps
//   the stale ones when a module was unloaded since the last sweep, and
//   retracts every dormant entry when the table is at its maximum.
//
// Index allocation (AllocateIndexLocked), under mutex_
//   A1. free_ (grace period already passed).
//   A2. Retired indices whose grace period has elapsed meanwhile.
//   A3. A never-used index below the committed capacity (constructed now).
//   A4. Dormant entries: sweep the stale ones (R1, R2, R4, R5) if a module was
//       unloaded since the last sweep (dl_iterate_phdr's unload counter); at
//       the maximum capacity retract them all (R1..R5).
//   A5. If many indices are retired (>= half the capacity) or the table is at
//       its maximum: wait for a grace period (sync::Synchronize) and recycle.
//   A6. Grow: commit the next pages (capacity doubles), publish the capacity.
// The region for kMaxEntries is reserved once (read-only, MAP_NORESERVE: no
// commit charge, and untouched pages read as the shared zero page) and grown
// with mprotect to read+write: the table never moves, and entries are never
// freed, so a reader never touches unmapped or reallocated memory. The whole
// reservation is readable so that the trampoline can mask an index into range
// (one instruction) instead of comparing it with the capacity: an entry
// beyond the capacity reads as function == 0, which no function is.
#include "padhook/metadata.h"

#include <dlfcn.h>
#include <link.h>
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <new>

#include "arch.h"
#include "fault/fault.h"
#include "format.h"
#include "loader_events.h"
#include "metadata_inline.h"
#include "padhook/text_writer.h"
#include "sync/grace_period.h"

// The trampoline's copy of MetadataTable::g_base (see the top of this file).
extern "C" {
__attribute__((visibility("hidden"))) padhook::MetaEntry* padhook_metadata_base = nullptr;
}

namespace padhook {
// trampoline.S masks indices with kMaxEntries - 1 (INDEX_MASK) and scales them
// by the entry size (META_SHIFT): keep them in sync.
static_assert(MetadataTable::kMaxEntries == 1u << 22 && sizeof(MetaEntry) == 64);

namespace {

std::string Describe(const Function& f) { return f.name + " at " + AddressText(f.entry); }

using Slot = std::array<uint8_t, arch::kMetaSlotSize>;
static_assert(arch::kMetaSlotCommitOffset == 0,
              "the index bytes are assumed to follow the commit byte");

Slot ReadSlot(uintptr_t entry) {
  Slot slot;
  for (size_t i = 0; i < slot.size(); ++i) {
    slot[i] = __atomic_load_n(reinterpret_cast<const uint8_t*>(entry - slot.size() + i),
                              __ATOMIC_ACQUIRE);
  }
  return slot;
}

Slot EmptySlot() {
  Slot slot;
  arch::EncodeEmptyMetaSlot(slot);
  return slot;
}

Slot IndexSlot(uint32_t index) {
  Slot slot;
  arch::EncodeMetaSlot(index, slot);
  return slot;
}

// The slot writes of G6 (publish) or R3 (retract) for a list of entries, as
// a TextWriter source: the index bytes and the commit bytes are two phases,
// in protocol order. Entries name their function, so the list is all it needs.
class SlotWrites final : public StoreSource {
 public:
  SlotWrites(std::span<MetaEntry* const> entries, bool publish)
      : entries_(entries), publish_(publish) {}

  size_t phase_count() const override { return entries_.empty() ? 0 : 2; }
  size_t phase_size(size_t) const override { return entries_.size(); }
  void Fill(size_t phase, size_t first, size_t count, CodeStore* out) const override {
    const bool index_phase = (phase == 0) == publish_;
    for (size_t k = 0; k < count; ++k) {
      const MetaEntry* e = entries_[first + k];
      const uintptr_t slot = e->function.load(std::memory_order_relaxed) - arch::kMetaSlotSize;
      const Slot full = IndexSlot(e->index);
      const Slot& from = publish_ ? empty_ : full;
      const Slot& to = publish_ ? full : empty_;
      CodeStore& s = out[k];
      s.expected = s.replacement = 0;
      if (index_phase) {
        s.address = slot + 1;
        s.size = arch::kMetaSlotSize - 1;
        std::memcpy(&s.expected, from.data() + 1, s.size);
        std::memcpy(&s.replacement, to.data() + 1, s.size);
      } else {
        s.address = slot;
        s.size = 1;
        s.expected = from[0];
        s.replacement = to[0];
      }
    }
  }

  PageSet Pages() const {
    PageSet pages;
    for (const MetaEntry* e : entries_) {
      pages.Add(e->function.load(std::memory_order_relaxed) - arch::kMetaSlotSize,
                arch::kMetaSlotSize);
    }
    return pages;
  }

 private:
  std::span<MetaEntry* const> entries_;
  bool publish_;
  Slot empty_ = EmptySlot();
};

// A reference on the library at `path` when it is the object loaded at `bias`
// (not another one that took its path or its place after a dlclose); null
// otherwise.
void* ReferenceIfLoadedAt(const std::string& path, uintptr_t bias) {
  void* handle = dlopen(path.c_str(), RTLD_NOLOAD | RTLD_LAZY);
  if (handle == nullptr) return nullptr;
  link_map* map = nullptr;
  if (dlinfo(handle, RTLD_DI_LINKMAP, &map) != 0 || map == nullptr || map->l_addr != bias) {
    dlclose(handle);
    return nullptr;
  }
  return handle;
}

}  // namespace

MetadataTable& MetadataTable::Process() {
  static MetadataTable* table = new MetadataTable();  // never destroyed: readers may run at exit
  return *table;
}

MetaEntry* MetadataTable::Lookup(uintptr_t entry) noexcept {
  return MetadataTableAccess::Lookup(entry);
}

size_t MetadataTable::live() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return live_;
}

size_t MetadataTable::dormant() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return dormant_;
}

size_t MetadataTable::retired() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return retired_.size();
}

size_t MetadataTable::growth_steps() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return growth_steps_;
}

Status MetadataTable::GrowLocked() {
  MetaEntry* base = g_base.load(std::memory_order_acquire);
  if (base == nullptr) {
    void* owners =
        fault::Fail(fault::Kind::kMmap)
            ? (errno = ENOMEM, MAP_FAILED)
            : mmap(nullptr, sizeof(ModuleRecord*) * size_t{kMaxEntries}, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (owners == MAP_FAILED)
      return Status::FromErrno(errno, "reserving the metadata owners table");
    void* region = fault::Fail(fault::Kind::kMmap)
                       ? (errno = ENOMEM, MAP_FAILED)
                       : mmap(nullptr, sizeof(MetaEntry) * size_t{kMaxEntries}, PROT_READ,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (region == MAP_FAILED) {
      munmap(owners, sizeof(ModuleRecord*) * size_t{kMaxEntries});
      return Status::FromErrno(errno, "reserving the metadata table");
    }
    owners_ = static_cast<ModuleRecord**>(owners);
    base = static_cast<MetaEntry*>(region);
    g_base.store(base, std::memory_order_release);
    padhook_metadata_base = base;
  }
  const uint32_t old_capacity = g_capacity.load(std::memory_order_relaxed);
  if (old_capacity >= kMaxEntries) {
    return Status(Errc::kOutOfMemory,
                  "the metadata table is full (" + std::to_string(kMaxEntries) + " functions)");
  }
  const uint32_t new_capacity = old_capacity == 0 ? kInitialCapacity : old_capacity * 2;
  if (fault::Fail(fault::Kind::kMprotect)
          ? (errno = ENOMEM, true)
          : mprotect(base + old_capacity, sizeof(MetaEntry) * (new_capacity - old_capacity),
                     PROT_READ | PROT_WRITE) != 0) {
    return Status::FromErrno(
        errno, "growing the metadata table to " + std::to_string(new_capacity) + " entries");
  }
  // The new entries are not constructed here (A3 does it when it hands one
  // out): writing them all would fault in every page of the new half at once.
  g_capacity.store(new_capacity, std::memory_order_release);
  ++growth_steps_;
  return Status::Ok();
}

void MetadataTable::RecycleRetiredLocked() {
  // Nothing can have become reusable unless a grace period ended since the
  // last pass: without this check, allocating n indices after a detach of n
  // would rescan the whole retired list n times.
  const uint64_t completed = sync::GracePeriodsCompleted();
  if (completed == recycled_at_grace_) return;
  // Room first: a std::bad_alloc in the loop would lose indices.
  if (free_.capacity() - free_.size() < retired_.size())
    free_.reserve(std::max(free_.size() + retired_.size(), 2 * free_.capacity()));
  recycled_at_grace_ = completed;
  size_t kept = 0;
  for (const Retired& r : retired_) {
    if (sync::GraceElapsed(r.cookie)) {
      free_.push_back(r.index);
    } else {
      retired_[kept++] = r;
    }
  }
  retired_.resize(kept);
}

Result<uint32_t> MetadataTable::AllocateIndexLocked() {
  if (free_.empty() && !retired_.empty()) RecycleRetiredLocked();  // A1, A2
  if (!free_.empty()) {
    const uint32_t index = free_.back();
    free_.pop_back();
    return index;
  }
  uint32_t capacity = g_capacity.load(std::memory_order_relaxed);
  if (next_unused_ < capacity) {  // A3
    new (&g_base.load(std::memory_order_relaxed)[next_unused_]) MetaEntry();
    return next_unused_++;
  }
  if (dormant_ > 0) {  // A4
    const bool full = capacity >= kMaxEntries;
    const unsigned long long unloads = ModuleUnloads();
    if (full || unloads != unloads_at_sweep_) {
      unloads_at_sweep_ = unloads;
      (void)ReclaimLocked(/*retract=*/full);  // on failure the entries stay dormant
    }
  }
  if (!retired_.empty() && (retired_.size() >= capacity / 2 || capacity >= kMaxEntries)) {  // A5
    if (sync::Synchronize().ok()) {
      RecycleRetiredLocked();
      if (!free_.empty()) {
        const uint32_t index = free_.back();
        free_.pop_back();
        return index;
      }
    }
  }
  if (Status grown = GrowLocked(); !grown.ok()) return grown;  // A6
  new (&g_base.load(std::memory_order_relaxed)[next_unused_]) MetaEntry();
  return next_unused_++;
}

MetadataTable::ModuleRecord* MetadataTable::RecordLocked(const Function& function) {
  const Module* m = function.module;
  const bool unloadable = m != nullptr && !m->main_program;
  auto [it, added] =
      records_.try_emplace({unloadable ? m->path : std::string(), unloadable ? m->bias : 0});
  if (added) {
    it->second.path = it->first.first;
    it->second.bias = it->first.second;
    it->second.unloadable = unloadable;
  }
  return &it->second;
}

Status MetadataTable::HoldLocked(ModuleRecord* record) {  // G5
  if (!record->unloadable || record->live > 0) [[likely]] {
    ++record->live;
    return Status::Ok();
  }
  {
    record->handle = ReferenceIfLoadedAt(record->path, record->bias);
    if (record->handle == nullptr) {
      return Status(Errc::kNotFound,
                    record->path + " is no longer loaded at " + AddressText(record->bias));
    }
  }
  ++record->live;
  return Status::Ok();
}

// G2's counts for a dormant entry that takes a user again; the caller has
// taken G5's hold on the module.
void MetadataTable::CountRevivedLocked(ModuleRecord* record) {
  --record->dormant;
  --dormant_;
  ++live_;
}

// P3's counts: the entry's last user left. A module left without live entries
// is noted once in `unreferenced`, to be closed when the whole batch is counted
// (CloseUnreferencedLocked): a later function of the batch may still read its slots.
void MetadataTable::CountDormantLocked(ModuleRecord* record,
                                       std::vector<ModuleRecord*>* unreferenced) {
  --record->live;
  ++record->dormant;
  ++dormant_;
  --live_;
  if (unreferenced != nullptr && record->live == 0 && record->handle != nullptr &&
      (unreferenced->empty() || unreferenced->back() != record)) {
    unreferenced->push_back(record);
  }
}

void MetadataTable::CloseUnreferencedLocked(std::span<ModuleRecord* const> unreferenced) {
  for (ModuleRecord* record : unreferenced) {
    if (record->live == 0 && record->handle != nullptr) {
      dlclose(record->handle);
      record->handle = nullptr;
    }
  }
}

void MetadataTable::ReleaseLocked(ModuleRecord* record) {
  if (--record->live == 0 && record->handle != nullptr) {
    dlclose(record->handle);
    record->handle = nullptr;
  }
}

// R2/R3 after the slot no longer names the entry, and R5.
void MetadataTable::DropLocked(MetaEntry& entry, uint64_t cookie) {
  ModuleRecord* record = owners_[entry.index];
  entry.data.store(nullptr, std::memory_order_relaxed);
  entry.function.store(0, std::memory_order_release);
  retired_.push_back({entry.index, cookie});
  --record->dormant;
  --dormant_;
}

Status MetadataTable::ReclaimLocked(bool retract) {
  if (dormant_ == 0) return Status::Ok();
  MetaEntry* base = g_base.load(std::memory_order_relaxed);
  // R1: one decision (and reference) per module instance.
  std::vector<void*> references;
  std::map<const ModuleRecord*, bool> loaded;
  // R4 on every way out, a std::bad_alloc included (no reference leaks).
  struct CloseReferences {
    std::vector<void*>& references;
    ~CloseReferences() {
      for (void* handle : references) dlclose(handle);
    }
  } close_references{references};
  references.reserve(records_.size());  // push_back below cannot throw
  for (auto& [key, record] : records_) {
    if (record.dormant == 0) continue;
    loaded[&record] = false;  // the node first: a reference taken below is kept at once
    bool here = !record.unloadable || record.live > 0;  // a live entry holds it already
    if (!here) {
      if (void* handle = ReferenceIfLoadedAt(record.path, record.bias)) {
        references.push_back(handle);
        here = true;
      }
    }
    loaded[&record] = here;
  }
  std::vector<MetaEntry*> stale, retracting;
  for (uint32_t i = 0; i < next_unused_; ++i) {
    MetaEntry& e = base[i];
    const uintptr_t function = e.function.load(std::memory_order_relaxed);
    if (e.users != 0 || function == 0) continue;
    uint32_t named;
    if (!loaded[owners_[i]] || !arch::ReadMetaIndex(function, &named) || named != i) {  // R2
      stale.push_back(&e);
    } else if (retract) {
      retracting.push_back(&e);
    }
  }
  Status status;
  // Room for DropLocked below (it must not throw half way through).
  retired_.reserve(retired_.size() + stale.size() + retracting.size());
  if (!retracting.empty()) {  // R3
    const SlotWrites writes(retracting, /*publish=*/false);
    status = TextWriter::Process().Apply(writes, writes.Pages());
  }
  const uint64_t cookie = sync::RetireCookie();
  for (MetaEntry* e : stale) DropLocked(*e, cookie);
  if (status.ok()) {
    for (MetaEntry* e : retracting) DropLocked(*e, cookie);
  }
  // R4: close_references, on return.
  for (auto it = records_.begin(); it != records_.end();) {
    it = it->second.live == 0 && it->second.dormant == 0 ? records_.erase(it) : std::next(it);
  }
  return status;
}

Status MetadataTable::Trim() {
  std::lock_guard<std::mutex> lock(mutex_);
  return ReclaimLocked(/*retract=*/true);
}

Status MetadataTable::CheckUsable(const Function& function) {
  if (function.site.slot == SlotState::kTooSmall) {
    return Status(Errc::kNoPadding,
                  Describe(function) + " has " + std::to_string(function.site.prefix_size) +
                      " bytes of padding before its entry; metadata needs " +
                      std::to_string(arch::kMetaSlotSize) + " (build with `padhook flags`)");
  }
  if (!function.site.usable()) {
    return Status(Errc::kUnexpectedBytes,
                  Describe(function) + ": " + arch::DescribeSite(function.site));
  }
  return Status::Ok();
}

Result<MetaEntry*> MetadataTable::Get(const Function& function) {
  const Function* one = &function;
  Result<std::vector<MetaEntry*>> entries = GetMany({&one, 1});
  if (!entries.ok()) return entries.status();
  return entries->front();
}

Status MetadataTable::Put(const Function& function) {
  const Function* one = &function;
  return PutMany({&one, 1});
}

// G1..G6 for every function of a batch, with the new indices of all functions
// published by one TextWriter batch. Get is a batch of one.
Result<std::vector<MetaEntry*>> MetadataTable::GetMany(std::span<const Function* const> functions,
                                                       std::vector<MetaEntry*>* created) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<MetaEntry*> result(functions.size());
  enum How : uint8_t { kCounted, kRevived, kFresh };
  std::vector<How> how(functions.size());
  std::vector<MetaEntry*> fresh;
  // undo() gives fresh indices back to free_: room for them now, so that the
  // undo of a failed batch (a std::bad_alloc among others) cannot fail.
  if (free_.capacity() - free_.size() < functions.size())
    free_.reserve(std::max(free_.size() + functions.size(), 2 * free_.capacity()));
  // Functions of one module come in runs: one record lookup per run.
  const Module* run_module = nullptr;
  ModuleRecord* run_record = nullptr;
  auto undo = [&](size_t upto) {
    for (size_t i = 0; i < upto; ++i) {
      MetaEntry* e = result[i];
      ModuleRecord* record = owners_[e->index];
      if (how[i] == kFresh) {  // never published: no reader can hold it
        e->function.store(0, std::memory_order_release);
        e->users = 0;
        free_.push_back(e->index);
        ReleaseLocked(record);
      } else if (how[i] == kRevived) {  // dormant again
        e->users = 0;
        --live_;
        ++dormant_;
        ++record->dormant;
        ReleaseLocked(record);
      } else {
        --e->users;
      }
    }
  };
  const Slot empty = EmptySlot();
  // Everything but a live or dormant entry of a main-program function: G1's
  // refusals, revivals that take a library reference, new entries (G3..G5).
  auto get_other = [&](size_t i) __attribute__((noinline))->Status {
    const Function& function = *functions[i];
    if (!function.site.usable()) return CheckUsable(function);  // G1
    uint32_t index;
    if (arch::ReadMetaIndex(function.entry, &index)) {  // G2
      MetaEntry* base = g_base.load(std::memory_order_relaxed);
      if (base == nullptr || index >= g_capacity.load(std::memory_order_relaxed) ||
          base[index].function.load(std::memory_order_relaxed) != function.entry) {
        return Status(Errc::kUnexpectedBytes,
                      Describe(function) + ": its padding holds an index padhook did not write (" +
                          std::to_string(index) + ")");
      }
      MetaEntry& e = base[index];
      if (e.users == 0) {
        ModuleRecord* record = owners_[index];
        if (record->unloadable && function.module != nullptr &&
            (function.module->bias != record->bias || function.module->path != record->path)) {
          return Status(Errc::kUnexpectedBytes, Describe(function) + ": its padding holds index " +
                                                    std::to_string(index) + " of another module");
        }
        if (Status held = HoldLocked(record); !held.ok()) return held;
        CountRevivedLocked(record);
        how[i] = kRevived;
      }
      ++e.users;
      result[i] = &e;
      return Status::Ok();
    }
    if (ReadSlot(function.entry) != empty) {
      return Status(Errc::kUnexpectedBytes,
                    Describe(function) + ": its padding holds bytes padhook did not write");
    }
    if (fresh.empty())
      fresh.reserve(functions.size() - i);  // one allocation: a first attach makes many
    if (function.module != run_module || run_record == nullptr) {
      run_module = function.module;
      run_record = RecordLocked(function);
    }
    if (Status held = HoldLocked(run_record); !held.ok()) return held;  // G5
    Result<uint32_t> allocated = Status();
    try {
      allocated = AllocateIndexLocked();  // G3
    } catch (const std::bad_alloc&) {
      ReleaseLocked(run_record);
      throw;
    }
    if (!allocated.ok()) {
      ReleaseLocked(run_record);
      return allocated.status();
    }
    MetaEntry* entry = g_base.load(std::memory_order_relaxed) + *allocated;  // G4
    owners_[*allocated] = run_record;
    entry->users = 1;
    entry->index = *allocated;
    entry->data.store(nullptr, std::memory_order_relaxed);
    entry->function.store(function.entry, std::memory_order_release);
    result[i] = entry;
    how[i] = kFresh;
    fresh.push_back(entry);
    return Status::Ok();
  };
  MetaEntry* base = g_base.load(std::memory_order_relaxed);
  uint32_t capacity = g_capacity.load(std::memory_order_relaxed);
  // A std::bad_alloc (get_other's allocations, G6's batch) is thrown with
  // entries [0, i) counted and nothing published: they are undone.
  size_t i = 0;
  try {
    for (; i < functions.size(); ++i) {
      // The steady case, inline: G2 finds a live entry, or a dormant one of the
      // main program (reviving it is a count: G5 needs no reference). G1 held
      // when the entry was made: the function is usable.
      const Function& function = *functions[i];
      uint32_t index;
      if (arch::ReadMetaIndex(function.entry, &index) && index < capacity &&
          base[index].function.load(std::memory_order_relaxed) == function.entry &&
          (base[index].users > 0 || !owners_[index]->unloadable)) [[likely]] {
        MetaEntry& e = base[index];
        if (e.users == 0) {
          ModuleRecord* record = owners_[index];
          ++record->live;
          CountRevivedLocked(record);
          how[i] = kRevived;
        }
        ++e.users;
        result[i] = &e;
        continue;
      }
      if (Status got = get_other(i); !got.ok()) {
        undo(i);
        return got;
      }
      base = g_base.load(std::memory_order_relaxed);  // G3 may have grown the table
      capacity = g_capacity.load(std::memory_order_relaxed);
    }
    if (!fresh.empty()) {  // G6
      const SlotWrites writes(fresh, /*publish=*/true);
      if (Status written = TextWriter::Process().Apply(writes, writes.Pages()); !written.ok()) {
        undo(functions.size());
        return written;
      }
      live_ += fresh.size();
    }
  } catch (const std::bad_alloc&) {
    undo(i);  // a throwing G6 rolled its writes back: nothing was published
    throw;
  }
  if (created != nullptr) *created = std::move(fresh);
  return result;
}

Status MetadataTable::PutMany(std::span<const Function* const> functions) {
  std::lock_guard<std::mutex> lock(mutex_);
  return PutManyLocked(functions, {});
}

// P2, P3 for entries the caller holds (P1 is its own Get). One pass; an
// entry without users undoes the counts already taken.
Status MetadataTable::PutEntries(std::span<MetaEntry* const> entries) {
  std::lock_guard<std::mutex> lock(mutex_);
  return PutEntriesLocked(entries);
}

// Allocates nothing (detach calls it after its sites are restored, undo while
// a std::bad_alloc unwinds): the modules left without live entries are found
// by a second pass over the entries, not listed.
Status MetadataTable::PutEntriesLocked(std::span<MetaEntry* const> entries) noexcept {
  for (size_t i = 0; i < entries.size(); ++i) {
    MetaEntry* e = entries[i];
    if (e->users == 0) {
      for (size_t j = 0; j < i; ++j) {
        if (entries[j]->users++ == 0) {
          ModuleRecord* record = owners_[entries[j]->index];
          ++record->live;
          CountRevivedLocked(record);
        }
      }
      try {
        return Status(Errc::kNotFound,
                      "metadata entry " + std::to_string(e->index) + " has no users");
      } catch (const std::bad_alloc&) {
        return Status(Errc::kNotFound, "no users");
      }
    }
    if (--e->users > 0) continue;              // P2
    ModuleRecord* record = owners_[e->index];  // P3 (data is null already)
    CountDormantLocked(record, nullptr);
  }
  // dlclose once all is counted (see PutManyLocked).
  for (MetaEntry* e : entries) {
    ModuleRecord* record = owners_[e->index];
    if (record->live == 0 && record->handle != nullptr) {
      dlclose(record->handle);
      record->handle = nullptr;
    }
  }
  return Status::Ok();
}

Status MetadataTable::UndoGetMany(std::span<MetaEntry* const> entries,
                                  std::span<MetaEntry* const> created) noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  // P2, P3 without dropping the module references yet: the retraction below
  // writes the slots of `created`, which must stay mapped.
  for (MetaEntry* e : entries) {
    if (e->users == 0) continue;  // cannot happen: GetMany counted every one
    if (--e->users > 0) continue;
    e->data.store(nullptr, std::memory_order_release);
    CountDormantLocked(owners_[e->index], nullptr);
  }
  Status status;
  try {
    std::vector<MetaEntry*> unused;
    unused.reserve(created.size());
    for (MetaEntry* e : created) {
      if (e->users == 0 && e->function.load(std::memory_order_relaxed) != 0) unused.push_back(e);
    }
    if (!unused.empty()) {                                // R3: their modules are still referenced
      retired_.reserve(retired_.size() + unused.size());  // DropLocked allocates nothing
      const SlotWrites writes(unused, /*publish=*/false);
      status = TextWriter::Process().Apply(writes, writes.Pages());
      if (status.ok()) {
        const uint64_t cookie = sync::RetireCookie();
        for (MetaEntry* e : unused) DropLocked(*e, cookie);
      }
    }
  } catch (const std::bad_alloc&) {  // the entries stay dormant (see metadata.h)
    status = Status(Errc::kOutOfMemory, "out of memory");
  }
  for (MetaEntry* e : entries) {  // R4's counterpart: drop what no live entry needs
    ModuleRecord* record = owners_[e->index];
    if (record->live == 0 && record->handle != nullptr) {
      dlclose(record->handle);
      record->handle = nullptr;
    }
  }
  return status;
}

// P1..P3 for every function of a batch; all or nothing: every function is
// checked (P1) before any is counted down. The entries of `retract` that are
// left without users are retracted (R3, R5) before their modules' references
// are dropped.
Status MetadataTable::PutManyLocked(std::span<const Function* const> functions,
                                    std::span<MetaEntry* const> retract) {
  MetaEntry* base = g_base.load(std::memory_order_relaxed);
  const uint32_t capacity = g_capacity.load(std::memory_order_relaxed);
  auto live_entry = [&](const Function& f) -> MetaEntry* {
    uint32_t index;
    if (base == nullptr || !arch::ReadMetaIndex(f.entry, &index) || index >= capacity)
      return nullptr;
    MetaEntry& e = base[index];
    return e.function.load(std::memory_order_relaxed) == f.entry && e.users > 0 ? &e : nullptr;
  };
  for (const Function* f : functions) {  // P1
    if (live_entry(*f) == nullptr)
      return Status(Errc::kNotFound, Describe(*f) + " has no metadata entry");
  }
  // References to drop once the whole batch is counted: dlclose may unmap a
  // module whose slots a later function of the batch would still read.
  std::vector<ModuleRecord*> unreferenced;
  for (const Function* f : functions) {
    MetaEntry* e = live_entry(*f);
    if (--e->users > 0) continue;                       // P2
    e->data.store(nullptr, std::memory_order_release);  // P3
    ModuleRecord* record = owners_[e->index];
    CountDormantLocked(record, &unreferenced);
  }
  Status status;
  std::vector<MetaEntry*> unused;
  for (MetaEntry* e : retract) {
    if (e->users == 0 && e->function.load(std::memory_order_relaxed) != 0) unused.push_back(e);
  }
  if (!unused.empty()) {  // R3: their modules are still referenced
    const SlotWrites writes(unused, /*publish=*/false);
    status = TextWriter::Process().Apply(writes, writes.Pages());
    if (status.ok()) {
      const uint64_t cookie = sync::RetireCookie();
      for (MetaEntry* e : unused) DropLocked(*e, cookie);
    }
  }
  CloseUnreferencedLocked(unreferenced);
  return status;
}

namespace {

Result<const Function*> FindInstrumented(uintptr_t entry,
                                         std::shared_ptr<const FunctionTable::Snapshot>* keep) {
  FunctionTable& table = FunctionTable::Process();
  *keep = table.snapshot();
  if (const Function* f = (*keep)->FindByEntry(entry)) return f;
  if (Status refreshed = table.Refresh(); !refreshed.ok()) return refreshed;
  *keep = table.snapshot();
  if (const Function* f = (*keep)->FindByEntry(entry)) return f;
  return Status(Errc::kNotFound, AddressText(entry) +
                                     " is not the entry of an instrumented function "
                                     "(`padhook list` shows them)");
}

}  // namespace

Result<MetaEntry*> MetadataTable::Get(uintptr_t entry) {
  std::shared_ptr<const FunctionTable::Snapshot> keep;
  Result<const Function*> f = FindInstrumented(entry, &keep);
  if (!f.ok()) return f.status();
  return Get(**f);
}

Status MetadataTable::Put(uintptr_t entry) {
  std::shared_ptr<const FunctionTable::Snapshot> keep;
  Result<const Function*> f = FindInstrumented(entry, &keep);
  if (!f.ok()) return f.status();
  return Put(**f);
}

}  // namespace padhook
