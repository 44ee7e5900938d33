// JavaScript binding of the dataplane (native/dataplane/dataplane.h).
//
//   const dp = new native.Dataplane({
//     ports: [{ name, kind: 'afpacket' | 'tap', ringFrames?, frameSize?, ifaceClassId }],
//     workers, cpuPin?, nonIpPolicy: 'accept' | 'drop', logRatePerSec?,
//     qdiscBypass?, promisc?, batch?, workerNice?, buildNice?,
//     hostAddrs?: ['ADDR/PLEN', ...]   // host mode (dataplane/host.h)
//   });
//   await dp.setRules(buffer, ifaceClassIds, ruleCount, image?)
//       // -> { generation, buildSeconds, memoryBytes, previous?, imageError? }
//       // image: a classifier image of buffer (buildImage); imageError says
//       // why it was refused (the classifiers were then built from buffer)
//   await dp.applyEdits({ baseGeneration, ruleCount, v4?, v6? })  // -> { generation }
//     v4/v6: { records: packed records, anchors: Uint32Array,
//              dead: Uint32Array of [lo, hi) pairs, policy: action | -1 }
//     (a single-rule edit over the running rules; dataplane/ruleset.h)
//
//   native.evaluateRuleset({ buffer, ruleCount, edits?: [applyEdits args],
//                            family: 4 | 6, keys: packed PacketKey4/6 })
//     -> { rules: Uint32Array, actions: Uint8Array, paths: number[][] }
//   The FORWARD verdict of each key exactly as a worker walks it (Ruleset::
//   Forward, edits applied in order): the terminal record's rule id
//   (0xffffffff: none) and action, and every matched record's rule id.
//   Synchronous: for tests and offline checks of edit sequences.
//   dp.start();
//   dp.counters();   // see Counters() below
//   dp.pollLogs(max?);  // LOG events; the array's `dropped` = events lost since last poll
//   await dp.conntrackList({ filter?, limit? })  // rows, see RowObject
//   await dp.conntrackFlush(filter?)             // -> entries removed
//   await dp.conntrackDelete(tuple)              // -> true if it existed
//   dp.sets()        // the dataplane's IP set store (sets_binding.cc), one object
//   await dp.stop();
//
// Everything that can block (building a ruleset, waiting for the workers to
// leave the old one, joining threads) runs on the libuv thread pool via
// AsyncWorker; the JS thread never waits on the dataplane.
#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "addon/bindings.h"
#include "dataplane/dataplane.h"
#include "dataplane/host.h"

namespace flatwall {
namespace {

uint32_t U32(const Napi::Object& o, const char* key, uint32_t dflt) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return dflt;
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string(key) + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d > 4294967295.0 || d != double(uint32_t(d)))
    throw Napi::RangeError::New(o.Env(), std::string(key) + " must be a non-negative integer");
  return uint32_t(d);
}

bool Bool(const Napi::Object& o, const char* key, bool dflt) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return dflt;
  return v.ToBoolean().Value();
}

}  // namespace

void ParseConntrackOptions(const Napi::Object& o, const char* who, ConntrackOptions* c) {
  const Napi::Env env = o.Env();
  const std::string w(who);
  c->enabled = Bool(o, "conntrack", c->enabled);
  c->max = U32(o, "conntrackMax", c->max);
  c->tcp_loose = Bool(o, "conntrackTcpLoose", c->tcp_loose);
  const Napi::Value to = o.Get("conntrackTimeouts");
  if (!to.IsUndefined() && !to.IsNull()) {
    if (!to.IsObject()) throw Napi::TypeError::New(env, w + ": conntrackTimeouts must be an object");
    const Napi::Object t = to.As<Napi::Object>();
    const Napi::Array names = t.GetPropertyNames();
    for (uint32_t i = 0; i < names.Length(); ++i) {
      const std::string name = names.Get(i).ToString().Utf8Value();
      const uint32_t secs = U32(t, name.c_str(), 0);
      if (secs == 0) throw Napi::RangeError::New(env, w + ": conntrackTimeouts." + name + " must be >= 1");
      if (!c->timeouts.Set(name, secs)) {
        std::string known;
        for (const char* const* n = ct::Timeouts::kNames; *n; ++n) known += std::string(known.empty() ? "" : ", ") + *n;
        throw Napi::RangeError::New(env, w + ": unknown conntrack timeout '" + name + "' (known: " + known + ")");
      }
    }
  }
}

namespace {

std::string AddrString(uint8_t family, const uint32_t w[4]);

DataplaneConfig ParseConfig(Napi::Env env, const Napi::Value& arg) {
  if (!arg.IsObject()) throw Napi::TypeError::New(env, "Dataplane: options object expected");
  const Napi::Object o = arg.As<Napi::Object>();
  DataplaneConfig c;
  const Napi::Value ports = o.Get("ports");
  if (!ports.IsArray()) throw Napi::TypeError::New(env, "Dataplane: ports must be an array");
  const Napi::Array pa = ports.As<Napi::Array>();
  for (uint32_t i = 0; i < pa.Length(); ++i) {
    const Napi::Value pv = pa.Get(i);
    if (!pv.IsObject()) throw Napi::TypeError::New(env, "Dataplane: port must be an object");
    const Napi::Object po = pv.As<Napi::Object>();
    PortConfig p;
    const Napi::Value name = po.Get("name");
    if (!name.IsString()) throw Napi::TypeError::New(env, "Dataplane: port.name must be a string");
    p.name = name.As<Napi::String>().Utf8Value();
    const Napi::Value kind = po.Get("kind");
    const std::string k = kind.IsString() ? kind.As<Napi::String>().Utf8Value() : "afpacket";
    if (k == "afpacket") p.kind = PortKind::kAfPacket;
    else if (k == "tap") p.kind = PortKind::kTap;
    else if (k == "afxdp") p.kind = PortKind::kAfXdp;
    else if (k == "auto") p.kind = PortKind::kAuto;
    else throw Napi::TypeError::New(env, "Dataplane: port.kind must be 'afpacket', 'afxdp', 'auto' or 'tap'");
    p.ring_frames = U32(po, "ringFrames", p.ring_frames);
    p.frame_size = U32(po, "frameSize", p.frame_size);
    const uint32_t id = U32(po, "ifaceClassId", 0);
    if (id > 0xffff) throw Napi::RangeError::New(env, "Dataplane: ifaceClassId must fit 16 bits");
    p.iface_class_id = uint16_t(id);
    c.ports.push_back(std::move(p));
  }
  c.workers = U32(o, "workers", 1);
  c.cpu_pin = Bool(o, "cpuPin", false);
  const Napi::Value pol = o.Get("nonIpPolicy");
  if (!pol.IsUndefined()) {
    const std::string s = pol.IsString() ? pol.As<Napi::String>().Utf8Value() : "";
    if (s == "accept") c.non_ip_accept = true;
    else if (s == "drop") c.non_ip_accept = false;
    else throw Napi::TypeError::New(env, "Dataplane: nonIpPolicy must be 'accept' or 'drop'");
  }
  const Napi::Value rate = o.Get("logRatePerSec");
  if (!rate.IsUndefined()) {
    if (!rate.IsNumber() || !(rate.As<Napi::Number>().DoubleValue() >= 0))
      throw Napi::TypeError::New(env, "Dataplane: logRatePerSec must be a number >= 0");
    c.log_rate_per_sec = rate.As<Napi::Number>().DoubleValue();
  }
  c.qdisc_bypass = Bool(o, "qdiscBypass", false);
  const Napi::Value txm = o.Get("txMode");
  if (!txm.IsUndefined()) {
    const std::string s = txm.IsString() ? txm.As<Napi::String>().Utf8Value() : "";
    if (s == "ring") c.tx_ring = true;
    else if (s == "sendmmsg") c.tx_ring = false;
    else throw Napi::TypeError::New(env, "Dataplane: txMode must be 'ring' or 'sendmmsg'");
  }
  c.promisc = Bool(o, "promisc", true);
  const Napi::Value xm = o.Get("xdpMode");
  if (!xm.IsUndefined()) {
    const std::string s = xm.IsString() ? xm.As<Napi::String>().Utf8Value() : "";
    if (s == "native") c.xdp_generic = false;
    else if (s == "generic") c.xdp_generic = true;
    else throw Napi::TypeError::New(env, "Dataplane: xdpMode must be 'native' or 'generic'");
  }
  c.batch = U32(o, "batch", c.batch);
  c.busy_poll_us = U32(o, "busyPollUs", c.busy_poll_us);
  for (auto [key, field] : {std::pair<const char*, int*>{"workerNice", &c.worker_nice}, {"buildNice", &c.build_nice}}) {
    const Napi::Value v = o.Get(key);
    if (v.IsUndefined()) continue;
    const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : 99;
    if (!(d >= -20 && d <= 19 && d == double(int(d))))
      throw Napi::RangeError::New(env, std::string("Dataplane: ") + key + " must be an integer in -20..19");
    *field = int(d);
  }
  ConntrackOptions ct{c.conntrack, c.conntrack_max, c.ct_tcp_loose, c.ct_timeouts};
  ParseConntrackOptions(o, "Dataplane", &ct);
  c.conntrack = ct.enabled;
  c.conntrack_max = ct.max;
  c.ct_tcp_loose = ct.tcp_loose;
  c.ct_timeouts = ct.timeouts;
  c.drop_l4_truncated = Bool(o, "dropL4Truncated", c.drop_l4_truncated);
  c.ndp_bypass = Bool(o, "ndpBypass", c.ndp_bypass);
  c.flow_cache = U32(o, "flowCache", c.flow_cache);
  c.ct_replicate = Bool(o, "conntrackReplicate", false);
  // Host mode: ["ADDR/PLEN", ...] (dataplane/host.h).
  const Napi::Value host = o.Get("hostAddrs");
  if (!host.IsUndefined() && !host.IsNull()) {
    if (!host.IsArray()) throw Napi::TypeError::New(env, "Dataplane: hostAddrs must be an array of strings");
    const Napi::Array ha = host.As<Napi::Array>();
    for (uint32_t i = 0; i < ha.Length(); ++i) {
      const Napi::Value a = ha.Get(i);
      if (!a.IsString()) throw Napi::TypeError::New(env, "Dataplane: hostAddrs must be an array of strings");
      std::string error;
      if (!ParseHostAddr(a.As<Napi::String>().Utf8Value(), &c.host, &error))
        throw Napi::RangeError::New(env, "Dataplane: " + error);
    }
  }
  return c;
}

// ---- conntrack filters, tuples and rows ----------------------------------

uint8_t ProtoNumber(Napi::Env env, const Napi::Value& v) {
  if (v.IsNumber()) {
    const double d = v.As<Napi::Number>().DoubleValue();
    if (!(d >= 0 && d <= 255 && d == double(uint8_t(d)))) throw Napi::RangeError::New(env, "conntrack: proto must be 0..255");
    return uint8_t(d);
  }
  const std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (s == "tcp") return 6;
  if (s == "udp") return 17;
  if (s == "icmp") return 1;
  if (s == "icmpv6" || s == "ipv6-icmp") return 58;
  if (s == "sctp") return 132;
  if (s == "udplite") return 136;
  if (s == "dccp") return 33;
  if (s == "gre") return 47;
  if (s == "esp") return 50;
  throw Napi::TypeError::New(env, "conntrack: unknown proto '" + s + "'");
}

// Parses an IPv4/IPv6 literal into host-order words; returns the family.
uint8_t ParseAddr(Napi::Env env, const Napi::Value& v, uint32_t w[4]) {
  const std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (const uint8_t family = ParseAddrLiteral(s, w)) return family;
  throw Napi::TypeError::New(env, "conntrack: bad address '" + s + "'");
}

ct::Filter ParseFilter(Napi::Env env, const Napi::Value& v) {
  ct::Filter f;
  if (v.IsUndefined() || v.IsNull()) return f;
  if (!v.IsObject()) throw Napi::TypeError::New(env, "conntrack: filter must be an object");
  const Napi::Object o = v.As<Napi::Object>();
  const uint32_t fam = U32(o, "family", 0);
  if (fam != 0 && fam != 4 && fam != 6) throw Napi::RangeError::New(env, "conntrack: family must be 4 or 6");
  f.family = uint8_t(fam);
  if (!o.Get("proto").IsUndefined()) f.proto = ProtoNumber(env, o.Get("proto"));
  if (!o.Get("addr").IsUndefined()) {
    const uint8_t af = ParseAddr(env, o.Get("addr"), f.addr);
    if (f.family && f.family != af) throw Napi::RangeError::New(env, "conntrack: addr is not of the filter's family");
    f.family = af;
    f.has_addr = true;
  }
  if (!o.Get("port").IsUndefined()) {
    const uint32_t p = U32(o, "port", 0);
    if (p > 65535) throw Napi::RangeError::New(env, "conntrack: port must be 0..65535");
    f.port = int(p);
  }
  if (!o.Get("zone").IsUndefined()) f.zone = int(std::min<uint32_t>(U32(o, "zone", 0), 255));
  return f;
}

ct::FlowView ParseTuple(Napi::Env env, const Napi::Value& v) {
  if (!v.IsObject()) throw Napi::TypeError::New(env, "conntrackDelete: tuple object expected");
  const Napi::Object o = v.As<Napi::Object>();
  ct::FlowView t;
  t.proto = ProtoNumber(env, o.Get("proto"));
  const uint8_t f1 = ParseAddr(env, o.Get("src"), t.src);
  const uint8_t f2 = ParseAddr(env, o.Get("dst"), t.dst);
  if (f1 != f2) throw Napi::TypeError::New(env, "conntrackDelete: src and dst of different families");
  t.family = f1;
  const bool icmp = t.proto == (f1 == 4 ? 1 : 58);
  if (icmp) {
    const uint32_t id = U32(o, "id", 0);
    if (id > 65535) throw Napi::RangeError::New(env, "conntrackDelete: id must be 0..65535");
    t.sport = t.dport = uint16_t(id);
    t.kind = uint8_t(U32(o, "kind", 1));  // echo unless told
  } else {
    const uint32_t sp = U32(o, "sport", 0), dp = U32(o, "dport", 0);
    if (sp > 65535 || dp > 65535) throw Napi::RangeError::New(env, "conntrackDelete: ports must be 0..65535");
    t.sport = uint16_t(sp), t.dport = uint16_t(dp);
  }
  t.zone = uint8_t(std::min<uint32_t>(U32(o, "zone", 0), 255));
  return t;
}

Napi::Object RowObject(Napi::Env env, const ct::FlowView& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("family", double(r.family));
  o.Set("proto", double(r.proto));
  o.Set("zone", double(r.zone));
  o.Set("src", AddrString(r.family, r.src));
  o.Set("dst", AddrString(r.family, r.dst));
  if (r.kind) {
    o.Set("id", double(r.sport));
    o.Set("kind", double(r.kind));
  } else {
    o.Set("sport", double(r.sport));
    o.Set("dport", double(r.dport));
  }
  if (r.proto == 6) o.Set("state", ct::TcpStateName(r.tcp_state));
  o.Set("timeout", double(r.expires_in_ms / 1000));
  o.Set("unreplied", !r.seen_reply);
  o.Set("assured", r.assured);
  o.Set("packets", double(r.packets));
  return o;
}

// Copies the bytes of an ArrayBuffer, TypedArray (Buffer) or DataView.
std::vector<uint8_t> Bytes(Napi::Env env, const Napi::Value& v, const char* what = "setRules: buffer") {
  const uint8_t* p = nullptr;
  size_t n = 0;
  if (v.IsArrayBuffer()) {
    auto ab = v.As<Napi::ArrayBuffer>();
    p = static_cast<const uint8_t*>(ab.Data()), n = ab.ByteLength();
  } else if (v.IsTypedArray()) {
    auto ta = v.As<Napi::TypedArray>();
    p = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset(), n = ta.ByteLength();
  } else if (v.IsDataView()) {
    auto dv = v.As<Napi::DataView>();
    p = static_cast<const uint8_t*>(dv.ArrayBuffer().Data()) + dv.ByteOffset(), n = dv.ByteLength();
  } else {
    throw Napi::TypeError::New(env, std::string(what) + " must be an ArrayBuffer or a typed array");
  }
  return std::vector<uint8_t>(p, p + n);
}

// The applyEdits argument of one family (see the top of this file). Only
// shapes are checked here; Ruleset::Derive checks the contents.
template <typename Rec>
TableEditSpec<Rec> ParseTableEdits(Napi::Env env, const Napi::Value& v, const char* fam) {
  TableEditSpec<Rec> spec;
  if (v.IsUndefined() || v.IsNull()) return spec;
  if (!v.IsObject()) throw Napi::TypeError::New(env, std::string("applyEdits: ") + fam + " must be an object");
  const Napi::Object o = v.As<Napi::Object>();
  spec.present = true;
  const std::string name = std::string("applyEdits: ") + fam;
  const std::vector<uint8_t> rec = Bytes(env, o.Get("records"), (name + ".records").c_str());
  if (rec.size() % sizeof(Rec))
    throw Napi::RangeError::New(env, name + ".records is not a whole number of records");
  spec.overlay.resize(rec.size() / sizeof(Rec));
  if (!rec.empty()) std::memcpy(spec.overlay.data(), rec.data(), rec.size());
  auto words = [&](const char* key) {
    const std::vector<uint8_t> b = Bytes(env, o.Get(key), (name + "." + key).c_str());
    if (b.size() % 4) throw Napi::RangeError::New(env, name + "." + key + " is not 32-bit words");
    std::vector<uint32_t> w(b.size() / 4);
    if (!b.empty()) std::memcpy(w.data(), b.data(), b.size());
    return w;
  };
  spec.anchors = words("anchors");
  const std::vector<uint32_t> dead = words("dead");
  if (dead.size() % 2) throw Napi::RangeError::New(env, name + ".dead must hold [lo, hi) pairs");
  for (size_t i = 0; i < dead.size(); i += 2) spec.dead.emplace_back(dead[i], dead[i + 1]);
  const Napi::Value p = o.Get("policy");
  if (!p.IsUndefined() && !p.IsNull()) {
    if (!p.IsNumber()) throw Napi::TypeError::New(env, name + ".policy must be a number");
    const double d = p.As<Napi::Number>().DoubleValue();
    if (!(d >= -1 && d <= 255 && d == double(int(d)))) throw Napi::RangeError::New(env, name + ".policy is out of range");
    spec.policy = int(d);
  }
  return spec;
}

Napi::Value BigArray(Napi::Env env, const std::vector<uint64_t>& v) {
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, v.size() * sizeof(uint64_t));
  if (!v.empty()) std::memcpy(ab.Data(), v.data(), v.size() * sizeof(uint64_t));
  return Napi::TypedArrayOf<uint64_t>::New(env, v.size(), ab, 0, napi_biguint64_array);
}

std::string AddrString(uint8_t family, const uint32_t w[4]) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (family == 4) {
    in_addr a;
    a.s_addr = htonl(w[0]);
    inet_ntop(AF_INET, &a, buf, sizeof buf);
  } else {
    in6_addr a;
    for (int i = 0; i < 4; ++i) {
      const uint32_t be = htonl(w[i]);
      std::memcpy(&a.s6_addr[4 * i], &be, 4);
    }
    inet_ntop(AF_INET6, &a, buf, sizeof buf);
  }
  return buf;
}

// A promise settled by an AsyncWorker.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  explicit PromiseWorker(Napi::Env env) : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }
  Napi::Promise::Deferred deferred_;
};

// The bytes of a JS buffer used in place by a worker: the reference keeps
// the ArrayBuffer alive (its backing store does not move) until the worker
// is deleted, on the JS thread. For big read-only inputs, where a copy
// would cost more than the work.
struct PinnedBytes {
  const uint8_t* data = nullptr;
  size_t size = 0;
  Napi::ObjectReference ref;
};

PinnedBytes Pin(Napi::Env env, const Napi::Value& v, const char* what) {
  PinnedBytes b;
  if (v.IsArrayBuffer()) {
    auto ab = v.As<Napi::ArrayBuffer>();
    b.data = static_cast<const uint8_t*>(ab.Data()), b.size = ab.ByteLength();
  } else if (v.IsTypedArray()) {
    auto ta = v.As<Napi::TypedArray>();
    b.data = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset(), b.size = ta.ByteLength();
  } else {
    throw Napi::TypeError::New(env, std::string(what) + " must be an ArrayBuffer or a typed array");
  }
  b.ref = Napi::Persistent(v.As<Napi::Object>());
  return b;
}

class SetRulesWorker : public PromiseWorker {
 public:
  SetRulesWorker(Napi::Env env, std::shared_ptr<Dataplane> dp, PinnedBytes table,
                 std::vector<uint16_t> ids, uint32_t rule_count, PinnedBytes image)
      : PromiseWorker(env), dp_(std::move(dp)), table_(std::move(table)), ids_(std::move(ids)),
        rule_count_(rule_count), image_(std::move(image)) {}
  void Execute() override {
    // The copy is made here, off the JS thread (tens of MB at a million
    // rules: hundreds of ms of page faults there): JS may still write the
    // buffer meanwhile, but what is validated and built is this private
    // copy, so a torn copy is refused, never misread.
    std::vector<uint8_t> buf(table_.data, table_.data + table_.size);
    try {
      generation_ = dp_->SetRules(buf.data(), buf.size(), std::move(ids_), rule_count_, &info_,
                                  image_.data, image_.size);
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override {
    Napi::Object r = Napi::Object::New(Env());
    r.Set("generation", double(generation_));
    r.Set("buildSeconds", info_.build_seconds);
    r.Set("memoryBytes", double(info_.memory_bytes));
    if (!info_.image_error.empty()) r.Set("imageError", info_.image_error);
    // The replaced generation's final per-rule counters (absent for the first).
    if (!info_.previous_packets.empty() || generation_ > 1) {
      Napi::Object prev = Napi::Object::New(Env());
      prev.Set("packets", BigArray(Env(), info_.previous_packets));
      prev.Set("bytes", BigArray(Env(), info_.previous_bytes));
      r.Set("previous", prev);
    }
    deferred_.Resolve(r);
  }

 private:
  std::shared_ptr<Dataplane> dp_;
  PinnedBytes table_;  // released with the worker, on the JS thread
  std::vector<uint16_t> ids_;
  uint32_t rule_count_;
  PinnedBytes image_;
  uint64_t generation_ = 0;
  Dataplane::SetRulesInfo info_;
};

RulesetEdits ParseEdits(Napi::Env env, const Napi::Value& v) {
  if (!v.IsObject()) throw Napi::TypeError::New(env, "applyEdits: expected an object");
  const Napi::Object o = v.As<Napi::Object>();
  RulesetEdits edits;
  for (const char* key : {"baseGeneration", "ruleCount"})
    if (!o.Get(key).IsNumber()) throw Napi::TypeError::New(env, std::string("applyEdits: ") + key + " must be a number");
  const double base = o.Get("baseGeneration").As<Napi::Number>().DoubleValue();
  const double rc = o.Get("ruleCount").As<Napi::Number>().DoubleValue();
  if (!(base >= 1 && base < 9007199254740992.0)) throw Napi::RangeError::New(env, "applyEdits: bad baseGeneration");
  if (!(rc >= 0 && rc <= 4294967295.0)) throw Napi::RangeError::New(env, "applyEdits: bad ruleCount");
  edits.base_generation = uint64_t(base);
  edits.rule_count = uint32_t(rc);
  edits.v4 = ParseTableEdits<RuleRecord4>(env, o.Get("v4"), "v4");
  edits.v6 = ParseTableEdits<RuleRecord6>(env, o.Get("v6"), "v6");
  return edits;
}

// Records every matched rule id of one walk (evaluateRuleset).
struct PathRecorder {
  std::vector<uint32_t> ids;
  ext::Context cx;  // no frame: only key-level match programs can hold
  void OnMatch(const RuleCommon& r) { ids.push_back(r.rule_id); }
  void OnLog(const RuleCommon&) {}
  void OnExt() {}
  const ext::Context& ext_context() const { return cx; }
};

template <typename Key>
Napi::Value EvaluateKeys(Napi::Env env, const Ruleset& rs, const std::vector<uint8_t>& keys) {
  if (keys.size() % sizeof(Key)) throw Napi::RangeError::New(env, "evaluateRuleset: keys is not a whole number of keys");
  const size_t n = keys.size() / sizeof(Key);
  Napi::Uint32Array rules = Napi::Uint32Array::New(env, n);
  Napi::Uint8Array actions = Napi::Uint8Array::New(env, n);
  Napi::Array paths = Napi::Array::New(env, n);
  for (size_t i = 0; i < n; ++i) {
    Key k;
    std::memcpy(&k, keys.data() + i * sizeof(Key), sizeof k);
    PathRecorder rec;
    const RuleCommon* v = rs.Forward(k, rec);
    rules[i] = v ? v->rule_id : UINT32_MAX;
    actions[i] = v ? v->action : 0xff;
    Napi::Array path = Napi::Array::New(env, rec.ids.size());
    for (size_t j = 0; j < rec.ids.size(); ++j) path.Set(uint32_t(j), double(rec.ids[j]));
    paths.Set(uint32_t(i), path);
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("rules", rules);
  out.Set("actions", actions);
  out.Set("paths", paths);
  return out;
}

Napi::Value EvaluateRuleset(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) throw Napi::TypeError::New(env, "evaluateRuleset: expected an object");
  const Napi::Object o = info[0].As<Napi::Object>();
  const std::vector<uint8_t> buf = Bytes(env, o.Get("buffer"), "evaluateRuleset: buffer");
  const std::vector<uint8_t> keys = Bytes(env, o.Get("keys"), "evaluateRuleset: keys");
  const uint32_t rule_count = U32(o, "ruleCount", 0);
  const uint32_t family = U32(o, "family", 4);
  if (family != 4 && family != 6) throw Napi::RangeError::New(env, "evaluateRuleset: family must be 4 or 6");
  try {
    std::unique_ptr<Ruleset> rs = Ruleset::Build(buf.data(), buf.size(), {}, rule_count, 1);
    rs->generation = rs->base_generation = 1;
    const Napi::Value edits = o.Get("edits");
    if (!edits.IsUndefined()) {
      if (!edits.IsArray()) throw Napi::TypeError::New(env, "evaluateRuleset: edits must be an array");
      const Napi::Array a = edits.As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); ++i) {
        RulesetEdits e = ParseEdits(env, a.Get(i));
        e.base_generation = 1;
        std::unique_ptr<Ruleset> next = Ruleset::Derive(*rs, std::move(e));
        next->base_generation = 1;
        rs = std::move(next);
      }
    }
    return family == 4 ? EvaluateKeys<PacketKey4>(env, *rs, keys) : EvaluateKeys<PacketKey6>(env, *rs, keys);
  } catch (const std::invalid_argument& e) {
    throw Napi::Error::New(env, e.what());
  }
}

class ApplyEditsWorker : public PromiseWorker {
 public:
  ApplyEditsWorker(Napi::Env env, std::shared_ptr<Dataplane> dp, RulesetEdits edits)
      : PromiseWorker(env), dp_(std::move(dp)), edits_(std::move(edits)) {}
  void Execute() override {
    try {
      generation_ = dp_->ApplyEdits(std::move(edits_), &info_);
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override {
    Napi::Object r = Napi::Object::New(Env());
    r.Set("generation", double(generation_));
    r.Set("buildSeconds", info_.build_seconds);
    r.Set("memoryBytes", double(info_.memory_bytes));
    deferred_.Resolve(r);
  }

 private:
  std::shared_ptr<Dataplane> dp_;
  RulesetEdits edits_;
  uint64_t generation_ = 0;
  Dataplane::SetRulesInfo info_;
};

class StopWorker : public PromiseWorker {
 public:
  StopWorker(Napi::Env env, std::shared_ptr<Dataplane> dp) : PromiseWorker(env), dp_(std::move(dp)) {}
  void Execute() override {
    try {
      dp_->Stop();
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override { deferred_.Resolve(Env().Undefined()); }

 private:
  std::shared_ptr<Dataplane> dp_;
};

// A conntrack control operation, run by the workers (Dataplane::Conntrack)
// off the JS thread.
class ConntrackWorker : public PromiseWorker {
 public:
  ConntrackWorker(Napi::Env env, std::shared_ptr<Dataplane> dp, std::unique_ptr<ConntrackCommand> cmd)
      : PromiseWorker(env), dp_(std::move(dp)), cmd_(std::move(cmd)) {}
  void Execute() override {
    try {
      dp_->Conntrack(cmd_.get());
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    switch (cmd_->op) {
      case ConntrackCommand::Op::kList: {
        Napi::Array a = Napi::Array::New(env, cmd_->rows.size());
        for (size_t i = 0; i < cmd_->rows.size(); ++i) a.Set(uint32_t(i), RowObject(env, cmd_->rows[i]));
        deferred_.Resolve(a);
        break;
      }
      case ConntrackCommand::Op::kFlush:
        deferred_.Resolve(Napi::Number::New(env, double(cmd_->count)));
        break;
      case ConntrackCommand::Op::kDelete:
        deferred_.Resolve(Napi::Boolean::New(env, cmd_->count > 0));
        break;
      case ConntrackCommand::Op::kExport:
        deferred_.Resolve(Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<const uint8_t*>(cmd_->records.data()),
                                                      cmd_->records.size() * sizeof(ct::Record)));
        break;
    }
  }

 private:
  std::shared_ptr<Dataplane> dp_;
  std::unique_ptr<ConntrackCommand> cmd_;
};

class DataplaneWrap : public Napi::ObjectWrap<DataplaneWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Dataplane",
                       {InstanceMethod("setRules", &DataplaneWrap::SetRules),
                        InstanceMethod("applyEdits", &DataplaneWrap::ApplyEdits),
                        InstanceMethod("start", &DataplaneWrap::Start),
                        InstanceMethod("prepare", &DataplaneWrap::Prepare),
                        InstanceMethod("stop", &DataplaneWrap::Stop),
                        InstanceMethod("counters", &DataplaneWrap::Counters),
                        InstanceMethod("health", &DataplaneWrap::Health),
                        InstanceMethod("io", &DataplaneWrap::Io),
                        InstanceMethod("pollLogs", &DataplaneWrap::PollLogs),
                        InstanceMethod("conntrackList", &DataplaneWrap::ConntrackList),
                        InstanceMethod("conntrackFlush", &DataplaneWrap::ConntrackFlush),
                        InstanceMethod("conntrackDelete", &DataplaneWrap::ConntrackDelete),
                        InstanceMethod("matchStates", &DataplaneWrap::MatchStates),
                        InstanceMethod("ctDrain", &DataplaneWrap::CtDrain),
                        InstanceMethod("ctExport", &DataplaneWrap::CtExport),
                        InstanceMethod("ctImport", &DataplaneWrap::CtImport),
                        InstanceMethod("ctRearm", &DataplaneWrap::CtRearm),
                        InstanceMethod("sets", &DataplaneWrap::Sets)});
  }

  explicit DataplaneWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DataplaneWrap>(info) {
    DataplaneConfig c = ParseConfig(info.Env(), info[0]);
    try {
      dp_ = std::make_shared<Dataplane>(std::move(c));
    } catch (const std::exception& e) {
      throw Napi::Error::New(info.Env(), e.what());
    }
  }

 private:
  Napi::Value SetRules(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    PinnedBytes table = Pin(env, info[0], "setRules: buffer");
    std::vector<uint16_t> ids;
    if (!info[1].IsUndefined() && !info[1].IsNull()) {
      if (!info[1].IsArray()) throw Napi::TypeError::New(env, "setRules: ifaceClassIds must be an array");
      const Napi::Array a = info[1].As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); ++i) {
        const Napi::Value v = a.Get(i);
        const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
        if (!(d >= 0 && d <= 65535 && d == double(uint16_t(d))))
          throw Napi::RangeError::New(env, "setRules: interface class ids are 16-bit integers");
        ids.push_back(uint16_t(d));
      }
    }
    if (!info[2].IsNumber()) throw Napi::TypeError::New(env, "setRules: ruleCount must be a number");
    const double rc = info[2].As<Napi::Number>().DoubleValue();
    if (!(rc >= 0 && rc <= 4294967295.0)) throw Napi::RangeError::New(env, "setRules: bad ruleCount");
    PinnedBytes image;
    if (info.Length() > 3 && !info[3].IsUndefined() && !info[3].IsNull())
      image = Pin(env, info[3], "setRules: image");
    auto* w = new SetRulesWorker(env, dp_, std::move(table), std::move(ids), uint32_t(rc), std::move(image));
    Napi::Promise p = w->Promise();
    w->Queue();
    return p;
  }

  Napi::Value ApplyEdits(const Napi::CallbackInfo& info) {
    auto* w = new ApplyEditsWorker(info.Env(), dp_, ParseEdits(info.Env(), info[0]));
    Napi::Promise p = w->Promise();
    w->Queue();
    return p;
  }

  Napi::Value Start(const Napi::CallbackInfo& info) {
    try {
      dp_->Start();
    } catch (const std::exception& e) {
      throw Napi::Error::New(info.Env(), e.what());
    }
    return info.Env().Undefined();
  }

  // prepare(): a standby's unbound ports, rings mapped (Dataplane::Prepare).
  Napi::Value Prepare(const Napi::CallbackInfo& info) {
    try {
      dp_->Prepare();
    } catch (const std::exception& e) {
      throw Napi::Error::New(info.Env(), e.what());
    }
    return info.Env().Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    auto* w = new StopWorker(info.Env(), dp_);
    Napi::Promise p = w->Promise();
    w->Queue();
    return p;
  }

  // io(): { io, xdpMode, zeroCopy, fallback }: how start() opened the ports.
  Napi::Value Io(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const IoChoice c = dp_->io_choice();
    Napi::Object r = Napi::Object::New(env);
    r.Set("io", c.io);
    r.Set("xdpMode", c.xdp_mode);
    r.Set("zeroCopy", c.zero_copy);
    r.Set("fallback", c.fallback);
    return r;
  }

  // health(): { running, workers: [{ id, beatAgeMs }], ports: [{ name,
  // kind, boundIfindex, ifindex, adminUp, carrier }] } (Dataplane::Health).
  Napi::Value Health(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const HealthSnapshot h = dp_->Health();
    Napi::Object r = Napi::Object::New(env);
    r.Set("running", h.running);
    Napi::Array ws = Napi::Array::New(env, h.worker_beat_ns.size());
    for (size_t i = 0; i < h.worker_beat_ns.size(); ++i) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("id", double(i));
      const uint64_t b = h.worker_beat_ns[i];
      o.Set("beatAgeMs", h.now_ns > b ? double(h.now_ns - b) / 1e6 : 0.0);
      ws.Set(uint32_t(i), o);
    }
    r.Set("workers", ws);
    Napi::Array ps = Napi::Array::New(env, h.ports.size());
    for (size_t i = 0; i < h.ports.size(); ++i) {
      const PortHealth& p = h.ports[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", p.name);
      o.Set("kind", p.kind);
      o.Set("boundIfindex", double(p.bound_ifindex));
      o.Set("ifindex", double(p.ifindex));
      o.Set("adminUp", p.admin_up);
      o.Set("carrier", p.carrier);
      ps.Set(uint32_t(i), o);
    }
    r.Set("ports", ps);
    return r;
  }

  // counters([{ rules: false }]): without the per-rule arrays (see
  // Dataplane::Counters).
  Napi::Value Counters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bool with_rules = true;
    if (info.Length() > 0 && !info[0].IsUndefined()) {
      if (!info[0].IsObject()) throw Napi::TypeError::New(env, "counters: options object expected");
      const Napi::Value v = info[0].As<Napi::Object>().Get("rules");
      if (!v.IsUndefined()) {
        if (!v.IsBoolean()) throw Napi::TypeError::New(env, "counters: rules must be a boolean");
        with_rules = v.As<Napi::Boolean>().Value();
      }
    }
    const CountersSnapshot s = dp_->Counters(with_rules);
    Napi::Object r = Napi::Object::New(env);
    r.Set("generation", double(s.generation));
    if (with_rules) {
      Napi::Object rules = Napi::Object::New(env);
      rules.Set("packets", BigArray(env, s.rule_packets));
      rules.Set("bytes", BigArray(env, s.rule_bytes));
      r.Set("rules", rules);
    }
    Napi::Array ports = Napi::Array::New(env, s.ports.size());
    for (size_t i = 0; i < s.ports.size(); ++i) {
      const PortSnapshot& p = s.ports[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", p.name);
      o.Set("rxPackets", double(p.rx_packets));
      o.Set("rxBytes", double(p.rx_bytes));
      o.Set("txPackets", double(p.tx_packets));
      o.Set("txBytes", double(p.tx_bytes));
      o.Set("drops", double(p.drops));
      o.Set("kernelDrops", double(p.kernel_drops));
      Napi::Array pw = Napi::Array::New(env, p.rx_per_worker.size());
      for (size_t w = 0; w < p.rx_per_worker.size(); ++w) pw.Set(uint32_t(w), double(p.rx_per_worker[w]));
      o.Set("rxPerWorker", pw);
      ports.Set(uint32_t(i), o);
    }
    r.Set("ports", ports);
    Napi::Object drops = Napi::Object::New(env);
    for (uint32_t i = 1; i < kDropReasonCount; ++i)
      drops.Set(DropReasonName(DropReason(i)), double(s.drops[i]));
    r.Set("dropsByReason", drops);
    Napi::Object verdicts = Napi::Object::New(env);
    verdicts.Set("accept", double(s.accept));
    verdicts.Set("drop", double(s.drop));
    verdicts.Set("reject", double(s.reject));
    verdicts.Set("rejectSent", double(s.reject_sent));
    verdicts.Set("acceptBytes", double(s.accept_bytes));
    verdicts.Set("dropBytes", double(s.drop_bytes));
    verdicts.Set("rejectBytes", double(s.reject_bytes));
    r.Set("verdicts", verdicts);
    Napi::Object logs = Napi::Object::New(env);
    logs.Set("emitted", double(s.log_emitted));
    logs.Set("rateLimited", double(s.log_rate_limited));
    logs.Set("queueFull", double(s.log_queue_full));
    r.Set("logs", logs);
    r.Set("batches", double(s.batches));
    // node_exporter's nf_conntrack names: node_nf_conntrack_entries,
    // node_nf_conntrack_entries_limit, node_nf_conntrack_stat_<name>.
    Napi::Object ctr = Napi::Object::New(env);
    const ConntrackSnapshot& c = s.conntrack;
    ctr.Set("enabled", c.enabled);
    ctr.Set("entries", double(c.entries));
    ctr.Set("limit", double(c.limit));
    ctr.Set("found", double(c.found));
    ctr.Set("invalid", double(c.invalid));
    ctr.Set("ignore", double(c.ignore));
    ctr.Set("insert", double(c.insert));
    ctr.Set("insert_failed", double(c.insert_failed));
    ctr.Set("drop", double(c.drop));
    ctr.Set("early_drop", double(c.early_drop));
    ctr.Set("expired", double(c.expired));
    ctr.Set("memoryBytes", double(c.memory_bytes));
    r.Set("conntrack", ctr);
    Napi::Object fc = Napi::Object::New(env);
    fc.Set("hits", double(s.flow_cache_hits));
    fc.Set("misses", double(s.flow_cache_misses));
    r.Set("flowCache", fc);
    Napi::Object l4t = Napi::Object::New(env);
    l4t.Set("judged", double(s.l4_truncated_judged));
    l4t.Set("hotdrop", double(s.l4_truncated_hotdrop));
    l4t.Set("hotdropBound", double(s.l4_truncated_bound));
    l4t.Set("strict", double(s.l4_truncated_strict));
    r.Set("l4Truncated", l4t);
    Napi::Object ndp = Napi::Object::New(env);
    ndp.Set("judged", double(s.ndp_judged));
    ndp.Set("bypassed", double(s.ndp_bypassed));
    r.Set("ndp", ndp);
    r.Set("ctUntracked", double(s.ct_untracked));
    // IP frames per hook's table (host mode; else all FORWARD).
    Napi::Object hooks = Napi::Object::New(env);
    for (uint8_t h = 0; h < kHookCount; ++h) {
      Napi::Object x = Napi::Object::New(env);
      x.Set("frames", double(s.hook_frames[h]));
      x.Set("bytes", double(s.hook_bytes[h]));
      hooks.Set(HookName(h), x);
    }
    r.Set("hooks", hooks);
    r.Set("workerNiceFailures", double(s.worker_nice_failures));
    r.Set("workersRunning", double(s.workers_running));
    return r;
  }

  Napi::Value RunConntrack(Napi::Env env, std::unique_ptr<ConntrackCommand> cmd) {
    auto* w = new ConntrackWorker(env, dp_, std::move(cmd));
    Napi::Promise p = w->Promise();
    w->Queue();
    return p;
  }

  // conntrackList({ filter?, limit? = 10000 }) -> Promise<row[]>
  Napi::Value ConntrackList(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto cmd = std::make_unique<ConntrackCommand>();
    cmd->op = ConntrackCommand::Op::kList;
    cmd->limit = 10000;
    if (info[0].IsObject()) {
      const Napi::Object o = info[0].As<Napi::Object>();
      cmd->filter = ParseFilter(env, o.Get("filter"));
      cmd->limit = U32(o, "limit", 10000);
    } else if (!info[0].IsUndefined()) {
      throw Napi::TypeError::New(env, "conntrackList: options object expected");
    }
    return RunConntrack(env, std::move(cmd));
  }

  // conntrackFlush(filter?) -> Promise<number of entries removed>
  Napi::Value ConntrackFlush(const Napi::CallbackInfo& info) {
    auto cmd = std::make_unique<ConntrackCommand>();
    cmd->op = ConntrackCommand::Op::kFlush;
    cmd->filter = ParseFilter(info.Env(), info[0]);
    return RunConntrack(info.Env(), std::move(cmd));
  }

  // conntrackDelete({ proto, src, dst, sport, dport | id, zone? }) -> Promise<boolean>
  Napi::Value ConntrackDelete(const Napi::CallbackInfo& info) {
    auto cmd = std::make_unique<ConntrackCommand>();
    cmd->op = ConntrackCommand::Op::kDelete;
    cmd->tuple = ParseTuple(info.Env(), info[0]);
    return RunConntrack(info.Env(), std::move(cmd));
  }

  // ---- replication for a hot standby (conntrack.h: Replication) ----
  // Records are ct::Record, 48 bytes each, host byte order: JS only moves
  // them between this addon and the peer's (src/control/standby.ts).

  // ctDrain(max) -> { records: Buffer, lost: number (cumulative) }
  Napi::Value CtDrain(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    size_t max = 65536;
    if (info[0].IsNumber()) max = size_t(std::max(0.0, info[0].As<Napi::Number>().DoubleValue()));
    std::vector<ct::Record> out;
    const uint64_t lost = dp_->DrainCtEvents(&out, max);
    Napi::Object r = Napi::Object::New(env);
    r.Set("records", Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<const uint8_t*>(out.data()),
                                                 out.size() * sizeof(ct::Record)));
    r.Set("lost", double(lost));
    return r;
  }

  // ctExport() -> Promise<Buffer>: every worker's entries, taken by each
  // worker at a batch boundary.
  Napi::Value CtExport(const Napi::CallbackInfo& info) {
    auto cmd = std::make_unique<ConntrackCommand>();
    cmd->op = ConntrackCommand::Op::kExport;
    return RunConntrack(info.Env(), std::move(cmd));
  }

  // ctImport(records: Buffer, replaceAll: boolean) -> number of records refused.
  Napi::Value CtImport(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsTypedArray() && !info[0].IsArrayBuffer() && !info[0].IsBuffer())
      throw Napi::TypeError::New(env, "ctImport: records must be a Buffer");
    const std::vector<uint8_t> bytes = Bytes(env, info[0], "ctImport: records");
    if (bytes.size() % sizeof(ct::Record) != 0)
      throw Napi::RangeError::New(env, "ctImport: records must be whole 48-byte records");
    std::vector<ct::Record> recs(bytes.size() / sizeof(ct::Record));
    if (!recs.empty()) std::memcpy(static_cast<void*>(recs.data()), bytes.data(), bytes.size());
    try {
      return Napi::Number::New(env, double(dp_->ImportCt(recs.data(), recs.size(), info[1].ToBoolean().Value())));
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
  }

  Napi::Value CtRearm(const Napi::CallbackInfo& info) {
    try {
      dp_->RearmCt();
    } catch (const std::exception& e) {
      throw Napi::Error::New(info.Env(), e.what());
    }
    return info.Env().Undefined();
  }

  // Every live state of a stateful match (extensions/state.h): kind, key,
  // counts, and with {list: true} the listing /proc/net/xt_recent/NAME or
  // /proc/net/ipt_hashlimit/NAME would show. Control thread only.
  Napi::Value MatchStates(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bool list = false;
    if (info.Length() > 0 && info[0].IsObject()) {
      const Napi::Value v = info[0].As<Napi::Object>().Get("list");
      if (!v.IsUndefined() && !v.IsBoolean()) throw Napi::TypeError::New(env, "matchStates: list must be a boolean");
      list = v.IsBoolean() && v.As<Napi::Boolean>().Value();
    }
    const auto states = dp_->ext_states().Live();
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    const uint64_t now = uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
    Napi::Array a = Napi::Array::New(env, states.size());
    for (size_t i = 0; i < states.size(); ++i) {
      const ext::State& st = *states[i];
      const ext::State::Stats c = st.stats();
      Napi::Object o = Napi::Object::New(env);
      o.Set("kind", st.kind());
      o.Set("key", st.key());
      o.Set("entries", double(c.entries));
      o.Set("capacity", double(c.capacity));
      o.Set("evictions", double(c.evictions));
      o.Set("refused", double(c.full));
      if (list) o.Set("listing", st.List(now));
      a.Set(uint32_t(i), o);
    }
    return a;
  }

  // The store the workers test `-m set` against: a JS SetStore sharing it.
  Napi::Value Sets(const Napi::CallbackInfo& info) {
    if (sets_.IsEmpty()) sets_ = Napi::Persistent(WrapSetStore(info.Env(), dp_->sets_ptr()).As<Napi::Object>());
    return sets_.Value();
  }

  Napi::Value PollLogs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    size_t max = 4096;
    if (info[0].IsNumber()) max = size_t(std::max(0.0, info[0].As<Napi::Number>().DoubleValue()));
    std::vector<LogEvent> ev;
    ev.reserve(std::min<size_t>(max, 4096));
    uint64_t dropped = 0;
    dp_->PollLogs(&ev, max, &dropped);
    const auto& ports = dp_->config().ports;
    Napi::Array a = Napi::Array::New(env, ev.size());
    for (size_t i = 0; i < ev.size(); ++i) {
      const LogEvent& e = ev[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("ruleId", double(e.rule_id));
      o.Set("ts", double(e.ts_ns) / 1e6);  // ms since the epoch, like Date.now()
      o.Set("iif", e.iif < ports.size() ? ports[e.iif].name : std::string());
      o.Set("oif", e.oif < ports.size() ? ports[e.oif].name : std::string());
      o.Set("family", double(e.family));
      o.Set("src", AddrString(e.family, e.src));
      o.Set("dst", AddrString(e.family, e.dst));
      o.Set("proto", double(e.proto));
      o.Set("sport", double(e.sport));
      o.Set("dport", double(e.dport));
      o.Set("len", double(e.len));
      o.Set("tcpFlags", double(e.tcp_flags));
      o.Set("icmpType", double(e.icmp >> 8));
      o.Set("icmpCode", double(e.icmp & 0xff));
      o.Set("fragment", e.fragment != 0);
      a.Set(uint32_t(i), o);
    }
    a.Set("dropped", double(dropped));
    return a;
  }

  std::shared_ptr<Dataplane> dp_;
  Napi::ObjectReference sets_;
};

}  // namespace

uint8_t ParseAddrLiteral(const std::string& s, uint32_t w[4]) {
  w[0] = w[1] = w[2] = w[3] = 0;
  in_addr a4;
  in6_addr a6;
  if (inet_pton(AF_INET, s.c_str(), &a4) == 1) {
    w[0] = ntohl(a4.s_addr);
    return 4;
  }
  if (inet_pton(AF_INET6, s.c_str(), &a6) == 1) {
    for (int i = 0; i < 4; ++i) {
      uint32_t be;
      std::memcpy(&be, &a6.s6_addr[4 * i], 4);
      w[i] = ntohl(be);
    }
    return 6;
  }
  return 0;
}

void InitDataplane(Napi::Env env, Napi::Object exports) {
  exports.Set("Dataplane", DataplaneWrap::Define(env));
  exports.Set("evaluateRuleset", Napi::Function::New(env, EvaluateRuleset, "evaluateRuleset"));
  // The conntrack timeout names conntrackTimeouts accepts (for CLI checks).
  Napi::Array names = Napi::Array::New(env);
  for (const char* const* n = ct::Timeouts::kNames; *n; ++n) names.Set(names.Length(), *n);
  exports.Set("conntrackTimeoutNames", names);
}

}  // namespace flatwall
