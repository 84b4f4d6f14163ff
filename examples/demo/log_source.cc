#include "log_source.h"

#include "demo_util.h"

namespace demo {
namespace {

const std::vector<std::string> kHosts = {"web-01", "web-02", "web-03", "api-01", "api-02", "db-01"};
const std::vector<std::string> kServices = {"auth", "billing", "search", "upload", "gateway"};
const std::vector<std::string> kLevels = {"DEBUG", "INFO", "INFO", "INFO", "WARN", "ERROR"};
const std::vector<std::string> kVerbs = {"login", "logout", "query", "refresh", "charge", "upload", "resolve"};
const std::vector<std::string> kOutcomes = {"ok", "failed", "timed out", "retried", "cached", "denied"};
const std::vector<std::string> kObjects = {"token", "session", "invoice", "index", "file", "route", "user"};

int PickStatus(demo_util::Rng& rng, const std::string& level) {
  if (level == "ERROR") return rng.Chance(70) ? 500 + static_cast<int>(rng.Below(4)) : 404;
  if (level == "WARN") return rng.Chance(50) ? 429 : 400 + static_cast<int>(rng.Below(4));
  return rng.Chance(90) ? 200 : 204;
}

int PickLatency(demo_util::Rng& rng, int status) {
  int base = 5 + static_cast<int>(rng.Below(60));
  if (rng.Chance(10)) base += static_cast<int>(rng.Below(400));  // a slow tail
  if (status >= 500) base += 250;
  return base;
}

// Every random draw is its own statement: the operands of `+` are evaluated in
// an unspecified order, and GCC and Clang pick different ones.
std::string MakeMessage(demo_util::Rng& rng) {
  const std::string& verb = rng.Pick(kVerbs);
  const std::string& object = rng.Pick(kObjects);
  const std::string& outcome = rng.Pick(kOutcomes);
  const uint32_t user = rng.Below(5000);
  return verb + " " + object + " " + outcome + " for user " + std::to_string(user);
}

std::string MakeLine(demo_util::Rng& rng, int64_t ts) {
  const std::string& level = rng.Pick(kLevels);
  const int status = PickStatus(rng, level);
  const std::string& host = rng.Pick(kHosts);
  const std::string& service = rng.Pick(kServices);
  const int latency = PickLatency(rng, status);
  const std::string message = MakeMessage(rng);
  return "ts=" + std::to_string(ts) + " host=" + host + " svc=" + service + " level=" + level +
         " status=" + std::to_string(status) + " latency_ms=" + std::to_string(latency) + " msg=\"" + message + "\"";
}

// Breaks a good line the way real logs break: truncation, a garbled number,
// a lost '='.
std::string Corrupt(demo_util::Rng& rng, std::string line) {
  switch (rng.Below(3)) {
    case 0: return line.substr(0, line.size() - 7);  // unterminated quote
    case 1: return line.replace(line.find("latency_ms=") + 11, 0, "x");
    default: return line.replace(line.find("svc="), 4, "svc ");
  }
}

}  // namespace

std::vector<std::string> GenerateLog(size_t lines, uint64_t seed) {
  demo_util::Rng rng(seed);
  std::vector<std::string> out;
  out.reserve(lines);
  int64_t ts = 1700000000 + static_cast<int64_t>(seed % 1000) * 86400;
  for (size_t i = 0; i < lines; ++i) {
    ts += rng.Below(3);
    std::string line = MakeLine(rng, ts);
    out.push_back(rng.Chance(2) ? Corrupt(rng, std::move(line)) : std::move(line));
  }
  return out;
}

}  // namespace demo
