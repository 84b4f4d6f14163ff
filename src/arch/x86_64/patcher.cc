// x86-64 half of the entry-patching contract (src/arch/arch.h): call and NOP
// encodings, jump stubs, thread contexts.
#include <signal.h>
#include <sys/ucontext.h>

#include <cstring>

#include "arch.h"

namespace padhook::arch {
namespace {

constexpr uint8_t kCallRel32 = 0xE8;                          // call rel32
constexpr uint8_t kNop5[] = {0x0F, 0x1F, 0x44, 0x00, 0x00};   // nopl 0(%rax,%rax,1)
constexpr uint8_t kJmpRipIndirect[] = {0xFF, 0x25, 0, 0, 0, 0};  // jmp *0(%rip)

}  // namespace

bool EncodeCall(uint64_t site, uint64_t target, std::span<uint8_t, kSiteSize> out) {
  const int64_t displacement = static_cast<int64_t>(target - (site + kSiteSize));
  if (displacement > INT32_MAX || displacement < INT32_MIN) return false;
  const int32_t rel32 = static_cast<int32_t>(displacement);
  out[0] = kCallRel32;
  std::memcpy(out.data() + 1, &rel32, sizeof(rel32));
  return true;
}

void EncodeSiteNop(std::span<uint8_t, kSiteSize> out) { std::memcpy(out.data(), kNop5, kSiteSize); }

size_t EncodeJumpStub(uint64_t stub_address, uint64_t target, std::span<uint8_t, kStubSize> out) {
  (void)stub_address;  // the indirect form does not depend on where it is
  std::memcpy(out.data(), kJmpRipIndirect, sizeof(kJmpRipIndirect));
  std::memcpy(out.data() + sizeof(kJmpRipIndirect), &target, sizeof(target));
  // Pad with int3 so a stray jump into the tail traps instead of running data.
  std::memset(out.data() + 14, kBreakpoint, kStubSize - 14);
  return kStubSize;
}

uintptr_t ContextPc(const void* ucontext) {
  return static_cast<uintptr_t>(static_cast<const ucontext_t*>(ucontext)->uc_mcontext.gregs[REG_RIP]);
}

void SetContextPc(void* ucontext, uintptr_t pc) {
  static_cast<ucontext_t*>(ucontext)->uc_mcontext.gregs[REG_RIP] = static_cast<greg_t>(pc);
}

// int3 traps with the PC after the instruction.
uintptr_t BreakpointAddress(const void* ucontext) { return ContextPc(ucontext) - 1; }

}  // namespace padhook::arch
