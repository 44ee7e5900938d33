// See conntrack.h for the design. Every read of packet bytes here is of the
// ICMP id (inside the 8 bytes the parser checked) or of a quoted header,
// which is bounds-checked against the IP packet's end before each read.
#include "conntrack/conntrack.h"

#include <algorithm>
#include <cstring>
#include <random>

#include "classifier/rule_table.h"
#include "conntrack/conncount.h"
#include "dataplane/bytes.h"

namespace flatwall {
namespace ct {
namespace {

using net::Load16;
using net::Load32;

constexpr uint64_t kNsPerSec = 1000000000ull;

// Packet classes of netfilter's tcp_conntracks table.
enum TcpIndex : uint8_t { kSyn, kSynAck, kFin, kAck, kRst, kNoneIdx, kIndexCount };
constexpr uint8_t kFIN = 1, kSYN = 2, kRST = 4, kPSH = 8, kACK = 16, kURG = 32;

uint8_t TcpIndexOf(uint8_t flags) {
  if (flags & kRST) return kRst;
  if (flags & kSYN) return (flags & kACK) ? kSynAck : kSyn;
  if (flags & kFIN) return kFin;
  if (flags & kACK) return kAck;
  return kNoneIdx;
}

// tcp_valid_flags of nf_conntrack_proto_tcp.c (ECE/CWR ignored): any other
// combination is INVALID before any lookup.
bool TcpFlagsValid(uint8_t flags) {
  switch (flags & (kFIN | kSYN | kRST | kPSH | kACK | kURG)) {
    case kSYN: case kSYN | kURG: case kSYN | kACK:
    case kRST: case kRST | kACK:
    case kFIN | kACK: case kFIN | kACK | kURG:
    case kACK: case kACK | kURG:
    case kFIN | kACK | kPSH: case kFIN | kACK | kPSH | kURG:
    case kACK | kPSH: case kACK | kPSH | kURG:
      return true;
    default:
      return false;
  }
}

// netfilter's tcp_conntracks[dir][index][state], window tracking aside.
constexpr uint8_t sNO = kTcpNone, sSS = kTcpSynSent, sSR = kTcpSynRecv, sES = kTcpEstablished,
                  sFW = kTcpFinWait, sCW = kTcpCloseWait, sLA = kTcpLastAck, sTW = kTcpTimeWait,
                  sCL = kTcpClose, sS2 = kTcpSynSent2, sIV = 0xfe, sIG = 0xff;
constexpr uint8_t kTcpTable[2][kIndexCount][kTcpStateCount] = {
    {
        // ORIGINAL     sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2
        /* syn    */ {sSS, sSS, sIG, sIG, sIG, sIG, sIG, sSS, sSS, sS2},
        /* synack */ {sIV, sIV, sSR, sIV, sIV, sIV, sIV, sIV, sIV, sSR},
        /* fin    */ {sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV},
        /* ack    */ {sES, sIV, sES, sES, sCW, sCW, sTW, sTW, sCL, sIV},
        /* rst    */ {sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL},
        /* none   */ {sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV},
    },
    {
        // REPLY        sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2
        /* syn    */ {sIV, sS2, sIV, sIV, sIV, sIV, sIV, sSS, sIV, sS2},
        /* synack */ {sIV, sSR, sIG, sIG, sIG, sIG, sIG, sIG, sIG, sSR},
        /* fin    */ {sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV},
        /* ack    */ {sIV, sIG, sSR, sES, sCW, sCW, sTW, sTW, sCL, sIG},
        /* rst    */ {sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL},
        /* none   */ {sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV},
    },
};

// ICMP query kinds: (request type, reply type) -> kind, for v4 and v6.
struct IcmpQuery {
  uint8_t kind;
  bool request;
};
IcmpQuery IcmpQueryOf(uint8_t family, uint8_t type) {
  if (family == 4) {
    switch (type) {
      case 8: return {1, true};
      case 0: return {1, false};
      case 13: return {2, true};
      case 14: return {2, false};
      case 15: return {3, true};
      case 16: return {3, false};
      case 17: return {4, true};
      case 18: return {4, false};
    }
  } else {
    if (type == 128) return {1, true};
    if (type == 129) return {1, false};
  }
  return {0, false};
}

bool IcmpIsError(uint8_t family, uint8_t type) {
  if (family == 4) return type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
  return type >= 1 && type <= 4;
}

// ICMPv6 types netfilter leaves untracked: nf_conntrack_icmpv6_error marks
// the types of its noct_valid_new table IP_CT_UNTRACKED (MLD 130-132, 143;
// NDP router/neighbour solicitation and advertisement 133-136). A redirect
// (137) is not among them: no query, no reply to find, so INVALID (below).
bool Icmp6Untracked(uint8_t type) {
  return (type >= 130 && type <= 136) || type == 143;
}

int CmpEndpoint(const uint32_t* x, uint16_t px, const uint32_t* y, uint16_t py) {
  for (int i = 0; i < 4; ++i)
    if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
  return px == py ? 0 : (px < py ? -1 : 1);
}

inline uint64_t Mix(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

uint32_t NextPow2(uint64_t v) {
  uint64_t p = 1;
  while (p < v) p <<= 1;
  return uint32_t(p);
}

inline uint64_t Deadline(uint64_t now_ns, uint32_t seconds) { return now_ns + uint64_t(seconds) * kNsPerSec; }

inline bool Expired(const Entry& e, uint64_t now_ns) { return now_ns >= e.expires_ns; }

void AddrOf(const ParsedFrame& pf, uint32_t src[4], uint32_t dst[4]) {
  if (pf.cls == FrameClass::kIPv4) {
    src[0] = pf.key4.src, dst[0] = pf.key4.dst;
    src[1] = src[2] = src[3] = dst[1] = dst[2] = dst[3] = 0;
  } else {
    std::memcpy(src, pf.key6.src, 16);
    std::memcpy(dst, pf.key6.dst, 16);
  }
}

}  // namespace

const char* TcpStateName(uint8_t s) {
  static const char* const kNames[kTcpStateCount] = {
      "NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT",
      "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2"};
  return s < kTcpStateCount ? kNames[s] : "?";
}

const char* const Timeouts::kNames[] = {
    "tcp_syn_sent", "tcp_syn_recv", "tcp_established", "tcp_fin_wait", "tcp_close_wait",
    "tcp_last_ack", "tcp_time_wait", "tcp_close", "tcp_syn_sent2", "udp", "udp_stream",
    "icmp", "generic", nullptr};

bool Timeouts::Set(const std::string& name, uint32_t s) {
  for (uint8_t i = 1; i < kTcpStateCount; ++i) {
    if (name == kNames[i - 1]) {
      tcp[i] = s;
      return true;
    }
  }
  if (name == "udp") udp = s;
  else if (name == "udp_stream") udp_stream = s;
  else if (name == "icmp") icmp = s;
  else if (name == "generic") generic = s;
  else return false;
  return true;
}

bool Key::operator==(const Key& o) const { return std::memcmp(this, &o, sizeof *this) == 0; }

bool MakeKey(uint8_t family, const uint32_t* src, const uint32_t* dst, uint16_t sport,
             uint16_t dport, uint8_t proto, uint8_t kind, uint8_t zone, bool ordered, Key* k) {
  std::memset(k, 0, sizeof *k);
  k->family = family, k->proto = proto, k->kind = kind, k->zone = zone;
  const bool a_is_src = ordered || CmpEndpoint(src, sport, dst, dport) <= 0;
  std::memcpy(k->a, a_is_src ? src : dst, 16);
  std::memcpy(k->b, a_is_src ? dst : src, 16);
  k->pa = a_is_src ? sport : dport;
  k->pb = a_is_src ? dport : sport;
  return a_is_src;
}

bool Filter::Matches(const Entry& e) const {
  const Key& k = e.key;
  if (family && k.family != family) return false;
  if (proto && k.proto != proto) return false;
  if (zone >= 0 && k.zone != zone) return false;
  if (has_addr && std::memcmp(k.a, addr, 16) != 0 && std::memcmp(k.b, addr, 16) != 0) return false;
  if (port >= 0 && k.pa != port && k.pb != port) return false;
  return true;
}

Table::Table(const Config& c)
    : timeouts_(c.timeouts), tcp_loose_(c.tcp_loose), limit_(c.limit ? c.limit : 1),
      related_(c.related_index), related_mask_(c.related_mask), conncount_(c.conncount),
      events_(c.events) {
  seed_ = c.seed ? c.seed : std::random_device{}();
  const uint32_t slots = std::max<uint32_t>(kSlotsPerBucket * kProbeBuckets,
                                            NextPow2(uint64_t(limit_) * 3 / 2));
  mask_ = slots - 1;
  bucket_mask_ = slots / kSlotsPerBucket - 1;
  slots_.reset(new Entry[slots]);
  std::memset(static_cast<void*>(slots_.get()), 0, sizeof(Entry) * slots);
}

uint64_t Table::Hash64(const Key& k) const {
  uint64_t w[5];
  std::memcpy(w, &k, sizeof w);
  uint64_t h = seed_;
  for (uint64_t x : w) h = Mix(h ^ x);
  return h;
}

uint32_t Table::Hash(const Key& k) const { return uint32_t(Hash64(k)); }

// ---- the shared existence index (see conntrack.h: Threads) ----

void Table::Publish(const Key& k) {
  if (!related_) return;
  const uint64_t fp = Hash64(k) | 1;
  related_[(fp >> 32) & related_mask_].store(fp, std::memory_order_relaxed);
}

void Table::Unpublish(const Key& k) {
  if (!related_) return;
  uint64_t fp = Hash64(k) | 1;
  // Only our own fingerprint: another flow may have taken the slot since.
  related_[(fp >> 32) & related_mask_].compare_exchange_strong(fp, 0, std::memory_order_relaxed);
}

bool Table::Published(const Key& k) const {
  if (!related_) return false;
  const uint64_t fp = Hash64(k) | 1;
  return related_[(fp >> 32) & related_mask_].load(std::memory_order_relaxed) == fp;
}

// The key's two candidate buckets (two-choice hashing): independent bits of
// the hash, never the same bucket.
void Table::Buckets(uint32_t hash, Entry* out[kProbeBuckets]) const {
  const uint32_t b1 = hash & bucket_mask_;
  uint32_t h = hash;  // murmur3's fmix32: every output bit depends on every input bit
  h ^= h >> 16, h *= 0x85ebca6bu, h ^= h >> 13, h *= 0xc2b2ae35u, h ^= h >> 16;
  uint32_t b2 = h & bucket_mask_;
  if (b2 == b1) b2 = b1 ^ 1;
  out[0] = &slots_[size_t(b1) * kSlotsPerBucket];
  out[1] = &slots_[size_t(b2) * kSlotsPerBucket];
}

Entry* Table::Find(const Key& k, uint32_t hash, uint64_t now_ns) {
  Entry* buckets[kProbeBuckets];
  Buckets(hash, buckets);
  for (uint32_t b = 0; b < kProbeBuckets; ++b) {
    Entry* bucket = buckets[b];
    for (uint32_t s = 0; s < kSlotsPerBucket; ++s) {
      Entry* e = &bucket[s];
      if (!(e->flags & kUsed) || e->hash != hash || !(e->key == k)) continue;
      if (Expired(*e, now_ns)) {  // lazy expiry
        Remove(e);
        stats_.expired.Inc();
        return nullptr;
      }
      return e;
    }
  }
  return nullptr;
}

// One record into the worker's ring: no lock, no syscall; a full ring is
// counted and the consumer resyncs (see conntrack.h: Replication).
namespace {
// What a replica needs of an entry (worker 0: the dataplane sets its own).
Record RecordOf(RecordOp op, const Entry& e) {
  Record r;
  r.key = e.key;
  r.flags = uint8_t(e.flags & (kOrigIsA | kSeenReply | kAssured));
  r.tcp_state = e.tcp_state;
  r.op = op;
  r.worker = 0;
  r.packets = e.packets > 0xffffffffull ? 0xffffffffu : uint32_t(e.packets);
  return r;
}
}  // namespace

void Table::Emit(RecordOp op, const Entry& e) {
  if (!events_) return;
  if (!events_->Push(RecordOf(op, e))) stats_.repl_lost.Inc();
}

void Table::Remove(Entry* e) {
  Emit(kRecDestroy, *e);
  if (conncount_ && (e->counted[0] | e->counted[1])) conncount_->Release(e);
  Unpublish(e->key);
  e->flags = 0;
  --count_;
  stats_.entries.v.store(count_, std::memory_order_relaxed);
}

void Table::MakePending(const Key& key, uint32_t hash, bool a_is_src, uint8_t tcp_state,
                        uint32_t timeout_s, uint64_t now_ns, Result* r) {
  r->state = kCtNew;
  r->pending = true;
  Entry& e = r->entry;
  e.key = key;
  e.hash = hash;
  e.flags = uint8_t(kUsed | (a_is_src ? kOrigIsA : 0));
  e.tcp_state = tcp_state;
  e.counted[0] = e.counted[1] = 0;
  e.expires_ns = Deadline(now_ns, timeout_s);
  e.packets = 1;
}

void Table::Track(const uint8_t* frame, const ParsedFrame& pf, uint8_t zone, uint64_t now_ns,
                  Result* r) {
  r->pending = false;
  r->found = nullptr;
  const KeyCommon& kc = pf.cls == FrameClass::kIPv4 ? pf.key4.c : pf.key6.c;
  const uint8_t family = pf.cls == FrameClass::kIPv4 ? 4 : 6;
  if (pf.later_fragment) {
    r->state = kCtUntracked;
    stats_.ignore.Inc();
    return;
  }
  if (pf.l4_truncated) {
    // The kernel cannot make a tuple or a state from a short header
    // (nf_ct_get_tuple's 4 port bytes, tcp_error/nf_conntrack_tcp_packet's
    // 20, udp_error's 8, icmp_error's "short packet"): no conntrack, so
    // INVALID, and nothing is looked up or changed.
    r->state = kCtInvalid;
    stats_.invalid.Inc();
    return;
  }
  uint32_t src[4], dst[4];
  AddrOf(pf, src, dst);
  const uint8_t proto = kc.proto;
  const bool icmp = (family == 4 && proto == net::kProtoIcmp) || (family == 6 && proto == net::kProtoIcmp6);
  uint16_t sport = kc.sport, dport = kc.dport;
  uint8_t kind = 0;
  bool ordered = false, request = false;
  if (icmp) {
    const uint8_t type = uint8_t(kc.icmp >> 8);
    if (IcmpIsError(family, type)) return TrackIcmpError(frame, pf, zone, now_ns, r);
    if (family == 6 && Icmp6Untracked(type)) {
      r->state = kCtUntracked;
      stats_.ignore.Inc();
      return;
    }
    const IcmpQuery q = IcmpQueryOf(family, type);
    if (!q.kind) {
      r->state = kCtInvalid;  // netfilter: no valid_new, no reply to find
      stats_.invalid.Inc();
      return;
    }
    kind = q.kind, request = q.request;
    sport = dport = Load16(frame + pf.l4_off + 4);  // the id, inside the 8 checked bytes
    ordered = true;
    if (!request) {  // key requester-first: the reply's destination is the requester
      uint32_t t[4];
      std::memcpy(t, src, 16), std::memcpy(src, dst, 16), std::memcpy(dst, t, 16);
    }
  }
  Key key;
  const bool a_is_src = MakeKey(family, src, dst, sport, dport, proto, kind, zone, ordered, &key);
  const uint32_t hash = Hash(key);
  if (proto == net::kProtoTcp) {
    if (!TcpFlagsValid(kc.tcp_flags)) {
      r->state = kCtInvalid;
      stats_.invalid.Inc();
      return;
    }
    return TrackTcp(pf, kc, key, a_is_src, now_ns, r);
  }
  const bool udp = proto == net::kProtoUdp || proto == 136;
  Entry* e = Find(key, hash, now_ns);
  if (!e) {
    if (icmp && !request) {  // a reply nobody asked for
      r->state = kCtInvalid;
      stats_.invalid.Inc();
      return;
    }
    return MakePending(key, hash, icmp ? true : a_is_src, 0,
                       udp ? timeouts_.udp : icmp ? timeouts_.icmp : timeouts_.generic, now_ns, r);
  }
  stats_.found.Inc();
  r->found = e;
  ++e->packets;
  // ICMP: a request is original, a reply is reply; otherwise by endpoint.
  const bool reply = icmp ? !request : (a_is_src != bool(e->flags & kOrigIsA));
  const uint8_t flags_before = e->flags;
  if (reply) e->flags |= kSeenReply | (udp || !icmp ? kAssured : 0);
  if (e->flags != flags_before) Emit(kRecUpdate, *e);
  const bool seen = e->flags & kSeenReply;
  r->state = (reply || seen) ? kCtEstablished : kCtNew;
  uint32_t t = udp ? (seen ? timeouts_.udp_stream : timeouts_.udp) : icmp ? timeouts_.icmp : timeouts_.generic;
  e->expires_ns = Deadline(now_ns, t);
}

void Table::TrackTcp(const ParsedFrame& pf, const KeyCommon& kc, const Key& key, bool a_is_src,
                     uint64_t now_ns, Result* r) {
  const uint32_t hash = Hash(key);
  const uint8_t index = TcpIndexOf(kc.tcp_flags);
  Entry* e = Find(key, hash, now_ns);
  if (e) {
    const bool reply = a_is_src != bool(e->flags & kOrigIsA);
    const uint8_t old = e->tcp_state;
    if (!reply && index == kSyn && (old == kTcpTimeWait || old == kTcpClose)) {
      Remove(e);  // a new connection reuses the tuple (netfilter's -NF_REPEAT)
      e = nullptr;
    } else {
      stats_.found.Inc();
      const uint8_t next = kTcpTable[reply][index][old];
      if (next == sIV) {
        r->state = kCtInvalid;
        stats_.invalid.Inc();
        return;
      }
      ++e->packets;
      // netfilter deletes a connection whose first answer is a RST (or that
      // its opener resets before any answer): "if only reply is a RST, we
      // can consider ourselves not to have an established connection". The
      // RST itself keeps the state it has now; the next packet finds nothing.
      bool kill = false;
      if (next != sIG) {
        const uint8_t flags_before = e->flags;
        kill = index == kRst && !(e->flags & kSeenReply);
        if (reply) e->flags |= kSeenReply;
        if (next == kTcpEstablished && (old == kTcpSynRecv || old == kTcpEstablished))
          e->flags |= kAssured;
        e->tcp_state = next;
        e->expires_ns = Deadline(now_ns, timeouts_.tcp[next]);
        // nf_conncount's already_closed: connlimit counts it no more.
        if (conncount_ && (next == kTcpTimeWait || next == kTcpClose)) conncount_->Release(e);
        if (next != old || e->flags != flags_before) Emit(kRecUpdate, *e);
      }
      r->state = (reply || (e->flags & kSeenReply)) ? kCtEstablished : kCtNew;
      if (kill) Remove(e);
      else r->found = e;
      return;
    }
  }
  const uint8_t first = kTcpTable[0][index][kTcpNone];
  if (first == kTcpSynSent || (first == kTcpEstablished && tcp_loose_))
    return MakePending(key, hash, a_is_src, first, timeouts_.tcp[first], now_ns, r);
  r->state = kCtInvalid;
  stats_.invalid.Inc();
}

// An ICMP/ICMPv6 error: RELATED when the packet it quotes belongs to a
// tracked flow, INVALID otherwise (including any quoted header that is cut
// short or malformed). The quoted packet travelled the other way: its source
// must be the error's destination.
void Table::TrackIcmpError(const uint8_t* frame, const ParsedFrame& pf, uint8_t zone,
                           uint64_t now_ns, Result* r) {
  const bool v4 = pf.cls == FrameClass::kIPv4;
  const uint8_t family = v4 ? 4 : 6;
  const uint32_t end = pf.l3_off + pf.l3_len;
  uint32_t off = pf.l4_off + 8;  // quoted packet
  auto invalid = [&] {
    r->state = kCtInvalid;
    stats_.invalid.Inc();
  };
  uint32_t src[4] = {0, 0, 0, 0}, dst[4] = {0, 0, 0, 0};
  uint8_t proto;
  if (v4) {
    if (off + 20 > end) return invalid();
    const uint8_t* ip = frame + off;
    const uint32_t ihl = uint32_t(ip[0] & 0xf) * 4;
    if ((ip[0] >> 4) != 4 || ihl < 20 || off + ihl > end) return invalid();
    if (Load16(ip + 6) & 0x1fff) return invalid();  // a later fragment quotes no ports
    proto = ip[9];
    src[0] = Load32(ip + 12), dst[0] = Load32(ip + 16);
    off += ihl;
  } else {
    if (off + 40 > end) return invalid();
    const uint8_t* ip = frame + off;
    if ((ip[0] >> 4) != 6) return invalid();
    for (int i = 0; i < 4; ++i) src[i] = Load32(ip + 8 + 4 * i), dst[i] = Load32(ip + 24 + 4 * i);
    proto = ip[6];
    off += 40;
    // Skip the extension headers ipv6_skip_exthdr skips, bounded.
    for (uint32_t n = 0;; ++n) {
      if (proto != 0 && proto != 43 && proto != 60 && proto != 44 && proto != 51) break;
      if (n >= kMaxIp6ExtHeaders || off + 8 > end) return invalid();
      const uint8_t* h = frame + off;
      uint32_t len;
      if (proto == 44) {
        if (Load16(h + 2) & 0xfff8) return invalid();  // later fragment: no ports
        len = 8;
      } else if (proto == 51) {
        len = (uint32_t(h[1]) + 2) * 4;
      } else {
        len = (uint32_t(h[1]) + 1) * 8;
      }
      proto = h[0];
      off += len;
    }
  }
  // The error must go back to the quoted packet's sender.
  uint32_t outer_dst[4], outer_src[4];
  AddrOf(pf, outer_src, outer_dst);
  if (std::memcmp(outer_dst, src, 16) != 0) return invalid();
  // netfilter needs 8 bytes of the quoted L4 header (ports, or ICMP type/id).
  if (off + 8 > end) return invalid();
  const uint8_t* l4 = frame + off;
  uint16_t sport = 0, dport = 0;
  uint8_t kind = 0;
  bool ordered = false;
  const bool icmp = (v4 && proto == net::kProtoIcmp) || (!v4 && proto == net::kProtoIcmp6);
  if (icmp) {
    const IcmpQuery q = IcmpQueryOf(family, l4[0]);
    if (!q.kind) return invalid();  // an error about an error (or unknown): not tracked
    kind = q.kind, ordered = true;
    sport = dport = Load16(l4 + 4);
    if (!q.request) {
      uint32_t t[4];
      std::memcpy(t, src, 16), std::memcpy(src, dst, 16), std::memcpy(dst, t, 16);
    }
  } else if (proto == net::kProtoTcp || proto == net::kProtoUdp || proto == 136 ||
             proto == net::kProtoSctp || proto == 33) {
    sport = Load16(l4), dport = Load16(l4 + 2);
  }
  Key key;
  MakeKey(family, src, dst, sport, dport, proto, kind, zone, ordered, &key);
  Entry* e = Find(key, Hash(key), now_ns);
  // Another worker's flow (the error was steered by its own addresses):
  // the shared existence index says whether it is tracked.
  if (!e && !Published(key)) return invalid();
  stats_.found.Inc();
  r->found = e;
  r->state = kCtRelated;
}

bool Table::Commit(const Result& r, uint64_t now_ns) {
  if (!r.pending) return true;
  Entry* buckets[kProbeBuckets];
  Buckets(r.entry.hash, buckets);
  Entry* free_slot[kProbeBuckets] = {nullptr, nullptr};
  uint32_t used[kProbeBuckets] = {0, 0};
  Entry* victim = nullptr;
  Entry* dup = nullptr;
  for (uint32_t b = 0; b < kProbeBuckets; ++b) {
    for (uint32_t s = 0; s < kSlotsPerBucket; ++s) {
      Entry* e = &buckets[b][s];
      if ((e->flags & kUsed) && Expired(*e, now_ns)) {
        Remove(e);
        stats_.expired.Inc();
      }
      if (!(e->flags & kUsed)) {
        if (!free_slot[b]) free_slot[b] = e;
        continue;
      }
      ++used[b];
      if (e->hash == r.entry.hash && e->key == r.entry.key) dup = e;
      else if (!victim && !(e->flags & kAssured)) victim = e;
    }
  }
  // The less loaded bucket: keeps both fill levels low, so a full pair
  // (early drop before the table is full) is rare.
  Entry* free = used[1] < used[0] ? free_slot[1] : free_slot[0];
  if (!free) free = free_slot[0] ? free_slot[0] : free_slot[1];
  if (!free && count_ < limit_) free = Displace(buckets, now_ns);
  if (dup) return true;  // cannot happen for one worker; harmless
  if (!free || count_ >= limit_) {
    if (!victim) {
      stats_.insert_failed.Inc();
      stats_.drop.Inc();
      return false;
    }
    Remove(victim);  // netfilter's early_drop
    stats_.early_drop.Inc();
    if (!free) free = victim;
  }
  *free = r.entry;
  if (conncount_ && (free->counted[0] | free->counted[1])) conncount_->Acquire(free);
  Publish(r.entry.key);
  ++count_;
  stats_.entries.v.store(count_, std::memory_order_relaxed);
  stats_.insert.Inc();
  Emit(kRecNew, *free);
  return true;
}

// Both buckets of a new key are full: move one of their entries to its own
// other bucket if that has room (one cuckoo step, bounded: 8 entries x 4
// slots), and return the slot it left. Null when none can move.
Entry* Table::Displace(Entry* const buckets[kProbeBuckets], uint64_t now_ns) {
  for (uint32_t b = 0; b < kProbeBuckets; ++b) {
    for (uint32_t s = 0; s < kSlotsPerBucket; ++s) {
      Entry* e = &buckets[b][s];
      Entry* own[kProbeBuckets];
      Buckets(e->hash, own);
      Entry* alt = own[0] == buckets[b] ? own[1] : own[0];
      for (uint32_t t = 0; t < kSlotsPerBucket; ++t) {
        Entry* d = &alt[t];
        if ((d->flags & kUsed) && !Expired(*d, now_ns)) continue;
        if (d->flags & kUsed) {
          Remove(d);
          stats_.expired.Inc();
        }
        *d = *e;
        e->flags = 0;
        return e;
      }
    }
  }
  return nullptr;
}

void Table::Gc(uint64_t now_ns, uint32_t budget) {
  if (!count_) return;
  for (uint32_t i = 0; i < budget; ++i) {
    Entry* e = &slots_[gc_cursor_];
    gc_cursor_ = (gc_cursor_ + 1) & mask_;
    if ((e->flags & kUsed) && Expired(*e, now_ns)) {
      Remove(e);
      stats_.expired.Inc();
    }
  }
}

size_t Table::List(const Filter& f, size_t limit, uint64_t now_ns, std::vector<FlowView>* out) const {
  size_t n = 0;
  for (uint32_t i = 0; i <= mask_ && n < limit; ++i) {
    const Entry& e = slots_[i];
    if (!(e.flags & kUsed) || Expired(e, now_ns) || !f.Matches(e)) continue;
    FlowView v;
    const Key& k = e.key;
    const bool a_orig = e.flags & kOrigIsA;
    v.family = k.family, v.proto = k.proto, v.zone = k.zone, v.kind = k.kind;
    v.tcp_state = e.tcp_state;
    std::memcpy(v.src, a_orig ? k.a : k.b, 16);
    std::memcpy(v.dst, a_orig ? k.b : k.a, 16);
    v.sport = a_orig ? k.pa : k.pb;
    v.dport = a_orig ? k.pb : k.pa;
    v.seen_reply = e.flags & kSeenReply;
    v.assured = e.flags & kAssured;
    v.expires_in_ms = (e.expires_ns - now_ns) / 1000000;
    v.packets = e.packets;
    out->push_back(v);
    ++n;
  }
  return n;
}

size_t Table::Flush(const Filter& f) {
  size_t n = 0;
  for (uint32_t i = 0; i <= mask_; ++i) {
    Entry* e = &slots_[i];
    if ((e->flags & kUsed) && f.Matches(*e)) {
      Remove(e);
      ++n;
    }
  }
  return n;
}

bool Table::Delete(const FlowView& t) {
  Key key;
  const bool icmp = t.kind != 0;
  MakeKey(t.family, t.src, t.dst, t.sport, t.dport, t.proto, t.kind, t.zone, icmp, &key);
  Entry* e = Find(key, Hash(key), 0);  // at time 0 nothing has expired
  if (!e) return false;
  Remove(e);
  return true;
}

// ---- replication (conntrack.h: Replication) ----

uint32_t Table::TimeoutOf(const Entry& e) const {
  const Key& k = e.key;
  if (k.proto == net::kProtoTcp) return timeouts_.tcp[e.tcp_state < kTcpStateCount ? e.tcp_state : uint8_t(kTcpEstablished)];
  if (k.proto == net::kProtoUdp || k.proto == 136) return (e.flags & kSeenReply) ? timeouts_.udp_stream : timeouts_.udp;
  if (k.kind) return timeouts_.icmp;
  return timeouts_.generic;
}

void Table::Export(uint64_t now_ns, std::vector<Record>* out) const {
  for (uint32_t i = 0; i <= mask_; ++i) {
    const Entry& e = slots_[i];
    if (!(e.flags & kUsed) || Expired(e, now_ns)) continue;
    out->push_back(RecordOf(kRecNew, e));
  }
}

namespace {
// A record from the network: only what Track itself could have stored.
bool RecordValid(const Record& r) {
  const Key& k = r.key;
  if (k.family != 4 && k.family != 6) return false;
  if (k.family == 4 && (k.a[1] | k.a[2] | k.a[3] | k.b[1] | k.b[2] | k.b[3])) return false;
  if (k.kind > 4) return false;
  if (r.flags & ~uint8_t(kOrigIsA | kSeenReply | kAssured)) return false;
  if (k.proto == net::kProtoTcp ? (r.tcp_state == kTcpNone || r.tcp_state >= kTcpStateCount) : r.tcp_state != 0)
    return false;
  return r.op == kRecNew || r.op == kRecUpdate || r.op == kRecDestroy;
}
}  // namespace

bool Table::Import(const Record& r) {
  if (!RecordValid(r)) return false;
  const uint32_t hash = Hash(r.key);  // our own seed: the active's differs
  Entry* e = Find(r.key, hash, 0);    // at time 0 nothing has expired
  EventRing* const events = events_;
  events_ = nullptr;  // an import is not a change of ours to publish
  bool ok = true;
  if (r.op == kRecDestroy) {
    if (e) Remove(e);
  } else if (e) {
    e->flags = uint8_t(kUsed | r.flags);
    e->tcp_state = r.tcp_state;
    e->packets = r.packets;
  } else {
    Result p;
    p.pending = true;
    Entry& n = p.entry;
    n.key = r.key;
    n.hash = hash;
    n.flags = uint8_t(kUsed | r.flags);
    n.tcp_state = r.tcp_state;
    n.counted[0] = n.counted[1] = 0;
    n.expires_ns = UINT64_MAX;  // until Rearm: the replica does not age
    n.packets = r.packets;
    ok = Commit(p, 0);
  }
  events_ = events;
  return ok;
}

void Table::Clear() {
  EventRing* const events = events_;
  events_ = nullptr;
  Flush(Filter{});
  events_ = events;
}

void Table::Rearm(uint64_t now_ns) {
  for (uint32_t i = 0; i <= mask_; ++i) {
    Entry& e = slots_[i];
    if (e.flags & kUsed) e.expires_ns = Deadline(now_ns, TimeoutOf(e));
  }
}

}  // namespace ct
}  // namespace flatwall
