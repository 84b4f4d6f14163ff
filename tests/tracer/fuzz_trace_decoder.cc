// A libFuzzer target for the events-file decoder: the header check, the
// event decoder and the exit matcher on arbitrary bytes. Built with
// -fsanitize=fuzzer,address,undefined by clang (tests/tracer/CMakeLists.txt);
// with other compilers, fuzz_driver.cc runs it over the files named on its
// command line, so the target always builds and its seeds always run.
#include <cstddef>
#include <cstdint>
#include <span>

#include "trace_reader.h"

namespace {

struct CheckingSink {
  uint64_t entered = 0, left = 0, depth_sum = 0;
  void Enter(const padhook::trace::OpenCall& call, size_t depth) {
    ++entered;
    depth_sum += depth;
    if (call.function >= padhook::trace::kFunctionIdLimit) __builtin_trap();
  }
  void Leave(const padhook::trace::OpenCall& call, size_t depth, uint64_t end,
             padhook::trace::CallEnd, bool) {
    ++left;
    depth_sum += depth + (end - call.entry) + call.child_time;
  }
  void ExitWithoutEntry(uint32_t, uint64_t, bool) {}
  void Lost(uint64_t count, uint64_t, size_t) { depth_sum += count; }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static padhook::trace::OpenCounts open;  // all zero again after each MatchCalls
  const std::span<const uint8_t> bytes(data, size);
  padhook::trace::EventHeader header;
  const bool valid = !padhook::trace::ParseEventHeader(bytes, "fuzz", &header).has_value();
  // The decoder must be safe on any bytes, whether or not the header is valid.
  padhook::trace::EventDecoder decoder(bytes, valid ? header.base_time : 0, "fuzz");
  CheckingSink sink;
  const padhook::trace::MatchCounts counts = padhook::trace::MatchCalls(decoder, sink, open);
  if (sink.entered != sink.left || counts.calls != sink.left) __builtin_trap();
  if (decoder.offset() > size && size >= padhook::trace::kHeaderSize) __builtin_trap();
  return 0;
}
