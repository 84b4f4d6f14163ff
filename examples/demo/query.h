// A tiny query language over log records, compiled by a recursive-descent
// parser into an expression tree and evaluated per record:
//
//   status >= 500 && contains(msg, "timed")
//   svc == "auth" || latency_ms / (status - 500) > 10
//
// Grammar (lowest precedence first):
//   or      := and ('||' and)*
//   and     := not ('&&' not)*
//   not     := '!' not | compare
//   compare := sum (('=='|'!='|'<'|'<='|'>'|'>=') sum)?
//   sum     := product (('+'|'-') product)*
//   product := unary (('*'|'/'|'%') unary)*
//   unary   := '-' unary | primary
//   primary := NUMBER | STRING | FIELD | NAME '(' args ')' | '(' or ')'
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <variant>

#include "record.h"

namespace demo {

// A query that does not parse.
class QueryError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A query that parses but fails on one record (division by zero, types).
class EvalError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

using Value = std::variant<int64_t, std::string>;

class Expr {
 public:
  virtual ~Expr() = default;
  virtual Value Eval(const Record& record) const = 0;
  virtual std::string ToString() const = 0;
};

class Query {
 public:
  // Throws QueryError with the position of the problem.
  static Query Compile(const std::string& text);

  // True when the query's value is a non-zero number or a non-empty string.
  // Throws EvalError.
  bool Matches(const Record& record) const;
  const std::string& text() const { return text_; }
  // The parsed tree, fully parenthesized.
  std::string Canonical() const { return root_->ToString(); }

 private:
  std::string text_;
  std::shared_ptr<const Expr> root_;
};

}  // namespace demo
