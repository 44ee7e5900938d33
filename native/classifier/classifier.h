// PUBLIC API CONTRACT (the design essay goes above this line when the
// implementation lands; keep the API below stable: the dataplane and the
// addon are written against it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "classifier/packet_key.h"
#include "classifier/rule_table.h"

namespace flatwall {

constexpr uint32_t kNoMatch = UINT32_MAX;

struct BuildStats {
  double build_seconds = 0;
  size_t memory_bytes = 0;  // everything the classifier owns, records included
  uint32_t records = 0;
  uint32_t tables = 0;      // algorithm-specific: hash tables / partitions
  std::string algorithm;
  // Records the tuple tables could not take (tuple cap reached, or more
  // than the collision limit of records sharing one hash key); they live in
  // the fallback split tree. Always 0 for "linear".
  uint32_t fallback_records = 0;
};

// First-match classifier over one table (one hook, one family). Immutable
// once built: any number of threads may call Lookup concurrently.
template <typename Rec, typename Key>
class Classifier {
 public:
  // Copies the records. The caller has validated them (ValidateTableSet).
  static std::unique_ptr<Classifier> Build(const Rec* records, uint32_t count);
  virtual ~Classifier() = default;

  // Index of the first record with index >= start that matches key, or
  // kNoMatch. Records are in priority order (index 0 is highest).
  virtual uint32_t Lookup(const Key& key, uint32_t start = 0) const = 0;

  // Batch form: out[i] = Lookup(keys[i], starts ? starts[i] : 0).
  virtual void LookupBatch(const Key* keys, const uint32_t* starts,
                           uint32_t* out, size_t n) const = 0;

  virtual const Rec& record(uint32_t i) const = 0;
  virtual uint32_t size() const = 0;
  virtual const BuildStats& stats() const = 0;
};

using Classifier4 = Classifier<RuleRecord4, PacketKey4>;
using Classifier6 = Classifier<RuleRecord6, PacketKey6>;
extern template class Classifier<RuleRecord4, PacketKey4>;  // classifier.cc
extern template class Classifier<RuleRecord6, PacketKey6>;

// Algorithm selection, for benchmarks and tests. Build() above is
// BuildClassifier with the defaults.
struct ClassifierOptions {
  std::string algorithm = "tuplemerge";  // or "linear" (what iptables does)
  // 0 = default. Tests lower them to force the cap and the fallback.
  uint32_t max_tables = 0;       // cap on hash tables per priority band
  uint32_t collision_limit = 0;  // max records sharing one hash key
  bool simd = true;              // vector code where the CPU has it (tests
                                 // turn it off to check the scalar path)
};

// True for the names BuildClassifier accepts.
bool IsKnownAlgorithm(const std::string& name);

// Throw std::invalid_argument for an unknown algorithm name.
std::unique_ptr<Classifier4> BuildClassifier4(const RuleRecord4* records, uint32_t count,
                                              const ClassifierOptions& options = {});
std::unique_ptr<Classifier6> BuildClassifier6(const RuleRecord6* records, uint32_t count,
                                              const ClassifierOptions& options = {});
inline std::unique_ptr<Classifier4> BuildClassifier4(const RuleRecord4* records, uint32_t count,
                                                     const std::string& algorithm) {
  ClassifierOptions o;
  o.algorithm = algorithm;
  return BuildClassifier4(records, count, o);
}
inline std::unique_ptr<Classifier6> BuildClassifier6(const RuleRecord6* records, uint32_t count,
                                                     const std::string& algorithm) {
  ClassifierOptions o;
  o.algorithm = algorithm;
  return BuildClassifier6(records, count, o);
}

// The same, overloaded on the record type, for code templated on the family.
inline std::unique_ptr<Classifier4> BuildClassifier(const RuleRecord4* records, uint32_t count,
                                                    const ClassifierOptions& options = {}) {
  return BuildClassifier4(records, count, options);
}
inline std::unique_ptr<Classifier6> BuildClassifier(const RuleRecord6* records, uint32_t count,
                                                    const ClassifierOptions& options = {}) {
  return BuildClassifier6(records, count, options);
}

}  // namespace flatwall
