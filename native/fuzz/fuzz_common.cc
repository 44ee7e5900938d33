#include "fuzz/fuzz_common.h"

#include <dirent.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "dataplane/bytes.h"

namespace flatwall {
namespace fuzz {

void CheckFailed(const char* file, int line, const char* cond) {
  std::fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n", file, line, cond);
  std::abort();
}

void FixIp4Checksum(uint8_t* f, uint32_t len) {
  if (len < net::kEthHdrLen) return;
  uint32_t off = 12;
  for (int tags = 0; tags < 2; ++tags) {
    const uint16_t t = net::Load16(f + off);
    if (t != net::kEthVlan && t != net::kEthQinQ && t != net::kEthQinQOld) break;
    if (len - off < 6) return;
    off += 4;
  }
  if (net::Load16(f + off) != net::kEthIPv4) return;
  off += 2;
  if (len - off < 20) return;
  uint8_t* ip = f + off;
  const uint32_t ihl = uint32_t(ip[0] & 0xf) * 4;
  if (ihl < 20 || ihl > len - off) return;
  net::Store16(ip + 10, 0);
  net::Store16(ip + 10, net::Csum(ip, ihl));
}

const char* SeedDir() { return std::getenv("FLATWALL_FUZZ_SEEDS"); }

void WriteSeed(const std::string& name, const Bytes& bytes) {
  const std::string path = std::string(SeedDir()) + "/" + name;
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size() || std::fclose(f) != 0) {
    std::perror(path.c_str());
    std::exit(1);
  }
}

std::vector<std::pair<std::string, Bytes>> SeedFiles(const char* env) {
  std::vector<std::pair<std::string, Bytes>> out;
  const char* dir = std::getenv(env);
  if (!dir) return out;
  DIR* d = opendir(dir);
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    const std::string path = std::string(dir) + "/" + e->d_name;
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) continue;
    Bytes b;
    uint8_t buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) b.insert(b.end(), buf, buf + n);
    std::fclose(f);
    out.emplace_back(e->d_name, std::move(b));
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

Bytes Pack(const std::vector<RuleRecord4>& v4, const std::vector<RuleRecord6>& v6) {
  const size_t ntables = (v4.empty() ? 0 : 1) + (v6.empty() ? 0 : 1);
  size_t off = sizeof(TableSetHeader) + ntables * sizeof(TableDesc);
  const size_t total = off + v4.size() * sizeof(RuleRecord4) + v6.size() * sizeof(RuleRecord6);
  Bytes b(total, 0);
  TableSetHeader h{};
  h.magic = kTableMagic;
  h.version = kTableVersion;
  h.table_count = uint16_t(ntables);
  h.total_bytes = uint32_t(total);
  std::memcpy(b.data(), &h, sizeof h);
  size_t t = 0;
  auto put = [&](uint8_t family, size_t rec_size, size_t count, const void* recs) {
    TableDesc d{};
    d.family = family, d.hook = uint8_t(Hook::kForward), d.record_size = uint16_t(rec_size);
    d.count = uint32_t(count), d.offset = uint32_t(off);
    std::memcpy(b.data() + sizeof(TableSetHeader) + t++ * sizeof(TableDesc), &d, sizeof d);
    std::memcpy(b.data() + off, recs, count * rec_size);
    off += count * rec_size;
  };
  if (!v4.empty()) put(4, sizeof(RuleRecord4), v4.size(), v4.data());
  if (!v6.empty()) put(6, sizeof(RuleRecord6), v6.size(), v6.data());
  return b;
}

}  // namespace fuzz
}  // namespace flatwall
