// Finishing the checksum of a frame a local socket sent over veth.
//
// A TCP or UDP packet sent by a socket on this machine through a device
// with checksum offload (veth has NETIF_F_HW_CSUM) leaves the stack
// CHECKSUM_PARTIAL: its checksum field holds only the folded sum of the
// pseudo-header (tcp_v4_send_check: th->check = ~tcp_v4_check(len, saddr,
// daddr, 0)), and skb->csum_start/csum_offset tell the "hardware" where to
// finish it. AF_PACKET and TAP hand us that metadata in the virtio_net_hdr
// and we pass it on. An AF_XDP socket gets the bytes only: veth runs the XDP
// program on the skb's data (veth_xdp_rcv_skb) and nothing carries
// ip_summed along, so the frame we would send on holds a checksum that the
// receiver rejects.
//
// So an AF_XDP port recognizes that state in the bytes and finishes the
// sum: a TCP/UDP checksum field equal to the pseudo-header sum (not its
// complement) whose full checksum does not verify is a partial one. A frame
// from a wire carries a complete checksum and is left alone; a corrupted
// frame is repaired only if its damaged checksum field happens to equal
// that exact value (one chance in 65536 of corrupted frames), the price of
// a bump in the wire between local sockets that offload their checksums.
#pragma once

#include <cstdint>

namespace flatwall {
namespace io {

// True when the frame (Ethernet, up to two VLAN tags, IPv4 or IPv6 without
// extension headers, an unfragmented TCP or UDP packet wholly in `len`)
// held a partial checksum, now completed in place.
bool CompleteLocalChecksum(uint8_t* frame, uint32_t len);

}  // namespace io
}  // namespace flatwall
