// Connection tracking: state machine transitions, RELATED through ICMP and
// ICMPv6 errors (and malformed quoted headers, from exactly-sized heap
// copies so ASan sees any overread), table-full early drop and insert
// failure, timeouts and GC under an injected clock, control operations.
#include "conntrack/conntrack.h"

#include <atomic>
#include <memory>

#include "classifier/rule_table.h"
#include "test/ct_frames.h"
#include "test/dataplane_testing.h"

namespace flatwall {
namespace {

using cttest::Frame;
using cttest::Pkt;
using cttest::Tcp;
using cttest::Udp;
using cttest::Icmp;
constexpr uint64_t kSec = 1000000000ull;
constexpr uint8_t FIN = 1, SYN = 2, RST = 4, ACK = 16;

ct::Config Cfg(uint32_t limit = 1024) {
  ct::Config c;
  c.limit = limit;
  c.seed = 12345;
  return c;
}

// Tracks one packet; commits a new flow (as an accepting ruleset would).
uint8_t See(ct::Table& t, const Pkt& p, uint64_t now, bool commit = true, uint8_t zone = 0) {
  const std::vector<uint8_t> f = Frame(p);
  ParsedFrame pf = cttest::Parse(f);
  if (pf.cls == FrameClass::kNdp) pf.cls = FrameClass::kIPv6;  // judged, as the dataplane does
  if (pf.cls != FrameClass::kIPv4 && pf.cls != FrameClass::kIPv6) return 0xff;
  ct::Result r;
  t.Track(f.data(), pf, zone, now, &r);
  if (commit && r.pending && !t.Commit(r, now)) return 0xfe;
  return r.state;
}

uint8_t SeeFrame(ct::Table& t, const std::vector<uint8_t>& frame, uint64_t now) {
  // An exactly-sized heap copy: any read past the end is an ASan report.
  std::unique_ptr<uint8_t[]> copy(new uint8_t[frame.size()]);
  std::memcpy(copy.get(), frame.data(), frame.size());
  ParsedFrame pf;
  ParseFrame(copy.get(), uint32_t(frame.size()), false, &pf);
  if (pf.cls != FrameClass::kIPv4 && pf.cls != FrameClass::kIPv6) return 0xff;
  ct::Result r;
  t.Track(copy.get(), pf, 0, now, &r);
  return r.state;
}


uint8_t StateOf(ct::Table& t, uint64_t now) {
  std::vector<ct::FlowView> v;
  t.List(ct::Filter{}, 10, now, &v);
  return v.size() == 1 ? v[0].tcp_state : 0xff;
}

const char* A = "10.0.0.1";
const char* B = "10.0.0.2";

DP_TEST(CtTcpHandshakeAndClose) {
  ct::Table t(Cfg());
  uint64_t now = 100 * kSec;
  DP_CHECK_EQ(See(t, Tcp(A, B, 1234, 80, SYN), now), kCtNew);
  DP_CHECK_EQ(StateOf(t, now), uint8_t(ct::kTcpSynSent));
  DP_CHECK_EQ(See(t, Tcp(A, B, 1234, 80, SYN), now), kCtNew);  // retransmission: still NEW
  DP_CHECK_EQ(See(t, Tcp(B, A, 80, 1234, SYN | ACK), now), kCtEstablished);
  DP_CHECK_EQ(StateOf(t, now), uint8_t(ct::kTcpSynRecv));
  DP_CHECK_EQ(See(t, Tcp(A, B, 1234, 80, ACK), now), kCtEstablished);
  DP_CHECK_EQ(StateOf(t, now), uint8_t(ct::kTcpEstablished));
  std::vector<ct::FlowView> v;
  t.List(ct::Filter{}, 10, now, &v);
  DP_CHECK(v.size() == 1 && v[0].assured && v[0].seen_reply && v[0].sport == 1234 && v[0].dport == 80);
  DP_CHECK_EQ(v[0].expires_in_ms, uint64_t(432000) * 1000);
  DP_CHECK_EQ(See(t, Tcp(A, B, 1234, 80, SYN), now), kCtEstablished);  // sIG: ignored, no change
  DP_CHECK_EQ(StateOf(t, now), uint8_t(ct::kTcpEstablished));
  DP_CHECK_EQ(See(t, Tcp(A, B, 1234, 80, FIN | ACK), now), kCtEstablished);
  DP_CHECK_EQ(StateOf(t, now), uint8_t(ct::kTcpFinWait));
  DP_CHECK_EQ(See(t, Tcp(B, A, 80, 1234, ACK), now), kCtEstablished);
  DP_CHECK_EQ(StateOf(t, now), uint8_t(ct::kTcpCloseWait));
  DP_CHECK_EQ(See(t, Tcp(B, A, 80, 1234, FIN | ACK), now), kCtEstablished);
  DP_CHECK_EQ(StateOf(t, now), uint8_t(ct::kTcpLastAck));
  DP_CHECK_EQ(See(t, Tcp(A, B, 1234, 80, ACK), now), kCtEstablished);
  DP_CHECK_EQ(StateOf(t, now), uint8_t(ct::kTcpTimeWait));
  // A new SYN on the same tuple replaces the TIME_WAIT entry: NEW again.
  DP_CHECK_EQ(See(t, Tcp(A, B, 1234, 80, SYN), now), kCtNew);
  DP_CHECK_EQ(StateOf(t, now), uint8_t(ct::kTcpSynSent));
  DP_CHECK_EQ(t.size(), 1u);
  DP_CHECK_EQ(t.stats().insert.Get(), 2u);
}

ct::Config Strict() {
  ct::Config c = Cfg();
  c.tcp_loose = false;  // --ct-tcp-strict, nf_conntrack_tcp_loose=0
  return c;
}

DP_TEST(CtTcpRstClosesAndOutOfState) {
  ct::Table t(Strict());
  uint64_t now = 5 * kSec;
  DP_CHECK_EQ(See(t, Tcp(A, B, 1000, 80, ACK), now), kCtInvalid);      // no entry, not loose
  DP_CHECK_EQ(See(t, Tcp(B, A, 80, 1000, SYN | ACK), now), kCtInvalid);  // SYN/ACK without SYN
  DP_CHECK_EQ(See(t, Tcp(A, B, 1000, 80, FIN | ACK), now), kCtInvalid);
  DP_CHECK_EQ(See(t, Tcp(A, B, 1000, 80, RST), now), kCtInvalid);
  DP_CHECK_EQ(See(t, Tcp(A, B, 1000, 80, SYN | FIN), now), kCtInvalid);  // bad flag combination
  DP_CHECK_EQ(See(t, Tcp(A, B, 1000, 80, 0), now), kCtInvalid);          // no flags
  DP_CHECK_EQ(t.size(), 0u);
  DP_CHECK_EQ(t.stats().invalid.Get(), 6u);
  // Handshake, then a RST from the server: CLOSE, 10 s timeout.
  See(t, Tcp(A, B, 1000, 80, SYN), now);
  DP_CHECK_EQ(See(t, Tcp(A, B, 1000, 80, ACK), now), kCtInvalid);  // ACK in SYN_SENT: sIV
  See(t, Tcp(B, A, 80, 1000, SYN | ACK), now);
  See(t, Tcp(A, B, 1000, 80, ACK), now);
  DP_CHECK_EQ(See(t, Tcp(B, A, 80, 1000, RST | ACK), now), kCtEstablished);
  DP_CHECK_EQ(StateOf(t, now), uint8_t(ct::kTcpClose));
  DP_CHECK_EQ(See(t, Tcp(A, B, 1000, 80, ACK), now + 9 * kSec), kCtEstablished);  // CLOSE + ACK = CLOSE
  DP_CHECK_EQ(See(t, Tcp(A, B, 1000, 80, ACK), now + 20 * kSec), kCtInvalid);  // expired: no entry
}

// A connection refused by a RST (the only answer), or reset by its opener
// before any answer, is deleted at once, as netfilter does: the RST keeps its
// state, a retransmitted RST then finds nothing (INVALID), a new SYN is NEW.
DP_TEST(CtTcpRstAsOnlyAnswerDeletes) {
  ct::Table t(Cfg());
  const uint64_t now = 5 * kSec;
  DP_CHECK_EQ(See(t, Tcp(A, B, 2000, 80, SYN), now), kCtNew);
  DP_CHECK_EQ(See(t, Tcp(B, A, 80, 2000, RST | ACK), now), kCtEstablished);
  DP_CHECK_EQ(t.size(), 0u);
  DP_CHECK_EQ(See(t, Tcp(B, A, 80, 2000, RST | ACK), now), kCtInvalid);
  DP_CHECK_EQ(See(t, Tcp(A, B, 2000, 80, SYN), now), kCtNew);
  DP_CHECK_EQ(t.size(), 1u);
  DP_CHECK_EQ(See(t, Tcp(A, B, 2000, 80, RST), now), kCtNew);  // the opener gives up
  DP_CHECK_EQ(t.size(), 0u);
  // Once an answer was seen, a RST closes (CLOSE, 10 s) instead.
  See(t, Tcp(A, B, 2001, 80, SYN), now);
  See(t, Tcp(B, A, 80, 2001, SYN | ACK), now);
  DP_CHECK_EQ(See(t, Tcp(A, B, 2001, 80, RST), now), kCtEstablished);
  DP_CHECK_EQ(StateOf(t, now), uint8_t(ct::kTcpClose));
}

DP_TEST(CtTcpLoosePicksUpMidStreamByDefault) {
  DP_CHECK(ct::Config{}.tcp_loose);  // Linux's nf_conntrack_tcp_loose=1
  ct::Table t(Cfg());
  DP_CHECK_EQ(See(t, Tcp(A, B, 1000, 80, ACK), kSec), kCtNew);
  DP_CHECK_EQ(StateOf(t, kSec), uint8_t(ct::kTcpEstablished));
  DP_CHECK_EQ(See(t, Tcp(B, A, 80, 1000, ACK), kSec), kCtEstablished);
  DP_CHECK_EQ(See(t, Tcp(A, B, 1001, 80, SYN | ACK), kSec), kCtInvalid);  // still not a SYN/ACK
  // tcp_new picks up only what NONE + flags leads to ESTABLISHED: not FIN, RST.
  DP_CHECK_EQ(See(t, Tcp(A, B, 1002, 80, FIN | ACK), kSec), kCtInvalid);
  DP_CHECK_EQ(See(t, Tcp(A, B, 1003, 80, RST), kSec), kCtInvalid);
  DP_CHECK_EQ(See(t, Tcp(A, B, 1004, 80, ACK | 8 /* PSH */), kSec), kCtNew);
  ct::Table strict(Strict());
  DP_CHECK_EQ(See(strict, Tcp(A, B, 1000, 80, ACK), kSec), kCtInvalid);
  DP_CHECK_EQ(strict.size(), 0u);
}

// A cut-short L4 header: no conntrack in the kernel, so INVALID, and the
// table is neither read nor changed (an existing flow keeps its state).
DP_TEST(CtTruncatedL4HeaderIsInvalid) {
  ct::Table t(Cfg());
  DP_CHECK_EQ(See(t, Udp(A, B, 5000, 53), kSec), kCtNew);
  for (const Pkt& p : {Tcp(A, B, 1000, 80, SYN), Udp(A, B, 5000, 53), Icmp(A, B, 8, 7),
                       Icmp("fd00::1", "fd00::2", 128, 9), Tcp("fd00::1", "fd00::2", 1, 2, SYN)}) {
    std::vector<uint8_t> f = Frame(p);
    const bool v6 = cttest::IsV6(p.src);
    const size_t l4 = 14 + (v6 ? 40 : 20);
    f.resize(l4 + 3);  // 3 bytes of L4 header
    if (v6) {
      net::Store16(&f[14 + 4], 3);  // payload length
    } else {
      net::Store16(&f[14 + 2], 23);  // total length, then the header checksum again
      net::Store16(&f[14 + 10], 0);
      net::Store16(&f[14 + 10], net::Csum(&f[14], 20));
    }
    ParsedFrame pf;
    ParseFrame(f.data(), uint32_t(f.size()), false, &pf);
    DP_CHECK(pf.l4_truncated && (pf.cls == (v6 ? FrameClass::kIPv6 : FrameClass::kIPv4)));
    ct::Result r;
    t.Track(f.data(), pf, 0, kSec, &r);
    DP_CHECK_EQ(r.state, kCtInvalid);
    DP_CHECK(!r.pending);
  }
  DP_CHECK_EQ(t.size(), 1u);
  DP_CHECK_EQ(t.stats().invalid.Get(), 5u);
  DP_CHECK_EQ(See(t, Udp(B, A, 53, 5000), kSec), kCtEstablished);  // the flow is intact
}

// NDP judged by the rules: netfilter leaves solicitations and
// advertisements untracked (noct_valid_new); a redirect is INVALID.
DP_TEST(CtNdpUntrackedRedirectInvalid) {
  ct::Table t(Cfg());
  for (uint8_t type = 133; type <= 136; ++type)
    DP_CHECK_EQ(See(t, Icmp("fe80::1", "ff02::1", type, 0), kSec), kCtUntracked);
  DP_CHECK_EQ(See(t, Icmp("fe80::1", "fe80::2", 137, 0), kSec), kCtInvalid);
  DP_CHECK_EQ(t.size(), 0u);
  DP_CHECK_EQ(t.stats().ignore.Get(), 4u);
}

DP_TEST(CtCommitOnlyOnAccept) {
  ct::Table t(Cfg());
  DP_CHECK_EQ(See(t, Tcp(A, B, 1000, 80, SYN), kSec, /*commit=*/false), kCtNew);
  DP_CHECK_EQ(t.size(), 0u);
  DP_CHECK_EQ(See(t, Tcp(B, A, 80, 1000, SYN | ACK), kSec), kCtInvalid);  // the SYN was dropped
}

DP_TEST(CtUdpAndTimeouts) {
  ct::Config c = Cfg();
  DP_CHECK(c.timeouts.Set("udp", 20));
  DP_CHECK(!c.timeouts.Set("nope", 1));
  ct::Table t(c);
  uint64_t now = 1000 * kSec;
  DP_CHECK_EQ(See(t, Udp(A, B, 5000, 53), now), kCtNew);
  DP_CHECK_EQ(See(t, Udp(A, B, 5000, 53), now + 19 * kSec), kCtNew);  // refreshed, still unreplied
  DP_CHECK_EQ(See(t, Udp(B, A, 53, 5000), now + 38 * kSec), kCtEstablished);
  DP_CHECK_EQ(See(t, Udp(A, B, 5000, 53), now + 39 * kSec), kCtEstablished);
  std::vector<ct::FlowView> v;
  t.List(ct::Filter{}, 10, now + 39 * kSec, &v);
  DP_CHECK(v.size() == 1 && v[0].assured && v[0].expires_in_ms == 120000);
  // 121 s of silence: gone, and the next packet is NEW.
  DP_CHECK_EQ(See(t, Udp(A, B, 5000, 53), now + 160 * kSec), kCtNew);
  // Unreplied flows expire after `udp`; Gc removes them without any lookup.
  See(t, Udp(A, B, 5001, 53), now + 160 * kSec);
  DP_CHECK_EQ(t.size(), 2u);
  t.Gc(now + 181 * kSec, t.capacity());
  DP_CHECK_EQ(t.size(), 0u);
  DP_CHECK_EQ(t.stats().entries.Get(), 0u);
  DP_CHECK(t.stats().expired.Get() >= 3u);
}

DP_TEST(CtIcmpEcho) {
  ct::Table t(Cfg());
  DP_CHECK_EQ(See(t, Icmp(A, B, 0, 7), kSec), kCtInvalid);  // reply without request
  DP_CHECK_EQ(See(t, Icmp(A, B, 8, 7), kSec), kCtNew);
  DP_CHECK_EQ(See(t, Icmp(B, A, 0, 7), kSec), kCtEstablished);
  DP_CHECK_EQ(See(t, Icmp(B, A, 0, 8), kSec), kCtInvalid);  // other id
  DP_CHECK_EQ(See(t, Icmp(B, A, 8, 7), kSec), kCtNew);      // B pinging A is another flow
  DP_CHECK_EQ(See(t, Icmp(A, B, 13, 7), kSec), kCtNew);     // timestamp: another kind
  DP_CHECK_EQ(t.size(), 3u);
  DP_CHECK_EQ(See(t, Icmp("fd00::1", "fd00::2", 128, 9), kSec), kCtNew);
  DP_CHECK_EQ(See(t, Icmp("fd00::2", "fd00::1", 129, 9), kSec), kCtEstablished);
  DP_CHECK_EQ(See(t, Icmp("fd00::2", "fd00::1", 131, 0), kSec), kCtUntracked);  // MLD
  DP_CHECK_EQ(See(t, Icmp(A, B, 8, 7), 40 * kSec), kCtNew);  // 30 s icmp timeout passed
}

DP_TEST(CtRelatedIcmpErrorsV4V6) {
  for (int v6 = 0; v6 < 2; ++v6) {
    ct::Table t(Cfg());
    const char* c = v6 ? "fd00::1" : A;
    const char* s = v6 ? "fd00::2" : B;
    const char* other = v6 ? "fd00::3" : "10.0.0.3";
    const Pkt udp = Udp(c, s, 4000, 53);
    const std::vector<uint8_t> quoted = cttest::Ip(udp);
    // Not tracked yet: INVALID.
    DP_CHECK_EQ(SeeFrame(t, cttest::IcmpError(s, c, quoted), kSec), kCtInvalid);
    See(t, udp, kSec);
    DP_CHECK_EQ(SeeFrame(t, cttest::IcmpError(s, c, quoted), kSec), kCtRelated);
    // From a router on the path: still RELATED (outer src is anyone).
    DP_CHECK_EQ(SeeFrame(t, cttest::IcmpError(other, c, quoted), kSec), kCtRelated);
    // The error must go to the quoted packet's source.
    DP_CHECK_EQ(SeeFrame(t, cttest::IcmpError(c, other, quoted), kSec), kCtInvalid);
    // An error about the reply direction (quoting s -> c), sent to s.
    const std::vector<uint8_t> rq = cttest::Ip(Udp(s, c, 53, 4000));
    DP_CHECK_EQ(SeeFrame(t, cttest::IcmpError(c, s, rq), kSec), kCtRelated);
    // TCP and echo flows too.
    See(t, Tcp(c, s, 1111, 80, SYN), kSec);
    DP_CHECK_EQ(SeeFrame(t, cttest::IcmpError(s, c, cttest::Ip(Tcp(c, s, 1111, 80, SYN))), kSec),
                kCtRelated);
    See(t, Icmp(c, s, v6 ? 128 : 8, 42), kSec);
    DP_CHECK_EQ(SeeFrame(t, cttest::IcmpError(s, c, cttest::Ip(Icmp(c, s, v6 ? 128 : 8, 42))), kSec),
                kCtRelated);
    // An error quoting an error is never RELATED.
    DP_CHECK_EQ(SeeFrame(t, cttest::IcmpError(s, c, cttest::Ip(Icmp(c, s, v6 ? 1 : 3, 0))), kSec),
                kCtInvalid);
    // Every truncation of the quoted packet: RELATED only with the whole IP
    // header and 8 bytes of UDP; never a read past the end (ASan).
    const size_t need = (v6 ? 40 : 20) + 8;
    for (size_t n = 0; n <= quoted.size(); ++n) {
      std::vector<uint8_t> q(quoted.begin(), quoted.begin() + n);
      const uint8_t st = SeeFrame(t, cttest::IcmpError(s, c, q), kSec);
      DP_CHECK_EQ(st, n >= need ? kCtRelated : kCtInvalid);
    }
    // Garbage quoted headers: bad version, bad IHL, huge extension header.
    std::vector<uint8_t> bad = quoted;
    bad[0] = 0x15;
    DP_CHECK_EQ(SeeFrame(t, cttest::IcmpError(s, c, bad), kSec), kCtInvalid);
    bad = quoted;
    if (!v6) {
      bad[0] = 0x4f;  // IHL 60 > what is there
      DP_CHECK_EQ(SeeFrame(t, cttest::IcmpError(s, c, bad), kSec), kCtInvalid);
    } else {
      bad[6] = 60;  // destination options header whose length runs past the end
      bad[40] = 17, bad[41] = 200;
      DP_CHECK_EQ(SeeFrame(t, cttest::IcmpError(s, c, bad), kSec), kCtInvalid);
    }
    // Random mutations of the quoted header never crash.
    uint32_t x = 99;
    for (int i = 0; i < 3000; ++i) {
      std::vector<uint8_t> m = quoted;
      for (int k = 0; k < 3; ++k) {
        x = x * 1103515245 + 12345;
        m[(x >> 8) % m.size()] = uint8_t(x >> 16);
      }
      x = x * 1103515245 + 12345;
      m.resize((x >> 8) % (m.size() + 1));
      (void)SeeFrame(t, cttest::IcmpError(s, c, m), kSec);
    }
  }
}

DP_TEST(CtRelatedAcrossTablesThroughTheSharedIndex) {
  // Two workers' tables: the flow lives in `a`, its ICMP error reaches `b`.
  std::unique_ptr<std::atomic<uint64_t>[]> index(new std::atomic<uint64_t>[64]());
  ct::Config c = Cfg();
  c.related_index = index.get();
  c.related_mask = 63;
  ct::Table a(c), b(c);
  ct::Table lone(Cfg());  // no index: cannot know
  const Pkt udp = Udp(A, B, 4000, 53);
  const auto err = cttest::IcmpError(B, A, cttest::Ip(udp));
  DP_CHECK_EQ(SeeFrame(b, err, kSec), kCtInvalid);
  See(a, udp, kSec);
  DP_CHECK_EQ(SeeFrame(b, err, kSec), kCtRelated);
  DP_CHECK_EQ(SeeFrame(lone, err, kSec), kCtInvalid);
  // Not any error: one quoting another flow is still INVALID.
  DP_CHECK_EQ(SeeFrame(b, cttest::IcmpError(B, A, cttest::Ip(Udp(A, B, 4001, 53))), kSec), kCtInvalid);
  // Removed from `a` (flush, or expiry + GC): gone from the index too.
  a.Flush(ct::Filter{});
  DP_CHECK_EQ(SeeFrame(b, err, kSec), kCtInvalid);
  See(a, udp, kSec);
  a.Gc(1000 * kSec, a.capacity());
  DP_CHECK_EQ(SeeFrame(b, err, 1000 * kSec), kCtInvalid);
  // Moved by a cuckoo step or sharing a slot: a removal never clears
  // another flow's fingerprint.
  for (uint16_t p = 1; p <= 200; ++p) See(a, Udp(A, B, p, 53), 2000 * kSec);
  See(a, udp, 2000 * kSec);
  DP_CHECK_EQ(SeeFrame(b, err, 2000 * kSec), kCtRelated);
  for (uint16_t p = 1; p <= 200; ++p) {
    ct::FlowView d;
    d.family = 4, d.proto = 17, d.sport = p, d.dport = 53;
    d.src[0] = 0x0a000001, d.dst[0] = 0x0a000002;
    a.Delete(d);
  }
  DP_CHECK_EQ(SeeFrame(b, err, 2000 * kSec), kCtRelated);
}

DP_TEST(CtLaterFragmentUntrackedAndZones) {
  ct::Table t(Cfg());
  Pkt f = Udp(A, B, 1, 2);
  f.frag = 100;  // offset 800 bytes: a later fragment
  DP_CHECK_EQ(See(t, f, kSec), kCtUntracked);
  DP_CHECK_EQ(t.stats().ignore.Get(), 1u);
  // Zones: the same tuple on another port pair is another flow.
  DP_CHECK_EQ(See(t, Udp(A, B, 1, 2), kSec, true, 0), kCtNew);
  DP_CHECK_EQ(See(t, Udp(B, A, 2, 1), kSec, true, 1), kCtNew);
  DP_CHECK_EQ(See(t, Udp(B, A, 2, 1), kSec, true, 0), kCtEstablished);
}

DP_TEST(CtTableFullEarlyDropThenInsertFailed) {
  ct::Table t(Cfg(4));  // 8 slots, every key probes all of them
  DP_CHECK_EQ(t.capacity(), 8u);
  for (uint16_t p = 1; p <= 4; ++p) DP_CHECK_EQ(See(t, Udp(A, B, p, 53), kSec), kCtNew);
  DP_CHECK_EQ(t.size(), 4u);
  // Full (limit 4): a 5th flow evicts a non-assured one.
  DP_CHECK_EQ(See(t, Udp(A, B, 5, 53), kSec), kCtNew);
  DP_CHECK_EQ(t.size(), 4u);
  DP_CHECK_EQ(t.stats().early_drop.Get(), 1u);
  // Make every remaining flow assured (replied): nothing can be evicted.
  std::vector<ct::FlowView> v;
  t.List(ct::Filter{}, 10, kSec, &v);
  for (const auto& e : v) See(t, Udp(B, A, 53, e.sport), kSec);
  DP_CHECK_EQ(See(t, Udp(A, B, 6, 53), kSec), 0xfe);  // Commit refused
  DP_CHECK_EQ(t.stats().insert_failed.Get(), 1u);
  DP_CHECK_EQ(t.stats().drop.Get(), 1u);
  DP_CHECK_EQ(t.size(), 4u);
  // Expired entries make room again without early drop.
  DP_CHECK_EQ(See(t, Udp(A, B, 6, 53), 1000 * kSec), kCtNew);
  DP_CHECK_EQ(t.stats().early_drop.Get(), 1u);
  DP_CHECK_EQ(t.size(), 1u);
}

DP_TEST(CtTableNeverGrows) {
  ct::Table t(Cfg(1000));
  const uint32_t cap = t.capacity();
  for (uint32_t i = 0; i < 20000; ++i) {
    Pkt p = Udp(A, B, uint16_t(i), uint16_t(i >> 16));
    See(t, p, kSec);
    // Up to the limit every flow finds room (two choices + a cuckoo step):
    // nothing is evicted before the table is full.
    if (i == 999) DP_CHECK_EQ(t.stats().early_drop.Get(), 0u);
  }
  DP_CHECK(t.size() <= 1000u);
  DP_CHECK_EQ(t.capacity(), cap);
  DP_CHECK_EQ(t.stats().insert.Get() - t.stats().early_drop.Get() - t.stats().expired.Get(),
              uint64_t(t.size()));
}

DP_TEST(CtListFlushDelete) {
  ct::Table t(Cfg());
  See(t, Tcp(A, B, 1000, 80, SYN), kSec);
  See(t, Udp(A, B, 2000, 53), kSec);
  See(t, Udp("10.0.0.9", B, 2000, 53), kSec);
  See(t, Icmp("fd00::1", "fd00::2", 128, 5), kSec);
  std::vector<ct::FlowView> v;
  ct::Filter udp;
  udp.proto = 17;
  DP_CHECK_EQ(t.List(udp, 100, kSec, &v), size_t(2));
  DP_CHECK_EQ(t.List(ct::Filter{}, 1, kSec, &v), size_t(1));  // limit
  ct::FlowView d;
  d.family = 4, d.proto = 6, d.sport = 80, d.dport = 1000;  // reply-direction tuple finds it too
  d.src[0] = 0x0a000002, d.dst[0] = 0x0a000001;
  DP_CHECK(t.Delete(d));
  DP_CHECK(!t.Delete(d));
  ct::FlowView e;
  e.family = 6, e.proto = 58, e.kind = 1, e.sport = e.dport = 5;
  e.src[0] = e.dst[0] = 0xfd000000, e.src[3] = 1, e.dst[3] = 2;
  DP_CHECK(t.Delete(e));
  ct::Filter a9;
  a9.has_addr = true, a9.addr[0] = 0x0a000009;
  DP_CHECK_EQ(t.Flush(a9), size_t(1));
  DP_CHECK_EQ(t.Flush(ct::Filter{}), size_t(1));
  DP_CHECK_EQ(t.size(), 0u);
}

}  // namespace
}  // namespace flatwall
