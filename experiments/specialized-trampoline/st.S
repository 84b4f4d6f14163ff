/* A per-function specialized entry trampoline, as a code generator would
   emit it for one function with one client (entry handler only): the
   handler and its user data are immediates, so there is no lookup. It keeps
   what the global trampoline must keep for safety: the argument registers,
   the per-thread read section (recursion guard + grace periods), and a frame
   the handler can read (padhook_call-like: gprs at 0). */
        .text
        .globl st_tramp_full
        .type st_tramp_full,@function
        .p2align 4
st_tramp_full:             /* 8 gprs, like the global trampoline */
        .cfi_startproc
        push %r10; push %rax; push %r9; push %r8; push %rcx; push %rdx; push %rsi; push %rdi
        .cfi_adjust_cfa_offset 64
        mov %fs:0, %rax                    /* thread pointer */
        add st_record@gottpoff(%rip), %rax /* &st_record (TLS word) */
        cmpq $0, (%rax)
        jne 1f                             /* nested: skip */
        mov st_reader_word(%rip), %rcx
        mov %rcx, (%rax)                   /* enter read section */
        mov %rsp, %rdi
        movabs $0x1234, %rsi               /* user_data */
        call st_handler
        mov %fs:0, %rax
        add st_record@gottpoff(%rip), %rax
        movq $0, (%rax)                    /* leave */
1:      pop %rdi; pop %rsi; pop %rdx; pop %rcx; pop %r8; pop %r9; pop %rax; pop %r10
        .cfi_adjust_cfa_offset -64
        ret
        .cfi_endproc
        .size st_tramp_full, .-st_tramp_full

        .globl st_tramp_lean
        .type st_tramp_lean,@function
        .p2align 4
st_tramp_lean:             /* 6 argument gprs + rax, TLS offset folded into one load */
        .cfi_startproc
        push %rax; push %r9; push %r8; push %rcx; push %rdx; push %rsi; push %rdi
        .cfi_adjust_cfa_offset 56
        mov st_record@gottpoff(%rip), %rax
        cmpq $0, %fs:(%rax)
        jne 1f
        mov st_reader_word(%rip), %rcx
        mov %rcx, %fs:(%rax)
        mov %rsp, %rdi
        movabs $0x1234, %rsi
        call st_handler
        mov st_record@gottpoff(%rip), %rax
        movq $0, %fs:(%rax)
1:      pop %rdi; pop %rsi; pop %rdx; pop %rcx; pop %r8; pop %r9; pop %rax
        .cfi_adjust_cfa_offset -56
        ret
        .cfi_endproc
        .size st_tramp_lean, .-st_tramp_lean
        .section .note.GNU-stack,"",@progbits
