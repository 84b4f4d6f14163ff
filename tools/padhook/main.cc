// padhook — inspect and trace programs built with `padhook flags`.
#include <CLI/CLI.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "commands.h"

namespace {

struct Command {
  const char* name;
  const char* description;  // one line: `padhook --help` lists it
  padhook::tool::CommandSetup* setup;
};

constexpr Command kCommands[] = {
    {"flags", "Print the compiler flags that make a program traceable (or --libs/--cflags)",
     padhook::tool::SetupFlags},
    {"list", "List the instrumented functions of a program or shared library",
     padhook::tool::SetupList},
    {"record",
     "Run a program, recording the calls of its instrumented functions: padhook record [OPTIONS] "
     "[--] PROGRAM [ARGS...]",
     padhook::tool::SetupRecord},
    {"report", "Per-function calls and times of a recorded trace", padhook::tool::SetupReport},
    {"replay", "Every call of a recorded trace, in order, as a tree per thread",
     padhook::tool::SetupReplay},
    {"graph", "The call graph of a recorded trace, per call path", padhook::tool::SetupGraph},
    {"info", "What a trace holds and how the recorded run ended", padhook::tool::SetupInfo},
    {"export", "A recorded trace as Chrome Trace Event JSON or folded stacks",
     padhook::tool::SetupExport},
};

}  // namespace

int main(int argc, char** argv) {
  // First of all: the longer the window the launcher starts, the less the
  // traced program samples (commands.h).
  if (argc >= 2 && std::string_view(argv[1]) == "record") padhook::tool::TakeRecordClockSample();
  CLI::App app{"padhook: function tracing through -fpatchable-function-entry padding", "padhook"};
  app.require_subcommand(1);
  // A command named first is the one parsed: only it is set up (every
  // command's CLI11 options were ~0.5 M instructions of each `padhook record`,
  // which starts the traced program after them). Otherwise (`padhook --help`,
  // a mistyped command) all of them, as CLI11 lists them.
  const Command* named = nullptr;
  for (const Command& command : kCommands) {
    if (argc >= 2 && std::string_view(argv[1]) == command.name) named = &command;
  }
  std::vector<std::pair<CLI::App*, padhook::tool::CommandRunner>> commands;
  for (const Command& command : kCommands) {
    if (named != nullptr && named != &command) continue;
    CLI::App* subcommand = app.add_subcommand(command.name, command.description);
    commands.emplace_back(subcommand, command.setup(*subcommand));
  }
  std::vector<std::string> args(argv, argv + argc);
  padhook::tool::g_record_command = padhook::tool::TakeRecordCommand(args);
  std::vector<char*> parsed;
  for (std::string& arg : args) parsed.push_back(arg.data());
  CLI11_PARSE(app, static_cast<int>(parsed.size()), parsed.data());
  for (auto& [subcommand, run] : commands) {
    if (subcommand->parsed()) return run();
  }
  return 1;
}
