#pragma once
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
struct pt_stats { long entry, exit_rt, unw_pers, unw_lazy, nohijack, tail, orphan, map_ok, map_fail; };
void pt_patch(void *fn);            /* turn the 5-byte entry nop of fn into call pt_tramp */
void pt_get_stats(struct pt_stats *s);
void pt_print_stats(const char *tag);
int  pt_shadow_depth(void);         /* entries on the shadow stack of the current stack */
void pt_dump_shadow(const char *tag);
int  pt_register_stack(void *lo, unsigned long size);  /* for coroutine stacks */
extern int pt_verbose;
#ifdef __cplusplus
}
#endif
