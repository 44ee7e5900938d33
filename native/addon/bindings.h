// Each area of the addon registers its exports here; addon.cc calls them all.
#pragma once

#include <napi.h>

#include "conntrack/conntrack.h"

namespace flatwall {

void InitLayout(Napi::Env env, Napi::Object exports);      // layout.cc
void InitClassifier(Napi::Env env, Napi::Object exports);  // classifier_binding.cc
void InitDataplane(Napi::Env env, Napi::Object exports);   // dataplane_binding.cc
void InitReplay(Napi::Env env, Napi::Object exports);      // replay_binding.cc

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
void ParseConntrackOptions(const Napi::Object& o, const char* who, ConntrackOptions* c);  // dataplane_binding.cc

}  // namespace flatwall
