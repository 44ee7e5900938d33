// What the libFuzzer targets of native/fuzz share: a check that aborts (so
// libFuzzer reports it as a crash with the input that caused it), the
// IPv4 header checksum fix-up that lets mutated frames get past the
// parser's checksum test, packing a table set from records, and the seed
// mode every target has: run with FLATWALL_FUZZ_SEEDS=DIR (and
// FLATWALL_FUZZ_FRAMES=DIR of raw frames split from the repo's pcaps by
// scripts/fuzz.js), a target writes its seed corpus in its own input
// format to DIR and exits instead of fuzzing. FLATWALL_FUZZ_VERBOSE=1 makes
// the image, table-set and conntrack targets say what they refused or
// decided (to check that seeds get past the first checks).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "classifier/rule_table.h"

#define FUZZ_CHECK(cond)                                                          \
  do {                                                                            \
    if (!(cond)) ::flatwall::fuzz::CheckFailed(__FILE__, __LINE__, #cond);        \
  } while (0)

namespace flatwall {
namespace fuzz {

[[noreturn]] void CheckFailed(const char* file, int line, const char* cond);

using Bytes = std::vector<uint8_t>;

// Recomputes the IPv4 header checksum of frame[0, len) in place when the
// frame (after up to two VLAN tags) is IPv4 with a header that fits.
void FixIp4Checksum(uint8_t* frame, uint32_t len);

// Little-endian reads that never go past `end` (missing bytes read as 0).
struct Reader {
  const uint8_t* p;
  const uint8_t* end;
  size_t left() const { return size_t(end - p); }
  uint8_t U8() { return p < end ? *p++ : 0; }
  uint16_t U16() {
    const uint16_t lo = U8();
    return uint16_t(lo | U8() << 8);
  }
  // Up to n bytes.
  Bytes Take(size_t n) {
    if (n > left()) n = left();
    Bytes b(p, p + n);
    p += n;
    return b;
  }
};

// Seed mode (see above): the output directory, or null when fuzzing.
const char* SeedDir();
void WriteSeed(const std::string& name, const Bytes& bytes);
// The files of the directory named by environment variable `env`, sorted
// by name, as (name, bytes); none when it is unset.
std::vector<std::pair<std::string, Bytes>> SeedFiles(const char* env);
// The raw frames of FLATWALL_FUZZ_FRAMES (PCAPNAME-NNNN.bin).
inline std::vector<std::pair<std::string, Bytes>> SeedFrames() { return SeedFiles("FLATWALL_FUZZ_FRAMES"); }

// A packed table set (rule_table.h) of one IPv4 and/or one IPv6 FORWARD
// table holding the given records, no extension section.
Bytes Pack(const std::vector<RuleRecord4>& v4, const std::vector<RuleRecord6>& v6);

}  // namespace fuzz
}  // namespace flatwall
