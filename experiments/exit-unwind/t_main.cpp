// Tests: compiled with -fpatchable-function-entry=5; the HOOKED functions get patched at startup.
#include "pt.h"
#include "pt_config.h"
#define PT_D_VALUE PT_D
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <csetjmp>
#include <csignal>
#include <execinfo.h>
#include <dlfcn.h>
#include <unwind.h>
#include <pthread.h>
#include <ucontext.h>
#include <unistd.h>
#include <sys/mman.h>
#include <string>
#include <vector>

#ifdef __clang__
#define HOOKED extern "C" __attribute__((noinline))
#else
#define HOOKED extern "C" __attribute__((noipa))
#endif
#define NOTAIL asm volatile("" ::: "memory")
static int fails;
#define CHECK(c) do { if (!(c)) { printf("  FAIL: %s (line %d)\n", #c, __LINE__); fails++; } else printf("  ok: %s\n", #c); } while (0)

static std::vector<void*> hooked;
#define H(f) hooked.push_back((void*)&f)

static long expected_orphans;
static void balanced(const char *tag) {
    pt_stats s; pt_get_stats(&s);
    pt_print_stats(tag);
    printf("  balance: entry %ld vs exit_rt+unw_pers+unw_lazy+depth %ld\n", s.entry,
           s.exit_rt + s.unw_pers + s.unw_lazy + pt_shadow_depth());
    CHECK(s.entry == s.exit_rt + s.unw_pers + s.unw_lazy + pt_shadow_depth());
    CHECK(s.orphan == expected_orphans);
}

/* ------------------------------------------------------------ 1. exceptions */
static int dtors;
struct R { int l; ~R() { dtors++; } };
struct Mid { int lvl; };
HOOKED void thrower(int n) { R r{n}; if (n == 0) throw std::runtime_error("boom"); thrower(n - 1); NOTAIL; }
HOOKED void thrower_mid(int n) { R r{n}; if (n == 0) throw Mid{42}; thrower_mid(n - 1); NOTAIL; }
HOOKED int catcher(int n, int k) {          // level k catches Mid, returns normally via RT
    R r{n};
    if (n == k) { try { thrower_mid(n - 1 < 0 ? 0 : n - 1); } catch (const std::runtime_error &) { return -1; } catch (const Mid &m) { return m.lvl + n; } return -2; }
    int v = catcher(n - 1, k); NOTAIL; return v + 1000;
}
HOOKED void rethrower(int n) { R r{n}; try { thrower(n); } catch (...) { throw; } }
extern "C" __attribute__((noinline)) void leaf_throw() { throw 7; }   // not hooked
HOOKED int via_unhooked_leaf(int n) { R r{n}; if (n == 0) leaf_throw(); int v = via_unhooked_leaf(n - 1); NOTAIL; return v; }

static void test_exc() {
    for (int N : {1, 2, 5, 50}) {
        dtors = 0; bool got = false, wrong = false;
        try { thrower(N - 1); } catch (int) { wrong = true; } catch (const std::runtime_error &e) { got = !strcmp(e.what(), "boom"); }
        printf(" throw through %d hijacked frames:\n", N);
        CHECK(got && !wrong); CHECK(dtors == N);
    }
    dtors = 0; int v = catcher(10, 3);
    printf(" catch at level 3 of 10 (hooked catcher returns via RT): v=%d dtors=%d\n", v, dtors);
    CHECK(v == 42 + 3 + 7 * 1000); CHECK(dtors == 11);
    dtors = 0; bool got = false;
    try { rethrower(5); } catch (const std::runtime_error &) { got = true; }
    printf(" catch(...){throw;} in a hooked frame:\n"); CHECK(got); CHECK(dtors == 7);
    dtors = 0; int gi = 0;
    try { via_unhooked_leaf(6); } catch (int i) { gi = i; }
    printf(" throw from unhooked leaf under 7 hijacked frames:\n"); CHECK(gi == 7); CHECK(dtors == 7);
    balanced("exc");
}

/* ------------------------------------------------------------ 2. backtraces */
static std::string name_of(void *ip) {
    Dl_info di; if (dladdr(ip, &di) && di.dli_sname) return di.dli_sname; return "?";
}
static std::vector<std::string> bt_glibc, bt_unw;
static _Unwind_Reason_Code cb(struct _Unwind_Context *c, void *) {
    int before; uintptr_t ip = _Unwind_GetIPInfo(c, &before);
    bt_unw.push_back(name_of((void *)(ip - (before ? 0 : 1)))); return _URC_NO_REASON;
}
HOOKED __attribute__((noinline)) void bt_leaf() {
    void *b[64]; int n = backtrace(b, 64);
    bt_glibc.clear(); bt_unw.clear();
    for (int i = 0; i < n; i++) bt_glibc.push_back(name_of((void *)((char *)b[i] - (i ? 1 : 0))));
    _Unwind_Backtrace(cb, nullptr);
    if (getenv("PT_BT_PRINT")) backtrace_symbols_fd(b, n, 1);
}
HOOKED int bt3(int x) { bt_leaf(); NOTAIL; return x + 1; }
HOOKED int bt2(int x) { int v = bt3(x); NOTAIL; return v + 1; }
HOOKED int bt1(int x) { int v = bt2(x); NOTAIL; return v + 1; }
static std::string join(const std::vector<std::string> &v, bool skip_rt) {
    std::string r; for (auto &s : v) { if (skip_rt && (s == "pt_rt" || s == "pt_return_trampoline")) continue; if (s == "main") { r += s; break; } r += s + " "; } return r;
}
static void test_bt() {
    int v = bt1(0);
    printf(" backtrace():        %s\n", join(bt_glibc, false).c_str());
    printf(" _Unwind_Backtrace:  %s\n", join(bt_unw, false).c_str());
    std::string want = "bt_leaf bt3 bt2 bt1 _ZL7test_btv main";
    CHECK(join(bt_glibc, true).find("bt_leaf bt3 bt2 bt1") != std::string::npos);
    CHECK(join(bt_unw, true).find("bt_leaf bt3 bt2 bt1") != std::string::npos);
    CHECK(v == 3);
    balanced("bt");
}

/* ------------------------------------------------------------ 3. cancel / exit */
static int cleanups;
static void cleanup_cb(void *) { cleanups++; }
HOOKED void cdeep(int n, int mode) {
    R r{n};
    if (n == 0) { if (mode == 0) for (;;) { pthread_testcancel(); usleep(1000); } else pthread_exit((void *)42); }
    cdeep(n - 1, mode); NOTAIL;
}
HOOKED void *cthread(void *arg) {
    pthread_cleanup_push(cleanup_cb, nullptr);
    cdeep(10, (int)(long)arg);
    pthread_cleanup_pop(0);
    return nullptr;
}
static void test_cancel() {
    for (int mode : {0, 1}) {
        dtors = 0; cleanups = 0; pthread_t t; void *res;
        pthread_create(&t, nullptr, cthread, (void *)(long)mode);
        if (mode == 0) { usleep(50000); pthread_cancel(t); }
        pthread_join(t, &res);
        printf(" %s: res=%p dtors=%d cleanups=%d\n", mode ? "pthread_exit" : "pthread_cancel", res, dtors, cleanups);
        CHECK(res == (mode ? (void *)42 : PTHREAD_CANCELED)); CHECK(dtors == 11); CHECK(cleanups == 1);
    }
    pt_stats s; pt_get_stats(&s); pt_print_stats("cancel");
    CHECK(s.entry == s.exit_rt + s.unw_pers + s.unw_lazy + pt_shadow_depth());
}

/* ------------------------------------------------------------ 4. longjmp */
static jmp_buf jb;
HOOKED void lj3(int x) { R r{x}; longjmp(jb, 1); }
HOOKED void lj2(int x) { lj3(x); NOTAIL; }
HOOKED void lj1(int x) { lj2(x); NOTAIL; }
HOOKED int lj_g(int x) { return x + 1; }
HOOKED int lj_a(int mode) {             // hooked, does setjmp, longjmp'd over 3 hooked frames
    if (setjmp(jb) == 0) { lj1(1); return -1; }
    pt_dump_shadow("after longjmp, inside lj_a");
    int v = 0;
    if (mode == 1) { v = lj_g(1); pt_dump_shadow("after lj_a calls hooked lj_g"); }
    return v;
}
static void test_longjmp() {
    for (int mode : {0, 1}) {
        pt_stats a; pt_get_stats(&a);
        pt_dump_shadow("before");
        lj_a(mode);
        pt_dump_shadow("after lj_a returned");
        pt_stats b; pt_get_stats(&b);
        printf(" mode %d: entries +%ld, exit_rt +%ld, unw_lazy +%ld, orphan +%ld\n", mode,
               b.entry - a.entry, b.exit_rt - a.exit_rt, b.unw_lazy - a.unw_lazy, b.orphan - a.orphan);
        CHECK(b.entry - a.entry == b.exit_rt - a.exit_rt + b.unw_lazy - a.unw_lazy);
        CHECK(b.unw_lazy - a.unw_lazy == 3);
    }
    balanced("longjmp");
}

/* ------------------------------------------------------------ tail calls (-O2) */
HOOKED int tc_b(int x) { return x * 2; }
HOOKED int tc_a(int x) { return tc_b(x + 1); }      // tail call at -O2
static void test_tail() {
    pt_stats a; pt_get_stats(&a);
    int v = tc_a(1);
    pt_stats b; pt_get_stats(&b);
    printf(" tc_a(1)=%d entries +%ld exit_rt +%ld tail +%ld\n", v, b.entry - a.entry, b.exit_rt - a.exit_rt, b.tail - a.tail);
    CHECK(v == 4); CHECK(b.entry - a.entry == b.exit_rt - a.exit_rt);
    balanced("tail");
}

/* ------------------------------------------------------------ 5. stacks */
HOOKED long rec(long n) { volatile char pad[64]; pad[0] = (char)n; if (n == 0) return 0; long v = rec(n - 1) + pad[0] * 0 + 1; NOTAIL; return v; }
static void *thr_rec(void *a) { long n = (long)a; return (void *)rec(n); }
static volatile int sig_v;
HOOKED int sig_work(int x) { if (x == 0) return 1; int v = sig_work(x - 1); NOTAIL; return v + 1; }
static void handler(int) { char c; sig_v = sig_work(5); if (getenv("PT_VERBOSE_SIG")) printf("  handler on %p\n", (void *)&c); }
HOOKED int sig_outer(int x) { if (x == 0) { raise(SIGUSR1); return 0; } int v = sig_outer(x - 1); NOTAIL; return v; }

static ucontext_t uc_main, uc_co[2];
static void *co_stack[2];
HOOKED int co_yield_fn(int id, int lvl) {   // hooked frames live on the coroutine stack across switches
    if (lvl == 0) { swapcontext(&uc_co[id], &uc_main); return 1; }
    int v = co_yield_fn(id, lvl - 1); NOTAIL; return v + 1;
}
static int co_res[2];
static void co_entry(int id) {
    co_res[id] = co_yield_fn(id, 3);
    try { thrower(3); } catch (const std::runtime_error &) { co_res[id] += 100; }
}
HOOKED int main_side(int lvl, int which) {   // hooked frames live on the main stack across switches
    if (lvl == 0) { swapcontext(&uc_main, &uc_co[which]); return 1; }
    int v = main_side(lvl - 1, which); NOTAIL; return v + 1;
}
static void run_coroutines(bool reg) {
    for (int i = 0; i < 2; i++) {
        co_stack[i] = malloc(64 * 1024);           // < mmap threshold: brk heap
        if (reg) pt_register_stack(co_stack[i], 64 * 1024);
        getcontext(&uc_co[i]); uc_co[i].uc_stack.ss_sp = co_stack[i]; uc_co[i].uc_stack.ss_size = 64 * 1024;
        uc_co[i].uc_link = &uc_main; makecontext(&uc_co[i], (void (*)())co_entry, 1, i);
    }
    pt_stats a; pt_get_stats(&a);
    int r1 = main_side(2, 0);     // start co0: it suspends with 4 hooked frames on its stack
    int r2 = main_side(4, 1);     // start co1
    int r3 = main_side(1, 0);     // resume co0 -> finishes (returns through its hijacked frames) -> uc_link
    int r4 = main_side(3, 1);     // resume co1 -> finishes
    pt_stats b; pt_get_stats(&b);
    printf(" coroutines (%s): r=%d %d %d %d co_res=%d %d entries +%ld exit_rt +%ld unw_pers +%ld unw_lazy +%ld orphan +%ld nohijack +%ld\n",
           reg ? "registered stacks" : "unregistered (VMA)", r1, r2, r3, r4, co_res[0], co_res[1],
           b.entry - a.entry, b.exit_rt - a.exit_rt, b.unw_pers - a.unw_pers, b.unw_lazy - a.unw_lazy, b.orphan - a.orphan, b.nohijack - a.nohijack);
    CHECK(r1 == 3 && r2 == 5 && r3 == 2 && r4 == 4 && co_res[0] == 104 && co_res[1] == 104);
    if (!reg) { printf("  (expected: one shadow stack for both heap stacks -> interleaving loses exits; control flow still ok)\n"); expected_orphans += b.orphan - a.orphan; }
    if (reg) CHECK(b.exit_rt - a.exit_rt + b.unw_pers - a.unw_pers == b.entry - a.entry && b.unw_lazy == a.unw_lazy && b.orphan == a.orphan);
}

static void test_stacks() {
    long d = rec(60000);   /* ~60000 * 112B = 6.7 MB of main stack: grows the stack far past its initial size */
    printf(" main stack deep recursion: %ld\n", d); CHECK(d == 60000);
    pthread_t t[3]; void *r[3];
    pthread_create(&t[0], nullptr, thr_rec, (void *)2000L);
    pthread_create(&t[1], nullptr, thr_rec, (void *)2000L);
    pthread_attr_t at; pthread_attr_init(&at);
    size_t usz = 256 * 1024; void *ustk = aligned_alloc(4096, usz);       /* user-supplied heap stack */
    pthread_attr_setstack(&at, ustk, usz);
    pthread_create(&t[2], &at, thr_rec, (void *)1000L);
    for (int i = 0; i < 3; i++) pthread_join(t[i], &r[i]);
    printf(" threads: %ld %ld user-stack %ld (user stack at %p)\n", (long)r[0], (long)r[1], (long)r[2], ustk);
    CHECK((long)r[0] == 2000 && (long)r[1] == 2000 && (long)r[2] == 1000);

    stack_t ss; ss.ss_sp = malloc(64 * 1024); ss.ss_size = 64 * 1024; ss.ss_flags = 0; sigaltstack(&ss, nullptr);
    struct sigaction sa; memset(&sa, 0, sizeof sa); sa.sa_handler = handler; sa.sa_flags = SA_ONSTACK; sigaction(SIGUSR1, &sa, nullptr);
    sig_outer(4);
    printf(" sigaltstack handler: sig_work=%d\n", sig_v); CHECK(sig_v == 6);

    run_coroutines(false);
    run_coroutines(true);

    /* fallback: user stack whose mirror address is already occupied */
    size_t fsz = 256 * 1024;
    char *fstk = (char *)mmap(nullptr, fsz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    void *blocker = mmap(fstk + PT_D_VALUE, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    pt_stats a; pt_get_stats(&a);
    pthread_attr_t at2; pthread_attr_init(&at2); pthread_attr_setstack(&at2, fstk, fsz);
    pthread_t tf; void *rf; pthread_create(&tf, &at2, thr_rec, (void *)500L); pthread_join(tf, &rf);
    pt_stats b; pt_get_stats(&b);
    printf(" fallback (mirror blocked at %p): result %ld nohijack +%ld map_fail +%ld entries +%ld\n", blocker, (long)rf,
           b.nohijack - a.nohijack, b.map_fail - a.map_fail, b.entry - a.entry);
    CHECK((long)rf == 500 && b.nohijack - a.nohijack == 501 && b.entry == a.entry);
    balanced("stacks");
}

/* ------------------------------------------------------------ bench */
HOOKED int empty_fn(int x) { return x; }
static void bench(long n) { long s = 0; for (long i = 0; i < n; i++) { s += empty_fn((int)i); NOTAIL; } printf(" bench %ld\n", s); if (getenv("PT_STATS")) pt_print_stats("bench"); }

int main(int argc, char **argv) {
    H(thrower); H(thrower_mid); H(catcher); H(rethrower); H(via_unhooked_leaf);
    H(bt_leaf); H(bt3); H(bt2); H(bt1); H(cdeep); H(cthread); H(lj1); H(lj2); H(lj3); H(lj_g); H(lj_a);
    H(tc_a); H(tc_b); H(rec); H(sig_work); H(sig_outer); H(co_yield_fn); H(main_side);
    const char *what = argc > 1 ? argv[1] : "all";
    pt_verbose = getenv("PT_VERBOSE") != nullptr;
    if (!strcmp(what, "bench")) { if (!getenv("NOPATCH")) pt_patch((void *)&empty_fn); bench(argc > 2 ? atol(argv[2]) : 1000000); return 0; }
    if (!getenv("NOPATCH")) for (void *f : hooked) pt_patch(f);
    pt_verbose = getenv("PT_VERBOSE") != nullptr;
    if (!strcmp(what, "exc") || !strcmp(what, "all")) { printf("== exceptions\n"); test_exc(); }
    if (!strcmp(what, "bt") || !strcmp(what, "all")) { printf("== backtraces\n"); test_bt(); }
    if (!strcmp(what, "cancel") || !strcmp(what, "all")) { printf("== cancel/exit\n"); test_cancel(); }
    if (!strcmp(what, "longjmp") || !strcmp(what, "all")) { printf("== longjmp\n"); test_longjmp(); }
    if (!strcmp(what, "tail") || !strcmp(what, "all")) { printf("== tail calls\n"); test_tail(); }
    if (!strcmp(what, "stacks") || !strcmp(what, "all")) { printf("== stacks\n"); test_stacks(); }
    printf("RESULT %s: %d failures\n", what, fails);
    return fails != 0;
}
