// IPv6 extension-header matches and IPsec SPIs: ip6t_ipv6header.c,
// ip6t_frag.c, ip6t_hbh.c (hbh and dst), ip6t_rt.c, ip6t_ah.c / ipt_ah.c
// and xt_esp.c. The header chain is walked again from the fixed header as
// ipv6_find_hdr walks it; the frame parser already checked that every
// header it walked lies inside the packet, and this walk checks again.
#pragma once

#include <cstdint>

#include "dataplane/bytes.h"
#include "dataplane/parse.h"

namespace flatwall {
namespace ext {

// ip6t_ipv6header's MASK_* bits.
enum Ip6HdrBits : uint8_t {
  kHdrProto = 1, kHdrNone = 2, kHdrEsp = 4, kHdrAuth = 8, kHdrFrag = 16, kHdrRouting = 32,
  kHdrDstOpts = 64, kHdrHopOpts = 128,
};


// Offset (from the frame start) of the first extension header of type
// `want` (0 hop-by-hop, 43 routing, 44 fragment, 60 destination options,
// 51 AH, 50 ESP as the chain's end), 0 when absent. `*seen` collects the
// chain as ipv6header sees it. Stops at a later fragment (nothing after it
// is visible), as ipv6_find_hdr.
inline uint32_t Ip6Find(const uint8_t* frame, const ParsedFrame& pf, int want, uint8_t* seen) {
  const uint8_t* ip = frame + pf.l3_off;
  const uint32_t tot = pf.l3_len;
  uint8_t nh = ip[6];
  uint32_t pos = 40;
  uint32_t found = 0;
  uint8_t s = 0;
  for (uint32_t n = 0; n <= kMaxIp6ExtHeaders; ++n) {
    if (int(nh) == want && !found) found = pf.l3_off + pos;
    if (nh == 0) s |= kHdrHopOpts;
    else if (nh == 43) s |= kHdrRouting;
    else if (nh == 44) s |= kHdrFrag;
    else if (nh == 60) s |= kHdrDstOpts;
    else if (nh == 51) s |= kHdrAuth;
    else if (nh == 50) { s |= kHdrEsp; break; }
    else if (nh == 59) { s |= kHdrNone; break; }
    else { s |= kHdrProto; break; }
    if (tot < pos + 8) break;
    const uint8_t* h = ip + pos;
    if (nh == 44) {
      if (net::Load16(h + 2) & 0xfff8) break;  // a later fragment: the rest is not here
      nh = h[0];
      pos += 8;
      continue;
    }
    const uint32_t hlen = nh == 51 ? (uint32_t(h[1]) + 2) * 4 : (uint32_t(h[1]) + 1) * 8;
    if (tot < pos + hlen) break;
    nh = h[0];
    pos += hlen;
  }
  if (seen) *seen = s;
  return found;
}

}  // namespace ext
}  // namespace flatwall
