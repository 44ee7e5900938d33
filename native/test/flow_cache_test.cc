// The flow cache against the plain FORWARD walk: same verdicts, same
// per-rule counters, same LOG calls (differential, over synthetic rule sets
// with LOG/COUNT/SKIP records, ct_state masks, flags, ICMP and interfaces),
// and no verdict of an old generation after a swap.
#include <vector>

#include "classifier/trace.h"
#include "dataplane/flow_cache.h"
#include "dataplane/ruleset.h"
#include "test/dataplane_test_rules.h"
#include "test/dataplane_testing.h"
#include "test/synth.h"

namespace flatwall {
namespace {

struct Tally {
  std::vector<uint64_t> per_rule;
  uint64_t logs = 0;
  explicit Tally(uint32_t n) : per_rule(n, 0) {}
  void OnMatch(const RuleCommon& r) { ++per_rule.at(r.rule_id); }
  void OnLog(const RuleCommon&) { ++logs; }
  ext::Context cx;
  void OnExt() {}
  const ext::Context& ext_context() const { return cx; }
};

template <typename R>
uint32_t RuleCount(const std::vector<R>& v) {
  uint32_t n = 0;
  for (const auto& r : v) n = std::max(n, r.c.rule_id + 1);
  return n;
}

// Draws ct_state as the dataplane would set it: exactly one bit.
template <typename K>
void SetCt(std::vector<K>* keys, uint64_t seed) {
  for (auto& k : *keys) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    k.c.ct_state = uint8_t(1u << ((seed >> 33) % 5));
  }
}

template <typename K, typename R>
void Differential(const std::vector<R>& rules4or6, const std::vector<uint8_t>& buf, uint32_t rules,
                  const std::vector<K>& trace) {
  auto rs = Ruleset::Build(buf.data(), buf.size(), {1, 2}, rules, 1);
  rs->generation = 1;
  FlowCache cache(256);  // small: collisions and overwrites happen
  Tally plain(rules), cached(rules);
  uint64_t diffs = 0;
  for (int pass = 0; pass < 2; ++pass) {
    for (const K& k : trace) {
      const RuleCommon* a = rs->Forward(k, plain);
      const RuleCommon* b = cache.Forward(*rs, rs->generation, k, cached);
      diffs += a != b;
    }
  }
  DP_CHECK_EQ(diffs, 0u);
  DP_CHECK(plain.per_rule == cached.per_rule);
  DP_CHECK_EQ(plain.logs, cached.logs);
  DP_CHECK(cache.hits() > trace.size() / 4);  // the cache was actually used
}

DP_TEST(FlowCacheMatchesWalkV4V6) {
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    auto r4 = synth::Rules4(synth::Shape::kExtras, 2000, seed);
    auto r6 = synth::Rules6(synth::Shape::kExtras, 2000, seed);
    const uint32_t n = std::max(RuleCount(r4), RuleCount(r6));
    const auto buf = dptest::PackForward(r4, r6);
    TraceOptions o;
    o.seed = seed, o.locality = 0.8;
    auto t4 = MakeTrace(r4.data(), uint32_t(r4.size()), 20000, o);
    auto t6 = MakeTrace(r6.data(), uint32_t(r6.size()), 20000, o);
    SetCt(&t4, seed);
    SetCt(&t6, seed);
    for (auto& k : t4) k.c.iif = 1 + (k.c.sport & 1), k.c.oif = 2 - (k.c.sport & 1);
    // Some keys with a cut-short L4 header: the hot-drop walk, cached too.
    auto truncate = [](auto* trace) {
      for (size_t i = 0; i < trace->size(); i += 7) {
        auto& c = (*trace)[i].c;
        c.flags = kKeyL4Truncated, c.sport = c.dport = c.icmp = 0, c.tcp_flags = 0;
      }
    };
    truncate(&t4);
    truncate(&t6);
    Differential(r4, buf, n, t4);
    Differential(r6, buf, n, t6);
  }
}

DP_TEST(FlowCacheNeverServesAnOldGeneration) {
  using namespace dptest;
  const auto accept = PackForward({Rule4(Wild(0, Action::kAccept))}, {});
  const auto drop = PackForward({Rule4(Wild(1, Action::kDrop))}, {});
  auto g1 = Ruleset::Build(accept.data(), accept.size(), {0, 0}, 2, 1);
  auto g2 = Ruleset::Build(drop.data(), drop.size(), {0, 0}, 2, 1);
  g1->generation = 1, g2->generation = 2;
  FlowCache cache(64);
  PacketKey4 k;
  k.src = 1, k.dst = 2, k.c.proto = 17, k.c.flags = kKeyHasL4;
  Tally t(2);
  DP_CHECK_EQ(cache.Forward(*g1, 1, k, t)->rule_id, 0u);
  DP_CHECK_EQ(cache.Forward(*g1, 1, k, t)->rule_id, 0u);
  DP_CHECK_EQ(cache.hits(), 1u);
  // Reload: the same key under generation 2 is a miss and gets the new verdict.
  DP_CHECK_EQ(cache.Forward(*g2, 2, k, t)->rule_id, 1u);
  DP_CHECK_EQ(cache.hits(), 1u);
  DP_CHECK_EQ(cache.Forward(*g2, 2, k, t)->rule_id, 1u);
  DP_CHECK_EQ(cache.hits(), 2u);
  DP_CHECK_EQ(t.per_rule[0], 2u);
  DP_CHECK_EQ(t.per_rule[1], 2u);
  // ct_state is part of the key: NEW and ESTABLISHED are separate entries.
  k.c.ct_state = kCtEstablished;
  cache.Forward(*g2, 2, k, t);
  DP_CHECK_EQ(cache.hits(), 2u);
}

}  // namespace
}  // namespace flatwall
