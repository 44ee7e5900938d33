// Classifier images: the hash, the fingerprint and the per-algorithm
// dispatch of a section. image.h has the design; tuple_merge.cc and
// split_tree.h write and check the sections themselves.
#include "classifier/image.h"

#include <vector>

#include "classifier/family.h"
#include "classifier/tuple_merge.h"

namespace flatwall {
namespace {

inline uint64_t Mix(uint64_t a, uint64_t b) {
  const detail::u128 p = detail::u128(a) * b;
  return uint64_t(p) ^ uint64_t(p >> 64);
}

constexpr uint64_t kS[6] = {0x9E3779B97F4A7C15ULL, 0xBF58476D1CE4E5B9ULL, 0x94D049BB133111EBULL,
                            0xD6E8FEB86659FD93ULL, 0xA0761D6478BD642FULL, 0xE7037ED1A0B428DBULL};

template <typename Rec>
std::unique_ptr<Classifier<Rec, typename detail::Family<Rec>::Key>> LoadSection(
    const void* records, uint32_t count, ImageReader* in, bool simd) {
  const uint32_t algorithm = in->U32("classifier algorithm");
  switch (ImageAlgorithm(algorithm)) {
    case ImageAlgorithm::kTupleMerge:
      return detail::LoadTupleMerge<Rec>(records, count, in, simd);
    case ImageAlgorithm::kLinear: {
      std::vector<Rec> recs(count);
      if (count) std::memcpy(recs.data(), records, size_t(count) * sizeof(Rec));
      return detail::BuildLinear(recs.data(), count);
    }
  }
  throw ImageError("unknown classifier algorithm id " + std::to_string(algorithm));
}

}  // namespace

// Two independent multiply-fold lanes over 16 bytes each per step (the
// lanes overlap in the pipeline), the length folded in, the tail padded
// with zeros. Several GB/s: a 52 MB table buffer hashes in ~10 ms.
uint64_t HashBytes(const void* data, size_t size) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  uint64_t a = kS[0] ^ size, b = kS[1];
  uint64_t w[4];
  size_t n = size;
  for (; n >= 32; n -= 32, p += 32) {
    std::memcpy(w, p, 32);
    a = Mix(a ^ w[0], w[1] ^ kS[2]);
    b = Mix(b ^ w[2], w[3] ^ kS[3]);
  }
  uint8_t tail[32] = {};
  if (n) std::memcpy(tail, p, n);
  std::memcpy(w, tail, 32);
  a = Mix(a ^ w[0], w[1] ^ kS[2]);
  b = Mix(b ^ w[2] ^ n, w[3] ^ kS[3]);
  return Mix(a ^ kS[4], b ^ kS[5]);
}

uint64_t ImageFingerprint() {
  static const uint64_t fp = [] {
    const uint64_t parts[] = {kImageVersion, detail::TupleMergeFingerprint()};
    return HashBytes(parts, sizeof parts);
  }();
  return fp;
}

std::unique_ptr<Classifier4> LoadClassifier4(const void* records, uint32_t count, ImageReader* in,
                                             bool simd) {
  return LoadSection<RuleRecord4>(records, count, in, simd);
}

std::unique_ptr<Classifier6> LoadClassifier6(const void* records, uint32_t count, ImageReader* in,
                                             bool simd) {
  return LoadSection<RuleRecord6>(records, count, in, simd);
}

}  // namespace flatwall
