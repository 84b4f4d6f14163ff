#include "padhook/patch_site.h"

namespace padhook {

const char* SiteKindName(SiteKind kind) noexcept {
  switch (kind) {
    case SiteKind::kSingleNop: return "single-nop";
    case SiteKind::kNopRun: return "nop-run";
    case SiteKind::kPatched: return "patched";
    case SiteKind::kUnexpected: return "unexpected";
  }
  return "unknown";
}

const char* SlotStateName(SlotState state) noexcept {
  switch (state) {
    case SlotState::kEmpty: return "empty";
    case SlotState::kIndex: return "index";
    case SlotState::kTooSmall: return "too-small";
    case SlotState::kUnexpected: return "unexpected";
  }
  return "unknown";
}

}  // namespace padhook
