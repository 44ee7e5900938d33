// Parser selftests driven by the pcap fixtures in native/test/pcap (see
// gen_fixtures.py there): every frame is parsed from an exactly-sized heap
// copy, so under AddressSanitizer any read past the frame is a failure, and
// the result is compared with the frame's .expect line. Then every prefix
// and a few thousand mutations of every fixture frame are parsed, to show
// that truncated and corrupted input never reads out of bounds.
#include <arpa/inet.h>

#include <map>
#include <sstream>

#include "dataplane/parse.h"
#include "test/dataplane_testing.h"

namespace flatwall {
namespace {

using dptest::FixturePath;

const char* ClassName(FrameClass c) {
  switch (c) {
    case FrameClass::kMalformed: return "malformed";
    case FrameClass::kIPv4: return "ipv4";
    case FrameClass::kIPv6: return "ipv6";
    case FrameClass::kArp: return "arp";
    case FrameClass::kNdp: return "ndp";
    case FrameClass::kOther: return "other";
  }
  return "?";
}

std::string Addr4(uint32_t a) {
  in_addr x;
  x.s_addr = htonl(a);
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &x, buf, sizeof buf);
  return buf;
}
std::string Addr6(const uint32_t w[4]) {
  in6_addr x;
  for (int i = 0; i < 4; ++i) {
    const uint32_t be = htonl(w[i]);
    std::memcpy(&x.s6_addr[4 * i], &be, 4);
  }
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(AF_INET6, &x, buf, sizeof buf);
  return buf;
}

// The fields an .expect line may name, as strings.
std::map<std::string, std::string> Describe(const ParsedFrame& p) {
  std::map<std::string, std::string> m;
  m["reason"] = DropReasonName(p.reason);
  m["vlan"] = std::to_string(p.vlan_tags);
  m["frag"] = p.fragment ? "1" : "0";
  m["later"] = p.later_fragment ? "1" : "0";
  m["l3len"] = std::to_string(p.l3_len);
  const KeyCommon* c = nullptr;
  if (p.cls == FrameClass::kIPv4) {
    c = &p.key4.c;
    m["src"] = Addr4(p.key4.src), m["dst"] = Addr4(p.key4.dst);
  } else if (p.cls == FrameClass::kIPv6 || p.cls == FrameClass::kNdp) {
    c = &p.key6.c;
    m["src"] = Addr6(p.key6.src), m["dst"] = Addr6(p.key6.dst);
  }
  if (c) {
    m["proto"] = std::to_string(c->proto);
    m["sport"] = std::to_string(c->sport);
    m["dport"] = std::to_string(c->dport);
    m["icmp"] = std::to_string(c->icmp);
    m["tcpflags"] = std::to_string(c->tcp_flags);
    m["l4"] = (c->flags & kKeyHasL4) ? "1" : "0";
    m["trunc"] = p.l4_truncated ? "1" : "0";
  }
  return m;
}

void CheckFixture(const std::string& name) {
  const auto frames = dptest::ReadPcap(FixturePath(name + ".pcap"));
  const auto lines = dptest::ReadLines(FixturePath(name + ".expect"));
  DP_CHECK(!frames.empty());
  DP_CHECK_EQ(frames.size(), lines.size());
  for (size_t i = 0; i < frames.size() && i < lines.size(); ++i) {
    std::vector<uint8_t> f = frames[i];  // exact-size heap copy
    ParsedFrame p;
    ParseFrame(f.data(), uint32_t(f.size()), false, &p);
    const auto got = Describe(p);
    std::istringstream in(lines[i]);
    std::string cls, kv;
    in >> cls;
    if (cls != ClassName(p.cls)) {
      std::printf("  %s frame %zu: class %s, expected %s (reason %s)\n", name.c_str(), i,
                  ClassName(p.cls), cls.c_str(), DropReasonName(p.reason));
      ++dptest::Failures();
      continue;
    }
    while (in >> kv) {
      const auto eq = kv.find('=');
      const std::string k = kv.substr(0, eq), v = kv.substr(eq + 1);
      auto it = got.find(k);
      const std::string g = it == got.end() ? "(none)" : it->second;
      if (g != v) {
        std::printf("  %s frame %zu: %s=%s, expected %s\n", name.c_str(), i, k.c_str(), g.c_str(),
                    v.c_str());
        ++dptest::Failures();
      }
    }
    if (p.cls == FrameClass::kMalformed) DP_CHECK(IsMalformed(p.reason));
  }
}

DP_TEST(ParseWellFormedFixtures) { CheckFixture("parse_wellformed"); }
DP_TEST(ParseMalformedFixtures) { CheckFixture("parse_malformed"); }
DP_TEST(ParseTruncatedFixtures) { CheckFixture("parse_truncated"); }

// The invariants any parse result must keep, whatever the input.
void CheckInvariants(const ParsedFrame& p, uint32_t len) {
  if (p.cls == FrameClass::kIPv4 || p.cls == FrameClass::kIPv6 || p.cls == FrameClass::kNdp) {
    DP_CHECK(p.l3_off + p.l3_len <= len);
    DP_CHECK(p.l4_off <= p.l3_off + p.l3_len);
    const KeyCommon& c = p.cls == FrameClass::kIPv4 ? p.key4.c : p.key6.c;
    if (p.later_fragment) DP_CHECK(!(c.flags & kKeyHasL4));
    // A cut-short L4 header: a key without L4 and no header offset.
    DP_CHECK_EQ(p.l4_truncated, (c.flags & kKeyL4Truncated) != 0);
    if (p.l4_truncated) {
      DP_CHECK(!(c.flags & kKeyHasL4) && !p.later_fragment && p.l4_off == 0);
      DP_CHECK(c.sport == 0 && c.dport == 0 && c.icmp == 0 && c.tcp_flags == 0);
      DP_CHECK(p.cls != FrameClass::kNdp);
    }
  } else {
    DP_CHECK(!p.l4_truncated);
  }
  if (p.cls == FrameClass::kMalformed) DP_CHECK(IsMalformed(p.reason));
  else DP_CHECK(p.reason == DropReason::kNone);
}

DP_TEST(ParseEveryPrefixOfEveryFixture) {
  for (const char* name : {"parse_wellformed", "parse_malformed", "parse_truncated"}) {
    for (const auto& frame : dptest::ReadPcap(FixturePath(std::string(name) + ".pcap"))) {
      for (size_t n = 0; n <= frame.size(); ++n) {
        std::vector<uint8_t> f(frame.begin(), frame.begin() + n);
        ParsedFrame p;
        // nullptr data for the empty prefix is fine: len 0 is checked first.
        ParseFrame(f.data(), uint32_t(n), n % 2 == 0, &p);
        CheckInvariants(p, uint32_t(n));
      }
    }
  }
}

DP_TEST(ParseMutatedFixtures) {
  uint64_t s = 0x9e3779b97f4a7c15ull;
  auto rnd = [&s]() {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    return s;
  };
  for (const char* name : {"parse_wellformed", "parse_malformed", "parse_truncated"}) {
    for (const auto& frame : dptest::ReadPcap(FixturePath(std::string(name) + ".pcap"))) {
      for (int round = 0; round < 300; ++round) {
        std::vector<uint8_t> f = frame;
        const int flips = 1 + int(rnd() % 4);
        for (int j = 0; j < flips && !f.empty(); ++j) f[rnd() % f.size()] = uint8_t(rnd());
        if (rnd() % 3 == 0 && !f.empty()) f.resize(rnd() % f.size());
        ParsedFrame p;
        ParseFrame(f.data(), uint32_t(f.size()), rnd() % 2 == 0, &p);
        CheckInvariants(p, uint32_t(f.size()));
      }
    }
  }
}

}  // namespace
}  // namespace flatwall
