// tools/padhook/trace_command.cc — see trace_command.h.
#include "trace_command.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <iostream>
#include <system_error>

namespace padhook::tool {
namespace {

struct Diagnostics {
  const char* command = "padhook";
  std::vector<std::string> messages;
  bool failed = false;  // an error was reported: exit status 1
};

Diagnostics& diagnostics() {
  static Diagnostics instance;
  return instance;
}

void FlushDiagnostics() {
  std::cout.flush();
  for (const std::string& message : diagnostics().messages) {
    std::cerr << "padhook " << diagnostics().command << ": " << message << '\n';
  }
  diagnostics().messages.clear();
}

}  // namespace

void AddInputOption(CLI::App& command, std::string& dir) {
  command.add_option("-i,--input", dir, "The trace directory `padhook record` wrote")
      ->type_name("DIR")
      ->capture_default_str();
}

int RunTraceCommand(const char* name, const std::function<int()>& body) {
  diagnostics().command = name;
  int status = 1;
  try {
    status = body();
  } catch (const trace::TraceError& error) {
    FlushDiagnostics();
    std::cerr << "padhook " << name << ": " << error.what() << '\n';
    return 1;
  } catch (const std::exception& error) {
    FlushDiagnostics();
    std::cerr << "padhook " << name << ": error: " << error.what() << '\n';
    return 1;
  }
  const bool failed = diagnostics().failed;
  FlushDiagnostics();
  return failed && status == 0 ? 1 : status;
}

void Warn(std::string message) { diagnostics().messages.push_back("warning: " + message); }
void Note(std::string message) { diagnostics().messages.push_back("note: " + message); }

void PrintTraceWarnings(const trace::Trace& trace) {
  for (const std::string& error : trace.errors()) {
    diagnostics().messages.push_back("error: " + error);
    diagnostics().failed = true;
  }
  for (const std::string& warning : trace.warnings()) Warn(warning);
}

std::string FormatDuration(uint64_t ns) {
  char buffer[32];
  if (ns < 1'000'000) {
    std::snprintf(buffer, sizeof buffer, "%7.3f us", static_cast<double>(ns) / 1e3);
  } else if (ns < 1'000'000'000) {
    std::snprintf(buffer, sizeof buffer, "%7.3f ms", static_cast<double>(ns) / 1e6);
  } else if (ns < 1'000'000'000'000) {
    std::snprintf(buffer, sizeof buffer, "%7.3f  s", static_cast<double>(ns) / 1e9);
  } else {  // 1000 s and more: whole seconds keep the width
    std::snprintf(buffer, sizeof buffer, "%7.0f  s", static_cast<double>(ns) / 1e9);
  }
  return buffer;
}

std::string CallName(const std::string& name) {
  if (name.find('(') != std::string::npos) return name;
  return name + "()";
}

std::string ThreadLabel(const trace::ProcessImage& image, const trace::ThreadFile& thread) {
  std::string label = "process " + image.key;
  if (!image.program.empty()) {
    const size_t slash = image.program.rfind('/');
    label += " (" + image.program.substr(slash == std::string::npos ? 0 : slash + 1) + ")";
  }
  label += ", thread " + std::to_string(thread.tid);
  if (!thread.header.thread_name.empty()) label += " \"" + thread.header.thread_name + "\"";
  return label;
}

// ---- Output ----

Output::Output(const std::string& path) : path_(path.empty() ? "-" : path) {
  if (path_ == "-") {
    file_ = stdout;
    owned_ = false;
  } else {
    file_ = std::fopen(path_.c_str(), "w");
    if (file_ == nullptr) {
      throw trace::TraceError(
          path_ + ": cannot create: " + std::error_code(errno, std::generic_category()).message());
    }
    owned_ = true;
  }
  buffer_.reserve(kFlushSize + 4096);
}

Output::~Output() {
  if (file_ == nullptr) return;
  Flush();
  if (owned_) std::fclose(file_);
}

Output& Output::Uint(uint64_t value) {
  char digits[24];
  char* end = digits + sizeof digits;
  char* p = end;
  do {
    *--p = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0);
  return *this << std::string_view(p, static_cast<size_t>(end - p));
}

Output& Output::Micros(uint64_t ns) {
  Uint(ns / 1000);
  char fraction[4] = {'.', static_cast<char>('0' + ns / 100 % 10),
                      static_cast<char>('0' + ns / 10 % 10), static_cast<char>('0' + ns % 10)};
  return *this << std::string_view(fraction, 4);
}

void Output::Flush() {
  if (!buffer_.empty() && !failed_) {
    if (std::fwrite(buffer_.data(), 1, buffer_.size(), file_) != buffer_.size()) failed_ = true;
  }
  buffer_.clear();
}

void Output::Close() {
  Flush();
  if (std::fflush(file_) != 0) failed_ = true;
  const int error = errno;
  if (owned_) {
    if (std::fclose(file_) != 0) failed_ = true;
  }
  file_ = nullptr;
  if (failed_) {
    throw trace::TraceError(
        path_ + ": write failed: " + std::error_code(error, std::generic_category()).message());
  }
}

// ---- Progress ----

Progress::Progress(const char* what, uint64_t total, bool enabled)
    : what_(what), total_(total), enabled_(enabled && total > 0 && ::isatty(STDERR_FILENO)) {}

Progress::~Progress() {
  if (enabled_ && shown_ >= 0) std::fprintf(stderr, "\r\033[K");
}

void Progress::Update(uint64_t done) {
  if (!enabled_) return;
  const int percent = static_cast<int>(std::min<uint64_t>(done, total_) * 100 / total_);
  if (percent == shown_) return;
  shown_ = percent;
  constexpr int kWidth = 40;
  const int filled = percent * kWidth / 100;
  std::fprintf(stderr, "\r%s [%.*s%*s] %3d%% of %llu MB", what_, filled,
               "########################################", kWidth - filled, "", percent,
               static_cast<unsigned long long>(total_ >> 20));
  std::fflush(stderr);
}

// ---- CallTree ----

uint32_t ChildIndex::FindOrInsert(uint64_t key, uint32_t node, bool* inserted) {
  if ((size_ + 1) * 4 > keys_.size() * 3) Grow();
  const size_t mask = keys_.size() - 1;
  for (size_t i = (key * 0x9e3779b97f4a7c15) >> shift_;; i = (i + 1) & mask) {
    if (keys_[i] == key) {
      *inserted = false;
      return nodes_[i];
    }
    if (keys_[i] == kEmpty) {
      keys_[i] = key;
      nodes_[i] = node;
      ++size_;
      *inserted = true;
      return node;
    }
  }
}

void ChildIndex::Grow() {
  std::vector<uint64_t> keys = std::move(keys_);
  std::vector<uint32_t> nodes = std::move(nodes_);
  const size_t capacity = keys.empty() ? 1024 : keys.size() * 2;
  keys_.assign(capacity, kEmpty);
  nodes_.assign(capacity, 0);
  shift_ = 64 - std::countr_zero(capacity);
  size_ = 0;
  bool inserted;
  for (size_t i = 0; i < keys.size(); ++i)
    if (keys[i] != kEmpty) FindOrInsert(keys[i], nodes[i], &inserted);
}

uint32_t CallTree::Child(uint32_t parent, uint32_t function) {
  const uint64_t key = (uint64_t{parent} << 32) | function;
  bool inserted = false;
  const uint32_t node =
      children_.FindOrInsert(key, static_cast<uint32_t>(nodes_.size()), &inserted);
  if (!inserted) return node;
  CallNode child;
  child.function = function;
  child.parent = parent;
  nodes_.push_back(child);
  CallNode& up = nodes_[parent];
  if (up.first_child == 0)
    up.first_child = node;
  else
    nodes_[up.last_child].next_sibling = node;
  up.last_child = node;
  return node;
}

namespace {

struct TreeSink {
  CallTree& tree;
  trace::Trace& trace;
  size_t image;
  std::vector<uint32_t> path;  // node per depth

  void Enter(const trace::OpenCall& call, size_t depth) {
    const uint32_t parent = depth == 0 ? 0 : path[depth - 1];
    path.resize(depth);
    path.push_back(tree.Child(parent, trace.Resolve(image, call.function)));
  }
  void Leave(const trace::OpenCall& call, size_t depth, uint64_t end, trace::CallEnd how,
             bool outermost) {
    CallNode& node = tree[path[depth]];
    const uint64_t duration = end > call.entry ? end - call.entry : 0;
    ++node.calls;
    node.total_ns += duration;
    node.self_ns += duration > call.child_time ? duration - call.child_time : 0;
    if (how == trace::CallEnd::kUnfinished) ++node.unfinished;
  }
  void ExitWithoutEntry(uint32_t, uint64_t, bool) {}
  void Lost(uint64_t, uint64_t, size_t) {}
};

}  // namespace

void CallTree::AddTrace(trace::Trace& trace, Progress* progress) {
  uint64_t done = 0;
  trace::OpenCounts open;
  ForEachThread(trace,
                [&](size_t image, const trace::ThreadFile& thread, trace::EventDecoder& decoder) {
                  TreeSink sink{*this, trace, image, {}};
                  trace::MatchCalls(decoder, sink, open);
                  done += thread.file_size;
                  if (progress) progress->Update(done);
                });
}

CallTree CallTree::Merged(const std::vector<uint32_t>& roots) const {
  CallTree merged;
  auto is_root = [&](uint32_t function) {
    return std::find(roots.begin(), roots.end(), function) != roots.end();
  };
  // Depth-first over this tree; `inside` maps a node to its merged copy
  // while below an outermost root call (0: not inside one).
  struct Item {
    uint32_t node;
    uint32_t copy_parent;  // 0 and not inside: outside any root call
    bool inside;
  };
  std::vector<Item> stack;
  for (uint32_t child = nodes_[0].first_child; child != 0; child = nodes_[child].next_sibling)
    stack.push_back({child, 0, false});
  std::reverse(stack.begin(), stack.end());
  while (!stack.empty()) {
    const Item item = stack.back();
    stack.pop_back();
    const CallNode& node = nodes_[item.node];
    uint32_t copy = 0;
    bool inside = item.inside;
    if (inside || is_root(node.function)) {
      copy = merged.Child(item.copy_parent, node.function);
      CallNode& target = merged[copy];
      target.calls += node.calls;
      target.total_ns += node.total_ns;
      target.self_ns += node.self_ns;
      target.unfinished += node.unfinished;
      inside = true;
    }
    const size_t first = stack.size();
    for (uint32_t child = node.first_child; child != 0; child = nodes_[child].next_sibling)
      stack.push_back({child, copy, inside});
    std::reverse(stack.begin() + static_cast<std::ptrdiff_t>(first), stack.end());
  }
  return merged;
}

void ForEachThread(trace::Trace& trace,
                   const std::function<void(size_t image, const trace::ThreadFile& thread,
                                            trace::EventDecoder& decoder)>& visit) {
  for (size_t image = 0; image < trace.images().size(); ++image) {
    for (const trace::ThreadFile& thread : trace.images()[image].threads) {
      const trace::Trace::OpenedThread opened = trace::Trace::OpenThread(thread);
      const std::string file = thread.path.string();
      trace::EventDecoder decoder(opened.file->bytes(), opened.header.base_time, file);
      visit(image, thread, decoder);
      if (!decoder.warning().empty()) Warn(decoder.warning());
    }
  }
}

std::vector<uint32_t> FindFunctions(const trace::Trace& trace, const std::string& name) {
  std::vector<uint32_t> found;
  for (uint32_t i = 0; i < trace.functions().size(); ++i) {
    const std::string& candidate = trace.functions()[i].name;
    if (candidate == name) {
      found.push_back(i);
      continue;
    }
    // "ns::f" names "ns::f(int)" and "void ns::f<int>(int)"'s "ns::f<int>".
    const size_t paren = candidate.find('(');
    if (paren == std::string::npos) continue;
    std::string_view head(candidate.data(), paren);
    const size_t space = head.rfind(' ');
    if (space != std::string_view::npos && head.find('<') > space) head.remove_prefix(space + 1);
    if (head == name) found.push_back(i);
  }
  return found;
}

}  // namespace padhook::tool
