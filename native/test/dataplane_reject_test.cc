// REJECT answers: built from fixture frames, then checked field by field and
// re-parsed, with every checksum verified independently.
#include <vector>

#include "dataplane/bytes.h"
#include "dataplane/parse.h"
#include "dataplane/reject.h"
#include "test/dataplane_testing.h"

namespace flatwall {
namespace {

using namespace net;

std::vector<std::vector<uint8_t>> Frames() {
  return dptest::ReadPcap(dptest::FixturePath("parse_wellformed.pcap"));
}

struct Built {
  std::vector<uint8_t> out;
  ParsedFrame orig, reply;
};

Built Reject(const std::vector<uint8_t>& frame, RejectWith with) {
  Built b;
  ParseFrame(frame.data(), uint32_t(frame.size()), false, &b.orig);
  b.out.resize(kMaxRejectFrame);
  const uint32_t n = BuildReject(frame.data(), uint32_t(frame.size()), b.orig, with, b.out.data(),
                                 uint32_t(b.out.size()));
  b.out.resize(n);
  if (n) ParseFrame(b.out.data(), n, false, &b.reply);
  return b;
}

// Verifies the L4 checksum of a parsed IPv4/IPv6 packet (sums to zero).
bool L4ChecksumOk(const std::vector<uint8_t>& f, const ParsedFrame& p) {
  const uint8_t* ip = f.data() + p.l3_off;
  const uint32_t l4len = p.l3_off + p.l3_len - p.l4_off;
  const uint8_t* l4 = f.data() + p.l4_off;
  if (p.cls == FrameClass::kIPv4) {
    const uint8_t proto = ip[9];
    uint32_t s = proto == kProtoIcmp ? 0 : PseudoSum4(ip + 12, ip + 16, proto, l4len);
    return CsumFold(CsumAdd(s, l4, l4len)) == 0;
  }
  return CsumFold(CsumAdd(PseudoSum6(ip + 8, ip + 24, p.key6.c.proto, l4len), l4, l4len)) == 0;
}

DP_TEST(RejectTcpResetIPv4Syn) {
  const auto frames = Frames();
  const auto& syn = frames[0];  // 10.0.0.1:1234 -> 10.0.0.2:80 SYN seq 1000
  Built b = Reject(syn, RejectWith::kTcpReset);
  DP_CHECK_EQ(b.out.size(), size_t(14 + 40));
  DP_CHECK(b.reply.cls == FrameClass::kIPv4);  // parse also verified the IP checksum
  DP_CHECK(std::memcmp(b.out.data(), syn.data() + 6, 6) == 0);
  DP_CHECK(std::memcmp(b.out.data() + 6, syn.data(), 6) == 0);
  DP_CHECK_EQ(b.reply.key4.src, b.orig.key4.dst);
  DP_CHECK_EQ(b.reply.key4.dst, b.orig.key4.src);
  DP_CHECK_EQ(b.reply.key4.c.sport, 80);
  DP_CHECK_EQ(b.reply.key4.c.dport, 1234);
  DP_CHECK_EQ(b.reply.key4.c.tcp_flags, kTcpRst | kTcpAck);
  const uint8_t* th = b.out.data() + b.reply.l4_off;
  DP_CHECK_EQ(Load32(th + 4), 0u);     // seq
  DP_CHECK_EQ(Load32(th + 8), 1001u);  // ack = seq + SYN
  DP_CHECK(L4ChecksumOk(b.out, b.reply));
  DP_CHECK_EQ(b.out[b.reply.l3_off + 8], 64);  // TTL
}

DP_TEST(RejectTcpResetIPv6QinQAck) {
  const auto frames = Frames();
  const auto& synack = frames[12];  // QinQ, IPv6, SYN|ACK, ack_seq 0
  Built b = Reject(synack, RejectWith::kTcpReset);
  DP_CHECK(b.reply.cls == FrameClass::kIPv6);
  DP_CHECK_EQ(b.reply.vlan_tags, 2);
  DP_CHECK(std::memcmp(b.out.data() + 12, synack.data() + 12, 8) == 0);  // same tags
  DP_CHECK_EQ(b.reply.key6.c.tcp_flags, kTcpRst);  // ACK set: seq = ack_seq, RST only
  DP_CHECK_EQ(b.reply.key6.c.sport, 5555);
  DP_CHECK_EQ(b.reply.key6.c.dport, 443);
  DP_CHECK(L4ChecksumOk(b.out, b.reply));
}

DP_TEST(RejectIcmpPortUnreachableIPv4Udp) {
  const auto frames = Frames();
  const auto& udp = frames[1];
  Built b = Reject(udp, RejectWith::kIcmpPortUnreachable);
  DP_CHECK(b.reply.cls == FrameClass::kIPv4);
  DP_CHECK_EQ(b.reply.key4.c.proto, kProtoIcmp);
  DP_CHECK_EQ(b.reply.key4.c.icmp, (3 << 8) | 3);
  DP_CHECK(L4ChecksumOk(b.out, b.reply));
  // The whole original IP packet is quoted (it is shorter than 536 bytes).
  DP_CHECK_EQ(b.reply.l3_len, 20u + 8u + b.orig.l3_len);
  DP_CHECK(std::memcmp(b.out.data() + b.reply.l4_off + 8, udp.data() + b.orig.l3_off,
                       b.orig.l3_len) == 0);
  // Each code.
  DP_CHECK_EQ(Reject(udp, RejectWith::kIcmpAdminProhibited).reply.key4.c.icmp, (3 << 8) | 13);
  DP_CHECK_EQ(Reject(udp, RejectWith::kIcmpHostProhibited).reply.key4.c.icmp, (3 << 8) | 10);
  DP_CHECK_EQ(Reject(udp, RejectWith::kIcmpNetUnreachable).reply.key4.c.icmp, (3 << 8) | 0);
}

DP_TEST(RejectIcmpQuoteIsCappedAt536) {
  // A 1400-byte UDP packet: the answer quotes 536 bytes (564 <= 576 bytes of IP).
  std::vector<uint8_t> f = Frames()[1];
  ParsedFrame p;
  ParseFrame(f.data(), uint32_t(f.size()), false, &p);
  const uint32_t extra = 1400 - p.l3_len;
  f.resize(f.size() + extra, 0x5a);
  uint8_t* ip = f.data() + p.l3_off;
  Store16(ip + 2, 1400);
  Store16(ip + 10, 0);
  Store16(ip + 10, Csum(ip, 20));
  Built b = Reject(f, RejectWith::kIcmpPortUnreachable);
  DP_CHECK_EQ(b.reply.l3_len, 20u + 8u + 536u);
  DP_CHECK(L4ChecksumOk(b.out, b.reply));
}

DP_TEST(RejectIcmp6Unreachable) {
  const auto frames = Frames();
  const auto& udp6 = frames[16];
  Built b = Reject(udp6, RejectWith::kIcmp6AdmProhibited);
  DP_CHECK(b.reply.cls == FrameClass::kIPv6);
  DP_CHECK_EQ(b.reply.key6.c.proto, kProtoIcmp6);
  DP_CHECK_EQ(b.reply.key6.c.icmp, (1 << 8) | 1);
  DP_CHECK(L4ChecksumOk(b.out, b.reply));
  DP_CHECK_EQ(b.reply.key6.src[3], b.orig.key6.dst[3]);
  DP_CHECK_EQ(Reject(udp6, RejectWith::kIcmp6PortUnreachable).reply.key6.c.icmp, (1 << 8) | 4);
  // An IPv4 kind on an IPv6 packet maps to the nearest ICMPv6 code.
  DP_CHECK_EQ(Reject(udp6, RejectWith::kIcmpPortUnreachable).reply.key6.c.icmp, (1 << 8) | 4);
}

DP_TEST(RejectSendsNothingWhenItMustNot) {
  const auto frames = Frames();
  // tcp-reset on UDP.
  DP_CHECK(Reject(frames[1], RejectWith::kTcpReset).out.empty());
  // later fragment.
  DP_CHECK(Reject(frames[8], RejectWith::kIcmpPortUnreachable).out.empty());
  // ICMPv6 NDP goes to a multicast address.
  DP_CHECK(Reject(frames[18], RejectWith::kIcmp6PortUnreachable).out.empty());
  // RST never answers a RST.
  std::vector<uint8_t> rst = frames[0];
  ParsedFrame p;
  ParseFrame(rst.data(), uint32_t(rst.size()), false, &p);
  rst[p.l4_off + 13] = kTcpRst;
  DP_CHECK(Reject(rst, RejectWith::kTcpReset).out.empty());
  // An ICMP error is not answered with an ICMP error.
  std::vector<uint8_t> err = frames[3];  // echo request
  ParseFrame(err.data(), uint32_t(err.size()), false, &p);
  err[p.l4_off] = 3;
  DP_CHECK(Reject(err, RejectWith::kIcmpPortUnreachable).out.empty());
  // Broadcast destination MAC.
  std::vector<uint8_t> bc = frames[1];
  std::memset(bc.data(), 0xff, 6);
  DP_CHECK(Reject(bc, RejectWith::kIcmpPortUnreachable).out.empty());
  // Output buffer too small.
  ParsedFrame q;
  ParseFrame(frames[0].data(), uint32_t(frames[0].size()), false, &q);
  uint8_t small[40];
  DP_CHECK_EQ(BuildReject(frames[0].data(), uint32_t(frames[0].size()), q, RejectWith::kTcpReset,
                          small, sizeof small),
              0u);
}

}  // namespace
}  // namespace flatwall
