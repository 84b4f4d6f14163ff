#include "pipeline.h"

#include <optional>

#include "demo_util.h"
#include "flat_map.h"
#include "log_source.h"
#include "query.h"
#include "record.h"
#include "sort.h"
#include "thread_pool.h"

namespace demo {
namespace {

constexpr size_t kChunkLines = 500;     // lines per task
constexpr size_t kErrorsKept = 3;       // parse errors quoted in the report
constexpr size_t kTopTerms = 8;

struct ServiceStats {
  uint64_t requests = 0;
  uint64_t errors = 0;  // status >= 500
  int64_t latency_sum = 0;
  std::vector<int> latencies;
};

// One query, compiled once; `query` is empty when it did not compile.
struct QuerySlot {
  std::string text;
  std::optional<Query> query;
  std::string compile_error;
};

struct QueryCounts {
  uint64_t matches = 0;
  uint64_t errors = 0;  // records on which evaluation failed
  std::string first_error;
};

struct ChunkResult {
  uint64_t lines = 0;
  uint64_t parsed = 0;
  std::vector<std::string> errors;  // the first few "line N: what"
  uint64_t malformed = 0;
  FlatMap<std::string, uint64_t> terms;
  FlatMap<std::string, uint64_t> hosts;
  FlatMap<std::string, ServiceStats> services;
  FlatMap<int, uint64_t> statuses;
  std::vector<QueryCounts> queries;
};

std::vector<QuerySlot> CompileQueries() {
  std::vector<QuerySlot> slots;
  for (const std::string& text : DefaultQueries()) {
    QuerySlot slot{text, std::nullopt, ""};
    try {
      slot.query = Query::Compile(text);
    } catch (const QueryError& e) {
      slot.compile_error = e.what();
    }
    slots.push_back(std::move(slot));
  }
  return slots;
}

void Account(ChunkResult& out, const Record& record) {
  ++out.parsed;
  ServiceStats& svc = out.services[record.service];
  ++svc.requests;
  svc.errors += record.status >= 500;
  svc.latency_sum += record.latency_ms;
  svc.latencies.push_back(record.latency_ms);
  ++out.statuses[record.status];
  ++out.hosts[record.host];
  for (const std::string& term : MessageTerms(record.message)) ++out.terms[term];
}

void RunQueries(ChunkResult& out, const std::vector<QuerySlot>& queries, const Record& record) {
  for (size_t i = 0; i < queries.size(); ++i) {
    if (!queries[i].query) continue;
    QueryCounts& counts = out.queries[i];
    try {
      counts.matches += queries[i].query->Matches(record);
    } catch (const EvalError& e) {
      if (counts.errors++ == 0) counts.first_error = e.what();
    }
  }
}

// One task: generate a chunk of the log and analyze it.
ChunkResult AnalyzeChunk(uint64_t seed, size_t first_line, size_t count, const std::vector<QuerySlot>& queries) {
  ChunkResult out;
  out.queries.resize(queries.size());
  const std::vector<std::string> lines = GenerateLog(count, seed);
  for (size_t i = 0; i < lines.size(); ++i) {
    ++out.lines;
    try {
      const Record record = ParseRecord(lines[i], first_line + i);
      Account(out, record);
      RunQueries(out, queries, record);
    } catch (const ParseError& e) {
      ++out.malformed;
      if (out.errors.size() < kErrorsKept) out.errors.push_back("line " + std::to_string(e.line()) + ": " + e.what());
    }
  }
  return out;
}

void MergeInto(ChunkResult& total, const ChunkResult& chunk) {
  const auto add = [](uint64_t& mine, uint64_t theirs) { mine += theirs; };
  total.lines += chunk.lines;
  total.parsed += chunk.parsed;
  total.malformed += chunk.malformed;
  for (const std::string& e : chunk.errors)
    if (total.errors.size() < kErrorsKept) total.errors.push_back(e);
  total.terms.MergeFrom(chunk.terms, add);
  total.hosts.MergeFrom(chunk.hosts, add);
  total.statuses.MergeFrom(chunk.statuses, add);
  total.services.MergeFrom(chunk.services, [](ServiceStats& mine, const ServiceStats& theirs) {
    mine.requests += theirs.requests;
    mine.errors += theirs.errors;
    mine.latency_sum += theirs.latency_sum;
    mine.latencies.insert(mine.latencies.end(), theirs.latencies.begin(), theirs.latencies.end());
  });
  if (total.queries.size() < chunk.queries.size()) total.queries.resize(chunk.queries.size());
  for (size_t i = 0; i < chunk.queries.size(); ++i) {
    QueryCounts& q = total.queries[i];
    if (q.errors == 0 && chunk.queries[i].errors > 0) q.first_error = chunk.queries[i].first_error;
    q.matches += chunk.queries[i].matches;
    q.errors += chunk.queries[i].errors;
  }
}

// ---- Report ----------------------------------------------------------------

double Ratio(uint64_t part, uint64_t whole) { return whole ? static_cast<double>(part) / static_cast<double>(whole) : 0.0; }

Json ServicesReport(const ChunkResult& total) {
  auto services = total.services.Entries();
  QuickSort(services, [](const auto& a, const auto& b) { return a.first < b.first; });
  Json out = Json::MakeArray();
  for (auto& [name, stats] : services) {
    QuickSort(stats.latencies);
    out.Push(Json::MakeObject()
                 .Set("service", name)
                 .Set("requests", stats.requests)
                 .Set("error_rate", Ratio(stats.errors, stats.requests))
                 .Set("latency_mean_ms", stats.requests ? static_cast<double>(stats.latency_sum) / stats.requests : 0.0)
                 .Set("latency_p50_ms", Percentile(stats.latencies, 50))
                 .Set("latency_p99_ms", Percentile(stats.latencies, 99)));
  }
  return out;
}

// The slowest service by mean latency, as a second ordering of the same rows.
Json SlowestService(const ChunkResult& total) {
  struct Row {
    double mean;
    std::string name;
  };
  std::vector<Row> rows;
  total.services.ForEach([&](const std::string& name, const ServiceStats& s) {
    rows.push_back({s.requests ? static_cast<double>(s.latency_sum) / s.requests : 0.0, name});
  });
  QuickSort(rows, [](const Row& a, const Row& b) { return a.mean > b.mean || (a.mean == b.mean && a.name < b.name); });
  return rows.empty() ? Json() : Json(rows.front().name);
}

Json StatusReport(const ChunkResult& total) {
  auto statuses = total.statuses.Entries();
  QuickSort(statuses, [](const auto& a, const auto& b) { return a.first < b.first; });
  Json out = Json::MakeObject();
  for (const auto& [code, count] : statuses) out.Set(std::to_string(code), count);
  return out;
}

Json HostsReport(const ChunkResult& total) {
  std::vector<std::string> names;
  total.hosts.ForEach([&](const std::string& name, uint64_t) { names.push_back(name); });
  QuickSort(names);
  Json out = Json::MakeObject();
  for (const std::string& name : names) out.Set(name, *total.hosts.Find(name));
  return out;
}

Json TopTerms(const ChunkResult& total) {
  auto terms = total.terms.Entries();
  QuickSort(terms, [](const auto& a, const auto& b) { return a.second > b.second || (a.second == b.second && a.first < b.first); });
  Json out = Json::MakeArray();
  for (size_t i = 0; i < terms.size() && i < kTopTerms; ++i)
    out.Push(Json::MakeObject().Set("term", terms[i].first).Set("count", terms[i].second));
  return out;
}

Json QueriesReport(const ChunkResult& total, const std::vector<QuerySlot>& queries) {
  Json out = Json::MakeArray();
  for (size_t i = 0; i < queries.size(); ++i) {
    Json q = Json::MakeObject().Set("query", queries[i].text);
    if (!queries[i].query) {
      q.Set("compile_error", queries[i].compile_error);
    } else {
      const QueryCounts counts = i < total.queries.size() ? total.queries[i] : QueryCounts{};
      q.Set("parsed_as", queries[i].query->Canonical()).Set("matches", counts.matches).Set("eval_errors", counts.errors);
      if (counts.errors) q.Set("first_eval_error", counts.first_error);
    }
    out.Push(std::move(q));
  }
  return out;
}

}  // namespace

const std::vector<std::string>& DefaultQueries() {
  static const std::vector<std::string> queries = {
      "status >= 500",
      "svc == \"auth\" && level == \"WARN\"",
      "latency_ms > 250 && !contains(msg, \"cached\")",
      "latency_ms / (status - 500) > 100",  // division by zero on every 500
      "len(msg) > 34 || host == \"db-01\"",
      "max(latency_ms - 100, 0) * 2 + -(status % 7) > 300",
      "status >= && svc",  // does not compile
  };
  return queries;
}

Json RunPipeline(const Options& options) {
  const std::vector<QuerySlot> queries = CompileQueries();
  ChunkResult total;
  ThreadPool pool(options.threads);
  for (unsigned iteration = 0; iteration < options.iterations; ++iteration) {
    std::vector<std::future<ChunkResult>> chunks;
    for (size_t first = 0; first < options.lines; first += kChunkLines) {
      const uint64_t seed = demo_util::HashCombine(options.seed + iteration, first);
      const size_t line_no = iteration * options.lines + first + 1;
      const size_t count = std::min(kChunkLines, options.lines - first);
      chunks.push_back(pool.Submit([seed, line_no, count, &queries] { return AnalyzeChunk(seed, line_no, count, queries); }));
    }
    for (auto& chunk : chunks) MergeInto(total, chunk.get());  // in chunk order: deterministic
  }

  Json report = Json::MakeObject();
  report.Set("lines", total.lines)
      .Set("parsed", total.parsed)
      .Set("malformed", total.malformed)
      .Set("first_errors", Json(Json::Array(total.errors.begin(), total.errors.end())))
      .Set("distinct_terms", static_cast<uint64_t>(total.terms.size()))
      .Set("top_terms", TopTerms(total))
      .Set("statuses", StatusReport(total))
      .Set("hosts", HostsReport(total))
      .Set("services", ServicesReport(total))
      .Set("slowest_service", SlowestService(total))
      .Set("queries", QueriesReport(total, queries));
  return report;
}

}  // namespace demo
