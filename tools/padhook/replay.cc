// padhook replay: every call of a recorded trace in order, as a nested tree
// per thread with durations (like `uftrace replay` or ftrace's function_graph).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "commands.h"
#include "trace_command.h"
#include "trace_reader.h"

namespace padhook::tool {
namespace {

struct ReplayOptions {
  std::string input = kDefaultTraceDir;
  std::vector<uint32_t> tids;
  std::string output;
};

class ReplaySink {
 public:
  ReplaySink(trace::Trace& trace, size_t image, uint32_t tid, Output& out)
      : trace_(trace), image_(image), out_(out) {
    char buffer[16];
    std::snprintf(buffer, sizeof buffer, "[%6u] | ", tid);
    tid_column_ = buffer;
  }

  void Enter(const trace::OpenCall& call, size_t depth) {
    FlushPending();
    pending_ = Pending{call.function, depth};
    depth_ = depth + 1;
  }

  void Leave(const trace::OpenCall& call, size_t depth, uint64_t end, trace::CallEnd how, bool) {
    const uint64_t duration = end > call.entry ? end - call.entry : 0;
    const std::string& name = Name(call.function);
    const bool timed = how == trace::CallEnd::kReturned || how == trace::CallEnd::kUnwound;
    const char* note = how == trace::CallEnd::kUnwound       ? " /* unwound */"
                       : how == trace::CallEnd::kExitMissing ? " /* exit lost */"
                       : how == trace::CallEnd::kUnfinished  ? " /* unfinished */"
                                                             : "";
    if (pending_ && pending_->depth == depth) {  // a leaf: one line
      pending_.reset();
      Line(timed ? &duration : nullptr, depth) << CallName(name) << ';' << note << '\n';
    } else {
      FlushPending();
      Line(timed ? &duration : nullptr, depth) << "} /* " << name;
      if (how == trace::CallEnd::kUnwound) out_ << " (unwound)";
      if (how == trace::CallEnd::kExitMissing) out_ << " (exit lost)";
      if (how == trace::CallEnd::kUnfinished) out_ << " (unfinished)";
      out_ << " */\n";
    }
    depth_ = depth;
  }

  void ExitWithoutEntry(uint32_t function, uint64_t, bool unwound) {
    FlushPending();
    Line(nullptr, depth_) << "/* exit of " << Name(function) << (unwound ? " (unwound)" : "")
                          << " without its entry */\n";
  }

  void Lost(uint64_t count, uint64_t, size_t) {
    FlushPending();
    Line(nullptr, depth_) << "/* " << std::to_string(count) << " events lost */\n";
  }

  void Finish() { FlushPending(); }

 private:
  struct Pending {
    uint32_t function;
    size_t depth;
  };

  const std::string& Name(uint32_t id) {
    return trace_.functions()[trace_.Resolve(image_, id)].name;
  }

  Output& Line(const uint64_t* duration, size_t depth) {
    if (duration != nullptr) {
      out_ << FormatDuration(*duration) << ' ';
    } else {
      out_ << "           ";
    }
    out_ << tid_column_;
    for (size_t i = 0; i < depth; ++i) out_ << "  ";
    return out_;
  }

  void FlushPending() {
    if (!pending_) return;
    Line(nullptr, pending_->depth) << CallName(Name(pending_->function)) << " {\n";
    pending_.reset();
  }

  trace::Trace& trace_;
  size_t image_;
  Output& out_;
  std::string tid_column_;
  std::optional<Pending> pending_;
  size_t depth_ = 0;
};

int RunReplay(const ReplayOptions& options) {
  trace::Trace trace = trace::Trace::Open(options.input);
  PrintTraceWarnings(trace);
  if (!options.tids.empty()) {
    for (uint32_t tid : options.tids) {
      bool found = false;
      std::string known;
      for (const trace::ProcessImage& image : trace.images()) {
        for (const trace::ThreadFile& thread : image.threads) {
          found |= thread.tid == tid;
          known += (known.empty() ? "" : ", ") + std::to_string(thread.tid);
        }
      }
      if (!found) {
        throw trace::TraceError("no thread " + std::to_string(tid) + " in " + trace.dir().string() +
                                " (its threads: " + known + ")");
      }
    }
  }
  Output out(options.output);
  out << "# DURATION     TID     FUNCTION\n";
  trace::OpenCounts open;
  for (size_t image = 0; image < trace.images().size(); ++image) {
    for (const trace::ThreadFile& thread : trace.images()[image].threads) {
      if (!options.tids.empty() &&
          std::find(options.tids.begin(), options.tids.end(), thread.tid) == options.tids.end())
        continue;
      const trace::Trace::OpenedThread opened = trace::Trace::OpenThread(thread);
      const std::string file = thread.path.string();
      trace::EventDecoder decoder(opened.file->bytes(), opened.header.base_time, file);
      out << "# " << ThreadLabel(trace.images()[image], thread) << '\n';
      ReplaySink sink(trace, image, thread.tid, out);
      trace::MatchCalls(decoder, sink, open);
      sink.Finish();
      if (!decoder.warning().empty()) {
        out << "# " << decoder.warning() << '\n';
        Warn(decoder.warning());
      }
    }
  }
  out.Close();
  return 0;
}

}  // namespace

CommandRunner SetupReplay(CLI::App& command) {
  auto options = std::make_shared<ReplayOptions>();
  command.footer(
      "Each thread's calls in the order they happened, thread after thread: `f() {` opens\n"
      "a call, `} /* f */` closes it with its duration on the left, and a call that called\n"
      "nothing traced is one line, `f();`. Calls ended by an exception or longjmp are marked\n"
      "unwound, calls still open when the trace ends unfinished.\n\n"
      "Examples:\n"
      "  padhook replay | less\n"
      "  padhook replay --tid 4242 -i run.data");
  AddInputOption(command, options->input);
  command.add_option("--tid", options->tids, "Only these threads (repeatable)")->type_name("TID");
  command.add_option("-o,--output", options->output, "Write to FILE instead of stdout")
      ->type_name("FILE");
  return [options] { return RunTraceCommand("replay", [&] { return RunReplay(*options); }); };
}

}  // namespace padhook::tool
