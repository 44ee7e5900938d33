// See parse.h for what is accepted and why. Every read below is preceded by
// a bounds check against `end` (the IP packet's end, or the frame's).
#include "dataplane/parse.h"

#include "dataplane/bytes.h"

namespace flatwall {
namespace {

using namespace net;

inline FrameClass Malformed(ParsedFrame* out, DropReason r) {
  out->cls = FrameClass::kMalformed;
  out->reason = r;
  return out->cls;
}

// An L4 header cut short (parse.h): judged by the rules with a key like a
// later fragment's; ParseL4 wrote nothing into it.
inline FrameClass Truncated(ParsedFrame* out, FrameClass cls, KeyCommon* k) {
  k->flags |= kKeyL4Truncated;
  out->l4_truncated = true;
  out->cls = cls;
  return cls;
}

// L4 header at p[0, avail). Fills ports/flags/icmp and kKeyHasL4, or returns
// a malformed reason (kL4Truncated, which the callers turn into a truncated
// key, before writing anything).
DropReason ParseL4(const uint8_t* p, uint32_t avail, uint8_t proto, KeyCommon* k) {
  switch (proto) {
    case kProtoTcp: {
      if (avail < 20) return DropReason::kL4Truncated;
      const uint32_t doff = uint32_t(p[12] >> 4) * 4;
      if (doff < 20 || doff > avail) return DropReason::kTcpBadDataOffset;
      k->sport = Load16(p), k->dport = Load16(p + 2);
      k->tcp_flags = p[13];
      break;
    }
    case kProtoUdp:
    case 136:  // UDP-Lite
      if (avail < 8) return DropReason::kL4Truncated;
      k->sport = Load16(p), k->dport = Load16(p + 2);
      break;
    case kProtoSctp:
    case 33:  // DCCP: ports only (its minimum header is 12 bytes)
      if (avail < 12) return DropReason::kL4Truncated;
      k->sport = Load16(p), k->dport = Load16(p + 2);
      break;
    case kProtoIcmp:
    case kProtoIcmp6:
      if (avail < 8) return DropReason::kL4Truncated;
      k->icmp = uint16_t(p[0] << 8 | p[1]);
      break;
    default:
      break;  // no header to parse; nothing can be missing
  }
  k->flags |= kKeyHasL4;
  return DropReason::kNone;
}

// IPv4 options: p[0, len) is the option area (IHL*4 - 20 bytes). EOL ends it,
// NOP is one byte, every other option is type, length (>= 2), data, and
// must end inside the area.
bool Ip4OptionsOk(const uint8_t* p, uint32_t len) {
  uint32_t i = 0;
  while (i < len) {
    const uint8_t type = p[i];
    if (type == 0) return true;  // end of option list
    if (type == 1) {             // no-op
      ++i;
      continue;
    }
    if (i + 1 >= len) return false;
    const uint8_t olen = p[i + 1];
    if (olen < 2 || olen > len - i) return false;
    i += olen;
  }
  return true;
}

FrameClass ParseIp4(const uint8_t* frame, uint32_t len, uint32_t off, bool gso, ParsedFrame* out) {
  const uint32_t avail = len - off;
  const uint8_t* ip = frame + off;
  if (avail < 20) return Malformed(out, DropReason::kIp4Truncated);
  if ((ip[0] >> 4) != 4) return Malformed(out, DropReason::kIp4BadVersion);
  const uint32_t ihl = uint32_t(ip[0] & 0x0f) * 4;
  if (ihl < 20) return Malformed(out, DropReason::kIp4BadIhl);
  if (ihl > avail) return Malformed(out, DropReason::kIp4Truncated);
  uint32_t tot = Load16(ip + 2);
  if (tot == 0 && gso) tot = avail;  // BIG TCP super-packet
  if (tot < ihl || tot > avail) return Malformed(out, DropReason::kIp4BadTotalLen);
  if (Csum(ip, ihl) != 0) return Malformed(out, DropReason::kIp4BadChecksum);
  if (ihl > 20 && !Ip4OptionsOk(ip + 20, ihl - 20)) return Malformed(out, DropReason::kIp4BadOptions);

  out->l3_off = off;
  out->l3_len = tot;
  PacketKey4& k = out->key4;
  k.src = Load32(ip + 12);
  k.dst = Load32(ip + 16);
  k.c.proto = ip[9];
  const uint16_t frag = Load16(ip + 6);
  const uint16_t frag_off = frag & 0x1fff;  // in 8-byte units
  const bool mf = (frag & 0x2000) != 0;
  out->fragment = mf || frag_off != 0;
  if (frag_off != 0) {
    if (frag_off == 1 && k.c.proto == kProtoTcp) return Malformed(out, DropReason::kIp4TinyFragment);
    out->later_fragment = true;  // key without L4, see parse.h
    out->cls = FrameClass::kIPv4;
    return out->cls;
  }
  const DropReason r = ParseL4(ip + ihl, tot - ihl, k.c.proto, &k.c);
  if (r == DropReason::kL4Truncated) return Truncated(out, FrameClass::kIPv4, &k.c);
  if (r != DropReason::kNone) return Malformed(out, r);
  out->l4_off = off + ihl;
  out->cls = FrameClass::kIPv4;
  return out->cls;
}

void LoadAddr6(const uint8_t* p, uint32_t w[4]) {
  for (int i = 0; i < 4; ++i) w[i] = Load32(p + 4 * i);
}

FrameClass ParseIp6(const uint8_t* frame, uint32_t len, uint32_t off, bool gso, ParsedFrame* out) {
  const uint32_t avail = len - off;
  const uint8_t* ip = frame + off;
  if (avail < 40) return Malformed(out, DropReason::kIp6Truncated);
  if ((ip[0] >> 4) != 6) return Malformed(out, DropReason::kIp6BadVersion);
  uint32_t plen = Load16(ip + 4);
  if (plen == 0 && gso) plen = avail - 40;  // BIG TCP super-packet
  if (plen > avail - 40) return Malformed(out, DropReason::kIp6BadPayloadLen);
  const uint32_t tot = 40 + plen;
  out->l3_off = off;
  out->l3_len = tot;
  PacketKey6& k = out->key6;
  LoadAddr6(ip + 8, k.src);
  LoadAddr6(ip + 24, k.dst);

  // Walk the extension headers; `pos` is relative to the IPv6 header.
  uint8_t nh = ip[6];
  uint32_t pos = 40;
  for (uint32_t n = 0;; ++n) {
    const bool ext = nh == kIp6HopByHop || nh == kIp6Routing || nh == kIp6Fragment ||
                     nh == kIp6DestOpts || nh == kIp6Auth;
    if (!ext) break;
    if (n == kMaxIp6ExtHeaders) return Malformed(out, DropReason::kIp6ExtChainTooLong);
    if (nh == kIp6HopByHop && n != 0) return Malformed(out, DropReason::kIp6HopByHopNotFirst);
    const uint8_t* h = ip + pos;
    if (nh == kIp6Fragment) {
      if (tot - pos < 8) return Malformed(out, DropReason::kIp6ExtTruncated);
      const uint16_t fo = Load16(h + 2);
      const bool more = (fo & 1) != 0;
      const uint16_t offset = fo & 0xfff8;
      if (offset != 0) {
        // Later fragment: no L4. The protocol is the fragment header's next
        // header (ipv6_find_hdr returns it with fragoff set).
        out->fragment = out->later_fragment = true;
        k.c.proto = h[0];
        out->cls = FrameClass::kIPv6;
        return out->cls;
      }
      if (more) out->fragment = true;  // first fragment; offset 0 M 0 is atomic
      nh = h[0];
      pos += 8;
      continue;
    }
    if (tot - pos < 2) return Malformed(out, DropReason::kIp6ExtTruncated);
    const uint32_t hlen = nh == kIp6Auth ? (uint32_t(h[1]) + 2) * 4 : (uint32_t(h[1]) + 1) * 8;
    if (hlen > tot - pos) return Malformed(out, DropReason::kIp6ExtTruncated);
    nh = h[0];
    pos += hlen;
  }
  k.c.proto = nh;
  if (nh == kIp6NoNext || nh == kIp6Esp) {
    // Nothing parseable follows; not a fragment, so L4 is "complete".
    k.c.flags |= kKeyHasL4;
    out->cls = FrameClass::kIPv6;
    return out->cls;
  }
  const DropReason r = ParseL4(ip + pos, tot - pos, nh, &k.c);
  if (r == DropReason::kL4Truncated) return Truncated(out, FrameClass::kIPv6, &k.c);
  if (r != DropReason::kNone) return Malformed(out, r);
  out->l4_off = off + pos;
  out->cls = FrameClass::kIPv6;
  if (nh == kProtoIcmp6) {
    const uint8_t type = uint8_t(k.c.icmp >> 8);
    if (type >= 133 && type <= 137) out->cls = FrameClass::kNdp;
  }
  return out->cls;
}

}  // namespace

void ParseFrame(const uint8_t* frame, uint32_t len, bool gso, ParsedFrame* out) {
  *out = ParsedFrame{};
  if (len < kEthHdrLen) {
    Malformed(out, DropReason::kEthTruncated);
    return;
  }
  uint32_t off = 12;
  uint16_t type = Load16(frame + off);
  while (type == kEthVlan || type == kEthQinQ || type == kEthQinQOld) {
    if (out->vlan_tags == kMaxVlanTags) {
      Malformed(out, DropReason::kVlanTooDeep);
      return;
    }
    // The tag is TPID (already read) + TCI, then the next ethertype.
    if (len - off < 2 + kVlanTagLen) {
      Malformed(out, DropReason::kVlanTruncated);
      return;
    }
    off += kVlanTagLen;
    type = Load16(frame + off);
    ++out->vlan_tags;
  }
  off += 2;
  out->ethertype = type;
  switch (type) {
    case kEthIPv4: ParseIp4(frame, len, off, gso, out); return;
    case kEthIPv6: ParseIp6(frame, len, off, gso, out); return;
    case kEthArp: out->cls = FrameClass::kArp; return;
    default: out->cls = FrameClass::kOther; return;
  }
}

}  // namespace flatwall
