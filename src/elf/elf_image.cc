#include "elf/elf_image.h"

#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace padhook::elf {
namespace {

constexpr std::string_view kPatchableSection = "__patchable_function_entries";

std::string ElfError(const std::string& path, const char* what) {
  std::string message = path + ": " + what;
  if (const char* detail = elf_errmsg(-1)) {
    message += ": ";
    message += detail;
  }
  return message;
}

std::string_view SectionName(::Elf* elf, size_t shstrndx, Elf_Scn* section) {
  GElf_Shdr header;
  if (gelf_getshdr(section, &header) == nullptr) return {};
  const char* name = elf_strptr(elf, shstrndx, header.sh_name);
  return name ? std::string_view(name) : std::string_view();
}

}  // namespace

Result<std::unique_ptr<ElfImage>> ElfImage::Open(const std::string& path) {
  // elf_version() must be called once before any other libelf function; it is
  // cheap and idempotent, so calling it on every open avoids a global init.
  if (elf_version(EV_CURRENT) == EV_NONE) {
    return Status(Errc::kElf, "libelf is too old for this ELF version");
  }
  std::unique_ptr<ElfImage> image(new ElfImage());
  image->path_ = path;
  image->fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (image->fd_ < 0) {
    const int err = errno;
    if (err == ENOENT || err == ENOTDIR) return Status(Errc::kNotFound, path + ": no such file");
    return Status::FromErrno(err, "cannot open " + path);
  }
  struct stat st;
  if (fstat(image->fd_, &st) != 0) return Status::FromErrno(errno, "cannot stat " + path);
  if (!S_ISREG(st.st_mode)) return Status(Errc::kElf, path + ": not a regular file");
  if (Status status = image->Load(); !status.ok()) return status;
  return image;
}

ElfImage::~ElfImage() {
  if (elf_ != nullptr) elf_end(elf_);
  if (fd_ >= 0) ::close(fd_);
}

Status ElfImage::Load() {
  elf_ = elf_begin(fd_, ELF_C_READ_MMAP, nullptr);
  if (elf_ == nullptr) return Status(Errc::kElf, ElfError(path_, "cannot read ELF"));
  if (elf_kind(elf_) != ELF_K_ELF) return Status(Errc::kElf, path_ + ": not an ELF file");
  raw_ = elf_rawfile(elf_, &raw_size_);
  if (raw_ == nullptr) return Status(Errc::kElf, ElfError(path_, "cannot map file"));

  GElf_Ehdr ehdr;
  if (gelf_getehdr(elf_, &ehdr) == nullptr) {
    return Status(Errc::kElf, ElfError(path_, "bad ELF header"));
  }
  if (ehdr.e_ident[EI_CLASS] != ELFCLASS64 || ehdr.e_machine != EM_X86_64) {
    return Status(Errc::kUnsupported, path_ + ": not an x86-64 ELF file (machine " +
                                          std::to_string(ehdr.e_machine) +
                                          "); this padhook build reads x86-64 only");
  }
  if (ehdr.e_type != ET_EXEC && ehdr.e_type != ET_DYN) {
    return Status(Errc::kUnsupported,
                  path_ +
                      ": not an executable or shared library (object files are not "
                      "supported: link them first)");
  }
  position_independent_ = ehdr.e_type == ET_DYN;

  size_t phnum = 0;
  if (elf_getphdrnum(elf_, &phnum) != 0) {
    return Status(Errc::kElf, ElfError(path_, "bad program headers"));
  }
  bool has_interp = false;
  for (size_t i = 0; i < phnum; ++i) {
    GElf_Phdr phdr;
    if (gelf_getphdr(elf_, static_cast<int>(i), &phdr) == nullptr) continue;
    if (phdr.p_type == PT_INTERP) has_interp = true;
    if (phdr.p_type != PT_LOAD) continue;
    segments_.push_back(
        {phdr.p_vaddr, phdr.p_memsz, phdr.p_offset, phdr.p_filesz, (phdr.p_flags & PF_X) != 0});
  }
  std::sort(segments_.begin(), segments_.end(),
            [](const LoadSegment& a, const LoadSegment& b) { return a.vaddr < b.vaddr; });

  // A PIE is ET_DYN like a library; DF_1_PIE says which when the linker wrote
  // it. Without it, PT_INTERP is the hint (libc.so.6 has one but also no
  // DT_FLAGS_1, a known ambiguity we accept).
  is_program_ = ehdr.e_type == ET_EXEC || has_interp;
  if (ehdr.e_type == ET_DYN) {
    for (Elf_Scn* section = nullptr; (section = elf_nextscn(elf_, section)) != nullptr;) {
      GElf_Shdr shdr;
      if (gelf_getshdr(section, &shdr) == nullptr || shdr.sh_type != SHT_DYNAMIC) continue;
      Elf_Data* data = elf_getdata(section, nullptr);
      const size_t count = shdr.sh_entsize ? shdr.sh_size / shdr.sh_entsize : 0;
      for (size_t i = 0; data != nullptr && i < count; ++i) {
        GElf_Dyn dyn;
        if (gelf_getdyn(data, static_cast<int>(i), &dyn) == nullptr) break;
        if (dyn.d_tag == DT_FLAGS_1) is_program_ = (dyn.d_un.d_val & DF_1_PIE) != 0;
      }
    }
  }

  if (Status status = LoadSymbols(); !status.ok()) return status;
  return LoadPatchableEntries();
}

Status ElfImage::LoadSymbols() {
  Elf_Scn* symtab = nullptr;
  Elf_Scn* dynsym = nullptr;
  for (Elf_Scn* section = nullptr; (section = elf_nextscn(elf_, section)) != nullptr;) {
    GElf_Shdr shdr;
    if (gelf_getshdr(section, &shdr) == nullptr) continue;
    if (shdr.sh_type == SHT_SYMTAB) symtab = section;
    if (shdr.sh_type == SHT_DYNSYM) dynsym = section;
  }
  Elf_Scn* table = symtab ? symtab : dynsym;
  if (table == nullptr) return Status::Ok();  // stripped: functions get inferred names

  GElf_Shdr shdr;
  gelf_getshdr(table, &shdr);
  Elf_Data* data = elf_getdata(table, nullptr);
  // Read in place (x86-64 only: the file's symbols are already in the host's
  // layout, and libelf hands them over as Elf64_Sym): no per-symbol libelf call.
  if (data == nullptr || data->d_buf == nullptr || data->d_type != ELF_T_SYM) return Status::Ok();
  const size_t count = std::min<size_t>(shdr.sh_entsize ? shdr.sh_size / shdr.sh_entsize : 0,
                                        data->d_size / sizeof(Elf64_Sym));
  // The names: the linked string table, as elf_strptr() would check it (a
  // string table section, the name inside it and NUL-terminated there).
  std::string_view strings;
  GElf_Shdr strings_header;
  if (Elf_Scn* scn = elf_getscn(elf_, shdr.sh_link);
      scn != nullptr && gelf_getshdr(scn, &strings_header) != nullptr &&
      strings_header.sh_type == SHT_STRTAB) {
    if (Elf_Data* names = elf_getdata(scn, nullptr); names != nullptr && names->d_buf != nullptr) {
      strings = std::string_view(static_cast<const char*>(names->d_buf),
                                 std::min<uint64_t>(names->d_size, strings_header.sh_size));
    }
  }
  // Whether each section holds code, looked up once per section index.
  std::vector<signed char> executable_section;  // -1: not looked up yet
  auto is_executable = [&](size_t index) {
    if (index == SHN_UNDEF || index >= SHN_LORESERVE) return false;  // SHN_ABS, SHN_COMMON, ...
    if (index >= executable_section.size()) executable_section.resize(index + 1, -1);
    if (executable_section[index] < 0) {
      GElf_Shdr section;
      Elf_Scn* scn = elf_getscn(elf_, index);
      executable_section[index] =
          scn != nullptr && gelf_getshdr(scn, &section) != nullptr &&
          (section.sh_flags & SHF_EXECINSTR) != 0;
    }
    return executable_section[index] == 1;
  };
  const auto* raw = static_cast<const char*>(data->d_buf);
  for (size_t i = 0; i < count; ++i) {
    Elf64_Sym sym;
    std::memcpy(&sym, raw + i * sizeof sym, sizeof sym);
    // IFUNC symbols name a resolver, never a patchable function of their own.
    if (ELF64_ST_TYPE(sym.st_info) != STT_FUNC) continue;
    if (sym.st_shndx == SHN_UNDEF || sym.st_value == 0) continue;
    if (sym.st_name >= strings.size()) continue;
    const std::string_view rest = strings.substr(sym.st_name);
    const size_t length = strnlen(rest.data(), rest.size());
    if (length == 0 || length == rest.size()) continue;  // empty, or not terminated
    const unsigned bind = ELF64_ST_BIND(sym.st_info);
    symbols_.push_back({sym.st_value, sym.st_size, bind == STB_GLOBAL || bind == STB_WEAK,
                        is_executable(sym.st_shndx), rest.substr(0, length)});
  }
  std::sort(symbols_.begin(), symbols_.end(),
            [](const FunctionSymbol& a, const FunctionSymbol& b) { return a.value < b.value; });
  return Status::Ok();
}

Status ElfImage::LoadPatchableEntries() {
  size_t shstrndx = 0;
  if (elf_getshdrstrndx(elf_, &shstrndx) != 0) {
    return Status(Errc::kElf, ElfError(path_, "bad section header string table"));
  }
  struct Range {
    uint64_t addr, size;
    size_t first;  // index in patchable_entries_ of this section's first value
  };
  std::vector<Range> ranges;
  for (Elf_Scn* section = nullptr; (section = elf_nextscn(elf_, section)) != nullptr;) {
    if (SectionName(elf_, shstrndx, section) != kPatchableSection) continue;
    has_patchable_section_ = true;
    GElf_Shdr shdr;
    if (gelf_getshdr(section, &shdr) == nullptr || shdr.sh_type == SHT_NOBITS) continue;
    Elf_Data* data = elf_rawdata(section, nullptr);
    if (data == nullptr || data->d_buf == nullptr) continue;
    ranges.push_back({shdr.sh_addr, data->d_size, patchable_entries_.size()});
    for (size_t offset = 0; offset + 8 <= data->d_size; offset += 8) {
      uint64_t value;
      std::memcpy(&value, static_cast<const char*>(data->d_buf) + offset, 8);  // LE host
      patchable_entries_.push_back(value);
    }
  }
  if (ranges.empty()) return Status::Ok();

  // The loader's view: dynamic relocations that target the section overwrite
  // the in-file values (which lld leaves 0). r_offset is a virtual address in
  // linked files.
  for (Elf_Scn* section = nullptr; (section = elf_nextscn(elf_, section)) != nullptr;) {
    GElf_Shdr shdr;
    if (gelf_getshdr(section, &shdr) == nullptr || shdr.sh_type != SHT_RELA) continue;
    Elf_Data* data = elf_getdata(section, nullptr);
    if (data == nullptr) continue;
    Elf_Scn* symbols = shdr.sh_link ? elf_getscn(elf_, shdr.sh_link) : nullptr;
    Elf_Data* symbol_data = symbols ? elf_getdata(symbols, nullptr) : nullptr;
    const size_t count = shdr.sh_entsize ? shdr.sh_size / shdr.sh_entsize : 0;
    for (size_t i = 0; i < count; ++i) {
      GElf_Rela rela;
      if (gelf_getrela(data, static_cast<int>(i), &rela) == nullptr) break;
      const unsigned type = GELF_R_TYPE(rela.r_info);
      if (type != R_X86_64_RELATIVE && type != R_X86_64_64) continue;
      for (const Range& range : ranges) {
        // (Subtractions, not sums: a damaged r_offset near 2^64 must not wrap.)
        if (rela.r_offset < range.addr || range.size < 8 ||
            rela.r_offset - range.addr > range.size - 8) {
          continue;
        }
        uint64_t& value = patchable_entries_[range.first + (rela.r_offset - range.addr) / 8];
        if (type == R_X86_64_RELATIVE) {
          value = static_cast<uint64_t>(rela.r_addend);
        } else {
          GElf_Sym sym;
          if (symbol_data == nullptr ||
              gelf_getsym(symbol_data, static_cast<int>(GELF_R_SYM(rela.r_info)), &sym) ==
                  nullptr ||
              sym.st_shndx == SHN_UNDEF) {
            break;  // defined elsewhere: no address we could know from this file
          }
          value = sym.st_value + static_cast<uint64_t>(rela.r_addend);
        }
        break;
      }
    }
  }
  // A 0 is a function the linker discarded (--gc-sections) but left listed.
  std::erase(patchable_entries_, 0);
  std::sort(patchable_entries_.begin(), patchable_entries_.end());
  patchable_entries_.erase(std::unique(patchable_entries_.begin(), patchable_entries_.end()),
                           patchable_entries_.end());
  return Status::Ok();
}

uint64_t ElfImage::low_address() const noexcept {
  return segments_.empty() ? 0 : segments_.front().vaddr;
}

uint64_t ElfImage::high_address() const noexcept {
  uint64_t high = 0;
  for (const LoadSegment& segment : segments_) high = std::max(high, segment.vaddr + segment.memsz);
  return high;
}

bool ElfImage::HasSection(std::string_view name) const {
  size_t shstrndx = 0;
  if (elf_getshdrstrndx(elf_, &shstrndx) != 0) return false;
  for (Elf_Scn* section = nullptr; (section = elf_nextscn(elf_, section)) != nullptr;) {
    if (SectionName(elf_, shstrndx, section) == name) return true;
  }
  return false;
}

const LoadSegment* ElfImage::SegmentContaining(uint64_t vaddr) const noexcept {
  for (const LoadSegment& segment : segments_) {
    if (vaddr >= segment.vaddr && vaddr - segment.vaddr < segment.filesz) return &segment;
  }
  return nullptr;
}

size_t ElfImage::ReadAt(uint64_t vaddr, std::span<uint8_t> out) const noexcept {
  const LoadSegment* segment = SegmentContaining(vaddr);
  if (segment == nullptr) return 0;
  const uint64_t offset = segment->offset + (vaddr - segment->vaddr);
  if (offset >= raw_size_) return 0;
  const uint64_t available =
      std::min<uint64_t>(segment->filesz - (vaddr - segment->vaddr), raw_size_ - offset);
  const size_t count = static_cast<size_t>(std::min<uint64_t>(available, out.size()));
  // An empty span may have a null data(): memcpy(nullptr, ..., 0) is still
  // undefined behaviour (UBSan reports it; a zero-byte prefix makes one).
  if (count != 0) std::memcpy(out.data(), raw_ + offset, count);
  return count;
}

}  // namespace padhook::elf
