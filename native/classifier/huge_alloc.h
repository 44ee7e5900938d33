// Internal: an allocator for the big lookup arrays. A lookup touches a few
// random cache lines spread over tens of megabytes; with 4 KiB pages nearly
// every one of them is also a TLB miss, and under virtualisation a TLB miss
// is a two-dimensional page walk that costs more than the cache miss
// itself. Arrays of 1 MiB and more therefore ask for transparent huge pages
// (the common "madvise" THP setting honours only explicit requests).
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace flatwall {
namespace detail {

template <typename T>
struct HugeAllocator {
  using value_type = T;
  static constexpr size_t kHuge = size_t(2) << 20;
  static constexpr size_t kThreshold = size_t(1) << 20;

  HugeAllocator() = default;
  template <typename U>
  HugeAllocator(const HugeAllocator<U>&) {}

  T* allocate(size_t n) {
    const size_t bytes = n * sizeof(T);
    if (bytes < kThreshold) {
      if (void* p = std::malloc(bytes ? bytes : 1)) return static_cast<T*>(p);
      throw std::bad_alloc();
    }
    const size_t rounded = (bytes + kHuge - 1) / kHuge * kHuge;
    void* p = std::aligned_alloc(kHuge, rounded);
    if (!p) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    madvise(p, rounded, MADV_HUGEPAGE);  // advisory: failure only costs speed
#endif
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t) { std::free(p); }

  // Bytes actually reserved for n elements, for the memory statistics.
  static size_t Footprint(size_t n) {
    const size_t bytes = n * sizeof(T);
    return bytes < kThreshold ? bytes : (bytes + kHuge - 1) / kHuge * kHuge;
  }

  template <typename U>
  bool operator==(const HugeAllocator<U>&) const { return true; }
  template <typename U>
  bool operator!=(const HugeAllocator<U>&) const { return false; }
};

template <typename T>
using HugeVector = std::vector<T, HugeAllocator<T>>;

}  // namespace detail
}  // namespace flatwall
