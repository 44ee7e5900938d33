// Frame builders for the conntrack tests: Ethernet + IPv4/IPv6 + TCP/UDP/
// ICMP(v6) with a correct IPv4 header checksum (the parser verifies it),
// and ICMP errors quoting arbitrary bytes (for malformed quoted headers).
#pragma once

#include <arpa/inet.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "dataplane/bytes.h"
#include "dataplane/parse.h"

namespace flatwall {
namespace cttest {

struct Pkt {
  std::string src, dst;   // IPv4 or IPv6 literal
  uint8_t proto = 6;
  uint16_t sport = 0, dport = 0;
  uint8_t flags = 0;      // TCP flags
  uint8_t type = 0, code = 0;  // ICMP
  uint16_t id = 0;        // ICMP query id
  std::vector<uint8_t> payload;  // after the L4 header (ICMP: after its 8 bytes)
  uint16_t frag = 0;      // IPv4 fragment offset field (flags + offset)
};

inline bool IsV6(const std::string& a) { return a.find(':') != std::string::npos; }

// Packets by protocol, the fields each test varies.
inline Pkt Tcp(const char* s, const char* d, uint16_t sp, uint16_t dp, uint8_t flags) {
  Pkt p;
  p.src = s, p.dst = d, p.proto = 6, p.sport = sp, p.dport = dp, p.flags = flags;
  return p;
}
inline Pkt Udp(const char* s, const char* d, uint16_t sp, uint16_t dp) {
  Pkt p;
  p.src = s, p.dst = d, p.proto = 17, p.sport = sp, p.dport = dp;
  return p;
}
inline Pkt Icmp(const char* s, const char* d, uint8_t type, uint16_t id) {
  Pkt p;
  p.src = s, p.dst = d, p.proto = IsV6(s) ? 58 : 1, p.type = type, p.id = id;
  return p;
}

inline std::vector<uint8_t> L4(const Pkt& p) {
  std::vector<uint8_t> l4;
  if (p.proto == 6) {
    l4.assign(20, 0);
    net::Store16(&l4[0], p.sport), net::Store16(&l4[2], p.dport);
    net::Store32(&l4[4], 1000), net::Store32(&l4[8], (p.flags & 16) ? 2000 : 0);
    l4[12] = 5 << 4, l4[13] = p.flags;
    net::Store16(&l4[14], 65535);
  } else if (p.proto == 17) {
    l4.assign(8, 0);
    net::Store16(&l4[0], p.sport), net::Store16(&l4[2], p.dport);
    net::Store16(&l4[4], uint16_t(8 + p.payload.size()));
  } else if (p.proto == 1 || p.proto == 58) {
    l4.assign(8, 0);
    l4[0] = p.type, l4[1] = p.code;
    net::Store16(&l4[4], p.id);
  } else if (p.proto == 132) {
    l4.assign(12, 0);
    net::Store16(&l4[0], p.sport), net::Store16(&l4[2], p.dport);
  }
  l4.insert(l4.end(), p.payload.begin(), p.payload.end());
  return l4;
}

// The IP packet (no Ethernet header).
inline std::vector<uint8_t> Ip(const Pkt& p) {
  const std::vector<uint8_t> l4 = L4(p);
  std::vector<uint8_t> ip;
  if (!IsV6(p.src)) {
    ip.assign(20, 0);
    ip[0] = 0x45;
    net::Store16(&ip[2], uint16_t(20 + l4.size()));
    net::Store16(&ip[6], p.frag);
    ip[8] = 64, ip[9] = p.proto;
    inet_pton(AF_INET, p.src.c_str(), &ip[12]);
    inet_pton(AF_INET, p.dst.c_str(), &ip[16]);
    net::Store16(&ip[10], net::Csum(ip.data(), 20));
  } else {
    ip.assign(40, 0);
    ip[0] = 0x60;
    net::Store16(&ip[4], uint16_t(l4.size()));
    ip[6] = p.proto, ip[7] = 64;
    inet_pton(AF_INET6, p.src.c_str(), &ip[8]);
    inet_pton(AF_INET6, p.dst.c_str(), &ip[24]);
  }
  ip.insert(ip.end(), l4.begin(), l4.end());
  return ip;
}

inline std::vector<uint8_t> Frame(const Pkt& p) {
  std::vector<uint8_t> f = {0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0, 0};
  net::Store16(&f[12], IsV6(p.src) ? 0x86dd : 0x0800);
  const std::vector<uint8_t> ip = Ip(p);
  f.insert(f.end(), ip.begin(), ip.end());
  return f;
}

// An ICMP (v4: type 3 code 3) or ICMPv6 (type 1 code 4) error from `src` to
// `dst` quoting `quoted` (any bytes, possibly malformed).
inline std::vector<uint8_t> IcmpError(const std::string& src, const std::string& dst,
                                      const std::vector<uint8_t>& quoted) {
  Pkt e;
  e.src = src, e.dst = dst;
  e.proto = IsV6(src) ? 58 : 1;
  e.type = IsV6(src) ? 1 : 3, e.code = IsV6(src) ? 4 : 3;
  e.payload = quoted;
  return Frame(e);
}

inline ParsedFrame Parse(const std::vector<uint8_t>& f) {
  ParsedFrame pf;
  ParseFrame(f.data(), uint32_t(f.size()), false, &pf);
  return pf;
}

}  // namespace cttest
}  // namespace flatwall
