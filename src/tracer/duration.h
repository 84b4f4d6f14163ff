// src/tracer/duration.h — the duration syntax of `padhook record
// --min-duration` and PADHOOK_TRACE_MIN_DURATION, parsed by the launcher
// (tools/padhook/record.cc, to reject bad input early) and by the runtime
// (runtime.cc, which reads the environment variable, also when set by hand).
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace padhook::tracer {

// "10us", "2ms", "1.5s", "500ns", "1500" (ns) -> ns. False when malformed or
// negative.
inline bool ParseDuration(const char* text, uint64_t* ns) {
  char* end = nullptr;
  errno = 0;
  const double value = strtod(text, &end);
  if (end == text || errno != 0 || value < 0) return false;
  const std::string_view unit(end);
  double scale;
  if (unit.empty() || unit == "ns") {
    scale = 1;
  } else if (unit == "us") {
    scale = 1e3;
  } else if (unit == "ms") {
    scale = 1e6;
  } else if (unit == "s") {
    scale = 1e9;
  } else {
    return false;
  }
  *ns = static_cast<uint64_t>(value * scale + 0.5);
  return true;
}

}  // namespace padhook::tracer
