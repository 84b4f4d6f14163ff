// Bad input, for the library and for `padhook list`: files padhook cannot
// use (a directory, an empty file, truncated ELF files, random bytes, a
// binary built without the flags), a stripped library (listed and attached by
// name, exported and inferred), functions whose bytes someone else changed
// (attach refuses with EUNEXPECTED and changes nothing), and names, patterns
// and addresses that match nothing. Every case must give a clear error and
// exit code, and nothing may crash.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "padhook/function_table.h"
#include "padhook/hooks.h"
#include "padhook/padhook.h"
#include "padhook/text_writer.h"
#include "reliab_support.h"

namespace padhook {
namespace {

namespace fs = std::filesystem;
const std::string kFixtureDir = DISCOVERY_FIXTURE_DIR;
std::string Fixture(const std::string& name) { return kFixtureDir + "/" + name; }

// A temporary directory, removed with what it holds (RAII).
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "padhook-badinput-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  std::string File(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

std::vector<char> ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void WriteAll(const std::string& path, const char* data, size_t size) {
  std::ofstream(path, std::ios::binary).write(data, static_cast<std::streamsize>(size));
}

struct CommandResult {
  int exit_status = -1;  // -1: killed by a signal
  int signal = 0;
  std::string out, err;
};

// Runs the padhook CLI with `args`, capturing stdout and stderr.
CommandResult RunCli(const std::vector<std::string>& args, const TempDir& dir) {
  std::string command = "'" + std::string(PADHOOK_CLI) + "'";
  for (const std::string& a : args) command += " '" + a + "'";
  command += " >'" + dir.File("out") + "' 2>'" + dir.File("err") + "'";
  const int status = std::system(command.c_str());
  CommandResult r;
  if (WIFEXITED(status)) {
    r.exit_status = WEXITSTATUS(status);
    // The shell reports a signal as 128 + n.
    if (r.exit_status > 128) r.signal = r.exit_status - 128;
  } else {
    r.signal = WIFSIGNALED(status) ? WTERMSIG(status) : -1;
  }
  const auto out = ReadAll(dir.File("out")), err = ReadAll(dir.File("err"));
  r.out.assign(out.begin(), out.end());
  r.err.assign(err.begin(), err.end());
  return r;
}

struct BadFile {
  std::string name;
  std::string path;
  Errc code;         // what LoadModuleFromFile must answer
  std::string says;  // ... and what its message must contain
};

std::vector<BadFile> MakeBadFiles(const TempDir& dir) {
  std::vector<BadFile> files;
  const std::vector<char> elf = ReadAll(Fixture("program_gcc_pie_plain"));
  EXPECT_GT(elf.size(), 4096u);
  files.push_back({"directory", kFixtureDir, Errc::kElf, ""});
  WriteAll(dir.File("empty"), "", 0);
  files.push_back({"empty file", dir.File("empty"), Errc::kElf, "not an ELF file"});
  for (size_t cut : {size_t{4}, size_t{64}, size_t{1000}, elf.size() / 2, elf.size() - 100}) {
    const std::string path = dir.File("truncated_" + std::to_string(cut));
    WriteAll(path, elf.data(), cut);
    files.push_back({"ELF truncated to " + std::to_string(cut) + " bytes", path, Errc::kElf, ""});
  }
  std::mt19937 rng(3);
  std::vector<char> noise(8192);
  for (char& c : noise) c = static_cast<char>(rng());
  WriteAll(dir.File("noise"), noise.data(), noise.size());
  files.push_back({"random bytes", dir.File("noise"), Errc::kElf, "not an ELF file"});
  // An ELF header followed by random bytes.
  std::vector<char> header_noise(noise);
  std::memcpy(header_noise.data(), elf.data(), 64);
  WriteAll(dir.File("header_noise"), header_noise.data(), header_noise.size());
  files.push_back({"ELF header, random rest", dir.File("header_noise"), Errc::kElf, ""});
  files.push_back({"no flags", Fixture("program_noflags"), Errc::kNotInstrumented,
                   "-fpatchable-function-entry"});
  files.push_back({"missing", dir.File("missing"), Errc::kNotFound, "missing"});
  return files;
}

TEST(BadInput, LibraryRefusesFilesItCannotUseWithClearErrors) {
  TempDir dir;
  int tried = 0;
  for (const BadFile& f : MakeBadFiles(dir)) {
    Result<std::shared_ptr<const Module>> loaded = LoadModuleFromFile(f.path);
    ++tried;
    // `padhook record`'s check answers what the full load answers.
    const Status checked = CheckModuleFile(f.path);
    EXPECT_EQ(checked.code(), loaded.ok() ? Errc::kOk : loaded.status().code()) << f.name;
    if (!loaded.ok()) {
      EXPECT_EQ(checked.message(), loaded.status().message()) << f.name;
    }
    if (loaded.ok()) {
      // A truncation that keeps every section padhook reads may still load;
      // then it must be a module with consistent functions.
      EXPECT_NE(f.name.find("truncated"), std::string::npos) << f.name << " loaded";
      continue;
    }
    // The directory and truncated files may be refused as unreadable ELF or as
    // a system error; what matters is a code, the path and no crash.
    if (f.code == Errc::kElf) {
      EXPECT_TRUE(loaded.status().code() == Errc::kElf || loaded.status().code() == Errc::kSystem ||
                  loaded.status().code() == Errc::kUnsupported ||
                  loaded.status().code() == Errc::kNotInstrumented)
          << f.name << ": " << loaded.status().ToString();
    } else {
      EXPECT_EQ(loaded.status().code(), f.code) << f.name << ": " << loaded.status().ToString();
    }
    EXPECT_NE(loaded.status().message().find(f.path), std::string::npos)
        << f.name << ": the message should name the file: " << loaded.status().ToString();
    if (!f.says.empty()) {
      EXPECT_NE(loaded.status().message().find(f.says), std::string::npos)
          << f.name << ": " << loaded.status().ToString();
    }
    std::printf("  %-28s -> %s\n", f.name.c_str(), loaded.status().ToString().c_str());
  }
  std::printf("%d bad files tried\n", tried);
}

// Found by tests/fuzz/fuzz_elf: a damaged library whose entry table points
// at padding the file does not hold. Its functions must stay consistent
// (patch area = entry - prefix), and the one whose slot cannot be read must
// not be usable. Every input of the seed corpus is loaded the same way.
TEST(BadInput, FuzzCorpusLoadsConsistently) {
  int loaded_count = 0;
  for (const auto& entry : fs::directory_iterator(FUZZ_CORPUS_DIR)) {
    Result<std::shared_ptr<const Module>> loaded = LoadModuleFromFile(entry.path().string());
    EXPECT_EQ(CheckModuleFile(entry.path().string()).code(),
              loaded.ok() ? Errc::kOk : loaded.status().code())
        << entry.path();
    if (!loaded.ok()) {
      EXPECT_FALSE(loaded.status().message().empty());
      continue;
    }
    ++loaded_count;
    for (const Function& f : (*loaded)->functions) {
      EXPECT_EQ(f.patch_area, f.entry - f.site.prefix_size)
          << entry.path() << ": " << f.name << " at " << f.entry;
    }
  }
  EXPECT_GE(loaded_count, 5);
  Result<std::shared_ptr<const Module>> damaged =
      LoadModuleFromFile(std::string(FUZZ_CORPUS_DIR) + "/regress_short_padding");
  ASSERT_TRUE(damaged.ok()) << damaged.status().ToString();
  EXPECT_GT((*damaged)->unusable_sites, 0u);

  // The second finding: an unnamed patch area whose guessed entry (area + the
  // common prefix) is the entry another area's symbol names. One function per
  // entry, the named one.
  Result<std::shared_ptr<const Module>> same_entry =
      LoadModuleFromFile(std::string(FUZZ_CORPUS_DIR) + "/regress_same_entry");
  ASSERT_TRUE(same_entry.ok()) << same_entry.status().ToString();
  const std::vector<Function>& functions = (*same_entry)->functions;
  for (size_t i = 1; i < functions.size(); ++i) {
    EXPECT_LT(functions[i - 1].entry, functions[i].entry) << functions[i].name;
  }
  std::vector<std::string> names;
  for (const Function& f : functions) names.push_back(f.name);
  EXPECT_EQ(names, (std::vector<std::string>{"seed_add", "seed_static", "seed_call"}));
}

TEST(BadInput, ListExitsWithOneAndAMessage) {
  TempDir dir;
  for (const BadFile& f : MakeBadFiles(dir)) {
    const CommandResult r = RunCli({"list", f.path}, dir);
    EXPECT_EQ(r.signal, 0) << f.name << ": padhook list crashed: " << r.err;
    if (r.exit_status == 0) {
      EXPECT_NE(f.name.find("truncated"), std::string::npos) << f.name << " listed: " << r.out;
      continue;
    }
    EXPECT_EQ(r.exit_status, 1) << f.name << ": " << r.err;
    EXPECT_FALSE(r.err.empty()) << f.name << ": no message";
    EXPECT_NE(r.err.find(f.path), std::string::npos) << f.name << ": " << r.err;
    const CommandResult json = RunCli({"list", "--format", "json", f.path}, dir);
    EXPECT_EQ(json.signal, 0) << f.name;
    EXPECT_EQ(json.exit_status, r.exit_status) << f.name << ": " << json.err;
  }
  const CommandResult none = RunCli({"list"}, dir);
  EXPECT_NE(none.exit_status, 0);
  EXPECT_EQ(none.signal, 0);
  const CommandResult bogus =
      RunCli({"list", "--format", "yaml", Fixture("program_gcc_pie_plain")}, dir);
  EXPECT_NE(bogus.exit_status, 0);
  EXPECT_EQ(bogus.signal, 0);
}

TEST(BadInput, StrippedLibraryIsListedWithInferredNames) {
  TempDir dir;
  const std::string lib = Fixture("libfixture_gcc_cet_stripped.so");
  const CommandResult r = RunCli({"list", lib}, dir);
  ASSERT_EQ(r.exit_status, 0) << r.err;
  EXPECT_NE(r.out.find("fxlib_add"), std::string::npos) << r.out;  // exported: .dynsym
  EXPECT_NE(r.out.find("fn_"), std::string::npos) << r.out;        // static: inferred name
}

std::atomic<uint64_t> g_seen{0};
void Count(padhook_call*, void*) { g_seen.fetch_add(1, std::memory_order_relaxed); }

// dlopen()ed for the length of a test (RAII).
struct Library {
  explicit Library(const std::string& path) : handle(dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL)) {}
  ~Library() {
    if (handle != nullptr) dlclose(handle);
  }
  void* handle;
};

TEST(BadInput, StrippedLibraryAttachesByExportedAndInferredName) {
  const std::string path = Fixture("libfixture_gcc_cet_stripped.so");
  Library lib(path);
  ASSERT_NE(lib.handle, nullptr) << dlerror();
  auto add = reinterpret_cast<int (*)(int, int)>(dlsym(lib.handle, "fxlib_add"));
  auto keep = reinterpret_cast<int (*volatile*)(int)>(dlsym(lib.handle, "fxlib_keep_static"));
  ASSERT_NE(add, nullptr);
  ASSERT_NE(keep, nullptr);
  Hooks hooks{Count, nullptr, nullptr};
  {
    Result<Attachment> a = AttachName("fxlib_add", hooks);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    const uint64_t before = g_seen.load();
    EXPECT_EQ(add(2, 3), 5);
    EXPECT_EQ(g_seen.load(), before + 1);
  }
  // The static function has no symbol left: its name is fn_<file address>.
  Result<std::shared_ptr<const Module>> module = LoadModuleFromFile(path);
  ASSERT_TRUE(module.ok()) << module.status().ToString();
  std::string inferred;
  for (const Function& f : (*module)->functions) {
    if (f.name.rfind("fn_", 0) == 0) inferred = f.name;
  }
  ASSERT_FALSE(inferred.empty());
  Result<Attachment> s = AttachName(inferred, hooks);
  ASSERT_TRUE(s.ok()) << inferred << ": " << s.status().ToString();
  const uint64_t before = g_seen.load();
  EXPECT_EQ((*keep)(10), 1);
  EXPECT_EQ(g_seen.load(), before + 1) << inferred << " is not the static function";
  ASSERT_TRUE(s->Detach().ok());
}

TEST(BadInput, NamesPatternsAndAddressesThatMatchNothing) {
  padhook_hooks h = {};
  h.on_entry = Count;
  padhook_attachment* a = nullptr;
  EXPECT_EQ(padhook_attach_pattern("no_such_function_*", &h, &a), PADHOOK_ENOTFOUND);
  EXPECT_NE(std::string(padhook_last_error()).find("no_such_function_*"), std::string::npos)
      << padhook_last_error();
  EXPECT_EQ(a, nullptr);
  EXPECT_EQ(padhook_attach_name("no_such_function", &h, &a), PADHOOK_ENOTFOUND);
  EXPECT_NE(std::string(padhook_last_error()).find("no_such_function"), std::string::npos);
  // An address that is code, but not an instrumented entry (libc's).
  EXPECT_EQ(padhook_attach_address(reinterpret_cast<void*>(&std::fclose), &h, &a),
            PADHOOK_ENOTFOUND);
  EXPECT_NE(std::string(padhook_last_error()).find("padhook list"), std::string::npos);
  // Inside an instrumented function, not its entry.
  EXPECT_EQ(padhook_attach_address(reinterpret_cast<char*>(many_fns_23[0]) + 1, &h, &a),
            PADHOOK_ENOTFOUND);
  EXPECT_EQ(padhook_attach_address(nullptr, &h, &a), PADHOOK_EINVAL);
  EXPECT_EQ(padhook_attach_pattern("many_fn_23_00*", nullptr, &a), PADHOOK_EINVAL);
  EXPECT_EQ(padhook_attach_pattern(nullptr, &h, &a), PADHOOK_EINVAL);
  padhook_hooks none = {};
  EXPECT_EQ(padhook_attach_pattern("many_fn_23_00*", &none, &a), PADHOOK_EINVAL);
  EXPECT_EQ(padhook_detach(nullptr), PADHOOK_EINVAL);
  EXPECT_EQ(a, nullptr);
  // And a pattern that matches works (the cases above did not break anything).
  ASSERT_EQ(padhook_attach_pattern("many_fn_23_00*", &h, &a), PADHOOK_OK) << padhook_last_error();
  EXPECT_EQ(padhook_attachment_size(a), 10u);
  EXPECT_EQ(padhook_detach(a), PADHOOK_OK);
}

// Someone else changed a function's bytes: the site (another 5-byte NOP), or
// the metadata slot before the entry. Attaching a batch that holds it must
// fail with EUNEXPECTED and leave every function of the batch as it was.
TEST(BadInput, ChangedBytesAreRefusedAndNothingChanges) {
  for (WriteMode mode : {WriteMode::kFast, WriteMode::kStrict}) {
    TextWriter::Process().set_mode(mode);
    std::vector<reliab::Fn> fns;
    for (int i = 0; i < 50; ++i) fns.push_back(many_fns_23[100 + i]);  // clang++ plain
    for (int i = 0; i < 50; ++i) fns.push_back(many_fns_22[100 + i]);  // g++ odd
    reliab::Workers workers(fns, 2);
    auto area = [](reliab::Fn f) {
      std::array<uint8_t, 24> a;
      std::memcpy(a.data(), reinterpret_cast<const uint8_t*>(f) - 12, a.size());
      return a;
    };
    // The victims' bytes (as they are once attached and detached: NOP runs
    // converted), each changed into something else that still runs.
    struct Change {
      const char* what;
      reliab::Fn victim;
      int offset;  // from the entry
      std::vector<uint8_t> foreign;
    };
    const std::vector<Change> changes = {
        {"clang site: another 5-byte NOP", fns[20], 0, {0x0f, 0x1f, 0x44, 0x00, 0x48}},
        {"g++ site: a jmp over the NOP", fns[81], 0, {0xeb, 0x03, 0x44, 0x00, 0x00}},
        {"clang metadata slot: int3s", fns[25], -5, {0xcc, 0xcc, 0xcc, 0xcc, 0xcc}},
    };
    for (const Change& c : changes) {
      // Attach once so that every site is in its steady form (NOP runs
      // converted), then change the victim's bytes.
      {
        std::vector<const void*> all;
        for (reliab::Fn f : fns) all.push_back(reinterpret_cast<const void*>(f));
        Hooks hooks{Count, nullptr, nullptr};
        Result<Attachment> warm = AttachAddresses(all, hooks);
        ASSERT_TRUE(warm.ok()) << warm.status().ToString();
        ASSERT_TRUE(warm->Detach().ok());
      }
      const uintptr_t at = reinterpret_cast<uintptr_t>(c.victim) + c.offset;
      std::vector<uint8_t> ours(c.foreign.size());
      std::memcpy(ours.data(), reinterpret_cast<const void*>(at), ours.size());
      ASSERT_NE(ours, c.foreign);
      const CodeWrite corrupt = CodeWrite::Make(at, ours, c.foreign);
      ASSERT_TRUE(TextWriter::Process().Apply({&corrupt, 1}).ok());
      std::vector<std::array<uint8_t, 24>> before;
      for (reliab::Fn f : fns) before.push_back(area(f));
      std::vector<void*> addresses;
      for (reliab::Fn f : fns) addresses.push_back(reinterpret_cast<void*>(f));
      padhook_hooks h = {};
      h.on_entry = Count;
      padhook_attachment* a = nullptr;
      EXPECT_EQ(padhook_attach_addresses(addresses.data(), addresses.size(), &h, &a),
                PADHOOK_EUNEXPECTED)
          << WriteModeName(mode) << ", " << c.what << ": " << padhook_last_error();
      // Calls made while the attach ran may have been seen (its blocks were
      // published before the sites were tried); none after it returned.
      const uint64_t seen = g_seen.load();
      EXPECT_EQ(a, nullptr);
      std::printf("  %s mode, %s: %s\n", WriteModeName(mode), c.what, padhook_last_error());
      for (size_t f = 0; f < fns.size(); ++f) {
        EXPECT_EQ(area(fns[f]), before[f])
            << WriteModeName(mode) << ", " << c.what << ": function " << f << " changed";
      }
      for (reliab::Fn f : fns) (void)f(1);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));  // the workers call them too
      EXPECT_EQ(g_seen.load(), seen) << "a handler ran after the failed attach";
      // Alone, the victim is refused too; the others attach fine.
      Result<Attachment> alone =
          AttachAddress(reinterpret_cast<const void*>(c.victim), Hooks{Count, nullptr, nullptr});
      EXPECT_FALSE(alone.ok());
      const CodeWrite restore = CodeWrite::Make(at, c.foreign, ours);
      ASSERT_TRUE(TextWriter::Process().Apply({&restore, 1}).ok());
      Result<Attachment> fixed =
          AttachAddress(reinterpret_cast<const void*>(c.victim), Hooks{Count, nullptr, nullptr});
      EXPECT_TRUE(fixed.ok()) << fixed.status().ToString();
    }
    workers.Stop();
    EXPECT_EQ(workers.wrong(), 0u);
  }
}

}  // namespace
}  // namespace padhook
