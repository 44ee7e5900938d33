// AF_PACKET rings, one small function per kernel rule. Reference:
// Documentation/networking/packet_mmap.rst and net/packet/af_packet.c.
#include "io/afpacket_port.h"

#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <net/if.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <system_error>

namespace flatwall {
namespace io {
namespace {

[[noreturn]] void Fail(const std::string& ifname, const char* step) {
  throw std::system_error(errno, std::generic_category(), "AF_PACKET " + ifname + ": " + step);
}

void SetInt(int fd, int level, int opt, int value, const std::string& ifname, const char* step) {
  if (setsockopt(fd, level, opt, &value, sizeof value) != 0) Fail(ifname, step);
}

// Ring ownership is one word per frame, tp_status. The kernel writes the
// frame, then (after smp_wmb) the status; we read the status with acquire
// before touching the frame, and hand a frame back with a release store
// after our last access. On x86 both are plain moves: no locked instruction.
inline uint32_t LoadStatus(const tpacket2_hdr* h) {
  return __atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE);
}
inline void StoreStatus(tpacket2_hdr* h, uint32_t v) {
  __atomic_store_n(&h->tp_status, v, __ATOMIC_RELEASE);
}

// Step 1: a packet socket bound to no protocol receives nothing until
// bind(), so the rings fill only with traffic of the interface we bind to.
int OpenSocket(const std::string& ifname) {
  const int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
  if (fd < 0) Fail(ifname, "socket(AF_PACKET)");
  return fd;
}

// Step 2: options that must precede PACKET_RX_RING/PACKET_TX_RING (the
// kernel answers EBUSY to PACKET_VERSION and PACKET_VNET_HDR once a ring
// exists).
void SetPreRingOptions(int fd, const AfPacketOptions& o, const std::string& ifname) {
  SetInt(fd, SOL_PACKET, PACKET_VERSION, TPACKET_V2, ifname, "PACKET_VERSION V2");
  SetInt(fd, SOL_PACKET, PACKET_VNET_HDR, 1, ifname, "PACKET_VNET_HDR");
  // A TX frame the kernel rejects is skipped and made available again,
  // instead of stopping the ring at TP_STATUS_WRONG_FORMAT.
  SetInt(fd, SOL_PACKET, PACKET_LOSS, 1, ifname, "PACKET_LOSS");
  // Our own transmissions on this interface are not received back (4.20+).
  SetInt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, 1, ifname, "PACKET_IGNORE_OUTGOING");
  if (o.qdisc_bypass) SetInt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, 1, ifname, "PACKET_QDISC_BYPASS");
}

// Step 3: every skb built from a TX frame is charged to the socket's send
// buffer (the frame's bytes too: tpacket_fill_skb adds them to truesize) until
// it is freed. With the default 208 KB only ~3 GSO frames could be in flight
// and sendto(MSG_DONTWAIT) would stop early; size it for the whole TX ring.
// SO_SNDBUFFORCE ignores net.core.wmem_max (CAP_NET_ADMIN); fall back.
void SizeSendBuffer(int fd, const RingGeometry& tx) {
  const size_t want = tx.bytes() * 2;
  const int v = want > size_t(INT32_MAX / 2) ? INT32_MAX / 2 : int(want);
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof v) != 0)
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
}

// Step 4: the rings. RX first, then TX; one mmap covers both, RX at offset 0.
void SetupRing(int fd, int which, const RingGeometry& g, const std::string& ifname) {
  tpacket_req req{};
  req.tp_block_size = g.block_size;
  req.tp_block_nr = g.block_nr;
  req.tp_frame_size = g.frame_size;
  req.tp_frame_nr = g.frame_nr;
  if (setsockopt(fd, SOL_PACKET, which, &req, sizeof req) != 0)
    Fail(ifname, which == PACKET_RX_RING ? "PACKET_RX_RING" : "PACKET_TX_RING");
}

uint8_t* MapRings(int fd, size_t len, const std::string& ifname) {
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
  if (p == MAP_FAILED) Fail(ifname, "mmap rings");
  return static_cast<uint8_t*>(p);
}

// Step 5: bind to the interface for all protocols. From here on frames
// arrive in the RX ring.
void Bind(int fd, int ifindex, const std::string& ifname) {
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = ifindex;
  if (bind(fd, reinterpret_cast<sockaddr*>(&sll), sizeof sll) != 0) Fail(ifname, "bind");
}

// Step 6: promiscuous mode, a per-socket membership the kernel reference
// counts and drops when the socket closes (no global state left behind).
void JoinPromisc(int fd, int ifindex, const std::string& ifname) {
  packet_mreq mr{};
  mr.mr_ifindex = ifindex;
  mr.mr_type = PACKET_MR_PROMISC;
  if (setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr) != 0)
    Fail(ifname, "PACKET_MR_PROMISC");
}

// Step 7: fanout (the socket must be bound: the kernel wants it running).
// Group ids are per network namespace and 16 bits; the first socket asks
// the kernel for a free one (PACKET_FANOUT_FLAG_UNIQUEID, id 0) and reads it
// back, the others join that id with the same mode. Members are appended
// in join order, and HASH picks member reciprocal_scale(hash, n): joining
// in worker order on every port makes member i = worker i everywhere.
constexpr int kFanoutMode = PACKET_FANOUT_HASH;

uint16_t JoinFanout(int fd, int group, const std::string& ifname) {
  int arg;
  if (group < 0) {
    arg = (kFanoutMode | PACKET_FANOUT_FLAG_UNIQUEID) << 16;
  } else {
    arg = (kFanoutMode << 16) | (group & 0xffff);
  }
  if (setsockopt(fd, SOL_PACKET, PACKET_FANOUT, &arg, sizeof arg) != 0) Fail(ifname, "PACKET_FANOUT");
  int got = 0;
  socklen_t len = sizeof got;
  if (getsockopt(fd, SOL_PACKET, PACKET_FANOUT, &got, &len) != 0) Fail(ifname, "get PACKET_FANOUT");
  return uint16_t(got & 0xffff);
}

}  // namespace

RingGeometry PlanRing(uint32_t frame_size, uint32_t frames) {
  const uint32_t page = uint32_t(sysconf(_SC_PAGESIZE));
  const uint32_t min_frame = TPACKET_ALIGN(TPACKET2_HDRLEN + kVnetHdrLen + 64);
  const uint32_t fs = TPACKET_ALIGN(frame_size < min_frame ? min_frame : frame_size);
  if (frames == 0) frames = 1;
  RingGeometry best;
  size_t best_bytes = SIZE_MAX;
  for (uint32_t order = 0; order <= 10; ++order) {  // 4 KB .. 4 MB blocks
    const uint64_t bs = uint64_t(page) << order;
    if (bs < fs) continue;
    const uint32_t per_block = uint32_t(bs / fs);
    const uint32_t blocks = (frames + per_block - 1) / per_block;
    const size_t bytes = size_t(bs) * blocks;
    if (bytes < best_bytes) {  // strictly less: ties keep the smaller block
      best_bytes = bytes;
      best.block_size = uint32_t(bs);
      best.block_nr = blocks;
      best.frame_size = fs;
      best.frame_nr = blocks * per_block;
    }
  }
  return best;  // frame_size 0 when a frame exceeds 4 MB
}

std::vector<tpacket2_hdr*> AfPacketQueue::MapSlots(uint8_t* base, const RingGeometry& g) {
  std::vector<tpacket2_hdr*> slots(g.frame_nr);
  const uint32_t per_block = g.block_size / g.frame_size;
  for (uint32_t i = 0; i < g.frame_nr; ++i)
    slots[i] = reinterpret_cast<tpacket2_hdr*>(base + size_t(i / per_block) * g.block_size +
                                               size_t(i % per_block) * g.frame_size);
  return slots;
}

AfPacketQueue::~AfPacketQueue() {
  if (map_) munmap(map_, map_len_);
  if (fd_ >= 0) close(fd_);
}

// A frame the kernel handed us. The kernel moved the outer VLAN tag (if
// any) to tp_vlan_tci/tp_vlan_tpid (the receive path untags before packet
// sockets see the skb); we put it back in the frame so that the parser sees
// the wire format and the tag is forwarded. There is room in front of the
// frame: the gap between the tpacket2_hdr and the vnet header (the
// sockaddr_ll we do not use, and alignment padding). The vnet header moves
// with the MACs; csum_start and hdr_len count from the frame start, so they
// grow by the tag's 4 bytes. The rewrite is recorded in the frame header
// (VLAN_VALID cleared, tp_mac/tp_snaplen updated), so a frame returned
// again by RxBurst is not rewritten twice.
bool AfPacketQueue::PrepareRx(tpacket2_hdr* h, RxFrame* f) {
  const uint32_t st = h->tp_status;
  uint8_t* base = reinterpret_cast<uint8_t*>(h);
  // Bounds of the frame's data inside its ring slot, defensively.
  if (h->tp_mac < sizeof(tpacket2_hdr) + kVnetHdrLen ||
      uint64_t(h->tp_mac) + h->tp_snaplen > rx_.frame_size)
    return false;
  if (st & TP_STATUS_VLAN_VALID) {
    uint8_t* vnet = base + h->tp_mac - kVnetHdrLen;
    if (vnet - 4 < base + TPACKET_ALIGN(sizeof(tpacket2_hdr)) || h->tp_snaplen < 12) return false;
    std::memmove(vnet - 4, vnet, kVnetHdrLen + 12);
    uint8_t* mac = base + h->tp_mac - 4;
    const uint16_t tpid = (st & TP_STATUS_VLAN_TPID_VALID) && h->tp_vlan_tpid ? h->tp_vlan_tpid : ETH_P_8021Q;
    mac[12] = uint8_t(tpid >> 8), mac[13] = uint8_t(tpid);
    mac[14] = uint8_t(h->tp_vlan_tci >> 8), mac[15] = uint8_t(h->tp_vlan_tci);
    VnetHdr* vh = reinterpret_cast<VnetHdr*>(vnet - 4);
    if (vh->flags & kVnetNeedsCsum) vh->csum_start = htole16(le16toh(vh->csum_start) + 4);
    if (vh->gso_type != kVnetGsoNone) vh->hdr_len = htole16(le16toh(vh->hdr_len) + 4);
    h->tp_mac -= 4;
    h->tp_snaplen += 4;
    h->tp_len += 4;
    h->tp_status = st & ~uint32_t(TP_STATUS_VLAN_VALID | TP_STATUS_VLAN_TPID_VALID);
  }
  f->data = base + h->tp_mac;
  f->vnet = f->data - kVnetHdrLen;
  f->len = h->tp_snaplen;
  f->truncated = h->tp_snaplen < h->tp_len;
  f->ts_ns = uint64_t(h->tp_sec) * 1000000000ull + h->tp_nsec;
  return true;
}

uint32_t AfPacketQueue::RxBurst(RxFrame* out, uint32_t max) {
  uint32_t n = 0;
  uint32_t i = rx_head_;
  while (n < max) {
    tpacket2_hdr* h = RxSlot(i);
    if (!(LoadStatus(h) & TP_STATUS_USER)) break;
    if (!PrepareRx(h, &out[n])) {
      // Unusable slot contents (should not happen): report as truncated so
      // the worker drops and releases it in order.
      out[n] = RxFrame{nullptr, nullptr, 0, true, 0};
    }
    ++n;
    if (++i == rx_.frame_nr) i = 0;
  }
  return n;
}

void AfPacketQueue::RxRelease(uint32_t n) {
  for (uint32_t k = 0; k < n; ++k) {
    StoreStatus(RxSlot(rx_head_), TP_STATUS_KERNEL);
    if (++rx_head_ == rx_.frame_nr) rx_head_ = 0;
  }
}

// A TX slot is ours when its status is AVAILABLE (never used, or the skb
// built from it was freed: tpacket_destruct_skb). SEND_REQUEST means queued
// and not yet taken by sendto; SENDING means in flight (the skb still points
// at the slot's pages). WRONG_FORMAT cannot stay with PACKET_LOSS set, but
// would also mean "free".
bool AfPacketQueue::TxHasRoom() {
  if (!use_ring_) return mm_n_ < kMmsgBatch;
  const uint32_t st = LoadStatus(TxSlot(tx_head_));
  return st == TP_STATUS_AVAILABLE || st == TP_STATUS_WRONG_FORMAT;
}

uint8_t* AfPacketQueue::TxReserve() {
  if (!TxHasRoom()) return nullptr;
  if (!use_ring_) return scratch_.data() + size_t(mm_n_) * kScratchSlot;
  return reinterpret_cast<uint8_t*>(TxSlot(tx_head_)) + kTxDataOffset;
}

bool AfPacketQueue::TxCommit(uint32_t len) {
  if (len > TxCapacity()) return false;
  if (!use_ring_) {
    iov_[mm_n_] = iovec{scratch_.data() + size_t(mm_n_) * kScratchSlot, len};
    ++mm_n_;
    return true;
  }
  tpacket2_hdr* h = TxSlot(tx_head_);
  h->tp_len = len;  // vnet header included: the kernel strips it
  StoreStatus(h, TP_STATUS_SEND_REQUEST);
  if (++tx_head_ == tx_.frame_nr) tx_head_ = 0;
  ++tx_pending_;
  return true;
}

bool AfPacketQueue::TxSend(const uint8_t* buf, uint32_t len) {
  if (!use_ring_) {
    if (mm_n_ == kMmsgBatch || len > kVnetHdrLen + kMaxFrame) return false;
    iov_[mm_n_++] = iovec{const_cast<uint8_t*>(buf), len};  // sent from where it is
    return true;
  }
  if (len > TxCapacity()) return false;
  uint8_t* p = TxReserve();
  if (!p) return false;
  std::memcpy(p, buf, len);
  return TxCommit(len);
}

// One sendto per batch. tpacket_snd walks the ring from its own head and
// sends every SEND_REQUEST frame in order; with MSG_DONTWAIT it returns
// without waiting for the frames to be freed. It may stop early (send
// buffer full: EAGAIN/ENOBUFS; device down: ENXIO), leaving frames in
// SEND_REQUEST: we remember the oldest slot not yet taken and call again at
// the next batch.
void AfPacketQueue::TxFlush() {
  if (!use_ring_) {
    // packet_snd copies each message into a fresh skb (one copy, where the
    // TX ring costs our copy into the ring plus, on veth, the kernel's
    // skb_copy_ubufs of the ring pages when the skb crosses namespaces).
    uint32_t done = 0;
    while (done < mm_n_) {
      const int n = sendmmsg(fd_, mmsg_.data() + done, mm_n_ - done, MSG_DONTWAIT);
      if (n <= 0) break;
      done += uint32_t(n);
    }
    if (done < mm_n_)
      tx_dropped_.store(tx_dropped_.load(std::memory_order_relaxed) + (mm_n_ - done),
                        std::memory_order_relaxed);
    mm_n_ = 0;
    return;
  }
  while (tx_pending_ && LoadStatus(TxSlot(tx_unsent_)) != TP_STATUS_SEND_REQUEST) {
    if (++tx_unsent_ == tx_.frame_nr) tx_unsent_ = 0;
    --tx_pending_;
  }
  if (!tx_pending_) return;
  (void)sendto(fd_, nullptr, 0, MSG_DONTWAIT, nullptr, 0);
  while (tx_pending_ && LoadStatus(TxSlot(tx_unsent_)) != TP_STATUS_SEND_REQUEST) {
    if (++tx_unsent_ == tx_.frame_nr) tx_unsent_ = 0;
    --tx_pending_;
  }
}

uint64_t AfPacketQueue::TakeKernelDrops() {
  tpacket_stats st{};
  socklen_t len = sizeof st;
  const uint64_t now = tx_dropped_.load(std::memory_order_relaxed);
  const uint64_t tx = now - tx_dropped_reported_;
  tx_dropped_reported_ = now;
  if (getsockopt(fd_, SOL_PACKET, PACKET_STATISTICS, &st, &len) != 0) return tx;
  return st.tp_drops + tx;  // the kernel resets the counters on read
}

std::vector<std::unique_ptr<Queue>> PrepareAfPacketPort(const std::string& ifname, uint32_t queues,
                                                        const AfPacketOptions& o) {
  const int ifindex = int(if_nametoindex(ifname.c_str()));
  if (ifindex == 0) Fail(ifname, "no such interface");
  const RingGeometry rx = PlanRing(o.frame_size, o.rx_frames);
  const RingGeometry tx = PlanRing(o.frame_size, o.tx_frames);
  if (rx.frame_size == 0 || tx.frame_size == 0) {
    errno = EINVAL;
    Fail(ifname, "frame size");
  }
  std::vector<std::unique_ptr<Queue>> out;
  for (uint32_t q = 0; q < queues; ++q) {
    std::unique_ptr<AfPacketQueue> s(new AfPacketQueue());
    s->ifname_ = ifname;
    s->ifindex_ = ifindex;
    s->fd_ = OpenSocket(ifname);
    s->rx_ = rx;
    s->tx_ = tx;
    SetPreRingOptions(s->fd_, o, ifname);
    SizeSendBuffer(s->fd_, tx);
    SetupRing(s->fd_, PACKET_RX_RING, rx, ifname);
    s->use_ring_ = o.tx_ring;
    if (o.tx_ring) {
      SetupRing(s->fd_, PACKET_TX_RING, tx, ifname);
    } else {
      s->tx_ = RingGeometry{};
      s->mmsg_.assign(AfPacketQueue::kMmsgBatch, mmsghdr{});
      s->iov_.assign(AfPacketQueue::kMmsgBatch, iovec{});
      s->scratch_.assign(size_t(AfPacketQueue::kMmsgBatch) * AfPacketQueue::kScratchSlot, 0);
      for (uint32_t i = 0; i < AfPacketQueue::kMmsgBatch; ++i) {
        s->mmsg_[i].msg_hdr.msg_iov = &s->iov_[i];
        s->mmsg_[i].msg_hdr.msg_iovlen = 1;
      }
    }
    s->map_len_ = rx.bytes() + s->tx_.bytes();
    s->map_ = MapRings(s->fd_, s->map_len_, ifname);
    s->rx_slots_ = AfPacketQueue::MapSlots(s->map_, rx);
    if (o.tx_ring) s->tx_slots_ = AfPacketQueue::MapSlots(s->map_ + rx.bytes(), tx);
    out.push_back(std::move(s));
  }
  return out;
}

void ActivateAfPacketPort(std::vector<std::unique_ptr<Queue>>& queues, bool promisc) {
  int group = -1;
  for (auto& q : queues) {
    AfPacketQueue* s = static_cast<AfPacketQueue*>(q.get());
    const std::string& ifname = s->ifname_;
    // The name's index now: a standby prepared before the interface was
    // recreated binds to the new one.
    const int ifindex = int(if_nametoindex(ifname.c_str()));
    if (ifindex == 0) Fail(ifname, "no such interface");
    s->ifindex_ = ifindex;
    const RingGeometry& rx = s->rx_;
    Bind(s->fd_, ifindex, ifname);
    if (promisc) JoinPromisc(s->fd_, ifindex, ifname);
    if (queues.size() > 1) {
      group = JoinFanout(s->fd_, group, ifname);
      // Frames that arrived between bind and the fanout join were delivered
      // to this socket outside the group (another worker may get them too):
      // give them back unprocessed. A single queue has no group: what it
      // received is the port's traffic, for its worker to forward, and its
      // ring drops are counted like any others.
      RxFrame scratch[64];
      for (uint32_t n, total = 0; total < rx.frame_nr && (n = s->RxBurst(scratch, 64)) != 0; total += n)
        s->RxRelease(n);
      (void)s->TakeKernelDrops();
    }
  }
}

std::vector<std::unique_ptr<Queue>> OpenAfPacketPort(const std::string& ifname, uint32_t queues,
                                                     const AfPacketOptions& o) {
  std::vector<std::unique_ptr<Queue>> out = PrepareAfPacketPort(ifname, queues, o);
  ActivateAfPacketPort(out, o.promisc);
  return out;
}

}  // namespace io
}  // namespace flatwall
