// The linear scan: what iptables does, kept as the benchmark baseline and as
// the obviously-correct second opinion for tests.
#include "classifier/tuple_merge.h"

namespace flatwall {
namespace detail {
namespace {

template <typename Rec>
class Linear final : public Classifier<Rec, typename Family<Rec>::Key> {
  using Key = typename Family<Rec>::Key;

 public:
  Linear(const Rec* records, uint32_t count) : recs_(records, records + count) {
    stats_.records = count;
    stats_.tables = 1;
    stats_.algorithm = "linear";
    stats_.memory_bytes = sizeof(*this) + recs_.capacity() * sizeof(Rec);
  }
  uint32_t Lookup(const Key& k, uint32_t start) const override {
    const uint32_t n = uint32_t(recs_.size());
    for (uint32_t i = start; i < n; ++i)
      if (Matches(recs_[i], k)) return i;
    return kNoMatch;
  }
  void LookupBatch(const Key* keys, const uint32_t* starts, uint32_t* out,
                   size_t n) const override {
    for (size_t i = 0; i < n; ++i) out[i] = Lookup(keys[i], starts ? starts[i] : 0);
  }
  const Rec& record(uint32_t i) const override { return recs_[i]; }
  uint32_t size() const override { return uint32_t(recs_.size()); }
  const BuildStats& stats() const override { return stats_; }
  // Nothing is built beyond the records, which the image does not hold.
  void SaveImage(ImageWriter* w) const override { w->U32(uint32_t(ImageAlgorithm::kLinear)); }

 private:
  std::vector<Rec> recs_;
  BuildStats stats_;
};

}  // namespace

template <typename Rec>
std::unique_ptr<Classifier<Rec, typename Family<Rec>::Key>> BuildLinear(const Rec* records,
                                                                        uint32_t count) {
  return std::make_unique<Linear<Rec>>(records, count);
}

template std::unique_ptr<Classifier4> BuildLinear<RuleRecord4>(const RuleRecord4*, uint32_t);
template std::unique_ptr<Classifier6> BuildLinear<RuleRecord6>(const RuleRecord6*, uint32_t);

}  // namespace detail
}  // namespace flatwall
