// Per-worker counters. Each counter has exactly one writer (its worker) and
// is read by the control thread, which sums over workers.
//
// The hot path has no atomic read-modify-write and no lock: Counter::Add is
// a relaxed load plus a relaxed store of the same word, which compiles to a
// plain `add` to memory on x86 and arm64 alike (no `lock` prefix, no
// ldadd/ldxr). The std::atomic type is there only so the concurrent reader
// is not a data race in the C++ memory model; it can see a value at most one
// increment old, never a torn one. Workers' counter blocks are cache-line
// aligned and allocated separately, so no two workers write the same line.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "classifier/rule_table.h"
#include "dataplane/drop_reason.h"

namespace flatwall {

struct Counter {
  std::atomic<uint64_t> v{0};
  void Add(uint64_t n) { v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  void Inc() { Add(1); }
  uint64_t Get() const { return v.load(std::memory_order_relaxed); }
};
static_assert(sizeof(Counter) == 8, "a counter is one word");

constexpr uint32_t kMaxPorts = 8;  // 4 bump-in-the-wire pairs

struct PortCounters {
  Counter rx_packets, rx_bytes;  // frames received on the port (all of them)
  Counter tx_packets, tx_bytes;  // frames sent out of it (forwarded + REJECT answers)
  Counter drops;                 // frames received on it and not forwarded, any reason
};

struct alignas(64) WorkerCounters {
  PortCounters ports[kMaxPorts];
  Counter drops[kDropReasonCount];  // indexed by DropReason
  Counter accept, drop, reject;     // table verdicts (IP packets only)
  Counter accept_bytes, drop_bytes, reject_bytes;  // their IP bytes (per-rule convention)
  Counter reject_sent;              // REJECT answers actually sent
  Counter log_emitted, log_rate_limited, log_queue_full;
  Counter batches;  // RX bursts processed (for batch-size diagnostics)
  // Frames whose L4 header is cut short (parse.h), by outcome: judged by
  // the rules without meeting an L4 rule (their verdict is counted above),
  // hot-dropped at an L4 rule (hotdrop.h: proven, or fail closed on the
  // budget), or dropped before the rules (drop_l4_truncated). The three
  // drops are drops[kL4Truncated].
  Counter l4_truncated_judged, l4_truncated_hotdrop, l4_truncated_bound, l4_truncated_strict;
  // ICMPv6 NDP (133-137): judged by the rules, or passed by ndp_bypass.
  Counter ndp_judged, ndp_bypassed;
  Counter ct_untracked;  // IP frames a raw-table NOTRACK rule left untracked
  // IP frames that walked each hook's table (Hook: INPUT, FORWARD, OUTPUT;
  // all FORWARD unless host mode), and their IP bytes.
  Counter hook_frames[kHookCount], hook_bytes[kHookCount];
};

// Per-rule counters of one ruleset generation, for one worker: a flat
// array indexed by rule_id. Each worker's array is its own allocation.
struct RuleCounter {
  Counter packets, bytes;
};

class RuleCounterArray {
 public:
  explicit RuleCounterArray(uint32_t n) : n_(n), c_(new RuleCounter[n ? n : 1]) {}
  RuleCounter& operator[](uint32_t i) { return c_[i]; }
  const RuleCounter& operator[](uint32_t i) const { return c_[i]; }
  uint32_t size() const { return n_; }

 private:
  uint32_t n_;
  std::unique_ptr<RuleCounter[]> c_;
};

}  // namespace flatwall
