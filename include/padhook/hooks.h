// padhook/hooks.h — the C++ API: RAII attachments.
//
// Defines:
//   padhook::Hooks        the handlers of one client (entry, later exit) and its data
//   padhook::Attachment   owns what it attached; detaches when destroyed
//   padhook::Attach       by address, by name, by glob, or a batch of functions
//
//   padhook::Hooks hooks;
//   hooks.on_entry = [](padhook_call* c, void* data) { ... };
//   padhook::Result<padhook::Attachment> a = padhook::AttachGlob("parse_*", hooks);
//   ... // handlers run
//   a->Detach();  // or let it go out of scope
//
// Handlers use the padhook_call_* functions of padhook/padhook.h.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "padhook/function_table.h"
#include "padhook/padhook.h"
#include "padhook/status.h"

namespace padhook {

struct Hooks {
  padhook_handler on_entry = nullptr;
  padhook_handler on_exit = nullptr;
  void* user_data = nullptr;
  uint32_t flags = 0;  // PADHOOK_HOOKS_* (padhook/padhook.h)
};

namespace internal {
struct AttachmentState;
}

class Attachment {
 public:
  Attachment() = default;
  ~Attachment();
  Attachment(Attachment&& other) noexcept;
  Attachment& operator=(Attachment&& other) noexcept;
  Attachment(const Attachment&) = delete;
  Attachment& operator=(const Attachment&) = delete;

  // On success no handler of this attachment runs or will run again. On
  // failure it stays attached (attached() is true, every site still patched)
  // and Detach can be called again.
  Status Detach();
  size_t size() const noexcept;  // functions covered
  bool attached() const noexcept { return state_ != nullptr; }

 private:
  friend Result<Attachment> AttachFunctions(std::span<const Function* const>, const Hooks&,
                                            std::shared_ptr<const FunctionTable::Snapshot>);
  explicit Attachment(internal::AttachmentState* state) : state_(state) {}
  Status DetachLocked();  // Detach's work; may throw std::bad_alloc (changing nothing)
  internal::AttachmentState* state_ = nullptr;
};

// All of these are all-or-nothing: on error nothing is attached and every
// site and metadata slot is as before. One change is permanent by design: the
// first attach touching a page of GCC-built code turns the 1-byte NOP runs of
// that page into single 5-byte NOPs (docs/design.md, protocol C), which stays
// even if that attach then fails.
Result<Attachment> AttachAddress(const void* function, const Hooks& hooks);
Result<Attachment> AttachAddresses(std::span<const void* const> functions, const Hooks& hooks);
Result<Attachment> AttachName(std::string_view name, const Hooks& hooks);
Result<Attachment> AttachGlob(std::string_view pattern, const Hooks& hooks);
// `functions` must come from `snapshot`, which the attachment keeps alive.
Result<Attachment> AttachFunctions(std::span<const Function* const> functions, const Hooks& hooks,
                                   std::shared_ptr<const FunctionTable::Snapshot> snapshot);

}  // namespace padhook
