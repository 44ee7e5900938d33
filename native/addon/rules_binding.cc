// compileRuleText(inputs, names, options): the native text path
// (rules/text_compiler.h) for src/rules/native-text.ts. Synchronous: it runs
// on the build thread or in `flatwall check`, never on the thread serving
// the API. Marshalling only.
#include <malloc.h>

#include <cstring>
#include <string>

#include "addon/bindings.h"
#include "classifier/rule_table.h"
#include "rules/text_compiler.h"

namespace flatwall {
namespace {

// A string's UTF-8 into *out, reusing its capacity.
void Utf8Into(Napi::Env env, napi_value v, std::string* out) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, nullptr, 0, &len) != napi_ok) throw Napi::TypeError::New(env, "compileRuleText: expected a string");
  out->resize(len);
  napi_get_value_string_utf8(env, v, out->data(), len + 1, &len);
}

template <typename Fn>
void EachOwn(const Napi::Object& o, Fn fn) {
  Napi::Array keys = o.GetPropertyNames();
  for (uint32_t i = 0; i < keys.Length(); i++) {
    Napi::Value k = keys.Get(i);
    fn(k.ToString().Utf8Value(), o.Get(k));
  }
}

Napi::Object ObjectArg(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsObject()) throw Napi::TypeError::New(o.Env(), std::string("compileRuleText: names.") + key + " must be an object");
  return v.As<Napi::Object>();
}

rules::Names NamesOf(const Napi::Object& o) {
  rules::Names n;
  EachOwn(ObjectArg(o, "protocols"), [&](const std::string& k, Napi::Value v) { n.protocols[k] = v.ToNumber().Uint32Value(); });
  EachOwn(ObjectArg(o, "services"), [&](const std::string& k, Napi::Value v) { n.services[k] = v.ToNumber().Uint32Value(); });
  auto icmp = [](std::unordered_map<std::string, rules::IcmpName>& out, const Napi::Object& src) {
    EachOwn(src, [&](const std::string& k, Napi::Value v) {
      Napi::Array a = v.As<Napi::Array>();
      out[k] = {static_cast<uint8_t>(a.Get(0u).ToNumber().Uint32Value()), static_cast<uint8_t>(a.Get(1u).ToNumber().Uint32Value()),
                static_cast<uint8_t>(a.Get(2u).ToNumber().Uint32Value())};
    });
  };
  icmp(n.icmp, ObjectArg(o, "icmp"));
  icmp(n.icmpv6, ObjectArg(o, "icmpv6"));
  EachOwn(ObjectArg(o, "reject4"), [&](const std::string& k, Napi::Value v) { n.reject4[k] = v.ToString().Utf8Value(); });
  EachOwn(ObjectArg(o, "reject6"), [&](const std::string& k, Napi::Value v) { n.reject6[k] = v.ToString().Utf8Value(); });
  EachOwn(ObjectArg(o, "rejectCodes"), [&](const std::string& k, Napi::Value v) { n.reject_codes[k] = v.ToNumber().Uint32Value(); });
  Napi::Value t = o.Get("extTargets");
  if (!t.IsArray()) throw Napi::TypeError::New(o.Env(), "compileRuleText: names.extTargets must be an array");
  Napi::Array ta = t.As<Napi::Array>();
  for (uint32_t i = 0; i < ta.Length(); i++) n.ext_targets.insert(ta.Get(i).ToString().Utf8Value());
  return n;
}

Napi::Uint32Array U32(Napi::Env env, const std::vector<uint32_t>& v) {
  Napi::Uint32Array a = Napi::Uint32Array::New(env, v.size());
  if (!v.empty()) std::memcpy(a.Data(), v.data(), v.size() * sizeof(uint32_t));
  return a;
}

Napi::Value Compile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsArray() || !info[1].IsObject() || !info[2].IsObject())
    throw Napi::TypeError::New(env, "compileRuleText(inputs, names, options)");
  rules::Names names = NamesOf(info[1].As<Napi::Object>());
  Napi::Object o = info[2].As<Napi::Object>();
  rules::Options opts;
  opts.skip_other_tables = o.Get("skipOtherTables").ToBoolean();
  if (o.Get("maxRules").IsNumber()) {
    double m = o.Get("maxRules").As<Napi::Number>().DoubleValue();
    if (m >= 0 && m < 1.8e19) opts.max_rules = static_cast<uint64_t>(m);
  }
  if (o.Get("rulesBefore").IsNumber()) opts.rules_before = static_cast<uint64_t>(o.Get("rulesBefore").As<Napi::Number>().DoubleValue());
  if (o.Get("maxRecords").IsNumber()) opts.max_records = o.Get("maxRecords").As<Napi::Number>().Uint32Value();
  opts.file_counters = o.Get("fileCounters").ToBoolean();

  rules::TextCompiler tc(names, opts);
  Napi::Array inputs = info[0].As<Napi::Array>();
  Napi::Object result = Napi::Object::New(env);
  std::string buffer;
  for (uint32_t i = 0; i < inputs.Length(); i++) {
    Napi::Object in = inputs.Get(i).As<Napi::Object>();
    std::string file = in.Get("file").ToString().Utf8Value();
    uint8_t family = static_cast<uint8_t>(in.Get("family").ToNumber().Uint32Value());
    bool ok = tc.BeginFile(file, family);
    Napi::Value pv = in.Get("pull");
    if (pv.IsFunction()) {
      // A text still arriving (a request body): pull() blocks until the
      // next whole lines are there and gives them as a Uint8Array over the
      // shared body, or null at its end. Each is fed one call behind, so
      // the last one is known as the last (it need not end in a newline).
      Napi::Function pull = pv.As<Napi::Function>();
      Napi::Value held = env.Null();
      while (ok) {
        // Called through the C API: if pull() throws (the body was
        // abandoned) or the thread is being terminated, return at once with
        // the exception pending. node-addon-api would make an Error of it
        // first, which aborts the process on a terminating thread.
        napi_value got = nullptr;
        if (napi_call_function(env, env.Undefined(), pull, 0, nullptr, &got) != napi_ok) return Napi::Value();
        Napi::Value next(env, got);
        if (!next.IsNull() && !next.IsUndefined() && !next.IsTypedArray())
          throw Napi::TypeError::New(env, "compileRuleText: pull() must return a Uint8Array or null");
        bool end = !next.IsTypedArray();
        if (held.IsTypedArray()) {
          Napi::Uint8Array b = held.As<Napi::Uint8Array>();
          ok = tc.Feed(std::string_view(reinterpret_cast<const char*>(b.Data()), b.ByteLength()), end);
        } else if (end) {
          ok = tc.Feed("", true);
        }
        if (end) break;
        held = next;
      }
      if (!ok || !tc.EndFile()) {
        result.Set("declined", tc.declined());
        return result;
      }
      continue;
    }
    Napi::Value bv = in.Get("bytes");
    if (bv.IsTypedArray()) {
      // Bytes are read where they are: no copy at all.
      Napi::Uint8Array b = bv.As<Napi::Uint8Array>();
      if (!ok || !tc.Feed(std::string_view(reinterpret_cast<const char*>(b.Data()), b.ByteLength()), true) || !tc.EndFile()) {
        result.Set("declined", tc.declined());
        return result;
      }
      continue;
    }
    Napi::Value cv = in.Get("chunks");
    if (!cv.IsArray()) throw Napi::TypeError::New(env, "compileRuleText: inputs[] needs chunks (strings), bytes (a Uint8Array) or pull (a function)");
    Napi::Array chunks = cv.As<Napi::Array>();
    // Each chunk copied into the same buffer in turn: the parsed rules keep
    // nothing of the text, and fresh pages for a whole copy of a large text
    // would cost more than parsing it.
    for (uint32_t c = 0; ok && c < chunks.Length(); c++) {
      Utf8Into(env, chunks.Get(c), &buffer);
      ok = tc.Feed(buffer, c + 1 == chunks.Length());
    }
    if (ok && chunks.Length() == 0) ok = tc.Feed("", true);
    if (!ok || !tc.EndFile()) {
      result.Set("declined", tc.declined());
      return result;
    }
  }
  std::string().swap(buffer);
  rules::Output out;
  if (!tc.Compile(&out)) {
    result.Set("declined", tc.declined());
    return result;
  }
  Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, out.buffer.size());
  std::memcpy(buf.Data(), out.buffer.data(), out.buffer.size());
  std::vector<uint8_t>().swap(out.buffer);
  result.Set("buffer", buf);
  Napi::Array tables = Napi::Array::New(env, out.tables.size());
  for (size_t i = 0; i < out.tables.size(); i++) {
    Napi::Object t = Napi::Object::New(env);
    t.Set("family", out.tables[i].family);
    t.Set("hook", HookName(out.tables[i].hook));
    t.Set("records", out.tables[i].records);
    tables.Set(static_cast<uint32_t>(i), t);
  }
  result.Set("tables", tables);
  Napi::Array cuts = Napi::Array::New(env, out.iface_cuts.size());
  for (size_t i = 0; i < out.iface_cuts.size(); i++) cuts.Set(static_cast<uint32_t>(i), Napi::String::New(env, out.iface_cuts[i]));
  result.Set("ifaceCuts", cuts);
  result.Set("ruleIds", out.rule_ids);
  Napi::Object spans = Napi::Object::New(env);
  spans.Set("start", U32(env, out.span_start));
  spans.Set("end", U32(env, out.span_end));
  result.Set("spans", spans);
  result.Set("fps", U32(env, out.fps));
  result.Set("keys", U32(env, out.keys));
  result.Set("keys2", U32(env, out.keys2));
  Napi::Array fc = Napi::Array::New(env, out.file_counters.size());
  for (size_t i = 0; i < out.file_counters.size(); i++) {
    Napi::Array e = Napi::Array::New(env, 3);
    e.Set(0u, out.file_counters[i].id);
    e.Set(1u, Napi::BigInt::New(env, out.file_counters[i].packets));
    e.Set(2u, Napi::BigInt::New(env, out.file_counters[i].bytes));
    fc.Set(static_cast<uint32_t>(i), e);
  }
  result.Set("fileCounters", fc);
  Napi::Array skipped = Napi::Array::New(env, out.skipped.size());
  for (size_t i = 0; i < out.skipped.size(); i++) {
    Napi::Object s = Napi::Object::New(env);
    s.Set("file", out.skipped[i].file);
    s.Set("table", out.skipped[i].table);
    s.Set("line", out.skipped[i].line);
    s.Set("rules", out.skipped[i].rules);
    skipped.Set(static_cast<uint32_t>(i), s);
  }
  result.Set("skipped", skipped);
  result.Set("parsedTables", out.parsed_tables);
  Napi::Array table_list = Napi::Array::New(env, out.table_list.size());
  for (size_t i = 0; i < out.table_list.size(); i++) {
    Napi::Object t = Napi::Object::New(env);
    t.Set("file", out.table_list[i].first);
    t.Set("family", out.table_list[i].second);
    table_list.Set(static_cast<uint32_t>(i), t);
  }
  result.Set("parsedTableList", table_list);
  Napi::Object stats = Napi::Object::New(env);
  Napi::Array fams = Napi::Array::New(env, out.families.size());
  for (size_t i = 0; i < out.families.size(); i++) fams.Set(static_cast<uint32_t>(i), out.families[i]);
  stats.Set("families", fams);
  stats.Set("chains", out.chains);
  stats.Set("userChains", out.user_chains);
  stats.Set("sourceRules", out.source_rules);
  stats.Set("records", out.records);
  Napi::Object per_hook = Napi::Object::New(env);
  for (const auto& p : out.rules_per_hook) per_hook.Set(p.first, p.second);
  stats.Set("rulesPerHook", per_hook);
  Napi::Object features = Napi::Object::New(env);
  for (const auto& p : out.features) features.Set(p.first, p.second);
  stats.Set("features", features);
  result.Set("stats", stats);
  Napi::Array lines = Napi::Array::New(env, out.lines.size());
  for (size_t i = 0; i < out.lines.size(); i++) lines.Set(static_cast<uint32_t>(i), out.lines[i]);
  result.Set("lines", lines);
  result.Set("parseSeconds", out.parse_seconds);
  result.Set("compileSeconds", out.compile_seconds);
  return result;
}

// The compiler's records of a million rules are hundreds of MB in small
// allocations, freed when it returns, in this thread's malloc arena; glibc
// keeps them unless told, and a build thread's arena is not trimmed by the
// dataplane's malloc_trim after the swap (it runs before this thread ends).
Napi::Value CompileRuleText(const Napi::CallbackInfo& info) {
  Napi::Value r = Compile(info);
#ifdef __GLIBC__
  malloc_trim(0);
#endif
  return r;
}

}  // namespace

void InitRules(Napi::Env env, Napi::Object exports) {
  exports.Set("compileRuleText", Napi::Function::New(env, CompileRuleText, "compileRuleText"));
}

}  // namespace flatwall
