// src/elf/elf_image.h — the few things padhook reads from an ELF file.
//
// Defines:
//   padhook::elf::ElfImage        one opened ELF file (fd + elfutils Elf*), RAII
//   padhook::elf::FunctionSymbol  a function symbol (value, size, name)
//   padhook::elf::LoadSegment     a PT_LOAD segment (virtual range, file range)
//
// Only x86-64 executables and shared objects are accepted: Open() fails with
// kUnsupported for other machines and for relocatable objects. Everything is
// read once at Open() (symbols, segments, patchable entries), so the accessors
// are plain lookups and an ElfImage is safe to read from several threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "padhook/status.h"

struct Elf;  // elfutils

namespace padhook::elf {

struct FunctionSymbol {
  uint64_t value = 0;   // the entry's address in the file (st_value)
  uint64_t size = 0;    // st_size; 0 when the symbol does not say
  bool global = false;  // STB_GLOBAL or STB_WEAK: preferred over local aliases
  bool executable = false;  // defined in a section holding code (SHF_EXECINSTR)
  // As written in the file (mangled). Points into the image's mapping of the
  // file: valid as long as the ElfImage; copy it to keep it. Not copied at
  // Open() because most symbols of a library are never named by padhook (a
  // library's symbols are read to find its few instrumented functions).
  std::string_view name;
};

struct LoadSegment {
  uint64_t vaddr = 0;
  uint64_t memsz = 0;
  uint64_t offset = 0;
  uint64_t filesz = 0;
  bool executable = false;
};

class ElfImage {
 public:
  // Errors: kNotFound (no such file), kSystem (cannot open it), kElf (not an
  // ELF file or a malformed one), kUnsupported (not x86-64, or not ET_EXEC/ET_DYN).
  static Result<std::unique_ptr<ElfImage>> Open(const std::string& path);

  ~ElfImage();
  ElfImage(const ElfImage&) = delete;
  ElfImage& operator=(const ElfImage&) = delete;

  const std::string& path() const noexcept { return path_; }
  // ET_DYN: a PIE executable or a shared library (loaded at a bias).
  bool position_independent() const noexcept { return position_independent_; }
  // An executable (ET_EXEC, or ET_DYN with PT_INTERP / DF_1_PIE), not a library.
  bool is_program() const noexcept { return is_program_; }

  // Function symbols from .symtab, or from .dynsym when the file is stripped;
  // sorted by value. Undefined symbols and IFUNC resolvers are left out.
  const std::vector<FunctionSymbol>& function_symbols() const noexcept { return symbols_; }
  const std::vector<LoadSegment>& load_segments() const noexcept { return segments_; }
  // Lowest and one-past-highest virtual address of the PT_LOAD segments.
  uint64_t low_address() const noexcept;
  uint64_t high_address() const noexcept;

  // True when a section called `name` exists.
  bool HasSection(std::string_view name) const;
  // The patch-area addresses listed in every __patchable_function_entries
  // section, relocated as the loader would with a bias of 0 (lld leaves the
  // in-file values 0 in position-independent files and lets R_X86_64_RELATIVE
  // fill them in); sorted, duplicates removed.
  const std::vector<uint64_t>& patchable_entries() const noexcept { return patchable_entries_; }
  bool has_patchable_section() const noexcept { return has_patchable_section_; }

  // The PT_LOAD segment whose file-backed bytes contain `vaddr`, or null.
  const LoadSegment* SegmentContaining(uint64_t vaddr) const noexcept;
  // Copies up to out.size() bytes found in the file at virtual address `vaddr`
  // (stops at the end of the file-backed part of the segment); returns the
  // number copied.
  size_t ReadAt(uint64_t vaddr, std::span<uint8_t> out) const noexcept;

 private:
  ElfImage() = default;
  Status Load();
  Status LoadSymbols();
  Status LoadPatchableEntries();

  std::string path_;
  int fd_ = -1;
  ::Elf* elf_ = nullptr;
  const char* raw_ = nullptr;  // the whole file, owned by elf_
  size_t raw_size_ = 0;
  bool position_independent_ = false;
  bool is_program_ = false;
  bool has_patchable_section_ = false;
  std::vector<FunctionSymbol> symbols_;
  std::vector<LoadSegment> segments_;
  std::vector<uint64_t> patchable_entries_;
};

}  // namespace padhook::elf
