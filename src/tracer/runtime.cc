// src/tracer/runtime.cc — libpadhook-trace.so: the recording runtime that
// `padhook record` preloads (LD_PRELOAD) into the traced program.
//
// Environment (set by `padhook record`; usable by hand too):
//   PADHOOK_TRACE_DIR           the trace directory (must exist). Unset: the
//                               library stays inert (and says so on stderr).
//   PADHOOK_TRACE_FILTER        ';'-separated shell globs (-F): only functions
//                               matching one are patched. Unset/empty: all.
//   PADHOOK_TRACE_EXCLUDE       ';'-separated shell globs (-N): functions
//                               matching one are not patched.
//                               A glob matches the demangled name ("ns::f(int)"),
//                               the same without its parameter list ("ns::f"),
//                               or the mangled name.
//   PADHOOK_TRACE_DEPTH         record calls nested at most N deep per thread
//                               (all calls are still patched; deeper ones are
//                               not written). Unset/0: no limit.
//   PADHOOK_TRACE_MIN_DURATION  drop calls shorter than this, in ns (a plain
//                               number) or with a unit: 10us, 2ms, 1s. Only
//                               calls with no recorded child are dropped.
//   PADHOOK_TRACE_CLOCK_START   "<ticks>,<ns>": a (TSC, CLOCK_MONOTONIC)
//                               sample the launcher took before it started
//                               the program: the first sample of the clock
//                               calibration's window (src/hooks/clock.h), so
//                               that the program's loading fills the window.
//                               Unset, malformed or implausible: the runtime
//                               calibrates on its own (~1 ms).
//   PADHOOK_TRACE_QUIET         1: no notes on stderr (errors still print).
//   PADHOOK_TRACE_VERBOSE       1: start-up and attach timings on stderr.
//   PADHOOK_TRACE_SAVE_VECTORS  1: attach without PADHOOK_HOOKS_NO_VECTOR, so
//                               the trampoline saves xmm0-7 on entry (only to
//                               measure what the promise saves: bench/tracer).
//   PADHOOK_TRACE_FAULT         kind:nth, a testing aid (tests/tracer/
//                               test_record_faults.py): the nth call of that
//                               kind made by the runtime or by padhook from
//                               start-up on fails on purpose (src/fault/fault.h:
//                               mmap, mprotect, open, pwrite, membarrier,
//                               sigaction, tgkill; ftruncate: growing a thread's
//                               file; alloc: an allocation of the start-up, on
//                               the main thread). At exit the runtime says on
//                               stderr how many calls of the kind it saw and
//                               whether one failed.
//
// What it writes: docs/trace-format.md (`<key>.process.json`,
// `<key>.functions`, `<key>-<tid>.events`).
//
// Life cycle
//   Constructor: claim a key (O_EXCL create of <key>.process.json: <pid>,
//     else <pid>.1, .2, ... for the images a process exec'ed: exec_of names
//     the previous one), take padhook's function table, select the functions
//     (filters decide what is patched at all), attach them in ONE batch with
//     entry and exit handlers, append their M/F lines to <key>.functions,
//     then open the batch's gate (below).
//   dlopen/dlmopen (interposed): refresh the table, attach the functions of
//     the new modules in one batch, append their lines, open the gate.
//   fork (pthread_atfork): the child gets a new key <pid>, its own
//     process.json (ppid), a copy of the parent's function lines and fresh
//     event files; the parent's mappings are unmapped in the child.
//   Thread exit (pthread key destructor): the thread's file is truncated to
//     its data and flagged closed.
//   Process end (exit or return from main): an on_exit handler, which runs
//     after the program's static destructors, atexit handlers and library
//     destructors (all traced), closes the exiting thread's file and
//     rewrites process.json with ended: true, the status and the counts.
//     Threads still running keep their files open (not closed: they may be
//     writing). _exit and fatal signals leave ended: false.
//
// Gates: padhook assigns a function its id (metadata index) when it attaches
// it, so the F lines can only be written after the attach, while other
// threads may already call the new functions. Each batch's handlers get a
// gate byte as user data; events of a batch whose lines are not in the file
// yet are dropped and counted (header events_lost plus a `lost` word), so
// that no event refers to an undefined id even in a killed process.
//
// Shared state (all in g_state, never destroyed: handlers and other threads
// may run while static destructors do):
//   functions_mutex  serializes attaching and appending lines (constructor,
//                    dlopen, fork); held across fork by the atfork handlers.
//   registry_mutex   guards the list of thread buffers (thread start/end,
//                    fork child, process end).
//   gates            written (1, release) by the attaching thread after the
//                    lines are written; read (relaxed) by handlers.
//   dropped_elsewhere  events dropped on threads with no open file
//                    (closed, could not be created): atomic counter.
#include <dlfcn.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <link.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "fault/fault.h"
#include "hooks/clock.h"
#include "padhook/function_table.h"
#include "padhook/hooks.h"
#include "padhook/padhook.h"
#include "tracer/duration.h"
#include "tracer/thread_buffer.h"
#include "tracer/trace_format.h"

// Allocation faults (PADHOOK_TRACE_FAULT=alloc:N) for the runtime's own
// allocations: the library's operator new, not exported (runtime.map; the
// library is linked -Bsymbolic), so the program's allocations never come here. It
// asks fault::FailAlloc (one relaxed load when not armed), then malloc.
// Not in sanitizer builds: their operator delete (which frees what inline
// library code of the runtime allocated here) would report a mismatch with
// malloc; PADHOOK_TRACE_FAULT=alloc then injects nothing.
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
namespace {
void* TraceAllocate(std::size_t n) {
  if (padhook::fault::FailAlloc()) throw std::bad_alloc();
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
}  // namespace
void* operator new(std::size_t n) { return TraceAllocate(n); }
void* operator new[](std::size_t n) { return TraceAllocate(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
#endif

namespace padhook::tracer {
namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kFirstWindow = 64 * 1024;      // a thread's first window
constexpr uint64_t kMaxWindow = 4 * 1024 * 1024;  // windows double up to this
constexpr uint64_t kRetryAfterDrops = 1024;       // drops between attempts to grow

struct State {
  bool active = false;
  bool quiet = false;
  bool verbose = false;       // PADHOOK_TRACE_VERBOSE=1: start-up and attach timings on stderr
  bool save_vectors = false;  // PADHOOK_TRACE_SAVE_VECTORS=1 (benchmarks): no NO_VECTOR promise
  std::string dir;
  std::string key;
  std::string exec_of;  // "" = null
  pid_t pid = 0;
  pid_t ppid = 0;
  uint64_t start_ns = 0;
  std::string program;
  std::vector<std::string> argv;
  std::vector<std::string> includes, excludes;
  std::string own_paths[2];  // libpadhook and this library: never attached

  std::mutex functions_mutex;
  std::string lines;  // every M/F line written so far (copied into a fork child's file)
  std::map<const Module*, unsigned> module_ids;
  std::map<std::pair<std::string, uintptr_t>, bool> modules_seen;  // (path, bias) considered
  size_t functions_patched = 0;
  std::vector<Attachment> attachments;  // never detached

  std::mutex registry_mutex;
  ThreadBuffer* threads = nullptr;  // registry list head
  pthread_key_t thread_key{};

  std::atomic<uint64_t> dropped_elsewhere{0};
  uint64_t lost_of_ended_threads = 0;  // events_lost of closed files, under registry_mutex

  bool exit_seen = false;  // FinishProcess ran (written by the exiting thread)
  int exit_status = 0;
};

State* g_state = nullptr;  // leaked on purpose

uint64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

pid_t Gettid() { return static_cast<pid_t>(syscall(SYS_gettid)); }

void Note(bool error, const char* format, ...) __attribute__((format(printf, 2, 3)));
void Note(bool error, const char* format, ...) {
  if (!error && g_state != nullptr && g_state->quiet) return;
  char message[1024];
  va_list args;
  va_start(args, format);
  vsnprintf(message, sizeof message, format, args);
  va_end(args);
  dprintf(STDERR_FILENO, "padhook-trace: %s\n", message);
}

// ---- Small file helpers -------------------------------------------------------

bool WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

std::string JsonString(const std::string& text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (c < 0x20) {
          char escaped[8];
          snprintf(escaped, sizeof escaped, "\\u%04x", c);
          out += escaped;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

std::string ProcessJson(const State& s, bool ended, uint64_t events_lost, uint64_t exits_lost) {
  std::string json = "{\"version\": 1, \"key\": " + JsonString(s.key) +
                     ", \"pid\": " + std::to_string(s.pid) +
                     ", \"ppid\": " + std::to_string(s.ppid) +
                     ", \"exec_of\": " + (s.exec_of.empty() ? "null" : JsonString(s.exec_of)) +
                     ",\n \"program\": " + JsonString(s.program) + ", \"argv\": [";
  for (size_t i = 0; i < s.argv.size(); ++i) json += (i ? ", " : "") + JsonString(s.argv[i]);
  json += "],\n \"start_ns\": " + std::to_string(s.start_ns) + ", \"clock\": \"CLOCK_MONOTONIC\"";
  json += ",\n \"ended\": " + std::string(ended ? "true" : "false") +
          ", \"exit_status\": " + (ended ? std::to_string(s.exit_status) : "null");
  json += ",\n \"functions_patched\": " + std::to_string(s.functions_patched) +
          ", \"events_lost\": " + std::to_string(events_lost) +
          ", \"exits_lost\": " + std::to_string(exits_lost) + "}\n";
  return json;
}

// Files are opened by path whenever needed and closed at once, never kept
// open: programs that close every descriptor (daemons) or reuse their
// numbers must neither break the trace nor have their own files truncated.
std::string InDir(const State& s, const std::string& name) { return s.dir + "/" + name; }

// Claims a key: O_EXCL-creates <key>.process.json for <pid>, else <pid>.1,
// <pid>.2, ...: an existing file set for this pid is the image this process
// exec'ed from (the previous key). Returns the open descriptor or -1.
int ClaimKey(State& s) {
  for (unsigned n = 0; n < 1000; ++n) {
    std::string key = std::to_string(s.pid);
    if (n > 0) key += "." + std::to_string(n);
    const std::string name = key + ".process.json";
    const int fd =
        fault::Fail(fault::Kind::kOpen)
            ? (errno = EMFILE, -1)
            : open(InDir(s, name).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) {
      s.key = key;
      return fd;
    }
    if (errno != EEXIST) {
      Note(true, "cannot create %s/%s: %s", s.dir.c_str(), name.c_str(), strerror(errno));
      return -1;
    }
    s.exec_of = key;  // the image this one replaced, if the next name is free
  }
  Note(true, "too many images of pid %d in %s", static_cast<int>(s.pid), s.dir.c_str());
  return -1;
}

bool WriteProcessJsonNew(State& s) {
  const int fd = ClaimKey(s);
  if (fd < 0) return false;
  const std::string json = ProcessJson(s, false, 0, 0);
  const bool ok = WriteAll(fd, json.data(), json.size());
  close(fd);
  return ok;
}

// Rewrites <key>.process.json: a temporary file, then rename.
void RewriteProcessJson(const State& s, bool ended, uint64_t events_lost) {
  const std::string name = s.key + ".process.json";
  const std::string temporary = name + ".tmp";
  const int fd = open(InDir(s, temporary).c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    Note(true, "cannot write %s/%s: %s", s.dir.c_str(), temporary.c_str(), strerror(errno));
    return;
  }
  const std::string json = ProcessJson(s, ended, events_lost, padhook_exits_lost());
  const bool ok = WriteAll(fd, json.data(), json.size());
  close(fd);
  if (!ok || rename(InDir(s, temporary).c_str(), InDir(s, name).c_str()) != 0) {
    Note(true, "cannot update %s/%s: %s", s.dir.c_str(), name.c_str(), strerror(errno));
  }
}

bool AppendFunctionLines(const State& s, const std::string& text) {
  if (text.empty()) return true;
  const std::string name = s.key + ".functions";
  const int fd = open(InDir(s, name).c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    Note(true, "cannot open %s/%s: %s", s.dir.c_str(), name.c_str(), strerror(errno));
    return false;
  }
  const bool ok = WriteAll(fd, text.data(), text.size());  // one write per batch
  close(fd);
  if (!ok) Note(true, "cannot write %s/%s: %s", s.dir.c_str(), name.c_str(), strerror(errno));
  return ok;
}

std::vector<std::string> ReadCmdline() {
  std::vector<std::string> argv;
  const int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return argv;
  std::string data;
  char buffer[4096];
  for (ssize_t n; (n = read(fd, buffer, sizeof buffer)) > 0;)
    data.append(buffer, static_cast<size_t>(n));
  close(fd);
  size_t begin = 0;
  while (begin < data.size()) {
    const size_t end = data.find('\0', begin);
    argv.push_back(data.substr(begin, end == std::string::npos ? std::string::npos : end - begin));
    if (end == std::string::npos) break;
    begin = end + 1;
  }
  return argv;
}

std::vector<std::string> SplitGlobs(const char* value) {
  std::vector<std::string> globs;
  if (value == nullptr) return globs;
  std::string text = value;
  size_t begin = 0;
  while (begin <= text.size()) {
    size_t end = text.find(';', begin);
    if (end == std::string::npos) end = text.size();
    if (end > begin) globs.push_back(text.substr(begin, end - begin));
    begin = end + 1;
  }
  return globs;
}

// ---- Function selection -------------------------------------------------------

// The demangled name without its parameter list and trailing qualifiers:
// "ns::f(int) const" -> "ns::f", "S::operator()(int)" -> "S::operator()".
std::string WithoutParameters(const std::string& name) {
  const size_t close = name.rfind(')');
  if (close == std::string::npos) return name;
  int level = 0;
  for (size_t i = close + 1; i-- > 0;) {
    if (name[i] == ')') ++level;
    if (name[i] == '(' && --level == 0) return i == 0 ? name : name.substr(0, i);
  }
  return name;
}

bool Matches(const std::vector<std::string>& globs, const Function& f, const std::string& base) {
  for (const std::string& glob : globs) {
    if (fnmatch(glob.c_str(), f.name.c_str(), 0) == 0 ||
        fnmatch(glob.c_str(), base.c_str(), 0) == 0 ||
        (!f.mangled.empty() && fnmatch(glob.c_str(), f.mangled.c_str(), 0) == 0)) {
      return true;
    }
  }
  return false;
}

bool NameSelected(const State& s, const Function& f) {
  if (s.includes.empty() && s.excludes.empty()) return true;
  const std::string base = WithoutParameters(f.name);
  if (!s.includes.empty() && !Matches(s.includes, f, base)) return false;
  return !Matches(s.excludes, f, base);
}

// An instrumented function whose entry or padding holds bytes that neither the
// compiler nor padhook wrote: another tool patched it (a uprobe, a debugger's
// breakpoint, a hot patch). padhook never writes over them.
bool ChangedByAnotherTool(const Function& f) {
  return f.site.kind == SiteKind::kUnexpected || f.site.slot == SlotState::kUnexpected;
}

// "a, b, c and 4 more"
std::string SomeNames(const std::vector<const Function*>& functions) {
  constexpr size_t kShown = 5;
  std::string text;
  for (size_t i = 0; i < functions.size() && i < kShown; ++i) {
    if (i > 0) text += ", ";
    text += functions[i]->name;
  }
  if (functions.size() > kShown) text += " and " + std::to_string(functions.size() - kShown) + " more";
  return text;
}

std::string Hex(uint64_t value) {
  char buffer[24];
  snprintf(buffer, sizeof buffer, "%llx", static_cast<unsigned long long>(value));
  return buffer;
}

std::string LineSafe(std::string text) {
  for (char& c : text) {
    if (c == '\t' || c == '\n' || c == '\r') c = ' ';
  }
  return text;
}

// LeakSanitizer (sanitizer builds): what an attachment allocates hangs off
// padhook's metadata table, memory LSan does not scan, and the runtime never
// detaches: allocations made while attaching are not leaks. Weak: null
// without the sanitizer runtime.
extern "C" void __lsan_disable() __attribute__((weak));
extern "C" void __lsan_enable() __attribute__((weak));

struct LeakCheckPause {
  LeakCheckPause() {
    if (__lsan_disable != nullptr) __lsan_disable();
  }
  ~LeakCheckPause() {
    if (__lsan_enable != nullptr) __lsan_enable();
  }
  LeakCheckPause(const LeakCheckPause&) = delete;
  LeakCheckPause& operator=(const LeakCheckPause&) = delete;
};

// Attaches the functions of the modules not considered yet, in one batch,
// then appends their lines and opens the batch's gate. Caller holds
// functions_mutex.
void AttachNewModulesLockedOrThrow(State& s);
void AttachNewModulesLocked(State& s) {
  // An allocation that fails leaves what was attached so far attached (each
  // batch all or nothing); functions whose lines were not written keep their
  // gate closed: their events are counted as lost, never undefined.
  try {
    AttachNewModulesLockedOrThrow(s);
  } catch (const std::bad_alloc&) {
    Note(true,
         "out of memory while attaching the new modules' functions: those not attached are not "
         "traced; events of any attached whose names were not written are dropped (the "
         "summary's lost count)");
  }
}

void AttachNewModulesLockedOrThrow(State& s) {
  const LeakCheckPause pause;
  const uint64_t t0 = MonotonicNs();
  FunctionTable& table = FunctionTable::Process();
  if (Status status = table.Refresh(); !status.ok()) {
    Note(true, "cannot read the loaded modules: %s", status.message().c_str());
    return;
  }
  std::shared_ptr<const FunctionTable::Snapshot> snapshot = table.snapshot();
  const uint64_t t1 = MonotonicNs();
  std::vector<const Function*> functions;
  std::vector<const Function*> changed;  // selected by name, but patched by another tool
  std::vector<const Module*> modules;    // modules with selected functions, in order
  for (const std::shared_ptr<const Module>& module : snapshot->modules()) {
    auto key = std::make_pair(module->path, module->bias);
    if (s.modules_seen.count(key)) continue;
    s.modules_seen[key] = true;
    if (module->path == s.own_paths[0] || module->path == s.own_paths[1]) continue;
    const size_t before = functions.size();
    for (const Function& f : module->functions) {
      if (!NameSelected(s, f)) continue;
      if (f.site.usable()) {
        functions.push_back(&f);
      } else if (ChangedByAnotherTool(f)) {
        changed.push_back(&f);
      }
    }
    if (functions.size() > before) modules.push_back(module.get());
  }
  if (!changed.empty()) {
    Note(true,
         "not tracing %zu function%s whose code another tool changed (a uprobe, a debugger's "
         "breakpoint, a live patch; `padhook list` shows the bytes): %s",
         changed.size(), changed.size() == 1 ? "" : "s", SomeNames(changed).c_str());
  }
  if (functions.empty()) {
    if (s.verbose) {
      Note(true, "function table %.3f ms (%zu modules), nothing to attach", (t1 - t0) / 1e6,
           snapshot->modules().size());
    }
    return;
  }

  // The gate: one byte per batch, never freed (handlers keep reading it).
  auto* gate = new uint8_t(0);
  Hooks hooks;
  hooks.on_entry = EntryHandler();
  hooks.on_exit = ExitHandler();
  hooks.user_data = gate;
  // Handlers use general registers only (handlers.cc), and take the entry
  // time from the thread's last event, not from padhook.
  hooks.flags = PADHOOK_HOOKS_NO_ENTRY_TIME | (s.save_vectors ? 0 : PADHOOK_HOOKS_NO_VECTOR);

  std::vector<const Function*> attached;
  const uint64_t t2 = MonotonicNs();
  Result<Attachment> attachment = AttachFunctions(functions, hooks, snapshot);
  if (attachment.ok()) {
    attached = functions;
    s.attachments.push_back(std::move(*attachment));
  } else {
    // All or nothing: retry module by module, so that one module whose
    // code is not as compiled does not cost the others.
    Note(true, "attaching %zu functions failed (%s); retrying module by module", functions.size(),
         attachment.status().message().c_str());
    size_t begin = 0;
    while (begin < functions.size()) {
      size_t end = begin;
      while (end < functions.size() && functions[end]->module == functions[begin]->module) ++end;
      std::span<const Function* const> part(functions.data() + begin, end - begin);
      Result<Attachment> one = AttachFunctions(part, hooks, snapshot);
      if (one.ok()) {
        attached.insert(attached.end(), part.begin(), part.end());
        s.attachments.push_back(std::move(*one));
      } else {
        Note(true, "not tracing %s: %s", functions[begin]->module->path.c_str(),
             one.status().message().c_str());
      }
      begin = end;
    }
  }

  std::string text;
  const Module* last = nullptr;
  for (const Function* f : attached) {
    if (f->module != last) {
      last = f->module;
      if (!s.module_ids.count(last)) {
        const unsigned id = static_cast<unsigned>(s.module_ids.size());
        s.module_ids[last] = id;
        text += "M\t" + std::to_string(id) + "\t" + Hex(last->bias) + "\t" + LineSafe(last->path) +
                "\n";
      }
    }
    const int64_t index = padhook_function_index(reinterpret_cast<const void*>(f->entry));
    if (index < 0) continue;  // cannot happen while attached
    text += "F\t" + std::to_string(index) + "\t" + std::to_string(s.module_ids[last]) + "\t" +
            Hex(f->file_address()) + "\t" + std::to_string(f->size) + "\t" + LineSafe(f->name) +
            "\n";
  }
  const uint64_t t3 = MonotonicNs();
  s.functions_patched += attached.size();
  AppendFunctionLines(s, text);
  s.lines += text;
  __atomic_store_n(gate, 1, __ATOMIC_RELEASE);
  if (s.verbose) {
    Note(true,
         "function table %.3f ms (%zu modules), selection %.3f ms, attach %.3f ms (%zu functions), "
         "lines %.3f ms",
         (t1 - t0) / 1e6, snapshot->modules().size(), (t2 - t1) / 1e6, (t3 - t2) / 1e6,
         attached.size(), (MonotonicNs() - t3) / 1e6);
  }
}

// ---- Thread files --------------------------------------------------------------

uint64_t* DataStart(ThreadBuffer* t) {
  return t->window + (t->window_offset == 0 ? trace::kHeaderSize / 8 : 0);
}

uint64_t FileOffsetOf(const ThreadBuffer* t, const uint64_t* p) {
  return t->window_offset + static_cast<uint64_t>(p - t->window) * 8;
}

// Maps a window of at least `bytes` bytes starting at the page holding file
// offset `from`, after making sure the file has the blocks (fallocate, so a
// full disk fails here and not as SIGBUS on a store). Leaves `t` unchanged
// on failure.
bool MapWindow(ThreadBuffer* t, int fd, uint64_t from, uint64_t bytes) {
  if (fd < 0) return false;
  const uint64_t offset = from & ~(kPage - 1);
  bytes = (bytes + (from - offset) + kPage - 1) & ~(kPage - 1);
  if (fault::Fail(fault::Kind::kFtruncate)) return errno = ENOSPC, false;
  if (fallocate(fd, 0, static_cast<off_t>(offset), static_cast<off_t>(bytes)) != 0) {
    if (errno != EOPNOTSUPP) return false;
    // No fallocate on this file system: extend the file sparsely.
    struct stat st;
    if (fstat(fd, &st) != 0) return false;
    if (static_cast<uint64_t>(st.st_size) < offset + bytes &&
        ftruncate(fd, static_cast<off_t>(offset + bytes)) != 0) {
      return false;
    }
  }
  void* window = fault::Fail(fault::Kind::kMmap)
                     ? (errno = ENOMEM, MAP_FAILED)
                     : mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                            static_cast<off_t>(offset));
  if (window == MAP_FAILED) return false;
  uint64_t* const old_window = t->window;
  const uint64_t old_bytes = t->window_bytes;
  const uint64_t pos_offset = t->pos != nullptr ? FileOffsetOf(t, t->pos) : from;
  t->window = static_cast<uint64_t*>(window);
  t->window_offset = offset;
  t->window_bytes = bytes;
  t->pos = t->window + (pos_offset - offset) / 8;
  t->start = DataStart(t);
  t->end = t->window + bytes / 8 - 1;  // one word kept for a `lost` marker
  t->lost_word = nullptr;              // a pointer into the old window
  if (old_window != nullptr) munmap(old_window, old_bytes);
  return true;
}

std::string EventsPath(const ThreadBuffer* t) {
  return InDir(*g_state, g_state->key + "-" + std::to_string(t->tid) + ".events");
}

// MapWindow with the thread's file opened for the occasion. No allocation:
// a window may fill up inside a signal handler (the path was kept at open).
bool RemapWindow(ThreadBuffer* t, uint64_t from, uint64_t bytes) {
  if (t->path == nullptr) return false;
  const int fd = open(t->path, O_RDWR | O_CLOEXEC);
  const bool ok = MapWindow(t, fd, from, bytes);
  if (fd >= 0) close(fd);
  return ok;
}

void AddLost(ThreadBuffer* t, uint64_t count) {
  __atomic_store_n(&t->header->events_lost, t->header->events_lost + count, __ATOMIC_RELAXED);
}

// Starts dropping: the `lost` marker goes at pos (there is always a word
// left: end is one short of the window).
void StartDropping(ThreadBuffer* t) {
  t->lost_word = t->pos;
  *t->lost_word = trace::SpecialWord(trace::kSpecialLost, 1);
  t->pos = t->end = t->lost_word + 1;
  t->state = kDropping;
  t->drops_until_retry = kRetryAfterDrops;
  AddLost(t, 1);
}

void Register(ThreadBuffer* t) {
  std::lock_guard lock(g_state->registry_mutex);
  t->prev = nullptr;
  t->next = g_state->threads;
  if (t->next != nullptr) t->next->prev = t;
  g_state->threads = t;
}

void Unregister(ThreadBuffer* t) {
  std::lock_guard lock(g_state->registry_mutex);
  if (t->prev != nullptr) {
    t->prev->next = t->next;
  } else if (g_state->threads == t) {
    g_state->threads = t->next;
  }
  if (t->next != nullptr) t->next->prev = t->prev;
  t->next = t->prev = nullptr;
  g_state->lost_of_ended_threads += t->header->events_lost;
}

bool OpenThreadFile(ThreadBuffer* t, uint64_t now) {
  State& s = *g_state;
  t->tid = static_cast<uint32_t>(Gettid());
  // Called from a handler: nothing may be thrown through the trampoline.
  std::string path;
  try {
    path = EventsPath(t);
  } catch (const std::bad_alloc&) {
    Note(true,
         "out of memory opening the events file of thread %u (its events are counted as lost)",
         t->tid);
    return false;
  }
  const int fd = fault::Fail(fault::Kind::kOpen)
                     ? (errno = EMFILE, -1)
                     : open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    Note(true, "cannot create %s: %s (this thread's events are counted as lost)", path.c_str(),
         strerror(errno));
    return false;
  }
  t->window = nullptr;
  t->pos = nullptr;
  void* header = MAP_FAILED;
  if (MapWindow(t, fd, trace::kHeaderSize, kFirstWindow)) {
    header = fault::Fail(fault::Kind::kMmap)
                 ? (errno = ENOMEM, MAP_FAILED)
                 : mmap(nullptr, kPage, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (header == MAP_FAILED) munmap(t->window, t->window_bytes);
  }
  close(fd);
  if (header == MAP_FAILED) {
    const int err = errno;
    // The file has no header: readers would reject it (and with it the
    // whole trace, for `padhook info`). Its events are counted elsewhere.
    unlink(path.c_str());
    Note(true, "cannot map %s: %s (this thread's events are counted as lost)", path.c_str(),
         strerror(err));
    t->window = nullptr;
    t->pos = t->end = t->start = nullptr;
    return false;
  }
  t->header = static_cast<trace::EventHeader*>(header);
  t->path = strdup(path.c_str());  // freed when the file is closed
  trace::EventHeader& h = *t->header;
  memcpy(h.magic, trace::kEventMagic, 8);
  h.version = trace::kEventVersion;
  h.header_size = trace::kHeaderSize;
  h.pid = static_cast<uint32_t>(s.pid);
  h.tid = t->tid;
  h.base_ns = now;
  h.events_lost = 0;
  h.flags = 0;
  char thread_name[16] = {};
  pthread_getname_np(pthread_self(), thread_name, sizeof thread_name);
  memcpy(h.thread_name, thread_name, sizeof thread_name);
  t->prev_ns = now;
  t->lost_word = nullptr;
  t->state = kOpen;
  Register(t);
  pthread_setspecific(s.thread_key, t);  // FinishThread at thread exit
  return true;
}

// Truncates the file to its data, flags it closed, unmaps it. Only by the
// owning thread (thread exit, process end).
void CloseThreadFile(ThreadBuffer* t) {
  if (t->state != kOpen && t->state != kDropping) {
    t->state = kClosed;
    return;
  }
  Unregister(t);
  const uint64_t data_end = FileOffsetOf(t, t->pos);
  if (t->path == nullptr || truncate(t->path, static_cast<off_t>(data_end)) != 0) {
    Note(true, "cannot truncate the events file of thread %u: %s", t->tid, strerror(errno));
  }
  char thread_name[16] = {};
  if (pthread_getname_np(pthread_self(), thread_name, sizeof thread_name) == 0) {
    memcpy(t->header->thread_name, thread_name, sizeof thread_name);
  }
  __atomic_store_n(&t->header->flags, t->header->flags | trace::kFlagClosed, __ATOMIC_RELEASE);
  munmap(t->window, t->window_bytes);
  munmap(t->header, kPage);
  free(t->path);
  t->path = nullptr;
  t->window = nullptr;
  t->header = nullptr;
  t->pos = t->end = t->start = nullptr;
  t->state = kClosed;
}

void FinishThread(void* buffer) { CloseThreadFile(static_cast<ThreadBuffer*>(buffer)); }

}  // namespace

bool MakeRoom(ThreadBuffer* t, uint64_t now, uint64_t words) {
  switch (t->state) {
    case kNoFile:
      if (g_state == nullptr || !g_state->active || !OpenThreadFile(t, now)) {
        t->state = kClosed;
        if (g_state != nullptr) g_state->dropped_elsewhere.fetch_add(1, std::memory_order_relaxed);
        return false;
      }
      return true;
    case kOpen: {
      const uint64_t next = std::min(t->window_bytes * 2, kMaxWindow);
      if (RemapWindow(t, FileOffsetOf(t, t->pos), std::max(next, (words + 1) * 8))) return true;
      // Once per run of drops (the slow path: no allocation, one write).
      Note(true,
           "thread %u: cannot grow its events file (%s): its events are dropped and counted as "
           "lost until a retry succeeds",
           t->tid, strerror(errno));
      StartDropping(t);
      return false;
    }
    case kDropping:
      if (--t->drops_until_retry == 0) {
        // Retry: a new window right after the `lost` marker.
        uint64_t* const lost = t->lost_word;
        t->pos = lost + 1;
        if (RemapWindow(t, FileOffsetOf(t, t->pos), std::max(kMaxWindow, (words + 1) * 8))) {
          t->state = kOpen;
          t->lost_word = nullptr;
          return true;
        }
        t->pos = t->end = lost + 1;
        t->drops_until_retry = kRetryAfterDrops;
      }
      *t->lost_word += uint64_t{1} << trace::kDeltaShift;
      AddLost(t, 1);
      return false;
    default:
      if (g_state != nullptr) g_state->dropped_elsewhere.fetch_add(1, std::memory_order_relaxed);
      return false;
  }
}

void CountGated(ThreadBuffer* t) {
  if (t->state == kOpen && t->pos < t->end) {
    // One `lost` word per run of gated events: the marker written last, if
    // nothing was written after it, counts one more.
    uint64_t* p = t->pos;
    if (t->lost_word != nullptr && t->lost_word == p - 1) {
      *t->lost_word += uint64_t{1} << trace::kDeltaShift;
    } else {
      *p = trace::SpecialWord(trace::kSpecialLost, 1);
      t->lost_word = p;
      t->pos = p + 1;
    }
    AddLost(t, 1);
    return;
  }
  if (t->state == kDropping) {
    *t->lost_word += uint64_t{1} << trace::kDeltaShift;
    AddLost(t, 1);
    return;
  }
  if (g_state != nullptr) g_state->dropped_elsewhere.fetch_add(1, std::memory_order_relaxed);
}

namespace {

// ---- fork ------------------------------------------------------------------------

void BeforeFork() {
  if (g_state == nullptr || !g_state->active) return;
  g_state->functions_mutex.lock();
  g_state->registry_mutex.lock();
}

void AfterForkParent() {
  if (g_state == nullptr || !g_state->active) return;
  g_state->registry_mutex.unlock();
  g_state->functions_mutex.unlock();
}

void AfterForkChild() {
  if (g_state == nullptr || !g_state->active) return;
  State& s = *g_state;
  // The child is single-threaded: the parent's buffers (this thread's and
  // the copies of the others') are the parent's files; unmap them here so
  // that nothing in the child writes them. The depth stays: the calls open
  // on this thread are still open in the child.
  for (ThreadBuffer* t = s.threads; t != nullptr;) {
    ThreadBuffer* next = t->next;
    if (t->window != nullptr) munmap(t->window, t->window_bytes);
    if (t->header != nullptr) munmap(t->header, kPage);
    t->window = nullptr;
    t->header = nullptr;
    free(t->path);  // the parent's file: not this process's
    t->path = nullptr;
    t->next = t->prev = nullptr;
    t = next;
  }
  s.threads = nullptr;
  s.lost_of_ended_threads = 0;
  s.dropped_elsewhere.store(0, std::memory_order_relaxed);
  ThreadBuffer& self = t_buffer;
  self.pos = self.end = self.start = nullptr;
  self.lost_word = nullptr;
  self.state = kNoFile;
  pthread_setspecific(s.thread_key, nullptr);
  // Mutexes held by BeforeFork: fresh ones in the child.
  new (&s.registry_mutex) std::mutex();
  new (&s.functions_mutex) std::mutex();

  s.ppid = s.pid;
  s.pid = getpid();
  s.exec_of.clear();
  s.start_ns = MonotonicNs();
  if (!WriteProcessJsonNew(s)) {
    s.active = false;  // events of this process are dropped (counted nowhere else)
    return;
  }
  s.exec_of.clear();  // a fork child replaces no image
  RewriteProcessJson(s, false, 0);
  AppendFunctionLines(s, s.lines);
}

// ---- Process end -------------------------------------------------------------------

// The on_exit handler, registered by the constructor. Libraries' constructors
// run before __libc_start_main registers the loader's destructor pass
// (_dl_fini), so this handler runs last of all at exit: after the program's
// static destructors and atexit handlers, after every library's destructors
// (all of which are traced), and it has the exit status.
void FinishProcess(int status, void*) {
  if (g_state == nullptr || !g_state->active) return;
  State& s = *g_state;
  s.exit_status = status;
  s.exit_seen = true;
  CloseThreadFile(&t_buffer);
  uint64_t lost = 0;
  {
    std::lock_guard lock(s.registry_mutex);
    lost = s.lost_of_ended_threads;
    for (ThreadBuffer* t = s.threads; t != nullptr; t = t->next) {
      lost += __atomic_load_n(&t->header->events_lost, __ATOMIC_RELAXED);
    }
  }
  lost += s.dropped_elsewhere.load(std::memory_order_relaxed);
  RewriteProcessJson(s, s.exit_seen, lost);
}

// ---- Start ------------------------------------------------------------------------

// PADHOOK_TRACE_CLOCK_START: "<ticks>,<ns>", both decimal.
bool ParseClockSample(const char* text, ClockSample* sample) {
  if (text == nullptr || *text == '\0') return false;
  char* end = nullptr;
  errno = 0;
  sample->ticks = strtoull(text, &end, 10);
  if (errno != 0 || end == text || *end != ',') return false;
  const char* ns = end + 1;
  sample->ns = strtoull(ns, &end, 10);
  return errno == 0 && end != ns && *end == '\0';
}

std::string OwnPath(const void* address) {
  Dl_info info{};
  if (dladdr(address, &info) == 0 || info.dli_fname == nullptr) return "";
  return info.dli_fname;
}

// PADHOOK_TRACE_FAULT (see the top of this file), armed before anything else.
// Written once by the constructor, before any other thread of the runtime runs.
char g_fault_text[64] = "";
fault::Kind g_fault_kind = fault::Kind::kCount;

// At exit: what the armed fault did, so that a test knows when its nth is
// beyond the last call. No allocation.
void ReportFault() {
  const char* outcome = fault::Injected(g_fault_kind) != 0 ? "it failed on purpose" : "not reached";
  dprintf(STDERR_FILENO, "padhook-trace: PADHOOK_TRACE_FAULT=%s: %llu calls of %s seen, %s\n",
          g_fault_text, static_cast<unsigned long long>(fault::Calls(g_fault_kind)),
          fault::KindName(g_fault_kind), outcome);
}

void ArmFaultFromEnvironment() {
  const char* text = getenv("PADHOOK_TRACE_FAULT");
  if (text == nullptr || *text == '\0') return;
  fault::Kind kind;
  uint64_t nth;
  if (!fault::Parse(text, &kind, &nth)) {
    Note(true, "PADHOOK_TRACE_FAULT=%s is not kind:nth (e.g. mmap:2): ignored", text);
    return;
  }
  snprintf(g_fault_text, sizeof g_fault_text, "%s", text);
  g_fault_kind = kind;
  fault::Arm(kind, nth);
  atexit(&ReportFault);
}

void StartTracingOrThrow();

__attribute__((constructor)) void StartTracing() {
  ArmFaultFromEnvironment();
  try {
    StartTracingOrThrow();
  } catch (const std::bad_alloc&) {
    // Before the state was published (after, AttachNewModulesLocked catches
    // its own): nothing was attached; the program runs as if not preloaded.
    Note(true, "out of memory at start-up: not tracing (the program runs untraced)");
  }
  // Allocation faults are for the start-up only: the program's own
  // allocations on this thread must not be failed later.
  if (g_fault_kind == fault::Kind::kAlloc) fault::Disarm();
}

void StartTracingOrThrow() {
  const char* dir = getenv("PADHOOK_TRACE_DIR");
  if (dir == nullptr || *dir == '\0') {
    // Said only when preloaded by hand (tests link the objects directly).
    const char* preload = getenv("LD_PRELOAD");
    if (preload != nullptr && strstr(preload, "padhook-trace") != nullptr) {
      Note(true,
           "PADHOOK_TRACE_DIR is not set: not tracing (run the program with `padhook record`)");
    }
    return;
  }
  // Owned here until published (g_state): a std::bad_alloc frees it.
  auto owner = std::make_unique<State>();
  State* const s = owner.get();
  const char* quiet = getenv("PADHOOK_TRACE_QUIET");
  s->quiet = quiet != nullptr && strcmp(quiet, "1") == 0;
  const char* verbose = getenv("PADHOOK_TRACE_VERBOSE");
  s->verbose = verbose != nullptr && strcmp(verbose, "1") == 0;
  const char* save_vectors = getenv("PADHOOK_TRACE_SAVE_VECTORS");
  s->save_vectors = save_vectors != nullptr && strcmp(save_vectors, "1") == 0;
  // Absolute: the program may chdir.
  char resolved[PATH_MAX];
  s->dir = realpath(dir, resolved) != nullptr ? resolved : dir;
  struct stat st;
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || access(dir, W_OK | X_OK) != 0) {
    Note(true, "the trace directory %s is not a writable directory: not tracing", dir);
    return;
  }
  s->includes = SplitGlobs(getenv("PADHOOK_TRACE_FILTER"));
  s->excludes = SplitGlobs(getenv("PADHOOK_TRACE_EXCLUDE"));
  if (const char* depth = getenv("PADHOOK_TRACE_DEPTH"); depth != nullptr && *depth != '\0') {
    char* end = nullptr;
    const unsigned long value = strtoul(depth, &end, 10);
    if (*end != '\0') {
      Note(true, "PADHOOK_TRACE_DEPTH=%s is not a number: no depth limit", depth);
    } else if (value > 0) {
      g_max_depth = static_cast<uint32_t>(std::min<unsigned long>(value, UINT32_MAX));
    }
  }
  if (const char* min = getenv("PADHOOK_TRACE_MIN_DURATION"); min != nullptr && *min != '\0') {
    if (!ParseDuration(min, &g_min_duration_ns)) {
      Note(true,
           "PADHOOK_TRACE_MIN_DURATION=%s is not a duration (e.g. 10us, 2ms): keeping all calls",
           min);
      g_min_duration_ns = 0;
    }
  }
  s->pid = getpid();
  s->ppid = getppid();
  s->start_ns = MonotonicNs();
  char exe[PATH_MAX];
  const ssize_t length = readlink("/proc/self/exe", exe, sizeof exe - 1);
  s->program = length > 0 ? std::string(exe, static_cast<size_t>(length)) : "";
  s->argv = ReadCmdline();
  s->own_paths[0] = OwnPath(reinterpret_cast<const void*>(&padhook_attach_address));
  s->own_paths[1] = OwnPath(reinterpret_cast<const void*>(&StartTracing));
  if (pthread_key_create(&s->thread_key, &FinishThread) != 0) {
    Note(true, "no pthread key left: not tracing");
    return;
  }
  // The handlers convert TSC ticks inline with padhook's own calibration
  // (made now, ~1 ms, instead of at the first attach), with its base moved
  // 2^40 ticks back (minutes) so that their tick differences are never
  // negative (TSCs of different CPUs may differ a little) and one unsigned
  // multiply converts them. Exactly padhook's times: 2^40 * q32 >> 32 is
  // q32 << 8, with no rounding (unsigned wrap-around cancels out).
  const uint64_t before_clock = MonotonicNs();
  bool from_launcher = false;
  if (ClockSample start; ParseClockSample(getenv("PADHOOK_TRACE_CLOCK_START"), &start)) {
    from_launcher = CalibrateClockFrom(start);
  }
  const ClockScale& scale = GetClockScale();
  if (s->verbose) {
    Note(true, "clock calibration %.3f ms (padhook's, once per process%s)",
         (MonotonicNs() - before_clock) / 1e6,
         from_launcher ? "; window started by the launcher" : "");
  }
  g_clock.base_ticks = scale.base_ticks - (uint64_t{1} << 40);
  g_clock.base_ns = scale.base_ns - (scale.ns_per_tick_q32 << 8);
  g_clock.ns_per_tick_q32 = scale.ns_per_tick_q32;
  if (!WriteProcessJsonNew(*s)) {
    Note(true, "not tracing (the program runs untraced)");
    return;
  }
  g_state = owner.release();
  s->active = true;
  on_exit(&FinishProcess, nullptr);
  pthread_atfork(&BeforeFork, &AfterForkParent, &AfterForkChild);
  std::lock_guard lock(s->functions_mutex);
  const uint64_t begin = s->start_ns;
  AttachNewModulesLocked(*s);
  if (s->verbose) {
    timespec cpu;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu);
    Note(true, "start-up %.3f ms (the process's thread CPU time so far: %.3f ms)",
         (MonotonicNs() - begin) / 1e6, (cpu.tv_sec * 1e9 + cpu.tv_nsec) / 1e6);
  }
}

void AfterDlopen(void* handle) {
  if (handle == nullptr || g_state == nullptr || !g_state->active) return;
  std::lock_guard lock(g_state->functions_mutex);
  AttachNewModulesLocked(*g_state);
}

}  // namespace
}  // namespace padhook::tracer

// ---- dlopen / dlmopen ------------------------------------------------------------
//
// Interposed (this library is preloaded): the real call, then the new modules'
// functions are attached. Caveat: glibc finds a name without '/' through the
// RPATH/RUNPATH of the *calling* object, which is now this library; see
// ResolveLikeCaller.
namespace {

using DlopenFunction = void* (*)(const char*, int);
using DlmopenFunction = void* (*)(Lmid_t, const char*, int);

// The path a bare library name would have been found at through the DT_RUNPATH or
// DT_RPATH of the object containing `caller`, or "" (then the real dlopen
// searches as usual: LD_LIBRARY_PATH, the cache, the default directories).
std::string ResolveLikeCaller(const char* file, const void* caller) {
  if (file == nullptr || strchr(file, '/') != nullptr) return "";
  Dl_info info{};
  link_map* map = nullptr;
  if (dladdr1(caller, &info, reinterpret_cast<void**>(&map), RTLD_DL_LINKMAP) == 0 ||
      map == nullptr) {
    return "";
  }
  const char* strtab = nullptr;
  const char* runpath = nullptr;
  const char* rpath = nullptr;
  uint64_t runpath_offset = 0, rpath_offset = 0;
  bool has_runpath = false, has_rpath = false;
  for (const ElfW(Dyn)* d = map->l_ld; d != nullptr && d->d_tag != DT_NULL; ++d) {
    if (d->d_tag == DT_STRTAB) strtab = reinterpret_cast<const char*>(d->d_un.d_ptr);
    if (d->d_tag == DT_RUNPATH) has_runpath = true, runpath_offset = d->d_un.d_val;
    if (d->d_tag == DT_RPATH) has_rpath = true, rpath_offset = d->d_un.d_val;
  }
  if (strtab == nullptr || (!has_runpath && !has_rpath)) return "";
  if (has_runpath) runpath = strtab + runpath_offset;
  if (has_rpath) rpath = strtab + rpath_offset;
  // With RUNPATH, LD_LIBRARY_PATH comes first: leave those names to the real search.
  if (has_runpath) {
    if (const char* library_path = getenv("LD_LIBRARY_PATH")) {
      std::string dirs = library_path;
      size_t begin = 0;
      while (begin <= dirs.size()) {
        size_t end = dirs.find_first_of(":;", begin);
        if (end == std::string::npos) end = dirs.size();
        const std::string candidate =
            (end > begin ? dirs.substr(begin, end - begin) : std::string(".")) + "/" + file;
        if (access(candidate.c_str(), F_OK) == 0) return "";
        begin = end + 1;
      }
    }
  }
  std::string origin;
  const char* object = (map->l_name != nullptr && *map->l_name != '\0') ? map->l_name : nullptr;
  char exe[PATH_MAX];
  if (object == nullptr) {
    const ssize_t length = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (length <= 0) return "";
    exe[length] = '\0';
    object = exe;
  }
  origin = object;
  origin = origin.substr(0, origin.rfind('/') == std::string::npos ? 0 : origin.rfind('/'));
  const std::string path = has_runpath ? runpath : rpath;
  size_t begin = 0;
  while (begin <= path.size()) {
    size_t end = path.find(':', begin);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(begin, end - begin);
    for (const char* token : {"${ORIGIN}", "$ORIGIN"}) {
      for (size_t at; (at = dir.find(token)) != std::string::npos;)
        dir.replace(at, strlen(token), origin);
    }
    if (!dir.empty()) {
      const std::string candidate = dir + "/" + file;
      if (access(candidate.c_str(), F_OK) == 0) return candidate;
    }
    begin = end + 1;
  }
  return "";
}

}  // namespace

extern "C" __attribute__((visibility("default"))) void* dlopen(const char* file, int mode) {
  static auto real = reinterpret_cast<DlopenFunction>(dlsym(RTLD_NEXT, "dlopen"));
  if (real == nullptr) return nullptr;
  void* handle = nullptr;
  const std::string resolved = ResolveLikeCaller(file, __builtin_return_address(0));
  if (!resolved.empty()) {
    // Already loaded under its name: the real search finds it as before.
    handle = real(file, mode | RTLD_NOLOAD);
    if (handle != nullptr) {
      dlclose(handle);
      handle = real(file, mode);
    } else {
      handle = real(resolved.c_str(), mode);
    }
  } else {
    handle = real(file, mode);
  }
  if (handle != nullptr && (mode & RTLD_NOLOAD) == 0) padhook::tracer::AfterDlopen(handle);
  return handle;
}

extern "C" __attribute__((visibility("default"))) void* dlmopen(Lmid_t namespace_id,
                                                                const char* file, int mode) {
  static auto real = reinterpret_cast<DlmopenFunction>(dlsym(RTLD_NEXT, "dlmopen"));
  if (real == nullptr) return nullptr;
  void* handle = real(namespace_id, file, mode);
  if (handle != nullptr && (mode & RTLD_NOLOAD) == 0) padhook::tracer::AfterDlopen(handle);
  return handle;
}
