#include "record.h"

#include "demo_util.h"

namespace demo {
namespace {

bool IsKeyChar(char c) { return (c >= 'a' && c <= 'z') || c == '_'; }

// Reads `key=` at the front of `rest`.
std::string_view ReadKey(std::string_view& rest) {
  size_t n = 0;
  while (n < rest.size() && IsKeyChar(rest[n])) ++n;
  if (n == 0 || n == rest.size() || rest[n] != '=')
    throw ParseError("expected key=value near '" + std::string(rest.substr(0, 12)) + "'");
  std::string_view key = rest.substr(0, n);
  rest.remove_prefix(n + 1);
  return key;
}

// Reads a bare or "quoted" value at the front of `rest`.
std::string_view ReadValue(std::string_view& rest) {
  if (!rest.empty() && rest.front() == '"') {
    const size_t close = rest.find('"', 1);
    if (close == std::string_view::npos) throw ParseError("unterminated quoted value");
    std::string_view value = rest.substr(1, close - 1);
    rest.remove_prefix(close + 1);
    return value;
  }
  const size_t end = std::min(rest.find(' '), rest.size());
  std::string_view value = rest.substr(0, end);
  rest.remove_prefix(end);
  return value;
}

Level ParseLevel(std::string_view s) {
  if (s == "DEBUG") return Level::kDebug;
  if (s == "INFO") return Level::kInfo;
  if (s == "WARN") return Level::kWarn;
  if (s == "ERROR") return Level::kError;
  throw ParseError("unknown level '" + std::string(s) + "'");
}

// Numbers are parsed by the utility library, whose NumberError is translated
// into this program's ParseError (naming the field).
int64_t ParseNumberField(const Field& field) {
  try {
    return demo_util::ParseInt(field.value);
  } catch (const demo_util::NumberError& e) {
    throw ParseError(std::string(field.key) + ": " + e.what());
  }
}

void ApplyField(Record& record, const Field& field) {
  if (field.key == "ts") record.ts = ParseNumberField(field);
  else if (field.key == "host") record.host = field.value;
  else if (field.key == "svc") record.service = field.value;
  else if (field.key == "level") record.level = ParseLevel(field.value);
  else if (field.key == "status") record.status = static_cast<int>(ParseNumberField(field));
  else if (field.key == "latency_ms") record.latency_ms = static_cast<int>(ParseNumberField(field));
  else if (field.key == "msg") record.message = field.value;
  else throw ParseError("unknown field '" + std::string(field.key) + "'");
}

}  // namespace

const char* LevelName(Level level) {
  switch (level) {
    case Level::kDebug: return "DEBUG";
    case Level::kInfo: return "INFO";
    case Level::kWarn: return "WARN";
    case Level::kError: return "ERROR";
  }
  return "?";
}

std::vector<Field> Tokenize(std::string_view line) {
  std::vector<Field> fields;
  std::string_view rest = demo_util::Trim(line);
  while (!rest.empty()) {
    Field field;
    field.key = ReadKey(rest);
    field.value = ReadValue(rest);
    fields.push_back(field);
    rest = demo_util::Trim(rest);
  }
  return fields;
}

Record ParseRecord(std::string_view line, size_t line_no) {
  try {
    Record record;
    for (const Field& field : Tokenize(line)) ApplyField(record, field);
    if (record.service.empty()) throw ParseError("no svc field");
    return record;
  } catch (ParseError& e) {
    e.set_line(line_no);
    throw;  // the same exception object, now knowing its line
  }
}

std::vector<std::string> MessageTerms(std::string_view message) {
  std::vector<std::string> terms;
  for (std::string_view word : demo_util::Split(message, ' ')) {
    if (demo_util::IsIdentifier(word)) terms.push_back(demo_util::ToLower(word));
  }
  return terms;
}

}  // namespace demo
