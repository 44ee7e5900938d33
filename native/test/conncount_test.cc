// -m connlimit's counting (conntrack/conncount.h, extensions/xt_connlimit.h)
// against a real conntrack table under an injected clock: a count includes
// the packet's own connection, a dropped opening leaves nothing behind,
// TIME_WAIT/CLOSE, RST, expiry and flush end a count, a closed counter's
// id is reused only when its last tagged entry is gone, masks and IPv6.
#include "conntrack/conncount.h"

#include <memory>

#include "extensions/xt_connlimit.h"
#include "test/ct_frames.h"
#include "test/dataplane_testing.h"

namespace flatwall {
namespace {

using cttest::Frame;
using cttest::Pkt;
constexpr uint64_t kSec = 1000000000ull;
constexpr uint8_t FIN = 1, SYN = 2, RST = 4, ACK = 16;

struct Lab {
  std::shared_ptr<ct::ConnCount> counts = std::make_shared<ct::ConnCount>(64);
  std::unique_ptr<ct::Table> table;
  Lab() {
    ct::Config c;
    c.limit = 64;
    c.seed = 7;
    c.conncount = counts.get();
    table = std::make_unique<ct::Table>(c);
  }
  std::unique_ptr<ext::ConnlimitState> Rule(uint8_t family, uint32_t plen, const char* key = "r") {
    ext::ConnlimitConfig c{family, {0, 0, 0, 0}};
    for (uint32_t i = 0; i < 4; ++i) {
      const uint32_t bits = plen > 32 * i ? std::min<uint32_t>(32, plen - 32 * i) : 0;
      c.mask[i] = bits ? uint32_t(0xffffffffull << (32 - bits)) : 0;
    }
    return std::make_unique<ext::ConnlimitState>(key, "", counts, c);
  }
  // One packet through conntrack and `rule` (keyed on its source); the
  // packet is accepted (its new flow committed) when `accept`.
  uint32_t See(ext::ConnlimitState& rule, const Pkt& p, uint64_t now, bool accept = true) {
    const std::vector<uint8_t> f = Frame(p);
    ParsedFrame pf = cttest::Parse(f);
    ct::Result r;
    table->Track(f.data(), pf, 0, now, &r);
    uint32_t addr[4] = {0, 0, 0, 0};
    if (pf.cls == FrameClass::kIPv4) addr[0] = pf.key4.src;
    else std::memcpy(addr, pf.key6.src, 16);
    const uint32_t n = rule.Count(addr, &r);
    if (accept && r.pending) DP_CHECK(table->Commit(r, now));
    return n;
  }
};

Pkt Tcp(const char* s, uint16_t sp, uint8_t flags, const char* d = "10.0.2.1", uint16_t dp = 22) {
  Pkt p;
  p.src = s, p.dst = d, p.proto = 6, p.sport = sp, p.dport = dp, p.flags = flags;
  return p;
}

DP_TEST(ConnlimitCountsOpenConnectionsIncludingItsOwn) {
  Lab lab;
  auto rule = lab.Rule(4, 32);
  DP_CHECK_EQ(lab.See(*rule, Tcp("10.0.1.1", 1000, SYN), kSec), 1u);
  DP_CHECK_EQ(lab.See(*rule, Tcp("10.0.1.1", 1001, SYN), kSec), 2u);
  // A retransmitted SYN of the first connection is still one connection.
  DP_CHECK_EQ(lab.See(*rule, Tcp("10.0.1.1", 1000, SYN), kSec), 2u);
  // Another source has its own count.
  DP_CHECK_EQ(lab.See(*rule, Tcp("10.0.1.2", 1000, SYN), kSec), 1u);
  // A refused opening (the rule's REJECT) is counted for its own packet only.
  DP_CHECK_EQ(lab.See(*rule, Tcp("10.0.1.1", 1002, SYN), kSec, false), 3u);
  DP_CHECK_EQ(lab.See(*rule, Tcp("10.0.1.1", 1003, SYN), kSec, false), 3u);
  DP_CHECK_EQ(lab.counts->Stats(1).connections, 3u);
}

DP_TEST(ConnlimitForgetsClosedResetAndExpiredConnections) {
  Lab lab;
  auto rule = lab.Rule(4, 32);
  const char* c = "10.0.1.1";
  lab.See(*rule, Tcp(c, 1000, SYN), kSec);
  lab.See(*rule, Tcp(c, 1001, SYN), kSec);
  lab.See(*rule, Tcp(c, 1002, SYN), kSec);
  DP_CHECK_EQ(lab.counts->Stats(1).connections, 3u);
  // 1000: handshake, then FIN both ways and the last ACK: TIME_WAIT.
  Pkt synack = Tcp("10.0.2.1", 22, SYN | ACK, c, 1000);
  ct::Result r;
  auto track = [&](const Pkt& p, uint64_t now) {
    const std::vector<uint8_t> f = Frame(p);
    ParsedFrame pf = cttest::Parse(f);
    lab.table->Track(f.data(), pf, 0, now, &r);
  };
  track(synack, kSec);
  track(Tcp(c, 1000, ACK), kSec);
  track(Tcp(c, 1000, FIN | ACK), kSec);
  track(Tcp("10.0.2.1", 22, FIN | ACK, c, 1000), kSec);
  track(Tcp(c, 1000, ACK), kSec);
  DP_CHECK_EQ(lab.counts->Stats(1).connections, 2u);  // TIME_WAIT counts no more
  // 1001: refused by the server (a RST as the only answer deletes it).
  track(Tcp("10.0.2.1", 22, RST | ACK, c, 1001), kSec);
  DP_CHECK_EQ(lab.counts->Stats(1).connections, 1u);
  // 1002: its SYN_SENT timeout (120 s) passes; the GC sweep removes it.
  lab.table->Gc(200 * kSec, 1 << 20);
  DP_CHECK_EQ(lab.counts->Stats(1).connections, 0u);
  DP_CHECK_EQ(lab.counts->Stats(1).keys, 0u);
  DP_CHECK_EQ(lab.See(*rule, Tcp(c, 1003, SYN), 201 * kSec), 1u);
  // Flushing the table ends every count.
  DP_CHECK_EQ(lab.table->Flush(ct::Filter{}), size_t(1));
  DP_CHECK_EQ(lab.counts->Stats(1).connections, 0u);
}

DP_TEST(ConnlimitMasksAndTwoRulesPerConnection) {
  Lab lab;
  auto per24 = lab.Rule(4, 24, "a");
  auto per32 = lab.Rule(4, 32, "b");
  auto third = lab.Rule(4, 32, "c");
  for (uint16_t i = 0; i < 3; ++i) {
    const char* src = i == 0 ? "10.0.1.1" : i == 1 ? "10.0.1.2" : "10.0.1.3";
    const std::vector<uint8_t> f = Frame(Tcp(src, 1000, SYN));
    ParsedFrame pf = cttest::Parse(f);
    ct::Result r;
    lab.table->Track(f.data(), pf, 0, kSec, &r);
    const uint32_t addr[4] = {pf.key4.src, 0, 0, 0};
    DP_CHECK_EQ(per24->Count(addr, &r), uint32_t(i + 1));  // one /24
    DP_CHECK_EQ(per32->Count(addr, &r), 1u);
    DP_CHECK_EQ(third->Count(addr, &r), 1u);  // no third tag: its own packet only
    DP_CHECK(lab.table->Commit(r, kSec));
  }
  DP_CHECK_EQ(lab.counts->untagged(), 3u);
  DP_CHECK_EQ(lab.counts->Stats(1).keys, 1u);
  DP_CHECK_EQ(lab.counts->Stats(2).keys, 3u);
  DP_CHECK_EQ(lab.counts->List(1), std::string("10.0.1.0 count=3\n"));
  DP_CHECK_EQ(per24->List(0), std::string("# untagged=3\n10.0.1.0 count=3\n"));
}

DP_TEST(ConnlimitCountsAnExistingConnectionFromItsFirstPacketAtTheRule) {
  Lab lab;
  auto rule = lab.Rule(4, 32);
  // Opened while no connlimit rule saw it (an earlier rule accepted it).
  const std::vector<uint8_t> f = Frame(Tcp("10.0.1.1", 1000, SYN));
  ParsedFrame pf = cttest::Parse(f);
  ct::Result r;
  lab.table->Track(f.data(), pf, 0, kSec, &r);
  DP_CHECK(lab.table->Commit(r, kSec));
  const std::vector<uint8_t> sa = Frame(Tcp("10.0.2.1", 22, SYN | ACK, "10.0.1.1", 1000));
  ParsedFrame spf = cttest::Parse(sa);
  lab.table->Track(sa.data(), spf, 0, kSec, &r);
  DP_CHECK(r.found != nullptr);
  DP_CHECK_EQ(lab.counts->Stats(1).connections, 0u);
  // Its next packets reach the rule: counted once, from the first of them.
  DP_CHECK_EQ(lab.See(*rule, Tcp("10.0.1.1", 1000, ACK), kSec), 1u);
  DP_CHECK_EQ(lab.See(*rule, Tcp("10.0.1.1", 1000, ACK), kSec), 1u);
  DP_CHECK_EQ(lab.See(*rule, Tcp("10.0.1.1", 1001, SYN), kSec), 2u);
  // The reply direction counts under its own source: the server.
  DP_CHECK_EQ(lab.See(*rule, Tcp("10.0.2.1", 22, SYN | ACK, "10.0.1.1", 1001), kSec), 1u);
  DP_CHECK_EQ(lab.counts->Stats(1).keys, 2u);
  lab.table->Flush(ct::Filter{});
  DP_CHECK_EQ(lab.counts->Stats(1).connections, 0u);
}

DP_TEST(ConnlimitIpv6PrefixKey) {
  Lab lab;
  auto rule = lab.Rule(6, 64);
  Pkt a = Tcp("fd00:1::1", 1000, SYN, "fd00:2::1");
  Pkt b = Tcp("fd00:1::2:1", 1000, SYN, "fd00:2::1");
  Pkt other = Tcp("fd00:9::1", 1000, SYN, "fd00:2::1");
  DP_CHECK_EQ(lab.See(*rule, a, kSec), 1u);
  DP_CHECK_EQ(lab.See(*rule, b, kSec), 2u);
  DP_CHECK_EQ(lab.See(*rule, other, kSec), 1u);
  DP_CHECK(lab.counts->List(1).find("fd00:1:0:0:0:0:0:0 count=2") != std::string::npos);
}

DP_TEST(ConnlimitCounterIdIsReusedOnlyAfterItsLastConnection) {
  Lab lab;
  auto rule = lab.Rule(4, 32);
  lab.See(*rule, Tcp("10.0.1.1", 1000, SYN), kSec);
  rule.reset();  // the rule set that used it is gone; its connection lives
  auto next = lab.Rule(4, 32, "n");
  DP_CHECK_EQ(lab.See(*next, Tcp("10.0.1.1", 1001, SYN), kSec), 1u);  // a fresh count, another id
  DP_CHECK_EQ(lab.counts->Stats(1).connections, 1u);
  lab.table->Flush(ct::Filter{});
  DP_CHECK_EQ(lab.counts->Stats(1).connections, 0u);
  next.reset();
  auto again = lab.Rule(4, 32, "m");
  DP_CHECK_EQ(lab.See(*again, Tcp("10.0.1.1", 1002, SYN), kSec), 1u);
}

}  // namespace
}  // namespace flatwall
