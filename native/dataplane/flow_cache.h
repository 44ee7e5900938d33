// The flow cache: an exact-match, per-worker memo of the filter walk in
// front of the classifier (FORWARD; in host mode also INPUT and OUTPUT,
// with the hook in the key).
//
// Why it is correct
//   The classifier's answer is a pure function of the PacketKey (addresses,
//   ports, protocol, TCP flags, ICMP type/code, interface ids, ct_state,
//   flags) and of the rule set. An entry stores the whole key and the hook,
//   packed explicitly into 6 words (no padding bytes compared), and the generation
//   of the rule set that computed it; a lookup hits only on an equal key
//   AND the current generation, so a swap invalidates every entry at once
//   (no flush, no walk) and a verdict of old rules is never served. Because
//   ct_state is part of the key, the NEW packet of a flow and its
//   ESTABLISHED ones are different entries.
//
// What it stores, so that a hit is indistinguishable from a walk
//   The terminal record (or "no verdict") and every record the walk matched
//   on the way (LOG, COUNT, SKIP records), up to kMaxMatched: a hit replays
//   them through the same OnMatch/OnLog hooks, so per-rule counters and LOG
//   events (rate limit included) are identical. A walk that matched more
//   records is not cached. The record pointers point into the rule set of
//   the entry's generation, which is the one the worker holds while the
//   generation matches.
//
// Shape: direct-mapped, `size` (power of two) 128-byte entries, one per
// worker, no locks (the worker is its only user); insert overwrites.
// O(1) per packet: one hash of 6 words, one compare.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>

#include "classifier/packet_key.h"
#include "classifier/rule_table.h"
#include "dataplane/counters.h"
#include "extensions/ext_table.h"

namespace flatwall {

class FlowCache {
 public:
  static constexpr uint32_t kMaxMatched = 5;
  static constexpr uint32_t kWords = 6;

  // `size` entries (rounded up to a power of two); 0 disables the cache.
  explicit FlowCache(uint32_t size) {
    if (!size) return;
    uint32_t n = 1;
    while (n < size) n <<= 1;
    mask_ = n - 1;
    e_.reset(new Entry[n]);
    std::memset(static_cast<void*>(e_.get()), 0, sizeof(Entry) * n);
  }
  bool enabled() const { return e_ != nullptr; }

  // The FORWARD walk of `rs` (a Ruleset) for `key`, through the cache.
  template <typename RS, typename K, typename V>
  const RuleCommon* Forward(const RS& rs, uint64_t generation, const K& key, V& v) {
    return Filter(rs, generation, Hook::kForward, key, v);
  }

  // The walk of `hook`'s table (host mode: dataplane/host.h). The hook is
  // part of the entry's key: the same key walked through INPUT and through
  // FORWARD are two entries.
  template <typename RS, typename K, typename V>
  const RuleCommon* Filter(const RS& rs, uint64_t generation, Hook hook, const K& key, V& v) {
    if (!e_) return rs.Filter(hook, key, v);
    uint64_t w[kWords];
    Pack(key, w);
    w[1] |= uint64_t(hook) << 56;
    Entry& e = e_[Hash(w) & mask_];
    if (e.generation == generation && std::memcmp(e.key, w, sizeof w) == 0) {
      hits_.Inc();
      for (uint32_t i = 0; i < e.n; ++i) {
        v.OnMatch(*e.matched[i]);
        if (Action(e.matched[i]->action) == Action::kLog) v.OnLog(*e.matched[i]);
      }
      return e.verdict;
    }
    misses_.Inc();
    Recorder<V> rec(&v);
    const RuleCommon* verdict = rs.Filter(hook, key, rec);
    if (rec.n <= kMaxMatched) {
      std::memcpy(e.key, w, sizeof w);
      e.generation = generation;
      e.verdict = verdict;
      e.n = uint8_t(rec.n);
      std::memcpy(e.matched, rec.m, sizeof(e.matched[0]) * rec.n);
    }
    return verdict;
  }

  // Single-writer counters (the worker), readable from any thread.
  uint64_t hits() const { return hits_.Get(); }
  uint64_t misses() const { return misses_.Get(); }

 private:
  struct alignas(64) Entry {
    uint64_t key[kWords];
    uint64_t generation;  // 0 = empty (generations start at 1)
    const RuleCommon* verdict;
    const RuleCommon* matched[kMaxMatched];
    uint8_t n;
  };

  template <typename V>
  struct Recorder {
    explicit Recorder(V* vv) : v(vv) {}
    V* v;
    const RuleCommon* m[kMaxMatched];
    uint32_t n = 0;
    void OnMatch(const RuleCommon& r) {
      v->OnMatch(r);
      if (n < kMaxMatched) m[n] = &r;
      ++n;  // n > kMaxMatched: too many to cache
    }
    void OnLog(const RuleCommon& r) { v->OnLog(r); }
    // A match program ran: the walk depends on more than the key (a rate,
    // a TTL), so it is not memoized.
    void OnExt() {
      v->OnExt();
      n = kMaxMatched + 1;
    }
    const ext::Context& ext_context() const { return v->ext_context(); }
  };

  static void PackCommon(const KeyCommon& c, uint8_t family, uint64_t w[kWords]) {
    w[0] = uint64_t(c.sport) | uint64_t(c.dport) << 16 | uint64_t(c.iif) << 32 | uint64_t(c.oif) << 48;
    w[1] = uint64_t(c.icmp) | uint64_t(c.proto) << 16 | uint64_t(c.tcp_flags) << 24 |
           uint64_t(c.ct_state) << 32 | uint64_t(c.flags) << 40 | uint64_t(family) << 48;
  }
  static void Pack(const PacketKey4& k, uint64_t w[kWords]) {
    PackCommon(k.c, 4, w);
    w[2] = uint64_t(k.src) << 32 | k.dst;
    w[3] = w[4] = w[5] = 0;
  }
  static void Pack(const PacketKey6& k, uint64_t w[kWords]) {
    PackCommon(k.c, 6, w);
    w[2] = uint64_t(k.src[0]) << 32 | k.src[1];
    w[3] = uint64_t(k.src[2]) << 32 | k.src[3];
    w[4] = uint64_t(k.dst[0]) << 32 | k.dst[1];
    w[5] = uint64_t(k.dst[2]) << 32 | k.dst[3];
  }
  static uint64_t Hash(const uint64_t w[kWords]) {
    uint64_t h = 0x9e3779b97f4a7c15ull;
    for (uint32_t i = 0; i < kWords; ++i) {
      h = (h ^ w[i]) * 0xff51afd7ed558ccdull;
      h ^= h >> 29;
    }
    return h ^ (h >> 32);
  }

  std::unique_ptr<Entry[]> e_;
  uint32_t mask_ = 0;
  Counter hits_, misses_;
};

}  // namespace flatwall
