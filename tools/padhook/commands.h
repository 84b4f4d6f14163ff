// tools/padhook/commands.h — the subcommands of the `padhook` tool.
//
// One file per subcommand, each exporting one setup function of the shape
// CommandSetup: it adds its options to the (already named and described)
// subcommand and returns the function that runs it once the command line is
// parsed, returning the process exit status. main.cc lists them.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace padhook::tool {

using CommandRunner = std::function<int()>;
using CommandSetup = CommandRunner(CLI::App& command);

CommandRunner SetupFlags(CLI::App& command);   // padhook flags
CommandRunner SetupList(CLI::App& command);    // padhook list
CommandRunner SetupRecord(CLI::App& command);  // padhook record

// `padhook record [OPTIONS] [--] PROGRAM [ARGS...]`: removes PROGRAM and its
// arguments from `args` (the whole command line) and returns them, so that
// CLI11 never parses the program's own options.
std::vector<std::string> TakeRecordCommand(std::vector<std::string>& args);
extern std::vector<std::string> g_record_command;  // what TakeRecordCommand took
// `padhook record`: takes the (TSC, CLOCK_MONOTONIC) sample that starts the
// program's clock calibration window (PADHOOK_TRACE_CLOCK_START), as early
// as possible: the launcher's own start-up and the program's loading then
// fill the window, instead of the runtime's busy sampling.
void TakeRecordClockSample();

// The trace readers (trace_reader.h): docs/trace-format.md's directories.
CommandRunner SetupReport(CLI::App& command);  // padhook report
CommandRunner SetupReplay(CLI::App& command);  // padhook replay
CommandRunner SetupGraph(CLI::App& command);   // padhook graph
CommandRunner SetupInfo(CLI::App& command);    // padhook info
CommandRunner SetupExport(CLI::App& command);  // padhook export

}  // namespace padhook::tool
