// Synthetic rule sets for the native tests and the bench driver. Not a
// ClassBench port: a small model with the properties that matter to a
// classifier (ClassBench acl1-like prefix-length mix, clustered addresses so
// buckets collide as in real sets, exact and range ports), plus shapes built
// to hurt: wildcard-heavy, arbitrary overlapping ranges, every prefix-length
// pair, IPv6.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "classifier/rule_table.h"

namespace flatwall {
namespace synth {

enum class Shape {
  kAcl,          // ClassBench acl1-like
  kWildcard,     // fw-like: most fields wildcards, the rest arbitrary ranges
  kAdversarial,  // wildcard-heavy, all prefix-length pairs, overlapping ranges
  kPortRanges,   // identical addresses, thousands of overlapping port ranges
  kExtras,       // tcp flags, icmp, interfaces, ct masks, needs-L4, SKIP/LOG
};

bool ParseShape(const std::string& name, Shape* shape);
const char* ShapeName(Shape shape);

// `count` records, the last one a catch-all policy (so the result is a valid
// table). Deterministic in (shape, count, seed).
std::vector<RuleRecord4> Rules4(Shape shape, uint32_t count, uint64_t seed);
std::vector<RuleRecord6> Rules6(Shape shape, uint32_t count, uint64_t seed);

// A catch-all record with the given terminal action.
RuleRecord4 CatchAll4(Action action);
RuleRecord6 CatchAll6(Action action);

}  // namespace synth
}  // namespace flatwall
