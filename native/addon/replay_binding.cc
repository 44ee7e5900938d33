// Offline verdicts for captured frames (`flatwall replay`): the dataplane's
// own frame parser and the same TableSet/Evaluate the workers use, run on an
// AsyncWorker so a large capture never blocks the JS thread.
//
//   replayFrames(rules: ArrayBuffer, frames: Uint8Array, offsets: Uint32Array,
//                {iif, oif, ruleCount, hook?: 0|1|2, algorithm?,
//                 dropL4Truncated?, ndpBypass?, hotdropBudget?})
//     -> Promise<{cls, verdict, reason, hot, finalRecord, finalRule, hits, bytes}>
//
// frames holds the frames back to back; frame i is frames[offsets[i],
// offsets[i+1]). Frames are Ethernet as captured (LINKTYPE_ETHERNET).
// As the dataplane: NDP is judged by the rules (ndpBypass: passed, as not
// IP), a truncated L4 header is judged without L4 and hot-dropped at an L4
// rule (dataplane/hotdrop.h: hot[i] 1, or 2 when the budget decided, with
// reason l4_truncated and verdict DROP), or with dropL4Truncated dropped as
// malformed (hotdropBudget: the record tests a truncated frame may cost,
// dataplane/hotdrop.h; tests raise it to check the walk exactly). There is no conntrack: every key is UNTRACKED (as under
// `flatwall run --no-conntrack`).
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "addon/bindings.h"
#include "classifier/table_set.h"
#include "dataplane/hotdrop.h"
#include "dataplane/parse.h"

namespace flatwall {
namespace {

// Per-frame result codes beyond Action (rule_table.h): frames that never
// reach the rule table.
constexpr uint8_t kVerdictNotIp = 0xfe;     // ARP, NDP, other ethertypes
constexpr uint8_t kVerdictMalformed = 0xff;  // parser dropped it

struct ReplayJob {
  std::vector<uint8_t> rules;
  std::vector<uint8_t> frames;
  std::vector<uint32_t> offsets;
  uint16_t iif = 0, oif = 0;
  uint32_t rule_count = 0;
  Hook hook = Hook::kForward;
  ClassifierOptions options;
  bool drop_l4_truncated = false, ndp_bypass = false;
  uint32_t hotdrop_budget = kHotdropBudget;

  // Results.
  std::vector<uint8_t> cls, verdict, reason, hot;
  std::vector<uint32_t> final_record, final_rule;
  std::vector<double> hits, bytes;
};

template <typename C, typename Key>
void Decide(const C* c, const HotdropIndexFor<C>& hot, Key key, uint16_t iif, uint16_t oif,
            uint32_t len, ReplayJob& job, size_t i) {
  key.c.iif = iif;
  key.c.oif = oif;
  const auto count = [&](uint32_t r) {
    const uint32_t id = c->record(r).c.rule_id;
    if (id < job.rule_count) {
      job.hits[id] += 1;
      job.bytes[id] += len;
    }
  };
  Verdict v;
  if (key.c.flags & kKeyL4Truncated) {
    const RuleCommon* hot_drop;
    v = EvaluateTruncated(*c, hot, key, count, &hot_drop, job.hotdrop_budget);
    if (hot_drop) {
      job.hot[i] = hot_drop == &kHotDrop ? 1 : 2;
      job.reason[i] = static_cast<uint8_t>(DropReason::kL4Truncated);
    }
  } else {
    v = Evaluate(*c, key, count);
  }
  job.verdict[i] = static_cast<uint8_t>(v.action);
  job.final_record[i] = v.index;
  job.final_rule[i] = v.index == kNoMatch ? UINT32_MAX : c->record(v.index).c.rule_id;
}

class ReplayWorker : public Napi::AsyncWorker {
 public:
  ReplayWorker(Napi::Env env, std::unique_ptr<ReplayJob> job)
      : Napi::AsyncWorker(env), job_(std::move(job)), deferred_(Napi::Promise::Deferred::New(env)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    ReplayJob& j = *job_;
    std::string error;
    auto set = TableSet::Build(j.rules.data(), j.rules.size(), j.options, &error);
    if (!set) return SetError(error);
    const int t4 = set->Find(Family::kIPv4, j.hook);
    const int t6 = set->Find(Family::kIPv6, j.hook);
    const HotdropIndex<RuleRecord4> hot4 = t4 >= 0 ? HotdropIndex<RuleRecord4>(*set->v4(t4)) : HotdropIndex<RuleRecord4>();
    const HotdropIndex<RuleRecord6> hot6 = t6 >= 0 ? HotdropIndex<RuleRecord6>(*set->v6(t6)) : HotdropIndex<RuleRecord6>();
    const size_t n = j.offsets.size() - 1;
    j.cls.assign(n, 0);
    j.verdict.assign(n, kVerdictMalformed);
    j.reason.assign(n, 0);
    j.hot.assign(n, 0);
    j.final_record.assign(n, kNoMatch);
    j.final_rule.assign(n, UINT32_MAX);
    j.hits.assign(j.rule_count, 0);
    j.bytes.assign(j.rule_count, 0);
    ParsedFrame pf;
    for (size_t i = 0; i < n; i++) {
      const uint32_t off = j.offsets[i];
      const uint32_t len = j.offsets[i + 1] - off;
      ParseFrame(j.frames.data() + off, len, false, &pf);
      j.cls[i] = static_cast<uint8_t>(pf.cls);
      if (pf.l4_truncated && j.drop_l4_truncated) pf.cls = FrameClass::kMalformed, pf.reason = DropReason::kL4Truncated;
      if (pf.cls == FrameClass::kNdp && !j.ndp_bypass) pf.cls = FrameClass::kIPv6;  // cls[i] still says ndp
      j.reason[i] = static_cast<uint8_t>(pf.reason);
      switch (pf.cls) {
        case FrameClass::kIPv4:
          // A rule set without an IPv4 table has nothing to say: the
          // kernel with no ip6tables rules accepts, and so do we.
          if (t4 < 0) j.verdict[i] = static_cast<uint8_t>(Action::kAccept);
          else Decide(set->v4(t4), hot4, pf.key4, j.iif, j.oif, len, j, i);
          break;
        case FrameClass::kIPv6:
          if (t6 < 0) j.verdict[i] = static_cast<uint8_t>(Action::kAccept);
          else Decide(set->v6(t6), hot6, pf.key6, j.iif, j.oif, len, j, i);
          break;
        case FrameClass::kArp:
        case FrameClass::kNdp:
        case FrameClass::kOther:
          j.verdict[i] = kVerdictNotIp;
          break;
        case FrameClass::kMalformed:
          j.verdict[i] = kVerdictMalformed;
          break;
      }
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    ReplayJob& j = *job_;
    const size_t n = j.cls.size();
    auto u8 = [&](const std::vector<uint8_t>& v) {
      auto a = Napi::Uint8Array::New(env, v.size());
      if (!v.empty()) std::memcpy(a.Data(), v.data(), v.size());
      return a;
    };
    auto u32 = [&](const std::vector<uint32_t>& v) {
      auto a = Napi::Uint32Array::New(env, v.size());
      if (!v.empty()) std::memcpy(a.Data(), v.data(), v.size() * 4);
      return a;
    };
    auto f64 = [&](const std::vector<double>& v) {
      auto a = Napi::Float64Array::New(env, v.size());
      if (!v.empty()) std::memcpy(a.Data(), v.data(), v.size() * 8);
      return a;
    };
    Napi::Object out = Napi::Object::New(env);
    out.Set("frames", static_cast<double>(n));
    out.Set("cls", u8(j.cls));
    out.Set("verdict", u8(j.verdict));
    out.Set("reason", u8(j.reason));
    out.Set("hot", u8(j.hot));
    out.Set("finalRecord", u32(j.final_record));
    out.Set("finalRule", u32(j.final_rule));
    out.Set("hits", f64(j.hits));
    out.Set("bytes", f64(j.bytes));
    Napi::Array names = Napi::Array::New(env, kDropReasonCount);
    for (uint32_t r = 0; r < kDropReasonCount; r++) names.Set(r, DropReasonName(static_cast<DropReason>(r)));
    out.Set("reasonNames", names);
    deferred_.Resolve(out);
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  std::unique_ptr<ReplayJob> job_;
  Napi::Promise::Deferred deferred_;
};

std::vector<uint8_t> BytesOf(const Napi::Env& env, const Napi::Value& v, const char* what) {
  if (v.IsArrayBuffer()) {
    auto ab = v.As<Napi::ArrayBuffer>();
    const auto* p = static_cast<const uint8_t*>(ab.Data());
    return std::vector<uint8_t>(p, p + ab.ByteLength());
  }
  if (v.IsTypedArray()) {
    auto ta = v.As<Napi::TypedArray>();
    const auto* p = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    return std::vector<uint8_t>(p, p + ta.ByteLength());
  }
  throw Napi::TypeError::New(env, std::string(what) + " must be an ArrayBuffer or a typed array");
}

Napi::Value ReplayFrames(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[3].IsObject()) {
    throw Napi::TypeError::New(env, "replayFrames(rules, frames, offsets, {iif, oif, ruleCount}) takes four arguments");
  }
  auto job = std::make_unique<ReplayJob>();
  job->rules = BytesOf(env, info[0], "rules");
  job->frames = BytesOf(env, info[1], "frames");
  if (!info[2].IsTypedArray() || info[2].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
    throw Napi::TypeError::New(env, "offsets must be a Uint32Array");
  }
  auto offs = info[2].As<Napi::Uint32Array>();
  if (offs.ElementLength() < 1) throw Napi::RangeError::New(env, "offsets needs at least one element (n frames: n + 1)");
  job->offsets.assign(offs.Data(), offs.Data() + offs.ElementLength());
  for (size_t i = 0; i + 1 < job->offsets.size(); i++) {
    if (job->offsets[i] > job->offsets[i + 1]) throw Napi::RangeError::New(env, "offsets must not decrease");
  }
  if (job->offsets.back() > job->frames.size()) throw Napi::RangeError::New(env, "offsets run past the end of frames");

  Napi::Object o = info[3].As<Napi::Object>();
  auto num = [&](const char* k, double lo, double hi, double dflt) {
    Napi::Value v = o.Get(k);
    if (v.IsUndefined()) return dflt;
    if (!v.IsNumber()) throw Napi::TypeError::New(env, std::string(k) + " must be a number");
    double d = v.As<Napi::Number>().DoubleValue();
    if (!(d >= lo && d <= hi) || d != static_cast<double>(static_cast<int64_t>(d))) {
      throw Napi::RangeError::New(env, std::string(k) + " is out of range");
    }
    return d;
  };
  job->iif = static_cast<uint16_t>(num("iif", 0, 65535, 0));
  job->oif = static_cast<uint16_t>(num("oif", 0, 65535, 0));
  job->rule_count = static_cast<uint32_t>(num("ruleCount", 0, 1 << 28, 0));
  job->hook = static_cast<Hook>(static_cast<uint8_t>(num("hook", 0, 2, 1)));
  auto flag = [&](const char* k) {
    Napi::Value v = o.Get(k);
    if (v.IsUndefined()) return false;
    if (!v.IsBoolean()) throw Napi::TypeError::New(env, std::string(k) + " must be a boolean");
    return v.As<Napi::Boolean>().Value();
  };
  job->drop_l4_truncated = flag("dropL4Truncated");
  job->ndp_bypass = flag("ndpBypass");
  job->hotdrop_budget = static_cast<uint32_t>(num("hotdropBudget", 0, 4294967295.0, kHotdropBudget));
  Napi::Value alg = o.Get("algorithm");
  if (!alg.IsUndefined()) {
    if (!alg.IsString()) throw Napi::TypeError::New(env, "algorithm must be a string");
    job->options.algorithm = alg.As<Napi::String>().Utf8Value();
    if (!IsKnownAlgorithm(job->options.algorithm)) {
      throw Napi::RangeError::New(env, "unknown algorithm \"" + job->options.algorithm + "\"");
    }
  }
  auto* w = new ReplayWorker(env, std::move(job));
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

}  // namespace

void InitReplay(Napi::Env env, Napi::Object exports) {
  exports.Set("replayFrames", Napi::Function::New(env, ReplayFrames, "replayFrames"));
}

}  // namespace flatwall
