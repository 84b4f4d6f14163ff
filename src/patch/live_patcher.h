// src/patch/live_patcher.h — turns function entries into calls to the
// trampoline and back, while other threads run them. Protocols: live_patcher.cc.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "padhook/function_table.h"
#include "padhook/status.h"

namespace padhook::patch {

// One site to change, in either direction.
struct SiteChange {
  const Function* function = nullptr;
  bool to_call = false;  // true: NOP -> call the trampoline; false: call -> NOP
};

// Applies all changes as one batch: all or nothing. On return every change is
// visible to every thread (no CPU can still execute the old instruction).
// Sites still in the compiler's 1-byte-NOP-run form are first converted, once
// per module, with every other thread stopped (ConvertNopRuns).
Status ChangeSites(std::span<const SiteChange> changes);

// Statistics for tests and benchmarks.
struct PatcherStats {
  uint64_t batches = 0;
  uint64_t single_store_sites = 0;  // toggled with one aligned 8-byte store
  uint64_t breakpoint_sites = 0;    // toggled with the int3 protocol
  uint64_t sync_rounds = 0;         // serializing barriers issued
  uint64_t breakpoint_hits = 0;     // threads that ran into an in-flight int3
  uint64_t stop_the_world = 0;      // NOP-run conversions (one per module)
  uint64_t threads_moved = 0;       // threads found inside a NOP run and moved past it
  uint64_t chained_traps = 0;       // SIGTRAPs passed on to the application's handler
};
PatcherStats Stats();

}  // namespace padhook::patch
