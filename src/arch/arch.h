// src/arch/arch.h — the contract every ISA port implements.
//
// Generic padhook code knows no instruction encoding. Everything that depends on
// the ISA is declared here and implemented in src/arch/<isa>/ (selected by CMake):
//
//   arch_impl.h   inline, hot-path half of this contract (included below)
//   *.cc          the rest
//
// A new port (AArch64 is next) adds a sibling folder and nothing else. The
// functions below only *read and encode* bytes; writing code is the job of the
// generic TextWriter, which verifies bytes before every write.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "padhook/patch_site.h"

namespace padhook::arch {

// ---- Layout: what `padhook flags` asks the compiler for ---------------------

enum class Compiler { kGcc, kClang };

struct Layout {
  unsigned total_nops;          // N of -fpatchable-function-entry=N,M
  unsigned nops_before_entry;   // M
  unsigned function_alignment;  // -falign-functions=
};

// The layout padhook recommends; `landing_pads` is true when the program is
// built with landing pads at function entries (x86: -fcf-protection=full|branch).
Layout RecommendedLayout(bool landing_pads);

// The compile flags that produce RecommendedLayout(landing_pads) with `compiler`.
std::vector<std::string> CompilerFlags(Compiler compiler, bool landing_pads);

// ---- Reading a patch area ---------------------------------------------------

// Bytes of the metadata slot, which always ends exactly at the entry.
inline constexpr size_t kMetaSlotSize = 5;
// Bytes a patched entry needs (the call to the trampoline).
inline constexpr size_t kSiteSize = 5;
// How many bytes after the entry ClassifyPatchArea may need to look at.
inline constexpr size_t kMaxEntryBytes = 16;

// Classifies one function. `prefix` holds the padding bytes before the entry
// (prefix.size() = M), `entry` the first bytes at the entry (at most
// kMaxEntryBytes; fewer only if the function is shorter), `entry_address` is
// where the entry is (or will be) mapped, for alignment.
PatchSite ClassifyPatchArea(std::span<const uint8_t> prefix, std::span<const uint8_t> entry,
                            uint64_t entry_address);

// A quick test for scans over every function of a module, on the first bytes
// at an entry (ClassifyPatchArea's `entry`, or only its first
// min(entry.size(), kSiteStartBytes) bytes): false when ClassifyPatchArea's kind cannot be a site
// (kSingleNop, kNopRun, kPatched), whatever the other bytes and the padding; true when it may be
// (then classify). Ordinary code fails it on its first bytes. Inline, in arch_impl.h.
inline constexpr size_t kSiteStartBytes = 5;
bool MayStartPatchSite(std::span<const uint8_t> entry) noexcept;
// True when the entry holds a site whose first byte a breakpoint replaced
// (after its landing pad, if any): what a uprobe or a debugger leaves, and no
// compiler emits. Such a site fails MayStartPatchSite; with a recommended
// padding before it, it is an instrumented function padhook must leave alone
// (kUnexpected) rather than ignore. Inline, in arch_impl.h.
bool SiteUnderBreakpoint(std::span<const uint8_t> entry) noexcept;
// A quick test on the code at `entry` in this process, as MayStartPatchSiteAt:
// false when SiteUnderBreakpoint cannot hold (it looks at the first byte, and
// the fifth after endbr64); true may still be a false alarm.
bool MayBeSiteUnderBreakpointAt(const uint8_t* entry, size_t available) noexcept;
// The same test on the code at `entry` in this process (`available`: the
// bytes that may be read there, ClassifyPatchArea's entry.size()), read with
// relaxed atomic loads (the code may be being patched), only as many bytes as
// it needs: one for most functions.
bool MayStartPatchSiteAt(const uint8_t* entry, size_t available) noexcept;

// One-line human description of a site kind on this ISA ("GCC 1-byte NOP run").
std::string DescribeSite(const PatchSite& site);

// ---- The metadata slot ------------------------------------------------------

// What an empty slot holds (the compiler's padding NOPs).
void EncodeEmptyMetaSlot(std::span<uint8_t, kMetaSlotSize> out);
// What a slot holding `index` holds. Writers must make the index bytes visible
// before the byte that makes the slot valid: see MetaSlotCommitOffset.
void EncodeMetaSlot(uint32_t index, std::span<uint8_t, kMetaSlotSize> out);
// Offset in the slot of the single byte whose value decides whether the slot
// holds an index (x86: the opcode 0xB8). Writing it last publishes an index;
// writing it first retracts one. The other bytes form the 4-byte index,
// aligned to 4 bytes in padhook's recommended layouts.
inline constexpr size_t kMetaSlotCommitOffset = 0;
// Decodes a slot: true and *index if it holds an index.
bool DecodeMetaSlot(std::span<const uint8_t, kMetaSlotSize> slot, uint32_t* index);

// ---- Entry patching ------------------------------------------------------------
//
// A patched site is a call to a small stub placed within reach of the module;
// the stub jumps to the global trampoline (src/arch/<isa>/trampoline.S).

// The bytes of a call at `site` to `target` (kSiteSize bytes). False when
// `target` is out of reach of a direct call from `site`.
bool EncodeCall(uint64_t site, uint64_t target, std::span<uint8_t, kSiteSize> out);
// The single-instruction NOP a site holds when not patched. Sites the compiler
// emitted as a run of 1-byte NOPs are converted to this form once, while every
// other thread is stopped (see patch/live_patcher.cc).
void EncodeSiteNop(std::span<uint8_t, kSiteSize> out);
// Maximum distance of a direct call (x86-64: rel32).
inline constexpr uint64_t kCallReach = (1ull << 31) - 1;

// The breakpoint instruction used by the breakpoint patch protocol, and its size.
inline constexpr uint8_t kBreakpoint = 0xCC;  // int3

// A stub at `stub_address` that jumps to the absolute address `target`.
// Returns the bytes written to `out` (at most kStubSize).
//
// A stub page holds kStubKinds stubs, kStubSize bytes apart: a site calls the
// one of its kind, StubKind(landing_pad), and each jumps to its own entry point
// of the trampoline, TrampolineEntry(kind), which so knows where the function's
// entry is without reading code (x86-64: kind 0 for a site at the entry, kind 1
// for a site after endbr64).
inline constexpr size_t kStubSize = 16;
inline constexpr size_t kStubKinds = 2;
inline constexpr size_t StubKind(uint8_t landing_pad) { return landing_pad == 0 ? 0 : 1; }
uint64_t TrampolineEntry(size_t kind);
size_t EncodeJumpStub(uint64_t stub_address, uint64_t target, std::span<uint8_t, kStubSize> out);

// ---- Thread contexts (signal handlers) -------------------------------------------

// The program counter of an interrupted thread (ucontext_t*), and setting it.
uintptr_t ContextPc(const void* ucontext);
void SetContextPc(void* ucontext, uintptr_t pc);
// After a breakpoint trap, the address of the breakpoint instruction.
uintptr_t BreakpointAddress(const void* ucontext);
// The contexts a signal handler will return to beyond its own: when the
// handler given `ucontext` interrupted another signal handler, the context
// that one interrupted, and so on outwards. Writes up to `max` of them to
// `out`, innermost first, and returns how many. Async-signal-safe; reads the
// stack only through a system call, so a damaged stack cannot crash it. A
// frame is recognized by the kernel's layout, the restorer the innermost
// frame returns through, and its saved signal mask being a strict subset of
// the enclosed context's (a handler installed with another restorer, or
// with SA_NODEFER and no sa_mask, ends the walk). Used where a thread must not resume inside bytes
// padhook rewrote (protocol C of patch/live_patcher.cc): a signal handler that was running when the
// thread was stopped will return to the context its frame saved.
size_t OuterSignalContexts(void* ucontext, void** out, size_t max);

// ---- The trampoline ------------------------------------------------------------
// EntryFromSiteReturn(site_return): from the return address the site's call
// pushed, the function's entry (inline, in arch_impl.h).

}  // namespace padhook::arch

// ReadMetaIndex(entry, &index): the hot-path reader of the slot (inline).
#include "arch_impl.h"
