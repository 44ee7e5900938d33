// The classifier tests' spelling of the shared harness (test/testing.h).
#pragma once

#include "test/testing.h"

namespace flatwall {
namespace cltest {
using testing::Failures;
using testing::RunAll;
}  // namespace cltest
}  // namespace flatwall

#define CL_TEST(name) FW_TEST(name)
#define CL_CHECK(cond) FW_CHECK(cond)
#define CL_CHECK_EQ(a, b) FW_CHECK_EQ(a, b)
