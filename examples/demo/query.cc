#include "query.h"

#include <cctype>
#include <vector>

namespace demo {
namespace {

// ---- Values -------------------------------------------------------------------

int64_t AsNumber(const Value& v, const char* what) {
  if (const auto* n = std::get_if<int64_t>(&v)) return *n;
  throw EvalError(std::string(what) + " needs a number");
}

const std::string& AsString(const Value& v, const char* what) {
  if (const auto* s = std::get_if<std::string>(&v)) return *s;
  throw EvalError(std::string(what) + " needs a string");
}

bool Truthy(const Value& v) {
  if (const auto* n = std::get_if<int64_t>(&v)) return *n != 0;
  return !std::get<std::string>(v).empty();
}

// ---- Expression nodes -------------------------------------------------------

class Literal final : public Expr {
 public:
  explicit Literal(Value v) : value_(std::move(v)) {}
  Value Eval(const Record&) const override { return value_; }
  std::string ToString() const override {
    if (const auto* n = std::get_if<int64_t>(&value_)) return std::to_string(*n);
    return "\"" + std::get<std::string>(value_) + "\"";
  }

 private:
  Value value_;
};

class FieldRef final : public Expr {
 public:
  explicit FieldRef(std::string name) : name_(std::move(name)) {}
  Value Eval(const Record& r) const override {
    if (name_ == "ts") return r.ts;
    if (name_ == "status") return int64_t{r.status};
    if (name_ == "latency_ms") return int64_t{r.latency_ms};
    if (name_ == "host") return r.host;
    if (name_ == "svc") return r.service;
    if (name_ == "level") return std::string(LevelName(r.level));
    return r.message;  // "msg": the parser admits no other names
  }
  std::string ToString() const override { return name_; }

 private:
  std::string name_;
};

class Unary final : public Expr {
 public:
  Unary(char op, std::unique_ptr<Expr> operand) : op_(op), operand_(std::move(operand)) {}
  Value Eval(const Record& r) const override {
    const Value v = operand_->Eval(r);
    if (op_ == '!') return int64_t{!Truthy(v)};
    return -AsNumber(v, "unary '-'");
  }
  std::string ToString() const override { return std::string(1, op_) + operand_->ToString(); }

 private:
  char op_;
  std::unique_ptr<Expr> operand_;
};

class Binary final : public Expr {
 public:
  Binary(std::string op, std::unique_ptr<Expr> lhs, std::unique_ptr<Expr> rhs)
      : op_(std::move(op)), lhs_(std::move(lhs)), rhs_(std::move(rhs)) {}

  Value Eval(const Record& r) const override {
    // Logical operators short-circuit.
    if (op_ == "&&") return int64_t{Truthy(lhs_->Eval(r)) && Truthy(rhs_->Eval(r))};
    if (op_ == "||") return int64_t{Truthy(lhs_->Eval(r)) || Truthy(rhs_->Eval(r))};
    const Value a = lhs_->Eval(r), b = rhs_->Eval(r);
    if (op_ == "==") return int64_t{a == b};
    if (op_ == "!=") return int64_t{a != b};
    if (a.index() != b.index()) throw EvalError("cannot compare a number with a string in '" + op_ + "'");
    if (op_ == "<") return int64_t{a < b};
    if (op_ == "<=") return int64_t{a <= b};
    if (op_ == ">") return int64_t{a > b};
    if (op_ == ">=") return int64_t{a >= b};
    return Arithmetic(AsNumber(a, op_.c_str()), AsNumber(b, op_.c_str()));
  }

  std::string ToString() const override { return "(" + lhs_->ToString() + " " + op_ + " " + rhs_->ToString() + ")"; }

 private:
  int64_t Arithmetic(int64_t a, int64_t b) const {
    switch (op_[0]) {
      case '+': return a + b;
      case '-': return a - b;
      case '*': return a * b;
      default:
        if (b == 0) throw EvalError("division by zero");
        return op_ == "/" ? a / b : a % b;
    }
  }

  std::string op_;
  std::unique_ptr<Expr> lhs_, rhs_;
};

// Built-in functions: contains(s, sub), len(s), min(a, b), max(a, b).
class Call final : public Expr {
 public:
  Call(std::string name, std::vector<std::unique_ptr<Expr>> args) : name_(std::move(name)), args_(std::move(args)) {}

  Value Eval(const Record& r) const override {
    std::vector<Value> v;
    for (const auto& arg : args_) v.push_back(arg->Eval(r));
    if (name_ == "contains") return int64_t{AsString(v[0], "contains").find(AsString(v[1], "contains")) != std::string::npos};
    if (name_ == "len") return static_cast<int64_t>(AsString(v[0], "len").size());
    const int64_t a = AsNumber(v[0], name_.c_str()), b = AsNumber(v[1], name_.c_str());
    return name_ == "min" ? std::min(a, b) : std::max(a, b);
  }

  std::string ToString() const override {
    std::string s = name_ + "(";
    for (size_t i = 0; i < args_.size(); ++i) s += (i ? ", " : "") + args_[i]->ToString();
    return s + ")";
  }

  static size_t Arity(const std::string& name) {
    if (name == "len") return 1;
    if (name == "contains" || name == "min" || name == "max") return 2;
    return 0;  // unknown
  }

 private:
  std::string name_;
  std::vector<std::unique_ptr<Expr>> args_;
};

// ---- The parser ----------------------------------------------------------------

bool IsField(const std::string& name) {
  return name == "ts" || name == "status" || name == "latency_ms" || name == "host" || name == "svc" ||
         name == "level" || name == "msg";
}

class Parser {
 public:
  explicit Parser(const std::string& text) : text_(text) {}

  std::unique_ptr<Expr> ParseQuery() {
    auto e = ParseOr();
    SkipSpace();
    if (pos_ != text_.size()) Fail("unexpected '" + text_.substr(pos_, 1) + "'");
    return e;
  }

 private:
  [[noreturn]] void Fail(const std::string& what) const {
    throw QueryError("at column " + std::to_string(pos_ + 1) + ": " + what);
  }

  void SkipSpace() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }

  // Consumes `op` if it comes next (and is not the prefix of a longer operator).
  bool Accept(const std::string& op) {
    SkipSpace();
    if (text_.compare(pos_, op.size(), op) != 0) return false;
    if (op.size() == 1 && (op == "<" || op == ">" || op == "!") && pos_ + 1 < text_.size() && text_[pos_ + 1] == '=')
      return false;
    pos_ += op.size();
    return true;
  }

  void Expect(const std::string& op) {
    if (!Accept(op)) Fail("expected '" + op + "'");
  }

  std::unique_ptr<Expr> ParseOr() {
    auto lhs = ParseAnd();
    while (Accept("||")) lhs = std::make_unique<Binary>("||", std::move(lhs), ParseAnd());
    return lhs;
  }

  std::unique_ptr<Expr> ParseAnd() {
    auto lhs = ParseNot();
    while (Accept("&&")) lhs = std::make_unique<Binary>("&&", std::move(lhs), ParseNot());
    return lhs;
  }

  std::unique_ptr<Expr> ParseNot() {
    if (Accept("!")) return std::make_unique<Unary>('!', ParseNot());  // recursion
    return ParseCompare();
  }

  std::unique_ptr<Expr> ParseCompare() {
    auto lhs = ParseSum();
    for (const char* op : {"==", "!=", "<=", ">=", "<", ">"}) {
      if (Accept(op)) return std::make_unique<Binary>(op, std::move(lhs), ParseSum());
    }
    return lhs;
  }

  std::unique_ptr<Expr> ParseSum() {
    auto lhs = ParseProduct();
    while (true) {
      if (Accept("+")) lhs = std::make_unique<Binary>("+", std::move(lhs), ParseProduct());
      else if (Accept("-")) lhs = std::make_unique<Binary>("-", std::move(lhs), ParseProduct());
      else return lhs;
    }
  }

  std::unique_ptr<Expr> ParseProduct() {
    auto lhs = ParseUnary();
    while (true) {
      if (Accept("*")) lhs = std::make_unique<Binary>("*", std::move(lhs), ParseUnary());
      else if (Accept("/")) lhs = std::make_unique<Binary>("/", std::move(lhs), ParseUnary());
      else if (Accept("%")) lhs = std::make_unique<Binary>("%", std::move(lhs), ParseUnary());
      else return lhs;
    }
  }

  std::unique_ptr<Expr> ParseUnary() {
    if (Accept("-")) return std::make_unique<Unary>('-', ParseUnary());
    return ParsePrimary();
  }

  std::unique_ptr<Expr> ParsePrimary() {
    SkipSpace();
    if (pos_ == text_.size()) Fail("unexpected end of query");
    const char c = text_[pos_];
    if (Accept("(")) {
      auto inner = ParseOr();  // recursion back to the top of the grammar
      Expect(")");
      return inner;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) return ParseNumber();
    if (c == '"') return ParseString();
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') return ParseName();
    Fail(std::string("unexpected '") + c + "'");
  }

  std::unique_ptr<Expr> ParseNumber() {
    int64_t n = 0;
    while (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_]))) n = n * 10 + (text_[pos_++] - '0');
    return std::make_unique<Literal>(n);
  }

  std::unique_ptr<Expr> ParseString() {
    const size_t close = text_.find('"', pos_ + 1);
    if (close == std::string::npos) Fail("unterminated string");
    std::string s = text_.substr(pos_ + 1, close - pos_ - 1);
    pos_ = close + 1;
    return std::make_unique<Literal>(std::move(s));
  }

  std::unique_ptr<Expr> ParseName() {
    const size_t start = pos_;
    while (pos_ < text_.size() && (std::isalnum(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '_')) ++pos_;
    std::string name = text_.substr(start, pos_ - start);
    if (!Accept("(")) {
      if (!IsField(name)) { pos_ = start; Fail("unknown field '" + name + "'"); }
      return std::make_unique<FieldRef>(std::move(name));
    }
    const size_t arity = Call::Arity(name);
    if (arity == 0) { pos_ = start; Fail("unknown function '" + name + "'"); }
    std::vector<std::unique_ptr<Expr>> args;
    for (size_t i = 0; i < arity; ++i) {
      if (i > 0) Expect(",");
      args.push_back(ParseOr());
    }
    Expect(")");
    return std::make_unique<Call>(std::move(name), std::move(args));
  }

  const std::string& text_;
  size_t pos_ = 0;
};

}  // namespace

Query Query::Compile(const std::string& text) {
  Query q;
  q.text_ = text;
  q.root_ = Parser(text).ParseQuery();
  return q;
}

bool Query::Matches(const Record& record) const { return Truthy(root_->Eval(record)); }

}  // namespace demo
