#include "padhook/function_table.h"

#include <cxxabi.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <link.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <optional>

#include "arch.h"
#include "elf/elf_image.h"

namespace padhook {
namespace {

// Copies the bytes at a file virtual address into `out`; returns how many it
// could. Files are read from disk, the modules of this process from memory.
using ByteReader = std::function<size_t(uint64_t vaddr, std::span<uint8_t> out)>;

// The farthest an entry can be from its patch area (M is a byte in PatchSite).
constexpr uint64_t kMaxPrefix = 255;

std::string Demangle(const std::string& mangled) {
  if (mangled.rfind("_Z", 0) != 0) return mangled;
  int status = 0;
  std::unique_ptr<char, decltype(&std::free)> demangled(
      abi::__cxa_demangle(mangled.c_str(), nullptr, nullptr, &status), &std::free);
  return status == 0 && demangled ? std::string(demangled.get()) : mangled;
}

std::string Hex(uint64_t value) {
  char buffer[20];
  snprintf(buffer, sizeof buffer, "%llx", static_cast<unsigned long long>(value));
  return buffer;
}

std::string JoinedCompilerFlags() {
  std::string joined;
  for (const std::string& flag : arch::CompilerFlags(arch::Compiler::kGcc, false)) {
    if (!joined.empty()) joined += ' ';
    joined += flag;
  }
  return joined;
}

// Aliases share an address; prefer the name a user would type: a global
// symbol, one with a size, then the shortest name (C1 over C2 is arbitrary but
// stable).
bool BetterName(const elf::FunctionSymbol& a, const elf::FunctionSymbol& b) {
  if (a.global != b.global) return a.global;
  if ((a.size != 0) != (b.size != 0)) return a.size != 0;
  if (a.name.size() != b.name.size()) return a.name.size() < b.name.size();
  return a.name < b.name;
}

// ---- Functions found by their layout ----------------------------------------
//
// GCC 12 writes the __patchable_function_entries records of a translation unit
// into one section tied to its first function: when the linker drops that
// function (a duplicate COMDAT copy), every record of the file goes with it,
// and the link fix (cmake/padhook-gcc-entries.ld) discards the section
// altogether (docs/layout.md, "Known toolchain problems"). The functions are
// still there, with their padding: a function symbol no record covers is taken
// as instrumented when the bytes around its entry are exactly one of padhook's
// recommended layouts. The test is strict, to keep ordinary code out:
//   * the M bytes before the entry (M of a recommended layout, the largest that
//     fits) are the compiler's 1-byte padding NOPs, or NOPs and a metadata
//     slot padhook wrote (arch::ClassifyPatchArea: slot kEmpty or kIndex);
//     compilers fill the gaps between ordinary functions with multi-byte NOPs;
//   * the run is not longer than M + 1: the assembler fills a 1-byte
//     alignment gap before the patch area with a 1-byte NOP, and a 2-byte gap
//     with `66 90`, but nothing the compilers emit puts two more 1-byte NOPs
//     in front of a patch area (GCC 12 does not align cold functions, so the
//     gap may come before a patch area at any address);
//   * the entry is a patch site the compilers emit (one 5-byte NOP, or a run of
//     1-byte NOPs), after an optional landing pad; ordinary functions do not
//     start with a NOP.

// The layouts to try, largest M first (the largest M whose bytes are padding
// decides), computed once per scan.
struct LayoutPrefixes {
  std::array<uint64_t, 2> sizes;
};

LayoutPrefixes PrefixesToTry() {
  LayoutPrefixes prefixes = {{arch::RecommendedLayout(true).nops_before_entry,
                              arch::RecommendedLayout(false).nops_before_entry}};
  std::sort(prefixes.sizes.begin(), prefixes.sizes.end(), std::greater<uint64_t>());
  return prefixes;
}

// The site of the function at file address `entry` when its bytes have a
// recommended layout, or nullopt. Called for every function symbol of every
// module the pre-check above lets through (libc, libstdc++...: thousands), so
// it allocates nothing, and rejects an ordinary function on its entry bytes
// alone, with one read: whether the entry is a patch site does not depend on
// the padding (arch::ClassifyPatchArea's `kind`), and without one no layout
// is accepted.
std::optional<PatchSite> ClassifyByLayout(const ByteReader& read, uint64_t entry, uint64_t size,
                                          uintptr_t bias, const LayoutPrefixes& prefixes) {
  std::array<uint8_t, arch::kMaxEntryBytes> entry_buffer;
  const std::span<const uint8_t> entry_bytes(
      entry_buffer.data(),
      read(entry,
           std::span<uint8_t>(entry_buffer.data(), std::min<uint64_t>(size, entry_buffer.size()))));
  // A site with a breakpoint over it (a uprobe's int3) is found too, as
  // kUnexpected, when its padding has a recommended layout: then it is an
  // instrumented function another tool changed, which users must be told
  // about, not one padhook ignores.
  const bool breakpoint = arch::SiteUnderBreakpoint(entry_bytes);
  if (!breakpoint && !arch::MayStartPatchSite(entry_bytes)) return std::nullopt;  // most functions
  auto is_site = [](const PatchSite& site) {
    return site.kind == SiteKind::kSingleNop || site.kind == SiteKind::kNopRun ||
           site.kind == SiteKind::kPatched;
  };
  if (!breakpoint && !is_site(arch::ClassifyPatchArea({}, entry_bytes, bias + entry))) {
    return std::nullopt;
  }

  auto clean_padding = [](const PatchSite& site) {
    return site.slot == SlotState::kEmpty || site.slot == SlotState::kIndex;
  };
  // The largest M (255: PatchSite::prefix_size), and the two bytes before it.
  std::array<uint8_t, kMaxPrefix + 2> buffer;
  for (const uint64_t prefix_size : prefixes.sizes) {
    if (prefix_size < arch::kMetaSlotSize || prefix_size > kMaxPrefix || entry < prefix_size) {
      continue;
    }
    const std::span<uint8_t> prefix(buffer.data(), prefix_size);
    if (read(entry - prefix_size, prefix) != prefix.size()) continue;
    const PatchSite site = arch::ClassifyPatchArea(prefix, entry_bytes, bias + entry);
    if (!clean_padding(site)) continue;  // try a smaller M
    // The largest M whose bytes are padding: the entry is a site (checked
    // above; the kind does not depend on M).
    // Two more padding bytes before the area: a longer run of NOPs than any
    // layout and its alignment fill make.
    const std::span<uint8_t> longer(buffer.data(), prefix_size + 2);
    if (entry >= longer.size() && read(entry - longer.size(), longer) == longer.size() &&
        clean_padding(arch::ClassifyPatchArea(longer, entry_bytes, bias + entry))) {
      return std::nullopt;
    }
    return site;
  }
  return std::nullopt;
}

// Calls found(symbol, site) for each function whose entry (a file address)
// is not in `covered` (sorted) and whose bytes have a recommended layout,
// naming it with the best of its aliases, until found returns false.
template <typename Found>
void ForEachFunctionByLayout(const elf::ElfImage& image, const ByteReader& read, uintptr_t bias,
                             std::span<const uint64_t> covered, Found&& found) {
  const LayoutPrefixes prefixes = PrefixesToTry();
  const std::vector<elf::FunctionSymbol>& symbols = image.function_symbols();
  auto next_covered = covered.begin();  // symbols are sorted by value too: a merge walk
  for (size_t first = 0; first < symbols.size();) {
    // Aliases: every symbol at this address; name the function with the best.
    size_t last = first;
    const elf::FunctionSymbol* best = nullptr;
    for (; last < symbols.size() && symbols[last].value == symbols[first].value; ++last) {
      const elf::FunctionSymbol& symbol = symbols[last];
      if (symbol.size == 0 || !symbol.executable) continue;
      if (best == nullptr || BetterName(symbol, *best)) best = &symbol;
    }
    const uint64_t entry = symbols[first].value;
    first = last;
    if (best == nullptr) continue;
    while (next_covered != covered.end() && *next_covered < entry) ++next_covered;
    if (next_covered != covered.end() && *next_covered == entry) continue;
    const std::optional<PatchSite> site = ClassifyByLayout(read, entry, best->size, bias, prefixes);
    if (site && !found(*best, *site)) return;
  }
}

// Adds the functions no record lists whose bytes have a recommended layout.
void AddFunctionsByLayout(const elf::ElfImage& image, const ByteReader& read, Module& module) {
  std::vector<uint64_t> covered;  // file addresses of the entries the records gave
  covered.reserve(module.functions.size());
  for (const Function& function : module.functions) covered.push_back(function.entry - module.bias);
  std::sort(covered.begin(), covered.end());
  auto add = [&module](const elf::FunctionSymbol& best, const PatchSite& site) {
    Function function;
    function.entry = module.bias + best.value;  // aliases share the value
    function.patch_area = function.entry - site.prefix_size;
    function.size = best.size;
    function.mangled = std::string(best.name);
    function.name = Demangle(function.mangled);
    function.module = &module;
    function.site = site;
    function.from_section = false;
    if (!function.site.usable()) ++module.unusable_sites;
    ++module.found_by_layout;
    module.functions.push_back(std::move(function));
    return true;
  };
  ForEachFunctionByLayout(image, read, module.bias, covered, add);
}

// Fills module.functions from the patch areas the image lists and the
// functions found by their layout. The bytes come from `read` so that a
// running process's current (maybe patched) code is seen.
void AddFunctions(const elf::ElfImage& image, const ByteReader& read, Module& module) {
  const std::vector<uint64_t>& areas = image.patchable_entries();
  const std::vector<elf::FunctionSymbol>& symbols = image.function_symbols();

  // First pass: name each patch area with the nearest symbol after it that is
  // not nearer another area (a stripped static function must not take the name
  // of the next function).
  std::vector<const elf::FunctionSymbol*> named(areas.size(), nullptr);
  std::map<uint64_t, size_t> prefix_votes;
  for (size_t i = 0; i < areas.size(); ++i) {
    const uint64_t area = areas[i];
    uint64_t limit = area + kMaxPrefix;
    if (i + 1 < areas.size()) limit = std::min(limit, areas[i + 1] - 1);
    auto it = std::lower_bound(
        symbols.begin(), symbols.end(), area,
        [](const elf::FunctionSymbol& symbol, uint64_t value) { return symbol.value < value; });
    for (; it != symbols.end() && it->value <= limit; ++it) {
      if (named[i] != nullptr && it->value != named[i]->value) break;
      if (named[i] == nullptr || BetterName(*it, *named[i])) named[i] = &*it;
    }
    if (named[i] != nullptr) ++prefix_votes[named[i]->value - area];
  }
  uint64_t common_prefix = arch::RecommendedLayout(false).nops_before_entry;
  size_t best_votes = 0;
  for (const auto& [prefix, votes] : prefix_votes) {
    if (votes > best_votes) common_prefix = prefix, best_votes = votes;
  }

  module.functions.reserve(areas.size());
  for (size_t i = 0; i < areas.size(); ++i) {
    uint64_t area = areas[i];
    Function function;
    uint64_t entry = area + common_prefix;
    if (const elf::FunctionSymbol* symbol = named[i]) {
      entry = symbol->value;
      function.size = symbol->size;
      function.mangled = std::string(symbol->name);
      function.name = Demangle(function.mangled);
    } else {
      function.name = "fn_" + Hex(entry);
    }
    std::vector<uint8_t> prefix(entry - area);
    if (read(area, prefix) != prefix.size()) {
      // The padding is not all readable (a damaged file: the section points
      // past the bytes the file holds). Its last bytes, where the slot would
      // be, are missing: classify with no padding at all (slot "too small":
      // unusable), so that patch_area = entry - prefix_size still holds.
      // Found by tests/fuzz/fuzz_elf.
      prefix.clear();
      area = entry;
    }
    std::vector<uint8_t> entry_bytes(function.size != 0
                                         ? std::min<size_t>(function.size, arch::kMaxEntryBytes)
                                         : arch::kMaxEntryBytes);
    entry_bytes.resize(read(entry, entry_bytes));
    function.site = arch::ClassifyPatchArea(prefix, entry_bytes, module.bias + entry);
    function.entry = module.bias + entry;
    function.patch_area = module.bias + area;
    function.module = &module;
    module.functions.push_back(std::move(function));
  }
  // Two records can give one entry: an unnamed area's guessed entry (area +
  // the common prefix) may be the entry a later area's symbol names, in a
  // damaged file or a partial link. One function per entry: the named one
  // (its entry comes from a symbol, not a guess), then the nearest area.
  // Found by tests/fuzz/fuzz_elf.
  std::sort(module.functions.begin(), module.functions.end(),
            [](const Function& a, const Function& b) {
              if (a.entry != b.entry) return a.entry < b.entry;
              if (a.mangled.empty() != b.mangled.empty()) return !a.mangled.empty();
              return a.patch_area > b.patch_area;
            });
  module.functions.erase(
      std::unique(module.functions.begin(), module.functions.end(),
                  [](const Function& a, const Function& b) { return a.entry == b.entry; }),
      module.functions.end());
  for (const Function& function : module.functions) {
    if (!function.site.usable()) ++module.unusable_sites;
  }
  AddFunctionsByLayout(image, read, module);
  std::sort(module.functions.begin(), module.functions.end(),
            [](const Function& a, const Function& b) { return a.entry < b.entry; });
}

std::shared_ptr<Module> NewModule(const elf::ElfImage& image, uintptr_t bias) {
  auto module = std::make_shared<Module>();
  module->path = image.path();
  module->bias = bias;
  module->position_independent = image.position_independent();
  module->main_program = image.is_program();
  module->has_patchable_section = image.has_patchable_section();
  module->low = bias + image.low_address();
  module->high = bias + image.high_address();
  return module;
}

// ---- This process -----------------------------------------------------------

struct LoadedObject {
  std::string path;       // what users see
  std::string open_path;  // what is read: the main program's is /proc/self/exe
  uintptr_t bias = 0;
  uintptr_t low = UINTPTR_MAX, high = 0;  // from the program headers in memory
  bool main_program = false;
  // PT_LOAD segments in memory, file-backed part: [address, address + filesz).
  std::vector<std::pair<uintptr_t, size_t>> loads;
};

struct PhdrScan {
  std::vector<LoadedObject> objects;
  unsigned long long adds = 0, subs = 0;
  bool first = true;
};

int CollectObject(dl_phdr_info* info, size_t size, void* data) {
  auto& scan = *static_cast<PhdrScan*>(data);
  const bool main_program = scan.first;
  scan.first = false;
  if (size >= offsetof(dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs)) {
    scan.adds = info->dlpi_adds;
    scan.subs = info->dlpi_subs;
  }
  LoadedObject object;
  object.bias = info->dlpi_addr;
  object.main_program = main_program;
  const char* name = info->dlpi_name ? info->dlpi_name : "";
  if (main_program && *name == '\0') {
    // The main program's link_map has no name; /proc/self/exe has it. Its
    // file is read through /proc/self/exe, which still opens it after it was
    // deleted or replaced on disk (a package upgrade), when readlink says
    // "<path> (deleted)".
    char path[PATH_MAX];
    const ssize_t length = readlink("/proc/self/exe", path, sizeof path - 1);
    if (length <= 0) return 0;
    object.path.assign(path, static_cast<size_t>(length));
    static constexpr std::string_view kDeleted = " (deleted)";
    if (object.path.ends_with(kDeleted)) object.path.resize(object.path.size() - kDeleted.size());
    object.open_path = "/proc/self/exe";
  } else if (*name != '/' && *name != '.') {
    return 0;  // the vdso ("linux-vdso.so.1" or ""): no file behind it
  } else {
    object.path = name;
    object.open_path = name;
  }
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& phdr = info->dlpi_phdr[i];
    if (phdr.p_type != PT_LOAD) continue;
    if (phdr.p_filesz != 0)
      object.loads.emplace_back(info->dlpi_addr + phdr.p_vaddr, phdr.p_filesz);
    object.low = std::min<uintptr_t>(object.low, info->dlpi_addr + phdr.p_vaddr);
    object.high = std::max<uintptr_t>(object.high, info->dlpi_addr + phdr.p_vaddr + phdr.p_memsz);
  }
  if (object.low >= object.high) return 0;
  scan.objects.push_back(std::move(object));
  return 0;
}

// A reference on a loaded library, so that a concurrent dlclose cannot unmap
// it while its memory is read.
class LibraryReference {
 public:
  explicit LibraryReference(const std::string& path)
      : handle_(dlopen(path.c_str(), RTLD_NOLOAD | RTLD_LAZY)) {}
  ~LibraryReference() {
    if (handle_ != nullptr) dlclose(handle_);
  }
  LibraryReference(const LibraryReference&) = delete;
  LibraryReference& operator=(const LibraryReference&) = delete;

  // True when the reference is on the object loaded at `bias` (not on another
  // one that took its path after a dlclose).
  bool Holds(uintptr_t bias) const {
    link_map* map = nullptr;
    return handle_ != nullptr && dlinfo(handle_, RTLD_DI_LINKMAP, &map) == 0 && map != nullptr &&
           map->l_addr == bias;
  }

 private:
  void* handle_;
};

// Reads the patch areas of a module mapped in this process. Bytes outside the
// file-backed part of the segments are not code and are not read.
ByteReader MemoryReader(const elf::ElfImage& image, uintptr_t bias) {
  return [&image, bias](uint64_t vaddr, std::span<uint8_t> out) -> size_t {
    const elf::LoadSegment* segment = image.SegmentContaining(vaddr);
    if (segment == nullptr) return 0;
    const size_t count = static_cast<size_t>(
        std::min<uint64_t>(out.size(), segment->filesz - (vaddr - segment->vaddr)));
    const auto* source = reinterpret_cast<const uint8_t*>(bias + vaddr);
    // Per-byte atomic loads: a patcher may be rewriting these bytes right now.
    for (size_t i = 0; i < count; ++i) out[i] = __atomic_load_n(source + i, __ATOMIC_RELAXED);
    return count;
  };
}

// ---- The fast pre-check: modules that cannot hold an instrumented function --
//
// The full reader (ElfImage: libelf, every function symbol read and sorted,
// then each one classified) is not needed for most modules of a process (libc,
// libstdc++...). A module needs it only if
//   (a) its file has a __patchable_function_entries section, or
//   (b) some function symbol of its file (size != 0) has a patch site at its
//       entry, in memory: a function found by layout is such a symbol (its
//       best-named alias; AddFunctionsByLayout), and arch::ClassifyPatchArea
//       gives the entry's kind from the entry bytes alone (min(size,
//       kMaxEntryBytes) of them, as MemoryReader reads them), whatever the
//       padding; ordinary functions do not start with a NOP.
// Both come from the file's section headers and symbol tables (a few pread()s,
// no libelf), and (b) reads a few bytes at each function's entry: every
// function of every module is still looked at, and (b) holds whatever the
// padding holds (patched or not). It checks every symbol table of the file
// (.symtab and .dynsym, the reader takes one) and ignores whether the section
// holds code: a superset of the reader's candidates. A module failing both has
// no function either way; it is listed with its range and no functions, like
// a module whose file cannot be read.

// True when the file has a __patchable_function_entries section, when some
// function symbol's entry is a patch site in memory, or when the file cannot
// be read this way (then the full reader decides); false when neither.
bool MayHoldInstrumentedFunction(const LoadedObject& object) {
  const int fd = ::open(object.open_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return true;
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  auto read_all = [fd](void* out, size_t size, uint64_t offset) {
    return pread(fd, out, size, static_cast<off_t>(offset)) == static_cast<ssize_t>(size);
  };
  ElfW(Ehdr) ehdr;
  if (!read_all(&ehdr, sizeof ehdr, 0) || std::memcmp(ehdr.e_ident, ELFMAG, SELFMAG) != 0 ||
      ehdr.e_ident[EI_CLASS] != ELFCLASS64 || ehdr.e_shentsize != sizeof(ElfW(Shdr)) ||
      ehdr.e_shnum == 0 || ehdr.e_shstrndx == SHN_XINDEX || ehdr.e_shstrndx >= ehdr.e_shnum) {
    return true;
  }
  std::vector<ElfW(Shdr)> sections(ehdr.e_shnum);
  if (!read_all(sections.data(), sections.size() * sizeof(ElfW(Shdr)), ehdr.e_shoff)) return true;

  // (a)
  const ElfW(Shdr)& names = sections[ehdr.e_shstrndx];
  if (names.sh_size == 0 || names.sh_size > (64u << 20)) return true;
  std::string strings(names.sh_size, '\0');
  if (!read_all(strings.data(), strings.size(), names.sh_offset)) return true;
  static constexpr char kName[] = "__patchable_function_entries";
  for (const ElfW(Shdr) & section : sections) {
    if (section.sh_name < strings.size() && std::strncmp(strings.c_str() + section.sh_name, kName,
                                                         strings.size() - section.sh_name) == 0) {
      return true;
    }
  }

  // (b)
  std::vector<ElfW(Sym)> symbols;
  // The segment of the last entry: most entries are in the one code segment.
  uintptr_t segment = 0;
  size_t segment_size = 0;
  for (const ElfW(Shdr) & section : sections) {
    if (section.sh_type != SHT_SYMTAB && section.sh_type != SHT_DYNSYM) continue;
    if (section.sh_entsize != sizeof(ElfW(Sym)) || section.sh_size > (256u << 20)) return true;
    const size_t count = section.sh_size / sizeof(ElfW(Sym));
    // .dynsym is loaded (SHF_ALLOC, read-only, never relocated): read where it
    // is mapped, when it is, instead of copying it from the file.
    std::span<const ElfW(Sym)> table_symbols;
    const uintptr_t table = object.bias + section.sh_addr;
    if ((section.sh_flags & SHF_ALLOC) != 0 && section.sh_addr != 0 &&
        table % alignof(ElfW(Sym)) == 0) {
      for (const auto& [address, size] : object.loads) {
        if (table - address < size && count * sizeof(ElfW(Sym)) <= size - (table - address)) {
          table_symbols = {reinterpret_cast<const ElfW(Sym)*>(table), count};
        }
      }
    }
    if (table_symbols.empty()) {
      symbols.resize(count);
      if (!read_all(symbols.data(), count * sizeof(ElfW(Sym)), section.sh_offset)) return true;
      table_symbols = symbols;
    }
    for (size_t i = 0; i < table_symbols.size(); ++i) {
      const ElfW(Sym)& symbol = table_symbols[i];
      // The entries are cache misses (most of the scan's time): ask for later
      // ones early (a prefetch never faults, whatever the address).
      constexpr size_t kAhead = 16;
      if (i + kAhead < table_symbols.size()) {
        __builtin_prefetch(
            reinterpret_cast<const void*>(object.bias + table_symbols[i + kAhead].st_value));
      }
      if (ELF64_ST_TYPE(symbol.st_info) != STT_FUNC || symbol.st_shndx == SHN_UNDEF ||
          symbol.st_value == 0 || symbol.st_size == 0) {
        continue;
      }
      // MemoryReader's bytes: up to the end of the segment's file-backed part.
      const uintptr_t entry = object.bias + symbol.st_value;
      if (entry - segment >= segment_size) {
        segment = segment_size = 0;
        for (const auto& [address, size] : object.loads) {
          if (entry - address < size) segment = address, segment_size = size;
        }
        if (segment_size == 0) continue;
      }
      const size_t available = static_cast<size_t>(
          std::min<uint64_t>(std::min<uint64_t>(symbol.st_size, arch::kMaxEntryBytes),
                             segment_size - (entry - segment)));
      const auto* source = reinterpret_cast<const uint8_t*>(entry);
      if (!arch::MayStartPatchSiteAt(source, available)) {  // most functions, on a byte
        // A site under another tool's breakpoint (see ClassifyByLayout): the
        // full scan decides.
        if (arch::MayBeSiteUnderBreakpointAt(source, available)) return true;
        continue;
      }
      std::array<uint8_t, arch::kMaxEntryBytes> bytes;
      // Atomic loads, as MemoryReader: a patcher may be rewriting these bytes.
      for (size_t at = 0; at < available; ++at) {
        bytes[at] = __atomic_load_n(source + at, __ATOMIC_RELAXED);
      }
      const SiteKind kind =
          arch::ClassifyPatchArea({}, std::span<const uint8_t>(bytes.data(), available), entry)
              .kind;
      if (kind == SiteKind::kSingleNop || kind == SiteKind::kNopRun || kind == SiteKind::kPatched) {
        return true;
      }
    }
  }
  return false;
}

std::shared_ptr<const Module> LoadProcessModule(const LoadedObject& object) {
  std::optional<LibraryReference> reference;
  if (!object.main_program) {
    reference.emplace(object.path);
    if (!reference->Holds(object.bias)) return nullptr;  // being unloaded
  }
  std::shared_ptr<Module> module;
  if (!MayHoldInstrumentedFunction(object)) {
    module = std::make_shared<Module>();  // nothing instrumented: see the pre-check above
    module->path = object.path;
    module->bias = object.bias;
    module->position_independent = object.bias != 0;
    module->main_program = object.main_program;
    module->low = object.low;
    module->high = object.high;
    return module;
  }
  auto image = elf::ElfImage::Open(object.open_path);
  if (image.ok()) {
    module = NewModule(**image, object.bias);
    module->path = object.path;
    AddFunctions(**image, MemoryReader(**image, object.bias), *module);
  } else {
    // Still listed, so FindModule knows the range, but with nothing to trace.
    module = std::make_shared<Module>();
    module->path = object.path;
    module->bias = object.bias;
  }
  module->main_program = object.main_program;
  module->low = object.low;
  module->high = object.high;
  return module;
}

}  // namespace

uintptr_t Function::file_address() const noexcept {
  return module != nullptr ? entry - module->bias : entry;
}

const Function* Module::FindByEntry(uintptr_t entry) const noexcept {
  auto it = std::lower_bound(functions.begin(), functions.end(), entry,
                             [](const Function& f, uintptr_t value) { return f.entry < value; });
  return it != functions.end() && it->entry == entry ? &*it : nullptr;
}

const Function* Module::FindByAddress(uintptr_t address) const noexcept {
  auto it = std::upper_bound(functions.begin(), functions.end(), address,
                             [](uintptr_t value, const Function& f) { return value < f.entry; });
  if (it == functions.begin()) return nullptr;
  --it;
  if (it->size == 0) return it->entry == address ? &*it : nullptr;
  return address - it->entry < it->size ? &*it : nullptr;
}

namespace {

Status NotInstrumented(const std::string& path) {
  return Status(Errc::kNotInstrumented,
                path +
                    " was not built for padhook (no __patchable_function_entries section, "
                    "and no function has padhook's layout). Compile it with: " +
                    JoinedCompilerFlags() +
                    " (run `padhook flags` for the flags of your build, `padhook flags "
                    "--landing-pads` with -fcf-protection)");
}

}  // namespace

Result<std::shared_ptr<const Module>> LoadModuleFromFile(const std::string& path) {
  auto image = elf::ElfImage::Open(path);
  if (!image.ok()) return image.status();
  const elf::ElfImage& file = **image;
  std::shared_ptr<Module> module = NewModule(file, 0);
  AddFunctions(
      file, [&file](uint64_t vaddr, std::span<uint8_t> out) { return file.ReadAt(vaddr, out); },
      *module);
  if (!module->has_patchable_section && module->functions.empty()) return NotInstrumented(path);
  return std::shared_ptr<const Module>(std::move(module));
}

Status CheckModuleFile(const std::string& path) {
  auto image = elf::ElfImage::Open(path);
  if (!image.ok()) return image.status();
  const elf::ElfImage& file = **image;
  // LoadModuleFromFile's condition: with the section, even an empty one, the
  // file is accepted; without it (no records), some function must be found
  // by its layout.
  if (file.has_patchable_section()) return Status::Ok();
  bool found = false;
  ForEachFunctionByLayout(
      file, [&file](uint64_t vaddr, std::span<uint8_t> out) { return file.ReadAt(vaddr, out); }, 0,
      {},
      [&found](const elf::FunctionSymbol&, const PatchSite&) {
        found = true;
        return false;
      });
  return found ? Status::Ok() : NotInstrumented(path);
}

// ---- Snapshot ---------------------------------------------------------------

size_t FunctionTable::Snapshot::function_count() const noexcept {
  size_t count = 0;
  for (const auto& module : modules_) count += module->functions.size();
  return count;
}

const Module* FunctionTable::Snapshot::FindModule(uintptr_t address) const noexcept {
  auto it = std::upper_bound(
      modules_.begin(), modules_.end(), address,
      [](uintptr_t value, const std::shared_ptr<const Module>& m) { return value < m->low; });
  if (it == modules_.begin()) return nullptr;
  --it;
  return address < (*it)->high ? it->get() : nullptr;
}

const Function* FunctionTable::Snapshot::FindByEntry(uintptr_t entry) const noexcept {
  const Module* module = FindModule(entry);
  return module ? module->FindByEntry(entry) : nullptr;
}

const Function* FunctionTable::Snapshot::FindByAddress(uintptr_t address) const noexcept {
  const Module* module = FindModule(address);
  return module ? module->FindByAddress(address) : nullptr;
}

std::vector<const Function*> FunctionTable::Snapshot::FindByName(std::string_view name) const {
  std::vector<const Function*> found;
  for (const auto& module : modules_) {
    for (const Function& function : module->functions) {
      if (function.name == name || function.mangled == name) found.push_back(&function);
    }
  }
  return found;
}

std::vector<const Function*> FunctionTable::Snapshot::FindByGlob(std::string_view pattern) const {
  const std::string terminated(pattern);
  std::vector<const Function*> found;
  for (const auto& module : modules_) {
    for (const Function& function : module->functions) {
      if (fnmatch(terminated.c_str(), function.name.c_str(), 0) == 0 ||
          (!function.mangled.empty() &&
           fnmatch(terminated.c_str(), function.mangled.c_str(), 0) == 0)) {
        found.push_back(&function);
      }
    }
  }
  return found;
}

// ---- FunctionTable ----------------------------------------------------------

FunctionTable& FunctionTable::Process() {
  // Never destroyed: threads and atexit handlers may still look functions up
  // while static destructors run.
  static FunctionTable* table = new FunctionTable();
  return *table;
}

Status FunctionTable::Refresh() {
  std::lock_guard lock(mutex_);
  return RefreshLocked();
}

Status FunctionTable::RefreshLocked() {
  // The loader holds its lock while it calls back, so nothing that may dlopen
  // runs inside the callback: collect first, read the files after.
  PhdrScan scan;
  dl_iterate_phdr(CollectObject, &scan);
  if (snapshot_ != nullptr && scan.adds == adds_seen_ && scan.subs == subs_seen_) {
    return Status::Ok();
  }

  auto snapshot = std::make_shared<Snapshot>();
  std::map<std::pair<std::string, uintptr_t>, std::shared_ptr<const Module>> cache;
  for (const LoadedObject& object : scan.objects) {
    // The main program by its place alone: its name can change (deleted).
    auto key = std::make_pair(object.main_program ? std::string() : object.path, object.bias);
    std::shared_ptr<const Module> module;
    if (auto cached = cache_.find(key); cached != cache_.end()) {
      module = cached->second;
    } else {
      module = LoadProcessModule(object);
      if (module == nullptr) continue;
    }
    snapshot->modules_.push_back(module);
    cache.emplace(std::move(key), std::move(module));
  }
  std::sort(snapshot->modules_.begin(), snapshot->modules_.end(),
            [](const auto& a, const auto& b) { return a->low < b->low; });
  snapshot_ = std::move(snapshot);
  cache_ = std::move(cache);
  adds_seen_ = scan.adds;
  subs_seen_ = scan.subs;
  return Status::Ok();
}

std::shared_ptr<const FunctionTable::Snapshot> FunctionTable::snapshot() {
  std::lock_guard lock(mutex_);
  if (snapshot_ == nullptr) (void)RefreshLocked();
  return snapshot_;
}

}  // namespace padhook
