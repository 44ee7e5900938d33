// Host mode (dataplane/host.h): the hook a frame walks, its interfaces
// there, the --host parser, -m addrtype's LOCAL/BROADCAST with the host's
// addresses and prefixes, Ruleset::Filter over the INPUT/OUTPUT tables, and
// a flow cache that keeps the hooks apart.
#include <cstring>
#include <string>
#include <vector>

#include "classifier/rule_table.h"
#include "dataplane/flow_cache.h"
#include "dataplane/host.h"
#include "dataplane/hotdrop.h"
#include "dataplane/ruleset.h"
#include "extensions/addrtype.h"
#include "test/dataplane_test_rules.h"
#include "test/dataplane_testing.h"

namespace flatwall {
namespace {

using namespace dptest;

constexpr uint32_t Ip4(uint32_t a, uint32_t b, uint32_t c, uint32_t d) { return a << 24 | b << 16 | c << 8 | d; }

ext::HostAddrs Hosts(std::initializer_list<const char*> list) {
  ext::HostAddrs h;
  std::string error;
  for (const char* s : list) DP_CHECK(ParseHostAddr(s, &h, &error));
  return h;
}

PacketKey4 Key4(uint32_t src, uint32_t dst) {
  PacketKey4 k;
  k.src = src, k.dst = dst;
  k.c.proto = 6, k.c.dport = 22, k.c.flags = kKeyHasL4;
  return k;
}

PacketKey6 Key6(std::initializer_list<uint32_t> src, std::initializer_list<uint32_t> dst) {
  PacketKey6 k;
  std::copy(src.begin(), src.end(), k.src);
  std::copy(dst.begin(), dst.end(), k.dst);
  return k;
}

DP_TEST(HostParseAddresses) {
  ext::HostAddrs h;
  std::string error;
  DP_CHECK(ParseHostAddr("10.0.0.2/24", &h, &error));
  DP_CHECK(ParseHostAddr("192.0.2.7", &h, &error));
  DP_CHECK(ParseHostAddr("fd00::2/64", &h, &error));
  DP_CHECK(ParseHostAddr("::1", &h, &error));
  DP_CHECK_EQ(h.v4.size(), 2u);
  DP_CHECK_EQ(h.v6.size(), 2u);
  DP_CHECK_EQ(h.v4[0].addr, Ip4(10, 0, 0, 2));
  DP_CHECK_EQ(int(h.v4[0].plen), 24);
  DP_CHECK_EQ(int(h.v4[1].plen), 32);
  DP_CHECK_EQ(h.v6[0].addr[0], 0xfd000000u);
  DP_CHECK_EQ(h.v6[0].addr[3], 2u);
  DP_CHECK_EQ(int(h.v6[0].plen), 64);
  DP_CHECK_EQ(int(h.v6[1].plen), 128);
  for (const char* bad : {"10.0.0.2/33", "fd00::2/129", "10.0.0.2/", "10.0.0.2/+4", "10.0.0.256", "eth0", "",
                          "10.0.0.2/24/1", "fd00::2/1000"}) {
    error.clear();
    const bool ok = ParseHostAddr(bad, &h, &error);
    if (ok) std::printf("  accepted %s\n", bad);
    DP_CHECK(!ok);
    DP_CHECK(!error.empty());
  }
  DP_CHECK_EQ(h.v4.size(), 2u);  // nothing added by a refusal
}

DP_TEST(HostChooseHookV4) {
  const ext::HostAddrs h = Hosts({"10.0.0.2/24", "192.0.2.7/31"});
  const uint32_t host = Ip4(10, 0, 0, 2), peer = Ip4(10, 0, 0, 1), far = Ip4(198, 51, 100, 9);
  // No host mode: a bridge.
  DP_CHECK(ChooseHook(Key4(peer, host), nullptr) == Hook::kForward);
  const ext::HostAddrs none;
  DP_CHECK(ChooseHook(Key4(peer, host), &none) == Hook::kForward);
  // To / from the host; the rest forwarded.
  DP_CHECK(ChooseHook(Key4(peer, host), &h) == Hook::kInput);
  DP_CHECK(ChooseHook(Key4(far, Ip4(192, 0, 2, 7)), &h) == Hook::kInput);
  DP_CHECK(ChooseHook(Key4(host, peer), &h) == Hook::kOutput);
  DP_CHECK(ChooseHook(Key4(peer, Ip4(10, 0, 0, 3)), &h) == Hook::kForward);
  DP_CHECK(ChooseHook(Key4(far, peer), &h) == Hook::kForward);
  // The host's address on both sides: judged by INPUT.
  DP_CHECK(ChooseHook(Key4(host, host), &h) == Hook::kInput);
  // Broadcasts and multicast are delivered locally (never forwarded)...
  DP_CHECK(ChooseHook(Key4(peer, Ip4(10, 0, 0, 255)), &h) == Hook::kInput);
  DP_CHECK(ChooseHook(Key4(Ip4(0, 0, 0, 0), Ip4(255, 255, 255, 255)), &h) == Hook::kInput);
  DP_CHECK(ChooseHook(Key4(peer, Ip4(224, 0, 0, 251)), &h) == Hook::kInput);
  DP_CHECK(ChooseHook(Key4(peer, Ip4(127, 0, 0, 1)), &h) == Hook::kInput);
  // ...unless the host sends them.
  DP_CHECK(ChooseHook(Key4(host, Ip4(10, 0, 0, 255)), &h) == Hook::kOutput);
  DP_CHECK(ChooseHook(Key4(host, Ip4(224, 0, 0, 251)), &h) == Hook::kOutput);
  // A /31 has no broadcast address; another prefix's broadcast is forwarded.
  DP_CHECK(ChooseHook(Key4(far, Ip4(192, 0, 2, 7)), &h) == Hook::kInput);
  DP_CHECK(ChooseHook(Key4(far, Ip4(192, 0, 2, 6)), &h) == Hook::kForward);
  DP_CHECK(ChooseHook(Key4(far, Ip4(10, 0, 1, 255)), &h) == Hook::kForward);
}

DP_TEST(HostChooseHookV6) {
  const ext::HostAddrs h = Hosts({"fd00::2/64", "10.0.0.2/24"});
  const auto host = {0xfd000000u, 0u, 0u, 2u};
  const auto peer = {0xfd000000u, 0u, 0u, 1u};
  const auto other = {0xfd000000u, 0u, 0u, 3u};
  DP_CHECK(ChooseHook(Key6(peer, host), &h) == Hook::kInput);
  DP_CHECK(ChooseHook(Key6(host, peer), &h) == Hook::kOutput);
  DP_CHECK(ChooseHook(Key6(peer, other), &h) == Hook::kForward);
  DP_CHECK(ChooseHook(Key6(peer, {0xff020000u, 0u, 0u, 1u}), &h) == Hook::kInput);  // ff02::1
  DP_CHECK(ChooseHook(Key6(host, {0xff020000u, 0u, 0u, 0x10002u}), &h) == Hook::kOutput);
  DP_CHECK(ChooseHook(Key6(peer, {0u, 0u, 0u, 1u}), &h) == Hook::kInput);  // ::1
  DP_CHECK(ChooseHook(Key6(peer, host), nullptr) == Hook::kForward);
  // Only IPv4 addresses given: IPv6 unicast is forwarded, multicast still local.
  const ext::HostAddrs only4 = Hosts({"10.0.0.2/24"});
  DP_CHECK(ChooseHook(Key6(peer, host), &only4) == Hook::kForward);
  DP_CHECK(ChooseHook(Key6(peer, {0xff020000u, 0u, 0u, 1u}), &only4) == Hook::kInput);
}

DP_TEST(HostHookInterfaces) {
  KeyCommon c;
  HookIfaces(Hook::kForward, 3, 5, &c);
  DP_CHECK(c.iif == 3 && c.oif == 5);
  HookIfaces(Hook::kInput, 3, 5, &c);
  DP_CHECK(c.iif == 3 && c.oif == kIfaceNone);
  HookIfaces(Hook::kOutput, 3, 5, &c);
  DP_CHECK(c.iif == kIfaceNone && c.oif == 5);
}

DP_TEST(HostAddrTypeFollowsAddressesAndPrefixes) {
  using namespace ext;
  const HostAddrs h = Hosts({"10.0.0.2/24", "192.0.2.7/31", "198.51.100.1/32", "fd00::2/64"});
  // Without host addresses only the fixed classes.
  DP_CHECK_EQ(AddrType4(Ip4(10, 0, 0, 2), nullptr), uint16_t(kAtUnicast));
  DP_CHECK_EQ(AddrType4(Ip4(10, 0, 0, 255), nullptr), uint16_t(kAtUnicast));
  DP_CHECK_EQ(AddrType4(Ip4(127, 0, 0, 1), nullptr), uint16_t(kAtLocal));
  DP_CHECK_EQ(AddrType4(Ip4(255, 255, 255, 255), nullptr), uint16_t(kAtBroadcast));
  DP_CHECK_EQ(AddrType4(Ip4(239, 255, 255, 250), nullptr), uint16_t(kAtMulticast));
  // The host's addresses are LOCAL, each prefix's broadcast BROADCAST (not
  // for /31 and /32, as the kernel's fib_add_ifaddr), the network address
  // and the rest UNICAST.
  DP_CHECK_EQ(AddrType4(Ip4(10, 0, 0, 2), &h), uint16_t(kAtLocal));
  DP_CHECK_EQ(AddrType4(Ip4(10, 0, 0, 255), &h), uint16_t(kAtBroadcast));
  DP_CHECK_EQ(AddrType4(Ip4(10, 0, 0, 0), &h), uint16_t(kAtUnicast));
  DP_CHECK_EQ(AddrType4(Ip4(10, 0, 0, 3), &h), uint16_t(kAtUnicast));
  DP_CHECK_EQ(AddrType4(Ip4(192, 0, 2, 7), &h), uint16_t(kAtLocal));
  DP_CHECK_EQ(AddrType4(Ip4(192, 0, 2, 6), &h), uint16_t(kAtUnicast));
  DP_CHECK_EQ(AddrType4(Ip4(198, 51, 100, 1), &h), uint16_t(kAtLocal));
  DP_CHECK_EQ(AddrType4(Ip4(198, 51, 100, 255), &h), uint16_t(kAtUnicast));
  DP_CHECK(AddrMatch4(Ip4(10, 0, 0, 255), kAtBroadcast | kAtLocal, &h));
  DP_CHECK(!AddrMatch4(Ip4(10, 0, 0, 3), kAtBroadcast | kAtLocal, &h));
  // IPv6: LOCAL is the host's addresses and ::1; the prefix adds nothing.
  const uint32_t own[4] = {0xfd000000u, 0, 0, 2}, next[4] = {0xfd000000u, 0, 0, 3}, lo[4] = {0, 0, 0, 1};
  DP_CHECK(AddrMatch6(own, kAtLocal, &h));
  DP_CHECK(!AddrMatch6(own, kAtLocal, nullptr));
  DP_CHECK(!AddrMatch6(next, kAtLocal, &h));
  DP_CHECK(AddrMatch6(lo, kAtLocal, nullptr));
  DP_CHECK(AddrMatch6(own, kAtUnicast | kAtLocal, &h));
}

// One table per (family, hook) given, in order.
struct TableSpec {
  Hook hook;
  std::vector<RuleRecord4> v4;
  std::vector<RuleRecord6> v6;
};

std::vector<uint8_t> PackHooks(const std::vector<TableSpec>& specs) {
  struct T { Family f; Hook h; const void* data; uint32_t count, size; };
  std::vector<T> ts;
  for (const auto& s : specs) {
    if (!s.v4.empty()) ts.push_back({Family::kIPv4, s.hook, s.v4.data(), uint32_t(s.v4.size()), sizeof(RuleRecord4)});
    if (!s.v6.empty()) ts.push_back({Family::kIPv6, s.hook, s.v6.data(), uint32_t(s.v6.size()), sizeof(RuleRecord6)});
  }
  size_t off = sizeof(TableSetHeader) + ts.size() * sizeof(TableDesc);
  std::vector<size_t> offs;
  for (const auto& t : ts) offs.push_back(off), off += size_t(t.count) * t.size;
  std::vector<uint8_t> buf(off);
  TableSetHeader hd{kTableMagic, kTableVersion, uint16_t(ts.size()), uint32_t(off), 0};
  std::memcpy(buf.data(), &hd, sizeof hd);
  for (size_t i = 0; i < ts.size(); ++i) {
    TableDesc d{uint8_t(ts[i].f), uint8_t(ts[i].h), uint16_t(ts[i].size), ts[i].count, uint32_t(offs[i]), 0};
    std::memcpy(buf.data() + sizeof hd + i * sizeof d, &d, sizeof d);
    std::memcpy(buf.data() + offs[i], ts[i].data, size_t(ts[i].count) * ts[i].size);
  }
  return buf;
}

struct Tally {
  std::vector<uint32_t> matched;
  ext::Context cx;
  void OnMatch(const RuleCommon& r) { matched.push_back(r.rule_id); }
  void OnLog(const RuleCommon&) {}
  void OnExt() {}
  const ext::Context& ext_context() const { return cx; }
};

// INPUT: ACCEPT tcp:22 -i class 1 (rule 0), "-o eth0" = oif class 2 ACCEPT
// (rule 1, must never match there), policy DROP (2). FORWARD: ACCEPT tcp:22
// (3), policy DROP (4). OUTPUT: DROP tcp:22 (5), "-i eth0" DROP (6),
// policy ACCEPT (7). IPv6: INPUT policy DROP (8) only.
std::vector<uint8_t> HookRules() {
  RuleCommon in22 = ProtoPort(Wild(0, Action::kAccept), 6, 22);
  in22.iif_lo = in22.iif_hi = 1;
  RuleCommon in_o = Wild(1, Action::kAccept);
  in_o.oif_lo = in_o.oif_hi = 2;
  RuleCommon out_i = Wild(6, Action::kDrop);
  out_i.iif_lo = out_i.iif_hi = 2;
  return PackHooks({
      {Hook::kInput, {Rule4(in22), Rule4(in_o), Rule4(Wild(2, Action::kDrop))}, {Rule6(Wild(8, Action::kDrop))}},
      {Hook::kForward, {Rule4(ProtoPort(Wild(3, Action::kAccept), 6, 22)), Rule4(Wild(4, Action::kDrop))}, {}},
      {Hook::kOutput, {Rule4(out_i), Rule4(ProtoPort(Wild(5, Action::kDrop), 6, 22)), Rule4(Wild(7, Action::kAccept))}, {}},
  });
}

DP_TEST(HostRulesetWalksTheHooksTable) {
  const auto buf = HookRules();
  auto rs = Ruleset::Build(buf.data(), buf.size(), {1, 2}, 9, 1);
  PacketKey4 k = Key4(Ip4(10, 0, 0, 1), Ip4(10, 0, 0, 2));
  auto walk = [&](Hook h, uint16_t in, uint16_t out, PacketKey4 key) {
    HookIfaces(h, in, out, &key.c);
    Tally t;
    const RuleCommon* v = rs->Filter(h, key, t);
    return v ? v->rule_id : UINT32_MAX;
  };
  // INPUT: -i is the ingress port's class; the -o rule never holds.
  DP_CHECK_EQ(walk(Hook::kInput, 1, 2, k), 0u);
  DP_CHECK_EQ(walk(Hook::kInput, 2, 1, k), 2u);
  PacketKey4 other = k;
  other.c.dport = 80;
  DP_CHECK_EQ(walk(Hook::kInput, 1, 2, other), 2u);
  // FORWARD as before (Filter(kForward) is Forward).
  DP_CHECK_EQ(walk(Hook::kForward, 1, 2, k), 3u);
  DP_CHECK_EQ(walk(Hook::kForward, 1, 2, other), 4u);
  // OUTPUT: the -i rule never holds; tcp:22 dropped, the rest accepted.
  DP_CHECK_EQ(walk(Hook::kOutput, 2, 1, k), 5u);
  DP_CHECK_EQ(walk(Hook::kOutput, 2, 1, other), 7u);
  // A cut-short L4 header: hot-dropped at INPUT's own first L4 rule
  // (hotdrop.h) when that rule's other fields hold.
  PacketKey4 cut = Key4(Ip4(10, 0, 0, 1), Ip4(10, 0, 0, 2));
  cut.c.flags = kKeyL4Truncated, cut.c.dport = 0;
  HookIfaces(Hook::kInput, 1, 2, &cut.c);
  Tally tc;
  DP_CHECK(rs->Filter(Hook::kInput, cut, tc) == &kL4HotDrop);
  HookIfaces(Hook::kInput, 2, 1, &cut.c);  // -i class 2: rule 0 cannot hold, policy DROP
  DP_CHECK_EQ(rs->Filter(Hook::kInput, cut, tc)->rule_id, 2u);
  // IPv6 without FORWARD / OUTPUT tables accepts there; INPUT drops.
  PacketKey6 k6;
  Tally t;
  DP_CHECK_EQ(rs->Filter(Hook::kInput, k6, t)->rule_id, 8u);
  DP_CHECK(rs->Filter(Hook::kForward, k6, t) == &Ruleset::kAcceptAll);
  DP_CHECK(rs->Filter(Hook::kOutput, k6, t) == &Ruleset::kAcceptAll);
  // A bad rule id in a non-FORWARD table is refused like one in FORWARD.
  bool refused = false;
  try {
    Ruleset::Build(buf.data(), buf.size(), {1, 2}, 8, 1);
  } catch (const std::invalid_argument& e) {
    refused = std::string(e.what()).find("ipv6 INPUT") != std::string::npos;
  }
  DP_CHECK(refused);
}

DP_TEST(HostFlowCacheKeepsHooksApart) {
  const auto buf = HookRules();
  auto rs = Ruleset::Build(buf.data(), buf.size(), {1, 2}, 9, 1);
  rs->generation = 1;
  FlowCache cache(64);
  // The same key through every hook, twice: the second round from the cache.
  PacketKey4 k = Key4(Ip4(10, 0, 0, 1), Ip4(10, 0, 0, 2));
  k.c.iif = 1, k.c.oif = 1;  // one key for all three hooks
  std::vector<uint32_t> got;
  for (int round = 0; round < 2; ++round) {
    for (Hook h : {Hook::kInput, Hook::kForward, Hook::kOutput}) {
      Tally t;
      got.push_back(cache.Filter(*rs, 1, h, k, t)->rule_id);
      DP_CHECK_EQ(t.matched.size(), 1u);
    }
  }
  DP_CHECK((got == std::vector<uint32_t>{0, 3, 5, 0, 3, 5}));
  DP_CHECK_EQ(cache.hits(), 3u);
  DP_CHECK_EQ(cache.misses(), 3u);
}

}  // namespace
}  // namespace flatwall
