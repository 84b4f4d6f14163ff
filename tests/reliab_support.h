// Shared by the reliability tests (wx_test, mdwe_test, fault_test, soak):
// the stress fixture's functions, worker threads that run them, and a checker
// of /proc/self/maps for mappings that are writable and executable.
#pragma once

// PADHOOK_RELIAB_ASAN: built with AddressSanitizer (GCC defines
// __SANITIZE_ADDRESS__, clang has __has_feature).
#if defined(__SANITIZE_ADDRESS__)
#define PADHOOK_RELIAB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PADHOOK_RELIAB_ASAN 1
#endif
#endif

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

extern "C" {
extern int (*const many_fns_20[1000])(int);  // g++ plain (1-byte NOP runs: protocol C)
extern int (*const many_fns_21[1000])(int);  // g++ endbr64
extern int (*const many_fns_22[1000])(int);  // g++ odd (sites cross a word: protocol B)
extern int (*const many_fns_23[1000])(int);  // clang++ plain
extern int (*const many_fns_24[1000])(int);  // clang++ endbr64
extern int (*const many_fns_25[1000])(int);  // clang++ odd
}

namespace padhook::reliab {

using Fn = int (*)(int);

// `per_variant` functions of each of the six builds, spread over each block
// (on many pages), or `contiguous`: neighbours (a few code pages in all, so
// a strict-mode batch is a few pwrites, not one per function).
inline std::vector<Fn> StressFunctions(int per_variant, bool contiguous = false) {
  std::vector<Fn> fns;
  for (auto* table :
       {many_fns_20, many_fns_21, many_fns_22, many_fns_23, many_fns_24, many_fns_25}) {
    for (int i = 0; i < per_variant; ++i) {
      fns.push_back(table[contiguous ? 400 + i : i * (1000 / per_variant)]);
    }
  }
  return fns;
}

// Threads that call every function in a loop and check each result, from
// construction to destruction (RAII: the destructor stops and joins them).
// Shared: stop_ (written by the owner, read relaxed by the workers); calls_
// and wrong_ (atomics added to by the workers, read by the owner after join
// or as a progress figure).
class Workers {
 public:
  Workers(std::vector<Fn> fns, int threads) : fns_(std::move(fns)) {
    offset_.resize(fns_.size());
    for (size_t f = 0; f < fns_.size(); ++f) offset_[f] = fns_[f](0);
    for (int w = 0; w < threads; ++w) {
      threads_.emplace_back([this, w] {
        uint64_t local = 0;
        for (int32_t x = w; !stop_.load(std::memory_order_relaxed); ++x) {
          for (size_t f = 0; f < fns_.size(); ++f) {
            if (fns_[f](x) != x * 3 + offset_[f]) wrong_.fetch_add(1, std::memory_order_relaxed);
          }
          local += fns_.size();
          if ((x & 63) == 0) {
            calls_.fetch_add(local, std::memory_order_relaxed);
            local = 0;
          }
        }
        calls_.fetch_add(local, std::memory_order_relaxed);
      });
    }
  }
  ~Workers() { Stop(); }
  Workers(const Workers&) = delete;
  Workers& operator=(const Workers&) = delete;

  void Stop() {
    stop_.store(true, std::memory_order_relaxed);
    for (auto& t : threads_) t.join();
    threads_.clear();
  }
  uint64_t calls() const { return calls_.load(std::memory_order_relaxed); }
  uint64_t wrong() const { return wrong_.load(std::memory_order_relaxed); }

 private:
  std::vector<Fn> fns_;
  std::vector<int> offset_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> calls_{0}, wrong_{0};
  std::vector<std::thread> threads_;
};

// One line of /proc/self/maps.
struct MapLine {
  uintptr_t begin = 0, end = 0;
  char perms[5] = {};  // "rwxp" / "r-xs"...
  uint64_t offset = 0;
  unsigned long inode = 0;
  unsigned dev_major = 0, dev_minor = 0;
  std::string name;
};

inline std::vector<MapLine> ParseMaps(const std::string& text) {
  std::vector<MapLine> out;
  size_t at = 0;
  while (at < text.size()) {
    size_t eol = text.find('\n', at);
    if (eol == std::string::npos) eol = text.size();
    const std::string line = text.substr(at, eol - at);
    at = eol + 1;
    MapLine m;
    int name_at = 0;
    if (std::sscanf(line.c_str(), "%" SCNxPTR "-%" SCNxPTR " %4s %" SCNx64 " %x:%x %lu %n",
                    &m.begin, &m.end, m.perms, &m.offset, &m.dev_major, &m.dev_minor, &m.inode,
                    &name_at) >= 7) {
      if (name_at > 0 && static_cast<size_t>(name_at) <= line.size()) m.name = line.substr(name_at);
      out.push_back(std::move(m));
    }
  }
  return out;
}

// The whole of /proc/self/maps, read with plain read() calls.
inline std::string ReadMaps() {
  std::string text;
  const int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return text;
  char buf[16384];
  for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;) text.append(buf, static_cast<size_t>(n));
  close(fd);
  return text;
}

// W^X violations in one snapshot: a mapping that is writable and executable,
// or two mappings of the same file pages (same device and inode, overlapping
// file offsets) where one is executable and the other writable and shared
// (a private writable mapping writes its own copy: no alias). Empty: none.
inline std::string WxViolations(const std::vector<MapLine>& maps) {
  std::string found;
  for (const MapLine& m : maps) {
    if (m.perms[1] == 'w' && m.perms[2] == 'x') {
      char buf[256];
      std::snprintf(buf, sizeof(buf), "rwx mapping %" PRIxPTR "-%" PRIxPTR " %s %s; ", m.begin,
                    m.end, m.perms, m.name.c_str());
      found += buf;
    }
  }
  for (const MapLine& x : maps) {
    if (x.perms[2] != 'x' || x.inode == 0) continue;
    for (const MapLine& w : maps) {
      if (&w == &x || w.perms[1] != 'w' || w.perms[3] != 's' || w.inode != x.inode ||
          w.dev_major != x.dev_major || w.dev_minor != x.dev_minor) {
        continue;
      }
      const uint64_t x_end = x.offset + (x.end - x.begin), w_end = w.offset + (w.end - w.begin);
      if (w.offset < x_end && x.offset < w_end) {
        char buf[256];
        std::snprintf(buf, sizeof(buf),
                      "writable alias %" PRIxPTR " of executable %" PRIxPTR " (%s); ", w.begin,
                      x.begin, x.name.c_str());
        found += buf;
      }
    }
  }
  return found;
}

}  // namespace padhook::reliab
