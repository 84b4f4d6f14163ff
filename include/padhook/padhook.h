/* padhook/padhook.h — the C API: attach handlers to instrumented functions.
 *
 * API overview
 *   padhook_attach_pattern / _name / _address / _addresses
 *                           attach a pair of handlers to functions
 *   padhook_detach          remove them; on return no handler of the
 *                           attachment runs or will run again
 *   padhook_call_*          what a handler can see and change of the call
 *   padhook_strerror, padhook_last_error
 *                           errors are negative numbers; details per thread
 *
 * Usage example
 *   static void count(padhook_call *call, void *data) { ++*(long *)data; }
 *   static long calls;
 *   struct padhook_hooks hooks = { count, NULL, &calls };
 *   padhook_attachment *a;
 *   int err = padhook_attach_pattern("parse_*", &hooks, &a);
 *   if (err < 0) fprintf(stderr, "%s: %s\n", padhook_strerror(err), padhook_last_error());
 *   ...
 *   padhook_detach(a);
 *
 * What handlers must tolerate
 *   - They run on the thread that called the function, before its body, with
 *     the function's arguments live: they must not block indefinitely (a
 *     detach waits for running handlers) and should be quick.
 *   - A hooked function called from inside a handler (on the same thread) does
 *     not run handlers: padhook skips them to prevent unbounded recursion, and
 *     counts each skip (padhook_recursion_skips).
 *   - Every client's on_entry runs, in attach order, even when an earlier one
 *     skipped or diverted the call (clients are independent: a tracer still
 *     sees a call that a mock answers); when several skip or divert, the last
 *     one decides.
 *   - Vector registers beyond xmm0-7's low 128 bits are not preserved for the
 *     function: do not hook functions taking __m256/__m512 arguments by value
 *     with handlers that use AVX.
 *
 * Implementation details: docs/design.md.
 */
#ifndef PADHOOK_PADHOOK_H_
#define PADHOOK_PADHOOK_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct padhook_call padhook_call;             /* the call in flight, valid in a handler */
typedef struct padhook_attachment padhook_attachment;
typedef void (*padhook_handler)(padhook_call *call, void *user_data);

struct padhook_hooks {
  padhook_handler on_entry; /* runs before the function's body */
  padhook_handler on_exit;  /* runs when the function returns (or is unwound) */
  void *user_data;          /* passed to both */
  unsigned flags;           /* PADHOOK_HOOKS_*; 0 when unsure */
};
/* The handlers promise not to touch vector registers (no floating point, no
 * SSE/AVX; build them with -mgeneral-regs-only or
 * __attribute__((target("general-regs-only")))) and not to use
 * padhook_call_arg_double / _set_arg_double. While every client on a function
 * promises this, the trampoline does not save xmm0-7: about 16 instructions
 * less per call. Breaking the promise corrupts the function's floating-point
 * arguments. */
#define PADHOOK_HOOKS_NO_VECTOR 1u
/* padhook_hooks.flags: this client's on_exit never asks for the call's entry
 * time (padhook_call_entry_time). When no client with an on_exit on a
 * function needs it, padhook does not read the clock on entry (about 10 ns
 * per call here), and padhook_call_entry_time in on_exit returns 0 unless an
 * on_entry handler took padhook_call_timestamp. */
#define PADHOOK_HOOKS_NO_ENTRY_TIME 2u

/* Error codes (negative). padhook_strerror names them; padhook_last_error
 * gives the calling thread's last detailed message. */
enum {
  PADHOOK_OK = 0,
  PADHOOK_EINVAL = -1,          /* bad argument */
  PADHOOK_ENOTFOUND = -2,       /* no such function, or a pattern matched none */
  PADHOOK_ENOTINSTRUMENTED = -3,/* not built with `padhook flags` */
  PADHOOK_ENOPADDING = -4,      /* no room for metadata before the entry */
  PADHOOK_EUNEXPECTED = -5,     /* code bytes not as compiled: someone else patched them */
  PADHOOK_ESYSTEM = -6,         /* a system call failed */
  PADHOOK_EELF = -7,
  PADHOOK_ENOMEM = -8,
  PADHOOK_EBUSY = -9,           /* e.g. detach called from inside a handler */
  PADHOOK_EUNSUPPORTED = -10
};

/* Attach to every instrumented function whose (demangled) name matches the
 * shell glob, in every loaded module. All or nothing. */
int padhook_attach_pattern(const char *glob, const struct padhook_hooks *h, padhook_attachment **out);
/* Attach to the functions whose name is exactly `name` (mangled or demangled). */
int padhook_attach_name(const char *name, const struct padhook_hooks *h, padhook_attachment **out);
/* Attach to one function by the address of its entry. */
int padhook_attach_address(void *function, const struct padhook_hooks *h, padhook_attachment **out);
/* Attach to `count` functions at once: one patching round for the batch. */
int padhook_attach_addresses(void *const *functions, size_t count, const struct padhook_hooks *h,
                             padhook_attachment **out);

/* On success: no handler of `a` runs or will run; `a` is freed. On failure
 * `a` stays attached and is not freed (its sites could not be restored, or
 * the call came from inside a handler): call padhook_detach again. */
int padhook_detach(padhook_attachment *a);
size_t padhook_attachment_size(const padhook_attachment *a); /* functions covered */

/* ---- In a handler ---- */
void *padhook_call_function(const padhook_call *c);   /* entry address of the hooked function */
void *padhook_call_caller(const padhook_call *c);     /* return address into the caller */
uint64_t padhook_call_thread(const padhook_call *c);  /* kernel thread id of the calling thread */
/* The function's index in padhook's metadata table (below 2^22): stable
 * while any attachment covers the function; reused for another function only
 * after every attachment of this one is gone and a grace period has passed.
 * One load: a tracer can record it instead of the address. */
uint32_t padhook_call_function_index(const padhook_call *c);
/* Integer/pointer argument i (0-based, SysV order: rdi rsi rdx rcx r8 r9, then the stack). */
uint64_t padhook_call_arg(const padhook_call *c, unsigned i);
void padhook_call_set_arg(padhook_call *c, unsigned i, uint64_t v);
/* Floating-point argument i (xmm0-xmm7). */
double padhook_call_arg_double(const padhook_call *c, unsigned i);
void padhook_call_set_arg_double(padhook_call *c, unsigned i, double v);
/* For variadic functions: the number of vector registers the caller used (al). */
unsigned padhook_call_vector_count(const padhook_call *c);
/* On entry: do not run the function; its caller receives `return_value`. */
void padhook_call_skip(padhook_call *c, uint64_t return_value);
/* On entry: run `replacement` instead, with the (possibly rewritten) arguments. */
void padhook_call_divert(padhook_call *c, void *replacement);
/* On exit: the value returned (rax; xmm0 for the double form), and replacing it. */
uint64_t padhook_call_return_value(const padhook_call *c);
void padhook_call_set_return_value(padhook_call *c, uint64_t v);
double padhook_call_return_double(const padhook_call *c);
void padhook_call_set_return_double(padhook_call *c, double v);
/* Nonzero in an on_exit handler. */
int padhook_call_is_exit(const padhook_call *c);
/* Nonzero in an on_exit handler delivered because the function's frame was
 * unwound (C++ exception, pthread_exit, pthread_cancel: while unwinding;
 * longjmp: when the thread next enters or leaves a function with exit
 * handlers, before that event's handlers; thread exit) instead of returning;
 * the return value is then meaningless. */
int padhook_call_is_unwound(const padhook_call *c);
/* Time of this event in ns on CLOCK_MONOTONIC's scale: the entry (in
 * on_entry) or the return (in on_exit). Read from the CPU's time-stamp
 * counter on first request, once per event, shared by all clients; the
 * conversion is calibrated once per process (about 1 ms, spent by the first
 * attach with an on_exit or the first request). */
uint64_t padhook_call_timestamp(padhook_call *c);
/* In on_exit: the timestamp of the call's entry (the one on_entry handlers
 * saw), so duration = padhook_call_timestamp(c) - padhook_call_entry_time(c).
 * In on_entry: the same as padhook_call_timestamp. */
uint64_t padhook_call_entry_time(padhook_call *c);
/* Calls whose exit could not be promised (a thread's shadow stack was full:
 * more than ~400,000 hooked calls with exit handlers nested; or a stack whose
 * return-address mirror could not be mapped), and returns that found no
 * shadow frame (a thread switching stacks, e.g. coroutines). */
uint64_t padhook_exits_lost(void);

/* Outside handlers: the metadata index of the instrumented function whose
 * entry is `function` (see padhook_call_function_index), or PADHOOK_ENOTFOUND
 * when it has none (never attached). Call it while an attachment covers the
 * function, so that the index cannot change under the caller. */
int64_t padhook_function_index(const void *function);

const char *padhook_strerror(int error);
const char *padhook_last_error(void);  /* detail of this thread's last failed call */
/* Hooked calls whose handlers were skipped by the recursion guard (or because
   their thread reached padhook before its one-time set-up finished), all threads. */
uint64_t padhook_recursion_skips(void);

#ifdef __cplusplus
}
#endif

#endif /* PADHOOK_PADHOOK_H_ */
