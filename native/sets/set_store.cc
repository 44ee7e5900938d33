// The set store: see the design essay in set_store.h.
#include "sets/set_store.h"

#include <time.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <utility>

namespace flatwall {
namespace sets {

// ---- type table -------------------------------------------------------------

namespace {

struct TypeInfo {
  const char* name;
  uint8_t dims;
  uint8_t revision;  // the kernel's IPSET_TYPE_REV_MAX (6.x), printed by `ipset list`
  bool nets;
  bool port;
};

constexpr TypeInfo kTypes[kSetTypeCount] = {
    {"hash:ip", 1, 6, false, false},       // ip_set_hash_ip.c
    {"hash:net", 1, 7, true, false},       // ip_set_hash_net.c
    {"hash:ip,port", 2, 7, false, true},   // ip_set_hash_ipport.c
    {"hash:net,port", 2, 8, true, true},   // ip_set_hash_netport.c
    {"bitmap:port", 1, 3, false, false},   // ip_set_bitmap_port.c
};

}  // namespace

const char* SetTypeName(SetType t) { return kTypes[uint8_t(t)].name; }
uint8_t SetTypeDims(SetType t) { return kTypes[uint8_t(t)].dims; }
uint8_t SetTypeRevision(SetType t) { return kTypes[uint8_t(t)].revision; }
bool SetTypeHasNets(SetType t) { return kTypes[uint8_t(t)].nets; }
bool SetTypeHasPort(SetType t) { return kTypes[uint8_t(t)].port; }

bool ParseSetType(std::string_view name, SetType* out) {
  for (int i = 0; i < kSetTypeCount; ++i)
    if (name == kTypes[i].name) {
      *out = SetType(i);
      return true;
    }
  return false;
}

bool ProtoWithPorts(uint8_t p) {
  return p == kIpProtoTcp || p == kIpProtoUdp || p == kIpProtoSctp || p == kIpProtoUdpLite;
}

bool SetOptions::SameAs(const SetOptions& o) const {
  // What the kernel's mtype_same_set / bitmap_port_same_set compare, plus
  // type and family (ip_set_create with IPSET_FLAG_EXIST).
  return type == o.type && family == o.family && hashsize == o.hashsize && maxelem == o.maxelem &&
         has_timeout == o.has_timeout && (!has_timeout || timeout == o.timeout) && counters == o.counters &&
         comment == o.comment && port_from == o.port_from && port_to == o.port_to;
}

uint64_t SetStore::MonoNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);  // vDSO: no syscall
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

// ---- tables -----------------------------------------------------------------

namespace impl {

constexpr uint32_t kEmpty = 0, kUsed = 1, kDead = 2, kStateMask = 3, kNomatchBit = 4;
constexpr uint64_t kNsPerSec = 1000000000ull;
constexpr uint64_t kForever = UINT64_MAX;  // bitmap:port with timeouts: present, permanent

// splitmix64's finalizer: a bijection with full avalanche.
inline uint64_t Mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

// A packed key: IPv4 addr | cidr << 32 | proto << 40 | port << 48 in one
// word; IPv6 addr in two words, cidr | proto << 8 | port << 16 in the third.
template <int KW>
struct Key {
  uint64_t w[KW];
  bool operator==(const Key& o) const {
    for (int i = 0; i < KW; ++i)
      if (w[i] != o.w[i]) return false;
    return true;
  }
};

template <int KW>
inline uint64_t HashOf(const Key<KW>& k, uint64_t seed) {
  uint64_t h = seed;
  for (int i = 0; i < KW; ++i) h = Mix(h ^ k.w[i]);
  return h;
}

inline Key<1> Pack4(uint32_t addr, uint8_t cidr, uint8_t proto, uint16_t port) {
  return {{uint64_t(addr) | uint64_t(cidr) << 32 | uint64_t(proto) << 40 | uint64_t(port) << 48}};
}
inline Key<3> Pack6(const uint32_t a[4], uint8_t cidr, uint8_t proto, uint16_t port) {
  return {{uint64_t(a[0]) << 32 | a[1], uint64_t(a[2]) << 32 | a[3],
           uint64_t(cidr) | uint64_t(proto) << 8 | uint64_t(port) << 16}};
}
inline uint8_t CidrOf(const Key<1>& k) { return uint8_t(k.w[0] >> 32); }
inline uint8_t CidrOf(const Key<3>& k) { return uint8_t(k.w[2]); }

inline void Unpack(const Key<1>& k, Entry* e) {
  e->family = 4;
  e->addr[0] = uint32_t(k.w[0]);
  e->cidr = uint8_t(k.w[0] >> 32);
  e->proto = uint8_t(k.w[0] >> 40);
  e->port = uint16_t(k.w[0] >> 48);
}
inline void Unpack(const Key<3>& k, Entry* e) {
  e->family = 6;
  e->addr[0] = uint32_t(k.w[0] >> 32), e->addr[1] = uint32_t(k.w[0]);
  e->addr[2] = uint32_t(k.w[1] >> 32), e->addr[3] = uint32_t(k.w[1]);
  e->cidr = uint8_t(k.w[2]);
  e->proto = uint8_t(k.w[2] >> 8);
  e->port = uint16_t(k.w[2] >> 16);
}

// Masks `a` (family words) to `cidr` bits into out.
inline void MaskAddr(const uint32_t* a, int words, uint8_t cidr, uint32_t* out) {
  for (int i = 0; i < words; ++i) {
    const int bits = int(cidr) - 32 * i;
    out[i] = bits >= 32 ? a[i] : bits <= 0 ? 0 : a[i] & (~0u << (32 - bits));
  }
}

template <int KW>
struct Slot {
  // seq is odd while the writer stores a new key into the slot (seqlock);
  // state (kEmpty/kUsed/kDead | kNomatchBit) and expires change by single
  // stores. expires: CLOCK_MONOTONIC ns, 0 = never.
  std::atomic<uint32_t> seq{0};
  std::atomic<uint32_t> state{kEmpty};
  std::atomic<uint64_t> expires{0};
  std::atomic<uint64_t> key[KW];
  Slot() {
    for (auto& k : key) k.store(0, std::memory_order_relaxed);
  }
};
static_assert(sizeof(Slot<1>) == 24, "IPv4 slot size (memory bound in the essay)");
static_assert(sizeof(Slot<3>) == 40, "IPv6 slot size (memory bound in the essay)");

template <int KW>
struct Table {
  explicit Table(uint32_t cap) : mask(cap - 1), slots(new Slot<KW>[cap]) {}
  uint32_t capacity() const { return mask + 1; }
  const uint32_t mask;
  std::unique_ptr<Slot<KW>[]> slots;
  uint32_t used = 0, dead = 0;  // writer only
};

inline bool Expired(uint64_t exp, uint64_t now) { return exp != 0 && exp <= now; }

// The reader's probe: wait-free, see the essay. kAbsent also for an expired
// entry (the writer keeps keys unique, so there is no other copy further on).
template <int KW>
Match ReadProbe(const Table<KW>& t, const Key<KW>& k, uint64_t h, uint64_t now) {
  uint32_t i = uint32_t(h) & t.mask;
  for (uint32_t n = 0; n <= t.mask; ++n, i = (i + 1) & t.mask) {
    const Slot<KW>& s = t.slots[i];
    const uint32_t q1 = s.seq.load(std::memory_order_acquire);
    const uint32_t st = s.state.load(std::memory_order_relaxed);
    bool same = true;
    for (int w = 0; w < KW; ++w) same &= s.key[w].load(std::memory_order_relaxed) == k.w[w];
    const uint64_t exp = s.expires.load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);
    const uint32_t q2 = s.seq.load(std::memory_order_relaxed);
    if (q1 != q2 || (q1 & 1)) continue;  // a key being written: not ours yet
    const uint32_t state = st & kStateMask;
    if (state == kEmpty) return Match::kAbsent;
    if (state != kUsed || !same) continue;
    if (Expired(exp, now)) return Match::kAbsent;
    return (st & kNomatchBit) ? Match::kNomatch : Match::kMatch;
  }
  return Match::kAbsent;
}

// Writer: the slot holding k (live or expired), or -1; *insert_at: where k
// would go (the first dead slot of its chain, else the empty that ends it).
template <int KW>
int64_t FindW(const Table<KW>& t, const Key<KW>& k, uint64_t h, int64_t* insert_at) {
  int64_t dead = -1;
  uint32_t i = uint32_t(h) & t.mask;
  for (uint32_t n = 0; n <= t.mask; ++n, i = (i + 1) & t.mask) {
    const Slot<KW>& s = t.slots[i];
    const uint32_t st = s.state.load(std::memory_order_relaxed) & kStateMask;
    if (st == kEmpty) {
      if (insert_at) *insert_at = dead >= 0 ? dead : int64_t(i);
      return -1;
    }
    if (st == kDead) {
      if (dead < 0) dead = i;
      continue;
    }
    bool same = true;
    for (int w = 0; w < KW; ++w) same &= s.key[w].load(std::memory_order_relaxed) == k.w[w];
    if (same) return i;
  }
  if (insert_at) *insert_at = dead;  // never full of used slots (load <= 3/4)
  return -1;
}

template <int KW>
void WriteKey(Slot<KW>& s, const Key<KW>& k, uint32_t state, uint64_t exp) {
  const uint32_t q = s.seq.load(std::memory_order_relaxed);
  s.seq.store(q + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  for (int w = 0; w < KW; ++w) s.key[w].store(k.w[w], std::memory_order_relaxed);
  s.expires.store(exp, std::memory_order_relaxed);
  s.state.store(state, std::memory_order_relaxed);
  s.seq.store(q + 2, std::memory_order_release);
}

template <int KW>
Key<KW> KeyAt(const Slot<KW>& s) {
  Key<KW> k;
  for (int w = 0; w < KW; ++w) k.w[w] = s.key[w].load(std::memory_order_relaxed);
  return k;
}

// Control-side per-entry values: comment and counters.
struct MetaKey {
  uint64_t w[3];
  bool operator==(const MetaKey& o) const { return w[0] == o.w[0] && w[1] == o.w[1] && w[2] == o.w[2]; }
};
struct MetaKeyHash {
  size_t operator()(const MetaKey& k) const { return size_t(Mix(k.w[0] ^ Mix(k.w[1] ^ Mix(k.w[2])))); }
};
struct Meta {
  uint64_t packets = 0, bytes = 0;
  std::string comment;
};
template <int KW>
MetaKey MetaOf(const Key<KW>& k) {
  MetaKey m{{0, 0, 0}};
  for (int i = 0; i < KW; ++i) m.w[i] = k.w[i];
  return m;
}

using Retired = std::vector<std::function<void()>>;

}  // namespace impl

using namespace impl;

// ---- a set -------------------------------------------------------------------

struct SetStore::Set {
  Set(const SetOptions& o, uint64_t seed_) : opt(o), seed(seed_) {
    dims = SetTypeDims(opt.type);
    for (auto& n : nets) n.store(0, std::memory_order_relaxed);
    if (opt.type == SetType::kBitmapPort) {
      nports = uint32_t(opt.port_to) - opt.port_from + 1;
      map_words = opt.has_timeout ? nports : (nports + 63) / 64;
      map.reset(new std::atomic<uint64_t>[map_words]);
      for (size_t i = 0; i < map_words; ++i) map[i].store(0, std::memory_order_relaxed);
      return;
    }
    host_len = opt.family == 4 ? 32 : 128;
    // At most half full when it holds maxelem entries (see the essay).
    cap_max = 64;
    while (cap_max < (1u << 31) && uint64_t(cap_max) < 2ull * opt.maxelem) cap_max <<= 1;
    const uint32_t initial = std::min(std::max(opt.hashsize, kMinHashSize), cap_max);
    if (opt.family == 4) t4.store(new Table<1>(initial), std::memory_order_relaxed);
    else t6.store(new Table<3>(initial), std::memory_order_relaxed);
  }
  ~Set() {
    delete t4.load(std::memory_order_relaxed);
    delete t6.load(std::memory_order_relaxed);
  }

  SetOptions opt;
  uint64_t seed;
  uint8_t dims = 1;
  uint8_t host_len = 0;
  uint32_t cap_max = 0;
  // hash types: one table, per family; replaced (grace period) on resize/flush
  std::atomic<Table<1>*> t4{nullptr};
  std::atomic<Table<3>*> t6{nullptr};
  // hash:net*: bit c of the 129-bit map = some entry has prefix length c
  std::atomic<uint64_t> nets[3];
  // bitmap:port: a bit per port, or (timeouts) an expiry word per port
  uint32_t nports = 0;
  size_t map_words = 0;
  std::unique_ptr<std::atomic<uint64_t>[]> map;
  // control side
  uint32_t elements = 0;  // stored entries, expired ones until reclaimed
  uint32_t net_count[129] = {};
  std::unordered_map<MetaKey, Meta, MetaKeyHash> meta;

  template <int KW>
  std::atomic<Table<KW>*>& table();

  std::unique_ptr<Set> CloneEmpty() const { return std::make_unique<Set>(opt, seed); }
  std::unique_ptr<Set> Clone() const;
  size_t Memory() const;
};

template <>
std::atomic<Table<1>*>& SetStore::Set::table<1>() {
  return t4;
}
template <>
std::atomic<Table<3>*>& SetStore::Set::table<3>() {
  return t6;
}

namespace {

using Set = SetStore::Set;

template <int KW>
void CopyTable(const Table<KW>& from, Table<KW>* to) {
  for (uint32_t i = 0; i <= from.mask; ++i) {
    const Slot<KW>& a = from.slots[i];
    Slot<KW>& b = to->slots[i];
    b.state.store(a.state.load(std::memory_order_relaxed), std::memory_order_relaxed);
    b.expires.store(a.expires.load(std::memory_order_relaxed), std::memory_order_relaxed);
    for (int w = 0; w < KW; ++w) b.key[w].store(a.key[w].load(std::memory_order_relaxed), std::memory_order_relaxed);
  }
  to->used = from.used, to->dead = from.dead;
}

}  // namespace

std::unique_ptr<Set> Set::Clone() const {
  auto c = std::make_unique<Set>(opt, seed);
  if (const Table<1>* t = t4.load(std::memory_order_relaxed)) {
    delete c->t4.load(std::memory_order_relaxed);
    auto* n = new Table<1>(t->capacity());
    CopyTable(*t, n);
    c->t4.store(n, std::memory_order_relaxed);
  }
  if (const Table<3>* t = t6.load(std::memory_order_relaxed)) {
    delete c->t6.load(std::memory_order_relaxed);
    auto* n = new Table<3>(t->capacity());
    CopyTable(*t, n);
    c->t6.store(n, std::memory_order_relaxed);
  }
  for (int i = 0; i < 3; ++i) c->nets[i].store(nets[i].load(std::memory_order_relaxed), std::memory_order_relaxed);
  for (size_t i = 0; i < map_words; ++i) c->map[i].store(map[i].load(std::memory_order_relaxed), std::memory_order_relaxed);
  c->elements = elements;
  std::memcpy(c->net_count, net_count, sizeof net_count);
  c->meta = meta;
  return c;
}

size_t Set::Memory() const {
  size_t m = sizeof(Set);
  if (const Table<1>* t = t4.load(std::memory_order_relaxed)) m += sizeof(*t) + size_t(t->capacity()) * sizeof(Slot<1>);
  if (const Table<3>* t = t6.load(std::memory_order_relaxed)) m += sizeof(*t) + size_t(t->capacity()) * sizeof(Slot<3>);
  m += map_words * sizeof(uint64_t);
  for (const auto& kv : meta) m += sizeof(kv) + 16 + kv.second.comment.capacity();
  return m;
}

// ---- element operations (writer) --------------------------------------------

namespace {

SetError Err(SetErrc c, const std::string& msg) { return SetError(c, msg); }

std::string NoSetMsg() { return "The set with the given name does not exist"; }

// Checks an element against its set and brings it to the stored form, as the
// kernel's uadt functions do (netmask the address, port 0 for protocols
// without ports).
void Normalize(const Set& s, Entry* e, bool add) {
  const SetOptions& o = s.opt;
  if (add) {
    if (e->has_timeout && !o.has_timeout)
      throw Err(SetErrc::kInvalid, "Timeout cannot be used: set was created without timeout support");
    if (e->has_timeout && e->timeout > kMaxTimeout)
      throw Err(SetErrc::kInvalid, "Syntax error: '" + std::to_string(e->timeout) + "' is out of range 0-2147483");
    if (e->has_counters && !o.counters)
      throw Err(SetErrc::kInvalid, "Packet/byte counters cannot be used: set was created without counter support");
    if (e->has_comment && !o.comment)
      throw Err(SetErrc::kInvalid, "Comment cannot be used: set was created without comment support");
    if (e->has_comment && e->comment.size() > kMaxCommentLen)
      throw Err(SetErrc::kInvalid, "Syntax error: Comment is longer than the maximum allowed 255 characters");
  }
  if (o.type == SetType::kBitmapPort) {
    if (e->port < o.port_from || e->port > o.port_to)
      throw Err(SetErrc::kOutOfRange, "Element is out of the range of the set");
    return;
  }
  if (e->family != o.family)
    throw Err(SetErrc::kInvalid, o.family == 4 ? "An IPv4 address is expected, but not received"
                                               : "An IPv6 address is expected, but not received");
  if (e->nomatch && !SetTypeHasNets(o.type))
    throw Err(SetErrc::kInvalid, std::string("nomatch is not supported by ") + SetTypeName(o.type));
  const int words = o.family == 4 ? 1 : 4;
  if (SetTypeHasNets(o.type)) {
    if (e->cidr == 0) e->cidr = s.host_len;
    if (e->cidr > s.host_len)
      throw Err(SetErrc::kInvalid, "The value of the CIDR parameter of the IP address is invalid");
    MaskAddr(e->addr, words, e->cidr, e->addr);
  } else {
    if (e->cidr != 0 && e->cidr != s.host_len)
      throw Err(SetErrc::kInvalid, "The value of the CIDR parameter of the IP address is invalid");
    e->cidr = s.host_len;
    bool zero = true;
    for (int i = 0; i < words; ++i) zero &= e->addr[i] == 0;
    if (zero) throw Err(SetErrc::kInvalid, "Null-valued element, cannot be stored in a hash type of set");
  }
  if (SetTypeHasPort(o.type)) {
    if (e->proto == 0) throw Err(SetErrc::kInvalid, "Invalid protocol specified");
    const uint8_t icmp = o.family == 4 ? kIpProtoIcmp : kIpProtoIcmp6;
    if (!ProtoWithPorts(e->proto) && e->proto != icmp) e->port = 0;
  } else {
    e->proto = 0, e->port = 0;
  }
}

uint64_t ExpiryOf(const Set& s, const Entry& e, uint64_t now) {
  if (!s.opt.has_timeout) return 0;
  const uint32_t t = e.has_timeout ? e.timeout : s.opt.timeout;
  return t == 0 ? 0 : now + uint64_t(t) * kNsPerSec;
}

template <int KW>
Key<KW> KeyOf(const Entry& e);
template <>
Key<1> KeyOf<1>(const Entry& e) {
  return Pack4(e.addr[0], e.cidr, e.proto, e.port);
}
template <>
Key<3> KeyOf<3>(const Entry& e) {
  return Pack6(e.addr, e.cidr, e.proto, e.port);
}

void SetMeta(Set& s, const MetaKey& mk, const Entry& e, bool fresh) {
  // ipset -exist add rewrites the extensions: the comment is the new one
  // (none when not given), counters only when given (ip_set_init_comment,
  // ip_set_init_counter).
  auto it = s.meta.find(mk);
  Meta m = it != s.meta.end() && !fresh ? it->second : Meta{};
  if (e.has_counters) m.packets = e.packets, m.bytes = e.bytes;
  m.comment = e.has_comment ? e.comment : std::string();
  if (m.packets == 0 && m.bytes == 0 && m.comment.empty()) {
    if (it != s.meta.end()) s.meta.erase(it);
  } else if (it != s.meta.end()) {
    it->second = std::move(m);
  } else {
    s.meta.emplace(mk, std::move(m));
  }
}

template <int KW>
void EraseAt(Set& s, Table<KW>& t, uint32_t i) {
  Slot<KW>& sl = t.slots[i];
  const Key<KW> k = KeyAt(sl);
  sl.state.store(kDead, std::memory_order_release);
  t.used--, t.dead++;
  s.elements--;
  if (SetTypeHasNets(s.opt.type)) {
    const uint8_t c = CidrOf(k);
    if (--s.net_count[c] == 0)
      s.nets[c / 64].store(s.nets[c / 64].load(std::memory_order_relaxed) & ~(1ull << (c % 64)),
                           std::memory_order_release);
  }
  if (!s.meta.empty()) s.meta.erase(MetaOf(k));
}

// GC of one set: visits slots (ports) [from, from + budget); *next = where
// to go on, SIZE_MAX when the set is done; *visited = slots visited.
template <int KW>
size_t GcTable(Set& s, size_t from, size_t budget, uint64_t now, size_t* next, size_t* visited) {
  Table<KW>& t = *s.table<KW>().load(std::memory_order_relaxed);
  size_t n = 0, i = from;
  const size_t end = budget >= t.capacity() - std::min<size_t>(from, t.capacity()) ? t.capacity() : from + budget;
  for (; i < end; ++i) {
    Slot<KW>& sl = t.slots[i];
    if ((sl.state.load(std::memory_order_relaxed) & kStateMask) == kUsed &&
        Expired(sl.expires.load(std::memory_order_relaxed), now)) {
      EraseAt(s, t, uint32_t(i));
      ++n;
    }
  }
  *visited = i > from ? i - from : 0;
  *next = i >= t.capacity() ? SIZE_MAX : i;
  return n;
}

size_t GcBitmap(Set& s, size_t from, size_t budget, uint64_t now, size_t* next, size_t* visited) {
  size_t n = 0, i = from;
  const size_t end = budget >= s.nports - std::min<size_t>(from, s.nports) ? s.nports : from + budget;
  for (; i < end; ++i) {
    const uint64_t v = s.map[i].load(std::memory_order_relaxed);
    if (v != 0 && v != kForever && v <= now) {
      s.map[i].store(0, std::memory_order_release);
      s.elements--;
      if (!s.meta.empty()) s.meta.erase(MetaKey{{i, 0, 0}});
      ++n;
    }
  }
  *visited = i > from ? i - from : 0;
  *next = i >= s.nports ? SIZE_MAX : i;
  return n;
}

size_t GcSet(Set& s, size_t from, size_t budget, uint64_t now, size_t* next, size_t* visited) {
  if (!s.opt.has_timeout) {
    *next = SIZE_MAX;
    *visited = 1;
    return 0;
  }
  if (s.opt.type == SetType::kBitmapPort) return GcBitmap(s, from, budget, now, next, visited);
  return s.opt.family == 4 ? GcTable<1>(s, from, budget, now, next, visited)
                           : GcTable<3>(s, from, budget, now, next, visited);
}

size_t GcAll(Set& s, uint64_t now) {
  size_t next, visited;
  return GcSet(s, 0, SIZE_MAX, now, &next, &visited);
}

template <int KW>
void Rehash(Set& s, uint32_t cap, Retired* retired) {
  Table<KW>* old = s.table<KW>().load(std::memory_order_relaxed);
  auto* t = new Table<KW>(cap);
  for (uint32_t i = 0; i <= old->mask; ++i) {
    const Slot<KW>& a = old->slots[i];
    const uint32_t st = a.state.load(std::memory_order_relaxed);
    if ((st & kStateMask) != kUsed) continue;
    const Key<KW> k = KeyAt(a);
    int64_t at = -1;
    FindW(*t, k, HashOf(k, s.seed), &at);
    WriteKey(t->slots[at], k, st, a.expires.load(std::memory_order_relaxed));
    t->used++;
  }
  s.table<KW>().store(t, std::memory_order_seq_cst);
  retired->push_back([old] { delete old; });
}

template <int KW>
bool AddHash(Set& s, Entry e, bool exist, uint64_t now, Retired* retired) {
  const Key<KW> k = KeyOf<KW>(e);
  const uint64_t h = HashOf(k, s.seed);
  Table<KW>* t = s.table<KW>().load(std::memory_order_relaxed);
  int64_t ins = -1;
  const int64_t at = FindW(*t, k, h, &ins);
  const uint64_t exp = ExpiryOf(s, e, now);
  const uint32_t st = kUsed | (e.nomatch ? kNomatchBit : 0);
  if (at >= 0) {
    // The kernel's mtype_add: an existing element is an error unless
    // -exist or it has expired; both rewrite its extensions and flags.
    Slot<KW>& sl = t->slots[at];
    const bool expired = Expired(sl.expires.load(std::memory_order_relaxed), now);
    if (!expired && !exist) throw Err(SetErrc::kExists, "Element cannot be added to the set: it's already added");
    sl.expires.store(exp, std::memory_order_relaxed);
    sl.state.store(st, std::memory_order_release);
    SetMeta(s, MetaOf(k), e, expired);
    return expired;
  }
  if (s.elements >= s.opt.maxelem) {
    // Full: reclaim expired entries first (the kernel runs its gc here too).
    GcAll(s, now);
    if (s.elements >= s.opt.maxelem) throw Err(SetErrc::kFull, "Hash is full, cannot add more elements");
    FindW(*t, k, h, &ins);
  }
  const bool into_empty = (t->slots[ins].state.load(std::memory_order_relaxed) & kStateMask) == kEmpty;
  if (into_empty && (uint64_t(t->used) + t->dead + 1) * 4 > uint64_t(t->capacity()) * 3) {
    // Grow (or clean out tombstones): load <= 3/8 afterwards, within cap_max.
    uint32_t cap = 64;
    while (cap < s.cap_max && uint64_t(cap) * 3 < (uint64_t(t->used) + 1) * 8) cap <<= 1;
    Rehash<KW>(s, cap, retired);
    t = s.table<KW>().load(std::memory_order_relaxed);
    FindW(*t, k, h, &ins);
  }
  Slot<KW>& sl = t->slots[ins];
  if ((sl.state.load(std::memory_order_relaxed) & kStateMask) == kDead) t->dead--;
  WriteKey(sl, k, st, exp);
  t->used++;
  s.elements++;
  if (SetTypeHasNets(s.opt.type) && s.net_count[e.cidr]++ == 0) {
    // After the entry: a reader that sees the bit finds it.
    s.nets[e.cidr / 64].store(s.nets[e.cidr / 64].load(std::memory_order_relaxed) | 1ull << (e.cidr % 64),
                              std::memory_order_release);
  }
  if (e.has_comment || e.has_counters) SetMeta(s, MetaOf(k), e, true);
  return true;
}

template <int KW>
bool DelHash(Set& s, const Entry& e, bool exist, uint64_t now) {
  const Key<KW> k = KeyOf<KW>(e);
  Table<KW>* t = s.table<KW>().load(std::memory_order_relaxed);
  const int64_t at = FindW(*t, k, HashOf(k, s.seed), nullptr);
  if (at < 0 || Expired(t->slots[at].expires.load(std::memory_order_relaxed), now)) {
    if (exist) return false;
    throw Err(SetErrc::kNotAdded, "Element cannot be deleted from the set: it's not added");
  }
  EraseAt(s, *t, uint32_t(at));
  return true;
}

bool BitmapHas(const Set& s, uint32_t i, uint64_t now) {
  if (s.opt.has_timeout) {
    const uint64_t v = s.map[i].load(std::memory_order_acquire);
    return v != 0 && (v == kForever || v > now);
  }
  return (s.map[i / 64].load(std::memory_order_acquire) >> (i % 64)) & 1;
}

bool AddBitmap(Set& s, const Entry& e, bool exist, uint64_t now) {
  const uint32_t i = uint32_t(e.port) - s.opt.port_from;
  const bool had = BitmapHas(s, i, now);
  if (had && !exist) throw Err(SetErrc::kExists, "Element cannot be added to the set: it's already added");
  if (s.opt.has_timeout) {
    const uint64_t was = s.map[i].load(std::memory_order_relaxed);
    const uint64_t exp = ExpiryOf(s, e, now);
    s.map[i].store(exp == 0 ? kForever : exp, std::memory_order_release);
    if (was == 0) s.elements++;  // an expired one is still counted
  } else {
    s.map[i / 64].store(s.map[i / 64].load(std::memory_order_relaxed) | 1ull << (i % 64), std::memory_order_release);
    if (!had) s.elements++;
  }
  SetMeta(s, MetaKey{{i, 0, 0}}, e, !had);
  return !had;
}

bool DelBitmap(Set& s, const Entry& e, bool exist, uint64_t now) {
  const uint32_t i = uint32_t(e.port) - s.opt.port_from;
  if (!BitmapHas(s, i, now)) {
    if (exist) return false;
    throw Err(SetErrc::kNotAdded, "Element cannot be deleted from the set: it's not added");
  }
  if (s.opt.has_timeout) s.map[i].store(0, std::memory_order_release);
  else s.map[i / 64].store(s.map[i / 64].load(std::memory_order_relaxed) & ~(1ull << (i % 64)), std::memory_order_release);
  s.elements--;
  if (!s.meta.empty()) s.meta.erase(MetaKey{{i, 0, 0}});
  return true;
}

bool AddTo(Set& s, const Entry& in, bool exist, uint64_t now, Retired* retired) {
  Entry e = in;
  Normalize(s, &e, true);
  if (s.opt.type == SetType::kBitmapPort) return AddBitmap(s, e, exist, now);
  return s.opt.family == 4 ? AddHash<1>(s, e, exist, now, retired) : AddHash<3>(s, e, exist, now, retired);
}

bool DelFrom(Set& s, const Entry& in, bool exist, uint64_t now) {
  Entry e = in;
  Normalize(s, &e, false);
  if (s.opt.type == SetType::kBitmapPort) return DelBitmap(s, e, exist, now);
  return s.opt.family == 4 ? DelHash<1>(s, e, exist, now) : DelHash<3>(s, e, exist, now);
}

// ---- lookups (any thread) ----------------------------------------------------

// Most specific prefix first, the kernel's mtype_test_cidrs.
template <int KW>
Match NetLoop(const Set& s, const Table<KW>& t, const uint32_t* addr, uint8_t proto, uint16_t port, uint64_t now) {
  const int words = KW == 1 ? 1 : 4;
  uint32_t m[4];
  for (int w = (s.host_len) / 64; w >= 0; --w) {
    uint64_t bits = s.nets[w].load(std::memory_order_acquire);
    while (bits) {
      const int b = 63 - __builtin_clzll(bits);
      bits &= ~(1ull << b);
      const uint8_t cidr = uint8_t(w * 64 + b);
      MaskAddr(addr, words, cidr, m);
      Key<KW> k;
      if constexpr (KW == 1) k = Pack4(m[0], cidr, proto, port);
      else k = Pack6(m, cidr, proto, port);
      const Match r = ReadProbe(t, k, HashOf(k, s.seed), now);
      if (r != Match::kAbsent) return r;
    }
  }
  return Match::kAbsent;
}

template <int KW>
Match HashLookup(const Set& s, const uint32_t* addr, uint8_t proto, uint16_t port, uint64_t now) {
  const Table<KW>* t = const_cast<Set&>(s).table<KW>().load(std::memory_order_acquire);
  if (SetTypeHasNets(s.opt.type)) return NetLoop<KW>(s, *t, addr, proto, port, now);
  Key<KW> k;
  if constexpr (KW == 1) k = Pack4(addr[0], 32, proto, port);
  else k = Pack6(addr, 128, proto, port);
  return ReadProbe(*t, k, HashOf(k, s.seed), now);
}

// The port ipset matches for a packet (ip_set_getport.c get_port): false
// when the kernel could not read it (a later fragment: no L4 header).
inline bool PortOf(const KeyCommon& c, bool src, uint16_t* port) {
  if (!(c.flags & kKeyHasL4) || c.proto == 0) return false;
  switch (c.proto) {
    case kIpProtoTcp:
    case kIpProtoUdp:
    case kIpProtoSctp:
    case kIpProtoUdpLite:
      *port = src ? c.sport : c.dport;
      return true;
    case kIpProtoIcmp:
    case kIpProtoIcmp6:
      *port = c.icmp;
      return true;
    default:
      *port = 0;  // DCCP too: the kernel reads no port for it
      return true;
  }
}

}  // namespace

// ---- the store -----------------------------------------------------------------

SetStore::Chunk::Chunk() {
  for (auto& s : slot) s.store(nullptr, std::memory_order_relaxed);
}

SetStore::SetStore(std::function<void()> synchronize)
    : synchronize_(std::move(synchronize)), clock_(&SetStore::MonoNs) {}

SetStore::~SetStore() {
  for (auto& f : retired_) f();
  for (auto& c : chunks_) delete c.load(std::memory_order_relaxed);
}

void SetStore::SetSynchronize(std::function<void()> synchronize) {
  std::lock_guard<std::mutex> lock(mu_);
  synchronize_ = std::move(synchronize);
}

void SetStore::SetClock(std::function<uint64_t()> clock) {
  std::lock_guard<std::mutex> lock(mu_);
  clock_ = clock ? std::move(clock) : std::function<uint64_t()>(&SetStore::MonoNs);
}

const SetStore::Set* SetStore::Get(uint32_t id) const {
  if (id >= kMaxSets) return nullptr;
  const Chunk* c = chunks_[id / kChunk].load(std::memory_order_acquire);
  // seq_cst: pairs with the grace period's seq_cst reads of the workers'
  // announcements (dataplane.h), so a worker past a batch boundary after an
  // unpublish cannot load the old pointer.
  return c ? c->slot[id % kChunk].load(std::memory_order_seq_cst) : nullptr;
}

void SetStore::Publish(uint32_t id, Set* s) {
  chunks_[id / kChunk].load(std::memory_order_relaxed)->slot[id % kChunk].store(s, std::memory_order_seq_cst);
}

uint32_t SetStore::Bind(const std::string& name) {
  auto it = ids_.find(name);
  if (it != ids_.end()) return it->second;
  const uint32_t id = uint32_t(id_names_.size());
  if (id >= kMaxSets)
    throw Err(SetErrc::kTooManySets, "Kernel error received: maximal number of sets reached, cannot create more.");
  if (!chunks_[id / kChunk].load(std::memory_order_relaxed))
    chunks_[id / kChunk].store(new Chunk(), std::memory_order_release);
  ids_.emplace(name, id);
  id_names_.push_back(name);
  owned_.emplace_back();
  pos_.push_back(-1);
  return id;
}

void SetStore::FinishRetired() {
  if (retired_.empty()) return;
  if (synchronize_) synchronize_();
  for (auto& f : retired_) f();
  retired_.clear();
}

// ---- packet side -----------------------------------------------------------------

Match SetStore::LookupIn(const Set* s, const uint8_t* dirs, uint8_t ndirs, uint8_t family, const uint32_t* src,
                         const uint32_t* dst, const KeyCommon& c, uint64_t now) const {
  // ip_set_test: too few dimensions in the rule, or another family: no match.
  if (!s || ndirs < s->dims) return Match::kAbsent;
  const SetType t = s->opt.type;
  uint16_t port = 0;
  if (t == SetType::kBitmapPort) {
    // ip_set_get_ip_port: TCP and UDP only; either family.
    if (!PortOf(c, dirs[0] == 1, &port) || (c.proto != kIpProtoTcp && c.proto != kIpProtoUdp)) return Match::kAbsent;
    if (port < s->opt.port_from || port > s->opt.port_to) return Match::kAbsent;
    return BitmapHas(*s, uint32_t(port) - s->opt.port_from, now) ? Match::kMatch : Match::kAbsent;
  }
  if (s->opt.family != family) return Match::kAbsent;
  const uint32_t* addr = dirs[0] == 1 ? src : dst;
  uint8_t proto = 0;
  if (SetTypeHasPort(t)) {
    if (!PortOf(c, dirs[1] == 1, &port)) return Match::kAbsent;
    proto = c.proto;
  }
  return family == 4 ? HashLookup<1>(*s, addr, proto, port, now) : HashLookup<3>(*s, addr, proto, port, now);
}

Match SetStore::Lookup(uint32_t id, const uint8_t* dirs, uint8_t ndirs, const PacketKey4& k, uint64_t now) const {
  return LookupIn(Get(id), dirs, ndirs, 4, &k.src, &k.dst, k.c, now);
}
Match SetStore::Lookup(uint32_t id, const uint8_t* dirs, uint8_t ndirs, const PacketKey6& k, uint64_t now) const {
  return LookupIn(Get(id), dirs, ndirs, 6, k.src, k.dst, k.c, now);
}
bool SetStore::Test(uint32_t id, const uint8_t* dirs, uint8_t ndirs, const PacketKey4& k, uint64_t now) const {
  return Lookup(id, dirs, ndirs, k, now) == Match::kMatch;
}
bool SetStore::Test(uint32_t id, const uint8_t* dirs, uint8_t ndirs, const PacketKey6& k, uint64_t now) const {
  return Lookup(id, dirs, ndirs, k, now) == Match::kMatch;
}

// ---- control side -------------------------------------------------------------

int32_t SetStore::Find(std::string_view name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = ids_.find(std::string(name));
  return it != ids_.end() && owned_[it->second] ? int32_t(it->second) : -1;
}

bool SetStore::Describe(std::string_view name, SetOptions* out) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = ids_.find(std::string(name));
  if (it == ids_.end() || !owned_[it->second]) return false;
  *out = owned_[it->second]->opt;
  return true;
}

void SetStore::Create(const std::string& name, const SetOptions& o, bool exist) {
  Command c;
  c.op = Command::Op::kCreate, c.name = name, c.options = o, c.exist = exist;
  Restore({c});
}
void SetStore::Destroy(const std::string& name) {
  Command c;
  c.op = Command::Op::kDestroy, c.name = name;
  Restore({c});
}
void SetStore::Flush(const std::string& name) {
  Command c;
  c.op = Command::Op::kFlush, c.name = name;
  Restore({c});
}
void SetStore::Swap(const std::string& a, const std::string& b) {
  Command c;
  c.op = Command::Op::kSwap, c.name = a, c.name2 = b;
  Restore({c});
}
void SetStore::Rename(const std::string& a, const std::string& b) {
  Command c;
  c.op = Command::Op::kRename, c.name = a, c.name2 = b;
  Restore({c});
}

bool SetStore::Add(const std::string& name, const Entry& e, bool exist) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = ids_.find(name);
  if (it == ids_.end() || !owned_[it->second]) throw Err(SetErrc::kNoSet, NoSetMsg());
  bool r;
  try {
    r = AddTo(*owned_[it->second], e, exist, clock_(), &retired_);
  } catch (...) {
    FinishRetired();
    throw;
  }
  FinishRetired();
  return r;
}

bool SetStore::Del(const std::string& name, const Entry& e, bool exist) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = ids_.find(name);
  if (it == ids_.end() || !owned_[it->second]) throw Err(SetErrc::kNoSet, NoSetMsg());
  return DelFrom(*owned_[it->second], e, exist, clock_());
}

bool SetStore::TestEntry(const std::string& name, const Entry& in) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = ids_.find(name);
  if (it == ids_.end() || !owned_[it->second]) throw Err(SetErrc::kNoSet, NoSetMsg());
  const Set& s = *owned_[it->second];
  Entry e = in;
  const bool host = e.cidr == 0 || e.cidr == (e.family == 4 ? 32 : 128);
  Normalize(s, &e, false);
  const uint64_t now = clock_();
  if (s.opt.type == SetType::kBitmapPort) return BitmapHas(s, uint32_t(e.port) - s.opt.port_from, now);
  // mtype_test: a host address in a set with nets tries every prefix
  // (mtype_test_cidrs); a network is looked up as given.
  if (SetTypeHasNets(s.opt.type) && host)
    return (s.opt.family == 4 ? HashLookup<1>(s, e.addr, e.proto, e.port, now)
                              : HashLookup<3>(s, e.addr, e.proto, e.port, now)) == Match::kMatch;
  if (s.opt.family == 4) {
    const Key<1> k = KeyOf<1>(e);
    return ReadProbe(*s.t4.load(std::memory_order_relaxed), k, HashOf(k, s.seed), now) == Match::kMatch;
  }
  const Key<3> k = KeyOf<3>(e);
  return ReadProbe(*s.t6.load(std::memory_order_relaxed), k, HashOf(k, s.seed), now) == Match::kMatch;
}

namespace {

SetOptions NormalizeOptions(const SetOptions& in) {
  SetOptions o = in;
  if (o.has_timeout && o.timeout > kMaxTimeout)
    throw Err(SetErrc::kInvalid, "Syntax error: '" + std::to_string(o.timeout) + "' is out of range 0-2147483");
  if (o.type == SetType::kBitmapPort) {
    o.family = 0;
    if (o.port_from > o.port_to) std::swap(o.port_from, o.port_to);  // bitmap_port_create
    o.hashsize = 0, o.maxelem = 0, o.bucketsize = 0, o.has_initval = false, o.initval = 0;
    return o;
  }
  if (o.family != 4 && o.family != 6) throw Err(SetErrc::kInvalid, "Protocol family not supported by the set type");
  // The kernel's hash create: hashsize >= 64, rounded up to a power of two;
  // bucketsize 2..12, even; a random initval unless given.
  uint64_t hs = std::max(o.hashsize, kMinHashSize), p = 1;
  while (p < hs) p <<= 1;
  o.hashsize = uint32_t(std::min<uint64_t>(p, 1u << 31));
  if (o.bucketsize < 2) o.bucketsize = 2;
  else if (o.bucketsize > 12) o.bucketsize = 12;
  else if (o.bucketsize % 2) o.bucketsize++;
  if (!o.has_initval) {
    o.initval = uint32_t(std::random_device{}());
    o.has_initval = true;
  }
  return o;
}

uint64_t RandomSeed() {
  std::random_device rd;
  return (uint64_t(rd()) << 32) ^ rd();
}

}  // namespace

void SetStore::Restore(const std::vector<Command>& commands) {
  std::lock_guard<std::mutex> lock(mu_);
  try {
    RestoreLocked(commands);
  } catch (...) {
    FinishRetired();  // tables of unpublished copies
    throw;
  }
  FinishRetired();
}

void SetStore::RestoreLocked(const std::vector<Command>& commands) {
  // Every command works on a staged view: a name maps to its live set
  // (untouched, not owned), to a private copy or new set (owned), or to
  // nothing. Only when every command succeeded is the view published.
  struct View {
    Set* cur = nullptr;
    std::unique_ptr<Set> owned;
    int32_t pos = -1;  // kernel-style set index
  };
  std::unordered_map<std::string, View> st;
  std::vector<std::string> order;
  std::vector<bool> used_pos;
  for (size_t id = 0; id < pos_.size(); ++id)
    if (pos_[id] >= 0) {
      if (size_t(pos_[id]) >= used_pos.size()) used_pos.resize(pos_[id] + 1);
      used_pos[pos_[id]] = true;
    }
  auto view = [&](const std::string& n) -> View& {
    auto [it, fresh] = st.try_emplace(n);
    if (fresh) {
      auto id = ids_.find(n);
      if (id != ids_.end() && owned_[id->second]) {
        it->second.cur = owned_[id->second].get();
        it->second.pos = pos_[id->second];
      }
      order.push_back(n);
    }
    return it->second;
  };
  auto writable = [&](View& v) -> Set& {
    if (!v.owned) {
      v.owned = v.cur->Clone();
      v.cur = v.owned.get();
    }
    return *v.owned;
  };
  auto all_names = [&]() {
    std::vector<std::string> names;
    for (const auto& [n, id] : ids_)
      if (owned_[id]) names.push_back(n);
    for (const auto& [n, v] : st)
      if (v.cur && !ids_.count(n)) names.push_back(n);
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    std::vector<std::string> live;
    for (const auto& n : names)
      if (view(n).cur) live.push_back(n);
    return live;
  };
  auto free_pos = [&](int32_t p) {
    if (p >= 0) used_pos[p] = false;
  };
  const uint64_t now = clock_();

  for (size_t i = 0; i < commands.size(); ++i) {
    const Command& c = commands[i];
    try {
      switch (c.op) {
        case Command::Op::kCreate: {
          if (c.name.empty() || c.name.size() > kMaxNameLen)
            throw Err(SetErrc::kInvalid, "Syntax error: setname '" + c.name + "' is longer than 31 characters");
          const SetOptions o = NormalizeOptions(c.options);
          View& v = view(c.name);
          if (v.cur) {
            if (c.exist && v.cur->opt.SameAs(o)) break;
            throw Err(SetErrc::kSetExists, "Set cannot be created: set with the same name already exists");
          }
          v.owned = std::make_unique<Set>(o, RandomSeed());
          v.cur = v.owned.get();
          size_t p = 0;
          while (p < used_pos.size() && used_pos[p]) ++p;
          if (p == used_pos.size()) used_pos.push_back(false);
          used_pos[p] = true;
          v.pos = int32_t(p);
          break;
        }
        case Command::Op::kDestroy:
        case Command::Op::kFlush: {
          const std::vector<std::string> names = c.name.empty() ? all_names() : std::vector<std::string>{c.name};
          for (const auto& n : names) {
            View& v = view(n);
            if (!v.cur) throw Err(SetErrc::kNoSet, NoSetMsg());
            if (c.op == Command::Op::kDestroy) {
              v.owned.reset();
              v.cur = nullptr;
              free_pos(v.pos);
              v.pos = -1;
            } else {
              v.owned = v.cur->CloneEmpty();
              v.cur = v.owned.get();
            }
          }
          break;
        }
        case Command::Op::kSwap: {
          View& a = view(c.name);
          View& b = view(c.name2);
          if (!a.cur) throw Err(SetErrc::kNoSet, NoSetMsg());
          if (!b.cur) throw Err(SetErrc::kSecondNoSet, "Sets cannot be swapped: the second set does not exist");
          if (a.cur->opt.type != b.cur->opt.type || a.cur->opt.family != b.cur->opt.family)
            throw Err(SetErrc::kTypeMismatch, "The sets cannot be swapped: their type does not match");
          // ip_set_swap: the contents change places, names and indexes stay.
          std::swap(a.cur, b.cur);
          std::swap(a.owned, b.owned);
          break;
        }
        case Command::Op::kRename: {
          if (c.name2.empty() || c.name2.size() > kMaxNameLen)
            throw Err(SetErrc::kInvalid, "Syntax error: setname '" + c.name2 + "' is longer than 31 characters");
          View& a = view(c.name);
          if (!a.cur) throw Err(SetErrc::kNoSet, NoSetMsg());
          View& b = view(c.name2);  // (`a` stays valid: unordered_map nodes do not move)
          if (b.cur) throw Err(SetErrc::kNameTaken, "Set cannot be renamed: a set with the new name already exists");
          // ip_set_rename: the set keeps its index under the new name.
          b.cur = a.cur, b.owned = std::move(a.owned), b.pos = a.pos;
          a.cur = nullptr, a.pos = -1;
          break;
        }
        case Command::Op::kAdd:
        case Command::Op::kDel: {
          View& v = view(c.name);
          if (!v.cur) throw Err(SetErrc::kNoSet, NoSetMsg());
          // Validate against the set before copying it.
          Entry probe = c.entry;
          Normalize(*v.cur, &probe, c.op == Command::Op::kAdd);
          Set& s = writable(v);
          if (c.op == Command::Op::kAdd) AddTo(s, c.entry, c.exist, now, &retired_);
          else DelFrom(s, c.entry, c.exist, now);
          break;
        }
      }
    } catch (SetError& e) {
      e.index = i;
      throw;
    }
  }

  // Names never bound before need ids: check the bound first (nothing is
  // published before everything fits).
  size_t fresh = 0;
  for (const auto& n : order)
    if (st[n].cur && !ids_.count(n)) ++fresh;
  if (id_names_.size() + fresh > kMaxSets) {
    SetError e(SetErrc::kTooManySets, "Kernel error received: maximal number of sets reached, cannot create more.");
    e.index = commands.empty() ? 0 : commands.size() - 1;
    throw e;
  }

  // Publish: live sets whose names were touched go to a pool; each name
  // takes its final set (from the pool, or its new owned one); what stays
  // in the pool is unreachable once published and freed after the grace
  // period.
  std::unordered_map<const Set*, std::unique_ptr<Set>> pool;
  for (const auto& n : order) {
    auto it = ids_.find(n);
    if (it != ids_.end() && owned_[it->second]) {
      const Set* p = owned_[it->second].get();
      pool.emplace(p, std::move(owned_[it->second]));
    }
  }
  for (const auto& n : order) {
    View& v = st[n];
    std::unique_ptr<Set> own;
    if (v.owned) {
      own = std::move(v.owned);
    } else if (v.cur) {
      auto it = pool.find(v.cur);
      own = std::move(it->second);
      pool.erase(it);
    }
    if (!own && !ids_.count(n)) continue;  // never existed
    const uint32_t id = Bind(n);
    Set* p = own.get();
    owned_[id] = std::move(own);
    pos_[id] = p ? v.pos : -1;
    Publish(id, p);
  }
  for (auto& kv : pool) {
    Set* p = kv.second.release();
    retired_.push_back([p] { delete p; });
  }
}

std::vector<std::string> SetStore::Names() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::pair<int32_t, std::string>> v;
  for (size_t id = 0; id < owned_.size(); ++id)
    if (owned_[id]) v.emplace_back(pos_[id], id_names_[id]);
  std::sort(v.begin(), v.end());
  std::vector<std::string> out;
  for (auto& p : v) out.push_back(std::move(p.second));
  return out;
}

namespace {

template <int KW>
void ListTable(const Set& s, uint64_t now, std::vector<Entry>* out, uint32_t* count) {
  const Table<KW>& t = *const_cast<Set&>(s).table<KW>().load(std::memory_order_relaxed);
  for (uint32_t i = 0; i <= t.mask; ++i) {
    const Slot<KW>& sl = t.slots[i];
    const uint32_t st = sl.state.load(std::memory_order_relaxed);
    if ((st & kStateMask) != kUsed) continue;
    const uint64_t exp = sl.expires.load(std::memory_order_relaxed);
    if (Expired(exp, now)) continue;
    ++*count;
    if (!out) continue;
    Entry e;
    const Key<KW> k = KeyAt(sl);
    Unpack(k, &e);
    if (!SetTypeHasNets(s.opt.type)) e.cidr = 0;
    e.nomatch = (st & kNomatchBit) != 0;
    if (s.opt.has_timeout) {
      e.has_timeout = true;
      // ip_set_timeout_get: whole seconds left, at least 1; 0 = permanent.
      e.timeout = exp == 0 ? 0 : std::max<uint32_t>(1, uint32_t((exp - now) / kNsPerSec));
    }
    auto m = s.meta.find(MetaOf(k));
    e.has_counters = s.opt.counters;
    e.has_comment = m != s.meta.end() && !m->second.comment.empty();
    if (m != s.meta.end()) {
      e.packets = m->second.packets, e.bytes = m->second.bytes;
      e.comment = m->second.comment;
    }
    out->push_back(std::move(e));
  }
}

void ListBitmap(const Set& s, uint64_t now, std::vector<Entry>* out, uint32_t* count) {
  for (uint32_t i = 0; i < s.nports; ++i) {
    if (!BitmapHas(s, i, now)) continue;
    ++*count;
    if (!out) continue;
    Entry e;
    e.family = 0;
    e.port = uint16_t(s.opt.port_from + i);
    if (s.opt.has_timeout) {
      const uint64_t v = s.map[i].load(std::memory_order_relaxed);
      e.has_timeout = true;
      e.timeout = v == kForever ? 0 : std::max<uint32_t>(1, uint32_t((v - now) / kNsPerSec));
    }
    auto m = s.meta.find(MetaKey{{i, 0, 0}});
    e.has_counters = s.opt.counters;
    e.has_comment = m != s.meta.end() && !m->second.comment.empty();
    if (m != s.meta.end()) {
      e.packets = m->second.packets, e.bytes = m->second.bytes;
      e.comment = m->second.comment;
    }
    out->push_back(std::move(e));
  }
}

}  // namespace

std::vector<SetInfo> SetStore::List(const std::string& name, bool members) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<uint32_t> ids;
  if (!name.empty()) {
    auto it = ids_.find(name);
    if (it == ids_.end() || !owned_[it->second]) throw Err(SetErrc::kNoSet, NoSetMsg());
    ids.push_back(it->second);
  } else {
    for (uint32_t id = 0; id < owned_.size(); ++id)
      if (owned_[id]) ids.push_back(id);
    std::sort(ids.begin(), ids.end(), [&](uint32_t a, uint32_t b) { return pos_[a] < pos_[b]; });
  }
  const uint64_t now = clock_();
  std::vector<SetInfo> out;
  for (uint32_t id : ids) {
    Set& s = *owned_[id];
    GcAll(s, now);
    SetInfo info;
    info.name = id_names_[id];
    info.id = id;
    info.options = s.opt;
    std::vector<Entry>* m = members ? &info.members : nullptr;
    if (s.opt.type == SetType::kBitmapPort) ListBitmap(s, now, m, &info.entries);
    else if (s.opt.family == 4) ListTable<1>(s, now, m, &info.entries);
    else ListTable<3>(s, now, m, &info.entries);
    info.memory_bytes = s.Memory();
    out.push_back(std::move(info));
  }
  return out;
}

size_t SetStore::Gc(size_t budget) {
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t now = clock_();
  size_t reclaimed = 0;
  const uint32_t n = uint32_t(owned_.size());
  for (uint32_t steps = 0; budget > 0 && n > 0 && steps <= n; ++steps) {
    if (gc_set_ >= n) gc_set_ = 0, gc_slot_ = 0;
    Set* s = owned_[gc_set_].get();
    size_t next = SIZE_MAX, visited = 1;
    if (s) reclaimed += GcSet(*s, gc_slot_, budget, now, &next, &visited);
    budget -= std::min(budget, std::max<size_t>(visited, 1));
    if (next == SIZE_MAX) gc_set_++, gc_slot_ = 0;
    else gc_slot_ = next;
  }
  return reclaimed;
}

size_t SetStore::memory_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t m = sizeof(*this);
  for (const auto& s : owned_)
    if (s) m += s->Memory();
  return m;
}

std::unique_ptr<SetStore> SetStore::Clone() const {
  std::lock_guard<std::mutex> lock(mu_);
  auto c = std::make_unique<SetStore>();
  c->clock_ = clock_;
  for (const std::string& n : id_names_) c->Bind(n);
  for (size_t id = 0; id < owned_.size(); ++id) {
    c->pos_[id] = pos_[id];
    if (!owned_[id]) continue;
    c->owned_[id] = owned_[id]->Clone();
    c->Publish(uint32_t(id), c->owned_[id].get());
  }
  return c;
}

}  // namespace sets
}  // namespace flatwall
