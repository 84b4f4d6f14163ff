// The tiny leaf of bench/call_overhead_leaf.cc, built by clang++ with
// -fxray-instrument -fxray-instruction-threshold=1 (entry and exit sleds).
extern "C" __attribute__((noinline)) int leaf_xray(int x) { return x + 1; }
