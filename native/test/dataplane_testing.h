// The dataplane tests' spelling of the shared harness (test/testing.h),
// plus their fixture readers: pcap files and expectation lines from
// native/test/pcap.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "test/testing.h"

namespace flatwall {
namespace dptest {

using testing::Failures;
using testing::RunAll;
using testing::ToStr;

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

#define DP_TEST(name) FW_TEST(name)
#define DP_CHECK(cond) FW_CHECK(cond)
#define DP_CHECK_EQ(a, b) FW_CHECK_EQ(a, b)
