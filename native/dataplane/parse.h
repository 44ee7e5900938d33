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
//   icmp = type << 8 | code). A first fragment or unfragmented packet whose
//   L4 header is cut short is malformed (l4_truncated), like iptables'
//   "hotdrop" on a truncated header. Other protocols get a key with the
//   protocol, no ports, and kKeyHasL4 (there is no header to be missing).
//
//   NDP (ICMPv6 router/neighbor solicitation/advertisement, redirect: types
//   133-137) is classified kNdp, ARP kArp; both bypass the rule tables.
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
