// Tiny leaf functions for bench/call_overhead_benchmark.cc, built with
// padhook's flags (padhook_instrument). Each state of the benchmark uses its
// own function so that states never disturb each other:
//   leaf_fresh   never attached: the compiler's own NOPs (g++: five 1-byte NOPs)
//   leaf_cycled  attached and detached once at start-up: the canonical
//                5-byte NOP the patcher leaves behind
//   leaf_hooked  the function the clients attach to (1, 2, 10, 100 of them)
// Identical bodies; `volatile` keeps identical-code folding away.
extern "C" {
__attribute__((noinline)) int leaf_fresh(int x) { return x + 1; }
__attribute__((noinline)) int leaf_cycled(int x) { return x + 1; }
__attribute__((noinline)) int leaf_hooked(int x) { return x + 1; }
}
