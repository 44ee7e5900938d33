// One queue of a dataplane port, as a worker sees it. A port (an AF_PACKET
// socket group on an interface, or a multi-queue TAP device) has one queue
// per worker; a queue is used by exactly one thread, so nothing here locks.
//
// Every frame that crosses a queue is preceded by a 10-byte virtio_net_hdr
// (PACKET_VNET_HDR on AF_PACKET, IFF_VNET_HDR on TAP): the GSO and checksum
// offload metadata that the kernel needs to forward a 64 KB TCP super-packet
// or a packet whose checksum is still partial (CHECKSUM_PARTIAL, which is
// what every TCP segment leaving a local socket over veth is). The dataplane
// copies it unchanged from the input queue to the output queue, so the
// kernel on the far side finishes the work (segmentation, checksum) exactly
// as it would have without us in the middle.
#pragma once

#include <cstdint>

namespace flatwall {
namespace io {

// struct virtio_net_hdr (linux/virtio_net.h, which does not compile as C++:
// it has a member named `class`). Little-endian fields: the legacy virtio
// header packet sockets and TAP use is in host order on little-endian
// machines, and we only ever adjust csum_start/hdr_len (afpacket_port.cc).
struct VnetHdr {
  uint8_t flags;       // kVnetNeedsCsum: csum_start/csum_offset are valid
  uint8_t gso_type;    // kVnetGsoNone, or the segmentation to do
  uint16_t hdr_len;    // Ethernet + IP + L4 header bytes (GSO)
  uint16_t gso_size;   // segment payload size (GSO)
  uint16_t csum_start; // from the start of the frame
  uint16_t csum_offset;
};
constexpr uint8_t kVnetNeedsCsum = 1;  // VIRTIO_NET_HDR_F_NEEDS_CSUM
constexpr uint8_t kVnetGsoNone = 0;    // VIRTIO_NET_HDR_GSO_NONE
constexpr uint32_t kVnetHdrLen = sizeof(VnetHdr);  // 10
static_assert(kVnetHdrLen == 10, "virtio_net_hdr without num_buffers");

// Big enough for a 64 KB GSO super-packet (65535 bytes of IP + Ethernet +
// two VLAN tags) plus the vnet header.
constexpr uint32_t kMaxFrame = 65535 + 14 + 8;

struct RxFrame {
  uint8_t* vnet;       // virtio_net_hdr, immediately followed by the frame
  uint8_t* data;       // the Ethernet frame (== vnet + kVnetHdrLen)
  uint32_t len;        // frame length in the buffer
  bool truncated;      // the packet was longer than the ring frame: drop it
  uint64_t ts_ns;      // kernel receive time (CLOCK_REALTIME), 0 when unknown
};

class Queue {
 public:
  virtual ~Queue() = default;

  // For poll(2): readable when RxBurst has frames, writable when TX has room.
  virtual int fd() const = 0;

  // Up to `max` received frames, oldest first. They stay valid, and are not
  // reused by the kernel, until RxRelease. Frames not released are returned
  // again (first) by the next RxBurst.
  virtual uint32_t RxBurst(RxFrame* out, uint32_t max) = 0;
  // Gives the first `n` frames of the last burst back.
  virtual void RxRelease(uint32_t n) = 0;

  // True when TxSend/TxReserve will succeed (AF_PACKET: the next TX ring
  // slot is free; TAP: always).
  virtual bool TxHasRoom() = 0;
  // Queues vnet header + frame (buf[0, len), len includes kVnetHdrLen).
  // False when there is no room: the caller counts a drop.
  virtual bool TxSend(const uint8_t* buf, uint32_t len) = 0;
  // Queues a received frame (from this or another queue of the same
  // worker) for sending. The default copies it (TxSend of vnet header +
  // frame); an AF_XDP queue whose socket shares the frame's UMEM queues the
  // frame's own descriptor instead, so forwarding moves no bytes, and the
  // frame is then the TX ring's until its completion (RxRelease leaves it).
  virtual bool TxForward(const RxFrame& f) { return TxSend(f.vnet, f.len + kVnetHdrLen); }
  // A buffer of `TxCapacity()` bytes to build a frame in (vnet header
  // first), then TxCommit(len) queues it. Null when there is no room.
  virtual uint8_t* TxReserve() = 0;
  virtual uint32_t TxCapacity() const = 0;
  virtual bool TxCommit(uint32_t len) = 0;
  // Hands everything queued to the kernel: at most one syscall.
  virtual void TxFlush() = 0;

  // Packets the kernel dropped because this queue's RX side was full, since
  // the last call (AF_PACKET PACKET_STATISTICS; 0 for TAP). Called by the
  // control thread, not the worker.
  virtual uint64_t TakeKernelDrops() { return 0; }

  // The interface index the queue is bound to (AF_PACKET), 0 when it is not
  // bound by index (TAP: the fd is the device). Health compares it with the
  // index the interface's name has now: a deleted or re-created interface
  // leaves the socket bound to an index that no longer carries traffic.
  virtual int ifindex() const { return 0; }
};

}  // namespace io
}  // namespace flatwall
