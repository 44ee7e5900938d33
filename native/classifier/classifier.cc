// Algorithm selection. The algorithms themselves are in tuple_merge.cc.
#include "classifier/classifier.h"

#include <stdexcept>

#include "classifier/tuple_merge.h"

namespace flatwall {
namespace {

template <typename Rec>
std::unique_ptr<Classifier<Rec, typename detail::Family<Rec>::Key>> Dispatch(
    const Rec* records, uint32_t count, const ClassifierOptions& options) {
  if (options.algorithm == "tuplemerge") {
    detail::TupleMergeParams p;
    p.max_tables = options.max_tables ? options.max_tables : detail::kDefaultMaxTables;
    p.collision_limit =
        options.collision_limit ? options.collision_limit : detail::kDefaultCollisionLimit;
    p.simd = options.simd;
    return detail::BuildTupleMerge(records, count, p);
  }
  if (options.algorithm == "linear") return detail::BuildLinear(records, count);
  throw std::invalid_argument("unknown classifier algorithm \"" + options.algorithm +
                              "\" (expected \"tuplemerge\" or \"linear\")");
}

}  // namespace

bool IsKnownAlgorithm(const std::string& name) {
  return name == "tuplemerge" || name == "linear";
}

std::unique_ptr<Classifier4> BuildClassifier4(const RuleRecord4* records, uint32_t count,
                                              const ClassifierOptions& options) {
  return Dispatch(records, count, options);
}

std::unique_ptr<Classifier6> BuildClassifier6(const RuleRecord6* records, uint32_t count,
                                              const ClassifierOptions& options) {
  return Dispatch(records, count, options);
}

template <typename Rec, typename Key>
std::unique_ptr<Classifier<Rec, Key>> Classifier<Rec, Key>::Build(const Rec* records,
                                                                  uint32_t count) {
  return BuildClassifier(records, count);
}

template class Classifier<RuleRecord4, PacketKey4>;
template class Classifier<RuleRecord6, PacketKey6>;

}  // namespace flatwall
