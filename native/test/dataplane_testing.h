// A tiny self-registering test harness for the dataplane's native tests
// (parse_*.cc, dataplane_*.cc). Tests register at static-initialisation time
// with DP_TEST(name) and are run by flatwall::dptest::RunAll(), which the
// native test executable's main() calls (or dataplane_test_main.cc, a
// standalone runner for these tests alone).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

namespace flatwall {
namespace dptest {

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

// Runs every registered test whose name contains `filter` (all when null).
// Prints one line per failed check, and the closing "N passed, N failed".
inline int RunAll(const char* filter = nullptr, int* passed_out = nullptr, int* failed_out = nullptr) {
  int passed = 0, failed = 0;
  for (const Case& c : Registry()) {
    if (filter && !std::strstr(c.name, filter)) continue;
    const int before = Failures();
    c.fn();
    if (Failures() == before) {
      ++passed;
    } else {
      ++failed;
      std::printf("FAIL %s\n", c.name);
    }
  }
  if (passed_out) *passed_out = passed;
  if (failed_out) *failed_out = failed;
  return failed;
}

inline std::string ToStr(const std::string& s) { return "\"" + s + "\""; }
inline std::string ToStr(const char* s) { return ToStr(std::string(s)); }
inline std::string ToStr(bool b) { return b ? "true" : "false"; }
template <typename T>
inline std::string ToStr(T v) { return std::to_string(v); }

// Frames of a classic little-endian microsecond pcap file (what
// pcap/gen_fixtures.py writes). Empty on any error.
inline std::vector<std::vector<uint8_t>> ReadPcap(const std::string& path) {
  std::vector<std::vector<uint8_t>> frames;
  std::ifstream f(path, std::ios::binary);
  uint8_t gh[24];
  if (!f.read(reinterpret_cast<char*>(gh), 24)) return frames;
  uint32_t magic;
  std::memcpy(&magic, gh, 4);
  if (magic != 0xa1b2c3d4) return frames;
  uint8_t rh[16];
  while (f.read(reinterpret_cast<char*>(rh), 16)) {
    uint32_t incl;
    std::memcpy(&incl, rh + 8, 4);
    std::vector<uint8_t> fr(incl);
    if (incl && !f.read(reinterpret_cast<char*>(fr.data()), incl)) break;
    frames.push_back(std::move(fr));
  }
  return frames;
}

inline std::vector<std::string> ReadLines(const std::string& path) {
  std::vector<std::string> lines;
  std::ifstream f(path);
  std::string l;
  while (std::getline(f, l)) lines.push_back(l);
  return lines;
}

// Fixture files live in native/test/pcap; tests run from the repo root
// (ctest sets WORKING_DIRECTORY) or from FLATWALL_SOURCE_DIR.
inline std::string FixturePath(const std::string& name) {
  const char* root = std::getenv("FLATWALL_SOURCE_DIR");
  return (root ? std::string(root) + "/" : std::string()) + "native/test/pcap/" + name;
}

}  // namespace dptest
}  // namespace flatwall

#define DP_TEST(name)                                                          \
  static void name();                                                          \
  static ::flatwall::dptest::Registrar name##_registrar(#name, name);         \
  static void name()

#define DP_CHECK(cond)                                                         \
  do {                                                                         \
    if (!(cond)) {                                                             \
      std::printf("  %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
      ++::flatwall::dptest::Failures();                                        \
    }                                                                          \
  } while (0)

#define DP_CHECK_EQ(a, b)                                                      \
  do {                                                                         \
    const auto dp_a_ = (a);                                                    \
    const auto dp_b_ = (b);                                                    \
    if (!(dp_a_ == dp_b_)) {                                                   \
      std::printf("  %s:%d: %s == %s failed: %s vs %s\n", __FILE__, __LINE__,  \
                  #a, #b, ::flatwall::dptest::ToStr(dp_a_).c_str(),             \
                  ::flatwall::dptest::ToStr(dp_b_).c_str());                            \
      ++::flatwall::dptest::Failures();                                        \
    }                                                                          \
  } while (0)
