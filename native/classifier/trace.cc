#include "classifier/trace.h"

#include <algorithm>
#include <cmath>

#include "classifier/family.h"

namespace flatwall {

namespace {

uint64_t SplitMix(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

inline uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

}  // namespace

Rng::Rng(uint64_t seed) {
  for (auto& s : s_) s = SplitMix(seed);
}

uint64_t Rng::Next() {
  const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = Rotl(s_[3], 45);
  return result;
}

uint32_t Rng::Below(uint32_t n) { return uint32_t(((Next() >> 32) * uint64_t(n)) >> 32); }

double Rng::Unit() { return double(Next() >> 11) * (1.0 / 9007199254740992.0); }

bool ParseTraceMode(const std::string& name, TraceOptions::Mode* mode) {
  if (name == "targeted") *mode = TraceOptions::Mode::kTargeted;
  else if (name == "random") *mode = TraceOptions::Mode::kRandom;
  else return false;
  return true;
}

namespace {

using detail::Family;
using detail::u128;

template <typename V>
V Random(Rng& rng);
template <>
uint32_t Random<uint32_t>(Rng& rng) { return uint32_t(rng.Next()); }
template <>
uint16_t Random<uint16_t>(Rng& rng) { return uint16_t(rng.Next()); }
template <>
uint8_t Random<uint8_t>(Rng& rng) { return uint8_t(rng.Next()); }
template <>
u128 Random<u128>(Rng& rng) { return (u128(rng.Next()) << 64) | rng.Next(); }

template <typename V>
V UniformIn(Rng& rng, V lo, V hi) {
  const V span = V(hi - lo + 1);  // 0 when [lo, hi] is the whole domain
  if (span == 0) return Random<V>(rng);
  if constexpr (sizeof(V) <= 4) {
    return V(lo + V(rng.Next() % uint64_t(span)));
  } else {
    return V(lo + Random<V>(rng) % span);
  }
}

// A point of [lo, hi], three times in eight on a corner, once on the edge
// of an aligned block (where prefix-based structures cut), else uniform.
template <typename V>
V CornerPoint(Rng& rng, V lo, V hi) {
  constexpr int kBits = int(sizeof(V) * 8);
  switch (rng.Below(8)) {
    case 0: return lo;
    case 1: return hi;
    case 2: return lo < hi ? V(lo + 1) : lo;
    case 3: return lo < hi ? V(hi - 1) : hi;
    case 4: {
      const V u = UniformIn(rng, lo, hi);
      const int b = int(rng.Below(kBits));
      const V low_bits = b == 0 ? V(0) : V(V(~V(0)) >> (kBits - b));
      const V edge = rng.Below(2) ? V(u & V(~low_bits)) : V(u | low_bits);
      return std::min(std::max(edge, lo), hi);
    }
    default: return UniformIn(rng, lo, hi);
  }
}

uint8_t PickCtBit(Rng& rng, uint8_t mask) {
  uint8_t bits[5];
  int n = 0;
  for (int b = 0; b < 5; ++b)
    if (mask & (1 << b)) bits[n++] = uint8_t(1 << b);
  return n ? bits[rng.Below(uint32_t(n))] : uint8_t(1 << rng.Below(5));
}

template <typename Rec>
typename Family<Rec>::Key Targeted(Rng& rng, const Rec& r) {
  using F = Family<Rec>;
  typename F::Key k;
  F::SetSrc(k, CornerPoint(rng, F::SrcLo(r), F::SrcHi(r)));
  F::SetDst(k, CornerPoint(rng, F::DstLo(r), F::DstHi(r)));
  const RuleCommon& c = r.c;
  k.c.sport = CornerPoint(rng, c.sport_lo, c.sport_hi);
  k.c.dport = CornerPoint(rng, c.dport_lo, c.dport_hi);
  k.c.iif = CornerPoint(rng, c.iif_lo, c.iif_hi);
  k.c.oif = CornerPoint(rng, c.oif_lo, c.oif_hi);
  k.c.icmp = CornerPoint(rng, c.icmp_lo, c.icmp_hi);
  k.c.proto = CornerPoint(rng, c.proto_lo, c.proto_hi);
  const bool invert = c.flags & kRuleTcpFlagsInvert;
  uint8_t flags = uint8_t(rng.Next());
  if (!invert) {
    flags = uint8_t((flags & ~c.tcp_flags_mask) | (c.tcp_flags_value & c.tcp_flags_mask));
  } else {
    for (int tries = 0; tries < 16 && (flags & c.tcp_flags_mask) == c.tcp_flags_value; ++tries)
      flags = uint8_t(rng.Next());
  }
  k.c.tcp_flags = flags;
  k.c.ct_state = PickCtBit(rng, c.ct_state_mask);
  k.c.flags = ((c.flags & kRuleNeedsL4) || rng.Below(16) != 0) ? kKeyHasL4 : 0;
  return k;
}

// Random keys draw interface ids from the ids the table can tell apart:
// [0, D] when records write an interface wildcard as [0, D] (the
// compiler's classes), one past the largest id named when they use the
// full 16-bit range as the wildcard.
template <typename Rec>
struct RandomSpace {
  uint16_t max_iif = 0, max_oif = 0;
  uint8_t protos[8];
  int nprotos = 0;
};

inline void Widen(uint16_t lo, uint16_t hi, uint16_t* max) {
  const uint16_t top = hi == 0xffff ? uint16_t(lo == 0 ? 1 : lo) : hi;
  *max = std::max(*max, top);
}

template <typename Rec>
RandomSpace<Rec> Survey(const Rec* records, uint32_t count) {
  RandomSpace<Rec> s;
  bool seen[256] = {};
  for (uint32_t i = 0; i < count; ++i) {
    const RuleCommon& c = records[i].c;
    Widen(c.iif_lo, c.iif_hi, &s.max_iif);
    Widen(c.oif_lo, c.oif_hi, &s.max_oif);
    if (c.proto_lo == c.proto_hi && !seen[c.proto_lo] && s.nprotos < 8) {
      seen[c.proto_lo] = true;
      s.protos[s.nprotos++] = c.proto_lo;
    }
  }
  return s;
}

template <typename Rec>
typename Family<Rec>::Key RandomKey(Rng& rng, const RandomSpace<Rec>& space) {
  using F = Family<Rec>;
  typename F::Key k;
  F::SetSrc(k, Random<typename F::Addr>(rng));
  F::SetDst(k, Random<typename F::Addr>(rng));
  k.c.sport = Random<uint16_t>(rng);
  k.c.dport = Random<uint16_t>(rng);
  k.c.iif = uint16_t(rng.Below(space.max_iif + 1u));
  k.c.oif = uint16_t(rng.Below(space.max_oif + 1u));
  // Mostly the protocols the table names, sometimes anything.
  k.c.proto = space.nprotos && rng.Below(8) ? space.protos[rng.Below(uint32_t(space.nprotos))]
                                            : Random<uint8_t>(rng);
  k.c.icmp = uint16_t(rng.Below(256) << 8 | rng.Below(16));
  k.c.tcp_flags = Random<uint8_t>(rng);
  k.c.ct_state = uint8_t(1 << rng.Below(5));
  k.c.flags = rng.Below(16) ? kKeyHasL4 : 0;
  return k;
}

template <typename Rec>
std::vector<typename Family<Rec>::Key> Generate(const Rec* records, uint32_t count, size_t n,
                                                const TraceOptions& o) {
  using Key = typename Family<Rec>::Key;
  std::vector<Key> out;
  out.reserve(n);
  Rng rng(o.seed);
  const RandomSpace<Rec> space = Survey(records, count);
  const double locality = std::min(std::max(o.locality, 0.0), 1.0);
  const double shape = o.pareto_a > 0 ? o.pareto_a : 1.0;
  const uint32_t window = std::max<uint32_t>(1, o.window);
  for (size_t i = 0; i < n; ++i) {
    if (i > 0 && locality > 0 && rng.Chance(locality)) {
      // Pareto(shape, scale 1) age, truncated to the window and history.
      const double u = 1.0 - rng.Unit();  // (0, 1]
      const double age = std::floor(std::pow(u, -1.0 / shape)) - 1.0;
      const size_t limit = std::min<size_t>(window, i);
      const size_t a = age >= double(limit) ? size_t(rng.Below(uint32_t(limit))) : size_t(age);
      out.push_back(out[i - 1 - a]);
      continue;
    }
    if (o.mode == TraceOptions::Mode::kRandom || count == 0) {
      out.push_back(RandomKey(rng, space));
    } else {
      out.push_back(Targeted(rng, records[rng.Below(count)]));
    }
  }
  return out;
}

}  // namespace

std::vector<PacketKey4> MakeTrace(const RuleRecord4* records, uint32_t count, size_t n,
                                  const TraceOptions& options) {
  return Generate(records, count, n, options);
}

std::vector<PacketKey6> MakeTrace(const RuleRecord6* records, uint32_t count, size_t n,
                                  const TraceOptions& options) {
  return Generate(records, count, n, options);
}

}  // namespace flatwall
