// tests/tracer/trace_plugin.cc — a library trace_target dlopen()s: its
// functions must be attached when it is loaded.
#define TRACED extern "C" __attribute__((noinline))

namespace {
volatile int g_sink;
}

TRACED int plugin_helper(int x) {
  g_sink = g_sink + x;
  return x * 2;
}

TRACED int plugin_function(int x) {
  const int r = plugin_helper(x) + 1;
  g_sink = g_sink + 1;
  return r;
}
