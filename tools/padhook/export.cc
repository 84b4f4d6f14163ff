// padhook export: a recorded trace for other tools. Chrome Trace Event JSON
// (chrome://tracing, ui.perfetto.dev) is written event by event as the trace
// is read; folded stacks (flamegraph.pl, speedscope) are written from the
// calling-context tree, one line per distinct call path.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "commands.h"
#include "trace_command.h"
#include "trace_reader.h"

namespace padhook::tool {
namespace {

struct ExportOptions {
  std::string input = kDefaultTraceDir;
  std::string format;
  std::string output;
  std::string value = "time";
  bool no_progress = false;
};

std::string JsonString(const std::string& text) { return nlohmann::json(text).dump(); }

uint64_t TotalEventBytes(const trace::Trace& trace) {
  uint64_t total = 0;
  for (const trace::ProcessImage& image : trace.images())
    for (const trace::ThreadFile& thread : image.threads) total += thread.file_size;
  return total;
}

class ChromeSink {
 public:
  ChromeSink(trace::Trace& trace, size_t image, const trace::ThreadFile& thread, Output& out,
             std::vector<std::string>& names, uint64_t origin, const trace::EventDecoder& decoder,
             Progress& progress, uint64_t done)
      : trace_(trace),
        image_(image),
        out_(out),
        names_(names),
        origin_(origin),
        decoder_(decoder),
        progress_(progress),
        done_(done) {
    const trace::ProcessImage& process = trace.images()[image];
    ids_ = ",\"pid\":" + std::to_string(process.pid) + ",\"tid\":" + std::to_string(thread.tid);
  }

  void Enter(const trace::OpenCall& call, size_t) {
    out_ << ",\n{\"ph\":\"B\"" << ids_ << ",\"ts\":";
    Timestamp(call.entry) << ",\"name\":" << Name(call.function) << '}';
    Tick();
  }
  void Leave(const trace::OpenCall&, size_t, uint64_t end, trace::CallEnd how, bool) {
    out_ << ",\n{\"ph\":\"E\"" << ids_ << ",\"ts\":";
    Timestamp(end);
    switch (how) {
      case trace::CallEnd::kReturned:
        break;
      case trace::CallEnd::kUnwound:
        out_ << ",\"args\":{\"unwound\":true}";
        break;
      case trace::CallEnd::kExitMissing:
        out_ << ",\"args\":{\"exit_lost\":true}";
        break;
      case trace::CallEnd::kUnfinished:
        out_ << ",\"args\":{\"unfinished\":true}";
        break;
    }
    out_ << '}';
    Tick();
  }
  void ExitWithoutEntry(uint32_t, uint64_t, bool) {}
  void Lost(uint64_t count, uint64_t time, size_t) {
    out_ << ",\n{\"ph\":\"i\",\"s\":\"t\"" << ids_ << ",\"ts\":";
    Timestamp(time) << ",\"name\":\"events lost\",\"args\":{\"count\":";
    out_.Uint(count) << "}}";
  }

 private:
  Output& Timestamp(uint64_t time) { return out_.Micros(time > origin_ ? time - origin_ : 0); }

  const std::string& Name(uint32_t id) {
    const uint32_t function = trace_.Resolve(image_, id);
    if (function >= names_.size()) names_.resize(trace_.functions().size());
    std::string& name = names_[function];
    if (name.empty()) name = JsonString(trace_.functions()[function].name);
    return name;
  }

  void Tick() {
    if ((++events_ & 0xffff) == 0) progress_.Update(done_ + decoder_.offset());
  }

  trace::Trace& trace_;
  size_t image_;
  Output& out_;
  std::vector<std::string>& names_;
  uint64_t origin_;
  const trace::EventDecoder& decoder_;
  Progress& progress_;
  uint64_t done_;
  uint64_t events_ = 0;
  std::string ids_;
};

void ExportChrome(trace::Trace& trace, const ExportOptions& options, Output& out) {
  Progress progress("export", TotalEventBytes(trace), !options.no_progress);
  const uint64_t origin = trace.origin_ns();
  out << "{\"displayTimeUnit\":\"ns\",\"otherData\":{\"tool\":\"padhook\",\"trace\":"
      << JsonString(trace.dir().string()) << "},\"traceEvents\":[\n";
  // Names first: the metadata events Chrome and Perfetto label tracks with.
  bool first = true;
  for (const trace::ProcessImage& image : trace.images()) {
    const std::string pid = std::to_string(image.pid);
    out << (first ? "" : ",\n") << "{\"ph\":\"M\",\"pid\":" << pid << ",\"tid\":" << pid
        << ",\"name\":\"process_name\",\"args\":{\"name\":"
        << JsonString(image.program.empty() ? image.key : image.program) << "}}";
    first = false;
    for (const trace::ThreadFile& thread : image.threads) {
      const std::string name = thread.header.thread_name.empty()
                                   ? "thread " + std::to_string(thread.tid)
                                   : thread.header.thread_name;
      out << ",\n{\"ph\":\"M\",\"pid\":" << pid << ",\"tid\":" << std::to_string(thread.tid)
          << ",\"name\":\"thread_name\",\"args\":{\"name\":" << JsonString(name) << "}}";
    }
  }
  std::vector<std::string> names;
  trace::OpenCounts open;
  uint64_t done = 0;
  ForEachThread(
      trace, [&](size_t image, const trace::ThreadFile& thread, trace::EventDecoder& decoder) {
        ChromeSink sink(trace, image, thread, out, names, origin, decoder, progress, done);
        trace::MatchCalls(decoder, sink, open);
        done += thread.file_size;
        progress.Update(done);
      });
  out << "\n]}\n";
}

// One line per call path with a non-zero value: "a;b;c VALUE".
void ExportFolded(trace::Trace& trace, const ExportOptions& options, Output& out) {
  Progress progress("export", TotalEventBytes(trace), !options.no_progress);
  CallTree tree;
  tree.AddTrace(trace, &progress);
  const bool count = options.value == "count";
  // Depth first, keeping the path text of the current node.
  struct Item {
    uint32_t node;
    size_t path_length;  // the length of the parent's path
  };
  std::string path;
  std::vector<Item> stack;
  for (uint32_t c = tree[0].first_child; c != 0; c = tree[c].next_sibling) stack.push_back({c, 0});
  std::reverse(stack.begin(), stack.end());
  while (!stack.empty()) {
    const Item item = stack.back();
    stack.pop_back();
    const CallNode& node = tree[item.node];
    path.resize(item.path_length);
    if (!path.empty()) path += ';';
    // flamegraph.pl splits frames at ';' and the value at the last space.
    for (char c : trace.functions()[node.function].name) path += c == ';' ? ':' : c;
    const uint64_t value = count ? node.calls : node.self_ns;
    if (value != 0) {
      out << path << ' ';
      out.Uint(value) << '\n';
    }
    const size_t first = stack.size();
    for (uint32_t c = node.first_child; c != 0; c = tree[c].next_sibling)
      stack.push_back({c, path.size()});
    std::reverse(stack.begin() + static_cast<std::ptrdiff_t>(first), stack.end());
  }
}

int RunExport(const ExportOptions& options) {
  trace::Trace trace = trace::Trace::Open(options.input);
  PrintTraceWarnings(trace);
  Output out(options.output);
  if (options.format == "chrome")
    ExportChrome(trace, options, out);
  else
    ExportFolded(trace, options, out);
  out.Close();
  return 0;
}

}  // namespace

CommandRunner SetupExport(CLI::App& command) {
  auto options = std::make_shared<ExportOptions>();
  command.footer(
      "chrome: Chrome Trace Event JSON (B/E events, ts in microseconds from the start of the\n"
      "  recording), written as the trace is read; open it in https://ui.perfetto.dev or\n"
      "  chrome://tracing.\n"
      "folded: one line per call path, \"main;parse;lex 1234\": the path's self time in ns\n"
      "  (or its number of calls with --value count), for flamegraph.pl or speedscope.\n\n"
      "Examples:\n"
      "  padhook export -f chrome -o trace.json\n"
      "  padhook export -f folded | flamegraph.pl > flame.svg");
  AddInputOption(command, options->input);
  command.add_option("-f,--format", options->format, "Output format")
      ->required()
      ->check(CLI::IsMember({"chrome", "folded"}));
  command.add_option("-o,--output", options->output, "Write to FILE instead of stdout")
      ->type_name("FILE");
  command.add_option("--value", options->value, "folded: the value of each path")
      ->check(CLI::IsMember({"time", "count"}))
      ->capture_default_str();
  command.add_flag("--no-progress", options->no_progress,
                   "No progress bar (it is shown on a terminal's stderr only)");
  return [options] { return RunTraceCommand("export", [&] { return RunExport(*options); }); };
}

}  // namespace padhook::tool
