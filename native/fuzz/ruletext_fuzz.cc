// Fuzz target: the native text fast path (rules/text_compiler.h), which
// reads rule files and PUT /rules bodies an operator or a client sends.
//
// Feeds: one byte of options (bit 0: IPv6, bit 1: --skip-tables, bit 2:
// file counters, bit 3: a rule limit of 20, bit 4: --max-records 64), then
// the text, as one file; a second pass feeds the same text as two files
// split at its middle newline.
// Checks: the compiler never reads outside the text and either declines
// (with a reason) or returns a packed buffer that the classifier's own
// validation accepts (classifier/table_set.h ParseTableSet), whose tables
// say the records the buffer holds, whose spans lie inside their tables,
// and whose identity arrays have one entry per rule id.
// Seeds: the repo's rule files (test/fixtures, rules/examples, the corpus),
// which scripts/fuzz.js copies into FLATWALL_FUZZ_RULES, with each option
// byte that applies, and a few hand-written texts of the subset.
#include <cstdlib>
#include <cstring>
#include <string>

#include "classifier/rule_table.h"
#include "classifier/table_set.h"
#include "fuzz/fuzz_common.h"
#include "rules/text_compiler.h"

namespace flatwall {
namespace {

rules::Names MakeNames() {
  rules::Names n;
  n.protocols = {{"all", 0}, {"icmp", 1}, {"tcp", 6}, {"udp", 17}, {"gre", 47}, {"esp", 50}, {"ipv6-icmp", 58}, {"icmpv6", 58}, {"sctp", 132}, {"udplite", 136}};
  n.services = {{"ssh", 22}, {"http", 80}, {"https", 443}, {"domain", 53}};
  n.icmp = {{"echo-request", {8, 0, 255}}, {"port-unreachable", {3, 3, 3}}};
  n.icmpv6 = {{"echo-request", {128, 0, 255}}, {"no-route", {1, 0, 0}}};
  n.reject4 = {{"icmp-port-unreachable", "icmp-port-unreachable"}, {"tcp-reset", "tcp-reset"}, {"icmp-host-prohibited", "icmp-host-prohibited"}};
  n.reject6 = {{"icmp6-port-unreachable", "icmp6-port-unreachable"}, {"tcp-reset", "tcp-reset"}, {"icmp6-no-route", "icmp6-no-route"}};
  n.reject_codes = {{"icmp-port-unreachable", 2}, {"icmp-host-prohibited", 5}, {"tcp-reset", 7}, {"icmp6-no-route", 8}, {"icmp6-port-unreachable", 11}};
  n.ext_targets = {"NFLOG", "TCPMSS", "CT", "NOTRACK"};
  return n;
}

void Check(const rules::Output& out) {
  std::vector<TableInfo> infos;
  std::string error;
  FUZZ_CHECK(ParseTableSet(out.buffer.data(), out.buffer.size(), &infos, &error));
  FUZZ_CHECK(infos.size() == out.tables.size());
  uint32_t records = 0;
  for (size_t i = 0; i < infos.size(); i++) {
    FUZZ_CHECK(infos[i].count == out.tables[i].records);
    records += infos[i].count;
  }
  FUZZ_CHECK(records == out.records);
  FUZZ_CHECK(out.fps.size() == out.rule_ids && out.keys.size() == out.rule_ids && out.keys2.size() == out.rule_ids);
  FUZZ_CHECK(out.span_start.size() == out.rule_ids && out.span_end.size() == out.rule_ids);
  uint32_t largest = 0;
  for (const auto& t : out.tables) largest = std::max(largest, t.records);
  for (uint32_t id = 0; id < out.rule_ids; id++) {
    if (out.span_start[id] == 0xffffffffu) {
      FUZZ_CHECK(out.span_end[id] == 0xffffffffu);
      continue;
    }
    FUZZ_CHECK(out.span_start[id] <= out.span_end[id] && out.span_end[id] < largest);
  }
}

void Run(const uint8_t* data, size_t size, bool split) {
  static const rules::Names names = MakeNames();
  if (size < 1) return;
  const uint8_t o = data[0];
  rules::Options opts;
  opts.skip_other_tables = o & 2;
  opts.file_counters = o & 4;
  if (o & 8) opts.max_rules = 20;
  if (o & 16) opts.max_records = 64;
  const uint8_t family = (o & 1) ? 6 : 4;
  // The text on the heap at its exact size, so a read past it is caught.
  std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  rules::TextCompiler tc(names, opts);
  bool ok;
  if (split) {
    size_t mid = text.find('\n', text.size() / 2);
    if (mid == std::string::npos) return;
    std::string a = text.substr(0, mid), b = text.substr(mid + 1);
    ok = tc.AddFile("a.rules", a, family) && tc.AddFile("b.rules", b, family);
  } else {
    ok = tc.AddFile("fuzz.rules", text, family);
  }
  rules::Output out;
  if (ok && tc.Compile(&out)) {
    Check(out);
  } else {
    FUZZ_CHECK(!tc.declined().empty());
  }
}

void WriteSeeds() {
  const char* const texts[] = {
      "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n:c - [0:0]\n"
      "-A FORWARD -s 10.0.0.0/8 ! -d 10.1.0.0/16 -i eth+ -o wan0 -p tcp -m tcp --sport 1024:65535 --dport 22 -j c\n"
      "-A FORWARD -p udp -m multiport ! --dports 53,123,5000:5100 -j REJECT --reject-with icmp-port-unreachable\n"
      "-A c -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -m conntrack --ctstate NEW -m comment --comment \"a \\\"b\\\"\" -j ACCEPT\n"
      "-A c -p icmp -m icmp --icmp-type 8 -g c2\n-A c -j RETURN\nCOMMIT\n",
      "*nat\n:PREROUTING ACCEPT [0:0]\n[1:2] -A PREROUTING -j ACCEPT\nCOMMIT\n*filter\n:INPUT DROP [5:6]\n:FORWARD ACCEPT [0:0]\n"
      ":OUTPUT ACCEPT [0:0]\n[3:4] -A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT\n-A INPUT -i lo -j ACCEPT\nCOMMIT\n",
  };
  int i = 0;
  for (const char* t : texts) {
    for (uint8_t o : {0, 2, 6, 8, 16}) {
      fuzz::Bytes b{o};
      b.insert(b.end(), t, t + std::strlen(t));
      fuzz::WriteSeed("text-" + std::to_string(i) + "-" + std::to_string(o), b);
    }
    i++;
  }
  const char* v6 =
      "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n"
      "-A FORWARD -s 2001:db8::/32 -d ::ffff:10.0.0.1/128 -p ipv6-icmp -m icmp6 --icmpv6-type echo-request -j ACCEPT\n"
      "-A FORWARD -d 2001:db8::/ffff:ffff:: -p tcp -j REJECT --reject-with tcp-reset\nCOMMIT\n";
  fuzz::Bytes b{1};
  b.insert(b.end(), v6, v6 + std::strlen(v6));
  fuzz::WriteSeed("text-v6", b);
  for (const auto& f : fuzz::SeedFiles("FLATWALL_FUZZ_RULES")) {
    const bool is6 = f.first.size() > 3 && f.first.compare(f.first.size() - 3, 3, ".v6") == 0;
    for (uint8_t o : {0, 2, 4}) {
      fuzz::Bytes s{static_cast<uint8_t>(o | (is6 ? 1 : 0))};
      s.insert(s.end(), f.second.begin(), f.second.end());
      fuzz::WriteSeed("rules-" + f.first + "-" + std::to_string(o), s);
    }
  }
}

}  // namespace
}  // namespace flatwall

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (flatwall::fuzz::SeedDir()) {
    flatwall::WriteSeeds();
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  flatwall::Run(data, size, false);
  flatwall::Run(data, size, true);
  return 0;
}
