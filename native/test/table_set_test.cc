// Table-set validation (every malformed-buffer class, with its message),
// random mutations of valid buffers (never a crash: run under ASan), loading
// from a classifier image (round trip, refusals, truncated and mutated
// images), and the Evaluate loop over LOG/COUNT/SKIP chains.
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "classifier/image.h"
#include "classifier/table_set.h"
#include "classifier/trace.h"
#include "test/classifier_testing.h"
#include "test/synth.h"

namespace flatwall {
namespace {

// A packed buffer built field by field, as the TS packer lays it out.
struct Packed {
  std::vector<uint8_t> bytes;

  TableSetHeader& header() { return *reinterpret_cast<TableSetHeader*>(bytes.data()); }
  TableDesc& desc(size_t t) {
    return *reinterpret_cast<TableDesc*>(bytes.data() + sizeof(TableSetHeader) + t * sizeof(TableDesc));
  }
  template <typename Rec>
  Rec& rec(size_t t, size_t i) {
    return *reinterpret_cast<Rec*>(bytes.data() + desc(t).offset + i * sizeof(Rec));
  }
  std::string Validate() const { return ValidateTableSet(bytes.data(), bytes.size()); }
};

Packed Pack(const std::vector<RuleRecord4>& v4, const std::vector<RuleRecord6>& v6,
            Hook hook4 = Hook::kForward, Hook hook6 = Hook::kForward) {
  Packed p;
  const size_t ntables = (v4.empty() ? 0 : 1) + (v6.empty() ? 0 : 1);
  size_t off = sizeof(TableSetHeader) + ntables * sizeof(TableDesc);
  const size_t total = off + v4.size() * sizeof(RuleRecord4) + v6.size() * sizeof(RuleRecord6);
  p.bytes.assign(total, 0);
  TableSetHeader& h = p.header();
  h.magic = kTableMagic;
  h.version = kTableVersion;
  h.table_count = uint16_t(ntables);
  h.total_bytes = uint32_t(total);
  size_t t = 0;
  if (!v4.empty()) {
    TableDesc& d = p.desc(t++);
    d.family = 4, d.hook = uint8_t(hook4), d.record_size = sizeof(RuleRecord4);
    d.count = uint32_t(v4.size()), d.offset = uint32_t(off);
    std::memcpy(p.bytes.data() + off, v4.data(), v4.size() * sizeof(RuleRecord4));
    off += v4.size() * sizeof(RuleRecord4);
  }
  if (!v6.empty()) {
    TableDesc& d = p.desc(t++);
    d.family = 6, d.hook = uint8_t(hook6), d.record_size = sizeof(RuleRecord6);
    d.count = uint32_t(v6.size()), d.offset = uint32_t(off);
    std::memcpy(p.bytes.data() + off, v6.data(), v6.size() * sizeof(RuleRecord6));
  }
  return p;
}

Packed Valid() {
  return Pack(synth::Rules4(synth::Shape::kExtras, 40, 1), synth::Rules6(synth::Shape::kExtras, 30, 2));
}

bool Contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

#define EXPECT_INVALID(packed, part)                                                   \
  do {                                                                                 \
    const std::string err_ = (packed).Validate();                                      \
    if (!Contains(err_, part)) {                                                       \
      std::printf("  %s:%d: expected an error containing \"%s\", got \"%s\"\n", __FILE__, \
                  __LINE__, part, err_.c_str());                                       \
      ++::flatwall::cltest::Failures();                                                \
    }                                                                                  \
  } while (0)

CL_TEST(TableSetAcceptsValidBuffers) {
  CL_CHECK(Valid().Validate().empty());
  std::vector<TableInfo> tables;
  std::string error;
  Packed p = Valid();
  CL_CHECK(ParseTableSet(p.bytes.data(), p.bytes.size(), &tables, &error));
  CL_CHECK_EQ(tables.size(), size_t(2));
  CL_CHECK(tables[0].family == Family::kIPv4 && tables[0].count == 40);
  CL_CHECK(tables[1].family == Family::kIPv6 && tables[1].count == 30);
  // The compiler's interface wildcard, [0, D], in the policy.
  std::vector<RuleRecord4> v4 = synth::Rules4(synth::Shape::kAcl, 20, 3);
  for (auto& r : v4) r.c.iif_hi = r.c.oif_hi = 5;
  CL_CHECK(Pack(v4, {}).Validate().empty());
}

CL_TEST(TableSetRejectsMalformedHeaders) {
  Packed p = Valid();
  CL_CHECK(Contains(ValidateTableSet(p.bytes.data(), 3), "shorter than"));
  CL_CHECK(Contains(ValidateTableSet(nullptr, 0), "shorter than"));
  { Packed q = p; q.header().magic ^= 1; EXPECT_INVALID(q, "bad magic"); }
  { Packed q = p; q.header().version = 2; EXPECT_INVALID(q, "version 2"); }
  { Packed q = p; q.header().total_bytes += 4; EXPECT_INVALID(q, "total_bytes"); }
  { Packed q = p; q.bytes.push_back(0); EXPECT_INVALID(q, "total_bytes"); }
  { Packed q = p; q.header().table_count = 0; EXPECT_INVALID(q, "no tables"); }
  { Packed q = p; q.header().table_count = 60000; EXPECT_INVALID(q, "descriptor array"); }
}

CL_TEST(TableSetRejectsMalformedDescriptors) {
  const Packed p = Valid();
  { Packed q = p; q.desc(0).family = 5; EXPECT_INVALID(q, "table 0: unknown family 5"); }
  { Packed q = p; q.desc(1).hook = 5; EXPECT_INVALID(q, "table 1: unknown hook 5"); }
  { Packed q = p; q.desc(0).record_size = 100; EXPECT_INVALID(q, "record_size 100"); }
  { Packed q = p; q.desc(1).record_size = 52; EXPECT_INVALID(q, "table 1 (ipv6 FORWARD): record_size"); }
  { Packed q = p; q.desc(0).count = 0; EXPECT_INVALID(q, "no records"); }
  { Packed q = p; q.desc(0).offset += 2; EXPECT_INVALID(q, "not 4-byte aligned"); }
  { Packed q = p; q.desc(1).count += 1; EXPECT_INVALID(q, "outside the record area"); }
  { Packed q = p; q.desc(0).offset = 0; EXPECT_INVALID(q, "outside the record area"); }
  { Packed q = p; q.desc(0).count = 0x7fffffff; EXPECT_INVALID(q, "outside the record area"); }
  {
    // Both descriptors pointing at one table's records.
    Packed q = Pack(synth::Rules4(synth::Shape::kAcl, 10, 1), {});
    q.bytes.insert(q.bytes.begin() + 32, 16, 0);  // room for a second descriptor
    q.header().table_count = 2;
    q.header().total_bytes = uint32_t(q.bytes.size());
    q.desc(0).offset += 16;
    q.desc(1) = q.desc(0);
    q.desc(1).hook = uint8_t(Hook::kInput);
    EXPECT_INVALID(q, "overlapping records");
  }
}

CL_TEST(TableSetRejectsMalformedRecords) {
  const Packed p = Valid();
  using R4 = RuleRecord4;
  auto bad = [&](const char* part, auto mutate, size_t table = 0, size_t index = 3) {
    Packed q = p;
    mutate(q, table, index);
    const std::string err = q.Validate();
    const std::string where = "record " + std::to_string(index) + ":";
    if (!Contains(err, part) || !Contains(err, where.c_str())) {
      std::printf("  expected \"%s\" at %s, got \"%s\"\n", part, where.c_str(), err.c_str());
      ++cltest::Failures();
    }
  };
  bad("source address lo > hi", [](Packed& q, size_t t, size_t i) { auto& r = q.rec<R4>(t, i); r.src_lo = 5, r.src_hi = 4; });
  bad("destination address lo > hi", [](Packed& q, size_t t, size_t i) { auto& r = q.rec<R4>(t, i); r.dst_lo = 5, r.dst_hi = 4; });
  bad("source address lo > hi", [](Packed& q, size_t t, size_t i) {
    auto& r = q.rec<RuleRecord6>(t, i);
    r.src_lo[0] = 1, r.src_hi[0] = 0;
  }, 1, 2);
  bad("sport lo > hi", [](Packed& q, size_t t, size_t i) { auto& r = q.rec<R4>(t, i); r.c.sport_lo = 9, r.c.sport_hi = 8; });
  bad("dport lo > hi", [](Packed& q, size_t t, size_t i) { auto& r = q.rec<R4>(t, i); r.c.dport_lo = 9, r.c.dport_hi = 8; });
  bad("iif lo > hi", [](Packed& q, size_t t, size_t i) { auto& r = q.rec<R4>(t, i); r.c.iif_lo = 9, r.c.iif_hi = 8; });
  bad("oif lo > hi", [](Packed& q, size_t t, size_t i) { auto& r = q.rec<R4>(t, i); r.c.oif_lo = 9, r.c.oif_hi = 8; });
  bad("icmp lo > hi", [](Packed& q, size_t t, size_t i) { auto& r = q.rec<R4>(t, i); r.c.icmp_lo = 9, r.c.icmp_hi = 8; });
  bad("proto lo > hi", [](Packed& q, size_t t, size_t i) { auto& r = q.rec<R4>(t, i); r.c.proto_lo = 9, r.c.proto_hi = 8; });
  bad("empty ct_state", [](Packed& q, size_t t, size_t i) { q.rec<R4>(t, i).c.ct_state_mask = 0; });
  bad("unknown ct_state bits", [](Packed& q, size_t t, size_t i) { q.rec<R4>(t, i).c.ct_state_mask = 0x21; });
  bad("unknown flag bits", [](Packed& q, size_t t, size_t i) { q.rec<R4>(t, i).c.flags = 0x80; });
  bad("unknown action", [](Packed& q, size_t t, size_t i) { q.rec<R4>(t, i).c.action = 6; });
  bad("unknown reject-with", [](Packed& q, size_t t, size_t i) {
    auto& r = q.rec<R4>(t, i);
    r.c.action = uint8_t(Action::kReject), r.c.arg = 12;
  });
  for (Action a : {Action::kLog, Action::kCount, Action::kSkip}) {
    bad("not after the record", [a](Packed& q, size_t t, size_t i) {
      auto& r = q.rec<R4>(t, i);
      r.c.action = uint8_t(a), r.c.arg = uint32_t(i);
    });
    bad("past the end of the table", [a](Packed& q, size_t t, size_t i) {
      auto& r = q.rec<R4>(t, i);
      r.c.action = uint8_t(a), r.c.arg = q.desc(t).count;
    });
  }
  // The policy.
  const size_t last4 = 39;
  bad("not a catch-all", [](Packed& q, size_t t, size_t i) { q.rec<R4>(t, i).c.dport_hi = 80; }, 0, last4);
  bad("not a catch-all", [](Packed& q, size_t t, size_t i) { q.rec<R4>(t, i).src_lo = 1; }, 0, last4);
  bad("not a catch-all", [](Packed& q, size_t t, size_t i) { q.rec<RuleRecord6>(t, i).dst_hi[3] = 7; }, 1, 29);
  bad("ct_state match", [](Packed& q, size_t t, size_t i) { q.rec<R4>(t, i).c.ct_state_mask = kCtNew; }, 0, last4);
  bad("requires an L4 header", [](Packed& q, size_t t, size_t i) { q.rec<R4>(t, i).c.flags = kRuleNeedsL4; }, 0, last4);
  bad("tcp flags match", [](Packed& q, size_t t, size_t i) { q.rec<R4>(t, i).c.tcp_flags_mask = 2; }, 0, last4);
  bad("tcp flags match", [](Packed& q, size_t t, size_t i) { q.rec<R4>(t, i).c.flags = kRuleTcpFlagsInvert; }, 0, last4);
  bad("not ACCEPT, DROP or REJECT", [](Packed& q, size_t t, size_t i) {
    auto& r = q.rec<R4>(t, i);
    r.c.action = uint8_t(Action::kLog), r.c.arg = 0;
  }, 0, last4);
  bad("interface id", [](Packed& q, size_t t, size_t i) { q.rec<R4>(t, i).c.iif_hi = 2; }, 0, last4);
}

// Random corruption of valid buffers: validation must never read out of
// bounds (ASan watches), and whatever it accepts must build and look up.
CL_TEST(TableSetSurvivesMutations) {
  const Packed base = Valid();
  Rng rng(2024);
  size_t accepted = 0;
  for (int round = 0; round < 6000; ++round) {
    std::vector<uint8_t> b = base.bytes;
    const uint32_t edits = 1 + rng.Below(8);
    for (uint32_t e = 0; e < edits; ++e) {
      const uint32_t at = rng.Below(uint32_t(b.size()));
      switch (rng.Below(4)) {
        case 0: b[at] = uint8_t(rng.Next()); break;
        case 1: b[at] ^= uint8_t(1u << rng.Below(8)); break;
        case 2: b[at] = rng.Below(2) ? 0 : 0xff; break;
        default: {
          // Headers and descriptors are where bounds bugs live.
          const uint32_t h = rng.Below(48);
          b[h] = uint8_t(rng.Next());
        }
      }
    }
    if (rng.Below(8) == 0) b.resize(rng.Below(uint32_t(b.size()) + 1));
    // An exact-size heap copy, so any overread is caught.
    std::unique_ptr<uint8_t[]> exact(new uint8_t[b.size() ? b.size() : 1]);
    if (!b.empty()) std::memcpy(exact.get(), b.data(), b.size());
    std::string error;
    auto set = TableSet::Build(exact.get(), b.size(), ClassifierOptions{}, &error);
    if (!set) {
      CL_CHECK(!error.empty());
      continue;
    }
    ++accepted;
    for (size_t t = 0; t < set->size(); ++t) {
      TraceOptions o;
      o.seed = uint64_t(round);
      if (const Classifier4* c = set->v4(t)) {
        std::vector<RuleRecord4> recs(c->size());
        for (uint32_t i = 0; i < c->size(); ++i) recs[i] = c->record(i);
        for (const auto& k : MakeTrace(recs.data(), c->size(), 20, o)) Evaluate(*c, k);
      }
      if (const Classifier6* c = set->v6(t)) {
        std::vector<RuleRecord6> recs(c->size());
        for (uint32_t i = 0; i < c->size(); ++i) recs[i] = c->record(i);
        for (const auto& k : MakeTrace(recs.data(), c->size(), 20, o)) Evaluate(*c, k);
      }
    }
  }
  CL_CHECK(accepted > 0);  // some mutations hit irrelevant bytes
}

CL_TEST(TableSetBuildsOneClassifierPerTable) {
  Packed p = Valid();
  std::string error;
  auto set = TableSet::Build(p.bytes.data(), p.bytes.size(), ClassifierOptions{}, &error);
  CL_CHECK(set != nullptr);
  if (!set) return;
  CL_CHECK_EQ(set->size(), size_t(2));
  CL_CHECK(set->v4(0) != nullptr && set->v6(0) == nullptr);
  CL_CHECK(set->v6(1) != nullptr && set->v4(1) == nullptr);
  CL_CHECK_EQ(set->Find(Family::kIPv4, Hook::kForward), 0);
  CL_CHECK_EQ(set->Find(Family::kIPv6, Hook::kForward), 1);
  CL_CHECK_EQ(set->Find(Family::kIPv4, Hook::kInput), -1);
  ClassifierOptions bogus;
  bogus.algorithm = "bogus";
  CL_CHECK(TableSet::Build(p.bytes.data(), p.bytes.size(), bogus, &error) == nullptr);
  CL_CHECK(Contains(error, "bogus"));
  p.header().magic = 0;
  CL_CHECK(TableSet::Build(p.bytes.data(), p.bytes.size(), ClassifierOptions{}, &error) == nullptr);
  CL_CHECK(Contains(error, "magic"));
}

// --------------------------------------------------------------- images
//
// A TableSet loaded from its classifier image (classifier/image.h) answers
// as the built one; an image that does not belong to the buffer, or that is
// truncated or corrupted anywhere, is refused with a reason -- the set is
// then built from the buffer -- or, where the damage is in data no bounds
// check can judge (a filter word, an entry's port range), loaded and used
// without any out-of-bounds access (these tests run under ASan).

// Lookups of `n` trace keys (targeted and random, with and without a
// start) on two classifiers of the same records. Returns the number of
// keys they answer differently; with `same` false only exercises them.
template <typename C>
int Compare(const C& a, const C& b, size_t n, uint64_t seed, bool same = true) {
  using Rec = std::decay_t<decltype(a.record(0))>;
  std::vector<Rec> recs(a.size());
  for (uint32_t i = 0; i < a.size(); ++i) recs[i] = a.record(i);
  TraceOptions o;
  o.seed = seed;
  auto keys = MakeTrace(recs.data(), a.size(), n / 2, o);
  o.mode = TraceOptions::Mode::kRandom;
  auto random = MakeTrace(recs.data(), a.size(), n - n / 2, o);
  keys.insert(keys.end(), random.begin(), random.end());
  std::vector<uint32_t> starts(keys.size());
  Rng rng(seed);
  for (uint32_t& s : starts) s = rng.Below(4) ? 0 : rng.Below(a.size() + 1);
  std::vector<uint32_t> ga(keys.size()), gb(keys.size());
  a.LookupBatch(keys.data(), starts.data(), ga.data(), keys.size());
  b.LookupBatch(keys.data(), starts.data(), gb.data(), keys.size());
  int bad = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    const uint32_t sa = a.Lookup(keys[i], starts[i]), sb = b.Lookup(keys[i], starts[i]);
    const Verdict va = Evaluate(a, keys[i]), vb = Evaluate(b, keys[i]);
    bad += int(sa != sb || ga[i] != gb[i] || sa != ga[i] || va.index != vb.index);
  }
  return same ? bad : 0;
}

int CompareSets(const TableSet& a, const TableSet& b, size_t n, uint64_t seed, bool same = true) {
  int bad = 0;
  for (size_t t = 0; t < a.size(); ++t) {
    if (a.v4(t)) bad += Compare(*a.v4(t), *b.v4(t), n, seed + t, same);
    if (a.v6(t)) bad += Compare(*a.v6(t), *b.v6(t), n, seed + t, same);
  }
  return bad;
}

struct Imaged {
  Packed packed;
  std::shared_ptr<const TableSet> built;
  std::vector<uint8_t> image;
};

Imaged MakeImaged(Packed p) {
  Imaged m{std::move(p), nullptr, {}};
  std::string error;
  m.built = TableSet::Build(m.packed.bytes.data(), m.packed.bytes.size(), ClassifierOptions{}, &error);
  if (m.built) m.image = m.built->SaveImage(m.packed.bytes.data(), m.packed.bytes.size());
  return m;
}

// Loads `image` (an exact-size heap copy, so that any overread is caught)
// over m's buffer.
std::shared_ptr<const TableSet> LoadImage(const Imaged& m, const std::vector<uint8_t>& image,
                                          std::string* image_error) {
  std::unique_ptr<uint8_t[]> exact(new uint8_t[image.size() ? image.size() : 1]);
  if (!image.empty()) std::memcpy(exact.get(), image.data(), image.size());
  std::string error;
  auto set = TableSet::LoadOrBuild(m.packed.bytes.data(), m.packed.bytes.size(), exact.get(),
                                   image.size(), ClassifierOptions{}, &error, image_error);
  CL_CHECK(set != nullptr);
  CL_CHECK(error.empty());
  return set;
}

CL_TEST(TableSetImageLoadsAndAnswersAsBuilt) {
  // Several bands (acl past 4096 records), the trees (adversarial), every
  // field kind (extras), both families.
  const std::pair<synth::Shape, synth::Shape> shapes[] = {
      {synth::Shape::kAcl, synth::Shape::kAdversarial},
      {synth::Shape::kAdversarial, synth::Shape::kAcl},
      {synth::Shape::kExtras, synth::Shape::kWildcard},
      {synth::Shape::kPortRanges, synth::Shape::kExtras}};
  uint64_t seed = 1;
  for (const auto& [s4, s6] : shapes) {
    const Imaged m = MakeImaged(Pack(synth::Rules4(s4, 9000, seed), synth::Rules6(s6, 2500, seed + 1)));
    CL_CHECK(m.built != nullptr);
    if (!m.built) return;
    std::string image_error = "unset";
    auto loaded = LoadImage(m, m.image, &image_error);
    CL_CHECK_EQ(image_error, std::string());
    if (!loaded) return;
    CL_CHECK_EQ(CompareSets(*m.built, *loaded, 30000, seed), 0);
    CL_CHECK(loaded->SaveImage(m.packed.bytes.data(), m.packed.bytes.size()) == m.image);
    seed += 2;
  }
}

CL_TEST(TableSetImageRefusedFallsBackToBuilding) {
  const Imaged m = MakeImaged(Valid());
  auto refused = [&](const Imaged& over, const std::vector<uint8_t>& image, const char* why) {
    std::string image_error;
    auto set = LoadImage(over, image, &image_error);
    if (!Contains(image_error, why)) {
      std::printf("  expected an image error containing \"%s\", got \"%s\"\n", why, image_error.c_str());
      ++::flatwall::cltest::Failures();
    }
    // Built from the buffer instead: the same answers as a fresh build.
    if (set) CL_CHECK_EQ(CompareSets(*MakeImaged(over.packed).built, *set, 4000, 3), 0);
  };
  std::vector<uint8_t> img = m.image;
  img[0] ^= 1;
  refused(m, img, "bad magic");
  img = m.image;
  img[4] = 99;
  refused(m, img, "format 99");
  img = m.image;
  img[8] ^= 1;
  refused(m, img, "another build");
  // The same image over other tables: one rule id differs.
  Imaged other = MakeImaged(Valid());
  other.packed.rec<RuleRecord4>(0, 3).c.rule_id ^= 1;
  refused(other, m.image, "other packed tables");
  refused(m, {}, "truncated");
  img = m.image;
  img.push_back(0);
  refused(m, img, "trailing bytes");
  // A bad buffer is an error whatever the image.
  Packed bad = m.packed;
  bad.header().magic = 0;
  std::string error, image_error;
  CL_CHECK(TableSet::LoadOrBuild(bad.bytes.data(), bad.bytes.size(), m.image.data(), m.image.size(),
                                 ClassifierOptions{}, &error, &image_error) == nullptr);
  CL_CHECK(Contains(error, "magic"));
}

CL_TEST(TableSetImageSurvivesTruncationAndMutations) {
  const Imaged m = MakeImaged(Pack(synth::Rules4(synth::Shape::kAdversarial, 400, 11),
                                   synth::Rules6(synth::Shape::kExtras, 300, 12)));
  CL_CHECK(m.built != nullptr);
  if (!m.built) return;
  const size_t n = m.image.size();
  // Every truncation of the structural front, then a sampling of the rest.
  for (size_t len = 0; len < n; len += len < 1024 ? 1 : 251) {
    std::string image_error;
    LoadImage(m, std::vector<uint8_t>(m.image.begin(), m.image.begin() + len), &image_error);
    CL_CHECK(!image_error.empty());
  }
  Rng rng(77);
  size_t accepted = 0, refused = 0;
  for (int round = 0; round < 1500; ++round) {
    std::vector<uint8_t> b = m.image;
    const uint32_t edits = 1 + rng.Below(4);
    for (uint32_t e = 0; e < edits; ++e) {
      // Half the edits in the first few KB: headers, counts, offsets, trees.
      const uint32_t span = rng.Below(2) ? uint32_t(std::min<size_t>(n, 1024)) : uint32_t(n);
      const uint32_t at = 36 + rng.Below(span - 36);  // past the header (tested above)
      switch (rng.Below(3)) {
        case 0: b[at] = uint8_t(rng.Next()); break;
        case 1: b[at] ^= uint8_t(1u << rng.Below(8)); break;
        default: b[at] = rng.Below(2) ? 0 : 0xff;
      }
    }
    std::string image_error;
    auto set = LoadImage(m, b, &image_error);
    if (!set) continue;
    ++(image_error.empty() ? accepted : refused);
    // Whatever was loaded must be safe to use; answers may differ.
    CompareSets(*m.built, *set, 300, uint64_t(round), false);
  }
  std::printf("  mutated images: %zu loaded, %zu refused\n", accepted, refused);
  CL_CHECK(accepted > 0);
  CL_CHECK(refused > 0);
}

// ------------------------------------------------------------- Evaluate

RuleRecord4 Rule(Action a, uint32_t arg, uint16_t dport_lo = 0, uint16_t dport_hi = 0xffff) {
  RuleRecord4 r = synth::CatchAll4(a);
  r.c.arg = arg;
  r.c.dport_lo = dport_lo;
  r.c.dport_hi = dport_hi;
  return r;
}

CL_TEST(EvaluateFollowsLogCountSkip) {
  // 0 LOG (continue at 1) for dport 22
  // 1 COUNT -> 3 for dport 22..23 (skips 2)
  // 2 DROP for everything (only reached by keys that skipped nothing)
  // 3 SKIP -> 5 for dport 22
  // 4 REJECT tcp-reset for dport 22..80
  // 5 ACCEPT dport 22
  // 6 DROP policy
  std::vector<RuleRecord4> recs = {
      Rule(Action::kLog, 1, 22, 22),     Rule(Action::kCount, 3, 22, 23),
      Rule(Action::kDrop, 0, 0, 21),     Rule(Action::kSkip, 5, 22, 22),
      Rule(Action::kReject, 7, 22, 80),  Rule(Action::kAccept, 0, 22, 22),
      Rule(Action::kDrop, 0),
  };
  for (const char* algo : {"tuplemerge", "linear"}) {
    ClassifierOptions o;
    o.algorithm = algo;
    auto c = BuildClassifier(recs.data(), uint32_t(recs.size()), o);
    auto run = [&](uint16_t dport, std::vector<uint32_t>* seen) {
      PacketKey4 k;
      k.c.dport = dport;
      return Evaluate(*c, k, [seen](uint32_t i) { seen->push_back(i); });
    };
    std::vector<uint32_t> seen;
    Verdict v = run(22, &seen);
    CL_CHECK(v.action == Action::kAccept && v.index == 5);
    CL_CHECK((seen == std::vector<uint32_t>{0, 1, 3, 5}));
    seen.clear();
    v = run(23, &seen);  // COUNT at 1 jumps over 2; 4 rejects
    CL_CHECK(v.action == Action::kReject && v.arg == 7 && v.index == 4);
    CL_CHECK((seen == std::vector<uint32_t>{1, 4}));
    seen.clear();
    v = run(10, &seen);
    CL_CHECK(v.action == Action::kDrop && v.index == 2);
    seen.clear();
    v = run(9000, &seen);
    CL_CHECK(v.action == Action::kDrop && v.index == 6 && seen.size() == 1);
  }
  // An unvalidated continuation that does not move forward ends the walk.
  std::vector<RuleRecord4> loop = {Rule(Action::kSkip, 0), Rule(Action::kAccept, 0)};
  auto c = BuildClassifier(loop.data(), 2);
  const Verdict v = Evaluate(*c, PacketKey4{});
  CL_CHECK(v.action == Action::kDrop && v.index == kNoMatch);
  // A key nothing matches.
  std::vector<RuleRecord4> none = {Rule(Action::kAccept, 0, 1, 1)};
  auto n = BuildClassifier(none.data(), 1);
  CL_CHECK_EQ(Evaluate(*n, PacketKey4{}).index, kNoMatch);
}

}  // namespace
}  // namespace flatwall
