// Unit tests of the dataplane's pieces that need no interface: ring
// geometry, the log ring and its rate limit, and ruleset evaluation (LOG /
// COUNT / SKIP continuation through TableSet's Evaluate, counters, and the
// validation errors JavaScript gets).
#include <stdexcept>
#include <string>

#include "dataplane/log_ring.h"
#include "dataplane/ruleset.h"
#include "io/afpacket_port.h"
#include "test/dataplane_test_rules.h"
#include "test/dataplane_testing.h"

namespace flatwall {
namespace {

using dptest::PackForward;
using dptest::ProtoPort;
using dptest::Rule4;
using dptest::Rule6;
using dptest::Wild;

DP_TEST(RingGeometryFollowsKernelRules) {
  for (uint32_t fs : {2048u, 9000u, 69632u, 65536u + 100u, 131072u}) {
    for (uint32_t n : {1u, 16u, 100u, 256u, 1000u}) {
      const io::RingGeometry g = io::PlanRing(fs, n);
      DP_CHECK(g.frame_size >= fs);
      DP_CHECK_EQ(g.frame_size % TPACKET_ALIGNMENT, 0u);
      DP_CHECK_EQ(g.block_size % 4096, 0u);
      DP_CHECK((g.block_size & (g.block_size - 1)) == 0);  // power of two pages
      DP_CHECK(g.block_size >= g.frame_size);
      DP_CHECK_EQ(g.frame_nr, (g.block_size / g.frame_size) * g.block_nr);
      DP_CHECK(g.frame_nr >= n);
      // Never more than one block's worth of frames beyond what was asked.
      DP_CHECK(g.frame_nr - n < g.block_size / g.frame_size);
    }
  }
  // 68 KB frames: 1 MB blocks of 15 frames waste 0.4%, not 47% (128 KB
  // blocks of one frame).
  const io::RingGeometry g = io::PlanRing(io::kDefaultFrameSize, 256);
  DP_CHECK_EQ(g.block_size, 1u << 20);
  DP_CHECK_EQ(g.frame_nr, 270u);
}

DP_TEST(LogRingIsBoundedFifo) {
  auto ring = std::make_unique<LogRing>();
  LogEvent e{};
  uint32_t pushed = 0;
  for (uint32_t i = 0; i < kLogRingSize + 10; ++i) {
    e.rule_id = i;
    if (ring->Push(e)) ++pushed;
  }
  DP_CHECK_EQ(pushed, kLogRingSize);
  uint32_t next = 0;
  bool ordered = true;
  const uint32_t n = ring->Drain([&](const LogEvent& x) { ordered &= x.rule_id == next++; }, 100);
  DP_CHECK_EQ(n, 100u);
  DP_CHECK(ordered);
  DP_CHECK(ring->Push(e));  // room again
  DP_CHECK_EQ(ring->Drain([](const LogEvent&) {}, 1u << 20), kLogRingSize - 100 + 1);
}

DP_TEST(TokenBucketLimitsRate) {
  TokenBucket b;
  b.Configure(10);  // 10/s, burst 10
  uint64_t t = 1000000000ull;
  int ok = 0;
  for (int i = 0; i < 100; ++i) ok += b.Take(t);
  DP_CHECK_EQ(ok, 10);
  t += 500000000ull;  // half a second: 5 more
  ok = 0;
  for (int i = 0; i < 100; ++i) ok += b.Take(t);
  DP_CHECK_EQ(ok, 5);
  b.Configure(0);  // 0: nothing after the single-token burst
  ok = 0;
  for (int i = 0; i < 10; ++i) ok += b.Take(t + uint64_t(i) * 1000000000ull);
  DP_CHECK_EQ(ok, 1);
}

struct Recorder {
  std::vector<uint32_t> matched, logged;
  void OnMatch(const RuleCommon& r) { matched.push_back(r.rule_id); }
  void OnLog(const RuleCommon& r) { logged.push_back(r.rule_id); }
  ext::Context cx;
  void OnExt() {}
  const ext::Context& ext_context() const { return cx; }
};

DP_TEST(RulesetWalksNonTerminalRecords) {
  // 0: LOG tcp:80 -> continue at 2 (skipping 1)
  // 1: DROP tcp:80 (skipped by the LOG's continue index)
  // 2: COUNT udp:53 -> 3
  // 3: SKIP udp:53 -> 5 (RETURN past 4)
  // 4: DROP udp (skipped for udp:53 by the SKIP)
  // 5: REJECT tcp:80 tcp-reset
  // 6: ACCEPT (policy)
  std::vector<RuleRecord4> v4 = {
      Rule4(ProtoPort(Wild(10, Action::kLog, 2), 6, 80)),
      Rule4(ProtoPort(Wild(11, Action::kDrop), 6, 80)),
      Rule4(ProtoPort(Wild(12, Action::kCount, 3), 17, 53)),
      Rule4(ProtoPort(Wild(13, Action::kSkip, 5), 17, 53)),
      Rule4([] { auto c = Wild(14, Action::kDrop); c.proto_lo = c.proto_hi = 17; return c; }()),
      Rule4(ProtoPort(Wild(15, Action::kReject, uint32_t(RejectWith::kTcpReset)), 6, 80)),
      Rule4(Wild(16, Action::kAccept)),
  };
  std::vector<RuleRecord6> v6 = {Rule6(Wild(20, Action::kDrop))};
  const auto buf = PackForward(v4, v6);
  auto rs = Ruleset::Build(buf.data(), buf.size(), {1, 2}, 21, 2);
  DP_CHECK_EQ(rs->records4(), 7u);
  DP_CHECK_EQ(rs->iface_id(1), 2);

  PacketKey4 k;
  k.c.proto = 6, k.c.dport = 80, k.c.flags = kKeyHasL4;
  Recorder r;
  const RuleCommon* v = rs->Forward(k, r);
  DP_CHECK(v && v->rule_id == 15 && Action(v->action) == Action::kReject);
  DP_CHECK((r.matched == std::vector<uint32_t>{10, 15}));
  DP_CHECK((r.logged == std::vector<uint32_t>{10}));

  k.c.proto = 17, k.c.dport = 53;
  Recorder u;
  v = rs->Forward(k, u);
  DP_CHECK(v && v->rule_id == 16);
  DP_CHECK((u.matched == std::vector<uint32_t>{12, 13, 16}));

  k.c.dport = 54;  // udp, not 53: the DROP at 4
  Recorder d;
  v = rs->Forward(k, d);
  DP_CHECK(v && v->rule_id == 14);

  // A later fragment (no kKeyHasL4) never matches port rules.
  PacketKey4 frag;
  frag.c.proto = 6;
  Recorder f;
  v = rs->Forward(frag, f);
  DP_CHECK(v && v->rule_id == 16);

  PacketKey6 k6;
  Recorder s6;
  v = rs->Forward(k6, s6);
  DP_CHECK(v && v->rule_id == 20 && Action(v->action) == Action::kDrop);
  DP_CHECK_EQ(rs->counters(1).base->size(), 21u);
}

DP_TEST(RulesetWithoutTableAcceptsEverything) {
  const auto buf = PackForward({Rule4(Wild(0, Action::kDrop))}, {});
  auto rs = Ruleset::Build(buf.data(), buf.size(), {0, 0}, 1, 1);
  PacketKey6 k;
  Recorder r;
  const RuleCommon* v = rs->Forward(k, r);
  DP_CHECK(v && Action(v->action) == Action::kAccept);
  DP_CHECK(r.matched.empty());  // not a rule: nothing counted
}

bool Refused(const std::vector<uint8_t>& buf, uint32_t rule_count, const char* needle) {
  try {
    Ruleset::Build(buf.data(), buf.size(), {0, 0}, rule_count, 1);
  } catch (const std::invalid_argument& e) {
    if (std::string(e.what()).find(needle) != std::string::npos) return true;
    std::printf("  unexpected message: %s\n", e.what());
    return false;
  }
  return false;
}

DP_TEST(RulesetRefusesBadBuffers) {
  const auto good = PackForward({Rule4(Wild(0, Action::kLog, 1)), Rule4(Wild(1, Action::kAccept))}, {});
  DP_CHECK(!Refused(good, 2, "x"));
  DP_CHECK(Refused(std::vector<uint8_t>(good.begin(), good.begin() + 8), 2, "header"));
  auto bad = good;
  bad[0] ^= 1;
  DP_CHECK(Refused(bad, 2, "magic"));
  bad = good;
  bad.push_back(0);
  DP_CHECK(Refused(bad, 2, "total_bytes"));
  DP_CHECK(Refused(good, 1, "rule_id"));
  DP_CHECK(Refused(PackForward({Rule4(Wild(0, Action::kLog, 0)), Rule4(Wild(1, Action::kAccept))}, {}), 2,
                   "continuation index"));
  DP_CHECK(Refused(PackForward({Rule4(ProtoPort(Wild(0, Action::kAccept), 6, 80))}, {}), 2, "last record"));
  auto oob = good;
  TableDesc d;
  std::memcpy(&d, oob.data() + sizeof(TableSetHeader), sizeof d);
  d.count = 1000;
  std::memcpy(oob.data() + sizeof(TableSetHeader), &d, sizeof d);
  DP_CHECK(Refused(oob, 2, "outside the record area"));
}

}  // namespace
}  // namespace flatwall
