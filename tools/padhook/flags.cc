// padhook flags: what to pass the compiler (and linker) to use padhook.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <climits>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "arch.h"
#include "commands.h"

namespace padhook::tool {
namespace {

namespace fs = std::filesystem;

struct FlagsOptions {
  std::string compiler = "gcc";
  bool landing_pads = false;
  bool libs = false;
  bool cflags = false;
  bool ldflags = false;
};

struct InstallDirs {
  fs::path libdir;
  fs::path includedir;
  fs::path cmakedir;  // padhook.cmake and padhook-gcc-entries.ld
};

// Where libpadhook, its headers and its CMake files are, judged from where
// this binary runs: the build tree (<build>/tools/padhook/padhook, library in
// <build>/src, headers and cmake/ in the source tree) or an install prefix
// (<prefix>/bin/padhook; <prefix>/lib/cmake/padhook).
InstallDirs FindInstallDirs() {
  char buffer[PATH_MAX];
  const ssize_t length = readlink("/proc/self/exe", buffer, sizeof buffer - 1);
  const fs::path exe = length > 0 ? fs::path(std::string(buffer, static_cast<size_t>(length)))
                                  : fs::path("/usr/local/bin/padhook");
  const fs::path bindir = exe.parent_path();
  const fs::path build_root = bindir.parent_path().parent_path();
  std::error_code ignored;
  if (bindir.filename() == "padhook" && bindir.parent_path().filename() == "tools" &&
      fs::exists(build_root / "src" / "libpadhook.so", ignored)) {
#ifdef PADHOOK_SOURCE_INCLUDE_DIR
    const fs::path includedir = PADHOOK_SOURCE_INCLUDE_DIR;
#else
    const fs::path includedir = build_root.parent_path() / "include";
#endif
#ifdef PADHOOK_SOURCE_CMAKE_DIR
    const fs::path cmakedir = PADHOOK_SOURCE_CMAKE_DIR;
#else
    const fs::path cmakedir = build_root.parent_path() / "cmake";
#endif
    return {build_root / "src", includedir, cmakedir};
  }
  const fs::path prefix = bindir.parent_path();
  fs::path libdir = prefix / "lib";
  if (!fs::exists(libdir / "libpadhook.so", ignored) &&
      fs::exists(prefix / "lib64" / "libpadhook.so", ignored)) {
    libdir = prefix / "lib64";
  }
  return {libdir, prefix / "include", prefix / "lib" / "cmake" / "padhook"};
}

int RunFlags(const FlagsOptions& options) {
  std::vector<std::string> words;
  if (options.cflags || options.libs || options.ldflags) {
    const InstallDirs dirs = FindInstallDirs();
    if (options.cflags) words.push_back("-I" + dirs.includedir.string());
    if (options.libs) {
      words.push_back("-L" + dirs.libdir.string());
      words.push_back("-lpadhook");
      words.push_back("-Wl,-rpath," + dirs.libdir.string());
    }
    // GCC 12 loses or breaks __patchable_function_entries with COMDAT
    // functions; the fragment discards the section and padhook finds the
    // functions by their layout (docs/layout.md). clang needs nothing.
    if (options.ldflags && options.compiler == "gcc") {
      words.push_back("-Wl,-T," + (dirs.cmakedir / "padhook-gcc-entries.ld").string());
    }
  } else {
    const arch::Compiler compiler =
        options.compiler == "clang" ? arch::Compiler::kClang : arch::Compiler::kGcc;
    words = arch::CompilerFlags(compiler, options.landing_pads);
  }
  std::string line;
  for (const std::string& word : words) {
    if (!line.empty()) line += ' ';
    line += word;
  }
  std::cout << line << '\n';
  return 0;
}

}  // namespace

CommandRunner SetupFlags(CLI::App& command) {
  auto options = std::make_shared<FlagsOptions>();
  command.add_option("--compiler", options->compiler, "Compiler the flags are for")
      ->check(CLI::IsMember({"gcc", "clang"}))
      ->capture_default_str();
  command.add_flag("--landing-pads", options->landing_pads,
                   "Layout for code built with -fcf-protection (endbr64 at every entry)");
  command.add_flag("--libs", options->libs, "Print the linker flags to use libpadhook instead");
  command.add_flag("--cflags", options->cflags,
                   "Print the include flag for padhook's headers instead");
  command.add_flag("--ldflags", options->ldflags,
                   "Print the link flags for code built with the flags instead (with gcc: the "
                   "linker-script fragment that works around GCC 12's COMDAT problem; with "
                   "clang: nothing)");
  command.footer(
      "Without --libs/--cflags/--ldflags, prints the flags that build code padhook can trace, "
      "e.g.\n"
      "  g++ $(padhook flags) -c foo.cc && g++ foo.o $(padhook flags --ldflags) -o foo");
  return [options] { return RunFlags(*options); };
}

}  // namespace padhook::tool
