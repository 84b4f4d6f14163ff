// padhook record: run a program with libpadhook-trace.so preloaded and record
// every call of its instrumented functions into a trace directory
// (docs/trace-format.md). The runtime (src/tracer/runtime.cc) does the
// recording; this launcher prepares the directory, sets the environment,
// runs and waits for the program, forwards SIGINT/SIGTERM, writes
// record.json and prints a one-line summary.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "commands.h"
#include "hooks/clock.h"
#include "padhook/function_table.h"
#include "tracer/duration.h"
#include "tracer/trace_format.h"

namespace padhook::tool {
namespace {

namespace fs = std::filesystem;

struct RecordOptions {
  std::string output = "padhook.data";
  std::vector<std::string> filters;
  std::vector<std::string> excludes;
  unsigned depth = 0;
  std::string min_duration;
  std::vector<std::string> command;
};

uint64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

// The first sample of the program's clock calibration window
// (TakeRecordClockSample): written once by the main thread before the fork,
// read by the child.
ClockSample g_clock_start{};
bool g_clock_start_taken = false;

// The program as execvp would find it.
std::string FindProgram(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t begin = 0;
  while (begin <= dirs.size()) {
    size_t end = dirs.find(':', begin);
    if (end == std::string::npos) end = dirs.size();
    const std::string dir = end > begin ? dirs.substr(begin, end - begin) : ".";
    const std::string candidate = dir + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
    begin = end + 1;
  }
  return "";
}

fs::path SelfDir() {
  char buffer[PATH_MAX];
  const ssize_t length = readlink("/proc/self/exe", buffer, sizeof buffer - 1);
  if (length <= 0) return {};
  return fs::path(std::string(buffer, static_cast<size_t>(length))).parent_path();
}

// PADHOOK_TRACE_LIB, else next to this binary (the build tree), else
// ../lib (an install prefix).
std::string FindTraceLibrary(std::string* tried) {
  if (const char* lib = getenv("PADHOOK_TRACE_LIB"); lib != nullptr && *lib != '\0') {
    *tried = std::string(lib) + " (PADHOOK_TRACE_LIB)";
    return access(lib, R_OK) == 0 ? fs::absolute(lib).string() : "";
  }
  const fs::path dir = SelfDir();
  for (const fs::path& candidate :
       {dir / "libpadhook-trace.so", dir.parent_path() / "lib" / "libpadhook-trace.so"}) {
    if (!tried->empty()) *tried += ", ";
    *tried += candidate.string();
    if (access(candidate.c_str(), R_OK) == 0) return candidate.string();
  }
  return "";
}

bool IsTraceDir(const fs::path& dir) {
  std::error_code error;
  if (fs::exists(dir / "record.json", error)) return true;
  for (const auto& entry : fs::directory_iterator(dir, error)) {
    const std::string name = entry.path().filename().string();
    if (name.ends_with(".process.json") || name.ends_with(".events")) return true;
  }
  return false;
}

// Makes `dir` an empty, writable trace directory; a previous trace moves to
// DIR.old (replacing an older one), like uftrace. Returns "" or an error.
std::string PrepareDirectory(const fs::path& dir) {
  std::error_code error;
  if (fs::exists(dir, error)) {
    if (!fs::is_directory(dir, error)) return dir.string() + " exists and is not a directory";
    if (IsTraceDir(dir)) {
      fs::path old = dir;
      old += ".old";
      if (fs::exists(old, error)) {
        if (!fs::is_directory(old, error) || !IsTraceDir(old)) {
          return "cannot move the previous trace " + dir.string() + " to " + old.string() +
                 ": it exists and is not a trace directory";
        }
        fs::remove_all(old, error);
        if (error) return "cannot remove " + old.string() + ": " + error.message();
      }
      fs::rename(dir, old, error);
      if (error)
        return "cannot move " + dir.string() + " to " + old.string() + ": " + error.message();
      std::cerr << "padhook record: moved the previous trace to " << old.string() << "\n";
    } else if (!fs::is_empty(dir, error)) {
      return dir.string() +
             " exists and is not a trace directory (no record.json, no *.process.json): not "
             "writing into it; choose another with -o";
    }
  }
  fs::create_directories(dir, error);
  if (error) return "cannot create " + dir.string() + ": " + error.message();
  if (access(dir.c_str(), W_OK | X_OK) != 0) {
    return dir.string() + " is not writable: " + std::strerror(errno);
  }
  return "";
}

// ---- Waiting, with SIGINT/SIGTERM forwarded ----------------------------------

volatile sig_atomic_t g_child = 0;  // written before the handlers are installed

void Forward(int signal, siginfo_t* info, void*) {
  // A terminal's ^C already reaches the whole foreground group (the program
  // too): forward only what was sent to this process alone.
  if (info != nullptr && info->si_code == SI_KERNEL) return;
  if (g_child > 0) kill(g_child, signal);
}

// ---- Summary -----------------------------------------------------------------

struct Summary {
  uint64_t functions = 0;  // F lines of the first image (the launched program)
  uint64_t words = 0;      // event words written, all files
  uint64_t lost = 0;
  size_t images = 0;
  size_t threads = 0;
};

// Words of an events file up to its first zero word (or its end).
uint64_t CountWords(const fs::path& path, uint64_t* lost) {
  std::ifstream in(path, std::ios::binary);
  trace::EventHeader header{};
  if (!in.read(reinterpret_cast<char*>(&header), sizeof header)) return 0;
  *lost += header.events_lost;
  std::error_code error;
  const uint64_t size = fs::file_size(path, error);
  if (error || size < trace::kHeaderSize) return 0;
  uint64_t words = (size - trace::kHeaderSize) / 8;
  if (header.flags & trace::kFlagClosed) return words;
  // Not closed (killed, or still running at exit): trailing zeros are unused room.
  std::vector<uint64_t> block(65536);
  while (words > 0) {
    const uint64_t n = std::min<uint64_t>(words, block.size());
    in.seekg(static_cast<std::streamoff>(trace::kHeaderSize + (words - n) * 8));
    if (!in.read(reinterpret_cast<char*>(block.data()), static_cast<std::streamsize>(n * 8))) break;
    uint64_t i = n;
    while (i > 0 && block[i - 1] == 0) --i;
    if (i > 0) return words - n + i;
    words -= n;
  }
  return 0;
}

Summary Summarize(const fs::path& dir, const std::string& first_key) {
  Summary summary;
  std::error_code error;
  std::map<std::string, uint64_t> lost_in_headers;  // per key
  std::map<std::string, uint64_t> lost_in_json;
  for (const auto& entry : fs::directory_iterator(dir, error)) {
    const std::string name = entry.path().filename().string();
    if (name.ends_with(".events")) {
      const std::string key = name.substr(0, name.rfind('-'));
      uint64_t lost = 0;
      summary.words += CountWords(entry.path(), &lost);
      lost_in_headers[key] += lost;
      ++summary.threads;
    } else if (name.ends_with(".process.json")) {
      ++summary.images;
      const std::string key = name.substr(0, name.size() - strlen(".process.json"));
      try {
        std::ifstream in(entry.path());
        const nlohmann::json json = nlohmann::json::parse(in);
        lost_in_json[key] = json.value("events_lost", uint64_t{0});
        if (key == first_key) summary.functions = json.value("functions_patched", uint64_t{0});
      } catch (const std::exception&) {
      }
    }
  }
  for (const auto& [key, lost] : lost_in_json) {
    summary.lost += std::max(lost, lost_in_headers[key]);
  }
  for (const auto& [key, lost] : lost_in_headers) {
    if (!lost_in_json.count(key)) summary.lost += lost;
  }
  return summary;
}

std::string SignalName(int signal) {
  const char* abbrev = sigabbrev_np(signal);
  return abbrev != nullptr ? std::string("SIG") + abbrev : "SIG" + std::to_string(signal);
}

int RunRecord(const RecordOptions& options) {
  if (options.command.empty()) {
    std::cerr
        << "padhook record: no program given (padhook record [OPTIONS] [--] PROGRAM [ARGS...])\n";
    return 2;
  }
  uint64_t min_duration_ns = 0;
  if (!options.min_duration.empty() &&
      !tracer::ParseDuration(options.min_duration.c_str(), &min_duration_ns)) {
    std::cerr << "padhook record: --min-duration " << options.min_duration
              << ": not a duration (examples: 500ns, 10us, 2ms, 1s)\n";
    return 2;
  }
  for (const auto* globs : {&options.filters, &options.excludes}) {
    for (const std::string& glob : *globs) {
      if (glob.empty() || glob.find(';') != std::string::npos) {
        std::cerr << "padhook record: bad glob '" << glob << "' (empty, or contains ';')\n";
        return 2;
      }
    }
  }

  const std::string program = FindProgram(options.command[0]);
  if (program.empty() || access(program.c_str(), X_OK) != 0) {
    std::cerr << "padhook record: " << options.command[0]
              << ": no such program (or not executable)\n";
    return 127;
  }
  // A program that is not built with the flags: nothing to record. Checked
  // only (CheckModuleFile): the runtime reads the functions in the program.
  if (const Status status = CheckModuleFile(program); !status.ok()) {
    if (status.code() == Errc::kNotInstrumented) {
      std::cerr << "padhook record: " << status.message() << "\n";
      return 2;
    }
    std::cerr << "padhook record: cannot read " << program << ": " << status.message() << "\n";
    return 2;
  }

  std::string tried;
  const std::string library = FindTraceLibrary(&tried);
  if (library.empty()) {
    std::cerr << "padhook record: libpadhook-trace.so not found (tried " << tried
              << "); set PADHOOK_TRACE_LIB to its path\n";
    return 2;
  }

  std::error_code error;
  const fs::path dir = fs::absolute(options.output, error);
  if (const std::string problem = PrepareDirectory(dir); !problem.empty()) {
    std::cerr << "padhook record: " << problem << "\n";
    return 2;
  }

  auto join = [](const std::vector<std::string>& parts) {
    std::string joined;
    for (const std::string& part : parts) joined += (joined.empty() ? "" : ";") + part;
    return joined;
  };
  // After what LD_PRELOAD already holds: a sanitizer runtime must stay first.
  std::string preload = library;
  if (const char* existing = getenv("LD_PRELOAD"); existing != nullptr && *existing != '\0') {
    preload = std::string(existing) + ":" + library;
  }

  // The program's environment, made before the fork: the child is a vfork
  // child (no copy of this process's page tables, no copy-on-write faults
  // here afterwards), which may only exec or _exit. Ours with the runtime's
  // variables set, and those of record's options that are not given removed.
  std::vector<std::pair<std::string, std::string>> settings = {
      {"PADHOOK_TRACE_DIR", dir.string()},
      {"LD_PRELOAD", preload},
      {"PADHOOK_TRACE_CLOCK_START", ""},
      {"PADHOOK_TRACE_FILTER", join(options.filters)},
      {"PADHOOK_TRACE_EXCLUDE", join(options.excludes)},
      {"PADHOOK_TRACE_DEPTH", options.depth ? std::to_string(options.depth) : ""},
      {"PADHOOK_TRACE_MIN_DURATION", min_duration_ns ? std::to_string(min_duration_ns) : ""},
  };
  if (!g_clock_start_taken) TakeRecordClockSample();
  settings[2].second = std::to_string(g_clock_start.ticks) + "," + std::to_string(g_clock_start.ns);
  std::vector<std::string> environment;
  for (char** variable = environ; *variable != nullptr; ++variable) {
    const std::string_view entry(*variable);
    bool replaced = false;
    for (const auto& [name, value] : settings) {
      replaced |=
          entry.size() > name.size() && entry.starts_with(name) && entry[name.size()] == '=';
    }
    if (!replaced) environment.emplace_back(entry);
  }
  for (const auto& [name, value] : settings) {
    if (!value.empty()) environment.push_back(name + "=" + value);
  }
  std::vector<char*> envp;
  for (std::string& entry : environment) envp.push_back(entry.data());
  envp.push_back(nullptr);
  std::vector<char*> argv;
  for (const std::string& arg : options.command) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);

  // Report an exec failure through a close-on-exec pipe.
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) {
    std::cerr << "padhook record: pipe: " << std::strerror(errno) << "\n";
    return 2;
  }
  // SIGINT and SIGTERM stay blocked from before the fork until the handlers
  // that forward them are installed: one sent in between (the program may
  // already be running) is then delivered to Forward, not lost with a
  // launcher killed by it while the program runs on.
  sigset_t forwarded, old_mask;
  sigemptyset(&forwarded);
  sigaddset(&forwarded, SIGINT);
  sigaddset(&forwarded, SIGTERM);
  sigprocmask(SIG_BLOCK, &forwarded, &old_mask);
  const uint64_t start_ns = MonotonicNs();
  const pid_t child = vfork();
  if (child < 0) {
    std::cerr << "padhook record: fork: " << std::strerror(errno) << "\n";
    sigprocmask(SIG_SETMASK, &old_mask, nullptr);
    return 2;
  }
  if (child == 0) {
    // Shares this process's memory until execve: async-signal-safe calls only.
    sigprocmask(SIG_SETMASK, &old_mask, nullptr);  // the program gets the mask padhook got
    execve(program.c_str(), argv.data(), envp.data());
    const int err = errno;
    (void)!write(report[1], &err, sizeof err);
    _exit(127);
  }
  close(report[1]);
  g_child = child;
  struct sigaction action {};
  action.sa_sigaction = &Forward;
  action.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&action.sa_mask);
  struct sigaction old_int {
  }, old_term{};
  sigaction(SIGINT, &action, &old_int);
  sigaction(SIGTERM, &action, &old_term);
  sigprocmask(SIG_SETMASK, &old_mask, nullptr);  // a pending one is forwarded now

  int exec_error = 0;
  ssize_t got;
  do {
    got = read(report[0], &exec_error, sizeof exec_error);
  } while (got < 0 && errno == EINTR);
  close(report[0]);

  int status = 0;
  while (waitpid(child, &status, 0) < 0) {
    if (errno != EINTR) {
      std::cerr << "padhook record: waitpid: " << std::strerror(errno) << "\n";
      return 2;
    }
  }
  const uint64_t end_ns = MonotonicNs();
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  if (got == sizeof exec_error) {
    std::cerr << "padhook record: cannot run " << program << ": " << std::strerror(exec_error)
              << "\n";
    fs::remove_all(dir, error);
    return 127;
  }

  nlohmann::json record;
  record["version"] = 1;
  record["command"] = options.command;
  record["start_ns"] = start_ns;
  record["end_ns"] = end_ns;
  int exit_code;
  if (WIFSIGNALED(status)) {
    const int signal = WTERMSIG(status);
    record["exit_status"] = nullptr;
    record["signal"] = signal;
    record["signal_name"] = SignalName(signal);
    exit_code = 128 + signal;
  } else {
    record["exit_status"] = WEXITSTATUS(status);
    record["signal"] = nullptr;
    record["signal_name"] = nullptr;
    exit_code = WEXITSTATUS(status);
  }
  {
    const fs::path temporary = dir / "record.json.tmp";
    std::ofstream out(temporary);
    out << record.dump() << "\n";
    out.close();
    fs::rename(temporary, dir / "record.json", error);
    if (!out || error)
      std::cerr << "padhook record: cannot write " << (dir / "record.json") << "\n";
  }

  const Summary summary = Summarize(dir, std::to_string(child));
  std::string ending = WIFSIGNALED(status) ? "killed by " + SignalName(WTERMSIG(status))
                                           : "exit status " + std::to_string(WEXITSTATUS(status));
  std::fprintf(stderr,
               "padhook record: %llu functions, %llu events, %llu lost, %zu thread%s in %zu "
               "process image%s; %s; trace in %s\n",
               static_cast<unsigned long long>(summary.functions),
               static_cast<unsigned long long>(summary.words),
               static_cast<unsigned long long>(summary.lost), summary.threads,
               summary.threads == 1 ? "" : "s", summary.images, summary.images == 1 ? "" : "s",
               ending.c_str(), options.output.c_str());
  if (summary.images == 0) {
    std::fprintf(stderr,
                 "padhook record: the program wrote no trace: was %s loaded? (a static program, "
                 "or one that clears LD_PRELOAD, cannot be traced)\n",
                 library.c_str());
  }
  return exit_code;
}

}  // namespace

// Everything from PROGRAM on belongs to PROGRAM, its own options included:
// the command line is split here, before CLI11 sees it, at the first
// argument that is neither one of record's options nor an option's value,
// or after `--`.
std::vector<std::string> TakeRecordCommand(std::vector<std::string>& args) {
  std::vector<std::string> command;
  if (args.size() < 2 || args[1] != "record") return command;
  static const char* const kWithValue[] = {"-o", "--output",  "-F",      "--filter",
                                           "-N", "--notrace", "--depth", "--min-duration"};
  size_t i = 2;
  while (i < args.size()) {
    const std::string& arg = args[i];
    if (arg == "--") {
      command.assign(args.begin() + static_cast<long>(i) + 1, args.end());
      args.resize(i);
      return command;
    }
    if (arg.empty() || arg[0] != '-') break;
    bool takes_value = false;
    for (const char* option : kWithValue) takes_value |= arg == option;
    i += takes_value ? 2 : 1;
  }
  if (i < args.size()) {
    command.assign(args.begin() + static_cast<long>(i), args.end());
    args.resize(i);
  }
  return command;
}

std::vector<std::string> g_record_command;

void TakeRecordClockSample() {
  g_clock_start = TakeClockSample();
  g_clock_start_taken = true;
}

CommandRunner SetupRecord(CLI::App& command) {
  auto options = std::make_shared<RecordOptions>();
  command.footer(
      "Runs PROGRAM with libpadhook-trace.so preloaded: every instrumented function (built\n"
      "with `padhook flags`) of the program and of its shared libraries, including those\n"
      "loaded later with dlopen, is patched at start and each call is recorded, per thread,\n"
      "into the trace directory (format: docs/trace-format.md). Forked children and exec'ed\n"
      "programs are traced too. A previous trace in DIR moves to DIR.old.\n"
      "Prints a one-line summary on stderr and exits with PROGRAM's exit status (128+N\n"
      "when it was killed by signal N). SIGINT/SIGTERM sent to padhook are passed on.\n\n"
      "Examples:\n"
      "  padhook record ./server --port 8080\n"
      "  padhook record -F 'parse_*' -N 'parse_debug*' --depth 8 -- ./tool -v input.txt\n"
      "  padhook record --min-duration 10us -o trace.d ./batch");
  command.add_option("-o,--output", options->output, "Trace directory (default: padhook.data)");
  command.add_option("-F,--filter", options->filters,
                     "Patch only functions whose name matches this shell glob (repeatable); a\n"
                     "glob matches 'ns::f(int)', 'ns::f' or the mangled name");
  command.add_option("-N,--notrace", options->excludes,
                     "Do not patch functions whose name matches this glob (repeatable; applies\n"
                     "after -F)");
  command
      .add_option("--depth", options->depth,
                  "Record only calls nested at most N deep on their thread (0: no limit)")
      ->check(CLI::NonNegativeNumber);
  command.add_option("--min-duration", options->min_duration,
                     "Drop calls shorter than this (e.g. 500ns, 10us, 2ms) that have no\n"
                     "recorded callee");
  return [options] {
    RecordOptions run = *options;
    run.command = g_record_command;
    return RunRecord(run);
  };
}

}  // namespace padhook::tool
