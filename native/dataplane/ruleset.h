// One ruleset generation as the workers see it: the FORWARD classifiers of
// both families, the interface class id of every port under this ruleset,
// and the per-rule counters of this generation (one array per worker).
//
// Immutable after Build except the counters. Published to the workers
// through Dataplane's RCU-style slot (dataplane.h): a worker reads the
// current pointer at each batch boundary, and an old generation is freed
// only when every worker has announced a later one or is idle.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "classifier/classifier.h"
#include "classifier/packet_key.h"
#include "classifier/rule_table.h"
#include "dataplane/counters.h"

namespace flatwall {

class Ruleset {
 public:
  // Validates `buffer` (the packed table set of rule_table.h) and builds the
  // classifiers. `iface_ids[p]` is port p's interface class id; every
  // rule_id in the tables must be < rule_count. Throws std::invalid_argument
  // with a message for JavaScript. Slow for big rulesets: never call it on
  // the JS thread or a worker.
  static std::unique_ptr<Ruleset> Build(const uint8_t* buffer, size_t len,
                                        std::vector<uint16_t> iface_ids, uint32_t rule_count,
                                        uint32_t workers);

  uint64_t generation = 0;  // set by Dataplane when published (1, 2, ...)

  uint16_t iface_id(uint32_t port) const { return port < iface_ids_.size() ? iface_ids_[port] : 0; }
  uint32_t rule_count() const { return rule_count_; }
  RuleCounterArray& counters(uint32_t worker) { return *counters_[worker]; }
  const RuleCounterArray& counters(uint32_t worker) const { return *counters_[worker]; }
  uint32_t workers() const { return uint32_t(counters_.size()); }
  uint32_t records4() const { return fwd4_ ? fwd4_->size() : 0; }
  uint32_t records6() const { return fwd6_ ? fwd6_->size() : 0; }

  // The FORWARD verdict for `key`. Visits every matched record in order:
  // v.OnMatch(record) for each (terminal or not: counters), and
  // v.OnLog(record) for LOG records; non-terminal records (LOG, COUNT,
  // SKIP) continue the lookup at their `arg` (always > their own index, so
  // this terminates within the table size). Returns the terminal record
  // (ACCEPT/DROP/REJECT), or nullptr when the table has none for this key
  // (which a validated table, ending in its policy, never does). A family
  // without a FORWARD table accepts everything (iptables' empty chain).
  template <typename V>
  const RuleCommon* Forward(const PacketKey4& key, V& v) const {
    return Walk(fwd4_.get(), key, v);
  }
  template <typename V>
  const RuleCommon* Forward(const PacketKey6& key, V& v) const {
    return Walk(fwd6_.get(), key, v);
  }
  static const RuleCommon kAcceptAll;

 private:
  Ruleset() = default;

  template <typename C, typename K, typename V>
  static const RuleCommon* Walk(const C* cls, const K& key, V& v) {
    if (!cls) return &kAcceptAll;
    uint32_t start = 0;
    const uint32_t n = cls->size();
    while (start < n) {
      const uint32_t i = cls->Lookup(key, start);
      if (i == kNoMatch) return nullptr;
      const RuleCommon& r = cls->record(i).c;
      v.OnMatch(r);
      switch (Action(r.action)) {
        case Action::kAccept:
        case Action::kDrop:
        case Action::kReject:
          return &r;
        case Action::kLog:
          v.OnLog(r);
          break;
        case Action::kCount:
        case Action::kSkip:
          break;
      }
      if (r.arg <= i) return nullptr;  // validated away; never loop
      start = r.arg;
    }
    return nullptr;
  }

  std::vector<uint16_t> iface_ids_;
  uint32_t rule_count_ = 0;
  std::unique_ptr<Classifier4> fwd4_;
  std::unique_ptr<Classifier6> fwd6_;
  std::vector<std::unique_ptr<RuleCounterArray>> counters_;
  std::vector<uint8_t> keep_;  // the buffer, should a classifier refer to it
};

}  // namespace flatwall
