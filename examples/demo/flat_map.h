// FlatMap<K, V>: a small open-addressing hash map (linear probing, power-of-two
// capacity). Instantiated for several key and value types by the pipeline.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "demo_util.h"

namespace demo {

template <typename K>
struct Hasher;

template <>
struct Hasher<std::string> {
  uint64_t operator()(const std::string& key) const { return demo_util::Fnv1a64(key); }
};

template <>
struct Hasher<int> {
  uint64_t operator()(int key) const { return demo_util::Mix64(static_cast<uint64_t>(key)); }
};

template <typename K, typename V>
class FlatMap {
 public:
  FlatMap() { slots_.resize(16); }

  // The value for `key`, default-constructed on first use.
  V& operator[](const K& key) {
    if ((size_ + 1) * 4 > slots_.size() * 3) Grow();
    Slot& slot = slots_[Probe(key)];
    if (!slot.used) {
      slot.used = true;
      slot.key = key;
      ++size_;
    }
    return slot.value;
  }

  const V* Find(const K& key) const {
    const Slot& slot = slots_[Probe(key)];
    return slot.used ? &slot.value : nullptr;
  }

  size_t size() const { return size_; }

  template <typename Fn>
  void ForEach(Fn&& fn) const {
    for (const Slot& slot : slots_)
      if (slot.used) fn(slot.key, slot.value);
  }

  // Adds every entry of `other` into this map with `combine(mine, theirs)`.
  template <typename Combine>
  void MergeFrom(const FlatMap& other, Combine&& combine) {
    other.ForEach([&](const K& key, const V& value) { combine((*this)[key], value); });
  }

  std::vector<std::pair<K, V>> Entries() const {
    std::vector<std::pair<K, V>> out;
    out.reserve(size_);
    ForEach([&](const K& key, const V& value) { out.emplace_back(key, value); });
    return out;
  }

 private:
  struct Slot {
    bool used = false;
    K key{};
    V value{};
  };

  size_t Probe(const K& key) const {
    const size_t mask = slots_.size() - 1;
    size_t i = Hasher<K>{}(key) & mask;
    while (slots_[i].used && !(slots_[i].key == key)) i = (i + 1) & mask;
    return i;
  }

  void Grow() {
    std::vector<Slot> old = std::move(slots_);
    slots_.clear();
    slots_.resize(old.size() * 2);
    size_ = 0;
    for (Slot& slot : old)
      if (slot.used) (*this)[slot.key] = std::move(slot.value);
  }

  std::vector<Slot> slots_;
  size_t size_ = 0;
};

}  // namespace demo
