// padhook info: what a trace directory holds and how the recorded run ended.
#include <CLI/CLI.hpp>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "commands.h"
#include "trace_command.h"
#include "trace_reader.h"

namespace padhook::tool {
namespace {

struct InfoOptions {
  std::string input = kDefaultTraceDir;
  std::string format = "text";
};

struct NullSink {
  void Enter(const trace::OpenCall&, size_t) {}
  void Leave(const trace::OpenCall&, size_t, uint64_t, trace::CallEnd, bool) {}
  void ExitWithoutEntry(uint32_t, uint64_t, bool) {}
  void Lost(uint64_t, uint64_t, size_t) {}
};

struct ThreadInfo {
  const trace::ThreadFile* file;
  trace::MatchCounts counts;
  std::string warning;
};

std::string Join(const std::vector<std::string>& words) {
  std::string out;
  for (const std::string& word : words) {
    if (!out.empty()) out += ' ';
    out += word;
  }
  return out;
}

std::string Seconds(uint64_t ns) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.3f s", static_cast<double>(ns) / 1e9);
  return buffer;
}

int RunInfo(const InfoOptions& options) {
  trace::Trace trace = trace::Trace::Open(options.input);
  PrintTraceWarnings(trace);
  std::map<const trace::ThreadFile*, ThreadInfo> threads;
  trace::OpenCounts open;
  for (const trace::ProcessImage& image : trace.images()) {
    for (const trace::ThreadFile& thread : image.threads) {
      const trace::Trace::OpenedThread opened = trace::Trace::OpenThread(thread);
      const std::string file = thread.path.string();
      trace::EventDecoder decoder(opened.file->bytes(), opened.header.base_time, file);
      NullSink sink;
      ThreadInfo info{&thread, trace::MatchCalls(decoder, sink, open), decoder.warning()};
      if (!info.warning.empty()) Warn(info.warning);
      threads[&thread] = info;
    }
  }

  // Why the run counts as ended abnormally, in plain words.
  std::vector<std::string> abnormal;
  const auto& record = trace.record();
  if (!record) {
    abnormal.push_back("record.json is missing: `padhook record` itself did not finish (killed?)");
  } else if (record->signal) {
    abnormal.push_back("the program was killed by signal " + std::to_string(*record->signal) +
                       (record->signal_name.empty() ? "" : " (" + record->signal_name + ")"));
  }
  std::map<std::string, std::string> replaced_by;  // key -> the image that exec'ed over it
  for (const trace::ProcessImage& image : trace.images())
    if (image.exec_of) replaced_by[*image.exec_of] = image.key;
  uint64_t unclosed = 0;
  for (const trace::ProcessImage& image : trace.images()) {
    if (!image.ended && !replaced_by.count(image.key)) {
      abnormal.push_back("process " + image.key +
                         " did not end through exit() or a return from main (killed by a "
                         "signal, or still running when recording stopped)");
    }
    for (const trace::ThreadFile& thread : image.threads) {
      if (!thread.header.closed() && !image.ended && !replaced_by.count(image.key)) ++unclosed;
    }
  }
  if (unclosed != 0) {
    abnormal.push_back(std::to_string(unclosed) +
                       " event files were not closed by their thread (their last events may be "
                       "missing)");
  }

  uint64_t total_events = 0, total_calls = 0, total_lost = 0, total_exits_lost = 0,
           total_patched = 0, total_unfinished = 0, total_without_entry = 0, thread_count = 0;
  for (const trace::ProcessImage& image : trace.images()) {
    total_exits_lost += image.exits_lost;
    // The counts are written at exit: a process that never got there has
    // only its function table to tell.
    total_patched += image.ended ? image.functions_patched : image.functions.size();
    uint64_t lost_in_files = 0;
    for (const trace::ThreadFile& thread : image.threads) {
      const ThreadInfo& info = threads[&thread];
      total_events += info.counts.events;
      total_calls += info.counts.calls;
      total_unfinished += info.counts.unfinished;
      total_without_entry += info.counts.exits_without_entry;
      lost_in_files += std::max(thread.header.events_lost, info.counts.events_lost);
      ++thread_count;
    }
    total_lost += std::max(image.events_lost, lost_in_files);
  }

  if (options.format == "json") {
    nlohmann::ordered_json json;
    json["trace"] = trace.dir().string();
    if (record) {
      json["command"] = record->command;
      json["duration_ns"] =
          record->end_ns > record->start_ns ? record->end_ns - record->start_ns : 0;
      json["exit_status"] =
          record->exit_status ? nlohmann::ordered_json(*record->exit_status) : nullptr;
      json["signal"] = record->signal ? nlohmann::ordered_json(*record->signal) : nullptr;
    }
    json["ended_abnormally"] = !abnormal.empty();
    json["abnormal_reasons"] = abnormal;
    json["events"] = total_events;
    json["calls"] = total_calls;
    json["unfinished_calls"] = total_unfinished;
    json["exits_without_entry"] = total_without_entry;
    json["events_lost"] = total_lost;
    json["exits_lost"] = total_exits_lost;
    json["functions_patched"] = total_patched;
    json["unreadable_files"] = trace.errors();
    nlohmann::ordered_json processes = nlohmann::ordered_json::array();
    for (const trace::ProcessImage& image : trace.images()) {
      nlohmann::ordered_json p = {
          {"key", image.key},
          {"pid", image.pid},
          {"ppid", image.ppid},
          {"exec_of", image.exec_of ? nlohmann::ordered_json(*image.exec_of) : nullptr},
          {"program", image.program},
          {"argv", image.argv},
          {"ended", image.ended},
          {"exit_status", image.exit_status ? nlohmann::ordered_json(*image.exit_status) : nullptr},
          {"functions_patched", image.functions_patched},
          {"events_lost", image.events_lost},
          {"exits_lost", image.exits_lost}};
      nlohmann::ordered_json modules = nlohmann::ordered_json::array();
      for (const trace::ModuleDef& module : image.modules)
        modules.push_back(
            {{"id", module.id}, {"path", module.path}, {"load_bias", module.load_bias}});
      p["modules"] = modules;
      p["functions"] = image.functions.size();
      nlohmann::ordered_json thread_list = nlohmann::ordered_json::array();
      for (const trace::ThreadFile& thread : image.threads) {
        const ThreadInfo& info = threads[&thread];
        thread_list.push_back(
            {{"tid", thread.tid},
             {"name", thread.header.thread_name},
             {"closed", thread.header.closed()},
             {"events", info.counts.events},
             {"calls", info.counts.calls},
             {"unfinished", info.counts.unfinished},
             {"exits_without_entry", info.counts.exits_without_entry},
             {"events_lost", std::max(thread.header.events_lost, info.counts.events_lost)},
             {"max_depth", info.counts.max_depth}});
      }
      p["threads"] = thread_list;
      processes.push_back(std::move(p));
    }
    json["processes"] = processes;
    std::cout << json.dump(2) << '\n';
    return 0;
  }

  std::cout << "trace:             " << trace.dir().string() << '\n';
  if (record) {
    std::cout << "command:           " << Join(record->command) << '\n';
    if (record->end_ns > record->start_ns)
      std::cout << "duration:          " << Seconds(record->end_ns - record->start_ns) << '\n';
    std::cout << "exit:              ";
    if (record->signal) {
      std::cout << "killed by signal " << *record->signal
                << (record->signal_name.empty() ? "" : " (" + record->signal_name + ")") << '\n';
    } else if (record->exit_status) {
      std::cout << "exit status " << *record->exit_status << '\n';
    } else {
      std::cout << "unknown\n";
    }
  } else {
    std::cout << "command:           unknown (no record.json)\n";
  }
  if (abnormal.empty()) {
    std::cout << "ended:             normally\n";
  } else {
    std::cout << "ended:             ABNORMALLY\n";
    for (const std::string& reason : abnormal)
      std::cout << "                   - " << reason << '\n';
  }
  std::cout << "processes:         " << trace.images().size() << '\n'
            << "threads:           " << thread_count << '\n'
            << "functions patched: " << total_patched << '\n'
            << "events:            " << total_events << " (" << total_calls << " calls)\n"
            << "events lost:       " << total_lost << '\n'
            << "exits lost:        " << total_exits_lost << '\n';
  if (total_unfinished != 0)
    std::cout << "unfinished calls:  " << total_unfinished << " (open when the trace ends)\n";
  if (total_without_entry != 0)
    std::cout << "exits w/o entry:   " << total_without_entry << " (skipped)\n";
  if (!trace.errors().empty()) {
    std::cout << "unreadable:        " << trace.errors().size()
              << " events files (left out: errors on stderr)\n";
  }

  for (const trace::ProcessImage& image : trace.images()) {
    std::cout << "\nprocess " << image.key << ": pid " << image.pid << ", ppid " << image.ppid;
    if (image.exec_of) {
      std::cout << ", exec'ed by " << *image.exec_of;
    } else {
      for (const trace::ProcessImage& other : trace.images()) {
        if (&other != &image && other.pid == image.ppid && !other.exec_of) {
          std::cout << ", forked from " << other.key;
          break;
        }
      }
    }
    std::cout << '\n' << "  program:   " << image.program << '\n';
    std::cout << "  arguments: " << Join(image.argv) << '\n';
    std::cout << "  ended:     ";
    if (image.ended) {
      std::cout << "exit status " << (image.exit_status ? std::to_string(*image.exit_status) : "?")
                << '\n';
    } else if (replaced_by.count(image.key)) {
      std::cout << "replaced by exec (" << replaced_by[image.key] << ")\n";
    } else {
      std::cout << "NO (killed, or still running)\n";
    }
    std::cout << "  functions: ";
    if (image.ended) {
      std::cout << image.functions_patched << " patched, " << image.functions.size() << " in "
                << image.key << ".functions; events lost " << image.events_lost << ", exits lost "
                << image.exits_lost << '\n';
    } else {
      std::cout << image.functions.size() << " in " << image.key
                << ".functions (the process did not end: it wrote no counts)\n";
    }
    for (const trace::ModuleDef& module : image.modules) {
      char bias[24];
      std::snprintf(bias, sizeof bias, "0x%llx", static_cast<unsigned long long>(module.load_bias));
      std::cout << "  module " << module.id << ":  " << module.path << " (load bias " << bias
                << ")\n";
    }
    for (const trace::ThreadFile& thread : image.threads) {
      const ThreadInfo& info = threads[&thread];
      std::cout << "  thread " << thread.tid;
      if (!thread.header.thread_name.empty())
        std::cout << " \"" << thread.header.thread_name << '"';
      std::cout << ": " << info.counts.events << " events, " << info.counts.calls
                << " calls, depth " << info.counts.max_depth;
      const uint64_t lost = std::max(thread.header.events_lost, info.counts.events_lost);
      if (lost != 0) std::cout << ", " << lost << " lost";
      if (info.counts.unfinished != 0) std::cout << ", " << info.counts.unfinished << " unfinished";
      if (info.counts.exits_without_entry != 0)
        std::cout << ", " << info.counts.exits_without_entry << " exits without entry";
      std::cout << (thread.header.closed() ? ", closed" : ", NOT closed") << '\n';
    }
  }
  return 0;
}

}  // namespace

CommandRunner SetupInfo(CLI::App& command) {
  auto options = std::make_shared<InfoOptions>();
  command.footer(
      "The command, its exit status or signal, each process (fork and exec relations,\n"
      "modules, threads) and the counts of events, lost events and lost exits. Says plainly\n"
      "when the run ended abnormally: killed by a signal, a process that never exited, event\n"
      "files never closed.");
  AddInputOption(command, options->input);
  command.add_option("--format", options->format, "Output format")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  return [options] { return RunTraceCommand("info", [&] { return RunInfo(*options); }); };
}

}  // namespace padhook::tool
