// Host mode (`flatwall run --host ADDR/PLEN,...`): the filter table a frame
// goes through, as if the host behind the firewall ran the rules itself.
//
// Without host addresses the dataplane is a bridge and every IP frame walks
// FORWARD. With them, per frame, in this order:
//
//   1. destination is one of the host's addresses        -> INPUT
//   2. source is one of the host's addresses             -> OUTPUT
//   3. destination is local, broadcast or multicast by
//      -m addrtype's classes (ext/addrtype.h: 127/8, ::1,
//      255.255.255.255, 0/8, the broadcast address of a
//      host prefix, 224/4, ff00::/8)                      -> INPUT
//   4. anything else                                      -> FORWARD
//
// (1) before (2): a frame with the host's address on both sides (spoofed:
// the kernel drops a local source arriving from outside as a martian) is
// judged by the host's INPUT rules, never let through by OUTPUT. (3): the
// kernel never forwards broadcasts, nor multicast without a multicast
// router; it delivers them locally, where a host firewall's rules for
// DHCP, mDNS or IPv6 multicast sit (ufw's ufw-before-input). So a
// FORWARD rule never sees what addrtype calls LOCAL, as in the kernel.
//
// Interfaces: INPUT has no output interface and OUTPUT no input interface
// (the kernel's nulldevname). They are the interface class of the empty
// name, which sorts before every cut of the rules' interface classes
// (src/rules/iface.ts): class 0. So `-o eth0` in a chain reached from INPUT
// never matches, `! -o eth0` and `-o +` always do, as in the kernel
// (iptables-restore refuses -o in INPUT and -i in OUTPUT themselves).
// INPUT's -i is the port the frame came in on; OUTPUT's -o the port it
// leaves by (the peer of the one it came in on).
#pragma once

#include <arpa/inet.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "classifier/packet_key.h"
#include "classifier/rule_table.h"
#include "extensions/addrtype.h"

namespace flatwall {

// The interface class of "no interface" (see above).
constexpr uint16_t kIfaceNone = 0;

inline bool IsHostAddr(const ext::HostAddrs& h, uint32_t a) {
  for (const auto& p : h.v4)
    if (p.addr == a) return true;
  return false;
}

inline bool IsHostAddr(const ext::HostAddrs& h, const uint32_t a[4]) {
  for (const auto& p : h.v6)
    if (p.addr[0] == a[0] && p.addr[1] == a[1] && p.addr[2] == a[2] && p.addr[3] == a[3]) return true;
  return false;
}

// Delivered locally whoever sent it: rule 3 above.
inline bool LocalDelivery(const ext::HostAddrs& h, uint32_t dst) {
  return (ext::AddrType4(dst, &h) & (ext::kAtLocal | ext::kAtBroadcast | ext::kAtMulticast)) != 0;
}
inline bool LocalDelivery(const ext::HostAddrs&, const uint32_t dst[4]) {
  const bool loopback = dst[0] == 0 && dst[1] == 0 && dst[2] == 0 && dst[3] == 1;
  return loopback || (dst[0] >> 24) == 0xff;
}

// The hook of a frame with this key; `host` null or empty: FORWARD.
template <typename K>
inline Hook ChooseHook(const K& key, const ext::HostAddrs* host) {
  if (!host || (host->v4.empty() && host->v6.empty())) return Hook::kForward;
  if (IsHostAddr(*host, key.dst)) return Hook::kInput;
  if (IsHostAddr(*host, key.src)) return Hook::kOutput;
  if (LocalDelivery(*host, key.dst)) return Hook::kInput;
  return Hook::kForward;
}

// The key's interface classes for `hook`, from the input and output ports'.
// OUTPUT has no input interface; INPUT and PREROUTING (before routing)
// have no output interface.
inline void HookIfaces(Hook hook, uint16_t in, uint16_t out, KeyCommon* c) {
  const bool local_out = hook == Hook::kOutput || hook == Hook::kRawOutput;
  const bool no_route = hook == Hook::kInput || hook == Hook::kRawPrerouting;
  c->iif = local_out ? kIfaceNone : in;
  c->oif = no_route ? kIfaceNone : out;
}

// The raw table's hook for a frame whose filter hook is `hook`: a host's
// own frames pass raw OUTPUT, every other frame raw PREROUTING.
inline Hook RawHook(Hook hook) { return hook == Hook::kOutput ? Hook::kRawOutput : Hook::kRawPrerouting; }

// Adds "ADDR/PLEN" or "ADDR" (a /32 or /128) to *h; false with *error set
// when it is not an IPv4 or IPv6 address with a prefix length in range.
inline bool ParseHostAddr(const std::string& s, ext::HostAddrs* h, std::string* error) {
  const size_t slash = s.find('/');
  const std::string a = s.substr(0, slash);
  in6_addr a6;
  in_addr a4;
  const bool v4 = inet_pton(AF_INET, a.c_str(), &a4) == 1;
  if (!v4 && inet_pton(AF_INET6, a.c_str(), &a6) != 1) {
    *error = "host address \"" + s + "\": not an IPv4 or IPv6 address";
    return false;
  }
  const unsigned max = v4 ? 32 : 128;
  unsigned plen = max;
  if (slash != std::string::npos) {
    const std::string p = s.substr(slash + 1);
    unsigned n = p.empty() || p.size() > 3 ? max + 1 : 0;
    for (char ch : p) n = ch >= '0' && ch <= '9' ? n * 10 + unsigned(ch - '0') : max + 1;
    if (n > max) {
      *error = "host address \"" + s + "\": prefix length must be 0.." + std::to_string(max);
      return false;
    }
    plen = n;
  }
  if (v4) {
    h->v4.push_back({ntohl(a4.s_addr), uint8_t(plen)});
  } else {
    ext::HostAddrs::P6 p{};
    for (int i = 0; i < 4; ++i) {
      uint32_t w;
      std::memcpy(&w, a6.s6_addr + 4 * i, 4);
      p.addr[i] = ntohl(w);
    }
    p.plen = uint8_t(plen);
    h->v6.push_back(p);
  }
  return true;
}

}  // namespace flatwall
