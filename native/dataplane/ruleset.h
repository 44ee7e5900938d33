// One ruleset generation as the workers see it: the validated TableSet
// (classifier/table_set.h) with the FORWARD classifier of each family, the
// interface class id of every port under this ruleset, and the per-rule
// counters of this generation (one array per worker).
//
// Immutable after Build except the counters. Published to the workers
// through Dataplane's RCU-style slot (dataplane.h): a worker reads the
// current pointer at each batch boundary, and an old generation is freed
// only when every worker has announced a later one or is idle.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "classifier/classifier.h"
#include "classifier/packet_key.h"
#include "classifier/rule_table.h"
#include "classifier/table_set.h"
#include "dataplane/counters.h"

namespace flatwall {

class Ruleset {
 public:
  // Validates `buffer` (TableSet::Build: the one validation of the packed
  // format) and builds the classifiers; checks that every rule_id is
  // < rule_count (the counters are indexed by it). `iface_ids[p]` is port
  // p's interface class id. Throws std::invalid_argument with a message for
  // JavaScript. Slow for big rulesets: never call it on the JS thread or a
  // worker. With `image` (a classifier image of this buffer, see
  // classifier/image.h) the classifiers are loaded from it instead of
  // built; a refused image falls back to building, and *image_error says why.
  static std::unique_ptr<Ruleset> Build(const uint8_t* buffer, size_t len,
                                        std::vector<uint16_t> iface_ids, uint32_t rule_count,
                                        uint32_t workers, const uint8_t* image = nullptr,
                                        size_t image_len = 0, std::string* image_error = nullptr);

  uint64_t generation = 0;  // set by Dataplane when published (1, 2, ...)

  uint16_t iface_id(uint32_t port) const { return port < iface_ids_.size() ? iface_ids_[port] : 0; }
  uint32_t rule_count() const { return rule_count_; }
  RuleCounterArray& counters(uint32_t worker) { return *counters_[worker]; }
  const RuleCounterArray& counters(uint32_t worker) const { return *counters_[worker]; }
  uint32_t workers() const { return uint32_t(counters_.size()); }
  uint32_t records4() const { return fwd4_ ? fwd4_->size() : 0; }
  uint32_t records6() const { return fwd6_ ? fwd6_->size() : 0; }
  // Wall time of Build (validation + every classifier), and the bytes the
  // TableSet's classifiers own (records included), for the metrics.
  double build_seconds() const { return build_seconds_; }
  size_t memory_bytes() const { return memory_bytes_; }
  // Per-rule totals over every worker (rule_count entries each).
  void SumCounters(std::vector<uint64_t>* packets, std::vector<uint64_t>* bytes) const;

  // The FORWARD verdict for `key`, by the TableSet's Evaluate loop: every
  // matched record (terminal or not) is reported to v.OnMatch(record)
  // (counters), LOG records also to v.OnLog(record); LOG, COUNT and SKIP
  // continue at their `arg`. Returns the terminal record (ACCEPT/DROP/
  // REJECT), or nullptr when nothing matched (a validated table ends in a
  // catch-all policy, so only a port whose interface id lies outside the
  // table's interface classes can get there). A family without a FORWARD
  // table accepts everything (iptables' empty chain with policy ACCEPT).
  template <typename V>
  const RuleCommon* Forward(const PacketKey4& key, V& v) const {
    return Walk(fwd4_, key, v);
  }
  template <typename V>
  const RuleCommon* Forward(const PacketKey6& key, V& v) const {
    return Walk(fwd6_, key, v);
  }
  static const RuleCommon kAcceptAll;

 private:
  Ruleset() = default;

  template <typename C, typename K, typename V>
  static const RuleCommon* Walk(const C* cls, const K& key, V& v) {
    if (!cls) return &kAcceptAll;
    const Verdict verdict = Evaluate(*cls, key, [cls, &v](uint32_t i) {
      const RuleCommon& r = cls->record(i).c;
      v.OnMatch(r);
      if (Action(r.action) == Action::kLog) v.OnLog(r);
    });
    if (verdict.index == kNoMatch) return nullptr;
    return &cls->record(verdict.index).c;
  }

  std::shared_ptr<const TableSet> tables_;
  const Classifier4* fwd4_ = nullptr;  // owned by tables_
  const Classifier6* fwd6_ = nullptr;
  std::vector<uint16_t> iface_ids_;
  uint32_t rule_count_ = 0;
  double build_seconds_ = 0;
  size_t memory_bytes_ = 0;
  std::vector<std::unique_ptr<RuleCounterArray>> counters_;
};

}  // namespace flatwall
