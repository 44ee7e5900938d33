// The header fields one lookup needs, extracted once per packet by the
// dataplane parser (native/dataplane/parse.h) or built by tests and benchmarks.
#pragma once

#include <cstdint>

namespace flatwall {

enum KeyFlags : uint8_t {
  // An L4 header was present and complete (first fragment or unfragmented).
  // Rules with kRuleNeedsL4 never match a key without it.
  kKeyHasL4 = 1 << 0,
  // The L4 header is cut short (dataplane/parse.h): no kKeyHasL4, and the
  // walk hot-drops the packet at the first L4 rule it reaches
  // (dataplane/hotdrop.h). Lookups ignore this bit.
  kKeyL4Truncated = 1 << 1,
};

struct KeyCommon {
  uint16_t sport = 0, dport = 0;  // 0 when the protocol has no ports
  uint16_t iif = 0, oif = 0;      // interface class ids (rule_table.h)
  uint16_t icmp = 0;              // (type << 8) | code for ICMP/ICMPv6
  uint8_t proto = 0;              // IP protocol / final IPv6 next header
  uint8_t tcp_flags = 0;          // FIN=1 SYN=2 RST=4 PSH=8 ACK=16 URG=32 ...
  uint8_t ct_state = kKeyCtUntrackedDefault;  // exactly one CtState bit
  uint8_t flags = 0;                          // KeyFlags
  static constexpr uint8_t kKeyCtUntrackedDefault = 1 << 4;
};

struct PacketKey4 {
  KeyCommon c;
  uint32_t src = 0, dst = 0;  // host order
};

struct PacketKey6 {
  KeyCommon c;
  uint32_t src[4] = {0, 0, 0, 0};  // most significant word first, host order
  uint32_t dst[4] = {0, 0, 0, 0};
};

}  // namespace flatwall
