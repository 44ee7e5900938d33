// The tuple classifier. The design, its invariants and the reasons for the
// constants are in the essay at the top of classifier.h; comments here cover
// the local decisions only.
#include "classifier/tuple_merge.h"

#include <algorithm>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <vector>

#include "classifier/huge_alloc.h"
#include "classifier/image.h"
#include "classifier/split_tree.h"

namespace flatwall {
namespace detail {
namespace {

// ---------------------------------------------------------------- hashing
//
// Two hashes of the same masked fields. The filter hash (32 bits) is
// multiply-shift hashing (Dietzfelbinger): each masked word times its own odd
// constant, the products XORed, and the TOP bits taken as the filter's bit
// index -- the top bits of a product depend on every bit of the word, so no
// finalising mix is needed, and 32-bit multiplies let eight keys be hashed per
// AVX2 instruction. The slot hash (64 bits) is computed only for the few keys
// that pass a filter, and places the bucket's run.

// One 64x64->128 multiply folded (the core of wyhash): cheap, and every
// input bit reaches the middle of the product.
inline uint64_t Mum(uint64_t a, uint64_t b) {
  const u128 p = u128(a) * b;
  return uint64_t(p) ^ uint64_t(p >> 64);
}

constexpr uint64_t kK1 = 0xa0761d6478bd642fULL;
constexpr uint64_t kK2 = 0xe7037ed1a0b428dbULL;
constexpr uint64_t kK3 = 0x8ebc6af09c88c6e3ULL;
constexpr uint64_t kK4 = 0x589965cc75374cc3ULL;
constexpr uint64_t kK5 = 0x1d8e4e27c47d124fULL;
// Odd 32-bit multipliers for the filter hash, one per hashed word.
constexpr uint32_t kC[10] = {0x9E3779B1u, 0x85EBCA77u, 0xC2B2AE3Du, 0x27D4EB2Fu, 0x165667B1u,
                             0xD3A2646Du, 0xFD7046C5u, 0xB55A4F09u, 0x2C1B3C6Du, 0x297A2D39u};

inline uint32_t Ports(uint16_t sport, uint16_t dport) { return uint32_t(sport) << 16 | dport; }

// The hashed fields of a key, of a record's lower bounds, or of a table's
// masks, unpacked once so that each table costs a few ANDs and multiplies.
template <typename Rec>
struct Words;

template <>
struct Words<RuleRecord4> {
  // Hashed word w is multiplied by kC[w] (the vector pass relies on it).
  static constexpr int kWords = 4;
  uint32_t src = 0, dst = 0, ports = 0, proto = 0;

  static Words Of(const PacketKey4& k) {
    return {k.src, k.dst, Ports(k.c.sport, k.c.dport), k.c.proto};
  }
  static Words Of(const RuleRecord4& r) {
    return {r.src_lo, r.dst_lo, Ports(r.c.sport_lo, r.c.dport_lo), r.c.proto_lo};
  }
  static Words Mask(uint32_t src, uint32_t dst, uint32_t ports, uint32_t proto) {
    return {src, dst, ports, proto};
  }
  uint32_t FilterHash(const Words& m) const {
    return ((src & m.src) * kC[0]) ^ ((dst & m.dst) * kC[1]) ^ ((ports & m.ports) * kC[2]) ^
           ((proto & m.proto) * kC[3]);
  }
  uint64_t SlotHash(const Words& m) const {
    const uint64_t x = uint64_t(src & m.src) << 32 | (dst & m.dst);
    const uint64_t y = uint64_t(ports & m.ports) << 8 | (proto & m.proto);
    return Mum(x ^ kK1, y ^ kK2);
  }
};

template <>
struct Words<RuleRecord6> {
  static constexpr int kWords = 10;
  uint32_t src[4] = {}, dst[4] = {};
  uint32_t ports = 0, proto = 0;

  static Words Of(const PacketKey6& k) {
    Words w;
    for (int i = 0; i < 4; ++i) w.src[i] = k.src[i], w.dst[i] = k.dst[i];
    w.ports = Ports(k.c.sport, k.c.dport);
    w.proto = k.c.proto;
    return w;
  }
  static Words Of(const RuleRecord6& r) {
    Words w;
    for (int i = 0; i < 4; ++i) w.src[i] = r.src_lo[i], w.dst[i] = r.dst_lo[i];
    w.ports = Ports(r.c.sport_lo, r.c.dport_lo);
    w.proto = r.c.proto_lo;
    return w;
  }
  static Words Mask(u128 src, u128 dst, uint32_t ports, uint32_t proto) {
    Words w;
    StoreWords(w.src, src);
    StoreWords(w.dst, dst);
    w.ports = ports;
    w.proto = proto;
    return w;
  }
  uint32_t FilterHash(const Words& m) const {
    uint32_t h = ((ports & m.ports) * kC[8]) ^ ((proto & m.proto) * kC[9]);
    for (int i = 0; i < 4; ++i)
      h ^= ((src[i] & m.src[i]) * kC[i]) ^ ((dst[i] & m.dst[i]) * kC[4 + i]);
    return h;
  }
  uint64_t SlotHash(const Words& m) const {
    auto pair = [](const uint32_t* v, const uint32_t* mk, int i) {
      return uint64_t(v[i] & mk[i]) << 32 | (v[i + 1] & mk[i + 1]);
    };
    const uint64_t s = Mum(pair(src, m.src, 0) ^ kK1, pair(src, m.src, 2) ^ kK2);
    const uint64_t d = Mum(pair(dst, m.dst, 0) ^ kK3, pair(dst, m.dst, 2) ^ kK4);
    const uint64_t y = uint64_t(ports & m.ports) << 8 | (proto & m.proto);
    return Mum(s ^ y ^ kK5, d ^ kK1);
  }
};

// ----------------------------------------------------------------- tuples

// Prefix lengths of the five hashed fields; proto is 0 (not hashed) or 8.
struct Tuple {
  uint8_t s = 0, d = 0, sp = 0, dp = 0, pr = 0;

  uint32_t Code() const {
    return uint32_t(s) | uint32_t(d) << 8 | uint32_t(sp) << 16 | uint32_t(dp) << 21 |
           uint32_t(pr ? 1 : 0) << 26;
  }
  bool operator==(const Tuple& o) const { return Code() == o.Code(); }
  bool Zero() const { return Code() == 0; }
  // A table can hold a record iff the table's masks are no longer than the
  // record's common prefixes in every field: then the record's lower bound
  // and every value of its ranges agree under the masks, so a matching
  // packet always hashes to the record's bucket.
  bool Covers(const Tuple& rule) const {
    return s <= rule.s && d <= rule.d && sp <= rule.sp && dp <= rule.dp && pr <= rule.pr;
  }
  int Specificity() const { return s + d + sp + dp + pr; }
};

inline int Lcp(uint32_t lo, uint32_t hi) {
  const uint32_t x = lo ^ hi;
  return x ? __builtin_clz(x) : 32;
}
inline int Lcp(u128 lo, u128 hi) {
  const u128 x = lo ^ hi;
  const uint64_t top = uint64_t(x >> 64), bottom = uint64_t(x);
  if (top) return __builtin_clzll(top);
  return bottom ? 64 + __builtin_clzll(bottom) : 128;
}
inline int Lcp16(uint16_t lo, uint16_t hi) {
  const uint32_t x = uint32_t(lo ^ hi);
  return x ? __builtin_clz(x) - 16 : 16;
}

template <typename Addr, int kBits>
Addr PrefixMask(int len) {
  // Shift in at least `unsigned` so uint16_t does not promote to int.
  using W = std::conditional_t<(sizeof(Addr) < sizeof(unsigned)), unsigned, Addr>;
  return len == 0 ? Addr(0) : Addr(W(~W(0)) << (kBits - len));
}

template <typename Rec>
Tuple NaturalTuple(const Rec& r) {
  using F = Family<Rec>;
  Tuple t;
  t.s = uint8_t(Lcp(F::SrcLo(r), F::SrcHi(r)));
  t.d = uint8_t(Lcp(F::DstLo(r), F::DstHi(r)));
  t.sp = uint8_t(Lcp16(r.c.sport_lo, r.c.sport_hi));
  t.dp = uint8_t(Lcp16(r.c.dport_lo, r.c.dport_hi));
  t.pr = r.c.proto_lo == r.c.proto_hi ? 8 : 0;
  return t;
}

// The table a group of records opens first: address lengths snapped down to
// a coarse grid, ports and protocol not hashed. This is TupleMerge's
// relaxation pushed further than the paper's (which keeps exact ports and
// trims lengths by a few bits): every table costs every lookup a probe, so
// here the table count is what is minimised, and the records that collide
// too much under a coarse tuple escape to their exact tuple instead.
template <int kBits>
uint8_t Snap(uint8_t len) {
  // IPv4 grid {0, 16, 24}; IPv6 {0, 32, 48, 64}.
  if (kBits == 32) return len >= 24 ? 24 : len >= 16 ? 16 : 0;
  return len >= 64 ? 64 : len >= 48 ? 48 : len >= 32 ? 32 : 0;
}

template <int kBits>
Tuple Relax(Tuple t) {
  Tuple r;
  r.s = Snap<kBits>(t.s);
  r.d = Snap<kBits>(t.d);
  return r;
}

// ---------------------------------------------------------------- entries

// Entry flags: two bits of semantics, six of displacement (how far the
// entry sits past its home slot; kDispUnknown when that does not fit).
enum EntryFlags : uint8_t {
  kEntryNeedsL4 = 1 << 0,  // the record's kRuleNeedsL4
  kEntryVerify = 1 << 1,   // the entry is a filter: check the full record
};
constexpr int kDispShift = 2;
constexpr uint32_t kDispUnknown = 63;
constexpr uint32_t kEmpty = UINT32_MAX;  // index of an empty slot

// v in [lo, lo + width] with one subtraction and one unsigned comparison.
template <typename T>
inline uint32_t InRange(T v, T lo, T width) {
  return uint32_t(T(v - lo) <= width);
}

// The part of a bucket entry common to both families: ports, protocol,
// conntrack mask and the L4 requirement, i.e. what decides almost every
// comparison besides the addresses. iif/oif/icmp/tcp flags are usually
// wildcards; when a record uses one, kEntryVerify sends the comparison on to
// the full record. Ranges are stored as (lo, hi - lo).
struct EntryTail {
  uint16_t sp_lo = 0, sp_w = 0, dp_lo = 0, dp_w = 0;
  uint8_t pr_lo = 0, pr_w = 0, ct_mask = 0, flags = 0;
  uint32_t index = kEmpty;

  // iif/oif count as wildcards when they span the classifier's whole
  // interface domain [0, max_iif] / [0, max_oif] (see TupleMerge::Lookup).
  void Set(const RuleCommon& c, uint32_t i, bool verify, uint32_t disp, uint16_t max_iif,
           uint16_t max_oif) {
    sp_lo = c.sport_lo, sp_w = uint16_t(c.sport_hi - c.sport_lo);
    dp_lo = c.dport_lo, dp_w = uint16_t(c.dport_hi - c.dport_lo);
    pr_lo = c.proto_lo, pr_w = uint8_t(c.proto_hi - c.proto_lo);
    ct_mask = c.ct_state_mask;
    index = i;
    const bool tcp_trivial =
        c.tcp_flags_mask == 0 && c.tcp_flags_value == 0 && !(c.flags & kRuleTcpFlagsInvert);
    const bool rest_trivial = c.iif_lo == 0 && c.iif_hi == max_iif && c.oif_lo == 0 &&
                              c.oif_hi == max_oif && c.icmp_lo == 0 && c.icmp_hi == 0xffff;
    flags = uint8_t(((c.flags & kRuleNeedsL4) ? kEntryNeedsL4 : 0) |
                    (verify || !tcp_trivial || !rest_trivial ? kEntryVerify : 0) |
                    std::min(disp, kDispUnknown) << kDispShift);
  }
  uint32_t disp() const { return flags >> kDispShift; }
  // Branch-free on purpose: the outcome of each comparison is random, so
  // short-circuit evaluation would cost a misprediction per field.
  uint32_t Match(const KeyCommon& k) const {
    return InRange<uint16_t>(k.sport, sp_lo, sp_w) & InRange<uint16_t>(k.dport, dp_lo, dp_w) &
           InRange<uint8_t>(k.proto, pr_lo, pr_w) & ((k.ct_state & ct_mask) != 0) &
           ((k.flags | ~flags) & kEntryNeedsL4);
  }
};

template <typename Rec>
struct Entry;

// Two IPv4 entries per cache line.
template <>
struct Entry<RuleRecord4> {
  uint32_t src_lo = 0, src_w = 0, dst_lo = 0, dst_w = 0;
  EntryTail t;

  void Set(const RuleRecord4& r, uint32_t i, uint32_t disp, uint16_t max_iif, uint16_t max_oif) {
    src_lo = r.src_lo, src_w = r.src_hi - r.src_lo;
    dst_lo = r.dst_lo, dst_w = r.dst_hi - r.dst_lo;
    t.Set(r.c, i, false, disp, max_iif, max_oif);
  }
  uint32_t Match(const PacketKey4& k) const {
    return InRange(k.src, src_lo, src_w) & InRange(k.dst, dst_lo, dst_w) & t.Match(k.c);
  }
};
static_assert(sizeof(Entry<RuleRecord4>) == 32, "two v4 entries per cache line");

// IPv6: the top 64 bits of each address range. They are an exact test when
// the range is a prefix of at most /64 (the common case), else a filter in
// front of the full record.
template <>
struct Entry<RuleRecord6> {
  uint64_t src_lo = 0, src_w = 0, dst_lo = 0, dst_w = 0;
  EntryTail t;

  void Set(const RuleRecord6& r, uint32_t i, uint32_t disp, uint16_t max_iif, uint16_t max_oif) {
    const u128 sl = LoadWords(r.src_lo), sh = LoadWords(r.src_hi);
    const u128 dl = LoadWords(r.dst_lo), dh = LoadWords(r.dst_hi);
    src_lo = uint64_t(sl >> 64), src_w = uint64_t(sh >> 64) - src_lo;
    dst_lo = uint64_t(dl >> 64), dst_w = uint64_t(dh >> 64) - dst_lo;
    const bool exact = uint64_t(sl) == 0 && uint64_t(sh) == ~0ULL && uint64_t(dl) == 0 &&
                       uint64_t(dh) == ~0ULL;
    t.Set(r.c, i, !exact, disp, max_iif, max_oif);
  }
  uint32_t Match(const PacketKey6& k) const {
    const uint64_t s = (uint64_t(k.src[0]) << 32) | k.src[1];
    const uint64_t d = (uint64_t(k.dst[0]) << 32) | k.dst[1];
    return InRange(s, src_lo, src_w) & InRange(d, dst_lo, dst_w) & t.Match(k.c);
  }
};
static_assert(sizeof(Entry<RuleRecord6>) == 48, "v6 entry layout");

// A record that matches every key except, possibly, by interface (the
// policy, typically: the compiler writes an interface wildcard as the range
// of its interface classes) is kept out of the tables: checking its two
// interface ranges per key gives an upper bound on the answer for free.
template <typename Rec>
bool IsDefault(const Rec& r) {
  using F = Family<Rec>;
  using A = typename F::Addr;
  const RuleCommon& c = r.c;
  return F::SrcLo(r) == 0 && F::SrcHi(r) == A(~A(0)) && F::DstLo(r) == 0 &&
         F::DstHi(r) == A(~A(0)) && c.sport_lo == 0 && c.sport_hi == 0xffff && c.dport_lo == 0 &&
         c.dport_hi == 0xffff && c.icmp_lo == 0 && c.icmp_hi == 0xffff && c.proto_lo == 0 &&
         c.proto_hi == 0xff && c.tcp_flags_mask == 0 && c.tcp_flags_value == 0 &&
         (c.ct_state_mask & kCtAny) == kCtAny && !(c.flags & (kRuleNeedsL4 | kRuleTcpFlagsInvert));
}

// ------------------------------------------------------------- build maps

// Open-addressed map from a 64-bit bucket hash to the number of records in
// that bucket; the build consults it once per (record, candidate table).
class CountMap {
 public:
  CountMap() { Rehash(16); }
  // Adds one to the count of h unless it already reached `limit`.
  bool TryIncrement(uint64_t h, uint32_t limit) {
    size_t i = Find(h);
    if (counts_[i] == 0) {
      if ((used_ + 1) * 2 > keys_.size()) {
        Rehash(keys_.size() * 2);
        i = Find(h);
      }
      keys_[i] = h;
      counts_[i] = 1;
      ++used_;
      return true;
    }
    if (counts_[i] >= limit) return false;
    ++counts_[i];
    return true;
  }
  size_t size() const { return used_; }

 private:
  size_t Find(uint64_t h) const {
    const size_t mask = keys_.size() - 1;
    size_t i = size_t(h ^ (h >> 29)) & mask;
    while (counts_[i] != 0 && keys_[i] != h) i = (i + 1) & mask;
    return i;
  }
  void Rehash(size_t n) {
    std::vector<uint64_t> keys(n);
    std::vector<uint32_t> counts(n, 0);
    keys.swap(keys_);
    counts.swap(counts_);
    for (size_t i = 0; i < keys.size(); ++i) {
      if (counts[i] == 0) continue;
      const size_t j = Find(keys[i]);
      keys_[j] = keys[i];
      counts_[j] = counts[i];
    }
  }
  std::vector<uint64_t> keys_;
  std::vector<uint32_t> counts_;
  size_t used_ = 0;
};

inline void Prefetch(const void* p) { __builtin_prefetch(p, 0, 3); }

// The filter: one bit array per table, one bit per bucket (a Bloom filter
// with k = 1), the bit index being the top bits of the filter hash. Sized at
// 16 to 32 bits per bucket (a power of two, at least one 32-bit word), which
// gives 3-6% false positives for one load, a shift and a test -- cheaper
// than two bits per bucket at the same rate, and one 32-bit gather per eight
// keys in the vector pass.
constexpr uint32_t kFilterBitsPerBucket = 16;
inline uint32_t FilterIndex(uint32_t h, uint32_t shift) { return uint32_t(uint64_t(h) >> shift); }
inline uint32_t FilterTest(const uint32_t* filter, uint32_t idx) {
  return (filter[idx >> 5] >> (idx & 31)) & 1;
}
// Home slot from the slot hash: multiply-shift range reduction, so the slot
// array needs no power-of-two size.
inline uint32_t Reduce(uint64_t h, uint32_t n) { return uint32_t(((h >> 32) * n) >> 32); }

// Keys per batch step: enough candidates in flight to keep the memory
// system busy, few enough that the per-key state stays in L1.
constexpr size_t kBatch = 64;
// Tables per candidate pass: bounds the candidate buffers (on the stack,
// since lookups run concurrently) while keeping early termination between
// passes.
constexpr size_t kTablesPerPass = 16;
constexpr size_t kCandidates = kBatch * kTablesPerPass + 16;  // + one vector of slack

// The hashed words of a Words<Rec> in order (word w is multiplied by
// kC[w] in FilterHash), for the vector filter pass.
template <typename W>
inline void Flatten(const W& w, uint32_t* out) {
  static_assert(sizeof(W) == sizeof(uint32_t) * W::kWords, "Words is its hashed words");
  std::memcpy(out, &w, sizeof(W));
}

// The keys of a batch, one array per hashed word, for the vector filter
// pass.
template <int kWords>
struct Columns {
  alignas(64) uint32_t word[kWords][kBatch];
  alignas(64) uint32_t start[kBatch];
  alignas(64) uint32_t best[kBatch];
};

#if defined(__x86_64__) && defined(__GNUC__)
#define FLATWALL_HAVE_AVX2 1
bool CpuHasAvx2() {
  static const bool has = __builtin_cpu_supports("avx2");
  return has;
}

#define FLATWALL_AVX2 __attribute__((target("avx2,popcnt")))

// For each 8-bit mask, the lanes whose bit is set, packed low, as nibbles:
// the permutation that compacts a vector by that mask.
struct CompactTable {
  uint32_t perm[256];
  CompactTable() {
    for (uint32_t m = 0; m < 256; ++m) {
      uint32_t p = 0, n = 0;
      for (uint32_t lane = 0; lane < 8; ++lane)
        if (m >> lane & 1) p |= lane << (4 * n++);
      perm[m] = p;
    }
  }
};
const CompactTable kCompact;

FLATWALL_AVX2 inline __m256i HashColumn(const uint32_t* col, uint32_t mask, uint32_t mul) {
  const __m256i v = _mm256_and_si256(_mm256_load_si256(reinterpret_cast<const __m256i*>(col)),
                                     _mm256_set1_epi32(int(mask)));
  return _mm256_mullo_epi32(v, _mm256_set1_epi32(int(mul)));
}

// The filter pass of one table over a batch, eight keys per step:
// bit-identical to FilterHash/FilterIndex/FilterTest, and appends the ids of
// the keys that pass (id_base + key) to `out` through a compaction
// permutation, without a branch per key. Lanes past m hold zeros; their
// filter index is in bounds like any other (it is below the filter's size
// by construction) and their result is masked off.
template <int kWords>
FLATWALL_AVX2 uint32_t FilterPass256(const Columns<kWords>& kc, size_t m, const uint32_t* mk,
                                     const uint32_t* filter, uint32_t shift, uint32_t min_index,
                                     uint32_t max_index, uint32_t id_base, uint32_t* out) {
  const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i nibble = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
  const __m256i low4 = _mm256_set1_epi32(15), low5 = _mm256_set1_epi32(31);
  const __m256i sign = _mm256_set1_epi32(int(0x80000000u));
  // Unsigned comparisons as signed ones on sign-flipped values.
  const __m256i maxi = _mm256_set1_epi32(int(max_index ^ 0x80000000u));
  const __m256i mini = _mm256_set1_epi32(int(min_index ^ 0x80000000u));
  const __m128i wshift = _mm_cvtsi32_si128(int(shift));
  uint32_t n = 0;
  for (size_t b = 0; b < m; b += 8) {
    __m256i h = HashColumn(kc.word[0] + b, mk[0], kC[0]);
    for (int w = 1; w < kWords; ++w) h = _mm256_xor_si256(h, HashColumn(kc.word[w] + b, mk[w], kC[w]));
    const __m256i idx = _mm256_srl_epi32(h, wshift);  // a shift of 32 gives bit 0
    const __m256i words = _mm256_i32gather_epi32(reinterpret_cast<const int*>(filter),
                                                 _mm256_srli_epi32(idx, 5), 4);
    // The filter bit moved to the sign bit of its lane.
    const __m256i hit = _mm256_sllv_epi32(words, _mm256_sub_epi32(low5, _mm256_and_si256(idx, low5)));
    const __m256i start = _mm256_xor_si256(
        _mm256_load_si256(reinterpret_cast<const __m256i*>(kc.start + b)), sign);
    const __m256i best = _mm256_xor_si256(
        _mm256_load_si256(reinterpret_cast<const __m256i*>(kc.best + b)), sign);
    const __m256i ok = _mm256_andnot_si256(_mm256_cmpgt_epi32(start, maxi),
                                           _mm256_and_si256(hit, _mm256_cmpgt_epi32(best, mini)));
    uint32_t pass = uint32_t(_mm256_movemask_ps(_mm256_castsi256_ps(ok)));
    if (m - b < 8) pass &= (1u << (m - b)) - 1;
    const __m256i perm = _mm256_and_si256(
        _mm256_srlv_epi32(_mm256_set1_epi32(int(kCompact.perm[pass])), nibble), low4);
    const __m256i ids = _mm256_add_epi32(iota, _mm256_set1_epi32(int(id_base + b)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + n), _mm256_permutevar8x32_epi32(ids, perm));
    n += uint32_t(__builtin_popcount(pass));
  }
  return n;
}
#endif

// ------------------------------------------------------------- classifier

template <typename Rec>
class TupleMerge final : public Classifier<Rec, typename Family<Rec>::Key> {
  using F = Family<Rec>;
  using Key = typename F::Key;
  using Addr = typename F::Addr;
  using E = Entry<Rec>;
  using W = Words<Rec>;
  static constexpr int kBits = F::kAddrBits;
  // Slots per entry: a load factor of 1/2 keeps runs to a couple of entries.
  static constexpr uint32_t kSlotsPerEntry = 2;
  static constexpr size_t kTreeBudgetFactor = 4;
  // Defaults are checked for every key; more than a few (a table of
  // per-interface policies, say) go to the trees like any other record.
  static constexpr size_t kMaxDefaults = 4;
  // Priority bands: the first at least kFirstBand records, then each band 8
  // times the previous one (see FirstBand).
  static constexpr uint32_t kFirstBand = 4096;
  static constexpr uint32_t kMaxFirstBand = 65536;
  static constexpr uint32_t kBandGrowth = 8;

  struct Table {
    W masks;
    const uint32_t* filter = nullptr;
    const E* entries = nullptr;
    uint32_t shift = 27;  // filter bit = filter hash >> shift
    uint32_t nslots = 0;
    uint32_t min_index = 0, max_index = 0;
  };

  // The records [begin, end) with their own tables (ascending min_index)
  // and fallback tree.
  struct Band {
    uint32_t begin = 0, end = 0;
    uint32_t first_table = 0, end_table = 0;
    SplitTree<Rec> tree;
  };

  struct Default {
    uint32_t index;
    uint16_t iif_lo, iif_hi, oif_lo, oif_hi;
  };

 public:
  TupleMerge(const Rec* records, uint32_t count, const TupleMergeParams& params)
      : recs_(records, records + count) {
    const auto t0 = std::chrono::steady_clock::now();
    Build(params);
    Finish(t0, params.simd);
  }

  // From an image section (classifier/image.h) over `count` records copied
  // from `records` (possibly unaligned). Throws ImageError.
  TupleMerge(const void* records, uint32_t count, ImageReader* in, bool simd) {
    const auto t0 = std::chrono::steady_clock::now();
    recs_.resize(count);
    if (count) std::memcpy(recs_.data(), records, size_t(count) * sizeof(Rec));
    Load(in);
    Finish(t0, simd);
  }

  void SaveImage(ImageWriter* w) const override;

  // No record names an interface id above max_iif_/max_oif_, so a key
  // beyond them matches nothing; every other key satisfies a record whose
  // interface range is [0, max], which is what lets entries treat such a
  // range (the compiler's interface wildcard) as no condition at all.
  bool OutOfDomain(const Key& k) const { return k.c.iif > max_iif_ || k.c.oif > max_oif_; }

  uint32_t Lookup(const Key& k, uint32_t start) const override {
    if (OutOfDomain(k)) return kNoMatch;
    uint32_t best = DefaultFor(k, start);
    const W w = W::Of(k);
    for (const Band& b : bands_) {
      if (b.begin >= best) break;  // bands ascend: nothing later can win
      if (b.end <= start) continue;
      if (!b.tree.empty() && b.tree.min_index() < best && b.tree.max_index() >= start)
        best = b.tree.Lookup(recs_.data(), k, start, best);
      for (uint32_t ti = b.first_table; ti < b.end_table; ++ti) {
        const Table& t = tables_[ti];
        if (t.min_index >= best) break;  // a band's tables ascend by min_index
        if (t.max_index < start) continue;
        const uint32_t h = w.FilterHash(t.masks);
        if (!FilterTest(t.filter, FilterIndex(h, t.shift))) continue;
        best = ScanRun(t, Reduce(w.SlotHash(t.masks), t.nslots), k, start, best);
      }
    }
    return best;
  }

  void LookupBatch(const Key* keys, const uint32_t* starts, uint32_t* out,
                   size_t n) const override {
    for (size_t base = 0; base < n; base += kBatch) {
      const size_t m = std::min(kBatch, n - base);
      LookupChunk(keys + base, starts ? starts + base : nullptr, out + base, m);
    }
  }

  const Rec& record(uint32_t i) const override { return recs_[i]; }
  uint32_t size() const override { return uint32_t(recs_.size()); }
  const BuildStats& stats() const override { return stats_; }

 private:
  // The first default record at or after start that takes k's interfaces:
  // an upper bound on the answer that no table needs to store.
  uint32_t DefaultFor(const Key& k, uint32_t start) const {
    for (const Default& d : defaults_) {
      if (d.index >= start && k.c.iif >= d.iif_lo && k.c.iif <= d.iif_hi &&
          k.c.oif >= d.oif_lo && k.c.oif <= d.oif_hi)
        return d.index;
    }
    return kNoMatch;
  }

  // Entries sit in home order (a bucket's entries contiguous and ascending
  // by index) from their home slot on, each tagged with its displacement,
  // so the run scan knows which entries are this bucket's and stops at the
  // first entry homed further on, or at an empty slot.
  uint32_t ScanRun(const Table& t, uint32_t home, const Key& k, uint32_t start,
                   uint32_t best) const {
    const E* base = t.entries;
    for (uint32_t pos = home;; ++pos) {
      const E& e = base[pos];
      const uint32_t i = e.t.index;
      if (i == kEmpty) return best;
      const uint32_t disp = e.t.disp();
      if (disp != kDispUnknown) {
        const uint32_t h = pos - disp;
        if (h < home) continue;
        if (h > home || i >= best) return best;
      } else if (i >= best) {
        continue;  // home unknown: cannot stop on it, only skip it
      }
      if ((uint32_t(i >= start) & e.Match(k)) &&
          (!(e.t.flags & kEntryVerify) || Matches(recs_[i], k))) {
        best = i;
        if (disp != kDispUnknown) return best;
      }
    }
  }

  // Stage (1) for one table: which of the m active keys pass its filter
  // and could still improve (start <= max_index, min_index < best).
  uint32_t FilterPass(const Table& t, uint32_t ti, const W* w, const uint32_t* start,
                      const uint32_t* best, size_t m, const Columns<W::kWords>& columns,
                      uint32_t* out) const {
#ifdef FLATWALL_HAVE_AVX2
    if (vector_) {
      uint32_t masks[W::kWords];
      Flatten(t.masks, masks);
      return FilterPass256<W::kWords>(columns, m, masks, t.filter, t.shift, t.min_index,
                                      t.max_index, ti << 8, out);
    }
#endif
    uint32_t n = 0;
    for (size_t j = 0; j < m; ++j) {
      const uint32_t h = w[j].FilterHash(t.masks);
      const bool pass = FilterTest(t.filter, FilterIndex(h, t.shift)) &
                        (start[j] <= t.max_index) & (best[j] > t.min_index);
      out[n] = ti << 8 | uint32_t(j);
      n += pass;
    }
    return n;
  }

  // Band by band, for the keys a band can still improve: the band's tree,
  // then three stages over its tables. (1) For every table and key, hash
  // and test the table's filter, small enough to stay in cache, and collect
  // the survivors without branching. (2) Prefetch the home slot of every
  // candidate: the only likely misses to DRAM, all in flight together. (3)
  // Scan the candidates' runs. A key leaves as soon as its best match
  // precedes the next band, which on real rule sets, whose broad rules come
  // early, spares most keys the big bands entirely.
  void LookupChunk(const Key* k, const uint32_t* starts, uint32_t* best, size_t m) const {
    W w_all[kBatch];
    uint32_t start_all[kBatch];
    for (size_t i = 0; i < m; ++i) {
      // An out-of-domain key gets start = kNoMatch: no band takes it.
      start_all[i] = OutOfDomain(k[i]) ? kNoMatch : starts ? starts[i] : 0;
      best[i] = DefaultFor(k[i], start_all[i]);
      w_all[i] = W::Of(k[i]);
    }
    // The active keys of the current band, compacted: j indexes these.
    uint32_t act[kBatch];
    W w[kBatch];
    uint32_t start[kBatch], bbest[kBatch];
    Columns<W::kWords> columns{};  // lanes past the active keys must hold something
    uint32_t cand[kCandidates];
    uint32_t home[kCandidates];
    for (const Band& b : bands_) {
      // Compacted without branches: which keys are still open is random.
      size_t na = 0;
      uint32_t any_later = 0;
      for (size_t i = 0; i < m; ++i) {
        const uint32_t open = uint32_t(best[i] > b.begin);
        any_later |= open;
        act[na] = uint32_t(i);
        na += open & uint32_t(start_all[i] < b.end);
      }
      if (!any_later) break;
      if (na == 0) continue;
      if (!b.tree.empty()) {
        for (size_t j = 0; j < na; ++j) {
          const uint32_t i = act[j];
          if (b.tree.min_index() < best[i] && b.tree.max_index() >= start_all[i])
            best[i] = b.tree.Lookup(recs_.data(), k[i], start_all[i], best[i]);
        }
      }
      for (size_t j = 0; j < na; ++j) {
        w[j] = w_all[act[j]];
        start[j] = start_all[act[j]];
      }
      if (vector_) {
        for (size_t j = 0; j < na; ++j) {
          uint32_t flat[W::kWords];
          Flatten(w[j], flat);
          for (int wi = 0; wi < W::kWords; ++wi) columns.word[wi][j] = flat[wi];
          columns.start[j] = start[j];
        }
      }
      uint32_t worst = 0;  // the largest best of the band's active keys
      for (size_t j = 0; j < na; ++j) {
        bbest[j] = best[act[j]];
        worst = std::max(worst, bbest[j]);
      }
      if (vector_)
        for (size_t j = 0; j < na; ++j) columns.best[j] = bbest[j];
      for (uint32_t t0 = b.first_table; t0 < b.end_table; t0 += uint32_t(kTablesPerPass)) {
        const uint32_t t1 = std::min<uint32_t>(b.end_table, t0 + uint32_t(kTablesPerPass));
        uint32_t nc = 0;
        for (uint32_t ti = t0; ti < t1; ++ti) {
          // The band's tables ascend by min_index: past `worst`, none helps.
          if (tables_[ti].min_index >= worst) break;
          nc += FilterPass(tables_[ti], ti, w, start, bbest, na, columns, cand + nc);
        }
        for (uint32_t c = 0; c < nc; ++c) {
          const Table& t = tables_[cand[c] >> 8];
          home[c] = Reduce(w[cand[c] & 0xff].SlotHash(t.masks), t.nslots);
          Prefetch(&t.entries[home[c]]);
        }
        worst = 0;
        for (uint32_t c = 0; c < nc; ++c) {
          const Table& t = tables_[cand[c] >> 8];
          const uint32_t j = cand[c] & 0xff, i = act[j];
          if (t.min_index >= best[i]) continue;
          best[i] = ScanRun(t, home[c], k[i], start_all[i], best[i]);
        }
        for (size_t j = 0; j < na; ++j) {
          bbest[j] = best[act[j]];
          worst = std::max(worst, bbest[j]);
        }
        if (vector_)
          for (size_t j = 0; j < na; ++j) columns.best[j] = bbest[j];
      }
    }
  }

  void Build(const TupleMergeParams& params);
  void Load(ImageReader* in);
  void Finish(std::chrono::steady_clock::time_point t0, bool simd);
  uint64_t FirstBand() const;
  void BuildBand(Band& band, const std::vector<uint32_t>& records,
                 const TupleMergeParams& params);

  HugeVector<Rec> recs_;
  std::vector<Band> bands_;
  std::vector<Table> tables_;  // band by band
  HugeVector<uint32_t> filters_;
  HugeVector<E> entries_;
  std::vector<Default> defaults_;  // ascending, at most kMaxDefaults
  uint16_t max_iif_ = 0, max_oif_ = 0;
  BuildStats stats_;
  bool vector_ = false;
};

template <typename Rec>
void TupleMerge<Rec>::Build(const TupleMergeParams& params) {
  const uint32_t n = uint32_t(recs_.size());
  for (const Rec& r : recs_) {
    max_iif_ = std::max(max_iif_, r.c.iif_hi);
    max_oif_ = std::max(max_oif_, r.c.oif_hi);
  }
  // Defaults bound the answer and need no table.
  std::vector<uint32_t> rest;
  rest.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    if (IsDefault(recs_[i]) && defaults_.size() < kMaxDefaults) {
      const RuleCommon& c = recs_[i].c;
      defaults_.push_back({i, c.iif_lo, c.iif_hi, c.oif_lo, c.oif_hi});
    } else {
      rest.push_back(i);
    }
  }
  // Cut the rest into bands, each built into the shared arrays in turn.
  uint64_t begin = 0, size = FirstBand();
  size_t r = 0;
  while (begin < n) {
    const uint64_t end = std::min<uint64_t>(n, begin + size);
    Band band;
    band.begin = uint32_t(begin);
    band.end = uint32_t(end);
    std::vector<uint32_t> records;
    while (r < rest.size() && rest[r] < end) records.push_back(rest[r++]);
    if (!records.empty()) {
      BuildBand(band, records, params);
      bands_.push_back(std::move(band));
    }
    begin = end;
    size *= kBandGrowth;
  }
  // The tables point into filters_ and entries_, which only now stop
  // moving: trim the growth slack, then resolve the offsets the band
  // builds left in the pointers.
  filters_.shrink_to_fit();
  entries_.shrink_to_fit();
  tables_.shrink_to_fit();
  for (Table& t : tables_) {
    t.filter = filters_.data() + reinterpret_cast<uintptr_t>(t.filter);
    t.entries = entries_.data() + reinterpret_cast<uintptr_t>(t.entries);
  }
}

template <typename Rec>
void TupleMerge<Rec>::Finish(std::chrono::steady_clock::time_point t0, bool simd) {
  stats_.build_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  stats_.records = uint32_t(recs_.size());
  stats_.algorithm = "tuplemerge";
  size_t bytes = sizeof(*this) + HugeAllocator<Rec>::Footprint(recs_.capacity()) +
                 tables_.capacity() * sizeof(Table) + bands_.capacity() * sizeof(Band) +
                 HugeAllocator<uint32_t>::Footprint(filters_.capacity()) +
                 HugeAllocator<E>::Footprint(entries_.capacity()) +
                 defaults_.capacity() * sizeof(Default);
  for (const Band& b : bands_) bytes += b.tree.memory_bytes();
  stats_.memory_bytes = bytes;
  stats_.tables = uint32_t(tables_.size());
  stats_.fallback_records = 0;
  for (const Band& b : bands_) {
    if (!b.tree.empty()) {
      stats_.tables += 1;
      stats_.fallback_records += b.tree.size();
    }
  }
#ifdef FLATWALL_HAVE_AVX2
  vector_ = simd && CpuHasAvx2();
#endif
}

// ------------------------------------------------------------------ image
//
// The section layout is Save's sequence of writes; Load reads it back in
// the same order and checks, before any lookup can run, every invariant
// that keeps a lookup inside its arrays (image.h lists them). The filters
// and the slot arrays, nearly all of the bytes, are one bulk copy each.

template <typename Rec>
void TupleMerge<Rec>::SaveImage(ImageWriter* w) const {
  w->U32(uint32_t(ImageAlgorithm::kTupleMerge));
  w->U32(uint32_t(recs_.size()));
  w->U32(uint32_t(max_iif_) | uint32_t(max_oif_) << 16);
  w->U32(uint32_t(defaults_.size()));
  for (const Default& d : defaults_) {
    w->U32(d.index);
    w->U32(uint32_t(d.iif_lo) | uint32_t(d.iif_hi) << 16);
    w->U32(uint32_t(d.oif_lo) | uint32_t(d.oif_hi) << 16);
  }
  w->U32(uint32_t(bands_.size()));
  for (const Band& b : bands_) {
    w->U32(b.begin);
    w->U32(b.end);
    w->U32(b.first_table);
    w->U32(b.end_table);
    b.tree.Save(w);
  }
  w->U32(uint32_t(tables_.size()));
  for (const Table& t : tables_) {
    uint32_t masks[W::kWords];
    Flatten(t.masks, masks);
    w->Raw(masks, sizeof masks);
    w->U64(uint64_t(t.filter - filters_.data()));
    w->U64(uint64_t(t.entries - entries_.data()));
    w->U32(t.shift);
    w->U32(t.nslots);
    w->U32(t.min_index);
    w->U32(t.max_index);
  }
  w->Array(filters_.data(), filters_.size());
  w->Array(entries_.data(), entries_.size());
}

template <typename Rec>
void TupleMerge<Rec>::Load(ImageReader* in) {
  const uint32_t n = uint32_t(recs_.size());
  ImageCheck(in->U32("classifier record count") == n, "classifier",
             "record count differs from the table's");
  const uint32_t ifs = in->U32("interface domain");
  max_iif_ = uint16_t(ifs), max_oif_ = uint16_t(ifs >> 16);
  const uint32_t nd = in->Count("defaults", 12);
  ImageCheck(nd <= kMaxDefaults, "defaults", "more than the classifier keeps");
  for (uint32_t i = 0; i < nd; ++i) {
    Default d;
    d.index = in->U32("default");
    const uint32_t iif = in->U32("default"), oif = in->U32("default");
    d.iif_lo = uint16_t(iif), d.iif_hi = uint16_t(iif >> 16);
    d.oif_lo = uint16_t(oif), d.oif_hi = uint16_t(oif >> 16);
    ImageCheck(d.index < n, "default", "record index out of range");
    defaults_.push_back(d);
  }
  const uint32_t nb = in->Count("bands", 32);
  bands_.resize(nb);
  for (Band& b : bands_) {
    b.begin = in->U32("band");
    b.end = in->U32("band");
    b.first_table = in->U32("band");
    b.end_table = in->U32("band");
    b.tree.Load(in, n);
  }
  constexpr size_t kTableBytes = sizeof(uint32_t) * W::kWords + 2 * sizeof(uint64_t) + 4 * sizeof(uint32_t);
  const uint32_t nt = in->Count("tables", kTableBytes);
  // LookupChunk packs a table number and a key slot into one word (ti << 8).
  ImageCheck(nt < (1u << 24), "tables", "too many");
  struct Offsets {
    uint64_t filter, entries;
  };
  std::vector<Offsets> offsets(nt);
  tables_.resize(nt);
  for (uint32_t i = 0; i < nt; ++i) {
    Table& t = tables_[i];
    uint32_t masks[W::kWords];
    in->Raw(masks, sizeof masks, "table masks");
    std::memcpy(&t.masks, masks, sizeof masks);
    offsets[i].filter = in->U64("table");
    offsets[i].entries = in->U64("table");
    t.shift = in->U32("table");
    t.nslots = in->U32("table");
    t.min_index = in->U32("table");
    t.max_index = in->U32("table");
  }
  in->Array(&filters_, "filters");
  in->Array(&entries_, "slot arrays");
  for (const Band& b : bands_)
    ImageCheck(b.first_table <= b.end_table && b.end_table <= nt, "band", "table range out of range");
  // Every run scan ends at an empty slot; the array's last slot is one, so
  // no scan, from any home of any table, can leave the array.
  ImageCheck(nt == 0 || (!entries_.empty() && entries_.back().t.index == kEmpty), "slot arrays",
             "do not end in an empty slot");
  for (uint32_t i = 0; i < nt; ++i) {
    Table& t = tables_[i];
    // The filter has 2^(32 - shift) bits, at least one word (Build).
    ImageCheck(t.shift <= 27, "table", "filter shift out of range");
    const uint64_t words = uint64_t(1) << (27 - t.shift);
    ImageCheck(offsets[i].filter <= filters_.size() && words <= filters_.size() - offsets[i].filter,
               "table", "filter outside the filter array");
    ImageCheck(offsets[i].entries <= entries_.size() &&
                   uint64_t(t.nslots) < entries_.size() - offsets[i].entries,
               "table", "slots outside the slot array");
    t.filter = filters_.data() + offsets[i].filter;
    t.entries = entries_.data() + offsets[i].entries;
  }
  for (const E& e : entries_)
    ImageCheck(e.t.index == kEmpty || e.t.index < n, "slot", "record index out of range");
}

// Where the first band ends decides how many keys never leave it. A record
// that is a wildcard in both addresses and both ports ("-p tcp -j ...")
// answers every key of its protocol that gets that far, so the first band
// reaches past the first such record when it comes early enough (on
// ClassBench-like acl sets, one at ~1.4k answers ~90% of targeted keys).
template <typename Rec>
uint64_t TupleMerge<Rec>::FirstBand() const {
  using A = typename F::Addr;
  const uint32_t n = uint32_t(std::min<size_t>(recs_.size(), kMaxFirstBand));
  for (uint32_t i = 0; i < n; ++i) {
    const Rec& r = recs_[i];
    const RuleCommon& c = r.c;
    if (F::SrcLo(r) == 0 && F::SrcHi(r) == A(~A(0)) && F::DstLo(r) == 0 &&
        F::DstHi(r) == A(~A(0)) && c.sport_lo == 0 && c.sport_hi == 0xffff && c.dport_lo == 0 &&
        c.dport_hi == 0xffff) {
      uint64_t size = kFirstBand;
      while (size <= i) size *= 2;
      return size;
    }
  }
  return kFirstBand;
}

template <typename Rec>
void TupleMerge<Rec>::BuildBand(Band& band, const std::vector<uint32_t>& records,
                                const TupleMergeParams& params) {
  const uint32_t limit = std::max<uint32_t>(1, params.collision_limit);
  std::vector<uint64_t> order;
  order.reserve(records.size());
  std::vector<uint32_t> leftovers;
  for (uint32_t i : records) {
    const Tuple nat = NaturalTuple(recs_[i]);
    if (nat.Zero()) leftovers.push_back(i);  // nothing to hash on: the tree's job
    else order.push_back(uint64_t(nat.Code()) << 32 | i);
  }
  // Group the records by exact tuple; big groups choose their tables first.
  std::sort(order.begin(), order.end());
  struct Group {
    uint32_t begin, end;
  };
  std::vector<Group> groups;
  for (uint32_t b = 0; b < order.size();) {
    uint32_t e = b + 1;
    while (e < order.size() && (order[e] >> 32) == (order[b] >> 32)) ++e;
    groups.push_back({b, e});
    b = e;
  }
  std::stable_sort(groups.begin(), groups.end(), [](const Group& a, const Group& b) {
    return a.end - a.begin > b.end - b.begin;
  });

  struct BuildTable {
    Tuple tuple;
    W masks;
    CountMap counts;
    std::vector<uint32_t> rules;
  };
  std::vector<BuildTable> tables;
  std::vector<uint32_t> compat;
  auto find_table = [&](const Tuple& t) -> int {
    for (size_t i = 0; i < tables.size(); ++i)
      if (tables[i].tuple == t) return int(i);
    return -1;
  };
  // Most specific first: the fewest collisions, and coarse tables stay
  // free for the records that only they can take.
  auto sort_compat = [&]() {
    std::stable_sort(compat.begin(), compat.end(), [&](uint32_t a, uint32_t b) {
      return tables[a].tuple.Specificity() > tables[b].tuple.Specificity();
    });
  };
  auto masks_of = [](const Tuple& t) {
    return W::Mask(PrefixMask<Addr, kBits>(t.s), PrefixMask<Addr, kBits>(t.d),
                   Ports(PrefixMask<uint16_t, 16>(t.sp), PrefixMask<uint16_t, 16>(t.dp)),
                   t.pr ? 0xffu : 0u);
  };

  for (const Group& g : groups) {
    const Tuple nat = NaturalTuple(recs_[uint32_t(order[g.begin])]);
    compat.clear();
    for (size_t i = 0; i < tables.size(); ++i)
      if (tables[i].tuple.Covers(nat)) compat.push_back(uint32_t(i));
    sort_compat();
    for (uint32_t o = g.begin; o < g.end; ++o) {
      const uint32_t r = uint32_t(order[o]);
      const W rw = W::Of(recs_[r]);
      bool placed = false;
      for (uint32_t ti : compat) {
        BuildTable& t = tables[ti];
        if (t.counts.TryIncrement(rw.SlotHash(t.masks), limit)) {
          t.rules.push_back(r);
          placed = true;
          break;
        }
      }
      if (placed) continue;
      // Every table that could take r is full where r hashes. Open the
      // relaxed table for r's tuple, else the exact one; past the cap, r
      // goes to the tree.
      if (tables.size() < params.max_tables) {
        const Tuple candidates[2] = {Relax<kBits>(nat), nat};
        for (const Tuple& c : candidates) {
          if (c.Zero() || find_table(c) >= 0) continue;
          BuildTable t;
          t.tuple = c;
          t.masks = masks_of(c);
          t.counts.TryIncrement(rw.SlotHash(t.masks), limit);
          t.rules.push_back(r);
          tables.push_back(std::move(t));
          compat.push_back(uint32_t(tables.size() - 1));
          sort_compat();
          placed = true;
          break;
        }
      }
      if (!placed) leftovers.push_back(r);
    }
  }

  // Lay the band's tables out at the end of the shared arrays. Pointers
  // are stored as offsets until Build() resolves them.
  struct Placed {
    uint32_t home, rule;
  };
  std::vector<Placed> placed;
  std::vector<Table> built;
  std::vector<uint32_t> homes, first;
  for (BuildTable& bt : tables) {
    // Tighten the table to the longest masks all its records allow (the
    // component-wise minimum of their natural tuples; never shorter than
    // the tuple the table opened with, since that one covers them all).
    // Still a valid table, and buckets only split: a coarse table whose
    // records all turn out /24 or exact-port now sends keys that share a
    // /16 but nothing else to an empty bucket, which the filter rejects,
    // instead of to a run of entries that all fail.
    Tuple tight = NaturalTuple(recs_[bt.rules.front()]);
    for (uint32_t r : bt.rules) {
      const Tuple nat = NaturalTuple(recs_[r]);
      tight.s = std::min(tight.s, nat.s);
      tight.d = std::min(tight.d, nat.d);
      tight.sp = std::min(tight.sp, nat.sp);
      tight.dp = std::min(tight.dp, nat.dp);
      tight.pr = std::min(tight.pr, nat.pr);
    }
    bt.masks = masks_of(tight);
    bt.counts = CountMap();
    for (uint32_t r : bt.rules) bt.counts.TryIncrement(W::Of(recs_[r]).SlotHash(bt.masks), UINT32_MAX);
    const size_t buckets = std::max<size_t>(1, bt.counts.size());
    bt.counts = CountMap();
    uint32_t fbits = 5;  // at least one word
    while ((size_t(1) << fbits) < buckets * kFilterBitsPerBucket) ++fbits;
    Table t;
    t.masks = bt.masks;
    t.shift = 32 - fbits;
    t.nslots = uint32_t(bt.rules.size() * kSlotsPerEntry);
    // Home order, ascending index within a home: sort the indices, then a
    // stable counting sort by home (linear; a comparison sort of the pairs
    // was half of the build time at 1M records).
    std::sort(bt.rules.begin(), bt.rules.end());
    homes.resize(bt.rules.size());
    first.assign(size_t(t.nslots) + 1, 0);
    for (size_t i = 0; i < bt.rules.size(); ++i) {
      homes[i] = Reduce(W::Of(recs_[bt.rules[i]]).SlotHash(bt.masks), t.nslots);
      ++first[homes[i] + 1];
    }
    for (uint32_t h = 0; h < t.nslots; ++h) first[h + 1] += first[h];
    placed.resize(bt.rules.size());
    for (size_t i = 0; i < bt.rules.size(); ++i) placed[first[homes[i]]++] = {homes[i], bt.rules[i]};
    std::vector<uint32_t>().swap(bt.rules);

    const size_t filter_at = filters_.size();
    filters_.resize(filter_at + (size_t(1) << (fbits - 5)), 0);
    // Homes are below nslots, but the last run may spill past it: size by
    // whichever ends later, plus one empty slot that ends every scan.
    uint32_t last = 0;
    for (size_t i = 0; i < placed.size(); ++i)
      last = i == 0 ? placed[i].home : std::max(last + 1, placed[i].home);
    const size_t entries_at = entries_.size();
    entries_.resize(entries_at + std::max<size_t>(t.nslots, size_t(last) + 1) + 1, E());
    uint32_t* filter = filters_.data() + filter_at;
    E* entries = entries_.data() + entries_at;
    uint32_t pos = 0, lo = UINT32_MAX, hi = 0;
    for (size_t i = 0; i < placed.size(); ++i) {
      const Placed& p = placed[i];
      pos = i == 0 ? p.home : std::max(pos + 1, p.home);
      const uint32_t h = W::Of(recs_[p.rule]).FilterHash(bt.masks);
      const uint32_t idx = FilterIndex(h, t.shift);
      filter[idx >> 5] |= 1u << (idx & 31);
      entries[pos].Set(recs_[p.rule], p.rule, pos - p.home, max_iif_, max_oif_);
      lo = std::min(lo, p.rule);
      hi = std::max(hi, p.rule);
    }
    t.filter = reinterpret_cast<const uint32_t*>(uintptr_t(filter_at));
    t.entries = reinterpret_cast<const E*>(uintptr_t(entries_at));
    t.min_index = lo;
    t.max_index = hi;
    built.push_back(t);
  }
  std::stable_sort(built.begin(), built.end(),
                   [](const Table& a, const Table& b) { return a.min_index < b.min_index; });
  band.first_table = uint32_t(tables_.size());
  tables_.insert(tables_.end(), built.begin(), built.end());
  band.end_table = uint32_t(tables_.size());
  if (!leftovers.empty()) {
    std::sort(leftovers.begin(), leftovers.end());
    band.tree.Build(recs_.data(), leftovers, kTreeBudgetFactor * leftovers.size() + 64);
  }
}

}  // namespace

template <typename Rec>
std::unique_ptr<Classifier<Rec, typename Family<Rec>::Key>> BuildTupleMerge(
    const Rec* records, uint32_t count, const TupleMergeParams& params) {
  return std::make_unique<TupleMerge<Rec>>(records, count, params);
}

template <typename Rec>
std::unique_ptr<Classifier<Rec, typename Family<Rec>::Key>> LoadTupleMerge(const void* records,
                                                                          uint32_t count,
                                                                          ImageReader* in,
                                                                          bool simd) {
  return std::make_unique<TupleMerge<Rec>>(records, count, in, simd);
}

// What an image depends on besides its own fields: the sizes of what is
// copied in bulk, the hash functions that placed every record, and the
// encoding of an entry. Fixed inputs through this build's code; a change
// to any of it changes the result and refuses older images.
template <typename Rec>
uint64_t FamilyFingerprint() {
  Rec r{};
  r.c.sport_lo = 1000, r.c.sport_hi = 1023, r.c.dport_lo = 443, r.c.dport_hi = 443;
  r.c.proto_lo = r.c.proto_hi = 6;
  r.c.icmp_hi = 0xffff, r.c.ct_state_mask = kCtNew, r.c.flags = kRuleNeedsL4;
  r.c.tcp_flags_mask = 0x12, r.c.tcp_flags_value = 0x02;
  using F = Family<Rec>;
  F::SetSrc(r, typename F::Addr(0x0a000000), typename F::Addr(0x0a0000ff));
  F::SetDst(r, typename F::Addr(0xc0a80101), typename F::Addr(0xc0a80101));
  const Words<Rec> w = Words<Rec>::Of(r);
  uint32_t mask_words[Words<Rec>::kWords];
  for (uint32_t& x : mask_words) x = 0xfff0f0f0u;
  Words<Rec> m;
  std::memcpy(&m, mask_words, sizeof m);
  Entry<Rec> e;
  e.Set(r, 7, 3, 2, 5);
  const uint64_t parts[] = {sizeof(Rec), sizeof(Entry<Rec>), sizeof(Words<Rec>),
                            w.FilterHash(m), w.SlotHash(m), FilterIndex(0xdeadbeef, 20),
                            Reduce(0x0123456789abcdefULL, 1000), HashBytes(&e, sizeof e)};
  return HashBytes(parts, sizeof parts);
}

uint64_t TupleMergeFingerprint() {
  const uint64_t parts[] = {FamilyFingerprint<RuleRecord4>(), FamilyFingerprint<RuleRecord6>(),
                            kDispShift, kDispUnknown, kEmpty, kFilterBitsPerBucket};
  return HashBytes(parts, sizeof parts);
}

template std::unique_ptr<Classifier4> LoadTupleMerge<RuleRecord4>(const void*, uint32_t,
                                                                  ImageReader*, bool);
template std::unique_ptr<Classifier6> LoadTupleMerge<RuleRecord6>(const void*, uint32_t,
                                                                  ImageReader*, bool);
template std::unique_ptr<Classifier4> BuildTupleMerge<RuleRecord4>(const RuleRecord4*, uint32_t,
                                                                   const TupleMergeParams&);
template std::unique_ptr<Classifier6> BuildTupleMerge<RuleRecord6>(const RuleRecord6*, uint32_t,
                                                                   const TupleMergeParams&);

}  // namespace detail
}  // namespace flatwall
