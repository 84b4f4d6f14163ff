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

#include <cstdint>
#include <cstring>

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

}  // namespace padhook::arch
