// ip -> metadata: the padding index against the usual alternatives, over the
// same 100,000 instrumented functions.
//
//   padding      MetadataTable lookup, inlined (what padhook's hot paths use)
//   padding_call MetadataTable::Lookup through the shared library's PLT
//   hash_map     std::unordered_map<uintptr_t, MetaEntry*>
//   sorted       binary search in a sorted array of entry addresses
//
// Access patterns: `random` walks the 100,000 functions in a shuffled order
// (cache misses dominate), `hot` looks up one function again and again.
//
// Wall time: run the binary (Google Benchmark). Instructions per lookup:
//   bench/lookup_callgrind.sh BUILD_DIR
// which runs `lookup_benchmark --count <method>` under callgrind, collecting
// only inside the loop function, and divides by the number of lookups.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "metadata_inline.h"
#include "padhook/metadata.h"

extern "C" int (*many_fn_at(size_t i))(int);
extern "C" const size_t many_fn_count;

namespace {

using padhook::MetaEntry;
using padhook::MetadataTable;
using padhook::MetadataTableAccess;

struct Fixture {
  std::vector<uintptr_t> entries;    // all functions, by address
  std::vector<MetaEntry*> by_entry;  // parallel to `entries`
  std::unordered_map<uintptr_t, MetaEntry*> hash;
  std::vector<uintptr_t> random_order;

  Fixture() {
    if (!padhook::FunctionTable::Process().Refresh().ok()) std::abort();
    for (size_t i = 0; i < many_fn_count; ++i) entries.push_back(reinterpret_cast<uintptr_t>(many_fn_at(i)));
    std::sort(entries.begin(), entries.end());
    for (uintptr_t e : entries) {
      padhook::Result<MetaEntry*> got = MetadataTable::Process().Get(e);
      if (!got.ok()) {
        std::fprintf(stderr, "Get failed: %s\n", got.status().ToString().c_str());
        std::abort();
      }
      by_entry.push_back(*got);
      hash.emplace(e, *got);
    }
    random_order = entries;
    std::shuffle(random_order.begin(), random_order.end(), std::mt19937(42));
  }
};

Fixture& F() {
  static Fixture* f = new Fixture();
  return *f;
}

// Each lookup method, as a noinline loop so callgrind can count just it.
#define LOOP_ATTR __attribute__((noinline))

LOOP_ATTR uintptr_t LoopPadding(const uintptr_t* ips, size_t n) {
  uintptr_t sum = 0;
  for (size_t i = 0; i < n; ++i) sum += MetadataTableAccess::Lookup(ips[i])->index;
  return sum;
}

LOOP_ATTR uintptr_t LoopPaddingCall(const uintptr_t* ips, size_t n) {
  uintptr_t sum = 0;
  for (size_t i = 0; i < n; ++i) sum += MetadataTable::Lookup(ips[i])->index;
  return sum;
}

LOOP_ATTR uintptr_t LoopHashMap(const uintptr_t* ips, size_t n) {
  const auto& hash = F().hash;
  uintptr_t sum = 0;
  for (size_t i = 0; i < n; ++i) sum += hash.find(ips[i])->second->index;
  return sum;
}

LOOP_ATTR uintptr_t LoopSorted(const uintptr_t* ips, size_t n) {
  const auto& entries = F().entries;
  const auto& by_entry = F().by_entry;
  uintptr_t sum = 0;
  for (size_t i = 0; i < n; ++i) {
    const auto it = std::lower_bound(entries.begin(), entries.end(), ips[i]);
    sum += by_entry[it - entries.begin()]->index;
  }
  return sum;
}

using LoopFn = uintptr_t (*)(const uintptr_t*, size_t);

void Run(benchmark::State& state, LoopFn loop, bool hot) {
  const Fixture& f = F();
  std::vector<uintptr_t> hot_ips(1024, f.entries[f.entries.size() / 2]);
  const std::vector<uintptr_t>& ips = hot ? hot_ips : f.random_order;
  size_t at = 0;
  constexpr size_t kChunk = 1024;
  for (auto _ : state) {
    if (at + kChunk > ips.size()) at = 0;
    benchmark::DoNotOptimize(loop(ips.data() + at, kChunk));
    at += kChunk;
  }
  state.SetItemsProcessed(state.iterations() * kChunk);
  state.counters["ns_per_lookup"] = benchmark::Counter(
      static_cast<double>(state.iterations() * kChunk),
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

BENCHMARK_CAPTURE(Run, padding/random, LoopPadding, false);
BENCHMARK_CAPTURE(Run, padding_call/random, LoopPaddingCall, false);
BENCHMARK_CAPTURE(Run, hash_map/random, LoopHashMap, false);
BENCHMARK_CAPTURE(Run, sorted/random, LoopSorted, false);
BENCHMARK_CAPTURE(Run, padding/hot, LoopPadding, true);
BENCHMARK_CAPTURE(Run, padding_call/hot, LoopPaddingCall, true);
BENCHMARK_CAPTURE(Run, hash_map/hot, LoopHashMap, true);
BENCHMARK_CAPTURE(Run, sorted/hot, LoopSorted, true);

// --count METHOD: one pass over the 100,000 functions in random order, for
// callgrind (--toggle-collect=Loop<Method>*).
int CountMode(const std::string& method) {
  const Fixture& f = F();
  LoopFn loop = method == "padding"        ? LoopPadding
                : method == "padding_call" ? LoopPaddingCall
                : method == "hash_map"     ? LoopHashMap
                : method == "sorted"       ? LoopSorted
                                           : nullptr;
  if (loop == nullptr) {
    std::fprintf(stderr, "unknown method %s (padding, padding_call, hash_map, sorted)\n", method.c_str());
    return 2;
  }
  benchmark::DoNotOptimize(loop(f.random_order.data(), f.random_order.size()));
  std::printf("lookups %zu\n", f.random_order.size());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], "--count") == 0) return CountMode(argv[2]);
  benchmark::Initialize(&argc, argv);
  F();  // attach metadata to all functions before timing
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
