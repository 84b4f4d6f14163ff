// padhook/status.h — how padhook reports failure on control paths.
//
// Defines:
//   padhook::Errc       error codes; negative, and identical to the C API's codes
//   padhook::Status     a code plus a human-readable message
//   padhook::Result<T>  a value or a Status
//
// Hot paths (trampolines, handlers, lookups) never build a Status: they return
// plain values or null. Everything that changes state (discovery, patching,
// metadata get/put) returns a Status or Result so the caller gets a message it
// can show a user.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace padhook {

enum class Errc : int {
  kOk = 0,
  kInvalidArgument = -1,   // the caller passed something malformed
  kNotFound = -2,          // no such function / module / file
  kNotInstrumented = -3,   // the binary was not built with `padhook flags`
  kNoPadding = -4,         // the function has no room for metadata (padding < 5 bytes)
  kUnexpectedBytes = -5,   // the code is not what the compiler emitted (someone else patched it)
  kSystem = -6,            // a system call failed (errno text in the message)
  kElf = -7,               // the ELF file could not be read
  kOutOfMemory = -8,       // the table is full, or memory could not be mapped
  kBusy = -9,              // the object is in use and cannot be dropped now
  kUnsupported = -10,      // the request needs something this build or kernel lacks
};

// Short, stable name of a code ("unexpected-bytes"); never null.
const char* ErrcName(Errc code) noexcept;

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Errc code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }
  // A kSystem status whose message ends with strerror(err).
  static Status FromErrno(int err, std::string what);

  bool ok() const noexcept { return code_ == Errc::kOk; }
  Errc code() const noexcept { return code_; }
  const std::string& message() const noexcept { return message_; }
  // "unexpected-bytes: <message>"
  std::string ToString() const;

 private:
  Errc code_ = Errc::kOk;
  std::string message_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}  // NOLINT: implicit by design

  bool ok() const noexcept { return v_.index() == 0; }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  // The failure; Status::Ok() when there is a value.
  Status status() const { return ok() ? Status::Ok() : std::get<1>(v_); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace padhook
