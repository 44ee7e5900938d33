#include "extensions/ext_table.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <type_traits>

#include "dataplane/bytes.h"
#include "extensions/addrtype.h"
#include "extensions/header_matches.h"
#include "extensions/ipv6_headers.h"
#include "extensions/state.h"
#include "extensions/xt_connlimit.h"
#include "extensions/xt_hashlimit.h"
#include "extensions/xt_limit.h"
#include "extensions/xt_recent.h"
#include "extensions/xt_tcpmss.h"
#include "sets/set_store.h"

namespace flatwall {
namespace ext {
namespace {

[[noreturn]] void Fail(const std::string& why) { throw std::invalid_argument("extension section: " + why); }

template <typename T>
T Read(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// The payload size each op needs (bytes after OpHeader), or -1 for an
// unknown op.
int PayloadSize(uint8_t kind) {
  switch (Op(kind)) {
    case Op::kTtl: case Op::kLength: case Op::kTos: case Op::kDscp: case Op::kEcn:
    case Op::kPktType: case Op::kIp6Header: case Op::kIp6Opts: case Op::kLimit:
      return 4;
    case Op::kTcpMss:
      return 4;
    case Op::kMacSource: case Op::kAddrType: case Op::kHashlimit:
      return 8;
    case Op::kIp6Frag: case Op::kIp6Rt: case Op::kSpi:
      return 12;
    case Op::kRecent:
      return 16;
    case Op::kNever:
      return 0;
    case Op::kCt:
      return 4;
    case Op::kSet: case Op::kConnlimit:
      return 12;
  }
  return -1;
}

bool Stateful(uint8_t kind) {
  return kind == uint8_t(Op::kLimit) || kind == uint8_t(Op::kHashlimit) || kind == uint8_t(Op::kRecent) ||
         kind == uint8_t(Op::kConnlimit);
}

StateKind StateOf(uint8_t kind) {
  return kind == uint8_t(Op::kLimit)       ? StateKind::kLimit
         : kind == uint8_t(Op::kHashlimit) ? StateKind::kHashlimit
         : kind == uint8_t(Op::kRecent)    ? StateKind::kRecent
                                           : StateKind::kConnlimit;
}

// A length-prefixed name or key after a fixed part of `fixed` bytes.
std::string Tail(const uint8_t* p, uint32_t payload, uint32_t fixed, const char* what) {
  if (payload < fixed + 4) Fail(std::string(what) + " state is too short");
  const uint16_t n = Read<uint16_t>(p + fixed);
  if (n == 0 || fixed + 4 + n > payload) Fail(std::string(what) + " state name runs past its record");
  return std::string(reinterpret_cast<const char*>(p + fixed + 4), n);
}

std::shared_ptr<State> MakeState(uint16_t kind, const uint8_t* p, uint32_t payload, ExtStateRegistry* reg,
                                 uint32_t index) {
  const std::string where = "state " + std::to_string(index);
  switch (StateKind(kind)) {
    case StateKind::kLimit: {
      const std::string key = Tail(p, payload, 12, "limit");
      const uint64_t interval = Read<uint64_t>(p);
      const uint32_t burst = Read<uint32_t>(p + 8);
      // GCRA sums stay below 2^64: interval * burst, plus a monotonic now.
      if (interval == 0 || interval > (uint64_t(1) << 50) || burst == 0 || burst > 10000)
        Fail(where + ": limit rate or burst out of range");
      std::string cfg(reinterpret_cast<const char*>(p), 12);
      return reg->Get("limit:" + key, cfg, [&] { return std::make_shared<LimitState>("limit:" + key, cfg, interval, burst); });
    }
    case StateKind::kHashlimit: {
      const std::string name = Tail(p, payload, sizeof(HashlimitConfig), "hashlimit");
      const HashlimitConfig c = Read<HashlimitConfig>(p);
      if (c.interval_ps == 0 || c.burst == 0 || c.max == 0 || c.max > (1u << 20) || (c.family != 4 && c.family != 6) ||
          c.srcmask > (c.family == 4 ? 32 : 128) || c.dstmask > (c.family == 4 ? 32 : 128) ||
          (c.mode & ~uint32_t(kHashDstIp | kHashDstPort | kHashSrcIp | kHashSrcPort)) || c.expire_ms == 0)
        Fail(where + ": hashlimit configuration out of range");
      // burst * interval and, in bytes mode, a 64 KiB packet's cost stay
      // far below 2^64 ps.
      if (c.burst > (uint64_t(1) << 40) || c.interval_ps > (uint64_t(1) << 60) / std::max<uint64_t>(c.burst, 1) ||
          (c.bytes && c.interval_ps > (uint64_t(1) << 44)))
        Fail(where + ": hashlimit burst x interval overflows");
      std::string cfg(reinterpret_cast<const char*>(p), sizeof c);
      const std::string key = "hashlimit:" + std::to_string(c.family) + ":" + name;
      return reg->Get(key, cfg, [&] { return std::make_shared<HashlimitState>(key, cfg, c); });
    }
    case StateKind::kRecent: {
      const std::string name = Tail(p, payload, sizeof(RecentConfig), "recent");
      const RecentConfig c = Read<RecentConfig>(p);
      // Entries are scanned under the table's lock: keep tables small
      // (the kernel's default, and what the compiler writes, is 100).
      if (c.list_tot == 0 || c.list_tot > 1024 || c.pkt_list_tot == 0 || c.pkt_list_tot > 255)
        Fail(where + ": recent configuration out of range");
      std::string cfg(reinterpret_cast<const char*>(p), sizeof c);
      return reg->Get("recent:" + name, cfg, [&] { return std::make_shared<RecentState>("recent:" + name, cfg, c, name); });
    }
    case StateKind::kConnlimit: {
      const std::string key = Tail(p, payload, sizeof(ConnlimitConfig), "connlimit");
      const ConnlimitConfig c = Read<ConnlimitConfig>(p);
      if (c.family != 4 && c.family != 6) Fail(where + ": connlimit family must be 4 or 6");
      if (c.family == 4 && (c.mask[1] | c.mask[2] | c.mask[3])) Fail(where + ": connlimit IPv4 mask has IPv6 words");
      if (!reg->conncount())
        throw std::invalid_argument("-m connlimit needs connection tracking (it is off: --no-conntrack)");
      std::string cfg(reinterpret_cast<const char*>(p), sizeof c);
      return reg->Get("connlimit:" + key, cfg, [&] {
        return std::make_shared<ConnlimitState>("connlimit:" + key, cfg, reg->conncount(), c);
      });
    }
  }
  Fail(where + ": unknown kind " + std::to_string(kind));
}

}  // namespace

std::unique_ptr<ExtTable> ExtTable::Parse(const uint8_t* b, size_t size, const std::vector<TableInfo>& tables,
                                          ExtStateRegistry* registry) {
  auto t = std::make_unique<ExtTable>();
  TableSetHeader th;
  std::memcpy(&th, b, sizeof th);
  // Records flagged per table, to match against the entries.
  std::vector<std::vector<uint32_t>> flagged(tables.size());
  for (size_t i = 0; i < tables.size(); ++i) {
    const TableInfo& ti = tables[i];
    const size_t rs = ti.family == Family::kIPv4 ? sizeof(RuleRecord4) : sizeof(RuleRecord6);
    for (uint32_t r = 0; r < ti.count; ++r) {
      RuleCommon c;
      std::memcpy(&c, b + ti.offset + size_t(r) * rs, sizeof c);
      if (c.flags & kRuleHasExt) flagged[i].push_back(r);
    }
  }
  t->table_span_.assign(tables.size(), {0, 0});
  if (th.ext_offset == 0) {
    for (size_t i = 0; i < tables.size(); ++i)
      if (!flagged[i].empty()) Fail("records are flagged but the buffer has no extension section");
    return t;
  }
  const uint8_t* s = b + th.ext_offset;
  const uint64_t avail = size - th.ext_offset;
  if (avail < sizeof(SectionHeader)) Fail("shorter than its header");
  const SectionHeader h = Read<SectionHeader>(s);
  if (h.magic != kSectionMagic) Fail("bad magic");
  const uint64_t entries_end = sizeof h + uint64_t(h.entry_count) * sizeof(Entry);
  const uint64_t states_end = entries_end + h.state_bytes;
  const uint64_t progs_end = states_end + h.prog_bytes;
  if (progs_end != avail) Fail("entry, state and program sizes do not add up to the section");
  if (h.state_bytes % 4 || h.prog_bytes % 4) Fail("areas are not 4-byte multiples");

  // States, in order; ops refer to them by index and kind.
  std::vector<uint16_t> state_kinds;
  for (uint64_t off = entries_end; off < states_end;) {
    if (states_end - off < sizeof(StateHeader)) Fail("state header runs past the state area");
    const StateHeader sh = Read<StateHeader>(s + off);
    if (sh.bytes < sizeof sh || sh.bytes % 4 || off + sh.bytes > states_end) Fail("state record size is wrong");
    t->states_.push_back(MakeState(sh.kind, s + off + sizeof sh, sh.bytes - sizeof sh, registry,
                                   uint32_t(state_kinds.size())));
    state_kinds.push_back(sh.kind);
    off += sh.bytes;
  }
  if (state_kinds.size() != h.state_count) Fail("state count does not match the state area");

  // Programs: every op known, sized right, states of the right kind.
  t->progs_.assign(s + states_end, s + progs_end);
  std::vector<uint32_t> prog_starts;
  for (uint32_t off = 0; off < t->progs_.size();) {
    if (t->progs_.size() - off < sizeof(ProgHeader)) Fail("program header runs past the program area");
    const ProgHeader ph = Read<ProgHeader>(&t->progs_[off]);
    if (ph.bytes < sizeof ph || ph.bytes % 4 || off + ph.bytes > t->progs_.size()) Fail("program size is wrong");
    uint32_t at = off + sizeof ph;
    for (uint32_t k = 0; k < ph.op_count; ++k) {
      if (off + ph.bytes - at < sizeof(OpHeader)) Fail("op runs past its program");
      const OpHeader oh = Read<OpHeader>(&t->progs_[at]);
      const int want = PayloadSize(oh.kind);
      if (want < 0) Fail("unknown op " + std::to_string(oh.kind));
      if (oh.bytes != sizeof oh + uint32_t(want) || at + oh.bytes > off + ph.bytes) Fail("op size is wrong");
      if (oh.invert > 1) Fail("op invert is not 0 or 1");
      if (Stateful(oh.kind)) {
        const uint32_t si = Read<uint32_t>(&t->progs_[at + sizeof oh]);
        if (si >= state_kinds.size() || state_kinds[si] != uint16_t(StateOf(oh.kind))) Fail("op names a wrong state");
      }
      // Payload values the evaluators rely on.
      const uint8_t* pl = &t->progs_[at + sizeof oh];
      switch (Op(oh.kind)) {
        case Op::kRecent:
          if (pl[4] < 1 || pl[4] > 4) Fail("recent command out of range");
          if (pl[5] & ~uint8_t(kRecentTtl | kRecentReap | kRecentDest)) Fail("recent flags out of range");
          break;
        case Op::kTtl: if (pl[0] > 3) Fail("ttl mode out of range"); break;
        case Op::kCt: if (pl[0] > 1) Fail("CT mode out of range"); break;
        case Op::kConnlimit:
          if (pl[8] & ~uint8_t(kConnlimitDaddr | kConnlimitInvert)) Fail("connlimit flags out of range");
          break;
        case Op::kPktType: if (pl[0] > 2) Fail("pkttype out of range"); break;
        case Op::kIp6Opts: if (pl[0] != 0 && pl[0] != 60) Fail("options header must be hop-by-hop (0) or destination (60)"); break;
        case Op::kSpi: if (pl[0] != 50 && pl[0] != 51) Fail("spi protocol must be ESP (50) or AH (51)"); break;
        case Op::kSet:
          if (pl[4] < 1 || pl[4] > 6) Fail("set directions out of range");
          for (int d = 0; d < pl[4]; ++d)
            if (pl[6 + d] != 1 && pl[6 + d] != 2) Fail("set direction must be src (1) or dst (2)");
          break;
        default: break;
      }
      at += oh.bytes;
    }
    if (at != off + ph.bytes) Fail("program has bytes after its ops");
    prog_starts.push_back(off);
    off += ph.bytes;
  }

  // Entries: sorted, one per flagged record, fail after the record.
  t->entries_.resize(h.entry_count);
  if (h.entry_count) std::memcpy(t->entries_.data(), s + sizeof h, size_t(h.entry_count) * sizeof(Entry));
  std::vector<size_t> per_table(tables.size(), 0);
  for (size_t i = 0; i < t->entries_.size(); ++i) {
    const Entry& e = t->entries_[i];
    if (e.table >= tables.size()) Fail("entry " + std::to_string(i) + " names no table");
    if (i && (e.table < t->entries_[i - 1].table ||
              (e.table == t->entries_[i - 1].table && e.record <= t->entries_[i - 1].record)))
      Fail("entries are not sorted by table and record");
    const auto& fl = flagged[e.table];
    const size_t k = per_table[e.table]++;
    if (k >= fl.size() || fl[k] != e.record) Fail("entry " + std::to_string(i) + " is not for a flagged record");
    if (e.fail <= e.record || e.fail >= tables[e.table].count) Fail("entry " + std::to_string(i) + ": fail index out of range");
    if (!std::binary_search(prog_starts.begin(), prog_starts.end(), e.prog)) Fail("entry " + std::to_string(i) + ": no program there");
  }
  for (size_t i = 0; i < tables.size(); ++i) {
    if (per_table[i] != flagged[i].size()) Fail("a flagged record has no entry");
  }
  for (size_t i = 0, j = 0; i < tables.size(); ++i) {
    const size_t start = j;
    while (j < t->entries_.size() && t->entries_[j].table == i) ++j;
    t->table_span_[i] = {uint32_t(start), uint32_t(j)};
  }
  return t;
}

const Entry* ExtTable::Find(uint32_t table, uint32_t record) const {
  if (table >= table_span_.size()) return nullptr;
  const auto span = table_span_[table];
  const Entry* lo = entries_.data() + span.first;
  const Entry* hi = entries_.data() + span.second;
  const Entry* it = std::lower_bound(lo, hi, record, [](const Entry& e, uint32_t r) { return e.record < r; });
  return it != hi && it->record == record ? it : nullptr;
}

namespace {

inline const uint32_t* Src(const PacketKey4& k) { return &k.src; }
inline const uint32_t* Dst(const PacketKey4& k) { return &k.dst; }
inline const uint32_t* Src(const PacketKey6& k) { return k.src; }
inline const uint32_t* Dst(const PacketKey6& k) { return k.dst; }
constexpr int Words(const PacketKey4&) { return 1; }
constexpr int Words(const PacketKey6&) { return 4; }

// The first `plen` bits of a (words x 32-bit, most significant first).
inline void MaskAddr(const uint32_t* a, int words, uint8_t plen, uint32_t* out) {
  for (int i = 0; i < 4; ++i) {
    if (i >= words) { out[i] = 0; continue; }
    const int bits = int(plen) - 32 * i;
    out[i] = bits >= 32 ? a[i] : bits <= 0 ? 0 : a[i] & (~uint32_t(0) << (32 - bits));
  }
}

template <typename Key>
int RunOp(const OpHeader& oh, const uint8_t* p, const Key& key, const Context& cx,
          const std::vector<std::shared_ptr<State>>& states) {
  constexpr bool v6 = std::is_same<Key, PacketKey6>::value;
  // A walk over a bare key (tests, evaluateRuleset) has no packet bytes:
  // ops that read them are false (an inverted one then true).
  if (!cx.frame || !cx.pf) {
    if (oh.kind == uint8_t(Op::kLimit)) return static_cast<LimitState*>(states[Read<uint32_t>(p)].get())->Take(cx.now_ns);
    if (oh.kind != uint8_t(Op::kAddrType) && oh.kind != uint8_t(Op::kSet) && oh.kind != uint8_t(Op::kConnlimit) &&
        oh.kind != uint8_t(Op::kCt))
      return 0;
  }
  static const ParsedFrame kNoFrame;
  const ParsedFrame& pf = cx.pf ? *cx.pf : kNoFrame;
  switch (Op(oh.kind)) {
    case Op::kTtl: return TtlMatch(p[0], p[1], HopLimit(cx.frame, pf, cx.hook));
    case Op::kLength: return LengthMatch(pf, Read<uint16_t>(p), Read<uint16_t>(p + 2));
    case Op::kTos: return (DsField(cx.frame, pf) & p[1]) == p[0];
    case Op::kDscp: return (DsField(cx.frame, pf) >> 2) == p[0];
    case Op::kEcn: return EcnMatch(key.c, DsField(cx.frame, pf), p[0], p[1]);
    case Op::kPktType: return PktType(cx.frame) == p[0];
    case Op::kMacSource: return MacSourceMatch(cx.frame, p);
    case Op::kAddrType: {
      const uint16_t src = Read<uint16_t>(p), dst = Read<uint16_t>(p + 2);
      const uint8_t fl = p[4];
      auto one = [&](const uint32_t* a, uint16_t mask) {
        if constexpr (v6) return AddrMatch6(a, mask, cx.host);
        else return AddrMatch4(a[0], mask, cx.host);
      };
      // addrtype_mt_v1: each side XOR its invert flag.
      if (src && one(Src(key), src) == bool(fl & kAtInvertSrc)) return 0;
      if (dst && one(Dst(key), dst) == bool(fl & kAtInvertDst)) return 0;
      return 1;
    }
    case Op::kNever: return 0;
    case Op::kIp6Header: {
      if (!v6) return 0;
      uint8_t seen = 0;
      Ip6Find(cx.frame, pf, -1, &seen);
      // ipv6header_mt6, `!` in the payload: --soft wants every listed
      // header (with `!`: not all of them), strict exactly them (with `!`:
      // anything else).
      const bool all = p[1] ? (seen & p[0]) == p[0] : seen == p[0];
      return all != bool(p[2]);
    }
    case Op::kIp6Frag: {
      if (!v6) return 0;
      const uint32_t at = Ip6Find(cx.frame, pf, 44, nullptr);
      if (!at) return 0;
      const uint8_t* h = cx.frame + at;
      const uint32_t id = net::Load32(h + 4);
      const uint16_t fo = net::Load16(h + 2);
      const uint32_t lo = Read<uint32_t>(p), hi = Read<uint32_t>(p + 4);
      const uint8_t fl = p[8];
      if ((fl & 8) && ((id >= lo && id <= hi) == bool(fl & 16))) return 0;
      if ((fl & 1) && (fo & 0xfff8) != 0) return 0;                       // --fragfirst
      if ((fl & 2) && !(fo & 1)) return 0;                                // --fragmore
      if ((fl & 4) && (fo & 1)) return 0;                                 // --fraglast (ip6t_frag: !MF only)
      return 1;
    }
    case Op::kIp6Opts: {
      if (!v6) return 0;
      const uint32_t at = Ip6Find(cx.frame, pf, p[0], nullptr);  // 8 bytes inside the packet
      if (!at) return 0;
      const uint32_t len = (uint32_t(cx.frame[at + 1]) + 1) * 8;  // ipv6_optlen
      if ((p[1] & 1) && ((len == Read<uint16_t>(p + 2)) == bool(p[1] & 2))) return 0;
      return 1;
    }
    case Op::kIp6Rt: {
      if (!v6) return 0;
      const uint32_t at = Ip6Find(cx.frame, pf, 43, nullptr);
      if (!at || pf.l3_off + pf.l3_len < at + 4) return 0;
      const uint8_t* h = cx.frame + at;
      const uint8_t fl = p[0];
      const uint32_t len = (uint32_t(h[1]) + 1) * 8;
      const uint32_t lo = Read<uint32_t>(p + 4), hi = Read<uint32_t>(p + 8);
      if ((fl & 1) && ((h[2] == p[1]) == bool(fl & 2))) return 0;
      if ((fl & 4) && ((len == Read<uint16_t>(p + 2)) == bool(fl & 8))) return 0;
      if ((fl & 16) && ((h[3] >= lo && h[3] <= hi) == bool(fl & 32))) return 0;
      return 1;
    }
    case Op::kSpi: {
      // xt_esp / ah: the SPI of the first such header; a packet without one
      // (or a later fragment) does not match.
      const uint8_t proto = p[0];
      uint32_t at = 0;
      if constexpr (v6) {
        at = Ip6Find(cx.frame, pf, proto, nullptr);
      } else {
        if (key.c.proto == proto && !pf.later_fragment) at = pf.l3_off + (cx.frame[pf.l3_off] & 0x0f) * 4;
      }
      const uint32_t spi_off = proto == 50 ? 0 : 4;
      if (!at || pf.l3_off + pf.l3_len < at + spi_off + 4) return 0;
      const uint32_t spi = net::Load32(cx.frame + at + spi_off);
      // `!` applies to the SPI test only (xt_esp spi_match): a packet
      // without the header does not match either way.
      return (spi >= Read<uint32_t>(p + 4) && spi <= Read<uint32_t>(p + 8)) != bool(p[1]);
    }
    case Op::kSet: {
      // xt_set.c set_match_v4: ip_set_test with the flags. --return-nomatch
      // reverses the sense for nomatch-capable sets (iptables-extensions(8):
      // "a match with an element flagged with nomatch returns true, while a
      // match with a plain element returns false"; checked against Linux).
      if (!cx.sets) return 0;
      const uint32_t id = Read<uint32_t>(p);
      const uint8_t ndirs = p[4] > 6 ? 6 : p[4];
      const sets::Match m = cx.sets->Lookup(id, p + 6, ndirs, key, cx.sets_now_ns);
      return p[5] ? m == sets::Match::kNomatch : m == sets::Match::kMatch;
    }
    case Op::kCt:
      // nf_ct_set only when skb->_nfct is still 0: INVALID in a raw walk.
      if (cx.raw_ct && *cx.raw_ct == kCtInvalid) *cx.raw_ct = p[0] ? kCtNew : kCtUntracked;
      return 1;
    case Op::kTcpMss: {
      const uint16_t mss = Read<uint16_t>(p);
      return TcpMssMangle(cx.writable, pf, mss, mss == 0, cx.mtu, cx.csum_partial, v6) ? 1 : 2;
    }
    case Op::kLimit:
      return static_cast<LimitState*>(states[Read<uint32_t>(p)].get())->Take(cx.now_ns);
    case Op::kHashlimit: {
      auto* st = static_cast<HashlimitState*>(states[Read<uint32_t>(p)].get());
      const HashlimitConfig& c = st->cfg();
      if ((c.family == 6) != v6) return 0;
      HashKey hk;
      if (c.mode & kHashSrcIp) MaskAddr(Src(key), Words(key), c.srcmask, hk.src);
      if (c.mode & kHashDstIp) MaskAddr(Dst(key), Words(key), c.dstmask, hk.dst);
      if (c.mode & (kHashSrcPort | kHashDstPort)) {
        // hashlimit_init_dst: ports of tcp/udp/udplite/sctp/dccp; other
        // protocols hash port 0. A later fragment hashes port 0 too (the
        // kernel's IPv6 path does; its IPv4 path reads the fragment's first
        // payload bytes as ports, which flatwall does not imitate).
        const uint8_t pr = key.c.proto;
        const bool ported = pr == 6 || pr == 17 || pr == 136 || pr == 132 || pr == 33;
        if (ported && (key.c.flags & kKeyHasL4)) {
          if (c.mode & kHashSrcPort) hk.sport = key.c.sport;
          if (c.mode & kHashDstPort) hk.dport = key.c.dport;
        }
      }
      const auto r = st->Take(hk, pf.l3_len, cx.now_ns);
      if (r == HashlimitState::kHotdrop) return 2;
      const bool above = p[4] != 0;
      return (r == HashlimitState::kUnder) != above;
    }
    case Op::kRecent: {
      auto* st = static_cast<RecentState*>(states[Read<uint32_t>(p)].get());
      const uint8_t cmd = p[4], fl = p[5];
      const uint32_t seconds = Read<uint32_t>(p + 8), hitcount = Read<uint32_t>(p + 12);
      // The address; the table's own mask is applied by Check (xt_recent.h).
      uint32_t addr[4];
      const uint32_t* a = (fl & kRecentDest) ? Dst(key) : Src(key);
      for (int i = 0; i < 4; ++i) addr[i] = i < Words(key) ? a[i] : 0;
      // "use TTL as seen before forwarding" (recent_mt): the undecremented value.
      const uint8_t* ip = cx.frame + pf.l3_off;
      const uint8_t ttl = v6 ? ip[7] : ip[8];
      // The invert is applied by Check itself (an --update records on the
      // inverted result), so Run does not apply the header's invert again.
      return st->Check(RecentCmd(cmd), fl, oh.invert, v6 ? 6 : 4, addr, ttl, uint64_t(seconds) * 1000000000ull,
                       hitcount, cx.now_ns)
                 ? 1
                 : 0;
    }
    case Op::kConnlimit: {
      auto* st = static_cast<ConnlimitState*>(states[Read<uint32_t>(p)].get());
      const uint32_t limit = Read<uint32_t>(p + 4);
      const uint8_t fl = p[8];
      uint32_t addr[4];
      const uint32_t* a = (fl & kConnlimitDaddr) ? Dst(key) : Src(key);
      for (int i = 0; i < 4; ++i) addr[i] = i < Words(key) ? a[i] : 0;
      const uint32_t n = st->Count(addr, cx.ct);
      if (n == 0) return 2;  // connlimit_mt: "kmalloc failed, drop it entirely"
      return (n > limit) != bool(fl & kConnlimitInvert) ? 1 : 0;
    }
  }
  return 0;
}

}  // namespace

template <typename Key>
int ExtTable::Run(const Entry& e, const Key& key, const Context& cx) const {
  const uint8_t* prog = progs_.data() + e.prog;
  const ProgHeader ph = Read<ProgHeader>(prog);
  const uint8_t* op = prog + sizeof ph;
  for (uint32_t k = 0; k < ph.op_count; ++k) {
    const OpHeader oh = Read<OpHeader>(op);
    int r = RunOp(oh, op + sizeof oh, key, cx, states_);
    if (r == 2) return 2;  // hot drop: the kernel drops the packet here
    if (oh.invert && oh.kind != uint8_t(Op::kRecent)) r = !r;
    if (!r) return 0;
    op += oh.bytes;
  }
  return 1;
}

template int ExtTable::Run(const Entry&, const PacketKey4&, const Context&) const;
template int ExtTable::Run(const Entry&, const PacketKey6&, const Context&) const;

}  // namespace ext
}  // namespace flatwall
