// Fuzz target: the dataplane's frame parser (dataplane/parse.h).
//
// Feeds: any bytes. Byte 0 is flags (bit 0: the frame came with GSO, so an
// IP length of 0 means "the rest"; bit 1: recompute the IPv4 header
// checksum first, so mutations get past it to the options and L4), the rest
// is one Ethernet frame, copied into a buffer of exactly its length so
// AddressSanitizer catches a read one byte past it.
// Checks: ParseFrame never reads outside the frame, and what it returns
// keeps parse.h's promises: malformed iff a reason is given, the IP packet
// inside the frame after the Ethernet header and its tags, an L4 offset
// only with a complete L4 header whose fields are the key's, no L4 in the
// key of a later fragment or a cut-short header, NDP only for ICMPv6
// 133-137.
// Seeds: every frame of the repo's pcaps (scripts/fuzz.js), raw and with
// the checksum fix.
#include <cstdlib>
#include <cstring>

#include "dataplane/bytes.h"
#include "dataplane/parse.h"
#include "fuzz/fuzz_common.h"

namespace flatwall {
namespace {

using namespace net;

void CheckL4(const uint8_t* f, const ParsedFrame& pf, const KeyCommon& k, bool v6) {
  const uint32_t end = pf.l3_off + pf.l3_len;
  if (pf.l4_truncated) {
    FUZZ_CHECK(k.flags & kKeyL4Truncated);
    FUZZ_CHECK(!(k.flags & kKeyHasL4));
    FUZZ_CHECK(pf.l4_off == 0);
    FUZZ_CHECK(k.sport == 0 && k.dport == 0 && k.icmp == 0 && k.tcp_flags == 0);
  }
  if (pf.later_fragment) {
    FUZZ_CHECK(pf.fragment);
    FUZZ_CHECK(!(k.flags & kKeyHasL4));
    FUZZ_CHECK(pf.l4_off == 0);
    FUZZ_CHECK(k.sport == 0 && k.dport == 0 && k.icmp == 0 && k.tcp_flags == 0);
  }
  if (pf.l4_off == 0) {
    // A complete "L4" without a header: only IPv6's ESP and no-next-header.
    if (k.flags & kKeyHasL4) FUZZ_CHECK(v6 && (k.proto == kIp6Esp || k.proto == kIp6NoNext));
    return;
  }
  FUZZ_CHECK(k.flags & kKeyHasL4);
  FUZZ_CHECK(pf.l4_off > pf.l3_off && pf.l4_off <= end);
  const uint8_t* l4 = f + pf.l4_off;
  const uint32_t avail = end - pf.l4_off;
  switch (k.proto) {
    case kProtoTcp:
      FUZZ_CHECK(avail >= 20);
      FUZZ_CHECK(uint32_t(l4[12] >> 4) * 4 >= 20 && uint32_t(l4[12] >> 4) * 4 <= avail);
      FUZZ_CHECK(k.sport == Load16(l4) && k.dport == Load16(l4 + 2) && k.tcp_flags == l4[13]);
      break;
    case kProtoUdp:
    case 136:
      FUZZ_CHECK(avail >= 8);
      FUZZ_CHECK(k.sport == Load16(l4) && k.dport == Load16(l4 + 2));
      break;
    case kProtoSctp:
    case 33:
      FUZZ_CHECK(avail >= 12);
      FUZZ_CHECK(k.sport == Load16(l4) && k.dport == Load16(l4 + 2));
      break;
    case kProtoIcmp:
    case kProtoIcmp6:
      FUZZ_CHECK(avail >= 8);
      FUZZ_CHECK(k.icmp == Load16(l4));
      break;
    default:
      FUZZ_CHECK(k.sport == 0 && k.dport == 0);
  }
}

void Check(const uint8_t* f, uint32_t len, bool gso, const ParsedFrame& pf) {
  FUZZ_CHECK((pf.cls == FrameClass::kMalformed) == (pf.reason != DropReason::kNone));
  FUZZ_CHECK(pf.vlan_tags <= kMaxVlanTags);
  switch (pf.cls) {
    case FrameClass::kMalformed:
      return;
    case FrameClass::kArp:
      FUZZ_CHECK(pf.ethertype == kEthArp);
      return;
    case FrameClass::kOther:
      FUZZ_CHECK(pf.ethertype != kEthArp && pf.ethertype != kEthIPv4 && pf.ethertype != kEthIPv6);
      return;
    default:
      break;
  }
  FUZZ_CHECK(pf.l3_off == kEthHdrLen + kVlanTagLen * pf.vlan_tags);
  FUZZ_CHECK(uint64_t(pf.l3_off) + pf.l3_len <= len);
  const uint8_t* ip = f + pf.l3_off;
  if (pf.cls == FrameClass::kIPv4) {
    FUZZ_CHECK(pf.ethertype == kEthIPv4);
    const uint32_t ihl = uint32_t(ip[0] & 0xf) * 4;
    FUZZ_CHECK((ip[0] >> 4) == 4 && ihl >= 20 && ihl <= pf.l3_len);
    FUZZ_CHECK(pf.l3_len == Load16(ip + 2) || (gso && Load16(ip + 2) == 0));
    FUZZ_CHECK(Csum(ip, ihl) == 0);
    FUZZ_CHECK(pf.key4.src == Load32(ip + 12) && pf.key4.dst == Load32(ip + 16));
    FUZZ_CHECK(pf.key4.c.proto == ip[9]);
    FUZZ_CHECK(pf.later_fragment == ((Load16(ip + 6) & 0x1fff) != 0));
    CheckL4(f, pf, pf.key4.c, false);
    return;
  }
  FUZZ_CHECK(pf.ethertype == kEthIPv6);
  FUZZ_CHECK((ip[0] >> 4) == 6 && pf.l3_len >= 40);
  FUZZ_CHECK(pf.l3_len == 40u + Load16(ip + 4) || (gso && Load16(ip + 4) == 0));
  for (int i = 0; i < 4; ++i)
    FUZZ_CHECK(pf.key6.src[i] == Load32(ip + 8 + 4 * i) && pf.key6.dst[i] == Load32(ip + 24 + 4 * i));
  if (pf.cls == FrameClass::kNdp) {
    FUZZ_CHECK(pf.key6.c.proto == kProtoIcmp6 && pf.l4_off != 0);
    const uint8_t type = uint8_t(pf.key6.c.icmp >> 8);
    FUZZ_CHECK(type >= 133 && type <= 137);
  }
  CheckL4(f, pf, pf.key6.c, true);
}

}  // namespace
}  // namespace flatwall

using namespace flatwall;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (!fuzz::SeedDir()) return 0;
  for (const auto& [name, frame] : fuzz::SeedFrames()) {
    for (uint8_t flags : {0, 2}) {
      fuzz::Bytes s{flags};
      s.insert(s.end(), frame.begin(), frame.end());
      fuzz::WriteSeed(name + "-" + std::to_string(flags), s);
    }
  }
  std::exit(0);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 || size > 65536 + 1) return 0;
  const uint8_t flags = data[0];
  const uint32_t len = uint32_t(size - 1);
  fuzz::Bytes frame(data + 1, data + size);  // exactly len bytes on the heap
  if (flags & 2) fuzz::FixIp4Checksum(frame.data(), len);
  const bool gso = flags & 1;
  ParsedFrame pf;
  ParseFrame(frame.data(), len, gso, &pf);
  Check(frame.data(), len, gso, pf);
  return 0;
}
