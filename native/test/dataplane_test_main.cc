// Standalone runner for the dataplane's native tests alone (the project's
// flatwall_native_tests runs them too, from native/test/main.cc). Usage:
//   dataplane_tests [name-filter]
#include "test/dataplane_testing.h"

int main(int argc, char** argv) {
  int passed = 0, failed = 0;
  flatwall::dptest::RunAll(argc > 1 ? argv[1] : nullptr, &passed, &failed);
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
