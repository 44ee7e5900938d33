// -m addrtype (the kernel's net/netfilter/xt_addrtype.c, revision 1).
//
// The kernel asks the routing tables what an address is. flatwall has no
// routing table; it knows the host's own addresses when they are configured
// (flatwall run --host, host mode) and the fixed address classes:
//
//   IPv4 (match_type: one type per address, the rule matches when its mask
//   has that type's bit; inet_dev_addr_type): 0.0.0.0/8 and 255.255.255.255
//   BROADCAST, 224.0.0.0/4 MULTICAST, the host's addresses and 127.0.0.0/8
//   LOCAL, the broadcast address of a host prefix BROADCAST, every other
//   address UNICAST (what the kernel answers for an address its routes
//   cover, or for one they do not). BLACKHOLE, UNREACHABLE, PROHIBIT, THROW,
//   NAT, XRESOLVE and ANYCAST come only from routes, so they never match.
//
//   IPv6 (match_type6: EVERY requested class must hold): MULTICAST for
//   ff00::/8, UNICAST for any other address but ::, UNSPEC only ::, LOCAL
//   for the host's addresses and ::1 (a local route); ANYCAST, BLACKHOLE
//   and UNREACHABLE (route types) never.
#pragma once

#include <cstdint>
#include <vector>

namespace flatwall {
namespace ext {

enum AddrType : uint16_t {
  kAtUnspec = 1 << 0, kAtUnicast = 1 << 1, kAtLocal = 1 << 2, kAtBroadcast = 1 << 3,
  kAtAnycast = 1 << 4, kAtMulticast = 1 << 5, kAtBlackhole = 1 << 6, kAtUnreachable = 1 << 7,
  kAtProhibit = 1 << 8, kAtThrow = 1 << 9, kAtNat = 1 << 10, kAtXresolve = 1 << 11,
};
enum AddrTypeFlags : uint8_t { kAtInvertSrc = 1, kAtInvertDst = 2, kAtLimitIn = 4, kAtLimitOut = 8 };

// The host's own addresses (host mode), as prefixes.
struct HostAddrs {
  struct P4 { uint32_t addr; uint8_t plen; };
  struct P6 { uint32_t addr[4]; uint8_t plen; };
  std::vector<P4> v4;
  std::vector<P6> v6;
};

inline uint32_t Mask4(uint8_t plen) { return plen == 0 ? 0 : ~uint32_t(0) << (32 - plen); }

inline uint16_t AddrType4(uint32_t a, const HostAddrs* host) {
  if ((a >> 24) == 0 || a == 0xffffffffu) return kAtBroadcast;
  if ((a >> 28) == 0xe) return kAtMulticast;
  if ((a >> 24) == 127) return kAtLocal;
  if (host) {
    for (const auto& p : host->v4) {
      if (a == p.addr) return kAtLocal;
      const uint32_t m = Mask4(p.plen);
      if (p.plen < 31 && a == ((p.addr & m) | ~m)) return kAtBroadcast;
    }
  }
  return kAtUnicast;
}

inline bool AddrMatch4(uint32_t a, uint16_t mask, const HostAddrs* host) {
  return (mask & AddrType4(a, host)) != 0;
}

inline bool AddrMatch6(const uint32_t a[4], uint16_t mask, const HostAddrs* host) {
  const bool any = (a[0] | a[1] | a[2] | a[3]) == 0;
  const bool mcast = (a[0] >> 24) == 0xff;
  if ((mask & kAtMulticast) && !mcast) return false;
  if ((mask & kAtUnicast) && (mcast || any)) return false;
  if ((mask & kAtUnspec) && !any) return false;
  if (mask & (kAtLocal | kAtAnycast | kAtBlackhole | kAtUnreachable)) {
    if (!(mask & kAtLocal)) return false;
    if (a[0] == 0 && a[1] == 0 && a[2] == 0 && a[3] == 1) return true;
    if (host)
      for (const auto& p : host->v6)
        if (p.addr[0] == a[0] && p.addr[1] == a[1] && p.addr[2] == a[2] && p.addr[3] == a[3]) return true;
    return false;
  }
  return true;
}

}  // namespace ext
}  // namespace flatwall
