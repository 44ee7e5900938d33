// One ruleset generation as the workers see it: the validated TableSet
// (classifier/table_set.h) with the INPUT, FORWARD and OUTPUT classifiers
// of each family (a bridge walks only FORWARD; host mode, dataplane/host.h,
// picks the hook per frame), the interface class id of every port under
// this ruleset, and the per-rule counters of this generation (one array per
// worker).
//
// Immutable after Build except the counters. Published to the workers
// through Dataplane's RCU-style slot (dataplane.h): a worker reads the
// current pointer at each batch boundary, and an old generation is freed
// only when every worker has announced a later one or is idle.
//
// SINGLE-RULE EDITS
// =================
//
// Rebuilding a million-record classifier takes seconds; inserting or
// deleting one rule must not. Derive() makes a new generation that shares
// the previous one's classifiers and counters and adds, per family:
//
//   - an overlay: a small classifier of the inserted rules' records, in
//     chain order, each with an ANCHOR: the main record index it sits
//     before (the first record of the rule it was inserted in front of, or
//     the policy for an append). Overlay index order is merged order, so
//     anchors never decrease;
//   - dead ranges: the records [lo, hi) of deleted rules, skipped;
//   - a policy override: the FORWARD policy's new action.
//
// The walk keeps a position in each list (m in the main table, o in the
// overlay) and takes the earlier of the two first matches: the overlay's
// record wins when its anchor <= the main match. A non-terminal record
// moves both positions: an overlay record continues at its arg in the
// overlay and at its anchor in the main table; a main record continues at
// its arg in the main table and at the first overlay record anchored at or
// after it -- or past the whole overlay for a SKIP flagged
// kRuleReturnsToPolicy, which leaves the built-in chain, so rules appended
// after it must not see the packet. Both positions only grow, so the walk
// ends. Edits only ever sit at rule boundaries of the built-in chain (the
// compiler's rule spans), which is what makes an anchor mean the same place
// in every inlined path.
//
// Inserted rules get new rule ids past the base build's (up to
// kEditRuleIds of them); their counters live in a per-worker array that
// every derived generation shares, as they all share the base's, so edits
// neither lose nor copy counts. A full rebuild folds everything back in.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "classifier/classifier.h"
#include "classifier/packet_key.h"
#include "classifier/rule_table.h"
#include "classifier/table_set.h"
#include "dataplane/counters.h"
#include "dataplane/hotdrop.h"
#include "extensions/ext_table.h"
#include "extensions/state.h"

namespace flatwall {

// A single-rule edit of one family's FORWARD table, as the control plane
// computes it: always the whole edit state relative to the base build.
template <typename Rec>
struct TableEditSpec {
  bool present = false;
  std::vector<Rec> overlay;       // inserted rules' records, in chain order
  std::vector<uint32_t> anchors;  // per overlay record: the main index it precedes
  std::vector<std::pair<uint32_t, uint32_t>> dead;  // deleted main records, [lo, hi)
  int policy = -1;                // the policy's new action (ACCEPT/DROP), -1 = unchanged
};

struct RulesetEdits {
  uint64_t base_generation = 0;  // the full build these edits apply to
  uint32_t rule_count = 0;       // rule ids in use, inserted ones included
  TableEditSpec<RuleRecord4> v4;
  TableEditSpec<RuleRecord6> v6;
};

// A worker's per-rule counters under one generation: the base build's ids,
// then the inserted rules' ids.
struct RuleCounterView {
  RuleCounterArray* base;
  RuleCounterArray* edits;  // null until the first edit
  RuleCounter* find(uint32_t id) const {
    if (id < base->size()) return &(*base)[id];
    id -= base->size();
    return edits && id < edits->size() ? &(*edits)[id] : nullptr;
  }
};

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
                                        size_t image_len = 0, std::string* image_error = nullptr,
                                        ext::ExtStateRegistry* states = nullptr);

  // Inserted rule ids a chain of edits may use before a full rebuild.
  static constexpr uint32_t kEditRuleIds = 1u << 16;

  // A generation that is `current` with `edits` applied (see SINGLE-RULE
  // EDITS): shares its classifiers and counters, builds only the overlays.
  // Throws std::invalid_argument when the edits do not fit `current`.
  static std::unique_ptr<Ruleset> Derive(const Ruleset& current, RulesetEdits&& edits);

  uint64_t generation = 0;       // set by Dataplane when published (1, 2, ...)
  uint64_t base_generation = 0;  // the full build under any edits (set with generation)

  uint16_t iface_id(uint32_t port) const { return port < iface_ids_.size() ? iface_ids_[port] : 0; }
  uint32_t rule_count() const { return rule_count_; }
  RuleCounterView counters(uint32_t worker) const {
    return {counters_[worker].get(), edit_counters_.empty() ? nullptr : edit_counters_[worker].get()};
  }
  uint32_t workers() const { return uint32_t(counters_.size()); }
  // Whether a family has raw tables (the dataplane walks them before
  // conntrack only then).
  bool has_raw4() const { return cls4_[uint32_t(Hook::kRawPrerouting)] || cls4_[uint32_t(Hook::kRawOutput)]; }
  bool has_raw6() const { return cls6_[uint32_t(Hook::kRawPrerouting)] || cls6_[uint32_t(Hook::kRawOutput)]; }
  // Records of the FORWARD tables.
  uint32_t records4() const { return fwd4_ ? fwd4_->size() : 0; }
  uint32_t records6() const { return fwd6_ ? fwd6_->size() : 0; }
  // Records in the edit overlays (0 without edits).
  uint32_t overlay_records() const;
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
  // Records with match programs (extensions/ext_table.h) run them with
  // v.ext_context(), and tell v.OnExt() that the walk is not a function of
  // the key alone; &kHotDrop means a match dropped the packet itself. A key
  // with kKeyL4Truncated takes the hot-drop walk (dataplane/hotdrop.h),
  // which returns &kL4HotDrop / &kL4HotDropBound when an L4 rule drops it.
  template <typename V>
  const RuleCommon* Forward(const PacketKey4& key, V& v) const {
    if ((key.c.flags & kKeyL4Truncated) && fwd4_) {
      const auto gate = [&](uint32_t r, uint32_t* next) { return ExtGate(fwd4_->record(r).c, t4_[kFwd], r, key, v, next); };
      return edits4_ ? HotdropWalkEdited(*fwd4_, *hot4_[kFwd], *edits4_, key, v, kHotdropBudget, gate, &kHotDrop)
                     : HotdropWalk(*fwd4_, *hot4_[kFwd], key, v, kHotdropBudget, gate, &kHotDrop);
    }
    return edits4_ ? WalkEdited(*fwd4_, t4_[kFwd], *edits4_, key, v) : Walk(fwd4_, t4_[kFwd], key, v);
  }
  template <typename V>
  const RuleCommon* Forward(const PacketKey6& key, V& v) const {
    if ((key.c.flags & kKeyL4Truncated) && fwd6_) {
      const auto gate = [&](uint32_t r, uint32_t* next) { return ExtGate(fwd6_->record(r).c, t6_[kFwd], r, key, v, next); };
      return edits6_ ? HotdropWalkEdited(*fwd6_, *hot6_[kFwd], *edits6_, key, v, kHotdropBudget, gate, &kHotDrop)
                     : HotdropWalk(*fwd6_, *hot6_[kFwd], key, v, kHotdropBudget, gate, &kHotDrop);
    }
    return edits6_ ? WalkEdited(*fwd6_, t6_[kFwd], *edits6_, key, v) : Walk(fwd6_, t6_[kFwd], key, v);
  }
  // The same walk through the table of `hook` (host mode: INPUT for frames
  // to the host, OUTPUT for frames from it), truncated keys included.
  // Single-rule edits apply to FORWARD only (edits of other chains
  // rebuild); a family without the hook's table accepts. The raw hooks
  // walk the same way (their NOTRACK rules set ext::Context::notrack).
  template <typename K, typename V>
  const RuleCommon* Filter(Hook hook, const K& key, V& v) const {
    const uint32_t h = uint32_t(hook);
    if (h == kFwd || h >= kHooks) return Forward(key, v);
    if constexpr (std::is_same<K, PacketKey4>::value) return WalkHook(cls4_[h], hot4_[h].get(), t4_[h], key, v);
    else return WalkHook(cls6_[h], hot6_[h].get(), t6_[h], key, v);
  }
  static const RuleCommon kAcceptAll;
  static const RuleCommon kHotDrop;
  // The states of this generation's stateful matches.
  const ext::ExtTable* ext() const { return ext_.get(); }

 private:
  Ruleset() = default;

  // A main record's match program, as the hot-drop walks' gate (hotdrop.h).
  template <typename K, typename V>
  int ExtGate(const RuleCommon& c, uint32_t table, uint32_t r, const K& key, V& v, uint32_t* next) const {
    if (!(c.flags & kRuleHasExt) || !ext_) return kGateTake;
    v.OnExt();
    const ext::Entry* x = ext_->Find(table, r);
    if (!x) return kGateTake;
    const int ok = ext_->Run(*x, key, v.ext_context());
    if (ok == kGateSkip) *next = x->fail;
    return ok;
  }

  // Walk, or the hot-drop walk for a truncated key (a table other than
  // FORWARD: no edits there).
  template <typename C, typename H, typename K, typename V>
  const RuleCommon* WalkHook(const C* cls, const H* hot, uint32_t table, const K& key, V& v) const {
    if ((key.c.flags & kKeyL4Truncated) && cls && hot) {
      const auto gate = [&](uint32_t r, uint32_t* next) { return ExtGate(cls->record(r).c, table, r, key, v, next); };
      return HotdropWalk(*cls, *hot, key, v, kHotdropBudget, gate, &kHotDrop);
    }
    return Walk(cls, table, key, v);
  }

  template <typename C, typename K, typename V>
  const RuleCommon* Walk(const C* cls, uint32_t table, const K& key, V& v) const {
    if (!cls) return &kAcceptAll;
    const Verdict verdict = ext::EvaluateExt(
        *cls, ext_.get(), table, key, v.ext_context(),
        [cls, &v](uint32_t i) {
          const RuleCommon& r = cls->record(i).c;
          v.OnMatch(r);
          if (Action(r.action) == Action::kLog) v.OnLog(r);
        },
        [&v] { v.OnExt(); });
    if (verdict.index == ext::kHotDrop) return &kHotDrop;
    if (verdict.index == kNoMatch) return nullptr;
    return &cls->record(verdict.index).c;
  }

  // One family's edits over its main classifier C.
  template <typename C>
  struct TableEdits {
    std::unique_ptr<C> overlay;     // null when nothing is inserted
    std::vector<uint32_t> anchors;  // per overlay record, non-decreasing
    std::vector<std::pair<uint32_t, uint32_t>> dead;  // sorted, disjoint [lo, hi)
    bool policy_override = false;
    RuleCommon policy{};            // the main policy record with the new action
    HotdropIndexFor<C> overlay_hot;  // the overlay's L4 records (hotdrop.h)
  };

  // The first live main record >= start matching key: a match inside a
  // dead range resumes after the range.
  template <typename C, typename K>
  static uint32_t LookupLive(const C& cls, const TableEdits<C>& e, const K& key, uint32_t start) {
    for (;;) {
      if (start >= cls.size()) return kNoMatch;
      const uint32_t r = cls.Lookup(key, start);
      if (r == kNoMatch || e.dead.empty()) return r;
      auto it = std::upper_bound(e.dead.begin(), e.dead.end(), std::make_pair(r, UINT32_MAX));
      if (it == e.dead.begin() || r >= std::prev(it)->second) return r;
      start = std::prev(it)->second;
    }
  }

  // Evaluate (table_set.h) over the main table and the overlay merged.
  template <typename C, typename K, typename V>
  const RuleCommon* WalkEdited(const C& cls, uint32_t table, const TableEdits<C>& e, const K& key,
                               V& v) const {
    const uint32_t n_over = e.overlay ? e.overlay->size() : 0;
    const uint32_t policy = cls.size() - 1;
    uint32_t m = 0, o = 0;
    for (;;) {
      const uint32_t mi = LookupLive(cls, e, key, m);
      const uint32_t oi = o < n_over ? e.overlay->Lookup(key, o) : kNoMatch;
      const bool over = oi != kNoMatch && (mi == kNoMatch || e.anchors[oi] <= mi);
      if (!over && mi == kNoMatch) return nullptr;
      const RuleCommon& r = over ? e.overlay->record(oi).c : cls.record(mi).c;
      // A main record's match program (overlay records have none: rules
      // with extension matches are edited by a rebuild).
      if (!over && (r.flags & kRuleHasExt) && ext_) {
        v.OnExt();
        if (const ext::Entry* x = ext_->Find(table, mi)) {
          const int ok = ext_->Run(*x, key, v.ext_context());
          if (ok == 2) return &kHotDrop;
          if (!ok) {
            m = x->fail;  // validated: > mi
            continue;
          }
        }
      }
      v.OnMatch(r);
      const Action a = Action(r.action);
      if (a == Action::kLog) v.OnLog(r);
      if (a != Action::kLog && a != Action::kCount && a != Action::kSkip) {
        return !over && mi == policy && e.policy_override ? &e.policy : &r;
      }
      if (over) {  // Derive checked: oi < arg <= n_over
        o = r.arg;
        m = std::max(m, e.anchors[oi]);
      } else {     // validation checked: mi < arg < size
        m = r.arg;
        if (r.flags & kRuleReturnsToPolicy) {
          o = n_over;
        } else {
          const uint32_t first = uint32_t(std::lower_bound(e.anchors.begin(), e.anchors.end(), m) -
                                          e.anchors.begin());
          o = std::max(o, first);
        }
      }
    }
  }

  size_t OverlayBytes() const;
  template <typename C, typename Rec>
  static std::unique_ptr<TableEdits<C>> MakeEdits(const C* main, TableEditSpec<Rec>&& spec,
                                                  uint32_t rule_count, const char* name);

  static constexpr uint32_t kHooks = kHookCount;           // Hook: filter's three, raw's two
  static constexpr uint32_t kFwd = uint32_t(Hook::kForward);
  std::shared_ptr<const TableSet> tables_;
  const Classifier4* cls4_[kHooks] = {};  // per hook, owned by tables_ (null: no such table)
  const Classifier6* cls6_[kHooks] = {};
  uint32_t t4_[kHooks] = {}, t6_[kHooks] = {};  // their table indexes (extension entries name them)
  const Classifier4* fwd4_ = nullptr;     // cls4_[kFwd]
  const Classifier6* fwd6_ = nullptr;
  // Every table's L4 records, for truncated keys (hotdrop.h); set with
  // cls4_/cls6_ and shared by derived generations.
  std::shared_ptr<const HotdropIndex<RuleRecord4>> hot4_[kHooks];
  std::shared_ptr<const HotdropIndex<RuleRecord6>> hot6_[kHooks];
  // Match programs and the states they use; shared by derived generations.
  std::shared_ptr<const ext::ExtTable> ext_;
  std::shared_ptr<ext::ExtStateRegistry> own_states_;  // when Build got no registry
  std::vector<uint16_t> iface_ids_;
  uint32_t rule_count_ = 0;
  double build_seconds_ = 0;
  size_t memory_bytes_ = 0;
  // Shared by every generation derived from the same base build.
  std::vector<std::shared_ptr<RuleCounterArray>> counters_;       // ids < base count
  std::vector<std::shared_ptr<RuleCounterArray>> edit_counters_;  // inserted rules' ids
  uint32_t base_rule_count_ = 0;
  std::shared_ptr<const TableEdits<Classifier4>> edits4_;
  std::shared_ptr<const TableEdits<Classifier6>> edits6_;
};

}  // namespace flatwall
