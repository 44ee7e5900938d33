// Internal: what differs between the IPv4 and IPv6 classifiers, and the one
// definition of what "a record matches a key" means. Everything above this
// header (tuple merge, linear scan, trace generation, validation) is written
// once, against Family<Rec>, and instantiated for both families.
#pragma once

#include <cstdint>

#include "classifier/packet_key.h"
#include "classifier/rule_table.h"

namespace flatwall {
namespace detail {

using u128 = unsigned __int128;

template <typename Rec>
struct Family;

template <>
struct Family<RuleRecord4> {
  using Rec = RuleRecord4;
  using Key = PacketKey4;
  using Addr = uint32_t;
  static constexpr int kAddrBits = 32;
  static constexpr flatwall::Family kFamily = flatwall::Family::kIPv4;
  static constexpr const char* kName = "ipv4";

  static Addr SrcLo(const Rec& r) { return r.src_lo; }
  static Addr SrcHi(const Rec& r) { return r.src_hi; }
  static Addr DstLo(const Rec& r) { return r.dst_lo; }
  static Addr DstHi(const Rec& r) { return r.dst_hi; }
  static Addr Src(const Key& k) { return k.src; }
  static Addr Dst(const Key& k) { return k.dst; }
  static void SetSrc(Key& k, Addr a) { k.src = a; }
  static void SetDst(Key& k, Addr a) { k.dst = a; }
  static void SetSrc(Rec& r, Addr lo, Addr hi) { r.src_lo = lo, r.src_hi = hi; }
  static void SetDst(Rec& r, Addr lo, Addr hi) { r.dst_lo = lo, r.dst_hi = hi; }
};

// IPv6 words are most significant first, so packing them into one 128-bit
// integer keeps the numeric order the compiler used to build the ranges.
inline u128 LoadWords(const uint32_t w[4]) {
  return (u128(w[0]) << 96) | (u128(w[1]) << 64) | (u128(w[2]) << 32) | u128(w[3]);
}
inline void StoreWords(uint32_t w[4], u128 v) {
  w[0] = uint32_t(v >> 96), w[1] = uint32_t(v >> 64), w[2] = uint32_t(v >> 32), w[3] = uint32_t(v);
}

template <>
struct Family<RuleRecord6> {
  using Rec = RuleRecord6;
  using Key = PacketKey6;
  using Addr = u128;
  static constexpr int kAddrBits = 128;
  static constexpr flatwall::Family kFamily = flatwall::Family::kIPv6;
  static constexpr const char* kName = "ipv6";

  static Addr SrcLo(const Rec& r) { return LoadWords(r.src_lo); }
  static Addr SrcHi(const Rec& r) { return LoadWords(r.src_hi); }
  static Addr DstLo(const Rec& r) { return LoadWords(r.dst_lo); }
  static Addr DstHi(const Rec& r) { return LoadWords(r.dst_hi); }
  static Addr Src(const Key& k) { return LoadWords(k.src); }
  static Addr Dst(const Key& k) { return LoadWords(k.dst); }
  static void SetSrc(Key& k, Addr a) { StoreWords(k.src, a); }
  static void SetDst(Key& k, Addr a) { StoreWords(k.dst, a); }
  static void SetSrc(Rec& r, Addr lo, Addr hi) { StoreWords(r.src_lo, lo), StoreWords(r.src_hi, hi); }
  static void SetDst(Rec& r, Addr lo, Addr hi) { StoreWords(r.dst_lo, lo), StoreWords(r.dst_hi, hi); }
};

// The fields that are not plain ranges. Kept apart so the bucket entries of
// the tuple classifier can skip them when a record leaves them trivial.
inline bool ExtraMatches(const RuleCommon& r, const KeyCommon& k) {
  const bool flags_equal = (k.tcp_flags & r.tcp_flags_mask) == r.tcp_flags_value;
  const bool invert = (r.flags & kRuleTcpFlagsInvert) != 0;
  if (flags_equal == invert) return false;
  if ((k.ct_state & r.ct_state_mask) == 0) return false;
  if ((r.flags & kRuleNeedsL4) && !(k.flags & kKeyHasL4)) return false;
  return true;
}

// The non-address part of the semantics (classifier.h states it in prose).
inline bool CommonMatches(const RuleCommon& r, const KeyCommon& k) {
  if (k.sport < r.sport_lo || k.sport > r.sport_hi) return false;
  if (k.dport < r.dport_lo || k.dport > r.dport_hi) return false;
  if (k.proto < r.proto_lo || k.proto > r.proto_hi) return false;
  if (k.iif < r.iif_lo || k.iif > r.iif_hi) return false;
  if (k.oif < r.oif_lo || k.oif > r.oif_hi) return false;
  if (k.icmp < r.icmp_lo || k.icmp > r.icmp_hi) return false;
  return ExtraMatches(r, k);
}

template <typename Rec>
inline bool Matches(const Rec& r, const typename Family<Rec>::Key& k) {
  using F = Family<Rec>;
  const auto src = F::Src(k), dst = F::Dst(k);
  if (src < F::SrcLo(r) || src > F::SrcHi(r)) return false;
  if (dst < F::DstLo(r) || dst > F::DstHi(r)) return false;
  return CommonMatches(r.c, k.c);
}

}  // namespace detail
}  // namespace flatwall
