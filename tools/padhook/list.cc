// padhook list: the instrumented functions of a file, as padhook sees them.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "arch.h"
#include "commands.h"
#include "elf/elf_image.h"
#include "padhook/function_table.h"

namespace padhook::tool {
namespace {

struct ListOptions {
  std::string format = "text";
  bool all = false;
  std::string path;
};

// A function symbol that has no patchable entry (shown with --all).
struct PlainFunction {
  uint64_t address;
  uint64_t size;
  std::string name;
};

std::string Hex(uint64_t value) {
  char buffer[24];
  std::snprintf(buffer, sizeof buffer, "0x%llx", static_cast<unsigned long long>(value));
  return buffer;
}

const char* ModuleType(const Module& module) {
  if (!module.position_independent) return "executable";
  return module.main_program ? "PIE executable" : "shared library";
}

std::vector<PlainFunction> NotInstrumented(const std::string& path, const Module& module) {
  std::vector<PlainFunction> plain;
  auto image = elf::ElfImage::Open(path);
  if (!image.ok()) return plain;
  std::set<uint64_t> instrumented;
  for (const Function& function : module.functions) instrumented.insert(function.file_address());
  std::set<uint64_t> seen;  // aliases name the same code once
  for (const elf::FunctionSymbol& symbol : (*image)->function_symbols()) {
    if (instrumented.count(symbol.value) || !seen.insert(symbol.value).second) continue;
    plain.push_back({symbol.value, symbol.size, std::string(symbol.name)});
  }
  return plain;
}

bool HasUnexpectedBytes(const PatchSite& site) {
  return site.kind == SiteKind::kUnexpected || site.slot == SlotState::kUnexpected;
}

nlohmann::json ToJson(const Module& module, const std::vector<PlainFunction>& plain) {
  nlohmann::json functions = nlohmann::json::array();
  std::map<std::string, size_t> kinds;
  for (const Function& function : module.functions) {
    ++kinds[SiteKindName(function.site.kind)];
    functions.push_back({
        {"name", function.name},
        {"mangled", function.mangled},
        {"address", function.file_address()},
        {"size", function.size},
        {"kind", SiteKindName(function.site.kind)},
        {"slot", SlotStateName(function.site.slot)},
        {"landing_pad", function.site.landing_pad != 0},
        {"site_in_one_word", function.site.site_in_one_word},
        {"description", arch::DescribeSite(function.site)},
        {"from_section", function.from_section},
    });
  }
  nlohmann::json out = {
      {"path", module.path},
      {"type", ModuleType(module)},
      {"function_count", module.functions.size()},
      {"unusable_sites", module.unusable_sites},
      {"has_patchable_section", module.has_patchable_section},
      {"found_by_layout", module.found_by_layout},
      {"kinds", kinds},
      {"functions", std::move(functions)},
  };
  if (!plain.empty()) {
    nlohmann::json other = nlohmann::json::array();
    for (const PlainFunction& function : plain) {
      other.push_back(
          {{"name", function.name}, {"address", function.address}, {"size", function.size}});
    }
    out["not_instrumented"] = std::move(other);
  }
  return out;
}

void PrintText(const Module& module, const std::vector<PlainFunction>& plain) {
  std::cout << module.path << ": " << ModuleType(module) << ", " << module.functions.size()
            << " instrumented functions\n";

  struct Row {
    uint64_t address;
    std::string address_text, size, site, name;
  };
  std::vector<Row> rows;
  for (const Function& function : module.functions) {
    // Functions missing from __patchable_function_entries are marked.
    rows.push_back({function.file_address(), Hex(function.file_address()),
                    std::to_string(function.size),
                    arch::DescribeSite(function.site) +
                        (function.from_section ? "" : ", found by layout"),
                    function.name});
  }
  for (const PlainFunction& function : plain) {
    rows.push_back({function.address, Hex(function.address), std::to_string(function.size),
                    "not instrumented", function.name});
  }
  std::stable_sort(rows.begin(), rows.end(),
                   [](const Row& a, const Row& b) { return a.address < b.address; });

  Row header{0, "ADDRESS", "SIZE", "SITE", "FUNCTION"};
  size_t address_width = header.address_text.size(), size_width = header.size.size(),
         site_width = header.site.size();
  for (const Row& row : rows) {
    address_width = std::max(address_width, row.address_text.size());
    size_width = std::max(size_width, row.size.size());
    site_width = std::max(site_width, row.site.size());
  }
  auto print = [&](const Row& row) {
    std::cout << row.address_text << std::string(address_width - row.address_text.size() + 2, ' ')
              << std::string(size_width - row.size.size(), ' ') << row.size << "  " << row.site
              << std::string(site_width - row.site.size() + 2, ' ') << row.name << '\n';
  };
  print(header);
  for (const Row& row : rows) print(row);

  std::map<std::string, size_t> kinds;
  std::vector<std::string> unexpected, too_small;
  for (const Function& function : module.functions) {
    ++kinds[SiteKindName(function.site.kind)];
    if (HasUnexpectedBytes(function.site))
      unexpected.push_back(function.name);
    else if (function.site.slot == SlotState::kTooSmall)
      too_small.push_back(function.name);
  }
  std::cout << "\n" << module.functions.size() << " functions:";
  const char* separator = " ";
  for (const auto& [kind, count] : kinds) {
    std::cout << separator << count << " " << kind;
    separator = ", ";
  }
  std::cout << '\n';
  auto print_names = [](const std::vector<std::string>& names) {
    for (size_t i = 0; i < names.size() && i < 10; ++i) std::cout << (i ? ", " : " ") << names[i];
    if (names.size() > 10) std::cout << ", ...";
    std::cout << '\n';
  };
  if (!unexpected.empty()) {
    std::cout << unexpected.size() << " sites have unexpected bytes:";
    print_names(unexpected);
  }
  if (!too_small.empty()) {
    std::cout << too_small.size() << " sites have too little padding for metadata:";
    print_names(too_small);
  }
  if (module.found_by_layout != 0) {
    std::cout << module.found_by_layout
              << " functions found by their layout (not in __patchable_function_entries: GCC 12 "
                 "drops entries; see docs/layout.md)\n";
  }
  if (module.unusable_sites == 0) std::cout << "all sites can be patched\n";
}

int RunList(const ListOptions& options) {
  auto module = LoadModuleFromFile(options.path);
  if (!module.ok()) {
    std::cerr << "padhook list: " << module.status().message() << '\n';
    return 1;
  }
  const std::vector<PlainFunction> plain =
      options.all ? NotInstrumented(options.path, **module) : std::vector<PlainFunction>();
  if (options.format == "json") {
    std::cout << ToJson(**module, plain).dump(2) << '\n';
  } else {
    PrintText(**module, plain);
  }
  return 0;
}

}  // namespace

CommandRunner SetupList(CLI::App& command) {
  auto options = std::make_shared<ListOptions>();
  command.add_option("--format", options->format, "Output format")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  command.add_flag("--all", options->all,
                   "Also list the function symbols that have no patchable entry");
  command.add_option("file", options->path, "The program or shared library to read")->required();
  return [options] { return RunList(*options); };
}

}  // namespace padhook::tool
