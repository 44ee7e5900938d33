// Exports the packed-table layout of classifier/rule_table.h to JavaScript,
// so src/rules/pack.ts writes records at offsets it never hard-codes.
#include <cstddef>

#include "addon/bindings.h"
#include "classifier/packet_key.h"
#include "classifier/rule_table.h"
#include "extensions/ext_table.h"

namespace flatwall {
namespace {

template <typename T>
void Field(Napi::Env env, Napi::Object obj, const char* name, size_t offset) {
  Napi::Object f = Napi::Object::New(env);
  f.Set("offset", static_cast<double>(offset));
  f.Set("size", static_cast<double>(sizeof(T)));
  obj.Set(name, f);
}

#define FIELD(obj, S, member) \
  Field<decltype(S::member)>(env, obj, #member, offsetof(S, member))
#define SUBFIELD(obj, S, sub, member) \
  Field<decltype(S::sub.member)>(env, obj, #member, offsetof(S, sub) + offsetof(decltype(S::sub), member))

Napi::Object Common(Napi::Env env, Napi::Object fields) {
  SUBFIELD(fields, RuleRecord4, c, rule_id);
  SUBFIELD(fields, RuleRecord4, c, arg);
  SUBFIELD(fields, RuleRecord4, c, sport_lo);
  SUBFIELD(fields, RuleRecord4, c, sport_hi);
  SUBFIELD(fields, RuleRecord4, c, dport_lo);
  SUBFIELD(fields, RuleRecord4, c, dport_hi);
  SUBFIELD(fields, RuleRecord4, c, iif_lo);
  SUBFIELD(fields, RuleRecord4, c, iif_hi);
  SUBFIELD(fields, RuleRecord4, c, oif_lo);
  SUBFIELD(fields, RuleRecord4, c, oif_hi);
  SUBFIELD(fields, RuleRecord4, c, icmp_lo);
  SUBFIELD(fields, RuleRecord4, c, icmp_hi);
  SUBFIELD(fields, RuleRecord4, c, proto_lo);
  SUBFIELD(fields, RuleRecord4, c, proto_hi);
  SUBFIELD(fields, RuleRecord4, c, tcp_flags_mask);
  SUBFIELD(fields, RuleRecord4, c, tcp_flags_value);
  SUBFIELD(fields, RuleRecord4, c, ct_state_mask);
  SUBFIELD(fields, RuleRecord4, c, flags);
  SUBFIELD(fields, RuleRecord4, c, action);
  return fields;
}

// The packed key layouts (classifier/packet_key.h) the classifier's lookup,
// evaluate and bench functions take, so that the TS side packs keys at
// offsets it never hard-codes.
template <typename Key>
Napi::Object KeyCommonFields(Napi::Env env, Napi::Object fields) {
  SUBFIELD(fields, Key, c, sport);
  SUBFIELD(fields, Key, c, dport);
  SUBFIELD(fields, Key, c, iif);
  SUBFIELD(fields, Key, c, oif);
  SUBFIELD(fields, Key, c, icmp);
  SUBFIELD(fields, Key, c, proto);
  SUBFIELD(fields, Key, c, tcp_flags);
  SUBFIELD(fields, Key, c, ct_state);
  SUBFIELD(fields, Key, c, flags);
  fields.Set("size", static_cast<double>(sizeof(Key)));
  return fields;
}

}  // namespace

void InitLayout(Napi::Env env, Napi::Object exports) {
  Napi::Object layout = Napi::Object::New(env);
  layout.Set("magic", static_cast<double>(kTableMagic));
  layout.Set("version", static_cast<double>(kTableVersion));

  Napi::Object header = Napi::Object::New(env);
  header.Set("size", static_cast<double>(sizeof(TableSetHeader)));
  FIELD(header, TableSetHeader, magic);
  FIELD(header, TableSetHeader, version);
  FIELD(header, TableSetHeader, table_count);
  FIELD(header, TableSetHeader, total_bytes);
  FIELD(header, TableSetHeader, ext_offset);
  layout.Set("header", header);

  Napi::Object desc = Napi::Object::New(env);
  desc.Set("size", static_cast<double>(sizeof(TableDesc)));
  FIELD(desc, TableDesc, family);
  FIELD(desc, TableDesc, hook);
  FIELD(desc, TableDesc, record_size);
  FIELD(desc, TableDesc, count);
  FIELD(desc, TableDesc, offset);
  layout.Set("desc", desc);

  Napi::Object r4 = Common(env, Napi::Object::New(env));
  r4.Set("size", static_cast<double>(sizeof(RuleRecord4)));
  FIELD(r4, RuleRecord4, src_lo);
  FIELD(r4, RuleRecord4, src_hi);
  FIELD(r4, RuleRecord4, dst_lo);
  FIELD(r4, RuleRecord4, dst_hi);
  layout.Set("record4", r4);

  Napi::Object r6 = Common(env, Napi::Object::New(env));
  r6.Set("size", static_cast<double>(sizeof(RuleRecord6)));
  FIELD(r6, RuleRecord6, src_lo);
  FIELD(r6, RuleRecord6, src_hi);
  FIELD(r6, RuleRecord6, dst_lo);
  FIELD(r6, RuleRecord6, dst_hi);
  layout.Set("record6", r6);

  Napi::Object actions = Napi::Object::New(env);
  actions.Set("ACCEPT", static_cast<double>(Action::kAccept));
  actions.Set("DROP", static_cast<double>(Action::kDrop));
  actions.Set("REJECT", static_cast<double>(Action::kReject));
  actions.Set("LOG", static_cast<double>(Action::kLog));
  actions.Set("COUNT", static_cast<double>(Action::kCount));
  actions.Set("SKIP", static_cast<double>(Action::kSkip));
  layout.Set("actions", actions);

  Napi::Object record_flags = Napi::Object::New(env);
  record_flags.Set("NEEDS_L4", static_cast<double>(kRuleNeedsL4));
  record_flags.Set("TCP_FLAGS_INVERT", static_cast<double>(kRuleTcpFlagsInvert));
  record_flags.Set("RETURNS_TO_POLICY", static_cast<double>(kRuleReturnsToPolicy));
  record_flags.Set("HAS_EXT", static_cast<double>(kRuleHasExt));
  record_flags.Set("L4_BEFORE_CT", static_cast<double>(kRuleL4BeforeCt));
  record_flags.Set("L4_BEFORE_ADDR", static_cast<double>(kRuleL4BeforeAddr));
  layout.Set("recordFlags", record_flags);

  // The extension section (extensions/ext_table.h): its magic and the op
  // and state kind numbers, so src/rules/extensions/program.ts never keeps
  // its own copy.
  Napi::Object ext = Napi::Object::New(env);
  ext.Set("magic", static_cast<double>(ext::kSectionMagic));
  Napi::Object ops = Napi::Object::New(env);
#define EXT_OP(name, value) ops.Set(name, static_cast<double>(ext::Op::value))
  EXT_OP("ttl", kTtl); EXT_OP("length", kLength); EXT_OP("tos", kTos); EXT_OP("dscp", kDscp);
  EXT_OP("ecn", kEcn); EXT_OP("pkttype", kPktType); EXT_OP("mac", kMacSource); EXT_OP("addrtype", kAddrType);
  EXT_OP("never", kNever); EXT_OP("ipv6header", kIp6Header); EXT_OP("frag", kIp6Frag); EXT_OP("opts", kIp6Opts);
  EXT_OP("rt", kIp6Rt); EXT_OP("spi", kSpi); EXT_OP("limit", kLimit); EXT_OP("hashlimit", kHashlimit);
  EXT_OP("recent", kRecent); EXT_OP("tcpmss", kTcpMss); EXT_OP("ct", kCt); EXT_OP("set", kSet);
  EXT_OP("connlimit", kConnlimit);
#undef EXT_OP
  ext.Set("ops", ops);
  Napi::Object states = Napi::Object::New(env);
  states.Set("limit", static_cast<double>(ext::StateKind::kLimit));
  states.Set("hashlimit", static_cast<double>(ext::StateKind::kHashlimit));
  states.Set("recent", static_cast<double>(ext::StateKind::kRecent));
  states.Set("connlimit", static_cast<double>(ext::StateKind::kConnlimit));
  ext.Set("states", states);
  layout.Set("ext", ext);

  Napi::Object k4 = KeyCommonFields<PacketKey4>(env, Napi::Object::New(env));
  FIELD(k4, PacketKey4, src);
  FIELD(k4, PacketKey4, dst);
  layout.Set("key4", k4);

  Napi::Object k6 = KeyCommonFields<PacketKey6>(env, Napi::Object::New(env));
  FIELD(k6, PacketKey6, src);  // uint32[4], most significant word first
  FIELD(k6, PacketKey6, dst);
  layout.Set("key6", k6);

  Napi::Object key_flags = Napi::Object::New(env);
  key_flags.Set("HAS_L4", static_cast<double>(kKeyHasL4));
  layout.Set("keyFlags", key_flags);

  Napi::Object ct = Napi::Object::New(env);  // a key carries exactly one
  ct.Set("INVALID", static_cast<double>(kCtInvalid));
  ct.Set("NEW", static_cast<double>(kCtNew));
  ct.Set("ESTABLISHED", static_cast<double>(kCtEstablished));
  ct.Set("RELATED", static_cast<double>(kCtRelated));
  ct.Set("UNTRACKED", static_cast<double>(kCtUntracked));
  layout.Set("ctState", ct);

  exports.Set("layout", layout);
}

}  // namespace flatwall
