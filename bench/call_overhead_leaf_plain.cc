// The same tiny leaf built WITHOUT padhook's flags: state (a) of
// bench/call_overhead_benchmark.cc, the floor every other state is compared to.
extern "C" __attribute__((noinline)) int leaf_plain(int x) { return x + 1; }
