// Module entry point. The addon is loaded once per process by src/native.ts.
#include "addon/bindings.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  flatwall::InitLayout(env, exports);
  flatwall::InitClassifier(env, exports);
  flatwall::InitDataplane(env, exports);
  flatwall::InitReplay(env, exports);
  flatwall::InitSets(env, exports);
  flatwall::InitRules(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(flatwall_native, Init)
