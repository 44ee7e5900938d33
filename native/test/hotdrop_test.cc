// The hot-drop walk for truncated L4 headers (dataplane/hotdrop.h) against
// an independent reference: the kernel's rule loop written out record by
// record (drop at the first kRuleNeedsL4 record whose pre-L4 tests pass,
// else first match as usual). With an unlimited budget the two must agree
// exactly (verdict, hot-drop, every matched record in order); with a small
// one the walk may only fail closed (kL4HotDropBound) where the reference
// goes on, never forward what the reference drops. The edited walk
// (overlay + dead ranges, as Ruleset::Derive builds them) is checked
// against the plain walk over the same table flattened by hand.
#include <algorithm>
#include <memory>
#include <type_traits>
#include <vector>

#include "classifier/trace.h"
#include "dataplane/hotdrop.h"
#include "dataplane/ruleset.h"
#include "test/dataplane_test_rules.h"
#include "test/dataplane_testing.h"
#include "test/synth.h"

namespace flatwall {
namespace {

constexpr uint32_t kUnlimited = UINT32_MAX;

struct Rng {
  uint64_t s;
  uint64_t Next() {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    return s;
  }
  uint32_t Below(uint32_t n) { return n ? uint32_t(Next() % n) : 0; }
  bool Chance(double p) { return double(Next() % 1000000) < p * 1000000; }
};

// What a walk did: the rule ids of the matched records in order (LOG
// events as ~id), and how it ended.
struct Trail {
  std::vector<uint32_t> seen;
  ext::Context cx;
  void OnMatch(const RuleCommon& r) { seen.push_back(r.rule_id); }
  void OnLog(const RuleCommon& r) { seen.push_back(~r.rule_id); }
  void OnExt() {}
  const ext::Context& ext_context() const { return cx; }
};

// The pre-L4 tests, written again (not hotdrop.h's ReachesL4Match).
template <typename Rec, typename Key>
bool RefReaches(const Rec& r, const Key& k) {
  using F = detail::Family<Rec>;
  const RuleCommon& c = r.c;
  bool ok = c.proto_lo <= k.c.proto && k.c.proto <= c.proto_hi;
  ok = ok && c.iif_lo <= k.c.iif && k.c.iif <= c.iif_hi && c.oif_lo <= k.c.oif && k.c.oif <= c.oif_hi;
  if (!(c.flags & kRuleL4BeforeCt)) ok = ok && (c.ct_state_mask & k.c.ct_state);
  if (!(c.flags & kRuleL4BeforeAddr)) {
    ok = ok && F::SrcLo(r) <= F::Src(k) && F::Src(k) <= F::SrcHi(r);
    ok = ok && F::DstLo(r) <= F::Dst(k) && F::Dst(k) <= F::DstHi(r);
  }
  return ok;
}

enum End : uint8_t { kTerminal, kHot, kNothing };
struct RefResult {
  End end;
  uint32_t rule_id;  // kTerminal
  Trail trail;
};

// The kernel's loop over the flat table.
template <typename Rec, typename Key>
RefResult Reference(const std::vector<Rec>& recs, const Key& k) {
  RefResult out{kNothing, 0, {}};
  for (uint32_t i = 0; i < recs.size();) {
    const Rec& r = recs[i];
    if ((r.c.flags & kRuleNeedsL4) && RefReaches(r, k)) {
      out.end = kHot;
      return out;
    }
    if (!detail::Matches(r, k)) {
      ++i;
      continue;
    }
    out.trail.OnMatch(r.c);
    const Action a = Action(r.c.action);
    if (a == Action::kLog) out.trail.OnLog(r.c);
    if (a == Action::kLog || a == Action::kCount || a == Action::kSkip) {
      i = r.c.arg;
      continue;
    }
    out.end = kTerminal;
    out.rule_id = r.c.rule_id;
    return out;
  }
  return out;
}

template <typename Rec>
void Decorate(std::vector<Rec>* recs, Rng* rng) {
  for (uint32_t i = 0; i < recs->size(); ++i) {
    RuleCommon& c = (*recs)[i].c;
    c.rule_id = i;  // one id per record: trails compare records
    if (!(c.flags & kRuleNeedsL4)) continue;
    // Fewer L4 rules than synth makes, or a truncated key rarely gets past one.
    if (rng->Chance(0.7)) {
      c.flags &= uint8_t(~kRuleNeedsL4);
      continue;
    }
    if (rng->Chance(0.2)) c.flags |= kRuleL4BeforeCt;
    if (rng->Chance(0.1)) c.flags |= kRuleL4BeforeAddr;
    // Most L4 rules name one protocol, as -m tcp/udp/icmp require.
    if (rng->Chance(0.9)) c.proto_lo = c.proto_hi = uint8_t("\x06\x11\x01\x3a\x84"[rng->Below(5)]);
  }
}

template <typename Key>
void Truncate(Key* k, Rng* rng) {
  k->c.flags = kKeyL4Truncated;
  k->c.sport = k->c.dport = k->c.icmp = 0;
  k->c.tcp_flags = 0;
  k->c.ct_state = uint8_t(1u << rng->Below(5));
  if (rng->Chance(0.7)) k->c.proto = uint8_t("\x06\x11\x01\x3a\x84"[rng->Below(5)]);
  k->c.iif = uint16_t(rng->Below(12)), k->c.oif = uint16_t(rng->Below(12));
}

// Compares one walk result with the reference. `budget` limited: the walk
// may end in kL4HotDropBound with a prefix of the reference's trail.
bool Agrees(const RefResult& ref, const RuleCommon* got, const Trail& trail, bool limited) {
  if (got == &kL4HotDropBound) {
    if (!limited) return false;
    return trail.seen.size() <= ref.trail.seen.size() &&
           std::equal(trail.seen.begin(), trail.seen.end(), ref.trail.seen.begin());
  }
  if (trail.seen != ref.trail.seen) return false;
  if (got == &kL4HotDrop) return ref.end == kHot;
  if (!got) return ref.end == kNothing;
  return ref.end == kTerminal && got->rule_id == ref.rule_id;
}

template <typename Rec, typename Key>
void CheckPlain(const std::vector<Rec>& recs, std::vector<Key> keys, uint64_t seed) {
  auto cls = BuildClassifier(recs.data(), uint32_t(recs.size()));
  const HotdropIndex<Rec> hot(*cls);
  Rng rng{seed};
  uint64_t bad = 0, hot_drops = 0, judged = 0, bounded = 0;
  for (Key& k : keys) {
    Truncate(&k, &rng);
    const RefResult ref = Reference(recs, k);
    Trail t1, t2;
    const RuleCommon* exact = HotdropWalk(*cls, hot, k, t1, kUnlimited);
    const RuleCommon* small = HotdropWalk(*cls, hot, k, t2, 2);
    bad += !Agrees(ref, exact, t1, false);
    bad += !Agrees(ref, small, t2, true);
    hot_drops += ref.end == kHot;
    judged += ref.end == kTerminal;
    bounded += small == &kL4HotDropBound;
    // EvaluateTruncated (replay's walk) is the same walk.
    HotEnd end;
    const Verdict v = EvaluateTruncated(*cls, hot, k, [](uint32_t) {}, &end, kUnlimited);
    bad += end != (exact == &kL4HotDrop ? HotEnd::kL4 : HotEnd::kNone);
    if (end == HotEnd::kNone && exact) bad += v.index == kNoMatch || cls->record(v.index).c.rule_id != exact->rule_id;
  }
  DP_CHECK_EQ(bad, 0u);
  // Both outcomes occur, and the small budget did decide some.
  DP_CHECK(hot_drops > keys.size() / 50 && judged > keys.size() / 50);
  DP_CHECK(bounded > 0);
}

DP_TEST(HotdropWalkMatchesKernelLoopV4) {
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    Rng rng{seed * 977};
    auto recs = synth::Rules4(synth::Shape::kExtras, 1500, seed);
    Decorate(&recs, &rng);
    TraceOptions o;
    o.seed = seed;
    CheckPlain(recs, MakeTrace(recs.data(), uint32_t(recs.size()), 6000, o), seed);
  }
}

DP_TEST(HotdropWalkMatchesKernelLoopV6) {
  for (uint64_t seed = 5; seed <= 6; ++seed) {
    Rng rng{seed * 977};
    auto recs = synth::Rules6(synth::Shape::kExtras, 1500, seed);
    Decorate(&recs, &rng);
    TraceOptions o;
    o.seed = seed;
    CheckPlain(recs, MakeTrace(recs.data(), uint32_t(recs.size()), 4000, o), seed);
  }
}

// The kernel's own example: a DROP rule with an L4 match ahead of an
// ACCEPT policy drops the truncated packet of its protocol, uncounted;
// other protocols and rules whose earlier tests fail let it through.
DP_TEST(HotdropBasicCases) {
  using namespace dptest;
  auto log_all = Wild(0, Action::kLog, 1);
  auto ssh = ProtoPort(Wild(1, Action::kDrop), 6, 22);  // -p tcp --dport 22 -j DROP
  ssh.ct_state_mask = kCtNew;                           // -m conntrack --ctstate NEW first
  auto policy = Wild(2, Action::kAccept);
  std::vector<RuleRecord4> recs = {Rule4(log_all), Rule4(ssh), Rule4(policy)};
  recs[1].src_lo = recs[1].src_hi = 0x0a000001;  // -s 10.0.0.1
  auto cls = BuildClassifier(recs.data(), 3);
  const HotdropIndex<RuleRecord4> hot(*cls);
  PacketKey4 k;
  k.src = 0x0a000001, k.dst = 2, k.c.proto = 6, k.c.flags = kKeyL4Truncated, k.c.ct_state = kCtNew;
  Trail t;
  DP_CHECK(HotdropWalk(*cls, hot, k, t) == &kL4HotDrop);
  DP_CHECK(t.seen == std::vector<uint32_t>({0u, ~0u}));  // LOGged, the DROP rule uncounted
  k.c.ct_state = kCtInvalid;  // what conntrack makes of it: the ctstate test fails first
  DP_CHECK_EQ(HotdropWalk(*cls, hot, k, t)->rule_id, 2u);
  recs[1].c.flags |= kRuleL4BeforeCt;  // -p tcp --dport 22 -m conntrack --ctstate NEW
  cls = BuildClassifier(recs.data(), 3);
  const HotdropIndex<RuleRecord4> hot2(*cls);
  DP_CHECK(HotdropWalk(*cls, hot2, k, t) == &kL4HotDrop);
  k.c.proto = 17;  // UDP never reaches the TCP rule
  DP_CHECK_EQ(HotdropWalk(*cls, hot2, k, t)->rule_id, 2u);
  k.c.proto = 6, k.src = 0x0a000009;  // nor does another source
  DP_CHECK_EQ(HotdropWalk(*cls, hot2, k, t)->rule_id, 2u);
  recs[1].c.flags |= kRuleL4BeforeAddr;  // ... unless the address test came after the L4 match
  cls = BuildClassifier(recs.data(), 3);
  const HotdropIndex<RuleRecord4> hot3(*cls);
  DP_CHECK(HotdropWalk(*cls, hot3, k, t) == &kL4HotDrop);
  DP_CHECK_EQ(hot3.memory_bytes(), (257u + 1u) * 4u);
  // A match program (the gate) on the LOG record: false skips the rule,
  // "drop" ends the walk with the program's own drop; the L4 rule after it
  // is still a hot-drop when the LOG rule is skipped.
  Trail g;
  const RuleCommon own_drop{};
  const auto skip = [](uint32_t r, uint32_t* next) { return r == 0 ? (*next = 1, int(kGateSkip)) : int(kGateTake); };
  DP_CHECK(HotdropWalk(*cls, hot3, k, g, kHotdropBudget, skip, &own_drop) == &kL4HotDrop);
  DP_CHECK(g.seen.empty());  // the LOG rule did not match
  const auto drop = [](uint32_t r, uint32_t*) { return r == 0 ? int(kGateDrop) : int(kGateTake); };
  DP_CHECK(HotdropWalk(*cls, hot3, k, g, kHotdropBudget, drop, &own_drop) == &own_drop);
}

// ---- edits --------------------------------------------------------------

template <typename C>
struct TestEdits {  // the fields of Ruleset::TableEdits HotdropWalkEdited reads
  std::unique_ptr<C> overlay;
  HotdropIndexFor<C> overlay_hot;
  std::vector<uint32_t> anchors;
  std::vector<std::pair<uint32_t, uint32_t>> dead;
  bool policy_override = false;
  RuleCommon policy{};
};

// main + overlay in merged order, dead records left out, continuation
// indices remapped (an overlay record precedes main record x iff its anchor
// <= x; see the essay in dataplane/ruleset.h).
template <typename Rec>
std::vector<Rec> Flatten(const std::vector<Rec>& main, const std::vector<Rec>& over,
                         const std::vector<uint32_t>& anchors,
                         const std::vector<std::pair<uint32_t, uint32_t>>& dead, int policy_action) {
  const uint32_t n = uint32_t(main.size()), m = uint32_t(over.size());
  auto is_dead = [&](uint32_t x) {
    for (const auto& d : dead)
      if (x >= d.first && x < d.second) return true;
    return false;
  };
  std::vector<Rec> out;
  std::vector<uint32_t> pos_main(n + 1), pos_over(m + 1);
  std::vector<std::pair<bool, uint32_t>> order;
  uint32_t o = 0;
  for (uint32_t x = 0; x <= n; ++x) {
    while (o < m && anchors[o] <= x) pos_over[o] = uint32_t(order.size()), order.push_back({true, o++});
    if (x == n) break;
    pos_main[x] = uint32_t(order.size());
    if (!is_dead(x)) order.push_back({false, x});
  }
  pos_over[m] = pos_main[n] = uint32_t(order.size());
  for (auto [is_over, i] : order) {
    Rec r = is_over ? over[i] : main[i];
    const Action a = Action(r.c.action);
    if (a == Action::kLog || a == Action::kCount || a == Action::kSkip) {
      if (is_over) r.c.arg = std::min(pos_over[r.c.arg], pos_main[anchors[i]]);
      else if (r.c.flags & kRuleReturnsToPolicy) r.c.arg = pos_main[r.c.arg];
      else r.c.arg = std::min(pos_main[r.c.arg], pos_over[uint32_t(std::lower_bound(anchors.begin(), anchors.end(), r.c.arg) - anchors.begin())]);
    }
    if (!is_over && i == n - 1 && policy_action >= 0) r.c.action = uint8_t(policy_action);
    out.push_back(r);
  }
  return out;
}

template <typename Rec, typename Key>
void CheckEdited(std::vector<Rec> main, std::vector<Key> keys, uint64_t seed) {
  Rng rng{seed};
  const uint32_t n = uint32_t(main.size());
  // Overlay: groups of records at one anchor each (a rule's records),
  // LOG/COUNT continuing inside their group or just past it.
  std::vector<Rec> over;
  std::vector<uint32_t> anchors;
  uint32_t anchor = 0, id = 1000000;
  for (int g = 0; g < 60; ++g) {
    anchor = std::min(n - 1, anchor + rng.Below(2 * n / 60));
    const uint32_t size = 1 + rng.Below(3), first = uint32_t(over.size());
    for (uint32_t j = 0; j < size; ++j) {
      Rec r = main[rng.Below(n - 1)];
      r.c.rule_id = id++;
      r.c.flags &= uint8_t(~kRuleReturnsToPolicy);
      if (Action(r.c.action) == Action::kSkip) r.c.action = uint8_t(Action::kCount);
      if (Action(r.c.action) == Action::kLog || Action(r.c.action) == Action::kCount)
        r.c.arg = first + j + 1 + rng.Below(size - j);
      over.push_back(r);
      anchors.push_back(anchor);
    }
  }
  // Main SKIPs that leave the chain: to the policy, flagged.
  for (uint32_t i = 0; i + 1 < n; ++i) {
    RuleCommon& c = main[i].c;
    if (Action(c.action) == Action::kSkip && rng.Chance(0.3)) c.arg = n - 1, c.flags |= kRuleReturnsToPolicy;
  }
  std::vector<std::pair<uint32_t, uint32_t>> dead;
  for (uint32_t x = rng.Below(40); x + 8 < n - 1; x += 20 + rng.Below(60)) dead.push_back({x, x + 1 + rng.Below(6)});
  const int policy_action = int(Action::kDrop);

  auto cls = BuildClassifier(main.data(), n);
  const HotdropIndex<Rec> hot(*cls);
  TestEdits<std::remove_reference_t<decltype(*cls)>> e;
  e.overlay = BuildClassifier(over.data(), uint32_t(over.size()));
  e.overlay_hot = HotdropIndexFor<std::remove_reference_t<decltype(*cls)>>(*e.overlay);
  e.anchors = anchors;
  e.dead = dead;
  e.policy_override = true;
  e.policy = main[n - 1].c;
  e.policy.action = uint8_t(policy_action);

  const std::vector<Rec> flat = Flatten(main, over, anchors, dead, policy_action);
  auto fcls = BuildClassifier(flat.data(), uint32_t(flat.size()));
  const HotdropIndex<Rec> fhot(*fcls);
  uint64_t bad = 0, hot_drops = 0;
  for (Key& k : keys) {
    Truncate(&k, &rng);
    Trail a, b;
    const RuleCommon* x = HotdropWalkEdited(*cls, hot, e, k, a, kUnlimited);
    const RuleCommon* y = HotdropWalk(*fcls, fhot, k, b, kUnlimited);
    const bool same = a.seen == b.seen && (x == y || (x && y && x != &kL4HotDrop && y != &kL4HotDrop &&
                                                       x->rule_id == y->rule_id && x->action == y->action));
    bad += !same;
    hot_drops += x == &kL4HotDrop;
    const RefResult ref = Reference(flat, k);
    bad += !Agrees(ref, y, b, false);
  }
  DP_CHECK_EQ(bad, 0u);
  DP_CHECK(hot_drops > keys.size() / 20);
}

DP_TEST(HotdropEditedWalkMatchesFlattenedTable) {
  for (uint64_t seed = 11; seed <= 13; ++seed) {
    Rng rng{seed};
    auto recs = synth::Rules4(synth::Shape::kExtras, 800, seed);
    Decorate(&recs, &rng);
    TraceOptions o;
    o.seed = seed;
    CheckEdited(recs, MakeTrace(recs.data(), uint32_t(recs.size()), 4000, o), seed);
  }
  Rng rng{99};
  auto recs = synth::Rules6(synth::Shape::kExtras, 600, 99);
  Decorate(&recs, &rng);
  TraceOptions o;
  o.seed = 99;
  CheckEdited(recs, MakeTrace(recs.data(), uint32_t(recs.size()), 3000, o), 99);
}

// Through Ruleset::Forward, as the workers call it: truncated keys take the
// hot-drop walk, others the ordinary one, with and without edits.
DP_TEST(HotdropThroughRulesetForward) {
  using namespace dptest;
  const auto buf = PackForward({Rule4(ProtoPort(Wild(0, Action::kDrop), 17, 53)), Rule4(Wild(1, Action::kAccept))},
                               {Rule6(ProtoPort(Wild(2, Action::kDrop), 6, 22)), Rule6(Wild(3, Action::kAccept))});
  auto rs = Ruleset::Build(buf.data(), buf.size(), {1, 2}, 4, 1);
  Trail t;
  PacketKey4 k4;
  k4.c.proto = 17, k4.c.flags = kKeyL4Truncated;
  DP_CHECK(rs->Forward(k4, t) == &kL4HotDrop);
  k4.c.proto = 6;
  DP_CHECK_EQ(rs->Forward(k4, t)->rule_id, 1u);
  PacketKey6 k6;
  k6.c.proto = 6, k6.c.flags = kKeyL4Truncated;
  DP_CHECK(rs->Forward(k6, t) == &kL4HotDrop);
  k6.c.flags = kKeyHasL4, k6.c.dport = 22;
  DP_CHECK_EQ(rs->Forward(k6, t)->rule_id, 2u);
  // An edit inserts `-p tcp --dport 80 -j ACCEPT` first in the v4 chain:
  // now a truncated TCP packet hot-drops there.
  RulesetEdits ed;
  ed.base_generation = rs->base_generation;
  ed.rule_count = 5;
  ed.v4.present = true;
  ed.v4.overlay = {Rule4(ProtoPort(Wild(4, Action::kAccept), 6, 80))};
  ed.v4.anchors = {0};
  auto derived = Ruleset::Derive(*rs, std::move(ed));
  k4.c.proto = 6;
  DP_CHECK(derived->Forward(k4, t) == &kL4HotDrop);
  k4.c.proto = 1;
  DP_CHECK_EQ(derived->Forward(k4, t)->rule_id, 1u);
}

}  // namespace
}  // namespace flatwall
