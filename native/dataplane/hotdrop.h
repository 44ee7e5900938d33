// The kernel's "hotdrop" of a packet whose L4 header is cut short, for the
// rule walks of the dataplane (dataplane/ruleset.h) and of `flatwall replay`
// (addon/replay_binding.cc).
//
// WHAT THE KERNEL DOES
// ====================
//
// ipt_do_table / ip6t_do_table (net/ipv4/netfilter/ip_tables.c,
// net/ipv6/netfilter/ip6_tables.c) walk the rules; for each rule first
// ip_packet_match (addresses, interfaces, protocol, fragment flag), then
// every match in the order the rule lists them. A match that must read the
// L4 header of a first fragment or unfragmented packet and cannot -- tcp_mt
// and udp_mt (net/netfilter/xt_tcpudp.c: `th = skb_header_pointer(...,
// sizeof(_tcph), ...); if (th == NULL) { par->hotdrop = true; return false;
// }`), sctp_mt, dccp_mt, multiport_mt, icmp_match, icmp6_match -- sets
// hotdrop and fails; the rule loop `do { ... } while (!acpar.hotdrop)`
// ends and the packet is NF_DROP. The rule's counter is not incremented
// (ADD_COUNTER runs only after every match passed); rules matched before it
// (LOG, jumps) were counted. A packet that meets no such match is judged by
// the other rules like a later fragment (whose key has no L4 either).
//
// So the packet is dropped at the first rule, in walk order, that has an
// L4 match and whose tests BEFORE that match all pass.
//
// THE MODEL
// =========
//
// The parser gives such a packet a key without kKeyHasL4 and with
// kKeyL4Truncated (parse.h), so an ordinary lookup never matches a
// kRuleNeedsL4 record: lookup(key, start) = i is the next record the packet
// would match if no L4 rule were in its way. The packet hot-drops in that
// step iff some kRuleNeedsL4 record c in [start, i) REACHES its L4 match:
//
//   - its protocol, iif and oif ranges hold the key's (ip_packet_match);
//   - its ct mask holds the key's state, unless the rule tests conntrack /
//     state after its L4 match (kRuleL4BeforeCt: then the kernel never got
//     that far);
//   - its address ranges hold the key's, unless the rule tests iprange
//     after its L4 match (kRuleL4BeforeAddr; -s/-d are ip_packet_match's
//     and always come first, but the record merges them with iprange's);
//   - its ports, ICMP type/code and TCP flags (the L4 part) are not looked at.
//
// Records of inlined chains carry the jump rule's condition, and the jump
// rule's own COUNT record precedes them, so a jump with an L4 match drops
// there (uncounted), as in the kernel. The walk reports every record it
// matched before the drop (counters, LOG) and then returns kL4HotDrop.
//
// WHY NOT ONE LOOKUP
// ==================
//
// "The first record >= start whose non-L4 fields match" is a first-match
// query over the records with their L4 fields wildcarded, i.e. over a
// different table. No key answers it in the classifier as built: the tuple
// tables hash ports (exact-port tuples, and tables tightened to their
// records' port prefixes) and the fallback trees cut on ports, so records
// `-s A --dport 22` and `-s B --dport 80` sit in buckets that no single port
// value reaches both of, and a packet from A and one from B would need keys
// with different ports -- which is the lookup itself. Answering it exactly
// needs a second classifier over the projected records (up to the table's
// size again, and its build time). This file does without one:
//
//   - HotdropIndex: the kRuleNeedsL4 record indices, ascending, per
//     protocol value (records whose protocol range is a single value, which
//     every L4 match requires: -m tcp needs -p tcp ...), plus one list for
//     the rare wider ranges. 4 bytes per needsL4 record, built in O(n).
//   - per walk step, the candidates of the key's protocol in [start, i)
//     (binary search) are tested exactly, one record each, in index order,
//     at most `budget` (kHotdropBudget) tests per packet in total. A
//     candidate that reaches its L4 match drops the packet: exact. No
//     candidate left before i: no hot-drop in this step: exact. The budget
//     spent with candidates left: the packet is dropped anyway (kL4HotDropBound,
//     counted apart): fail closed. The result is therefore exact whenever
//     the packet's walk passes at most `budget` L4 records of its protocol,
//     and otherwise errs only towards dropping.
//
// Known deviations from the kernel (all but the last err towards dropping):
//   - the budget, above;
//   - the hot-drop test of an L4 record does not run the rule's match
//     program (extensions/ext_table.h: limit, recent, ttl, length, ...):
//     a program the kernel would have run before the L4 match and found
//     false is taken as passing;
//   - a rule with conntrack/state (iprange) both before and after its L4
//     match, or inlined under a jump that tests them, is tested without
//     any ct mask (addresses): the record merges them;
//   - -m multiport reads only the 4 port bytes (multiport_mt hotdrops
//     below that): a TCP, UDP, SCTP or DCCP header of at least 4 bytes that
//     the parser calls truncated hot-drops at a multiport rule here, where
//     the kernel would match its ports;
//   - a rule that can never match any packet (`--tcp-flags` whose
//     comparison has bits outside its mask, `! --icmp-type any`) compiles
//     to no record, so it cannot hot-drop; the kernel's match reads the
//     header first and would.
//
// Cost: nothing for a frame with a whole header. A truncated frame pays its
// lookups plus one binary search per walk step and at most `budget` record
// tests; the flow cache keys on kKeyL4Truncated too, so a repeated one
// replays its outcome.
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "classifier/classifier.h"
#include "classifier/family.h"
#include "classifier/packet_key.h"
#include "classifier/rule_table.h"
#include "classifier/table_set.h"

namespace flatwall {

// Record tests a truncated packet may cost, all walk steps together.
constexpr uint32_t kHotdropBudget = 32;

// The walk's answer for a hot-dropped packet: a DROP that is no rule's
// (rule_id past every counter, never counted). kL4HotDropBound: the budget
// ran out before the candidates did (fail closed).
inline const RuleCommon kL4HotDrop = [] {
  RuleCommon c{};
  c.rule_id = UINT32_MAX;
  c.action = uint8_t(Action::kDrop);
  return c;
}();
inline const RuleCommon kL4HotDropBound = [] {
  RuleCommon c{};
  c.rule_id = UINT32_MAX;
  c.action = uint8_t(Action::kDrop);
  return c;
}();

// Does record r's rule reach its L4 match for truncated key k? (See THE MODEL.)
template <typename Rec>
inline bool ReachesL4Match(const Rec& r, const typename detail::Family<Rec>::Key& k) {
  using F = detail::Family<Rec>;
  const RuleCommon& c = r.c;
  const KeyCommon& kc = k.c;
  if (kc.proto < c.proto_lo || kc.proto > c.proto_hi) return false;
  if (kc.iif < c.iif_lo || kc.iif > c.iif_hi) return false;
  if (kc.oif < c.oif_lo || kc.oif > c.oif_hi) return false;
  if (!(c.flags & kRuleL4BeforeCt) && (kc.ct_state & c.ct_state_mask) == 0) return false;
  if (!(c.flags & kRuleL4BeforeAddr)) {
    const auto src = F::Src(k), dst = F::Dst(k);
    if (src < F::SrcLo(r) || src > F::SrcHi(r)) return false;
    if (dst < F::DstLo(r) || dst > F::DstHi(r)) return false;
  }
  return true;
}

enum class HotStep : uint8_t {
  kNone,   // no kRuleNeedsL4 record in the range reaches its L4 match
  kDrop,   // one does
  kBound,  // the budget ran out first
};

template <typename Rec>
class HotdropIndex {
 public:
  HotdropIndex() = default;
  // From the records of classifier `cls` (anything with size() and record(i)).
  template <typename C>
  explicit HotdropIndex(const C& cls) {
    const uint32_t count = cls.size();
    start_.assign(257, 0);
    for (uint32_t i = 0; i < count; ++i) {
      const RuleCommon& c = cls.record(i).c;
      if (!(c.flags & kRuleNeedsL4)) continue;
      if (c.proto_lo == c.proto_hi) ++start_[c.proto_lo + 1];
      else wide_.push_back(i);
    }
    for (uint32_t p = 1; p < 257; ++p) start_[p] += start_[p - 1];
    ids_.resize(start_[256]);
    std::vector<uint32_t> at(start_.begin(), start_.end() - 1);
    for (uint32_t i = 0; i < count; ++i) {
      const RuleCommon& c = cls.record(i).c;
      if ((c.flags & kRuleNeedsL4) && c.proto_lo == c.proto_hi) ids_[at[c.proto_lo]++] = i;
    }
  }

  size_t memory_bytes() const { return (start_.size() + ids_.size() + wide_.size()) * sizeof(uint32_t); }

  // Is there a kRuleNeedsL4 record c in [lo, hi), not dead(c), that
  // reaches its L4 match for k? Each record tested costs one unit of
  // *budget.
  template <typename C, typename Key, typename Dead>
  HotStep Find(const C& cls, const Key& k, uint32_t lo, uint32_t hi, uint32_t* budget,
               Dead&& dead) const {
    if (lo >= hi || start_.empty()) return HotStep::kNone;
    const uint32_t* b = ids_.data() + start_[k.c.proto];
    const uint32_t* e = ids_.data() + start_[k.c.proto + 1];
    HotStep s = Scan(cls, k, b, e, lo, hi, budget, dead);
    if (s != HotStep::kNone || wide_.empty()) return s;
    return Scan(cls, k, wide_.data(), wide_.data() + wide_.size(), lo, hi, budget, dead);
  }

 private:
  template <typename C, typename Key, typename Dead>
  static HotStep Scan(const C& cls, const Key& k, const uint32_t* b, const uint32_t* e, uint32_t lo,
                      uint32_t hi, uint32_t* budget, Dead& dead) {
    for (const uint32_t* p = std::lower_bound(b, e, lo); p != e && *p < hi; ++p) {
      if (*budget == 0) return HotStep::kBound;
      --*budget;
      if (!dead(*p) && ReachesL4Match(cls.record(*p), k)) return HotStep::kDrop;
    }
    return HotStep::kNone;
  }

  std::vector<uint32_t> start_;  // 257 entries: protocol p's records are ids_[start_[p], start_[p + 1])
  std::vector<uint32_t> ids_;
  std::vector<uint32_t> wide_;   // needsL4 records whose protocol range is not one value
};

template <typename C>
struct ClassifierRecord;
template <>
struct ClassifierRecord<Classifier4> {
  using type = RuleRecord4;
};
template <>
struct ClassifierRecord<Classifier6> {
  using type = RuleRecord6;
};
// The index of classifier type C's records.
template <typename C>
using HotdropIndexFor = HotdropIndex<typename ClassifierRecord<C>::type>;

// What a record's match program (extensions/ext_table.h) said, for the
// walks below: the gate is called with each record the lookup found and
// returns kGateTake (no program, or it passed), kGateSkip (it failed: go on
// at *next, the first record after the rule) or kGateDrop (the program
// dropped the packet itself). Match programs of L4 records never run for a
// truncated key: such a record is never found, and its hot-drop test
// counts the program as passing (sound: it can only drop more).
enum GateResult : int { kGateSkip = 0, kGateTake = 1, kGateDrop = 2 };
struct NoGate {
  int operator()(uint32_t, uint32_t*) const { return kGateTake; }
};

// How a truncated key's walk ended besides a verdict.
enum class HotEnd : uint8_t { kNone, kL4, kL4Bound, kGateDrop };

// Evaluate (classifier/table_set.h; ext::EvaluateExt with the gate) for a
// truncated key: the same walk, but each step first asks `hot` whether an
// L4 rule on the way drops the packet. *end says whether it was dropped
// that way (kL4, or kL4Bound when the budget decided), by a match program
// (kGateDrop), or not (kNone: the Verdict says).
template <typename C, typename Rec, typename Key, typename OnMatch, typename Gate = NoGate>
Verdict EvaluateTruncated(const C& cls, const HotdropIndex<Rec>& hot, const Key& key,
                          OnMatch&& on_match, HotEnd* end, uint32_t budget = kHotdropBudget,
                          Gate&& gate = Gate()) {
  *end = HotEnd::kNone;
  const auto live = [](uint32_t) { return false; };
  uint32_t start = 0;
  for (;;) {
    const uint32_t r = cls.Lookup(key, start);
    const HotStep s = hot.Find(cls, key, start, r == kNoMatch ? cls.size() : r, &budget, live);
    if (s != HotStep::kNone) {
      *end = s == HotStep::kDrop ? HotEnd::kL4 : HotEnd::kL4Bound;
      return Verdict{Action::kDrop, 0, kNoMatch};
    }
    if (r == kNoMatch) return Verdict{Action::kDrop, 0, kNoMatch};
    uint32_t next = 0;
    const int g = gate(r, &next);
    if (g == kGateDrop) {
      *end = HotEnd::kGateDrop;
      return Verdict{Action::kDrop, 0, kNoMatch};
    }
    if (g == kGateSkip) {
      if (next <= r) return Verdict{Action::kDrop, 0, kNoMatch};
      start = next;
      continue;
    }
    on_match(r);
    Verdict verdict{};
    if (!TakeRecord(cls.record(r).c, r, &start, &verdict)) return verdict;
  }
}

// Ruleset::Walk for a truncated key (see Ruleset::Forward): the terminal
// record, &kL4HotDrop / &kL4HotDropBound, `gate_drop` when a match program
// dropped the packet, or null.
template <typename C, typename Rec, typename K, typename V, typename Gate = NoGate>
const RuleCommon* HotdropWalk(const C& cls, const HotdropIndex<Rec>& hot, const K& key, V& v,
                              uint32_t budget = kHotdropBudget, Gate&& gate = Gate(),
                              const RuleCommon* gate_drop = nullptr) {
  HotEnd end;
  const Verdict verdict = EvaluateTruncated(
      cls, hot, key,
      [&cls, &v](uint32_t i) {
        const RuleCommon& r = cls.record(i).c;
        v.OnMatch(r);
        if (Action(r.action) == Action::kLog) v.OnLog(r);
      },
      &end, budget, gate);
  if (end == HotEnd::kL4) return &kL4HotDrop;
  if (end == HotEnd::kL4Bound) return &kL4HotDropBound;
  if (end == HotEnd::kGateDrop) return gate_drop;
  if (verdict.index == kNoMatch) return nullptr;
  return &cls.record(verdict.index).c;
}

// Ruleset::WalkEdited for a truncated key: the main table and the overlay
// merged as there (an overlay record precedes main record x iff its anchor
// <= x; dead main records never match), and before each step the L4
// records of both lists that come before the step's match in merged order
// are asked. The gate runs for main records (overlay records have no match
// programs). `E` is Ruleset's TableEdits (overlay, overlay_hot, anchors,
// dead, policy_override, policy). Keep in step with Ruleset::WalkEdited.
template <typename C, typename Rec, typename E, typename K, typename V, typename Gate = NoGate>
const RuleCommon* HotdropWalkEdited(const C& cls, const HotdropIndex<Rec>& hot, const E& e,
                                    const K& key, V& v, uint32_t budget = kHotdropBudget,
                                    Gate&& gate = Gate(), const RuleCommon* gate_drop = nullptr) {
  const uint32_t n_over = e.overlay ? e.overlay->size() : 0;
  const uint32_t n_main = cls.size();
  const uint32_t policy = n_main - 1;
  const auto dead_at = [&e](uint32_t r) -> const std::pair<uint32_t, uint32_t>* {
    auto it = std::upper_bound(e.dead.begin(), e.dead.end(), std::make_pair(r, UINT32_MAX));
    if (it == e.dead.begin() || r >= std::prev(it)->second) return nullptr;
    return &*std::prev(it);
  };
  const auto dead = [&dead_at](uint32_t r) { return dead_at(r) != nullptr; };
  const auto live = [](uint32_t) { return false; };
  const auto lookup_live = [&](uint32_t start) {  // Ruleset::LookupLive
    for (;;) {
      if (start >= n_main) return kNoMatch;
      const uint32_t r = cls.Lookup(key, start);
      if (r == kNoMatch) return r;
      const auto* d = dead_at(r);
      if (!d) return r;
      start = d->second;
    }
  };
  uint32_t m = 0, o = 0;
  for (;;) {
    const uint32_t mi = lookup_live(m);
    const uint32_t oi = o < n_over ? e.overlay->Lookup(key, o) : kNoMatch;
    const bool over = oi != kNoMatch && (mi == kNoMatch || e.anchors[oi] <= mi);
    // What comes before the step's match: main records below its main
    // position, overlay records below its overlay position.
    const uint32_t main_end = over ? std::max(m, e.anchors[oi]) : (mi == kNoMatch ? n_main : mi);
    uint32_t over_end = n_over;
    if (over) over_end = oi;
    else if (mi != kNoMatch)
      over_end = uint32_t(std::upper_bound(e.anchors.begin(), e.anchors.end(), mi) - e.anchors.begin());
    over_end = std::max(over_end, o);
    HotStep s = hot.Find(cls, key, m, main_end, &budget, dead);
    if (s == HotStep::kNone && n_over) s = e.overlay_hot.Find(*e.overlay, key, o, over_end, &budget, live);
    if (s != HotStep::kNone) return s == HotStep::kDrop ? &kL4HotDrop : &kL4HotDropBound;
    if (!over && mi == kNoMatch) return nullptr;
    const RuleCommon& r = over ? e.overlay->record(oi).c : cls.record(mi).c;
    if (!over) {
      uint32_t next = 0;
      const int g = gate(mi, &next);
      if (g == kGateDrop) return gate_drop;
      if (g == kGateSkip) {
        if (next <= mi) return nullptr;
        m = next;
        continue;
      }
    }
    v.OnMatch(r);
    const Action a = Action(r.action);
    if (a == Action::kLog) v.OnLog(r);
    if (a != Action::kLog && a != Action::kCount && a != Action::kSkip) {
      return !over && mi == policy && e.policy_override ? &e.policy : &r;
    }
    if (over) {
      o = r.arg;
      m = std::max(m, e.anchors[oi]);
    } else {
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

}  // namespace flatwall
