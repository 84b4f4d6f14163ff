// tests/tracer/synthetic_trace.h — writes trace directories exactly as
// docs/trace-format.md describes them, independently of libpadhook-trace, so
// the readers can be tested (and benchmarked) on traces whose every byte and
// time is known.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace padhook::synthetic {

inline constexpr uint64_t kDeltaLimit = uint64_t{1} << 40;

inline uint64_t EventWord(uint64_t kind, uint32_t function, uint64_t delta) {
  return kind | (uint64_t{function} << 2) | (delta << 24);
}
inline uint64_t SpecialWord(uint64_t sub_kind, uint64_t payload) {
  return (sub_kind << 2) | (payload << 24);
}

// One thread's events file.
class ThreadEvents {
 public:
  ThreadEvents(uint32_t pid, uint32_t tid, uint64_t base_time, std::string name = "")
      : pid_(pid), tid_(tid), base_time_(base_time), time_(base_time), name_(std::move(name)) {}

  void Entry(uint32_t function, uint64_t time) { Event(1, function, time); }
  void Exit(uint32_t function, uint64_t time) { Event(2, function, time); }
  void Unwound(uint32_t function, uint64_t time) { Event(3, function, time); }
  void Lost(uint64_t count) { words_.push_back(SpecialWord(2, count)); }
  // Any word, as is (for corrupt inputs).
  void Raw(uint64_t word) { words_.push_back(word); }

  uint64_t time() const { return time_; }
  size_t word_count() const { return words_.size(); }

  // The file's bytes: header, words, then `zero_words` zero words (the
  // unwritten rest of a chunk of a killed process).
  std::vector<uint8_t> Bytes(bool closed, uint64_t events_lost = 0, size_t zero_words = 0) const {
    std::vector<uint8_t> bytes(64 + (words_.size() + zero_words) * 8, 0);
    std::memcpy(bytes.data(), "PHEVENT1", 8);
    Put32(bytes, 8, 1);
    Put32(bytes, 12, 64);
    Put32(bytes, 16, pid_);
    Put32(bytes, 20, tid_);
    Put64(bytes, 24, base_time_);
    Put64(bytes, 32, events_lost);
    Put64(bytes, 40, closed ? 1 : 0);
    std::memcpy(bytes.data() + 48, name_.data(), std::min<size_t>(name_.size(), 16));
    for (size_t i = 0; i < words_.size(); ++i) Put64(bytes, 64 + i * 8, words_[i]);
    return bytes;
  }

  void Write(const std::filesystem::path& dir, const std::string& key, bool closed,
             uint64_t events_lost = 0, size_t zero_words = 0) const {
    WriteFile(dir / (key + "-" + std::to_string(tid_) + ".events"),
              Bytes(closed, events_lost, zero_words));
  }

  static void WriteFile(const std::filesystem::path& path, const std::vector<uint8_t>& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    if (!out) throw std::runtime_error("cannot write " + path.string());
  }

 private:
  void Event(uint64_t kind, uint32_t function, uint64_t time) {
    if (time < time_) throw std::logic_error("synthetic events must not go back in time");
    uint64_t delta = time - time_;
    if (delta >= kDeltaLimit) {  // the time word: the next word is absolute
      words_.push_back(SpecialWord(1, 0));
      words_.push_back(time);
      delta = 0;
    }
    words_.push_back(EventWord(kind, function, delta));
    time_ = time;
  }
  static void Put32(std::vector<uint8_t>& b, size_t at, uint32_t v) { std::memcpy(&b[at], &v, 4); }
  static void Put64(std::vector<uint8_t>& b, size_t at, uint64_t v) { std::memcpy(&b[at], &v, 8); }

  uint32_t pid_, tid_;
  uint64_t base_time_, time_;
  std::string name_;
  std::vector<uint64_t> words_;
};

// One process image: its process.json and its functions file.
struct Process {
  std::string key;
  int64_t pid = 0, ppid = 0;
  std::string exec_of;  // "" for null
  std::string program;
  std::vector<std::string> argv;
  uint64_t start_ns = 0;
  bool ended = true;
  int64_t exit_status = 0;
  uint64_t functions_patched = 0, events_lost = 0, exits_lost = 0;
  std::string functions;  // the .functions text

  void Module(uint32_t id, uint64_t bias, const std::string& path) {
    char line[64];
    std::snprintf(line, sizeof line, "M\t%u\t%llx\t", id, static_cast<unsigned long long>(bias));
    functions += line + path + "\n";
  }
  void Function(uint32_t id, uint32_t module, uint64_t offset, uint64_t size,
                const std::string& name) {
    char line[96];
    std::snprintf(line, sizeof line, "F\t%u\t%u\t%llx\t%llu\t", id, module,
                  static_cast<unsigned long long>(offset), static_cast<unsigned long long>(size));
    functions += line + name + "\n";
  }

  void Write(const std::filesystem::path& dir) const {
    std::string json = "{\"version\": 1, \"key\": \"" + key +
                       "\", \"pid\": " + std::to_string(pid) +
                       ", \"ppid\": " + std::to_string(ppid) +
                       ", \"exec_of\": " + (exec_of.empty() ? "null" : "\"" + exec_of + "\"") +
                       ", \"program\": \"" + program + "\", \"argv\": [";
    for (size_t i = 0; i < argv.size(); ++i) json += (i ? ", \"" : "\"") + argv[i] + "\"";
    json += "], \"start_ns\": " + std::to_string(start_ns) +
            ", \"clock\": \"CLOCK_MONOTONIC\", \"ended\": " + (ended ? "true" : "false") +
            ", \"exit_status\": " + (ended ? std::to_string(exit_status) : "null") +
            ", \"functions_patched\": " + std::to_string(functions_patched) +
            ", \"events_lost\": " + std::to_string(events_lost) +
            ", \"exits_lost\": " + std::to_string(exits_lost) + "}\n";
    std::ofstream(dir / (key + ".process.json")) << json;
    std::ofstream(dir / (key + ".functions")) << functions;
  }
};

// record.json; signal 0 means null.
inline void WriteRecordJson(const std::filesystem::path& dir,
                            const std::vector<std::string>& command, uint64_t start_ns,
                            uint64_t end_ns, int exit_status, int signal,
                            const std::string& signal_name) {
  std::string json = "{\"version\": 1, \"command\": [";
  for (size_t i = 0; i < command.size(); ++i) json += (i ? ", \"" : "\"") + command[i] + "\"";
  json +=
      "], \"start_ns\": " + std::to_string(start_ns) + ", \"end_ns\": " + std::to_string(end_ns);
  if (signal != 0) {
    json += ", \"exit_status\": null, \"signal\": " + std::to_string(signal) +
            ", \"signal_name\": \"" + signal_name + "\"}\n";
  } else {
    json += ", \"exit_status\": " + std::to_string(exit_status) +
            ", \"signal\": null, \"signal_name\": null}\n";
  }
  std::ofstream(dir / "record.json") << json;
}

}  // namespace padhook::synthetic
