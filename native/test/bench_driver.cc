// Standalone classifier benchmark, for measuring the native code alone
// (the official harness in bench/ goes through the addon's bench()). Not part
// of any build target; compile it by hand:
//
//   g++ -std=c++17 -O3 -Inative -o /tmp/fw_bench native/test/bench_driver.cc
//       native/test/synth.cc native/classifier/{classifier,tuple_merge,linear,trace,table_set}.cc
//   /tmp/fw_bench --shape acl --sizes 1000,100000,1000000 --trace targeted
//
// Prints one line per size: build time, memory, tables, and lookups/s one at
// a time and batched, after cross-checking a sample against a linear scan.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "classifier/classifier.h"
#include "classifier/table_set.h"
#include "classifier/trace.h"
#include "test/synth.h"

using namespace flatwall;

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

template <typename C, typename Key>
double Rate(const C& c, const std::vector<Key>& keys, bool batch, double seconds) {
  std::vector<uint32_t> out(keys.size());
  uint64_t done = 0, sink = 0;
  const double t0 = Now();
  double t = t0;
  do {
    if (batch) {
      c.LookupBatch(keys.data(), nullptr, out.data(), keys.size());
      sink += out[keys.size() / 2];
    } else {
      for (const Key& k : keys) sink += c.Lookup(k, 0);
    }
    done += keys.size();
    t = Now();
  } while (t - t0 < seconds);
  if (sink == 42) std::puts("");
  return double(done) / (t - t0);
}

template <typename Rec>
void Run(const char* name, const std::vector<Rec>& rules, const TraceOptions& topt,
         double seconds, const ClassifierOptions& copt, size_t nkeys, size_t check) {
  const uint32_t n = uint32_t(rules.size());
  const double t0 = Now();
  auto c = BuildClassifier(rules.data(), n, copt);
  const double build = Now() - t0;
  const BuildStats& s = c->stats();
  auto keys = MakeTrace(rules.data(), n, nkeys, topt);
  // Cross-check a sample against the linear scan.
  ClassifierOptions lin;
  lin.algorithm = "linear";
  auto ref = BuildClassifier(rules.data(), n, lin);
  size_t bad = 0;
  const size_t step = std::max<size_t>(1, keys.size() / check);
  std::vector<uint32_t> out(keys.size());
  c->LookupBatch(keys.data(), nullptr, out.data(), keys.size());
  for (size_t i = 0; i < keys.size(); i += step) {
    const uint32_t want = ref->Lookup(keys[i], 0);
    if (c->Lookup(keys[i], 0) != want || out[i] != want) ++bad;
  }
  // The machine is shared: alternate the two modes in short rounds and keep
  // each one's best, which is the least disturbed.
  double single = 0, batched = 0;
  for (int round = 0; round < 5; ++round) {
    single = std::max(single, Rate(*c, keys, false, seconds / 5));
    batched = std::max(batched, Rate(*c, keys, true, seconds / 5));
  }
  std::printf(
      "%-18s %8u build %6.3fs (stats %6.3fs)  %7.1f B/rule  %6.1f MB  tables %3u  fallback %6u  "
      "single %6.2f Mlps  batch %6.2f Mlps  x%.2f  %s\n",
      name, n, build, s.build_seconds, double(s.memory_bytes) / n,
      double(s.memory_bytes) / 1e6, s.tables, s.fallback_records, single / 1e6, batched / 1e6,
      batched / single, bad ? "MISMATCH" : "ok");
  if (bad) std::printf("  %zu mismatches in the sample\n", bad);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  synth::Shape shape = synth::Shape::kAcl;
  std::vector<uint32_t> sizes = {1000, 100000, 1000000};
  TraceOptions topt;
  ClassifierOptions copt;
  double seconds = 1.0;
  int family = 4;
  size_t nkeys = 1 << 20, check = 2000;
  std::vector<std::string> files;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--shape") {
      if (!synth::ParseShape(v, &shape)) return std::fprintf(stderr, "bad shape\n"), 2;
    } else if (a == "--sizes") {
      sizes.clear();
      for (const char* p = v.c_str(); *p;) {
        sizes.push_back(uint32_t(std::strtoul(p, const_cast<char**>(&p), 10)));
        if (*p == ',') ++p;
      }
    } else if (a == "--trace") {
      if (!ParseTraceMode(v, &topt.mode)) return std::fprintf(stderr, "bad trace\n"), 2;
    } else if (a == "--locality") {
      topt.locality = std::atof(v.c_str());
    } else if (a == "--seconds") {
      seconds = std::atof(v.c_str());
    } else if (a == "--algo") {
      copt.algorithm = v;
    } else if (a == "--tables") {
      copt.max_tables = uint32_t(std::atoi(v.c_str()));
    } else if (a == "--limit") {
      copt.collision_limit = uint32_t(std::atoi(v.c_str()));
    } else if (a == "--family") {
      family = std::atoi(v.c_str());
    } else if (a == "--keys") {
      nkeys = size_t(std::atol(v.c_str()));
    } else if (a == "--file") {
      files.push_back(v);
    } else if (a == "--check") {
      check = size_t(std::atol(v.c_str()));
    } else {
      return std::fprintf(stderr, "unknown option %s\n", a.c_str()), 2;
    }
  }
  if (!files.empty()) {
    // Packed table sets (e.g. written from the TS compiler's output): the
    // largest table of each.
    for (const std::string& path : files) {
      std::FILE* f = std::fopen(path.c_str(), "rb");
      if (!f) return std::fprintf(stderr, "cannot open %s\n", path.c_str()), 2;
      std::vector<uint8_t> buf;
      uint8_t chunk[1 << 16];
      for (size_t got; (got = std::fread(chunk, 1, sizeof chunk, f)) > 0;)
        buf.insert(buf.end(), chunk, chunk + got);
      std::fclose(f);
      std::vector<TableInfo> tables;
      std::string error;
      if (!ParseTableSet(buf.data(), buf.size(), &tables, &error))
        return std::fprintf(stderr, "%s: %s\n", path.c_str(), error.c_str()), 2;
      size_t big = 0;
      for (size_t i = 0; i < tables.size(); ++i)
        if (tables[i].count > tables[big].count) big = i;
      const std::string name = path.substr(path.find_last_of('/') + 1);
      if (tables[big].family == Family::kIPv4)
        Run(name.c_str(), CopyRecords4(buf.data(), tables[big]), topt, seconds, copt, nkeys, check);
      else
        Run(name.c_str(), CopyRecords6(buf.data(), tables[big]), topt, seconds, copt, nkeys, check);
    }
    return 0;
  }
  for (uint32_t n : sizes) {
    if (family == 6) Run(synth::ShapeName(shape), synth::Rules6(shape, n, 7), topt, seconds, copt, nkeys, check);
    else Run(synth::ShapeName(shape), synth::Rules4(shape, n, 7), topt, seconds, copt, nkeys, check);
  }
  return 0;
}
