// src/format.h — formatting shared by padhook's error messages.
#pragma once

#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <string>

namespace padhook {

// "0x7f12..." for an address in a message.
inline std::string AddressText(uintptr_t address) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "0x%" PRIxPTR, address);
  return buf;
}

}  // namespace padhook
