// The native test executable: every registered case (classifier, dataplane,
// conntrack; test/testing.h) and one closing line.
// Usage: flatwall_native_tests [name-filter]
#include <cstdio>

#include "test/testing.h"

int main(int argc, char** argv) {
  int passed = 0, failed = 0;
  flatwall::testing::RunAll(argc > 1 ? argv[1] : nullptr, &passed, &failed);
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
