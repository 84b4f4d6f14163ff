// x86-64 half of the entry-patching contract (src/arch/arch.h): call and NOP
// encodings, jump stubs, thread contexts.
#include <signal.h>
#include <sys/ucontext.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>

#include "arch.h"

namespace padhook::arch {
namespace {

constexpr uint8_t kCallRel32 = 0xE8;                             // call rel32
constexpr uint8_t kNop5[] = {0x0F, 0x1F, 0x44, 0x00, 0x00};      // nopl 0(%rax,%rax,1)
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

extern "C" void padhook_trampoline();
extern "C" void padhook_trampoline_after_landing_pad();

uint64_t TrampolineEntry(size_t kind) {
  return kind == 0 ? reinterpret_cast<uint64_t>(&padhook_trampoline)
                   : reinterpret_cast<uint64_t>(&padhook_trampoline_after_landing_pad);
}

uintptr_t ContextPc(const void* ucontext) {
  return static_cast<uintptr_t>(
      static_cast<const ucontext_t*>(ucontext)->uc_mcontext.gregs[REG_RIP]);
}

void SetContextPc(void* ucontext, uintptr_t pc) {
  static_cast<ucontext_t*>(ucontext)->uc_mcontext.gregs[REG_RIP] = static_cast<greg_t>(pc);
}

// int3 traps with the PC after the instruction.
uintptr_t BreakpointAddress(const void* ucontext) { return ContextPc(ucontext) - 1; }

namespace {

// The kernel's x86-64 signal frame (arch/x86/include/asm/sigframe.h):
//   P + 0     pretcode: the restorer the handler returns to (its "return address")
//   P + 8     struct ucontext (304 bytes): uc_flags, uc_link, uc_stack, then
//             uc_mcontext, whose layout glibc's mcontext_t shares (gregs[23],
//             fpregs pointer)
//   P + 312   siginfo (128 bytes)
//   P + 440   (after at most 64 bytes of alignment) the FPU state, which the
//             saved fpregs pointer names
// The frame lies below the interrupted stack pointer (and its red zone), or
// on an alternate signal stack anywhere.
constexpr size_t kUcOffset = 8;
constexpr size_t kUcFlags = 0, kUcMcontext = 40, kUcSigmask = 296;  // sigmask: first 64 signals
constexpr size_t kGregRsp = kUcMcontext + 8 * REG_RSP;
constexpr size_t kFpregs = kUcMcontext + 8 * NGREG;
constexpr size_t kFrameSize = 440;
constexpr size_t kWalkLimit = 256 * 1024;  // how far above a stack pointer to look

// Reads `size` bytes at `address` of this process, or fails (unmapped).
bool ReadOwn(uintptr_t address, void* out, size_t size) {
  iovec local{out, size};
  iovec remote{reinterpret_cast<void*>(address), size};
  return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == static_cast<ssize_t>(size);
}

uint64_t Word(const uint8_t* bytes, size_t offset) {
  uint64_t w;
  std::memcpy(&w, bytes + offset, sizeof w);
  return w;
}

// The first signal frame returning through `restorer` at or above `sp`
// whose saved signal mask is a strict subset of `mask`, the mask of the
// context it must enclose: delivering a signal blocks it (unless
// SA_NODEFER) and the handler's sa_mask on top of the mask the frame saves.
// That test is what tells a live frame from a stale copy of an older one
// left in the memory of a live stack frame (seen under ASan, whose frames
// have large unwritten red zones). (The frame's siginfo cannot tell: the
// kernel writes it only for SA_SIGINFO handlers.)
uintptr_t FindFrameAbove(uintptr_t sp, uint64_t restorer, uint64_t mask) {
  alignas(16) uint8_t page[4096];
  uint8_t frame[kFrameSize];
  // From sp itself: a handler interrupted before its first instruction (two
  // signals delivered at once) has its frame's pretcode exactly at sp.
  const uintptr_t start = sp;
  for (uintptr_t chunk = start & ~uintptr_t{4095}; chunk < start + kWalkLimit; chunk += 4096) {
    if (!ReadOwn(chunk, page, sizeof page)) return 0;  // the top of the stack
    // Frames start at 8 mod 16 (the kernel aligns the ucontext to 16).
    for (size_t at = 8; at < sizeof page; at += 16) {
      const uintptr_t p = chunk + at;
      if (p < start || Word(page, at) != restorer) continue;
      if (!ReadOwn(p, frame, sizeof frame)) continue;
      const uint64_t flags = Word(frame, kUcOffset + kUcFlags);
      const uint64_t fpregs = Word(frame, kUcOffset + kFpregs);
      // uc_flags holds UC_FP_XSTATE, UC_SIGCONTEXT_SS, UC_STRICT_RESTORE_SS
      // only; the FPU state sits right above the frame.
      if ((flags & ~uint64_t{7}) != 0 || fpregs < p + kFrameSize || fpregs >= p + kFrameSize + 64) {
        continue;
      }
      const uint64_t saved_mask = Word(frame, kUcOffset + kUcSigmask);
      if ((saved_mask & ~mask) != 0 || saved_mask == mask) continue;
      return p;
    }
  }
  return 0;
}

}  // namespace

size_t OuterSignalContexts(void* ucontext, void** out, size_t max) {
  // The innermost handler was entered with the restorer as its return
  // address, right below its ucontext.
  uint64_t restorer;
  if (!ReadOwn(reinterpret_cast<uintptr_t>(ucontext) - kUcOffset, &restorer, sizeof restorer)) {
    return 0;
  }
  size_t found = 0;
  uintptr_t context = reinterpret_cast<uintptr_t>(ucontext);
  while (found < max) {
    uint64_t sp, mask;
    if (!ReadOwn(context + kGregRsp, &sp, sizeof sp) ||
        !ReadOwn(context + kUcSigmask, &mask, sizeof mask)) {
      break;
    }
    // An empty mask encloses no running handler (its signal would be in
    // it): nothing to look for, which is the common case of a thread
    // stopped outside any signal handler, spared the scan of its stack.
    if (mask == 0) break;
    const uintptr_t frame = FindFrameAbove(sp, restorer, mask);
    if (frame == 0) break;
    context = frame + kUcOffset;
    out[found++] = reinterpret_cast<void*>(context);
  }
  return found;
}

}  // namespace padhook::arch
