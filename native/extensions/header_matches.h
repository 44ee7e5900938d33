// Stateless matches on packet bytes the classifier key does not carry. Each
// function is one kernel module's match function, named after it; they read
// only inside the IP packet the frame parser validated (pf->l3_off,
// pf->l3_len).
#pragma once

#include <cstdint>

#include "classifier/packet_key.h"
#include "classifier/rule_table.h"
#include "dataplane/parse.h"

namespace flatwall {
namespace ext {

inline const uint8_t* IpHeader(const uint8_t* frame, const ParsedFrame& pf) { return frame + pf.l3_off; }

// The TTL / hop limit a FORWARD rule sees: the kernel decrements it in
// ip_forward / ip6_forward before the FORWARD hook runs, and flatwall, which
// forwards frames unchanged, shows FORWARD rules the same value.
inline uint8_t HopLimit(const uint8_t* frame, const ParsedFrame& pf, Hook hook) {
  const uint8_t* ip = IpHeader(frame, pf);
  const uint8_t v = pf.cls == FrameClass::kIPv4 ? ip[8] : ip[7];
  return hook == Hook::kForward && v > 0 ? uint8_t(v - 1) : v;
}

// xt_ttl.c ttl_mt / ip6t_hl.c hl_mt: eq, ne, lt, gt.
inline bool TtlMatch(uint8_t mode, uint8_t want, uint8_t ttl) {
  switch (mode) {
    case 0: return ttl == want;
    case 1: return ttl != want;
    case 2: return ttl < want;
    case 3: return ttl > want;
  }
  return false;
}

// xt_length.c: IPv4 tot_len; IPv6 payload_len + the 40-byte header.
inline bool LengthMatch(const ParsedFrame& pf, uint16_t lo, uint16_t hi) {
  const uint32_t len = pf.l3_len;
  return len >= lo && len <= hi;
}

// The traffic class byte: IPv4 TOS, IPv6 traffic class (ipv6_get_dsfield).
inline uint8_t DsField(const uint8_t* frame, const ParsedFrame& pf) {
  const uint8_t* ip = IpHeader(frame, pf);
  if (pf.cls == FrameClass::kIPv4) return ip[1];
  return uint8_t((ip[0] << 4) | (ip[1] >> 4));
}

// xt_ecn.c: bits of the op's payload.
enum EcnBits : uint8_t {
  kEcnCheckEce = 1, kEcnInvEce = 2, kEcnCheckCwr = 4, kEcnInvCwr = 8, kEcnCheckIp = 16, kEcnInvIp = 32,
};
inline bool EcnMatch(const KeyCommon& k, uint8_t dsfield, uint8_t ops, uint8_t ect) {
  // match_ip: (dsfield & INET_ECN_MASK) == ect, inverted on request.
  if (ops & kEcnCheckIp) {
    if (((dsfield & 3) == ect) == bool(ops & kEcnInvIp)) return false;
  }
  if (ops & (kEcnCheckEce | kEcnCheckCwr)) {
    // match_tcp: only TCP with its header (ecn_mt4 checks protocol first).
    if (k.proto != 6 || !(k.flags & kKeyHasL4)) return false;
    if (ops & kEcnCheckEce) {
      if (bool(k.tcp_flags & 0x40) == bool(ops & kEcnInvEce)) return false;
    }
    if (ops & kEcnCheckCwr) {
      if (bool(k.tcp_flags & 0x80) == bool(ops & kEcnInvCwr)) return false;
    }
  }
  return true;
}

// xt_pkttype.c: the link-layer destination class. On a bump in the wire a
// frame's pkt_type is what its destination MAC says: broadcast, multicast
// (I/G bit) or unicast (PACKET_HOST, what a router sees of frames sent to it).
inline uint8_t PktType(const uint8_t* frame) {
  bool all = true;
  for (int i = 0; i < 6; ++i) all = all && frame[i] == 0xff;
  if (all) return 1;
  return (frame[0] & 1) ? 2 : 0;
}

// xt_mac.c: the Ethernet source address.
inline bool MacSourceMatch(const uint8_t* frame, const uint8_t* mac) {
  for (int i = 0; i < 6; ++i)
    if (frame[6 + i] != mac[i]) return false;
  return true;
}

}  // namespace ext
}  // namespace flatwall
