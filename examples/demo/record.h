// Parsing one log line: a tokenizer for `key=value` fields (values may be
// "quoted"), then a Record built from the fields.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace demo {

enum class Level { kDebug, kInfo, kWarn, kError };
const char* LevelName(Level level);

struct Record {
  int64_t ts = 0;
  std::string host;
  std::string service;
  Level level = Level::kInfo;
  int status = 0;
  int latency_ms = 0;
  std::string message;
};

struct Field {
  std::string_view key;
  std::string_view value;
};

// A malformed line. The parser fills in the line number on the way out.
class ParseError : public std::runtime_error {
 public:
  explicit ParseError(const std::string& what) : std::runtime_error(what) {}
  void set_line(size_t line) { line_ = line; }
  size_t line() const { return line_; }

 private:
  size_t line_ = 0;
};

// Splits a line into fields; throws ParseError.
std::vector<Field> Tokenize(std::string_view line);
// Parses line number `line_no`; throws ParseError.
Record ParseRecord(std::string_view line, size_t line_no);
// The lower-cased words of a message, for the term index.
std::vector<std::string> MessageTerms(std::string_view message);

}  // namespace demo
