// -m limit: one token bucket per rule (the kernel's net/netfilter/xt_limit.c).
//
// The kernel keeps `credit` (capped at burst * cost), adds credit for the
// jiffies elapsed since the last packet, and matches when credit >= cost,
// spending it; the bucket starts full (xt_limit.c: limit_mt, and
// limit_mt_check: credit = credit_cap = user2credits(avg * burst)).
//
// Here the same bucket is kept as one number, the generic cell rate
// algorithm's theoretical arrival time (TAT): with T = the interval per
// packet (avg / XT_LIMIT_SCALE seconds) and tolerance tau = (burst - 1) * T,
// a packet at time t matches when TAT - t <= tau, and then TAT becomes
// max(TAT, t) + T. That accepts exactly what a token bucket of `burst`
// tokens refilled at one per T accepts, starting full. Being one 64-bit
// word, it is updated by a compare-and-swap loop, so every worker shares
// the rule's bucket without a lock. (The kernel takes a spinlock per rule;
// its clock ticks in jiffies, ours in nanoseconds, so the kernel may be off
// by one jiffy where this is exact.)
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "extensions/state.h"

namespace flatwall {
namespace ext {

class LimitState final : public State {
 public:
  LimitState(std::string key, std::string config, uint64_t interval_ns, uint32_t burst)
      : State(std::move(key), std::move(config)),
        interval_ns_(interval_ns),
        tolerance_ns_(interval_ns * (burst ? burst - 1 : 0)) {}

  const char* kind() const override { return "limit"; }

  // One packet at `now_ns`: true when it conforms (and spends a token).
  bool Take(uint64_t now_ns) {
    uint64_t tat = tat_.load(std::memory_order_relaxed);
    for (;;) {
      // A bucket that has been idle starts from now (full).
      const uint64_t base = tat > now_ns ? tat : now_ns;
      if (base - now_ns > tolerance_ns_) {
        refused_.fetch_add(1, std::memory_order_relaxed);
        return false;
      }
      if (tat_.compare_exchange_weak(tat, base + interval_ns_, std::memory_order_relaxed))
        return true;
    }
  }

  std::string List(uint64_t now_ns) const override {
    const uint64_t tat = tat_.load(std::memory_order_relaxed);
    // Tokens left: how many intervals fit between TAT and now + tau + T.
    const uint64_t horizon = now_ns + tolerance_ns_ + interval_ns_;
    const uint64_t tokens = tat >= horizon ? 0 : (horizon - (tat > now_ns ? tat : now_ns)) / interval_ns_;
    return "tokens=" + std::to_string(tokens) + " burst=" + std::to_string(tolerance_ns_ / interval_ns_ + 1) +
           " interval_ns=" + std::to_string(interval_ns_) + " refused=" +
           std::to_string(refused_.load(std::memory_order_relaxed)) + "\n";
  }
  Stats stats() const override {
    Stats s;
    s.entries = 1, s.capacity = 1;
    s.full = refused_.load(std::memory_order_relaxed);
    return s;
  }

 private:
  const uint64_t interval_ns_;
  const uint64_t tolerance_ns_;
  std::atomic<uint64_t> tat_{0};
  std::atomic<uint64_t> refused_{0};
};

}  // namespace ext
}  // namespace flatwall
