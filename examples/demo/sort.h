// QuickSort: recursive quicksort (median-of-three pivot, insertion sort for
// short ranges), and Percentile on a sorted vector. Instantiated for ints,
// doubles, strings and the pipeline's row types.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

namespace demo {

template <typename T, typename Less>
void InsertionSort(std::vector<T>& v, size_t lo, size_t hi, Less less) {
  for (size_t i = lo + 1; i < hi; ++i) {
    for (size_t j = i; j > lo && less(v[j], v[j - 1]); --j) std::swap(v[j], v[j - 1]);
  }
}

template <typename T, typename Less>
size_t MedianOfThree(std::vector<T>& v, size_t lo, size_t hi, Less less) {
  const size_t mid = lo + (hi - lo) / 2, last = hi - 1;
  if (less(v[mid], v[lo])) std::swap(v[mid], v[lo]);
  if (less(v[last], v[lo])) std::swap(v[last], v[lo]);
  if (less(v[last], v[mid])) std::swap(v[last], v[mid]);
  return mid;
}

// Hoare-style partition of [lo, hi); returns the split point.
template <typename T, typename Less>
size_t Partition(std::vector<T>& v, size_t lo, size_t hi, Less less) {
  const T pivot = v[MedianOfThree(v, lo, hi, less)];
  size_t i = lo, j = hi - 1;
  while (true) {
    while (less(v[i], pivot)) ++i;
    while (less(pivot, v[j])) --j;
    if (i >= j) return j + 1;
    std::swap(v[i++], v[j--]);
  }
}

template <typename T, typename Less>
void QuickSortRange(std::vector<T>& v, size_t lo, size_t hi, Less less) {
  if (hi - lo <= 12) return InsertionSort(v, lo, hi, less);
  const size_t split = Partition(v, lo, hi, less);
  QuickSortRange(v, lo, split, less);
  QuickSortRange(v, split, hi, less);
}

template <typename T, typename Less>
void QuickSort(std::vector<T>& v, Less less) {
  if (v.size() > 1) QuickSortRange(v, 0, v.size(), less);
}

template <typename T>
void QuickSort(std::vector<T>& v) {
  QuickSort(v, [](const T& a, const T& b) { return a < b; });
}

// The p-th percentile (0..100) of an already sorted vector (nearest rank).
template <typename T>
T Percentile(const std::vector<T>& sorted, unsigned p) {
  if (sorted.empty()) return T{};
  const size_t rank = (sorted.size() * p + 99) / 100;
  return sorted[rank == 0 ? 0 : rank - 1];
}

}  // namespace demo
