// Each area of the addon registers its exports here; addon.cc calls them all.
#pragma once

#include <napi.h>

#include <memory>

namespace flatwall {

namespace sets {
class SetStore;
}

void InitLayout(Napi::Env env, Napi::Object exports);      // layout.cc
void InitClassifier(Napi::Env env, Napi::Object exports);  // classifier_binding.cc
void InitDataplane(Napi::Env env, Napi::Object exports);   // dataplane_binding.cc
void InitReplay(Napi::Env env, Napi::Object exports);      // replay_binding.cc
void InitSets(Napi::Env env, Napi::Object exports);        // sets_binding.cc

// A JS SetStore object sharing `store` (sets_binding.cc).
Napi::Value WrapSetStore(Napi::Env env, std::shared_ptr<sets::SetStore> store);
// The store of a JS SetStore object; null for undefined/null, TypeError otherwise.
std::shared_ptr<sets::SetStore> SetStoreOf(Napi::Env env, const Napi::Value& v, const char* what);

}  // namespace flatwall
