// Packet-key traces for benchmarks and tests, in the manner of ClassBench's
// trace_generator (Taylor & Turner, 2007), but fast enough for 1M-rule sets:
// O(1) per key, no per-rule preprocessing beyond one pass.
//
// Targeted mode picks a record uniformly and a point inside each of its
// ranges, biased toward the corners (lo, hi, lo+1, hi-1 and the edges of
// aligned blocks), where classifiers get boundary conditions wrong and where
// real traffic concentrates (exact ports, host addresses). The key then
// matches that record, so its first match is that record or an earlier one.
// Random mode draws every header field uniformly (protocols and interface
// ids from the set the table uses), which on an ACL mostly falls through to
// the policy: the worst case for early termination.
//
// Locality: with probability `locality`, a key repeats one of the last
// `window` keys instead, at a Pareto-distributed age (shape `pareto_a`), so
// recent headers repeat most, like ClassBench's Pareto bursts.
//
// Deterministic: the same records, n and options give the same keys on
// every platform (xoshiro256** seeded by splitmix64, no std distributions).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "classifier/packet_key.h"
#include "classifier/rule_table.h"

namespace flatwall {

struct TraceOptions {
  enum class Mode { kTargeted, kRandom };
  uint64_t seed = 1;
  Mode mode = Mode::kTargeted;
  double locality = 0.0;  // [0, 1]
  double pareto_a = 1.0;  // > 0; smaller = heavier tail of repeat ages
  uint32_t window = 1024;
};

// Parses "targeted" / "random"; false on anything else.
bool ParseTraceMode(const std::string& name, TraceOptions::Mode* mode);

std::vector<PacketKey4> MakeTrace(const RuleRecord4* records, uint32_t count, size_t n,
                                  const TraceOptions& options);
std::vector<PacketKey6> MakeTrace(const RuleRecord6* records, uint32_t count, size_t n,
                                  const TraceOptions& options);

// The PRNG the trace uses, exposed for tests and synthetic rule generators
// that must be reproducible across platforms.
class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t Next();
  uint32_t Below(uint32_t n);  // uniform in [0, n), n > 0
  double Unit();               // uniform in [0, 1)
  bool Chance(double p) { return Unit() < p; }

 private:
  uint64_t s_[4];
};

}  // namespace flatwall
