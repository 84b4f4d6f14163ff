// padhook/text_writer.h — the one component that writes into code pages.
//
// Defines:
//   padhook::WriteMode   kFast (temporarily writable pages) or kStrict (W^X)
//   padhook::CodeWrite   one write of up to 16 bytes (the general form)
//   padhook::CodeStore   one store of up to 8 bytes (the unit of the batched form)
//   padhook::StoreSource the stores of a batch, in ordered phases, made on demand
//   padhook::PageSet     the pages a batch writes
//   padhook::CodeBatch   a StoreSource that is a list (with its PageSet)
//   padhook::TextWriter  applies a batch, all or nothing
//
// Every byte padhook changes in a module's text (metadata slots, entry sites)
// goes through TextWriter. The caller's patch protocol decides the ORDER of
// writes; the writer guarantees:
//
//   1. Order. Apply(span<CodeWrite>): the writes happen in the order given.
//      Apply(StoreSource): the phases happen in order; every store of a phase is
//      visible to other threads before any store of the next phase; inside a
//      phase the stores have no order (kStrict writes neighbouring stores of a
//      phase with one pwrite). A protocol that needs A before B puts them in
//      two phases; `between_phases` runs between two phases (a barrier).
//   2. Before each store, the bytes at its address are compared with
//      `expected`; any difference stops the batch with kUnexpectedBytes (the
//      message names the address and both byte strings). Nothing is written
//      over bytes padhook does not expect.
//   3. A store of 1, 2, 4 or 8 bytes at an address aligned to its size is one
//      store in kFast mode: a concurrent reader sees the old or the new value,
//      never a mix. (kStrict goes through the kernel's copy, which gives no such
//      promise; protocols that need it must not depend on it: see metadata.cc.)
//   4. After each store the bytes are read back and compared.
//   5. All or nothing: when a store fails, the stores already done in this
//      batch are undone in reverse order (each verified, as above; a byte is
//      only put back if it still holds what padhook stored), with
//      `between_phases` run between the undone phases, before Apply returns
//      the error.
//   6. Bytes no store names keep their values. kStrict writes the bytes
//      BETWEEN the stores of one pwrite back with the values it read just
//      before (as protocol A's 8-byte store does with the 3 bytes after a
//      site): another writer changing them in that instant would be undone.
//      padhook's own writes are serialized; it assumes no other tool writes
//      the code it patches while a batch runs.
//
// Modes:
//   kFast   For each run of pages touched by the batch: mprotect(prot | WRITE)
//           once, write, restore the original protections (queried from the
//           kernel: PROCMAP_QUERY, else /proc/self/maps) when the batch ends,
//           on every path (RAII). Runs in one mapping at most 16 pages apart
//           share one mprotect. Execute permission is never dropped (a thread
//           running on the page would fault), so during the window the pages
//           are writable AND executable. A store is a load, a compare, a store
//           and a load (guarantees 2..4); an mprotect pair costs 2.5-6 us.
//   kStrict Never changes a protection: stores are written with pwrite() to
//           /proc/self/mem, which the kernel performs through its own mapping
//           of the page (copy-on-write honoured); the stores of one phase that
//           lie less than 2 KiB apart share one pwrite (a kernel write costs
//           ~1.5 us on top of ~1 us per page). No mapping is ever writable and
//           executable; works under PR_SET_MDWE. Bytes are read (verified)
//           with plain loads, after the kernel confirmed every touched page is
//           mapped and readable.
//
// The default mode is kFast, or the value of PADHOOK_WRITE_MODE ("fast" or
// "strict") in the environment when the process-wide writer is first used;
// PADHOOK_STRICT_WX=1 also asks for kStrict (=0 for kFast). With neither set,
// a process under PR_SET_MDWE (where kFast cannot work) gets kStrict.
//
// Thread safety: Apply, Prepare/Commit and set_mode are serialized by an
// internal mutex; two batches never interleave.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "padhook/status.h"

namespace padhook {

enum class WriteMode { kFast, kStrict };

const char* WriteModeName(WriteMode mode) noexcept;

struct CodeWrite {
  static constexpr size_t kMaxBytes = 16;
  uintptr_t address = 0;
  uint8_t size = 0;  // 1..kMaxBytes
  uint8_t expected[kMaxBytes] = {};
  uint8_t replacement[kMaxBytes] = {};

  // Builds a write; `expected` and `replacement` must have the same size.
  static CodeWrite Make(uintptr_t address, std::span<const uint8_t> expected,
                        std::span<const uint8_t> replacement);
};

// One store of `size` (1..8) bytes at `address`: the bytes expected there and
// the bytes to put there, in memory order in the low `size` bytes of each
// word (x86-64 is little-endian: byte i of memory is bits 8i..8i+7).
// A size of 0 is no store: a source may leave a place of its phase empty.
struct CodeStore {
  uintptr_t address = 0;
  uint64_t expected = 0;
  uint64_t replacement = 0;
  uint32_t size = 0;
};

// The pages a batch may write, declared while the batch is planned. Adding
// addresses in ascending order costs a compare each; any order works.
class PageSet {
 public:
  void Add(uintptr_t address, size_t size) {
    if (address >= last_first_ && address + size <= last_end_) return;  // the last range has it
    AddRange(address, size);
  }
  bool empty() const noexcept { return ranges_.empty(); }
  // Sorted page ranges [first, end), merged where they touch.
  const std::vector<std::pair<uintptr_t, uintptr_t>>& Ranges() const;

 private:
  void AddRange(uintptr_t address, size_t size);
  mutable std::vector<std::pair<uintptr_t, uintptr_t>> ranges_;
  mutable bool sorted_ = true;
  uintptr_t last_first_ = 1, last_end_ = 0;  // ranges_.back() (empty: nothing matches)
};

// The stores of a batch, in phases (guarantee 1), produced on demand so that
// a batch of 100,000 stores needs no list of them. Fill must give the same
// stores every time it is asked: the writer asks again to undo them.
class StoreSource {
 public:
  virtual ~StoreSource() = default;
  virtual size_t phase_count() const = 0;
  virtual size_t phase_size(size_t phase) const = 0;
  // Writes stores [first, first + count) of `phase` to out[0, count).
  virtual void Fill(size_t phase, size_t first, size_t count, CodeStore* out) const = 0;
};

// A list of stores in phases, with its pages: the general StoreSource.
class CodeBatch final : public StoreSource {
 public:
  void Reserve(size_t stores) { stores_.reserve(stores); }
  // Adds a store to the current phase (size 1..8; the bytes are copied).
  void Add(uintptr_t address, const void* expected, const void* replacement, size_t size);
  void Add(const CodeStore& store);
  // Closes the current phase: stores added later are made after every store
  // added so far. Does nothing when the current phase is empty.
  void EndPhase();

  bool empty() const noexcept { return stores_.empty(); }
  size_t size() const noexcept { return stores_.size(); }
  std::span<const CodeStore> stores() const noexcept { return stores_; }
  const PageSet& pages() const noexcept { return pages_; }

  size_t phase_count() const override;
  size_t phase_size(size_t phase) const override;
  void Fill(size_t phase, size_t first, size_t count, CodeStore* out) const override;

 private:
  size_t PhaseBegin(size_t p) const noexcept { return p == 0 ? 0 : phase_ends_[p - 1]; }
  std::vector<CodeStore> stores_;
  std::vector<size_t> phase_ends_;  // ends of the closed phases
  PageSet pages_;
};

class TextWriter {
 public:
  // The writer of this process.
  static TextWriter& Process();

  WriteMode mode() const;
  void set_mode(WriteMode mode);

  // The general form: each write is its own phase (guarantee 1: in order).
  Status Apply(std::span<const CodeWrite> writes);
  // The batched forms. `between_phases` (may be null) runs after each phase
  // but the last, and between the undone phases of a rollback; it must not
  // use the TextWriter. Every store must lie inside `pages` (checked: a store
  // outside fails the batch with kInvalidArgument).
  Status Apply(const CodeBatch& batch, void (*between_phases)() = nullptr);
  Status Apply(const StoreSource& source, const PageSet& pages, void (*between_phases)() = nullptr);

  // The same guarantees, split for callers that write while other threads
  // are stopped (and may hold the malloc lock): Prepare does everything that
  // allocates or may block (makes pages writable, opens /proc/self/mem) and
  // holds the writer's lock; Commit allocates nothing (nor may the source's
  // Fill). `source` must outlive the Prepared.
  class Prepared {
   public:
    ~Prepared();  // restores page protections, releases the writer
    Prepared(const Prepared&) = delete;
    Prepared& operator=(const Prepared&) = delete;
    // Applies the batch (all or nothing); false on failure. Describe() then
    // builds the message (after the threads run again: it allocates).
    bool Commit() noexcept;
    Status Describe() const;

   private:
    friend class TextWriter;
    explicit Prepared(TextWriter* writer);
    TextWriter* writer_;
    std::unique_lock<std::mutex> lock_;
    const StoreSource* source_ = nullptr;
    struct State;
    std::unique_ptr<State> state_;
  };
  Result<std::unique_ptr<Prepared>> Prepare(const StoreSource& source, const PageSet& pages);

  // Counters since process start, for tests and benchmarks.
  struct Stats {
    uint64_t batches = 0;
    uint64_t writes = 0;              // stores made (undo stores included)
    uint64_t protection_changes = 0;  // mprotect calls (kFast)
    uint64_t proc_mem_writes = 0;     // pwrite calls (kStrict)
    uint64_t rollbacks = 0;           // batches undone
  };
  Stats stats() const;

 private:
  TextWriter();
  struct Failure;
  class Window;
  // Guarantees 1..5 for a batch whose pages are ready (Window). Allocates
  // nothing; on failure fills *failure.
  bool RunLocked(const StoreSource& source, const Window& window, void (*between_phases)(),
                 Failure* failure) noexcept;
  bool RunPhaseFast(const StoreSource& source, const Window& window, size_t phase, size_t* stored,
                    Failure* failure) noexcept;
  bool RunPhaseStrict(const StoreSource& source, const Window& window, size_t phase, size_t* stored,
                      Failure* failure) noexcept;
  void RollbackLocked(const StoreSource& source, size_t phase, size_t stored,
                      void (*between_phases)(), Failure* failure) noexcept;
  bool StoreOneLocked(uintptr_t address, uint64_t value, uint32_t size) noexcept;
  bool FlushChunkLocked(uintptr_t low, size_t length, Failure* failure) noexcept;
  Status OpenProcMemLocked();
  Status ApplyLocked(const StoreSource& source, const PageSet& pages, void (*between_phases)());

  mutable std::mutex mutex_;  // guards everything below
  WriteMode mode_;
  int proc_mem_fd_ = -1;   // /proc/self/mem, opened on first strict write
  int proc_mem_pid_ = 0;   // the process that opened it (reopened after fork)
  std::vector<uint8_t> chunk_;  // kStrict: the bytes of one pwrite
  Stats stats_;
};

}  // namespace padhook
