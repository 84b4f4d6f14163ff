#include "json.h"

#include <cstdio>

#include "demo_util.h"

namespace demo {
namespace {

void NewLine(std::string& out, int indent, int depth) {
  if (indent == 0) return;
  out += '\n';
  out.append(static_cast<size_t>(indent * depth), ' ');
}

}  // namespace

std::string JsonEscape(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

Json& Json::Set(std::string key, Json value) {
  std::get<Object>(v_).emplace_back(std::move(key), std::move(value));
  return *this;
}

Json& Json::Push(Json value) {
  std::get<Array>(v_).push_back(std::move(value));
  return *this;
}

const Json* Json::Find(const std::string& key) const {
  if (const auto* o = std::get_if<Object>(&v_)) {
    for (const auto& [k, v] : *o)
      if (k == key) return &v;
  }
  return nullptr;
}

std::string Json::Dump(int indent) const {
  std::string out;
  DumpTo(out, indent, 0);
  return out;
}

void Json::DumpTo(std::string& out, int indent, int depth) const {
  if (std::holds_alternative<std::nullptr_t>(v_)) {
    out += "null";
  } else if (const auto* b = std::get_if<bool>(&v_)) {
    out += *b ? "true" : "false";
  } else if (const auto* n = std::get_if<int64_t>(&v_)) {
    out += std::to_string(*n);
  } else if (const auto* d = std::get_if<double>(&v_)) {
    out += demo_util::FormatFixed(*d, 3);
  } else if (const auto* s = std::get_if<std::string>(&v_)) {
    out += JsonEscape(*s);
  } else if (const auto* a = std::get_if<Array>(&v_)) {
    out += '[';
    for (size_t i = 0; i < a->size(); ++i) {
      if (i > 0) out += ',';
      NewLine(out, indent, depth + 1);
      (*a)[i].DumpTo(out, indent, depth + 1);  // recursion
    }
    if (!a->empty()) NewLine(out, indent, depth);
    out += ']';
  } else {
    const auto& o = std::get<Object>(v_);
    out += '{';
    for (size_t i = 0; i < o.size(); ++i) {
      if (i > 0) out += ',';
      NewLine(out, indent, depth + 1);
      out += JsonEscape(o[i].first);
      out += indent ? ": " : ":";
      o[i].second.DumpTo(out, indent, depth + 1);  // recursion
    }
    if (!o.empty()) NewLine(out, indent, depth);
    out += '}';
  }
}

}  // namespace demo
