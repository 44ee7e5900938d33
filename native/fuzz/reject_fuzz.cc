// Fuzz target: the REJECT answers (dataplane/reject.h).
//
// Feeds: byte 0 flags (bit 0 GSO, bit 1 fix the IPv4 header checksum),
// bytes 1-2 (LE) the output buffer's capacity (0..65535), then one
// Ethernet frame. The frame is parsed; when it is IPv4/IPv6/NDP every
// RejectWith is built from it into a heap buffer of exactly that capacity,
// so AddressSanitizer catches a write one byte past it.
// Checks: the answer fits its buffer and kMaxRejectFrame; it is sent only
// when reject.h allows one (unicast destination MAC, no group, unspecified
// or loopback source address nor group destination, a TCP packet without
// RST and with its header for a reset, never for an ICMP error or an ICMP
// packet cut short, never for a later fragment); and it is a well-formed frame of the same family and
// VLAN tags that the parser accepts, with the MACs and addresses swapped,
// correct checksums (IPv4 header, ICMP, ICMPv6 and TCP with their
// pseudo-headers), the ICMP code RejectCode names, the original IP packet
// quoted from its start, and a RST to the original ports.
// Seeds: every frame of the repo's pcaps with a full-size and a tight
// capacity.
#include <cstdlib>
#include <cstring>

#include "dataplane/bytes.h"
#include "dataplane/parse.h"
#include "dataplane/reject.h"
#include "fuzz/fuzz_common.h"

namespace flatwall {
namespace {

using namespace net;

void CheckAnswer(const uint8_t* f, const ParsedFrame& p, RejectWith with, const uint8_t* a,
                 uint32_t n) {
  const bool v4 = p.cls == FrameClass::kIPv4;
  const KeyCommon& k = v4 ? p.key4.c : p.key6.c;
  const uint8_t* oip = f + p.l3_off;
  // When an answer may be sent at all.
  FUZZ_CHECK(!(f[0] & 1));
  FUZZ_CHECK(!p.later_fragment);
  if (v4) {
    const uint32_t src = p.key4.src, dst = p.key4.dst;
    FUZZ_CHECK(src != 0 && (src >> 24) != 127 && (src >> 28) != 0xe && src != 0xffffffff);
    FUZZ_CHECK((dst >> 28) != 0xe && dst != 0xffffffff);
  } else {
    const uint32_t* src = p.key6.src;
    FUZZ_CHECK((src[0] | src[1] | src[2] | src[3]) != 0 && (src[0] >> 24) != 0xff);
    FUZZ_CHECK((p.key6.dst[0] >> 24) != 0xff);
  }
  if (with == RejectWith::kTcpReset) {
    FUZZ_CHECK(k.proto == kProtoTcp && p.l4_off != 0 && !(f[p.l4_off + 13] & kTcpRst));
  } else if (k.proto == (v4 ? kProtoIcmp : kProtoIcmp6)) {
    FUZZ_CHECK(!p.l4_truncated);
    const uint8_t type = uint8_t(k.icmp >> 8);
    if (v4) FUZZ_CHECK(type != 3 && type != 4 && type != 5 && type != 11 && type != 12);
    else FUZZ_CHECK(type >= 128);
  }
  // The answer as a frame.
  FUZZ_CHECK(std::memcmp(a, f + 6, 6) == 0 && std::memcmp(a + 6, f, 6) == 0);
  FUZZ_CHECK(std::memcmp(a + 12, f + 12, p.l3_off - 12) == 0);  // tags, ethertype
  ParsedFrame q;
  ParseFrame(a, n, false, &q);
  FUZZ_CHECK(q.cls == (v4 ? FrameClass::kIPv4 : FrameClass::kIPv6));
  FUZZ_CHECK(q.vlan_tags == p.vlan_tags && q.l3_off == p.l3_off && q.l3_off + q.l3_len == n);
  FUZZ_CHECK(!q.fragment && !q.l4_truncated && q.l4_off != 0);
  const uint8_t* ip = a + q.l3_off;
  const uint8_t* l4 = a + q.l4_off;
  const uint32_t l4_len = n - q.l4_off;
  if (v4) {
    FUZZ_CHECK(std::memcmp(ip + 12, oip + 16, 4) == 0 && std::memcmp(ip + 16, oip + 12, 4) == 0);
  } else {
    FUZZ_CHECK(std::memcmp(ip + 8, oip + 24, 16) == 0 && std::memcmp(ip + 24, oip + 8, 16) == 0);
  }
  const KeyCommon& qk = v4 ? q.key4.c : q.key6.c;
  if (with == RejectWith::kTcpReset) {
    FUZZ_CHECK(qk.proto == kProtoTcp && l4_len == 20 && (qk.tcp_flags & kTcpRst));
    const uint8_t* th = f + p.l4_off;
    FUZZ_CHECK(qk.sport == Load16(th + 2) && qk.dport == Load16(th));
    const uint32_t ps = v4 ? PseudoSum4(ip + 12, ip + 16, kProtoTcp, 20) : PseudoSum6(ip + 8, ip + 24, kProtoTcp, 20);
    FUZZ_CHECK(CsumFold(CsumAdd(ps, l4, 20)) == 0);
    return;
  }
  const uint32_t quote = std::min<uint32_t>(p.l3_len, v4 ? 536 : 1232);
  FUZZ_CHECK(l4_len == 8 + quote);
  FUZZ_CHECK(std::memcmp(l4 + 8, oip, quote) == 0);
  FUZZ_CHECK(l4[1] == uint8_t(RejectCode(with, v4 ? 4 : 6)));
  if (v4) {
    FUZZ_CHECK(qk.proto == kProtoIcmp && l4[0] == 3);
    FUZZ_CHECK(Csum(l4, l4_len) == 0);
  } else {
    FUZZ_CHECK(qk.proto == kProtoIcmp6 && l4[0] == 1);
    FUZZ_CHECK(CsumFold(CsumAdd(PseudoSum6(ip + 8, ip + 24, kProtoIcmp6, l4_len), l4, l4_len)) == 0);
  }
}

}  // namespace
}  // namespace flatwall

using namespace flatwall;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (!fuzz::SeedDir()) return 0;
  for (const auto& [name, frame] : fuzz::SeedFrames()) {
    // A buffer that holds any answer, and one that just misses an ICMP one.
    const uint32_t caps[2] = {kMaxRejectFrame, uint32_t(std::min<size_t>(frame.size(), 536) + 14 + 28 - 1)};
    for (int i = 0; i < 2; ++i) {
      fuzz::Bytes s{2, uint8_t(caps[i]), uint8_t(caps[i] >> 8)};
      s.insert(s.end(), frame.begin(), frame.end());
      fuzz::WriteSeed(name + "-" + std::to_string(i), s);
    }
  }
  std::exit(0);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3 || size > 65536 + 3) return 0;
  const uint8_t flags = data[0];
  const uint32_t cap = uint32_t(data[1] | data[2] << 8);
  const uint32_t len = uint32_t(size - 3);
  fuzz::Bytes frame(data + 3, data + size);
  if (flags & 2) fuzz::FixIp4Checksum(frame.data(), len);
  ParsedFrame pf;
  ParseFrame(frame.data(), len, flags & 1, &pf);
  if (pf.cls != FrameClass::kIPv4 && pf.cls != FrameClass::kIPv6 && pf.cls != FrameClass::kNdp) return 0;
  if (pf.cls == FrameClass::kNdp) pf.cls = FrameClass::kIPv6;  // judged by the rules, as the dataplane does
  for (uint8_t w = 0; w <= uint8_t(RejectWith::kIcmp6PortUnreachable); ++w) {
    const RejectWith with = RejectWith(w);
    fuzz::Bytes out(cap);  // exactly cap bytes
    const uint32_t n = BuildReject(frame.data(), len, pf, with, out.data(), cap);
    FUZZ_CHECK(n <= cap && n <= kMaxRejectFrame);
    if (n) CheckAnswer(frame.data(), pf, with, out.data(), n);
  }
  return 0;
}
