// tools/padhook/trace_command.h — what the trace-reading subcommands share:
// the input option, error reporting, duration formatting, a buffered output
// stream, and the calling-context tree of `graph` and `export --format folded`.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "trace_reader.h"

namespace CLI {
class App;
}

namespace padhook::tool {

inline constexpr const char* kDefaultTraceDir = "padhook.data";

// -i/--input DIR (default padhook.data).
void AddInputOption(CLI::App& command, std::string& dir);

// Runs `body` for subcommand `name`: a TraceError (or any exception) is
// printed as "padhook <name>: <message>" and gives exit status 1. Warnings
// pushed with Warn() are printed to stderr after the body ran; the trace's
// errors (PrintTraceWarnings) too, and they make the exit status 1 (the
// output covers the readable files).
int RunTraceCommand(const char* name, const std::function<int()>& body);
void Warn(std::string message);
void Note(std::string message);  // "padhook <name>: note: ..."
void PrintTraceWarnings(const trace::Trace& trace);

// 1234567 -> "  1.235 ms": always 10 characters (up to 10^7 s), like uftrace.
std::string FormatDuration(uint64_t ns);

// How a function is shown in call trees: C names get "()", C++ names that
// carry their parameter list are shown as they are.
std::string CallName(const std::string& name);

// "process 123 (prog), thread 124 "name""
std::string ThreadLabel(const trace::ProcessImage& image, const trace::ThreadFile& thread);

// A buffered writer over a FILE* (stdout or a file it owns): large writes, no
// per-event formatting through stdio. Close() flushes and reports errors.
class Output {
 public:
  explicit Output(const std::string& path);  // "" or "-": stdout; throws TraceError
  ~Output();
  Output(const Output&) = delete;
  Output& operator=(const Output&) = delete;

  Output& operator<<(std::string_view text) {
    buffer_.append(text);
    if (buffer_.size() >= kFlushSize) Flush();
    return *this;
  }
  Output& operator<<(char c) {
    buffer_.push_back(c);
    return *this;
  }
  Output& Uint(uint64_t value);
  // value/1000 with three decimals: ns -> "12.345" µs.
  Output& Micros(uint64_t ns);
  void Close();  // throws TraceError when a write failed

 private:
  static constexpr size_t kFlushSize = 1 << 16;
  void Flush();
  std::string path_;
  FILE* file_;
  bool owned_;
  bool failed_ = false;
  std::string buffer_;
};

// A progress bar on stderr for long runs, shown only when stderr is a
// terminal and not disabled; Update() is cheap to call often.
class Progress {
 public:
  Progress(const char* what, uint64_t total, bool enabled);
  ~Progress();
  void Update(uint64_t done);

 private:
  const char* what_;
  uint64_t total_;
  bool enabled_;
  int shown_ = -1;
};

// ---- The calling-context tree: one node per distinct call path ----

struct CallNode {
  uint32_t function = trace::kNoFunction;  // global index; the root has none
  uint32_t parent = 0;
  uint32_t first_child = 0, last_child = 0, next_sibling = 0;  // 0: none (0 is the root)
  uint64_t calls = 0;
  uint64_t total_ns = 0;
  uint64_t self_ns = 0;
  uint64_t unfinished = 0;
};

// (parent node, function) -> child node: open addressing, linear probing;
// a trace of random calls has about one node per call, so this is hot.
class ChildIndex {
 public:
  // The node stored for `key`, or `node` after storing it (*inserted set).
  uint32_t FindOrInsert(uint64_t key, uint32_t node, bool* inserted);

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  void Grow();
  std::vector<uint64_t> keys_;
  std::vector<uint32_t> nodes_;
  size_t size_ = 0;
  int shift_ = 64;
};

class CallTree {
 public:
  CallTree() { nodes_.emplace_back(); }
  // The child of `parent` for `function`, created (in order of first call).
  uint32_t Child(uint32_t parent, uint32_t function);
  CallNode& operator[](uint32_t node) { return nodes_[node]; }
  const CallNode& operator[](uint32_t node) const { return nodes_[node]; }
  size_t size() const { return nodes_.size(); }

  // Adds every thread's calls of the trace to the tree.
  void AddTrace(trace::Trace& trace, Progress* progress);
  // A tree of the subtrees rooted at every outermost call of one of
  // `functions` (global indexes), merged; the calls of those functions are
  // the root's children.
  CallTree Merged(const std::vector<uint32_t>& roots) const;

 private:
  std::vector<CallNode> nodes_;
  ChildIndex children_;
};

// Runs MatchCalls over every thread of the trace (in the order of
// Trace::images() and their threads), handing `visit` the image index,
// the thread and its decoder; prints the decoder's warning if it stopped.
void ForEachThread(trace::Trace& trace,
                   const std::function<void(size_t image, const trace::ThreadFile& thread,
                                            trace::EventDecoder& decoder)>& visit);

// The global indexes of the functions named `name` (exactly, or up to the
// parameter list: "ns::f" names "ns::f(int)").
std::vector<uint32_t> FindFunctions(const trace::Trace& trace, const std::string& name);

}  // namespace padhook::tool
