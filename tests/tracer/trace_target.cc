// tests/tracer/trace_target.cc — the program test_record.py records with
// `padhook record`. Deterministic call sequences, one scenario per argument:
//
//   nest         nesting, recursion, a caught exception
//   threads      two threads with known call counts, named
//   fork         a child that calls its own functions, then exits 3
//   exec         exec's itself with `nest` (the image gets key <pid>.1)
//   kill         1000 calls, then SIGKILL from inside a traced function
//   exit N       exit(N) from a nested function
//   segv         a segmentation fault
//   dlopen LIB   dlopen()s the plugin, calls its function twice
//   dlopen_busy LIB  the same while another thread calls leaf() (so that
//                padhook stops it if the plugin's sites need converting:
//                GCC's NOP runs)
//   durations    short and long calls for --min-duration
//   wait         enters waiting() and sleeps until killed
//   many N       N calls of leaf() (for a trace that cannot grow: disk full)
//   daemon FILE  closes every descriptor above 2, opens FILE (taking the
//                lowest number), writes to it, then makes 100,000 calls and
//                exits with FILE still open
//   oracle       a pseudo-random call graph; prints its per-function call
//                counts (compiled in) for comparison with the trace
//
// Every traced function is noinline and does work after its callees return,
// so that no optimization level removes, merges or tail-calls them.
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#define TRACED extern "C" __attribute__((noinline))

namespace {
volatile unsigned long g_sink;
}

TRACED void leaf(int i) { g_sink = g_sink + static_cast<unsigned long>(i); }

TRACED void inner() {
  leaf(1);
  g_sink = g_sink + 1;
}

TRACED void middle() {
  inner();
  inner();
  g_sink = g_sink + 1;
}

TRACED void outer() {
  middle();
  g_sink = g_sink + 1;
}

TRACED int fact(int n) {
  const int r = n <= 1 ? 1 : n * fact(n - 1);
  g_sink = g_sink + 1;
  return r;
}

TRACED void thrower() {
  g_sink = g_sink + 1;
  throw std::runtime_error("thrown on purpose");
}

TRACED void pass_through() {
  thrower();
  g_sink = g_sink + 1;
}

TRACED void catcher() {
  try {
    pass_through();
  } catch (const std::exception&) {
    g_sink = g_sink + 2;
  }
  g_sink = g_sink + 1;
}

TRACED void scenario_nest() {
  outer();
  g_sink = g_sink + static_cast<unsigned long>(fact(4));
  catcher();
}

// ---- threads ----
TRACED void worker_call(int i) { g_sink = g_sink + static_cast<unsigned long>(i); }

TRACED void* worker(void* arg) {
  const long count = reinterpret_cast<long>(arg);
  pthread_setname_np(pthread_self(), count == 100 ? "worker-a" : "worker-b");
  for (long i = 0; i < count; ++i) worker_call(static_cast<int>(i));
  g_sink = g_sink + 1;
  return nullptr;
}

TRACED void scenario_threads() {
  pthread_t a, b;
  pthread_create(&a, nullptr, worker, reinterpret_cast<void*>(100L));
  pthread_join(a, nullptr);  // one after the other: deterministic per thread anyway
  pthread_create(&b, nullptr, worker, reinterpret_cast<void*>(250L));
  pthread_join(b, nullptr);
  g_sink = g_sink + 1;
}

// ---- fork ----
TRACED void child_work() {
  leaf(7);
  g_sink = g_sink + 1;
}

TRACED void parent_work() {
  leaf(8);
  g_sink = g_sink + 1;
}

TRACED int scenario_fork() {
  const pid_t child = fork();
  if (child == 0) {
    child_work();
    exit(3);
  }
  int status = 0;
  waitpid(child, &status, 0);
  parent_work();
  return WIFEXITED(status) ? WEXITSTATUS(status) : 100;
}

// ---- kill ----
TRACED void step(int i) { g_sink = g_sink + static_cast<unsigned long>(i); }

TRACED void before_kill() {
  g_sink = g_sink + 1;
  kill(getpid(), SIGKILL);
  g_sink = g_sink + 1;
}

TRACED void scenario_kill() {
  for (int i = 0; i < 1000; ++i) step(i);
  before_kill();
  g_sink = g_sink + 1;
}

// ---- exit / segv ----
TRACED void deep_exit(int status) {
  g_sink = g_sink + 1;
  exit(status);
}

TRACED void scenario_exit(int status) {
  deep_exit(status);
  g_sink = g_sink + 1;
}

TRACED void crash() {
  g_sink = g_sink + 1;
  raise(SIGSEGV);
  g_sink = g_sink + 1;
}

// ---- durations ----
TRACED void short_call() { g_sink = g_sink + 1; }

TRACED void long_call() {
  timespec pause = {0, 3'000'000};  // 3 ms
  nanosleep(&pause, nullptr);
  g_sink = g_sink + 1;
}

TRACED void parent_of_short() {
  short_call();
  g_sink = g_sink + 1;
}

TRACED void parent_of_long() {
  long_call();
  g_sink = g_sink + 1;
}

TRACED void scenario_durations() {
  short_call();
  parent_of_short();
  long_call();
  parent_of_long();
  g_sink = g_sink + 1;
}

// ---- oracle ----
unsigned g_calls[4];

TRACED void oracle_a(unsigned x);
TRACED void oracle_b(unsigned x);
TRACED void oracle_c(unsigned x);

TRACED void oracle_d(unsigned x) {
  ++g_calls[3];
  g_sink = g_sink + x;
}

TRACED void oracle_c(unsigned x) {
  ++g_calls[2];
  if (x % 3 == 0) oracle_d(x / 3);
  if (x % 5 == 1) oracle_d(x + 1);
  g_sink = g_sink + 1;
}

TRACED void oracle_b(unsigned x) {
  ++g_calls[1];
  for (unsigned i = 0; i < x % 4; ++i) oracle_c(x + i);
  g_sink = g_sink + 1;
}

TRACED void oracle_a(unsigned x) {
  ++g_calls[0];
  if (x > 1 && x % 7 != 0) oracle_a(x / 2);
  oracle_b(x * 13 + 1);
  g_sink = g_sink + 1;
}

TRACED void scenario_oracle() {
  unsigned seed = 12345;
  for (int i = 0; i < 2000; ++i) {
    seed = seed * 1103515245u + 12345u;
    oracle_a((seed >> 8) % 1000);
  }
  printf("oracle_a %u\noracle_b %u\noracle_c %u\noracle_d %u\n", g_calls[0], g_calls[1], g_calls[2],
         g_calls[3]);
}

// ---- dlopen while another thread runs traced code ----
// Atomics, not volatile: under -fsanitize=undefined GCC 12 loaded a volatile
// bool once before the loop (its range check) and spun forever.
std::atomic<bool> g_busy_stop{false};
std::atomic<bool> g_busy_started{false};

TRACED void* busy_worker(void*) {
  g_busy_started = true;
  while (!g_busy_stop) leaf(1);
  return nullptr;
}

int call_plugin(const char* path) {
  void* library = dlopen(path, RTLD_NOW);
  if (library == nullptr) {
    fprintf(stderr, "dlopen: %s\n", dlerror());
    return 1;
  }
  auto function = reinterpret_cast<int (*)(int)>(dlsym(library, "plugin_function"));
  if (function == nullptr) return 1;
  g_sink = g_sink + static_cast<unsigned long>(function(2) + function(3));
  return 0;
}

int scenario_dlopen_busy(const char* path) {
  pthread_t busy;
  pthread_create(&busy, nullptr, busy_worker, nullptr);
  while (!g_busy_started) sched_yield();
  const int status = call_plugin(path);
  g_busy_stop = true;
  pthread_join(busy, nullptr);
  return status;
}

TRACED void scenario_many(long n) {
  for (long i = 0; i < n; ++i) leaf(1);
  g_sink = g_sink + 1;
}

TRACED void scenario_daemon(const char* path) {
  for (int fd = 3; fd < 1024; ++fd) close(fd);
  const int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0 || write(fd, "precious\n", 9) != 9) exit(1);
  for (long i = 0; i < 100000; ++i) leaf(1);
  g_sink = g_sink + static_cast<unsigned long>(fd);
}

TRACED void waiting() {
  for (;;) pause();
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s SCENARIO [ARG]\n", argv[0]);
    return 2;
  }
  const std::string scenario = argv[1];
  if (scenario == "nest") {
    scenario_nest();
  } else if (scenario == "threads") {
    scenario_threads();
  } else if (scenario == "fork") {
    return scenario_fork();
  } else if (scenario == "exec") {
    leaf(5);
    execl("/proc/self/exe", argv[0], "nest", static_cast<char*>(nullptr));
    perror("execl");
    return 1;
  } else if (scenario == "kill") {
    scenario_kill();
  } else if (scenario == "exit" && argc > 2) {
    scenario_exit(atoi(argv[2]));
  } else if (scenario == "segv") {
    crash();
  } else if (scenario == "dlopen" && argc > 2) {
    return call_plugin(argv[2]);
  } else if (scenario == "dlopen_busy" && argc > 2) {
    return scenario_dlopen_busy(argv[2]);
  } else if (scenario == "durations") {
    scenario_durations();
  } else if (scenario == "many" && argc > 2) {
    scenario_many(atol(argv[2]));
  } else if (scenario == "daemon" && argc > 2) {
    scenario_daemon(argv[2]);
  } else if (scenario == "wait") {
    waiting();
  } else if (scenario == "oracle") {
    scenario_oracle();
  } else {
    fprintf(stderr, "%s: unknown scenario %s\n", argv[0], argv[1]);
    return 2;
  }
  return 0;
}
