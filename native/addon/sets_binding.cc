// JavaScript binding of the set store (native/sets/set_store.h): thin
// marshalling, every call synchronous (control operations are short; a
// restore of 100k entries takes tens of milliseconds).
//
//   const s = new native.SetStore();   // standalone (flatwall check, tests)
//   const s = dp.sets();               // the Dataplane's own store (same object each call)
//   s.create(name, { type: 'hash:ip', family: 'inet' | 'inet6', hashsize, maxelem,
//                    timeout, counters, comment, bucketsize, initval,
//                    range: [from, to] /* bitmap:port */ }, exist?)
//   s.destroy(name?)  s.flush(name?)  s.swap(a, b)  s.rename(a, b)
//   s.add(name, entry, exist?) -> boolean (false: -exist kept an existing one)
//   s.del(name, entry, exist?) -> boolean (false: -exist and it was not there)
//   s.test(name, entry) -> boolean          (ipset test)
//     entry: { addr: '10.0.0.0', cidr?, proto?, port?, nomatch?, timeout?,
//              packets?, bytes?, comment? }  (bitmap:port: { port })
//   s.restore([{ op: 'create'|'add'|'del'|'flush'|'destroy'|'swap'|'rename',
//                name, name2?, options?, entry?, exist? }])   all or nothing
//   s.list(name?, members = true) -> [{ name, id, type, revision, options,
//                entries, memoryBytes, members?: [entry with timeout = seconds left] }]
//   s.names()  s.find(name) -> id | -1  s.gc(budget) -> reclaimed  s.memoryBytes()
//   s.describe(name) -> { id, type, family?, dims } | undefined
//   s.lookup(id, dirs: [1|2, ...], { family: 4|6, src, dst, proto, sport?, dport?,
//            icmp?, l4? = true }, nowNs?) -> 'match' | 'nomatch' | 'absent'
//     (the packet side, for tests and the rule compiler's checks)
//   s.clone() -> a private copy (same ids)
// Errors thrown are Error(message) with `code` (no_set, set_exists,
// second_no_set, name_taken, full, exists, not_added, out_of_range,
// type_mismatch, too_many_sets, invalid) and, for restore, `index`.
#include <arpa/inet.h>

#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "addon/bindings.h"
#include "sets/set_store.h"

namespace flatwall {
namespace {

using sets::Command;
using sets::Entry;
using sets::SetErrc;
using sets::SetError;
using sets::SetOptions;
using sets::SetStore;
using sets::SetType;

const char* ErrcName(SetErrc c) {
  switch (c) {
    case SetErrc::kNoSet: return "no_set";
    case SetErrc::kSetExists: return "set_exists";
    case SetErrc::kSecondNoSet: return "second_no_set";
    case SetErrc::kNameTaken: return "name_taken";
    case SetErrc::kFull: return "full";
    case SetErrc::kExists: return "exists";
    case SetErrc::kNotAdded: return "not_added";
    case SetErrc::kOutOfRange: return "out_of_range";
    case SetErrc::kTypeMismatch: return "type_mismatch";
    case SetErrc::kTooManySets: return "too_many_sets";
    case SetErrc::kInvalid: return "invalid";
  }
  return "invalid";
}

[[noreturn]] void ThrowSetError(Napi::Env env, const SetError& e) {
  Napi::Error err = Napi::Error::New(env, e.what());
  err.Set("code", ErrcName(e.code));
  if (e.index != SIZE_MAX) err.Set("index", double(e.index));
  throw err;
}

template <typename F>
auto Guard(Napi::Env env, F f) -> decltype(f()) {
  try {
    return f();
  } catch (const SetError& e) {
    ThrowSetError(env, e);
  }
}

std::string Str(Napi::Env env, const Napi::Value& v, const char* what) {
  if (!v.IsString()) throw Napi::TypeError::New(env, std::string(what) + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

double Num(Napi::Env env, const Napi::Object& o, const char* key, double lo, double hi, double dflt, bool* given = nullptr) {
  const Napi::Value v = o.Get(key);
  if (given) *given = false;
  if (v.IsUndefined() || v.IsNull()) return dflt;
  const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
  if (!(d >= lo && d <= hi) || d != double(uint64_t(d)))
    throw Napi::RangeError::New(env, std::string(key) + " must be an integer in " + std::to_string(uint64_t(lo)) + ".." +
                                         std::to_string(uint64_t(hi)));
  if (given) *given = true;
  return d;
}

uint64_t U64(Napi::Env env, const Napi::Object& o, const char* key, bool* given) {
  const Napi::Value v = o.Get(key);
  *given = false;
  if (v.IsUndefined() || v.IsNull()) return 0;
  *given = true;
  if (v.IsBigInt()) {
    bool lossless;
    return v.As<Napi::BigInt>().Uint64Value(&lossless);
  }
  return uint64_t(Num(env, o, key, 0, 9007199254740991.0, 0));
}

bool Flag(const Napi::Object& o, const char* key) {
  const Napi::Value v = o.Get(key);
  return !v.IsUndefined() && !v.IsNull() && v.ToBoolean().Value();
}

uint8_t ParseAddr(Napi::Env env, const std::string& s, uint32_t w[4]) {
  if (const uint8_t family = ParseAddrLiteral(s, w)) return family;
  throw Napi::TypeError::New(env, "bad address '" + s + "'");
}

std::string AddrText(uint8_t family, const uint32_t w[4]) {
  char buf[INET6_ADDRSTRLEN];
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

Entry ParseEntry(Napi::Env env, const Napi::Value& v) {
  if (!v.IsObject()) throw Napi::TypeError::New(env, "entry must be an object");
  const Napi::Object o = v.As<Napi::Object>();
  Entry e;
  const Napi::Value addr = o.Get("addr");
  if (!addr.IsUndefined() && !addr.IsNull()) e.family = ParseAddr(env, Str(env, addr, "entry.addr"), e.addr);
  else e.family = 0;
  e.cidr = uint8_t(Num(env, o, "cidr", 0, 128, 0));
  e.proto = uint8_t(Num(env, o, "proto", 0, 255, 0));
  e.port = uint16_t(Num(env, o, "port", 0, 65535, 0));
  e.nomatch = Flag(o, "nomatch");
  e.timeout = uint32_t(Num(env, o, "timeout", 0, 4294967295.0, 0, &e.has_timeout));
  bool p, b;
  e.packets = U64(env, o, "packets", &p);
  e.bytes = U64(env, o, "bytes", &b);
  e.has_counters = p || b;
  const Napi::Value c = o.Get("comment");
  if (!c.IsUndefined() && !c.IsNull()) {
    e.comment = Str(env, c, "entry.comment");
    e.has_comment = true;
  }
  return e;
}

Napi::Object EntryObject(Napi::Env env, const SetOptions& opt, const Entry& e) {
  Napi::Object o = Napi::Object::New(env);
  if (opt.type != SetType::kBitmapPort) {
    o.Set("addr", AddrText(e.family, e.addr));
    if (e.cidr) o.Set("cidr", double(e.cidr));
  }
  if (sets::SetTypeHasPort(opt.type)) o.Set("proto", double(e.proto));
  if (sets::SetTypeHasPort(opt.type) || opt.type == SetType::kBitmapPort) o.Set("port", double(e.port));
  if (e.nomatch) o.Set("nomatch", true);
  if (e.has_timeout) o.Set("timeout", double(e.timeout));
  if (e.has_counters) {
    o.Set("packets", Napi::BigInt::New(env, e.packets));
    o.Set("bytes", Napi::BigInt::New(env, e.bytes));
  }
  if (e.has_comment) o.Set("comment", e.comment);
  return o;
}

SetOptions ParseOptions(Napi::Env env, const Napi::Value& v) {
  if (!v.IsObject()) throw Napi::TypeError::New(env, "options must be an object");
  const Napi::Object o = v.As<Napi::Object>();
  SetOptions s;
  const std::string type = Str(env, o.Get("type"), "options.type");
  if (!sets::ParseSetType(type, &s.type)) throw Napi::TypeError::New(env, "Syntax error: typename '" + type + "' is unknown");
  const Napi::Value fam = o.Get("family");
  if (fam.IsUndefined() || fam.IsNull()) s.family = 4;
  else if (fam.IsNumber() && (fam.As<Napi::Number>().Int32Value() == 4 || fam.As<Napi::Number>().Int32Value() == 6))
    s.family = uint8_t(fam.As<Napi::Number>().Int32Value());
  else if (fam.IsString() && fam.As<Napi::String>().Utf8Value() == "inet") s.family = 4;
  else if (fam.IsString() && fam.As<Napi::String>().Utf8Value() == "inet6") s.family = 6;
  else throw Napi::TypeError::New(env, "options.family must be 'inet' or 'inet6'");
  s.hashsize = uint32_t(Num(env, o, "hashsize", 0, 4294967295.0, sets::kDefaultHashSize));
  s.maxelem = uint32_t(Num(env, o, "maxelem", 0, 4294967295.0, sets::kDefaultMaxElem));
  s.timeout = uint32_t(Num(env, o, "timeout", 0, 4294967295.0, 0, &s.has_timeout));
  s.counters = Flag(o, "counters");
  s.comment = Flag(o, "comment");
  s.bucketsize = uint8_t(Num(env, o, "bucketsize", 0, 255, 12));
  s.initval = uint32_t(Num(env, o, "initval", 0, 4294967295.0, 0, &s.has_initval));
  const Napi::Value range = o.Get("range");
  if (s.type == SetType::kBitmapPort) {
    if (!range.IsArray() || range.As<Napi::Array>().Length() != 2)
      throw Napi::TypeError::New(env, "bitmap:port needs options.range [from, to]");
    Napi::Object r = range.As<Napi::Object>();
    s.port_from = uint16_t(Num(env, r, "0", 0, 65535, 0));
    s.port_to = uint16_t(Num(env, r, "1", 0, 65535, 0));
  }
  return s;
}

Napi::Object OptionsObject(Napi::Env env, const SetOptions& s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("type", sets::SetTypeName(s.type));
  if (s.type == SetType::kBitmapPort) {
    Napi::Array r = Napi::Array::New(env, 2);
    r.Set(uint32_t(0), double(s.port_from));
    r.Set(uint32_t(1), double(s.port_to));
    o.Set("range", r);
  } else {
    o.Set("family", s.family == 4 ? "inet" : "inet6");
    o.Set("hashsize", double(s.hashsize));
    o.Set("maxelem", double(s.maxelem));
    o.Set("bucketsize", double(s.bucketsize));
    o.Set("initval", double(s.initval));
  }
  if (s.has_timeout) o.Set("timeout", double(s.timeout));
  o.Set("counters", s.counters);
  o.Set("comment", s.comment);
  return o;
}

Command ParseCommand(Napi::Env env, const Napi::Value& v) {
  if (!v.IsObject()) throw Napi::TypeError::New(env, "restore: each command must be an object");
  const Napi::Object o = v.As<Napi::Object>();
  Command c;
  const std::string op = Str(env, o.Get("op"), "command.op");
  if (op == "create") c.op = Command::Op::kCreate;
  else if (op == "add") c.op = Command::Op::kAdd;
  else if (op == "del") c.op = Command::Op::kDel;
  else if (op == "flush") c.op = Command::Op::kFlush;
  else if (op == "destroy") c.op = Command::Op::kDestroy;
  else if (op == "swap") c.op = Command::Op::kSwap;
  else if (op == "rename") c.op = Command::Op::kRename;
  else throw Napi::TypeError::New(env, "restore: unknown op '" + op + "'");
  const Napi::Value name = o.Get("name");
  if (!name.IsUndefined() && !name.IsNull()) c.name = Str(env, name, "command.name");
  const Napi::Value name2 = o.Get("name2");
  if (!name2.IsUndefined() && !name2.IsNull()) c.name2 = Str(env, name2, "command.name2");
  if (c.op == Command::Op::kCreate) c.options = ParseOptions(env, o.Get("options"));
  if (c.op == Command::Op::kAdd || c.op == Command::Op::kDel) c.entry = ParseEntry(env, o.Get("entry"));
  c.exist = Flag(o, "exist");
  return c;
}

std::string OptName(Napi::Env env, const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return std::string();
  return Str(env, info[i], "name");
}

bool OptFlag(const Napi::CallbackInfo& info, size_t i) {
  return info.Length() > i && !info[i].IsUndefined() && info[i].ToBoolean().Value();
}

// The SetStore constructor of each environment (for dp.sets() and for
// recognising a store passed to replayFrames).
std::mutex ctor_mu;
std::map<napi_env, Napi::FunctionReference*> ctors;

class SetStoreWrap : public Napi::ObjectWrap<SetStoreWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "SetStore",
                       {InstanceMethod("create", &SetStoreWrap::Create),
                        InstanceMethod("destroy", &SetStoreWrap::Destroy),
                        InstanceMethod("flush", &SetStoreWrap::Flush),
                        InstanceMethod("swap", &SetStoreWrap::Swap),
                        InstanceMethod("rename", &SetStoreWrap::Rename),
                        InstanceMethod("add", &SetStoreWrap::Add),
                        InstanceMethod("del", &SetStoreWrap::Del),
                        InstanceMethod("test", &SetStoreWrap::TestEntry),
                        InstanceMethod("restore", &SetStoreWrap::Restore),
                        InstanceMethod("list", &SetStoreWrap::List),
                        InstanceMethod("names", &SetStoreWrap::Names),
                        InstanceMethod("find", &SetStoreWrap::Find),
                        InstanceMethod("describe", &SetStoreWrap::Describe),
                        InstanceMethod("gc", &SetStoreWrap::Gc),
                        InstanceMethod("memoryBytes", &SetStoreWrap::MemoryBytes),
                        InstanceMethod("lookup", &SetStoreWrap::Lookup),
                        InstanceMethod("clone", &SetStoreWrap::Clone)});
  }

  explicit SetStoreWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SetStoreWrap>(info) {
    if (info.Length() > 0 && info[0].IsExternal()) {
      store_ = *info[0].As<Napi::External<std::shared_ptr<SetStore>>>().Data();
    } else {
      store_ = std::make_shared<SetStore>();
    }
  }

  const std::shared_ptr<SetStore>& store() const { return store_; }

 private:
  Napi::Value Create(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const std::string name = Str(env, info[0], "name");
    const SetOptions o = ParseOptions(env, info[1]);
    Guard(env, [&] { store_->Create(name, o, OptFlag(info, 2)); });
    return env.Undefined();
  }
  Napi::Value Destroy(const Napi::CallbackInfo& info) {
    Guard(info.Env(), [&] { store_->Destroy(OptName(info.Env(), info, 0)); });
    return info.Env().Undefined();
  }
  Napi::Value Flush(const Napi::CallbackInfo& info) {
    Guard(info.Env(), [&] { store_->Flush(OptName(info.Env(), info, 0)); });
    return info.Env().Undefined();
  }
  Napi::Value Swap(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const std::string a = Str(env, info[0], "name"), b = Str(env, info[1], "name2");
    Guard(env, [&] { store_->Swap(a, b); });
    return env.Undefined();
  }
  Napi::Value Rename(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const std::string a = Str(env, info[0], "name"), b = Str(env, info[1], "name2");
    Guard(env, [&] { store_->Rename(a, b); });
    return env.Undefined();
  }
  Napi::Value Add(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const std::string name = Str(env, info[0], "name");
    const Entry e = ParseEntry(env, info[1]);
    return Napi::Boolean::New(env, Guard(env, [&] { return store_->Add(name, e, OptFlag(info, 2)); }));
  }
  Napi::Value Del(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const std::string name = Str(env, info[0], "name");
    const Entry e = ParseEntry(env, info[1]);
    return Napi::Boolean::New(env, Guard(env, [&] { return store_->Del(name, e, OptFlag(info, 2)); }));
  }
  Napi::Value TestEntry(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const std::string name = Str(env, info[0], "name");
    const Entry e = ParseEntry(env, info[1]);
    return Napi::Boolean::New(env, Guard(env, [&] { return store_->TestEntry(name, e); }));
  }
  Napi::Value Restore(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsArray()) throw Napi::TypeError::New(env, "restore(commands) takes an array");
    const Napi::Array a = info[0].As<Napi::Array>();
    std::vector<Command> cmds;
    cmds.reserve(a.Length());
    for (uint32_t i = 0; i < a.Length(); ++i) {
      try {
        cmds.push_back(ParseCommand(env, a.Get(i)));
      } catch (Napi::Error& e) {
        e.Set("index", double(i));
        throw;
      }
    }
    Guard(env, [&] { store_->Restore(cmds); });
    return env.Undefined();
  }
  Napi::Value List(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const std::string name = OptName(env, info, 0);
    const bool members = info.Length() < 2 || info[1].IsUndefined() || info[1].ToBoolean().Value();
    const std::vector<sets::SetInfo> l = Guard(env, [&] { return store_->List(name, members); });
    Napi::Array out = Napi::Array::New(env, l.size());
    for (size_t i = 0; i < l.size(); ++i) {
      const sets::SetInfo& s = l[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", s.name);
      o.Set("id", double(s.id));
      o.Set("type", sets::SetTypeName(s.options.type));
      o.Set("revision", double(sets::SetTypeRevision(s.options.type)));
      o.Set("options", OptionsObject(env, s.options));
      o.Set("entries", double(s.entries));
      o.Set("memoryBytes", double(s.memory_bytes));
      if (members) {
        Napi::Array m = Napi::Array::New(env, s.members.size());
        for (size_t j = 0; j < s.members.size(); ++j) m.Set(uint32_t(j), EntryObject(env, s.options, s.members[j]));
        o.Set("members", m);
      }
      out.Set(uint32_t(i), o);
    }
    return out;
  }
  Napi::Value Names(const Napi::CallbackInfo& info) {
    const std::vector<std::string> n = store_->Names();
    Napi::Array a = Napi::Array::New(info.Env(), n.size());
    for (size_t i = 0; i < n.size(); ++i) a.Set(uint32_t(i), n[i]);
    return a;
  }
  Napi::Value Find(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), store_->Find(Str(info.Env(), info[0], "name")));
  }
  // describe(name) -> { id, type, family?, dims } | undefined (cheap: no listing)
  Napi::Value Describe(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const std::string name = Str(env, info[0], "name");
    SetOptions o;
    if (!store_->Describe(name, &o)) return env.Undefined();
    Napi::Object r = Napi::Object::New(env);
    r.Set("id", double(store_->Find(name)));
    r.Set("type", sets::SetTypeName(o.type));
    if (o.type != SetType::kBitmapPort) r.Set("family", o.family == 4 ? "inet" : "inet6");
    r.Set("dims", double(sets::SetTypeDims(o.type)));
    return r;
  }
  Napi::Value Gc(const Napi::CallbackInfo& info) {
    const double b = info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : 65536;
    return Napi::Number::New(info.Env(), double(store_->Gc(size_t(b > 0 ? b : 0))));
  }
  Napi::Value MemoryBytes(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), double(store_->memory_bytes()));
  }
  Napi::Value Lookup(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsNumber() || !info[1].IsArray() || !info[2].IsObject())
      throw Napi::TypeError::New(env, "lookup(id, dirs, key, nowNs?)");
    const double idd = info[0].As<Napi::Number>().DoubleValue();
    const uint32_t id = idd >= 0 && idd < 4294967296.0 ? uint32_t(idd) : UINT32_MAX;
    const Napi::Array da = info[1].As<Napi::Array>();
    uint8_t dirs[8] = {};
    const uint8_t nd = uint8_t(std::min<uint32_t>(da.Length(), 8));
    for (uint8_t i = 0; i < nd; ++i) dirs[i] = uint8_t(da.Get(i).ToNumber().Int32Value());
    const Napi::Object k = info[2].As<Napi::Object>();
    uint32_t src[4], dst[4];
    const uint8_t fs = ParseAddr(env, Str(env, k.Get("src"), "key.src"), src);
    const uint8_t fd = ParseAddr(env, Str(env, k.Get("dst"), "key.dst"), dst);
    if (fs != fd) throw Napi::TypeError::New(env, "key.src and key.dst must be of one family");
    KeyCommon c;
    c.proto = uint8_t(Num(env, k, "proto", 0, 255, 0));
    c.sport = uint16_t(Num(env, k, "sport", 0, 65535, 0));
    c.dport = uint16_t(Num(env, k, "dport", 0, 65535, 0));
    c.icmp = uint16_t(Num(env, k, "icmp", 0, 65535, 0));
    const Napi::Value l4 = k.Get("l4");
    c.flags = l4.IsUndefined() || l4.ToBoolean().Value() ? kKeyHasL4 : 0;
    uint64_t now = SetStore::MonoNs();
    if (info.Length() > 3 && !info[3].IsUndefined()) {
      if (info[3].IsBigInt()) {
        bool lossless;
        now = info[3].As<Napi::BigInt>().Uint64Value(&lossless);
      } else {
        now = uint64_t(info[3].ToNumber().DoubleValue());
      }
    }
    sets::Match m;
    if (fs == 4) {
      PacketKey4 key;
      key.c = c, key.src = src[0], key.dst = dst[0];
      m = store_->Lookup(id, dirs, nd, key, now);
    } else {
      PacketKey6 key;
      key.c = c;
      std::memcpy(key.src, src, sizeof src);
      std::memcpy(key.dst, dst, sizeof dst);
      m = store_->Lookup(id, dirs, nd, key, now);
    }
    return Napi::String::New(env, m == sets::Match::kMatch ? "match" : m == sets::Match::kNomatch ? "nomatch" : "absent");
  }
  Napi::Value Clone(const Napi::CallbackInfo& info) {
    std::shared_ptr<SetStore> copy(store_->Clone().release());
    return WrapSetStore(info.Env(), copy);
  }

  std::shared_ptr<SetStore> store_;
};

Napi::FunctionReference* CtorOf(napi_env env) {
  std::lock_guard<std::mutex> lock(ctor_mu);
  auto it = ctors.find(env);
  return it == ctors.end() ? nullptr : it->second;
}

}  // namespace

Napi::Value WrapSetStore(Napi::Env env, std::shared_ptr<sets::SetStore> store) {
  Napi::FunctionReference* ctor = CtorOf(env);
  if (!ctor) throw Napi::Error::New(env, "SetStore is not initialised");
  auto holder = std::make_unique<std::shared_ptr<SetStore>>(std::move(store));
  Napi::External<std::shared_ptr<SetStore>> ext = Napi::External<std::shared_ptr<SetStore>>::New(env, holder.get());
  Napi::Object o = ctor->New({ext});  // the constructor copies the shared_ptr
  return o;
}

std::shared_ptr<sets::SetStore> SetStoreOf(Napi::Env env, const Napi::Value& v, const char* what) {
  if (v.IsUndefined() || v.IsNull()) return nullptr;
  Napi::FunctionReference* ctor = CtorOf(env);
  if (!ctor || !v.IsObject() || !v.As<Napi::Object>().InstanceOf(ctor->Value()))
    throw Napi::TypeError::New(env, std::string(what) + " must be a SetStore");
  return SetStoreWrap::Unwrap(v.As<Napi::Object>())->store();
}

void InitSets(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = SetStoreWrap::Define(env);
  auto* ref = new Napi::FunctionReference(Napi::Persistent(ctor));
  {
    std::lock_guard<std::mutex> lock(ctor_mu);
    ctors[napi_env(env)] = ref;
  }
  napi_env key = env;
  env.AddCleanupHook([key, ref]() {
    std::lock_guard<std::mutex> lock(ctor_mu);
    ctors.erase(key);
    delete ref;
  });
  exports.Set("SetStore", ctor);
  Napi::Array types = Napi::Array::New(env);
  for (int i = 0; i < sets::kSetTypeCount; ++i) types.Set(uint32_t(i), sets::SetTypeName(SetType(i)));
  exports.Set("setTypes", types);
}

}  // namespace flatwall
