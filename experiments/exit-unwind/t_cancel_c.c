/* C without -fexceptions: pthread_cleanup_push is setjmp/longjmp based (__pthread_register_cancel) */
#define _GNU_SOURCE
#include "pt.h"
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
static int cleanups;
static void cb(void *a) { (void)a; cleanups++; }
#define HOOKED __attribute__((noipa))
HOOKED void deep(int n, int mode) {
    pthread_cleanup_push(cb, 0);
    if (n == 0) { if (mode == 0) for (;;) { pthread_testcancel(); usleep(1000); } else pthread_exit((void *)42); }
    deep(n - 1, mode);
    pthread_cleanup_pop(0);
}
HOOKED void *thr(void *a) { deep(5, (int)(long)a); return 0; }
int main(void) {
    pt_patch((void *)deep); pt_patch((void *)thr);
    int fails = 0;
    for (int mode = 0; mode < 2; mode++) {
        cleanups = 0; pthread_t t; void *r;
        pthread_create(&t, 0, thr, (void *)(long)mode);
        if (!mode) { usleep(20000); pthread_cancel(t); }
        pthread_join(t, &r);
        printf("%s: res=%p cleanups=%d (want 6)\n", mode ? "pthread_exit" : "pthread_cancel", r, cleanups);
        fails += cleanups != 6 || r != (mode ? (void *)42 : PTHREAD_CANCELED);
    }
    struct pt_stats s; pt_get_stats(&s); pt_print_stats("c-cancel");
    printf("balance: entry %ld == exit_rt+unw_pers+unw_lazy %ld\n", s.entry, s.exit_rt + s.unw_pers + s.unw_lazy);
    fails += s.entry != s.exit_rt + s.unw_pers + s.unw_lazy;
    printf("RESULT c-cancel: %d failures\n", fails);
    return fails;
}
