# Generates many.S: N leaf functions in seven patch models, and for each model
# a driver making K direct calls to them in a random order (seeded).
import random, sys
N = int(sys.argv[1]); K = int(sys.argv[2])
random.seed(1)
order = [random.randrange(N) for _ in range(K)]
out = ['  .text']
for m in ['plain', 'callent', 'jmpent', 'hijack', 'jmpcall', 'scent', 'scexit']:
    for i in range(N):
        out.append('  .p2align 4')
        out.append(f'{m}_f{i}:')
        if m == 'plain':
            out.append('  .byte 0x0f,0x1f,0x44,0x00,0x00')
        elif m in ('callent', 'hijack'):
            out.append(f'  call tramp_{m}')
        else:
            out.append(f'  jmp {m}_stub{i}')
        out.append(f'{m}_body{i}:')
        out.append('  lea 1(%rdi), %rax')
        out.append('  ret')
    if m in ('jmpent', 'jmpcall'):
        for i in range(N):
            out.append('  .p2align 4')
            out.append(f'{m}_stub{i}:')
            out.append(f'  lea {m}_body{i}(%rip), %r11')
            out.append(f'  jmp tramp_{m}')
    if m in ('scent', 'scexit'):
        for i in range(N):
            out.append('  .p2align 4')
            out.append(f'{m}_stub{i}:')
            out.append(f'  lea {m}_body{i}(%rip), %r11')
            out.append(f'  call *tramp_{m}_ptr(%rip)')
            out.append('  jmp *%r11')
    out.append(f'  .globl drive_{m}')
    out.append('  .p2align 4')
    out.append(f'drive_{m}:')
    out.append('  push %rbx')
    out.append('  mov %rdi, %rbx')
    out.append('1:')
    for i in order:
        out.append(f'  call {m}_f{i}')
    out.append('  dec %rbx')
    out.append('  jnz 1b')
    out.append('  pop %rbx')
    out.append('  ret')
out.append('''
  .p2align 4
tramp_callent:          // entry only, call model: some work, then ret
  push %rdi
  mov 8(%rsp), %rdi
  pop %rdi
  ret
  .p2align 4
tramp_jmpent:           // entry only, jump model
  push %r11
  push %rdi
  mov 8(%rsp), %rdi
  pop %rdi
  pop %r11
  jmp *%r11
  .p2align 4
tramp_hijack:           // exit, call model: redirect the return
  pop %r11
  mov shadow_top(%rip), %r10
  mov (%rsp), %rax
  mov %rax, (%r10)
  add $8, %r10
  mov %r10, shadow_top(%rip)
  lea exit_hijack(%rip), %rax
  mov %rax, (%rsp)
  jmp *%r11
  .p2align 4
exit_hijack:
  mov shadow_top(%rip), %r10
  sub $8, %r10
  mov %r10, shadow_top(%rip)
  jmp *(%r10)
  .p2align 4
tramp_jmpcall:          // exit, jump model: call the body
  pop %r10
  mov shadow_top(%rip), %rax
  mov %r10, (%rax)
  add $8, %rax
  mov %rax, shadow_top(%rip)
  call *%r11
  mov shadow_top(%rip), %r10
  sub $8, %r10
  mov %r10, shadow_top(%rip)
  push (%r10)
  ret
  .p2align 4
tramp_scent:            // entry only, stub calls the trampoline, which returns to the stub
  push %rdi
  mov 8(%rsp), %rdi
  pop %rdi
  ret
  .p2align 4
tramp_scexit:           // exit: the trampoline returns to the stub, the stub jumps to RT_CALL
  mov shadow_top(%rip), %rax
  mov 8(%rsp), %r10
  mov %r10, (%rax)
  add $8, %rax
  mov %rax, shadow_top(%rip)
  mov %r11, -16(%rsp)    // body, in the red zone below the slot
  lea rt_call(%rip), %r11
  ret
  .p2align 4
rt_call:
  add $8, %rsp
  call *-32(%rsp)
  mov shadow_top(%rip), %r10
  sub $8, %r10
  mov %r10, shadow_top(%rip)
  push (%r10)
  ret
  .data
tramp_scent_ptr: .quad tramp_scent
tramp_scexit_ptr: .quad tramp_scexit
shadow_top: .quad shadow
  .bss
shadow: .zero 65536
  .section .note.GNU-stack,"",@progbits
''')
open('many.S', 'w').write('\n'.join(out) + '\n')
