// Why the dataplane dropped a frame. Every drop is counted under exactly one
// reason (per worker, summed on read), and the names below are what
// dp.counters().dropsByReason reports to JavaScript.
#pragma once

#include <cstdint>

namespace flatwall {

#define FLATWALL_DROP_REASONS(X)                                                     \
  /* Malformed frames (parser). Never forwarded, never classified. */               \
  X(kEthTruncated, "eth_truncated")            /* < 14 bytes */                     \
  X(kVlanTruncated, "vlan_truncated")          /* tag cut short */                  \
  X(kVlanTooDeep, "vlan_too_deep")             /* more than 2 tags */               \
  X(kIp4Truncated, "ip4_truncated")            /* < 20 bytes or < IHL */            \
  X(kIp4BadVersion, "ip4_bad_version")         /* version != 4 */                   \
  X(kIp4BadIhl, "ip4_bad_ihl")                 /* IHL < 5 */                        \
  X(kIp4BadTotalLen, "ip4_bad_total_len")      /* tot_len < IHL or > frame */       \
  X(kIp4BadChecksum, "ip4_bad_checksum")       /* header checksum */                \
  X(kIp4BadOptions, "ip4_bad_options")         /* option TLVs overrun header */     \
  X(kIp4TinyFragment, "ip4_tiny_fragment")     /* TCP fragment at offset 8 */       \
  X(kIp6Truncated, "ip6_truncated")            /* < 40 bytes */                     \
  X(kIp6BadVersion, "ip6_bad_version")         /* version != 6 */                   \
  X(kIp6BadPayloadLen, "ip6_bad_payload_len")  /* payload_len > frame */            \
  X(kIp6ExtTruncated, "ip6_ext_truncated")     /* extension header cut short */     \
  X(kIp6HopByHopNotFirst, "ip6_hbh_not_first") /* RFC 8200 4.1 */                   \
  X(kIp6ExtChainTooLong, "ip6_ext_chain_too_long")                                  \
  X(kL4Truncated, "l4_truncated")              /* TCP/UDP/SCTP/ICMP header short: */ \
                           /* hot-dropped at an L4 rule, or --drop-l4-truncated */ \
  X(kTcpBadDataOffset, "tcp_bad_doff")         /* doff < 5 or past the packet */    \
  /* Ring / port level. */                                                          \
  X(kRxTruncated, "rx_truncated")              /* frame larger than the ring frame */ \
  X(kBadVnetHdr, "bad_vnet_hdr")               /* GSO metadata we cannot forward */ \
  X(kTxRingFull, "tx_full")                    /* out port's TX ring/queue full */  \
  X(kTxError, "tx_error")                      /* TAP write failed */               \
  /* Policy. */                                                                     \
  X(kNonIpPolicy, "non_ip_policy")             /* nonIpPolicy: 'drop' */            \
  X(kNoRuleset, "no_ruleset")                  /* IP before the first setRules */   \
  X(kRuleDrop, "rule_drop")                    /* DROP verdict */                   \
  X(kRuleReject, "rule_reject")                /* REJECT verdict (reply or not) */  \
  X(kNoVerdict, "no_verdict")                  /* table ended without a verdict */ \
  X(kMatchHotdrop, "match_hotdrop")            /* a match dropped it (hashlimit full, ...) */ \
  X(kConntrackFull, "conntrack_full")          /* accepted NEW flow, table full */

enum class DropReason : uint8_t {
  kNone = 0,
#define FLATWALL_DR_ENUM(name, str) name,
  FLATWALL_DROP_REASONS(FLATWALL_DR_ENUM)
#undef FLATWALL_DR_ENUM
  kCount
};

constexpr uint32_t kDropReasonCount = uint32_t(DropReason::kCount);

inline const char* DropReasonName(DropReason r) {
  switch (r) {
    case DropReason::kNone: return "none";
#define FLATWALL_DR_NAME(name, str) \
  case DropReason::name: return str;
    FLATWALL_DROP_REASONS(FLATWALL_DR_NAME)
#undef FLATWALL_DR_NAME
    case DropReason::kCount: break;
  }
  return "unknown";
}

// The malformed-frame reasons (the parser's), for tests and docs.
inline bool IsMalformed(DropReason r) {
  return r != DropReason::kNone && uint8_t(r) <= uint8_t(DropReason::kTcpBadDataOffset);
}

}  // namespace flatwall
