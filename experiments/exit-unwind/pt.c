#define _GNU_SOURCE
#include "pt.h"
#include "pt_config.h"
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <fcntl.h>
#include <errno.h>
#include <unwind.h>

extern char pt_rt[], pt_tramp[];
int pt_verbose;

#define SHADOW_MAX (1 << 20)
struct ent { uintptr_t slot; void *fn; };
struct desc {               /* one per stack region (identity [flo,fhi)); mirror mapped for [lo,lo+size) */
    uintptr_t lo, size;     /* hot-path check: slot - lo < size  (mapped window) */
    uintptr_t flo, fhi;     /* the whole stack region (e.g. [top - RLIMIT_STACK, top)) */
    uintptr_t failed_below; /* negative cache: mapping below this address failed */
    int kind;               /* 0 dummy, 1 thread stack, 2 sigaltstack, 3 vma, 4 registered */
    long n;                 /* shadow stack (one per stack region!) */
    struct ent *st;
};
#define MAXD 256
static struct desc *descs[MAXD];
static int ndesc;
static int lock;
static struct desc dummy;   /* size 0: always fails the check -> slow path */
static __thread struct desc *cur __attribute__((tls_model("initial-exec"))) = &dummy;

static struct pt_stats S;
#define INC(f) __atomic_fetch_add(&S.f, 1, __ATOMIC_RELAXED)

static void lk(void)  { while (__atomic_exchange_n(&lock, 1, __ATOMIC_ACQUIRE)) ; }
static void ulk(void) { __atomic_store_n(&lock, 0, __ATOMIC_RELEASE); }

static struct desc *lookup_locked(uintptr_t s) {
    struct desc *best = 0;
    for (int i = 0; i < ndesc; i++)
        if (s - descs[i]->flo < descs[i]->fhi - descs[i]->flo &&
            (!best || descs[i]->fhi - descs[i]->flo < best->fhi - best->flo)) best = descs[i];
    return best;
}
static struct desc *lookup(uintptr_t s) {
    lk(); struct desc *d = lookup_locked(s); ulk(); return d;
}

/* mirror coverage (memory) is tracked separately from stack descriptors (shadow-stack partitions):
   a new stack region may overlap already-mirrored memory (heap VMA containing a sigaltstack, ...) */
#define MAXM 1024
static struct { uintptr_t lo, hi; } mm[MAXM];
static int nmm;
static int map_one(uintptr_t lo, uintptr_t hi) {
    uintptr_t m = lo + PT_D;
    void *p = mmap((void *)m, hi - lo, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
    if (p == MAP_FAILED || p != (void *)m) {
        if (p != MAP_FAILED) munmap(p, hi - lo);   /* old kernel: flag ignored, got a hint */
        if (pt_verbose) fprintf(stderr, "[pt] mirror map %#lx+%#lx failed: %s\n", m, hi - lo, strerror(errno));
        return -1;
    }
    if (pt_verbose) fprintf(stderr, "[pt] mirror for [%#lx,%#lx) at %#lx\n", lo, hi, m);
    mm[nmm].lo = lo; mm[nmm].hi = hi; nmm++;
    return 0;
}
static int map_mirror(uintptr_t lo, uintptr_t hi) {   /* map the parts of [lo,hi) not yet mirrored */
    lo &= ~4095UL; hi = (hi + 4095) & ~4095UL;
    if (lo < (uintptr_t)-PT_D + 65536 || nmm + 8 > MAXM) { INC(map_fail); return -1; }  /* would wrap */
    uintptr_t a = lo;
    while (a < hi) {
        uintptr_t b = hi; int covered = 0;
        for (int i = 0; i < nmm; i++) {
            if (a >= mm[i].lo && a < mm[i].hi) { a = mm[i].hi; covered = 1; break; }
            if (mm[i].lo > a && mm[i].lo < b) b = mm[i].lo;
        }
        if (covered) continue;
        if (map_one(a, b)) { INC(map_fail); return -1; }
        a = b;
    }
    INC(map_ok);
    return 0;
}

static struct desc *new_desc(uintptr_t lo, uintptr_t hi, int kind) {
    struct desc *d = mmap(0, sizeof *d, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
    d->st = mmap(0, SHADOW_MAX * sizeof(struct ent), PROT_READ|PROT_WRITE,
                 MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE, -1, 0);
    d->lo = d->flo = lo; d->fhi = hi; d->size = hi - lo; d->kind = kind; d->n = 0;
    descs[ndesc++] = d;
    return d;
}

/* find the VMA containing s in /proc/self/maps (raw syscalls, no malloc) */
static int find_vma(uintptr_t s, uintptr_t *lo, uintptr_t *hi) {
    char buf[8192]; int fd = open("/proc/self/maps", O_RDONLY), found = 0; if (fd < 0) return 0;
    char line[512]; int ll = 0; ssize_t r;
    while (!found && (r = read(fd, buf, sizeof buf)) > 0)
        for (ssize_t i = 0; i < r && !found; i++) {
            if (buf[i] != '\n') { if (ll < 511) line[ll++] = buf[i]; continue; }
            line[ll] = 0; ll = 0;
            unsigned long a, b;
            if (sscanf(line, "%lx-%lx", &a, &b) == 2 && s >= a && s < b) { *lo = a; *hi = b; found = 1; }
        }
    close(fd); return found;
}

static pthread_key_t exit_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static void drain(void *p) {             /* thread exit: every frame on its stack is gone */
    struct desc *d = p;
    while (d->n) { d->n--; INC(unw_lazy); }
}
static void mk_key(void) { pthread_key_create(&exit_key, drain); }
static void set_drain(struct desc *d) {
    if (getpid() == gettid()) return;
    pthread_once(&key_once, mk_key);
    if (!pthread_getspecific(exit_key)) pthread_setspecific(exit_key, d);
}

/* slow path: find or create the mirror for the stack region containing s */
#define WIN (8UL << 20)   /* map thread-stack mirrors in windows of >= 8 MiB, growing downwards */
static struct desc *pt_slow(uintptr_t s) {
    lk();
    struct desc *d = lookup_locked(s);
    if (d) {
        if (s - d->lo >= d->size) {                    /* stack grew below the mapped window */
            if (s < d->failed_below) { ulk(); return 0; }
            uintptr_t nlo = s - WIN < d->flo || s < WIN ? d->flo : (s - WIN) & ~4095UL;
            if (map_mirror(nlo, d->lo)) { d->failed_below = s + 1; ulk(); return 0; }
            d->size += d->lo - nlo; d->lo = nlo;
        }
        ulk(); cur = d; if (d->kind == 1) set_drain(d); return d;
    }
    uintptr_t lo = 0, hi = 0; int kind = 0;
    pthread_attr_t a; void *sa; size_t ss;
    if (!pthread_getattr_np(pthread_self(), &a)) {      /* main: [top - RLIMIT_STACK, top) */
        pthread_attr_getstack(&a, &sa, &ss); pthread_attr_destroy(&a);
        /* main thread with RLIMIT_STACK=unlimited: glibc reports everything down to the previous
           mapping (tens of TiB, overlapping the growing brk heap): cap the region at 1 GiB */
        if (ss > (1UL << 30)) { sa = (char *)sa + ss - (1UL << 30); ss = 1UL << 30; }
        if (s - (uintptr_t)sa < ss) { lo = (uintptr_t)sa; hi = lo + ss; kind = 1; }
    }
    stack_t alt;
    if (!kind && !sigaltstack(0, &alt) && !(alt.ss_flags & SS_DISABLE) &&
        s - (uintptr_t)alt.ss_sp < alt.ss_size) { lo = (uintptr_t)alt.ss_sp; hi = lo + alt.ss_size; kind = 2; }
    if (!kind && find_vma(s, &lo, &hi)) kind = 3;     /* unknown stack, e.g. heap coroutine */
    if (!kind) { ulk(); return 0; }
    uintptr_t mlo = lo;
    if (kind == 1 && hi - lo > WIN) mlo = (s - WIN < lo || s < WIN) ? lo : (s - WIN) & ~4095UL;
    d = new_desc(lo, hi, kind);                         /* also created when mapping fails: negative cache */
    if (map_mirror(mlo, hi)) { d->lo = hi; d->size = 0; d->failed_below = hi; ulk(); return 0; }
    d->lo = mlo; d->size = hi - mlo;
    ulk(); cur = d;
    if (kind == 1) set_drain(d);
    return d;
}

int pt_register_stack(void *lo, unsigned long size) {
    lk();
    int r = map_mirror((uintptr_t)lo, (uintptr_t)lo + size);
    if (!r) new_desc((uintptr_t)lo, (uintptr_t)lo + size, 4);
    ulk(); return r;
}

#ifndef PT_NOCHECK
#define CHECK(d, s) (__builtin_expect((s) - (d)->lo >= (d)->size, 0))
#else
#define CHECK(d, s) (__builtin_expect((d) == &dummy, 0))  /* init only, no range check */
#endif

void pt_on_entry(uintptr_t *slotp, void *fn) {
    uintptr_t s = (uintptr_t)slotp;
    struct desc *d = cur;
    if (CHECK(d, s)) {                                  /* ---- the mirror check ---- */
        d = pt_slow(s);
        if (!d) { INC(nohijack); return; }             /* fallback: no exit for this call */
    }
    long n = d->n;
    while (n && d->st[n - 1].slot < s) { n--; INC(unw_lazy); }   /* dead frames (longjmp) */
    uintptr_t ra = *slotp;
    if (ra == (uintptr_t)pt_rt) {                       /* tail call from a hijacked fn */
        INC(tail);
    } else {
        while (n && d->st[n - 1].slot == s) { n--; INC(unw_lazy); }  /* stale, same slot */
        if (n >= SHADOW_MAX) { d->n = n; INC(nohijack); return; }
        *(uintptr_t *)(s + PT_D) = ra;                  /* 1. mirror */
    }
    if (n >= SHADOW_MAX) { d->n = n; INC(nohijack); return; }
    d->st[n].slot = s; d->st[n].fn = fn;                /* 2. shadow entry */
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    d->n = n + 1;
    *slotp = (uintptr_t)pt_rt;                          /* 3. hijack */
    INC(entry);
}

uintptr_t pt_on_exit(uintptr_t cfa) {
    uintptr_t s = cfa - 8;
    uintptr_t ra = *(uintptr_t *)(s + PT_D);            /* control flow never needs the shadow stack */
    struct desc *d = cur;
    if (s - d->lo >= d->size) { d = lookup(s); if (d) cur = d; }
    int matched = 0;
    if (d) {
        long n = d->n;
        while (n && d->st[n - 1].slot < s) { n--; INC(unw_lazy); }
        while (n && d->st[n - 1].slot == s) { n--; INC(exit_rt); matched++; /* exit handler(fn) here */ }
        d->n = n;
    }
    if (!matched) INC(orphan);
    return ra;
}

/* personality of RT's FDE: called for the RT pseudo-frame during phase 2 of a
   C++ exception or forced unwind (pthread_cancel/pthread_exit): exact unwind notification */
__attribute__((visibility("hidden")))
_Unwind_Reason_Code pt_rt_personality(int ver, _Unwind_Action act, uint64_t cls,
                                      struct _Unwind_Exception *ex, struct _Unwind_Context *ctx) {
    (void)ver; (void)cls; (void)ex;
    if (act & _UA_CLEANUP_PHASE) {
        uintptr_t s = _Unwind_GetCFA(ctx) - 8;
        struct desc *d = lookup(s);
        if (d) {
            long n = d->n;
            while (n && d->st[n - 1].slot < s) { n--; INC(unw_lazy); }
            while (n && d->st[n - 1].slot == s) { n--; INC(unw_pers); }
            d->n = n;
        }
    }
    return _URC_CONTINUE_UNWIND;
}

void pt_patch(void *fn) {
    unsigned char *p = fn;
    static const unsigned char gnop[5] = {0x90,0x90,0x90,0x90,0x90}, cnop[5] = {0x0f,0x1f,0x44,0,0};
    if (memcmp(p, gnop, 5) && memcmp(p, cnop, 4)) {   /* clang: nopl 0x8(%rax,%rax,1) = 0f 1f 44 00 08 */
        if (p[0] == 0xe8) return;  /* already patched */
        fprintf(stderr, "pt_patch: %p has no 5-byte nop: %02x %02x %02x\n", fn, p[0], p[1], p[2]); abort();
    }
    uintptr_t pg = (uintptr_t)p & ~4095UL;
    mprotect((void *)pg, 8192, PROT_READ | PROT_WRITE | PROT_EXEC);
    int32_t rel = (int32_t)((intptr_t)pt_tramp - (intptr_t)(p + 5));
    unsigned char ins[5] = {0xe8}; memcpy(ins + 1, &rel, 4);
    memcpy(p, ins, 5);
    mprotect((void *)pg, 8192, PROT_READ | PROT_EXEC);
}

void pt_get_stats(struct pt_stats *s) { *s = S; }
void pt_print_stats(const char *tag) {
    struct pt_stats s = S;
    printf("[%s] entry=%ld exit_rt=%ld unw_pers=%ld unw_lazy=%ld tail=%ld nohijack=%ld orphan=%ld map_ok=%ld map_fail=%ld depth=%d\n",
           tag, s.entry, s.exit_rt, s.unw_pers, s.unw_lazy, s.tail, s.nohijack, s.orphan, s.map_ok, s.map_fail, pt_shadow_depth());
}
int pt_shadow_depth(void) { return cur->size ? (int)cur->n : 0; }
void pt_dump_shadow(const char *tag) {
    struct desc *d = cur;
    printf("  shadow[%s] n=%ld:", tag, d->size ? d->n : 0);
    for (long i = 0; d->size && i < d->n; i++) printf(" %#lx", (unsigned long)d->st[i].slot);
    printf("\n");
}
