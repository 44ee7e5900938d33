#include "extensions/xt_hashlimit.h"

#include <algorithm>
#include <cstdio>

namespace flatwall {
namespace ext {
namespace {

uint32_t Mix(const uint32_t w[9]) {
  uint64_t h = 0x9e3779b97f4a7c15ull;
  for (int i = 0; i < 9; ++i) {
    h = (h ^ w[i]) * 0xff51afd7ed558ccdull;
    h ^= h >> 31;
  }
  return uint32_t(h ^ (h >> 32)) | 1;  // never 0
}

void Pack(const HashKey& k, uint32_t w[9]) {
  for (int i = 0; i < 4; ++i) w[i] = k.src[i], w[4 + i] = k.dst[i];
  w[8] = uint32_t(k.sport) << 16 | k.dport;
}

std::string Addr(const uint32_t* a, uint8_t family) {
  char buf[64];
  if (family == 4) {
    std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", a[0] >> 24, (a[0] >> 16) & 255, (a[0] >> 8) & 255,
                  a[0] & 255);
  } else {
    std::snprintf(buf, sizeof buf, "%x:%x:%x:%x:%x:%x:%x:%x", a[0] >> 16, a[0] & 0xffff, a[1] >> 16,
                  a[1] & 0xffff, a[2] >> 16, a[2] & 0xffff, a[3] >> 16, a[3] & 0xffff);
  }
  return buf;
}

}  // namespace

HashlimitState::HashlimitState(std::string key, std::string config, const HashlimitConfig& cfg)
    : State(std::move(key), std::move(config)), cfg_(cfg) {
  const uint32_t max = std::max<uint32_t>(cfg.max, 1);
  uint32_t n = 16;
  while (n < 2 * max && n < (1u << 23)) n <<= 1;  // load <= 1/2 at max
  mask_ = n - 1;
  slots_.reset(new Slot[n]);
  packet_ns_ = cfg.interval_ps / 1000;
  capacity_ns_ = (cfg.burst * cfg.interval_ps) / 1000;
}

bool HashlimitState::KeyEquals(const Slot& s, const uint32_t w[9]) const {
  for (int i = 0; i < 9; ++i)
    if (s.key[i].load(std::memory_order_relaxed) != w[i]) return false;
  return true;
}

void HashlimitState::Publish(Slot& s, uint32_t h, const uint32_t w[9], uint64_t now_ns) {
  for (int i = 0; i < 9; ++i) s.key[i].store(w[i], std::memory_order_relaxed);
  s.hash.store(h, std::memory_order_relaxed);
  s.tat.store(0, std::memory_order_relaxed);  // a new bucket is full
  s.last_ns.store(now_ns, std::memory_order_relaxed);
  s.state.store(2, std::memory_order_release);
}

// GCRA over the bucket's depth in time (see xt_limit.h): the packet
// conforms when, after paying its cost, the bucket is not past full.
bool HashlimitState::Spend(Slot& s, uint64_t cost_ns, uint64_t now_ns) {
  s.last_ns.store(now_ns, std::memory_order_relaxed);
  uint64_t tat = s.tat.load(std::memory_order_relaxed);
  for (;;) {
    const uint64_t base = tat > now_ns ? tat : now_ns;
    if (base + cost_ns - now_ns > capacity_ns_) return false;
    if (s.tat.compare_exchange_weak(tat, base + cost_ns, std::memory_order_relaxed)) return true;
  }
}

HashlimitState::Result HashlimitState::Take(const HashKey& k, uint32_t len, uint64_t now_ns) {
  uint32_t w[9];
  Pack(k, w);
  const uint32_t h = Mix(w);
  const uint64_t expire_ns = uint64_t(cfg_.expire_ms) * 1000000;
  const uint64_t cost_ns = cfg_.bytes ? (uint64_t(len) * cfg_.interval_ps) / 1000 : packet_ns_;
  Slot* reclaim = nullptr;
  for (uint32_t i = 0; i < kProbe; ++i) {
    Slot& s = slots_[(h + i) & mask_];
    uint32_t st = s.state.load(std::memory_order_acquire);
    if (st == 0) {
      // htable-max counts every entry ever claimed that was not reclaimed:
      // past it, only expired slots are reused (the kernel's count >= max).
      if (used_.load(std::memory_order_relaxed) >= cfg_.max) continue;
      if (s.state.compare_exchange_strong(st, 1, std::memory_order_acquire)) {
        used_.fetch_add(1, std::memory_order_relaxed);
        Publish(s, h, w, now_ns);
        return Spend(s, cost_ns, now_ns) ? kUnder : kOver;
      }
      // Lost the race: st is what the slot holds now.
    }
    if (st == 1) continue;  // being written: not ours to wait for
    if (s.hash.load(std::memory_order_relaxed) == h && KeyEquals(s, w)) {
      if (now_ns - s.last_ns.load(std::memory_order_relaxed) > expire_ns) {
        // Expired but found again: as the kernel, a fresh bucket.
        s.tat.store(0, std::memory_order_relaxed);
      }
      return Spend(s, cost_ns, now_ns) ? kUnder : kOver;
    }
    if (!reclaim && now_ns - s.last_ns.load(std::memory_order_relaxed) > expire_ns) reclaim = &s;
  }
  if (reclaim) {
    uint32_t live = 2;
    if (reclaim->state.compare_exchange_strong(live, 1, std::memory_order_acquire)) {
      Publish(*reclaim, h, w, now_ns);
      evictions_.fetch_add(1, std::memory_order_relaxed);
      return Spend(*reclaim, cost_ns, now_ns) ? kUnder : kOver;
    }
  }
  full_.fetch_add(1, std::memory_order_relaxed);
  return kHotdrop;
}

// One line per live entry, as /proc/net/ipt_hashlimit/NAME shows it
// (dl_seq_real_show): seconds to expiry, src:port->dst:port, then the
// bucket as tokens left, burst, and the cost of one packet (1).
std::string HashlimitState::List(uint64_t now_ns) const {
  std::string out;
  const uint64_t expire_ns = uint64_t(cfg_.expire_ms) * 1000000;
  for (uint32_t i = 0; i <= mask_; ++i) {
    const Slot& s = slots_[i];
    if (s.state.load(std::memory_order_acquire) != 2) continue;
    const uint64_t last = s.last_ns.load(std::memory_order_relaxed);
    if (now_ns - last > expire_ns) continue;
    uint32_t w[9];
    for (int j = 0; j < 9; ++j) w[j] = s.key[j].load(std::memory_order_relaxed);
    const uint64_t tat = s.tat.load(std::memory_order_relaxed);
    const uint64_t used = tat > now_ns ? tat - now_ns : 0;
    const uint64_t unit = cfg_.bytes ? std::max<uint64_t>(cfg_.interval_ps / 1000, 1) : std::max<uint64_t>(packet_ns_, 1);
    const uint64_t tokens = used >= capacity_ns_ ? 0 : (capacity_ns_ - used) / unit;
    char buf[64];
    std::snprintf(buf, sizeof buf, "%llu ", (unsigned long long)((last + expire_ns - now_ns) / 1000000000ull));
    out += buf;
    out += Addr(w, cfg_.family) + ":" + std::to_string(w[8] >> 16) + "->" + Addr(w + 4, cfg_.family) + ":" +
           std::to_string(w[8] & 0xffff) + " " + std::to_string(tokens) + " " + std::to_string(cfg_.burst) +
           " 1\n";
  }
  return out;
}

State::Stats HashlimitState::stats() const {
  Stats st;
  st.capacity = cfg_.max;
  for (uint32_t i = 0; i <= mask_; ++i)
    if (slots_[i].state.load(std::memory_order_relaxed) == 2) ++st.entries;
  st.evictions = evictions_.load(std::memory_order_relaxed);
  st.full = full_.load(std::memory_order_relaxed);
  return st;
}

}  // namespace ext
}  // namespace flatwall
