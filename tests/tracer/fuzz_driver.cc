// Runs the fuzz target (fuzz_trace_decoder.cc) over the files named on the
// command line: what the build does when the compiler has no libFuzzer.
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::ifstream in(argv[i], std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "fuzz_driver: cannot read %s\n", argv[i]);
      return 1;
    }
    const std::vector<uint8_t> bytes{std::istreambuf_iterator<char>(in), {}};
    LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
    // Every prefix too: files cut anywhere (a killed writer, a short read).
    for (size_t n = 0; n < bytes.size(); n += 7) LLVMFuzzerTestOneInput(bytes.data(), n);
  }
  std::printf("fuzz_driver: %d inputs ok\n", argc - 1);
  return 0;
}
