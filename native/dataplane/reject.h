// REJECT: build the answer to a rejected packet, sent back out of the port it
// came in on. The firewall is a transparent bump in the wire with no address
// of its own, so it answers AS THE ORIGINAL DESTINATION (like the kernel's
// bridge-family reject, nft_reject_bridge): Ethernet source = the original
// destination MAC, IP source = the original destination address. VLAN tags
// are copied so the answer goes back on the same VLAN.
//
// The answers (checksums complete; the caller sends them with an all-zero
// virtio_net_hdr: no GSO, no checksum offload):
//   kTcpReset: TCP RST as nf_reject_ip{,6}_tcphdr_put builds it: if the
//     offending segment had ACK, seq = its ack_seq and only RST is set;
//     otherwise seq = 0, ack = its seq + SYN + FIN + payload length, RST|ACK.
//   ICMP unreachable (type 3) with the code of RejectWith, quoting the
//     original IP packet up to 536 bytes (reply <= 576 bytes, RFC 1812).
//   ICMPv6 destination unreachable (type 1) with its code, quoting up to
//     1232 bytes (reply <= 1280 bytes, RFC 4443 2.4(c)).
//   A RejectWith of the other family is mapped to its nearest equivalent
//   (RejectCode below); kTcpReset on a non-TCP packet answers nothing (the
//   rule compiler refuses it, as iptables' REJECT checkentry does).
//
// No answer (returns 0; the packet is still dropped), following RFC 1122 /
// RFC 4443 2.4(e) and what the kernel does:
//   - a TCP packet with RST set (never answer a reset);
//   - a later fragment (no L4 header to answer to);
//   - an ICMP/ICMPv6 error message (answering errors with errors loops),
//     or an ICMP/ICMPv6 packet whose header is cut short (it may be one);
//   - kTcpReset for a TCP packet whose header is cut short (nothing to
//     answer to; nf_reject_ip_tcphdr_get gives up the same way);
//   - a frame sent to an Ethernet group address (broadcast/multicast), an
//     IPv4 destination that is multicast or limited broadcast, an IPv6
//     multicast destination; a source that is unspecified, multicast or
//     (IPv4) limited broadcast / 0.0.0.0 / loopback.
//   - an output buffer smaller than the answer.
#pragma once

#include <cstdint>

#include "classifier/rule_table.h"
#include "dataplane/parse.h"

namespace flatwall {

// Largest answer BuildReject writes: Ethernet + 2 VLAN tags + IPv6 + ICMPv6
// header + 1232 quoted bytes.
constexpr uint32_t kMaxRejectFrame = 14 + 8 + 40 + 8 + 1232;

// ICMP (family 4) or ICMPv6 (family 6) code for `with`; -1 for kTcpReset.
int RejectCode(RejectWith with, int family);

// Writes the answer frame (Ethernet header first) to out[0, cap) and returns
// its length, or 0 when no answer must be sent (see above). `p` is the
// parse of frame[0, len) and must be kIPv4 or kIPv6 (or kNdp).
uint32_t BuildReject(const uint8_t* frame, uint32_t len, const ParsedFrame& p, RejectWith with,
                     uint8_t* out, uint32_t cap);

}  // namespace flatwall
