// tools/padhook/commands.h — the subcommands of the `padhook` tool.
//
// One file per subcommand, each exporting one setup function of the shape
// CommandSetup: it adds its options to the (already named and described)
// subcommand and returns the function that runs it once the command line is
// parsed, returning the process exit status. main.cc lists them.
#pragma once

#include <functional>

namespace CLI {
class App;
}

namespace padhook::tool {

using CommandRunner = std::function<int()>;
using CommandSetup = CommandRunner(CLI::App& command);

CommandRunner SetupFlags(CLI::App& command);  // padhook flags
CommandRunner SetupList(CLI::App& command);   // padhook list

// The trace readers (trace_reader.h): docs/trace-format.md's directories.
CommandRunner SetupReport(CLI::App& command);  // padhook report
CommandRunner SetupReplay(CLI::App& command);  // padhook replay
CommandRunner SetupGraph(CLI::App& command);   // padhook graph
CommandRunner SetupInfo(CLI::App& command);    // padhook info
CommandRunner SetupExport(CLI::App& command);  // padhook export

}  // namespace padhook::tool
