// See net_caps.h. capget/capset through syscall(2): no libcap.
#include "io/net_caps.h"

#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace flatwall {
namespace io {
namespace {

constexpr uint32_t kNetBits = (1u << CAP_NET_RAW) | (1u << CAP_NET_ADMIN);  // both in word 0
// AF_XDP ports also need, when the process was given them: CAP_IPC_LOCK
// (the UMEM's locked pages, word 0) and CAP_BPF (the XSKMAP and the XDP
// program, Linux 5.8+; bit 39, word 1). Older headers lack CAP_BPF.
constexpr uint32_t kWord0Bits = kNetBits | (1u << CAP_IPC_LOCK);
constexpr uint32_t kCapBpf = 39;
constexpr uint32_t kWord1Bits = 1u << (kCapBpf - 32);

bool Get(__user_cap_data_struct (&d)[2]) {
  __user_cap_header_struct h{_LINUX_CAPABILITY_VERSION_3, 0};  // pid 0: this thread
  return syscall(SYS_capget, &h, d) == 0;
}

bool Set(__user_cap_data_struct (&d)[2]) {
  __user_cap_header_struct h{_LINUX_CAPABILITY_VERSION_3, 0};
  return syscall(SYS_capset, &h, d) == 0;
}

}  // namespace

ScopedNetCaps::ScopedNetCaps() {
  __user_cap_data_struct d[2] = {};
  if (!Get(d)) return;
  const uint32_t want = d[0].permitted & ~d[0].effective & kWord0Bits;
  const uint32_t want1 = d[1].permitted & ~d[1].effective & kWord1Bits;
  if (want == 0 && want1 == 0) return;
  d[0].effective |= want;
  d[1].effective |= want1;
  if (Set(d)) raised_ = want, raised1_ = want1;
}

ScopedNetCaps::~ScopedNetCaps() {
  if (raised_ == 0 && raised1_ == 0) return;
  __user_cap_data_struct d[2] = {};
  if (!Get(d)) return;
  d[0].effective &= ~raised_;
  d[1].effective &= ~raised1_;
  (void)Set(d);
}

NetCapState CurrentNetCaps() {
  NetCapState s;
  __user_cap_data_struct d[2] = {};
  if (!Get(d)) return s;
  s.raw_effective = d[0].effective & (1u << CAP_NET_RAW);
  s.admin_effective = d[0].effective & (1u << CAP_NET_ADMIN);
  s.raw_permitted = d[0].permitted & (1u << CAP_NET_RAW);
  s.admin_permitted = d[0].permitted & (1u << CAP_NET_ADMIN);
  return s;
}

}  // namespace io
}  // namespace flatwall
