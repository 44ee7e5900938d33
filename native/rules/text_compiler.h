// The native text path: iptables-save text straight to the packed tables.
//
// Why it exists. The TypeScript front end (src/rules/iptables/parse.ts,
// src/rules/compile.ts) builds a Rule object per rule and compiles the
// objects; at a million rules that is ~8 s of JavaScript and most of a GB of
// heap, while the bytes it ends in (rule_table.h) take 52 MB and the work is
// a tokenizer and a few comparisons per rule. This compiler does the same
// work on plain structs, without JavaScript objects, in a fraction of that.
//
// What it is not: a second rule language. The TypeScript parser and compiler
// stay the definition of what a rule file means, the only source of error
// messages, and the only reader of everything outside the subset below. This
// compiler either returns exactly what the reference returns for the same
// input (the same packed bytes, interface cuts, rule ids, spans, statistics
// and counter identities: src/rules/native-text.test.ts checks every field
// on every generator family and the real-world corpus, and on mutated lines
// with a differential property test), or it declines, naming the first line
// and reason, and the caller runs the reference. It declines on anything it
// does not know (and on every error: an error's text comes from the
// reference), so a rule file never means two things.
//
// The subset: the filter table of either family (other tables skipped with
// --skip-tables), `:CHAIN` lines with counters, `[p:b] -A CHAIN` rules with
// -s/-d/-p/-i/-o and their negations, -m tcp/udp/sctp (--sport, --dport,
// --tcp-flags, --syn), icmp/icmp6 types, multiport, conntrack --ctstate,
// state, comment, and the targets ACCEPT, DROP, REJECT [--reject-with],
// RETURN, -j CHAIN and -g CHAIN (user chains inlined exactly as
// compile.ts's ChainInliner does). Extensions (limit, recent, set, ...),
// LOG, the raw table, -I/-N/-P/-F/-X commands, address lists, host names
// and non-ASCII text are the reference's.
//
// The names it needs (protocols, services, ICMP types, REJECT spellings
// and codes, extension targets) come from the TypeScript tables with each
// call (Names), so they are written down once.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace flatwall {
namespace rules {

struct IcmpName {
  uint8_t type, code_lo, code_hi;
};

// The rule language's name tables (src/rules/iptables/names.ts and the
// target registry), as the caller hands them over.
struct Names {
  std::unordered_map<std::string, uint32_t> protocols;      // PROTO_BY_NAME
  std::unordered_map<std::string, uint32_t> services;       // SERVICES
  std::unordered_map<std::string, IcmpName> icmp, icmpv6;   // ICMP_TYPES, ICMPV6_TYPES
  std::unordered_map<std::string, std::string> reject4, reject6;  // spelling -> canonical
  std::unordered_map<std::string, uint32_t> reject_codes;   // canonical -> RejectWith
  std::unordered_set<std::string> ext_targets;              // -j names of target extensions
};

struct Options {
  bool skip_other_tables = false;
  uint64_t max_rules = UINT64_MAX;  // --max-rules, across files
  uint64_t rules_before = 0;        // rules counted against it before these texts
  uint32_t max_records = 1u << 23;  // per table (--max-records)
  bool file_counters = false;       // collect [p:b] for iptables-restore -c
};

struct TableInfo {
  uint8_t family;
  uint8_t hook;
  uint32_t records;
};

struct SkippedTable {
  std::string file;
  std::string table;
  uint32_t line;
  uint32_t rules;
};

struct FileCounter {
  uint32_t id;
  uint64_t packets, bytes;
};

// What compile.ts's CompiledRuleSet, its stats and the build thread's
// identities hold, for a rule set in the subset.
struct Output {
  std::vector<uint8_t> buffer;  // the packed tables (rule_table.h)
  std::vector<TableInfo> tables;
  std::vector<std::string> iface_cuts;  // IfaceClasses.toJSON()
  uint32_t rule_ids = 0;                // SourceRule ids, policies and the internal id included
  std::vector<uint32_t> span_start, span_end;
  std::vector<uint32_t> fps, keys, keys2;  // counter identities (src/control/counters.ts)
  std::vector<FileCounter> file_counters;
  std::vector<SkippedTable> skipped;
  uint32_t parsed_tables = 0;
  std::vector<std::pair<uint32_t, uint8_t>> table_list;  // each parsed table: its input (AddFile order) and family
  // CompileStats
  std::vector<uint8_t> families;
  uint32_t chains = 0, user_chains = 0, source_rules = 0, records = 0;
  std::vector<std::pair<std::string, uint32_t>> rules_per_hook;  // "ipv4/FORWARD" -> reachable rules
  std::vector<std::pair<std::string, uint32_t>> features;        // in first-seen order
  std::vector<uint32_t> lines;                                   // lines of each input
  double parse_seconds = 0, compile_seconds = 0;
};

class TextCompiler {
 public:
  TextCompiler(const Names& names, const Options& opts);
  ~TextCompiler();
  TextCompiler(const TextCompiler&) = delete;
  TextCompiler& operator=(const TextCompiler&) = delete;

  // Parses one file's text as `family` (4 or 6; the caller detected it as
  // src/rules/family.ts does). False when the text is outside the subset
  // or in error; declined() says where and why, and the compiler is done.
  bool AddFile(const std::string& file, std::string_view text, uint8_t family);
  // The same in chunks of whole lines (each but the last ending in '\n'),
  // so a large text need not be in memory twice.
  bool BeginFile(const std::string& file, uint8_t family);
  bool Feed(std::string_view chunk, bool last);
  bool EndFile();
  // Compiles every file added; false as AddFile.
  bool Compile(Output* out);

  const std::string& declined() const { return declined_; }

 private:
  struct State;
  template <typename Fn>
  bool Step(Fn fn);
  State* s_;
  std::string declined_;
};

}  // namespace rules
}  // namespace flatwall
