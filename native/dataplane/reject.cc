#include "dataplane/reject.h"

#include <algorithm>
#include <cstring>

#include "dataplane/bytes.h"

namespace flatwall {
namespace {

using namespace net;

constexpr uint32_t kQuote4 = 536;
constexpr uint32_t kQuote6 = 1232;
constexpr uint8_t kTtl = 64;

// Ethernet + VLAN tags: swap the MACs, copy tags and ethertype unchanged.
// Returns the L2 header length, or 0 when the frame went to a group address.
uint32_t PutL2(const uint8_t* frame, const ParsedFrame& p, uint8_t* out) {
  if (frame[0] & 1) return 0;  // broadcast / multicast destination MAC
  std::memcpy(out, frame + 6, 6);
  std::memcpy(out + 6, frame, 6);
  std::memcpy(out + 12, frame + 12, p.l3_off - 12);
  return p.l3_off;
}

bool Ip4SourceOk(uint32_t a) {
  return a != 0 && (a >> 24) != 127 && (a >> 28) != 0xe && a != 0xffffffff;
}
bool Ip4DestOk(uint32_t a) { return (a >> 28) != 0xe && a != 0xffffffff; }
bool Ip6IsMulticast(const uint32_t w[4]) { return (w[0] >> 24) == 0xff; }
bool Ip6IsUnspecified(const uint32_t w[4]) { return (w[0] | w[1] | w[2] | w[3]) == 0; }

// The TCP RST answering the segment at orig_tcp (payload_len bytes of data
// after its header). Writes 20 bytes at out; checksum left 0.
void PutRst(const uint8_t* orig_tcp, uint32_t payload_len, uint8_t* out) {
  std::memset(out, 0, 20);
  std::memcpy(out, orig_tcp + 2, 2);      // sport = original dport
  std::memcpy(out + 2, orig_tcp, 2);      // dport = original sport
  const uint8_t flags = orig_tcp[13];
  if (flags & kTcpAck) {
    std::memcpy(out + 4, orig_tcp + 8, 4);  // seq = original ack_seq
    out[13] = kTcpRst;
  } else {
    const uint32_t ack = Load32(orig_tcp + 4) + ((flags & kTcpSyn) ? 1 : 0) +
                         ((flags & kTcpFin) ? 1 : 0) + payload_len;
    Store32(out + 8, ack);
    out[13] = kTcpRst | kTcpAck;
  }
  out[12] = 5 << 4;  // data offset: 20 bytes, no options
}

bool IsIcmpError4(uint8_t type) {
  return type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
}

void PutIp4(uint8_t* ip, uint32_t tot, uint8_t proto, const uint8_t* orig_ip) {
  ip[0] = 0x45, ip[1] = 0;
  Store16(ip + 2, uint16_t(tot));
  Store16(ip + 4, 0);       // id
  Store16(ip + 6, 0x4000);  // DF
  ip[8] = kTtl, ip[9] = proto;
  Store16(ip + 10, 0);
  std::memcpy(ip + 12, orig_ip + 16, 4);  // src = original dst
  std::memcpy(ip + 16, orig_ip + 12, 4);  // dst = original src
  Store16(ip + 10, Csum(ip, 20));
}

void PutIp6(uint8_t* ip, uint32_t payload, uint8_t proto, const uint8_t* orig_ip) {
  Store32(ip, 0x60000000);
  Store16(ip + 4, uint16_t(payload));
  ip[6] = proto, ip[7] = kTtl;
  std::memcpy(ip + 8, orig_ip + 24, 16);   // src = original dst
  std::memcpy(ip + 24, orig_ip + 8, 16);   // dst = original src
}

uint32_t Reject4(const uint8_t* frame, const ParsedFrame& p, RejectWith with, uint8_t* out,
                 uint32_t cap) {
  const PacketKey4& k = p.key4;
  if (p.later_fragment || !Ip4SourceOk(k.src) || !Ip4DestOk(k.dst)) return 0;
  const uint8_t* oip = frame + p.l3_off;
  if (with == RejectWith::kTcpReset) {
    if (k.c.proto != kProtoTcp || p.l4_off == 0) return 0;
    const uint8_t* th = frame + p.l4_off;
    if (th[13] & kTcpRst) return 0;
    const uint32_t l2 = p.l3_off;
    if (cap < l2 + 40) return 0;
    if (!PutL2(frame, p, out)) return 0;
    const uint32_t thl = uint32_t(th[12] >> 4) * 4;
    const uint32_t payload = p.l3_len - (p.l4_off - p.l3_off) - thl;
    uint8_t* ip = out + l2;
    PutIp4(ip, 40, kProtoTcp, oip);
    PutRst(th, payload, ip + 20);
    Store16(ip + 20 + 16, CsumFold(CsumAdd(PseudoSum4(ip + 12, ip + 16, kProtoTcp, 20), ip + 20, 20)));
    return l2 + 40;
  }
  // A cut-short ICMP header may be an error: never answer it (icmp_send
  // gives up on an unreadable type too).
  if (k.c.proto == kProtoIcmp && (p.l4_truncated || IsIcmpError4(uint8_t(k.c.icmp >> 8)))) return 0;
  const int code = RejectCode(with, 4);
  const uint32_t quote = std::min(p.l3_len, kQuote4);
  const uint32_t l2 = p.l3_off;
  const uint32_t total = l2 + 20 + 8 + quote;
  if (cap < total) return 0;
  if (!PutL2(frame, p, out)) return 0;
  uint8_t* ip = out + l2;
  PutIp4(ip, 20 + 8 + quote, kProtoIcmp, oip);
  uint8_t* ic = ip + 20;
  ic[0] = 3, ic[1] = uint8_t(code);
  Store16(ic + 2, 0);
  Store32(ic + 4, 0);
  std::memcpy(ic + 8, oip, quote);
  Store16(ic + 2, Csum(ic, 8 + quote));
  return total;
}

uint32_t Reject6(const uint8_t* frame, const ParsedFrame& p, RejectWith with, uint8_t* out,
                 uint32_t cap) {
  const PacketKey6& k = p.key6;
  if (p.later_fragment || Ip6IsUnspecified(k.src) || Ip6IsMulticast(k.src) ||
      Ip6IsMulticast(k.dst))
    return 0;
  const uint8_t* oip = frame + p.l3_off;
  if (with == RejectWith::kTcpReset) {
    if (k.c.proto != kProtoTcp || p.l4_off == 0) return 0;
    const uint8_t* th = frame + p.l4_off;
    if (th[13] & kTcpRst) return 0;
    const uint32_t l2 = p.l3_off;
    if (cap < l2 + 60) return 0;
    if (!PutL2(frame, p, out)) return 0;
    const uint32_t thl = uint32_t(th[12] >> 4) * 4;
    const uint32_t payload = p.l3_len - (p.l4_off - p.l3_off) - thl;
    uint8_t* ip = out + l2;
    PutIp6(ip, 20, kProtoTcp, oip);
    PutRst(th, payload, ip + 40);
    Store16(ip + 40 + 16, CsumFold(CsumAdd(PseudoSum6(ip + 8, ip + 24, kProtoTcp, 20), ip + 40, 20)));
    return l2 + 60;
  }
  if (k.c.proto == kProtoIcmp6 && (p.l4_truncated || (k.c.icmp >> 8) < 128)) return 0;
  const int code = RejectCode(with, 6);
  const uint32_t quote = std::min(p.l3_len, kQuote6);
  const uint32_t l2 = p.l3_off;
  const uint32_t total = l2 + 40 + 8 + quote;
  if (cap < total) return 0;
  if (!PutL2(frame, p, out)) return 0;
  uint8_t* ip = out + l2;
  PutIp6(ip, 8 + quote, kProtoIcmp6, oip);
  uint8_t* ic = ip + 40;
  ic[0] = 1, ic[1] = uint8_t(code);
  Store16(ic + 2, 0);
  Store32(ic + 4, 0);
  std::memcpy(ic + 8, oip, quote);
  Store16(ic + 2, CsumFold(CsumAdd(PseudoSum6(ip + 8, ip + 24, kProtoIcmp6, 8 + quote), ic, 8 + quote)));
  return total;
}

}  // namespace

int RejectCode(RejectWith with, int family) {
  if (family == 4) {
    switch (with) {
      case RejectWith::kIcmpNetUnreachable: return 0;
      case RejectWith::kIcmpHostUnreachable: return 1;
      case RejectWith::kIcmpProtoUnreachable: return 2;
      case RejectWith::kIcmpPortUnreachable: return 3;
      case RejectWith::kIcmpNetProhibited: return 9;
      case RejectWith::kIcmpHostProhibited: return 10;
      case RejectWith::kIcmpAdminProhibited: return 13;
      case RejectWith::kTcpReset: return -1;
      // ICMPv6 kinds on an IPv4 packet: the nearest ICMP code.
      case RejectWith::kIcmp6NoRoute: return 0;
      case RejectWith::kIcmp6AdmProhibited: return 13;
      case RejectWith::kIcmp6AddrUnreachable: return 1;
      case RejectWith::kIcmp6PortUnreachable: return 3;
    }
    return 3;
  }
  switch (with) {
    case RejectWith::kIcmp6NoRoute: return 0;
    case RejectWith::kIcmp6AdmProhibited: return 1;
    case RejectWith::kIcmp6AddrUnreachable: return 3;
    case RejectWith::kIcmp6PortUnreachable: return 4;
    case RejectWith::kTcpReset: return -1;
    // ICMP kinds on an IPv6 packet.
    case RejectWith::kIcmpNetUnreachable: return 0;
    case RejectWith::kIcmpHostUnreachable: return 3;
    case RejectWith::kIcmpProtoUnreachable: return 4;
    case RejectWith::kIcmpPortUnreachable: return 4;
    case RejectWith::kIcmpNetProhibited:
    case RejectWith::kIcmpHostProhibited:
    case RejectWith::kIcmpAdminProhibited: return 1;
  }
  return 4;
}

uint32_t BuildReject(const uint8_t* frame, uint32_t len, const ParsedFrame& p, RejectWith with,
                     uint8_t* out, uint32_t cap) {
  if (p.l3_off + p.l3_len > len) return 0;  // not a parse of this frame
  if (p.cls == FrameClass::kIPv4) return Reject4(frame, p, with, out, cap);
  if (p.cls == FrameClass::kIPv6 || p.cls == FrameClass::kNdp) return Reject6(frame, p, with, out, cap);
  return 0;
}

}  // namespace flatwall
