// padhook/function_table.h — every instrumented function of a file or of this process.
//
// Defines:
//   padhook::Function            one instrumented function (address, size, name, patch site)
//   padhook::Module              one ELF image (program or shared library) and its functions
//   padhook::LoadModuleFromFile  reads an ELF file on disk (what `padhook list` shows)
//   padhook::FunctionTable       the functions of every module loaded in this process
//
// Functions are those listed in the module's `__patchable_function_entries`
// section (one entry per function built with -fpatchable-function-entry),
// named from the symbol tables (.symtab, else .dynsym) and demangled, plus the
// function symbols no entry lists whose bytes have exactly padhook's
// recommended layout ("found by layout"): GCC 12 loses entries of whole
// translation units when the linker drops COMDAT copies, and the link fix
// (cmake/padhook-gcc-entries.ld) drops the section altogether; see
// docs/layout.md, "Known toolchain problems". ELF is read with elfutils' libelf.
//
// Lifetime: a Module is immutable once built and shared (shared_ptr). A
// FunctionTable::Snapshot holds the modules that were loaded when it was taken;
// a module that is dlclose'd disappears from later snapshots, while an older
// snapshot still holding it stays valid to read (names, addresses), never
// freed under its reader. The code bytes of an unloaded module are of course
// gone: only the process-side users that hold a module reference (patching)
// may read or write them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "padhook/patch_site.h"
#include "padhook/status.h"

namespace padhook {

struct Module;

struct Function {
  uintptr_t entry = 0;             // address of the entry (the symbol's value, plus the load bias)
  uintptr_t patch_area = 0;        // start of the patch area (entry - site.prefix_size)
  size_t size = 0;                 // from the symbol table; 0 when unknown
  std::string name;                // demangled; "fn_<hex file address>" when no symbol names it
  std::string mangled;             // the symbol as written in the ELF file; "" when none
  const Module* module = nullptr;  // owner; lives as long as the snapshot or module holding it
  PatchSite site;
  // True when __patchable_function_entries lists the function; false when it
  // was found by its layout (the bytes around a function symbol's entry).
  bool from_section = true;

  // The entry's address in the ELF file (entry minus the load bias).
  uintptr_t file_address() const noexcept;
};

struct Module {
  std::string path;                    // file path; the main program is named by its real path
  uintptr_t bias = 0;                  // load bias: 0 for non-PIE executables and for files on disk
  bool position_independent = false;   // ET_DYN (PIE executable or shared library)
  bool main_program = false;           // a program, not a library: the process's main program,
                                       // or (from a file) an ET_EXEC or PIE executable
  uintptr_t low = 0;                   // mapped range [low, high) of the PT_LOAD segments,
  uintptr_t high = 0;                  // load bias included
  bool has_patchable_section = false;  // __patchable_function_entries present
  std::vector<Function> functions;     // sorted by entry
  size_t unusable_sites = 0;           // functions whose bytes are not what the compiler emits
  size_t found_by_layout = 0;          // functions with from_section == false

  // The function whose entry is exactly `entry` / that contains `address`, or null.
  const Function* FindByEntry(uintptr_t entry) const noexcept;
  const Function* FindByAddress(uintptr_t address) const noexcept;

  // Some function was found, from the section or by its layout.
  bool instrumented() const noexcept { return !functions.empty(); }
};

// Reads the ELF file at `path` (bias 0; bytes of each patch area read from the
// file). Errors: kNotFound (no file), kElf (not a readable ELF file),
// kUnsupported (not x86-64, or an object file rather than a linked one),
// kNotInstrumented (no __patchable_function_entries and no function found by
// its layout: the message says which flags to build with, from `padhook flags`).
Result<std::shared_ptr<const Module>> LoadModuleFromFile(const std::string& path);

// The status LoadModuleFromFile(path) would return, without building the
// module: stops at the section, or at the first function found by its
// layout, and demangles nothing (`padhook record` checks the program with it
// before starting it, on its start-up path).
Status CheckModuleFile(const std::string& path);

class FunctionTable {
 public:
  // An immutable view of the modules loaded at one moment.
  class Snapshot {
   public:
    const std::vector<std::shared_ptr<const Module>>& modules() const noexcept { return modules_; }
    size_t function_count() const noexcept;
    // The function whose entry is exactly `entry`, or null.
    const Function* FindByEntry(uintptr_t entry) const noexcept;
    // The function containing `address` (entry <= address < entry + size, or
    // the exact entry when the size is unknown), or null.
    const Function* FindByAddress(uintptr_t address) const noexcept;
    // Functions whose demangled or mangled name equals `name` (static functions
    // of the same name may exist in several modules).
    std::vector<const Function*> FindByName(std::string_view name) const;
    // Functions whose demangled (or mangled) name matches the shell glob
    // `pattern` (fnmatch).
    std::vector<const Function*> FindByGlob(std::string_view pattern) const;
    // The module whose mapped address range contains `address`, or null.
    const Module* FindModule(uintptr_t address) const noexcept;

   private:
    friend class FunctionTable;
    std::vector<std::shared_ptr<const Module>> modules_;  // sorted by low (load address)
  };

  // The table of this process.
  static FunctionTable& Process();

  // Rescans the loaded modules: adds those loaded since (dlopen), drops those
  // unloaded (dlclose). Cheap when nothing changed (dl_iterate_phdr counters).
  Status Refresh();
  // The latest snapshot (Refresh()es first if never refreshed).
  std::shared_ptr<const Snapshot> snapshot();

 private:
  FunctionTable() = default;
  Status RefreshLocked();  // Refresh() with mutex_ held

  std::mutex mutex_;  // serializes Refresh(); guards snapshot_ and the counters
  std::shared_ptr<const Snapshot> snapshot_;
  unsigned long long adds_seen_ = ~0ull;  // dl_iterate_phdr dlpi_adds at the last scan
  unsigned long long subs_seen_ = ~0ull;  // dl_iterate_phdr dlpi_subs at the last scan
  // Modules of the last scan by (path, bias), so that a rescan only reads the
  // files of modules loaded since. Written and read by Refresh() under mutex_.
  std::map<std::pair<std::string, uintptr_t>, std::shared_ptr<const Module>> cache_;
};

}  // namespace padhook
