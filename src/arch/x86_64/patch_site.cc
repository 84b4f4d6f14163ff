// x86-64 half of the arch contract: layout, flags, patch-area classification,
// metadata-slot encoding. See docs/layout.md for the byte diagrams.
#include <algorithm>
#include <cstdio>
#include <cstring>

#include "arch.h"

namespace padhook::arch {
namespace {

constexpr uint8_t kNop1 = 0x90;                           // nop
constexpr uint8_t kEndbr64[] = {0xF3, 0x0F, 0x1E, 0xFA};  // endbr64
constexpr uint8_t kNop5Prefix[] = {0x0F, 0x1F, 0x44, 0x00};  // nopl disp8(%rax,%rax,1)

bool StartsWith(std::span<const uint8_t> bytes, std::span<const uint8_t> prefix) {
  return bytes.size() >= prefix.size() && std::memcmp(bytes.data(), prefix.data(), prefix.size()) == 0;
}

}  // namespace

// The slot is the last 5 bytes before the entry and its imm32 must be 4-byte
// aligned; the entry NOP must lie in one aligned 8-byte word so that it can be
// toggled by one atomic store. With the patch area 16-byte aligned (A):
//   plain:   A+3: B8, A+4..A+7 imm32, A+8 entry = site (A+8..A+12, word A+8)
//   endbr64: A+7: B8, A+8..A+11 imm32, A+12 entry endbr64, site A+16..A+20 (word A+16)
Layout RecommendedLayout(bool landing_pads) {
  return landing_pads ? Layout{17, 12, 16} : Layout{13, 8, 16};
}

std::vector<std::string> CompilerFlags(Compiler compiler, bool landing_pads) {
  const Layout layout = RecommendedLayout(landing_pads);
  std::vector<std::string> flags;
  flags.push_back("-fpatchable-function-entry=" + std::to_string(layout.total_nops) + "," +
                  std::to_string(layout.nops_before_entry));
  // -O0 does not align functions at all, and GCC's default alignment at -O2
  // may skip it; the layout above needs the patch area on a 16-byte boundary.
  flags.push_back("-falign-functions=" + std::to_string(layout.function_alignment));
  if (landing_pads) flags.push_back("-fcf-protection=full");
  (void)compiler;  // both compilers take the same flags on x86-64
  return flags;
}

PatchSite ClassifyPatchArea(std::span<const uint8_t> prefix, std::span<const uint8_t> entry,
                            uint64_t entry_address) {
  PatchSite site;
  site.prefix_size = static_cast<uint8_t>(prefix.size() > 255 ? 255 : prefix.size());
  if (StartsWith(entry, kEndbr64)) site.landing_pad = sizeof(kEndbr64);
  const std::span<const uint8_t> nops = entry.subspan(std::min<size_t>(site.landing_pad, entry.size()));

  if (StartsWith(nops, kNop5Prefix) && nops.size() >= kSiteSize) {
    site.kind = SiteKind::kSingleNop;
    site.site_size = kSiteSize;
  } else {
    size_t run = 0;
    while (run < nops.size() && nops[run] == kNop1) ++run;
    site.site_size = static_cast<uint8_t>(run);
    site.kind = run >= kSiteSize ? SiteKind::kNopRun : SiteKind::kUnexpected;
  }
  std::copy_n(nops.begin(), std::min<size_t>({nops.size(), site.site_size, sizeof(site.original)}),
              site.original);
  const uint64_t site_address = entry_address + site.landing_pad;
  site.site_in_one_word = (site_address % 8) + kSiteSize <= 8;

  if (prefix.size() < kMetaSlotSize) {
    site.slot = SlotState::kTooSmall;
    return site;
  }
  const auto slot = prefix.subspan(prefix.size() - kMetaSlotSize);
  bool padding_clean = true;  // bytes before the slot are never written by padhook
  for (size_t i = 0; i + kMetaSlotSize < prefix.size(); ++i) padding_clean &= prefix[i] == kNop1;
  uint32_t index;
  if (!padding_clean) {
    site.slot = SlotState::kUnexpected;
  } else if (std::all_of(slot.begin(), slot.end(), [](uint8_t b) { return b == kNop1; })) {
    site.slot = SlotState::kEmpty;
  } else if (DecodeMetaSlot(std::span<const uint8_t, kMetaSlotSize>(slot.data(), kMetaSlotSize), &index)) {
    site.slot = SlotState::kIndex;
  } else {
    site.slot = SlotState::kUnexpected;
  }
  return site;
}

std::string DescribeSite(const PatchSite& site) {
  std::string s = site.landing_pad ? "endbr64, " : "";
  switch (site.kind) {
    case SiteKind::kSingleNop: s += "clang 5-byte NOP"; break;
    case SiteKind::kNopRun: s += "GCC 1-byte NOP run (" + std::to_string(site.site_size) + ")"; break;
    case SiteKind::kPatched: s += "padhook call"; break;
    case SiteKind::kUnexpected: s += "unexpected bytes at entry"; break;
  }
  switch (site.slot) {
    case SlotState::kEmpty: break;
    case SlotState::kIndex: s += ", metadata index in padding"; break;
    case SlotState::kTooSmall:
      s += ", padding too small for metadata (" + std::to_string(site.prefix_size) + " < 5 bytes)";
      break;
    case SlotState::kUnexpected: s += ", unexpected bytes in padding"; break;
  }
  return s;
}

void EncodeEmptyMetaSlot(std::span<uint8_t, kMetaSlotSize> out) {
  std::fill(out.begin(), out.end(), kNop1);
}

void EncodeMetaSlot(uint32_t index, std::span<uint8_t, kMetaSlotSize> out) {
  out[0] = kMovEaxImm32;
  std::memcpy(out.data() + 1, &index, sizeof(index));  // x86-64 is little-endian
}

bool DecodeMetaSlot(std::span<const uint8_t, kMetaSlotSize> slot, uint32_t* index) {
  if (slot[0] != kMovEaxImm32) return false;
  std::memcpy(index, slot.data() + 1, sizeof(*index));
  return true;
}

}  // namespace padhook::arch
