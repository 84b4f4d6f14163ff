// The global trampoline, x86-64 SysV.
//
// How a hooked call gets here
//   A patched function's entry holds `call <stub>`; the stub (placed within
//   rel32 reach of the module, see patch/live_patcher.cc) holds
//   `jmp *padhook_trampoline`, or, for a site right after endbr64, the stub
//   next to it holds `jmp *padhook_trampoline_after_landing_pad` (two entry
//   points, so that neither reads code to find the function's entry). So on
//   entry:
//
//     [rsp]      continuation: the address right after the entry's call, i.e.
//                where the function's body starts
//     [rsp+8]    the function's own return address (into its caller)
//     [rsp+16]   the function's stack arguments, if any
//     rsp % 16 == 0   (the caller's call and the site's call each pushed 8)
//                     usually, but NOT always: GCC's -fipa-stack-alignment
//                     (on at -O2) calls a function known not to need an
//                     aligned stack without aligning it. So the frame's xmm
//                     slots are saved with movups, every C++ function
//                     called from here realigns its stack on entry
//                     (force_align_arg_pointer), and handlers are called 8
//                     bytes lower on a misaligned stack (RUN_ENTRY_CALLS and
//                     the return trampoline's exit calls), so they always
//                     get the ABI's alignment.
//
// Register contract
//   Preserved for the function exactly as its caller left them (unless a
//   handler writes them through the call frame on purpose):
//     rdi rsi rdx rcx r8 r9   integer arguments
//     rax                     al = vector registers used by a variadic call
//     r10                     static chain (GNU C nested functions)
//     rbx rbp r12-r15 rsp     callee-saved (the handlers are C functions)
//     xmm0-xmm7               floating-point/vector arguments (low 128 bits),
//                             saved only when a handler on the function may
//                             touch them (block flag kBlockNeedsVector, i.e.
//                             some client did not pass PADHOOK_HOOKS_NO_VECTOR)
//   Clobbered: r11 (scratch at a call boundary, no ABI meaning at entry),
//     flags. xmm8-15 and the upper halves of ymm/zmm registers are caller-saved
//     and are NOT preserved: a function taking __m256/__m512 arguments by value
//     must not be hooked by handlers that use AVX.
//   The trampoline ends with `ret` to the continuation: the function's body
//   (continue), padhook_skip_return (skip: returns to the function's caller
//   with the frame's rax/rdx), or padhook_divert_return (divert: jumps to the
//   replacement with the frame's arguments).
//
// The call frame (struct padhook_call in src/hooks/call_frame.h; keep in sync):
//     0   rdi rsi rdx rcx r8 r9 rax r10     (8 x 8, pushed)
//    64   xmm0 .. xmm7                      (8 x 16, 16-byte aligned)
//   192   function      entry address of the hooked function
//   200   saved rbx     (on the paths that use rbx: the handler loop's cursor)
//   208   divert target (read by padhook_divert_return from the red zone);
//                       in exit frames: the call's entry time
//   216   stamp         event time, taken on first request; exit/unwound bits
//   224   block         (blocks with exit handlers) the block the entry used
//   232   meta          (blocks with exit handlers) its metadata entry
//   240   continuation \ pushed by the hooked call, not part of the frame
//   248   return addr  /
//
// Fast path, all in this file (R1..R4 of src/hooks/attach.cc):
//   R1. Read section: if this thread's record word has nesting bits set
//       (nested call from a handler or signal handler, or a thread not
//       registered yet: its record is the never-written g_unregistered), take
//       the slow path. Otherwise store padhook_reader_word into it.
//   R2. Metadata from the padding: the index masked into the table's
//       reservation, owner == entry (a thread may arrive here long after its
//       site was unpatched: what the padding names is validated, never
//       trusted). Null block: nothing to run.
//   R3. Call each EntryCall of the block, in order, with (frame, user_data).
//       (A block always has at least one: padhook_no_entry_handler when no
//       client has an on_entry, so the loop needs no test before its first
//       call.) The common block (one entry call, no vector registers, no
//       exits) takes a path of its own without the loop and without rbx.
//   R4. Store 0 into the record word (leaves the read section).
//   Slow path: save xmm0-7 and call padhook_dispatch_slow (dispatch.cc), the
//   same steps in C++ plus registration and the recursion count.
//
// CFI: every rsp change is described, and the return address this frame
// returns to is the function's body, whose own CFI says "nothing pushed yet",
// so debuggers and unwinders walk trampoline -> function -> caller. The skip
// and divert continuations have their own FDEs that say the same.

#define FRAME 240
#define XMM 64
#define FUNCTION 192
#define SAVED_RBX 200
#define DIVERT_TARGET 208
#define STAMP 216
#define BLOCK 224
#define META 232
#define BLOCK_FLAGS 0
#define BLOCK_ENTRY_CALLS 32
#define NEEDS_VECTOR 1
#define HAS_EXIT 2
#define NEEDS_ENTRY_TIME 4
#define MANY_ENTRY_CALLS 8
#define META_SHIFT 6
#define META_DATA 8
#define TLS_RECORD _ZN7padhook4sync8internal10tls_recordE
#define INDEX_MASK 0x3FFFFF  // MetadataTable::kMaxEntries - 1
#define BLOCK_MAX_SEQ 16
#define BLOCK_EXIT_CALLS_OFFSET 24
#define EXIT_CALL_SIZE 24
#define STAMP_EXIT 0x8000000000000000
// struct ShadowStack and ShadowFrame (src/hooks/shadow_stack.h)
#define SHADOW padhook_tls_shadow
#define SHADOW_TOP 0
#define SHADOW_LIMIT 8
#define SHADOW_BASE 16
#define SHADOW_MIRROR_LO 24
#define SHADOW_MIRROR_HI 32
#define SHADOW_MIRROR_OFFSET 40
#define SHADOW_RT 48
#define SHADOW_FRAME_SIZE 40
#define SF_RETP 0
#define SF_META 8
#define SF_FUNCTION 16
#define SF_MAX_SEQ 24
#define SF_ENTRY_TIME 32

  .macro SAVE_XMM
  movups %xmm0, XMM+0(%rsp)
  movups %xmm1, XMM+16(%rsp)
  movups %xmm2, XMM+32(%rsp)
  movups %xmm3, XMM+48(%rsp)
  movups %xmm4, XMM+64(%rsp)
  movups %xmm5, XMM+80(%rsp)
  movups %xmm6, XMM+96(%rsp)
  movups %xmm7, XMM+112(%rsp)
  .endm

  .macro RESTORE_XMM
  movups XMM+0(%rsp), %xmm0
  movups XMM+16(%rsp), %xmm1
  movups XMM+32(%rsp), %xmm2
  movups XMM+48(%rsp), %xmm3
  movups XMM+64(%rsp), %xmm4
  movups XMM+80(%rsp), %xmm5
  movups XMM+96(%rsp), %xmm6
  movups XMM+112(%rsp), %xmm7
  .endm

  // R3; expects rbx = the block (it has at least one entry call), rsp =
  // the frame. Clobbers everything caller-saved. Handlers are called on a
  // 16-byte aligned stack: on a misaligned one (see the top) 8 bytes lower,
  // the frame then at rsp + 8.
  .macro RUN_ENTRY_CALLS
  add $BLOCK_ENTRY_CALLS, %rbx
  test $8, %spl
  jz 1f
  sub $8, %rsp
  // Absolute offsets: clang's assembler does not restore the offset that
  // .cfi_adjust_cfa_offset counts from at .cfi_restore_state.
  .cfi_def_cfa_offset FRAME + 16
2:
  lea 8(%rsp), %rdi
  mov 8(%rbx), %rsi
  call *(%rbx)
  add $16, %rbx
  cmpq $0, (%rbx)
  jne 2b
  add $8, %rsp
  .cfi_def_cfa_offset FRAME + 8
  jmp 3f
1:
  mov %rsp, %rdi
  mov 8(%rbx), %rsi
  call *(%rbx)
  add $16, %rbx
  cmpq $0, (%rbx)
  jne 1b
3:
  .endm

  // R3 when the block has exactly one entry call; expects rdx = the block,
  // rsp = the frame. On a misaligned stack (see the top) it jumps to
  // \misaligned, out of line: ONE_ENTRY_CALL_MISALIGNED, which jumps back to
  // the code after this macro (its own CFI rows must not cover the common path).
  .macro ONE_ENTRY_CALL misaligned
  mov BLOCK_ENTRY_CALLS+8(%rdx), %rsi
  test $8, %spl
  jnz \misaligned
  mov %rsp, %rdi
  call *BLOCK_ENTRY_CALLS(%rdx)
  .endm

  .macro ONE_ENTRY_CALL_MISALIGNED done
  sub $8, %rsp
  .cfi_def_cfa_offset FRAME + 16
  lea 8(%rsp), %rdi
  call *BLOCK_ENTRY_CALLS(%rdx)
  add $8, %rsp
  .cfi_def_cfa_offset FRAME + 8
  jmp \done
  .endm

  // R4.
  .macro LEAVE_READ_SECTION
  mov TLS_RECORD@gottpoff(%rip), %rcx
  mov %fs:(%rcx), %rcx
  movq $0, (%rcx)
  .endm

  // The start of both entry points: the frame below the site's call.
  .macro SAVE_ARGUMENT_REGISTERS
  sub $(FRAME - 64), %rsp
  .cfi_adjust_cfa_offset (FRAME - 64)
  push %r10
  .cfi_adjust_cfa_offset 8
  push %rax
  .cfi_adjust_cfa_offset 8
  push %r9
  .cfi_adjust_cfa_offset 8
  push %r8
  .cfi_adjust_cfa_offset 8
  push %rcx
  .cfi_adjust_cfa_offset 8
  push %rdx
  .cfi_adjust_cfa_offset 8
  push %rsi
  .cfi_adjust_cfa_offset 8
  push %rdi
  .cfi_adjust_cfa_offset 8
  .endm

  .text
  .globl padhook_trampoline
  .type padhook_trampoline, @function
  .globl padhook_trampoline_after_landing_pad
  .type padhook_trampoline_after_landing_pad, @function
  .hidden padhook_dispatch_slow
  .hidden padhook_exit_push
  .hidden padhook_exit_dispatch
  .hidden padhook_exit_pop_dead
  .hidden padhook_tls_shadow
  .hidden padhook_reader_word_local
  .hidden padhook_metadata_base

  // The entry point for sites right after endbr64 (stub kind 1): the
  // function's entry is the site - 4. It joins padhook_trampoline once it
  // knows the entry, with the same frame, so the same CFI holds there.
  .p2align 4
padhook_trampoline_after_landing_pad:
  .cfi_startproc
  endbr64
  SAVE_ARGUMENT_REGISTERS
  mov FRAME(%rsp), %rdi
  sub $9, %rdi
  jmp .Lentry_known
  .cfi_endproc
  .size padhook_trampoline_after_landing_pad, . - padhook_trampoline_after_landing_pad

  // The entry point for sites at the entry (stub kind 0).
  .p2align 4
padhook_trampoline:
  .cfi_startproc
  endbr64
  SAVE_ARGUMENT_REGISTERS
  // The function's entry: the site, the 5 bytes before the continuation.
  mov FRAME(%rsp), %rdi
  sub $5, %rdi
.Lentry_known:
  mov %rdi, FUNCTION(%rsp)
  movq $0, STAMP(%rsp)
  // R1.
  mov TLS_RECORD@gottpoff(%rip), %rcx
  mov %fs:(%rcx), %rcx
  testw $0xFFFF, (%rcx)
  jnz .Lslow
  mov padhook_reader_word_local(%rip), %rax
  mov %rax, (%rcx)
  // R2. No need to check the slot's opcode: whatever the 4 bytes before
  // the entry hold (an index, NOPs, a torn index), masked into the table's
  // reservation they name an entry (readable, zero beyond the capacity: see
  // src/metadata.cc) whose owner is checked, and x86 does not reorder the
  // two loads (the writer set the owner before it wrote the index).
  mov -4(%rdi), %eax
  and $INDEX_MASK, %eax
  shl $META_SHIFT, %rax
  add padhook_metadata_base(%rip), %rax
  cmp %rdi, (%rax)
  jne .Lleave
  mov META_DATA(%rax), %rdx
  test %rdx, %rdx
  jz .Lleave
  testl $(NEEDS_VECTOR | HAS_EXIT | MANY_ENTRY_CALLS), BLOCK_FLAGS(%rdx)
  jnz .Lspecial
  // R3 for the common block: one entry call, no vector registers, no exits.
  // It needs no cursor, so rbx is neither used nor saved on this path.
  ONE_ENTRY_CALL .Lone_misaligned
.Lleave:
  LEAVE_READ_SECTION
.Lrestore:
  .cfi_remember_state
  pop %rdi
  .cfi_adjust_cfa_offset -8
  pop %rsi
  .cfi_adjust_cfa_offset -8
  pop %rdx
  .cfi_adjust_cfa_offset -8
  pop %rcx
  .cfi_adjust_cfa_offset -8
  pop %r8
  .cfi_adjust_cfa_offset -8
  pop %r9
  .cfi_adjust_cfa_offset -8
  pop %rax
  .cfi_adjust_cfa_offset -8
  pop %r10
  .cfi_adjust_cfa_offset -8
  add $(FRAME - 64), %rsp
  .cfi_adjust_cfa_offset -(FRAME - 64)
  ret
  .cfi_restore_state
.Lone_misaligned:
  ONE_ENTRY_CALL_MISALIGNED .Lleave
.Lslow:
  SAVE_XMM
  mov %rsp, %rdi
  call padhook_dispatch_slow
  RESTORE_XMM
  jmp .Lrestore
.Lspecial:
  testl $HAS_EXIT, BLOCK_FLAGS(%rdx)
  jnz .Lexit
  testl $MANY_ENTRY_CALLS, BLOCK_FLAGS(%rdx)
  jnz .Lmany
  // One entry call that may touch vector registers.
  SAVE_XMM
  ONE_ENTRY_CALL .Lone_vector_misaligned
.Lone_vector_done:
  LEAVE_READ_SECTION
  RESTORE_XMM
  jmp .Lrestore
.Lone_vector_misaligned:
  ONE_ENTRY_CALL_MISALIGNED .Lone_vector_done
  // The paths below keep the block in rbx (RUN_ENTRY_CALLS's cursor, the
  // exit path's block): each saves rbx in the frame first and restores it at
  // .Lrestore_rbx. The paths above leave rbx untouched, so their CFI says
  // nothing about it.
.Lmany:
  mov %rbx, SAVED_RBX(%rsp)
  .cfi_offset %rbx, SAVED_RBX - FRAME - 8
  mov %rdx, %rbx
  testl $NEEDS_VECTOR, BLOCK_FLAGS(%rbx)
  jz .Lmany_no_vector
  SAVE_XMM
  RUN_ENTRY_CALLS
  LEAVE_READ_SECTION
  RESTORE_XMM
  jmp .Lrestore_rbx
.Lmany_no_vector:
  RUN_ENTRY_CALLS
  LEAVE_READ_SECTION
  jmp .Lrestore_rbx
  .cfi_restore %rbx
.Lexit:
  // The block has exit handlers: after the entry handlers, E1 of
  // src/hooks/shadow_stack.h. rax still holds the metadata entry R2 found.
  mov %rbx, SAVED_RBX(%rsp)
  .cfi_offset %rbx, SAVED_RBX - FRAME - 8
  mov %rdx, %rbx
  mov %rbx, BLOCK(%rsp)
  mov %rax, META(%rsp)
  // Frames left dead by a longjmp (retp at or below this call's) get their
  // unwound exits before this call's entry handlers run, so handlers see
  // events in nesting order.
  lea FRAME+8(%rsp), %rdi                    // retp
  mov SHADOW@gottpoff(%rip), %rcx
  mov %fs:SHADOW_TOP(%rcx), %rdx
  cmp %fs:SHADOW_BASE(%rcx), %rdx
  je 5f
  cmp -SHADOW_FRAME_SIZE(%rdx), %rdi
  jb 5f
  SAVE_XMM
  mov %rsp, %rdi
  call padhook_exit_pop_dead
  RESTORE_XMM
  mov BLOCK(%rsp), %rbx
5:
  testl $NEEDS_VECTOR, BLOCK_FLAGS(%rbx)
  jz 1f
  SAVE_XMM
1:
  RUN_ENTRY_CALLS
  // E1's common case here; the rest (first call of the thread or of a stack
  // chunk, dead frames to pop, a tail call, a full stack) in C++.
  lea FRAME+8(%rsp), %rdi                    // retp
  mov SHADOW@gottpoff(%rip), %rcx
  mov %rdi, %rax
  sub %fs:SHADOW_MIRROR_LO(%rcx), %rax
  mov %fs:SHADOW_MIRROR_HI(%rcx), %rdx
  sub %fs:SHADOW_MIRROR_LO(%rcx), %rdx
  cmp %rdx, %rax
  jae .Lexit_push_slow                       // the mirror may not cover retp
  mov (%rdi), %r8                            // the real return address
  cmp %fs:SHADOW_RT(%rcx), %r8
  je .Lexit_push_slow                        // a tail call
  mov %fs:SHADOW_TOP(%rcx), %r9
  cmp %fs:SHADOW_LIMIT(%rcx), %r9
  je .Lexit_push_slow                        // full, or not mapped yet
  cmp %fs:SHADOW_BASE(%rcx), %r9
  je 2f
  cmp -SHADOW_FRAME_SIZE(%r9), %rdi
  jae .Lexit_push_slow                       // dead frames to pop first
2:
  // r10 (restored from the frame at the end, like every argument register)
  // holds the block from here on.
  mov BLOCK(%rsp), %r10
  mov %rdi, SF_RETP(%r9)
  mov META(%rsp), %rax
  mov %rax, SF_META(%r9)
  mov FUNCTION(%rsp), %rax
  mov %rax, SF_FUNCTION(%r9)
  mov BLOCK_MAX_SEQ(%r10), %rax
  mov %rax, SF_MAX_SEQ(%r9)
  mov STAMP(%rsp), %rax                      // an entry handler's timestamp, if taken
  testl $NEEDS_ENTRY_TIME, BLOCK_FLAGS(%r10)
  jz 3f                                      // nobody will ask: whatever the stamp holds
  test %rax, %rax
  jnz 3f
  rdtsc
  shl $32, %rdx
  or %rdx, %rax
3:
  mov %rax, SF_ENTRY_TIME(%r9)
  add $SHADOW_FRAME_SIZE, %r9
  mov %r9, %fs:SHADOW_TOP(%rcx)              // the frame before its top
  mov %fs:SHADOW_MIRROR_OFFSET(%rcx), %rax
  mov %r8, (%rdi,%rax)                       // the mirror before the slot
  mov %fs:SHADOW_RT(%rcx), %rax
  mov %rax, (%rdi)
  LEAVE_READ_SECTION
  testl $NEEDS_VECTOR, BLOCK_FLAGS(%r10)
  jz .Lrestore_rbx
  RESTORE_XMM
  jmp .Lrestore_rbx
.Lexit_push_slow:
  // C++ may use xmm0-7: save them now if the entry handlers did not need to
  // (they promised not to touch them, so they still hold the arguments).
  mov BLOCK(%rsp), %rax
  testl $NEEDS_VECTOR, BLOCK_FLAGS(%rax)
  jnz 4f
  SAVE_XMM
4:
  mov %rsp, %rdi
  call padhook_exit_push
  LEAVE_READ_SECTION
  RESTORE_XMM
  jmp .Lrestore_rbx
.Lrestore_rbx:
  mov SAVED_RBX(%rsp), %rbx
  .cfi_restore %rbx
  jmp .Lrestore
  .cfi_endproc
  .size padhook_trampoline, . - padhook_trampoline

// The return trampolines (RT): hooked functions whose block has exit handlers
// return here (E2..E4 of src/hooks/shadow_stack.h), one RT per mirror class.
// On arrival rsp = retp + 8 (the function's `ret` popped its return-address
// slot at retp) and rax, rdx, xmm0, xmm1 hold its return value; the real
// return address is at retp + D, the mirror. padhook_exit_dispatch runs the
// exit handlers and returns that address; RT jumps there with the return
// registers as the handlers left them.
//
// CFI: CFA = rsp + 1 (= retp + 9: deliberately not the hooked function's CFA
// retp + 8, because libgcc identifies frames by CFA), the caller's
// rsp = CFA - 1, and its return address is saved at CFA + D - 9, i.e. in the
// mirror. The bytes: DW_CFA_val_expression rsp {DW_OP_lit1 DW_OP_minus};
// DW_CFA_expression rip {DW_OP_consts (D - 9) DW_OP_plus}. The nop keeps
// RT - 1, which unwinders look up for the return address RT, inside the FDE.
// The personality routine (shadow_stack.cc) reports exceptions and forced
// unwinds that leave a redirected frame.
// Not preserved for the caller: x87 st0/st1 (long double returns) if an exit
// handler uses x87, and ymm/zmm upper halves.
  .macro RETURN_TRAMPOLINE name, offset, ra_rule:vararg
  .globl \name
  .hidden \name
  .type \name, @function
  .p2align 4
  .cfi_startproc
  .cfi_personality 0x1b, padhook_rt_personality
  .cfi_def_cfa_offset 1
  .cfi_escape 0x16, 0x07, 0x02, 0x31, 0x1c
  .cfi_escape \ra_rule
  .type \name\()_frame, @function
\name\()_frame:  // what debuggers call the pseudo-frame (its pc is \name - 1)
  nop
\name:
  sub $(FRAME + 16), %rsp
  .cfi_adjust_cfa_offset (FRAME + 16)
  mov %rax, 48(%rsp)
  mov %rdx, 16(%rsp)
  movups %xmm0, XMM(%rsp)
  movups %xmm1, XMM+16(%rsp)
  mov %rbx, SAVED_RBX(%rsp)
  // rbx saved at rsp + SAVED_RBX: DW_CFA_expression rbx {DW_OP_breg7 200}
  // (an offset from this odd CFA is not a multiple of 8, as offset rules need).
  .cfi_escape 0x10, 0x03, 0x03, 0x77, 0xc8, 0x01
  // E2: the real return address back into the slot (padhook_call_caller).
  lea FRAME+8(%rsp), %rdi                    // retp
  movabs $\offset, %rax
  mov (%rdi,%rax), %rax
  mov %rax, (%rdi)
  // The common case here: a registered thread outside any read section,
  // whose top shadow frame is this call's and the only one with its retp.
  // The rest (nested, dead frames to pop, tail calls, a lost frame) in C++.
  mov TLS_RECORD@gottpoff(%rip), %rcx
  mov %fs:(%rcx), %rcx
  testw $0xFFFF, (%rcx)
  jnz 8f
  mov SHADOW@gottpoff(%rip), %rdx
  mov %fs:SHADOW_TOP(%rdx), %rsi
  cmp %fs:SHADOW_BASE(%rdx), %rsi
  je 8f
  cmp -SHADOW_FRAME_SIZE(%rsi), %rdi
  jne 8f
  sub $SHADOW_FRAME_SIZE, %rsi               // this call's frame
  cmp %fs:SHADOW_BASE(%rdx), %rsi
  je 1f
  cmp -SHADOW_FRAME_SIZE(%rsi), %rdi
  je 8f
1:
  mov padhook_reader_word_local(%rip), %rax  // enter the read section (R1)
  mov %rax, (%rcx)
  mov SF_FUNCTION(%rsi), %r8                 // the frame's fields, then pop it
  mov %r8, FUNCTION(%rsp)
  mov SF_ENTRY_TIME(%rsi), %rax
  mov %rax, DIVERT_TARGET(%rsp)
  mov SF_MAX_SEQ(%rsi), %rax
  mov %rax, BLOCK(%rsp)                      // exit frames keep max_seq here
  mov SF_META(%rsi), %rbx
  mov %rsi, %fs:SHADOW_TOP(%rdx)
  movabs $STAMP_EXIT, %rax
  mov %rax, STAMP(%rsp)
  // E3: the exit calls of the function's current block owed to this call.
  cmp %r8, (%rbx)
  jne 7f                                     // the metadata entry was reused
  mov META_DATA(%rbx), %rbx
  test %rbx, %rbx
  jz 7f
  add BLOCK_EXIT_CALLS_OFFSET(%rbx), %rbx
  cmpq $0, (%rbx)
  je 7f
  // Exit handlers run on a 16-byte aligned stack, as entry handlers do
  // (RUN_ENTRY_CALLS): on a misaligned one, 8 bytes lower.
  test $8, %spl
  jz 2f
  sub $8, %rsp
  .cfi_def_cfa_offset 1 + FRAME + 16 + 8      // absolute, as in RUN_ENTRY_CALLS
4:
  mov 16(%rbx), %rax
  cmp BLOCK+8(%rsp), %rax
  ja 5f                                      // attached after the call entered
  lea 8(%rsp), %rdi
  mov 8(%rbx), %rsi
  call *(%rbx)
5:
  add $EXIT_CALL_SIZE, %rbx
  cmpq $0, (%rbx)
  jne 4b
  add $8, %rsp
  .cfi_def_cfa_offset 1 + FRAME + 16
  jmp 7f
2:
  mov 16(%rbx), %rax
  cmp BLOCK(%rsp), %rax
  ja 3f                                      // attached after the call entered
  mov %rsp, %rdi
  mov 8(%rbx), %rsi
  call *(%rbx)
3:
  add $EXIT_CALL_SIZE, %rbx
  cmpq $0, (%rbx)
  jne 2b
7:
  LEAVE_READ_SECTION
  jmp 9f
8:
  mov %rsp, %rdi
  movabs $\offset, %rsi
  call padhook_exit_dispatch
9:
  // E4: return where the mirror says (E2 copied it into the slot, which
  // nothing writes since: it lies above this frame, where neither handlers
  // nor signal frames go), with the return registers as the handlers left them.
  mov FRAME+8(%rsp), %r11
  mov SAVED_RBX(%rsp), %rbx
  .cfi_restore %rbx
  mov 48(%rsp), %rax
  mov 16(%rsp), %rdx
  movups XMM(%rsp), %xmm0
  movups XMM+16(%rsp), %xmm1
  add $(FRAME + 16), %rsp
  .cfi_adjust_cfa_offset -(FRAME + 16)
  jmp *%r11
  .cfi_endproc
  .size \name, . - \name
  .size \name\()_frame, . - \name\()_frame
  .endm

  .hidden padhook_rt_personality
  // Stacks below 16 TiB: D = +16 TiB (kMirrorLowOffset).
  RETURN_TRAMPOLINE padhook_return_trampoline_low, 0x100000000000, 0x10, 0x10, 0x09, 0x11, 0xf7, 0xff, 0xff, 0xff, 0xff, 0xff, 0x03, 0x22
  // Stacks from 48 TiB: D = -16 TiB (kMirrorHighOffset).
  RETURN_TRAMPOLINE padhook_return_trampoline_high, -0x100000000000, 0x10, 0x10, 0x09, 0x11, 0xf7, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7b, 0x22

// The entry call of a block whose clients have no on_entry.
  .globl padhook_no_entry_handler
  .hidden padhook_no_entry_handler
  .type padhook_no_entry_handler, @function
  .p2align 4
padhook_no_entry_handler:
  .cfi_startproc
  endbr64
  ret
  .cfi_endproc
  .size padhook_no_entry_handler, . - padhook_no_entry_handler

// Skip: the trampoline returned here instead of into the function's body;
// rsp points at the function's return address and rax/rdx hold the handler's
// value. The nop keeps (padhook_skip_return - 1), which unwinders look up for
// a return address, inside this FDE.
  .globl padhook_skip_return
  .type padhook_skip_return, @function
  .p2align 4
  .cfi_startproc
  nop
padhook_skip_return:
  ret
  .cfi_endproc
  .size padhook_skip_return, . - padhook_skip_return

// Divert: as skip, but continue in the replacement, with the arguments as the
// handlers left them. Its address is in the popped frame's divert slot, 24
// bytes below rsp: inside the red zone, so no signal handler has overwritten it.
  .globl padhook_divert_return
  .type padhook_divert_return, @function
  .p2align 4
  .cfi_startproc
  nop
padhook_divert_return:
  jmp *-(FRAME + 8 - DIVERT_TARGET)(%rsp)
  .cfi_endproc
  .size padhook_divert_return, . - padhook_divert_return

  .section .note.GNU-stack, "", @progbits
