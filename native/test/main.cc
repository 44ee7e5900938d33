// The native test executable: the classifier's tests (classifier_test.cc and
// friends, registered with CL_TEST) and the dataplane's (DP_TEST), with one
// closing line for both. Usage: flatwall_native_tests [name-filter]
#include <cstdio>

#include "test/classifier_testing.h"
#include "test/dataplane_testing.h"

int main(int argc, char** argv) {
  const char* filter = argc > 1 ? argv[1] : nullptr;
  int cl_passed = 0, cl_failed = 0, dp_passed = 0, dp_failed = 0;
  flatwall::cltest::RunAll(filter, &cl_passed, &cl_failed);
  flatwall::dptest::RunAll(filter, &dp_passed, &dp_failed);
  std::printf("%d passed, %d failed\n", cl_passed + dp_passed, cl_failed + dp_failed);
  return cl_failed + dp_failed ? 1 : 0;
}
