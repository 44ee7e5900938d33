// Wire-format helpers for the dataplane: big-endian loads and stores that
// never assume alignment (frames sit at arbitrary offsets inside ring frames
// and VLAN tags shift the IP header by 4 bytes), the protocol numbers the
// parser knows, and the Internet checksum (RFC 1071).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace flatwall {
namespace net {

inline uint16_t Load16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }
inline uint32_t Load32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
}
inline void Store16(uint8_t* p, uint16_t v) { p[0] = uint8_t(v >> 8), p[1] = uint8_t(v); }
inline void Store32(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v >> 24), p[1] = uint8_t(v >> 16), p[2] = uint8_t(v >> 8), p[3] = uint8_t(v);
}

constexpr uint16_t kEthIPv4 = 0x0800;
constexpr uint16_t kEthArp = 0x0806;
constexpr uint16_t kEthVlan = 0x8100;     // 802.1Q C-tag
constexpr uint16_t kEthQinQ = 0x88a8;     // 802.1ad S-tag
constexpr uint16_t kEthQinQOld = 0x9100;  // pre-standard QinQ, still seen
constexpr uint16_t kEthIPv6 = 0x86dd;

constexpr uint32_t kEthHdrLen = 14;
constexpr uint32_t kVlanTagLen = 4;
constexpr uint32_t kMaxVlanTags = 2;  // 802.1Q and QinQ; a third tag is malformed

constexpr uint8_t kProtoIcmp = 1;
constexpr uint8_t kProtoTcp = 6;
constexpr uint8_t kProtoUdp = 17;
constexpr uint8_t kProtoIcmp6 = 58;
constexpr uint8_t kProtoSctp = 132;
// IPv6 extension headers the parser walks (the set ip6tables' ipv6_find_hdr
// walks, see parse.h).
constexpr uint8_t kIp6HopByHop = 0;
constexpr uint8_t kIp6Routing = 43;
constexpr uint8_t kIp6Fragment = 44;
constexpr uint8_t kIp6Esp = 50;
constexpr uint8_t kIp6Auth = 51;
constexpr uint8_t kIp6NoNext = 59;
constexpr uint8_t kIp6DestOpts = 60;

constexpr uint8_t kTcpFin = 0x01, kTcpSyn = 0x02, kTcpRst = 0x04, kTcpPsh = 0x08,
                  kTcpAck = 0x10;

// ---- Internet checksum ----------------------------------------------------
// Accumulate 16-bit big-endian words into a 32-bit sum (fold later). An odd
// trailing byte is padded with zero, as RFC 1071 says. `sum` may carry a
// previous partial sum, but only over an even number of bytes.
inline uint32_t CsumAdd(uint32_t sum, const uint8_t* p, size_t len) {
  uint64_t s = sum;
  while (len >= 4) {
    s += Load32(p);
    p += 4, len -= 4;
  }
  if (len >= 2) {
    s += Load16(p);
    p += 2, len -= 2;
  }
  if (len) s += uint32_t(p[0]) << 8;
  while (s >> 32) s = (s & 0xffffffff) + (s >> 32);
  // Fold to 32 bits keeping the value congruent mod 0xffff.
  s = (s & 0xffff) + (s >> 16);
  return uint32_t(s);
}
inline uint16_t CsumFold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return uint16_t(~sum & 0xffff);
}
// Checksum of a buffer (IPv4 header, ICMPv4 message).
inline uint16_t Csum(const uint8_t* p, size_t len) { return CsumFold(CsumAdd(0, p, len)); }

// Pseudo-header sums (RFC 793 / RFC 8200 section 8.1).
inline uint32_t PseudoSum4(const uint8_t* src, const uint8_t* dst, uint8_t proto,
                           uint32_t l4_len) {
  uint32_t s = CsumAdd(0, src, 4);
  s = CsumAdd(s, dst, 4);
  return s + proto + (l4_len & 0xffff) + (l4_len >> 16);
}
inline uint32_t PseudoSum6(const uint8_t* src, const uint8_t* dst, uint8_t proto,
                           uint32_t l4_len) {
  uint32_t s = CsumAdd(0, src, 16);
  s = CsumAdd(s, dst, 16);
  return s + proto + (l4_len & 0xffff) + (l4_len >> 16);
}

}  // namespace net
}  // namespace flatwall
