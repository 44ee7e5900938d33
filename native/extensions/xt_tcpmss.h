// -j TCPMSS (the kernel's net/netfilter/xt_TCPMSS.c): lower the MSS option
// of a TCP SYN, in place, as the frame is forwarded.
//
// tcpmss_mangle_packet, kept: walk the options (optlen: EOL/NOP or a zero
// length count as one byte); at a well-formed MSS option (kind 2, length 4)
// write the new MSS only if it is LOWER ("Never increase MSS, even when
// setting it"), and fix the TCP checksum incrementally (RFC 1624,
// inet_proto_csum_replace2). --clamp-mss-to-pmtu uses the smaller of the
// two ports' MTUs minus the IP and TCP headers (40 for IPv4, 60 for IPv6),
// and drops the packet when that is not positive, as the kernel does.
// Not kept: a SYN without an MSS option is left alone (the kernel inserts
// one, growing the packet by 4 bytes; flatwall forwards frames in place).
// A frame whose checksum the kernel completes later (virtio-net header
// NEEDS_CSUM, CHECKSUM_PARTIAL) keeps its partial sum untouched, exactly
// as inet_proto_csum_replace2 leaves a CHECKSUM_PARTIAL sum.
#pragma once

#include <cstdint>

#include "dataplane/bytes.h"
#include "dataplane/parse.h"

namespace flatwall {
namespace ext {

// 1: done (changed or nothing to do), 0: drop (no usable path MTU).
inline int TcpMssMangle(uint8_t* frame, const ParsedFrame& pf, uint16_t set_mss, bool clamp, uint32_t mtu,
                        bool csum_partial, bool v6) {
  if (!frame || !pf.l4_off || pf.later_fragment) return 1;
  uint16_t newmss = set_mss;
  if (clamp) {
    const uint32_t minlen = v6 ? 60 : 40;
    if (mtu <= minlen) return 0;
    newmss = uint16_t(mtu - minlen > 0xffff ? 0xffff : mtu - minlen);
  }
  uint8_t* th = frame + pf.l4_off;
  const uint32_t end = pf.l3_off + pf.l3_len;
  if (end < pf.l4_off + 20) return 1;
  if (!(th[13] & 0x02)) return 1;  // only SYNs carry an MSS option
  const uint32_t hdrlen = uint32_t(th[12] >> 4) * 4;
  if (hdrlen < 20 || pf.l4_off + hdrlen > end) return 1;
  for (uint32_t i = 20; i + 4 <= hdrlen;) {
    const uint8_t kind = th[i];
    if (kind == 2 && th[i + 1] == 4) {
      const uint16_t oldmss = net::Load16(th + i + 2);
      if (oldmss <= newmss) return 1;
      net::Store16(th + i + 2, newmss);
      if (!csum_partial) {
        // HC' = ~(~HC + ~m + m')
        uint32_t sum = uint16_t(~net::Load16(th + 16)) + uint16_t(~oldmss) + newmss;
        while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
        net::Store16(th + 16, uint16_t(~sum));
      }
      return 1;
    }
    i += (kind <= 1 || th[i + 1] == 0) ? 1 : th[i + 1];
  }
  return 1;
}

}  // namespace ext
}  // namespace flatwall
