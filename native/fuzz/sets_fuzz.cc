// Fuzz target: the ipset store of `-m set` (sets/set_store.h): element
// adds, deletes and tests, packet lookups, expiry, gc, flush, swap and
// all-or-nothing restores, against a plain reference (a std::map per set
// of the normalised elements, with the kernel's semantics written out
// again from net/netfilter/ipset/: ip_set_hash_gen.h mtype_add/mtype_del/
// mtype_test_cidrs, ip_set_hash_ipport.c's port rule, ip_set_getport.c,
// ip_set_bitmap_port.c).
//
// Feeds: a header choosing two sets "a" and "b" (type: hash:ip, hash:net,
// hash:ip,port, hash:net,port or bitmap:port; family; maxelem, down to 1;
// timeouts; the smallest hash size, so tables grow and carry tombstones;
// "b" the same type as "a" or not, for swap), then up to 256 operations
// decoded from the input: add / del (with and without -exist, with per-
// entry timeouts and nomatch), `ipset test`, packet lookups (every
// src/dst direction combination, too few dimensions, the other family,
// later fragments), clock steps (a fake control clock; the packet side
// gets the same time), Gc with a small budget, flush, swap, destroy,
// create (-exist), rename (a third name "c"), a restore of a few add/del
// commands, bulk adds/deletes (table growth, tombstones), and a Clone. Elements come from a small space
// (addresses 10.0.0-3.x / 2001:db8::x with a second word set sometimes,
// prefixes at every interesting length, a few protocols and ports) so
// that they collide, nest and get re-added.
// Checks: every operation answers as the reference (return value, or the
// SetError code; a failed restore changes nothing and names the failing
// command); every packet lookup by the id a name is bound to (Lookup's
// match / nomatch / absent, Test) agrees with the reference, nothing after
// a destroy, the new set after a re-create, swap or rename; at the end and
// after some operations, a listing of each set holds exactly the
// reference's live elements with their nomatch flags, seconds left,
// comments and counters, and a clone answers like the original.
// Seeds: a few operation sequences written by hand for each set type.
#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "classifier/packet_key.h"
#include "fuzz/fuzz_common.h"
#include "sets/set_store.h"

namespace flatwall {
namespace {

using sets::Entry;
using sets::Match;
using sets::SetErrc;
using sets::SetError;
using sets::SetOptions;
using sets::SetStore;
using sets::SetType;

constexpr uint64_t kSec = 1000000000ull;
constexpr uint32_t kMaxOps = 256;

uint64_t g_now = 1000 * kSec;

// ---- the reference -------------------------------------------------------

// A stored element: masked address, prefix, protocol, port (bitmap:port:
// the port only).
using RKey = std::tuple<std::array<uint32_t, 4>, uint8_t, uint8_t, uint16_t>;
struct RVal {
  bool nomatch = false;
  uint64_t expires = 0;  // 0: never
  std::string comment;   // the extensions, as listed
  uint64_t packets = 0, bytes = 0;
};

struct RSet {
  SetOptions o;  // as created (bitmap range ordered)
  std::map<RKey, RVal> m;
  uint8_t host() const { return o.family == 6 ? 128 : 32; }
  bool nets() const { return o.type == SetType::kHashNet || o.type == SetType::kHashNetPort; }
  bool ports() const { return o.type == SetType::kHashIpPort || o.type == SetType::kHashNetPort; }
  uint8_t dims() const { return o.type == SetType::kHashIpPort || o.type == SetType::kHashNetPort ? 2 : 1; }
};

bool Live(const RVal& v) { return v.expires == 0 || v.expires > g_now; }

size_t LiveCount(const RSet& s) {
  size_t n = 0;
  for (const auto& kv : s.m) n += Live(kv.second);
  return n;
}

std::array<uint32_t, 4> Mask(const uint32_t* a, int words, uint8_t cidr) {
  std::array<uint32_t, 4> out{};
  for (int i = 0; i < words; ++i) {
    const int bits = std::min(32, std::max(0, int(cidr) - 32 * i));
    out[i] = bits == 0 ? 0 : bits == 32 ? a[i] : a[i] & ~(0xffffffffu >> bits);
  }
  return out;
}

bool WithPorts(uint8_t p) { return p == 6 || p == 17 || p == 132 || p == 136; }

// The element as the kernel's uadt stores it, or the error it refuses with.
bool RefNormalize(const RSet& s, const Entry& e, bool add, RKey* out, SetErrc* err) {
  const SetOptions& o = s.o;
  if (add) {
    if ((e.has_timeout && !o.has_timeout) || (e.has_counters && !o.counters) || (e.has_comment && !o.comment)) {
      *err = SetErrc::kInvalid;
      return false;
    }
  }
  if (o.type == SetType::kBitmapPort) {
    if (e.port < o.port_from || e.port > o.port_to) {
      *err = SetErrc::kOutOfRange;
      return false;
    }
    *out = RKey{{}, 0, 0, e.port};
    return true;
  }
  *err = SetErrc::kInvalid;
  if (e.family != o.family) return false;
  if (e.nomatch && !s.nets()) return false;
  const int words = o.family == 4 ? 1 : 4;
  uint8_t cidr = e.cidr;
  if (s.nets()) {
    if (cidr == 0) cidr = s.host();
    if (cidr > s.host()) return false;
  } else {
    if (cidr != 0 && cidr != s.host()) return false;
    cidr = s.host();
    bool zero = true;
    for (int i = 0; i < words; ++i) zero = zero && e.addr[i] == 0;
    if (zero) return false;
  }
  uint8_t proto = 0;
  uint16_t port = 0;
  if (s.ports()) {
    if (e.proto == 0) return false;
    proto = e.proto;
    // hash_ipport4_uadt: the port is kept for protocols with ports and for
    // the family's own ICMP; any other protocol stores port 0.
    port = WithPorts(e.proto) || e.proto == (o.family == 4 ? 1 : 58) ? e.port : 0;
  }
  *out = RKey{Mask(e.addr, words, cidr), cidr, proto, port};
  return true;
}

uint64_t RefExpiry(const RSet& s, const Entry& e) {
  if (!s.o.has_timeout) return 0;
  const uint32_t t = e.has_timeout ? e.timeout : s.o.timeout;
  return t ? g_now + uint64_t(t) * kSec : 0;
}

// Outcome of a control operation: a bool, or an error code.
struct Out {
  bool threw = false;
  SetErrc code = SetErrc::kInvalid;
  bool value = false;
  bool operator==(const Out& o) const { return threw == o.threw && (threw ? code == o.code : value == o.value); }
};

Out RefAdd(RSet& s, const Entry& e, bool exist) {
  RKey k;
  SetErrc err;
  if (!RefNormalize(s, e, true, &k, &err)) return {true, err, false};
  auto it = s.m.find(k);
  const bool live = it != s.m.end() && Live(it->second);
  if (live && !exist) return {true, SetErrc::kExists, false};
  if (!live && s.o.type != SetType::kBitmapPort && LiveCount(s) >= s.o.maxelem) return {true, SetErrc::kFull, false};
  RVal v;
  v.nomatch = s.o.type != SetType::kBitmapPort && e.nomatch;
  v.expires = RefExpiry(s, e);
  // -exist rewrites flags, timeout and comment (none when not given); the
  // counters only when given (mtype_add, ip_set_init_comment/_counter).
  v.comment = e.has_comment ? e.comment : std::string();
  if (e.has_counters) v.packets = e.packets, v.bytes = e.bytes;
  else if (live) v.packets = it->second.packets, v.bytes = it->second.bytes;
  s.m[k] = v;
  return {false, SetErrc::kInvalid, !live};
}

Out RefDel(RSet& s, const Entry& e, bool exist) {
  RKey k;
  SetErrc err;
  if (!RefNormalize(s, e, false, &k, &err)) return {true, err, false};
  auto it = s.m.find(k);
  if (it == s.m.end() || !Live(it->second)) {
    if (exist) return {false, SetErrc::kInvalid, false};
    return {true, SetErrc::kNotAdded, false};
  }
  s.m.erase(it);
  return {false, SetErrc::kInvalid, true};
}

// mtype_test_cidrs for nets, the exact element otherwise.
Match RefFind(const RSet& s, const uint32_t* addr, uint8_t proto, uint16_t port) {
  const int words = s.o.family == 4 ? 1 : 4;
  for (int cidr = s.host(); cidr >= (s.nets() ? 1 : s.host()); --cidr) {
    auto it = s.m.find(RKey{Mask(addr, words, uint8_t(cidr)), uint8_t(cidr), proto, port});
    if (it != s.m.end() && Live(it->second)) return it->second.nomatch ? Match::kNomatch : Match::kMatch;
  }
  return Match::kAbsent;
}

Out RefTest(const RSet& s, const Entry& in) {
  RKey k;
  SetErrc err;
  if (!RefNormalize(s, in, false, &k, &err)) return {true, err, false};
  const bool host = in.cidr == 0 || in.cidr == (in.family == 4 ? 32 : 128);
  if (s.nets() && host) {
    const auto& [a, cidr, proto, port] = k;
    return {false, SetErrc::kInvalid, RefFind(s, a.data(), proto, port) == Match::kMatch};
  }
  auto it = s.m.find(k);
  return {false, SetErrc::kInvalid, it != s.m.end() && Live(it->second) && !it->second.nomatch};
}

// The port the kernel reads for a packet (ip_set_getport.c), false when it
// cannot (no L4 header).
bool RefPort(const KeyCommon& c, bool src, uint16_t* port) {
  if (!(c.flags & kKeyHasL4) || c.proto == 0) return false;
  if (WithPorts(c.proto)) *port = src ? c.sport : c.dport;
  else if (c.proto == 1 || c.proto == 58) *port = c.icmp;
  else *port = 0;
  return true;
}

Match RefLookup(const RSet* s, const uint8_t* dirs, uint8_t ndirs, uint8_t family, const uint32_t* src,
                const uint32_t* dst, const KeyCommon& c) {
  if (!s || ndirs < s->dims()) return Match::kAbsent;
  uint16_t port = 0;
  if (s->o.type == SetType::kBitmapPort) {
    if ((c.proto != 6 && c.proto != 17) || !RefPort(c, dirs[0] == 1, &port)) return Match::kAbsent;
    auto it = s->m.find(RKey{{}, 0, 0, port});
    return it != s->m.end() && Live(it->second) ? Match::kMatch : Match::kAbsent;
  }
  if (s->o.family != family) return Match::kAbsent;
  uint8_t proto = 0;
  if (s->ports()) {
    if (!RefPort(c, dirs[1] == 1, &port)) return Match::kAbsent;
    proto = c.proto;
  }
  return RefFind(*s, dirs[0] == 1 ? src : dst, proto, port);
}

// ---- decoding -------------------------------------------------------------

const uint8_t kCidr4[] = {0, 1, 8, 16, 22, 24, 28, 30, 31, 32, 33, 0, 32, 24, 0, 0};
const uint8_t kCidr6[] = {0, 1, 16, 33, 64, 96, 112, 120, 126, 127, 128, 129, 128, 120, 0, 0};
const uint8_t kProtos[] = {6, 17, 1, 58, 132, 136, 47, 0};
const uint16_t kPorts[] = {0, 1, 2, 53, 0x0800, 0x8000, 65535, 3};

void Addr(uint8_t family, uint8_t lo, uint8_t hi, uint32_t* a) {
  a[0] = a[1] = a[2] = a[3] = 0;
  if (family == 4) {
    a[0] = 0x0a000000u | uint32_t(hi & 3) << 8 | lo;
  } else {
    a[0] = 0x20010db8, a[1] = hi & 4 ? 0x10000 : 0, a[3] = uint32_t(hi & 3) << 8 | lo;
  }
  if ((hi & 0xf8) == 0xf8) a[0] = a[1] = a[3] = 0;  // the null address, now and then
}

struct Decoder {
  fuzz::Reader in;
  uint8_t family = 4;  // the sets' family (entries mostly use it)

  Entry DecodeEntry() {
    const uint8_t b0 = in.U8(), b1 = in.U8(), b2 = in.U8(), b3 = in.U8();
    Entry e;
    e.family = b3 & 0x80 ? uint8_t(10 - family) : family;
    Addr(e.family, b0, b1, e.addr);
    e.cidr = (e.family == 4 ? kCidr4 : kCidr6)[b2 & 15];
    e.proto = kProtos[(b2 >> 4) & 7];
    e.port = b3 & 0x40 ? uint16_t(b0) : kPorts[b3 & 7];
    e.nomatch = b2 & 0x80;
    if (b3 & 0x08) e.has_timeout = true, e.timeout = uint32_t((b3 >> 4) & 3);
    const uint8_t x = in.U8();  // extensions
    if (x & 1) e.has_comment = true, e.comment = std::string((x >> 2) & 7, char('a' + (x >> 5)));
    if (x & 2) e.has_counters = true, e.packets = x >> 2, e.bytes = uint64_t(x) << 6;
    return e;
  }
};

// ipset create -exist compares these (the kernel's create with
// IPSET_FLAG_EXIST: same type and parameters).
bool RefSame(const SetOptions& a, const SetOptions& b) {
  if (a.type != b.type || a.family != b.family || a.has_timeout != b.has_timeout || a.counters != b.counters ||
      a.comment != b.comment)
    return false;
  if (a.has_timeout && a.timeout != b.timeout) return false;
  if (a.type == SetType::kBitmapPort) return a.port_from == b.port_from && a.port_to == b.port_to;
  return a.hashsize == b.hashsize && a.maxelem == b.maxelem;
}

constexpr int kSets = 3;

struct Harness {
  SetStore store;
  std::optional<RSet> ref[kSets];  // by name; none: no such set
  int64_t ids[kSets] = {-1, -1, -1};  // the id each name is bound to, once it is
  static constexpr const char* kNames[kSets] = {"a", "b", "c"};

  // The reference answer of an element operation on set i.
  template <typename F>
  Out On(int i, F&& f) {
    if (!ref[i]) return {true, SetErrc::kNoSet, false};
    return f(*ref[i]);
  }
  void Bind(int i) {
    ids[i] = store.Find(kNames[i]);
    FUZZ_CHECK(ids[i] >= 0);
  }

  void CheckOut(const Out& got, const Out& want, const char* what) {
    if (!(got == want))
      std::fprintf(stderr, "sets_fuzz: %s: store %s %d/%d, reference %s %d/%d\n", what, got.threw ? "threw" : "returned",
                   int(got.code), int(got.value), want.threw ? "threw" : "returned", int(want.code), int(want.value));
    FUZZ_CHECK(got == want);
  }

  template <typename F>
  static Out Run(F&& f) {
    try {
      return {false, SetErrc::kInvalid, f()};
    } catch (const SetError& e) {
      return {true, e.code, false};
    }
  }

  void CheckLookups(const SetStore& st, const PacketKey4& k4, const PacketKey6& k6) {
    static const uint8_t kDirs[4][2] = {{1, 1}, {1, 2}, {2, 1}, {2, 2}};
    for (int i = 0; i < kSets; ++i) {
      // A compiled rule holds the id its set name is bound to: after a
      // destroy it matches nothing, after a re-create or swap the set now
      // under that name.
      if (ids[i] < 0) continue;
      FUZZ_CHECK(st.Find(kNames[i]) == (ref[i] ? ids[i] : -1));
      const uint32_t id = uint32_t(ids[i]);
      const RSet* r = ref[i] ? &*ref[i] : nullptr;
      for (const auto& d : kDirs) {
        for (uint8_t n = 1; n <= 2; ++n) {
          const Match g4 = st.Lookup(id, d, n, k4, g_now);
          const Match w4 = RefLookup(r, d, n, 4, &k4.src, &k4.dst, k4.c);
          const Match g6 = st.Lookup(id, d, n, k6, g_now);
          const Match w6 = RefLookup(r, d, n, 6, k6.src, k6.dst, k6.c);
          if (g4 != w4 || g6 != w6)
            std::fprintf(stderr, "sets_fuzz: set %s dirs %u,%u/%u proto %u: lookup v4 %d (reference %d), v6 %d (reference %d)\n",
                         kNames[i], d[0], d[1], n, k4.c.proto, int(g4), int(w4), int(g6), int(w6));
          FUZZ_CHECK(g4 == w4 && g6 == w6);
          FUZZ_CHECK(st.Test(id, d, n, k4, g_now) == (w4 == Match::kMatch));
        }
      }
    }
  }

  // Every reference element (live or not) as a packet, and the listing.
  void CheckAll(SetStore& st, bool list) {
    for (int i = 0; i < kSets; ++i) {
      if (!ref[i]) continue;
      for (const auto& [k, v] : ref[i]->m) {
        const auto& [a, cidr, proto, port] = k;
        PacketKey4 k4;
        PacketKey6 k6;
        k4.src = k4.dst = a[0];
        for (int w = 0; w < 4; ++w) k6.src[w] = k6.dst[w] = a[w];
        for (KeyCommon* c : {&k4.c, &k6.c}) {
          c->proto = proto ? proto : 6, c->flags = kKeyHasL4;
          c->sport = c->dport = c->icmp = port;
        }
        CheckLookups(st, k4, k6);
      }
    }
    if (!list) return;
    for (int i = 0; i < kSets; ++i) {
      if (!ref[i]) {
        const Out got = Run([&] { return !st.List(kNames[i], true).empty(); });
        FUZZ_CHECK(got.threw && got.code == SetErrc::kNoSet);
        continue;
      }
      const std::vector<sets::SetInfo> info = st.List(kNames[i], true);
      FUZZ_CHECK(info.size() == 1);
      // nomatch, timeout left, comment, counters
      using Listed = std::tuple<bool, bool, uint32_t, bool, std::string, bool, uint64_t, uint64_t>;
      std::map<RKey, Listed> got, want;
      const SetOptions& o = ref[i]->o;
      for (const Entry& e : info[0].members) {
        const int words = o.family == 6 ? 4 : 1;
        RKey k = o.type == SetType::kBitmapPort
                     ? RKey{{}, 0, 0, e.port}
                     : RKey{Mask(e.addr, words, 128), e.cidr ? e.cidr : ref[i]->host(), e.proto, e.port};
        const Listed l{e.nomatch, e.has_timeout, e.timeout, e.has_comment, e.comment, e.has_counters, e.packets, e.bytes};
        FUZZ_CHECK(got.emplace(k, l).second);  // no element listed twice
      }
      for (const auto& [k, v] : ref[i]->m) {
        if (!Live(v)) continue;
        // ip_set_timeout_get: whole seconds left, at least 1; 0 = permanent.
        const uint32_t left = v.expires == 0 ? 0 : std::max<uint32_t>(1, uint32_t((v.expires - g_now) / kSec));
        want.emplace(k, Listed{v.nomatch, o.has_timeout, o.has_timeout ? left : 0, !v.comment.empty(), v.comment,
                               o.counters, v.packets, v.bytes});
      }
      if (got != want)
        std::fprintf(stderr, "sets_fuzz: set %s lists %zu elements, reference %zu\n", kNames[i], got.size(), want.size());
      FUZZ_CHECK(got == want);
      FUZZ_CHECK(info[0].entries == want.size());
    }
  }
};

}  // namespace
}  // namespace flatwall

using namespace flatwall;

namespace {

SetOptions DecodeOptions(fuzz::Reader* in, uint8_t family, int type) {
  const uint8_t b0 = in->U8(), b1 = in->U8();
  SetOptions o;
  o.type = SetType(type);
  o.family = family;
  o.hashsize = b0 & 1 ? 64 : 1024;
  static const uint32_t kMax[8] = {1, 2, 3, 5, 8, 16, 100, sets::kDefaultMaxElem};
  o.maxelem = kMax[(b0 >> 1) & 7];
  o.has_timeout = b0 & 0x10;
  o.timeout = (b0 >> 5) & 3;
  o.counters = b1 & 0x40;
  o.comment = b1 & 0x80;
  if (o.type == SetType::kBitmapPort) {
    o.family = 0;
    o.port_from = kPorts[b1 & 7], o.port_to = kPorts[(b1 >> 3) & 7];
    if (o.port_from > o.port_to) std::swap(o.port_from, o.port_to);
  }
  return o;
}

void WriteSeeds() {
  // The header (type/family byte, two option bytes per set), then ops:
  // an op byte and its operands; an element is 5 bytes (DecodeEntry).
  struct Seq {
    fuzz::Bytes b;
    Seq& Op(uint8_t op) { return b.push_back(op), *this; }
    Seq& U8(uint8_t v) { return b.push_back(v), *this; }
    // host lo of 10.0.0.lo (2001:db8::lo), prefix index, protocol index, port index
    Seq& E(uint8_t lo, uint8_t cidr, uint8_t proto, uint8_t port, uint8_t flags = 0, uint8_t ext = 0) {
      b.insert(b.end(), {lo, 0, uint8_t(cidr | proto << 4 | (flags & 0x80)), uint8_t(port | (flags & 0x78)), ext});
      return *this;
    }
  };
  auto head = [](uint8_t h) {
    Seq s;
    s.b = {h, 0x19, 0xf0, 0x07, 0x30};  // a: hashsize 64, maxelem 8, timeouts, counters, comments; b: maxelem 5
    return s;
  };
  for (uint8_t t = 0; t < 5; ++t) {
    for (uint8_t fam = 0; fam < 2; ++fam) {
      const uint8_t h = uint8_t(t | fam << 3);
      const std::string n = std::string(sets::SetTypeName(SetType(t))) + (fam ? "-6" : "-4");
      // add, add again (exists), -exist add with a comment, test, lookup, del, del again
      Seq basic = head(h);
      basic.Op(0).E(5, 9, 0, 3).Op(0).E(5, 9, 0, 3).Op(0x10).E(5, 9, 0, 3, 0, 0x0d).Op(2).E(5, 9, 0, 3);
      basic.Op(3).U8(5).U8(0).U8(5).U8(0x03).Op(10).Op(1).E(5, 9, 0, 3).Op(1).E(5, 9, 0, 3);
      fuzz::WriteSeed(n + "-basic", basic.b);
      // nets: a /24, a nomatch /28 inside it, a host; lookups, a test
      Seq nets = head(h);
      nets.Op(0).E(7, 5, 0, 0).Op(0).E(7, 6, 0, 0, 0x80).Op(0).E(9, 9, 0, 0);
      nets.Op(3).U8(9).U8(0).U8(7).U8(0).Op(3).U8(1).U8(0).U8(1).U8(0).Op(2).E(7, 0, 0, 0).Op(10);
      fuzz::WriteSeed(n + "-nets", nets.b);
      // timeouts: add with 1 s, step 2 s, lookup, gc, re-add with counters
      Seq timeouts = head(h);
      timeouts.Op(0).E(4, 9, 0, 0, 0x18).Op(4).U8(20).Op(3).U8(4).U8(0).U8(4).U8(0).Op(5).U8(8);
      timeouts.Op(0).E(4, 9, 0, 0, 0x18, 0x22).Op(10);
      fuzz::WriteSeed(n + "-timeouts", timeouts.b);
      // fill to maxelem, swap, flush, restore
      Seq fill = head(h);
      for (uint8_t i = 1; i <= 9; ++i) fill.Op(0).E(i, 9, 0, 0);
      fill.Op(7).Op(6).Op(8).U8(0x21).E(9, 9, 0, 0).E(9, 9, 0, 0).Op(1).E(9, 9, 0, 0);
      fuzz::WriteSeed(n + "-fill", fill.b);
      // grow: 90 elements into a 64-slot table, delete 60, add 40 again, list
      Seq grow = head(h);
      grow.b[1] = 0x0d;  // hashsize 64, maxelem 100, no timeouts
      grow.Op(11).U8(89).E(0, 9, 0, 0).Op(12).U8(59).E(10, 9, 0, 0).Op(11).U8(39).E(30, 9, 1, 0).Op(10).Op(9);
      fuzz::WriteSeed(n + "-grow", grow.b);
    }
  }
}

PacketKey4 Key4(Decoder* d, uint8_t* flags_out) {
  const uint8_t b0 = d->in.U8(), b1 = d->in.U8(), b2 = d->in.U8(), b3 = d->in.U8();
  PacketKey4 k;
  uint32_t a[4];
  Addr(4, b0, b1, a);
  k.src = a[0];
  Addr(4, b2, b1 >> 2, a);
  k.dst = a[0];
  k.c.proto = kProtos[b3 & 7];
  k.c.sport = kPorts[(b3 >> 3) & 7], k.c.dport = b3 & 0x40 ? uint16_t(b0) : kPorts[b2 & 7];
  k.c.icmp = kPorts[(b1 >> 4) & 7];
  k.c.flags = b3 & 0x80 ? 0 : kKeyHasL4;
  *flags_out = b1;
  return k;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (!fuzz::SeedDir()) return 0;
  WriteSeeds();
  std::exit(0);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Decoder d{{data, data + size}};
  g_now = 1000 * kSec;
  const uint8_t h0 = d.in.U8();
  const int type = (h0 & 7) % 5;
  d.family = h0 & 8 ? 6 : 4;
  Harness h;
  h.store.SetClock([] { return g_now; });
  h.ref[0].emplace().o = DecodeOptions(&d.in, d.family, type);
  // "b": the same type and family (swappable) or the next type; "c" is
  // made by create or rename.
  const int type_b = h0 & 0x40 ? (type + 1) % 5 : type;
  h.ref[1].emplace().o = DecodeOptions(&d.in, d.family, type_b);
  for (int i = 0; i < 2; ++i) h.store.Create(Harness::kNames[i], h.ref[i]->o), h.Bind(i);
  for (uint32_t op = 0; op < kMaxOps && d.in.left(); ++op) {
    const uint8_t b = d.in.U8();
    const int si = "\0\1\0\2"[b >> 6];
    const bool exist = b & 0x10;
    const std::string name = Harness::kNames[si];
    switch (b & 0x0f) {
      case 0: {
        const Entry e = d.DecodeEntry();
        h.CheckOut(Harness::Run([&] { return h.store.Add(name, e, exist); }),
                   h.On(si, [&](RSet& rs) { return RefAdd(rs, e, exist); }), "add");
        break;
      }
      case 1: {
        const Entry e = d.DecodeEntry();
        h.CheckOut(Harness::Run([&] { return h.store.Del(name, e, exist); }),
                   h.On(si, [&](RSet& rs) { return RefDel(rs, e, exist); }), "del");
        break;
      }
      case 2: {
        const Entry e = d.DecodeEntry();
        h.CheckOut(Harness::Run([&] { return h.store.TestEntry(name, e); }),
                   h.On(si, [&](RSet& rs) { return RefTest(rs, e); }), "test");
        break;
      }
      case 3: {  // a packet, both families (the v6 one from the same bytes)
        uint8_t hi;
        const PacketKey4 k4 = Key4(&d, &hi);
        PacketKey6 k6;
        k6.c = k4.c;
        const uint32_t s[4] = {0x20010db8, hi & 4 ? 0x10000u : 0, 0, k4.src & 0x3ff};
        const uint32_t t[4] = {0x20010db8, 0, 0, k4.dst & 0x3ff};
        for (int w = 0; w < 4; ++w) k6.src[w] = s[w], k6.dst[w] = t[w];
        h.CheckLookups(h.store, k4, k6);
        break;
      }
      case 4: g_now += uint64_t(d.in.U8()) * (kSec / 10); break;
      case 5: h.store.Gc(d.in.U8() % 16 + 1); break;
      case 6:
        h.CheckOut(Harness::Run([&] { h.store.Flush(name); return true; }),
                   h.On(si, [](RSet& rs) { rs.m.clear(); return Out{false, SetErrc::kInvalid, true}; }), "flush");
        break;
      case 7: {  // swap with another name (or itself)
        const int oi = d.in.U8() % kSets;
        Out want{false, SetErrc::kInvalid, true};
        if (!h.ref[si]) want = {true, SetErrc::kNoSet, false};
        else if (!h.ref[oi]) want = {true, SetErrc::kSecondNoSet, false};
        else if (h.ref[si]->o.type != h.ref[oi]->o.type || h.ref[si]->o.family != h.ref[oi]->o.family)
          want = {true, SetErrc::kTypeMismatch, false};
        h.CheckOut(Harness::Run([&] { h.store.Swap(name, Harness::kNames[oi]); return true; }), want, "swap");
        if (!want.threw) std::swap(h.ref[si], h.ref[oi]);
        break;
      }
      case 8: {  // restore: up to 4 add/del commands, all or none
        const uint8_t n = d.in.U8();
        std::vector<sets::Command> cmds;
        Harness copy;
        for (int i = 0; i < kSets; ++i) copy.ref[i] = h.ref[i];
        Out want{false, SetErrc::kInvalid, true};
        size_t fail_at = SIZE_MAX;
        for (uint32_t i = 0; i < 1 + (n & 3u); ++i) {
          sets::Command c;
          const int ci = (n >> (2 + i)) & 1;
          c.op = (n >> (4 + (i & 3))) & 1 ? sets::Command::Op::kDel : sets::Command::Op::kAdd;
          c.name = Harness::kNames[ci];
          c.entry = d.DecodeEntry();
          c.exist = c.entry.port & 1;
          cmds.push_back(c);
          if (fail_at != SIZE_MAX) continue;
          const bool add = c.op == sets::Command::Op::kAdd;
          const Out r = copy.On(ci, [&](RSet& rs) { return add ? RefAdd(rs, c.entry, c.exist) : RefDel(rs, c.entry, c.exist); });
          if (r.threw) fail_at = i, want = r;
        }
        size_t index = SIZE_MAX;
        const Out got = Harness::Run([&] {
          try {
            h.store.Restore(cmds);
          } catch (const SetError& e) {
            index = e.index;
            throw;
          }
          return true;
        });
        if (!got.threw) want.value = true;
        h.CheckOut(got, want, "restore");
        if (got.threw) FUZZ_CHECK(index == fail_at);
        else
          for (int i = 0; i < kSets; ++i) h.ref[i] = std::move(copy.ref[i]);
        break;
      }
      case 9: {  // a private copy answers the same
        std::unique_ptr<SetStore> c = h.store.Clone();
        h.CheckAll(*c, true);
        break;
      }
      case 10: h.CheckAll(h.store, true); break;
      case 11:    // many consecutive elements at once: tables grow, and
      case 12: {  // deletes leave tombstones
        const uint32_t n = 1 + d.in.U8() % 96u;
        Entry e = d.DecodeEntry();
        for (uint32_t i = 0; i < n; ++i) {
          if ((b & 0x0f) == 11)
            h.CheckOut(Harness::Run([&] { return h.store.Add(name, e, exist); }),
                       h.On(si, [&](RSet& rs) { return RefAdd(rs, e, exist); }), "bulk add");
          else
            h.CheckOut(Harness::Run([&] { return h.store.Del(name, e, exist); }),
                       h.On(si, [&](RSet& rs) { return RefDel(rs, e, exist); }), "bulk del");
          e.addr[e.family == 4 ? 0 : 3] += 1;
          e.port = uint16_t(e.port + 1);
        }
        break;
      }
      case 13:  // destroy (the kernel refuses it for a set a rule uses; the control plane does too)
        h.CheckOut(Harness::Run([&] { h.store.Destroy(name); return true; }),
                   h.On(si, [](RSet&) { return Out{false, SetErrc::kInvalid, true}; }), "destroy");
        h.ref[si].reset();
        break;
      case 14: {  // create (-exist: fine when the same set exists)
        const uint8_t t = d.in.U8();
        RSet fresh;
        fresh.o = DecodeOptions(&d.in, t & 8 ? uint8_t(10 - d.family) : d.family, (t & 7) % 5);
        Out want{false, SetErrc::kInvalid, true};
        if (h.ref[si] && !(exist && RefSame(h.ref[si]->o, fresh.o))) want = {true, SetErrc::kSetExists, false};
        h.CheckOut(Harness::Run([&] { h.store.Create(name, fresh.o, exist); return true; }), want, "create");
        if (!h.ref[si]) h.ref[si] = std::move(fresh), h.Bind(si);
        break;
      }
      case 15: {  // rename to another name (or itself)
        const int to = d.in.U8() % kSets;
        Out want{false, SetErrc::kInvalid, true};
        if (!h.ref[si]) want = {true, SetErrc::kNoSet, false};
        else if (h.ref[to]) want = {true, SetErrc::kNameTaken, false};
        h.CheckOut(Harness::Run([&] { h.store.Rename(name, Harness::kNames[to]); return true; }), want, "rename");
        if (!want.threw) h.ref[to] = std::move(h.ref[si]), h.ref[si].reset(), h.Bind(to);
        break;
      }
    }
  }
  h.CheckAll(h.store, true);
  return 0;
}
