// tools/padhook/trace_reader.h — reading the traces `padhook record` writes
// (docs/trace-format.md): the directory, the process images, their function
// tables, and each thread's event file.
//
// Three layers, each usable alone:
//  1. ParseEventHeader / EventDecoder: pure functions over the bytes of one
//     events file. They never allocate per event, never read out of bounds,
//     and never throw (a fuzz target calls them on arbitrary bytes).
//  2. MatchCalls: pairs exits with entries on one thread's event stream and
//     hands finished calls to a sink (a template argument, so the per-event
//     work inlines).
//  3. Trace: the directory (record.json, *.process.json, *.functions,
//     *.events), with every function of every image mapped to one global
//     index so that processes forked from one program share their functions.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace padhook::trace {

// ---- Layer 1: one events file, as bytes ----

inline constexpr uint32_t kHeaderSize = 64;
inline constexpr uint32_t kFormatVersion = 1;
inline constexpr char kEventMagic[8] = {'P', 'H', 'E', 'V', 'E', 'N', 'T', '1'};
inline constexpr uint32_t kFunctionIdLimit = 1u << 22;
inline constexpr uint64_t kFlagClosed = 1;

// Event word layout.
inline constexpr uint64_t kKindSpecial = 0, kKindEntry = 1, kKindExit = 2, kKindUnwound = 3;
inline constexpr uint64_t kSubKindTime = 1, kSubKindLost = 2;

struct EventHeader {
  uint32_t version = 0;
  uint32_t header_size = 0;
  uint32_t pid = 0;
  uint32_t tid = 0;
  uint64_t base_time = 0;
  uint64_t events_lost = 0;
  uint64_t flags = 0;
  std::string thread_name;
  bool closed() const { return (flags & kFlagClosed) != 0; }
};

// Parses the 64-byte header at the start of `bytes`. Returns an error
// message "<file>: byte <offset>: <what>" (a bad magic, version or header
// size, or a file shorter than its header), or nothing on success.
std::optional<std::string> ParseEventHeader(std::span<const uint8_t> bytes, std::string_view file,
                                            EventHeader* header);

enum class EventType : uint8_t { kEntry, kExit, kUnwound, kLost };

struct Event {
  EventType type;
  uint32_t function;  // entries and exits
  uint64_t time;      // ns, CLOCK_MONOTONIC
  uint64_t lost;      // kLost: events dropped
};

// Decodes the event words after the header. Stops at the first zero word,
// at the end of the bytes (a trailing partial word is ignored), or at an
// unknown special sub-kind or a time word without its time, which sets
// warning() ("<file>: byte <offset>: ...").
class EventDecoder {
 public:
  EventDecoder(std::span<const uint8_t> bytes, uint64_t base_time, std::string_view file)
      : data_(bytes.data()),
        end_(bytes.size() < kHeaderSize ? 0 : (bytes.size() - kHeaderSize) / 8 * 8 + kHeaderSize),
        offset_(bytes.size() < kHeaderSize ? 0 : kHeaderSize),
        time_(base_time),
        file_(file) {}

  // The next event, or false at the end of the readable data.
  bool Next(Event& event) {
    while (offset_ < end_) {
      const uint64_t word = Load(offset_);
      const uint64_t kind = word & 3;
      if (kind != kKindSpecial) {
        time_ += word >> 24;
        offset_ += 8;
        event.type = kind == kKindEntry  ? EventType::kEntry
                     : kind == kKindExit ? EventType::kExit
                                         : EventType::kUnwound;
        event.function = static_cast<uint32_t>((word >> 2) & (kFunctionIdLimit - 1));
        event.time = time_;
        event.lost = 0;
        return true;
      }
      if (word == 0) {  // the end of the data
        end_ = offset_;
        return false;
      }
      switch (Special(word, event)) {
        case SpecialResult::kStop:
          return false;
        case SpecialResult::kLost:
          return true;
        case SpecialResult::kTime:
          break;
      }
    }
    return false;
  }

  // Where the next word would be read (the end of the data once Next failed).
  uint64_t offset() const { return offset_; }
  // The time of the last event decoded (the base time before any).
  uint64_t time() const { return time_; }
  // Why decoding stopped before the end of the data, or empty.
  const std::string& warning() const { return warning_; }

 private:
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the format is little-endian");
  uint64_t Load(uint64_t offset) const {
    uint64_t word;
    std::memcpy(&word, data_ + offset, sizeof word);
    return word;
  }
  enum class SpecialResult { kStop, kTime, kLost };
  // The special word at offset_: a time word (consumed), a lost word (fills
  // `event`), or an unknown sub-kind (stops with a warning).
  SpecialResult Special(uint64_t word, Event& event);

  const uint8_t* data_;
  uint64_t end_;
  uint64_t offset_;
  uint64_t time_;
  std::string_view file_;
  std::string warning_;
};

// ---- Layer 2: exits matched with entries ----

struct OpenCall {
  uint32_t function;    // the raw function id of the event
  uint64_t entry;       // entry time
  uint64_t child_time;  // the durations of the calls it made so far
};

enum class CallEnd : uint8_t {
  kReturned,     // its exit
  kUnwound,      // an exit by unwinding (exception, longjmp, thread exit)
  kExitMissing,  // an exit of a caller came first: its own exit was lost
  kUnfinished,   // still open at the end of the data (ends at the last event)
};

struct MatchCounts {
  uint64_t events = 0;         // entries and exits decoded
  uint64_t calls = 0;          // calls ended, any way
  uint64_t unwound = 0;        // ... of which by unwinding
  uint64_t exits_missing = 0;  // ... of which ended by a caller's exit
  uint64_t unfinished = 0;     // ... of which open at the end
  uint64_t exits_without_entry = 0;
  uint64_t lost_words = 0;   // lost markers met
  uint64_t events_lost = 0;  // the sum of their counts
  uint64_t first_time = 0, last_time = 0;
  size_t max_depth = 0;
};

// Per-function open-call counters, indexed by raw function id; reused across
// threads (every count is back to zero when MatchCalls returns). calloc'ed:
// the pages of ids never seen are never touched.
class OpenCounts {
 public:
  OpenCounts() : counts_(static_cast<uint32_t*>(std::calloc(kFunctionIdLimit, sizeof(uint32_t)))) {
    if (counts_ == nullptr) throw std::bad_alloc();
  }
  ~OpenCounts() { std::free(counts_); }
  OpenCounts(const OpenCounts&) = delete;
  OpenCounts& operator=(const OpenCounts&) = delete;
  uint32_t& operator[](uint32_t function) { return counts_[function]; }

 private:
  uint32_t* counts_;
};

// A sink has:
//   void Enter(const OpenCall& call, size_t depth);            // depth 0: outermost
//   void Leave(const OpenCall& call, size_t depth, uint64_t end, CallEnd how,
//              bool outermost);   // outermost: no other call of it is open below
//   void ExitWithoutEntry(uint32_t function, uint64_t time, bool unwound);
//   void Lost(uint64_t count, uint64_t time, size_t depth);
//
// An exit matches the innermost open call of its function: the calls above
// that one lost their exits (they end there, kExitMissing). An exit of a
// function with no open call is counted and skipped.
template <class Sink>
MatchCounts MatchCalls(EventDecoder& decoder, Sink& sink, OpenCounts& open) {
  MatchCounts counts;
  std::vector<OpenCall> stack;
  stack.reserve(256);
  Event event;
  bool first = true;
  while (decoder.Next(event)) {
    if (first) counts.first_time = event.time, first = false;
    counts.last_time = event.time;
    switch (event.type) {
      case EventType::kEntry:
        ++counts.events;
        ++open[event.function];
        stack.push_back(OpenCall{event.function, event.time, 0});
        sink.Enter(stack.back(), stack.size() - 1);
        if (stack.size() > counts.max_depth) counts.max_depth = stack.size();
        break;
      case EventType::kExit:
      case EventType::kUnwound: {
        ++counts.events;
        const bool unwound = event.type == EventType::kUnwound;
        if (open[event.function] == 0) {
          ++counts.exits_without_entry;
          sink.ExitWithoutEntry(event.function, event.time, unwound);
          break;
        }
        for (;;) {
          OpenCall& call = stack.back();
          const bool match = call.function == event.function;
          const uint64_t duration = event.time > call.entry ? event.time - call.entry : 0;
          const bool outermost = --open[call.function] == 0;
          const CallEnd how = !match    ? CallEnd::kExitMissing
                              : unwound ? CallEnd::kUnwound
                                        : CallEnd::kReturned;
          ++counts.calls;
          if (how == CallEnd::kUnwound) ++counts.unwound;
          if (how == CallEnd::kExitMissing) ++counts.exits_missing;
          sink.Leave(call, stack.size() - 1, event.time, how, outermost);
          stack.pop_back();
          if (!stack.empty()) stack.back().child_time += duration;
          if (match) break;
        }
        break;
      }
      case EventType::kLost:
        ++counts.lost_words;
        counts.events_lost += event.lost;
        sink.Lost(event.lost, event.time, stack.size());
        break;
    }
  }
  while (!stack.empty()) {
    OpenCall& call = stack.back();
    const uint64_t duration = counts.last_time > call.entry ? counts.last_time - call.entry : 0;
    const bool outermost = --open[call.function] == 0;
    ++counts.calls;
    ++counts.unfinished;
    sink.Leave(call, stack.size() - 1, counts.last_time, CallEnd::kUnfinished, outermost);
    stack.pop_back();
    if (!stack.empty()) stack.back().child_time += duration;
  }
  return counts;
}

// ---- Layer 3: the trace directory ----

// Fatal problems reading a trace: the message names the file (and offset).
class TraceError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A read-only mapping of a whole file (empty files map to an empty span).
class MappedFile {
 public:
  explicit MappedFile(const std::filesystem::path& path);  // throws TraceError
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  std::span<const uint8_t> bytes() const { return {data_, size_}; }

 private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

struct ModuleDef {
  uint32_t id = 0;
  uint64_t load_bias = 0;
  std::string path;
};

struct FunctionDef {
  uint32_t id = 0;
  uint32_t module = 0;
  uint64_t offset = 0;
  uint64_t size = 0;
  std::string name;
};

// One function of the whole trace (images that share a module share it).
struct GlobalFunction {
  std::string name;
  std::string module;  // the module's path, or "" when unknown
  uint64_t offset = 0;
  bool known = true;  // false: an id the function table never defined
};

struct ThreadFile {
  std::filesystem::path path;
  uint32_t tid = 0;  // from the file name
  EventHeader header;
  uint64_t file_size = 0;
};

struct ProcessImage {
  std::string key;
  std::filesystem::path process_json;
  // Fields of <key>.process.json (defaults when missing).
  int64_t pid = 0, ppid = 0;
  std::optional<std::string> exec_of;
  std::string program;
  std::vector<std::string> argv;
  uint64_t start_ns = 0;
  bool ended = false;
  std::optional<int64_t> exit_status;
  uint64_t functions_patched = 0, events_lost = 0, exits_lost = 0;

  std::vector<ModuleDef> modules;
  std::map<uint32_t, FunctionDef> functions;  // by id; the last definition wins
  std::vector<uint32_t> global;               // raw id -> global index (kNoFunction: none)
  std::vector<ThreadFile> threads;            // ordered by base time, then tid
};

struct RecordInfo {
  std::vector<std::string> command;
  uint64_t start_ns = 0, end_ns = 0;
  std::optional<int64_t> exit_status;
  std::optional<int64_t> signal;
  std::string signal_name;
};

inline constexpr uint32_t kNoFunction = UINT32_MAX;

class Trace {
 public:
  // Reads the directory's metadata and the events files' headers: throws
  // TraceError when it is missing, not a directory, or holds no process
  // image.
  static Trace Open(const std::filesystem::path& dir);

  const std::filesystem::path& dir() const { return dir_; }
  const std::optional<RecordInfo>& record() const { return record_; }
  const std::vector<ProcessImage>& images() const { return images_; }
  const std::vector<GlobalFunction>& functions() const { return functions_; }
  // Non-fatal problems found while opening (bad lines, stray files).
  const std::vector<std::string>& warnings() const { return warnings_; }
  // Files that could not be read at all (a bad events header: the message
  // names the file and byte offset); they are left out of images().
  const std::vector<std::string>& errors() const { return errors_; }

  // The global index of raw function id `id` of image `image`; an id the
  // table never defined gets an entry of its own ("<unknown function #id>").
  uint32_t Resolve(size_t image, uint32_t id) {
    const std::vector<uint32_t>& map = images_[image].global;
    if (id < map.size() && map[id] != kNoFunction) return map[id];
    return ResolveUnknown(image, id);
  }

  // The earliest time of the trace (record start, else the earliest process
  // start, else 0): the origin of exported time stamps.
  uint64_t origin_ns() const;

  // Maps a thread's file and checks its header (throws TraceError).
  struct OpenedThread {
    std::unique_ptr<MappedFile> file;
    EventHeader header;
  };
  static OpenedThread OpenThread(const ThreadFile& thread);

 private:
  uint32_t ResolveUnknown(size_t image, uint32_t id);
  void LoadRecord();
  void LoadImage(const std::filesystem::path& process_json);
  void LoadFunctions(ProcessImage& image, const std::filesystem::path& path);
  void LinkFunctions();

  std::filesystem::path dir_;
  std::optional<RecordInfo> record_;
  std::vector<ProcessImage> images_;
  std::vector<GlobalFunction> functions_;
  std::map<std::tuple<std::string, uint64_t, std::string>, uint32_t> by_identity_;
  std::vector<std::string> warnings_;
  std::vector<std::string> errors_;
};

}  // namespace padhook::trace
