// io/local_csum.h: a local sender's partial TCP/UDP checksum is finished,
// a complete or absent one is left alone, and no input is read out of
// bounds (ASan: every frame lives in a buffer of exactly its length).
#include <random>
#include <vector>

#include "dataplane/bytes.h"
#include "io/local_csum.h"
#include "testing.h"

namespace flatwall {
namespace {

using namespace net;

struct Frame {
  std::vector<uint8_t> b;
  uint32_t l4 = 0, field = 0;
  bool v6 = false, udp = false;
};

// Ethernet (+ `tags` VLAN tags) + IPv4/IPv6 + TCP/UDP with `payload` bytes,
// checksum field = the pseudo-header sum (CHECKSUM_PARTIAL as the kernel
// leaves it).
Frame Build(bool v6, bool udp, uint32_t payload, uint32_t tags, uint32_t seed) {
  std::mt19937 rng(seed);
  Frame f;
  f.v6 = v6, f.udp = udp;
  const uint32_t l4_len = (udp ? 8 : 20) + payload;
  const uint32_t ip_len = v6 ? 40 : 20;
  const uint32_t eth = kEthHdrLen + tags * kVlanTagLen;
  f.b.assign(eth + ip_len + l4_len, 0);
  uint8_t* p = f.b.data();
  for (uint32_t i = 0; i < 12; ++i) p[i] = uint8_t(rng());
  uint32_t off = 12;
  for (uint32_t t = 0; t < tags; ++t, off += 4) Store16(p + off, t ? kEthVlan : kEthQinQ), Store16(p + off + 2, 100 + t);
  Store16(p + off, v6 ? kEthIPv6 : kEthIPv4);
  uint8_t* ip = p + eth;
  const uint8_t proto = udp ? kProtoUdp : kProtoTcp;
  uint32_t pseudo;
  if (v6) {
    ip[0] = 0x60;
    Store16(ip + 4, uint16_t(l4_len));
    ip[6] = proto, ip[7] = 64;
    for (uint32_t i = 8; i < 40; ++i) ip[i] = uint8_t(rng());
    pseudo = PseudoSum6(ip + 8, ip + 24, proto, l4_len);
  } else {
    ip[0] = 0x45;
    Store16(ip + 2, uint16_t(ip_len + l4_len));
    Store16(ip + 6, 0x4000);  // DF
    ip[8] = 64, ip[9] = proto;
    for (uint32_t i = 12; i < 20; ++i) ip[i] = uint8_t(rng());
    Store16(ip + 10, Csum(ip, 20));
    pseudo = PseudoSum4(ip + 12, ip + 16, proto, l4_len);
  }
  f.l4 = eth + ip_len;
  uint8_t* l4 = p + f.l4;
  for (uint32_t i = 0; i < l4_len; ++i) l4[i] = uint8_t(rng());
  f.field = f.l4 + (udp ? 6 : 16);
  if (udp) Store16(l4 + 4, uint16_t(l4_len));
  Store16(p + f.field, uint16_t(~CsumFold(pseudo)));
  return f;
}

bool Verifies(const Frame& f) {
  const uint8_t* p = f.b.data();
  const uint32_t l4_len = uint32_t(f.b.size()) - f.l4;
  const uint8_t proto = f.udp ? kProtoUdp : kProtoTcp;
  const uint8_t* ip = p + f.l4 - (f.v6 ? 40 : 20);
  const uint32_t pseudo = f.v6 ? PseudoSum6(ip + 8, ip + 24, proto, l4_len) : PseudoSum4(ip + 12, ip + 16, proto, l4_len);
  return CsumFold(CsumAdd(pseudo, p + f.l4, l4_len)) == 0;
}

FW_TEST(LocalCsum_CompletesPartialTcpUdpV4V6) {
  for (uint32_t seed = 0; seed < 400; ++seed) {
    const bool v6 = seed & 1, udp = seed & 2;
    Frame f = Build(v6, udp, seed % 97 * 13 % 1400, seed % 3, seed);
    FW_CHECK(!Verifies(f) || Load16(f.b.data() + f.field) == 0xffff);
    std::vector<uint8_t> in(f.b);
    FW_CHECK(io::CompleteLocalChecksum(f.b.data(), uint32_t(f.b.size())));
    FW_CHECK(Verifies(f));
    if (f.udp) FW_CHECK(Load16(f.b.data() + f.field) != 0);
    // Only the checksum field changed.
    for (size_t i = 0; i < in.size(); ++i)
      if (i != f.field && i != f.field + 1 && in[i] != f.b[i]) FW_CHECK_EQ(i, size_t(-1));
    // A second pass: complete now, nothing to do.
    FW_CHECK(!io::CompleteLocalChecksum(f.b.data(), uint32_t(f.b.size())));
  }
}

FW_TEST(LocalCsum_LeavesOthersAlone) {
  // A wrong checksum that is not the partial value: left as it is (a
  // corrupted frame from a wire is the receiver's to drop).
  Frame f = Build(false, false, 100, 0, 7);
  Store16(f.b.data() + f.field, uint16_t(Load16(f.b.data() + f.field) ^ 0x1234));
  std::vector<uint8_t> in(f.b);
  FW_CHECK(!io::CompleteLocalChecksum(f.b.data(), uint32_t(f.b.size())));
  FW_CHECK(in == f.b);
  // UDP over IPv4 without a checksum (0).
  Frame u = Build(false, true, 50, 0, 8);
  Store16(u.b.data() + u.field, 0);
  in = u.b;
  FW_CHECK(!io::CompleteLocalChecksum(u.b.data(), uint32_t(u.b.size())));
  FW_CHECK(in == u.b);
  // A fragment (MF set) is never touched: its checksum covers other fragments too.
  Frame fr = Build(false, false, 64, 0, 9);
  Store16(fr.b.data() + kEthHdrLen + 6, 0x2000);
  FW_CHECK(!io::CompleteLocalChecksum(fr.b.data(), uint32_t(fr.b.size())));
}

FW_TEST(LocalCsum_TruncatedAndGarbageInBounds) {
  // Every prefix of valid frames, and random bytes: no out-of-bounds read
  // (each input is a buffer of exactly its length), never a change of a
  // frame whose IP length exceeds what was captured.
  for (uint32_t seed = 0; seed < 40; ++seed) {
    const Frame f = Build(seed & 1, seed & 2, 60 + seed, seed % 3, seed);
    for (size_t n = 0; n < f.b.size(); ++n) {
      std::vector<uint8_t> cut(f.b.begin(), f.b.begin() + long(n));
      FW_CHECK(!io::CompleteLocalChecksum(cut.data(), uint32_t(cut.size())));
    }
  }
  std::mt19937 rng(42);
  for (int i = 0; i < 20000; ++i) {
    std::vector<uint8_t> g(rng() % 200);
    for (auto& x : g) x = uint8_t(rng());
    if (g.size() > 13 && (i & 1)) Store16(g.data() + 12, (i & 2) ? kEthIPv6 : kEthIPv4);
    (void)io::CompleteLocalChecksum(g.data(), uint32_t(g.size()));
  }
}

}  // namespace
}  // namespace flatwall
