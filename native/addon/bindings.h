// Each area of the addon registers its exports here; addon.cc calls them all.
#pragma once

#include <napi.h>

namespace flatwall {

void InitLayout(Napi::Env env, Napi::Object exports);      // layout.cc
void InitClassifier(Napi::Env env, Napi::Object exports);  // classifier_binding.cc
void InitDataplane(Napi::Env env, Napi::Object exports);   // dataplane_binding.cc
void InitReplay(Napi::Env env, Napi::Object exports);      // replay_binding.cc

}  // namespace flatwall
