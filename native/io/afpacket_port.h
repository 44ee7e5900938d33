// AF_PACKET port: per worker, one packet socket with a TPACKET_V2 RX ring
// and a TX ring sharing one mmap, in a PACKET_FANOUT_HASH group with the
// other workers' sockets on the same interface.
//
// Why these choices (see docs/dataplane.md for the measurements):
//   - TPACKET_V2, not V3. V3 hands blocks to user space only when a block is
//     full or its timeout expires; with the default timeout that added ~15 ms
//     of latency here. V2 hands over every frame as soon as it is written.
//   - Frames of 68 KB (kDefaultFrameSize) on both rings, so a 64 KB GSO
//     super-packet fits whole: PACKET_VNET_HDR lets the kernel give us (and
//     take back) unsegmented TCP with its GSO/checksum metadata, which is
//     what makes TCP through the bridge run at veth speed, and what keeps a
//     CHECKSUM_PARTIAL SYN working at all.
//   - PACKET_IGNORE_OUTGOING on every socket: the TX ring of worker w on
//     port B is also an RX socket on B; without it every frame we send on B
//     would come back to us as "outgoing" and be forwarded again.
//   - PACKET_LOSS on the TX ring: a frame the kernel cannot send (bad vnet
//     header) is marked available and skipped instead of blocking the ring
//     with TP_STATUS_WRONG_FORMAT.
//   - PACKET_FANOUT_HASH (see FanoutMode in the .cc): the kernel demuxes by
//     __skb_get_hash_symmetric(), a flow hash computed from the dissected
//     addresses and ports in a canonical (sorted) order with one boot-time
//     seed. Both directions of a flow therefore get the same hash; with the
//     same number of members in the two ports' groups, and members joined in
//     worker order, both directions land on the same worker. It ignores
//     skb->hash (which a local sender sets from its socket's random
//     sk_txhash, different for each direction), so it is symmetric even for
//     locally generated traffic. PACKET_FANOUT_CPU is not symmetric (it is
//     whichever CPU received the frame), and EBPF would need a program
//     loaded for what HASH already does. No DEFRAG flag: it would reassemble
//     IPv4 fragments, and a bump in the wire must forward them as they are
//     (later fragments hash on addresses only, so they may reach another
//     worker than the first fragment: harmless for a stateless filter, they
//     may only be reordered). No ROLLOVER flag: it breaks flow affinity.
#pragma once

#include <linux/if_packet.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/port.h"

namespace flatwall {
namespace io {

constexpr uint32_t kDefaultFrameSize = 68 * 1024;  // 69632: 17 pages, holds 64 KB GSO + headers
constexpr uint32_t kDefaultRingFrames = 256;       // per ring, per socket

struct AfPacketOptions {
  uint32_t frame_size = kDefaultFrameSize;  // rounded up to TPACKET_ALIGNMENT
  uint32_t rx_frames = kDefaultRingFrames;  // rounded up to fill whole blocks
  uint32_t tx_frames = kDefaultRingFrames;
  bool qdisc_bypass = false;  // PACKET_QDISC_BYPASS: skip the egress qdisc
  // true: PACKET_TX_RING, one sendto(MSG_DONTWAIT) per batch (the default).
  // false: no TX ring; one sendmmsg(MSG_DONTWAIT) per batch whose iovecs
  // point into the RX ring frames (the worker flushes before releasing
  // them). One copy fewer on veth, see TxFlush.
  bool tx_ring = true;
  bool promisc = true;        // PACKET_MR_PROMISC (reference counted, undone on close)
};

// The kernel's rules for a ring (packet_set_ring):
//   - tp_block_size is a positive multiple of PAGE_SIZE; each block is one
//     allocation of 2^order pages (vmalloc fallback), so a block that is not
//     a power of two pages wastes the rest of its allocation;
//   - tp_frame_size is a multiple of TPACKET_ALIGNMENT (16) and at least
//     the V2 header (TPACKET2_HDRLEN); frames never straddle blocks;
//   - tp_frame_nr == (tp_block_size / tp_frame_size) * tp_block_nr exactly.
// PlanRing picks the power-of-two block (up to 4 MB, MAX_PAGE_ORDER) that
// wastes the least memory for the frame size, then rounds the frame count
// up to whole blocks. frames_per_block * frame_size is what is used.
struct RingGeometry {
  uint32_t block_size = 0, block_nr = 0, frame_size = 0, frame_nr = 0;
  size_t bytes() const { return size_t(block_size) * block_nr; }
};
RingGeometry PlanRing(uint32_t frame_size, uint32_t frames);

class AfPacketQueue final : public Queue {
 public:
  ~AfPacketQueue() override;

  int fd() const override { return fd_; }
  uint32_t RxBurst(RxFrame* out, uint32_t max) override;
  void RxRelease(uint32_t n) override;
  bool TxHasRoom() override;
  bool TxSend(const uint8_t* buf, uint32_t len) override;
  uint8_t* TxReserve() override;
  uint32_t TxCapacity() const override {
    return use_ring_ ? tx_.frame_size - kTxDataOffset : kScratchSlot;
  }
  bool TxCommit(uint32_t len) override;
  void TxFlush() override;
  uint64_t TakeKernelDrops() override;
  int ifindex() const override { return ifindex_; }

  const RingGeometry& rx_geometry() const { return rx_; }
  const RingGeometry& tx_geometry() const { return tx_; }

  // TX frame data offset: without PACKET_TX_HAS_OFF the kernel reads the
  // frame at TPACKET2_HDRLEN - sizeof(sockaddr_ll) = the aligned header.
  static constexpr uint32_t kTxDataOffset = TPACKET_ALIGN(sizeof(tpacket2_hdr));
  // sendmmsg mode: messages per flush, and the buffers TxReserve hands out
  // (REJECT answers, at most kMaxRejectFrame + vnet header).
  static constexpr uint32_t kMmsgBatch = 256;
  static constexpr uint32_t kScratchSlot = 2048;

 private:
  friend std::vector<std::unique_ptr<Queue>> PrepareAfPacketPort(const std::string&, uint32_t,
                                                                 const AfPacketOptions&);
  friend void ActivateAfPacketPort(std::vector<std::unique_ptr<Queue>>&, bool);
  AfPacketQueue() = default;
  // Frames are laid out block by block: a block holds block_size /
  // frame_size frames and its tail is unused, so frame i is NOT at
  // i * frame_size. The addresses are computed once (MapSlots).
  tpacket2_hdr* RxSlot(uint32_t i) const { return rx_slots_[i]; }
  tpacket2_hdr* TxSlot(uint32_t i) const { return tx_slots_[i]; }
  static std::vector<tpacket2_hdr*> MapSlots(uint8_t* base, const RingGeometry& g);
  bool PrepareRx(tpacket2_hdr* h, RxFrame* f);

  int fd_ = -1;
  int ifindex_ = 0;
  uint8_t* map_ = nullptr;
  size_t map_len_ = 0;
  RingGeometry rx_, tx_;
  std::vector<tpacket2_hdr*> rx_slots_, tx_slots_;
  uint32_t rx_head_ = 0;     // first frame not yet released
  uint32_t tx_head_ = 0;     // next TX slot we fill
  uint32_t tx_unsent_ = 0;   // oldest committed slot the kernel may not have taken
  uint32_t tx_pending_ = 0;  // committed slots since tx_unsent_
  // sendmmsg mode
  bool use_ring_ = true;
  std::vector<mmsghdr> mmsg_;
  std::vector<iovec> iov_;
  std::vector<uint8_t> scratch_;
  uint32_t mm_n_ = 0;
  // Messages sendmmsg refused, monotonic: written by the worker only (load +
  // store, no RMW), read by the control thread, which remembers what it
  // reported. Reported with the kernel's RX drops.
  std::atomic<uint64_t> tx_dropped_{0};
  uint64_t tx_dropped_reported_ = 0;
  std::string ifname_;
};

// Opens `queues` sockets on interface `ifname` (one per worker, in worker
// order, all in one fanout group when queues > 1). Throws std::system_error
// naming the step that failed.
std::vector<std::unique_ptr<Queue>> OpenAfPacketPort(const std::string& ifname, uint32_t queues,
                                                     const AfPacketOptions& options);

// The same in two steps, for a hot standby that must not receive before it
// takes over but should then forward at once: Prepare creates the sockets
// and maps their rings (the slow part: MAP_POPULATE of every ring page) but
// binds none, so they receive nothing; Activate binds them (to the index the
// name has then), joins promiscuous mode and the fanout group, in order.
std::vector<std::unique_ptr<Queue>> PrepareAfPacketPort(const std::string& ifname, uint32_t queues,
                                                        const AfPacketOptions& options);
void ActivateAfPacketPort(std::vector<std::unique_ptr<Queue>>& queues, bool promisc);

}  // namespace io
}  // namespace flatwall
