// The per-function metadata table ("way 1" of the padding-metadata RFC), with
// the synchronization the RFC left open.
//
// ---------------------------------------------------------------------------
// Shared state, who writes it, who reads it
//
//   padding slot (5 bytes before each entry: NOPs, or B8 + imm32 index)
//       written by Get/Put under mutex_, through TextWriter (bytes verified
//       before every write); read by Lookup on any thread, lock-free.
//   g_base      the reserved region; written once (release) before any index
//               is published; never changes, never unmapped.
//   g_capacity  committed entries; written under mutex_ (release) after the
//               pages are committed; read by Lookup to reject torn indices.
//   MetaEntry::function  set (release) before the index is published, cleared
//               (release) after it is retracted; read by Lookup (acquire).
//   MetaEntry::users, free_, retired_, next_unused_, holds_: mutex_ only.
//
// ---------------------------------------------------------------------------
// Get(function), under mutex_
//   G1. Refuse what cannot hold an index: padding < 5 bytes (kNoPadding),
//       entry or padding bytes not as compiled (kUnexpectedBytes).
//   G2. Read the slot. If it names an entry owned by this function: users++,
//       done. Any other content but NOPs: kUnexpectedBytes.
//   G3. Allocate an index (A1..A5 below).
//   G4. Initialize the entry, then entry.function = address (release).
//   G5. Keep the function's module loaded while it has entries (dlopen
//       RTLD_NOLOAD), so dlclose cannot unmap a slot padhook still uses.
//   G6. One TextWriter batch: (a) the 4 index bytes over NOPs, (b) the opcode
//       byte 0xB8 over its NOP. (b) is a single-byte store and is the moment
//       the index becomes visible; readers test the opcode first (acquire), so
//       they never see an index whose bytes are incomplete. In the recommended
//       layouts (a) is one aligned 4-byte store as well.
//       If the batch fails it is rolled back by TextWriter; the index was never
//       visible, so it goes straight back to free_.
//
// Put(function), under mutex_
//   P1. Read the slot; it must name an entry owned by this function (kNotFound).
//   P2. users--; done unless it reached zero.
//   P3. One TextWriter batch: (a) opcode 0xB8 -> NOP (one byte: from here on no
//       new reader finds the index), (b) index bytes -> NOPs. A reader that
//       tested the opcode just before (a) may read a torn index during (b):
//       Lookup rejects it (out of range, or entry.function != its address).
//   P4. entry.function = 0 (release): readers that already passed the opcode
//       test now fail validation.
//   P5. Retire the index with sync::RetireCookie(). A reader that validated the
//       entry before P4 may still be using it inside its read section: the
//       index is reused only once sync::GraceElapsed(cookie).
//
// Index allocation (AllocateIndexLocked), under mutex_
//   A1. free_ (grace period already passed).
//   A2. Retired indices whose grace period has elapsed meanwhile.
//   A3. A never-used index below the committed capacity.
//   A4. If many indices are retired (>= half the capacity) or the table is at
//       its maximum: wait for a grace period (sync::Synchronize) and recycle.
//   A5. Grow: commit the next pages (capacity doubles), publish the capacity.
// The region for kMaxEntries is reserved once (PROT_NONE, MAP_NORESERVE) and
// grown with mprotect: the table never moves, and entries are never freed, so
// a reader never touches unmapped or reallocated memory.
#include "padhook/metadata.h"

#include <dlfcn.h>
#include <sys/mman.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <new>

#include "arch.h"
#include "format.h"
#include "metadata_inline.h"
#include "padhook/text_writer.h"
#include "sync/grace_period.h"

namespace padhook {
namespace {

std::string Describe(const Function& f) { return f.name + " at " + AddressText(f.entry); }

using Slot = std::array<uint8_t, arch::kMetaSlotSize>;

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

// The two writes of G6 (publish) or P3 (retract), in protocol order.
std::array<CodeWrite, 2> SlotWrites(uintptr_t entry, const Slot& from, const Slot& to) {
  const uintptr_t slot = entry - arch::kMetaSlotSize;
  constexpr size_t c = arch::kMetaSlotCommitOffset;
  static_assert(c == 0, "the index bytes are assumed to follow the commit byte");
  const CodeWrite commit = CodeWrite::Make(slot + c, std::span(from).subspan(c, 1),
                                           std::span(to).subspan(c, 1));
  const CodeWrite index = CodeWrite::Make(slot + 1, std::span(from).subspan(1),
                                          std::span(to).subspan(1));
  const bool publishing = to[c] != from[c] && from == EmptySlot();
  return publishing ? std::array{index, commit} : std::array{commit, index};
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
    void* region = mmap(nullptr, sizeof(MetaEntry) * size_t{kMaxEntries}, PROT_NONE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (region == MAP_FAILED) return Status::FromErrno(errno, "reserving the metadata table");
    base = static_cast<MetaEntry*>(region);
    g_base.store(base, std::memory_order_release);
  }
  const uint32_t old_capacity = g_capacity.load(std::memory_order_relaxed);
  if (old_capacity >= kMaxEntries) {
    return Status(Errc::kOutOfMemory, "the metadata table is full (" +
                                          std::to_string(kMaxEntries) + " functions)");
  }
  const uint32_t new_capacity = old_capacity == 0 ? kInitialCapacity : old_capacity * 2;
  if (mprotect(base + old_capacity, sizeof(MetaEntry) * (new_capacity - old_capacity),
               PROT_READ | PROT_WRITE) != 0) {
    return Status::FromErrno(errno, "growing the metadata table to " +
                                        std::to_string(new_capacity) + " entries");
  }
  for (uint32_t i = old_capacity; i < new_capacity; ++i) new (&base[i]) MetaEntry();
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
  if (free_.empty()) RecycleRetiredLocked();  // A1, A2
  if (!free_.empty()) {
    const uint32_t index = free_.back();
    free_.pop_back();
    return index;
  }
  const uint32_t capacity = g_capacity.load(std::memory_order_relaxed);
  if (next_unused_ < capacity) return next_unused_++;  // A3
  if (!retired_.empty() && (retired_.size() >= capacity / 2 || capacity >= kMaxEntries)) {  // A4
    if (sync::Synchronize().ok()) {
      RecycleRetiredLocked();
      if (!free_.empty()) {
        const uint32_t index = free_.back();
        free_.pop_back();
        return index;
      }
    }
  }
  if (Status grown = GrowLocked(); !grown.ok()) return grown;  // A5
  return next_unused_++;
}

Status MetadataTable::HoldModuleLocked(const Function& function) {
  if (function.module == nullptr || function.module->main_program) return Status::Ok();
  auto it = holds_.find(function.module->path);
  if (it != holds_.end()) {
    ++it->second.entries;
    return Status::Ok();
  }
  void* handle = dlopen(function.module->path.c_str(), RTLD_NOLOAD | RTLD_LAZY);
  if (handle == nullptr) {
    return Status(Errc::kNotFound, function.module->path + " is no longer loaded");
  }
  holds_.emplace(function.module->path, ModuleHold{handle, 1});
  return Status::Ok();
}

void MetadataTable::ReleaseModuleLocked(const Function& function) {
  if (function.module == nullptr || function.module->main_program) return;
  auto it = holds_.find(function.module->path);
  if (it == holds_.end() || --it->second.entries > 0) return;
  dlclose(it->second.handle);
  holds_.erase(it);
}

Status MetadataTable::CheckUsable(const Function& function) {
  if (function.site.slot == SlotState::kTooSmall) {
    return Status(Errc::kNoPadding,
                  Describe(function) + " has " + std::to_string(function.site.prefix_size) +
                      " bytes of padding before its entry; metadata needs " +
                      std::to_string(arch::kMetaSlotSize) + " (build with `padhook flags`)");
  }
  if (!function.site.usable()) {
    return Status(Errc::kUnexpectedBytes, Describe(function) + ": " + arch::DescribeSite(function.site));
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

// G1..G6 and P1..P5 for every function of a batch, with the writes of all
// functions in one TextWriter batch (every index before its opcode, every
// opcode before its index on the way back). Get and Put are batches of one.
// `functions` must not repeat a function (attach de-duplicates its list).
Result<std::vector<MetaEntry*>> MetadataTable::GetMany(std::span<const Function* const> functions) {
  for (const Function* f : functions) {
    if (Status usable = CheckUsable(*f); !usable.ok()) return usable;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  MetaEntry* base = g_base.load(std::memory_order_relaxed);
  std::vector<MetaEntry*> result(functions.size(), nullptr);
  std::vector<size_t> fresh;  // positions that get a new index
  std::vector<CodeWrite> index_writes, commit_writes;
  auto undo = [&](size_t upto) {
    for (size_t i = 0; i < upto; ++i) {
      if (result[i] == nullptr) continue;
      if (std::find(fresh.begin(), fresh.end(), i) != fresh.end()) {
        result[i]->function.store(0, std::memory_order_release);
        result[i]->users = 0;
        free_.push_back(result[i]->index);  // never published
        ReleaseModuleLocked(*functions[i]);
      } else {
        --result[i]->users;
      }
    }
  };
  for (size_t i = 0; i < functions.size(); ++i) {
    const Function& function = *functions[i];
    const Slot slot = ReadSlot(function.entry);
    uint32_t index;
    if (arch::DecodeMetaSlot(slot, &index)) {  // G2
      base = g_base.load(std::memory_order_relaxed);
      if (base != nullptr && index < g_capacity.load(std::memory_order_relaxed) &&
          base[index].function.load(std::memory_order_relaxed) == function.entry) {
        ++base[index].users;
        result[i] = &base[index];
        continue;
      }
      undo(i);
      return Status(Errc::kUnexpectedBytes,
                    Describe(function) + ": its padding holds an index padhook did not write (" +
                        std::to_string(index) + ")");
    }
    if (slot != EmptySlot()) {
      undo(i);
      return Status(Errc::kUnexpectedBytes,
                    Describe(function) + ": its padding holds bytes padhook did not write");
    }
    Result<uint32_t> allocated = AllocateIndexLocked();  // G3
    if (!allocated.ok()) {
      undo(i);
      return allocated.status();
    }
    MetaEntry* entry = g_base.load(std::memory_order_relaxed) + *allocated;  // G4
    entry->users = 1;
    entry->index = *allocated;
    entry->data.store(nullptr, std::memory_order_relaxed);
    entry->function.store(function.entry, std::memory_order_release);
    result[i] = entry;
    fresh.push_back(i);
    if (Status held = HoldModuleLocked(function); !held.ok()) {  // G5
      undo(i + 1);
      return held;
    }
    const auto writes = SlotWrites(function.entry, EmptySlot(), IndexSlot(entry->index));
    index_writes.push_back(writes[0]);
    commit_writes.push_back(writes[1]);
  }
  index_writes.insert(index_writes.end(), commit_writes.begin(), commit_writes.end());
  if (Status written = TextWriter::Process().Apply(index_writes); !written.ok()) {  // G6
    undo(functions.size());
    return written;
  }
  live_ += fresh.size();
  return result;
}

Status MetadataTable::PutMany(std::span<const Function* const> functions) {
  std::lock_guard<std::mutex> lock(mutex_);
  MetaEntry* base = g_base.load(std::memory_order_relaxed);
  std::vector<MetaEntry*> entries;
  for (const Function* f : functions) {  // P1
    uint32_t index;
    if (!arch::DecodeMetaSlot(ReadSlot(f->entry), &index) || base == nullptr ||
        index >= g_capacity.load(std::memory_order_relaxed) ||
        base[index].function.load(std::memory_order_relaxed) != f->entry || base[index].users == 0) {
      return Status(Errc::kNotFound, Describe(*f) + " has no metadata entry");
    }
    entries.push_back(&base[index]);
  }
  std::vector<size_t> last;  // P2: positions whose entry reaches zero users
  for (size_t i = 0; i < entries.size(); ++i) {
    if (--entries[i]->users == 0) last.push_back(i);
  }
  std::vector<CodeWrite> commit_writes, index_writes;  // P3
  for (size_t i : last) {
    const auto writes = SlotWrites(functions[i]->entry, IndexSlot(entries[i]->index), EmptySlot());
    commit_writes.push_back(writes[0]);
    index_writes.push_back(writes[1]);
  }
  commit_writes.insert(commit_writes.end(), index_writes.begin(), index_writes.end());
  if (Status written = TextWriter::Process().Apply(commit_writes); !written.ok()) {
    for (MetaEntry* e : entries) ++e->users;  // rolled back: all still published
    return written;
  }
  const uint64_t cookie = sync::RetireCookie();
  for (size_t i : last) {
    entries[i]->data.store(nullptr, std::memory_order_relaxed);  // P4
    entries[i]->function.store(0, std::memory_order_release);
    retired_.push_back({entries[i]->index, cookie});  // P5
    ReleaseModuleLocked(*functions[i]);
  }
  live_ -= last.size();
  return Status::Ok();
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
