// Match programs: the part of a rule the classifier cannot index.
//
// WHY A SECOND STAGE
// The classifier (classifier/classifier.h) answers "first record >= start
// whose ranges contain this key" over a fixed set of fields: addresses,
// ports, protocol, interfaces, ICMP type, TCP flags, ct state. That is what
// makes a lookup cost the same at 1 and at 1,000,000 rules. Other iptables
// matches either read bytes that are not in the key (TTL, length, TOS, MAC,
// IPv6 extension headers) or have state that changes per packet (limit,
// hashlimit, recent): those cannot be ranges of a decision structure.
//
// HOW A LOOKUP USES THEM
// The compiler puts a rule's indexable conditions in its records as always,
// and flags the records kRuleHasExt. Its other matches become a small
// program, kept in the extension section of the packed buffer together with
// one entry per flagged record: (table, record, fail, program). The walk
// (EvaluateExt below) is then:
//
//     i = lookup(key, start)
//     if record i is flagged:
//         if not run(program of i): start = fail of i; continue
//     take record i (count, LOG, continue or verdict)
//
// `fail` is the first record after everything the rule expanded into (its
// other records, and the chain a -j inlined), so a rule whose program is
// false is skipped as a whole and its program runs at most once per packet,
// as the kernel runs a rule's matches once. A program's ops run in the
// rule's order and stop at the first false one (the kernel's order: the
// ip header part and the indexed matches first, which have no side effects,
// then the rest left to right), so a rate match only spends a token when
// everything before it matched.
//
// COST
// A packet pays one lookup per flagged record it reaches whose program is
// false. Real rule sets put such matches on few rules (a `-m limit -j LOG`
// before a chain's DROP, a `recent` pair on the SSH rule), so the walk stays
// a handful of lookups. A table in which many records share the same
// indexed fields and differ only in program conditions (a million rules
// that differ only in TTL) degrades towards a scan of those records: that
// is the price of conditions the classifier does not index. The benchmark
// (bench/results/extensions.md) measures a realistic block of such rules in
// front of a million others; this degenerate case is not measured.
//
// STATE
// Stateful matches name a state object in the section's state list (a
// limit's bucket, a hashlimit or recent table). States live in an
// ExtStateRegistry owned by the dataplane, not by the rule set, and are
// found again by key when a new rule set is built: an unchanged limit rule
// keeps its bucket across reloads, as its counters carry over, and a
// recent/hashlimit table is kept by name while some rule uses it (the
// kernel keeps a table while a rule references it, and iptables-restore
// creates the new rules before it destroys the old).
//
// SAFETY
// The section comes from JavaScript and is checked whole by Parse before a
// rule set is published: every offset, length, op and state index, and
// that the entries and the flagged records correspond one to one. The
// walk then trusts it. Ops read packet bytes only inside the IP packet the
// frame parser validated.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "classifier/classifier.h"
#include "classifier/rule_table.h"
#include "classifier/table_set.h"
#include "dataplane/parse.h"

namespace flatwall {
namespace sets {
class SetStore;
}
namespace ct {
struct Result;
}
namespace ext {

struct HostAddrs;

// ---- The section, as the compiler writes it (little-endian, 4-aligned) ----
//
//   SectionHeader
//   Entry[entry_count]             sorted by (table, record)
//   state specs                    state_bytes: StateHeader + payload each
//   programs                       prog_bytes: ProgHeader + ops each
constexpr uint32_t kSectionMagic = 0x31585746;  // "FWX1"

struct SectionHeader {
  uint32_t magic;
  uint32_t entry_count;
  uint32_t state_count;
  uint32_t state_bytes;
  uint32_t prog_bytes;
};

struct Entry {
  uint16_t table;    // table index in the packed buffer
  uint16_t reserved;
  uint32_t record;   // a record flagged kRuleHasExt
  uint32_t fail;     // where the walk goes on when the program is false
  uint32_t prog;     // byte offset of the program in the program area
};

struct ProgHeader {
  uint16_t op_count;
  uint16_t bytes;  // header included
};

struct OpHeader {
  uint8_t kind;    // Op
  uint8_t invert;  // 1: the op's result is negated ("!")
  uint16_t bytes;  // header included, multiple of 4
};

struct StateHeader {
  uint16_t kind;   // StateKind
  uint16_t bytes;  // header included, multiple of 4
};

static_assert(sizeof(SectionHeader) == 20 && sizeof(Entry) == 16 && sizeof(ProgHeader) == 4 &&
                  sizeof(OpHeader) == 4 && sizeof(StateHeader) == 4,
              "extension section layout");

// Ops. Payload layouts are in the comment of each; the evaluators live in
// the file named after the kernel module they follow.
enum class Op : uint8_t {
  kTtl = 1,       // u8 mode (0 eq, 1 ne, 2 lt, 3 gt), u8 value          header_matches.cc (xt_ttl / ip6t_hl)
  kLength = 2,    // u16 lo, u16 hi                                      header_matches.cc (xt_length)
  kTos = 3,       // u8 value, u8 mask                                   header_matches.cc (xt_tos / xt_dscp tos_mt)
  kDscp = 4,      // u8 dscp                                             header_matches.cc (xt_dscp)
  kEcn = 5,       // u8 ops (EcnBits), u8 ect                            header_matches.cc (xt_ecn)
  kPktType = 6,   // u8 type (0 unicast, 1 broadcast, 2 multicast)       header_matches.cc (xt_pkttype)
  kMacSource = 7, // u8 mac[6]                                           header_matches.cc (xt_mac)
  kAddrType = 8,  // u16 src types, u16 dst types, u8 flags (AddrTypeFlags)  addrtype.cc (xt_addrtype)
  kNever = 9,     // (none): -m helper without CT helper rules           header_matches.cc
  kIp6Header = 10,// u8 want (Ip6HdrBits), u8 soft                       ipv6_headers.cc (ip6t_ipv6header)
  kIp6Frag = 11,  // u32 id lo, hi, u8 flags (FragBits)                   ipv6_headers.cc (ip6t_frag)
  kIp6Opts = 12,  // u8 which (0 hbh, 60 dst), u8 flags (1 len set, 2 invert), u16 len        ipv6_headers.cc (ip6t_hbh)
  kIp6Rt = 13,    // u8 flags, u8 type, u16 len, u32 segs lo, hi   ipv6_headers.cc (ip6t_rt)
  kSpi = 14,      // u8 proto (50 ESP, 51 AH), u32 lo, hi                ipv6_headers.cc (xt_esp, ip6t_ah/ipt_ah)
  kLimit = 20,    // u32 state                                           xt_limit.h
  kHashlimit = 21,// u32 state, u8 above, u8 bytes                       xt_hashlimit.cc
  kRecent = 22,   // u32 state, u8 cmd (RecentCmd), u8 flags (RecentFlags), u32 seconds, u32 hitcount, u32 mask[4] (unused: the table's)
                  //                                                     xt_recent.cc
  kSet = 23,      // u32 set id, u8 ndirs, u8 return_nomatch, u8 dirs[6]  (sets/set_store.h, xt_set.c)
  kConnlimit = 24,// u32 state, u32 limit, u8 flags (ConnlimitFlags), u8 pad[3]  xt_connlimit.h
  // Targets that change the packet: the last op of their rule's program,
  // so they act only when every match held; always true unless the
  // kernel would drop the packet.
  kTcpMss = 30,   // u16 mss (0: --clamp-mss-to-pmtu)                    xt_tcpmss.h
  // -j NOTRACK, -j CT --notrack and a bare -j CT (xt_CT.c notrack_tg,
  // xt_ct_target): a packet that has no conntrack yet gets the untracked
  // one (mode 0) or the CT template (mode 1), then evaluation goes on; one
  // that has either keeps it ("Previously seen? Ignore."). In the raw
  // walks *Context::raw_ct is the key's ct_state: INVALID while the packet
  // has none, then UNTRACKED or NEW (a template: later ctstate matches
  // see NEW, and conntrack tracks the packet as usual).
  kCt = 31,       // u8 mode (0 notrack, 1 template), u8 pad[3]            ext_table.cc
};

enum class StateKind : uint16_t {
  kLimit = 1,      // u64 interval_ns, u32 burst, key bytes              xt_limit.h
  kHashlimit = 2,  // HashlimitConfig, name bytes                        xt_hashlimit.h
  kRecent = 3,     // RecentConfig, name bytes                           xt_recent.h
  kConnlimit = 4,  // ConnlimitConfig, rule key bytes                    xt_connlimit.h
};

// What an op sees of the packet besides its key.
struct Context {
  const uint8_t* frame = nullptr;  // the Ethernet frame
  uint32_t len = 0;
  const ParsedFrame* pf = nullptr;
  uint64_t now_ns = 0;             // monotonic (the pcap clock in replay)
  Hook hook = Hook::kForward;      // of the table being walked
  const HostAddrs* host = nullptr;  // host mode's addresses (addrtype.h), or none
  uint8_t* writable = nullptr;     // the frame, when ops may change it (TCPMSS); null in replay
  bool csum_partial = false;       // the frame's L4 checksum is completed later (NEEDS_CSUM)
  uint32_t mtu = 1500;             // the smaller MTU of the frame's two ports
  const sets::SetStore* sets = nullptr;  // the IP sets -m set tests, or none
  uint64_t sets_now_ns = 0;        // the set store's clock (CLOCK_MONOTONIC)
  ct::Result* ct = nullptr;        // the packet's conntrack result (connlimit tags its entry), or none
  uint8_t* raw_ct = nullptr;       // raw walks: the key's ct_state, which kCt changes (see there)
};

// The index a walk reports when a match dropped the packet itself (the
// kernel's hotdrop: a full hashlimit table, ports missing where a hashlimit
// mode needs them).
constexpr uint32_t kHotDrop = 0xfffffffeu;

class State;
class ExtStateRegistry;

// One validated extension section, as one rule set generation uses it.
class ExtTable {
 public:
  // Checks the section at `data[0, size)` against the validated buffer's
  // tables (`buffer`, `tables`: every flagged record has exactly one entry
  // and every entry a flagged record, fail inside its table and after the
  // record, programs and states well formed), then resolves every state in
  // `registry` (existing ones with the same key and configuration are
  // reused). Throws std::invalid_argument with a message.
  static std::unique_ptr<ExtTable> Parse(const uint8_t* buffer, size_t buffer_size,
                                         const std::vector<TableInfo>& tables,
                                         ExtStateRegistry* registry);

  // The entry of a flagged record of `table`, or null (binary search over
  // that table's entries only).
  const Entry* Find(uint32_t table, uint32_t record) const;
  // Runs an entry's program: 1 true, 0 false, 2 hot drop. Called by the
  // packet workers concurrently.
  template <typename Key>
  int Run(const Entry& e, const Key& key, const Context& cx) const;

  size_t entries() const { return entries_.size(); }
  const std::vector<std::shared_ptr<State>>& states() const { return states_; }

 private:
  std::vector<Entry> entries_;
  std::vector<std::pair<uint32_t, uint32_t>> table_span_;  // per table: [first, end) of entries_
  std::vector<uint8_t> progs_;                              // program area
  std::vector<std::shared_ptr<State>> states_;
};

// Evaluate (classifier/table_set.h) with match programs: `ext` null is the
// plain walk. `on_ext()` is called when a program ran (the flow cache must
// not memoize such a walk: its answer is not a function of the key).
template <typename C, typename Key, typename OnMatch, typename OnExt>
Verdict EvaluateExt(const C& classifier, const ExtTable* ext, uint32_t table, const Key& key,
                    const Context& cx, OnMatch&& on_match, OnExt&& on_ext) {
  uint32_t start = 0;
  for (;;) {
    const uint32_t r = classifier.Lookup(key, start);
    if (r == kNoMatch) return Verdict{Action::kDrop, 0, kNoMatch};
    const RuleCommon& c = classifier.record(r).c;
    if ((c.flags & kRuleHasExt) && ext) {
      const Entry* e = ext->Find(table, r);
      on_ext();
      const int ok = e ? ext->Run(*e, key, cx) : 1;
      if (ok == 2) return Verdict{Action::kDrop, 0, kHotDrop};
      if (!ok) {
        if (e->fail <= r) return Verdict{Action::kDrop, 0, kNoMatch};
        start = e->fail;
        continue;
      }
    }
    on_match(r);
    Verdict verdict{};
    if (!TakeRecord(c, r, &start, &verdict)) return verdict;
  }
}

}  // namespace ext
}  // namespace flatwall
