// A minimal JSON value (objects keep insertion order) and a recursive printer.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace demo {

class Json {
 public:
  using Array = std::vector<Json>;
  using Object = std::vector<std::pair<std::string, Json>>;

  Json() : v_(nullptr) {}
  Json(bool b) : v_(b) {}                                   // NOLINT
  Json(int64_t n) : v_(n) {}                                // NOLINT
  Json(uint64_t n) : v_(static_cast<int64_t>(n)) {}         // NOLINT
  Json(int n) : v_(int64_t{n}) {}                           // NOLINT
  Json(double d) : v_(d) {}                                 // NOLINT
  Json(std::string s) : v_(std::move(s)) {}                 // NOLINT
  Json(const char* s) : v_(std::string(s)) {}               // NOLINT
  Json(Array a) : v_(std::move(a)) {}                       // NOLINT
  Json(Object o) : v_(std::move(o)) {}                      // NOLINT

  static Json MakeObject() { return Json(Object{}); }
  static Json MakeArray() { return Json(Array{}); }

  // Appends to an object / an array.
  Json& Set(std::string key, Json value);
  Json& Push(Json value);
  // The member `key` of an object, or null.
  const Json* Find(const std::string& key) const;
  // The elements of an array, or null.
  const Array* Items() const { return std::get_if<Array>(&v_); }

  // Pretty-printed with `indent` spaces per level; 0 prints on one line.
  std::string Dump(int indent = 2) const;

 private:
  void DumpTo(std::string& out, int indent, int depth) const;

  std::variant<std::nullptr_t, bool, int64_t, double, std::string, Array, Object> v_;
};

std::string JsonEscape(const std::string& s);

}  // namespace demo
