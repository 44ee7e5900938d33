// The XDP program an AF_XDP port runs, and its attachment.
//
// Five instructions, the ones libbpf's xsk.c used to load before that code
// moved to libxdp: read the frame's RX queue index and hand the frame to the
// socket at that index of an XSKMAP; bpf_redirect_map's last argument (the
// action when the index has no socket, Linux 5.3+) is XDP_PASS, so a queue
// without a socket, or a socket already closed, lets frames through to the
// kernel's stack instead of dropping them.
//
// Why our own instead of libxdp's default program: libxdp attaches through
// its multi-program dispatcher, which needs a BPF filesystem mounted at
// /sys/fs/bpf to pin it (a container usually has none) and clang-built
// objects at run time. Five instructions built here need neither, and no
// clang at build time.
//
// Attached through a BPF link (bpf_link_create, Linux 5.9+), not the netlink
// attach: the link belongs to its file descriptor, so when the process dies
// however it dies (kill -9 included) the kernel detaches the program and the
// interface is as it was. A netlink-attached program would stay behind and a
// restart would find the interface busy.
#pragma once

#include <cstdint>
#include <string>

namespace flatwall {
namespace io {

enum class XdpMode : uint8_t {
  kNative,   // XDP_FLAGS_DRV_MODE: the driver runs the program (veth, most NICs)
  kGeneric,  // XDP_FLAGS_SKB_MODE: after the skb is built, on any device
};
const char* XdpModeName(XdpMode m);

class XdpRedirect {
 public:
  // Creates the XSKMAP (`queues` entries) and loads the program. Throws
  // std::system_error naming the step (EPERM: CAP_BPF/CAP_SYS_ADMIN or
  // CAP_NET_ADMIN missing, depending on the kernel's unprivileged BPF policy).
  XdpRedirect(const std::string& ifname, int ifindex, uint32_t queues);
  ~XdpRedirect();
  XdpRedirect(const XdpRedirect&) = delete;
  XdpRedirect& operator=(const XdpRedirect&) = delete;

  // Puts socket `xsk_fd` at index `queue`. Before Attach: nothing reaches it yet.
  void SetSocket(uint32_t queue, int xsk_fd);
  // Attaches the program to the interface in `mode`. Throws on refusal
  // (another program attached: EBUSY/EEXIST; the driver has no native XDP or
  // the MTU is too large for a single-buffer program: EINVAL/EOPNOTSUPP/ERANGE),
  // with the kernel's reason in the message where it gives one.
  void Attach(XdpMode mode);
  XdpMode mode() const { return mode_; }

 private:
  std::string ifname_;
  int ifindex_ = 0;
  int map_fd_ = -1;
  int prog_fd_ = -1;
  int link_fd_ = -1;
  XdpMode mode_ = XdpMode::kNative;
};

}  // namespace io
}  // namespace flatwall
