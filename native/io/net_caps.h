// CAP_NET_RAW and CAP_NET_ADMIN in the effective set while the ports open.
//
// The CNF image runs flatwall as a non-root user (cnf/). A non-root process
// keeps the runtime's added capabilities across execve only through the
// ambient set or file capabilities; podman (4.3) fills the ambient set for
// a non-root user, the Kubernetes runtimes (containerd, CRI-O) do not, so
// cnf/build.js gives the image's node `cap_net_raw,cap_net_admin+p`: permitted, not effective (an
// effective bit would make execve fail with EPERM wherever the runtime's
// bounding set lacks one of the two, e.g. for `flatwall check` run without
// --cap-add). Opening the ports is the only step that needs them: this
// raises the two from permitted into the calling thread's effective set for
// that step and lowers again what it raised. Capabilities are per thread on
// Linux; ports are opened on the thread that calls Dataplane::Start.
// For root (both already effective) and for a process without them (not
// permitted) it does nothing, and the socket calls fail as they would.
// no_new_privs (Kubernetes allowPrivilegeEscalation: false, podman
// --security-opt no-new-privileges) does not take them away: the kernel
// then caps the file's permitted set by the permitted set before execve,
// and the runtime put the added capabilities there (test/e2e/cnf.test.ts
// runs the image that way). AF_XDP ports need CAP_BPF and CAP_IPC_LOCK as
// well: raised the same way when they are permitted (cnf/README.md).
#pragma once

#include <cstdint>

namespace flatwall {
namespace io {

class ScopedNetCaps {
 public:
  ScopedNetCaps();
  ~ScopedNetCaps();
  ScopedNetCaps(const ScopedNetCaps&) = delete;
  ScopedNetCaps& operator=(const ScopedNetCaps&) = delete;
  // The capability bits (1 << CAP_x) of the first word this scope raised
  // (CAP_BPF, in the second word, is raised too when permitted).
  uint32_t raised() const { return raised_; }

 private:
  uint32_t raised_ = 0, raised1_ = 0;
};

// Bits of CAP_NET_RAW / CAP_NET_ADMIN in the calling thread's effective
// and permitted sets (for error messages).
struct NetCapState {
  bool raw_effective = false, admin_effective = false;
  bool raw_permitted = false, admin_permitted = false;
};
NetCapState CurrentNetCaps();

}  // namespace io
}  // namespace flatwall
