// The native tests' harness, one for every area: self-registering cases
// (FW_TEST) and two checks. A failed check prints where and why and marks
// the case failed; it does not abort, so one run reports every broken case.
// The area headers (classifier_testing.h, dataplane_testing.h) add their
// own fixtures and spell the macros CL_* / DP_*.
#pragma once

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace flatwall {
namespace testing {

struct Case {
  const char* name;
  void (*fn)();
};

inline std::vector<Case>& Registry() {
  static std::vector<Case> cases;
  return cases;
}
inline int& Failures() {
  static int n = 0;
  return n;
}
struct Registrar {
  Registrar(const char* name, void (*fn)()) { Registry().push_back({name, fn}); }
};

inline std::string ToStr(const std::string& s) { return "\"" + s + "\""; }
inline std::string ToStr(const char* s) { return ToStr(std::string(s)); }
inline std::string ToStr(bool b) { return b ? "true" : "false"; }
template <typename T>
inline std::string ToStr(T v) {
  return std::to_string(v);
}

// Runs every case whose name contains `filter` (all when null), printing
// one line per case with its time. Returns the number of failed cases.
inline int RunAll(const char* filter = nullptr, int* passed_out = nullptr, int* failed_out = nullptr) {
  int passed = 0, failed = 0;
  for (const Case& c : Registry()) {
    if (filter && !std::strstr(c.name, filter)) continue;
    const int before = Failures();
    const auto t0 = std::chrono::steady_clock::now();
    c.fn();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const bool ok = Failures() == before;
    std::printf("%s %s (%.2fs)\n", ok ? "ok  " : "FAIL", c.name, s);
    std::fflush(stdout);
    ++(ok ? passed : failed);
  }
  if (passed_out) *passed_out = passed;
  if (failed_out) *failed_out = failed;
  return failed;
}

}  // namespace testing
}  // namespace flatwall

#define FW_TEST(name)                                                     \
  static void name();                                                     \
  static ::flatwall::testing::Registrar name##_registrar(#name, name);   \
  static void name()

#define FW_CHECK(cond)                                                       \
  do {                                                                       \
    if (!(cond)) {                                                           \
      std::printf("  %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      ++::flatwall::testing::Failures();                                     \
    }                                                                        \
  } while (0)

// Checks and prints both values on failure; evaluates each side once.
#define FW_CHECK_EQ(a, b)                                                     \
  do {                                                                        \
    const auto fw_a_ = (a);                                                   \
    const auto fw_b_ = (b);                                                   \
    if (!(fw_a_ == fw_b_)) {                                                  \
      std::printf("  %s:%d: %s == %s failed: %s vs %s\n", __FILE__, __LINE__, \
                  #a, #b, ::flatwall::testing::ToStr(fw_a_).c_str(),          \
                  ::flatwall::testing::ToStr(fw_b_).c_str());                 \
      ++::flatwall::testing::Failures();                                      \
    }                                                                         \
  } while (0)
