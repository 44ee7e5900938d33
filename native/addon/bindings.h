// Each area of the addon registers its exports here; addon.cc calls them all.
#pragma once

#include <napi.h>

#include "conntrack/conntrack.h"
#include <memory>
#include <string>

namespace flatwall {

namespace sets {
class SetStore;
}

void InitLayout(Napi::Env env, Napi::Object exports);      // layout.cc
void InitClassifier(Napi::Env env, Napi::Object exports);  // classifier_binding.cc
void InitDataplane(Napi::Env env, Napi::Object exports);   // dataplane_binding.cc
void InitReplay(Napi::Env env, Napi::Object exports);      // replay_binding.cc
void InitSets(Napi::Env env, Napi::Object exports);        // sets_binding.cc
void InitRules(Napi::Env env, Napi::Object exports);       // rules_binding.cc

// A JS SetStore object sharing `store` (sets_binding.cc).
Napi::Value WrapSetStore(Napi::Env env, std::shared_ptr<sets::SetStore> store);
// The store of a JS SetStore object; null for undefined/null, TypeError otherwise.
std::shared_ptr<sets::SetStore> SetStoreOf(Napi::Env env, const Napi::Value& v, const char* what);

// The conntrack options of the Dataplane and of replayFrames, one parser for
// both (the CLI builds them in src/cli/conntrack-options.ts): conntrack,
// conntrackMax, conntrackTcpLoose, conntrackTimeouts {name: seconds}.
// Absent fields keep the values `c` holds; errors name `who`.
struct ConntrackOptions {
  bool enabled = true;
  uint32_t max = 262144;
  bool tcp_loose = true;  // nf_conntrack_tcp_loose, Linux's default
  ct::Timeouts timeouts;
};
// An IPv4 or IPv6 literal as four host-order words (IPv4 in word 0);
// returns 4 or 6, or 0 when `s` is neither (the caller names it in its error).
uint8_t ParseAddrLiteral(const std::string& s, uint32_t w[4]);  // dataplane_binding.cc

void ParseConntrackOptions(const Napi::Object& o, const char* who, ConntrackOptions* c);  // dataplane_binding.cc

}  // namespace flatwall
