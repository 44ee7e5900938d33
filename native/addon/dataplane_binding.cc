// JavaScript binding of the dataplane (native/dataplane/dataplane.h).
//
//   const dp = new native.Dataplane({
//     ports: [{ name, kind: 'afpacket' | 'tap', ringFrames?, frameSize?, ifaceClassId }],
//     workers, cpuPin?, nonIpPolicy: 'accept' | 'drop', logRatePerSec?,
//     qdiscBypass?, promisc?, batch?
//   });
//   await dp.setRules(buffer, ifaceClassIds, ruleCount)  // -> { generation }
//   dp.start();
//   dp.counters();   // see Counters() below
//   dp.pollLogs(max?);  // LOG events; the array's `dropped` = events lost since last poll
//   await dp.stop();
//
// Everything that can block (building a ruleset, waiting for the workers to
// leave the old one, joining threads) runs on the libuv thread pool via
// AsyncWorker; the JS thread never waits on the dataplane.
#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "addon/bindings.h"
#include "dataplane/dataplane.h"

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
    else throw Napi::TypeError::New(env, "Dataplane: port.kind must be 'afpacket' or 'tap'");
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
  c.batch = U32(o, "batch", c.batch);
  c.busy_poll_us = U32(o, "busyPollUs", c.busy_poll_us);
  return c;
}

// Copies the bytes of an ArrayBuffer, TypedArray (Buffer) or DataView.
std::vector<uint8_t> Bytes(Napi::Env env, const Napi::Value& v) {
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
    throw Napi::TypeError::New(env, "setRules: buffer must be an ArrayBuffer or a typed array");
  }
  return std::vector<uint8_t>(p, p + n);
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

class SetRulesWorker : public PromiseWorker {
 public:
  SetRulesWorker(Napi::Env env, std::shared_ptr<Dataplane> dp, std::vector<uint8_t> buf,
                 std::vector<uint16_t> ids, uint32_t rule_count)
      : PromiseWorker(env), dp_(std::move(dp)), buf_(std::move(buf)), ids_(std::move(ids)),
        rule_count_(rule_count) {}
  void Execute() override {
    try {
      generation_ = dp_->SetRules(buf_.data(), buf_.size(), std::move(ids_), rule_count_, &info_);
    } catch (const std::exception& e) {
      SetError(e.what());
    }
    buf_.clear();
    buf_.shrink_to_fit();
  }
  void OnOK() override {
    Napi::Object r = Napi::Object::New(Env());
    r.Set("generation", double(generation_));
    r.Set("buildSeconds", info_.build_seconds);
    r.Set("memoryBytes", double(info_.memory_bytes));
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
  std::vector<uint8_t> buf_;
  std::vector<uint16_t> ids_;
  uint32_t rule_count_;
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

class DataplaneWrap : public Napi::ObjectWrap<DataplaneWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Dataplane",
                       {InstanceMethod("setRules", &DataplaneWrap::SetRules),
                        InstanceMethod("start", &DataplaneWrap::Start),
                        InstanceMethod("stop", &DataplaneWrap::Stop),
                        InstanceMethod("counters", &DataplaneWrap::Counters),
                        InstanceMethod("pollLogs", &DataplaneWrap::PollLogs)});
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
    std::vector<uint8_t> buf = Bytes(env, info[0]);
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
    auto* w = new SetRulesWorker(env, dp_, std::move(buf), std::move(ids), uint32_t(rc));
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

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    auto* w = new StopWorker(info.Env(), dp_);
    Napi::Promise p = w->Promise();
    w->Queue();
    return p;
  }

  Napi::Value Counters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const CountersSnapshot s = dp_->Counters();
    Napi::Object r = Napi::Object::New(env);
    r.Set("generation", double(s.generation));
    Napi::Object rules = Napi::Object::New(env);
    rules.Set("packets", BigArray(env, s.rule_packets));
    rules.Set("bytes", BigArray(env, s.rule_bytes));
    r.Set("rules", rules);
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
    return r;
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
};

}  // namespace

void InitDataplane(Napi::Env env, Napi::Object exports) {
  exports.Set("Dataplane", DataplaneWrap::Define(env));
}

}  // namespace flatwall
