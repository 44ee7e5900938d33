// Fuzz target: a hot standby's replica (conntrack/conntrack.h:
// Replication) fed records from the network.
//
// Feeds: byte 0: bits 0-5 the table's entry limit - 1 (1..64), bit 6 strict
// TCP. Then steps, each a u8 op and its bytes:
//   op % 4 == 0  48 bytes: a ct::Record, imported as it is (any bytes: a
//                confused or hostile active)
//   op % 4 == 1  u8 dt: Rearm at the clock advanced by dt seconds, then Gc of
//                the whole table at dt * 4 s later (every short timeout passes)
//   op % 4 == 2  Flush of the entries of protocol op >> 2 (0: all)
//   op % 4 == 3  Export, and every exported record imported again
// Checks: Import refuses what Track could never have stored (family,
// IPv4 with IPv6 words, flags, TCP state against the protocol, kind, op),
// never crashes or reads out of bounds; entries <= limit and the entries
// counter equal to the stored entries; an export lists every stored entry
// once (nothing expires before Rearm) and imports back as updates without
// changing the count; every removal publishes exactly one destroy record
// (the ring is bigger than the table) and nothing else does.
// Seeds: exports of tables that tracked TCP, UDP and ICMP flows in both
// families, and mutations of them.
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "conntrack/conntrack.h"
#include "dataplane/parse.h"
#include "fuzz/fuzz_common.h"
#include "test/ct_frames.h"

namespace flatwall {
namespace {

constexpr uint64_t kSec = 1000000000ull;

size_t DrainDestroys(ct::EventRing& ring, size_t* others) {
  size_t destroys = 0;
  ring.Drain([&](const ct::Record& r) { (r.op == ct::kRecDestroy ? destroys : *others) += 1; }, 1u << 20);
  return destroys;
}

void Check(ct::Table& t) {
  FUZZ_CHECK(t.size() <= t.limit());
  FUZZ_CHECK(t.stats().entries.v.load() == t.size());
}

}  // namespace
}  // namespace flatwall

using namespace flatwall;

namespace {

fuzz::Bytes ExportOf(const std::vector<cttest::Pkt>& pkts) {
  ct::Config c;
  c.seed = 7;
  ct::Table t(c);
  uint64_t now = kSec;
  for (const auto& p : pkts) {
    const std::vector<uint8_t> f = cttest::Frame(p);
    ParsedFrame pf = cttest::Parse(f);
    ct::Result r;
    t.Track(f.data(), pf, 0, now, &r);
    if (r.pending) t.Commit(r, now);
    now += kSec;
  }
  std::vector<ct::Record> recs;
  t.Export(now, &recs);
  fuzz::Bytes b;
  for (const auto& r : recs) {
    b.push_back(0);  // import
    const uint8_t* p = reinterpret_cast<const uint8_t*>(&r);
    b.insert(b.end(), p, p + sizeof r);
  }
  return b;
}

void WriteSeeds() {
  auto tcp = [](const char* s, const char* d, uint16_t sp, uint16_t dp, uint8_t fl) {
    cttest::Pkt p;
    p.src = s, p.dst = d, p.proto = 6, p.sport = sp, p.dport = dp, p.flags = fl;
    return p;
  };
  auto udp = [](const char* s, const char* d, uint16_t sp, uint16_t dp) {
    cttest::Pkt p;
    p.src = s, p.dst = d, p.proto = 17, p.sport = sp, p.dport = dp;
    return p;
  };
  auto icmp = [](const char* s, const char* d, uint8_t type, uint16_t id) {
    cttest::Pkt p;
    p.src = s, p.dst = d, p.proto = cttest::IsV6(s) ? 58 : 1, p.type = type, p.id = id;
    return p;
  };
  int n = 0;
  static const char* const kFamilies[2][2] = {{"10.0.0.1", "10.0.0.2"}, {"2001:db8::1", "2001:db8::2"}};
  for (const auto& fam : kFamilies) {
    const char* a = fam[0];
    const char* b = fam[1];
    const bool v6 = cttest::IsV6(a);
    fuzz::Bytes s = {uint8_t(15)};
    const fuzz::Bytes e = ExportOf({tcp(a, b, 1, 80, 0x02), tcp(b, a, 80, 1, 0x12), tcp(a, b, 1, 80, 0x10), tcp(a, b, 2, 80, 0x02),
                                    udp(a, b, 5, 53), udp(b, a, 53, 5), icmp(a, b, v6 ? 128 : 8, 9)});
    s.insert(s.end(), e.begin(), e.end());
    s.insert(s.end(), {3, 1, 30, 2 | 17 << 2, 3, 1, 200});
    fuzz::WriteSeed("export-" + std::to_string(n++), s);
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (!fuzz::SeedDir()) return 0;
  WriteSeeds();
  std::exit(0);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  // One ring for every input (196 KB zeroed per run would dominate), empty at the start of each.
  static ct::EventRing* const ring = new ct::EventRing();
  size_t stale = 0;
  DrainDestroys(*ring, &stale);
  ct::Config c;
  c.limit = (data[0] & 63) + 1;
  c.tcp_loose = !(data[0] & 64);
  c.seed = 0x5eed;
  c.events = ring;
  ct::Table t(c);
  fuzz::Reader in{data + 1, data + size};
  uint64_t now = kSec;
  while (in.left() > 0) {
    const uint8_t op = in.U8();
    size_t others = 0;
    switch (op & 3) {
      case 0: {
        const fuzz::Bytes b = in.Take(sizeof(ct::Record));
        if (b.size() < sizeof(ct::Record)) break;
        ct::Record r;
        std::memcpy(&r, b.data(), sizeof r);
        const uint32_t before = t.size();
        const bool ok = t.Import(r);
        const bool valid = (r.key.family == 4 || r.key.family == 6) && r.key.kind <= 4 &&
                           !(r.flags & ~uint8_t(ct::kOrigIsA | ct::kSeenReply | ct::kAssured)) &&
                           (r.op == ct::kRecNew || r.op == ct::kRecUpdate || r.op == ct::kRecDestroy) &&
                           (r.key.proto == 6 ? r.tcp_state > ct::kTcpNone && r.tcp_state < ct::kTcpStateCount : r.tcp_state == 0) &&
                           (r.key.family == 6 || !(r.key.a[1] | r.key.a[2] | r.key.a[3] | r.key.b[1] | r.key.b[2] | r.key.b[3]));
        if (!valid) FUZZ_CHECK(!ok && t.size() == before);
        if (ok && r.op == ct::kRecDestroy) FUZZ_CHECK(t.size() <= before);
        // An import publishes nothing, even when it evicts to make room.
        FUZZ_CHECK(DrainDestroys(*ring, &others) == 0 && others == 0);
        break;
      }
      case 1: {
        const uint64_t dt = in.U8();
        now += dt * kSec;
        t.Rearm(now);
        const uint32_t before = t.size();
        t.Gc(now + dt * 4 * kSec + kSec, t.capacity());
        now += dt * 4 * kSec + kSec;
        FUZZ_CHECK(DrainDestroys(*ring, &others) == before - t.size());
        FUZZ_CHECK(others == 0);
        break;
      }
      case 2: {
        ct::Filter f;
        f.proto = uint8_t(op >> 2);
        const uint32_t before = t.size();
        const size_t n = t.Flush(f);
        FUZZ_CHECK(t.size() == before - n);
        FUZZ_CHECK(DrainDestroys(*ring, &others) == n && others == 0);
        break;
      }
      case 3: {
        std::vector<ct::Record> out;
        t.Export(0, &out);  // before any deadline: every stored entry
        FUZZ_CHECK(out.size() == t.size());
        const uint32_t before = t.size();
        for (ct::Record r : out) {
          r.op = ct::kRecUpdate;
          FUZZ_CHECK(t.Import(r));
        }
        FUZZ_CHECK(t.size() == before);
        break;
      }
    }
    Check(t);
  }
  return 0;
}
