// Fuzz target: the connection tracker (conntrack/conntrack.h) fed frame
// sequences.
//
// Feeds: byte 0 configures the table(s): bit 0 strict TCP (no mid-stream
// pickup), bits 1-5 the entry limit - 1 (1..32: a table of 8..64 slots, so
// eviction and insert failures are reached), bit 6 two tables sharing a
// related-error index (two workers), bit 7 every timeout 1 s. Byte 1: bits
// 6-7 scale the limit by 1, 4, 16 or 64 (up to 2048 entries), bits 0-5 fill
// that fraction (n/63) of the first table with UDP flows first, so that
// full bucket pairs and with them the cuckoo step (Displace) are reached.
// Then records, each
//   u8 ctl   bits 0-1 the unit of dt (1 ms, 1 s, 64 s, 4096 s), bit 2
//            Commit a pending flow (the rules accepted the packet), bit 3
//            fix the IPv4 header checksum, bits 4-5 the zone (port pair),
//            bit 6 which table (with two)
//   u8 dt    the fake clock advances dt units before the packet
//   u16 w    (LE) bits 0-10 the frame's length (the rest of the input if
//            shorter), bits 11-12 a control operation after the packet
//            (1 Gc with a budget of ((w >> 13) + 1) * 4 slots, 2 Flush with
//            a filter on the packet's family/proto/zone picked by w >> 13,
//            3 Delete the first listed flow), bits 13-15 its argument
//   frame    parsed, and tracked as the dataplane does (IPv4/IPv6; NDP as
//            IPv6 when judged), from a heap copy of exactly its length.
// Checks: no out-of-bounds read of a frame (quoted ICMP headers
// included), one ct state bit per packet, NEW for a pending flow, a found
// entry that is in use, and after every record, for every table: entries
// <= limit, the entries counter equal to the stored entries, every stored
// entry listed once, a committed flow listed, a listed flow deletable by
// its listed tuple.
// Seeds: each pcap of the repo as one sequence, and hand-made flows (TCP
// opening, data, closing and reuse in both families, UDP and ICMP
// request/reply with ICMP errors quoting them, RST before a reply, generic
// protocols, more flows than a small table holds).
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "classifier/rule_table.h"
#include "conntrack/conntrack.h"
#include "dataplane/bytes.h"
#include "dataplane/parse.h"
#include "fuzz/fuzz_common.h"
#include "test/ct_frames.h"

namespace flatwall {
namespace {

constexpr uint64_t kUnitNs[4] = {1000000ull, 1000000000ull, 64000000000ull, 4096000000000ull};
constexpr uint32_t kIndexSlots = 16;
constexpr uint64_t kStartNs = 1000000000ull;  // every deadline is after time 0 (CheckTable)

bool OneCtBit(uint8_t s) {
  return s == kCtInvalid || s == kCtNew || s == kCtEstablished || s == kCtRelated || s == kCtUntracked;
}

// The listing part is O(capacity): after every record for small tables,
// at the end of the input for big ones.
void CheckTable(ct::Table& t, bool last) {
  FUZZ_CHECK(t.size() <= t.limit());
  FUZZ_CHECK(t.stats().entries.v.load() == t.size());
  if (!last && t.capacity() > 256) return;
  // At time 0 nothing has expired (every deadline is after the clock's
  // start), so this lists every stored entry.
  std::vector<ct::FlowView> all;
  FUZZ_CHECK(t.List(ct::Filter{}, SIZE_MAX, 0, &all) == t.size());
  for (const ct::FlowView& v : all) {
    FUZZ_CHECK(v.family == 4 || v.family == 6);
    FUZZ_CHECK(v.tcp_state < ct::kTcpStateCount);
    if (v.proto != net::kProtoTcp) FUZZ_CHECK(v.tcp_state == ct::kTcpNone);
  }
}

struct Harness {
  std::unique_ptr<std::atomic<uint64_t>[]> index;
  std::unique_ptr<ct::Table> tables[2];
  int ntables = 1;

  Harness(uint8_t config, uint8_t fill) {
    ct::Config c;
    c.tcp_loose = !(config & 1);
    c.limit = (((config >> 1) & 31) + 1) << (2 * (fill >> 6));
    c.seed = 0x5eed;  // reproducible runs
    if (config & 0x80) {
      for (uint32_t& s : c.timeouts.tcp) s = s ? 1 : 0;
      c.timeouts.udp = c.timeouts.udp_stream = c.timeouts.icmp = c.timeouts.generic = 1;
    }
    if (config & 0x40) {
      index.reset(new std::atomic<uint64_t>[kIndexSlots]);
      for (uint32_t i = 0; i < kIndexSlots; ++i) index[i].store(0);
      c.related_index = index.get();
      c.related_mask = kIndexSlots - 1;
      ntables = 2;
    }
    for (int i = 0; i < ntables; ++i) tables[i].reset(new ct::Table(c));
    Prefill(*tables[0], (fill & 63) * c.limit / 63);
  }

  // n UDP flows 198.18.x.y:p -> 198.19.0.1:53, committed at the clock's
  // start (they expire with the udp timeout like any other).
  static void Prefill(ct::Table& t, uint32_t n) {
    static const uint8_t kFrame[64] = {};  // Track reads no bytes of a UDP packet
    for (uint32_t i = 0; i < n; ++i) {
      ParsedFrame pf;
      pf.cls = FrameClass::kIPv4;
      pf.l3_off = 14, pf.l3_len = 28, pf.l4_off = 34;
      pf.key4.src = 0xc6120000u | (i & 0xffff), pf.key4.dst = 0xc6130001u;
      pf.key4.c.proto = net::kProtoUdp, pf.key4.c.sport = uint16_t(1024 + i), pf.key4.c.dport = 53;
      pf.key4.c.flags = kKeyHasL4;
      ct::Result r;
      t.Track(kFrame, pf, 0, kStartNs, &r);
      if (r.pending) t.Commit(r, kStartNs);
    }
  }
};

void Control(ct::Table& t, uint32_t op, uint32_t arg, const ParsedFrame& pf, uint8_t zone, uint64_t now) {
  switch (op) {
    case 1:
      t.Gc(now, (arg + 1) * 4);
      break;
    case 2: {
      ct::Filter f;
      const bool ip = pf.cls == FrameClass::kIPv4 || pf.cls == FrameClass::kIPv6;
      if (ip && (arg & 1)) f.proto = pf.cls == FrameClass::kIPv4 ? pf.key4.c.proto : pf.key6.c.proto;
      if (ip && (arg & 2)) f.family = pf.cls == FrameClass::kIPv4 ? 4 : 6;
      if (arg & 4) f.zone = zone;
      const uint32_t before = t.size();
      const size_t n = t.Flush(f);
      FUZZ_CHECK(t.size() == before - n);
      break;
    }
    case 3: {
      std::vector<ct::FlowView> v;
      if (!t.List(ct::Filter{}, 1, 0, &v)) break;
      const uint32_t before = t.size();
      FUZZ_CHECK(t.Delete(v[0]));
      FUZZ_CHECK(t.size() == before - 1);
      break;
    }
  }
}

}  // namespace
}  // namespace flatwall

using namespace flatwall;

namespace {

// Seed building: records in the format above.
struct Seq {
  fuzz::Bytes b;
  explicit Seq(uint8_t config, uint8_t fill = 0) { b = {config, fill}; }
  Seq& Add(const fuzz::Bytes& frame, uint8_t ctl = 4, uint8_t dt = 1, uint16_t op = 0) {
    const uint16_t w = uint16_t((frame.size() & 0x7ff) | op << 11);
    b.insert(b.end(), {ctl, dt, uint8_t(w), uint8_t(w >> 8)});
    b.insert(b.end(), frame.begin(), frame.end());
    return *this;
  }
};

fuzz::Bytes Tcp(const char* s, const char* d, uint16_t sp, uint16_t dp, uint8_t flags) {
  cttest::Pkt p;
  p.src = s, p.dst = d, p.proto = 6, p.sport = sp, p.dport = dp, p.flags = flags;
  return cttest::Frame(p);
}
fuzz::Bytes Udp(const char* s, const char* d, uint16_t sp, uint16_t dp) {
  cttest::Pkt p;
  p.src = s, p.dst = d, p.proto = 17, p.sport = sp, p.dport = dp;
  p.payload = {1, 2, 3, 4};
  return cttest::Frame(p);
}
fuzz::Bytes Icmp(const char* s, const char* d, uint8_t type, uint16_t id) {
  cttest::Pkt p;
  p.src = s, p.dst = d, p.proto = cttest::IsV6(s) ? 58 : 1, p.type = type, p.id = id;
  return cttest::Frame(p);
}
fuzz::Bytes Proto(const char* s, const char* d, uint8_t proto) {
  cttest::Pkt p;
  p.src = s, p.dst = d, p.proto = proto, p.sport = 7, p.dport = 9;
  return cttest::Frame(p);
}
// The IP packet of `f` (what an ICMP error quotes).
fuzz::Bytes IpOf(const fuzz::Bytes& f) { return fuzz::Bytes(f.begin() + 14, f.end()); }

void WriteSeeds() {
  int n = 0;
  auto write = [&](const Seq& s) { fuzz::WriteSeed("flow-" + std::to_string(n++), s.b); };
  // The repo's pcaps, one sequence each (frames named PCAP-NNNN.bin).
  std::string current;
  Seq* seq = nullptr;
  std::vector<Seq> pcaps;
  for (const auto& [name, frame] : fuzz::SeedFrames()) {
    const std::string pcap = name.substr(0, name.rfind('-'));
    if (pcap != current || !seq) {
      pcaps.emplace_back(uint8_t(31 << 1));
      seq = &pcaps.back();
      current = pcap;
    }
    if (frame.size() <= 0x7ff) seq->Add(frame);
  }
  for (const Seq& s : pcaps) write(s);
  const char* families[2][2] = {{"10.0.0.1", "10.0.0.2"}, {"2001:db8::1", "2001:db8::2"}};
  for (uint8_t config : {uint8_t(31 << 1), uint8_t(3 << 1 | 1), uint8_t(0x40 | 7 << 1), uint8_t(0x80 | 15 << 1)}) {
    for (const auto& fam : families) {
      const char* a = fam[0];
      const char* b = fam[1];
      // TCP: open, data, close both ways, reuse after TIME_WAIT.
      Seq t(config);
      t.Add(Tcp(a, b, 1000, 80, 0x02)).Add(Tcp(b, a, 80, 1000, 0x12)).Add(Tcp(a, b, 1000, 80, 0x10))
          .Add(Tcp(a, b, 1000, 80, 0x18)).Add(Tcp(b, a, 80, 1000, 0x18))
          .Add(Tcp(a, b, 1000, 80, 0x11)).Add(Tcp(b, a, 80, 1000, 0x11)).Add(Tcp(a, b, 1000, 80, 0x10))
          .Add(Tcp(a, b, 1000, 80, 0x02), 5, 200).Add(Tcp(b, a, 80, 1000, 0x14))
          .Add(Tcp(a, b, 2000, 80, 0x10), 4, 1, 3);
      write(t);
      // UDP and ICMP queries, errors quoting them, then expiry and GC.
      const fuzz::Bytes u = Udp(a, b, 5000, 53);
      const fuzz::Bytes e = Icmp(a, b, cttest::IsV6(a) ? 128 : 8, 77);
      Seq q(config);
      q.Add(u).Add(Udp(b, a, 53, 5000)).Add(e).Add(Icmp(b, a, cttest::IsV6(a) ? 129 : 0, 77))
          .Add(cttest::IcmpError(b, a, IpOf(u))).Add(cttest::IcmpError(b, a, IpOf(e)), 4, 1, 2 | 1 << 2)
          .Add(Udp(a, b, 5001, 53), 5, 100, 1 | 7 << 2).Add(Proto(a, b, 132)).Add(Proto(b, a, 132))
          .Add(Proto(a, b, 47), 4, 1, 1 | 7 << 2);
      write(q);
      // More flows than the table holds.
      Seq full(uint8_t(config & ~(31 << 1)) | uint8_t(3 << 1));
      for (uint16_t p = 0; p < 12; ++p) full.Add(Udp(a, b, uint16_t(6000 + p), 53), uint8_t(4 | (p & 1) << 6));
      full.Add(Udp(b, a, 53, 6000)).Add(Tcp(a, b, 7000, 22, 0x02), 5, 40);
      write(full);
      // A big table 60/63 full, then new flows (the cuckoo step), expiry and GC.
      Seq big(config, uint8_t(2 << 6 | 60));
      for (uint16_t p = 0; p < 24; ++p) big.Add(Udp(a, b, uint16_t(8000 + p), 53));
      big.Add(Udp(a, b, 9000, 53), 5, 40, 1 | 7 << 2).Add(Tcp(a, b, 9001, 22, 0x02), 4, 1, 1 | 7 << 2);
      write(big);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (!fuzz::SeedDir()) return 0;
  WriteSeeds();
  std::exit(0);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  fuzz::Reader in{data + 2, data + size};
  Harness h(data[0], data[1]);
  uint64_t now = kStartNs;
  while (in.left() >= 4) {
    const uint8_t ctl = in.U8();
    const uint8_t dt = in.U8();
    const uint16_t w = in.U16();
    fuzz::Bytes frame = in.Take(w & 0x7ff);  // exactly its length on the heap
    const uint32_t len = uint32_t(frame.size());
    now += dt * kUnitNs[ctl & 3];
    if (ctl & 8) fuzz::FixIp4Checksum(frame.data(), len);
    const uint8_t zone = (ctl >> 4) & 3;
    ct::Table& t = *h.tables[(ctl >> 6) & 1 & (h.ntables - 1)];
    ParsedFrame pf;
    ParseFrame(frame.data(), len, false, &pf);
    if (pf.cls == FrameClass::kNdp) pf.cls = FrameClass::kIPv6;  // judged by the rules
    if (pf.cls == FrameClass::kIPv4 || pf.cls == FrameClass::kIPv6) {
      ct::Result r;
      t.Track(frame.data(), pf, zone, now, &r);
      FUZZ_CHECK(OneCtBit(r.state));
      static const bool verbose = std::getenv("FLATWALL_FUZZ_VERBOSE");
      if (verbose) std::fprintf(stderr, "ct state %#x%s\n", r.state, r.pending ? " pending" : "");
      if (r.pending) {
        FUZZ_CHECK(r.state == kCtNew && !r.found && (r.entry.flags & ct::kUsed));
      }
      if (r.found) FUZZ_CHECK(r.found->flags & ct::kUsed);
      if (pf.later_fragment) FUZZ_CHECK(r.state == kCtUntracked);
      if (pf.l4_truncated && !pf.later_fragment) FUZZ_CHECK(r.state == kCtInvalid);
      if ((ctl & 4) && r.pending) {
        const uint32_t before = t.size();
        const uint64_t failed = t.stats().insert_failed.v.load();
        const bool ok = t.Commit(r, now);
        FUZZ_CHECK(ok ? t.size() <= before + 1 : t.size() <= before);
        FUZZ_CHECK(ok || t.stats().insert_failed.v.load() == failed + 1);
        if (ok) {  // the new flow is stored: listed by its own endpoint
          ct::Filter f;
          f.family = r.entry.key.family, f.proto = r.entry.key.proto, f.zone = zone;
          f.has_addr = true, std::memcpy(f.addr, r.entry.key.a, 16), f.port = r.entry.key.pa;
          std::vector<ct::FlowView> v;
          FUZZ_CHECK(t.List(f, 1, now, &v) == 1);
        }
      }
    }
    Control(t, (w >> 11) & 3, w >> 13, pf, zone, now);
    for (int i = 0; i < h.ntables; ++i) CheckTable(*h.tables[i], false);
  }
  for (int i = 0; i < h.ntables; ++i) CheckTable(*h.tables[i], true);
  return 0;
}
