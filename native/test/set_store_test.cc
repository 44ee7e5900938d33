// The ipset-compatible set store (native/sets/set_store.h): every type and
// family, the packet side's src/dst dimensions and protocols, timeouts under
// an injected clock, nomatch and most-specific-prefix order, maxelem, the
// all-or-nothing restore, swap/rename/destroy with stable ids, GC, a
// random differential against a plain vector scan, and a concurrency smoke
// test (a writer adding, deleting, growing and flushing while readers look
// up, with a grace-period hook like the dataplane's) for ASan/UBSan.
#include "sets/set_store.h"

#include <algorithm>
#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "test/testing.h"

namespace flatwall {
namespace {

using sets::Entry;
using sets::Match;
using sets::SetErrc;
using sets::SetError;
using sets::SetOptions;
using sets::SetStore;
using sets::SetType;

constexpr uint64_t kSec = 1000000000ull;
const uint8_t kSrc[2] = {1, 1}, kDst[2] = {2, 2}, kSrcDst[2] = {1, 2}, kDstSrc[2] = {2, 1};

uint32_t V4(int a, int b, int c, int d) { return uint32_t(a) << 24 | uint32_t(b) << 16 | uint32_t(c) << 8 | uint32_t(d); }

Entry E4(uint32_t addr, uint8_t cidr = 0) {
  Entry e;
  e.family = 4, e.addr[0] = addr, e.cidr = cidr;
  return e;
}
Entry E6(uint32_t w0, uint32_t w1, uint32_t w2, uint32_t w3, uint8_t cidr = 0) {
  Entry e;
  e.family = 6, e.addr[0] = w0, e.addr[1] = w1, e.addr[2] = w2, e.addr[3] = w3, e.cidr = cidr;
  return e;
}
Entry WithPort(Entry e, uint8_t proto, uint16_t port) {
  e.proto = proto, e.port = port;
  return e;
}
Entry Port(uint16_t p) {
  Entry e;
  e.family = 0, e.port = p;
  return e;
}

PacketKey4 K4(uint32_t src, uint32_t dst, uint8_t proto = 6, uint16_t sport = 1000, uint16_t dport = 80) {
  PacketKey4 k;
  k.src = src, k.dst = dst;
  k.c.proto = proto, k.c.sport = sport, k.c.dport = dport;
  k.c.flags = kKeyHasL4;
  return k;
}
PacketKey6 K6(const uint32_t src[4], const uint32_t dst[4], uint8_t proto = 6, uint16_t sport = 1000, uint16_t dport = 80) {
  PacketKey6 k;
  for (int i = 0; i < 4; ++i) k.src[i] = src[i], k.dst[i] = dst[i];
  k.c.proto = proto, k.c.sport = sport, k.c.dport = dport;
  k.c.flags = kKeyHasL4;
  return k;
}

SetOptions Opt(SetType t, uint8_t family = 4) {
  SetOptions o;
  o.type = t, o.family = family;
  return o;
}

// A store whose clock the test moves.
struct Clocked {
  uint64_t now = 1000 * kSec;
  SetStore store;
  Clocked() {
    store.SetClock([this] { return now; });
  }
};

template <typename F>
SetErrc ErrOf(F f) {
  try {
    f();
  } catch (const SetError& e) {
    return e.code;
  }
  return SetErrc(255);
}

FW_TEST(Sets_HashIp4AndDirections) {
  Clocked c;
  SetStore& s = c.store;
  s.Create("bad", Opt(SetType::kHashIp));
  const int32_t id = s.Find("bad");
  FW_CHECK(id >= 0);
  FW_CHECK_EQ(s.Find("nope"), -1);
  FW_CHECK(s.Add("bad", E4(V4(1, 2, 3, 4))));
  FW_CHECK(s.Add("bad", E4(V4(1, 2, 3, 4)), /*exist=*/true) == false);
  FW_CHECK_EQ(int(ErrOf([&] { s.Add("bad", E4(V4(1, 2, 3, 4))); })), int(SetErrc::kExists));
  FW_CHECK(s.TestEntry("bad", E4(V4(1, 2, 3, 4))));
  FW_CHECK(!s.TestEntry("bad", E4(V4(1, 2, 3, 5))));
  const uint64_t now = c.now;
  FW_CHECK(s.Test(id, kSrc, 1, K4(V4(1, 2, 3, 4), V4(9, 9, 9, 9)), now));
  FW_CHECK(!s.Test(id, kDst, 1, K4(V4(1, 2, 3, 4), V4(9, 9, 9, 9)), now));
  FW_CHECK(s.Test(id, kDst, 1, K4(V4(9, 9, 9, 9), V4(1, 2, 3, 4)), now));
  FW_CHECK(!s.Test(id, kSrc, 0, K4(V4(1, 2, 3, 4), 0), now));  // fewer dirs than dims
  FW_CHECK(s.Test(id, kSrcDst, 2, K4(V4(1, 2, 3, 4), 0), now));  // more is fine
  // A later fragment has no L4 header; hash:ip does not need it.
  PacketKey4 frag = K4(V4(1, 2, 3, 4), 0);
  frag.c.flags = 0;
  FW_CHECK(s.Test(id, kSrc, 1, frag, now));
  // Another family never matches.
  const uint32_t a6[4] = {0, 0, 0, V4(1, 2, 3, 4)}, z6[4] = {};
  FW_CHECK(!s.Test(id, kSrc, 1, K6(a6, z6), now));
  FW_CHECK(!s.Test(12345, kSrc, 1, K4(V4(1, 2, 3, 4), 0), now));  // no such id
  FW_CHECK(s.Del("bad", E4(V4(1, 2, 3, 4))));
  FW_CHECK(!s.Test(id, kSrc, 1, K4(V4(1, 2, 3, 4), 0), now));
  FW_CHECK_EQ(int(ErrOf([&] { s.Del("bad", E4(V4(1, 2, 3, 4))); })), int(SetErrc::kNotAdded));
  FW_CHECK(!s.Del("bad", E4(V4(1, 2, 3, 4)), true));
  // The kernel refuses these.
  FW_CHECK_EQ(int(ErrOf([&] { s.Add("bad", E4(0)); })), int(SetErrc::kInvalid));
  FW_CHECK_EQ(int(ErrOf([&] { s.Add("bad", E4(V4(1, 0, 0, 0), 8)); })), int(SetErrc::kInvalid));
  FW_CHECK_EQ(int(ErrOf([&] { s.Add("bad", E6(1, 2, 3, 4)); })), int(SetErrc::kInvalid));
  FW_CHECK_EQ(int(ErrOf([&] { s.Add("nope", E4(1)); })), int(SetErrc::kNoSet));
  Entry t = E4(V4(5, 5, 5, 5));
  t.has_timeout = true, t.timeout = 5;
  FW_CHECK_EQ(int(ErrOf([&] { s.Add("bad", t); })), int(SetErrc::kInvalid));  // set without timeouts
}

FW_TEST(Sets_HashIp6) {
  Clocked c;
  SetStore& s = c.store;
  s.Create("six", Opt(SetType::kHashIp, 6));
  const int32_t id = s.Find("six");
  const uint32_t a[4] = {0x20010db8, 0, 0, 1}, b[4] = {0x20010db8, 0, 0, 2}, v4mapped[4] = {0, 0, 0xffff, V4(1, 2, 3, 4)};
  FW_CHECK(s.Add("six", E6(a[0], a[1], a[2], a[3])));
  FW_CHECK(s.Add("six", E6(v4mapped[0], v4mapped[1], v4mapped[2], v4mapped[3])));
  FW_CHECK(s.Test(id, kSrc, 1, K6(a, b), c.now));
  FW_CHECK(!s.Test(id, kSrc, 1, K6(b, a), c.now));
  FW_CHECK(s.Test(id, kDst, 1, K6(b, a), c.now));
  FW_CHECK(s.Test(id, kSrc, 1, K6(v4mapped, b), c.now));
  FW_CHECK(!s.Test(id, kSrc, 1, K4(V4(1, 2, 3, 4), 0), c.now));  // an IPv4 packet: other family
  FW_CHECK_EQ(int(ErrOf([&] { s.Add("six", E6(0, 0, 0, 0)); })), int(SetErrc::kInvalid));
  FW_CHECK_EQ(int(ErrOf([&] { s.Add("six", E4(1)); })), int(SetErrc::kInvalid));
}

FW_TEST(Sets_HashNetMostSpecificAndNomatch) {
  for (int fam : {4, 6}) {
    Clocked c;
    SetStore& s = c.store;
    s.Create("n", Opt(SetType::kHashNet, uint8_t(fam)));
    const int32_t id = s.Find("n");
    auto net = [&](uint32_t a, uint8_t cidr4) {
      // The IPv6 case puts the IPv4 prefix in the first word: /c -> /c.
      return fam == 4 ? E4(a, cidr4) : E6(a, 0, 0, 0, cidr4);
    };
    auto test = [&](uint32_t a) {
      if (fam == 4) return s.Test(id, kSrc, 1, K4(a, 0), c.now);
      const uint32_t w[4] = {a, 0, 0, 0}, z[4] = {};
      return s.Test(id, kSrc, 1, K6(w, z), c.now);
    };
    FW_CHECK(s.Add("n", net(V4(10, 0, 0, 0), 8)));
    Entry ex = net(V4(10, 1, 0, 0), 16);
    ex.nomatch = true;
    FW_CHECK(s.Add("n", ex));
    FW_CHECK(s.Add("n", net(V4(10, 1, 2, 0), 24)));  // more specific than the exclusion
    FW_CHECK(test(V4(10, 9, 9, 9)));
    FW_CHECK(!test(V4(10, 1, 9, 9)));   // nomatch /16 wins over /8
    FW_CHECK(test(V4(10, 1, 2, 3)));    // /24 wins over the nomatch /16
    FW_CHECK(!test(V4(11, 0, 0, 1)));
    // ipset test: a host tries the prefixes; a network is tested exactly.
    FW_CHECK(s.TestEntry("n", net(V4(10, 9, 9, 9), 0)));
    FW_CHECK(!s.TestEntry("n", net(V4(10, 1, 9, 9), 0)));
    FW_CHECK(!s.TestEntry("n", net(V4(10, 1, 0, 0), 16)));  // the nomatch entry itself
    FW_CHECK(s.TestEntry("n", net(V4(10, 0, 0, 0), 8)));
    FW_CHECK(!s.TestEntry("n", net(V4(10, 0, 0, 0), 9)));
    // The address is masked to its prefix on add, like the kernel.
    FW_CHECK_EQ(int(ErrOf([&] { s.Add("n", net(V4(10, 200, 3, 4), 8)); })), int(SetErrc::kExists));
    Match m = fam == 4 ? s.Lookup(uint32_t(id), kSrc, 1, K4(V4(10, 1, 9, 9), 0), c.now) : Match::kNomatch;
    FW_CHECK(m == Match::kNomatch);
    // Deleting the exclusion brings the /8 back.
    Entry del = net(V4(10, 1, 0, 0), 16);
    FW_CHECK(s.Del("n", del));
    FW_CHECK(test(V4(10, 1, 9, 9)));
    // -exist re-add flips nomatch in place.
    FW_CHECK(!s.Add("n", ex.nomatch ? [&] { Entry x = net(V4(10, 0, 0, 0), 8); x.nomatch = true; return x; }() : ex, true));
    FW_CHECK(!test(V4(10, 9, 9, 9)));
    FW_CHECK(test(V4(10, 1, 2, 3)));
    FW_CHECK_EQ(int(ErrOf([&] { s.Add("n", net(V4(10, 0, 0, 0), fam == 4 ? 33 : 129)); })), int(SetErrc::kInvalid));
  }
}

FW_TEST(Sets_HashNetHostAndLongPrefixes6) {
  Clocked c;
  SetStore& s = c.store;
  s.Create("n6", Opt(SetType::kHashNet, 6));
  const int32_t id = s.Find("n6");
  const uint32_t host[4] = {0x20010db8, 1, 2, 3}, other[4] = {0x20010db8, 1, 2, 4}, z[4] = {};
  FW_CHECK(s.Add("n6", E6(host[0], host[1], host[2], host[3])));  // /128
  FW_CHECK(s.Add("n6", E6(0x20010db8, 1, 2, 0, 127)));           // covers ::2:0..::2:1? no: 3 and 2
  FW_CHECK(s.Test(id, kSrc, 1, K6(host, z), c.now));
  FW_CHECK(!s.Test(id, kSrc, 1, K6(other, z), c.now));
  Entry ex = E6(0x20010db8, 1, 2, 2, 128);
  ex.nomatch = true;
  FW_CHECK(s.Add("n6", ex));
  const uint32_t two[4] = {0x20010db8, 1, 2, 2};
  FW_CHECK(!s.Test(id, kSrc, 1, K6(two, z), c.now));
  const uint32_t wide[4] = {0x20010db9, 0, 0, 0};
  FW_CHECK(s.Add("n6", E6(0x20010db8, 0, 0, 0, 16)));
  FW_CHECK(s.Test(id, kSrc, 1, K6(wide, z), c.now));
  FW_CHECK(!s.Test(id, kSrc, 1, K6(two, z), c.now));  // /128 nomatch still wins
}

FW_TEST(Sets_HashIpPortProtocols) {
  Clocked c;
  SetStore& s = c.store;
  s.Create("p", Opt(SetType::kHashIpPort));
  const int32_t id = s.Find("p");
  const uint32_t ip = V4(192, 0, 2, 1), peer = V4(198, 51, 100, 7);
  FW_CHECK(s.Add("p", WithPort(E4(ip), 6, 80)));
  FW_CHECK(s.Add("p", WithPort(E4(ip), 17, 53)));
  FW_CHECK(s.Add("p", WithPort(E4(ip), 132, 5000)));
  FW_CHECK(s.Add("p", WithPort(E4(ip), 136, 7)));
  FW_CHECK(s.Add("p", WithPort(E4(ip), 1, 8 << 8 | 0)));  // icmp:8/0 (echo-request)
  FW_CHECK(s.Add("p", WithPort(E4(ip), 47, 1234)));       // gre: port forced to 0
  const uint64_t now = c.now;
  // dst,dst: the address and port of the destination.
  FW_CHECK(s.Test(id, kDst, 2, K4(peer, ip, 6, 1000, 80), now));
  FW_CHECK(!s.Test(id, kDst, 2, K4(peer, ip, 17, 1000, 80), now));  // udp:80 is not tcp:80
  FW_CHECK(s.Test(id, kDst, 2, K4(peer, ip, 17, 1000, 53), now));
  FW_CHECK(s.Test(id, kDst, 2, K4(peer, ip, 132, 1, 5000), now));
  FW_CHECK(s.Test(id, kDst, 2, K4(peer, ip, 136, 1, 7), now));
  FW_CHECK(!s.Test(id, kDst, 1, K4(peer, ip, 6, 1000, 80), now));  // one flag for two dimensions
  // src,dst and dst,src pick address and port independently.
  FW_CHECK(s.Test(id, kSrcDst, 2, K4(ip, peer, 6, 1000, 80), now));
  FW_CHECK(!s.Test(id, kSrcDst, 2, K4(peer, ip, 6, 1000, 80), now));
  FW_CHECK(s.Test(id, kDstSrc, 2, K4(peer, ip, 6, 80, 1000), now));
  FW_CHECK(s.Test(id, kSrc, 2, K4(ip, peer, 6, 80, 1000), now));
  // ICMP: type << 8 | code of the packet.
  PacketKey4 echo = K4(peer, ip, 1, 0, 0);
  echo.c.icmp = 8 << 8;
  FW_CHECK(s.Test(id, kDst, 2, echo, now));
  echo.c.icmp = 0;  // echo-reply
  FW_CHECK(!s.Test(id, kDst, 2, echo, now));
  // Other protocols: port 0 whatever the key says.
  FW_CHECK(s.Test(id, kDst, 2, K4(peer, ip, 47, 0, 0), now));
  FW_CHECK(s.TestEntry("p", WithPort(E4(ip), 47, 0)));
  // DCCP has ports in our key but the kernel reads none: port 0.
  FW_CHECK(!s.Test(id, kDst, 2, K4(peer, ip, 33, 1000, 80), now));
  FW_CHECK(s.Add("p", WithPort(E4(ip), 33, 0)));
  FW_CHECK(s.Test(id, kDst, 2, K4(peer, ip, 33, 1000, 80), now));
  // A later fragment: no ports, no match (ip_set_get_ip4_port).
  PacketKey4 frag = K4(peer, ip, 6, 0, 0);
  frag.c.flags = 0;
  FW_CHECK(!s.Test(id, kDst, 2, frag, now));
  frag.c.proto = 47;
  FW_CHECK(!s.Test(id, kDst, 2, frag, now));
  FW_CHECK_EQ(int(ErrOf([&] { s.Add("p", WithPort(E4(ip), 0, 1)); })), int(SetErrc::kInvalid));
  // IPv6 with ICMPv6.
  s.Create("p6", Opt(SetType::kHashIpPort, 6));
  const int32_t id6 = s.Find("p6");
  const uint32_t a6[4] = {0x20010db8, 0, 0, 1}, b6[4] = {0x20010db8, 0, 0, 2};
  FW_CHECK(s.Add("p6", WithPort(E6(a6[0], a6[1], a6[2], a6[3]), 58, 128 << 8)));
  FW_CHECK(s.Add("p6", WithPort(E6(a6[0], a6[1], a6[2], a6[3]), 6, 22)));
  PacketKey6 ping = K6(b6, a6, 58, 0, 0);
  ping.c.icmp = 128 << 8;
  FW_CHECK(s.Test(id6, kDst, 2, ping, now));
  FW_CHECK(s.Test(id6, kDst, 2, K6(b6, a6, 6, 5555, 22), now));
  FW_CHECK(!s.Test(id6, kDst, 2, K6(b6, a6, 6, 5555, 23), now));
  FW_CHECK(!s.Test(id6, kDst, 2, K4(V4(1, 1, 1, 1), V4(2, 2, 2, 2)), now));
}

FW_TEST(Sets_HashNetPort) {
  Clocked c;
  SetStore& s = c.store;
  s.Create("np", Opt(SetType::kHashNetPort));
  const int32_t id = s.Find("np");
  FW_CHECK(s.Add("np", WithPort(E4(V4(10, 0, 0, 0), 8), 6, 22)));
  Entry ex = WithPort(E4(V4(10, 1, 0, 0), 16), 6, 22);
  ex.nomatch = true;
  FW_CHECK(s.Add("np", ex));
  FW_CHECK(s.Add("np", WithPort(E4(V4(10, 1, 0, 0), 16), 17, 53)));
  const uint64_t now = c.now;
  FW_CHECK(s.Test(id, kSrcDst, 2, K4(V4(10, 2, 3, 4), 0, 6, 999, 22), now));
  FW_CHECK(!s.Test(id, kSrcDst, 2, K4(V4(10, 1, 3, 4), 0, 6, 999, 22), now));
  FW_CHECK(s.Test(id, kSrcDst, 2, K4(V4(10, 1, 3, 4), 0, 17, 999, 53), now));
  FW_CHECK(!s.Test(id, kSrcDst, 2, K4(V4(10, 2, 3, 4), 0, 6, 999, 23), now));
  FW_CHECK(!s.TestEntry("np", WithPort(E4(V4(10, 1, 3, 4)), 6, 22)));
  FW_CHECK(s.TestEntry("np", WithPort(E4(V4(10, 2, 3, 4)), 6, 22)));
}

FW_TEST(Sets_BitmapPort) {
  Clocked c;
  SetStore& s = c.store;
  SetOptions o = Opt(SetType::kBitmapPort, 0);
  o.port_from = 1024, o.port_to = 1;  // swapped, as the kernel does
  s.Create("b", o);
  const int32_t id = s.Find("b");
  FW_CHECK(s.Add("b", Port(22)));
  FW_CHECK(s.Add("b", Port(1024)));
  FW_CHECK_EQ(int(ErrOf([&] { s.Add("b", Port(2000)); })), int(SetErrc::kOutOfRange));
  FW_CHECK_EQ(int(ErrOf([&] { s.Add("b", Port(22)); })), int(SetErrc::kExists));
  const uint64_t now = c.now;
  FW_CHECK(s.Test(id, kDst, 1, K4(1, 2, 6, 5000, 22), now));
  FW_CHECK(s.Test(id, kSrc, 1, K4(1, 2, 17, 22, 5000), now));
  FW_CHECK(!s.Test(id, kSrc, 1, K4(1, 2, 17, 5000, 22), now));
  FW_CHECK(!s.Test(id, kDst, 1, K4(1, 2, 132, 5000, 22), now));  // SCTP: ip_set_get_ip_port says no
  const uint32_t a[4] = {1, 2, 3, 4};
  FW_CHECK(s.Test(id, kDst, 1, K6(a, a, 6, 1, 1024), now));       // either family
  FW_CHECK(!s.Test(id, kDst, 1, K6(a, a, 6, 1, 1025), now));
  FW_CHECK(s.Del("b", Port(22)));
  FW_CHECK(!s.Test(id, kDst, 1, K4(1, 2, 6, 5000, 22), now));
  auto l = s.List("b", true);
  FW_CHECK_EQ(l.size(), size_t(1));
  FW_CHECK_EQ(l[0].options.port_from, uint16_t(1));
  FW_CHECK_EQ(l[0].options.port_to, uint16_t(1024));
  FW_CHECK_EQ(l[0].entries, 1u);
  // With timeouts.
  SetOptions t = Opt(SetType::kBitmapPort, 0);
  t.port_from = 0, t.port_to = 65535, t.has_timeout = true, t.timeout = 10;
  s.Create("bt", t);
  const int32_t tid = s.Find("bt");
  FW_CHECK(s.Add("bt", Port(0)));
  Entry perm = Port(65535);
  perm.has_timeout = true, perm.timeout = 0;
  FW_CHECK(s.Add("bt", perm));
  FW_CHECK(s.Test(uint32_t(tid), kDst, 1, K4(1, 2, 6, 1, 65535), c.now));
  c.now += 11 * kSec;
  FW_CHECK(!s.TestEntry("bt", Port(0)));
  FW_CHECK(s.TestEntry("bt", Port(65535)));
  FW_CHECK(s.Add("bt", Port(0)));  // an expired element is added anew
  FW_CHECK_EQ(s.List("bt", false)[0].entries, 2u);
}

FW_TEST(Sets_TimeoutsWithInjectedClock) {
  Clocked c;
  SetStore& s = c.store;
  SetOptions o = Opt(SetType::kHashIp);
  o.has_timeout = true, o.timeout = 100;
  o.comment = true;
  s.Create("t", o);
  const int32_t id = s.Find("t");
  Entry a = E4(V4(1, 1, 1, 1));  // default 100 s
  Entry b = E4(V4(1, 1, 1, 2));
  b.has_timeout = true, b.timeout = 10;
  b.has_comment = true, b.comment = "short";
  Entry p = E4(V4(1, 1, 1, 3));
  p.has_timeout = true, p.timeout = 0;  // permanent
  FW_CHECK(s.Add("t", a) && s.Add("t", b) && s.Add("t", p));
  auto l = s.List("t", true);
  FW_CHECK_EQ(l[0].entries, 3u);
  for (const Entry& e : l[0].members) {
    FW_CHECK(e.has_timeout);
    if (e.addr[0] == V4(1, 1, 1, 1)) FW_CHECK_EQ(e.timeout, 100u);
    if (e.addr[0] == V4(1, 1, 1, 2)) {
      FW_CHECK_EQ(e.timeout, 10u);
      FW_CHECK(e.has_comment && e.comment == "short");
    }
    if (e.addr[0] == V4(1, 1, 1, 3)) FW_CHECK_EQ(e.timeout, 0u);
  }
  c.now += 9 * kSec + kSec / 2;
  FW_CHECK_EQ(s.List("t", true)[0].members.size(), size_t(3));
  const auto later = s.List("t", true);
  for (const Entry& e : later[0].members)
    if (e.addr[0] == V4(1, 1, 1, 2)) FW_CHECK_EQ(e.timeout, 1u);  // floor, at least 1
  c.now += kSec;  // b expired
  FW_CHECK(!s.Test(id, kSrc, 1, K4(V4(1, 1, 1, 2), 0), c.now));
  FW_CHECK(s.Test(id, kSrc, 1, K4(V4(1, 1, 1, 1), 0), c.now));
  FW_CHECK(!s.TestEntry("t", b));
  FW_CHECK_EQ(int(ErrOf([&] { s.Del("t", b); })), int(SetErrc::kNotAdded));
  // -exist re-add refreshes the timeout (and drops the comment not given).
  Entry a2 = a;
  a2.has_timeout = true, a2.timeout = 1000;
  FW_CHECK(!s.Add("t", a2, true));
  c.now += 500 * kSec;
  FW_CHECK(s.Test(id, kSrc, 1, K4(V4(1, 1, 1, 1), 0), c.now));
  FW_CHECK(s.Test(id, kSrc, 1, K4(V4(1, 1, 1, 3), 0), c.now));  // permanent
  // The expired one is reclaimed by the GC.
  FW_CHECK_EQ(s.Gc(1u << 20), size_t(1));
  FW_CHECK_EQ(s.List("t", false)[0].entries, 2u);
  FW_CHECK(s.Add("t", b));  // and can come back
  FW_CHECK(s.TestEntry("t", b));
}

FW_TEST(Sets_ExpiredNetFallsBackToShorterPrefix) {
  Clocked c;
  SetStore& s = c.store;
  SetOptions o = Opt(SetType::kHashNet);
  o.has_timeout = true;
  s.Create("n", o);
  const int32_t id = s.Find("n");
  Entry wide = E4(V4(10, 0, 0, 0), 8);
  wide.has_timeout = true, wide.timeout = 0;
  Entry narrow = E4(V4(10, 1, 0, 0), 16);
  narrow.nomatch = true, narrow.has_timeout = true, narrow.timeout = 5;
  FW_CHECK(s.Add("n", wide) && s.Add("n", narrow));
  FW_CHECK(!s.Test(id, kSrc, 1, K4(V4(10, 1, 1, 1), 0), c.now));
  c.now += 6 * kSec;  // the exclusion expires: the /8 matches again (mtype_test_cidrs goes on)
  FW_CHECK(s.Test(id, kSrc, 1, K4(V4(10, 1, 1, 1), 0), c.now));
}

FW_TEST(Sets_MaxelemAndFull) {
  Clocked c;
  SetStore& s = c.store;
  SetOptions o = Opt(SetType::kHashIp);
  o.maxelem = 3, o.has_timeout = true, o.timeout = 10;
  s.Create("f", o);
  for (int i = 1; i <= 3; ++i) FW_CHECK(s.Add("f", E4(uint32_t(i))));
  try {
    s.Add("f", E4(4));
    FW_CHECK(false);
  } catch (const SetError& e) {
    FW_CHECK_EQ(int(e.code), int(SetErrc::kFull));
    FW_CHECK_EQ(std::string(e.what()), std::string("Hash is full, cannot add more elements"));
  }
  c.now += 11 * kSec;  // all expired: an add reclaims them first
  FW_CHECK(s.Add("f", E4(4)));
  FW_CHECK_EQ(s.List("f", false)[0].entries, 1u);
  // Growing to 100k entries one at a time, within maxelem, keeps the bound.
  SetOptions big = Opt(SetType::kHashIp);
  big.maxelem = 100000, big.hashsize = 64;
  s.Create("big", big);
  for (uint32_t i = 1; i <= 100000; ++i) s.Add("big", E4(i));
  FW_CHECK_EQ(int(ErrOf([&] { s.Add("big", E4(100001)); })), int(SetErrc::kFull));
  const auto info = s.List("big", false)[0];
  FW_CHECK_EQ(info.entries, 100000u);
  FW_CHECK(info.memory_bytes <= 262144u * 24u + 4096u);  // next_pow2(2 * maxelem) slots
  FW_CHECK(s.TestEntry("big", E4(77777)));
}

FW_TEST(Sets_CreateOptionsNormalised) {
  SetStore s;
  SetOptions o = Opt(SetType::kHashIp);
  o.hashsize = 100, o.bucketsize = 3, o.has_initval = true, o.initval = 0x12345678;
  s.Create("z", o);
  const auto l = s.List("z", false);
  FW_CHECK_EQ(l[0].options.hashsize, 128u);
  FW_CHECK_EQ(int(l[0].options.bucketsize), 4);
  FW_CHECK_EQ(l[0].options.initval, 0x12345678u);
  SetOptions small = Opt(SetType::kHashIp, 6);
  small.hashsize = 5;
  s.Create("y", small);
  FW_CHECK_EQ(s.List("y", false)[0].options.hashsize, 64u);
  FW_CHECK(s.List("y", false)[0].options.has_initval);
  FW_CHECK_EQ(int(ErrOf([&] { s.Create("z", o); })), int(SetErrc::kSetExists));
  s.Create("z", o, /*exist=*/true);  // same parameters: fine
  SetOptions other = o;
  other.maxelem = 5;
  FW_CHECK_EQ(int(ErrOf([&] { s.Create("z", other, true); })), int(SetErrc::kSetExists));
  FW_CHECK_EQ(int(ErrOf([&] { s.Create("a-name-that-is-longer-than-31-ch", o); })), int(SetErrc::kInvalid));
  SetOptions tmo = o;
  tmo.has_timeout = true, tmo.timeout = sets::kMaxTimeout + 1;
  FW_CHECK_EQ(int(ErrOf([&] { s.Create("w", tmo); })), int(SetErrc::kInvalid));
}

FW_TEST(Sets_RestoreIsAllOrNothing) {
  Clocked c;
  SetStore& s = c.store;
  s.Create("keep", Opt(SetType::kHashIp));
  s.Add("keep", E4(1));
  std::vector<sets::Command> cmds;
  auto add = [&](const std::string& n, uint32_t a) {
    sets::Command x;
    x.op = sets::Command::Op::kAdd, x.name = n, x.entry = E4(a);
    cmds.push_back(x);
  };
  sets::Command cr;
  cr.op = sets::Command::Op::kCreate, cr.name = "new", cr.options = Opt(SetType::kHashIp);
  cmds.push_back(cr);
  add("new", 5);
  add("keep", 2);
  sets::Command fl;
  fl.op = sets::Command::Op::kFlush, fl.name = "keep";
  cmds.push_back(fl);
  add("keep", 3);
  add("keep", 3);  // duplicate: fails
  try {
    s.Restore(cmds);
    FW_CHECK(false);
  } catch (const SetError& e) {
    FW_CHECK_EQ(e.index, size_t(5));
    FW_CHECK_EQ(int(e.code), int(SetErrc::kExists));
  }
  FW_CHECK_EQ(s.Find("new"), -1);
  FW_CHECK(s.TestEntry("keep", E4(1)));
  FW_CHECK(!s.TestEntry("keep", E4(2)));
  cmds.pop_back();
  s.Restore(cmds);
  FW_CHECK(s.Find("new") >= 0);
  FW_CHECK(!s.TestEntry("keep", E4(1)));
  FW_CHECK(s.TestEntry("keep", E4(3)));
  FW_CHECK(s.TestEntry("new", E4(5)));
}

FW_TEST(Sets_SwapRenameDestroyKeepIds) {
  Clocked c;
  SetStore& s = c.store;
  s.Create("a", Opt(SetType::kHashIp));
  s.Create("b", Opt(SetType::kHashIp));
  s.Create("x", Opt(SetType::kHashNet));
  s.Add("a", E4(1));
  s.Add("b", E4(2));
  const int32_t ia = s.Find("a"), ib = s.Find("b");
  auto has = [&](int32_t id, uint32_t addr) { return s.Test(uint32_t(id), kSrc, 1, K4(addr, 0), c.now); };
  FW_CHECK(has(ia, 1) && has(ib, 2));
  s.Swap("a", "b");  // the names keep their ids; contents change places
  FW_CHECK_EQ(s.Find("a"), ia);
  FW_CHECK(has(ia, 2) && has(ib, 1) && !has(ia, 1));
  FW_CHECK_EQ(int(ErrOf([&] { s.Swap("a", "x"); })), int(SetErrc::kTypeMismatch));
  FW_CHECK_EQ(int(ErrOf([&] { s.Swap("a", "nope"); })), int(SetErrc::kSecondNoSet));
  // Listing order is the kernel's set index: creation order, names in place.
  std::vector<std::string> names = s.Names();
  FW_CHECK(names == (std::vector<std::string>{"a", "b", "x"}));
  s.Rename("a", "c");
  FW_CHECK_EQ(s.Find("a"), -1);
  FW_CHECK(s.Find("c") >= 0);
  FW_CHECK(has(s.Find("c"), 2));
  FW_CHECK(!has(ia, 2));  // nothing under the old name's id
  FW_CHECK(s.Names() == (std::vector<std::string>{"c", "b", "x"}));
  FW_CHECK_EQ(int(ErrOf([&] { s.Rename("c", "b"); })), int(SetErrc::kNameTaken));
  s.Destroy("b");
  FW_CHECK_EQ(s.Find("b"), -1);
  FW_CHECK(!has(ib, 1));
  s.Create("d", Opt(SetType::kHashIp));  // takes the lowest free index (b's)
  FW_CHECK(s.Names() == (std::vector<std::string>{"c", "d", "x"}));
  s.Create("b", Opt(SetType::kHashIp));  // the name b has its id back
  FW_CHECK_EQ(s.Find("b"), ib);
  s.Add("b", E4(9));
  FW_CHECK(has(ib, 9));
  s.Flush("");
  FW_CHECK(!has(ib, 9));
  s.Destroy("");
  FW_CHECK(s.Names().empty());
  FW_CHECK_EQ(int(ErrOf([&] { s.Destroy("c"); })), int(SetErrc::kNoSet));
}

FW_TEST(Sets_CloneIsIndependent) {
  Clocked c;
  SetStore& s = c.store;
  s.Create("a", Opt(SetType::kHashNet));
  s.Add("a", E4(V4(10, 0, 0, 0), 8));
  auto copy = s.Clone();
  s.Add("a", E4(V4(11, 0, 0, 0), 8));
  const int32_t id = copy->Find("a");
  FW_CHECK_EQ(id, s.Find("a"));
  FW_CHECK(copy->Test(uint32_t(id), kSrc, 1, K4(V4(10, 1, 1, 1), 0), c.now));
  FW_CHECK(!copy->Test(uint32_t(id), kSrc, 1, K4(V4(11, 1, 1, 1), 0), c.now));
  FW_CHECK(s.Test(uint32_t(id), kSrc, 1, K4(V4(11, 1, 1, 1), 0), c.now));
}

FW_TEST(Sets_GcIsBounded) {
  Clocked c;
  SetStore& s = c.store;
  SetOptions o = Opt(SetType::kHashIp);
  o.has_timeout = true, o.timeout = 1;
  s.Create("g", o);
  for (uint32_t i = 1; i <= 5000; ++i) s.Add("g", E4(i));
  c.now += 2 * kSec;
  size_t total = 0, calls = 0;
  for (; calls < 10000 && total < 5000; ++calls) {
    const size_t n = s.Gc(256);
    FW_CHECK(n <= 256);
    total += n;
  }
  FW_CHECK_EQ(total, size_t(5000));
  FW_CHECK(calls > 5000 / 256);
}

// ---- random differential against a vector scan ---------------------------------

struct RefEntry {
  Entry e;
  uint64_t expires;  // 0 = never
};

// The kernel's answer by brute force: longest live prefix decides (hash:net*),
// exact match otherwise.
Match RefLookup(SetType t, int fam, const std::vector<RefEntry>& ref, const uint32_t* addr, uint8_t proto, uint16_t port,
                uint64_t now) {
  const int host = fam == 4 ? 32 : 128;
  int best = -1;
  Match m = Match::kAbsent;
  for (const RefEntry& r : ref) {
    if (r.expires && r.expires <= now) continue;
    if (r.e.proto != proto || r.e.port != port) continue;
    const int cidr = sets::SetTypeHasNets(t) ? r.e.cidr : host;
    bool in = true;
    for (int w = 0; w < (fam == 4 ? 1 : 4); ++w) {
      const int bits = cidr - 32 * w;
      const uint32_t mask = bits >= 32 ? ~0u : bits <= 0 ? 0 : ~0u << (32 - bits);
      in &= (addr[w] & mask) == (r.e.addr[w] & mask);
    }
    if (in && cidr > best) best = cidr, m = r.e.nomatch ? Match::kNomatch : Match::kMatch;
  }
  return m;
}

void Differential(SetType t, int fam, uint32_t seed) {
  std::mt19937 rng(seed);
  Clocked c;
  SetStore& s = c.store;
  SetOptions o = Opt(t, uint8_t(fam));
  o.has_timeout = true, o.hashsize = 64;
  s.Create("d", o);
  const int32_t id = s.Find("d");
  std::vector<RefEntry> ref;
  const bool nets = sets::SetTypeHasNets(t), ports = sets::SetTypeHasPort(t);
  const int host = fam == 4 ? 32 : 128;
  // Addresses from a small space so that prefixes overlap and queries hit.
  auto rand_addr = [&](uint32_t* a) {
    for (int w = 0; w < 4; ++w) a[w] = 0;
    a[0] = 0x0a000000u | (rng() & 0x3) << 16 | (rng() & 0x3) << 8 | (rng() & 0x7);
    if (fam == 6) a[0] = 0x20010db8, a[1] = rng() & 1, a[3] = rng() & 0x7;
  };
  auto rand_entry = [&]() {
    Entry e;
    e.family = uint8_t(fam);
    rand_addr(e.addr);
    if (nets) {
      static const uint8_t c4[] = {8, 14, 16, 22, 24, 29, 30, 32};
      static const uint8_t c6[] = {32, 63, 64, 100, 125, 126, 127, 128};
      const size_t ci = rng() % 8;
      e.cidr = fam == 4 ? c4[ci] : c6[ci];
      uint32_t m[4];
      for (int w = 0; w < 4; ++w) {
        const int bits = e.cidr - 32 * w;
        m[w] = bits >= 32 ? e.addr[w] : bits <= 0 ? 0 : e.addr[w] & (~0u << (32 - bits));
      }
      std::copy(m, m + 4, e.addr);
      e.nomatch = rng() % 4 == 0;
    }
    if (ports) {
      static const uint8_t protos[] = {6, 17, 47};
      e.proto = protos[rng() % 3];
      e.port = e.proto == 47 ? 0 : uint16_t(rng() % 3 + 80);
    }
    e.has_timeout = true;
    e.timeout = rng() % 3 == 0 ? 0 : uint32_t(rng() % 50 + 1);
    return e;
  };
  auto same = [&](const Entry& a, const Entry& b) {
    return std::equal(a.addr, a.addr + 4, b.addr) && (!nets || a.cidr == b.cidr) && a.proto == b.proto && a.port == b.port;
  };
  int mismatches = 0;
  for (int step = 0; step < 6000; ++step) {
    const int op = int(rng() % 10);
    if (op < 5) {
      Entry e = rand_entry();
      auto it = std::find_if(ref.begin(), ref.end(), [&](const RefEntry& r) { return same(r.e, e); });
      const bool live = it != ref.end() && !(it->expires && it->expires <= c.now);
      const uint64_t exp = e.timeout ? c.now + uint64_t(e.timeout) * kSec : 0;
      const bool exist = rng() % 2;
      bool threw = false;
      try {
        s.Add("d", e, exist);
      } catch (const SetError&) {
        threw = true;
      }
      if (live && !exist) {
        if (!threw) ++mismatches;
      } else {
        if (threw) ++mismatches;
        if (it != ref.end()) it->e.nomatch = e.nomatch, it->expires = exp;
        else ref.push_back({e, exp});
      }
    } else if (op < 7 && !ref.empty()) {
      const size_t i = rng() % ref.size();
      const bool live = !(ref[i].expires && ref[i].expires <= c.now);
      bool threw = false;
      try {
        s.Del("d", ref[i].e);
      } catch (const SetError&) {
        threw = true;
      }
      if (threw == live) ++mismatches;
      ref.erase(ref.begin() + long(i));
    } else if (op == 7) {
      c.now += uint64_t(rng() % 5) * kSec;
      if (rng() % 4 == 0) s.Gc(rng() % 300);
    } else {
      for (int q = 0; q < 20; ++q) {
        uint32_t a[4];
        rand_addr(a);
        if (nets && rng() % 2) a[fam == 4 ? 0 : 3] ^= uint32_t(rng() & 0xff);
        uint8_t proto = 0;
        uint16_t port = 0;
        if (ports) {
          static const uint8_t protos[] = {6, 17, 47, 132};
          proto = protos[rng() % 4];
          port = proto == 47 ? 0 : uint16_t(rng() % 4 + 80);
        }
        const Match want = RefLookup(t, fam, ref, a, proto, port, c.now);
        Match got;
        const uint8_t dirs[2] = {1, 2};
        if (fam == 4) {
          got = s.Lookup(uint32_t(id), dirs, 2, K4(a[0], 0, proto, 1, port), c.now);
        } else {
          const uint32_t z[4] = {};
          got = s.Lookup(uint32_t(id), dirs, 2, K6(a, z, proto, 1, port), c.now);
        }
        if (got != want) {
          if (mismatches < 5)
            std::printf("  differential %s/%d: %08x.. proto %d port %d: got %d want %d\n", sets::SetTypeName(t), fam, a[0],
                        proto, port, int(got), int(want));
          ++mismatches;
        }
        // ipset test agrees for host queries.
        Entry te;
        te.family = uint8_t(fam);
        std::copy(a, a + 4, te.addr);
        te.proto = proto, te.port = port;
        if (!ports || proto != 0) {
          bool tested = false;
          try {
            tested = s.TestEntry("d", te);
          } catch (const SetError&) {
          }
          if (tested != (want == Match::kMatch)) ++mismatches;
        }
      }
    }
  }
  // Listing agrees with the reference's live entries.
  size_t live = 0;
  for (const RefEntry& r : ref) live += !(r.expires && r.expires <= c.now);
  FW_CHECK_EQ(size_t(s.List("d", false)[0].entries), live);
  FW_CHECK_EQ(mismatches, 0);
  (void)host;
}

FW_TEST(Sets_RandomDifferential) {
  uint32_t seed = 1;
  for (SetType t : {SetType::kHashIp, SetType::kHashNet, SetType::kHashIpPort, SetType::kHashNetPort})
    for (int fam : {4, 6}) Differential(t, fam, seed++);
}

// ---- concurrency smoke -------------------------------------------------------------

// Readers announce a new epoch before each batch of lookups and kIdle when
// done, like the dataplane's workers; the store's synchronize waits for each
// to move on (dataplane.h).
struct Readers {
  static constexpr uint64_t kIdle = UINT64_MAX;
  std::vector<std::unique_ptr<std::atomic<uint64_t>>> epoch;
  explicit Readers(int n) {
    for (int i = 0; i < n; ++i) epoch.push_back(std::make_unique<std::atomic<uint64_t>>(kIdle));
  }
  void Synchronize() {
    for (auto& e : epoch) {
      const uint64_t v0 = e->load(std::memory_order_seq_cst);
      if (v0 == kIdle) continue;
      while (e->load(std::memory_order_seq_cst) == v0) std::this_thread::yield();
    }
  }
};

FW_TEST(Sets_ConcurrentWriterAndReaders) {
  constexpr int kReaders = 3;
  Readers readers(kReaders);
  SetStore s([&] { readers.Synchronize(); });
  SetOptions o = Opt(SetType::kHashNet);
  o.hashsize = 64;  // grows under the readers
  s.Create("c", o);
  SetOptions o6 = Opt(SetType::kHashIp, 6);
  o6.hashsize = 64;
  s.Create("c6", o6);
  const uint32_t id = uint32_t(s.Find("c")), id6 = uint32_t(s.Find("c6"));
  // Stable entries, never deleted: readers must always see them. Churn
  // entries come and go: readers may see either, never a torn answer (a
  // 172.16/12 address is never added, so it must never match).
  for (uint32_t i = 0; i < 64; ++i) s.Add("c", E4(V4(10, 0, 0, 0) | i << 8, 24));
  s.Add("c6", E6(0x20010db8, 0, 0, 1));
  std::atomic<bool> stop{false};
  std::atomic<int> errors{0};
  std::atomic<uint64_t> lookups{0};
  std::vector<std::thread> th;
  for (int r = 0; r < kReaders; ++r) {
    th.emplace_back([&, r] {
      std::mt19937 rng(uint32_t(r) + 7);
      uint64_t n = 0, epoch = 0;
      const uint32_t stable6[4] = {0x20010db8, 0, 0, 1}, z[4] = {};
      while (!stop.load(std::memory_order_relaxed)) {
        readers.epoch[size_t(r)]->store(++epoch, std::memory_order_seq_cst);
        for (int i = 0; i < 256; ++i, ++n) {
          const uint32_t k = rng() % 64;
          if (!s.Test(id, kSrc, 1, K4(V4(10, 0, uint8_t(k), uint8_t(rng())), 0), 0)) errors++;
          if (s.Test(id, kSrc, 1, K4(V4(172, 16, uint8_t(rng()), uint8_t(rng())), 0), 0)) errors++;
          (void)s.Test(id, kSrc, 1, K4(V4(192, 168, uint8_t(rng() % 16), uint8_t(rng())), 0), 0);
          if (!s.Test(id6, kSrc, 1, K6(stable6, z), 0)) errors++;
        }
      }
      readers.epoch[size_t(r)]->store(Readers::kIdle, std::memory_order_seq_cst);
      lookups += n;
    });
  }
  // The writer: grow the churn, delete it, flush and destroy a scratch set,
  // add IPv6 addresses one at a time (resizes), swap two sets back and forth.
  SetOptions scratch = Opt(SetType::kHashIp);
  s.Create("s1", scratch);
  s.Create("s2", scratch);
  for (int round = 0; round < 6; ++round) {
    for (uint32_t i = 0; i < 4000; ++i) {
      s.Add("c", E4(V4(192, 168, uint8_t(i % 16), 0) | (i & 0xff), 32), true);
      s.Add("c6", E6(0x20010db8, uint32_t(round), 1, i + 2), true);
    }
    for (uint32_t i = 0; i < 4000; i += 2) s.Del("c", E4(V4(192, 168, uint8_t(i % 16), 0) | (i & 0xff), 32), true);
    s.Flush("s1");
    s.Swap("s1", "s2");
    s.Destroy("s2");
    s.Create("s2", scratch);
    std::vector<sets::Command> cmds;
    sets::Command add;
    add.op = sets::Command::Op::kAdd, add.name = "c", add.entry = E4(V4(192, 168, 200, uint8_t(round)), 32);
    add.exist = true;
    cmds.push_back(add);
    s.Restore(cmds);  // replaces "c" by a copy: the old one is retired
    s.Gc(1000);
  }
  stop = true;
  for (auto& t : th) t.join();
  FW_CHECK_EQ(errors.load(), 0);
  FW_CHECK(lookups.load() > 0);
}

}  // namespace
}  // namespace flatwall
