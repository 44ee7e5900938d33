// The dataplane's frame parser: one pass over an Ethernet frame that either
// classifies it (IPv4 / IPv6 with a PacketKey, ARP, NDP, other) or names the
// reason it is malformed. It never reads past `len`: every field is read
// only after the bytes holding it were checked to be inside the frame, and
// inside the IP packet's own length (the rest of the frame is Ethernet
// padding and is ignored, as the kernel trims it in ip_rcv).
//
// What is parsed
//   Ethernet II, then up to two VLAN tags (802.1Q 0x8100, 802.1ad 0x88a8 and
//   the older 0x9100, in any order: QinQ). A third tag is malformed. Frames
//   arriving on an AF_PACKET ring have had their outer tag moved to metadata
//   by the kernel; the port puts it back before the parser sees the frame
//   (io/afpacket_port.h), so the parser always sees the wire format.
//
//   IPv4: version, IHL >= 5, header checksum, total length (not above the
//   frame; below it is padding), option TLVs well formed (what ip_rcv's
//   ip_options_compile enforces before forwarding). Fragments are matched as
//   iptables matches them:
//     - a first fragment (offset 0, MF) carries its L4 header, which must be
//       complete: its key has ports and kKeyHasL4;
//     - a later fragment (offset != 0) has no L4 header: its key has the
//       protocol but sport = dport = icmp = tcp_flags = 0 and NO kKeyHasL4,
//       so rules with port/flag/icmp matches (kRuleNeedsL4) never match it
//       and rules with only addresses/protocol do (iptables' fragoff rule);
//     - a TCP fragment at offset 1 (8 bytes) is dropped as ip4_tiny_fragment
//       (iptables' "evil TCP offset=1 frag": it can overwrite the flags).
//
//   IPv6: version, payload length, then the extension header chain that
//   ip6tables' ipv6_find_hdr walks: hop-by-hop (only directly after the
//   fixed header, RFC 8200 4.1), routing, fragment, destination options and
//   AH (length in 4-byte units); ESP and "no next header" end the chain and
//   are the protocol. At most kMaxIp6ExtHeaders headers (bounded work). A
//   fragment header with offset != 0 ends the walk: the protocol is its next
//   header, the key has no L4 (as above). An atomic fragment (offset 0, M 0)
//   is an ordinary packet.
//
//   L4: TCP (20 bytes, data offset >= 5 and inside the packet), UDP and
//   UDP-Lite (8), SCTP (12), DCCP (12; ports only), ICMP and ICMPv6 (8,
//   icmp = type << 8 | code): the sizes the kernel's matches read
//   (xt_tcpudp.c tcp_mt/udp_mt, xt_sctp.c, xt_dccp.c, ip_tables.c
//   icmp_match, ip6_tables.c icmp6_match). Other protocols get a key with
//   the protocol, no ports, and kKeyHasL4 (there is no header to be missing).
//
//   A first fragment or unfragmented packet whose L4 header is cut short is
//   NOT malformed: the kernel forwards it unless a rule with an L4 match
//   reads the header, and then that match sets hotdrop and the packet is
//   dropped on the spot (`if (th == NULL) { par->hotdrop = true; return
//   false; }` in tcp_mt/udp_mt for fragoff == 0; ipt_do_table leaves its
//   rule loop on hotdrop and returns NF_DROP). So such a frame gets the key
//   of a later fragment (protocol, sport = dport = icmp = tcp_flags = 0, NO
//   kKeyHasL4: no rule that needs L4 matches it) plus kKeyL4Truncated and
//   `l4_truncated`; the rule walk drops it at the first L4 rule it reaches
//   (dataplane/hotdrop.h), conntrack makes it INVALID (the kernel gives it
//   no conntrack: nf_ct_get_tuple / tcp_error / udp_error / icmp_error fail
//   on the short header, conntrack/conntrack.h), and `flatwall run
//   --drop-l4-truncated` drops it before the rules instead (counted as
//   l4_truncated either way). l4_off is 0: there is no header to read.
//
//   NDP (ICMPv6 router/neighbor solicitation/advertisement, redirect: types
//   133-137) is classified kNdp (key6 filled like kIPv6), ARP kArp. The
//   dataplane judges NDP by the FORWARD rules like any ICMPv6 packet, as
//   the kernel does, unless --ndp-bypass; ARP bypasses the rule tables.
//
// GSO frames (virtio_net_hdr gso_type != NONE, `gso` below) may carry IPv4
// total length 0 or IPv6 payload length 0 when they exceed 64 KB (BIG TCP);
// those lengths then mean "the rest of the frame".
#pragma once

#include <cstdint>

#include "classifier/packet_key.h"
#include "dataplane/drop_reason.h"

namespace flatwall {

enum class FrameClass : uint8_t {
  kMalformed = 0,  // `reason` says why; drop
  kIPv4 = 1,       // key4 filled
  kIPv6 = 2,       // key6 filled
  kArp = 3,
  kNdp = 4,        // IPv6 neighbor discovery; key6 filled
  kOther = 5,      // any other ethertype (incl. 802.3 length frames)
};

constexpr uint32_t kMaxIp6ExtHeaders = 8;

struct ParsedFrame {
  FrameClass cls = FrameClass::kMalformed;
  DropReason reason = DropReason::kNone;
  uint8_t vlan_tags = 0;
  bool fragment = false;        // any fragment (first or later)
  bool later_fragment = false;  // offset != 0: no L4 header
  bool l4_truncated = false;    // L4 header cut short: key without L4, kKeyL4Truncated
  uint16_t ethertype = 0;       // after the VLAN tags
  uint32_t l3_off = 0;          // IP header offset in the frame
  uint32_t l3_len = 0;          // IP packet length, header included (padding excluded)
  uint32_t l4_off = 0;          // L4 header offset; 0 when there is none
  PacketKey4 key4;              // only for kIPv4; iif/oif left 0 for the caller
  PacketKey6 key6;              // only for kIPv6/kNdp
};

// Parses `frame[0, len)`. Never reads outside it. `gso`: the frame came with
// virtio_net_hdr gso_type != NONE (see above).
void ParseFrame(const uint8_t* frame, uint32_t len, bool gso, ParsedFrame* out);

}  // namespace flatwall
