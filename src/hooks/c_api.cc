// The C API (padhook/padhook.h) over the C++ one.
#include <cstdio>
#include <cstring>
#include <new>
#include <string>

#include "arch.h"
#include "hooks/call_frame.h"
#include "hooks/clock.h"
#include "hooks/shadow_stack.h"
#include "padhook/hooks.h"
#include "padhook/metadata.h"
#include "padhook/padhook.h"
#include "sync/grace_period.h"

struct padhook_attachment {
  padhook::Attachment attachment;
};

namespace padhook {
uint64_t CurrentThreadId();
}

namespace {

// This thread's last detailed error (padhook_last_error). A fixed buffer, not
// a std::string: reporting an out-of-memory error must not need memory.
// Written and read by the owning thread only.
thread_local char tls_last_error[512] = "";

void SetLastError(const char* message) noexcept {
  std::snprintf(tls_last_error, sizeof(tls_last_error), "%s", message);
}

int Fail(const padhook::Status& status) noexcept {
  SetLastError(status.message().c_str());
  return static_cast<int>(status.code());
}

padhook::Hooks ToHooks(const padhook_hooks* h) {
  padhook::Hooks hooks;
  hooks.on_entry = h->on_entry;
  hooks.on_exit = h->on_exit;
  hooks.user_data = h->user_data;
  hooks.flags = h->flags;
  return hooks;
}

// Attaches with `attach` (a C++ API call, which reports a failed allocation
// as a Status and never throws) into a handle allocated first: once the
// functions are attached nothing can fail.
template <typename AttachFn>
int Finish(AttachFn attach, padhook_attachment** out) noexcept {
  auto* handle = new (std::nothrow) padhook_attachment;
  if (handle == nullptr) {
    SetLastError("out of memory (nothing was attached)");
    return PADHOOK_ENOMEM;
  }
  padhook::Result<padhook::Attachment> result = attach();
  if (!result.ok()) {
    delete handle;
    return Fail(result.status());
  }
  handle->attachment = std::move(result).value();
  *out = handle;
  return PADHOOK_OK;
}

bool BadArguments(const void* what, const padhook_hooks* h, padhook_attachment** out) {
  if (what == nullptr || h == nullptr || out == nullptr) {
    SetLastError("null argument");
    return true;
  }
  *out = nullptr;
  return false;
}

}  // namespace

extern "C" {

int padhook_attach_pattern(const char* glob, const padhook_hooks* h, padhook_attachment** out) {
  if (BadArguments(glob, h, out)) return PADHOOK_EINVAL;
  return Finish([&] { return padhook::AttachGlob(glob, ToHooks(h)); }, out);
}

int padhook_attach_name(const char* name, const padhook_hooks* h, padhook_attachment** out) {
  if (BadArguments(name, h, out)) return PADHOOK_EINVAL;
  return Finish([&] { return padhook::AttachName(name, ToHooks(h)); }, out);
}

int padhook_attach_address(void* function, const padhook_hooks* h, padhook_attachment** out) {
  if (BadArguments(function, h, out)) return PADHOOK_EINVAL;
  return Finish([&] { return padhook::AttachAddress(function, ToHooks(h)); }, out);
}

int padhook_attach_addresses(void* const* functions, size_t count, const padhook_hooks* h,
                             padhook_attachment** out) {
  if (BadArguments(functions, h, out)) return PADHOOK_EINVAL;
  std::span<const void* const> span(const_cast<const void* const*>(functions), count);
  return Finish([&] { return padhook::AttachAddresses(span, ToHooks(h)); }, out);
}

int padhook_detach(padhook_attachment* a) {
  if (a == nullptr) return PADHOOK_EINVAL;
  padhook::Status status = a->attachment.Detach();
  if (!status.ok() && a->attachment.attached())
    return Fail(status);  // still attached (busy, or the unpatch failed): caller may retry
  delete a;
  return status.ok() ? PADHOOK_OK : Fail(status);
}

size_t padhook_attachment_size(const padhook_attachment* a) { return a ? a->attachment.size() : 0; }

void* padhook_call_function(const padhook_call* c) { return reinterpret_cast<void*>(c->function); }

void* padhook_call_caller(const padhook_call* c) {
  return reinterpret_cast<void*>(c->return_address());
}

uint32_t padhook_call_function_index(const padhook_call* c) {
  uint32_t index = 0;
  padhook::arch::ReadMetaIndex(c->function, &index);  // attached: the slot holds the index
  return index;
}

int64_t padhook_function_index(const void* function) {
  const padhook::MetaEntry* e =
      padhook::MetadataTable::Lookup(reinterpret_cast<uintptr_t>(function));
  return e == nullptr ? int64_t{PADHOOK_ENOTFOUND} : int64_t{e->index};
}

uint64_t padhook_call_thread(const padhook_call*) { return padhook::CurrentThreadId(); }

uint64_t padhook_call_arg(const padhook_call* c, unsigned i) {
  return i < padhook::kRegisterArgs ? c->gpr[i] : c->stack_args()[i - padhook::kRegisterArgs];
}

void padhook_call_set_arg(padhook_call* c, unsigned i, uint64_t v) {
  if (i < padhook::kRegisterArgs) {
    c->gpr[i] = v;
  } else {
    c->stack_args()[i - padhook::kRegisterArgs] = v;
  }
}

double padhook_call_arg_double(const padhook_call* c, unsigned i) {
  double d = 0;
  if (i < 8) std::memcpy(&d, c->xmm[i], sizeof(d));
  return d;
}

void padhook_call_set_arg_double(padhook_call* c, unsigned i, double v) {
  if (i < 8) std::memcpy(c->xmm[i], &v, sizeof(v));
}

unsigned padhook_call_vector_count(const padhook_call* c) {
  return static_cast<unsigned>(c->gpr[padhook::kRaxSlot] & 0xFF);
}

void padhook_call_skip(padhook_call* c, uint64_t return_value) {
  c->gpr[padhook::kRaxSlot] = return_value;
  c->gpr[padhook::kRdxSlot] = 0;
  c->continuation() = reinterpret_cast<uint64_t>(&padhook_skip_return);
}

void padhook_call_divert(padhook_call* c, void* replacement) {
  c->divert_target_or_entry_time = reinterpret_cast<uint64_t>(replacement);
  c->continuation() = reinterpret_cast<uint64_t>(&padhook_divert_return);
}

uint64_t padhook_call_return_value(const padhook_call* c) { return c->gpr[padhook::kRaxSlot]; }

void padhook_call_set_return_value(padhook_call* c, uint64_t v) { c->gpr[padhook::kRaxSlot] = v; }

double padhook_call_return_double(const padhook_call* c) { return padhook_call_arg_double(c, 0); }

void padhook_call_set_return_double(padhook_call* c, double v) {
  padhook_call_set_arg_double(c, 0, v);
}

int padhook_call_is_exit(const padhook_call* c) { return (c->stamp & padhook::kStampExit) != 0; }

int padhook_call_is_unwound(const padhook_call* c) {
  return (c->stamp & padhook::kStampUnwound) != 0;
}

uint64_t padhook_call_timestamp(padhook_call* c) {
  uint64_t t = c->stamp & padhook::kStampTimeMask;
  if (t == 0) {
    t = padhook::ReadClock() & padhook::kStampTimeMask;
    c->stamp |= t;
  }
  return padhook::ClockToNs(t);
}

uint64_t padhook_call_entry_time(padhook_call* c) {
  if (!padhook_call_is_exit(c)) return padhook_call_timestamp(c);
  const uint64_t ticks = c->divert_target_or_entry_time;
  return ticks == 0 ? 0 : padhook::ClockToNs(ticks);  // 0: PADHOOK_HOOKS_NO_ENTRY_TIME
}

uint64_t padhook_exits_lost(void) { return padhook::ExitsLost(); }

const char* padhook_strerror(int error) {
  if (error > 0 || error < PADHOOK_EUNSUPPORTED) return "unknown-error";
  return padhook::ErrcName(static_cast<padhook::Errc>(error));
}

const char* padhook_last_error(void) { return tls_last_error; }

uint64_t padhook_recursion_skips(void) { return padhook::sync::RecursionSkips(); }

}  // extern "C"
