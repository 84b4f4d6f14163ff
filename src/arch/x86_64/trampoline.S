// The global trampoline, x86-64 SysV.
//
// How a hooked call gets here
//   A patched function's entry holds `call <stub>`; the stub (placed within
//   rel32 reach of the module, see patch/stub_pages.cc) holds
//   `jmp *padhook_trampoline`. So on entry:
//
//     [rsp]      site return: the address right after the entry's call, i.e.
//                where the function's body starts
//     [rsp+8]    the function's own return address (into its caller)
//     [rsp+16]   the function's stack arguments, if any
//     rsp % 16 == 0   (the caller's call and the site's call each pushed 8)
//
// Register contract
//   Preserved for the function exactly as its caller left them (unless a
//   handler writes them through the call frame on purpose):
//     rdi rsi rdx rcx r8 r9   integer arguments
//     rax                     al = vector registers used by a variadic call
//     r10                     static chain (GNU C nested functions)
//     xmm0-xmm7               floating-point/vector arguments (low 128 bits)
//   Clobbered: r11 (scratch at a call boundary, no ABI meaning at entry),
//     flags. xmm8-15 and the upper halves of ymm/zmm registers are caller-saved
//     and are NOT preserved: a function taking __m256/__m512 arguments by value
//     must not be hooked by handlers that use AVX.
//   Deviations from a normal function: it returns either into the function's
//   body (continue), or straight to the function's caller (skip: rax/rdx set),
//   or jumps to a replacement with the original arguments (divert).
//
// The call frame (struct CallFrame in src/hooks/dispatch.h; keep in sync):
//     0   rdi rsi rdx rcx r8 r9 rax r10     (8 x 8)
//    64   xmm0 .. xmm7                      (8 x 16, 16-byte aligned)
//   192   action      0 continue, 1 skip, 2 divert
//   200   value       skip: rax; divert: target
//   208   value2      skip: rdx
//   216   (padding)
//   224   site return  \ pushed by the hooked call, not part of the frame
//   232   return addr  /
//
// CFI: every rsp change is described, and the return address this frame
// returns to is the function's body, whose own CFI says "nothing pushed yet",
// so debuggers and unwinders walk trampoline -> function -> caller.

#define FRAME 224
#define ACTION 192
#define VALUE 200
#define VALUE2 208

  .text
  .globl padhook_trampoline
  .type padhook_trampoline, @function
  .hidden padhook_dispatch_entry
  .p2align 4
padhook_trampoline:
  .cfi_startproc
  endbr64
  sub $FRAME, %rsp
  .cfi_def_cfa_offset (FRAME + 8)
  mov %rdi, 0(%rsp)
  mov %rsi, 8(%rsp)
  mov %rdx, 16(%rsp)
  mov %rcx, 24(%rsp)
  mov %r8, 32(%rsp)
  mov %r9, 40(%rsp)
  mov %rax, 48(%rsp)
  mov %r10, 56(%rsp)
  movaps %xmm0, 64(%rsp)
  movaps %xmm1, 80(%rsp)
  movaps %xmm2, 96(%rsp)
  movaps %xmm3, 112(%rsp)
  movaps %xmm4, 128(%rsp)
  movaps %xmm5, 144(%rsp)
  movaps %xmm6, 160(%rsp)
  movaps %xmm7, 176(%rsp)
  movq $0, ACTION(%rsp)
  mov %rsp, %rdi
  call padhook_dispatch_entry
  movaps 64(%rsp), %xmm0
  movaps 80(%rsp), %xmm1
  movaps 96(%rsp), %xmm2
  movaps 112(%rsp), %xmm3
  movaps 128(%rsp), %xmm4
  movaps 144(%rsp), %xmm5
  movaps 160(%rsp), %xmm6
  movaps 176(%rsp), %xmm7
  mov 0(%rsp), %rdi
  mov 8(%rsp), %rsi
  mov 16(%rsp), %rdx
  mov 24(%rsp), %rcx
  mov 32(%rsp), %r8
  mov 40(%rsp), %r9
  mov 48(%rsp), %rax
  mov 56(%rsp), %r10
  mov ACTION(%rsp), %r11
  test %r11, %r11
  jnz 1f
  // Continue: return into the function's body.
  .cfi_remember_state
  add $FRAME, %rsp
  .cfi_def_cfa_offset 8
  ret
  .cfi_restore_state
1:
  cmp $1, %r11
  jne 2f
  // Skip: return the handler's value straight to the function's caller.
  mov VALUE(%rsp), %rax
  mov VALUE2(%rsp), %rdx
  // Dropping the site return leaves the stack as at the function's entry:
  // CFA = rsp + 8 and the return address is the caller's.
  .cfi_remember_state
  add $(FRAME + 8), %rsp
  .cfi_def_cfa_offset 8
  ret
  .cfi_restore_state
2:
  // Divert: run the replacement with the original (or rewritten) arguments;
  // it returns to the function's caller.
  mov VALUE(%rsp), %r11
  add $(FRAME + 8), %rsp
  .cfi_def_cfa_offset 8
  jmp *%r11
  .cfi_endproc
  .size padhook_trampoline, . - padhook_trampoline

  .section .note.GNU-stack, "", @progbits
