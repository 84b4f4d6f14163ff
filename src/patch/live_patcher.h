// src/patch/live_patcher.h — turns function entries into calls to the
// trampoline and back, while other threads run them. Protocols: live_patcher.cc.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "padhook/function_table.h"
#include "padhook/status.h"
#include "padhook/text_writer.h"

namespace padhook::patch {

// What a batch learned about one protocol A site, kept by a caller that will
// change the site again (attach.cc keeps one per metadata entry): the aligned
// word holding the site, unpatched and patched. A later batch given it makes
// the store from it without reading the function or encoding the call. Only
// a hint: the store is verified like any other, and a memo that no longer
// matches fails the optimistic pass (S1) and the batch is planned again.
struct SiteMemo {
  uintptr_t word = 0;      // 0: nothing known yet
  uint64_t unpatched = 0;  // the word with the site's NOP
  uint64_t patched = 0;    // the word with the site's call
};

// Changes the site of every function in one direction (to_call: NOP -> call
// the trampoline; else call -> NOP) as one batch: all or nothing. On return
// every change is visible to every thread (no CPU can still execute the old
// instruction). Sites still in the compiler's 1-byte-NOP-run form are first
// converted with every other thread stopped (protocol C), together with every
// other NOP run on their pages. A batch must not name a function twice.
// `site_pages` (optional): AddSitePages of every function's entry, when the
// caller has them at hand (it spares a pass over the functions).
// `memos` (optional): one per function, or null for a function without one;
// a memo whose word is 0 is filled in (fast mode).
// Never throws: a failed allocation is a kOutOfMemory Status, with every
// site as before the call (the batch's NOP-run conversion aside, which is
// permanent by design).
Status ChangeSites(std::span<const Function* const> functions, bool to_call,
                   const PageSet* site_pages = nullptr, std::span<SiteMemo* const> memos = {});

// Adds the pages ChangeSites may write for the function whose entry is `entry`:
// those of the 8-byte word holding its site, at the entry or after endbr64.
inline void AddSitePages(uintptr_t entry, PageSet* pages) {
  const uintptr_t first = entry & ~uintptr_t{7};
  pages->Add(first, ((entry + 4) & ~uintptr_t{7}) + 8 - first);
}

// Statistics for tests and benchmarks.
struct PatcherStats {
  uint64_t batches = 0;
  uint64_t single_store_sites = 0;    // toggled with one aligned 8-byte store
  uint64_t breakpoint_sites = 0;      // toggled with the int3 protocol
  uint64_t sync_rounds = 0;           // serializing barriers issued
  uint64_t breakpoint_hits = 0;       // threads that ran into an in-flight int3
  uint64_t stop_the_world = 0;        // NOP-run conversions (protocol C)
  uint64_t converted_sites = 0;       // NOP runs turned into one NOP
  uint64_t replanned_batches = 0;     // S1 passes that left sites to S2, or failed
  uint64_t threads_moved = 0;         // threads found inside a NOP run and moved past it
  uint64_t outer_contexts_moved = 0;  // of those, in a context a running signal handler saved
  uint64_t chained_traps = 0;         // SIGTRAPs passed on to the application's handler
  uint64_t late_traps = 0;            // int3s of a finished batch whose SIGTRAP came late
};
PatcherStats Stats();

}  // namespace padhook::patch
