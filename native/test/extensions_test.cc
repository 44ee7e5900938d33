// Match programs (extensions/): the limit bucket against a plain token
// bucket on random arrivals, hashlimit keys / above / table full / expiry,
// recent's set, check, update, hitcount, seconds, remove, reap, LRU and
// --rttl under an injected clock, TCPMSS's rewrite and checksum, and the
// section parser against corrupted sections (every mutation either parses
// or is refused with a message: ASan/UBSan watch the reads).
#include <cstring>
#include <random>
#include <stdexcept>
#include <vector>

#include "classifier/rule_table.h"
#include "dataplane/bytes.h"
#include "extensions/ext_table.h"
#include "extensions/state.h"
#include "extensions/xt_hashlimit.h"
#include "extensions/xt_limit.h"
#include "extensions/xt_recent.h"
#include "extensions/xt_tcpmss.h"
#include "test/testing.h"

namespace flatwall {
namespace {

using namespace ext;
constexpr uint64_t kSec = 1000000000ull;

FW_TEST(ExtLimitEqualsTokenBucketOnRandomArrivals) {
  std::mt19937_64 rng(7);
  for (int round = 0; round < 50; ++round) {
    const uint64_t interval = 1 + rng() % (50 * 1000000ull);  // up to 50 ms per packet
    const uint32_t burst = 1 + uint32_t(rng() % 20);
    LimitState lim("k", "c", interval, burst);
    // The model: credit in ns, capped at burst * interval, starting full.
    uint64_t credit = interval * burst, last = 0;
    uint64_t now = 1000 * kSec;
    last = now;
    for (int i = 0; i < 2000; ++i) {
      now += rng() % (2 * interval + 1);
      credit = std::min<uint64_t>(interval * burst, credit + (now - last));
      last = now;
      const bool want = credit >= interval;
      if (want) credit -= interval;
      FW_CHECK_EQ(lim.Take(now), want);
    }
  }
}

FW_TEST(ExtLimitStartsFullAndRefillsOnePerInterval) {
  LimitState lim("k", "c", kSec, 3);
  const uint64_t t = 5000 * kSec;
  FW_CHECK(lim.Take(t) && lim.Take(t) && lim.Take(t));
  FW_CHECK(!lim.Take(t));
  FW_CHECK(!lim.Take(t + kSec - 1));
  FW_CHECK(lim.Take(t + kSec));
  FW_CHECK(!lim.Take(t + kSec));
}

HashlimitConfig HCfg(uint32_t max = 16, uint32_t expire_ms = 10000) {
  HashlimitConfig c{};
  c.interval_ps = 1000ull * kSec;  // one packet per second
  c.burst = 2;
  c.mode = kHashSrcIp;
  c.max = max;
  c.expire_ms = expire_ms;
  c.gc_ms = 1000;
  c.srcmask = 32, c.dstmask = 32;
  c.family = 4;
  return c;
}

FW_TEST(ExtHashlimitKeysAreIndependentAndExpire) {
  HashlimitState h("k", "c", HCfg());
  HashKey a, b;
  a.src[0] = 0x0a000001, b.src[0] = 0x0a000002;
  const uint64_t t = 100 * kSec;
  FW_CHECK(h.Take(a, 60, t) == HashlimitState::kUnder);
  FW_CHECK(h.Take(a, 60, t) == HashlimitState::kUnder);
  FW_CHECK(h.Take(a, 60, t) == HashlimitState::kOver);
  FW_CHECK(h.Take(b, 60, t) == HashlimitState::kUnder);  // its own bucket
  FW_CHECK(h.Take(a, 60, t + kSec) == HashlimitState::kUnder);
  // Idle past expire: a fresh (full) bucket.
  FW_CHECK(h.Take(a, 60, t + 12 * kSec) == HashlimitState::kUnder);
  FW_CHECK(h.Take(a, 60, t + 12 * kSec) == HashlimitState::kUnder);
  FW_CHECK(h.Take(a, 60, t + 12 * kSec) == HashlimitState::kOver);
}

FW_TEST(ExtHashlimitFullTableHotDropsNewKeysAndReclaimsExpired) {
  HashlimitState h("k", "c", HCfg(4, 1000));
  const uint64_t t = 100 * kSec;
  HashKey k;
  for (uint32_t i = 0; i < 4; ++i) {
    k.src[0] = 0x0a000000 + i;
    FW_CHECK(h.Take(k, 60, t) == HashlimitState::kUnder);
  }
  k.src[0] = 0x0a0000ff;
  FW_CHECK(h.Take(k, 60, t) == HashlimitState::kHotdrop);  // max entries, none expired
  FW_CHECK_EQ(h.stats().full, uint64_t(1));
  // After expire, an old slot is reused for the new key (where the probe finds one).
  bool took = false;
  for (uint32_t i = 0; i < 64 && !took; ++i) {
    k.src[0] = 0x0b000000 + i;
    took = h.Take(k, 60, t + 2 * kSec) == HashlimitState::kUnder;
  }
  FW_CHECK(took);
  FW_CHECK(h.stats().evictions >= 1);
}

FW_TEST(ExtRecentSetCheckUpdateHitcountRemoveReap) {
  RecentState r("k", "c", RecentConfig{3, 20, {~0u, ~0u, ~0u, ~0u}}, "SSH");
  const uint32_t a[4] = {0x0a000001, 0, 0, 0}, b[4] = {0x0a000002, 0, 0, 0};
  const uint64_t t = 1000 * kSec;
  FW_CHECK(!r.Check(RecentCmd::kRcheck, 0, false, 4, a, 64, 0, 0, t));  // nothing yet
  FW_CHECK(r.Check(RecentCmd::kRcheck, 0, true, 4, a, 64, 0, 0, t));    // ! --rcheck
  FW_CHECK(r.Check(RecentCmd::kSet, 0, false, 4, a, 64, 0, 0, t));
  FW_CHECK(r.Check(RecentCmd::kRcheck, 0, false, 4, a, 64, 0, 0, t));
  FW_CHECK(!r.Check(RecentCmd::kRcheck, 0, false, 4, b, 64, 0, 0, t));
  // --seconds: the one stamp is 10 s old.
  FW_CHECK(!r.Check(RecentCmd::kRcheck, 0, false, 4, a, 64, 5 * kSec, 0, t + 10 * kSec));
  FW_CHECK(r.Check(RecentCmd::kRcheck, 0, false, 4, a, 64, 10 * kSec, 0, t + 10 * kSec));
  // --update --hitcount 3: two more hits inside 60 s make three.
  FW_CHECK(!r.Check(RecentCmd::kUpdate, 0, false, 4, a, 64, 60 * kSec, 3, t + 11 * kSec));  // 1 stamp: no match, not recorded
  FW_CHECK(r.Check(RecentCmd::kSet, 0, false, 4, a, 64, 0, 0, t + 12 * kSec));
  FW_CHECK(r.Check(RecentCmd::kSet, 0, false, 4, a, 64, 0, 0, t + 13 * kSec));
  FW_CHECK(r.Check(RecentCmd::kUpdate, 0, false, 4, a, 64, 60 * kSec, 3, t + 14 * kSec));
  // --rttl: a different TTL does not find the entry.
  FW_CHECK(!r.Check(RecentCmd::kRcheck, kRecentTtl, false, 4, a, 63, 0, 0, t + 15 * kSec));
  FW_CHECK(r.Check(RecentCmd::kRcheck, kRecentTtl, false, 4, a, 64, 0, 0, t + 15 * kSec));
  // --remove matches once.
  FW_CHECK(r.Check(RecentCmd::kRemove, 0, false, 4, a, 64, 0, 0, t + 16 * kSec));
  FW_CHECK(!r.Check(RecentCmd::kRemove, 0, false, 4, a, 64, 0, 0, t + 16 * kSec));
  // LRU: a full table (3) drops its least recently updated entry.
  for (uint32_t i = 0; i < 4; ++i) {
    const uint32_t x[4] = {0x0b000000 + i, 0, 0, 0};
    r.Check(RecentCmd::kSet, 0, false, 4, x, 64, 0, 0, t + (20 + i) * kSec);
  }
  const uint32_t first[4] = {0x0b000000, 0, 0, 0}, last[4] = {0x0b000003, 0, 0, 0};
  FW_CHECK(!r.Check(RecentCmd::kRcheck, 0, false, 4, first, 64, 0, 0, t + 30 * kSec));
  FW_CHECK(r.Check(RecentCmd::kRcheck, 0, false, 4, last, 64, 0, 0, t + 30 * kSec));
  FW_CHECK_EQ(r.stats().evictions, uint64_t(1));
  // --reap drops the least recently updated entry when it is older than --seconds.
  const uint32_t second[4] = {0x0b000001, 0, 0, 0};
  r.Check(RecentCmd::kRcheck, kRecentReap, false, 4, last, 64, 5 * kSec, 0, t + 100 * kSec);
  FW_CHECK(!r.Check(RecentCmd::kRcheck, 0, false, 4, second, 64, 0, 0, t + 100 * kSec));
}

// The recent table (hash chains, LRU list) against a plain model: a list of
// entries in LRU order, scanned, with the kernel's rules spelled out again.
FW_TEST(ExtRecentMatchesAPlainModelOnRandomOps) {
  struct M {
    uint32_t addr;
    uint8_t ttl;
    std::vector<uint64_t> stamps;  // ring of 32, as RecentState with pkt_list_tot 20
    uint32_t index = 0, nstamps = 0;
    uint64_t last = 0;
  };
  std::mt19937 rng(5);
  for (int round = 0; round < 20; ++round) {
    const uint32_t tot = 3 + rng() % 6;
    RecentState r("k", "c", RecentConfig{tot, 20, {~0u, ~0u, ~0u, ~0u}}, "R");
    std::vector<M> lru;  // front = least recently updated
    uint64_t now = 1000 * kSec;
    auto find = [&](uint32_t a, uint8_t ttl, bool ck) -> int {
      for (size_t i = 0; i < lru.size(); ++i)
        if (lru[i].addr == a && (!ck || ttl == lru[i].ttl || ttl == 0 || lru[i].ttl == 0)) return int(i);
      return -1;
    };
    auto record = [&](int i, uint8_t ttl) {
      M m = lru[size_t(i)];
      m.index &= 31;
      m.stamps[m.index++] = now;
      if (m.index > m.nstamps) m.nstamps = m.index;
      m.last = now;
      m.ttl = ttl;
      lru.erase(lru.begin() + i);
      lru.push_back(m);
    };
    for (int step = 0; step < 3000; ++step) {
      now += (rng() % 3) * kSec;
      const uint32_t a = 0x0a000000 + rng() % 12;
      const uint8_t ttl = uint8_t(60 + rng() % 3);
      const RecentCmd cmd = RecentCmd(1 + rng() % 4);
      const bool ck = cmd != RecentCmd::kSet && cmd != RecentCmd::kRemove && rng() % 4 == 0;
      const bool reap = (cmd == RecentCmd::kRcheck || cmd == RecentCmd::kUpdate) && rng() % 3 == 0;
      const uint64_t secs = (cmd == RecentCmd::kRcheck || cmd == RecentCmd::kUpdate) && (reap || rng() % 2) ? (1 + rng() % 8) * kSec : 0;
      const uint32_t hits = (cmd == RecentCmd::kRcheck || cmd == RecentCmd::kUpdate) ? rng() % 4 : 0;
      const bool inv = rng() % 5 == 0;
      // The model.
      bool want = inv;
      int i = find(a, ttl, ck);
      if (i < 0) {
        if (cmd == RecentCmd::kSet) {
          if (lru.size() >= tot) lru.erase(lru.begin());
          M m{a, ttl, std::vector<uint64_t>(32, 0)};
          m.stamps[0] = now, m.index = 1, m.nstamps = 1, m.last = now;
          lru.push_back(m);
          want = !want;
        }
      } else if (cmd == RecentCmd::kSet) {
        want = !want;
        record(i, ttl);
      } else if (cmd == RecentCmd::kRemove) {
        lru.erase(lru.begin() + i);
        want = !want;
      } else {
        const uint64_t oldest_ok = now > secs ? now - secs : 0;
        uint32_t n = 0;
        const M& m = lru[size_t(i)];
        for (uint32_t k = 0; k < m.nstamps; ++k) {
          if (secs && m.stamps[k] < oldest_ok) continue;
          if (!hits || ++n >= hits) {
            want = !want;
            break;
          }
        }
        bool gone = false;
        if (reap && !lru.empty()) {
          const bool updating = cmd == RecentCmd::kUpdate && want;
          if (!(i == 0 && updating) && lru.front().last < oldest_ok) {
            gone = i == 0;
            lru.erase(lru.begin());
            if (!gone) --i;
          }
        }
        if (!gone && cmd == RecentCmd::kUpdate && want) record(i, ttl);
      }
      const uint32_t addr[4] = {a, 0, 0, 0};
      const uint8_t fl = uint8_t((ck ? kRecentTtl : 0) | (reap ? kRecentReap : 0));
      const bool got = r.Check(cmd, fl, inv, 4, addr, ttl, secs, hits, now);
      FW_CHECK_EQ(got, want);
      FW_CHECK_EQ(r.stats().entries, uint64_t(lru.size()));
      if (got != want) return;
    }
  }
}

// A minimal IPv4 TCP SYN frame with one MSS option and a correct checksum.
std::vector<uint8_t> Syn(uint16_t mss, ParsedFrame* pf) {
  std::vector<uint8_t> f(14 + 20 + 24, 0);
  f[12] = 0x08;
  uint8_t* ip = f.data() + 14;
  ip[0] = 0x45, ip[8] = 64, ip[9] = 6;
  net::Store16(ip + 2, 44);
  net::Store32(ip + 12, 0x0a000001), net::Store32(ip + 16, 0x0a000102);
  uint8_t* th = ip + 20;
  net::Store16(th, 1234), net::Store16(th + 2, 80);
  th[12] = 6 << 4, th[13] = 0x02;
  th[20] = 2, th[21] = 4;
  net::Store16(th + 22, mss);
  uint32_t sum = net::PseudoSum4(ip + 12, ip + 16, 6, 24);
  sum = net::CsumAdd(sum, th, 24);
  net::Store16(th + 16, net::CsumFold(sum));
  *pf = ParsedFrame{};
  pf->cls = FrameClass::kIPv4, pf->l3_off = 14, pf->l3_len = 44, pf->l4_off = 34;
  return f;
}

bool TcpChecksumOk(const std::vector<uint8_t>& f) {
  const uint8_t* ip = f.data() + 14;
  uint32_t sum = net::PseudoSum4(ip + 12, ip + 16, 6, 24);
  sum = net::CsumAdd(sum, ip + 20, 24);
  return net::CsumFold(sum) == 0;
}

FW_TEST(ExtTcpMssLowersOnlyAndKeepsTheChecksumValid) {
  ParsedFrame pf;
  auto f = Syn(1460, &pf);
  FW_CHECK(TcpChecksumOk(f));
  FW_CHECK_EQ(TcpMssMangle(f.data(), pf, 1400, false, 1500, false, false), 1);
  FW_CHECK_EQ(net::Load16(f.data() + 34 + 22), uint16_t(1400));
  FW_CHECK(TcpChecksumOk(f));
  // Never raised.
  FW_CHECK_EQ(TcpMssMangle(f.data(), pf, 1460, false, 1500, false, false), 1);
  FW_CHECK_EQ(net::Load16(f.data() + 34 + 22), uint16_t(1400));
  // Clamp to an MTU of 1300: 1260.
  FW_CHECK_EQ(TcpMssMangle(f.data(), pf, 0, true, 1300, false, false), 1);
  FW_CHECK_EQ(net::Load16(f.data() + 34 + 22), uint16_t(1260));
  FW_CHECK(TcpChecksumOk(f));
  // No usable MTU: the kernel drops.
  FW_CHECK_EQ(TcpMssMangle(f.data(), pf, 0, true, 40, false, false), 0);
  // CHECKSUM_PARTIAL: the sum field is left as it was.
  auto g = Syn(1460, &pf);
  const uint16_t before = net::Load16(g.data() + 34 + 16);
  TcpMssMangle(g.data(), pf, 1000, false, 1500, true, false);
  FW_CHECK_EQ(net::Load16(g.data() + 34 + 16), before);
}

// A buffer of one IPv4 FORWARD table: record 0 flagged, then the policy;
// its extension section holds one limit state and a program [ttl eq 63, limit].
std::vector<uint8_t> TableWithSection() {
  const uint32_t nrec = 2;
  const uint32_t head = sizeof(TableSetHeader) + sizeof(TableDesc);
  std::vector<uint8_t> b(head + nrec * sizeof(RuleRecord4), 0);
  TableSetHeader h{kTableMagic, kTableVersion, 1, 0, 0};
  TableDesc d{4, 1, sizeof(RuleRecord4), nrec, head, 0};
  RuleRecord4 r[2];
  std::memset(r, 0, sizeof r);
  for (auto& x : r) {
    x.c.sport_hi = x.c.dport_hi = x.c.icmp_hi = 0xffff;
    x.c.proto_hi = 0xff;
    x.c.ct_state_mask = kCtAny;
    x.src_hi = x.dst_hi = 0xffffffffu;
  }
  r[0].c.action = uint8_t(Action::kAccept), r[0].c.flags = kRuleHasExt;
  r[1].c.action = uint8_t(Action::kDrop);
  std::memcpy(b.data() + sizeof h, &d, sizeof d);
  std::memcpy(b.data() + head, r, sizeof r);
  // Section.
  std::vector<uint8_t> st = {1, 0, 20, 0};  // StateHeader kLimit, 20 bytes
  const uint64_t interval = kSec;
  const uint32_t burst = 1;
  st.insert(st.end(), reinterpret_cast<const uint8_t*>(&interval), reinterpret_cast<const uint8_t*>(&interval) + 8);
  st.insert(st.end(), reinterpret_cast<const uint8_t*>(&burst), reinterpret_cast<const uint8_t*>(&burst) + 4);
  st.insert(st.end(), {1, 0, 0, 0, 'k', 0, 0, 0});
  st.resize(20 + 4);
  st[2] = uint8_t(st.size());
  std::vector<uint8_t> prog = {2, 0, 16, 0, uint8_t(Op::kTtl), 0, 8, 0, 0, 63, 0, 0, uint8_t(Op::kLimit), 0, 8, 0};
  prog.insert(prog.end(), {0, 0, 0, 0});
  prog[2] = uint8_t(prog.size());
  SectionHeader sh{kSectionMagic, 1, 1, uint32_t(st.size()), uint32_t(prog.size())};
  Entry e{0, 0, 0, 1, 0};
  std::vector<uint8_t> sec(sizeof sh + sizeof e);
  std::memcpy(sec.data(), &sh, sizeof sh);
  std::memcpy(sec.data() + sizeof sh, &e, sizeof e);
  sec.insert(sec.end(), st.begin(), st.end());
  sec.insert(sec.end(), prog.begin(), prog.end());
  h.ext_offset = uint32_t(b.size());
  b.insert(b.end(), sec.begin(), sec.end());
  h.total_bytes = uint32_t(b.size());
  std::memcpy(b.data(), &h, sizeof h);
  return b;
}

FW_TEST(ExtSectionParsesAndRunsAProgram) {
  const auto b = TableWithSection();
  std::vector<TableInfo> infos;
  std::string err;
  FW_CHECK(ParseTableSet(b.data(), b.size(), &infos, &err));
  ExtStateRegistry reg;
  auto t = ExtTable::Parse(b.data(), b.size(), infos, &reg);
  FW_CHECK_EQ(t->entries(), size_t(1));
  const Entry* e = t->Find(0, 0);
  FW_CHECK(e != nullptr);
  if (!e) return;
  // A frame whose TTL is 64: FORWARD sees 63.
  ParsedFrame pf;
  auto f = Syn(1460, &pf);
  Context cx;
  cx.frame = f.data(), cx.len = uint32_t(f.size()), cx.pf = &pf, cx.now_ns = 10 * kSec;
  PacketKey4 k;
  FW_CHECK_EQ(t->Run(*e, k, cx), 1);  // ttl ok, token taken
  FW_CHECK_EQ(t->Run(*e, k, cx), 0);  // burst 1: none left
  cx.hook = Hook::kInput;             // INPUT sees 64: the ttl op fails first
  cx.now_ns = 20 * kSec;
  FW_CHECK_EQ(t->Run(*e, k, cx), 0);
  cx.hook = Hook::kForward;
  FW_CHECK_EQ(t->Run(*e, k, cx), 1);  // the token was not spent by the failed ttl
  // The same state is found again by a second parse (a reload).
  auto t2 = ExtTable::Parse(b.data(), b.size(), infos, &reg);
  FW_CHECK(t2->states()[0] == t->states()[0]);
}

FW_TEST(ExtSectionCorruptionIsRefusedNeverRead) {
  const auto good = TableWithSection();
  std::mt19937 rng(99);
  int parsed = 0, refused = 0;
  for (int i = 0; i < 20000; ++i) {
    std::vector<uint8_t> b = good;
    // Flip 1-3 bytes of the section (and sometimes of the header).
    const size_t start = i % 10 == 0 ? 0 : good.size() - 80;
    for (int k = 0; k <= int(rng() % 3); ++k) b[start + rng() % (b.size() - start)] ^= uint8_t(1 + rng() % 255);
    // Sometimes truncate (with a consistent total_bytes).
    if (i % 7 == 0) {
      b.resize(b.size() - 1 - rng() % 40);
      TableSetHeader h;
      std::memcpy(&h, b.data(), sizeof h);
      h.total_bytes = uint32_t(b.size());
      std::memcpy(b.data(), &h, sizeof h);
    }
    std::vector<TableInfo> infos;
    std::string err;
    if (!ParseTableSet(b.data(), b.size(), &infos, &err)) {
      ++refused;
      continue;
    }
    ExtStateRegistry reg;
    try {
      auto t = ExtTable::Parse(b.data(), b.size(), infos, &reg);
      ++parsed;
    } catch (const std::invalid_argument&) {
      ++refused;
    }
  }
  FW_CHECK(parsed > 0);
  FW_CHECK(refused > 0);
}

}  // namespace
}  // namespace flatwall
