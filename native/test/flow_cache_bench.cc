// Flow cache micro-benchmark: the FORWARD walk alone vs through the flow
// cache (native/dataplane/flow_cache.h, 4096 entries), on a synthetic acl
// rule set and a 2M-packet trace whose `locality` is the share of packets
// repeating a recent key (steady flows). Not part of any build; by hand:
//
//   g++ -std=c++17 -O3 -Inative -o /tmp/fc_bench native/test/flow_cache_bench.cc
//       native/test/synth.cc native/classifier/{classifier,tuple_merge,linear,trace,table_set}.cc
//       native/dataplane/ruleset.cc
//   /tmp/fc_bench RULES LOCALITY      e.g. /tmp/fc_bench 100000 0.9
#include <chrono>
#include <cstdio>
#include <vector>
#include "classifier/trace.h"
#include "dataplane/flow_cache.h"
#include "dataplane/ruleset.h"
#include "test/dataplane_test_rules.h"
#include "test/synth.h"
using namespace flatwall;
struct V { uint64_t n = 0; void OnMatch(const RuleCommon&) { ++n; } void OnLog(const RuleCommon&) {} ext::Context cx; void OnExt() {} const ext::Context& ext_context() const { return cx; } };
double Now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
int main(int argc, char** argv) {
  const uint32_t n = argc > 1 ? atoi(argv[1]) : 100000;
  const double loc = argc > 2 ? atof(argv[2]) : 0.9;
  auto r4 = synth::Rules4(synth::Shape::kAcl, n, 1);
  uint32_t rc = 0; for (auto& r : r4) rc = std::max(rc, r.c.rule_id + 1);
  auto buf = dptest::PackForward(r4, {});
  auto rs = Ruleset::Build(buf.data(), buf.size(), {0, 0}, rc, 1);
  rs->generation = 1;
  TraceOptions o; o.seed = 3; o.locality = loc; o.window = 256;
  auto t = MakeTrace(r4.data(), uint32_t(r4.size()), 2000000, o);
  for (int rep = 0; rep < 2; ++rep) {
    V v1, v2; FlowCache c(4096);
    double t0 = Now(); uint64_t x = 0;
    for (auto& k : t) x += uintptr_t(rs->Forward(k, v1));
    double a = Now() - t0; t0 = Now();
    for (auto& k : t) x += uintptr_t(c.Forward(*rs, 1, k, v2));
    double b = Now() - t0;
    printf("rules %u locality %.2f: walk %.1f ns/pkt, cache %.1f ns/pkt (hit %.0f%%) %llu\n", n, loc, a / t.size() * 1e9, b / t.size() * 1e9,
           100.0 * c.hits() / t.size(), (unsigned long long)(x & 1));
  }
}
