// The classifier in JavaScript:
//
//   validateTables(buffer): string | null
//   buildImage(buffer): Promise<ArrayBuffer>  // classifier image (classifier/image.h)
//                                             // of every table, for setRules
//   buildClassifier(buffer, tableIndex, algorithm = 'tuplemerge'): Promise<Classifier>
//   classifier.stats(): {algorithm, family, hook, records, tables, fallbackRecords,
//                        buildSeconds, memoryBytes, bytesPerRule}
//   classifier.lookup(keys, out: Uint32Array, starts?: Uint32Array): void
//   classifier.evaluate(keys, out: Uint32Array): void
//   classifier.makeTrace(n, {seed?, mode?: 'targeted'|'random', locality?}): ArrayBuffer
//   classifier.bench(keys, {batch?, seconds?, minIterations?}):
//       {lookups, seconds, lookupsPerSecond, iterations, checksum}
//
// `buffer` and `keys` are an ArrayBuffer or any view of one (TypedArray,
// DataView, Buffer); keys are packed PacketKey4/6 as layout.key4/key6 give.
// Every argument is checked: misuse throws TypeError or RangeError, an
// invalid table set rejects the promise with the validation message, and no
// input makes the process crash.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "addon/bindings.h"
#include "classifier/classifier.h"
#include "classifier/table_set.h"
#include "classifier/trace.h"

namespace flatwall {
namespace {

// ------------------------------------------------------------- arguments

struct Bytes {
  const uint8_t* data = nullptr;
  size_t size = 0;
};

// An ArrayBuffer or a view of one, else a TypeError naming the argument.
Bytes BytesOf(const Napi::Value& v, const char* what) {
  Napi::Env env = v.Env();
  if (v.IsArrayBuffer()) {
    Napi::ArrayBuffer ab = v.As<Napi::ArrayBuffer>();
    return {static_cast<const uint8_t*>(ab.Data()), ab.ByteLength()};
  }
  if (v.IsTypedArray() || v.IsDataView()) {
    napi_value ab_value;
    size_t offset = 0, length = 0;
    void* base = nullptr;
    if (v.IsTypedArray()) {
      Napi::TypedArray ta = v.As<Napi::TypedArray>();
      offset = ta.ByteOffset();
      length = ta.ByteLength();
      ab_value = ta.ArrayBuffer();
    } else {
      Napi::DataView dv = v.As<Napi::DataView>();
      offset = dv.ByteOffset();
      length = dv.ByteLength();
      ab_value = dv.ArrayBuffer();
    }
    base = Napi::ArrayBuffer(env, ab_value).Data();
    return {static_cast<const uint8_t*>(base) + (base ? offset : 0), base ? length : 0};
  }
  throw Napi::TypeError::New(env, std::string(what) + " must be an ArrayBuffer or a TypedArray");
}

// A Uint32Array with room for n values.
uint32_t* OutArray(const Napi::Value& v, size_t n, const char* what) {
  Napi::Env env = v.Env();
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array)
    throw Napi::TypeError::New(env, std::string(what) + " must be a Uint32Array");
  Napi::Uint32Array a = v.As<Napi::Uint32Array>();
  if (a.ElementLength() < n)
    throw Napi::RangeError::New(env, std::string(what) + " has " +
                                         std::to_string(a.ElementLength()) +
                                         " elements, needs at least " + std::to_string(n));
  return a.Data();
}

double NumberOption(const Napi::Object& o, const char* name, double fallback, double lo, double hi,
                    bool integer) {
  Napi::Env env = o.Env();
  const Napi::Value v = o.Get(name);
  if (v.IsUndefined()) return fallback;
  if (!v.IsNumber())
    throw Napi::TypeError::New(env, std::string("option ") + name + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (std::isnan(d) || d < lo || d > hi || (integer && std::floor(d) != d))
    throw Napi::RangeError::New(env, std::string("option ") + name + " must be " +
                                         (integer ? "an integer " : "a number ") + "in [" +
                                         std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return d;
}

Napi::Object OptionsObject(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || info[i].IsUndefined()) return Napi::Object::New(info.Env());
  if (!info[i].IsObject() || info[i].IsArray())
    throw Napi::TypeError::New(info.Env(), "options must be an object");
  return info[i].As<Napi::Object>();
}

// Keys straight from the caller's memory when aligned (the common case),
// else from an aligned copy.
template <typename Key>
class KeyView {
 public:
  KeyView(const Bytes& b, Napi::Env env) {
    if (b.size % sizeof(Key) != 0)
      throw Napi::RangeError::New(env, "keys: " + std::to_string(b.size) +
                                           " bytes is not a multiple of the key size " +
                                           std::to_string(sizeof(Key)));
    n_ = b.size / sizeof(Key);
    if (reinterpret_cast<uintptr_t>(b.data) % alignof(Key) == 0) {
      keys_ = reinterpret_cast<const Key*>(b.data);
    } else {
      copy_.resize(n_);
      if (n_) std::memcpy(copy_.data(), b.data, b.size);
      keys_ = copy_.data();
    }
  }
  const Key* data() const { return keys_; }
  size_t size() const { return n_; }

 private:
  const Key* keys_ = nullptr;
  size_t n_ = 0;
  std::vector<Key> copy_;
};

// -------------------------------------------------------------- the class

struct Built {
  TableInfo info;
  std::shared_ptr<const Classifier4> v4;
  std::shared_ptr<const Classifier6> v6;
};

class ClassifierObject : public Napi::ObjectWrap<ClassifierObject> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Classifier",
                       {InstanceMethod<&ClassifierObject::Stats>("stats"),
                        InstanceMethod<&ClassifierObject::Lookup>("lookup"),
                        InstanceMethod<&ClassifierObject::EvaluateKeys>("evaluate"),
                        InstanceMethod<&ClassifierObject::MakeTraceJs>("makeTrace"),
                        InstanceMethod<&ClassifierObject::Bench>("bench"),
                        InstanceAccessor<&ClassifierObject::Family>("family"),
                        InstanceAccessor<&ClassifierObject::KeySize>("keySize"),
                        InstanceAccessor<&ClassifierObject::Size>("size")});
  }

  // Only buildClassifier constructs these: it passes the built classifier
  // as an External.
  explicit ClassifierObject(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<ClassifierObject>(info) {
    if (info.Length() != 1 || !info[0].IsExternal())
      throw Napi::TypeError::New(info.Env(), "Classifier cannot be constructed directly; use buildClassifier()");
    Built* b = info[0].As<Napi::External<Built>>().Data();
    built_ = *b;
  }

 private:
  template <typename F4, typename F6>
  auto Dispatch(F4&& f4, F6&& f6) {
    return built_.v4 ? f4(*built_.v4) : f6(*built_.v6);
  }

  Napi::Value Family(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), built_.v4 ? 4 : 6);
  }
  Napi::Value KeySize(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), double(built_.v4 ? sizeof(PacketKey4) : sizeof(PacketKey6)));
  }
  Napi::Value Size(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), double(built_.info.count));
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const BuildStats& s = Dispatch([](const Classifier4& c) -> const BuildStats& { return c.stats(); },
                                   [](const Classifier6& c) -> const BuildStats& { return c.stats(); });
    Napi::Object o = Napi::Object::New(env);
    o.Set("algorithm", s.algorithm);
    o.Set("family", built_.v4 ? 4 : 6);
    o.Set("hook", HookName(uint8_t(built_.info.hook)));
    o.Set("records", double(s.records));
    o.Set("tables", double(s.tables));
    o.Set("fallbackRecords", double(s.fallback_records));
    o.Set("buildSeconds", s.build_seconds);
    o.Set("memoryBytes", double(s.memory_bytes));
    o.Set("bytesPerRule", s.records ? double(s.memory_bytes) / s.records : 0.0);
    return o;
  }

  // lookup(keys, out, starts?): out[i] = first matching record >= starts[i]
  // (0 without starts), 0xffffffff for none.
  Napi::Value Lookup(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2) throw Napi::TypeError::New(env, "lookup(keys, out, starts?) needs keys and out");
    const Bytes keys = BytesOf(info[0], "keys");
    auto run = [&](const auto& c, auto* tag) {
      using Key = std::remove_pointer_t<decltype(tag)>;
      KeyView<Key> kv(keys, env);
      uint32_t* out = OutArray(info[1], kv.size(), "out");
      const uint32_t* starts = nullptr;
      if (info.Length() > 2 && !info[2].IsUndefined() && !info[2].IsNull())
        starts = OutArray(info[2], kv.size(), "starts");
      c.LookupBatch(kv.data(), starts, out, kv.size());
      return env.Undefined();
    };
    return Dispatch([&](const Classifier4& c) { return run(c, static_cast<PacketKey4*>(nullptr)); },
                    [&](const Classifier6& c) { return run(c, static_cast<PacketKey6*>(nullptr)); });
  }

  // evaluate(keys, out): out[i] = the terminal record of key i after
  // following LOG/COUNT/SKIP continuations, 0xffffffff for none.
  Napi::Value EvaluateKeys(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2) throw Napi::TypeError::New(env, "evaluate(keys, out) needs keys and out");
    const Bytes keys = BytesOf(info[0], "keys");
    auto run = [&](const auto& c, auto* tag) {
      using Key = std::remove_pointer_t<decltype(tag)>;
      KeyView<Key> kv(keys, env);
      uint32_t* out = OutArray(info[1], kv.size(), "out");
      for (size_t i = 0; i < kv.size(); ++i) out[i] = Evaluate(c, kv.data()[i]).index;
      return env.Undefined();
    };
    return Dispatch([&](const Classifier4& c) { return run(c, static_cast<PacketKey4*>(nullptr)); },
                    [&](const Classifier6& c) { return run(c, static_cast<PacketKey6*>(nullptr)); });
  }

  Napi::Value MakeTraceJs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsNumber())
      throw Napi::TypeError::New(env, "makeTrace(n, options?): n must be a number");
    const double nd = info[0].As<Napi::Number>().DoubleValue();
    constexpr double kMaxKeys = double(1 << 24);
    if (std::isnan(nd) || nd < 0 || nd > kMaxKeys || std::floor(nd) != nd)
      throw Napi::RangeError::New(env, "makeTrace: n must be an integer in [0, 16777216]");
    const Napi::Object o = OptionsObject(info, 1);
    TraceOptions t;
    t.seed = uint64_t(NumberOption(o, "seed", 1, 0, 9007199254740991.0, true));
    t.locality = NumberOption(o, "locality", 0, 0, 1, false);
    const Napi::Value mode = o.Get("mode");
    if (!mode.IsUndefined()) {
      if (!mode.IsString() || !ParseTraceMode(mode.As<Napi::String>().Utf8Value(), &t.mode))
        throw Napi::TypeError::New(env, "option mode must be 'targeted' or 'random'");
    }
    auto make = [&](const auto& c) {
      using Rec = std::decay_t<decltype(c.record(0))>;
      std::vector<Rec> recs(c.size());
      for (uint32_t i = 0; i < c.size(); ++i) recs[i] = c.record(i);
      const auto keys = MakeTrace(recs.data(), c.size(), size_t(nd), t);
      const size_t bytes = keys.size() * sizeof(keys[0]);
      Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, bytes);
      if (bytes) std::memcpy(ab.Data(), keys.data(), bytes);
      return ab;
    };
    return Dispatch([&](const Classifier4& c) { return make(c); },
                    [&](const Classifier6& c) { return make(c); });
  }

  // Times the native loop alone: one Lookup per key, or LookupBatch over
  // the keys in chunks, repeated over the whole key array until both
  // `seconds` and `minIterations` passes are reached.
  Napi::Value Bench(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1) throw Napi::TypeError::New(env, "bench(keys, options?) needs keys");
    const Bytes keys = BytesOf(info[0], "keys");
    const Napi::Object o = OptionsObject(info, 1);
    const Napi::Value bv = o.Get("batch");
    if (!bv.IsUndefined() && !bv.IsBoolean())
      throw Napi::TypeError::New(env, "option batch must be a boolean");
    const bool batch = bv.IsUndefined() || bv.As<Napi::Boolean>().Value();
    const double seconds = NumberOption(o, "seconds", 1.0, 0, 3600, false);
    const double min_iter = NumberOption(o, "minIterations", 1, 1, 1e9, true);
    uint64_t lookups = 0, iterations = 0, checksum = 0;
    double elapsed = 0;
    auto run = [&](const auto& c, auto* tag) {
      using Key = std::remove_pointer_t<decltype(tag)>;
      KeyView<Key> kv(keys, env);
      if (kv.size() == 0) throw Napi::RangeError::New(env, "bench: no keys");
      constexpr size_t kChunk = 256;  // what a dataplane burst hands over
      uint32_t out[kChunk];
      const auto t0 = std::chrono::steady_clock::now();
      do {
        if (batch) {
          for (size_t i = 0; i < kv.size(); i += kChunk) {
            const size_t m = std::min(kChunk, kv.size() - i);
            c.LookupBatch(kv.data() + i, nullptr, out, m);
            for (size_t j = 0; j < m; ++j) checksum += out[j];
          }
        } else {
          for (size_t i = 0; i < kv.size(); ++i) checksum += c.Lookup(kv.data()[i], 0);
        }
        lookups += kv.size();
        ++iterations;
        elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      } while (elapsed < seconds || double(iterations) < min_iter);
    };
    Dispatch([&](const Classifier4& c) { run(c, static_cast<PacketKey4*>(nullptr)); return 0; },
             [&](const Classifier6& c) { run(c, static_cast<PacketKey6*>(nullptr)); return 0; });
    Napi::Object r = Napi::Object::New(env);
    r.Set("lookups", double(lookups));
    r.Set("seconds", elapsed);
    r.Set("lookupsPerSecond", elapsed > 0 ? double(lookups) / elapsed : 0.0);
    r.Set("iterations", double(iterations));
    r.Set("batch", batch);
    // The sum of all answers, so that two runs over the same keys (batch
    // or not) can be checked to agree.
    r.Set("checksum", double(checksum % (uint64_t(1) << 53)));
    return r;
  }

  Built built_;
};

// ------------------------------------------------------------ the worker

// The Classifier constructor, kept as buildClassifier's function data (not
// as env instance data: that is a single slot the whole addon shares).
struct CtorRef {
  Napi::FunctionReference ctor;
};

// Validates the whole buffer and builds one table's classifier off the JS
// thread. The bytes are copied first: the caller may reuse its buffer.
class BuildWorker : public Napi::AsyncWorker {
 public:
  BuildWorker(Napi::Env env, CtorRef* ctor, std::vector<uint8_t> bytes, uint32_t table,
              std::string algorithm)
      : Napi::AsyncWorker(env),
        ctor_(ctor),
        deferred_(Napi::Promise::Deferred::New(env)),
        bytes_(std::move(bytes)),
        table_(table),
        algorithm_(std::move(algorithm)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      std::vector<TableInfo> tables;
      std::string error;
      if (!ParseTableSet(bytes_.data(), bytes_.size(), &tables, &error)) {
        SetError(error);
        return;
      }
      if (table_ >= tables.size()) {
        range_error_ = true;
        SetError("tableIndex " + std::to_string(table_) + " is out of range: the buffer has " +
                 std::to_string(tables.size()) + " table" + (tables.size() == 1 ? "" : "s"));
        return;
      }
      const TableInfo& info = tables[table_];
      built_.info = info;
      ClassifierOptions o;
      o.algorithm = algorithm_;
      if (info.family == Family::kIPv4) {
        const auto recs = CopyRecords4(bytes_.data(), info);
        built_.v4 = BuildClassifier4(recs.data(), info.count, o);
      } else {
        const auto recs = CopyRecords6(bytes_.data(), info);
        built_.v6 = BuildClassifier6(recs.data(), info.count, o);
      }
      std::vector<uint8_t>().swap(bytes_);
    } catch (const std::bad_alloc&) {
      SetError("out of memory building the classifier");
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    Napi::Object obj = ctor_->ctor.New({Napi::External<Built>::New(env, &built_)});
    deferred_.Resolve(obj);
  }

  void OnError(const Napi::Error& e) override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (range_error_) deferred_.Reject(Napi::RangeError::New(env, e.Message()).Value());
    else deferred_.Reject(e.Value());
  }

 private:
  CtorRef* ctor_;
  Napi::Promise::Deferred deferred_;
  std::vector<uint8_t> bytes_;
  uint32_t table_;
  std::string algorithm_;
  bool range_error_ = false;
  Built built_;
};

Napi::Value BuildClassifierJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2)
    throw Napi::TypeError::New(env, "buildClassifier(buffer, tableIndex, algorithm?) needs a buffer and a table index");
  const Bytes b = BytesOf(info[0], "buffer");
  if (!info[1].IsNumber()) throw Napi::TypeError::New(env, "tableIndex must be a number");
  const double t = info[1].As<Napi::Number>().DoubleValue();
  if (std::isnan(t) || t < 0 || t > 65535 || std::floor(t) != t)
    throw Napi::RangeError::New(env, "tableIndex must be an integer in [0, 65535]");
  std::string algorithm = "tuplemerge";
  if (info.Length() > 2 && !info[2].IsUndefined()) {
    if (!info[2].IsString()) throw Napi::TypeError::New(env, "algorithm must be a string");
    algorithm = info[2].As<Napi::String>().Utf8Value();
    if (!IsKnownAlgorithm(algorithm))
      throw Napi::TypeError::New(env, "unknown algorithm \"" + algorithm + "\" (expected 'tuplemerge' or 'linear')");
  }
  std::vector<uint8_t> bytes(b.data, b.data + b.size);
  auto* worker = new BuildWorker(env, static_cast<CtorRef*>(info.Data()), std::move(bytes),
                                 uint32_t(t), algorithm);
  Napi::Promise p = worker->Promise();
  worker->Queue();
  return p;
}

// Builds every table's classifier as the dataplane would (TableSet::Build,
// default options) and serializes them, off the JS thread. The image is
// handed to JavaScript without a copy.
class ImageWorker : public Napi::AsyncWorker {
 public:
  ImageWorker(Napi::Env env, std::vector<uint8_t> bytes)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), bytes_(std::move(bytes)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      std::string error;
      auto set = TableSet::Build(bytes_.data(), bytes_.size(), ClassifierOptions{}, &error);
      if (!set) {
        SetError(error);
        return;
      }
      image_ = std::make_unique<std::vector<uint8_t>>(set->SaveImage(bytes_.data(), bytes_.size()));
    } catch (const std::bad_alloc&) {
      SetError("out of memory building the classifier image");
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    std::vector<uint8_t>* v = image_.release();
    deferred_.Resolve(Napi::ArrayBuffer::New(env, v->data(), v->size(),
                                             [](Napi::Env, void*, std::vector<uint8_t>* hint) { delete hint; },
                                             v));
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::vector<uint8_t> bytes_;
  std::unique_ptr<std::vector<uint8_t>> image_;
};

Napi::Value BuildImageJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1) throw Napi::TypeError::New(env, "buildImage(buffer) needs a buffer");
  const Bytes b = BytesOf(info[0], "buffer");
  auto* worker = new ImageWorker(env, std::vector<uint8_t>(b.data, b.data + b.size));
  Napi::Promise p = worker->Promise();
  worker->Queue();
  return p;
}

Napi::Value ValidateTablesJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1) throw Napi::TypeError::New(env, "validateTables(buffer) needs a buffer");
  const Bytes b = BytesOf(info[0], "buffer");
  const std::string error = ValidateTableSet(b.data, b.size);
  if (error.empty()) return env.Null();
  return Napi::String::New(env, error);
}

}  // namespace

void InitClassifier(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = ClassifierObject::Define(env);
  auto* ref = new CtorRef{Napi::Persistent(ctor)};
  env.AddCleanupHook([ref]() { delete ref; });
  exports.Set("Classifier", ctor);
  exports.Set("buildClassifier",
              Napi::Function::New(env, BuildClassifierJs, "buildClassifier", ref));
  exports.Set("validateTables", Napi::Function::New(env, ValidateTablesJs, "validateTables"));
  exports.Set("buildImage", Napi::Function::New(env, BuildImageJs, "buildImage"));
}

}  // namespace flatwall
