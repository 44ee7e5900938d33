// Conntrack replication for a hot standby (conntrack.h: Replication): the
// records a table publishes as its flows change, an export imported into a
// table with another hash seed (the standby's), the replayed stream on top
// of an export, malformed records refused, and Rearm's fresh timeouts.
#include <memory>
#include <vector>

#include "classifier/rule_table.h"
#include "conntrack/conntrack.h"
#include "test/ct_frames.h"
#include "test/dataplane_testing.h"

namespace flatwall {
namespace {

using cttest::Frame;
using cttest::Pkt;
using cttest::Tcp;
using cttest::Udp;
constexpr uint64_t kSec = 1000000000ull;
constexpr uint8_t FIN = 1, SYN = 2, RST = 4, ACK = 16;

ct::Config Cfg(uint32_t seed, ct::EventRing* ring = nullptr, uint32_t limit = 1024) {
  ct::Config c;
  c.limit = limit;
  c.seed = seed;
  c.events = ring;
  return c;
}

uint8_t See(ct::Table& t, const Pkt& p, uint64_t now) {
  const std::vector<uint8_t> f = Frame(p);
  ParsedFrame pf = cttest::Parse(f);
  ct::Result r;
  t.Track(f.data(), pf, 0, now, &r);
  if (r.pending && !t.Commit(r, now)) return 0xfe;
  return r.state;
}


std::vector<ct::Record> DrainAll(ct::EventRing& ring) {
  std::vector<ct::Record> v;
  ring.Drain([&v](const ct::Record& r) { v.push_back(r); }, 1u << 20);
  return v;
}

const char* A = "10.0.0.1";
const char* B = "10.0.0.2";
const char* A6 = "2001:db8::1";
const char* B6 = "2001:db8::2";

DP_TEST(CtReplicationPublishesChangesNotRefreshes) {
  auto ring = std::make_unique<ct::EventRing>();
  ct::Table t(Cfg(1, ring.get()));
  const uint64_t now = 10 * kSec;
  See(t, Tcp(A, B, 1000, 80, SYN), now);
  See(t, Tcp(A, B, 1000, 80, SYN), now);        // retransmission: no change
  See(t, Tcp(B, A, 80, 1000, SYN | ACK), now);  // SYN_RECV + seen reply
  See(t, Tcp(A, B, 1000, 80, ACK), now);        // ESTABLISHED + assured
  for (int i = 0; i < 50; ++i) See(t, Tcp(A, B, 1000, 80, ACK), now + i);  // data: refresh only
  std::vector<ct::Record> v = DrainAll(*ring);
  DP_CHECK_EQ(v.size(), 3u);
  DP_CHECK_EQ(v[0].op, uint8_t(ct::kRecNew));
  DP_CHECK_EQ(v[0].tcp_state, uint8_t(ct::kTcpSynSent));
  DP_CHECK_EQ(v[1].op, uint8_t(ct::kRecUpdate));
  DP_CHECK_EQ(v[1].tcp_state, uint8_t(ct::kTcpSynRecv));
  DP_CHECK(v[1].flags & ct::kSeenReply);
  DP_CHECK_EQ(v[2].tcp_state, uint8_t(ct::kTcpEstablished));
  DP_CHECK(v[2].flags & ct::kAssured);
  // UDP: new, then the first reply; a RST-less expiry is a destroy.
  See(t, Udp(A, B, 5000, 53), now);
  See(t, Udp(A, B, 5000, 53), now);
  See(t, Udp(B, A, 53, 5000), now);
  See(t, Udp(B, A, 53, 5000), now);
  v = DrainAll(*ring);
  DP_CHECK_EQ(v.size(), 2u);
  DP_CHECK(v[0].op == ct::kRecNew && v[1].op == ct::kRecUpdate && (v[1].flags & ct::kAssured));
  t.Gc(now + 200 * kSec, t.capacity());  // the UDP flow times out, the TCP one does not
  v = DrainAll(*ring);
  DP_CHECK_EQ(v.size(), 1u);
  DP_CHECK(v[0].op == ct::kRecDestroy && v[0].key.proto == 17);
  DP_CHECK_EQ(t.stats().repl_lost.Get(), 0u);
}

DP_TEST(CtReplicationFullRingIsCounted) {
  auto ring = std::make_unique<ct::EventRing>();
  ct::Table t(Cfg(1, ring.get(), 2 * ct::kEventRingSize));
  for (uint32_t i = 0; i < ct::kEventRingSize + 10; ++i) See(t, Udp(A, B, uint16_t(1 + i), 53), kSec);
  DP_CHECK_EQ(t.stats().repl_lost.Get(), 10u);
  DP_CHECK_EQ(DrainAll(*ring).size(), size_t(ct::kEventRingSize));
}

DP_TEST(CtExportImportRoundTripAcrossSeeds) {
  ct::Table active(Cfg(111));
  const uint64_t now = 50 * kSec;
  // An established TCP flow, one half-open, a replied UDP flow, IPv6 TCP.
  See(active, Tcp(A, B, 1000, 80, SYN), now);
  See(active, Tcp(B, A, 80, 1000, SYN | ACK), now);
  See(active, Tcp(A, B, 1000, 80, ACK), now);
  See(active, Tcp(A, B, 1001, 80, SYN), now);
  See(active, Udp(B, A, 7000, 53), now);
  See(active, Udp(A, B, 53, 7000), now);
  See(active, Tcp(A6, B6, 2000, 443, SYN), now);
  See(active, Tcp(B6, A6, 443, 2000, SYN | ACK), now);
  See(active, Tcp(A6, B6, 2000, 443, ACK), now);
  std::vector<ct::Record> dump;
  active.Export(now, &dump);
  DP_CHECK_EQ(dump.size(), 4u);

  ct::Table standby(Cfg(999));  // another seed: every hash is recomputed
  for (const ct::Record& r : dump) DP_CHECK(standby.Import(r));
  DP_CHECK_EQ(standby.size(), 4u);
  standby.Rearm(now);
  std::vector<ct::FlowView> a, b;
  active.List(ct::Filter{}, 100, now, &a);
  standby.List(ct::Filter{}, 100, now, &b);
  DP_CHECK_EQ(a.size(), b.size());
  auto same = [](const ct::FlowView& x, const ct::FlowView& y) {
    return x.family == y.family && x.proto == y.proto && std::memcmp(x.src, y.src, 16) == 0 &&
           std::memcmp(x.dst, y.dst, 16) == 0 && x.sport == y.sport && x.dport == y.dport &&
           x.tcp_state == y.tcp_state && x.seen_reply == y.seen_reply && x.assured == y.assured &&
           x.expires_in_ms == y.expires_in_ms;
  };
  for (const auto& x : a) {
    bool found = false;
    for (const auto& y : b) found |= same(x, y);
    DP_CHECK(found);
  }
  // The replica takes the flows over: mid-stream packets are ESTABLISHED in
  // both directions (they would be NEW, or INVALID with tcp_loose off, in an
  // empty table), the original direction stays the original one.
  DP_CHECK_EQ(See(standby, Tcp(A, B, 1000, 80, ACK), now + kSec), kCtEstablished);
  DP_CHECK_EQ(See(standby, Tcp(B, A, 80, 1000, ACK), now + kSec), kCtEstablished);
  DP_CHECK_EQ(See(standby, Tcp(B6, A6, 443, 2000, ACK), now + kSec), kCtEstablished);
  DP_CHECK_EQ(See(standby, Tcp(A, B, 1001, 80, SYN), now + kSec), kCtNew);  // still unreplied
  DP_CHECK_EQ(See(standby, Udp(A, B, 53, 7000), now + kSec), kCtEstablished);
  DP_CHECK_EQ(standby.size(), 4u);
  DP_CHECK_EQ(standby.stats().insert.Get(), 4u);  // nothing new was created by those packets
}

DP_TEST(CtImportReplaysStreamOverExport) {
  auto ring = std::make_unique<ct::EventRing>();
  ct::Table active(Cfg(5, ring.get()));
  const uint64_t now = kSec;
  See(active, Tcp(A, B, 1, 80, SYN), now);
  See(active, Tcp(A, B, 2, 80, SYN), now);
  // The export is taken here, but the stream is replayed from the start.
  std::vector<ct::Record> dump;
  active.Export(now, &dump);
  See(active, Tcp(B, A, 80, 1, SYN | ACK), now);
  See(active, Tcp(A, B, 1, 80, ACK), now);
  See(active, Tcp(B, A, 80, 2, RST | ACK), now);  // refused: flow 2 is deleted
  See(active, Tcp(A, B, 3, 80, SYN), now);
  ct::Table standby(Cfg(6));
  for (const ct::Record& r : dump) DP_CHECK(standby.Import(r));
  for (const ct::Record& r : DrainAll(*ring)) DP_CHECK(standby.Import(r));
  std::vector<ct::Record> a, b;
  active.Export(now, &a);
  standby.Export(now, &b);
  DP_CHECK_EQ(a.size(), 2u);
  DP_CHECK_EQ(b.size(), 2u);
  for (const auto& x : a) {
    bool found = false;
    for (const auto& y : b)
      found |= x.key == y.key && x.flags == y.flags && x.tcp_state == y.tcp_state;
    DP_CHECK(found);
  }
  // A destroy of something absent is a no-op; Clear empties quietly.
  ct::Record gone = a[0];
  gone.op = ct::kRecDestroy;
  DP_CHECK(standby.Import(gone));
  DP_CHECK(standby.Import(gone));
  DP_CHECK_EQ(standby.size(), 1u);
  standby.Clear();
  DP_CHECK_EQ(standby.size(), 0u);
  (void)FIN;
}

DP_TEST(CtImportRefusesMalformedRecords) {
  ct::Table t(Cfg(7));
  ct::Table src(Cfg(8));
  See(src, Tcp(A, B, 1, 80, SYN), kSec);
  std::vector<ct::Record> d;
  src.Export(kSec, &d);
  DP_CHECK_EQ(d.size(), 1u);
  auto bad = [&](auto mutate) {
    ct::Record r = d[0];
    mutate(r);
    return !t.Import(r);
  };
  DP_CHECK(bad([](ct::Record& r) { r.key.family = 5; }));
  DP_CHECK(bad([](ct::Record& r) { r.key.a[2] = 1; }));          // IPv4 with v6 words
  DP_CHECK(bad([](ct::Record& r) { r.tcp_state = ct::kTcpStateCount; }));
  DP_CHECK(bad([](ct::Record& r) { r.tcp_state = ct::kTcpNone; }));
  DP_CHECK(bad([](ct::Record& r) { r.flags |= ct::kUsed; }));
  DP_CHECK(bad([](ct::Record& r) { r.op = 0; }));
  DP_CHECK(bad([](ct::Record& r) { r.key.kind = 9; }));
  DP_CHECK(bad([](ct::Record& r) { r.key.proto = 17; }));         // UDP with a TCP state
  DP_CHECK_EQ(t.size(), 0u);
  DP_CHECK(t.Import(d[0]));
  DP_CHECK_EQ(t.size(), 1u);
}

DP_TEST(CtRearmGivesTheStatesTimeout) {
  ct::Table src(Cfg(1));
  See(src, Tcp(A, B, 1, 80, SYN), kSec);
  See(src, Udp(A, B, 9, 53), kSec);
  std::vector<ct::Record> d;
  src.Export(kSec, &d);
  ct::Table t(Cfg(2));
  for (const auto& r : d) t.Import(r);
  // Before Rearm the replica never ages: a GC far in the future keeps it.
  t.Gc(1000000 * kSec, t.capacity());
  DP_CHECK_EQ(t.size(), 2u);
  t.Rearm(2000 * kSec);
  std::vector<ct::FlowView> v;
  t.List(ct::Filter{}, 10, 2000 * kSec, &v);
  DP_CHECK_EQ(v.size(), 2u);
  for (const auto& f : v) DP_CHECK_EQ(f.expires_in_ms, uint64_t(f.proto == 6 ? 120 : 30) * 1000);
  t.Gc(2031 * kSec, t.capacity());  // the UDP flow's 30 s passed
  DP_CHECK_EQ(t.size(), 1u);
}

}  // namespace
}  // namespace flatwall
