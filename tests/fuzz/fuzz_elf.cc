// libFuzzer target: padhook's ELF reader and patch-site classifier on
// arbitrary bytes.
//
// Each input is used twice:
//   1. written to a memfd and loaded with LoadModuleFromFile (through
//      /proc/self/fd/N, the path a user would give `padhook list`): it must
//      return a Status or a module whose function list is consistent (sorted
//      by entry, no repeats, every function's patch area inside the module,
//      names present, the unusable count matching);
//   2. split into a padding prefix and entry bytes for ClassifyPatchArea,
//      whose answer must be self-consistent (sizes within what it was given,
//      a landing pad of 0 or 4 bytes, "usable" only for the kinds padhook
//      can patch).
// A violated invariant aborts (a finding); so does any sanitizer report.
//
// Run by hand (clang build, see tests/fuzz/README.md):
//   build/clang/tests/fuzz/fuzz_elf -max_total_time=3600 /tmp/corpus tests/fuzz/corpus
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>

#include "arch.h"
#include "padhook/function_table.h"

namespace {

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz_elf: invariant violated: %s\n", what);
    std::abort();
  }
}

void CheckModule(const padhook::Module& m) {
  size_t unusable = 0, by_layout = 0;
  for (size_t i = 0; i < m.functions.size(); ++i) {
    const padhook::Function& f = m.functions[i];
    if (i > 0) Check(m.functions[i - 1].entry < f.entry, "functions sorted by entry, no repeats");
    Check(!f.name.empty(), "every function has a name");
    Check(f.module == &m, "a function points at its module");
    Check(f.patch_area == f.entry - f.site.prefix_size, "patch area = entry - prefix");
    Check(m.FindByEntry(f.entry) == &f, "FindByEntry finds the function");
    if (!f.site.usable()) ++unusable;
    if (!f.from_section) ++by_layout;
    (void)padhook::arch::DescribeSite(f.site);
  }
  Check(unusable == m.unusable_sites, "unusable_sites counts the unusable functions");
  Check(by_layout == m.found_by_layout, "found_by_layout counts them");
}

void CheckClassifier(const uint8_t* data, size_t size) {
  if (size < 1) return;
  const size_t prefix = data[0] % 24;  // M of -fpatchable-function-entry=N,M
  const uint64_t address = 0x401000 + (size > 1 ? data[1] % 16 : 0);
  data += 2 > size ? size : 2;
  size -= 2 > size ? size : 2;
  const size_t p = prefix < size ? prefix : size;
  const size_t e =
      size - p < padhook::arch::kMaxEntryBytes ? size - p : padhook::arch::kMaxEntryBytes;
  const padhook::PatchSite site = padhook::arch::ClassifyPatchArea(
      std::span<const uint8_t>(data, p), std::span<const uint8_t>(data + p, e), address);
  Check(site.prefix_size <= p, "prefix_size within the prefix given");
  Check(site.landing_pad == 0 || site.landing_pad == 4, "landing pad is none or endbr64");
  Check(site.landing_pad + site.site_size <= e || !site.usable(),
        "a usable site lies within the entry bytes given");
  Check(site.site_size <= e, "site_size within the entry bytes given");
  if (site.usable()) {
    Check(site.kind == padhook::SiteKind::kSingleNop || site.kind == padhook::SiteKind::kNopRun ||
              site.kind == padhook::SiteKind::kPatched,
          "usable kinds");
  }
  (void)padhook::arch::DescribeSite(site);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const int fd = memfd_create("fuzz_elf", MFD_CLOEXEC);
  static const std::string path = "/proc/self/fd/" + std::to_string(fd);
  if (fd < 0) return 0;
  if (ftruncate(fd, 0) != 0) return 0;
  if (size > 0 && pwrite(fd, data, size, 0) != static_cast<ssize_t>(size)) return 0;
  padhook::Result<std::shared_ptr<const padhook::Module>> loaded =
      padhook::LoadModuleFromFile(path);
  if (loaded.ok()) {
    CheckModule(**loaded);
  } else {
    Check(!loaded.status().message().empty(), "an error has a message");
  }
  CheckClassifier(data, size);
  return 0;
}
