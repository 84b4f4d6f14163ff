// Discovery of instrumented functions: LoadModuleFromFile on fixtures built by
// both compilers in every layout, FunctionTable in this process (dlopen /
// dlclose) and in child processes, functions found by their layout when GCC 12
// loses __patchable_function_entries records (and none where there are none),
// and the `padhook list` / `padhook flags` CLI.
//
// Expectations are checked against an independent reading of the ELF files
// (a few lines over <elf.h>, no libelf) so that a bug in src/elf cannot hide
// itself.
#include <dlfcn.h>
#include <elf.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "arch.h"
#include "padhook/function_table.h"

namespace padhook {
namespace {

namespace fs = std::filesystem;

const std::string kFixtureDir = DISCOVERY_FIXTURE_DIR;

std::string Fixture(const std::string& name) { return kFixtureDir + "/" + name; }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

// ---- Independent ELF reading ------------------------------------------------

struct RawSymbol {
  uint64_t value;
  std::string name;
};

// Startup code the toolchain links into every program and library; it is not
// built with the fixture's flags.
bool IsToolchainFunction(const std::string& name) {
  static const std::set<std::string> kNames = {"_init",
                                               "_fini",
                                               "_start",
                                               "deregister_tm_clones",
                                               "register_tm_clones",
                                               "__do_global_dtors_aux",
                                               "frame_dummy",
                                               "_dl_relocate_static_pie",
                                               "__libc_csu_init",
                                               "__libc_csu_fini"};
  return kNames.count(name) != 0;
}

class RawElf {
 public:
  explicit RawElf(const std::string& path) : bytes_(ReadFile(path)) {}

  const Elf64_Ehdr& header() const { return *At<Elf64_Ehdr>(0); }

  // STT_FUNC symbols defined in .symtab, minus the toolchain's startup code.
  std::vector<RawSymbol> SourceFunctions() const {
    std::vector<RawSymbol> functions;
    for (int i = 0; i < header().e_shnum; ++i) {
      const Elf64_Shdr& section = Section(i);
      if (section.sh_type != SHT_SYMTAB) continue;
      const Elf64_Shdr& strings = Section(static_cast<int>(section.sh_link));
      for (uint64_t offset = 0; offset + sizeof(Elf64_Sym) <= section.sh_size;
           offset += sizeof(Elf64_Sym)) {
        const auto* sym = At<Elf64_Sym>(section.sh_offset + offset);
        if (ELF64_ST_TYPE(sym->st_info) != STT_FUNC || sym->st_shndx == SHN_UNDEF) continue;
        std::string name(bytes_.data() + strings.sh_offset + sym->st_name);
        if (IsToolchainFunction(name)) continue;
        functions.push_back({sym->st_value, name});
      }
    }
    return functions;
  }

  // File offset of virtual address `vaddr` (from the program headers).
  uint64_t FileOffset(uint64_t vaddr) const {
    for (int i = 0; i < header().e_phnum; ++i) {
      const auto* phdr = At<Elf64_Phdr>(header().e_phoff + i * sizeof(Elf64_Phdr));
      if (phdr->p_type == PT_LOAD && vaddr >= phdr->p_vaddr &&
          vaddr < phdr->p_vaddr + phdr->p_filesz) {
        return phdr->p_offset + (vaddr - phdr->p_vaddr);
      }
    }
    ADD_FAILURE() << "no segment holds " << std::hex << vaddr;
    return 0;
  }

 private:
  template <typename T>
  const T* At(uint64_t offset) const {
    if (offset + sizeof(T) > bytes_.size()) throw std::runtime_error("truncated ELF file");
    return reinterpret_cast<const T*>(bytes_.data() + offset);
  }
  const Elf64_Shdr& Section(int index) const {
    return *At<Elf64_Shdr>(header().e_shoff + index * sizeof(Elf64_Shdr));
  }

  std::string bytes_;
};

// ---- Running commands -------------------------------------------------------

struct CommandResult {
  int exit_status = -1;
  std::string out, err;
};

// Holds a temporary directory for as long as a test needs it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "padhook-discovery-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string Quote(const std::string& word) {
  std::string quoted = "'";
  for (char c : word) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

CommandResult RunCommand(const std::vector<std::string>& argv) {
  TempDir dir;
  std::string command;
  for (const std::string& word : argv) command += Quote(word) + " ";
  const std::string out = (dir.path() / "out").string(), err = (dir.path() / "err").string();
  command += ">" + Quote(out) + " 2>" + Quote(err);
  CommandResult result;
  const int status = std::system(command.c_str());
  result.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.out = ReadFile(out);
  result.err = ReadFile(err);
  return result;
}

// ---- Fixture variants -------------------------------------------------------

struct Variant {
  std::string file;
  bool clang;
  bool landing_pads;
};

std::vector<Variant> ProgramVariants() {
  std::vector<Variant> variants;
  for (const char* compiler : {"gcc", "clang"}) {
    for (const char* layout : {"plain", "cet"}) {
      for (const char* pie : {"pie", "nopie"}) {
        variants.push_back({std::string("program_") + compiler + "_" + pie + "_" + layout,
                            std::strcmp(compiler, "clang") == 0, std::strcmp(layout, "cet") == 0});
      }
    }
  }
  if (DISCOVERY_HAVE_LLD) variants.push_back({"program_clang_pie_lld", true, false});
  // Linked with cmake/padhook-gcc-entries.ld: no section, found by layout.
  variants.push_back({"program_gcc_pie_fragment", false, false});
  return variants;
}

std::vector<Variant> LibraryVariants() {
  std::vector<Variant> variants;
  for (const char* compiler : {"gcc", "clang"}) {
    for (const char* layout : {"plain", "cet"}) {
      variants.push_back({std::string("libfixture_") + compiler + "_" + layout + ".so",
                          std::strcmp(compiler, "clang") == 0, std::strcmp(layout, "cet") == 0});
    }
  }
  if (DISCOVERY_HAVE_LLD) variants.push_back({"libfixture_clang_lld.so", true, false});
  variants.push_back({"libfixture_gcc_fragment.so", false, false});
  return variants;
}

// Readable parameters in gtest's failure messages and ctest -N.
void PrintTo(const Variant& variant, std::ostream* out) { *out << variant.file; }

std::string VariantName(const testing::TestParamInfo<Variant>& info) {
  std::string name = info.param.file;
  for (char& c : name) {
    if (!isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

// ---- 1. Every function of the fixture, with the right site ------------------

class LoadFixture : public testing::TestWithParam<Variant> {};

TEST_P(LoadFixture, FindsEveryFunctionWithTheCompilersSite) {
  const Variant& variant = GetParam();
  const std::string path = Fixture(variant.file);
  auto loaded = LoadModuleFromFile(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const Module& module = **loaded;
  // `padhook record`'s check (by the section, or by the first function
  // found by its layout) accepts it too.
  EXPECT_TRUE(CheckModuleFile(path).ok()) << CheckModuleFile(path).ToString();

  EXPECT_TRUE(module.instrumented());
  EXPECT_EQ(module.unusable_sites, 0u);
  EXPECT_EQ(module.bias, 0u);
  // With the fragment the section is gone and every function is found by its
  // layout; without it the section lists them all.
  const bool fragment = variant.file.find("fragment") != std::string::npos;
  EXPECT_EQ(module.has_patchable_section, !fragment);
  EXPECT_EQ(module.found_by_layout, fragment ? module.functions.size() : 0u);

  const std::vector<RawSymbol> symbols = RawElf(path).SourceFunctions();
  ASSERT_GE(symbols.size(), 4u) << "fixture symbol table looks empty";
  // Aliases (a C1 and a C2 constructor, say) share one entry: the table names
  // it with one of them.
  std::map<uint64_t, std::set<std::string>> aliases;
  std::set<uint64_t> symbol_addresses;
  for (const RawSymbol& symbol : symbols) {
    symbol_addresses.insert(symbol.value);
    aliases[symbol.value].insert(symbol.name);
  }
  for (const auto& [address, names] : aliases) {
    const Function* function = module.FindByEntry(address);
    ASSERT_NE(function, nullptr) << *names.begin() << " missing from " << path;
    EXPECT_TRUE(names.count(function->mangled)) << function->mangled << " at " << address;
  }
  std::set<uint64_t> table_addresses;
  for (const Function& function : module.functions) {
    table_addresses.insert(function.file_address());
    EXPECT_EQ(function.module, &module);
    EXPECT_EQ(function.entry - function.patch_area, function.site.prefix_size) << function.name;
    const PatchSite& site = function.site;
    EXPECT_EQ(site.kind, variant.clang ? SiteKind::kSingleNop : SiteKind::kNopRun)
        << function.name << ": " << arch::DescribeSite(site);
    EXPECT_EQ(site.slot, SlotState::kEmpty) << function.name;
    EXPECT_EQ(site.landing_pad, variant.landing_pads ? 4 : 0) << function.name;
    EXPECT_EQ(site.prefix_size, variant.landing_pads ? 12 : 8) << function.name;
    EXPECT_TRUE(site.site_in_one_word) << function.name;
    EXPECT_TRUE(site.usable()) << function.name;
    EXPECT_EQ(function.from_section, !fragment) << function.name;
  }
  // Nothing more either: every listed entry is a function of the source.
  EXPECT_EQ(table_addresses, symbol_addresses);

  // Demangling, and the lookups of a module.
  bool found_method = false;
  for (const Function& function : module.functions) {
    if (function.name == "fx::Widget::Method(int) const" || function.name == "fxlib::Scale(long)") {
      found_method = true;
      EXPECT_EQ(module.FindByEntry(function.entry), &function);
      if (function.size > 1) {
        EXPECT_EQ(module.FindByAddress(function.entry + 1), &function);
      }
    }
  }
  EXPECT_TRUE(found_method) << "demangled names missing";
}

INSTANTIATE_TEST_SUITE_P(Programs, LoadFixture, testing::ValuesIn(ProgramVariants()), VariantName);
INSTANTIATE_TEST_SUITE_P(Libraries, LoadFixture, testing::ValuesIn(LibraryVariants()), VariantName);

TEST(LoadModuleFromFile, ReportsTheFileType) {
  auto pie = LoadModuleFromFile(Fixture("program_gcc_pie_plain"));
  auto nopie = LoadModuleFromFile(Fixture("program_clang_nopie_plain"));
  auto library = LoadModuleFromFile(Fixture("libfixture_gcc_plain.so"));
  ASSERT_TRUE(pie.ok() && nopie.ok() && library.ok());
  EXPECT_TRUE((*pie)->position_independent && (*pie)->main_program);
  EXPECT_TRUE(!(*nopie)->position_independent && (*nopie)->main_program);
  EXPECT_TRUE((*library)->position_independent && !(*library)->main_program);
}

TEST(LoadModuleFromFile, StrippedStaticFunctionsGetInferredNames) {
  auto full = LoadModuleFromFile(Fixture("libfixture_gcc_cet.so"));
  auto stripped = LoadModuleFromFile(Fixture("libfixture_gcc_cet_stripped.so"));
  ASSERT_TRUE(full.ok() && stripped.ok());
  ASSERT_EQ((*full)->functions.size(), (*stripped)->functions.size());
  for (size_t i = 0; i < (*full)->functions.size(); ++i) {
    const Function& named = (*full)->functions[i];
    const Function& function = (*stripped)->functions[i];
    EXPECT_EQ(function.file_address(), named.file_address());
    EXPECT_EQ(function.site.kind, SiteKind::kNopRun);
    EXPECT_EQ(function.site.slot, SlotState::kEmpty);
    EXPECT_EQ(function.site.landing_pad, 4);
    if (named.name == "fxlib_static(int)") {
      std::ostringstream expected;
      expected << "fn_" << std::hex << named.file_address();
      EXPECT_EQ(function.name, expected.str());
      EXPECT_TRUE(function.mangled.empty());
    } else {
      EXPECT_EQ(function.name, named.name);  // exported: still in .dynsym
    }
  }
}

// ---- 2. Files padhook cannot use --------------------------------------------

TEST(LoadModuleFromFile, NotInstrumentedSaysWhichFlags) {
  auto loaded = LoadModuleFromFile(Fixture("program_noflags"));
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), Errc::kNotInstrumented);
  EXPECT_NE(loaded.status().message().find("-fpatchable-function-entry=13,8"), std::string::npos)
      << loaded.status().message();
  EXPECT_NE(loaded.status().message().find("padhook flags"), std::string::npos);
}

TEST(LoadModuleFromFile, TooSmallPaddingIsReported) {
  auto loaded = LoadModuleFromFile(Fixture("program_toosmall"));
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const Module& module = **loaded;
  ASSERT_GE(module.functions.size(), 5u);
  for (const Function& function : module.functions) {
    EXPECT_EQ(function.site.slot, SlotState::kTooSmall) << function.name;
    EXPECT_EQ(function.site.prefix_size, 0) << function.name;
    EXPECT_EQ(function.site.kind, SiteKind::kNopRun) << function.name;
    EXPECT_FALSE(function.site.usable());
    EXPECT_FALSE(function.mangled.empty()) << "M=0 entries must still find their symbols";
  }
  EXPECT_EQ(module.unusable_sites, module.functions.size());
}

TEST(LoadModuleFromFile, TextFileIsNotElf) {
  TempDir dir;
  const std::string path = (dir.path() / "notes.txt").string();
  std::ofstream(path) << "this is not an ELF file\n";
  auto loaded = LoadModuleFromFile(path);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), Errc::kElf);
  EXPECT_NE(loaded.status().message().find(path), std::string::npos);
}

TEST(LoadModuleFromFile, MissingFileIsNotFound) {
  const std::string path = Fixture("no-such-program");
  auto loaded = LoadModuleFromFile(path);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), Errc::kNotFound);
  EXPECT_NE(loaded.status().message().find(path), std::string::npos);
}

TEST(LoadModuleFromFile, ObjectFilesAreRefused) {
  // Relocatable objects are x86-64 ELF too, but their addresses are not final.
  auto loaded = LoadModuleFromFile(Fixture("library_clang.o"));
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), Errc::kUnsupported);
}

// ---- 4. Bytes that are not what the compiler emitted ------------------------

// Copies `fixture`, overwrites bytes at `function`'s entry + `offset` (relative
// to the entry) in the copy and returns what LoadModuleFromFile makes of it.
std::shared_ptr<const Module> LoadWithBytes(const TempDir& dir, const std::string& fixture,
                                            const std::string& function_name, int offset,
                                            const std::vector<uint8_t>& bytes,
                                            uint64_t* address = nullptr) {
  const std::string original = Fixture(fixture);
  auto clean = LoadModuleFromFile(original);
  if (!clean.ok()) throw std::runtime_error(clean.status().ToString());
  const Function* target = nullptr;
  for (const Function& function : (*clean)->functions) {
    if (function.name == function_name) target = &function;
  }
  if (target == nullptr) throw std::runtime_error(function_name + " not in " + fixture);
  if (address) *address = target->file_address();

  const std::string copy = (dir.path() / fixture).string();
  fs::copy_file(original, copy, fs::copy_options::overwrite_existing);
  const uint64_t file_offset =
      RawElf(copy).FileOffset(target->file_address() + target->site.landing_pad) + offset;
  std::fstream file(copy, std::ios::in | std::ios::out | std::ios::binary);
  file.seekp(static_cast<std::streamoff>(file_offset));
  file.write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
  file.close();
  auto loaded = LoadModuleFromFile(copy);
  if (!loaded.ok()) throw std::runtime_error(loaded.status().ToString());
  return *loaded;
}

TEST(UnexpectedBytes, Int3AtTheEntryIsReported) {
  TempDir dir;
  uint64_t address = 0;
  auto module = LoadWithBytes(dir, "program_gcc_pie_plain", "fx_c_function", 0, {0xCC}, &address);
  EXPECT_EQ(module->unusable_sites, 1u);
  for (const Function& function : module->functions) {
    if (function.file_address() == address) {
      EXPECT_EQ(function.site.kind, SiteKind::kUnexpected);
      EXPECT_FALSE(function.site.usable());
    } else {
      EXPECT_TRUE(function.site.usable()) << function.name;
    }
  }
}

TEST(UnexpectedBytes, CallAtAClangEntryIsReported) {
  TempDir dir;
  uint64_t address = 0;
  auto module = LoadWithBytes(dir, "program_clang_nopie_cet", "fx::Namespaced(int, int)", 0,
                              {0xE8, 0x11, 0x22, 0x33, 0x44}, &address);
  EXPECT_EQ(module->unusable_sites, 1u);
  const Function* function = module->FindByEntry(address);
  ASSERT_NE(function, nullptr);
  EXPECT_EQ(function->site.kind, SiteKind::kUnexpected);
  EXPECT_EQ(function->site.landing_pad, 4);
}

TEST(UnexpectedBytes, ForeignBytesInThePaddingAreReported) {
  TempDir dir;
  uint64_t address = 0;
  // The first padding byte, well before the metadata slot.
  auto module = LoadWithBytes(dir, "libfixture_gcc_plain.so", "fxlib_add", -8, {0xCC}, &address);
  EXPECT_EQ(module->unusable_sites, 1u);
  const Function* function = module->FindByEntry(address);
  ASSERT_NE(function, nullptr);
  EXPECT_EQ(function->site.kind, SiteKind::kNopRun);
  EXPECT_EQ(function->site.slot, SlotState::kUnexpected);
}

// ---- 3. Discovery in a running process --------------------------------------

// dlopen()s a fixture library for the length of a test.
class Library {
 public:
  explicit Library(const std::string& path) : handle_(dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL)) {
    if (handle_ == nullptr) throw std::runtime_error(dlerror());
  }
  ~Library() { Close(); }
  Library(const Library&) = delete;
  Library& operator=(const Library&) = delete;
  void Close() {
    if (handle_ != nullptr) dlclose(handle_);
    handle_ = nullptr;
  }
  uintptr_t Symbol(const char* name) const {
    return reinterpret_cast<uintptr_t>(dlsym(handle_, name));
  }

 private:
  void* handle_;
};

const Function* InModule(const std::vector<const Function*>& functions, const std::string& path) {
  const Function* found = nullptr;
  for (const Function* function : functions) {
    if (fs::equivalent(function->module->path, path)) {
      EXPECT_EQ(found, nullptr) << "found twice in " << path;
      found = function;
    }
  }
  return found;
}

TEST(FunctionTable, FollowsDlopenAndDlclose) {
  const std::string gcc_path = Fixture("libfixture_gcc_plain.so");
  const std::string clang_path = Fixture("libfixture_clang_cet.so");
  FunctionTable& table = FunctionTable::Process();
  ASSERT_TRUE(table.Refresh().ok());
  const auto before = table.snapshot();
  EXPECT_TRUE(before->FindByName("fxlib_add").empty());
  // Unchanged process: the same snapshot, nothing reread.
  ASSERT_TRUE(table.Refresh().ok());
  EXPECT_EQ(table.snapshot(), before);

  Library gcc(gcc_path);
  auto clang = std::make_unique<Library>(clang_path);
  ASSERT_TRUE(table.Refresh().ok());
  const auto loaded = table.snapshot();
  EXPECT_NE(loaded, before);
  EXPECT_GT(loaded->function_count(), before->function_count());

  for (const auto& [path, library] :
       {std::pair{gcc_path, &gcc}, std::pair{clang_path, clang.get()}}) {
    const uintptr_t add = library->Symbol("fxlib_add");
    ASSERT_NE(add, 0u);
    const Function* by_name = InModule(loaded->FindByName("fxlib_add"), path);
    ASSERT_NE(by_name, nullptr) << path;
    EXPECT_EQ(by_name->entry, add);
    EXPECT_EQ(loaded->FindByEntry(add), by_name);
    EXPECT_EQ(loaded->FindByAddress(add + 2), by_name);
    EXPECT_EQ(loaded->FindModule(add), by_name->module);
    EXPECT_TRUE(by_name->module->position_independent);
    EXPECT_FALSE(by_name->module->main_program);
    EXPECT_NE(by_name->module->bias, 0u);
    EXPECT_EQ(by_name->file_address(), add - by_name->module->bias);
    EXPECT_TRUE(by_name->site.usable()) << arch::DescribeSite(by_name->site);

    // By mangled name and by glob on demangled and mangled names.
    const Function* scale_long = InModule(loaded->FindByName("_ZN5fxlib5ScaleEl"), path);
    ASSERT_NE(scale_long, nullptr);
    EXPECT_EQ(scale_long->name, "fxlib::Scale(long)");
    std::set<std::string> globbed;
    for (const Function* function : loaded->FindByGlob("fxlib::Scale*")) {
      if (fs::equivalent(function->module->path, path)) globbed.insert(function->name);
    }
    EXPECT_EQ(globbed, (std::set<std::string>{"fxlib::Scale(int)", "fxlib::Scale(long)"}));
    EXPECT_NE(InModule(loaded->FindByGlob("_ZN5fxlib5Scale?l"), path), nullptr);
    EXPECT_NE(InModule(loaded->FindByGlob("fxlib_st?tic(*)"), path), nullptr);

    // The module in memory is the file on disk, moved by the bias.
    auto from_file = LoadModuleFromFile(path);
    ASSERT_TRUE(from_file.ok());
    ASSERT_EQ(by_name->module->functions.size(), (*from_file)->functions.size());
    for (size_t i = 0; i < (*from_file)->functions.size(); ++i) {
      EXPECT_EQ(by_name->module->functions[i].file_address(),
                (*from_file)->functions[i].file_address());
      EXPECT_EQ(by_name->module->functions[i].site.kind, (*from_file)->functions[i].site.kind);
    }
  }

  // dlclose: gone from the next snapshot, still readable in the old one.
  const Module* clang_module = InModule(loaded->FindByName("fxlib_add"), clang_path)->module;
  clang.reset();
  void* still_loaded = dlopen(clang_path.c_str(), RTLD_NOLOAD | RTLD_LAZY);
  ASSERT_EQ(still_loaded, nullptr) << "the fixture library was not unloaded";
  ASSERT_TRUE(table.Refresh().ok());
  const auto after = table.snapshot();
  EXPECT_EQ(InModule(after->FindByName("fxlib_add"), clang_path), nullptr);
  EXPECT_NE(InModule(after->FindByName("fxlib_add"), gcc_path), nullptr);
  EXPECT_EQ(after->FindModule(clang_module->low), nullptr);
  std::set<std::string> old_names;
  for (const Function& function : clang_module->functions) old_names.insert(function.name);
  EXPECT_TRUE(old_names.count("fxlib::Scale(int)"));
  EXPECT_EQ(clang_module->path, clang_path);
}

TEST(FunctionTable, FindsNothingInUninstrumentedLibraries) {
  // libc and libstdc++ are not built with padhook's flags: nothing in them may
  // pass for an instrumented function (discovery by layout must stay strict).
  // Nor in a sanitizer build's runtimes: their interceptors must never be
  // patched (PADHOOK_SANITIZE, CMakeLists.txt).
  const auto snapshot = FunctionTable::Process().snapshot();
  std::set<std::string> checked;
  for (const auto& module : snapshot->modules()) {
    const std::string name = fs::path(module->path).filename().string();
    bool uninstrumented = false;
    for (const char* prefix :
         {"libc.so", "libstdc++.so", "libasan.so", "libubsan.so", "libtsan.so"}) {
      uninstrumented = uninstrumented || name.rfind(prefix, 0) == 0;
    }
    if (!uninstrumented) continue;
    checked.insert(name.substr(0, name.find(".so")));
    EXPECT_TRUE(module->functions.empty())
        << module->path << ": " << module->functions.size() << " functions, the first "
        << module->functions.front().name;
    EXPECT_FALSE(module->has_patchable_section) << module->path;
  }
  EXPECT_TRUE(checked.count("libc") && checked.count("libstdc++"));
#if defined(__SANITIZE_ADDRESS__)
  EXPECT_TRUE(checked.count("libasan"));
#elif defined(__SANITIZE_THREAD__)
  EXPECT_TRUE(checked.count("libtsan"));
#else
  EXPECT_EQ(checked, (std::set<std::string>{"libc", "libstdc++"}));
#endif
  // Nor in this test program, built without the flags.
  const Module* self = snapshot->FindModule(reinterpret_cast<uintptr_t>(&ReadFile));
  ASSERT_NE(self, nullptr);
  EXPECT_TRUE(self->functions.empty()) << self->functions.size();
}

TEST(FunctionTable, SkipsModulesWithoutFiles) {
  const auto snapshot = FunctionTable::Process().snapshot();
  ASSERT_FALSE(snapshot->modules().empty());
  int main_programs = 0;
  for (const auto& module : snapshot->modules()) {
    EXPECT_TRUE(fs::exists(module->path)) << module->path;
    EXPECT_LT(module->low, module->high) << module->path;
    main_programs += module->main_program;
  }
  EXPECT_EQ(main_programs, 1);
  // This very function is in the main program's range.
  const Module* self = snapshot->FindModule(reinterpret_cast<uintptr_t>(&ReadFile));
  ASSERT_NE(self, nullptr);
  EXPECT_TRUE(self->main_program);
  EXPECT_EQ(fs::path(self->path).filename(), "discovery_test");
}

class SelfDiscovery : public testing::TestWithParam<Variant> {};

void ExpectDumpMatchesFile(const std::string& path, const CommandResult& result) {
  ASSERT_EQ(result.exit_status, 0) << result.err;
  std::istringstream lines(result.out);
  std::string line;
  std::map<uint64_t, std::string> from_child;  // file address -> "kind slot name"
  bool self_check = false;
  while (std::getline(lines, line)) {
    if (line.rfind("self-check ", 0) == 0) {
      self_check = line == "self-check ok";
      continue;
    }
    const size_t space = line.find(' ');
    ASSERT_NE(space, std::string::npos) << line;
    from_child[std::stoull(line.substr(0, space), nullptr, 16)] = line.substr(space + 1);
  }
  EXPECT_TRUE(self_check) << result.out;

  auto loaded = LoadModuleFromFile(path);
  ASSERT_TRUE(loaded.ok());
  std::map<uint64_t, std::string> from_file;
  for (const Function& function : (*loaded)->functions) {
    from_file[function.file_address()] = std::string(SiteKindName(function.site.kind)) + " " +
                                         SlotStateName(function.site.slot) + " " + function.name;
  }
  EXPECT_EQ(from_child, from_file);
}

TEST_P(SelfDiscovery, ChildFindsWhatTheFileSays) {
  const std::string path = Fixture(GetParam().file);
  ExpectDumpMatchesFile(path, RunCommand({path, "--dump-self"}));
}

// A program whose file is deleted or replaced while it runs (a package
// upgrade): /proc/self/exe then reads "<path> (deleted)". A refresh after
// that (here: a dlopen) must still know the main program's functions; it
// once reloaded the program from that name and found none.
TEST_P(SelfDiscovery, ChildWhoseFileWasDeletedStillFindsItsFunctions) {
  TempDir dir;
  const std::string copy = (dir.path() / GetParam().file).string();
  fs::copy_file(Fixture(GetParam().file), copy);
  ExpectDumpMatchesFile(
      Fixture(GetParam().file),
      RunCommand({copy, "--dump-self-deleted", Fixture("libfixture_clang_plain.so")}));
  EXPECT_FALSE(fs::exists(copy));
}

INSTANTIATE_TEST_SUITE_P(Programs, SelfDiscovery, testing::ValuesIn(ProgramVariants()),
                         VariantName);

// ---- GCC 12's COMDAT problem: functions found by their layout ---------------
//
// tests/fixtures/comdat_*.cc: two files sharing an inline function and a
// template (docs/layout.md, "Known toolchain problems").

const std::set<std::string> kComdatFunctions = {
    "fc0(int)",           "fc(int)",           "fd0(int)", "fd(int)", "main",
    "shared_inline(int)", "int tmpl<int>(int)"};
// The functions of comdat_second.cc (the file whose COMDAT copies are dropped).
const std::set<std::string> kSecondFileFunctions = {"fd0(int)", "fd(int)", "main"};

// Loads a COMDAT fixture and checks that every function of its sources, and
// nothing else (no startup code), is in the table with a clean site.
std::shared_ptr<const Module> LoadComdatFixture(const std::string& file, bool clang) {
  const std::string path = Fixture(file);
  auto loaded = LoadModuleFromFile(path);
  if (!loaded.ok()) {
    ADD_FAILURE() << loaded.status().ToString();
    return nullptr;
  }
  const Module& module = **loaded;
  EXPECT_TRUE(module.instrumented());
  EXPECT_EQ(module.unusable_sites, 0u);
  std::set<std::string> names;
  std::set<uint64_t> table_addresses;
  size_t by_layout = 0;
  for (const Function& function : module.functions) {
    names.insert(function.name);
    table_addresses.insert(function.file_address());
    by_layout += !function.from_section;
    EXPECT_EQ(function.site.kind, clang ? SiteKind::kSingleNop : SiteKind::kNopRun)
        << function.name;
    EXPECT_EQ(function.site.slot, SlotState::kEmpty) << function.name;
    EXPECT_EQ(function.site.prefix_size, 8) << function.name;
    EXPECT_EQ(function.entry - function.patch_area, 8u) << function.name;
    EXPECT_TRUE(function.site.site_in_one_word) << function.name;
  }
  EXPECT_EQ(by_layout, module.found_by_layout);
  EXPECT_EQ(names, kComdatFunctions) << file;
  std::set<uint64_t> symbol_addresses;
  for (const RawSymbol& symbol : RawElf(path).SourceFunctions()) {
    symbol_addresses.insert(symbol.value);
  }
  EXPECT_EQ(table_addresses, symbol_addresses) << file;
  return *loaded;
}

TEST(GccComdat, WithTheFragmentEveryFunctionIsFoundByLayout) {
  // Without cmake/padhook-gcc-entries.ld this link fails with GCC 12.
  auto module = LoadComdatFixture("comdat_gcc_fragment", false);
  ASSERT_NE(module, nullptr);
  EXPECT_FALSE(module->has_patchable_section);
  EXPECT_EQ(module->found_by_layout, module->functions.size());
  for (const Function& function : module->functions) {
    EXPECT_FALSE(function.from_section) << function.name;
  }
}

TEST(GccComdat, RecordsTheLinkerDroppedAreFoundByLayout) {
  // The second file's records went with its discarded copy of shared_inline.
  auto module = LoadComdatFixture("comdat_gcc_inline_first", false);
  ASSERT_NE(module, nullptr);
  EXPECT_TRUE(module->has_patchable_section);
  EXPECT_GT(module->found_by_layout, 0u);
  EXPECT_LT(module->found_by_layout, module->functions.size());
  for (const Function& function : module->functions) {
    if (!function.from_section) {
      EXPECT_TRUE(kSecondFileFunctions.count(function.name)) << function.name;
    }
  }
}

TEST(GccComdat, ClangListsEveryFunction) {
  auto module = LoadComdatFixture("comdat_clang", true);
  ASSERT_NE(module, nullptr);
  EXPECT_TRUE(module->has_patchable_section);
  EXPECT_EQ(module->found_by_layout, 0u);
  for (const Function& function : module->functions) {
    EXPECT_TRUE(function.from_section) << function.name;
  }
}

TEST(GccComdat, UninstrumentedCodeIsNotFoundByLayout) {
  // No section, and no function of the program (nor its startup code) has
  // padhook's layout.
  auto loaded = LoadModuleFromFile(Fixture("program_noflags"));
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), Errc::kNotInstrumented);
}

// Discovery by layout finds exactly what the records list: each fixture that
// has the section, copied with the section renamed (so padhook sees a module
// without it, as the link fix leaves one), must give the same functions
// (addresses, names, sizes, sites), every one of them found by its layout.
// The by-layout scan rejects most functions on their entry bytes alone, before
// any other check: this holds it to the full classification.
class LayoutMatchesRecords : public testing::TestWithParam<Variant> {};

// A copy of `path` in `dir` whose __patchable_function_entries section (there
// may be several) is renamed __patchable_function_entrieX.
std::string CopyWithoutPatchableSection(const TempDir& dir, const std::string& path) {
  std::string bytes = ReadFile(path);
  Elf64_Ehdr ehdr;
  std::memcpy(&ehdr, bytes.data(), sizeof ehdr);
  Elf64_Shdr names;
  std::memcpy(&names, bytes.data() + ehdr.e_shoff + ehdr.e_shstrndx * sizeof(Elf64_Shdr),
              sizeof names);
  static constexpr std::string_view kName = "__patchable_function_entries";
  size_t renamed = 0;
  for (int i = 0; i < ehdr.e_shnum; ++i) {
    Elf64_Shdr section;
    std::memcpy(&section, bytes.data() + ehdr.e_shoff + i * sizeof(Elf64_Shdr), sizeof section);
    char* name = bytes.data() + names.sh_offset + section.sh_name;
    if (std::string_view(name) != kName) continue;
    name[kName.size() - 1] = 'X';
    ++renamed;
  }
  if (renamed == 0) throw std::runtime_error(path + " has no " + std::string(kName));
  const std::string copy = (dir.path() / fs::path(path).filename()).string();
  std::ofstream(copy, std::ios::binary) << bytes;
  return copy;
}

TEST_P(LayoutMatchesRecords, SameFunctionsWithoutTheSection) {
  const std::string path = Fixture(GetParam().file);
  TempDir dir;
  const std::string copy = CopyWithoutPatchableSection(dir, path);
  auto from_records = LoadModuleFromFile(path);
  auto by_layout = LoadModuleFromFile(copy);
  ASSERT_TRUE(from_records.ok()) << from_records.status().ToString();
  ASSERT_TRUE(by_layout.ok()) << by_layout.status().ToString();
  EXPECT_TRUE(CheckModuleFile(copy).ok()) << CheckModuleFile(copy).ToString();
  const Module& records = **from_records;
  const Module& layout = **by_layout;
  EXPECT_TRUE(records.has_patchable_section);
  EXPECT_EQ(records.found_by_layout, 0u);
  EXPECT_FALSE(layout.has_patchable_section);
  EXPECT_EQ(layout.found_by_layout, layout.functions.size());
  EXPECT_EQ(layout.unusable_sites, records.unusable_sites);
  ASSERT_EQ(layout.functions.size(), records.functions.size());
  for (size_t i = 0; i < records.functions.size(); ++i) {
    const Function& expected = records.functions[i];
    const Function& found = layout.functions[i];
    EXPECT_EQ(found.file_address(), expected.file_address()) << expected.name;
    EXPECT_EQ(found.entry - found.patch_area, expected.entry - expected.patch_area)
        << expected.name;
    EXPECT_EQ(found.name, expected.name);
    EXPECT_EQ(found.mangled, expected.mangled);
    EXPECT_EQ(found.size, expected.size) << expected.name;
    EXPECT_FALSE(found.from_section) << expected.name;
    const PatchSite& a = found.site;
    const PatchSite& b = expected.site;
    EXPECT_EQ(a.prefix_size, b.prefix_size) << expected.name;
    EXPECT_EQ(a.landing_pad, b.landing_pad) << expected.name;
    EXPECT_EQ(a.site_size, b.site_size) << expected.name;
    EXPECT_EQ(a.kind, b.kind) << expected.name;
    EXPECT_EQ(a.slot, b.slot) << expected.name;
    EXPECT_EQ(a.site_in_one_word, b.site_in_one_word) << expected.name;
    EXPECT_EQ(0, std::memcmp(a.original, b.original, sizeof a.original)) << expected.name;
  }
}

// The same in this process: a library without the section, loaded, is read
// past the table's pre-check (which passes a module on the first bytes of its
// functions' entries, before any full read) and its functions are found by
// layout in memory, the same as from the file.
class LayoutMatchesRecordsInProcess : public testing::TestWithParam<Variant> {};

TEST_P(LayoutMatchesRecordsInProcess, LoadedLibraryWithoutTheSection) {
  TempDir dir;
  const std::string copy = CopyWithoutPatchableSection(dir, Fixture(GetParam().file));
  auto from_file = LoadModuleFromFile(copy);
  ASSERT_TRUE(from_file.ok()) << from_file.status().ToString();
  Library library(copy);
  FunctionTable& table = FunctionTable::Process();
  ASSERT_TRUE(table.Refresh().ok());
  const auto snapshot = table.snapshot();
  const Module* loaded = snapshot->FindModule(library.Symbol("fxlib_add"));
  ASSERT_NE(loaded, nullptr);
  EXPECT_EQ(loaded->path, copy);
  EXPECT_FALSE(loaded->has_patchable_section);
  EXPECT_EQ(loaded->found_by_layout, (*from_file)->functions.size());
  ASSERT_EQ(loaded->functions.size(), (*from_file)->functions.size());
  for (size_t i = 0; i < loaded->functions.size(); ++i) {
    const Function& found = loaded->functions[i];
    const Function& expected = (*from_file)->functions[i];
    EXPECT_EQ(found.file_address(), expected.file_address()) << expected.name;
    EXPECT_EQ(found.name, expected.name);
    EXPECT_EQ(found.site.kind, expected.site.kind) << expected.name;
    EXPECT_EQ(found.site.slot, expected.site.slot) << expected.name;
    EXPECT_EQ(found.site.prefix_size, expected.site.prefix_size) << expected.name;
  }
}

INSTANTIATE_TEST_SUITE_P(Libraries, LayoutMatchesRecordsInProcess, testing::ValuesIn([] {
                           std::vector<Variant> libraries;
                           for (const Variant& variant : LibraryVariants()) {
                             if (variant.file.find("fragment") == std::string::npos) {
                               libraries.push_back(variant);
                             }
                           }
                           return libraries;
                         }()),
                         VariantName);

std::vector<Variant> VariantsWithTheSection() {
  std::vector<Variant> variants;
  for (const std::vector<Variant>& all : {ProgramVariants(), LibraryVariants()}) {
    for (const Variant& variant : all) {
      if (variant.file.find("fragment") == std::string::npos) variants.push_back(variant);
    }
  }
  return variants;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, LayoutMatchesRecords,
                         testing::ValuesIn(VariantsWithTheSection()), VariantName);

// ---- 5. The padhook CLI -----------------------------------------------------

TEST(PadhookCli, ListsAFixture) {
  const std::string path = Fixture("program_gcc_pie_plain");
  const CommandResult result = RunCommand({PADHOOK_CLI, "list", path});
  ASSERT_EQ(result.exit_status, 0) << result.err;
  EXPECT_NE(result.out.find(path), std::string::npos);
  EXPECT_NE(result.out.find("PIE executable"), std::string::npos);
  for (const char* name :
       {"fx_c_function", "fx::Namespaced(int, int)", "fx::Widget::Method(int) const",
        "double fx::Twice<double>(double)", "fx_static", "main"}) {
    EXPECT_NE(result.out.find(name), std::string::npos) << name << "\n" << result.out;
  }
  EXPECT_NE(result.out.find("GCC 1-byte NOP run (5)"), std::string::npos);
  EXPECT_NE(result.out.find("all sites can be patched"), std::string::npos);
}

TEST(PadhookCli, ListsAsJson) {
  const std::string path = Fixture("libfixture_clang_cet.so");
  const CommandResult result = RunCommand({PADHOOK_CLI, "list", "--format", "json", path});
  ASSERT_EQ(result.exit_status, 0) << result.err;
  const nlohmann::json json = nlohmann::json::parse(result.out);
  EXPECT_EQ(json.at("path"), path);
  EXPECT_EQ(json.at("type"), "shared library");
  auto loaded = LoadModuleFromFile(path);
  ASSERT_TRUE(loaded.ok());
  ASSERT_EQ(json.at("functions").size(), (*loaded)->functions.size());
  std::set<std::string> names;
  for (const nlohmann::json& function : json.at("functions")) {
    for (const char* field : {"name", "mangled", "address", "size", "kind", "slot", "landing_pad",
                              "site_in_one_word", "description", "from_section"}) {
      EXPECT_TRUE(function.contains(field)) << field;
    }
    names.insert(function.at("name").get<std::string>());
    EXPECT_EQ(function.at("kind"), "single-nop");
    EXPECT_EQ(function.at("slot"), "empty");
    EXPECT_EQ(function.at("landing_pad"), true);
    EXPECT_EQ(function.at("site_in_one_word"), true);
    EXPECT_EQ(function.at("from_section"), true);
    EXPECT_NE((*loaded)->FindByEntry(function.at("address").get<uint64_t>()), nullptr);
  }
  EXPECT_TRUE(names.count("fxlib::Scale(long)"));
  EXPECT_TRUE(names.count("fxlib_add"));
}

TEST(PadhookCli, ListsFunctionsFoundByLayout) {
  const std::string path = Fixture("comdat_gcc_inline_first");
  auto loaded = LoadModuleFromFile(path);
  ASSERT_TRUE(loaded.ok());
  ASSERT_GT((*loaded)->found_by_layout, 0u);
  const CommandResult text = RunCommand({PADHOOK_CLI, "list", path});
  ASSERT_EQ(text.exit_status, 0) << text.err;
  for (const std::string& name : kComdatFunctions) {
    EXPECT_NE(text.out.find(name), std::string::npos) << name << "\n" << text.out;
  }
  EXPECT_NE(text.out.find(std::to_string((*loaded)->found_by_layout) +
                          " functions found by their layout (not in "
                          "__patchable_function_entries: GCC 12 drops entries; see "
                          "docs/layout.md)"),
            std::string::npos)
      << text.out;
  EXPECT_NE(text.out.find("found by layout  main"), std::string::npos) << text.out;

  const CommandResult json = RunCommand({PADHOOK_CLI, "list", "--format", "json", path});
  ASSERT_EQ(json.exit_status, 0) << json.err;
  const nlohmann::json parsed = nlohmann::json::parse(json.out);
  EXPECT_EQ(parsed.at("found_by_layout"), (*loaded)->found_by_layout);
  EXPECT_EQ(parsed.at("has_patchable_section"), true);
  size_t by_layout = 0;
  for (const nlohmann::json& function : parsed.at("functions")) {
    const bool from_section = function.at("from_section").get<bool>();
    by_layout += !from_section;
    EXPECT_EQ(from_section,
              (*loaded)->FindByEntry(function.at("address").get<uint64_t>())->from_section);
  }
  EXPECT_EQ(by_layout, (*loaded)->found_by_layout);

  // A file with every record present says nothing about layout.
  const CommandResult clang = RunCommand({PADHOOK_CLI, "list", Fixture("comdat_clang")});
  ASSERT_EQ(clang.exit_status, 0) << clang.err;
  EXPECT_EQ(clang.out.find("found by"), std::string::npos) << clang.out;
}

TEST(PadhookCli, AllAlsoListsStartupCode) {
  const CommandResult result =
      RunCommand({PADHOOK_CLI, "list", "--all", Fixture("program_clang_nopie_plain")});
  ASSERT_EQ(result.exit_status, 0) << result.err;
  EXPECT_NE(result.out.find("not instrumented"), std::string::npos);
  EXPECT_NE(result.out.find("_start"), std::string::npos);
}

TEST(PadhookCli, ListFailsClearly) {
  const CommandResult noflags = RunCommand({PADHOOK_CLI, "list", Fixture("program_noflags")});
  EXPECT_EQ(noflags.exit_status, 1);
  EXPECT_NE(noflags.err.find("-fpatchable-function-entry"), std::string::npos) << noflags.err;
  EXPECT_TRUE(noflags.out.empty());

  const CommandResult missing = RunCommand({PADHOOK_CLI, "list", Fixture("no-such-program")});
  EXPECT_EQ(missing.exit_status, 1);
  EXPECT_NE(missing.err.find("no-such-program"), std::string::npos) << missing.err;

  const CommandResult text =
      RunCommand({PADHOOK_CLI, "list", kFixtureDir + "/../CTestTestfile.cmake"});
  EXPECT_EQ(text.exit_status, 1);
  EXPECT_NE(text.err.find("not an ELF file"), std::string::npos) << text.err;
}

TEST(PadhookCli, ListReportsUnexpectedBytes) {
  TempDir dir;
  auto module = LoadWithBytes(dir, "program_gcc_nopie_plain", "fx_c_function", 0, {0xCC});
  const CommandResult result = RunCommand({PADHOOK_CLI, "list", module->path});
  ASSERT_EQ(result.exit_status, 0) << result.err;
  EXPECT_NE(result.out.find("1 sites have unexpected bytes: fx_c_function"), std::string::npos)
      << result.out;
}

std::string Joined(const std::vector<std::string>& words) {
  std::string line;
  for (const std::string& word : words) line += (line.empty() ? "" : " ") + word;
  return line + "\n";
}

TEST(PadhookCli, FlagsAreTheArchFlags) {
  EXPECT_EQ(RunCommand({PADHOOK_CLI, "flags"}).out,
            Joined(arch::CompilerFlags(arch::Compiler::kGcc, false)));
  EXPECT_EQ(RunCommand({PADHOOK_CLI, "flags", "--compiler", "clang"}).out,
            Joined(arch::CompilerFlags(arch::Compiler::kClang, false)));
  EXPECT_EQ(RunCommand({PADHOOK_CLI, "flags", "--landing-pads"}).out,
            Joined(arch::CompilerFlags(arch::Compiler::kGcc, true)));
  EXPECT_NE(RunCommand({PADHOOK_CLI, "flags", "--compiler", "icc"}).exit_status, 0);
}

TEST(PadhookCli, LibsAndCflagsPointAtTheBuildTree) {
  const CommandResult libs = RunCommand({PADHOOK_CLI, "flags", "--libs"});
  ASSERT_EQ(libs.exit_status, 0);
  std::istringstream words(libs.out);
  std::string libdir_flag, link_flag, rpath_flag;
  words >> libdir_flag >> link_flag >> rpath_flag;
  ASSERT_EQ(libdir_flag.rfind("-L", 0), 0u) << libs.out;
  const std::string libdir = libdir_flag.substr(2);
  EXPECT_TRUE(fs::exists(fs::path(libdir) / "libpadhook.so")) << libdir;
  EXPECT_EQ(link_flag, "-lpadhook");
  EXPECT_EQ(rpath_flag, "-Wl,-rpath," + libdir);

  const CommandResult cflags = RunCommand({PADHOOK_CLI, "flags", "--cflags"});
  ASSERT_EQ(cflags.exit_status, 0);
  ASSERT_EQ(cflags.out.rfind("-I", 0), 0u) << cflags.out;
  const std::string includedir = cflags.out.substr(2, cflags.out.size() - 3);
  EXPECT_TRUE(fs::exists(fs::path(includedir) / "padhook" / "function_table.h")) << includedir;
}

TEST(PadhookCli, LdflagsPointAtTheFragmentForGccOnly) {
  const CommandResult gcc = RunCommand({PADHOOK_CLI, "flags", "--ldflags"});
  ASSERT_EQ(gcc.exit_status, 0) << gcc.err;
  EXPECT_EQ(gcc.out, std::string("-Wl,-T,") + GCC_ENTRIES_LD + "\n");
  EXPECT_TRUE(fs::exists(GCC_ENTRIES_LD));
  EXPECT_EQ(RunCommand({PADHOOK_CLI, "flags", "--ldflags", "--compiler", "gcc"}).out, gcc.out);
  const CommandResult clang =
      RunCommand({PADHOOK_CLI, "flags", "--ldflags", "--compiler", "clang"});
  ASSERT_EQ(clang.exit_status, 0) << clang.err;
  EXPECT_EQ(clang.out, "\n");
}

TEST(PadhookCli, HelpListsSubcommands) {
  const CommandResult help = RunCommand({PADHOOK_CLI, "--help"});
  EXPECT_EQ(help.exit_status, 0);
  EXPECT_NE(help.out.find("flags"), std::string::npos);
  EXPECT_NE(help.out.find("list"), std::string::npos);
  EXPECT_NE(help.out.find("instrumented functions"), std::string::npos);
}

}  // namespace
}  // namespace padhook
