// Fuzz target: the classifier image loader (classifier/image.h: the part of
// a snapshot that `flatwall run --snapshot` loads instead of building).
//
// Feeds: byte 0 picks what the rest is (bits 0-1) and what it is loaded
// against: bit 2 one of two fixed packed table sets (synthetic IPv4 and
// IPv6 tables: "extras" 60 + 40 records, "adversarial" 200 + "wildcard"
// 100), bit 3 the scalar lookup path instead of AVX2. The rest is
//   0: a whole image, loaded by TableSet::LoadOrBuild as the dataplane
//      does (a refused image falls back to a build, "linear" to keep it
//      cheap);
//   1: an image body after a header this harness writes for the fixed set
//      (magic, version, this build's fingerprint, the set's hash), so
//      mutations are not all stopped by the header checks;
//   2 / 3: one classifier section, loaded by LoadClassifier4 / 6 over the
//      set's IPv4 / IPv6 records.
// Checks: loading never reads outside the bytes or allocates beyond what
// they can hold (libFuzzer's -malloc_limit_mb), refuses with ImageError,
// and whatever it accepts answers lookups -- single, batched, from several
// start indices, and the LOG/COUNT/SKIP walk -- inside its arrays with a
// record index below the record count (or no match). An image that is
// well formed but wrong may give wrong answers (image.h: that is what the
// fingerprint and the tables hash are for), so answers are not compared.
// Seeds: the images of both sets as built with the default options and
// with a tiny table cap and collision limit (fallback trees), in all four
// forms.
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "classifier/classifier.h"
#include "classifier/image.h"
#include "classifier/table_set.h"
#include "fuzz/fuzz_common.h"
#include "test/synth.h"

namespace flatwall {
namespace {

constexpr size_t kImageHeaderBytes = 4 + 4 + 8 + 8 + 8 + 4;

struct FixedSet {
  fuzz::Bytes packed;
  std::vector<RuleRecord4> v4;
  std::vector<RuleRecord6> v6;
  std::vector<PacketKey4> keys4;
  std::vector<PacketKey6> keys6;
};

template <typename Rec, typename Key>
void KeysOf(const std::vector<Rec>& recs, bool v6, std::mt19937_64& rng, std::vector<Key>* out) {
  auto common = [&](const RuleCommon& c, bool hi, Key* k) {
    k->c.sport = hi ? c.sport_hi : c.sport_lo;
    k->c.dport = hi ? c.dport_hi : c.dport_lo;
    k->c.proto = hi ? c.proto_hi : c.proto_lo;
    k->c.icmp = hi ? c.icmp_hi : c.icmp_lo;
    k->c.iif = hi ? c.iif_hi : c.iif_lo;
    k->c.oif = hi ? c.oif_hi : c.oif_lo;
    k->c.tcp_flags = c.tcp_flags_value;
    k->c.ct_state = uint8_t(1u << (rng() % 5));
    k->c.flags = kKeyHasL4;
  };
  for (size_t i = 0; i < recs.size(); i += 1 + recs.size() / 24) {
    for (bool hi : {false, true}) {
      Key k{};
      common(recs[i].c, hi, &k);
      if constexpr (sizeof(Rec) == sizeof(RuleRecord4)) {
        k.src = hi ? recs[i].src_hi : recs[i].src_lo;
        k.dst = hi ? recs[i].dst_hi : recs[i].dst_lo;
      } else {
        std::memcpy(k.src, hi ? recs[i].src_hi : recs[i].src_lo, 16);
        std::memcpy(k.dst, hi ? recs[i].dst_hi : recs[i].dst_lo, 16);
      }
      out->push_back(k);
    }
  }
  for (int i = 0; i < 16; ++i) {  // random keys, some out of the interface domain
    Key k{};
    uint64_t r = rng();
    k.c.sport = uint16_t(r), k.c.dport = uint16_t(r >> 16), k.c.proto = uint8_t(r >> 32);
    k.c.icmp = uint16_t(r >> 40), k.c.iif = uint16_t(rng() % 4), k.c.oif = uint16_t(rng() % 4);
    k.c.tcp_flags = uint8_t(rng()), k.c.ct_state = uint8_t(1u << (rng() % 5));
    k.c.flags = rng() & 1 ? kKeyHasL4 : 0;
    if constexpr (sizeof(Rec) == sizeof(RuleRecord4)) {
      k.src = uint32_t(rng()), k.dst = uint32_t(rng());
    } else {
      for (int w = 0; w < 4; ++w) k.src[w] = uint32_t(rng()), k.dst[w] = uint32_t(rng());
    }
    out->push_back(k);
  }
  (void)v6;
}

const FixedSet& Set(int i) {
  static const FixedSet* sets = [] {
    auto* s = new FixedSet[2];
    s[0].v4 = synth::Rules4(synth::Shape::kExtras, 60, 1);
    s[0].v6 = synth::Rules6(synth::Shape::kExtras, 40, 2);
    s[1].v4 = synth::Rules4(synth::Shape::kAdversarial, 200, 3);
    s[1].v6 = synth::Rules6(synth::Shape::kWildcard, 100, 4);
    std::mt19937_64 rng(7);
    for (int j = 0; j < 2; ++j) {
      s[j].packed = fuzz::Pack(s[j].v4, s[j].v6);
      KeysOf(s[j].v4, false, rng, &s[j].keys4);
      KeysOf(s[j].v6, true, rng, &s[j].keys6);
    }
    return s;
  }();
  return sets[i];
}

template <typename C, typename Key>
void Probe(const C& c, const std::vector<Key>& keys) {
  const uint32_t n = c.size();
  const uint32_t starts[3] = {0, n / 2, n ? n - 1 : 0};
  for (const Key& k : keys) {
    for (uint32_t s : starts) {
      const uint32_t r = c.Lookup(k, s);
      FUZZ_CHECK(r == kNoMatch || (r >= s && r < n));
    }
    const Verdict v = Evaluate(c, k);
    FUZZ_CHECK(v.index == kNoMatch || v.index < n);
  }
  std::vector<uint32_t> st(keys.size()), out(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) st[i] = starts[i % 3];
  c.LookupBatch(keys.data(), st.data(), out.data(), keys.size());
  for (size_t i = 0; i < keys.size(); ++i) FUZZ_CHECK(out[i] == kNoMatch || (out[i] >= st[i] && out[i] < n));
  c.LookupBatch(keys.data(), nullptr, out.data(), keys.size());
  for (size_t i = 0; i < keys.size(); ++i) FUZZ_CHECK(out[i] == kNoMatch || out[i] < n);
}

void ProbeSet(const TableSet& ts, const FixedSet& s) {
  for (size_t i = 0; i < ts.size(); ++i) {
    if (const Classifier4* c = ts.v4(i)) Probe(*c, s.keys4);
    if (const Classifier6* c = ts.v6(i)) Probe(*c, s.keys6);
  }
}

bool Verbose() {
  static const bool verbose = std::getenv("FLATWALL_FUZZ_VERBOSE");
  return verbose;
}

fuzz::Bytes Header(const FixedSet& s) {
  ImageWriter w;
  w.U32(kImageMagic);
  w.U32(kImageVersion);
  w.U64(ImageFingerprint());
  w.U64(HashBytes(s.packed.data(), s.packed.size()));
  w.U64(s.packed.size());
  w.U32(uint32_t(!s.v4.empty()) + uint32_t(!s.v6.empty()));  // tables in the packed set
  return w.bytes();
}

void WriteSeeds() {
  ClassifierOptions tiny;
  tiny.max_tables = 2;
  tiny.collision_limit = 1;
  int n = 0;
  for (uint8_t set = 0; set < 2; ++set) {
    const FixedSet& s = Set(set);
    for (const ClassifierOptions& o : {ClassifierOptions{}, tiny}) {
      std::string error;
      auto ts = TableSet::Build(s.packed.data(), s.packed.size(), o, &error);
      if (!ts) {
        std::fprintf(stderr, "image_fuzz seeds: %s\n", error.c_str());
        std::exit(1);
      }
      const fuzz::Bytes img = ts->SaveImage(s.packed.data(), s.packed.size());
      const uint8_t sel = uint8_t(set << 2);
      fuzz::Bytes whole{uint8_t(sel | 0)}, body{uint8_t(sel | 1)};
      whole.insert(whole.end(), img.begin(), img.end());
      body.insert(body.end(), img.begin() + kImageHeaderBytes, img.end());
      fuzz::WriteSeed("image-" + std::to_string(n++), whole);
      fuzz::WriteSeed("image-" + std::to_string(n++), body);
      ImageWriter w4, w6;
      BuildClassifier4(s.v4.data(), uint32_t(s.v4.size()), o)->SaveImage(&w4);
      BuildClassifier6(s.v6.data(), uint32_t(s.v6.size()), o)->SaveImage(&w6);
      fuzz::Bytes sec4{uint8_t(sel | 2)}, sec6{uint8_t(sel | 3)};
      sec4.insert(sec4.end(), w4.bytes().begin(), w4.bytes().end());
      sec6.insert(sec6.end(), w6.bytes().begin(), w6.bytes().end());
      fuzz::WriteSeed("image-" + std::to_string(n++), sec4);
      fuzz::WriteSeed("image-" + std::to_string(n++), sec6);
    }
  }
}

}  // namespace
}  // namespace flatwall

using namespace flatwall;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  Set(0);  // built once, before the first input
  if (!fuzz::SeedDir()) return 0;
  WriteSeeds();
  std::exit(0);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t sel = data[0];
  const FixedSet& s = Set((sel >> 2) & 1);
  const bool simd = !(sel & 8);
  // A heap copy of exactly the input's length.
  fuzz::Bytes body(data + 1, data + size);
  switch (sel & 3) {
    case 0:
    case 1: {
      fuzz::Bytes image = body;
      if ((sel & 3) == 1) {
        image = Header(s);
        image.insert(image.end(), body.begin(), body.end());
        image.shrink_to_fit();
      }
      ClassifierOptions o;
      o.algorithm = "linear";  // the fallback build, when the image is refused
      o.simd = simd;
      std::string error, image_error;
      auto ts = TableSet::LoadOrBuild(s.packed.data(), s.packed.size(), image.data(), image.size(),
                                      o, &error, &image_error);
      FUZZ_CHECK(ts);  // the packed tables are valid: only the image can be refused
      if (Verbose() && !image_error.empty()) std::fprintf(stderr, "refused: %s\n", image_error.c_str());
      ProbeSet(*ts, s);
      break;
    }
    case 2:
    case 3:
      try {
        ImageReader in(body.data(), body.size());
        if ((sel & 3) == 2) Probe(*LoadClassifier4(s.v4.data(), uint32_t(s.v4.size()), &in, simd), s.keys4);
        else Probe(*LoadClassifier6(s.v6.data(), uint32_t(s.v6.size()), &in, simd), s.keys6);
      } catch (const ImageError& e) {
        if (Verbose()) std::fprintf(stderr, "refused: %s\n", e.what());
      }
      break;
  }
  return 0;
}
