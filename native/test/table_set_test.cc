// Table-set validation (every malformed-buffer class, with its message),
// random mutations of valid buffers (never a crash: run under ASan), and the
// Evaluate loop over LOG/COUNT/SKIP chains.
#include <cstring>
#include <string>
#include <vector>

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
  { Packed q = p; q.desc(1).hook = 3; EXPECT_INVALID(q, "table 1: unknown hook 3"); }
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
