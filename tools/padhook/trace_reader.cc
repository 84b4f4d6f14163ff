// tools/padhook/trace_reader.cc — see trace_reader.h and docs/trace-format.md.
#include "trace_reader.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <system_error>

namespace padhook::trace {
namespace {

namespace fs = std::filesystem;

uint32_t Load32(const uint8_t* p) {
  uint32_t value;
  std::memcpy(&value, p, sizeof value);
  return value;
}

uint64_t Load64(const uint8_t* p) {
  uint64_t value;
  std::memcpy(&value, p, sizeof value);
  return value;
}

std::string Located(std::string_view file, uint64_t offset, const std::string& what) {
  return std::string(file) + ": byte " + std::to_string(offset) + ": " + what;
}

// Bytes shown in a message: printable ASCII as is, the rest as \xNN.
std::string Printable(const uint8_t* p, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\') {
      out += static_cast<char>(p[i]);
    } else {
      char buffer[8];
      std::snprintf(buffer, sizeof buffer, "\\x%02x", p[i]);
      out += buffer;
    }
  }
  return out;
}

std::string ErrnoText(int error) {
  return std::error_code(error, std::generic_category()).message();
}

}  // namespace

std::optional<std::string> ParseEventHeader(std::span<const uint8_t> bytes, std::string_view file,
                                            EventHeader* header) {
  if (bytes.size() < kHeaderSize) {
    return Located(file, bytes.size(),
                   "the file ends inside its " + std::to_string(kHeaderSize) +
                       "-byte header (it has " + std::to_string(bytes.size()) + " bytes)");
  }
  const uint8_t* p = bytes.data();
  if (std::memcmp(p, kEventMagic, sizeof kEventMagic) != 0) {
    return Located(file, 0,
                   "bad magic \"" + Printable(p, 8) +
                       "\" (expected \"PHEVENT1\"): not a padhook "
                       "events file");
  }
  const uint32_t version = Load32(p + 8);
  if (version != kFormatVersion) {
    return Located(file, 8,
                   "unsupported version " + std::to_string(version) + " (this reader knows " +
                       std::to_string(kFormatVersion) + ")");
  }
  const uint32_t header_size = Load32(p + 12);
  if (header_size != kHeaderSize) {
    return Located(file, 12,
                   "bad header size " + std::to_string(header_size) + " (expected " +
                       std::to_string(kHeaderSize) + ")");
  }
  header->version = version;
  header->header_size = header_size;
  header->pid = Load32(p + 16);
  header->tid = Load32(p + 20);
  header->base_time = Load64(p + 24);
  header->events_lost = Load64(p + 32);
  header->flags = Load64(p + 40);
  const char* name = reinterpret_cast<const char*>(p + 48);
  header->thread_name.assign(name, strnlen(name, 16));
  return std::nullopt;
}

EventDecoder::SpecialResult EventDecoder::Special(uint64_t word, Event& event) {
  const uint64_t sub_kind = (word >> 2) & 0xff;
  if (sub_kind == kSubKindTime) {
    if (offset_ + 16 > end_) {
      warning_ = Located(file_, offset_,
                         "a time word without the time after it (the file ends); the data ends "
                         "here");
      end_ = offset_;
      return SpecialResult::kStop;
    }
    const uint64_t time = Load(offset_ + 8);
    if (time == 0) {  // the writer stopped between the two words: the end of the data
      end_ = offset_;
      return SpecialResult::kStop;
    }
    time_ = time;
    offset_ += 16;
    return SpecialResult::kTime;
  }
  if (sub_kind == kSubKindLost) {
    event.type = EventType::kLost;
    event.function = 0;
    event.time = time_;
    event.lost = word >> 24;
    offset_ += 8;
    return SpecialResult::kLost;
  }
  char hex[24];
  std::snprintf(hex, sizeof hex, "0x%016llx", static_cast<unsigned long long>(word));
  warning_ = Located(file_, offset_,
                     "unknown special sub-kind " + std::to_string(sub_kind) + " (word " + hex +
                         "); the events after it are ignored");
  end_ = offset_;
  return SpecialResult::kStop;
}

// ---- MappedFile ----

MappedFile::MappedFile(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw TraceError(path.string() + ": cannot open: " + ErrnoText(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int error = errno;
    ::close(fd);
    throw TraceError(path.string() + ": cannot stat: " + ErrnoText(error));
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {
    void* map = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    if (map == MAP_FAILED) {
      const int error = errno;
      ::close(fd);
      throw TraceError(path.string() + ": cannot map: " + ErrnoText(error));
    }
    ::madvise(map, size_, MADV_SEQUENTIAL);
    data_ = static_cast<const uint8_t*>(map);
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
}

// ---- Trace ----

namespace {

template <class T>
T JsonOr(const nlohmann::json& object, const char* key, T fallback) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  try {
    return it->get<T>();
  } catch (const nlohmann::json::exception&) {
    return fallback;
  }
}

template <class T>
std::optional<T> JsonOptional(const nlohmann::json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return std::nullopt;
  try {
    return it->get<T>();
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

nlohmann::json ReadJson(const fs::path& path, std::vector<std::string>& warnings) {
  std::ifstream in(path);
  if (!in) {
    warnings.push_back(path.string() + ": cannot read: " + ErrnoText(errno));
    return nlohmann::json::object();
  }
  nlohmann::json value = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded() || !value.is_object()) {
    warnings.push_back(path.string() + ": not a JSON object; its fields are ignored");
    return nlohmann::json::object();
  }
  return value;
}

bool ParseUnsigned(std::string_view text, int base, uint64_t* value) {
  if (base == 16 && text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X'))
    text.remove_prefix(2);
  if (text.empty()) return false;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), *value, base);
  return error == std::errc() && end == text.data() + text.size();
}

// Splits `line` at tabs into at most `max` fields (the last takes the rest).
std::vector<std::string_view> SplitTabs(std::string_view line, size_t max) {
  std::vector<std::string_view> fields;
  while (fields.size() + 1 < max) {
    const size_t tab = line.find('\t');
    if (tab == std::string_view::npos) break;
    fields.push_back(line.substr(0, tab));
    line.remove_prefix(tab + 1);
  }
  fields.push_back(line);
  return fields;
}

// "<key>-<tid>.events" -> key, tid.
bool ParseEventsName(const std::string& name, std::string* key, uint32_t* tid) {
  constexpr std::string_view kSuffix = ".events";
  if (name.size() <= kSuffix.size() || !name.ends_with(kSuffix)) return false;
  const std::string stem = name.substr(0, name.size() - kSuffix.size());
  const size_t dash = stem.rfind('-');
  if (dash == std::string::npos || dash == 0) return false;
  uint64_t value = 0;
  if (!ParseUnsigned(std::string_view(stem).substr(dash + 1), 10, &value) || value > UINT32_MAX)
    return false;
  *key = stem.substr(0, dash);
  *tid = static_cast<uint32_t>(value);
  return true;
}

}  // namespace

Trace Trace::Open(const fs::path& dir) {
  std::error_code error;
  const fs::file_status status = fs::status(dir, error);
  if (!fs::exists(status)) {
    throw TraceError(dir.string() +
                     ": no such directory (record a trace with `padhook record -- PROGRAM`, or "
                     "name one with -i DIR)");
  }
  if (!fs::is_directory(status)) throw TraceError(dir.string() + ": not a directory");

  Trace trace;
  trace.dir_ = dir;
  std::vector<fs::path> process_files;
  std::map<std::string, std::vector<ThreadFile>> threads_by_key;
  size_t entries = 0;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, error)) {
    ++entries;
    const std::string name = entry.path().filename().string();
    std::string key;
    uint32_t tid = 0;
    if (name.ends_with(".process.json")) {
      process_files.push_back(entry.path());
    } else if (ParseEventsName(name, &key, &tid)) {
      ThreadFile thread;
      thread.path = entry.path();
      thread.tid = tid;
      threads_by_key[key].push_back(std::move(thread));
    }
  }
  if (error) throw TraceError(dir.string() + ": cannot list: " + error.message());
  if (process_files.empty()) {
    throw TraceError(dir.string() + (entries == 0 ? ": empty directory, not a padhook trace"
                                                  : ": not a padhook trace (no *.process.json "
                                                    "file)"));
  }
  std::sort(process_files.begin(), process_files.end());

  trace.LoadRecord();
  for (const fs::path& path : process_files) trace.LoadImage(path);

  for (ProcessImage& image : trace.images_) {
    auto it = threads_by_key.find(image.key);
    if (it == threads_by_key.end()) continue;
    image.threads = std::move(it->second);
    threads_by_key.erase(it);
    // A file with a bad header is an error, and left out: the other
    // threads stay readable (a writer killed before it wrote a header
    // leaves one such file).
    std::vector<ThreadFile> readable;
    for (ThreadFile& thread : image.threads) {
      // The header only: 64 bytes, no mapping.
      uint8_t bytes[kHeaderSize];
      std::ifstream in(thread.path, std::ios::binary);
      if (!in) {
        trace.errors_.push_back(thread.path.string() + ": cannot open: " + ErrnoText(errno));
        continue;
      }
      in.read(reinterpret_cast<char*>(bytes), sizeof bytes);
      const size_t got = static_cast<size_t>(in.gcount());
      thread.file_size = fs::file_size(thread.path, error);
      if (auto problem = ParseEventHeader({bytes, got}, thread.path.string(), &thread.header)) {
        trace.errors_.push_back(*problem + "; the file is left out");
        continue;
      }
      if (thread.header.tid != thread.tid) {
        trace.warnings_.push_back(thread.path.string() + ": byte 20: the header's tid " +
                                  std::to_string(thread.header.tid) +
                                  " differs from the file name's");
      }
      readable.push_back(std::move(thread));
    }
    image.threads = std::move(readable);
    // A process file without its fields (unreadable): the headers know the pid.
    if (image.pid == 0 && !image.threads.empty()) image.pid = image.threads.front().header.pid;
    std::sort(image.threads.begin(), image.threads.end(),
              [](const ThreadFile& a, const ThreadFile& b) {
                if (a.header.base_time != b.header.base_time)
                  return a.header.base_time < b.header.base_time;
                return a.tid < b.tid;
              });
  }
  for (const auto& [key, threads] : threads_by_key) {
    for (const ThreadFile& thread : threads) {
      trace.warnings_.push_back(thread.path.string() + ": no " + key +
                                ".process.json for it; the file is ignored");
    }
  }
  std::stable_sort(
      trace.images_.begin(), trace.images_.end(),
      [](const ProcessImage& a, const ProcessImage& b) { return a.start_ns < b.start_ns; });
  trace.LinkFunctions();
  return trace;
}

void Trace::LoadRecord() {
  const fs::path path = dir_ / "record.json";
  std::error_code error;
  if (!fs::exists(path, error)) return;
  const nlohmann::json json = ReadJson(path, warnings_);
  RecordInfo record;
  record.command = JsonOr<std::vector<std::string>>(json, "command", {});
  record.start_ns = JsonOr<uint64_t>(json, "start_ns", 0);
  record.end_ns = JsonOr<uint64_t>(json, "end_ns", 0);
  record.exit_status = JsonOptional<int64_t>(json, "exit_status");
  record.signal = JsonOptional<int64_t>(json, "signal");
  record.signal_name = JsonOr<std::string>(json, "signal_name", "");
  record_ = std::move(record);
}

void Trace::LoadImage(const fs::path& process_json) {
  ProcessImage image;
  image.process_json = process_json;
  const std::string name = process_json.filename().string();
  image.key = name.substr(0, name.size() - std::string_view(".process.json").size());
  const nlohmann::json json = ReadJson(process_json, warnings_);
  const std::string key = JsonOr<std::string>(json, "key", image.key);
  if (key != image.key) {
    warnings_.push_back(process_json.string() + ": its key \"" + key +
                        "\" differs from the file name's; the file name's is used");
  }
  image.pid = JsonOr<int64_t>(json, "pid", 0);
  image.ppid = JsonOr<int64_t>(json, "ppid", 0);
  image.exec_of = JsonOptional<std::string>(json, "exec_of");
  image.program = JsonOr<std::string>(json, "program", "");
  image.argv = JsonOr<std::vector<std::string>>(json, "argv", {});
  image.start_ns = JsonOr<uint64_t>(json, "start_ns", 0);
  image.ended = JsonOr<bool>(json, "ended", false);
  image.exit_status = JsonOptional<int64_t>(json, "exit_status");
  image.functions_patched = JsonOr<uint64_t>(json, "functions_patched", 0);
  image.events_lost = JsonOr<uint64_t>(json, "events_lost", 0);
  image.exits_lost = JsonOr<uint64_t>(json, "exits_lost", 0);
  const std::string clock = JsonOr<std::string>(json, "clock", "CLOCK_MONOTONIC");
  if (clock != "CLOCK_MONOTONIC") {
    warnings_.push_back(process_json.string() + ": clock \"" + clock +
                        "\": times are read as CLOCK_MONOTONIC");
  }
  LoadFunctions(image, dir_ / (image.key + ".functions"));
  images_.push_back(std::move(image));
}

void Trace::LoadFunctions(ProcessImage& image, const fs::path& path) {
  std::error_code error;
  if (!fs::exists(path, error)) {
    warnings_.push_back(path.string() + ": missing; functions of process " + image.key +
                        " are shown by id");
    return;
  }
  const MappedFile file(path);
  std::string_view text(reinterpret_cast<const char*>(file.bytes().data()), file.bytes().size());
  size_t line_number = 0;
  while (!text.empty()) {
    ++line_number;
    const size_t newline = text.find('\n');
    if (newline == std::string_view::npos) {
      warnings_.push_back(path.string() + ":" + std::to_string(line_number) +
                          ": the last line has no end (the writer was stopped); ignored");
      break;
    }
    const std::string_view line = text.substr(0, newline);
    text.remove_prefix(newline + 1);
    if (line.empty()) continue;
    auto bad = [&](const char* what) {
      warnings_.push_back(path.string() + ":" + std::to_string(line_number) + ": " + what +
                          "; line ignored");
    };
    if (line[0] == 'M') {
      const auto fields = SplitTabs(line, 4);
      uint64_t id = 0, bias = 0;
      if (fields.size() != 4 || fields[0] != "M" || !ParseUnsigned(fields[1], 10, &id) ||
          id > UINT32_MAX || !ParseUnsigned(fields[2], 16, &bias)) {
        bad("malformed M line (expected M<tab>id<tab>bias-hex<tab>path)");
        continue;
      }
      ModuleDef module{static_cast<uint32_t>(id), bias, std::string(fields[3])};
      auto it = std::find_if(image.modules.begin(), image.modules.end(),
                             [&](const ModuleDef& m) { return m.id == module.id; });
      if (it != image.modules.end())
        *it = std::move(module);
      else
        image.modules.push_back(std::move(module));
    } else if (line[0] == 'F') {
      const auto fields = SplitTabs(line, 6);
      uint64_t id = 0, module = 0, offset = 0, size = 0;
      if (fields.size() != 6 || fields[0] != "F" || !ParseUnsigned(fields[1], 10, &id) ||
          !ParseUnsigned(fields[2], 10, &module) || module > UINT32_MAX ||
          !ParseUnsigned(fields[3], 16, &offset) || !ParseUnsigned(fields[4], 10, &size)) {
        bad("malformed F line (expected F<tab>id<tab>module<tab>offset-hex<tab>size<tab>name)");
        continue;
      }
      if (id >= kFunctionIdLimit) {
        bad("function id out of range (ids are below 2^22)");
        continue;
      }
      image.functions[static_cast<uint32_t>(id)] =
          FunctionDef{static_cast<uint32_t>(id), static_cast<uint32_t>(module), offset, size,
                      std::string(fields[5])};
    } else {
      bad("unknown record type (expected M or F)");
    }
  }
}

void Trace::LinkFunctions() {
  for (ProcessImage& image : images_) {
    const uint32_t limit = image.functions.empty() ? 0 : image.functions.rbegin()->first + 1;
    image.global.assign(limit, kNoFunction);
    for (const auto& entry : image.functions) {
      const uint32_t id = entry.first;
      const FunctionDef& function = entry.second;  // (clang 14: no lambda capture of bindings)
      auto module = std::find_if(image.modules.begin(), image.modules.end(),
                                 [&](const ModuleDef& m) { return m.id == function.module; });
      std::string module_path = module != image.modules.end() ? module->path : "";
      auto identity = std::make_tuple(module_path, function.offset, function.name);
      auto [it, inserted] =
          by_identity_.emplace(identity, static_cast<uint32_t>(functions_.size()));
      if (inserted) {
        functions_.push_back(
            GlobalFunction{function.name, std::move(module_path), function.offset});
      }
      image.global[id] = it->second;
    }
  }
}

uint32_t Trace::ResolveUnknown(size_t image_index, uint32_t id) {
  ProcessImage& image = images_[image_index];
  std::string name = "<unknown function #" + std::to_string(id) + ">";
  auto identity = std::make_tuple("<image " + image.key + ">", uint64_t{id}, name);
  auto [it, inserted] = by_identity_.emplace(identity, static_cast<uint32_t>(functions_.size()));
  if (inserted) functions_.push_back(GlobalFunction{std::move(name), "", 0, false});
  if (id >= image.global.size()) image.global.resize(id + 1, kNoFunction);
  image.global[id] = it->second;
  return it->second;
}

uint64_t Trace::origin_ns() const {
  if (record_ && record_->start_ns != 0) return record_->start_ns;
  uint64_t origin = UINT64_MAX;
  for (const ProcessImage& image : images_) {
    if (image.start_ns != 0) origin = std::min(origin, image.start_ns);
    for (const ThreadFile& thread : image.threads)
      origin = std::min(origin, thread.header.base_time);
  }
  return origin == UINT64_MAX ? 0 : origin;
}

Trace::OpenedThread Trace::OpenThread(const ThreadFile& thread) {
  OpenedThread opened;
  opened.file = std::make_unique<MappedFile>(thread.path);
  if (auto problem = ParseEventHeader(opened.file->bytes(), thread.path.string(), &opened.header))
    throw TraceError(*problem);
  return opened;
}

}  // namespace padhook::trace
