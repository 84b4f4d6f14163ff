// Entry patched with a `jmp` to a per-function stub that names the function
// (here: its index in r11) and jumps to one global trampoline. The trampoline
// pops the real return address onto a shadow stack and *calls* the body, so
// the body's `ret` lands on the instruction after that call, as the return
// stack buffer predicts; the exit part pushes the real address back and
// returns with `ret`, which the buffer predicts too (the caller's own call
// pushed it). No entry of the buffer is ever consumed by the wrong return.
  .text
  .globl f_jmp, f_jmp_ind
  .p2align 4
f_jmp:
  jmp stub_f
f_jmp_body:
  mov %rdi, %rax
  ret
  .p2align 4
f_jmp_ind:
  jmp stub_g
f_jmp_ind_body:
  mov %rdi, %rax
  ret
  .p2align 4
stub_f:
  mov $0, %r11d
  jmp tramp_call
  .p2align 4
stub_g:
  mov $1, %r11d
  jmp tramp_call
  .p2align 4
tramp_call:
  pop %r10                       // rc
  mov shadow_top2(%rip), %rax
  mov %r10, (%rax)
  add $8, %rax
  mov %rax, shadow_top2(%rip)
  lea bodies(%rip), %r10
  call *(%r10,%r11,8)
rt:
  mov shadow_top2(%rip), %r10
  sub $8, %r10
  mov %r10, shadow_top2(%rip)
  push (%r10)
  ret
  .data
bodies: .quad f_jmp_body, f_jmp_ind_body
shadow_top2: .quad shadow2
  .bss
shadow2: .zero 65536
  .section .note.GNU-stack,"",@progbits
