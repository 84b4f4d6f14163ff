/* Prototype: entry trampoline + return trampoline (RT) with a DWARF rule that
   tells unwinders where the real return address lives: the "mirror" at slot + PT_D.
   RT_VARIANT 1: nop before RT inside the FDE, CFA = rsp+1, rsp = CFA-1 (recommended)
   RT_VARIANT 2: nop, .cfi_signal_frame, CFA = rsp, RA value = mirror - 1
   RT_VARIANT 3: nop, CFA = rsp, RA at mirror (naive)
   RT_VARIANT 4: like 1 without the nop
   RT_VARIANT 5: no nop, .cfi_signal_frame, CFA = rsp, RA at mirror
   PT_NO_PERS : no personality routine on RT's FDE                                 */
#include "pt_config.h"
#ifndef RT_VARIANT
#define RT_VARIANT 1
#endif
        .text
/* ---------- entry trampoline: [rsp]=function body, [rsp+8]=return-address slot */
        .p2align 4
        .globl pt_tramp
        .type pt_tramp,@function
pt_tramp:
        .cfi_startproc
        push %rdi;  .cfi_adjust_cfa_offset 8
        push %rsi;  .cfi_adjust_cfa_offset 8
        push %rdx;  .cfi_adjust_cfa_offset 8
        push %rcx;  .cfi_adjust_cfa_offset 8
        push %r8;   .cfi_adjust_cfa_offset 8
        push %r9;   .cfi_adjust_cfa_offset 8
        push %rax;  .cfi_adjust_cfa_offset 8
        push %r10;  .cfi_adjust_cfa_offset 8
        push %r11;  .cfi_adjust_cfa_offset 8
        sub $136, %rsp; .cfi_adjust_cfa_offset 136
        movdqu %xmm0, 0(%rsp)
        movdqu %xmm1, 16(%rsp)
        movdqu %xmm2, 32(%rsp)
        movdqu %xmm3, 48(%rsp)
        movdqu %xmm4, 64(%rsp)
        movdqu %xmm5, 80(%rsp)
        movdqu %xmm6, 96(%rsp)
        movdqu %xmm7, 112(%rsp)
        lea 216(%rsp), %rdi          /* slot = entry rsp + 8 (9 pushes + 136 = 208) */
        mov 208(%rsp), %rsi          /* function body address = [entry rsp] */
        call pt_on_entry
        movdqu 0(%rsp), %xmm0
        movdqu 16(%rsp), %xmm1
        movdqu 32(%rsp), %xmm2
        movdqu 48(%rsp), %xmm3
        movdqu 64(%rsp), %xmm4
        movdqu 80(%rsp), %xmm5
        movdqu 96(%rsp), %xmm6
        movdqu 112(%rsp), %xmm7
        add $136, %rsp; .cfi_adjust_cfa_offset -136
        pop %r11;  .cfi_adjust_cfa_offset -8
        pop %r10;  .cfi_adjust_cfa_offset -8
        pop %rax;  .cfi_adjust_cfa_offset -8
        pop %r9;   .cfi_adjust_cfa_offset -8
        pop %r8;   .cfi_adjust_cfa_offset -8
        pop %rcx;  .cfi_adjust_cfa_offset -8
        pop %rdx;  .cfi_adjust_cfa_offset -8
        pop %rsi;  .cfi_adjust_cfa_offset -8
        pop %rdi;  .cfi_adjust_cfa_offset -8
        ret
        .cfi_endproc
        .size pt_tramp, .-pt_tramp

/* ---------- return trampoline.  State at pt_rt: exactly as after the hooked
   function's `ret`: rsp = CFA of the hooked function = slot + 8.              */
        .p2align 4
        int3; int3; int3; int3           /* padding outside any FDE */
        .cfi_startproc
#ifndef PT_NO_PERS
        .cfi_personality 0x1b, pt_rt_personality   /* DW_EH_PE_pcrel|sdata4 */
#endif
#if RT_VARIANT == 1 || RT_VARIANT == 4
        /* CFA = rsp + 1 (deliberately != caller's rsp, so that libgcc's frame identity
           _Unwind_GetCFA() of the caller differs from that of the RT pseudo-frame),
           rsp(caller) = CFA - 1, RA saved at [CFA - 1 + PT_D - 8]                  */
        .cfi_def_cfa_offset 1
        .cfi_escape PT_SP_IS_CFA_M1
        .cfi_escape PT_RA_AT_CFA_D_M9
#elif RT_VARIANT == 2
        /* signal frame: caller's pc used as-is, so give RA-1 */
        .cfi_signal_frame
        .cfi_def_cfa_offset 0
        .cfi_escape PT_RA_VAL_M1_CFA_D_M8
#elif RT_VARIANT == 3 || RT_VARIANT == 5
        /* naive: CFA = rsp = caller's rsp, RA at [CFA + PT_D - 8] */
#if RT_VARIANT == 5
        .cfi_signal_frame
#endif
        .cfi_def_cfa_offset 0
        .cfi_escape PT_RA_AT_CFA_D_M8
#endif
        .globl pt_return_trampoline
        .type pt_return_trampoline,@function
pt_return_trampoline:                    /* symbol for the RT pseudo-frame in backtraces */
#if RT_VARIANT <= 3
        nop                              /* so that RT-1 is inside this FDE */
#endif
        .globl pt_rt
        .type pt_rt,@function
pt_rt:
        push %rax;  .cfi_adjust_cfa_offset 8
        push %rdx;  .cfi_adjust_cfa_offset 8
        sub $32, %rsp; .cfi_adjust_cfa_offset 32
        movdqu %xmm0, 0(%rsp)
        movdqu %xmm1, 16(%rsp)
        lea 48(%rsp), %rdi               /* CFA = slot + 8 */
        call pt_on_exit                  /* returns the real return address */
        mov %rax, %r11
        movdqu 0(%rsp), %xmm0
        movdqu 16(%rsp), %xmm1
        add $32, %rsp; .cfi_adjust_cfa_offset -32
        pop %rdx;  .cfi_adjust_cfa_offset -8
        pop %rax;  .cfi_adjust_cfa_offset -8
        jmp *%r11
        .cfi_endproc
        .size pt_rt, .-pt_rt
        .size pt_return_trampoline, .-pt_return_trampoline
        .section .note.GNU-stack,"",@progbits
