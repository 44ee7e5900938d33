// AF_XDP rings, one small function per kernel rule. Reference:
// Documentation/networking/af_xdp.rst, net/xdp/xsk.c, net/xdp/xsk_queue.h.
#include "io/xsk_port.h"

#include <errno.h>
#include <linux/if_xdp.h>
#include <net/if.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <system_error>

#include "io/local_csum.h"

namespace flatwall {
namespace io {
namespace {

[[noreturn]] void Fail(const std::string& ifname, const std::string& step, int err) {
  throw std::system_error(err, std::generic_category(), "AF_XDP " + ifname + ": " + step);
}

uint32_t PowerOfTwoAtLeast(uint32_t v) {
  uint32_t p = 64;
  while (p < v && p < (1u << 16)) p <<= 1;
  return p;
}

}  // namespace

uint32_t InterfaceRxQueues(const std::string& ifname) {
  uint32_t n = 0;
  // rx-0 .. rx-(n-1) under /sys/class/net/IF/queues.
  for (; n < 1024; ++n) {
    std::ifstream f("/sys/class/net/" + ifname + "/queues/rx-" + std::to_string(n) + "/rps_cpus");
    if (!f.good()) break;
  }
  return n;
}

// ---- UMEM -------------------------------------------------------------------

// The area is anonymous memory, populated up front: the kernel pins the
// pages at XDP_UMEM_REG (it counts them against RLIMIT_MEMLOCK unless the
// process has CAP_IPC_LOCK; Linux 5.11+ charges memcg instead).
XskUmem::XskUmem(uint32_t frames, const std::string& ifname) : size_(size_t(frames) * kFrameSize) {
  void* p = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (p == MAP_FAILED) Fail(ifname, "mmap UMEM", errno);
  area_ = static_cast<uint8_t*>(p);
  state_.assign(frames, FrameState::kFree);
  free_.reserve(frames);
  for (uint32_t i = frames; i-- > 0;) free_.push_back(uint64_t(i) * kFrameSize);
}

XskUmem::~XskUmem() {
  if (umem) xsk_umem__delete(umem);  // after every socket: they hold references
  if (area_) munmap(area_, size_);
}

// ---- RX ---------------------------------------------------------------------

// Keep the fill ring topped up from the free pool: a frame must be in the
// fill ring before the kernel can receive into it; with the ring empty
// the kernel drops (rx_dropped / rx_fill_ring_empty_descs).
void XskQueue::Refill() {
  XskUmem& u = *umem_;
  uint32_t want = xsk_prod_nb_free(fillp_, 1);
  if (want > u.free_count()) want = uint32_t(u.free_count());
  if (want == 0) return;
  uint32_t idx;
  if (xsk_ring_prod__reserve(fillp_, want, &idx) != want) return;
  for (uint32_t i = 0; i < want; ++i) {
    const uint64_t a = u.Take();
    u.state(a) = XskUmem::FrameState::kKernelRx;
    *xsk_ring_prod__fill_addr(fillp_, idx + i) = a;
  }
  xsk_ring_prod__submit(fillp_, want);
  // Zero-copy drivers ask for a wake-up when they ran out of fill entries.
  if (xsk_ring_prod__needs_wakeup(fillp_)) (void)recvfrom(fd_, nullptr, 0, MSG_DONTWAIT, nullptr, nullptr);
}

uint32_t XskQueue::RxBurst(RxFrame* out, uint32_t max) {
  ReapCompletions();
  Refill();
  uint32_t idx = 0;
  const uint32_t n = xsk_ring_cons__peek(&rx_, max, &idx);
  XskUmem& u = *umem_;
  for (uint32_t i = 0; i < n; ++i) {
    const xdp_desc* d = xsk_ring_cons__rx_desc(&rx_, idx + i);
    RxFrame& f = out[i];
    // The kernel validated the descriptor against its own UMEM bounds; we
    // check ours too before writing in front of the frame.
    if (!u.Holds(d->addr, d->len, kVnetHdrLen)) {
      f = RxFrame{nullptr, nullptr, 0, true, 0};
      if (d->addr < u.size()) u.state(d->addr) = XskUmem::FrameState::kUserRx;
      continue;
    }
    u.state(d->addr) = XskUmem::FrameState::kUserRx;
    f.data = u.area() + d->addr;
    f.vnet = f.data - kVnetHdrLen;
    std::memset(f.vnet, 0, kVnetHdrLen);  // no GSO, checksums complete (below)
    f.len = d->len;
    f.truncated = false;
    f.ts_ns = 0;
    if (CompleteLocalChecksum(f.data, f.len))
      csum_completed_.store(csum_completed_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  rx_idx_ = idx;
  burst_ = n;
  return n;
}

// The first n frames of the burst are done: those not handed to a TX ring
// go back to the pool. The rest of the burst is un-peeked
// (xsk_ring_cons__cancel), so the next RxBurst returns it first.
void XskQueue::RxRelease(uint32_t n) {
  if (n > burst_) n = burst_;
  XskUmem& u = *umem_;
  for (uint32_t i = 0; i < n; ++i) {
    const uint64_t a = xsk_ring_cons__rx_desc(&rx_, rx_idx_ + i)->addr;
    if (a < u.size() && u.state(a) == XskUmem::FrameState::kUserRx) u.Give(a);
  }
  for (uint32_t i = n; i < burst_; ++i) {
    const uint64_t a = xsk_ring_cons__rx_desc(&rx_, rx_idx_ + i)->addr;
    if (a < u.size()) u.state(a) = XskUmem::FrameState::kKernelRx;  // still the RX ring's
  }
  if (n) xsk_ring_cons__release(&rx_, n);
  xsk_ring_cons__cancel(&rx_, burst_ - n);
  burst_ = 0;
  Refill();
}

// ---- TX ---------------------------------------------------------------------

// Reserved descriptors (tx_pending_) already moved cached_prod: the free
// count is what is left beyond them.
bool XskQueue::TxHasRoom() { return xsk_prod_nb_free(&tx_, 1) >= 1; }

bool XskQueue::QueueTx(uint64_t addr, uint32_t len) {
  if (!TxHasRoom()) return false;
  if (tx_pending_ == 0) tx_idx_ = tx_.cached_prod;
  uint32_t idx;
  if (xsk_ring_prod__reserve(&tx_, 1, &idx) != 1) return false;
  xdp_desc* d = xsk_ring_prod__tx_desc(&tx_, idx);
  d->addr = addr;
  d->len = len;
  d->options = 0;
  umem_->state(addr) = XskUmem::FrameState::kKernelTx;
  ++tx_pending_;
  return true;
}

bool XskQueue::TxForward(const RxFrame& f) {
  XskUmem& u = *umem_;
  // A frame of this worker's UMEM: queue its descriptor.
  if (u.Contains(f.data)) return QueueTx(uint64_t(f.data - u.area()), f.len);
  return TxSend(f.vnet, f.len + kVnetHdrLen);
}

bool XskQueue::TxSend(const uint8_t* buf, uint32_t len) {
  if (len < kVnetHdrLen || len > TxCapacity()) return false;
  // No GSO on AF_XDP: a super-packet from a TAP/AF_PACKET port cannot go out whole.
  if (reinterpret_cast<const VnetHdr*>(buf)->gso_type != kVnetGsoNone) return false;
  uint8_t* p = TxReserve();
  if (!p) return false;
  std::memcpy(p, buf, len);
  return TxCommit(len);
}

uint8_t* XskQueue::TxReserve() {
  XskUmem& u = *umem_;
  if (reserved_ == ~0ull) {
    if (u.Empty()) ReapCompletions();
    if (u.Empty() || !TxHasRoom()) return nullptr;
    reserved_ = u.Take();
    u.state(reserved_) = XskUmem::FrameState::kUserTx;
  }
  // The vnet header goes just before where the frame will start.
  return u.area() + reserved_ + kTxDataOffset - kVnetHdrLen;
}

bool XskQueue::TxCommit(uint32_t len) {
  if (reserved_ == ~0ull) return false;
  const uint64_t a = reserved_;
  reserved_ = ~0ull;
  if (len < kVnetHdrLen || len > TxCapacity() || !QueueTx(a + kTxDataOffset, len - kVnetHdrLen)) {
    umem_->Give(a);
    return false;
  }
  return true;
}

// Copy mode: each sendto() transmits up to 32 descriptors and answers
// EAGAIN while the TX ring still holds more (__xsk_generic_xmit's budget);
// EBUSY/ENOBUFS/ENETDOWN leave the descriptors in the ring for the next
// flush. With need_wakeup and the flag clear (zero-copy, the driver is
// already polling the ring), no syscall.
void XskQueue::Kick() {
  for (int i = 0; i < 64; ++i) {
    const uint32_t queued = tx_.cached_prod - __atomic_load_n(tx_.consumer, __ATOMIC_ACQUIRE);
    if (queued == 0) return;
    if (!xsk_ring_prod__needs_wakeup(&tx_)) return;
    if (sendto(fd_, nullptr, 0, MSG_DONTWAIT, nullptr, 0) >= 0) continue;
    if (errno != EAGAIN && errno != EINTR) return;
  }
}

void XskQueue::TxFlush() {
  if (tx_pending_) {
    xsk_ring_prod__submit(&tx_, tx_pending_);
    tx_pending_ = 0;
  }
  Kick();
  ReapCompletions();
}

// Sent frames come back through the completion ring, in any order relative
// to other sockets, but each address exactly once.
void XskQueue::ReapCompletions() {
  uint32_t idx;
  const uint32_t n = xsk_ring_cons__peek(compp_, 1024, &idx);
  if (n == 0) return;
  XskUmem& u = *umem_;
  for (uint32_t i = 0; i < n; ++i) {
    const uint64_t a = *xsk_ring_cons__comp_addr(compp_, idx + i);
    if (a < u.size()) u.Give(a);
  }
  xsk_ring_cons__release(compp_, n);
}

uint64_t XskQueue::TakeKernelDrops() {
  const uint64_t now = tx_dropped_.load(std::memory_order_relaxed);
  uint64_t drops = now - tx_dropped_reported_;
  tx_dropped_reported_ = now;
  xdp_statistics st{};
  socklen_t len = sizeof st;
  if (getsockopt(fd_, SOL_XDP, XDP_STATISTICS, &st, &len) == 0) {
    // Cumulative in the kernel (unlike PACKET_STATISTICS): report the growth.
    const uint64_t total = st.rx_dropped + st.rx_ring_full + st.tx_invalid_descs;
    drops += total - stats_reported_;
    stats_reported_ = total;
  }
  return drops;
}

XskQueue::~XskQueue() {
  if (xsk_) xsk_socket__delete(xsk_);
}

// ---- Opening ----------------------------------------------------------------

struct XskOpener {
  static std::unique_ptr<XskQueue> Open(const std::string& ifname, int ifindex, uint32_t queue,
                                        const std::shared_ptr<XskUmem>& umem, const XskOptions& o,
                                        bool* zero_copy) {
    std::unique_ptr<XskQueue> q(new XskQueue());
    q->umem_ = umem;
    q->ifname_ = ifname;
    q->ifindex_ = ifindex;
    XskUmem& u = *umem;
    if (!u.umem) {
      xsk_umem_config uc{};
      uc.fill_size = o.ring_size;
      uc.comp_size = o.ring_size;
      uc.frame_size = XskUmem::kFrameSize;
      uc.frame_headroom = XskUmem::kHeadroom;
      uc.flags = 0;
      const int r = xsk_umem__create(&u.umem, u.area(), u.size(), &u.first_fill, &u.first_comp, &uc);
      if (r != 0) {
        u.umem = nullptr;
        Fail(ifname, std::string("XDP_UMEM_REG") +
                         (-r == EPERM || -r == ENOBUFS || -r == ENOMEM
                              ? " (the UMEM's " + std::to_string(u.size() >> 20) +
                                    " MB are locked memory: raise RLIMIT_MEMLOCK or grant CAP_IPC_LOCK)"
                              : ""),
             -r);
      }
    }
    // The UMEM's first socket uses the rings registered with it; every other
    // (interface, queue) gets its own fill and completion rings.
    xsk_ring_prod* fill = &q->fill_;
    xsk_ring_cons* comp = &q->comp_;
    if (!u.first_used) {
      fill = &u.first_fill, comp = &u.first_comp;
      u.first_used = true;
    }
    q->fillp_ = fill, q->compp_ = comp;
    xsk_socket_config sc{};
    sc.rx_size = o.ring_size;
    sc.tx_size = o.ring_size;
    sc.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD;  // our program (xdp_redirect.h)
    sc.xdp_flags = 0;
    // Neither XDP_COPY nor XDP_ZEROCOPY: the kernel binds zero-copy where
    // the driver offers it and falls back to copy mode (xsk_bind ->
    // xp_assign_dev); XDP_OPTIONS says which it chose.
    sc.bind_flags = XDP_USE_NEED_WAKEUP;
    const int r = xsk_socket__create_shared(&q->xsk_, ifname.c_str(), queue, u.umem, &q->rx_, &q->tx_,
                                            fill, comp, &sc);
    if (r != 0) {
      q->xsk_ = nullptr;
      Fail(ifname, "bind XDP socket to queue " + std::to_string(queue), -r);
    }
    xdp_options xo{};
    socklen_t xl = sizeof xo;
    q->zero_copy_ = getsockopt(xsk_socket__fd(q->xsk_), SOL_XDP, XDP_OPTIONS, &xo, &xl) == 0 &&
                    (xo.flags & XDP_OPTIONS_ZEROCOPY);
    q->fd_ = xsk_socket__fd(q->xsk_);
    *zero_copy = q->zero_copy_;
    return q;
  }
};

XskPorts OpenXskPorts(const std::vector<std::string>& ifnames, uint32_t workers, const XskOptions& o) {
  XskOptions opt = o;
  opt.ring_size = PowerOfTwoAtLeast(o.ring_size);
  XskPorts out;
  out.mode = o.native ? XdpMode::kNative : XdpMode::kGeneric;
  // Queues and programs are built into `out`; a throw destroys it, which
  // closes the sockets, then the UMEMs, then detaches the programs.
  std::vector<int> ifindexes;
  for (const auto& name : ifnames) {
    const int ifindex = int(if_nametoindex(name.c_str()));
    if (ifindex == 0) Fail(name, "no such interface", ENODEV);
    const uint32_t rxq = InterfaceRxQueues(name);
    if (rxq && rxq < workers)
      Fail(name, std::to_string(workers) + " workers need as many RX queues, the interface has " +
                     std::to_string(rxq), EINVAL);
    ifindexes.push_back(ifindex);
    out.programs.emplace_back(new XdpRedirect(name, ifindex, workers));
    out.queues.emplace_back();
  }
  // Per worker: a UMEM for fill + TX of every port, twice over (frames in the
  // fill ring, in the RX ring and with us, and in TX rings until completion).
  const uint32_t frames = uint32_t(ifnames.size()) * opt.ring_size * 2;
  bool all_zc = true;
  for (uint32_t w = 0; w < workers; ++w) {
    auto umem = std::make_shared<XskUmem>(frames, ifnames.empty() ? std::string() : ifnames[0]);
    for (size_t p = 0; p < ifnames.size(); ++p) {
      bool zc = false;
      auto q = XskOpener::Open(ifnames[p], ifindexes[p], w, umem, opt, &zc);
      all_zc &= zc;
      out.programs[p]->SetSocket(w, q->fd());
      out.queues[p].push_back(std::move(q));
    }
  }
  out.zero_copy = all_zc && !ifnames.empty();
  // Fill every socket's ring before the first frame can arrive.
  for (auto& port : out.queues)
    for (auto& q : port) static_cast<XskQueue*>(q.get())->RxRelease(0);
  for (auto& prog : out.programs) prog->Attach(out.mode);
  return out;
}

}  // namespace io
}  // namespace flatwall
