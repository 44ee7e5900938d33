// Differential tests: every classifier against a linear reference matcher
// written here, independently of the library, straight from the semantics
// stated in classifier.h. Millions of lookups over rule-set shapes chosen to
// hit every code path (bands, filters, collisions, the table cap, the
// fallback tree, defaults, IPv6, tcp flags, ct masks, needs-L4, interfaces,
// start > 0), with keys aimed at range boundaries. A disagreement is shrunk
// to a minimal rule set (records deleted while it persists) and printed.
#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "classifier/classifier.h"
#include "classifier/image.h"
#include "classifier/trace.h"
#include "test/classifier_testing.h"
#include "test/synth.h"

namespace flatwall {
namespace {

// ------------------------------------------------------------- reference

// Lexicographic comparison of IPv6 words (most significant first).
int Cmp6(const uint32_t a[4], const uint32_t b[4]) {
  for (int i = 0; i < 4; ++i)
    if (a[i] != b[i]) return a[i] < b[i] ? -1 : 1;
  return 0;
}

bool In(uint32_t v, uint32_t lo, uint32_t hi) { return lo <= v && v <= hi; }

bool RefCommon(const RuleCommon& r, const KeyCommon& k) {
  if (!In(k.sport, r.sport_lo, r.sport_hi)) return false;
  if (!In(k.dport, r.dport_lo, r.dport_hi)) return false;
  if (!In(k.iif, r.iif_lo, r.iif_hi)) return false;
  if (!In(k.oif, r.oif_lo, r.oif_hi)) return false;
  if (!In(k.icmp, r.icmp_lo, r.icmp_hi)) return false;
  if (!In(k.proto, r.proto_lo, r.proto_hi)) return false;
  // ((key & mask) == value) XOR invert.
  const bool equal = (k.tcp_flags & r.tcp_flags_mask) == r.tcp_flags_value;
  const bool invert = (r.flags & kRuleTcpFlagsInvert) != 0;
  if (!(equal != invert)) return false;
  if ((k.ct_state & r.ct_state_mask) == 0) return false;
  if ((r.flags & kRuleNeedsL4) != 0 && (k.flags & kKeyHasL4) == 0) return false;
  return true;
}

bool RefMatch(const RuleRecord4& r, const PacketKey4& k) {
  return In(k.src, r.src_lo, r.src_hi) && In(k.dst, r.dst_lo, r.dst_hi) && RefCommon(r.c, k.c);
}

bool RefMatch(const RuleRecord6& r, const PacketKey6& k) {
  return Cmp6(r.src_lo, k.src) <= 0 && Cmp6(k.src, r.src_hi) <= 0 &&
         Cmp6(r.dst_lo, k.dst) <= 0 && Cmp6(k.dst, r.dst_hi) <= 0 && RefCommon(r.c, k.c);
}

template <typename Rec, typename Key>
uint32_t RefLookup(const std::vector<Rec>& recs, const Key& k, uint32_t start) {
  for (uint32_t i = start; i < recs.size(); ++i)
    if (RefMatch(recs[i], k)) return i;
  return kNoMatch;
}

// -------------------------------------------------------------- printing

std::string Hex(uint32_t v) {
  char b[16];
  std::snprintf(b, sizeof b, "%08x", v);
  return b;
}
std::string Addr(uint32_t a) { return Hex(a); }
std::string Addr(const uint32_t a[4]) {
  return Hex(a[0]) + ":" + Hex(a[1]) + ":" + Hex(a[2]) + ":" + Hex(a[3]);
}

std::string CommonText(const RuleCommon& c) {
  char b[256];
  std::snprintf(b, sizeof b,
                "sport %u-%u dport %u-%u iif %u-%u oif %u-%u icmp %u-%u proto %u-%u tcp %02x/%02x%s "
                "ct %02x%s action %u arg %u",
                c.sport_lo, c.sport_hi, c.dport_lo, c.dport_hi, c.iif_lo, c.iif_hi, c.oif_lo,
                c.oif_hi, c.icmp_lo, c.icmp_hi, c.proto_lo, c.proto_hi, c.tcp_flags_mask,
                c.tcp_flags_value, (c.flags & kRuleTcpFlagsInvert) ? "!" : "", c.ct_state_mask,
                (c.flags & kRuleNeedsL4) ? " L4" : "", c.action, c.arg);
  return b;
}
std::string KeyCommonText(const KeyCommon& c) {
  char b[160];
  std::snprintf(b, sizeof b, "sport %u dport %u iif %u oif %u icmp %u proto %u tcp %02x ct %02x%s",
                c.sport, c.dport, c.iif, c.oif, c.icmp, c.proto, c.tcp_flags, c.ct_state,
                (c.flags & kKeyHasL4) ? " L4" : "");
  return b;
}
std::string Text(const RuleRecord4& r) {
  return "src " + Addr(r.src_lo) + "-" + Addr(r.src_hi) + " dst " + Addr(r.dst_lo) + "-" +
         Addr(r.dst_hi) + " " + CommonText(r.c);
}
std::string Text(const RuleRecord6& r) {
  return "src " + Addr(r.src_lo) + "-" + Addr(r.src_hi) + " dst " + Addr(r.dst_lo) + "-" +
         Addr(r.dst_hi) + " " + CommonText(r.c);
}
std::string Text(const PacketKey4& k) {
  return "src " + Addr(k.src) + " dst " + Addr(k.dst) + " " + KeyCommonText(k.c);
}
std::string Text(const PacketKey6& k) {
  return "src " + Addr(k.src) + " dst " + Addr(k.dst) + " " + KeyCommonText(k.c);
}

// ------------------------------------------------------------------ keys

// Field values are generated as (lo, hi) of some record, then a point at or
// just beyond a boundary: that is where off-by-one and prefix-edge bugs live.
template <typename V>
V Near(Rng& rng, V lo, V hi, V max) {
  switch (rng.Below(10)) {
    case 0: return lo;
    case 1: return hi;
    case 2: return lo == 0 ? lo : V(lo - 1);
    case 3: return hi == max ? hi : V(hi + 1);
    case 4: return lo == hi ? lo : V(lo + 1);
    case 5: return lo == hi ? hi : V(hi - 1);
    case 6: {  // an aligned-block edge inside the range
      const int bits = int(sizeof(V) * 8);
      const int b = int(rng.Below(uint32_t(bits)));
      const V low = b == 0 ? V(0) : V(V(max) >> (bits - b));
      const V edge = rng.Below(2) ? V(lo | low) : V(hi & V(~low));
      return edge;
    }
    case 7: return V(lo + V(uint64_t(rng.Next()) % (uint64_t(hi - lo) + 1)));
    default: return V(rng.Next());
  }
}

void WordsNear(Rng& rng, const uint32_t lo[4], const uint32_t hi[4], uint32_t out[4]) {
  // Boundary points of the 128-bit range: copy lo or hi and nudge the last
  // word, or take a prefix of one and the tail of the other.
  const uint32_t* base = rng.Below(2) ? lo : hi;
  for (int i = 0; i < 4; ++i) out[i] = base[i];
  switch (rng.Below(5)) {
    case 0: break;
    case 1: out[3] += 1; break;
    case 2: out[3] -= 1; break;
    case 3: {
      const int w = int(rng.Below(4));
      for (int i = w; i < 4; ++i) out[i] = uint32_t(rng.Next());
      break;
    }
    default:
      for (int i = 0; i < 4; ++i) out[i] = uint32_t(rng.Next());
  }
}

void CommonNear(Rng& rng, const RuleCommon& c, KeyCommon& k) {
  k.sport = Near<uint16_t>(rng, c.sport_lo, c.sport_hi, 0xffff);
  k.dport = Near<uint16_t>(rng, c.dport_lo, c.dport_hi, 0xffff);
  k.iif = Near<uint16_t>(rng, c.iif_lo, c.iif_hi, 0xffff);
  k.oif = Near<uint16_t>(rng, c.oif_lo, c.oif_hi, 0xffff);
  k.icmp = Near<uint16_t>(rng, c.icmp_lo, c.icmp_hi, 0xffff);
  k.proto = Near<uint8_t>(rng, c.proto_lo, c.proto_hi, 0xff);
  switch (rng.Below(3)) {
    case 0: k.tcp_flags = uint8_t((rng.Next() & ~c.tcp_flags_mask) | c.tcp_flags_value); break;
    case 1: k.tcp_flags = uint8_t(c.tcp_flags_value ^ (1u << rng.Below(8))); break;
    default: k.tcp_flags = uint8_t(rng.Next());
  }
  k.ct_state = uint8_t(1u << rng.Below(5));
  k.flags = rng.Below(5) ? kKeyHasL4 : 0;
}

PacketKey4 KeyNear(Rng& rng, const std::vector<RuleRecord4>& recs) {
  PacketKey4 k;
  // Each field from its own record: mixing makes keys that fall between
  // records as well as into them.
  const RuleRecord4& a = recs[rng.Below(uint32_t(recs.size()))];
  const RuleRecord4& b = rng.Below(3) ? a : recs[rng.Below(uint32_t(recs.size()))];
  k.src = Near<uint32_t>(rng, a.src_lo, a.src_hi, 0xffffffffu);
  k.dst = Near<uint32_t>(rng, b.dst_lo, b.dst_hi, 0xffffffffu);
  CommonNear(rng, rng.Below(3) ? a.c : recs[rng.Below(uint32_t(recs.size()))].c, k.c);
  return k;
}

PacketKey6 KeyNear(Rng& rng, const std::vector<RuleRecord6>& recs) {
  PacketKey6 k;
  const RuleRecord6& a = recs[rng.Below(uint32_t(recs.size()))];
  const RuleRecord6& b = rng.Below(3) ? a : recs[rng.Below(uint32_t(recs.size()))];
  WordsNear(rng, a.src_lo, a.src_hi, k.src);
  WordsNear(rng, b.dst_lo, b.dst_hi, k.dst);
  CommonNear(rng, rng.Below(3) ? a.c : recs[rng.Below(uint32_t(recs.size()))].c, k.c);
  return k;
}

template <typename Rec, typename Key>
std::vector<Key> MakeKeys(Rng& rng, const std::vector<Rec>& recs, size_t n) {
  std::vector<Key> keys;
  keys.reserve(n);
  TraceOptions topt;
  topt.seed = rng.Next();
  auto targeted = MakeTrace(recs.data(), uint32_t(recs.size()), n / 4, topt);
  topt.mode = TraceOptions::Mode::kRandom;
  auto random = MakeTrace(recs.data(), uint32_t(recs.size()), n / 8, topt);
  keys.insert(keys.end(), targeted.begin(), targeted.end());
  keys.insert(keys.end(), random.begin(), random.end());
  while (keys.size() < n) keys.push_back(KeyNear(rng, recs));
  // Interleave the kinds so every batch mixes them.
  for (size_t i = keys.size(); i > 1; --i) std::swap(keys[i - 1], keys[rng.Below(uint32_t(i))]);
  return keys;
}

template <typename Rec>
uint32_t PickStart(Rng& rng, const std::vector<Rec>& recs) {
  const uint32_t n = uint32_t(recs.size());
  switch (rng.Below(8)) {
    case 0: return rng.Below(n + 2);
    case 1: {
      const uint32_t r = rng.Below(n);
      return r + rng.Below(2);
    }
    default: return 0;
  }
}

// ------------------------------------------------------------- shrinking

template <typename Rec, typename Key>
std::unique_ptr<Classifier<Rec, Key>> Make(const std::vector<Rec>& recs,
                                           const ClassifierOptions& o) {
  return BuildClassifier(recs.data(), uint32_t(recs.size()), o);
}

template <typename Rec, typename Key>
bool Disagrees(const std::vector<Rec>& recs, const Key& k, uint32_t start,
               const ClassifierOptions& o) {
  if (recs.empty()) return false;
  auto c = Make<Rec, Key>(recs, o);
  const uint32_t want = RefLookup(recs, k, start);
  uint32_t got_batch = 0;
  c->LookupBatch(&k, &start, &got_batch, 1);
  return c->Lookup(k, start) != want || got_batch != want;
}

// Deletes records (halves, then quarters, ... then one at a time) while the
// disagreement persists, and prints what is left.
template <typename Rec, typename Key>
void ReportMinimal(std::vector<Rec> recs, const Key& k, uint32_t start,
                   const ClassifierOptions& o) {
  for (size_t chunk = recs.size() / 2; chunk >= 1; chunk /= 2) {
    for (size_t at = 0; at + chunk <= recs.size();) {
      std::vector<Rec> fewer(recs.begin(), recs.begin() + at);
      fewer.insert(fewer.end(), recs.begin() + at + chunk, recs.end());
      const uint32_t s = std::min<uint32_t>(start, uint32_t(fewer.size()));
      if (Disagrees(fewer, k, s, o)) {
        recs.swap(fewer);
        start = s;
      } else {
        at += chunk;
      }
    }
  }
  auto c = Make<Rec, Key>(recs, o);
  uint32_t got_batch = 0;
  c->LookupBatch(&k, &start, &got_batch, 1);
  std::printf("  minimal case (%s, max_tables %u, collision_limit %u, simd %d): %zu records\n",
              o.algorithm.c_str(), o.max_tables, o.collision_limit, int(o.simd), recs.size());
  for (size_t i = 0; i < recs.size(); ++i)
    std::printf("    [%zu] %s\n", i, Text(recs[i]).c_str());
  std::printf("    key %s start %u\n", Text(k).c_str(), start);
  std::printf("    expected %d, Lookup %d, LookupBatch %d\n", int(RefLookup(recs, k, start)),
              int(c->Lookup(k, start)), int(got_batch));
}

// ----------------------------------------------------------------- image

template <typename Rec, typename Key>
std::unique_ptr<Classifier<Rec, Key>> LoadImage(const std::vector<Rec>& recs, ImageReader* r,
                                                bool simd) {
  if constexpr (std::is_same_v<Rec, RuleRecord4>)
    return LoadClassifier4(recs.data(), uint32_t(recs.size()), r, simd);
  else
    return LoadClassifier6(recs.data(), uint32_t(recs.size()), r, simd);
}

// The classifier saved to an image and loaded back over the same records.
// The loaded one must describe the same structure: same statistics, and
// saving it again gives the same bytes.
template <typename Rec, typename Key>
std::unique_ptr<Classifier<Rec, Key>> RoundTrip(const Classifier<Rec, Key>& built,
                                                const std::vector<Rec>& recs, bool simd) {
  ImageWriter w;
  built.SaveImage(&w);
  ImageReader r(w.bytes().data(), w.size());
  auto loaded = LoadImage<Rec, Key>(recs, &r, simd);
  CL_CHECK_EQ(r.left(), size_t(0));
  CL_CHECK_EQ(loaded->size(), built.size());
  CL_CHECK_EQ(loaded->stats().tables, built.stats().tables);
  CL_CHECK_EQ(loaded->stats().fallback_records, built.stats().fallback_records);
  CL_CHECK(loaded->stats().algorithm == built.stats().algorithm);
  ImageWriter again;
  loaded->SaveImage(&again);
  CL_CHECK(again.bytes() == w.bytes());
  return loaded;
}

// ------------------------------------------------------------ the check

std::vector<ClassifierOptions> Variants() {
  std::vector<ClassifierOptions> v;
  ClassifierOptions o;
  v.push_back(o);  // the defaults
  o.simd = false;
  v.push_back(o);  // the scalar filter pass
  o.simd = true;
  o.max_tables = 2;
  o.collision_limit = 1;
  v.push_back(o);  // the cap and the trees doing most of the work
  o.max_tables = 0;
  o.collision_limit = 64;
  v.push_back(o);  // long buckets
  return v;
}

// Soak mode: FLATWALL_CLASSIFIER_SOAK=N runs every differential check with
// N times the keys and a seed of its own per N, e.g.
//   FLATWALL_CLASSIFIER_SOAK=50 build-asan/flatwall_native_tests ClassifierMatches
size_t SoakFactor() {
  const char* v = std::getenv("FLATWALL_CLASSIFIER_SOAK");
  const long n = v ? std::strtol(v, nullptr, 10) : 1;
  return n >= 1 ? size_t(n) : 1;
}

// Checks `nkeys` lookups of each variant (and of "linear", on a share of
// them) against the reference, each as built and as loaded back from its
// image (classifier/image.h). Returns the number of disagreements.
template <typename Rec, typename Key>
int CheckSet(const char* what, const std::vector<Rec>& recs, size_t nkeys, uint64_t seed) {
  const size_t soak = SoakFactor();
  nkeys *= soak;
  Rng rng(seed + (soak - 1) * 0x9E3779B97F4A7C15ULL);
  const std::vector<Key> keys = MakeKeys<Rec, Key>(rng, recs, nkeys);
  std::vector<uint32_t> starts(keys.size()), want(keys.size()), want0(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    starts[i] = PickStart(rng, recs);
    want[i] = RefLookup(recs, keys[i], starts[i]);
    want0[i] = starts[i] == 0 ? want[i] : RefLookup(recs, keys[i], 0);
  }
  std::vector<ClassifierOptions> variants = Variants();
  ClassifierOptions linear;
  linear.algorithm = "linear";
  variants.push_back(linear);
  int bad = 0;
  for (size_t v = 0; v < 2 * variants.size(); ++v) {
    const ClassifierOptions& o = variants[v / 2];
    const bool from_image = v % 2 == 1;
    auto c = Make<Rec, Key>(recs, o);
    if (from_image) c = RoundTrip<Rec, Key>(*c, recs, o.simd);
    const size_t n = o.algorithm == "linear" ? std::min<size_t>(keys.size(), 2000) : keys.size();
    std::vector<uint32_t> got(n);
    // Batches of odd sizes, with and without starts.
    for (size_t i = 0; i < n;) {
      // Mostly within one internal chunk (64 keys), sometimes several.
      const size_t m = std::min<size_t>(n - i, 1 + rng.Below(rng.Below(4) ? 100 : 300));
      const bool with_starts = rng.Below(4) != 0;
      c->LookupBatch(keys.data() + i, with_starts ? starts.data() + i : nullptr, got.data() + i, m);
      if (!with_starts) {
        // Checked against the start-0 answer, then recorded as right or
        // wrong in the terms of the loop below.
        for (size_t j = i; j < i + m; ++j) got[j] = got[j] == want0[j] ? want[j] : ~want[j];
      }
      i += m;
    }
    for (size_t i = 0; i < n; ++i) {
      const uint32_t single = c->Lookup(keys[i], starts[i]);
      if (single == want[i] && got[i] == want[i]) continue;
      ++bad;
      std::printf("  %s: %s%s disagrees on key %zu (start %u): want %d, Lookup %d\n", what,
                  o.algorithm.c_str(), from_image ? " (loaded from its image)" : "", i, starts[i],
                  int(want[i]), int(single));
      if (!from_image) ReportMinimal<Rec, Key>(recs, keys[i], starts[i], o);
      return bad;  // one minimal case is worth more than a flood
    }
  }
  return bad;
}

// The records (every field a possible wildcard) of `shape`, `n` of them.
std::vector<RuleRecord4> Set4(synth::Shape shape, uint32_t n, uint64_t seed) {
  return synth::Rules4(shape, n, seed);
}
std::vector<RuleRecord6> Set6(synth::Shape shape, uint32_t n, uint64_t seed) {
  return synth::Rules6(shape, n, seed);
}

// ------------------------------------------------------------------ tests

CL_TEST(ClassifierMatchesReference_Acl) {
  for (uint32_t n : {1u, 2u, 17u, 300u, 1500u})
    CL_CHECK_EQ((CheckSet<RuleRecord4, PacketKey4>)("acl", Set4(synth::Shape::kAcl, n, n), 40000, n), 0);
  // Past the first priority band (at least 4096 records, then 8x larger).
  CL_CHECK_EQ((CheckSet<RuleRecord4, PacketKey4>)("acl-12k", Set4(synth::Shape::kAcl, 12000, 5), 12000, 5), 0);
}

CL_TEST(ClassifierMatchesReference_WildcardHeavy) {
  for (uint32_t n : {50u, 700u, 2500u})
    CL_CHECK_EQ((CheckSet<RuleRecord4, PacketKey4>)("wildcard", Set4(synth::Shape::kWildcard, n, n + 1), 40000, n), 0);
}

CL_TEST(ClassifierMatchesReference_Adversarial) {
  // Every prefix-length pair: the table cap, tuple explosion, the trees.
  for (uint32_t n : {64u, 900u, 3000u})
    CL_CHECK_EQ((CheckSet<RuleRecord4, PacketKey4>)("adversarial", Set4(synth::Shape::kAdversarial, n, n + 2), 40000, n), 0);
}

CL_TEST(ClassifierMatchesReference_OverlappingPortRanges) {
  for (uint32_t n : {40u, 1200u})
    CL_CHECK_EQ((CheckSet<RuleRecord4, PacketKey4>)("portranges", Set4(synth::Shape::kPortRanges, n, n + 3), 40000, n), 0);
}

CL_TEST(ClassifierMatchesReference_TcpFlagsIcmpIfacesCt) {
  for (uint32_t n : {30u, 600u, 2000u})
    CL_CHECK_EQ((CheckSet<RuleRecord4, PacketKey4>)("extras", Set4(synth::Shape::kExtras, n, n + 4), 50000, n), 0);
}

CL_TEST(ClassifierMatchesReference_IPv6) {
  for (synth::Shape s : {synth::Shape::kAcl, synth::Shape::kAdversarial, synth::Shape::kExtras,
                         synth::Shape::kWildcard})
    for (uint32_t n : {25u, 800u, 2100u})
      CL_CHECK_EQ((CheckSet<RuleRecord6, PacketKey6>)(synth::ShapeName(s), Set6(s, n, n + 5), 12000, n), 0);
}

// Small random sets whose fields take few distinct values, so that keys hit
// exact boundaries and records overlap and shadow each other constantly.
CL_TEST(ClassifierMatchesReference_DenseRandom) {
  Rng rng(99);
  auto pick16 = [&](uint16_t* lo, uint16_t* hi, uint16_t max) {
    if (rng.Below(3) == 0) {
      *lo = 0, *hi = max;
      return;
    }
    uint16_t a = uint16_t(rng.Below(8)), b = uint16_t(rng.Below(8));
    if (a > b) std::swap(a, b);
    *lo = a, *hi = b;
  };
  for (int round = 0; round < 40; ++round) {
    const uint32_t n = 1 + rng.Below(60);
    std::vector<RuleRecord4> recs(n);
    for (RuleRecord4& r : recs) {
      r = synth::CatchAll4(Action::kAccept);
      if (rng.Below(2)) {
        const int len = int(rng.Below(33));
        r.src_lo = uint32_t(rng.Below(4)) << 30;
        r.src_hi = len == 0 ? 0xffffffffu : r.src_lo | (len == 32 ? 0 : (0xffffffffu >> len));
        if (len == 0) r.src_lo = 0;
      }
      if (rng.Below(2)) {
        r.dst_lo = rng.Below(16);
        r.dst_hi = r.dst_lo + rng.Below(16);
      }
      pick16(&r.c.sport_lo, &r.c.sport_hi, 0xffff);
      pick16(&r.c.dport_lo, &r.c.dport_hi, 0xffff);
      pick16(&r.c.iif_lo, &r.c.iif_hi, 0xffff);
      pick16(&r.c.oif_lo, &r.c.oif_hi, 0xffff);
      pick16(&r.c.icmp_lo, &r.c.icmp_hi, 0xffff);
      if (rng.Below(2)) {
        r.c.proto_lo = uint8_t(rng.Below(8));
        r.c.proto_hi = uint8_t(r.c.proto_lo + rng.Below(3));
      }
      if (rng.Below(3) == 0) {
        r.c.tcp_flags_mask = uint8_t(rng.Below(8));
        r.c.tcp_flags_value = uint8_t(rng.Below(8));
        if (rng.Below(2)) r.c.flags |= kRuleTcpFlagsInvert;
      }
      if (rng.Below(3) == 0) r.c.ct_state_mask = uint8_t(1 + rng.Below(31));
      if (rng.Below(3) == 0) r.c.flags |= kRuleNeedsL4;
    }
    CL_CHECK_EQ((CheckSet<RuleRecord4, PacketKey4>("dense", recs, 5000, round)), 0);
  }
}

// The compiler's interface wildcard is [0, D], not [0, 0xffff]: keys above
// D match nothing, keys within match the policy.
CL_TEST(ClassifierInterfaceDomain) {
  std::vector<RuleRecord4> recs = Set4(synth::Shape::kAcl, 500, 8);
  for (RuleRecord4& r : recs) r.c.iif_hi = r.c.oif_hi = 3;
  recs[10].c.iif_lo = recs[10].c.iif_hi = 2;
  CL_CHECK_EQ((CheckSet<RuleRecord4, PacketKey4>("iface-domain", recs, 20000, 8)), 0);
  auto c = BuildClassifier(recs.data(), uint32_t(recs.size()));
  PacketKey4 k;
  k.c.iif = 4;
  CL_CHECK_EQ(c->Lookup(k, 0), kNoMatch);
  k.c.iif = 3;
  CL_CHECK_EQ(c->Lookup(k, 0), RefLookup(recs, k, 0));
}

CL_TEST(ClassifierStatsAndMemory) {
  for (uint32_t n : {1000u, 20000u}) {
    const auto recs = Set4(synth::Shape::kAcl, n, 3);
    auto c = BuildClassifier(recs.data(), n);
    const BuildStats& s = c->stats();
    CL_CHECK(s.algorithm == "tuplemerge");
    CL_CHECK_EQ(s.records, n);
    CL_CHECK(s.memory_bytes > n * sizeof(RuleRecord4));
    CL_CHECK(s.memory_bytes < size_t(n) * 300);
    CL_CHECK(s.tables >= 1);
    CL_CHECK_EQ(c->size(), n);
    CL_CHECK(std::memcmp(&c->record(n / 2), &recs[n / 2], sizeof(RuleRecord4)) == 0);
  }
  // The wildcard-heavy, all-pairs set stays within 2x of the acl set.
  const auto acl = Set4(synth::Shape::kAcl, 20000, 4);
  const auto adv = Set4(synth::Shape::kAdversarial, 20000, 4);
  const size_t acl_mem = BuildClassifier(acl.data(), 20000)->stats().memory_bytes;
  const size_t adv_mem = BuildClassifier(adv.data(), 20000)->stats().memory_bytes;
  CL_CHECK(adv_mem < 2 * acl_mem);
  ClassifierOptions lin;
  lin.algorithm = "linear";
  CL_CHECK(BuildClassifier(acl.data(), 20000, lin)->stats().algorithm == "linear");
  bool threw = false;
  try {
    lin.algorithm = "nope";
    BuildClassifier(acl.data(), 20000, lin);
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  CL_CHECK(threw);
  CL_CHECK(IsKnownAlgorithm("tuplemerge") && IsKnownAlgorithm("linear") && !IsKnownAlgorithm(""));
}

CL_TEST(TraceIsDeterministicAndTargeted) {
  const auto recs = Set4(synth::Shape::kExtras, 400, 6);
  TraceOptions o;
  o.seed = 42;
  const auto a = MakeTrace(recs.data(), 400, 5000, o);
  const auto b = MakeTrace(recs.data(), 400, 5000, o);
  CL_CHECK(a.size() == 5000 && std::memcmp(a.data(), b.data(), a.size() * sizeof a[0]) == 0);
  o.seed = 43;
  const auto c = MakeTrace(recs.data(), 400, 5000, o);
  CL_CHECK(std::memcmp(a.data(), c.data(), a.size() * sizeof a[0]) != 0);
  // A targeted key lies inside the record it was drawn from, so it matches
  // something: the reference finds a match for (nearly) every key. Records
  // whose tcp flags cannot be satisfied are the exception.
  size_t matched = 0;
  for (const auto& k : a) matched += RefLookup(recs, k, 0) != kNoMatch;
  CL_CHECK(matched > a.size() * 9 / 10);
  // Locality repeats earlier keys.
  o.locality = 0.9;
  const auto l = MakeTrace(recs.data(), 400, 5000, o);
  size_t repeats = 0;
  for (size_t i = 1; i < l.size(); ++i)
    repeats += std::memcmp(&l[i], &l[i - 1], sizeof l[i]) == 0;
  CL_CHECK(repeats > 1000);
  TraceOptions::Mode mode;
  CL_CHECK(ParseTraceMode("random", &mode) && mode == TraceOptions::Mode::kRandom);
  CL_CHECK(!ParseTraceMode("bogus", &mode));
  o.mode = TraceOptions::Mode::kRandom;
  CL_CHECK_EQ(MakeTrace(recs.data(), 400, 123, o).size(), size_t(123));
  const auto r6 = Set6(synth::Shape::kAcl, 100, 1);
  CL_CHECK_EQ(MakeTrace(r6.data(), 100, 77, o).size(), size_t(77));
}

}  // namespace
}  // namespace flatwall
