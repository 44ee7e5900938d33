// Fuzz target: the packed table set, the native half of a snapshot (and of
// every rule load): src/control/snapshot.ts checks a snapshot's SHA-256
// and hands its packed tables to the addon, which validates them
// (classifier/table_set.h ParseTableSet: header, descriptors, records),
// builds the classifiers, and parses the extension section of match
// programs and their states (extensions/ext_table.h) -- Ruleset::Build.
//
// Feeds: u16 (LE) n, n bytes of one extra frame, then the rest as one
// packed buffer to Ruleset::Build (rule ids below 4096, four ports). When
// the buffer is accepted, the extra frame (when it parses as IPv4/IPv6)
// and a fixed set of frames (IPv4 and IPv6 TCP/UDP/ICMP, VLAN-tagged, with
// IPv4 options, IPv6 hop-by-hop, fragment, routing and AH headers, IPv4
// ESP, a later fragment, a cut-short TCP header) are walked through every hook's table with several interface
// pairs and ct states, with the frame in the ops' context (writable, as
// TCPMSS needs) and without it (evaluateRuleset's key-only walks), the
// fake clock advancing for the rate matches; and every match program of
// the section is run on every frame of its table's family, reachable by a
// walk or not (a walk mostly ends at an early rule).
// Checks: validation never reads outside the buffer and refuses bad input
// with std::invalid_argument (nothing else escapes); an accepted buffer's
// walks end -- in a record of that table with a terminal action (ACCEPT,
// DROP, REJECT with a known reject-with), an accept-all for a missing
// table, a hot drop, or no match -- and no classifier, hot-drop walk or
// match program reads or writes outside the frame or the buffer; a
// program answers 0, 1 or 2 (hot drop).
// Seeds: synthetic table sets and the packed buffers the TypeScript
// compiler makes of the repo's rule files (scripts/fuzz.js passes them in
// FLATWALL_FUZZ_TABLES; extension sections included), each alone and with
// a few of the repo's pcap frames.
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

#include "classifier/rule_table.h"
#include "classifier/table_set.h"
#include "dataplane/bytes.h"
#include "dataplane/hotdrop.h"
#include "dataplane/parse.h"
#include "dataplane/ruleset.h"
#include "fuzz/fuzz_common.h"
#include "test/ct_frames.h"
#include "test/synth.h"

namespace flatwall {
namespace {

constexpr uint32_t kRuleCount = 4096;

struct Visitor {
  ext::Context cx;
  uint32_t matched = 0;
  void OnMatch(const RuleCommon&) { ++matched; }
  void OnLog(const RuleCommon&) {}
  void OnExt() {}
  const ext::Context& ext_context() const { return cx; }
};

struct Frame {
  fuzz::Bytes bytes;
  ParsedFrame pf;
};

fuzz::Bytes Build(const cttest::Pkt& p) { return cttest::Frame(p); }

bool ParseIp(Frame* f) {
  ParseFrame(f->bytes.data(), uint32_t(f->bytes.size()), false, &f->pf);
  if (f->pf.cls == FrameClass::kNdp) f->pf.cls = FrameClass::kIPv6;  // judged by the rules
  return f->pf.cls == FrameClass::kIPv4 || f->pf.cls == FrameClass::kIPv6;
}

const std::vector<Frame>& FixedFrames() {
  static const std::vector<Frame>* frames = [] {
    std::vector<fuzz::Bytes> raw;
    auto pkt = [](const char* s, const char* d, uint8_t proto, uint16_t sp, uint16_t dp, uint8_t flags) {
      cttest::Pkt p;
      p.src = s, p.dst = d, p.proto = proto, p.sport = sp, p.dport = dp, p.flags = flags;
      p.type = proto == 58 ? 128 : 8, p.id = 5;
      p.payload = {1, 2, 3, 4, 5, 6, 7, 8};
      return p;
    };
    raw.push_back(Build(pkt("10.0.0.1", "10.0.0.2", 6, 1000, 22, 0x02)));
    raw.push_back(Build(pkt("10.1.2.3", "192.168.1.1", 17, 5353, 53, 0)));
    raw.push_back(Build(pkt("10.0.0.2", "10.0.0.1", 1, 0, 0, 0)));
    raw.push_back(Build(pkt("2001:db8::1", "2001:db8::2", 6, 40000, 443, 0x12)));
    raw.push_back(Build(pkt("2001:db8::2", "2001:db8::1", 17, 123, 123, 0)));
    raw.push_back(Build(pkt("fe80::1", "2001:db8::1", 58, 0, 0, 0)));
    {  // IPv4 later fragment
      cttest::Pkt p = pkt("10.0.0.1", "10.0.0.2", 17, 1, 2, 0);
      p.frag = 0x0010;
      raw.push_back(Build(p));
    }
    {  // TCP header cut short: 20-byte IPv4 header, 10 bytes of TCP
      fuzz::Bytes f = Build(pkt("10.0.0.1", "10.0.0.2", 6, 1000, 80, 0x10));
      f.resize(14 + 20 + 10);
      net::Store16(&f[14 + 2], 30);
      net::Store16(&f[14 + 10], 0);
      net::Store16(&f[14 + 10], net::Csum(&f[14], 20));
      raw.push_back(f);
    }
    {  // VLAN-tagged ICMP echo
      fuzz::Bytes f = Build(pkt("10.9.9.9", "10.0.0.1", 1, 0, 0, 0));
      const uint8_t tag[4] = {0x81, 0x00, 0x00, 0x07};
      f.insert(f.begin() + 12, tag, tag + 4);
      raw.push_back(f);
    }
    {  // IPv4 with a record-route option (IHL 6) and UDP
      fuzz::Bytes f = Build(pkt("10.0.0.5", "10.0.0.6", 17, 68, 67, 0));
      const uint8_t opt[4] = {7, 3, 4, 0};  // RR, length 3, pointer 4, EOL
      f.insert(f.begin() + 14 + 20, opt, opt + 4);
      f[14] = 0x46;
      net::Store16(&f[14 + 2], uint16_t(f.size() - 14));
      net::Store16(&f[14 + 10], 0);
      net::Store16(&f[14 + 10], net::Csum(&f[14], 24));
      raw.push_back(f);
    }
    {  // IPv6 hop-by-hop + atomic fragment header + TCP
      fuzz::Bytes f = Build(pkt("2001:db8::7", "2001:db8::8", 6, 2222, 22, 0x02));
      const uint8_t ext[16] = {44, 0, 1, 4, 0, 0, 0, 0,   // HBH: next frag, len 0, PadN
                               6, 0, 0, 0, 0, 0, 0, 1};   // frag: next TCP, offset 0, M 0, id 1
      f.insert(f.begin() + 14 + 40, ext, ext + 16);
      f[14 + 6] = 0;
      net::Store16(&f[14 + 4], uint16_t(f.size() - 14 - 40));
      raw.push_back(f);
    }
    {  // IPv6 routing header (type 0, 1 segment left, one address) + UDP
      fuzz::Bytes f = Build(pkt("2001:db8::9", "2001:db8::a", 17, 520, 521, 0));
      uint8_t rh[24] = {17, 2, 0, 1};  // next UDP, 3 x 8 bytes, type 0, segments left 1
      rh[8] = 0x20, rh[9] = 0x01, rh[23] = 0x0b;
      f.insert(f.begin() + 14 + 40, rh, rh + 24);
      f[14 + 6] = 43;
      net::Store16(&f[14 + 4], uint16_t(f.size() - 14 - 40));
      raw.push_back(f);
    }
    {  // IPv6 AH (SPI 5) + TCP
      fuzz::Bytes f = Build(pkt("2001:db8::b", "2001:db8::c", 6, 3000, 25, 0x02));
      uint8_t ah[24] = {6, 4};  // next TCP, (4 + 2) x 4 bytes
      ah[7] = 5, ah[11] = 1;    // SPI 5, sequence 1
      f.insert(f.begin() + 14 + 40, ah, ah + 24);
      f[14 + 6] = 51;
      net::Store16(&f[14 + 4], uint16_t(f.size() - 14 - 40));
      raw.push_back(f);
    }
    {  // IPv4 ESP, SPI 150
      cttest::Pkt p = pkt("10.0.0.7", "10.0.0.8", 50, 0, 0, 0);
      p.payload = {0, 0, 0, 150, 0, 0, 0, 1, 9, 9, 9, 9};
      raw.push_back(Build(p));
    }
    auto* out = new std::vector<Frame>();
    for (fuzz::Bytes& b : raw) {
      Frame fr;
      fr.bytes = std::move(b);
      if (!ParseIp(&fr)) {
        std::fprintf(stderr, "tableset_fuzz: fixed frame %zu does not parse\n", out->size());
        std::abort();
      }
      out->push_back(std::move(fr));
    }
    return out;
  }();
  return *frames;
}

void CheckVerdict(const RuleCommon* v) {
  if (!v || v == &Ruleset::kAcceptAll || v == &Ruleset::kHotDrop || v == &kL4HotDrop ||
      v == &kL4HotDropBound)
    return;
  const Action a = Action(v->action);
  FUZZ_CHECK(a == Action::kAccept || a == Action::kDrop || a == Action::kReject);
  if (a == Action::kReject) FUZZ_CHECK(v->arg <= uint32_t(RejectWith::kIcmp6PortUnreachable));
  FUZZ_CHECK(v->rule_id < kRuleCount);
}

// One walk of `f` through hook h's table (or its program runs), with a
// fresh writable copy of the frame.
struct Ctx {
  fuzz::Bytes copy;
  Visitor v;
  Ctx(const Frame& f, bool with_frame, Hook hook, uint64_t now) : copy(f.bytes) {
    if (with_frame) {
      v.cx.frame = copy.data(), v.cx.len = uint32_t(copy.size()), v.cx.pf = &f.pf;
      v.cx.writable = copy.data();
    }
    v.cx.now_ns = v.cx.sets_now_ns = now;
    v.cx.hook = hook;
  }
};

void Walk(const Ruleset& rs, const std::vector<TableInfo>& infos, const std::vector<const Frame*>& frames,
          uint64_t* now) {
  static const uint16_t kIfaces[3][2] = {{0, 1}, {1, 0}, {2, 3}};
  static const uint8_t kStates[3] = {kCtNew, kCtEstablished, kCtInvalid};
  for (const Frame* f : frames) {
    const bool v4 = f->pf.cls == FrameClass::kIPv4;
    for (int with_frame = 0; with_frame < 2; ++with_frame) {
      for (uint32_t h = 0; h < 3; ++h) {
        for (int i = 0; i < 3; ++i) {
          *now += 100000000;  // 100 ms
          Ctx c(*f, with_frame, Hook(h), *now);
          const uint8_t state = kStates[(h + i) % 3];
          if (v4) {
            PacketKey4 k = f->pf.key4;
            k.c.iif = kIfaces[i][0], k.c.oif = kIfaces[i][1], k.c.ct_state = state;
            CheckVerdict(rs.Filter(Hook(h), k, c.v));
          } else {
            PacketKey6 k = f->pf.key6;
            k.c.iif = kIfaces[i][0], k.c.oif = kIfaces[i][1], k.c.ct_state = state;
            CheckVerdict(rs.Filter(Hook(h), k, c.v));
          }
        }
      }
      // Every program of a table of the frame's family.
      const ext::ExtTable* ext = rs.ext();
      if (!ext) continue;
      for (uint32_t t = 0; t < infos.size(); ++t) {
        if ((infos[t].family == Family::kIPv4) != v4) continue;
        for (uint32_t r = 0; r < infos[t].count; ++r) {
          const ext::Entry* e = ext->Find(t, r);
          if (!e) continue;
          *now += 10000000;  // 10 ms
          Ctx c(*f, with_frame, infos[t].hook, *now);
          const int ok = v4 ? ext->Run(*e, f->pf.key4, c.v.cx) : ext->Run(*e, f->pf.key6, c.v.cx);
          FUZZ_CHECK(ok == 0 || ok == 1 || ok == 2);
        }
      }
    }
  }
}

}  // namespace
}  // namespace flatwall

using namespace flatwall;

namespace {

fuzz::Bytes Input(const fuzz::Bytes& frame, const fuzz::Bytes& buffer) {
  fuzz::Bytes in{uint8_t(frame.size()), uint8_t(frame.size() >> 8)};
  in.insert(in.end(), frame.begin(), frame.end());
  in.insert(in.end(), buffer.begin(), buffer.end());
  return in;
}

void WriteSeeds() {
  using synth::Shape;
  std::vector<std::pair<std::string, fuzz::Bytes>> bufs = {
      {"synth-extras", fuzz::Pack(synth::Rules4(Shape::kExtras, 30, 1), synth::Rules6(Shape::kExtras, 20, 2))},
      {"synth-acl4", fuzz::Pack(synth::Rules4(Shape::kAcl, 40, 3), {})},
      {"synth-wild6", fuzz::Pack({}, synth::Rules6(Shape::kWildcard, 30, 4))},
      {"synth-ports", fuzz::Pack(synth::Rules4(Shape::kPortRanges, 30, 5), {})},
  };
  for (auto& b : fuzz::SeedFiles("FLATWALL_FUZZ_TABLES")) bufs.push_back(std::move(b));
  // A few frames of the pcaps: the first IPv4 and IPv6 ones that parse.
  std::vector<fuzz::Bytes> frames;
  bool have4 = false, have6 = false;
  for (const auto& [name, bytes] : fuzz::SeedFrames()) {
    Frame f;
    f.bytes = bytes;
    if (bytes.size() > 0xffff || !ParseIp(&f)) continue;
    bool& have = f.pf.cls == FrameClass::kIPv4 ? have4 : have6;
    if (have) continue;
    have = true;
    frames.push_back(bytes);
  }
  for (const auto& [name, buf] : bufs) {
    fuzz::WriteSeed(name, Input({}, buf));
    for (size_t i = 0; i < frames.size(); ++i) fuzz::WriteSeed(name + "-frame" + std::to_string(i), Input(frames[i], buf));
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  FixedFrames();
  if (!fuzz::SeedDir()) return 0;
  WriteSeeds();
  std::exit(0);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Reader in{data, data + size};
  const uint16_t n = in.U16();
  Frame extra;
  extra.bytes = in.Take(n);
  fuzz::Bytes buf = in.Take(in.left());  // exactly the buffer's bytes on the heap
  std::unique_ptr<Ruleset> rs;
  try {
    rs = Ruleset::Build(buf.data(), buf.size(), {0, 1, 2, 3}, kRuleCount, 1);
  } catch (const std::invalid_argument& e) {
    static const bool verbose = std::getenv("FLATWALL_FUZZ_VERBOSE");
    if (verbose) std::fprintf(stderr, "refused: %s\n", e.what());
    return 0;
  }
  FUZZ_CHECK(rs);
  std::vector<TableInfo> infos;
  std::string error;
  FUZZ_CHECK(ParseTableSet(buf.data(), buf.size(), &infos, &error));
  std::vector<const Frame*> frames;
  for (const Frame& f : FixedFrames()) frames.push_back(&f);
  if (ParseIp(&extra)) frames.push_back(&extra);
  uint64_t now = 1000000000ull;
  Walk(*rs, infos, frames, &now);
  return 0;
}
