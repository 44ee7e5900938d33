#include "io/xdp_redirect.h"

#include <bpf/bpf.h>
#include <errno.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <system_error>

namespace flatwall {
namespace io {
namespace {

[[noreturn]] void Fail(const std::string& ifname, const std::string& step, int err) {
  throw std::system_error(err, std::generic_category(), "AF_XDP " + ifname + ": " + step);
}

// The instruction encodings of the kernel's include/linux/filter.h macros,
// which are not part of the UAPI headers.
bpf_insn Insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
  bpf_insn i{};
  i.code = code;
  i.dst_reg = dst & 0xf;
  i.src_reg = src & 0xf;
  i.off = off;
  i.imm = imm;
  return i;
}

}  // namespace

const char* XdpModeName(XdpMode m) { return m == XdpMode::kNative ? "native" : "generic"; }

XdpRedirect::XdpRedirect(const std::string& ifname, int ifindex, uint32_t queues)
    : ifname_(ifname), ifindex_(ifindex) {
  map_fd_ = bpf_map_create(BPF_MAP_TYPE_XSKMAP, "flatwall_xsks", sizeof(uint32_t), sizeof(int),
                           queues, nullptr);
  if (map_fd_ < 0)
    Fail(ifname, std::string("XSKMAP") + (-map_fd_ == EPERM ? " (BPF maps and XDP programs need CAP_BPF and CAP_NET_ADMIN, or CAP_SYS_ADMIN)" : ""), -map_fd_);
  const bpf_insn prog[] = {
      // r2 = ctx->rx_queue_index
      Insn(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_2, BPF_REG_1, int16_t(offsetof(xdp_md, rx_queue_index)), 0),
      // r1 = the XSKMAP (a 16-byte load: the fd, resolved by the verifier)
      Insn(BPF_LD | BPF_DW | BPF_IMM, BPF_REG_1, BPF_PSEUDO_MAP_FD, 0, map_fd_),
      Insn(0, 0, 0, 0, 0),
      // r3 = XDP_PASS, the action when map[r2] holds no socket
      Insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_3, 0, 0, XDP_PASS),
      Insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_redirect_map),
      Insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
  };
  char log[1024] = {};
  LIBBPF_OPTS(bpf_prog_load_opts, opts, .log_level = 0, .log_size = sizeof log, .log_buf = log);
  prog_fd_ = bpf_prog_load(BPF_PROG_TYPE_XDP, "flatwall_xsk", "Apache-2.0", prog,
                           sizeof prog / sizeof prog[0], &opts);
  if (prog_fd_ < 0) {
    const int err = -prog_fd_;
    prog_fd_ = -1;
    close(map_fd_);
    map_fd_ = -1;
    Fail(ifname, std::string("load XDP program") + (log[0] ? std::string(" (") + log + ")" : ""), err);
  }
}

XdpRedirect::~XdpRedirect() {
  // Closing the link detaches the program; then the program and the map go.
  if (link_fd_ >= 0) close(link_fd_);
  if (prog_fd_ >= 0) close(prog_fd_);
  if (map_fd_ >= 0) close(map_fd_);
}

void XdpRedirect::SetSocket(uint32_t queue, int xsk_fd) {
  const int r = bpf_map_update_elem(map_fd_, &queue, &xsk_fd, BPF_ANY);
  if (r != 0) Fail(ifname_, "XSKMAP update queue " + std::to_string(queue), errno);
}

void XdpRedirect::Attach(XdpMode mode) {
  LIBBPF_OPTS(bpf_link_create_opts, opts,
              .flags = mode == XdpMode::kNative ? uint32_t(XDP_FLAGS_DRV_MODE) : uint32_t(XDP_FLAGS_SKB_MODE));
  const int fd = bpf_link_create(prog_fd_, ifindex_, BPF_XDP, &opts);
  if (fd < 0) {
    const int err = -fd;
    std::string why = std::string("attach ") + XdpModeName(mode) + " XDP";
    if (err == EBUSY || err == EEXIST) why += " (another XDP program is attached to the interface)";
    else if (err == EINVAL || err == ERANGE)
      why += " (refused by the driver: on veth, an MTU larger than a page minus headroom, or no native XDP)";
    Fail(ifname_, why, err);
  }
  link_fd_ = fd;
  mode_ = mode;
}

}  // namespace io
}  // namespace flatwall
