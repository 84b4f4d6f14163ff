// Entry patched with a `call` (padhook's current sites):
//   f_plain       the unpatched function: a 5-byte NOP at its entry
//   f_entry       `call` to a trampoline that only returns (entry hook)
//   f_hijack      the trampoline redirects the return address to exit_tramp
//                 (function-graph style: real one on a shadow stack), and
//                 exit_tramp jumps to the real one
//   f_hijack_ret  the same, but the trampoline returns to the body with `ret`
//                 (consuming the call's return-stack-buffer entry) and
//                 exit_tramp2 returns with `ret`
  .text
  .globl f_plain, f_entry, f_hijack, f_hijack_ret, shadow
  .p2align 4
f_plain:
  .byte 0x0f,0x1f,0x44,0x00,0x00
  mov %rdi, %rax
  ret
  .p2align 4
f_entry:
  call tramp_entry
  mov %rdi, %rax
  ret
  .p2align 4
f_hijack:
  call tramp_hijack
  mov %rdi, %rax
  ret
  .p2align 4
f_hijack_ret:
  call tramp_hijack2
  mov %rdi, %rax
  ret
  .p2align 4
tramp_entry:
  ret
  .p2align 4
tramp_hijack:
  pop %r11
  mov shadow_top(%rip), %r10
  mov (%rsp), %rax
  mov %rax, (%r10)
  add $8, %r10
  mov %r10, shadow_top(%rip)
  lea exit_tramp(%rip), %rax
  mov %rax, (%rsp)
  jmp *%r11
  .p2align 4
exit_tramp:
  mov shadow_top(%rip), %r10
  sub $8, %r10
  mov %r10, shadow_top(%rip)
  jmp *(%r10)
  .p2align 4
tramp_hijack2:
  // keep f5 on the stack and ret to it (consumes RSB f5 correctly)
  mov shadow_top(%rip), %r10
  mov 8(%rsp), %rax
  mov %rax, (%r10)
  add $8, %r10
  mov %r10, shadow_top(%rip)
  lea exit_tramp2(%rip), %rax
  mov %rax, 8(%rsp)
  ret
  .p2align 4
exit_tramp2:
  sub $8, %rsp
  mov shadow_top(%rip), %r10
  sub $8, %r10
  mov %r10, shadow_top(%rip)
  mov (%r10), %r11
  mov %r11, (%rsp)
  ret
  .data
shadow_top: .quad shadow
  .bss
shadow: .zero 65536
  .section .note.GNU-stack,"",@progbits
