#include "io/tap_port.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <system_error>

// Added in Linux 6.2; older uapi headers lack them.
#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#endif
#ifndef TUN_F_USO6
#define TUN_F_USO6 0x40
#endif

namespace flatwall {
namespace io {
namespace {

[[noreturn]] void Fail(const std::string& ifname, const char* step) {
  throw std::system_error(errno, std::generic_category(), "TAP " + ifname + ": " + step);
}

// One queue: open the clone device and attach to (or create) the named
// multi-queue TAP. Every queue must ask for the same flags.
int OpenQueueFd(const std::string& ifname) {
  const int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) Fail(ifname, "open /dev/net/tun");
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE;
  if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
    const int e = errno;
    close(fd);
    errno = e;
    Fail(ifname, "TUNSETIFF (IFF_TAP|IFF_NO_PI|IFF_VNET_HDR|IFF_MULTI_QUEUE)");
  }
  int hdr = int(kVnetHdrLen);
  if (ioctl(fd, TUNSETVNETHDRSZ, &hdr) != 0) {
    const int e = errno;
    close(fd);
    errno = e;
    Fail(ifname, "TUNSETVNETHDRSZ");
  }
  return fd;
}

// What we accept from the kernel: partial checksums and TSO super-packets
// (and UDP segmentation offload where the kernel has it).
void SetOffloads(int fd, const std::string& ifname) {
  const unsigned base = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
  if (ioctl(fd, TUNSETOFFLOAD, base | TUN_F_USO4 | TUN_F_USO6) == 0) return;
  if (ioctl(fd, TUNSETOFFLOAD, base) != 0) Fail(ifname, "TUNSETOFFLOAD");
}

void BringUp(const std::string& ifname) {
  const int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) Fail(ifname, "socket for SIOCSIFFLAGS");
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
  if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0 && !(ifr.ifr_flags & IFF_UP)) {
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0) {
      const int e = errno;
      close(s);
      errno = e;
      Fail(ifname, "SIOCSIFFLAGS IFF_UP");
    }
  }
  close(s);
}

}  // namespace

struct TapOpener {
  static std::unique_ptr<TapQueue> Make(int fd) {
    std::unique_ptr<TapQueue> q(new TapQueue());
    q->fd_ = fd;
    return q;
  }
};

TapQueue::TapQueue()
    : bufs_(kTapBurst, std::vector<uint8_t>(kVnetHdrLen + kMaxFrame)),
      lens_(kTapBurst, 0),
      tx_buf_(kVnetHdrLen + kMaxFrame) {}

TapQueue::~TapQueue() {
  if (fd_ >= 0) close(fd_);
}

uint32_t TapQueue::RxBurst(RxFrame* out, uint32_t max) {
  if (max > kTapBurst) max = kTapBurst;
  // Frames still held from the previous burst come first, then new reads.
  while (held_ < max) {
    std::vector<uint8_t>& b = bufs_[held_];
    const ssize_t n = read(fd_, b.data(), b.size());
    if (n < 0) break;  // EAGAIN: empty (other errors: try again next batch)
    if (size_t(n) < kVnetHdrLen) continue;
    lens_[held_++] = uint32_t(n);
  }
  const uint32_t n = std::min(held_, max);
  for (uint32_t i = 0; i < n; ++i) {
    uint8_t* b = bufs_[i].data();
    out[i] = RxFrame{b, b + kVnetHdrLen, lens_[i] - kVnetHdrLen, false, 0};
  }
  return n;
}

void TapQueue::RxRelease(uint32_t n) {
  if (n > held_) n = held_;
  // Released buffers go behind the ones still held; swapping vectors keeps
  // every buffer's address, so frames handed out stay valid.
  std::rotate(bufs_.begin(), bufs_.begin() + n, bufs_.begin() + held_);
  std::rotate(lens_.begin(), lens_.begin() + n, lens_.begin() + held_);
  held_ -= n;
}

bool TapQueue::TxSend(const uint8_t* buf, uint32_t len) {
  const ssize_t n = write(fd_, buf, len);
  return n == ssize_t(len);
}

TapPort OpenTapPort(const std::string& ifname, uint32_t queues) {
  if (ifname.empty() || ifname.size() >= IFNAMSIZ) {
    errno = EINVAL;
    Fail(ifname, "interface name");
  }
  TapPort port;
  port.created = if_nametoindex(ifname.c_str()) == 0;
  for (uint32_t q = 0; q < queues; ++q) {
    const int fd = OpenQueueFd(ifname);
    port.queues.push_back(TapOpener::Make(fd));
    if (q == 0) SetOffloads(fd, ifname);
  }
  BringUp(ifname);
  return port;
}

}  // namespace io
}  // namespace flatwall
