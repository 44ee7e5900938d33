#include "io/local_csum.h"

#include "dataplane/bytes.h"

namespace flatwall {
namespace io {

using namespace net;

bool CompleteLocalChecksum(uint8_t* f, uint32_t len) {
  // Ethernet and VLAN tags.
  uint32_t off = kEthHdrLen;
  if (len < off) return false;
  uint16_t type = Load16(f + 12);
  for (uint32_t tags = 0; (type == kEthVlan || type == kEthQinQ || type == kEthQinQOld); ++tags) {
    if (tags == kMaxVlanTags || len < off + kVlanTagLen) return false;
    type = Load16(f + off + 2);
    off += kVlanTagLen;
  }
  // IP: the L4 offset, length and pseudo-header sum.
  uint8_t proto;
  uint32_t l4, l4_len, pseudo;
  if (type == kEthIPv4) {
    if (len < off + 20 || (f[off] >> 4) != 4) return false;
    const uint32_t ihl = uint32_t(f[off] & 0xf) * 4;
    const uint32_t total = Load16(f + off + 2);
    if (ihl < 20 || total < ihl || len < off + total) return false;
    if (Load16(f + off + 6) & 0x3fff) return false;  // a fragment: MF or an offset
    proto = f[off + 9];
    l4 = off + ihl;
    l4_len = total - ihl;
    pseudo = PseudoSum4(f + off + 12, f + off + 16, proto, l4_len);
  } else if (type == kEthIPv6) {
    if (len < off + 40 || (f[off] >> 4) != 6) return false;
    proto = f[off + 6];
    l4 = off + 40;
    l4_len = Load16(f + off + 4);
    if (len < l4 + l4_len) return false;
    pseudo = PseudoSum6(f + off + 8, f + off + 24, proto, l4_len);
  } else {
    return false;
  }
  uint32_t field;
  if (proto == kProtoTcp && l4_len >= 20) field = l4 + 16;
  else if (proto == kProtoUdp && l4_len >= 8) field = l4 + 6;
  else return false;
  const uint16_t stored = Load16(f + field);
  // The partial value is the folded, uncomplemented pseudo-header sum.
  if (stored != uint16_t(~CsumFold(pseudo))) return false;
  if (CsumFold(CsumAdd(pseudo, f + l4, l4_len)) == 0) return false;  // already complete
  Store16(f + field, 0);
  uint16_t c = CsumFold(CsumAdd(pseudo, f + l4, l4_len));
  if (proto == kProtoUdp && c == 0) c = 0xffff;  // RFC 768: 0 means "no checksum"
  Store16(f + field, c);
  return true;
}

}  // namespace io
}  // namespace flatwall
