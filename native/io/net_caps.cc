// See net_caps.h. capget/capset through syscall(2): no libcap.
#include "io/net_caps.h"

#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace flatwall {
namespace io {
namespace {

constexpr uint32_t kNetBits = (1u << CAP_NET_RAW) | (1u << CAP_NET_ADMIN);  // both in word 0

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
  const uint32_t want = d[0].permitted & ~d[0].effective & kNetBits;
  if (want == 0) return;
  d[0].effective |= want;
  if (Set(d)) raised_ = want;
}

ScopedNetCaps::~ScopedNetCaps() {
  if (raised_ == 0) return;
  __user_cap_data_struct d[2] = {};
  if (!Get(d)) return;
  d[0].effective &= ~raised_;
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
