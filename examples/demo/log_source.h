// Deterministic synthetic web-service logs: one "key=value ..." line per event,
// with a small share of malformed lines to exercise the error paths.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace demo {

std::vector<std::string> GenerateLog(size_t lines, uint64_t seed);

}  // namespace demo
