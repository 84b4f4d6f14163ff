// padhook-demo: a small multi-threaded log-analysis program for padhook to
// trace. It generates synthetic service logs, parses them (a tokenizer and a
// recursive-descent query language), indexes message terms in hash maps,
// sorts with a recursive quicksort, and prints a summary and a checksum of the
// full JSON report. The output depends on the options, never on timing or on
// the number of threads.
//
//   padhook-demo [--lines N] [--threads T] [--iterations I] [--seed S] [--json]
#include <cstdio>
#include <cstring>
#include <string>

#include "demo_util.h"
#include "pipeline.h"

namespace {

void Usage(FILE* out) {
  std::fprintf(out,
               "usage: padhook-demo [--lines N] [--threads T] [--iterations I] [--seed S] [--json]\n"
               "  --lines N       log lines per iteration (default 20000)\n"
               "  --threads T     worker threads (default 4; does not change the output)\n"
               "  --iterations I  independent log batches (default 1)\n"
               "  --seed S        random seed (default 1)\n"
               "  --json          print the full JSON report instead of the summary\n");
}

// Parses a numeric option value with the utility library; its NumberError is
// reported as a usage error.
uint64_t OptionValue(const char* option, const char* value, uint64_t min, uint64_t max) {
  if (value == nullptr) throw std::runtime_error(std::string(option) + " needs a value");
  const int64_t n = demo_util::ParseInt(value);
  if (n < static_cast<int64_t>(min) || static_cast<uint64_t>(n) > max)
    throw std::runtime_error(std::string(option) + " must be in " + std::to_string(min) + ".." + std::to_string(max));
  return static_cast<uint64_t>(n);
}

// A few members of the report, one line each, in compact JSON.
void PrintSummary(const demo::Json& report) {
  for (const char* key : {"lines", "parsed", "malformed", "distinct_terms", "top_terms", "statuses",
                          "slowest_service", "first_errors"}) {
    const demo::Json* value = report.Find(key);
    std::printf("%-16s %s\n", key, value ? value->Dump(0).c_str() : "-");
  }
  if (const demo::Json* queries = report.Find("queries"); queries && queries->Items()) {
    for (const demo::Json& query : *queries->Items()) std::printf("%-16s %s\n", "query", query.Dump(0).c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  demo::Options options;
  bool json = false;
  try {
    for (int i = 1; i < argc; ++i) {
      const char* arg = argv[i];
      const char* next = i + 1 < argc ? argv[i + 1] : nullptr;
      if (!std::strcmp(arg, "--lines")) options.lines = OptionValue(arg, next, 1, 10'000'000), ++i;
      else if (!std::strcmp(arg, "--threads")) options.threads = static_cast<unsigned>(OptionValue(arg, next, 1, 256)), ++i;
      else if (!std::strcmp(arg, "--iterations")) options.iterations = static_cast<unsigned>(OptionValue(arg, next, 1, 100'000)), ++i;
      else if (!std::strcmp(arg, "--seed")) options.seed = OptionValue(arg, next, 0, INT64_MAX), ++i;
      else if (!std::strcmp(arg, "--json")) json = true;
      else if (!std::strcmp(arg, "--help") || !std::strcmp(arg, "-h")) return Usage(stdout), 0;
      else throw std::runtime_error(std::string("unknown option '") + arg + "'");
    }
  } catch (const std::exception& e) {  // NumberError from the library, or ours
    std::fprintf(stderr, "padhook-demo: %s\n", e.what());
    Usage(stderr);
    return 2;
  }

  const demo::Json report = demo::RunPipeline(options);
  const std::string compact = report.Dump(0);
  demo_util::Checksum checksum;
  checksum.Add(compact);

  if (json) std::printf("%s\n", report.Dump(2).c_str());
  else PrintSummary(report);
  std::printf("%-16s %s\n", "checksum", checksum.Hex().c_str());
  return 0;
}
