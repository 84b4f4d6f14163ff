// src/arch/x86_64/arch_impl.h — inline hot-path half of the arch contract (x86-64).
//
// The metadata slot is `mov eax, imm32` (B8 ii ii ii ii) ending at the entry:
//
//   entry-5  entry-4 .. entry-1   entry
//   B8       imm32 (index, LE)    first byte of the function
//
// The slot is never executed (it sits before the entry, after the previous
// function's last instruction); it is an instruction only so that disassemblers
// and anything that decodes the padding see something well formed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace padhook::arch {

inline constexpr uint8_t kMovEaxImm32 = 0xB8;  // mov eax, imm32

// Reads the index in the slot before `entry`. Returns false when the slot
// holds no index. Ordering: the opcode byte is loaded with acquire and the
// index after it, pairing with writers that store the index before the
// opcode (publish) and the opcode before the index (retract). A reader racing
// a retraction may read a torn index; callers validate what it names (range
// and owner), which is why this can be a plain load.
inline bool ReadMetaIndex(uintptr_t entry, uint32_t* index) noexcept {
  const auto* slot = reinterpret_cast<const uint8_t*>(entry - 5);
  if (__atomic_load_n(slot, __ATOMIC_ACQUIRE) != kMovEaxImm32) return false;
  std::memcpy(index, slot + 1, sizeof(*index));
  return true;
}

// From the return address pushed by the call at a site, the function's entry.
// A site right after endbr64 belongs to an entry 4 bytes earlier. Reading the
// 4 bytes before the site is safe: they are endbr64 or the slot's index (an
// index is below 2^22, never endbr64's encoding).
inline uintptr_t EntryFromSiteReturn(uintptr_t site_return) noexcept {
  constexpr uint32_t kEndbr64 = 0xFA1E0FF3;  // f3 0f 1e fa, little-endian
  const uintptr_t site = site_return - 5;
  uint32_t before;
  std::memcpy(&before, reinterpret_cast<const void*>(site - 4), sizeof(before));
  return before == kEndbr64 ? site - 4 : site;
}

// x86-64: a site starts, after an optional endbr64, with the 5-byte NOP's
// first byte (0F) or a 1-byte NOP (90); ordinary functions start with neither.
inline bool MayStartPatchSite(std::span<const uint8_t> entry) noexcept {
  const bool endbr64 = entry.size() >= 4 && entry[0] == 0xF3 && entry[1] == 0x0F &&
                       entry[2] == 0x1E && entry[3] == 0xFA;
  const size_t at = endbr64 ? 4 : 0;
  return entry.size() > at && (entry[at] == 0x0F || entry[at] == 0x90);
}

inline bool SiteUnderBreakpoint(std::span<const uint8_t> entry) noexcept {
  const bool endbr64 = entry.size() >= 4 && entry[0] == 0xF3 && entry[1] == 0x0F &&
                       entry[2] == 0x1E && entry[3] == 0xFA;
  const size_t at = endbr64 ? 4 : 0;
  if (entry.size() < at + 5 || entry[at] != 0xCC) return false;  // int3
  const uint8_t* rest = entry.data() + at + 1;
  const bool nop_run = rest[0] == 0x90 && rest[1] == 0x90 && rest[2] == 0x90 && rest[3] == 0x90;
  const bool nop5 = rest[0] == 0x1F && rest[1] == 0x44 && rest[2] == 0x00;  // 0F 1F 44 00 xx
  return nop_run || nop5;
}

inline bool MayStartPatchSiteAt(const uint8_t* entry, size_t available) noexcept {
  auto at = [entry](size_t i) { return __atomic_load_n(entry + i, __ATOMIC_RELAXED); };
  if (available == 0) return false;
  const uint8_t first = at(0);
  if (first == 0x0F || first == 0x90) return true;
  if (first != 0xF3 || available < 5) return false;  // no site, or no room for endbr64 and one
  return at(1) == 0x0F && at(2) == 0x1E && at(3) == 0xFA && (at(4) == 0x0F || at(4) == 0x90);
}

inline bool MayBeSiteUnderBreakpointAt(const uint8_t* entry, size_t available) noexcept {
  auto at = [entry](size_t i) { return __atomic_load_n(entry + i, __ATOMIC_RELAXED); };
  if (available == 0) return false;
  const uint8_t first = at(0);
  if (first == 0xCC) return true;
  if (first != 0xF3 || available < 5) return false;
  return at(1) == 0x0F && at(2) == 0x1E && at(3) == 0xFA && at(4) == 0xCC;
}

}  // namespace padhook::arch
