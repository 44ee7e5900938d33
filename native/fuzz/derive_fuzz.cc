// Fuzz target: single-rule edits of a running rule set (Ruleset::Derive,
// the overlay + dead-range + policy-override walk of dataplane/ruleset.h,
// and its hot-drop twin HotdropWalkEdited for truncated keys).
//
// Feeds: a small base FORWARD chain (both families, from the same rule
// descriptions) and then a sequence of edits decoded from the input:
// insert a rule at a chain position, delete the rule at a position (a base
// rule becomes a dead range, an inserted one leaves the overlay), replace
// one (both), set the policy, and "commit": Ruleset::Derive on the current
// generation with the whole edit state relative to the base, as the
// control plane sends it (src/control: every edit spec is relative to the
// base build), for IPv4, IPv6 or both (a family left out keeps its last
// edits), or with that state deliberately made invalid in one of several
// ways. A base rule is one to three records (an iptables rule that the
// compiler expanded: negations split, a -j inlined with RETURN as a SKIP,
// RETURN from the built-in chain as a SKIP flagged kRuleReturnsToPolicy);
// an inserted rule is one or two records without SKIP, as
// CheckEditRecord allows.
// Checks: a valid spec is accepted; an invalid one is refused with
// std::invalid_argument and the running generation stays as it was (no
// half-applied edit); after every commit, for every key of a fixed set
// (IPv4 and IPv6, complete, non-first-fragment and truncated L4 headers),
// each family's Forward walk agrees with the kernel's rule loop over the
// edited chain flattened by hand (the rule set the compiler would build
// from scratch): the same records matched in the same order (LOG events
// included), the same verdict (rule id and action, the policy with its
// overridden action), or the hot drop at the first L4 rule a truncated
// key reaches; the walk may only stop short at its budget by failing
// closed (kL4HotDropBound); and the per-rule counters (two workers) that
// the walks bump, summed over the new generation, equal every count made
// under any earlier one (generations share them: an edit neither loses
// nor copies counts).
// Seeds: a few edit sequences written by hand (insert first / append /
// delete / replace / policy, chains with RETURN and inlined jumps).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "classifier/rule_table.h"
#include "dataplane/hotdrop.h"
#include "dataplane/ruleset.h"
#include "fuzz/fuzz_common.h"

namespace flatwall {
namespace {

constexpr uint32_t kMaxBaseRules = 10;
constexpr uint32_t kMaxOps = 48;
constexpr uint32_t kMaxChain = 40;

// One record of a rule, family-free: the harness makes both families'
// records of it. `arg` is local to the rule for LOG/COUNT/SKIP (the record
// to go on at, 1..len; len = the rule after), RejectWith for REJECT.
struct AbsRec {
  Action action = Action::kAccept;
  bool returns = false;  // SKIP leaving the built-in chain (to the policy)
  uint32_t arg = 0;
  bool proto = false, dport = false, src = false, iif = false, ct = false, tcpf = false;
  uint8_t proto_v = 0, ct_mask = kCtAny, flags = 0;
  uint16_t dport_lo = 0, dport_hi = 0, iif_v = 0;
  uint32_t src_lo = 0, src_hi = 0;  // offsets from the family's base address
  bool tcpf_invert = false;
};

struct Rule {
  uint32_t id = 0;
  bool base = false;
  uint32_t base_index = 0;  // which base rule (base only)
  std::vector<AbsRec> recs;
};

// ---- decoding ----------------------------------------------------------

AbsRec DecodeRec(fuzz::Reader* in, uint32_t j, uint32_t len, bool base) {
  AbsRec r;
  const uint8_t a = in->U8();
  const uint32_t kinds = base ? 7 : 5;
  switch (a % kinds) {
    case 0: r.action = Action::kAccept; break;
    case 1: r.action = Action::kDrop; break;
    case 2: r.action = Action::kReject, r.arg = uint32_t(a >> 3) % 12; break;
    case 3: r.action = Action::kLog; break;
    case 4: r.action = Action::kCount; break;
    case 5: r.action = Action::kSkip; break;
    default: r.action = Action::kSkip, r.returns = true; break;
  }
  if (r.action == Action::kLog || r.action == Action::kCount || (r.action == Action::kSkip && !r.returns))
    r.arg = j + 1 + uint32_t(a >> 3) % (len - j);  // in (j, len]
  const uint8_t m = in->U8(), v = in->U8(), w = in->U8();
  if (m & 1) r.proto = true, r.proto_v = uint8_t("\x06\x11\x01\x3a"[v % 4]);
  if (m & 2) {
    r.dport = true, r.dport_lo = uint16_t((v >> 4) & 7), r.dport_hi = uint16_t(r.dport_lo + (w & 3));
    r.flags |= kRuleNeedsL4;
    if (m & 32) r.flags |= kRuleL4BeforeCt;
    if (m & 64) r.flags |= kRuleL4BeforeAddr;
  }
  if (m & 4) r.src = true, r.src_lo = (w >> 2) & 15, r.src_hi = r.src_lo + ((v >> 2) & 3);
  if (m & 8) r.iif = true, r.iif_v = uint16_t((w >> 4) & 3);
  if (m & 16) r.ct = true, r.ct_mask = uint8_t(1 + (v ^ w) % 31);
  if (m & 128) {
    r.tcpf = true, r.tcpf_invert = w & 0x80;
    r.flags |= kRuleNeedsL4;
  }
  return r;
}

Rule DecodeRule(fuzz::Reader* in, bool base) {
  Rule rule;
  rule.base = base;
  const uint32_t len = 1 + in->U8() % (base ? 3 : 2);
  for (uint32_t j = 0; j < len; ++j) rule.recs.push_back(DecodeRec(in, j, len, base));
  return rule;
}

// ---- records -----------------------------------------------------------

template <typename Rec>
struct Fam;
template <>
struct Fam<RuleRecord4> {
  using Key = PacketKey4;
  static void Addr(RuleRecord4* r, bool any, uint32_t lo, uint32_t hi) {
    r->src_lo = any ? 0 : 0x0a000000 + lo, r->src_hi = any ? 0xffffffff : 0x0a000000 + hi;
    r->dst_lo = 0, r->dst_hi = 0xffffffff;
  }
  static void KeyAddr(Key* k, uint32_t x) { k->src = 0x0a000000 + x, k->dst = 0xc0a80001; }
  static bool AddrIn(const RuleRecord4& r, const Key& k) {
    return r.src_lo <= k.src && k.src <= r.src_hi && r.dst_lo <= k.dst && k.dst <= r.dst_hi;
  }
};
template <>
struct Fam<RuleRecord6> {
  using Key = PacketKey6;
  static void Addr(RuleRecord6* r, bool any, uint32_t lo, uint32_t hi) {
    const uint32_t plo[4] = {0x20010db8, 0, 0, lo}, phi[4] = {0x20010db8, 0, 0, hi};
    for (int i = 0; i < 4; ++i) {
      r->src_lo[i] = any ? 0 : plo[i], r->src_hi[i] = any ? 0xffffffff : phi[i];
      r->dst_lo[i] = 0, r->dst_hi[i] = 0xffffffff;
    }
  }
  static void KeyAddr(Key* k, uint32_t x) {
    const uint32_t s[4] = {0x20010db8, 0, 0, x}, d[4] = {0x20010db8, 1, 0, 1};
    for (int i = 0; i < 4; ++i) k->src[i] = s[i], k->dst[i] = d[i];
  }
  // Word-wise lexicographic comparison (most significant word first).
  static bool Le(const uint32_t* a, const uint32_t* b) {
    for (int i = 0; i < 4; ++i)
      if (a[i] != b[i]) return a[i] < b[i];
    return true;
  }
  static bool AddrIn(const RuleRecord6& r, const Key& k) {
    return Le(r.src_lo, k.src) && Le(k.src, r.src_hi) && Le(r.dst_lo, k.dst) && Le(k.dst, r.dst_hi);
  }
};

RuleCommon Wild(uint32_t id, Action a) {
  RuleCommon c{};
  c.rule_id = id;
  c.sport_hi = c.dport_hi = c.iif_hi = c.oif_hi = c.icmp_hi = 0xffff;
  c.proto_hi = 0xff;
  c.ct_state_mask = kCtAny;
  c.action = uint8_t(a);
  return c;
}

// The record of `a` in a table where its rule starts at `start`, its rule
// has `len` records and the policy is at `policy`.
template <typename Rec>
Rec Make(const AbsRec& a, uint32_t id, uint32_t start, uint32_t policy) {
  Rec r{};
  r.c = Wild(id, a.action);
  r.c.flags = a.flags;
  if (a.returns) {
    r.c.arg = policy, r.c.flags |= kRuleReturnsToPolicy;
  } else {
    r.c.arg = a.action == Action::kReject ? a.arg : a.action == Action::kAccept || a.action == Action::kDrop ? 0 : start + a.arg;
  }
  if (a.proto) r.c.proto_lo = r.c.proto_hi = a.proto_v;
  if (a.dport) r.c.dport_lo = a.dport_lo, r.c.dport_hi = a.dport_hi;
  if (a.iif) r.c.iif_lo = r.c.iif_hi = a.iif_v;
  r.c.ct_state_mask = a.ct_mask;
  if (a.tcpf) {
    r.c.tcp_flags_mask = 0x12, r.c.tcp_flags_value = 0x02;  // SYN without ACK
    if (a.tcpf_invert) r.c.flags |= kRuleTcpFlagsInvert;
  }
  Fam<Rec>::Addr(&r, !a.src, a.src_lo, a.src_hi);
  return r;
}

// ---- the reference -----------------------------------------------------

// The matching semantics written out again (classifier.h's prose).
template <typename Rec, typename Key>
bool RefMatches(const Rec& r, const Key& k) {
  const RuleCommon& c = r.c;
  if (!Fam<Rec>::AddrIn(r, k)) return false;
  if (k.c.sport < c.sport_lo || k.c.sport > c.sport_hi || k.c.dport < c.dport_lo || k.c.dport > c.dport_hi) return false;
  if (k.c.proto < c.proto_lo || k.c.proto > c.proto_hi || k.c.icmp < c.icmp_lo || k.c.icmp > c.icmp_hi) return false;
  if (k.c.iif < c.iif_lo || k.c.iif > c.iif_hi || k.c.oif < c.oif_lo || k.c.oif > c.oif_hi) return false;
  if (!(k.c.ct_state & c.ct_state_mask)) return false;
  if ((c.flags & kRuleNeedsL4) && !(k.c.flags & kKeyHasL4)) return false;
  const bool eq = (k.c.tcp_flags & c.tcp_flags_mask) == c.tcp_flags_value;
  return eq != bool(c.flags & kRuleTcpFlagsInvert);
}

// A truncated key reaches an L4 rule when the tests the kernel makes
// before the L4 match pass (hotdrop.h; the flags say which come after).
template <typename Rec, typename Key>
bool RefReaches(const Rec& r, const Key& k) {
  const RuleCommon& c = r.c;
  bool ok = c.proto_lo <= k.c.proto && k.c.proto <= c.proto_hi;
  ok = ok && c.iif_lo <= k.c.iif && k.c.iif <= c.iif_hi && c.oif_lo <= k.c.oif && k.c.oif <= c.oif_hi;
  if (!(c.flags & kRuleL4BeforeCt)) ok = ok && (c.ct_state_mask & k.c.ct_state);
  if (!(c.flags & kRuleL4BeforeAddr)) ok = ok && Fam<Rec>::AddrIn(r, k);
  return ok;
}

struct Trail {
  std::vector<uint32_t> seen;  // matched rule ids, LOG events as ~id
  ext::Context cx;
  void OnMatch(const RuleCommon& r) { seen.push_back(r.rule_id); }
  void OnLog(const RuleCommon& r) { seen.push_back(~r.rule_id); }
  void OnExt() {}
  const ext::Context& ext_context() const { return cx; }
};

enum End : uint8_t { kTerminal, kHot, kNothing };
struct RefResult {
  End end = kNothing;
  uint32_t rule_id = 0;
  uint8_t action = 0;
  Trail trail;
};

// The kernel's loop over a flat table.
template <typename Rec, typename Key>
RefResult Reference(const std::vector<Rec>& recs, const Key& k) {
  RefResult out;
  for (uint32_t i = 0; i < recs.size();) {
    const Rec& r = recs[i];
    if ((k.c.flags & kKeyL4Truncated) && (r.c.flags & kRuleNeedsL4) && RefReaches(r, k)) {
      out.end = kHot;
      return out;
    }
    if (!RefMatches(r, k)) {
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
    out.end = kTerminal, out.rule_id = r.c.rule_id, out.action = r.c.action;
    return out;
  }
  return out;
}

bool Agrees(const RefResult& ref, const RuleCommon* got, const Trail& trail) {
  if (got == &kL4HotDropBound)  // budget spent: may fail closed only
    return trail.seen.size() <= ref.trail.seen.size() &&
           std::equal(trail.seen.begin(), trail.seen.end(), ref.trail.seen.begin());
  if (trail.seen != ref.trail.seen) return false;
  if (got == &kL4HotDrop) return ref.end == kHot;
  if (!got) return ref.end == kNothing;
  return ref.end == kTerminal && got->rule_id == ref.rule_id && got->action == ref.action;
}

// ---- the edit state ----------------------------------------------------

struct State {
  std::vector<Rule> chain;  // the FORWARD chain without the policy, in order
  int policy = -1;          // override (ACCEPT/DROP), -1 = the base's
};

struct Base {
  std::vector<Rule> rules;
  std::vector<uint32_t> first;  // main index of each base rule's first record
  uint32_t policy_index = 0;    // = the record count before the policy
  uint32_t policy_id = 0;
  Action policy_action = Action::kAccept;
};

template <typename Rec>
std::vector<Rec> MainRecords(const Base& b) {
  std::vector<Rec> out;
  for (size_t i = 0; i < b.rules.size(); ++i)
    for (const AbsRec& a : b.rules[i].recs) out.push_back(Make<Rec>(a, b.rules[i].id, b.first[i], b.policy_index));
  Rec p{};
  p.c = Wild(b.policy_id, b.policy_action);
  Fam<Rec>::Addr(&p, true, 0, 0);
  out.push_back(p);
  return out;
}

// The edit spec of a state, relative to the base (what the control plane
// sends). `merge_dead` joins adjacent dead ranges (both forms are valid).
template <typename Rec>
TableEditSpec<Rec> Spec(const Base& b, const State& s, bool merge_dead) {
  TableEditSpec<Rec> spec;
  spec.present = true;
  std::vector<bool> alive(b.rules.size(), false);
  // Each inserted rule's anchor: the first record of the next base rule
  // in the chain, or the policy.
  std::vector<uint32_t> anchor(s.chain.size(), b.policy_index);
  uint32_t next = b.policy_index;
  for (size_t i = s.chain.size(); i-- > 0;) {
    if (s.chain[i].base) next = b.first[s.chain[i].base_index], alive[s.chain[i].base_index] = true;
    else anchor[i] = next;
  }
  for (size_t i = 0; i < s.chain.size(); ++i) {
    if (s.chain[i].base) continue;
    const uint32_t start = uint32_t(spec.overlay.size());
    for (const AbsRec& a : s.chain[i].recs) {
      spec.overlay.push_back(Make<Rec>(a, s.chain[i].id, start, 0));
      spec.anchors.push_back(anchor[i]);
    }
  }
  for (size_t i = 0; i < b.rules.size(); ++i) {
    if (alive[i]) continue;
    const uint32_t lo = b.first[i], hi = lo + uint32_t(b.rules[i].recs.size());
    if (merge_dead && !spec.dead.empty() && spec.dead.back().second == lo) spec.dead.back().second = hi;
    else spec.dead.emplace_back(lo, hi);
  }
  spec.policy = s.policy;
  return spec;
}

// The edited chain as one flat table, as a rebuild would compile it.
template <typename Rec>
std::vector<Rec> Flatten(const Base& b, const State& s) {
  uint32_t n = 0;
  for (const Rule& r : s.chain) n += uint32_t(r.recs.size());
  std::vector<Rec> out;
  for (const Rule& r : s.chain) {
    const uint32_t start = uint32_t(out.size());
    for (const AbsRec& a : r.recs) out.push_back(Make<Rec>(a, r.id, start, n));
  }
  Rec p{};
  p.c = Wild(b.policy_id, s.policy >= 0 ? Action(s.policy) : b.policy_action);
  Fam<Rec>::Addr(&p, true, 0, 0);
  out.push_back(p);
  return out;
}

// ---- keys --------------------------------------------------------------

template <typename Rec>
std::vector<typename Fam<Rec>::Key> Keys() {
  using Key = typename Fam<Rec>::Key;
  std::vector<Key> keys;
  uint32_t x = 12345;
  for (uint32_t i = 0; i < 40; ++i) {
    x = x * 1103515245u + 12345u;
    const uint32_t r = x >> 8;
    Key k;
    k.c.proto = uint8_t("\x06\x11\x01\x3a\x84"[r % 5]);
    k.c.dport = uint16_t((r >> 3) % 11);
    k.c.sport = 1000;
    k.c.iif = uint16_t((r >> 7) % 5), k.c.oif = 1;
    k.c.ct_state = uint8_t(1u << ((r >> 10) % 5));
    k.c.tcp_flags = uint8_t("\x02\x12\x10\x00"[(r >> 13) % 4]);
    const uint32_t kind = (r >> 15) % 8;  // mostly complete L4 headers
    k.c.flags = kind < 5 ? kKeyHasL4 : kind < 7 ? kKeyL4Truncated : 0;
    if (!(k.c.flags & kKeyHasL4)) k.c.dport = k.c.sport = 0, k.c.tcp_flags = 0;
    Fam<Rec>::KeyAddr(&k, (r >> 18) % 21);
    keys.push_back(k);
  }
  return keys;
}

// Walks every key and counts its matched records as a worker does (one of
// the rule set's workers, by turns), adding the same to `counts`.
template <typename Rec>
void Check(const Ruleset& rs, const std::vector<Rec>& flat, std::vector<uint64_t>* counts) {
  using Key = typename Fam<Rec>::Key;
  static const std::vector<Key> keys = Keys<Rec>();
  uint32_t worker = 0;
  for (const Key& k : keys) {
    Trail t;
    const RuleCommon* got = rs.Forward(k, t);
    const RefResult ref = Reference(flat, k);
    if (!Agrees(ref, got, t)) {
      std::fprintf(stderr, "derive_fuzz: IPv%d key proto %u dport %u iif %u ct %u flags %u: walk %s rule %u, reference end %d rule %u\n",
                   std::is_same<Rec, RuleRecord4>::value ? 4 : 6, k.c.proto, k.c.dport, k.c.iif, k.c.ct_state, k.c.flags,
                   got == &kL4HotDrop ? "hot-drop" : got ? "verdict" : "none", got ? got->rule_id : 0, int(ref.end), ref.rule_id);
    }
    FUZZ_CHECK(Agrees(ref, got, t));
    const RuleCounterView view = rs.counters(worker);
    worker = (worker + 1) % rs.workers();
    for (const uint32_t id : t.seen) {
      if (id >= rs.rule_count()) continue;  // a LOG event (~id)
      RuleCounter* c = view.find(id);
      FUZZ_CHECK(c);
      c->packets.Inc(), c->bytes.Add(100);
      if (counts->size() <= id) counts->resize(id + 1);
      (*counts)[id]++;
    }
  }
}

// Makes a valid spec invalid, in a way chosen by `how`; every way must be
// refused by Derive. Returns false when none applies to this spec.
template <typename Rec>
bool Corrupt(TableEditSpec<Rec>* s, uint8_t how, uint32_t policy_index, uint32_t rule_count, RulesetEdits* e) {
  const bool have = !s->overlay.empty();
  switch (how % 10) {
    case 0: s->anchors.push_back(0); return true;  // one anchor too many
    case 1:
      if (!have) return false;
      s->anchors[how % s->anchors.size()] = policy_index + 1 + (how >> 4);
      return true;
    case 2:
      for (size_t i = 0; i + 1 < s->anchors.size(); ++i) {
        if (s->anchors[i] < s->anchors[i + 1]) {
          std::swap(s->anchors[i], s->anchors[i + 1]);
          return true;
        }
      }
      return false;
    case 3:
      if (!have) return false;
      s->overlay.back().c.rule_id = rule_count + (how >> 4);
      return true;
    case 4: s->dead.emplace_back(policy_index, policy_index + 1); return true;  // the policy
    case 5: {  // an empty range
      const uint32_t at = (how >> 4) % policy_index;
      s->dead.emplace_back(at, at);
      return true;
    }
    case 6:
      if (policy_index < 3) return false;
      s->dead.emplace_back(0, 2), s->dead.emplace_back(1, 3);
      return true;
    case 7: s->policy = int(Action::kReject) + (how >> 4); return true;
    case 8:
      if (!have) return false;
      if (how & 16) {
        s->overlay.back().c.action = uint8_t(Action::kSkip);
        s->overlay.back().c.arg = uint32_t(s->overlay.size());
      } else {
        s->overlay.back().c.action = uint8_t(Action::kLog);
        s->overlay.back().c.arg = how & 32 ? uint32_t(s->overlay.size() - 1) : uint32_t(s->overlay.size() + 1);
      }
      return true;
    default:
      if (how & 16) e->base_generation += 1;
      else e->rule_count = how & 32 ? 0 : e->rule_count + Ruleset::kEditRuleIds + 1;
      return true;
  }
}

struct Harness {
  Base base;
  State work;                  // the chain as edited so far
  State done4, done6;          // what the running generation holds per family
  std::unique_ptr<Ruleset> cur;
  uint32_t next_id = 0;
  std::vector<uint64_t> counts;  // packets per rule id over every generation

  void CheckBoth() {
    Check(*cur, Flatten<RuleRecord4>(base, done4), &counts);
    Check(*cur, Flatten<RuleRecord6>(base, done6), &counts);
    // Every generation derived from one base shares its counters and the
    // inserted rules' ones: nothing counted before an edit is lost or
    // counted twice after it.
    std::vector<uint64_t> packets, bytes;
    cur->SumCounters(&packets, &bytes);
    FUZZ_CHECK(packets.size() == cur->rule_count());
    counts.resize(std::max<size_t>(counts.size(), packets.size()));
    for (size_t i = 0; i < counts.size(); ++i) {
      FUZZ_CHECK(i < packets.size() || counts[i] == 0);
      if (i < packets.size()) FUZZ_CHECK(packets[i] == counts[i] && bytes[i] == 100 * counts[i]);
    }
  }

  void Commit(uint8_t how, uint8_t corrupt) {
    const bool p4 = how & 1, p6 = how & 2 || !(how & 1);
    RulesetEdits e;
    e.base_generation = cur->base_generation;
    e.rule_count = next_id;
    if (p4) e.v4 = Spec<RuleRecord4>(base, work, how & 4);
    if (p6) e.v6 = Spec<RuleRecord6>(base, work, how & 8);
    const bool bad = (how & 0x30) == 0x30 &&
                     (p4 ? Corrupt(&e.v4, corrupt, base.policy_index, next_id, &e)
                         : Corrupt(&e.v6, corrupt, base.policy_index, next_id, &e));
    std::unique_ptr<Ruleset> next;
    try {
      next = Ruleset::Derive(*cur, std::move(e));
    } catch (const std::invalid_argument&) {
      if (!bad) std::fprintf(stderr, "derive_fuzz: a valid edit was refused\n");
      FUZZ_CHECK(bad);
      CheckBoth();  // nothing half-applied: the running generation answers as before
      return;
    }
    FUZZ_CHECK(!bad);
    FUZZ_CHECK(next);
    FUZZ_CHECK(next->rule_count() == next_id && next->workers() == cur->workers());
    next->generation = cur->generation + 1;
    next->base_generation = cur->base_generation;  // as Dataplane::ApplyEdits sets it
    cur = std::move(next);
    if (p4) done4 = work;
    if (p6) done6 = work;
    CheckBoth();
  }
};

}  // namespace
}  // namespace flatwall

using namespace flatwall;

namespace {

// Seed helpers: a rule description's bytes (DecodeRule's format).
void PutRec(fuzz::Bytes* b, uint8_t kind, uint8_t m, uint8_t v, uint8_t w) { b->insert(b->end(), {kind, m, v, w}); }

void WriteSeeds() {
  // Base: 4 rules. 0: -p tcp --dport 0:3 -j ACCEPT; 1: LOG then -s range DROP
  // (two records); 2: an inlined -j (SKIP unless iif, then REJECT);
  // 3: RETURN from the built-in chain for ctstate; policy DROP.
  fuzz::Bytes base = {4};
  base.push_back(0), PutRec(&base, 0, 1 | 2, 0, 3);
  base.push_back(1), PutRec(&base, 3 | 8, 4, 7, 9), PutRec(&base, 1, 4, 5, 20);
  base.push_back(1), PutRec(&base, 5 | 8, 8, 0, 0x10), PutRec(&base, 2 | (7 << 3), 0, 0, 0);
  base.push_back(0), PutRec(&base, 6, 16, 3, 1);
  base.push_back(1);  // policy DROP
  auto op_insert = [](fuzz::Bytes* b, uint8_t pos, uint8_t kind, uint8_t m) {
    b->insert(b->end(), {0, pos, 0}), PutRec(b, kind, m, 9, 33);
  };
  fuzz::Bytes s1 = base;  // insert first, commit both
  op_insert(&s1, 0, 1, 1 | 2);
  s1.insert(s1.end(), {5, 0x0c, 0});
  fuzz::WriteSeed("insert-first", s1);
  fuzz::Bytes s2 = base;  // append, delete base rule 1, commit IPv4 only, then both
  op_insert(&s2, 200, 4, 8);
  s2.insert(s2.end(), {2, 1, 5, 0x01, 0, 5, 0x02, 0});
  fuzz::WriteSeed("append-delete", s2);
  fuzz::Bytes s3 = base;  // replace rule 2, policy ACCEPT, commit, corrupt commit
  s3.insert(s3.end(), {3, 2, 1}), PutRec(&s3, 3 | 8, 1, 2, 3), PutRec(&s3, 0, 2, 2, 2);
  s3.insert(s3.end(), {4, 0, 5, 0x03, 0, 5, 0x33, 2});
  fuzz::WriteSeed("replace-policy-corrupt", s3);
  fuzz::Bytes s4 = base;  // delete everything, insert two, commit with merged dead ranges
  for (int i = 0; i < 4; ++i) s4.insert(s4.end(), {2, 0});
  op_insert(&s4, 0, 0, 4), op_insert(&s4, 1, 3 | 8, 1);
  s4.insert(s4.end(), {5, 0x0f, 0});
  fuzz::WriteSeed("delete-all", s4);
  fuzz::WriteSeed("base-only", base);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (!fuzz::SeedDir()) return 0;
  WriteSeeds();
  std::exit(0);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Reader in{data, data + size};
  Harness h;
  const uint32_t nb = 1 + in.U8() % kMaxBaseRules;
  uint32_t idx = 0;
  for (uint32_t i = 0; i < nb; ++i) {
    Rule r = DecodeRule(&in, true);
    r.id = i, r.base_index = i;
    h.base.first.push_back(idx);
    idx += uint32_t(r.recs.size());
    h.base.rules.push_back(std::move(r));
  }
  h.base.policy_index = idx;
  h.base.policy_id = nb;
  h.base.policy_action = in.U8() & 1 ? Action::kDrop : Action::kAccept;
  h.next_id = nb + 1;
  const fuzz::Bytes buf = fuzz::Pack(MainRecords<RuleRecord4>(h.base), MainRecords<RuleRecord6>(h.base));
  try {
    h.cur = Ruleset::Build(buf.data(), buf.size(), {0, 1}, h.next_id, 2);
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "derive_fuzz: base refused: %s\n", e.what());
    FUZZ_CHECK(false);  // the harness makes only valid bases
  }
  h.cur->generation = h.cur->base_generation = 1;
  h.work.chain = h.base.rules;
  h.done4 = h.done6 = h.work;
  h.CheckBoth();
  for (uint32_t op = 0; op < kMaxOps && in.left(); ++op) {
    const uint8_t kind = in.U8() % 6;
    std::vector<Rule>& chain = h.work.chain;
    switch (kind) {
      case 0:  // insert
      case 3: {  // replace
        const uint32_t pos = in.U8();
        Rule r = DecodeRule(&in, false);
        r.id = h.next_id;
        if (kind == 3) {
          if (chain.empty()) break;
          chain.erase(chain.begin() + pos % chain.size());
        }
        if (chain.size() >= kMaxChain) break;
        ++h.next_id;
        chain.insert(chain.begin() + pos % (chain.size() + 1), std::move(r));
        break;
      }
      case 1: break;  // (spare: decoded as nothing, keeps old inputs meaningful)
      case 2: {  // delete
        const uint32_t pos = in.U8();
        if (!chain.empty()) chain.erase(chain.begin() + pos % chain.size());
        break;
      }
      case 4: {  // policy
        const uint8_t p = in.U8() % 3;
        h.work.policy = p == 2 ? -1 : int(p);
        break;
      }
      default: {  // commit
        const uint8_t how = in.U8(), corrupt = in.U8();
        h.Commit(how, corrupt);
        break;
      }
    }
  }
  h.Commit(0x03, 0);  // whatever is left, both families
  return 0;
}
