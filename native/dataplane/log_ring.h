// LOG events: a fixed-size single-producer single-consumer ring per worker,
// and the token bucket that rate-limits what goes into it. The same ring
// carries the conntrack changes a hot standby replicates
// (conntrack.h: Replication).
//
// The worker (producer) never blocks and never allocates: an event that
// finds the bucket empty or the ring full is counted (log_rate_limited /
// log_queue_full) and forgotten. The control thread (consumer, from
// dp.pollLogs()) drains the rings. The ring indices are the only shared
// words: one release store per push by the producer, one per pop batch by
// the consumer; plain moves on x86, no read-modify-write.
#pragma once

#include <atomic>
#include <cstdint>

namespace flatwall {

struct LogEvent {
  uint64_t ts_ns;      // receive time, CLOCK_REALTIME
  uint32_t rule_id;
  uint32_t len;        // IP packet length
  uint32_t src[4];     // IPv4: src[0]; IPv6: 4 words, most significant first
  uint32_t dst[4];
  uint16_t sport, dport;
  uint16_t icmp;       // type << 8 | code
  uint8_t family;      // 4 or 6
  uint8_t proto;
  uint8_t iif, oif;    // port indexes
  uint8_t tcp_flags;
  uint8_t fragment;    // 1 for a later fragment (no ports)
};

template <typename T, uint32_t N>
class SpscRing {
  static_assert((N & (N - 1)) == 0, "power of two");

 public:
  bool Push(const T& e) {
    const uint32_t h = head_.load(std::memory_order_relaxed);
    if (h - tail_.load(std::memory_order_acquire) == N) return false;
    slots_[h & (N - 1)] = e;
    head_.store(h + 1, std::memory_order_release);
    return true;
  }
  // Consumer side; one consumer at a time (the caller serialises).
  template <typename F>
  uint32_t Drain(F&& f, uint32_t max) {
    const uint32_t t = tail_.load(std::memory_order_relaxed);
    const uint32_t h = head_.load(std::memory_order_acquire);
    uint32_t n = h - t;
    if (n > max) n = max;
    for (uint32_t i = 0; i < n; ++i) f(slots_[(t + i) & (N - 1)]);
    tail_.store(t + n, std::memory_order_release);
    return n;
  }

 private:
  alignas(64) std::atomic<uint32_t> head_{0};
  alignas(64) std::atomic<uint32_t> tail_{0};
  alignas(64) T slots_[N];
};

constexpr uint32_t kLogRingSize = 1024;  // per worker
using LogRing = SpscRing<LogEvent, kLogRingSize>;

// Token bucket over a caller-supplied clock (the batch timestamp): `rate`
// events per second, bursts up to one second's worth (at least 1).
class TokenBucket {
 public:
  void Configure(double rate_per_sec) {
    rate_ = rate_per_sec > 0 ? rate_per_sec : 0;
    burst_ = rate_ > 1 ? rate_ : 1;
    tokens_ = burst_;
    last_ns_ = 0;
  }
  bool Take(uint64_t now_ns) {
    if (last_ns_ == 0) last_ns_ = now_ns;
    if (now_ns > last_ns_) {
      tokens_ += double(now_ns - last_ns_) * 1e-9 * rate_;
      if (tokens_ > burst_) tokens_ = burst_;
      last_ns_ = now_ns;
    }
    if (tokens_ < 1) return false;
    tokens_ -= 1;
    return true;
  }

 private:
  double rate_ = 0, burst_ = 1, tokens_ = 0;
  uint64_t last_ns_ = 0;
};

}  // namespace flatwall
