// Counting connections per address: the state behind -m connlimit (the
// kernel's net/netfilter/nf_conncount.c, which xt_connlimit.c calls).
//
// What the kernel does
//   nf_conncount keeps, per rule, a tree of keys (the packet's source or
//   destination address ANDed with --connlimit-mask) and under each key the
//   list of conntrack tuples that rule has seen. A count walks the list:
//   tuples whose conntrack is gone, or a TCP one in TIME_WAIT or CLOSE
//   (already_closed), are dropped; the packet's own tuple is added if it is
//   not there yet; the count is the list's length. So a connection is
//   counted by a rule from the first of its packets that reached the rule's
//   connlimit match until it closes or expires.
//
// What flatwall does instead of walking lists
//   The connection table itself says when a counted connection ends. Each
//   conntrack entry has two tag bytes (ct::Entry::counted): a tag names the
//   counter (the connlimit rule) that counted the entry and which endpoint
//   of the canonical key gave the counted address. A counter is a hash of
//   masked address -> number of tagged live entries. So:
//     - a packet of an entry not yet tagged by the counter adds 1 and tags
//       the entry (the kernel's list add);
//     - a NEW flow's entry does not exist yet (it is inserted when its packet
//       is accepted, ct::Table::Commit): the count includes it, and the tag
//       is written into the pending entry, so the 1 is added at Commit. A
//       dropped packet leaves no count behind (the kernel's unconfirmed
//       tuple is evicted by its next walk: the same result);
//     - an entry leaves every counter that tagged it when conntrack removes
//       it (expiry, GC, RST, eviction, flush, delete) or when TCP reaches
//       TIME_WAIT or CLOSE (already_closed);
//     - a packet without an entry (UNTRACKED, INVALID) counts itself once,
//       as the kernel's tuple that is never confirmed.
//   A count is then one hash lookup, not a walk.
//
// Limits (documented in docs/EXTENSIONS.md)
//   - an entry carries two tags: a connection counted by more than two
//     connlimit rules is counted by the third and later only for its own
//     packet (counted in `untagged`);
//   - 127 counters per dataplane at a time; a rule set that needs more is
//     refused;
//   - an expired connection leaves its counters when conntrack removes it
//     (the lookup that meets it or the GC sweep), not at the instant it
//     expires.
//
// Memory and threads
//   A counter holds as many keys as conntrack holds entries (a key is
//   counted only while a live entry carries its tag, so keys <= entries), up
//   to 2^20 keys: preallocated when the counter opens, so the hot path never
//   allocates, and below a conntrack limit of 2^20 never finds a counter
//   full. Above it, a new key in a full counter is the kernel's hotdrop
//   (counted as `refused`). Each counter has one spin
//   lock held for one O(1) step (add, release, read): connlimit rules are
//   reached by connection openings, not by the bulk of packets. Counters
//   are opened and closed by the control thread; a closed counter keeps
//   counting down until its last tagged entry is gone, and only then can
//   its id be given to a new rule, so an old tag never lands in a new count.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace flatwall {
namespace ct {

struct Entry;

class ConnCount {
 public:
  static constexpr uint32_t kMaxCounters = 127;
  static constexpr uint8_t kTagEndpointB = 0x80;  // tag bit: the counted address is endpoint B
  static constexpr uint8_t kTagIdMask = 0x7f;

  // `conntrack_max`: the conntrack limit of all workers. A counter holds
  // that many keys, at most kMaxKeys (32 MiB per counter).
  static constexpr uint32_t kMaxKeys = 1u << 20;
  explicit ConnCount(uint32_t conntrack_max)
      : capacity_(conntrack_max == 0 ? 1 : conntrack_max < kMaxKeys ? conntrack_max : kMaxKeys) {}
  ConnCount(const ConnCount&) = delete;
  ConnCount& operator=(const ConnCount&) = delete;

  // Control thread. A new counter of `family` whose keys are addresses
  // ANDed with `mask` (4 words, host order; IPv4 in word 0): its id 1..127,
  // or 0 when all are in use.
  uint8_t Open(uint8_t family, const uint32_t mask[4]);
  // No rule uses counter `id` any more (its tags still count down).
  void Close(uint8_t id);

  // Packet workers. The masked address of `addr` for counter `id`.
  void Mask(uint8_t id, const uint32_t addr[4], uint32_t out[4]) const;
  // The number of live entries counter `id` has counted under `key`.
  uint32_t Read(uint8_t id, const uint32_t key[4]) const;
  // Counts one more entry under `key`: the new count, or 0 when the
  // counter is full (see Memory above).
  uint32_t Add(uint8_t id, const uint32_t key[4]);
  // Conntrack removes an entry, or it closes: every counter that tagged it
  // counts it no more, and its tags are cleared.
  void Release(Entry* e);
  // A committed entry: the counts its pending tags stand for.
  void Acquire(Entry* e);

  // For listings and metrics (control thread).
  struct CounterStats {
    uint64_t keys = 0, connections = 0, capacity = 0, full = 0;
  };
  CounterStats Stats(uint8_t id) const;
  std::string List(uint8_t id) const;  // "ADDR count" lines
  uint64_t untagged() const { return untagged_.load(std::memory_order_relaxed); }
  void CountUntagged() { untagged_.fetch_add(1, std::memory_order_relaxed); }

 private:
  struct Node {
    uint32_t key[4];
    uint32_t count;
    int32_t next;  // hash chain, or the free list
  };
  struct Counter {
    mutable std::atomic<bool> lock{false};
    bool open = false;       // a rule uses it
    uint8_t family = 0;
    uint32_t mask[4] = {0, 0, 0, 0};
    uint64_t connections = 0;  // sum of counts: 0 = no tag left anywhere
    uint64_t keys = 0, full = 0;
    std::vector<Node> nodes;
    std::vector<int32_t> heads;
    int32_t free_head = -1;
    void Lock() const {
      while (lock.exchange(true, std::memory_order_acquire)) {
        while (lock.load(std::memory_order_relaxed)) __builtin_ia32_pause();
      }
    }
    void Unlock() const { lock.store(false, std::memory_order_release); }
    uint32_t Bucket(const uint32_t key[4]) const;
    int32_t* Link(const uint32_t key[4]);  // the link that holds key's node, or the chain's end
  };
  void Drop(uint8_t id, const uint32_t key[4]);
  void EndpointKey(uint8_t tag, const Entry& e, uint32_t out[4]) const;

  const uint32_t capacity_;
  std::mutex control_;  // Open/Close
  Counter counters_[kMaxCounters + 1];  // [0] unused: a tag of 0 is no tag
  std::atomic<uint64_t> untagged_{0};
};

}  // namespace ct
}  // namespace flatwall
