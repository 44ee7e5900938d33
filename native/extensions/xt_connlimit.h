// -m connlimit: the number of connections per (masked) address (the
// kernel's net/netfilter/xt_connlimit.c over nf_conncount.c; the counting
// itself, and how it differs from the kernel's lists, is in
// conntrack/conncount.h).
//
// Kernel semantics kept (connlimit_mt):
//   - the key is the packet's source address (--connlimit-saddr, default) or
//     destination address (--connlimit-daddr), ANDed with --connlimit-mask
//     (default /32, /128), in the packet's direction, not the connection's;
//   - the count includes the packet's own connection (nf_conncount adds its
//     tuple before counting), so `--connlimit-above 2` refuses the third;
//   - it matches when count > limit, XOR the invert flag: --connlimit-upto N
//     is the inverted --connlimit-above N, and `!` swaps them (libxt_connlimit
//     prints the result as the other option, as iptables-save does);
//   - the kernel hot-drops when it cannot store the tuple (kmalloc): here a
//     full counter (which the sizing rules out) does the same.
// The rule set is refused when conntrack is off (`--no-conntrack`): the
// kernel loads conntrack for a connlimit rule, and without it nothing ends
// a count.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

#include "conntrack/conncount.h"
#include "conntrack/conntrack.h"
#include "extensions/state.h"

namespace flatwall {
namespace ext {

// The state payload after StateHeader, then the rule key.
struct ConnlimitConfig {
  uint32_t family;   // 4 or 6
  uint32_t mask[4];  // host order; IPv4 in word 0
};
static_assert(sizeof(ConnlimitConfig) == 20, "connlimit config layout");

enum ConnlimitFlags : uint8_t { kConnlimitDaddr = 1, kConnlimitInvert = 2 };

class ConnlimitState final : public State {
 public:
  // Throws std::invalid_argument when no counter is free.
  ConnlimitState(std::string key, std::string config, std::shared_ptr<ct::ConnCount> counts, const ConnlimitConfig& c)
        : State(std::move(key), std::move(config)), counts_(std::move(counts)), family_(uint8_t(c.family)) {
    id_ = counts_->Open(family_, c.mask);
    if (!id_)
      throw std::invalid_argument("more than " + std::to_string(ct::ConnCount::kMaxCounters) +
                                  " -m connlimit rules at once");
  }
  ~ConnlimitState() override { counts_->Close(id_); }
  const char* kind() const override { return "connlimit"; }

  // The number of connections under `addr`'s key, the packet's own
  // included (see conntrack/conncount.h for how `ct` is tagged). 0: the
  // counter was full (the kernel's hotdrop).
  uint32_t Count(const uint32_t addr[4], ct::Result* ct) {
    uint32_t key[4];
    counts_->Mask(id_, addr, key);
    ct::Entry* e = ct ? (ct->pending ? &ct->entry : ct->found) : nullptr;
    if (!e) return counts_->Read(id_, key) + 1;  // no entry: only this packet
    // Which endpoint of the canonical key the counted address is, so the
    // release finds the same key (ct::Key keeps the two endpoints sorted).
    // Both directions of a connection can reach the rule: the kernel then
    // counts it under both addresses, and so does a tag per endpoint.
    const uint8_t tag = uint8_t(id_ | (SameAddr(e->key.a, addr) ? 0 : ct::ConnCount::kTagEndpointB));
    if (e->counted[0] == tag || e->counted[1] == tag) return counts_->Read(id_, key);  // counted already
    const bool closed = e->key.proto == 6 && (e->tcp_state == ct::kTcpTimeWait || e->tcp_state == ct::kTcpClose);
    uint8_t* slot = e->counted[0] == 0 ? &e->counted[0] : e->counted[1] == 0 ? &e->counted[1] : nullptr;
    if (closed || !slot) {
      if (!slot) counts_->CountUntagged();
      return counts_->Read(id_, key) + 1;
    }
    if (ct->pending) {  // counted when Commit inserts it
      *slot = tag;
      return counts_->Read(id_, key) + 1;
    }
    const uint32_t n = counts_->Add(id_, key);
    if (n) *slot = tag;
    return n;
  }

  // "ADDR count=N" per counted address, after a comment line with the
  // connections no rule could tag (all counters together; conncount.h).
  std::string List(uint64_t) const override {
    return "# untagged=" + std::to_string(counts_->untagged()) + "\n" + counts_->List(id_);
  }
  Stats stats() const override {
    const auto s = counts_->Stats(id_);
    return Stats{s.keys, s.capacity, 0, s.full};
  }

 private:
  bool SameAddr(const uint32_t a[4], const uint32_t addr[4]) const {
    for (int i = 0; i < (family_ == 4 ? 1 : 4); ++i)
      if (a[i] != addr[i]) return false;
    return true;
  }
  const std::shared_ptr<ct::ConnCount> counts_;  // outlives the dataplane's tables
  const uint8_t family_;
  uint8_t id_ = 0;
};

}  // namespace ext
}  // namespace flatwall
