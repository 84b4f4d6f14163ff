// The workload every peer runs (bench/peers.sh): a tiny leaf, compiled with
// each tool's flags (bench/peers/CMakeLists.txt), called in a loop by
// peer_driver.cc, which is compiled without any instrumentation flags. Same
// source, same compiler (clang++), same call loop for every row.
extern "C" __attribute__((noinline)) int peer_leaf(int x) { return x + 1; }
