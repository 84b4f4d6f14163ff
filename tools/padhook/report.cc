// padhook report: per-function call counts and times of a recorded trace.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "commands.h"
#include "trace_command.h"
#include "trace_reader.h"

namespace padhook::tool {
namespace {

struct ReportOptions {
  std::string input = kDefaultTraceDir;
  std::string format = "text";
  std::string sort = "total";
  bool threads = false;
};

struct FunctionStats {
  uint64_t calls = 0;
  uint64_t total_ns = 0;      // outermost calls only: recursion is not counted twice
  uint64_t inclusive_ns = 0;  // every call: the average's numerator
  uint64_t self_ns = 0;
  uint64_t min_ns = UINT64_MAX;
  uint64_t max_ns = 0;
  uint64_t unwound = 0;
  uint64_t unfinished = 0;
};

struct StatsSink {
  trace::Trace& trace;
  size_t image;
  std::vector<FunctionStats>& stats;  // by global function index

  void Enter(const trace::OpenCall&, size_t) {}
  void Leave(const trace::OpenCall& call, size_t, uint64_t end, trace::CallEnd how,
             bool outermost) {
    const uint32_t function = trace.Resolve(image, call.function);
    if (function >= stats.size()) stats.resize(trace.functions().size());
    FunctionStats& s = stats[function];
    const uint64_t duration = end > call.entry ? end - call.entry : 0;
    ++s.calls;
    if (outermost) s.total_ns += duration;
    s.inclusive_ns += duration;
    s.self_ns += duration > call.child_time ? duration - call.child_time : 0;
    s.min_ns = std::min(s.min_ns, duration);
    s.max_ns = std::max(s.max_ns, duration);
    if (how == trace::CallEnd::kUnwound) ++s.unwound;
    if (how == trace::CallEnd::kUnfinished) ++s.unfinished;
  }
  void ExitWithoutEntry(uint32_t, uint64_t, bool) {}
  void Lost(uint64_t, uint64_t, size_t) {}
};

struct Row {
  uint32_t function;
  const FunctionStats* stats;
  uint64_t avg_ns() const { return stats->calls ? stats->inclusive_ns / stats->calls : 0; }
};

std::vector<Row> SortedRows(const trace::Trace& trace, const std::vector<FunctionStats>& stats,
                            const std::string& sort) {
  std::vector<Row> rows;
  for (uint32_t i = 0; i < stats.size(); ++i) {
    if (stats[i].calls != 0) rows.push_back({i, &stats[i]});
  }
  auto key = [&](const Row& row) -> uint64_t {
    if (sort == "calls") return row.stats->calls;
    if (sort == "self") return row.stats->self_ns;
    if (sort == "avg") return row.avg_ns();
    return row.stats->total_ns;
  };
  std::sort(rows.begin(), rows.end(), [&](const Row& a, const Row& b) {
    const uint64_t ka = key(a), kb = key(b);
    if (ka != kb) return ka > kb;
    const std::string& na = trace.functions()[a.function].name;
    const std::string& nb = trace.functions()[b.function].name;
    if (na != nb) return na < nb;
    return a.function < b.function;
  });
  return rows;
}

void PrintTable(const trace::Trace& trace, const std::vector<Row>& rows) {
  std::cout
      << "  Total time   Self time    Avg time    Min time    Max time       Calls  Function\n"
         "  ==========  ==========  ==========  ==========  ==========  ==========  "
         "====================\n";
  for (const Row& row : rows) {
    const FunctionStats& s = *row.stats;
    char calls[32];
    std::snprintf(calls, sizeof calls, "%10llu", static_cast<unsigned long long>(s.calls));
    std::cout << "  " << FormatDuration(s.total_ns) << "  " << FormatDuration(s.self_ns) << "  "
              << FormatDuration(row.avg_ns()) << "  " << FormatDuration(s.min_ns) << "  "
              << FormatDuration(s.max_ns) << "  " << calls << "  "
              << trace.functions()[row.function].name;
    if (s.unfinished != 0) std::cout << "  [" << s.unfinished << " unfinished]";
    std::cout << '\n';
  }
}

nlohmann::ordered_json RowJson(const trace::Trace& trace, const Row& row) {
  const FunctionStats& s = *row.stats;
  const trace::GlobalFunction& function = trace.functions()[row.function];
  return nlohmann::ordered_json{
      {"function", function.name},  {"module", function.module}, {"calls", s.calls},
      {"total_ns", s.total_ns},     {"self_ns", s.self_ns},      {"avg_ns", row.avg_ns()},
      {"min_ns", s.min_ns},         {"max_ns", s.max_ns},        {"unwound", s.unwound},
      {"unfinished", s.unfinished},
  };
}

int RunReport(const ReportOptions& options) {
  trace::Trace trace = trace::Trace::Open(options.input);
  PrintTraceWarnings(trace);
  trace::OpenCounts open;
  std::vector<FunctionStats> stats(trace.functions().size());
  nlohmann::ordered_json json = nlohmann::ordered_json::array();
  uint64_t unfinished = 0, without_entry = 0, exits_missing = 0, lost = 0;
  bool first_thread = true;

  auto emit = [&](const std::vector<FunctionStats>& table, const trace::ProcessImage* image,
                  const trace::ThreadFile* thread) {
    const std::vector<Row> rows = SortedRows(trace, table, options.sort);
    if (options.format == "json") {
      for (const Row& row : rows) {
        nlohmann::ordered_json object = RowJson(trace, row);
        if (thread != nullptr) {
          object["process"] = image->key;
          object["pid"] = image->pid;
          object["tid"] = thread->tid;
          object["thread"] = thread->header.thread_name;
        }
        json.push_back(std::move(object));
      }
      return;
    }
    if (thread != nullptr) {
      if (!first_thread) std::cout << '\n';
      std::cout << "# " << ThreadLabel(*image, *thread) << '\n';
    }
    first_thread = false;
    PrintTable(trace, rows);
  };

  ForEachThread(trace,
                [&](size_t image, const trace::ThreadFile& thread, trace::EventDecoder& decoder) {
                  if (options.threads) stats.assign(trace.functions().size(), FunctionStats{});
                  StatsSink sink{trace, image, stats};
                  const trace::MatchCounts counts = trace::MatchCalls(decoder, sink, open);
                  unfinished += counts.unfinished;
                  without_entry += counts.exits_without_entry;
                  exits_missing += counts.exits_missing;
                  lost += counts.events_lost;
                  if (options.threads) emit(stats, &trace.images()[image], &thread);
                });
  if (!options.threads) emit(stats, nullptr, nullptr);
  if (options.format == "json") std::cout << json.dump(2) << '\n';

  if (unfinished != 0) {
    Note(std::to_string(unfinished) +
         " calls were still open at the end of the trace; they count up to their thread's last "
         "event");
  }
  if (without_entry != 0)
    Note(std::to_string(without_entry) + " exits without their entry were skipped");
  if (exits_missing != 0) {
    Note(std::to_string(exits_missing) +
         " calls lost their exit; they count up to their caller's exit");
  }
  if (lost != 0) Note(std::to_string(lost) + " events were lost while recording");
  return 0;
}

}  // namespace

CommandRunner SetupReport(CLI::App& command) {
  auto options = std::make_shared<ReportOptions>();
  command.footer(
      "Times: total is the time spent inside the function (its outermost calls only, so\n"
      "recursion is not counted twice), self leaves out the traced functions it called,\n"
      "avg/min/max are per call. A call ended by an exception or longjmp counts as ending\n"
      "there; a call still open when the trace ends counts up to its thread's last event.\n\n"
      "Examples:\n"
      "  padhook report                        # padhook.data, sorted by total time\n"
      "  padhook report -s self --threads      # one table per thread, by self time\n"
      "  padhook report -i run.data --format json");
  AddInputOption(command, options->input);
  command.add_option("--format", options->format, "Output format")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  command.add_option("-s,--sort", options->sort, "Sort by, largest first")
      ->check(CLI::IsMember({"calls", "total", "self", "avg"}))
      ->capture_default_str();
  command.add_flag("--threads", options->threads, "One table per thread");
  return [options] { return RunTraceCommand("report", [&] { return RunReport(*options); }); };
}

}  // namespace padhook::tool
