// -m recent: named tables of addresses with the times they were last seen
// (the kernel's net/netfilter/xt_recent.c, revision 1 with --mask).
//
// Kernel semantics kept (recent_mt):
//   - the address is the source (--rsource, default) or destination
//     (--rdest), ANDed with the --mask of the rule that CREATED the table
//     (recent_mt_check copies it into the table, recent_mt masks with
//     t->mask): a later rule's own --mask is printed but not used. Seen on
//     Linux 6.18: with `--rcheck --mask 255.255.255.252` first and `--set`
//     (mask /32) second, the set stores 10.0.1.0 for 10.0.1.1;
//   - --rttl also compares the TTL/hop limit of the packet that was last
//     recorded;
//   - in FORWARD the TTL is taken "as seen before forwarding" (recent_mt
//     adds one when par->out is set and there is no socket);
//   - no entry: --set creates one (and matches), everything else does not
//     match; a table at ip_list_tot entries drops its least recently
//     updated entry first (recent_entry_init);
//   - --set matches and records now; --remove deletes and matches;
//     --rcheck/--update match when at least --hitcount of the remembered
//     times (ip_pkt_list_tot of them, a ring) lie within --seconds (either
//     condition alone when the other is 0); --update then records now;
//     --reap drops entries whose last time is older than --seconds;
//   - `!` inverts the result.
//
// Shape: as the kernel's recent_table, a hash of entries (chained by index)
// and an LRU list (recent_entry lru_list), so a lookup, an update, the
// eviction of the least recently updated entry and --reap are O(1).
//
// Concurrency: an entry is a ring of times that must change as a whole, so
// each table has one spin lock, held for one such O(1) step (the kernel
// holds a single lock, recent_lock, for all tables). A packet only reaches it when
// it matched everything before the recent match in its rule, which in real
// rule sets is the SSH/port-knock rule, not the bulk of traffic. This is
// the one place a packet worker can wait on another; it is documented here
// and in docs/EXTENSIONS.md.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "extensions/state.h"

namespace flatwall {
namespace ext {

// The state payload after StateHeader, then the name.
struct RecentConfig {
  uint32_t list_tot;      // entries per table (xt_recent ip_list_tot, 100)
  uint32_t pkt_list_tot;  // times per entry (ip_pkt_list_tot, 20)
  uint32_t mask[4];       // the TABLE's mask: see below
};
static_assert(sizeof(RecentConfig) == 24, "recent config layout");

enum class RecentCmd : uint8_t { kSet = 1, kRcheck = 2, kUpdate = 3, kRemove = 4 };
enum RecentFlags : uint8_t { kRecentTtl = 1, kRecentReap = 2, kRecentDest = 4 };

class RecentState final : public State {
 public:
  RecentState(std::string key, std::string config, const RecentConfig& cfg, std::string name);
  const char* kind() const override { return "recent"; }

  // One packet: `addr` as in the packet (4 words, IPv4 in word 0; the
  // table's mask is applied here), `ttl` as
  // the kernel would compare it. Returns the match's result, `invert`
  // applied (an --update records when that result is true, as recent_mt).
  bool Check(RecentCmd cmd, uint8_t flags, bool invert, uint8_t family, const uint32_t addr[4],
             uint8_t ttl, uint64_t seconds_ns, uint32_t hitcount, uint64_t now_ns);

  // As /proc/net/xt_recent/NAME (recent_seq_show), times in ns.
  std::string List(uint64_t now_ns) const override;
  Stats stats() const override;


 private:
  struct Entry {
    bool used = false;
    uint8_t family = 0, ttl = 0;
    uint32_t addr[4] = {0, 0, 0, 0};
    uint32_t nstamps = 0, index = 0;  // ring of stamps, as recent_entry
    uint64_t last = 0;                // newest stamp: --reap
    int32_t next = -1;                // hash chain
    int32_t lru_prev = -1, lru_next = -1;  // LRU list, oldest first
    uint32_t bucket = 0;
  };
  Entry* Lookup(uint8_t family, const uint32_t addr[4], uint8_t ttl, bool check_ttl);
  Entry* Insert(uint8_t family, const uint32_t addr[4], uint8_t ttl, uint64_t now_ns);
  void Record(Entry& e, uint64_t now_ns);
  void Remove(Entry& e);
  Entry* Oldest() { return lru_head_ < 0 ? nullptr : &entries_[size_t(lru_head_)]; }
  uint32_t Bucket(uint8_t family, const uint32_t addr[4]) const;
  void LruUnlink(int32_t i);
  void LruAppend(int32_t i);
  uint64_t* Stamps(const Entry& e) { return &stamps_[size_t(&e - entries_.data()) * ring_]; }
  const uint64_t* Stamps(const Entry& e) const { return &stamps_[size_t(&e - entries_.data()) * ring_]; }
  void Lock() const {
    while (lock_.exchange(true, std::memory_order_acquire)) {
      while (lock_.load(std::memory_order_relaxed)) __builtin_ia32_pause();
    }
  }
  void Unlock() const { lock_.store(false, std::memory_order_release); }

  const RecentConfig cfg_;
  const std::string name_;
  mutable std::atomic<bool> lock_{false};
  std::vector<Entry> entries_;   // list_tot of them
  uint32_t ring_ = 1;            // stamps per entry: pkt_list_tot rounded up to a power of two
  std::vector<uint64_t> stamps_; // list_tot * ring_
  uint32_t used_ = 0;
  uint64_t evictions_ = 0;
  std::vector<int32_t> heads_;   // hash buckets: first entry index, -1 empty
  std::vector<int32_t> free_;    // unused entry indexes
  int32_t lru_head_ = -1, lru_tail_ = -1;
};

}  // namespace ext
}  // namespace flatwall
