// The classifier tests' harness: self-registering cases (CL_TEST) and two
// checks. A failed check prints where and why and marks the case failed; it
// does not abort, so one run reports every broken case.
#pragma once

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace flatwall {
namespace cltest {

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

// Runs every case whose name contains `filter` (all when null), printing
// one line per case with its time.
inline void RunAll(const char* filter, int* passed, int* failed) {
  for (const Case& c : Registry()) {
    if (filter && !std::strstr(c.name, filter)) continue;
    const int before = Failures();
    const auto t0 = std::chrono::steady_clock::now();
    c.fn();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const bool ok = Failures() == before;
    std::printf("%s %s (%.2fs)\n", ok ? "ok  " : "FAIL", c.name, s);
    std::fflush(stdout);
    ++*(ok ? passed : failed);
  }
}

}  // namespace cltest
}  // namespace flatwall

#define CL_TEST(name)                                                        \
  static void name();                                                        \
  static ::flatwall::cltest::Registrar name##_registrar(#name, name);       \
  static void name()

#define CL_CHECK(cond)                                                       \
  do {                                                                       \
    if (!(cond)) {                                                           \
      std::printf("  %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      ++::flatwall::cltest::Failures();                                      \
    }                                                                        \
  } while (0)

// Checks and prints both values on failure; evaluates each side once.
#define CL_CHECK_EQ(a, b)                                                      \
  do {                                                                         \
    const auto cl_a_ = (a);                                                    \
    const auto cl_b_ = (b);                                                    \
    if (!(cl_a_ == cl_b_)) {                                                   \
      std::printf("  %s:%d: %s == %s failed: %s vs %s\n", __FILE__, __LINE__,  \
                  #a, #b, std::to_string(cl_a_).c_str(),                       \
                  std::to_string(cl_b_).c_str());                              \
      ++::flatwall::cltest::Failures();                                        \
    }                                                                          \
  } while (0)
