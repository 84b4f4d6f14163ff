// padhook graph: the call graph of a recorded trace, aggregated per call path
// (calls and total time of each path), optionally rooted at one function
// with the backtraces that lead to it (like `uftrace graph`).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "trace_command.h"
#include "trace_reader.h"

namespace padhook::tool {
namespace {

struct GraphOptions {
  std::string input = kDefaultTraceDir;
  std::string function;
  std::string output;
};

void NodeLine(Output& out, const trace::Trace& trace, const CallNode& node,
              const std::string& prefix) {
  out << FormatDuration(node.total_ns) << " : " << prefix << '(';
  out.Uint(node.calls) << ") " << trace.functions()[node.function].name;
  if (node.unfinished != 0) {
    out << " [";
    out.Uint(node.unfinished) << " unfinished]";
  }
  out << '\n';
}

// The tree under the root, depth first. A node with several children draws
// them as "+-" branches joined by "|"; a single child goes straight below.
void PrintTree(Output& out, const trace::Trace& trace, const CallTree& tree) {
  struct Item {
    uint32_t node;
    std::string lead;    // the prefix of this node's line
    std::string indent;  // the prefix its children's lines start from
    bool blank_before;   // a "|" spacer line between siblings
  };
  std::vector<Item> stack;
  auto push_children = [&](uint32_t node, const std::string& indent) {
    std::vector<uint32_t> children;
    for (uint32_t c = tree[node].first_child; c != 0; c = tree[c].next_sibling)
      children.push_back(c);
    const bool branches = children.size() > 1;
    for (size_t i = children.size(); i-- > 0;) {
      const bool last = i + 1 == children.size();
      if (branches) {
        stack.push_back({children[i], indent + " +-", indent + (last ? "   " : " | "), i > 0});
      } else {
        stack.push_back({children[i], indent, indent, false});
      }
    }
  };
  // The root's children (the outermost functions) are separate trees.
  for (uint32_t c = tree[0].first_child; c != 0; c = tree[c].next_sibling) {
    stack.push_back({c, "", "", false});
    while (!stack.empty()) {
      Item item = std::move(stack.back());
      stack.pop_back();
      if (item.blank_before) {
        std::string spacer = item.lead.substr(0, item.lead.size() - 3) + " |";
        out << "           : " << spacer << '\n';
      }
      NodeLine(out, trace, tree[item.node], item.lead);
      push_children(item.node, item.indent);
    }
    if (tree[c].next_sibling != 0) out << '\n';
  }
}

int RunGraph(const GraphOptions& options) {
  trace::Trace trace = trace::Trace::Open(options.input);
  PrintTraceWarnings(trace);
  std::vector<uint32_t> roots;
  if (!options.function.empty()) {
    roots = FindFunctions(trace, options.function);
    if (roots.empty()) {
      throw trace::TraceError("no function named \"" + options.function + "\" in " +
                              trace.dir().string() + " (padhook report lists them)");
    }
  }
  CallTree tree;
  tree.AddTrace(trace, nullptr);
  Output out(options.output);
  if (roots.empty()) {
    out << "# Function call graph of " << trace.dir().string() << " (all threads)\n\n"
        << "========== FUNCTION CALL GRAPH ==========\n"
        << "# TOTAL TIME : (CALLS) FUNCTION\n";
    PrintTree(out, trace, tree);
    out.Close();
    return 0;
  }

  // Backtraces: every path that reaches an outermost call of the function.
  std::vector<uint32_t> hits;
  for (uint32_t node = 1; node < tree.size(); ++node) {
    if (std::find(roots.begin(), roots.end(), tree[node].function) == roots.end()) continue;
    bool outermost = true;
    for (uint32_t up = tree[node].parent; up != 0; up = tree[up].parent) {
      if (std::find(roots.begin(), roots.end(), tree[up].function) != roots.end()) {
        outermost = false;
        break;
      }
    }
    if (outermost) hits.push_back(node);
  }
  std::stable_sort(hits.begin(), hits.end(),
                   [&](uint32_t a, uint32_t b) { return tree[a].calls > tree[b].calls; });
  out << "# Function call graph for '" << options.function << "'\n\n"
      << "========== BACKTRACE ==========\n";
  for (size_t i = 0; i < hits.size(); ++i) {
    out << " backtrace #" << std::to_string(i) << ": hit ";
    out.Uint(tree[hits[i]].calls) << ", time " << FormatDuration(tree[hits[i]].total_ns) << '\n';
    size_t level = 0;
    for (uint32_t node = hits[i]; node != 0; node = tree[node].parent, ++level) {
      out << "   [" << std::to_string(level) << "] " << trace.functions()[tree[node].function].name
          << '\n';
    }
    out << '\n';
  }
  out << "========== FUNCTION CALL GRAPH ==========\n"
      << "# TOTAL TIME : (CALLS) FUNCTION\n";
  PrintTree(out, trace, tree.Merged(roots));
  out.Close();
  return 0;
}

}  // namespace

CommandRunner SetupGraph(CLI::App& command) {
  auto options = std::make_shared<GraphOptions>();
  command.footer(
      "Each line is one call path: the total time and number of calls of the function when\n"
      "called through the path above it. With FUNCTION: the paths that lead to it (how often\n"
      "each was taken) and the graph below it, all its calls merged. FUNCTION is a name as\n"
      "`padhook report` shows it, or a C++ name without its parameter list.\n\n"
      "Examples:\n"
      "  padhook graph\n"
      "  padhook graph 'demo::ParseRecord'");
  AddInputOption(command, options->input);
  command.add_option("function", options->function, "Root the graph at this function")
      ->type_name("FUNCTION");
  command.add_option("-o,--output", options->output, "Write to FILE instead of stdout")
      ->type_name("FILE");
  return [options] { return RunTraceCommand("graph", [&] { return RunGraph(*options); }); };
}

}  // namespace padhook::tool
