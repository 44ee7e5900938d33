// -m hashlimit: a token bucket per key (source/destination address under a
// mask, ports), in a table shared by name (the kernel's
// net/netfilter/xt_hashlimit.c).
//
// Kernel semantics kept:
//   - one table per (name, family), created by the first rule that names it
//     and configured by it (htable_create from that rule's cfg); later rules
//     with the same name share it (htable_find_get);
//   - the key is what --hashlimit-mode selects (hashlimit_init_dst), the
//     addresses cut to --hashlimit-srcmask/--dstmask; port modes on a packet
//     without ports (a later fragment) hot-drop it, as hashlimit_init_dst
//     returning -1 does;
//   - a new key's bucket starts full (rateinfo_init); an entry idle for
//     --hashlimit-htable-expire ms is gone (dsthash_free after expiry);
//   - a full table (--hashlimit-htable-max entries) hot-drops the packet of
//     a new key (dsthash_alloc_init fails -> hotdrop);
//   - --hashlimit-above inverts: over the rate matches, and a packet under
//     the rate still spends its token (hashlimit_mt_common).
//
// How it is shared without locks: a fixed array of slots, open addressing
// with a bounded probe. A slot is claimed by a compare-and-swap of its state
// (empty -> writing -> live), its key words are written before it is
// published (release) and read after (acquire), and each bucket is a GCRA
// theoretical arrival time updated by compare-and-swap, as in xt_limit.h.
// An expired slot is reclaimed by the next new key whose probe passes it
// (counted as an eviction), so there is no separate garbage collector and
// memory is fixed at creation. Two workers inserting the same new key at the
// same instant may give it two slots for one expiry period; a reader that
// raced with a reclaim may spend one token of the slot's new key. Both are
// bounded and far rarer than the kernel's own jiffy rounding.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "extensions/state.h"

namespace flatwall {
namespace ext {

// Mode bits, as XT_HASHLIMIT_HASH_* (include/uapi/linux/netfilter/xt_hashlimit.h).
enum HashlimitMode : uint32_t {
  kHashDstIp = 1 << 0,
  kHashDstPort = 1 << 1,
  kHashSrcIp = 1 << 2,
  kHashSrcPort = 1 << 3,
};

// The state payload after StateHeader (little-endian), then the name.
struct HashlimitConfig {
  uint64_t interval_ps;  // per packet, or per byte in bytes mode (picoseconds)
  uint64_t burst;        // packets, or bytes in bytes mode
  uint32_t mode;         // HashlimitMode
  uint32_t max;          // entries (htable-max)
  uint32_t expire_ms;
  uint32_t gc_ms;        // accepted; reclaiming is lazy (see above)
  uint8_t srcmask, dstmask;
  uint8_t family;        // 4 or 6
  uint8_t bytes;         // bytes mode
};
static_assert(sizeof(HashlimitConfig) == 40, "hashlimit config layout");

struct HashKey {
  uint32_t src[4] = {0, 0, 0, 0};
  uint32_t dst[4] = {0, 0, 0, 0};
  uint16_t sport = 0, dport = 0;
};

class HashlimitState final : public State {
 public:
  HashlimitState(std::string key, std::string config, const HashlimitConfig& cfg);
  const char* kind() const override { return "hashlimit"; }

  // Result of one packet.
  enum Result { kUnder, kOver, kHotdrop };
  Result Take(const HashKey& k, uint32_t len, uint64_t now_ns);

  const HashlimitConfig& cfg() const { return cfg_; }
  std::string List(uint64_t now_ns) const override;
  Stats stats() const override;

 private:
  struct Slot {
    std::atomic<uint32_t> state{0};  // 0 empty, 1 being written, 2 live
    std::atomic<uint32_t> hash{0};
    std::atomic<uint32_t> key[9];
    std::atomic<uint64_t> tat{0};
    std::atomic<uint64_t> last_ns{0};
  };
  static constexpr uint32_t kProbe = 32;

  bool KeyEquals(const Slot& s, const uint32_t w[9]) const;
  void Publish(Slot& s, uint32_t h, const uint32_t w[9], uint64_t now_ns);
  bool Spend(Slot& s, uint64_t cost_ns, uint64_t now_ns);

  const HashlimitConfig cfg_;
  uint64_t capacity_ns_ = 0;  // burst * interval: the bucket's depth in time
  uint64_t packet_ns_ = 0;    // interval of one packet (packet mode)
  uint32_t mask_ = 0;
  std::unique_ptr<Slot[]> slots_;
  std::atomic<uint64_t> evictions_{0}, full_{0};
  std::atomic<uint32_t> used_{0};  // slots ever claimed from empty
};

}  // namespace ext
}  // namespace flatwall
