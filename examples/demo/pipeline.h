// The log-analysis pipeline: generate log chunks, parse and index them on a
// thread pool, merge the per-chunk results in chunk order (so the output does
// not depend on the number of threads), then sort and summarize as JSON.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "json.h"

namespace demo {

struct Options {
  size_t lines = 20000;     // log lines per iteration
  unsigned threads = 4;     // worker threads
  unsigned iterations = 1;  // independent batches of `lines` lines
  uint64_t seed = 1;
};

// The queries every record is run through (one of them deliberately invalid).
const std::vector<std::string>& DefaultQueries();

// Runs the whole pipeline and returns the report.
Json RunPipeline(const Options& options);

}  // namespace demo
