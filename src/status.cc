#include "padhook/status.h"

#include <cstring>

namespace padhook {

const char* ErrcName(Errc code) noexcept {
  switch (code) {
    case Errc::kOk: return "ok";
    case Errc::kInvalidArgument: return "invalid-argument";
    case Errc::kNotFound: return "not-found";
    case Errc::kNotInstrumented: return "not-instrumented";
    case Errc::kNoPadding: return "no-padding";
    case Errc::kUnexpectedBytes: return "unexpected-bytes";
    case Errc::kSystem: return "system-error";
    case Errc::kElf: return "elf-error";
    case Errc::kOutOfMemory: return "out-of-memory";
    case Errc::kBusy: return "busy";
    case Errc::kUnsupported: return "unsupported";
  }
  return "unknown-error";
}

Status Status::FromErrno(int err, std::string what) {
  what += ": ";
  what += std::strerror(err);
  return Status(Errc::kSystem, std::move(what));
}

std::string Status::ToString() const {
  std::string s = ErrcName(code_);
  if (!message_.empty()) {
    s += ": ";
    s += message_;
  }
  return s;
}

}  // namespace padhook
