// Internal: the algorithms behind BuildClassifier (classifier.h explains the
// design; tuple_merge.cc holds the tuple classifier, linear.cc the scan).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "classifier/classifier.h"
#include "classifier/family.h"
#include "classifier/image.h"

namespace flatwall {
namespace detail {

struct TupleMergeParams {
  uint32_t max_tables;       // per priority band
  uint32_t collision_limit;  // records per bucket
  bool simd;                 // AVX2 batch filter pass when the CPU has it
};

// Defaults, measured (see the essay in classifier.h).
constexpr uint32_t kDefaultMaxTables = 32;
constexpr uint32_t kDefaultCollisionLimit = 4;

template <typename Rec>
std::unique_ptr<Classifier<Rec, typename Family<Rec>::Key>> BuildTupleMerge(
    const Rec* records, uint32_t count, const TupleMergeParams& params);

// From an image section (classifier/image.h); throws ImageError.
template <typename Rec>
std::unique_ptr<Classifier<Rec, typename Family<Rec>::Key>> LoadTupleMerge(const void* records,
                                                                          uint32_t count,
                                                                          ImageReader* in,
                                                                          bool simd);

// Changes whenever the meaning of a tuple classifier image would (image.h).
uint64_t TupleMergeFingerprint();

template <typename Rec>
std::unique_ptr<Classifier<Rec, typename Family<Rec>::Key>> BuildLinear(const Rec* records,
                                                                        uint32_t count);

}  // namespace detail
}  // namespace flatwall
