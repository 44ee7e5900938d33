// Offline verdicts for captured frames (`flatwall replay`): the dataplane's
// own frame parser, connection tracking and the same TableSet/Evaluate the
// workers use, run on an AsyncWorker so a large capture never blocks the JS
// thread.
//
//   replayFrames(rules: ArrayBuffer, frames: Uint8Array, offsets: Uint32Array,
//                {iif, oif, ruleCount, hook?: 0|1|2, algorithm?,
//                 timestamps?: BigUint64Array, reverse?: Uint8Array,
//                 conntrack?, conntrackMax?, conntrackTcpLoose?, conntrackTimeouts?,
//                 sets?: SetStore, dropL4Truncated?, ndpBypass?, hotdropBudget?,
//                 hostAddrs?: ['ADDR/PLEN', ...]})
//     -> Promise<{cls, verdict, reason, hot, ctState, hook, finalRecord, finalRule, hits, bytes,
//                 conntrack?}>
//
// frames holds the frames back to back; frame i is frames[offsets[i],
// offsets[i+1]). Frames are Ethernet as captured (LINKTYPE_ETHERNET).
//
// Conntrack (off unless `conntrack: true`; `flatwall replay` turns it on
// as `flatwall run` does) runs as in the dataplane's worker loop
// (native/dataplane/dataplane.cc): Track before the rules, Commit of a new
// flow only when the verdict is ACCEPT (netfilter's confirm; a full table
// turns the ACCEPT into a drop with reason conntrack_full), Gc every 64
// frames. One table, one zone (the replay has one port pair); the clock is
// timestamps[i] (ns, the pcap record's time), never going backwards: a frame
// stamped earlier than the one before it is tracked at the earlier frame's
// time. Frame i enters on iif and leaves on oif, or the reverse when
// reverse[i] is nonzero; conntrack tells original from reply by the tuple,
// not the port. ctState[i] is the packet's CtState bit (rule_table.h), 0 for
// frames that are not tracked at all (not IP, malformed).
//
// `sets`: the IP sets `-m set` rules test; the job takes a private copy
// (SetStore::Clone, same ids) when called, so later edits do not race it.
// As the dataplane: NDP is judged by the rules (ndpBypass: passed, as not
// IP); a truncated L4 header is judged without L4 and hot-dropped at an L4
// rule (dataplane/hotdrop.h: hot[i] 1, or 2 when the budget decided, with
// reason l4_truncated and verdict DROP), or with dropL4Truncated dropped as
// malformed. hotdropBudget: the record tests a truncated frame may cost
// (tests raise it to check the walk exactly).
//
// Host mode (hostAddrs given): each IP frame walks INPUT, FORWARD or OUTPUT
// as the dataplane would choose (dataplane/host.h, FrameHook below), and
// -m addrtype knows the host's addresses; without it every frame walks
// `hook` (FORWARD). hook[i] is the Hook walked (0xff: none, not IP).
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "addon/bindings.h"
#include "classifier/table_set.h"
#include "dataplane/hotdrop.h"
#include "conntrack/conncount.h"
#include "conntrack/conntrack.h"
#include "dataplane/dataplane.h"
#include "dataplane/host.h"
#include "dataplane/parse.h"
#include "extensions/ext_table.h"
#include "extensions/state.h"
#include "sets/set_store.h"

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
  std::vector<uint64_t> timestamps;  // ns per frame; empty: time 0 throughout
  std::vector<uint8_t> reverse;      // per frame: enters on oif; empty: none
  ConntrackOptions ct;  // enabled only if the caller asks (replayFrames)
  std::shared_ptr<const sets::SetStore> sets;  // null: no sets given
  ext::HostAddrs host;  // host mode (hostAddrs): the hook per frame, addrtype's LOCAL

  bool drop_l4_truncated = false, ndp_bypass = false;
  uint32_t hotdrop_budget = kHotdropBudget;

  // Results.
  std::vector<uint8_t> cls, verdict, reason, ct_state, hot, hooks;
  struct {
    uint64_t entries = 0, found = 0, invalid = 0, ignore = 0, insert = 0, insert_failed = 0, drop = 0,
             early_drop = 0, expired = 0;
  } ct_counts;
  std::vector<uint32_t> final_record, final_rule;
  std::vector<double> hits, bytes;
};

// One frame through table `t`, match programs included (on the capture's
// clock, so a replay is deterministic).
template <typename C, typename Key>
void Decide(const C* c, const HotdropIndexFor<C>& hot, const ext::ExtTable* ext, uint32_t t, Key key,
            const ext::Context& outer, uint16_t iif, uint16_t oif, uint32_t len, ReplayJob& job, size_t i) {
  key.c.iif = iif;
  key.c.oif = oif;
  // A raw walk's CT ops change the ct_state of the key walked (this copy),
  // handed back to the caller's at the end.
  ext::Context cx = outer;
  if (outer.raw_ct) cx.raw_ct = &key.c.ct_state;
  const auto count = [&](uint32_t r) {
    const uint32_t id = c->record(r).c.rule_id;
    if (id < job.rule_count) {
      job.hits[id] += 1;
      job.bytes[id] += len;
    }
  };
  Verdict v;
  if (key.c.flags & kKeyL4Truncated) {
    // The match programs gate the records as in ext::EvaluateExt.
    const auto gate = [&](uint32_t r, uint32_t* next) {
      if (!(c->record(r).c.flags & kRuleHasExt) || !ext) return int(kGateTake);
      const ext::Entry* x = ext->Find(t, r);
      if (!x) return int(kGateTake);
      const int ok = ext->Run(*x, key, cx);
      if (ok == kGateSkip) *next = x->fail;
      return ok;
    };
    HotEnd end;
    v = EvaluateTruncated(*c, hot, key, count, &end, job.hotdrop_budget, gate);
    if (end == HotEnd::kL4 || end == HotEnd::kL4Bound) {
      job.hot[i] = end == HotEnd::kL4 ? 1 : 2;
      job.reason[i] = static_cast<uint8_t>(DropReason::kL4Truncated);
    } else if (end == HotEnd::kGateDrop) {
      v.index = ext::kHotDrop;
    }
  } else {
    v = ext::EvaluateExt(*c, ext, t, key, cx, count, [] {});
  }
  job.verdict[i] = static_cast<uint8_t>(v.action);
  if (v.index == ext::kHotDrop) job.reason[i] = static_cast<uint8_t>(DropReason::kMatchHotdrop);
  const bool found = v.index != kNoMatch && v.index != ext::kHotDrop;
  job.final_record[i] = found ? v.index : kNoMatch;
  job.final_rule[i] = found ? c->record(v.index).c.rule_id : UINT32_MAX;
  if (outer.raw_ct) *outer.raw_ct = key.c.ct_state;
}

// Host mode (dataplane/host.h), as the dataplane's workers: the hook of
// this frame (job.hook without host addresses) and its interfaces there
// (INPUT has no output interface, OUTPUT no input interface).
template <typename Key>
Hook FrameHook(const ReplayJob& job, const Key& key, uint16_t* iif, uint16_t* oif) {
  if (job.host.v4.empty() && job.host.v6.empty()) return job.hook;
  const Hook hook = ChooseHook(key, &job.host);
  KeyCommon c;
  HookIfaces(hook, *iif, *oif, &c);
  *iif = c.iif, *oif = c.oif;
  return hook;
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
    // The table of each hook and its L4 records (hotdrop.h): j.hook's, or
    // in host mode all three (FrameHook picks one per frame); the raw
    // table's hooks always (raw_for picks one).
    const bool host_mode = !j.host.v4.empty() || !j.host.v6.empty();
    int t4h[kHookCount], t6h[kHookCount];
    HotdropIndex<RuleRecord4> hot4[kHookCount];
    HotdropIndex<RuleRecord6> hot6[kHookCount];
    for (uint32_t h = 0; h < kHookCount; h++) {
      t4h[h] = t6h[h] = -1;
      const bool raw = h == uint32_t(Hook::kRawPrerouting) || h == uint32_t(Hook::kRawOutput);
      if (!raw && !host_mode && h != uint32_t(j.hook)) continue;
      t4h[h] = set->Find(Family::kIPv4, Hook(h));
      t6h[h] = set->Find(Family::kIPv6, Hook(h));
      if (t4h[h] >= 0) hot4[h] = HotdropIndex<RuleRecord4>(*set->v4(t4h[h]));
      if (t6h[h] >= 0) hot6[h] = HotdropIndex<RuleRecord6>(*set->v6(t6h[h]));
    }
    // Match programs and their states (a registry of this replay's own).
    ext::ExtStateRegistry states;
    if (j.ct.enabled) states.set_conncount(std::make_shared<ct::ConnCount>(j.ct.max));
    std::unique_ptr<ext::ExtTable> ext;
    try {
      std::vector<TableInfo> infos;
      for (size_t k = 0; k < set->size(); ++k) infos.push_back(set->info(k));
      ext = ext::ExtTable::Parse(j.rules.data(), j.rules.size(), infos, &states);
    } catch (const std::exception& e) {
      return SetError(e.what());
    }
    ext::Context cx;
    cx.hook = j.hook;
    cx.sets = j.sets.get();
    cx.sets_now_ns = sets::SetStore::MonoNs();
    cx.host = &j.host;
    const size_t n = j.offsets.size() - 1;
    j.cls.assign(n, 0);
    j.verdict.assign(n, kVerdictMalformed);
    j.reason.assign(n, 0);
    j.hot.assign(n, 0);
    j.final_record.assign(n, kNoMatch);
    j.final_rule.assign(n, UINT32_MAX);
    j.hits.assign(j.rule_count, 0);
    j.bytes.assign(j.rule_count, 0);
    j.ct_state.assign(n, 0);
    j.hooks.assign(n, 0xff);
    // Conntrack as one dataplane worker has it (dataplane.cc), with a fixed
    // seed so that a replay (evictions from a full table included) is
    // reproducible.
    std::unique_ptr<ct::Table> ct;
    if (j.ct.enabled) {
      ct::Config c;
      c.limit = j.ct.max;
      c.timeouts = j.ct.timeouts;
      c.tcp_loose = j.ct.tcp_loose;
      c.seed = 0x9e3779b9u;
      c.conncount = states.conncount().get();
      ct = std::make_unique<ct::Table>(c);
    }
    const DataplaneConfig dp_defaults;
    ParsedFrame pf;
    ct::Result cr;
    uint64_t now_ns = 0;
    for (size_t i = 0; i < n; i++) {
      const uint32_t off = j.offsets[i];
      const uint32_t len = j.offsets[i + 1] - off;
      const uint8_t* data = j.frames.data() + off;
      if (!j.timestamps.empty() && j.timestamps[i] > now_ns) now_ns = j.timestamps[i];
      if (ct && i % dp_defaults.batch == 0) ct->Gc(now_ns, dp_defaults.ct_gc_budget);
      ParseFrame(data, len, false, &pf);
      cx.frame = data, cx.len = len, cx.pf = &pf, cx.now_ns = now_ns;
      j.cls[i] = static_cast<uint8_t>(pf.cls);
      if (pf.l4_truncated && j.drop_l4_truncated) pf.cls = FrameClass::kMalformed, pf.reason = DropReason::kL4Truncated;
      if (pf.cls == FrameClass::kNdp && !j.ndp_bypass) pf.cls = FrameClass::kIPv6;  // cls[i] still says ndp
      j.reason[i] = static_cast<uint8_t>(pf.reason);
      switch (pf.cls) {
        case FrameClass::kIPv4:
        case FrameClass::kIPv6: {
          const bool v4 = pf.cls == FrameClass::kIPv4;
          const bool rev = !j.reverse.empty() && j.reverse[i];
          const uint16_t in_if = rev ? j.oif : j.iif, out_if = rev ? j.iif : j.oif;
          uint16_t iif = in_if, oif = out_if;
          KeyCommon& kc = v4 ? pf.key4.c : pf.key6.c;
          const Hook hook = v4 ? FrameHook(j, pf.key4, &iif, &oif) : FrameHook(j, pf.key6, &iif, &oif);
          // The raw table first, before conntrack, as the dataplane
          // (dataplane.cc): a ctstate match there sees INVALID; NOTRACK
          // leaves the packet untracked; anything but ACCEPT is final.
          bool untracked = false;
          const Hook raw = RawHook(hook);
          const int rt = v4 ? t4h[uint32_t(raw)] : t6h[uint32_t(raw)];
          if (rt >= 0) {
            KeyCommon rc;
            HookIfaces(raw, in_if, out_if, &rc);
            kc.ct_state = kCtInvalid;
            cx.hook = raw;
            cx.ct = nullptr;
            cx.raw_ct = &kc.ct_state;  // Decide hands the walked key's back
            if (v4) Decide(set->v4(rt), hot4[uint32_t(raw)], ext.get(), uint32_t(rt), pf.key4, cx, rc.iif, rc.oif, len, j, i);
            else Decide(set->v6(rt), hot6[uint32_t(raw)], ext.get(), uint32_t(rt), pf.key6, cx, rc.iif, rc.oif, len, j, i);
            cx.raw_ct = nullptr;
            untracked = kc.ct_state == kCtUntracked;
            if (j.verdict[i] != static_cast<uint8_t>(Action::kAccept)) {
              j.ct_state[i] = kCtInvalid;
              j.hooks[i] = static_cast<uint8_t>(raw);
              break;
            }
          }
          // Conntrack before the filter rules, as netfilter's PRE_ROUTING:
          // an existing flow is updated now, a new one waits for the verdict.
          cr.pending = false;
          if (untracked) {
            cr.state = kCtUntracked, cr.found = nullptr;
            kc.ct_state = kCtUntracked;
            cx.ct = &cr;
          } else if (ct) {
            ct->Track(data, pf, 0, now_ns, &cr);
            kc.ct_state = cr.state;
            cx.ct = &cr;
          }
          j.ct_state[i] = kc.ct_state;
          cx.hook = hook;
          j.hooks[i] = static_cast<uint8_t>(hook);
          const uint32_t h = uint32_t(hook);
          const int t = v4 ? t4h[h] : t6h[h];
          // A rule set without a table for the family has nothing to say:
          // the kernel with no ip6tables rules accepts, and so do we.
          if (t < 0) j.verdict[i] = static_cast<uint8_t>(Action::kAccept);
          else if (v4) Decide(set->v4(t), hot4[h], ext.get(), uint32_t(t), pf.key4, cx, iif, oif, len, j, i);
          else Decide(set->v6(t), hot6[h], ext.get(), uint32_t(t), pf.key6, cx, iif, oif, len, j, i);
          // netfilter confirms a new conntrack when its packet is accepted;
          // a full table without an evictable entry drops it (the dataplane
          // counts conntrack_full).
          if (j.verdict[i] == static_cast<uint8_t>(Action::kAccept) && cr.pending && !ct->Commit(cr, now_ns)) {
            j.verdict[i] = static_cast<uint8_t>(Action::kDrop);
            j.reason[i] = static_cast<uint8_t>(DropReason::kConntrackFull);
          }
          break;
        }
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
    if (ct) {
      const ct::Stats& c = ct->stats();
      j.ct_counts = {c.entries.Get(), c.found.Get(),  c.invalid.Get(),       c.ignore.Get(), c.insert.Get(),
                     c.insert_failed.Get(), c.drop.Get(), c.early_drop.Get(), c.expired.Get()};
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
    out.Set("ctState", u8(j.ct_state));
    out.Set("hook", u8(j.hooks));
    if (j.ct.enabled) {
      // node_exporter's nf_conntrack names, as the dataplane's counters.
      const auto& c = j.ct_counts;
      Napi::Object ctr = Napi::Object::New(env);
      ctr.Set("entries", double(c.entries));
      ctr.Set("limit", double(j.ct.max));
      ctr.Set("found", double(c.found));
      ctr.Set("invalid", double(c.invalid));
      ctr.Set("ignore", double(c.ignore));
      ctr.Set("insert", double(c.insert));
      ctr.Set("insertFailed", double(c.insert_failed));
      ctr.Set("drop", double(c.drop));
      ctr.Set("earlyDrop", double(c.early_drop));
      ctr.Set("expired", double(c.expired));
      out.Set("conntrack", ctr);
    }
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
  if (auto store = SetStoreOf(env, o.Get("sets"), "sets"))
    job->sets = std::shared_ptr<const sets::SetStore>(store->Clone().release());
  Napi::Value host = o.Get("hostAddrs");
  if (!host.IsUndefined()) {
    if (!host.IsArray()) throw Napi::TypeError::New(env, "hostAddrs must be an array of strings");
    Napi::Array ha = host.As<Napi::Array>();
    for (uint32_t k = 0; k < ha.Length(); k++) {
      Napi::Value a = ha.Get(k);
      if (!a.IsString()) throw Napi::TypeError::New(env, "hostAddrs must be an array of strings");
      std::string error;
      if (!ParseHostAddr(a.As<Napi::String>().Utf8Value(), &job->host, &error)) throw Napi::RangeError::New(env, error);
    }
  }
  Napi::Value alg = o.Get("algorithm");
  if (!alg.IsUndefined()) {
    if (!alg.IsString()) throw Napi::TypeError::New(env, "algorithm must be a string");
    job->options.algorithm = alg.As<Napi::String>().Utf8Value();
    if (!IsKnownAlgorithm(job->options.algorithm)) {
      throw Napi::RangeError::New(env, "unknown algorithm \"" + job->options.algorithm + "\"");
    }
  }
  const size_t n = job->offsets.size() - 1;
  Napi::Value ts = o.Get("timestamps");
  if (!ts.IsUndefined()) {
    if (!ts.IsTypedArray() || ts.As<Napi::TypedArray>().TypedArrayType() != napi_biguint64_array) {
      throw Napi::TypeError::New(env, "timestamps must be a BigUint64Array (ns per frame)");
    }
    auto a = ts.As<Napi::BigUint64Array>();
    if (a.ElementLength() != n) throw Napi::RangeError::New(env, "timestamps needs one element per frame");
    job->timestamps.assign(a.Data(), a.Data() + n);
  }
  Napi::Value rev = o.Get("reverse");
  if (!rev.IsUndefined()) {
    if (!rev.IsTypedArray() || rev.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      throw Napi::TypeError::New(env, "reverse must be a Uint8Array (one flag per frame)");
    }
    auto a = rev.As<Napi::Uint8Array>();
    if (a.ElementLength() != n) throw Napi::RangeError::New(env, "reverse needs one element per frame");
    job->reverse.assign(a.Data(), a.Data() + n);
  }
  job->ct.enabled = false;  // stateless unless asked for: `flatwall replay` asks
  ParseConntrackOptions(o, "replayFrames", &job->ct);
  if (job->ct.enabled && (job->ct.max < 1 || job->ct.max > (1u << 28))) {
    throw Napi::RangeError::New(env, "replayFrames: conntrackMax must be in 1..268435456");
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
