// The packed rule table: the one contract between the TypeScript compiler
// (src/rules/pack.ts) and the native classifier.
//
// This header is the single place the layout is written down. The addon
// exports every offset below (addon/layout.cc, via offsetof), and the TS side
// reads them at load time instead of keeping its own copy, so the two can
// never drift apart.
//
// A compiled rule set is one ArrayBuffer:
//
//   TableSetHeader                 magic "FWT1", version, table count
//   TableDesc[table_count]         family, hook, record count, byte offset
//   records...                     per table, RuleRecord4 or RuleRecord6,
//                                  each 4-byte aligned, little-endian
//
// Each table is one first-match list for one (hook, family): user chains are
// already inlined by the compiler, negations are already split into positive
// ranges, and the last record is always the chain policy (a catch-all). The
// PRIORITY OF A RECORD IS ITS INDEX: lower index wins. Every field is an
// inclusive range [lo, hi]; a wildcard is the full range of the field.
//
//   ExtSection (optional)          match programs of kRuleHasExt records
//
// Non-terminal actions (LOG, COUNT, SKIP) make the dataplane look up again
// starting at the record index in `arg`, which is how iptables' "evaluation
// goes on" and RETURN are expressed in a flat list.
#pragma once

#include <cstddef>
#include <cstdint>

namespace flatwall {

constexpr uint32_t kTableMagic = 0x31545746;  // "FWT1" little-endian
constexpr uint16_t kTableVersion = 1;

enum class Family : uint8_t { kIPv4 = 4, kIPv6 = 6 };
// The filter table's three hooks, then the raw table's two. The raw table
// is walked before conntrack (netfilter's NF_IP_PRI_RAW, -300, ahead of
// NF_IP_PRI_CONNTRACK, -200): PREROUTING for every frame that arrives,
// OUTPUT instead of it for a host's own frames (host mode).
enum class Hook : uint8_t { kInput = 0, kForward = 1, kOutput = 2, kRawPrerouting = 3, kRawOutput = 4 };
constexpr uint8_t kHookCount = 5;

// A hook's name as the control plane spells it (src/rules/pack.ts HOOKS).
inline const char* HookName(uint8_t hook) {
  switch (hook) {
    case 0: return "INPUT";
    case 1: return "FORWARD";
    case 2: return "OUTPUT";
    case 3: return "raw/PREROUTING";
    case 4: return "raw/OUTPUT";
  }
  return "?";
}

enum class Action : uint8_t {
  kAccept = 0,
  kDrop = 1,
  kReject = 2,  // arg = RejectWith
  // Non-terminal actions: evaluation continues at record index `arg`, which
  // is always greater than the record's own index. For LOG and COUNT it is
  // the first record after the source rule's own records (a rule expanded
  // into several records must log and count once); for SKIP (RETURN) it is
  // the end of the inlined chain.
  kLog = 3,    // -j LOG: emit an event, go on
  kCount = 4,  // a rule without a verdict: a taken -j/-g jump, or no -j
  kSkip = 5,   // RETURN
};

enum class RejectWith : uint8_t {
  kIcmpNetUnreachable = 0,
  kIcmpHostUnreachable = 1,
  kIcmpPortUnreachable = 2,
  kIcmpProtoUnreachable = 3,
  kIcmpNetProhibited = 4,
  kIcmpHostProhibited = 5,
  kIcmpAdminProhibited = 6,
  kTcpReset = 7,
  kIcmp6NoRoute = 8,
  kIcmp6AdmProhibited = 9,
  kIcmp6AddrUnreachable = 10,
  kIcmp6PortUnreachable = 11,
};

// Conntrack state bits. A packet carries exactly one; a rule carries a mask.
enum CtState : uint8_t {
  kCtInvalid = 1 << 0,
  kCtNew = 1 << 1,
  kCtEstablished = 1 << 2,
  kCtRelated = 1 << 3,
  kCtUntracked = 1 << 4,
  kCtAny = 0x1f,
};

// RuleRecord::flags
enum RuleFlags : uint8_t {
  // The rule uses an L4 match (ports, tcp flags, icmp type). Like iptables,
  // such a rule never matches a non-first fragment or a truncated header.
  kRuleNeedsL4 = 1 << 0,
  // `! --tcp-flags`: match when (flags & mask) != value.
  kRuleTcpFlagsInvert = 1 << 1,
  // A SKIP record whose `arg` is the policy because it leaves the built-in
  // chain (RETURN there, or out of a chain it -g'd to), as opposed to one
  // that resumes the built-in chain at the rule after a -j and merely lands
  // on the policy index because that rule was the chain's last. Matching
  // ignores it; single-rule edits need the difference (dataplane/ruleset.h:
  // rules appended after the last rule come before the policy, and only the
  // second kind of SKIP reaches them).
  kRuleReturnsToPolicy = 1 << 2,
  // The rule has matches the classifier cannot index (rate limits, TTL,
  // address types, ...): after the classifier finds this record, the
  // dataplane runs the rule's match program from the extension section
  // (extensions/ext_table.h), and when it is false continues at the
  // entry's `fail` index instead of taking the record. The classifier
  // itself ignores the bit.
  kRuleHasExt = 1 << 3,
  // With kRuleNeedsL4: the source rule's L4 match comes before its
  // conntrack/state match (kRuleL4BeforeCt) or its iprange match
  // (kRuleL4BeforeAddr), so on a truncated header the kernel hot-drops
  // before testing those. Matching ignores them (dataplane/hotdrop.h).
  kRuleL4BeforeCt = 1 << 4,
  kRuleL4BeforeAddr = 1 << 5,
};

struct TableSetHeader {
  uint32_t magic;        // kTableMagic
  uint16_t version;      // kTableVersion
  uint16_t table_count;  // entries in the TableDesc array that follows
  uint32_t total_bytes;  // whole buffer, for bounds checks
  // Byte offset of the extension section (extensions/ext_table.h: match
  // programs and their state), after every table's records and running to
  // total_bytes; 0 when no rule needs one.
  uint32_t ext_offset;
};

struct TableDesc {
  uint8_t family;        // Family
  uint8_t hook;          // Hook
  uint16_t record_size;  // sizeof(RuleRecord4) or sizeof(RuleRecord6)
  uint32_t count;        // records, policy included (so count >= 1)
  uint32_t offset;       // byte offset of the first record from buffer start
  uint32_t reserved;
};

// Fields shared by both families. Addresses follow in the family record.
struct RuleCommon {
  uint32_t rule_id;  // source rule (JS metadata index): counters and logs
  uint32_t arg;      // RejectWith, or the continue index of LOG/COUNT/SKIP
  uint16_t sport_lo, sport_hi;
  uint16_t dport_lo, dport_hi;
  uint16_t iif_lo, iif_hi;    // interface ids, see "Interface ids" below
  uint16_t oif_lo, oif_hi;
  uint16_t icmp_lo, icmp_hi;  // (type << 8) | code
  uint8_t proto_lo, proto_hi;
  uint8_t tcp_flags_mask, tcp_flags_value;
  uint8_t ct_state_mask;  // CtState bits; kCtAny when the rule has no ctstate
  uint8_t flags;          // RuleFlags
  uint8_t action;         // Action
  uint8_t reserved;
};

// IPv4 addresses as host-order uint32.
struct RuleRecord4 {
  RuleCommon c;
  uint32_t src_lo, src_hi;
  uint32_t dst_lo, dst_hi;
};

// IPv6 addresses as four uint32 words, most significant word first, each
// word in host order (so 2001:db8::1 is {0x20010db8, 0, 0, 1}).
struct RuleRecord6 {
  RuleCommon c;
  uint32_t src_lo[4], src_hi[4];
  uint32_t dst_lo[4], dst_hi[4];
};

static_assert(sizeof(TableSetHeader) == 16, "header layout");
static_assert(sizeof(TableDesc) == 16, "desc layout");
static_assert(sizeof(RuleCommon) == 36, "common layout");
static_assert(sizeof(RuleRecord4) == 52, "v4 record layout");
static_assert(sizeof(RuleRecord6) == 100, "v6 record layout");

// Interface ids. Rules name interfaces exactly ("eth0") or by prefix
// ("eth+"). The compiler sorts every name and prefix the rule set mentions
// and cuts the space of all strings into consecutive classes: one class per
// exact name, and the gaps between them. Strings sharing a prefix are
// contiguous in lexicographic order, so every `-i` condition becomes one id
// range, and `! -i` two. The dataplane maps each port name to its class once
// per table (see the iface section the compiler returns next to the buffer);
// the hot path only compares integers.

}  // namespace flatwall
