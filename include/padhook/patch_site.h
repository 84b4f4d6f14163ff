// padhook/patch_site.h — what padhook found at a function's entry, in ISA-neutral terms.
//
// Defines:
//   padhook::SiteKind   what the patchable entry holds (one NOP, a run of NOPs, ...)
//   padhook::SlotState  what the metadata slot in the padding before the entry holds
//   padhook::PatchSite  the classified layout of one function's patch area
//
// A function built with `padhook flags` looks like this (x86-64, see docs/layout.md):
//
//   patch area ─┬─ padding (prefix_size bytes) ──┬─ entry ─┬─ landing pad ─┬─ site ─┬─ body
//               │  ... [metadata slot: 5 bytes] │         │ (endbr64)     │ NOP(s) │
//
// The metadata slot is always the last kMetaSlotSize bytes before the entry.
#pragma once

#include <cstddef>
#include <cstdint>

namespace padhook {

enum class SiteKind : uint8_t {
  kSingleNop,   // one multi-byte NOP (clang): safe to toggle under running threads
  kNopRun,      // a run of 1-byte NOPs (GCC): threads can be stopped inside it
  kPatched,     // already holds a padhook call (only seen in a process padhook patched)
  kUnexpected,  // anything else: another tool's patch, a uprobe's int3, or no NOPs at all
};

enum class SlotState : uint8_t {
  kEmpty,       // padding NOPs: free for padhook's metadata
  kIndex,       // holds padhook's metadata index
  kTooSmall,    // the padding before the entry is smaller than the slot
  kUnexpected,  // the padding holds bytes padhook did not write
};

struct PatchSite {
  uint8_t prefix_size = 0;   // padding bytes before the entry (M of -fpatchable-function-entry=N,M)
  uint8_t landing_pad = 0;   // bytes of landing pad at the entry (endbr64: 4), 0 if none
  uint8_t site_size = 0;     // patchable bytes after the landing pad (N - M)
  SiteKind kind = SiteKind::kUnexpected;
  SlotState slot = SlotState::kUnexpected;
  bool site_in_one_word = false;  // the site lies in one aligned 8-byte word: atomic toggle
  // The site's bytes as the compiler emitted them (site_size of them, at most
  // 8), so that unpatching restores exactly what was there.
  uint8_t original[8] = {};

  // True when padhook can keep metadata for this function and patch its entry.
  bool usable() const noexcept {
    return (kind == SiteKind::kSingleNop || kind == SiteKind::kNopRun ||
            kind == SiteKind::kPatched) &&
           (slot == SlotState::kEmpty || slot == SlotState::kIndex);
  }
};

// Stable short names, used in `padhook list` and its JSON: "single-nop", "nop-run", ...
const char* SiteKindName(SiteKind kind) noexcept;
const char* SlotStateName(SlotState state) noexcept;

}  // namespace padhook
