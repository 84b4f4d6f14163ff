// libpadhook-demo-util: helpers the demo program calls across a shared-library
// boundary (hashing, a deterministic random generator, string utilities,
// number parsing that throws, and a running checksum). It is instrumented like
// the program, so a tracer sees calls go from one module into another.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace demo_util {

// ---- Hashing ----------------------------------------------------------------
uint64_t Fnv1a64(std::string_view bytes);
uint64_t Mix64(uint64_t x);  // splitmix64 finalizer: a good hash for integers
uint64_t HashCombine(uint64_t seed, uint64_t value);

// ---- A deterministic random generator (xorshift64*) ---------------------------
class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t Next();
  uint32_t Below(uint32_t bound);  // uniform enough in [0, bound)
  bool Chance(uint32_t percent);   // true with probability percent/100
  template <typename T>
  const T& Pick(const std::vector<T>& items) { return items[Below(static_cast<uint32_t>(items.size()))]; }

 private:
  uint64_t state_;
};

// ---- Strings ----------------------------------------------------------------
std::string_view Trim(std::string_view s);
std::string ToLower(std::string_view s);
std::vector<std::string_view> Split(std::string_view s, char separator);
bool IsIdentifier(std::string_view s);

// Thrown by ParseInt; crosses the library boundary into the program.
class NumberError : public std::runtime_error {
 public:
  explicit NumberError(const std::string& what);
  ~NumberError() override;
};

// A decimal integer with optional sign, nothing else; throws NumberError.
int64_t ParseInt(std::string_view s);
// Fixed-point formatting that does not depend on the locale.
std::string FormatFixed(double value, int decimals);
// 1234567 -> "1,234,567"
std::string FormatCount(uint64_t n);

// ---- A running checksum (FNV-1a over everything added) ------------------------
class Checksum {
 public:
  void Add(std::string_view bytes);
  void Add(uint64_t value);
  uint64_t value() const { return h_; }
  std::string Hex() const;

 private:
  uint64_t h_ = 0xcbf29ce484222325ull;
};

}  // namespace demo_util
