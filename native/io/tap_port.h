// TAP port: a multi-queue TAP device, one queue (one /dev/net/tun fd) per
// worker. Works anywhere an AF_PACKET port does: same Queue interface, same
// virtio_net_hdr in front of every frame.
//
//   IFF_TAP | IFF_NO_PI   Ethernet frames, no 4-byte packet-info prefix.
//   IFF_VNET_HDR          a virtio_net_hdr before each frame (GSO/checksum
//                         metadata, identical to PACKET_VNET_HDR's), size set
//                         with TUNSETVNETHDRSZ to 10.
//   IFF_MULTI_QUEUE       one fd per worker. The kernel picks the queue of a
//                         frame it sends to us with tun_automq_select_queue:
//                         the queue that last WROTE that flow (tun records
//                         the symmetric hash of every frame we write), else
//                         reciprocal_scale(__skb_get_hash_symmetric, n) -- the
//                         same function PACKET_FANOUT_HASH uses, with the
//                         same seed. So a flow's two directions meet on one
//                         worker across a TAP port and an AF_PACKET port too.
//   TUNSETOFFLOAD         CSUM | TSO4 | TSO6 | TSO_ECN (| USO4 | USO6 when
//                         the kernel knows them): we accept unsegmented and
//                         partially checksummed frames, because we only pass
//                         them on with their vnet header.
//
// The device is created if it does not exist, not persistent: it vanishes
// when the last queue fd closes (Dataplane::stop). An existing device (for
// example a persistent one made by `ip tuntap add ... multi_queue vnet_hdr`)
// is attached to and left in place. It is brought administratively up.
//
// A TAP fd has no ring: each frame is one read() or write(). RxBurst reads
// until EAGAIN or `max` frames into preallocated buffers; TxSend writes at
// once (TxFlush has nothing to do). That is the one place where the
// dataplane makes a syscall per frame, inherent to the TAP interface.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/port.h"

namespace flatwall {
namespace io {

constexpr uint32_t kTapBurst = 64;  // RX buffers per queue

class TapQueue final : public Queue {
 public:
  ~TapQueue() override;
  int fd() const override { return fd_; }
  uint32_t RxBurst(RxFrame* out, uint32_t max) override;
  void RxRelease(uint32_t n) override;
  bool TxHasRoom() override { return true; }
  bool TxSend(const uint8_t* buf, uint32_t len) override;
  uint8_t* TxReserve() override { return tx_buf_.data(); }
  uint32_t TxCapacity() const override { return uint32_t(tx_buf_.size()); }
  bool TxCommit(uint32_t len) override { return TxSend(tx_buf_.data(), len); }
  void TxFlush() override {}

 private:
  friend struct TapOpener;
  TapQueue();
  int fd_ = -1;
  // RX: bufs_[0, held_) hold frames read and not yet released, in order.
  std::vector<std::vector<uint8_t>> bufs_;
  std::vector<uint32_t> lens_;
  uint32_t held_ = 0;
  std::vector<uint8_t> tx_buf_;
};

struct TapPort {
  std::vector<std::unique_ptr<Queue>> queues;
  bool created = false;  // we made the device (it goes away with the fds)
};

// Opens `queues` queues of TAP device `ifname`. Throws std::system_error.
TapPort OpenTapPort(const std::string& ifname, uint32_t queues);

}  // namespace io
}  // namespace flatwall
