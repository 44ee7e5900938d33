#include "test/synth.h"

#include <algorithm>

#include "classifier/family.h"
#include "classifier/trace.h"

namespace flatwall {
namespace synth {

bool ParseShape(const std::string& name, Shape* shape) {
  static const std::pair<const char*, Shape> kNames[] = {
      {"acl", Shape::kAcl},
      {"wildcard", Shape::kWildcard},
      {"adversarial", Shape::kAdversarial},
      {"portranges", Shape::kPortRanges},
      {"extras", Shape::kExtras},
  };
  for (const auto& [n, s] : kNames) {
    if (name == n) {
      *shape = s;
      return true;
    }
  }
  return false;
}

const char* ShapeName(Shape shape) {
  switch (shape) {
    case Shape::kAcl: return "acl";
    case Shape::kWildcard: return "wildcard";
    case Shape::kAdversarial: return "adversarial";
    case Shape::kPortRanges: return "portranges";
    case Shape::kExtras: return "extras";
  }
  return "?";
}

namespace {

using detail::Family;
using detail::u128;

template <typename Rec>
void Wildcard(Rec& r) {
  using F = Family<Rec>;
  using A = typename F::Addr;
  r = Rec{};
  F::SetSrc(r, A(0), A(~A(0)));
  F::SetDst(r, A(0), A(~A(0)));
  RuleCommon& c = r.c;
  c.sport_hi = c.dport_hi = c.iif_hi = c.oif_hi = c.icmp_hi = 0xffff;
  c.proto_hi = 0xff;
  c.ct_state_mask = kCtAny;
  c.action = uint8_t(Action::kAccept);
}

template <typename Rec>
class Gen {
  using F = Family<Rec>;
  using A = typename F::Addr;
  static constexpr int W = F::kAddrBits;

 public:
  Gen(uint32_t count, uint64_t seed) : rng_(seed) {
    // Clustered addresses: records draw from a pool of sites (about one
    // per 16 records), so prefixes share their high bits like real ACLs
    // and hash buckets see realistic collisions.
    const uint32_t nsites = std::max<uint32_t>(8, count / 16);
    for (uint32_t i = 0; i < nsites; ++i) {
      src_sites_.push_back(RandomAddr());
      dst_sites_.push_back(RandomAddr());
    }
  }

  std::vector<Rec> Make(Shape shape, uint32_t count) {
    std::vector<Rec> out;
    out.reserve(count);
    for (uint32_t i = 0; i + 1 < count; ++i) {
      Rec r;
      Wildcard(r);
      switch (shape) {
        case Shape::kAcl: Acl(r); break;
        case Shape::kWildcard: WildcardHeavy(r); break;
        case Shape::kAdversarial: Adversarial(r); break;
        case Shape::kPortRanges: PortRanges(r); break;
        case Shape::kExtras: Extras(r, i, count); break;
      }
      r.c.rule_id = i;
      out.push_back(r);
    }
    Rec policy;
    Wildcard(policy);
    policy.c.action = uint8_t(rng_.Below(2) ? Action::kDrop : Action::kAccept);
    policy.c.rule_id = count - 1;
    out.push_back(policy);
    return out;
  }

 private:
  A RandomAddr() {
    if constexpr (W == 32) {
      return A(rng_.Next());
    } else {
      return (u128(rng_.Next()) << 64) | rng_.Next();
    }
  }
  static A Mask(int len) { return len == 0 ? A(0) : A(A(~A(0)) << (W - len)); }
  // Scales an IPv4-style length to the family (IPv6 /64 plays /24's role).
  static int Scale(int len32) {
    if (W == 32) return len32;
    static const int k6[33] = {0,  8,  12, 16, 20, 24, 28, 32, 32, 36, 36, 40, 40, 44, 44, 46, 48,
                               48, 50, 52, 54, 56, 58, 60, 64, 72, 80, 88, 96, 104, 112, 120, 128};
    return k6[len32];
  }
  void Prefix(A base, int len, A* lo, A* hi) {
    *lo = base & Mask(len);
    *hi = *lo | A(~Mask(len));
  }
  // A site's network (/16 of v4) with random host bits below it.
  A SiteAddr(const std::vector<A>& sites) {
    // Skewed site popularity: a few big networks, a long tail.
    const uint32_t n = uint32_t(sites.size());
    const uint32_t i = rng_.Chance(0.5) ? rng_.Below(std::max<uint32_t>(1, n / 32)) : rng_.Below(n);
    const int net = Scale(16);
    return (sites[i] & Mask(net)) | (RandomAddr() & A(~Mask(net)));
  }
  void ArbitraryRange(A* lo, A* hi) {
    A a = RandomAddr(), b = RandomAddr();
    if (rng_.Chance(0.7)) b = a + (RandomAddr() >> (W - 12));  // mostly short ranges
    if (b < a) std::swap(a, b);
    *lo = a, *hi = b;
  }
  void PortRange(uint16_t* lo, uint16_t* hi) {
    uint16_t a = uint16_t(rng_.Next()), b;
    switch (rng_.Below(3)) {
      case 0: b = uint16_t(std::min<uint32_t>(0xffff, a + rng_.Below(64))); break;
      case 1: b = uint16_t(std::min<uint32_t>(0xffff, a + rng_.Below(4096))); break;
      default: b = uint16_t(rng_.Next()); break;
    }
    if (b < a) std::swap(a, b);
    *lo = a, *hi = b;
  }
  uint16_t CommonPort() {
    static const uint16_t kPorts[] = {80,   443,  22,   25,   53,   110,  143, 993, 995, 3306,
                                      5432, 8080, 8443, 21,   23,   123,  161, 389, 636, 445,
                                      139,  137,  3389, 5900, 6379, 9200, 27017, 1521, 1433, 179};
    if (rng_.Chance(0.6)) return kPorts[rng_.Below(sizeof(kPorts) / sizeof(kPorts[0]))];
    return uint16_t(rng_.Below(65536));
  }
  void SetL4(Rec& r) {
    const RuleCommon& c = r.c;
    if (c.sport_lo != 0 || c.sport_hi != 0xffff || c.dport_lo != 0 || c.dport_hi != 0xffff ||
        c.icmp_lo != 0 || c.icmp_hi != 0xffff || c.tcp_flags_mask != 0)
      r.c.flags |= kRuleNeedsL4;
  }
  void TerminalAction(Rec& r) {
    const uint32_t a = rng_.Below(20);
    if (a < 12) {
      r.c.action = uint8_t(Action::kAccept);
    } else if (a < 19) {
      r.c.action = uint8_t(Action::kDrop);
    } else {
      r.c.action = uint8_t(Action::kReject);
      r.c.arg = rng_.Below(12);
    }
  }

  // ClassBench acl1-like: destination mostly hosts, sources spread over
  // lengths, TCP with exact destination ports dominating.
  void Acl(Rec& r) {
    static const uint8_t kSrcLens[] = {0,  0,  8,  16, 16, 20, 22, 23, 24, 24, 24, 24,
                                       26, 27, 28, 29, 30, 32, 32, 32, 32, 32, 32, 32};
    static const uint8_t kDstLens[] = {0,  16, 21, 24, 24, 24, 26, 28, 29, 30,
                                       32, 32, 32, 32, 32, 32, 32, 32, 32, 32};
    A lo, hi;
    Prefix(SiteAddr(src_sites_), Scale(kSrcLens[rng_.Below(sizeof(kSrcLens))]), &lo, &hi);
    F::SetSrc(r, lo, hi);
    Prefix(SiteAddr(dst_sites_), Scale(kDstLens[rng_.Below(sizeof(kDstLens))]), &lo, &hi);
    F::SetDst(r, lo, hi);
    RuleCommon& c = r.c;
    const uint32_t p = rng_.Below(20);
    if (p < 14 || p == 19) {
      c.proto_lo = c.proto_hi = p < 14 ? 6 : 17;
      if (rng_.Chance(0.1)) {
        if (rng_.Chance(0.5)) c.sport_lo = c.sport_hi = CommonPort();
        else c.sport_lo = 1024;
      }
      const uint32_t d = rng_.Below(20);
      if (d < 11) c.dport_lo = c.dport_hi = CommonPort();
      else if (d < 14) { /* any */
      } else if (d < 16) c.dport_lo = 1024;
      else if (d < 17) c.dport_hi = 1023;
      else PortRange(&c.dport_lo, &c.dport_hi);
    } else if (p < 18) {
      c.proto_lo = c.proto_hi = 17;
      c.dport_lo = c.dport_hi = CommonPort();
    } else if (rng_.Chance(0.6)) {
      c.proto_lo = c.proto_hi = 1;
      if (rng_.Chance(0.5)) {
        const uint16_t type = uint16_t(rng_.Below(16));
        c.icmp_lo = uint16_t(type << 8);
        c.icmp_hi = uint16_t(type << 8 | 0xff);
      }
    }
    if (rng_.Chance(0.05)) c.ct_state_mask = uint8_t(kCtNew | (rng_.Chance(0.5) ? kCtEstablished : 0));
    SetL4(r);
    TerminalAction(r);
  }

  // fw-like: most fields wildcards; the rest prefixes or arbitrary ranges.
  void WildcardHeavy(Rec& r) {
    A lo, hi;
    for (int side = 0; side < 2; ++side) {
      const uint32_t k = rng_.Below(10);
      if (k < 5) continue;
      if (k < 8) Prefix(SiteAddr(side ? dst_sites_ : src_sites_), Scale(8 + int(rng_.Below(25))), &lo, &hi);
      else ArbitraryRange(&lo, &hi);
      if (side) F::SetDst(r, lo, hi);
      else F::SetSrc(r, lo, hi);
    }
    RuleCommon& c = r.c;
    if (rng_.Chance(0.6)) {
      c.proto_lo = c.proto_hi = rng_.Chance(0.7) ? 6 : 17;
      for (int port = 0; port < 2; ++port) {
        uint16_t* plo = port ? &c.dport_lo : &c.sport_lo;
        uint16_t* phi = port ? &c.dport_hi : &c.sport_hi;
        const uint32_t k = rng_.Below(4);
        if (k == 0 && port) *plo = *phi = CommonPort();
        else if (k == 1) PortRange(plo, phi);
      }
    }
    if (rng_.Chance(0.3)) c.iif_lo = c.iif_hi = uint16_t(rng_.Below(16));
    if (rng_.Chance(0.2)) c.oif_lo = c.oif_hi = uint16_t(rng_.Below(16));
    if (rng_.Chance(0.1)) c.ct_state_mask = uint8_t(1 + rng_.Below(kCtAny));
    SetL4(r);
    TerminalAction(r);
  }

  // Every prefix-length pair, arbitrary address ranges, overlapping port
  // ranges, interface ranges: tuple explosion plus cutting-tree poison.
  void Adversarial(Rec& r) {
    A lo, hi;
    for (int side = 0; side < 2; ++side) {
      const uint32_t k = rng_.Below(10);
      if (k < 3) continue;  // wildcard
      if (k < 8) Prefix(SiteAddr(side ? dst_sites_ : src_sites_), int(rng_.Below(W + 1)), &lo, &hi);
      else ArbitraryRange(&lo, &hi);
      if (side) F::SetDst(r, lo, hi);
      else F::SetSrc(r, lo, hi);
    }
    RuleCommon& c = r.c;
    if (rng_.Chance(0.7)) c.proto_lo = c.proto_hi = rng_.Chance(0.7) ? 6 : 17;
    for (int port = 0; port < 2; ++port) {
      uint16_t* plo = port ? &c.dport_lo : &c.sport_lo;
      uint16_t* phi = port ? &c.dport_hi : &c.sport_hi;
      const uint32_t k = rng_.Below(10);
      if (k < 2) *plo = *phi = CommonPort();
      else if (k < 6) PortRange(plo, phi);
    }
    if (rng_.Chance(0.2)) {
      c.iif_lo = uint16_t(rng_.Below(16));
      c.iif_hi = uint16_t(c.iif_lo + rng_.Below(4));
    }
    if (rng_.Chance(0.2)) c.ct_state_mask = uint8_t(1 + rng_.Below(kCtAny));
    if (rng_.Chance(0.1)) {
      c.tcp_flags_mask = uint8_t(rng_.Next() & 0x3f);
      c.tcp_flags_value = uint8_t(rng_.Next() & c.tcp_flags_mask);
      if (rng_.Chance(0.3)) c.flags |= kRuleTcpFlagsInvert;
    }
    SetL4(r);
    TerminalAction(r);
  }

  // The hashing worst case: a handful of address pairs, so thousands of
  // records share every hash key and differ only in port ranges.
  void PortRanges(Rec& r) {
    A lo, hi;
    Prefix(src_sites_[rng_.Below(4)], Scale(24), &lo, &hi);
    F::SetSrc(r, lo, hi);
    if (rng_.Chance(0.5)) {
      Prefix(dst_sites_[rng_.Below(2)], Scale(16), &lo, &hi);
      F::SetDst(r, lo, hi);
    }
    RuleCommon& c = r.c;
    c.proto_lo = c.proto_hi = 6;
    PortRange(&c.dport_lo, &c.dport_hi);
    if (rng_.Chance(0.3)) PortRange(&c.sport_lo, &c.sport_hi);
    SetL4(r);
    TerminalAction(r);
  }

  // Exercises every non-range field and the non-terminal actions.
  void Extras(Rec& r, uint32_t i, uint32_t count) {
    if (rng_.Chance(0.5)) Acl(r);
    else Adversarial(r);
    RuleCommon& c = r.c;
    c.flags = 0;
    if (rng_.Chance(0.3)) {
      c.tcp_flags_mask = uint8_t(rng_.Next() & 0x3f);
      c.tcp_flags_value = uint8_t(rng_.Next() & c.tcp_flags_mask);
      if (rng_.Chance(0.2)) c.tcp_flags_value |= uint8_t(rng_.Next() & 0xc0);  // can never match
      if (rng_.Chance(0.4)) c.flags |= kRuleTcpFlagsInvert;
    }
    if (rng_.Chance(0.3)) {
      c.icmp_lo = uint16_t(rng_.Next());
      c.icmp_hi = uint16_t(std::min<uint32_t>(0xffff, c.icmp_lo + rng_.Below(600)));
    }
    if (rng_.Chance(0.3)) {
      c.iif_lo = uint16_t(rng_.Below(8));
      c.iif_hi = uint16_t(c.iif_lo + rng_.Below(3));
    }
    if (rng_.Chance(0.3)) {
      c.oif_lo = uint16_t(rng_.Below(8));
      c.oif_hi = uint16_t(c.oif_lo + rng_.Below(3));
    }
    if (rng_.Chance(0.3)) c.ct_state_mask = uint8_t(1 + rng_.Below(kCtAny));
    if (rng_.Chance(0.5)) c.flags |= kRuleNeedsL4;
    const uint32_t a = rng_.Below(10);
    if (a < 3 && i + 2 < count) {
      c.action = uint8_t(a == 0 ? Action::kLog : a == 1 ? Action::kCount : Action::kSkip);
      c.arg = i + 1 + rng_.Below(std::min<uint32_t>(8, count - 1 - i));
    }
  }

  Rng rng_;
  std::vector<A> src_sites_, dst_sites_;
};

}  // namespace

std::vector<RuleRecord4> Rules4(Shape shape, uint32_t count, uint64_t seed) {
  return Gen<RuleRecord4>(count, seed).Make(shape, std::max<uint32_t>(1, count));
}

std::vector<RuleRecord6> Rules6(Shape shape, uint32_t count, uint64_t seed) {
  return Gen<RuleRecord6>(count, seed).Make(shape, std::max<uint32_t>(1, count));
}

RuleRecord4 CatchAll4(Action action) {
  RuleRecord4 r;
  Wildcard(r);
  r.c.action = uint8_t(action);
  return r;
}

RuleRecord6 CatchAll6(Action action) {
  RuleRecord6 r;
  Wildcard(r);
  r.c.action = uint8_t(action);
  return r;
}

}  // namespace synth
}  // namespace flatwall
