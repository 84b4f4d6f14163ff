// src/tracer/trace_format.h — constants of the trace format (docs/trace-format.md).
//
// Shared by the writer (libpadhook-trace.so) and `padhook record`. The
// format document is the authority; this header only names its numbers.
#pragma once

#include <cstdint>

namespace padhook::trace {

inline constexpr char kEventMagic[8] = {'P', 'H', 'E', 'V', 'E', 'N', 'T', '1'};
inline constexpr uint32_t kEventVersion = 1;
inline constexpr uint32_t kHeaderSize = 64;
inline constexpr uint64_t kFlagClosed = 1;

// The 64-byte header of a `<key>-<tid>.events` file.
struct EventHeader {
  char magic[8];
  uint32_t version;
  uint32_t header_size;
  uint32_t pid;
  uint32_t tid;
  uint64_t base_ns;
  uint64_t events_lost;  // updated by the writing thread as it drops
  uint64_t flags;        // kFlagClosed
  char thread_name[16];
};
static_assert(sizeof(EventHeader) == kHeaderSize);

// Event word: bits 0-1 kind, 2-23 function id, 24-63 delta ns.
inline constexpr uint64_t kKindSpecial = 0;
inline constexpr uint64_t kKindEntry = 1;
inline constexpr uint64_t kKindExit = 2;
inline constexpr uint64_t kKindUnwound = 3;
inline constexpr unsigned kIdShift = 2;
inline constexpr unsigned kDeltaShift = 24;
inline constexpr uint64_t kMaxDelta = (1ull << 40) - 1;
inline constexpr uint64_t kMaxFunctionId = (1ull << 22) - 1;

// Special words (kind 0): sub-kind in bits 2-9, payload in bits 24-63.
inline constexpr uint64_t kSpecialTime = 1;  // the next word is an absolute time in ns
inline constexpr uint64_t kSpecialLost = 2;  // payload: events dropped here

constexpr uint64_t SpecialWord(uint64_t sub_kind, uint64_t payload) {
  return kKindSpecial | sub_kind << 2 | payload << kDeltaShift;
}

}  // namespace padhook::trace
