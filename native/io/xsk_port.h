// AF_XDP ports: per worker, one XDP socket per port, all of a worker's
// sockets on one UMEM.
//
// How a frame moves (Documentation/networking/af_xdp.rst):
//   fill ring     we give the kernel free UMEM frames to receive into;
//   RX ring       the kernel hands back (address, length) of received frames;
//   TX ring       we queue (address, length) of frames to send;
//   completion    the kernel gives back the addresses of frames it sent.
// Each ring is single-producer single-consumer between us and the kernel,
// with producer/consumer indexes published with release stores and read
// with acquire loads (libxdp's xsk.h inlines). One worker thread owns every
// ring of its sockets and the UMEM, so nothing here locks.
//
// The shared UMEM (XDP_SHARED_UMEM, different devices since Linux 5.10):
// the two ports of a bump in the wire register the same memory, each socket
// with its own fill and completion rings (the kernel's rule for sockets on
// different interfaces or queues). Forwarding a frame from port A to port B
// is then TxForward: the RX descriptor of A is written into B's TX ring as
// it is, with no copy in user space, and the frame comes back to the free
// pool through B's completion ring. Each frame has one owner at a time,
// recorded per frame (FrameState) so a frame handed to TX is not also
// recycled when the RX burst is released.
//
// Copy mode vs zero-copy: veth has no zero-copy (XDP_ZEROCOPY is refused), so
// the kernel copies each frame into the UMEM on receive and out of it into an
// skb on send (xsk_build_skb); a NIC driver with zero-copy support is bound
// zero-copy first. Copy-mode TX is driven by sendto(), which sends at most
// 32 frames per call (TX_BATCH_SIZE in net/xdp/xsk.c) and answers EAGAIN
// while more remain: TxFlush calls it until the ring is drained.
// XDP_USE_NEED_WAKEUP: the kernel sets a flag on a ring when it needs a
// syscall to make progress; where it does not (zero-copy RX), we skip it.
//
// Frames are 4 KB (a page, the largest aligned chunk): a frame longer than
// a UMEM frame minus headroom is dropped by the kernel and counted
// (XDP_STATISTICS rx_dropped, reported as a kernel drop). No GSO: XDP sees
// MTU-sized frames (veth turns off its peer's TSO when a program attaches).
// There is no virtio_net_hdr on AF_XDP; the queue writes an all-zero one in
// the frame's headroom so the worker sees the same layout as on AF_PACKET,
// and finishes partial checksums of local senders (io/local_csum.h).
#pragma once

#include <xdp/xsk.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/port.h"
#include "io/xdp_redirect.h"

namespace flatwall {
namespace io {

struct XskOptions {
  uint32_t ring_size = 2048;  // descriptors per ring (a power of two)
  bool native = true;         // XDP in the driver; false: generic (skb) mode
};

// One worker's frames: the UMEM area, the free pool and each frame's owner.
class XskUmem {
 public:
  static constexpr uint32_t kFrameSize = 4096;
  // Our headroom in front of the kernel's XDP_PACKET_HEADROOM: room for the
  // virtio_net_hdr the worker expects before the frame.
  static constexpr uint32_t kHeadroom = 16;
  enum class FrameState : uint8_t { kFree, kKernelRx, kUserRx, kKernelTx, kUserTx };

  XskUmem(uint32_t frames, const std::string& ifname);
  ~XskUmem();

  uint8_t* area() const { return area_; }
  size_t size() const { return size_; }
  bool Contains(const uint8_t* p) const { return p >= area_ && p < area_ + size_; }
  // [addr, addr + len) lies in one frame, with `front` bytes before it in that frame.
  bool Holds(uint64_t addr, uint32_t len, uint32_t front) const {
    const uint64_t c = Chunk(addr);
    return addr < size_ && addr - c >= front && addr + len <= c + kFrameSize;
  }
  static uint64_t Chunk(uint64_t addr) { return addr & ~uint64_t(kFrameSize - 1); }
  FrameState& state(uint64_t addr) { return state_[Chunk(addr) / kFrameSize]; }

  // The free pool: LIFO, so recently used (cache-warm) frames go first.
  bool Empty() const { return free_.empty(); }
  uint64_t Take() {
    const uint64_t a = free_.back();
    free_.pop_back();
    return a;
  }
  void Give(uint64_t addr) {
    state(addr) = FrameState::kFree;
    free_.push_back(Chunk(addr));
  }
  size_t free_count() const { return free_.size(); }

  xsk_umem* umem = nullptr;
  xsk_ring_prod first_fill{};  // the rings registered with the UMEM: the first socket's
  xsk_ring_cons first_comp{};
  bool first_used = false;

 private:
  uint8_t* area_ = nullptr;
  size_t size_ = 0;
  std::vector<uint64_t> free_;
  std::vector<FrameState> state_;
};

class XskQueue final : public Queue {
 public:
  ~XskQueue() override;

  int fd() const override { return fd_; }
  uint32_t RxBurst(RxFrame* out, uint32_t max) override;
  void RxRelease(uint32_t n) override;
  bool TxHasRoom() override;
  bool TxSend(const uint8_t* buf, uint32_t len) override;
  bool TxForward(const RxFrame& f) override;
  uint8_t* TxReserve() override;
  // Where a frame we build (TxReserve) starts in its UMEM frame: where the
  // kernel puts received ones, so both kinds have the same room in front.
  static constexpr uint32_t kTxDataOffset = XskUmem::kHeadroom + XDP_PACKET_HEADROOM;
  uint32_t TxCapacity() const override { return XskUmem::kFrameSize - kTxDataOffset + kVnetHdrLen; }
  bool TxCommit(uint32_t len) override;
  void TxFlush() override;
  uint64_t TakeKernelDrops() override;
  int ifindex() const override { return ifindex_; }

  bool zero_copy() const { return zero_copy_; }
  // Frames whose partial checksum (a local sender's) was completed.
  uint64_t checksums_completed() const { return csum_completed_.load(std::memory_order_relaxed); }

 private:
  friend struct XskOpener;
  XskQueue() = default;
  void Refill();
  void ReapCompletions();
  bool QueueTx(uint64_t addr, uint32_t len);
  void Kick();

  std::shared_ptr<XskUmem> umem_;
  xsk_socket* xsk_ = nullptr;
  xsk_ring_prod fill_{}, tx_{};
  xsk_ring_cons comp_{}, rx_{};
  xsk_ring_prod* fillp_ = &fill_;  // the UMEM's first rings for its first socket
  xsk_ring_cons* compp_ = &comp_;
  int fd_ = -1;
  int ifindex_ = 0;
  bool zero_copy_ = false;
  uint32_t burst_ = 0;        // descriptors peeked by the last RxBurst
  uint32_t rx_idx_ = 0;       // ring index of the burst's first descriptor
  uint32_t tx_pending_ = 0;   // reserved and written, not yet submitted
  uint32_t tx_idx_ = 0;       // ring index of the first pending descriptor
  uint64_t reserved_ = ~0ull; // the frame TxReserve handed out, until TxCommit
  std::atomic<uint64_t> tx_dropped_{0};  // frames we could not queue (worker writes, control reads)
  std::atomic<uint64_t> csum_completed_{0};
  uint64_t tx_dropped_reported_ = 0;
  uint64_t stats_reported_ = 0;  // XDP_STATISTICS drops already reported (cumulative in the kernel)
  std::string ifname_;
};

// What OpenXskPorts opened: queues[port][worker], and the attached programs.
struct XskPorts {
  std::vector<std::vector<std::unique_ptr<Queue>>> queues;
  std::vector<std::unique_ptr<XdpRedirect>> programs;  // keep alive: they detach when destroyed
  XdpMode mode = XdpMode::kNative;
  bool zero_copy = false;
};

// Opens every port in `ifnames` with `workers` queues each: worker w's
// sockets are bound to queue w of each interface and share one UMEM. Then
// attaches the redirect program to each interface. Throws std::system_error
// naming the interface and the step; nothing stays attached or open after a
// throw.
XskPorts OpenXskPorts(const std::vector<std::string>& ifnames, uint32_t workers, const XskOptions& o);

// The number of RX queues an interface has (sysfs queues/rx-*), 0 when unknown.
uint32_t InterfaceRxQueues(const std::string& ifname);

}  // namespace io
}  // namespace flatwall
