// padhook/text_writer.h — the one component that writes into code pages.
//
// Defines:
//   padhook::WriteMode   kFast (temporarily writable pages) or kStrict (W^X)
//   padhook::CodeWrite   one write: address, the bytes expected there, the bytes to put
//   padhook::TextWriter  applies a batch of CodeWrites, all or nothing
//
// Every byte padhook changes in a module's text (metadata slots, entry sites)
// goes through TextWriter::Apply. The caller's patch protocol decides the
// ORDER of writes; the writer guarantees:
//
//   1. Writes happen in the order given.
//   2. Before each write, the bytes at its address are compared with
//      `expected`; any difference stops the batch with kUnexpectedBytes (the
//      message names the address and both byte strings). Nothing is written
//      over bytes padhook does not expect.
//   3. A write of 1, 2, 4 or 8 bytes at an address aligned to its size is one
//      store in kFast mode: a concurrent reader sees the old or the new value,
//      never a mix. (kStrict goes through the kernel's copy, which gives no such
//      promise; protocols that need it must not depend on it: see metadata.cc.)
//   4. After each write the bytes are read back and compared.
//   5. All or nothing: when a write fails, the writes already done in this batch
//      are undone in reverse order (each verified, as above) before Apply
//      returns the error.
//
// Modes:
//   kFast   For each run of pages touched by the batch: mprotect(prot | WRITE)
//           once, write, restore the original protections (read from
//           /proc/self/maps) when the batch ends, on every path (RAII). Execute
//           permission is never dropped (a thread running on the page would
//           fault), so during the window the pages are writable AND executable.
//   kStrict Never changes a protection: each write is a pwrite() to
//           /proc/self/mem, which the kernel performs through its own mapping
//           of the page (copy-on-write honoured). No mapping is ever writable and
//           executable; works under PR_SET_MDWE. ~1.4 us per write.
//
// The default mode is kFast, or the value of PADHOOK_WRITE_MODE ("fast" or
// "strict") in the environment when the process-wide writer is first used.
//
// Thread safety: Apply and set_mode are serialized by an internal mutex; two
// batches never interleave.
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

class TextWriter {
 public:
  // The writer of this process.
  static TextWriter& Process();

  WriteMode mode() const;
  void set_mode(WriteMode mode);

  Status Apply(std::span<const CodeWrite> writes);

  // The same guarantees, split for callers that write while other threads
  // are stopped (and may hold the malloc lock): Prepare does everything that
  // allocates or may block (copies the batch, makes pages writable, opens
  // /proc/self/mem) and holds the writer's lock; Commit allocates nothing.
  class Prepared {
   public:
    ~Prepared();  // restores page protections, releases the writer
    Prepared(const Prepared&) = delete;
    Prepared& operator=(const Prepared&) = delete;
    // Applies the batch (all or nothing). On failure, the index of the write
    // that failed; Describe() then builds the message (after the threads run).
    bool Commit(size_t* failed_index) noexcept;
    Status Describe(size_t failed_index) const;

   private:
    friend class TextWriter;
    explicit Prepared(TextWriter* writer);
    struct Window;
    TextWriter* writer_;
    std::unique_lock<std::mutex> lock_;
    std::vector<CodeWrite> writes_;
    std::unique_ptr<Window> window_;
  };
  Result<std::unique_ptr<Prepared>> Prepare(std::span<const CodeWrite> writes);

  // Counters since process start, for tests and benchmarks.
  struct Stats {
    uint64_t batches = 0;
    uint64_t writes = 0;
    uint64_t protection_changes = 0;  // mprotect calls (kFast)
    uint64_t proc_mem_writes = 0;     // pwrite calls (kStrict)
    uint64_t rollbacks = 0;           // batches undone
  };
  Stats stats() const;

 private:
  TextWriter();
  Status ApplyLocked(std::span<const CodeWrite> writes);
  Status WriteOne(const CodeWrite& w, bool forward, bool* stored);
  // WriteOne without building messages (no allocation): false on failure.
  bool WriteOneQuiet(const CodeWrite& w, bool forward, bool* stored) noexcept;
  Status ReadLocked(uintptr_t address, uint8_t* out, size_t size);
  Status OpenProcMemLocked();

  mutable std::mutex mutex_;  // guards everything below
  WriteMode mode_;
  int proc_mem_fd_ = -1;   // /proc/self/mem, opened on first strict write
  int proc_mem_pid_ = 0;   // the process that opened it (reopened after fork)
  Stats stats_;
};

}  // namespace padhook
