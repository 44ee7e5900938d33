// See text_compiler.h. Each step names the TypeScript function it mirrors;
// where the two must agree byte for byte (record order, identity keys) the
// comment says so.
#include "rules/text_compiler.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <functional>
#include <cstring>

#include "classifier/rule_table.h"

namespace flatwall {
namespace rules {
namespace {

using u128 = unsigned __int128;
constexpr uint32_t kNone = 0xffffffffu;
constexpr uint32_t kUnspanned = 0xffffffffu;
constexpr size_t kMaxLine = 65536;   // parse.ts MAX_LINE
constexpr size_t kMaxToken = 1023;   // MAX_TOKEN
constexpr size_t kMaxTokens = 254;   // MAX_TOKENS
constexpr size_t kMaxChainName = 28;
constexpr size_t kMaxIfname = 15;
constexpr size_t kMaxComment = 256;
constexpr uint32_t kMaxMultiport = 15;
constexpr uint32_t kIfaceClassMax = 0xffff;

// Thrown to decline; caught at the public entry points.
struct Decline {
  uint32_t line;
  const char* why;
};

[[noreturn]] void No(uint32_t line, const char* why) { throw Decline{line, why}; }

// Match modules, numbered as src/control/counters.ts MODULES (the identity
// key carries the number).
enum Module : uint8_t { kTcp = 0, kUdp = 1, kSctp = 2, kIcmp = 3, kIcmp6 = 4, kMultiport = 5, kConntrack = 7, kState = 8, kComment = 9 };
const char* const kModuleNames[] = {"tcp", "udp", "sctp", "icmp", "icmp6", "multiport", "iprange", "conntrack", "state", "comment"};

enum Target : uint8_t { kAccept, kDrop, kReject, kReturn, kJump, kGoto, kNoTarget };
// counters.ts TARGET_CODE
const uint32_t kTargetCode[] = {1, 2, 3, 5, 6, 7, 8};
// compile.ts TARGET_FEATURE
const char* const kTargetFeature[] = {"-j ACCEPT", "-j DROP", "-j REJECT", "-j RETURN", "-j CHAIN", "-g CHAIN", "no target"};
const char* const kTargetKind[] = {"ACCEPT", "DROP", "REJECT", "RETURN", "jump", "goto", "none"};

// An IPv4 range inline; an IPv6 one as `lo`, an index into State::v6
// (12 bytes a rule side, not 48: a million rules hold two each).
struct Addr {
  bool present = false, neg = false;
  uint32_t lo = 0, hi = 0;
};
struct Iface {
  bool present = false, neg = false, wildcard = false;
  uint32_t name = kNone;  // into State::strings
};
struct Port {
  bool present = false, neg = false;
  uint16_t lo = 0, hi = 0;
};

struct Match {
  uint8_t module;
  Port sport, dport;
  bool flags = false, flags_neg = false;
  uint8_t mask = 0, comp = 0;
  bool type = false, type_neg = false, type_any = false;
  uint8_t icmp_type = 0, code_lo = 0, code_hi = 0;
  uint8_t which = 0;  // multiport: 0 none, 1 sports, 2 dports, 3 ports
  bool ports_neg = false;
  uint8_t ports_n = 0;
  uint32_t ports = 0;  // into State::ports
  bool ct = false, ct_neg = false;
  uint8_t ct_mask = 0;
  uint32_t comment = kNone;  // into State::strings
};

// One rule as parse.ts's Rule holds it, in the fields the subset has.
struct Rule {
  Addr src, dst;
  Iface in, out;
  bool proto = false, proto_neg = false;
  uint8_t proto_v = 0;
  uint8_t target = kNoTarget;
  uint8_t match_count = 0;
  uint8_t reject_code = 0;
  uint32_t reject_with = kNone;  // canonical name, into State::strings
  uint32_t jump = kNone;         // chain index in its table
  uint32_t match_first = 0;
  uint32_t line = 0;
  uint32_t counters = kNone;  // into State::counters
  uint32_t fp = 0, key = 0, key2 = 0;
};

struct Chain {
  std::string name;
  bool builtin = false;
  uint8_t policy = kAccept;
  uint32_t line = 0;
  uint32_t counters = kNone;
  std::vector<uint32_t> rules;  // into State::rule_list
};

struct Table {
  uint8_t family = 4;
  uint32_t file = 0;
  std::vector<Chain> chains;  // built-ins first, then user chains as declared
  std::unordered_map<std::string, uint32_t> by_name;
};

// One record's condition (pack.ts Cond): an inclusive range per field.
enum Field { kSrc, kDst, kSport, kDport, kProto, kIif, kOif, kIcmpF, kFields };
struct Cond {
  u128 lo[kFields], hi[kFields];
  uint8_t tcp_mask, tcp_value, ct;
  bool needs_l4, l4_before_ct;
};

// ---- identity keys (src/control/counters.ts) ------------------------------
// The key is a string of UTF-16 code units; these build the same units.
struct KeyUnits {
  std::vector<uint16_t> u;
  void C(uint32_t v) { u.push_back(static_cast<uint16_t>(v & 0xffff)); }
  void Ch(char c) { u.push_back(static_cast<uint8_t>(c)); }
  void Str(std::string_view s) {
    C(static_cast<uint32_t>(s.size()));
    for (char c : s) Ch(c);
  }
  void Neg(bool present, bool neg) { Ch(!present ? '-' : neg ? '!' : '='); }
  // val(): a number as two units, a bigint (IPv6) as its base-36 text.
  void Val(u128 v, uint8_t family) {
    if (family == 4) {
      uint32_t x = static_cast<uint32_t>(v);
      C(x >> 16);
      C(x & 0xffff);
      return;
    }
    char buf[32];
    int n = 0;
    do {
      uint32_t d = static_cast<uint32_t>(v % 36);
      buf[n++] = static_cast<char>(d < 10 ? '0' + d : 'a' + d - 10);
      v /= 36;
    } while (v != 0);
    C(static_cast<uint32_t>(n));
    while (n > 0) Ch(buf[--n]);
  }
  void AddrKey(bool present, bool neg, u128 lo, u128 hi, uint8_t family) {
    if (!present) return Ch('-');
    Neg(true, neg);
    Val(lo, family);
    Val(hi, family);
  }
  void PortKey(const Port& p) {
    if (!p.present || (!p.neg && p.lo == 0 && p.hi == 65535)) return Ch('-');
    Neg(true, p.neg);
    C(p.lo);
    C(p.hi);
  }
};

// counters.ts keyHashes: FNV-1a (never 0) and a multiply-xorshift.
void KeyHashes(const std::vector<uint16_t>& k, uint32_t* h1, uint32_t* h2) {
  uint32_t h = 0x811c9dc5u;
  uint32_t g = 0x9747b28cu ^ static_cast<uint32_t>(k.size());
  for (uint16_t c : k) {
    h = (h ^ c) * 0x01000193u;
    g = (g ^ c) * 0x5bd1e995u;
    g ^= g >> 15;
  }
  *h1 = h ? h : 1;
  *h2 = g;
}

// counters.ts fieldHash / chainHash.
uint32_t FieldHash(uint32_t h, uint32_t v) { return ((h ^ v) * 0x9e3779b1u) ^ (h >> 15); }
uint32_t ChainHash(uint8_t family, const std::string& chain) {
  uint32_t h = 0x811c9dc5u;
  h = (h ^ static_cast<uint32_t>('0' + family)) * 0x01000193u;
  for (char c : chain) h = (h ^ static_cast<uint8_t>(c)) * 0x01000193u;
  return h;
}

// ---- text -----------------------------------------------------------------

bool IsDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

// parse.ts parseUint: decimal digits, at most 10 of them, at most `max`.
bool ParseUint(std::string_view s, uint64_t max, uint64_t* out) {
  if (s.empty() || s.size() > 10) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v > max) return false;
  *out = v;
  return true;
}

// address.ts parseIPv4: a strict dotted quad.
bool ParseIPv4(std::string_view s, uint32_t* out) {
  uint64_t value = 0;
  uint32_t octet = 0, digits = 0, dots = 0;
  for (char c : s) {
    if (c >= '0' && c <= '9') {
      octet = octet * 10 + static_cast<uint32_t>(c - '0');
      if (++digits > 3 || octet > 255) return false;
    } else if (c == '.') {
      if (digits == 0 || ++dots > 3) return false;
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
    } else {
      return false;
    }
  }
  if (dots != 3 || digits == 0) return false;
  *out = static_cast<uint32_t>(value * 256 + octet);
  return true;
}

bool HexGroup(std::string_view s, uint32_t* out) {
  if (s.empty() || s.size() > 4) return false;
  uint32_t v = 0;
  for (char c : s) {
    uint32_t d;
    if (c >= '0' && c <= '9') d = static_cast<uint32_t>(c - '0');
    else if (c >= 'a' && c <= 'f') d = static_cast<uint32_t>(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') d = static_cast<uint32_t>(c - 'A' + 10);
    else return false;
    v = v * 16 + d;
  }
  *out = v;
  return true;
}

// address.ts parseIPv6's parseSide: groups split on ':', a dotted quad last
// when allowed.
bool ParseSide(std::string_view part, bool v4_tail, std::vector<uint32_t>* out) {
  out->clear();
  if (part.empty()) return true;
  size_t start = 0;
  for (;;) {
    size_t colon = part.find(':', start);
    std::string_view g = part.substr(start, colon == std::string_view::npos ? std::string_view::npos : colon - start);
    bool last = colon == std::string_view::npos;
    if (v4_tail && last && g.find('.') != std::string_view::npos) {
      uint32_t v4;
      if (!ParseIPv4(g, &v4)) return false;
      out->push_back(v4 >> 16);
      out->push_back(v4 & 0xffff);
    } else {
      uint32_t v;
      if (!HexGroup(g, &v)) return false;
      out->push_back(v);
    }
    if (last) return true;
    start = colon + 1;
  }
}

// address.ts parseIPv6: RFC 4291 text, '::' and a trailing dotted quad.
bool ParseIPv6(std::string_view s, u128* out) {
  if (s.size() < 2 || s.size() > 45) return false;
  size_t dbl = s.find("::");
  if (dbl != std::string_view::npos && s.find("::", dbl + 1) != std::string_view::npos) return false;
  std::vector<uint32_t> words, head, tail;
  if (dbl == std::string_view::npos) {
    if (!ParseSide(s, true, &words) || words.size() != 8) return false;
  } else {
    if (!ParseSide(s.substr(0, dbl), false, &head) || !ParseSide(s.substr(dbl + 2), true, &tail)) return false;
    if (head.size() + tail.size() > 7) return false;
    words = head;
    words.resize(8 - tail.size(), 0);
    words.insert(words.end(), tail.begin(), tail.end());
  }
  u128 v = 0;
  for (uint32_t w : words) v = (v << 16) | w;
  *out = v;
  return true;
}

const u128 kV6Max = ~static_cast<u128>(0);

// One line's tokens (parse.ts tokenize): whitespace is space, tab and CR;
// "quoted strings" with backslash escapes inside.
class Tokens {
 public:
  // False when the line is outside what the fast path takes (too long, an
  // unterminated quote, too many or too long tokens: the reference's errors).
  bool Split(std::string_view line) {
    toks_.clear();
    arena_.clear();
    if (line.size() > kMaxLine) return false;
    if (line.find('"') == std::string_view::npos) {
      // The common line: no quotes, so no escapes either; tokens are the
      // runs between spaces, tabs and CRs.
      const char* p = line.data();
      const char* const e = p + line.size();
      for (;;) {
        while (p < e && (*p == ' ' || *p == '\t' || *p == '\r')) p++;
        if (p == e) return true;
        const char* const start = p;
        while (p < e && *p != ' ' && *p != '\t' && *p != '\r') p++;
        const size_t len = static_cast<size_t>(p - start);
        if (len > kMaxToken || toks_.size() == kMaxTokens) return false;
        toks_.emplace_back(start, len);
      }
    }
    arena_.reserve(line.size());
    size_t i = 0, n = line.size();
    while (i < n) {
      char c = line[i];
      if (c == ' ' || c == '\t' || c == '\r') {
        i++;
        continue;
      }
      size_t start = i;
      bool quoted = false, plain = true;
      size_t mark = arena_.size();
      while (i < n) {
        char ch = line[i];
        if (!quoted && (ch == ' ' || ch == '\t' || ch == '\r')) break;
        if (ch == '"') {
          if (plain) arena_.append(line.data() + start, i - start), plain = false;
          quoted = !quoted;
          i++;
          continue;
        }
        if (quoted && ch == '\\' && i + 1 < n) {
          if (plain) arena_.append(line.data() + start, i - start), plain = false;
          arena_.push_back(line[i + 1]);
          i += 2;
          continue;
        }
        if (!plain) arena_.push_back(ch);
        i++;
      }
      if (quoted) return false;
      std::string_view t = plain ? line.substr(start, i - start) : std::string_view(arena_.data() + mark, arena_.size() - mark);
      if (t.empty() || t.size() > kMaxToken || toks_.size() == kMaxTokens) return false;
      toks_.push_back(t);
    }
    return true;
  }
  size_t size() const { return toks_.size(); }
  std::string_view operator[](size_t i) const { return toks_[i]; }

 private:
  std::vector<std::string_view> toks_;
  std::string arena_;  // reserved to the line's length, so views into it stay valid
};

// compile.ts complement / complementUnion
void Complement(u128 lo, u128 hi, u128 max, std::vector<std::pair<u128, u128>>* out) {
  out->clear();
  if (lo > 0) out->push_back({0, lo - 1});
  if (hi < max) out->push_back({hi + 1, max});
}

}  // namespace

struct TextCompiler::State {
  const Names& names;
  const Options& opts;
  std::vector<std::string> files;
  std::vector<Table> tables;
  std::vector<Rule> rule_list;
  std::vector<Match> matches;
  std::vector<std::pair<uint16_t, uint16_t>> ports;
  std::vector<std::pair<uint64_t, uint64_t>> counters;
  std::vector<std::pair<u128, u128>> v6;  // IPv6 address ranges of rules (Addr)
  std::vector<std::string> strings;
  std::unordered_map<std::string, uint32_t> string_ids;
  std::vector<SkippedTable> skipped;
  std::vector<uint32_t> lines;
  KeyUnits key_units;  // one rule's identity key, reused
  uint64_t rules_before;
  double parse_seconds = 0;
  bool failed = false;

  State(const Names& n, const Options& o) : names(n), opts(o), rules_before(o.rules_before) {}

  u128 Lo(const Addr& a, uint8_t family) const { return family == 4 ? u128{a.lo} : v6[a.lo].first; }
  u128 Hi(const Addr& a, uint8_t family) const { return family == 4 ? u128{a.hi} : v6[a.lo].second; }

  uint32_t Intern(std::string_view s) {
    auto it = string_ids.find(std::string(s));
    if (it != string_ids.end()) return it->second;
    uint32_t id = static_cast<uint32_t>(strings.size());
    strings.emplace_back(s);
    string_ids.emplace(strings.back(), id);
    return id;
  }

  // The file being read (BeginFile .. EndFile).
  struct FileCursor {
    uint32_t file_index = 0;
    uint8_t family = 4;
    int table = -1;  // index into tables while in a filter block
    bool skipping = false;
    std::unordered_set<std::string> seen_tables;
    uint64_t parsed = 0, commands = 0;
    uint32_t ln = 0;
    Tokens tk;
    int last_table = -1;  // the chain of the previous rule (a user chain declared later changes no index)
    std::string last_chain;
    uint32_t last_chain_index = 0;
  } cur;

  void BeginFile(const std::string& file, uint8_t family);
  void Feed(std::string_view text, bool last);
  void EndFile();
  void ParseRule(Table& t, uint32_t chain, const Tokens& tk, size_t first, uint32_t line, uint32_t counters);
  void Compile(Output* out);
};

namespace {

// parse.ts isRuleCommand: [counters] -A/-I/--append/--insert.
bool IsRuleCommand(std::string_view s) {
  size_t i = 0, end = s.size();
  while (i < end && (s[i] == ' ' || s[i] == '\t')) i++;
  if (i < end && s[i] == '[') {
    size_t stop = std::min(end, i + 44);
    while (i < stop && s[i] != ']') i++;
    if (i == stop) return false;
    i++;
    while (i < end && (s[i] == ' ' || s[i] == '\t')) i++;
  }
  if (i >= end || s[i] != '-') return false;
  std::string_view r = s.substr(i);
  return r.compare(0, 2, "-A") == 0 || r.compare(0, 2, "-I") == 0 || r.compare(0, 8, "--append") == 0 || r.compare(0, 8, "--insert") == 0;
}

// The skipped table's rule count: /^(\[\d+:\d+\] )?-[AI] / from the first non-blank.
bool SkippedRuleLine(std::string_view s) {
  size_t i = 0;
  if (i < s.size() && s[i] == '[') {
    size_t j = i + 1, d1 = 0, d2 = 0;
    while (j < s.size() && s[j] >= '0' && s[j] <= '9') j++, d1++;
    if (d1 == 0 || j >= s.size() || s[j] != ':') return false;
    j++;
    while (j < s.size() && s[j] >= '0' && s[j] <= '9') j++, d2++;
    if (d2 == 0 || j + 1 >= s.size() || s[j] != ']' || s[j + 1] != ' ') return false;
    i = j + 2;
  }
  return s.size() >= i + 3 && s[i] == '-' && (s[i + 1] == 'A' || s[i + 1] == 'I') && s[i + 2] == ' ';
}

// parseCounters: ^\[(\d+):(\d+)\]$, within 64 bits here.
bool ParseCounters(std::string_view t, uint64_t* p, uint64_t* b) {
  if (t.size() < 5 || t.front() != '[' || t.back() != ']') return false;
  std::string_view in = t.substr(1, t.size() - 2);
  size_t colon = in.find(':');
  if (colon == std::string_view::npos) return false;
  auto num = [](std::string_view s, uint64_t* v) {
    if (!IsDigits(s) || s.size() > 19) return false;
    uint64_t x = 0;
    for (char c : s) x = x * 10 + static_cast<uint64_t>(c - '0');
    *v = x;
    return true;
  };
  return num(in.substr(0, colon), p) && num(in.substr(colon + 1), b);
}

// checkChainName, declining where the reference errs (and on any byte a
// JavaScript \s or a non-ASCII reading could make differ).
bool ChainNameOk(std::string_view n) {
  if (n.empty() || n.size() > kMaxChainName || n[0] == '-' || n[0] == '!') return false;
  for (char c : n)
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f) return false;
  static const char* const reserved[] = {"ACCEPT", "DROP", "REJECT", "RETURN", "LOG", "QUEUE"};
  for (const char* r : reserved)
    if (n == r) return false;
  return true;
}

bool IsBuiltin(std::string_view n) { return n == "INPUT" || n == "FORWARD" || n == "OUTPUT"; }

// The rule options parse.ts's RuleParser switch knows by name.
enum Opt { kOptOther, kOptSrc, kOptDst, kOptProto, kOptIn, kOptOut, kOptMatch, kOptJump, kOptGoto };
Opt Classify(std::string_view o) {
  if (o.size() == 2 && o[0] == '-') {
    switch (o[1]) {
      case 's': return kOptSrc;
      case 'd': return kOptDst;
      case 'p': return kOptProto;
      case 'i': return kOptIn;
      case 'o': return kOptOut;
      case 'm': return kOptMatch;
      case 'j': return kOptJump;
      case 'g': return kOptGoto;
      default: return kOptOther;
    }
  }
  if (o.size() < 5 || o[0] != '-' || o[1] != '-') return kOptOther;
  static const std::pair<std::string_view, Opt> kLong[] = {
      {"--source", kOptSrc}, {"--src", kOptSrc}, {"--destination", kOptDst}, {"--dst", kOptDst}, {"--protocol", kOptProto},
      {"--in-interface", kOptIn}, {"--out-interface", kOptOut}, {"--match", kOptMatch}, {"--jump", kOptJump}, {"--goto", kOptGoto}};
  for (const auto& l : kLong)
    if (o == l.first) return l.second;
  return kOptOther;
}

}  // namespace

void TextCompiler::State::BeginFile(const std::string& file, uint8_t family) {
  if (family != 4 && family != 6) No(0, "family");
  cur = FileCursor{};
  cur.file_index = static_cast<uint32_t>(files.size());
  cur.family = family;
  files.push_back(file);
}

// One chunk of the file's text: whole lines, the last ending the file. The
// chunks come from the caller one at a time into one buffer, so a file of
// any size is never copied whole.
void TextCompiler::State::Feed(std::string_view text, bool last) {
  if (!last && (text.empty() || text.back() != '\n')) No(cur.ln, "a chunk that does not end a line");
  {
    // Eight bytes at a time: any high bit is a non-ASCII byte.
    uint64_t high = 0;
    size_t i = 0;
    for (; i + 8 <= text.size(); i += 8) {
      uint64_t w;
      std::memcpy(&w, text.data() + i, 8);
      high |= w;
    }
    for (; i < text.size(); i++) high |= static_cast<unsigned char>(text[i]);
    if (high & 0x8080808080808080ull) No(cur.ln, "non-ASCII text");
  }
  // Most lines are rules: room for them, growing geometrically.
  const size_t newlines = static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
  if (uint64_t{cur.ln} + newlines + 1 > 0xffffffffu) No(cur.ln, "too many lines");
  if (rule_list.capacity() < rule_list.size() + newlines) rule_list.reserve(std::max(rule_list.capacity() * 2, rule_list.size() + newlines + 1));
  if (matches.capacity() < matches.size() + newlines) matches.reserve(std::max(matches.capacity() * 2, matches.size() + newlines + 1));
  const std::string& file = files[cur.file_index];
  const uint8_t family = cur.family;
  const uint32_t file_index = cur.file_index;
  const bool count_commands = opts.max_rules != UINT64_MAX;
  Tokens& tk = cur.tk;
  int& table = cur.table;
  bool& skipping = cur.skipping;
  std::unordered_set<std::string>& seen_tables = cur.seen_tables;
  uint64_t& parsed = cur.parsed;
  uint32_t& ln = cur.ln;
  // Lines split at '\n'; a chunk that is not the last ends in one, and the
  // empty text after it is the next chunk's start, not a line.
  for (size_t next = 0; next <= text.size();) {
    size_t nl = text.find('\n', next);
    size_t end = nl == std::string_view::npos ? text.size() : nl;
    if (nl == std::string_view::npos && !last) break;
    std::string_view raw = text.substr(next, end - next);
    next = end + 1;
    // The rule limit counts every rule command, skipped tables' too (parse.ts countRuleCommands).
    if (count_commands && IsRuleCommand(raw)) cur.commands++;
    const uint32_t line = ++ln;
    size_t first = 0;
    while (first < raw.size() && (raw[first] == ' ' || raw[first] == '\t' || raw[first] == '\r')) first++;
    if (first == raw.size() || raw[first] == '#') continue;
    if (!tk.Split(raw)) No(line, "line the reference tokenizes");
    std::string_view t0 = tk[0];
    if (t0[0] == '*') {
      if (table >= 0 || skipping || tk.size() > 1) No(line, "table line");
      std::string name(t0.substr(1));
      if (!seen_tables.insert(name).second) No(line, "table twice");
      if (name != "filter") {
        if (name == "raw" || !opts.skip_other_tables) No(line, "table other than filter");
        skipping = true;
        skipped.push_back({file, name, line, 0});
        continue;
      }
      table = static_cast<int>(tables.size());
      tables.emplace_back();
      Table& t = tables.back();
      t.family = family;
      t.file = file_index;
      for (const char* b : {"INPUT", "FORWARD", "OUTPUT"}) {
        t.by_name.emplace(b, static_cast<uint32_t>(t.chains.size()));
        Chain c;
        c.name = b;
        c.builtin = true;
        c.line = line;
        t.chains.push_back(std::move(c));
      }
      continue;
    }
    if (t0 == "COMMIT") {
      if (tk.size() > 1) No(line, "COMMIT with text");
      if (skipping) {
        skipping = false;
        continue;
      }
      if (table < 0) No(line, "COMMIT without a table");
      table = -1;
      continue;
    }
    if (skipping) {
      if (SkippedRuleLine(raw.substr(first))) skipped.back().rules++;
      continue;
    }
    if (table < 0) No(line, "rule outside a table");
    Table& t = tables[static_cast<size_t>(table)];
    if (t0[0] == ':') {
      // parseChainLine
      std::string_view name = t0.substr(1);
      if (!ChainNameOk(name) || tk.size() < 2 || tk.size() > 3) No(line, "chain line");
      uint32_t counters_at = kNone;
      if (tk.size() == 3) {
        uint64_t p, b;
        if (!ParseCounters(tk[2], &p, &b)) No(line, "chain counters");
        counters_at = static_cast<uint32_t>(counters.size());
        counters.push_back({p, b});
      }
      if (IsBuiltin(name)) {
        Chain& c = t.chains[t.by_name.at(std::string(name))];
        if (tk[1] == "ACCEPT") c.policy = kAccept;
        else if (tk[1] == "DROP") c.policy = kDrop;
        else No(line, "policy");
        c.counters = counters_at;
        c.line = line;
        continue;
      }
      if (tk[1] != "-" || t.by_name.count(std::string(name))) No(line, "user chain line");
      t.by_name.emplace(std::string(name), static_cast<uint32_t>(t.chains.size()));
      Chain c;
      c.name = std::string(name);
      c.line = line;
      c.counters = counters_at;
      t.chains.push_back(std::move(c));
      continue;
    }
    size_t at = 0;
    uint32_t counters_at = kNone;
    if (tk[0][0] == '[') {
      uint64_t p, b;
      if (!ParseCounters(tk[0], &p, &b) || tk.size() < 2) No(line, "rule counters");
      counters_at = static_cast<uint32_t>(counters.size());
      counters.push_back({p, b});
      at = 1;
    }
    if (tk[at] != "-A" && tk[at] != "--append") No(line, "command other than -A");
    if (at + 1 >= tk.size()) No(line, "-A without a chain");
    // Rules of a chain come in runs: the last chain looked up first.
    const std::string_view chain_name = tk[at + 1];
    uint32_t chain_index;
    if (cur.last_table == table && chain_name == cur.last_chain) {
      chain_index = cur.last_chain_index;
    } else {
      auto chain = t.by_name.find(std::string(chain_name));
      if (chain == t.by_name.end()) No(line, "chain does not exist");
      chain_index = chain->second;
      cur.last_table = table;
      cur.last_chain.assign(chain_name);
      cur.last_chain_index = chain_index;
    }
    ParseRule(t, chain_index, tk, at + 2, line, counters_at);
    parsed++;
  }
}

void TextCompiler::State::EndFile() {
  if (cur.table >= 0 || cur.skipping) No(cur.ln, "missing COMMIT");
  const uint64_t room = opts.max_rules > rules_before ? opts.max_rules - rules_before : 0;
  if (opts.max_rules != UINT64_MAX && cur.commands > room) No(0, "over the rule limit");
  rules_before += cur.parsed;
  lines.push_back(cur.ln);
}

void TextCompiler::State::ParseRule(Table& t, uint32_t chain, const Tokens& tk, size_t first, uint32_t line, uint32_t counters_at) {
  Rule r;
  r.line = line;
  r.counters = counters_at;
  r.match_first = static_cast<uint32_t>(matches.size());
  const uint8_t family = t.family;
  bool negate = false;
  std::string_view src_text, dst_text;
  bool src_seen = false, dst_seen = false, p_seen = false, i_seen = false, o_seen = false, reject_seen = false;
  // Option keys seen per match instance (parse.ts once()).
  std::pair<uint32_t, uint8_t> once[kMaxTokens];
  size_t onces = 0;
  auto Once = [&](uint32_t m, uint8_t key) {
    for (size_t e = 0; e < onces; e++)
      if (once[e].first == m && once[e].second == key) No(line, "option given twice");
    once[onces++] = {m, key};
  };
  auto TakeNegate = [&](bool negatable) {
    bool n = negate;
    negate = false;
    if (n && !negatable) No(line, "negation not allowed");
    return n;
  };
  size_t i = first;
  auto Value = [&]() -> std::string_view {
    if (i >= tk.size()) No(line, "option without its value");
    return tk[i++];
  };
  auto Family = [&](uint8_t f) {
    if (f != family) No(line, "token of the other family");
  };
  auto ParsePort = [&](std::string_view s) -> uint16_t {
    uint64_t v;
    if (IsDigits(s)) {
      if (!ParseUint(s, 65535, &v)) No(line, "port out of range");
      return static_cast<uint16_t>(v);
    }
    auto it = names.services.find(std::string(s));
    if (it == names.services.end()) No(line, "unknown service");
    return static_cast<uint16_t>(it->second);
  };
  auto ParsePortRange = [&](std::string_view s, uint16_t* lo, uint16_t* hi) {
    size_t colon = s.find(':');
    if (colon == std::string_view::npos) {
      *lo = *hi = ParsePort(s);
      return;
    }
    std::string_view a = s.substr(0, colon), b = s.substr(colon + 1);
    *lo = a.empty() ? 0 : ParsePort(a);
    *hi = b.empty() ? 65535 : ParsePort(b);
    if (*lo > *hi) No(line, "port range min > max");
  };
  auto AddModule = [&](uint8_t module) -> uint32_t {
    if (module == kIcmp) Family(4);
    if (module == kIcmp6) Family(6);
    if (r.match_count == 255) No(line, "too many matches");
    Match m;
    m.module = module;
    matches.push_back(m);
    r.match_count++;
    return static_cast<uint32_t>(matches.size() - 1);
  };
  auto States = [&](std::string_view s, bool nat) -> uint8_t {
    uint32_t mask = 0;
    size_t start = 0;
    for (;;) {
      size_t comma = s.find(',', start);
      std::string part(s.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
      for (char& c : part) c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c);
      if (part == "INVALID") mask |= 1;
      else if (part == "NEW") mask |= 2;
      else if (part == "ESTABLISHED") mask |= 4;
      else if (part == "RELATED") mask |= 8;
      else if (part == "UNTRACKED") mask |= 16;
      else if (nat && part == "SNAT") mask |= 32;
      else if (nat && part == "DNAT") mask |= 64;
      else No(line, "unknown state");
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
    return static_cast<uint8_t>(mask);
  };
  auto FlagList = [&](std::string_view s) -> uint8_t {
    uint32_t v = 0;
    size_t start = 0;
    static const std::pair<const char*, uint8_t> kFlags[] = {{"FIN", 1}, {"SYN", 2}, {"RST", 4}, {"PSH", 8}, {"ACK", 16}, {"URG", 32}};
    for (;;) {
      size_t comma = s.find(',', start);
      std::string_view part = s.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
      if (part == "ALL") v |= 0x3f;
      else if (part != "NONE") {
        bool found = false;
        for (auto& f : kFlags)
          if (part == f.first) v |= f.second, found = true;
        if (!found) No(line, "unknown TCP flag");
      }
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
    return static_cast<uint8_t>(v);
  };
  // parse.ts matchOption: whether match `mi` takes option `o`.
  auto MatchOption = [&](uint32_t mi, std::string_view o) -> bool {
    const uint8_t module = matches[mi].module;
    switch (module) {
      case kTcp: case kUdp: case kSctp: {
        bool src = o == "--sport" || o == "--source-port";
        if (src || o == "--dport" || o == "--destination-port") {
          Once(mi, src ? 1 : 2);
          bool n = TakeNegate(true);
          std::string_view v = Value();
          Port p;
          ParsePortRange(v, &p.lo, &p.hi);
          if (!n && p.lo == 0 && p.hi == 65535) return true;  // the default, held as no range
          p.present = true;
          p.neg = n;
          (src ? matches[mi].sport : matches[mi].dport) = p;
          return true;
        }
        if (module == kTcp && (o == "--tcp-flags" || o == "--syn")) {
          Once(mi, 3);
          bool n = TakeNegate(true);
          Match& m = matches[mi];
          m.flags = true;
          m.flags_neg = n;
          if (o == "--syn") {
            m.mask = 0x17;
            m.comp = 0x02;
          } else {
            std::string_view a = Value();
            std::string_view b = Value();
            uint8_t mask = FlagList(a), comp = FlagList(b);
            matches[mi].mask = mask;
            matches[mi].comp = comp;
          }
          return true;
        }
        if (o == "--tcp-option" || o == "--chunk-types") No(line, "unsupported option");
        return false;
      }
      case kIcmp: case kIcmp6: {
        if (o != (module == kIcmp ? "--icmp-type" : "--icmpv6-type")) return false;
        Once(mi, 4);
        bool n = TakeNegate(true);
        std::string_view s = Value();
        Match& m = matches[mi];
        m.type = true;
        m.type_neg = n;
        if (module == kIcmp && s == "any") {
          m.type_any = true;
          m.code_hi = 255;
          return true;
        }
        const auto& table = module == kIcmp6 ? names.icmpv6 : names.icmp;
        auto it = table.find(std::string(s));
        if (it != table.end()) {
          m.icmp_type = it->second.type;
          m.code_lo = it->second.code_lo;
          m.code_hi = it->second.code_hi;
          return true;
        }
        // ^(\d{1,3})(?:\/(\d{1,3}))?$, each at most 255
        size_t slash = s.find('/');
        std::string_view a = s.substr(0, slash);
        uint64_t ty, code;
        if (a.size() > 3 || !ParseUint(a, 255, &ty)) No(line, "unknown ICMP type");
        m.icmp_type = static_cast<uint8_t>(ty);
        if (slash == std::string_view::npos) {
          m.code_lo = 0;
          m.code_hi = 255;
          return true;
        }
        std::string_view b = s.substr(slash + 1);
        if (b.size() > 3 || !ParseUint(b, 255, &code)) No(line, "unknown ICMP type");
        m.code_lo = m.code_hi = static_cast<uint8_t>(code);
        return true;
      }
      case kMultiport: {
        uint8_t which = o == "--sports" || o == "--source-ports" ? 1 : o == "--dports" || o == "--destination-ports" ? 2 : o == "--ports" ? 3 : 0;
        if (!which) return false;
        if (matches[mi].which) No(line, "multiport twice");
        bool n = TakeNegate(true);
        std::string_view v = Value();
        uint32_t at = static_cast<uint32_t>(ports.size()), count = 0, slots = 0;
        size_t start = 0;
        for (;;) {
          size_t comma = v.find(',', start);
          std::string_view part = v.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
          uint16_t lo, hi;
          ParsePortRange(part, &lo, &hi);
          ports.push_back({lo, hi});
          count++;
          slots += lo == hi ? 1 : 2;
          if (slots > kMaxMultiport) No(line, "too many multiport ports");
          if (comma == std::string_view::npos) break;
          start = comma + 1;
        }
        Match& m = matches[mi];
        m.which = which;
        m.ports_neg = n;
        m.ports = at;
        m.ports_n = static_cast<uint8_t>(count);
        return true;
      }
      case kConntrack:
        if (o == "--ctstate") {
          Once(mi, 5);
          bool n = TakeNegate(true);
          uint8_t mask = States(Value(), true);
          Match& m = matches[mi];
          m.ct = true, m.ct_neg = n, m.ct_mask = mask;
          return true;
        }
        if (o.compare(0, 4, "--ct") == 0) No(line, "conntrack option");
        return false;
      case kState: {
        if (o != "--state") return false;
        Once(mi, 5);
        bool n = TakeNegate(true);
        uint8_t mask = States(Value(), false);
        Match& m = matches[mi];
        m.ct = true, m.ct_neg = n, m.ct_mask = mask;
        return true;
      }
      case kComment: {
        if (o != "--comment") return false;
        Once(mi, 6);
        TakeNegate(false);
        std::string_view v = Value();
        if (v.size() > kMaxComment) No(line, "comment too long");
        matches[mi].comment = Intern(v);
        return true;
      }
    }
    return false;
  };

  while (i < tk.size()) {
    std::string_view o = tk[i++];
    if (o == "!") {
      if (negate) No(line, "double negation");
      negate = true;
      continue;
    }
    if (r.target == kReject && o == "--reject-with") {
      // targetOption
      if (reject_seen) No(line, "option given twice");
      reject_seen = true;
      TakeNegate(false);
      std::string v(Value());
      auto c4 = names.reject4.find(v);
      auto c6 = names.reject6.find(v);
      if (c4 == names.reject4.end() && c6 == names.reject6.end()) No(line, "unknown reject type");
      if (c6 != names.reject6.end() && c4 == names.reject4.end()) Family(6);
      if (c4 != names.reject4.end() && c6 == names.reject6.end()) Family(4);
      const std::string* with = nullptr;
      if (family == 6 && c6 != names.reject6.end()) with = &c6->second;
      if (family == 4 && c4 != names.reject4.end()) with = &c4->second;
      if (!with) No(line, "reject type of the other family");
      auto code = names.reject_codes.find(*with);
      if (code == names.reject_codes.end()) No(line, "reject code");
      r.reject_with = Intern(*with);
      r.reject_code = static_cast<uint8_t>(code->second);
      continue;
    }
    const Opt opt = Classify(o);
    if (opt == kOptSrc || opt == kOptDst) {
      bool src = opt == kOptSrc;
      bool& seen = src ? src_seen : dst_seen;
      if (seen) No(line, "option given twice");
      seen = true;
      bool n = TakeNegate(true);
      (src ? r.src : r.dst).neg = n;
      (src ? src_text : dst_text) = Value();
    } else if (opt == kOptProto) {
      if (p_seen) No(line, "option given twice");
      p_seen = true;
      bool n = TakeNegate(true);
      std::string name(Value());
      for (char& c : name) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
      uint64_t num;
      if (IsDigits(name)) {
        if (!ParseUint(name, 255, &num)) No(line, "unknown protocol");
      } else {
        auto it = names.protocols.find(name);
        if (it == names.protocols.end()) No(line, "unknown protocol");
        num = it->second;
      }
      if (name == "icmp") Family(4);
      else if (name == "ipv6-icmp" || name == "icmpv6") Family(6);
      if (num != 0 || n) r.proto = true, r.proto_neg = n, r.proto_v = static_cast<uint8_t>(num);
    } else if (opt == kOptIn || opt == kOptOut) {
      bool out = opt == kOptOut;
      bool& seen = out ? o_seen : i_seen;
      if (seen) No(line, "option given twice");
      seen = true;
      bool n = TakeNegate(true);
      std::string_view s = Value();
      // parseIface; names of printable ASCII only here (a JavaScript \s and
      // the successor of a prefix's last character stay the same).
      if (s.empty() || s.size() > kMaxIfname) No(line, "interface name length");
      bool wildcard = s.back() == '+';
      std::string_view name = wildcard ? s.substr(0, s.size() - 1) : s;
      for (char c : name)
        if (c <= 0x20 || c == 0x7f || c == '/' || c == '+') No(line, "interface name");
      Iface& f = out ? r.out : r.in;
      f.present = true, f.neg = n, f.wildcard = wildcard, f.name = Intern(name);
    } else if (opt == kOptMatch) {
      if (negate) No(line, "negated -m");
      std::string_view v = Value();
      uint8_t module;
      if (v == "tcp") module = kTcp;
      else if (v == "udp") module = kUdp;
      else if (v == "sctp") module = kSctp;
      else if (v == "icmp") module = kIcmp;
      else if (v == "icmp6") module = kIcmp6;
      else if (v == "multiport") module = kMultiport;
      else if (v == "conntrack") module = kConntrack;
      else if (v == "state") module = kState;
      else if (v == "comment") module = kComment;
      else No(line, "match module outside the subset");
      AddModule(module);
    } else if (opt == kOptJump || opt == kOptGoto) {
      if (negate) No(line, "negated target");
      if (r.target != kNoTarget) No(line, "two targets");
      bool is_goto = opt == kOptGoto;
      std::string name(Value());
      if (!is_goto && names.ext_targets.count(name)) No(line, "target extension");
      if (is_goto || (name != "ACCEPT" && name != "DROP" && name != "REJECT" && name != "RETURN" && name != "LOG")) {
        auto c = t.by_name.find(name);
        if (IsBuiltin(name) || name == "PREROUTING" || name == "POSTROUTING" || c == t.by_name.end()) No(line, "jump target");
        r.target = is_goto ? kGoto : kJump;
        r.jump = c->second;
      } else if (name == "ACCEPT") r.target = kAccept;
      else if (name == "DROP") r.target = kDrop;
      else if (name == "RETURN") r.target = kReturn;
      else if (name == "REJECT") {
        r.target = kReject;
        const std::string with = family == 6 ? "icmp6-port-unreachable" : "icmp-port-unreachable";
        auto code = names.reject_codes.find(with);
        if (code == names.reject_codes.end()) No(line, "reject code");
        r.reject_with = Intern(with);
        r.reject_code = static_cast<uint8_t>(code->second);
      } else {
        No(line, "LOG");
      }
    } else if (o.size() > 2 && o[0] == '-' && o[1] == '-') {
      // moduleOption: the latest loaded match that knows it, else the
      // protocol's own match, loaded implicitly.
      bool taken = false;
      for (uint32_t k = r.match_count; k-- > 0 && !taken;) taken = MatchOption(r.match_first + k, o);
      if (taken) continue;
      if (r.proto && !r.proto_neg) {
        int implicit = r.proto_v == 6 ? kTcp : r.proto_v == 17 ? kUdp : r.proto_v == 132 ? kSctp : r.proto_v == 1 ? kIcmp : r.proto_v == 58 ? kIcmp6 : -1;
        bool loaded = false;
        for (uint32_t k = 0; k < r.match_count; k++) loaded |= matches[r.match_first + k].module == implicit;
        if (implicit >= 0 && !loaded) {
          uint32_t mi = AddModule(static_cast<uint8_t>(implicit));
          if (MatchOption(mi, o)) continue;
        }
      }
      No(line, "unknown option");
    } else {
      No(line, "option outside the subset");
    }
  }
  if (negate) No(line, "trailing negation");
  // checkInterfaces
  const std::string& cname = t.chains[chain].name;
  if (r.out.present && cname == "INPUT") No(line, "-o in INPUT");
  if (r.in.present && cname == "OUTPUT") No(line, "-i in OUTPUT");
  // validate
  const int proto = r.proto && !r.proto_neg ? r.proto_v : -1;
  for (uint32_t k = 0; k < r.match_count; k++) {
    Match& m = matches[r.match_first + k];
    switch (m.module) {
      case kTcp: if (proto != 6) No(line, "-m tcp without -p tcp"); break;
      case kUdp: if (proto != 17) No(line, "-m udp without -p udp"); break;
      case kSctp: if (proto != 132) No(line, "-m sctp without -p sctp"); break;
      case kIcmp:
        if (proto != 1) No(line, "-m icmp without -p icmp");
        if (!m.type) m.type = true, m.type_any = true, m.code_hi = 255;
        break;
      case kIcmp6:
        if (proto != 58 || !m.type) No(line, "-m icmp6");
        break;
      case kMultiport:
        if (!(proto == 6 || proto == 17 || proto == 132 || proto == 136 || proto == 33) || !m.which) No(line, "-m multiport");
        break;
      case kState: if (!m.ct) No(line, "-m state without --state"); break;
      case kComment: if (m.comment == kNone) No(line, "-m comment without --comment"); break;
      default: break;
    }
  }
  if (r.target == kReject && strings[r.reject_with] == "tcp-reset" && proto != 6) No(line, "tcp-reset without -p tcp");
  // expandAddresses, one address each here (a list is the reference's).
  auto Address = [&](std::string_view s, Addr* a) {
    if (s.find(',') != std::string_view::npos) No(line, "address list");
    if (s.find(':') != std::string_view::npos) Family(6);
    else if (!s.empty() && s[0] >= '0' && s[0] <= '9') Family(4);
    size_t slash = s.find('/');
    std::string_view addr = s.substr(0, slash);
    bool has_mask = slash != std::string_view::npos;
    std::string_view mask = has_mask ? s.substr(slash + 1) : std::string_view();
    uint32_t len;
    if (family == 4) {
      uint32_t v;
      if (!ParseIPv4(addr, &v)) No(line, "IPv4 address");
      len = 32;
      if (has_mask) {
        uint64_t l;
        if (mask.find('.') != std::string_view::npos) {
          uint32_t mv;
          if (!ParseIPv4(mask, &mv)) No(line, "netmask");
          uint32_t inv = ~mv;
          if (((inv + 1) & inv) != 0 && inv != 0xffffffffu) No(line, "netmask");
          len = 32 - static_cast<uint32_t>(__builtin_popcount(inv));
        } else {
          if (!ParseUint(mask, 32, &l)) No(line, "prefix length");
          len = static_cast<uint32_t>(l);
        }
      }
      uint64_t size = 1ull << (32 - len);
      uint64_t lo = v - (v % size);
      a->lo = static_cast<uint32_t>(lo);
      a->hi = static_cast<uint32_t>(lo + size - 1);
      a->present = a->neg || !(a->lo == 0 && a->hi == 0xffffffffu);  // isFull
      return;
    }
    u128 v;
    if (!ParseIPv6(addr, &v)) No(line, "IPv6 address");
    len = 128;
    if (has_mask) {
      uint64_t l;
      if (mask.find(':') != std::string_view::npos) {
        u128 mv;
        if (!ParseIPv6(mask, &mv)) No(line, "netmask");
        u128 inv = ~mv;
        if (((inv + 1) & inv) != 0) No(line, "netmask");
        uint32_t bits = 0;
        for (u128 x = inv; x; x >>= 1) bits++;
        len = 128 - bits;
      } else {
        if (!ParseUint(mask, 128, &l)) No(line, "prefix length");
        len = static_cast<uint32_t>(l);
      }
    }
    u128 host = len == 0 ? kV6Max : len == 128 ? 0 : ((static_cast<u128>(1) << (128 - len)) - 1);
    const u128 lo = v & ~host, hi = lo | host;
    a->present = a->neg || !(lo == 0 && hi == kV6Max);
    a->lo = a->hi = static_cast<uint32_t>(v6.size());
    v6.push_back({lo, hi});
  };
  if (src_seen) Address(src_text, &r.src);
  if (dst_seen) Address(dst_text, &r.dst);

  // The counter identities (counters.ts fingerprintWith, ruleKey).
  const std::string& ck = cname;
  uint32_t h = ChainHash(family, ck);
  auto low32 = [&](const Addr& a, bool hi) { return a.present ? static_cast<uint32_t>(hi ? Hi(a, family) : Lo(a, family)) : 0x5bd1e995u; };
  h = FieldHash(h, low32(r.src, false));
  h = FieldHash(h, low32(r.src, true));
  h = FieldHash(h, low32(r.dst, false));
  h = FieldHash(h, low32(r.dst, true));
  h = FieldHash(h, r.proto ? r.proto_v : 0x10000u);
  h = FieldHash(h, (kTargetCode[r.target] << 8) | r.match_count);
  if (r.match_count) h = FieldHash(h, static_cast<uint32_t>(std::strlen(kModuleNames[matches[r.match_first].module])));
  r.fp = h;
  KeyUnits& k = key_units;
  k.u.clear();
  k.Ch(static_cast<char>('0' + family));
  k.Ch('\t');
  for (char c : ck) k.Ch(c);
  k.Ch('\t');
  for (const Addr* a : {&r.src, &r.dst}) k.AddrKey(a->present, a->neg, a->present ? Lo(*a, family) : 0, a->present ? Hi(*a, family) : 0, family);
  for (const Iface* f : {&r.in, &r.out}) {
    if (!f->present) {
      k.Ch('-');
      continue;
    }
    k.Neg(true, f->neg);
    k.Str(strings[f->name]);
    k.Ch(f->wildcard ? '+' : '.');
  }
  if (r.proto) {
    k.Neg(true, r.proto_neg);
    k.C(r.proto_v);
  } else {
    k.Ch('-');
  }
  k.C(r.match_count);
  for (uint32_t j = 0; j < r.match_count; j++) {
    const Match& m = matches[r.match_first + j];
    k.C(m.module);
    switch (m.module) {
      case kTcp: case kUdp: case kSctp:
        k.PortKey(m.sport);
        k.PortKey(m.dport);
        if (m.module == kTcp && m.flags && (m.mask != 0 || m.flags_neg)) {
          k.Neg(true, m.flags_neg);
          k.C(m.mask);
          k.C(m.comp);
        } else {
          k.Ch('-');
        }
        break;
      case kIcmp: case kIcmp6:
        k.Neg(true, m.type_neg);
        if (m.type_any) {
          k.Ch('a');
        } else {
          k.C(m.icmp_type);
          k.C(m.code_lo);
          k.C(m.code_hi);
        }
        break;
      case kMultiport: {
        static const char* const kWhich[] = {"", "sports", "dports", "ports"};
        k.Str(kWhich[m.which]);
        k.Neg(true, m.ports_neg);
        k.C(2u * m.ports_n);
        for (uint32_t p = 0; p < m.ports_n; p++) {
          k.C(ports[m.ports + p].first);
          k.C(ports[m.ports + p].second);
        }
        break;
      }
      case kConntrack:
        if (m.ct) {
          k.Neg(true, m.ct_neg);
          k.C(m.ct_mask);
        } else {
          k.Ch('-');
        }
        break;
      case kState:
        k.Neg(true, m.ct_neg);
        k.C(m.ct_mask);
        break;
      case kComment:
        k.Str(strings[m.comment]);
        break;
    }
  }
  switch (r.target) {
    case kReject: k.Ch('R'); k.Str(strings[r.reject_with]); break;
    case kJump: k.Ch('J'); k.Str(t.chains[r.jump].name); break;
    case kGoto: k.Ch('G'); k.Str(t.chains[r.jump].name); break;
    default: k.Str(kTargetKind[r.target]); break;
  }
  KeyHashes(k.u, &r.key, &r.key2);
  t.chains[chain].rules.push_back(static_cast<uint32_t>(rule_list.size()));
  rule_list.push_back(r);
}

namespace {

// Writes records into the packed buffer as pack.ts TableWriter does; the
// buffer is zeroed as it grows, so padding is zero as in an ArrayBuffer.
class Writer {
 public:
  Writer(std::vector<uint8_t>* buf, uint16_t table_count) : buf_(*buf), table_count_(table_count) {
    buf_.assign(sizeof(TableSetHeader) + sizeof(TableDesc) * table_count, 0);
    auto* h = reinterpret_cast<TableSetHeader*>(buf_.data());
    h->magic = kTableMagic;
    h->version = kTableVersion;
    h->table_count = table_count;
  }
  uint32_t count() const { return count_; }
  int table() const { return table_; }
  void Begin(uint8_t family, uint8_t hook) {
    table_++;
    family_ = family;
    size_ = family == 4 ? sizeof(RuleRecord4) : sizeof(RuleRecord6);
    start_ = buf_.size();
    count_ = 0;
    TableDesc* d = Desc();
    d->family = family;
    d->hook = hook;
    d->record_size = static_cast<uint16_t>(size_);
    d->offset = static_cast<uint32_t>(start_);
  }
  uint32_t End() {
    Desc()->count = count_;
    return count_;
  }
  void Push(const Cond& c, uint8_t action, uint32_t arg, uint32_t rule_id) {
    size_t o = buf_.size();
    if (buf_.capacity() < o + size_) buf_.reserve(std::max(o + size_, buf_.capacity() * 2));
    buf_.resize(o + size_, 0);
    RuleCommon* r = reinterpret_cast<RuleCommon*>(buf_.data() + o);
    r->rule_id = rule_id;
    r->arg = arg;
    r->sport_lo = static_cast<uint16_t>(c.lo[kSport]);
    r->sport_hi = static_cast<uint16_t>(c.hi[kSport]);
    r->dport_lo = static_cast<uint16_t>(c.lo[kDport]);
    r->dport_hi = static_cast<uint16_t>(c.hi[kDport]);
    r->iif_lo = static_cast<uint16_t>(c.lo[kIif]);
    r->iif_hi = static_cast<uint16_t>(c.hi[kIif]);
    r->oif_lo = static_cast<uint16_t>(c.lo[kOif]);
    r->oif_hi = static_cast<uint16_t>(c.hi[kOif]);
    r->icmp_lo = static_cast<uint16_t>(c.lo[kIcmpF]);
    r->icmp_hi = static_cast<uint16_t>(c.hi[kIcmpF]);
    r->proto_lo = static_cast<uint8_t>(c.lo[kProto]);
    r->proto_hi = static_cast<uint8_t>(c.hi[kProto]);
    r->tcp_flags_mask = c.tcp_mask;
    r->tcp_flags_value = c.tcp_value;
    r->ct_state_mask = c.ct;
    r->flags = static_cast<uint8_t>((c.needs_l4 ? kRuleNeedsL4 : 0) | (c.l4_before_ct ? kRuleL4BeforeCt : 0));
    r->action = action;
    if (family_ == 4) {
      auto* r4 = reinterpret_cast<RuleRecord4*>(r);
      r4->src_lo = static_cast<uint32_t>(c.lo[kSrc]);
      r4->src_hi = static_cast<uint32_t>(c.hi[kSrc]);
      r4->dst_lo = static_cast<uint32_t>(c.lo[kDst]);
      r4->dst_hi = static_cast<uint32_t>(c.hi[kDst]);
    } else {
      auto* r6 = reinterpret_cast<RuleRecord6*>(r);
      Words(c.lo[kSrc], r6->src_lo);
      Words(c.hi[kSrc], r6->src_hi);
      Words(c.lo[kDst], r6->dst_lo);
      Words(c.hi[kDst], r6->dst_hi);
    }
    count_++;
  }
  void SetArg(uint32_t index, uint32_t arg) { Rec(index)->arg = arg; }
  void MarkReturnsToPolicy(uint32_t index) { Rec(index)->flags |= kRuleReturnsToPolicy; }
  void Finish() { reinterpret_cast<TableSetHeader*>(buf_.data())->total_bytes = static_cast<uint32_t>(buf_.size()); }

 private:
  static void Words(u128 v, uint32_t w[4]) {
    w[0] = static_cast<uint32_t>(v >> 96);
    w[1] = static_cast<uint32_t>(v >> 64);
    w[2] = static_cast<uint32_t>(v >> 32);
    w[3] = static_cast<uint32_t>(v);
  }
  TableDesc* Desc() { return reinterpret_cast<TableDesc*>(buf_.data() + sizeof(TableSetHeader) + sizeof(TableDesc) * static_cast<size_t>(table_)); }
  RuleCommon* Rec(uint32_t index) { return reinterpret_cast<RuleCommon*>(buf_.data() + start_ + size_t{index} * size_); }

  std::vector<uint8_t>& buf_;
  uint16_t table_count_;
  int table_ = -1;
  uint8_t family_ = 4;
  size_t size_ = sizeof(RuleRecord4);
  size_t start_ = 0;
  uint32_t count_ = 0;
};

// iface.ts IfaceClasses over the rule set's names.
class IfaceClasses {
 public:
  explicit IfaceClasses(std::vector<std::string> cuts) : cuts_(std::move(cuts)) {
    std::sort(cuts_.begin(), cuts_.end());
    cuts_.erase(std::unique(cuts_.begin(), cuts_.end()), cuts_.end());
  }
  uint32_t count() const { return static_cast<uint32_t>(cuts_.size() + 1); }
  uint32_t ClassOf(const std::string& name) const {
    return static_cast<uint32_t>(std::upper_bound(cuts_.begin(), cuts_.end(), name) - cuts_.begin());
  }
  static std::string Successor(const std::string& p) {
    std::string s = p;
    s.back() = static_cast<char>(s.back() + 1);
    return s;
  }
  void Range(const std::string& name, bool wildcard, uint32_t* lo, uint32_t* hi) const {
    if (wildcard) {
      if (name.empty()) {
        *lo = 0;
        *hi = count() - 1;
        return;
      }
      *lo = ClassOf(name);
      *hi = ClassOf(Successor(name)) - 1;
      return;
    }
    *lo = *hi = ClassOf(name);
  }
  const std::vector<std::string>& cuts() const { return cuts_; }

 private:
  std::vector<std::string> cuts_;
};

using Ranges = std::vector<std::pair<u128, u128>>;

bool Narrow(Cond& c, Field f, u128 lo, u128 hi) {
  u128 nl = std::max(c.lo[f], lo), nh = std::min(c.hi[f], hi);
  if (nl > nh) return false;
  c.lo[f] = nl;
  c.hi[f] = nh;
  return true;
}

// compile.ts refine (narrowAll for a single alternative): conds in order,
// each cond's alternatives in order.
void Refine(std::vector<Cond>& conds, Field f, const Ranges& alts, std::vector<Cond>& tmp) {
  if (alts.size() == 1) {
    size_t w = 0;
    for (size_t i = 0; i < conds.size(); i++)
      if (Narrow(conds[i], f, alts[0].first, alts[0].second)) conds[w++] = conds[i];
    conds.resize(w);
    return;
  }
  tmp.clear();
  for (const Cond& c : conds) {
    for (const auto& a : alts) {
      Cond d = c;
      if (Narrow(d, f, a.first, a.second)) tmp.push_back(d);
    }
  }
  conds.swap(tmp);
}

// compile.ts intersect
bool Intersect(const Cond& a, const Cond& b, Cond* c) {
  uint8_t both = a.tcp_mask & b.tcp_mask;
  if ((a.tcp_value & both) != (b.tcp_value & both)) return false;
  for (int f = 0; f < kFields; f++) {
    c->lo[f] = std::max(a.lo[f], b.lo[f]);
    c->hi[f] = std::min(a.hi[f], b.hi[f]);
    if (c->lo[f] > c->hi[f]) return false;
  }
  c->tcp_mask = a.tcp_mask | b.tcp_mask;
  c->tcp_value = a.tcp_value | b.tcp_value;
  c->ct = a.ct & b.ct;
  c->needs_l4 = a.needs_l4 || b.needs_l4;
  c->l4_before_ct = a.l4_before_ct || b.l4_before_ct;
  return c->ct != 0;
}

}  // namespace

void TextCompiler::State::Compile(Output* out) {
  auto t0 = std::chrono::steady_clock::now();
  // Duplicate tables are the reference's error.
  for (size_t a = 0; a < tables.size(); a++)
    for (size_t b = a + 1; b < tables.size(); b++)
      if (tables[a].family == tables[b].family) No(0, "two filter tables of one family");
  if (tables.empty()) No(0, "no tables");

  // The interface classes (compile.ts ifaceMatches, iface.ts).
  std::vector<std::string> cuts;
  for (const Rule& r : rule_list) {
    for (const Iface* f : {&r.in, &r.out}) {
      if (!f->present) continue;
      const std::string& n = strings[f->name];
      if (f->wildcard) {
        if (n.empty()) continue;
        cuts.push_back(n);
        cuts.push_back(IfaceClasses::Successor(n));
      } else {
        cuts.push_back(n);
        cuts.push_back(n + std::string(1, '\0'));
      }
    }
  }
  IfaceClasses ifaces(std::move(cuts));
  if (ifaces.cuts().size() > kIfaceClassMax) No(0, "too many interfaces");
  const uint32_t iface_max = ifaces.count() - 1;

  std::vector<uint8_t> families;
  for (const Table& t : tables) families.push_back(t.family);
  std::sort(families.begin(), families.end());
  families.erase(std::unique(families.begin(), families.end()), families.end());

  // Rule ids (compile.ts numberRulesSteps): per table, per chain in
  // order, the policy of a built-in chain, then its rules; last the
  // internal id of -g's SKIP records.
  std::vector<uint32_t> id_of(rule_list.size());
  std::vector<std::vector<uint32_t>> policy_ids(tables.size());
  uint32_t next_id = 0;
  out->fps.clear();
  out->keys.clear();
  out->keys2.clear();
  std::vector<std::pair<std::string, uint32_t>>& features = out->features;
  features.clear();
  auto Feature = [&](const char* k) {
    for (auto& f : features)
      if (f.first == k) return void(f.second++);
    features.push_back({k, 1});
  };
  uint32_t total_rules = 0;
  for (size_t ti = 0; ti < tables.size(); ti++) {
    Table& t = tables[ti];
    for (Chain& c : t.chains) {
      if (c.builtin) {
        policy_ids[ti].push_back(next_id++);
        uint32_t fp = FieldHash(ChainHash(t.family, c.name), 0x706f6c);
        KeyUnits k;
        k.Ch(static_cast<char>('0' + t.family));
        k.Ch('\t');
        for (char ch : c.name) k.Ch(ch);
        for (char ch : std::string("\t:policy")) k.Ch(ch);
        uint32_t h1, h2;
        KeyHashes(k.u, &h1, &h2);
        out->fps.push_back(fp);
        out->keys.push_back(h1);
        out->keys2.push_back(h2);
        if (opts.file_counters && c.counters != kNone)
          out->file_counters.push_back({next_id - 1, counters[c.counters].first, counters[c.counters].second});
      }
      for (uint32_t ri : c.rules) {
        const Rule& r = rule_list[ri];
        id_of[ri] = next_id++;
        out->fps.push_back(r.fp);
        out->keys.push_back(r.key);
        out->keys2.push_back(r.key2);
        if (opts.file_counters && r.counters != kNone)
          out->file_counters.push_back({id_of[ri], counters[r.counters].first, counters[r.counters].second});
        total_rules++;
        if (r.src.present || r.dst.present) Feature("address");
        if ((r.src.present && r.src.neg) || (r.dst.present && r.dst.neg) || (r.proto && r.proto_neg) || (r.in.present && r.in.neg) || (r.out.present && r.out.neg)) Feature("negation");
        if (r.in.present || r.out.present) Feature("interface");
        if (r.proto) Feature("protocol");
        for (uint32_t j = 0; j < r.match_count; j++) {
          static const char* const kModuleFeature[] = {"-m tcp", "-m udp", "-m sctp", "-m icmp", "-m icmp6", "-m multiport", "-m iprange", "-m conntrack", "-m state", "-m comment"};
          Feature(kModuleFeature[matches[r.match_first + j].module]);
        }
        Feature(kTargetFeature[r.target]);
      }
    }
  }
  const uint32_t internal_id = next_id++;
  out->fps.push_back(0);
  out->keys.push_back(0);
  out->keys2.push_back(0);
  out->rule_ids = next_id;
  out->span_start.assign(next_id, kUnspanned);
  out->span_end.assign(next_id, kUnspanned);

  // The rule's own condition (compile.ts ruleConds), per family.
  std::vector<Cond> tmp;
  Ranges alts;
  auto Full = [&](uint8_t family) {
    Cond c;
    for (int f = 0; f < kFields; f++) c.lo[f] = 0;
    c.hi[kSrc] = c.hi[kDst] = family == 4 ? u128{0xffffffffu} : kV6Max;
    c.hi[kSport] = c.hi[kDport] = 65535;
    c.hi[kProto] = 255;
    c.hi[kIif] = c.hi[kOif] = iface_max;
    c.hi[kIcmpF] = 0xffff;
    c.tcp_mask = c.tcp_value = 0;
    c.ct = kCtAny;
    c.needs_l4 = c.l4_before_ct = false;
    return c;
  };
  auto RuleConds = [&](const Rule& r, uint8_t family, std::vector<Cond>& conds) {
    conds.assign(1, Full(family));
    const u128 amax = family == 4 ? u128{0xffffffffu} : kV6Max;
    auto AddrF = [&](const Addr& a, Field f) {
      if (!a.present) return;
      if (!a.neg) {
        alts.assign(1, {Lo(a, family), Hi(a, family)});
      } else {
        Complement(Lo(a, family), Hi(a, family), amax, &alts);
        if (alts.empty()) return conds.clear();
      }
      Refine(conds, f, alts, tmp);
    };
    AddrF(r.src, kSrc);
    AddrF(r.dst, kDst);
    if (r.proto) {
      if (r.proto_neg) Complement(r.proto_v, r.proto_v, 255, &alts);
      else alts.assign(1, {r.proto_v, r.proto_v});
      if (alts.empty()) conds.clear();
      else Refine(conds, kProto, alts, tmp);
    }
    for (const auto& p : {std::make_pair(&r.in, kIif), std::make_pair(&r.out, kOif)}) {
      if (!p.first->present) continue;
      uint32_t lo, hi;
      ifaces.Range(strings[p.first->name], p.first->wildcard, &lo, &hi);
      if (p.first->neg) Complement(lo, hi, iface_max, &alts);
      else alts.assign(1, {lo, hi});
      if (alts.empty()) conds.clear();
      else Refine(conds, p.second, alts, tmp);
    }
    bool l4 = false;
    auto PortF = [&](const Port& p, Field f) {
      if (!p.present) return;
      if (p.neg) Complement(p.lo, p.hi, 65535, &alts);
      else alts.assign(1, {p.lo, p.hi});
      if (alts.empty()) conds.clear();
      else Refine(conds, f, alts, tmp);
    };
    for (uint32_t j = 0; j < r.match_count; j++) {
      if (conds.empty()) break;
      const Match& m = matches[r.match_first + j];
      switch (m.module) {
        case kTcp: case kUdp: case kSctp:
          l4 = true;
          for (Cond& c : conds) c.needs_l4 = true;
          PortF(m.sport, kSport);
          PortF(m.dport, kDport);
          if (m.module == kTcp && m.flags) {
            if (m.comp & ~m.mask) {
              if (!m.flags_neg) conds.clear();
              break;
            }
            std::vector<std::pair<uint8_t, uint8_t>> fl;
            if (m.flags_neg) {
              for (uint8_t b : {0x01, 0x02, 0x04, 0x08, 0x10, 0x20})
                if (m.mask & b) fl.push_back({b, static_cast<uint8_t>(~m.comp & b)});
            } else {
              fl.push_back({m.mask, m.comp});
            }
            tmp.clear();
            for (const Cond& c : conds) {
              for (const auto& a : fl) {
                uint8_t both = c.tcp_mask & a.first;
                if ((c.tcp_value & both) != (a.second & both)) continue;
                Cond d = c;
                d.tcp_mask |= a.first;
                d.tcp_value |= a.second;
                tmp.push_back(d);
              }
            }
            conds.swap(tmp);
          }
          break;
        case kIcmp: case kIcmp6: {
          l4 = true;
          for (Cond& c : conds) c.needs_l4 = true;
          if (m.type_any) {
            if (m.type_neg) conds.clear();
            break;
          }
          uint32_t lo = (uint32_t{m.icmp_type} << 8) | m.code_lo, hi = (uint32_t{m.icmp_type} << 8) | m.code_hi;
          if (m.type_neg) Complement(lo, hi, 0xffff, &alts);
          else alts.assign(1, {lo, hi});
          if (alts.empty()) conds.clear();
          else Refine(conds, kIcmpF, alts, tmp);
          break;
        }
        case kMultiport: {
          l4 = true;
          for (Cond& c : conds) c.needs_l4 = true;
          Ranges list;
          for (uint32_t p = 0; p < m.ports_n; p++) list.push_back({ports[m.ports + p].first, ports[m.ports + p].second});
          Ranges in_set;
          if (m.ports_neg) {
            // complementUnion
            std::stable_sort(list.begin(), list.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
            u128 next = 0;
            for (const auto& x : list) {
              if (x.first > next) in_set.push_back({next, x.first - 1});
              next = std::max(next, x.second + 1);
            }
            if (next <= 65535) in_set.push_back({next, 65535});
          } else {
            in_set = list;
          }
          auto RefineSet = [&](std::vector<Cond>& cs, Field f) {
            if (in_set.empty()) cs.clear();
            else Refine(cs, f, in_set, tmp);
          };
          if (m.which == 1) RefineSet(conds, kSport);
          else if (m.which == 2) RefineSet(conds, kDport);
          else if (m.ports_neg) {
            RefineSet(conds, kSport);
            RefineSet(conds, kDport);
          } else {
            std::vector<Cond> copy = conds;
            RefineSet(copy, kSport);
            RefineSet(conds, kDport);
            copy.insert(copy.end(), conds.begin(), conds.end());
            conds.swap(copy);
          }
          break;
        }
        case kConntrack: case kState: {
          if (!m.ct) break;
          uint8_t mask = static_cast<uint8_t>((m.ct_neg ? ~m.ct_mask : m.ct_mask) & kCtAny);
          size_t w = 0;
          for (size_t i = 0; i < conds.size(); i++) {
            conds[i].ct &= mask;
            if (conds[i].ct != 0) conds[w++] = conds[i];
          }
          conds.resize(w);
          if (l4)
            for (Cond& c : conds) c.l4_before_ct = true;
          break;
        }
        default:
          break;
      }
    }
  };

  // The inliner (compile.ts ChainInliner), one table per built-in chain.
  uint16_t table_count = static_cast<uint16_t>(tables.size() * 3);
  Writer w(&out->buffer, table_count);
  std::vector<uint8_t> seen(internal_id);
  out->tables.clear();
  out->rules_per_hook.clear();
  for (size_t ti = 0; ti < tables.size(); ti++) {
    Table& t = tables[ti];
    const uint8_t family = t.family;
    std::vector<uint32_t> stack;
    uint32_t reachable = 0;
    std::function<void(uint32_t, const std::vector<Cond>*, std::vector<uint32_t>&)> InlineRule;
    auto Emit = [&](const std::vector<Cond>& conds, uint8_t action, uint32_t arg, uint32_t id, uint32_t line) {
      uint32_t first = w.count();
      if (uint64_t{w.count()} + conds.size() > opts.max_records) No(line, "over --max-records");
      for (const Cond& c : conds) w.Push(c, action, arg, id);
      return first;
    };
    auto ContinueHere = [&](uint32_t first) {
      for (uint32_t i = first; i < w.count(); i++) w.SetArg(i, w.count());
    };
    // Condition vectors by inlining depth, reused from rule to rule.
    std::deque<std::vector<Cond>> pool(2);  // a deque: growing it keeps the outer levels' references
    size_t depth = 0;
    InlineRule = [&](uint32_t ri, const std::vector<Cond>* ctx, std::vector<uint32_t>& returns) {
      const Rule& r = rule_list[ri];
      if (pool.size() < 2 * depth + 2) pool.resize(2 * depth + 2);
      std::vector<Cond>& conds = pool[2 * depth];
      RuleConds(r, family, conds);
      if (ctx) {
        std::vector<Cond>& both = pool[2 * depth + 1];
        both.clear();
        Cond c;
        for (const Cond& a : *ctx)
          for (const Cond& b : conds)
            if (Intersect(a, b, &c)) both.push_back(c);
        conds.swap(both);
      }
      struct Deeper {
        size_t& d;
        explicit Deeper(size_t& x) : d(x) { d++; }
        ~Deeper() { d--; }
      } deeper(depth);
      if (conds.empty()) return;
      const uint32_t id = id_of[ri];
      if (!seen[id]) {
        seen[id] = 1;
        reachable++;
      }
      switch (r.target) {
        case kAccept: Emit(conds, static_cast<uint8_t>(Action::kAccept), 0, id, r.line); break;
        case kDrop: Emit(conds, static_cast<uint8_t>(Action::kDrop), 0, id, r.line); break;
        case kReject: Emit(conds, static_cast<uint8_t>(Action::kReject), r.reject_code, id, r.line); break;
        case kNoTarget: ContinueHere(Emit(conds, static_cast<uint8_t>(Action::kCount), 0, id, r.line)); break;
        case kReturn: {
          uint32_t first = Emit(conds, static_cast<uint8_t>(Action::kSkip), 0, id, r.line);
          for (uint32_t i = first; i < w.count(); i++) returns.push_back(i);
          break;
        }
        case kJump: case kGoto: {
          if (std::find(stack.begin(), stack.end(), r.jump) != stack.end()) No(r.line, "chain loop");
          ContinueHere(Emit(conds, static_cast<uint8_t>(Action::kCount), 0, id, r.line));
          const Chain& target = t.chains[r.jump];
          stack.push_back(r.jump);
          if (r.target == kJump) {
            std::vector<uint32_t> inner;
            for (uint32_t x : target.rules) InlineRule(x, &conds, inner);
            stack.pop_back();
            for (uint32_t i : inner) w.SetArg(i, w.count());
          } else {
            for (uint32_t x : target.rules) InlineRule(x, &conds, returns);
            stack.pop_back();
            uint32_t first = Emit(conds, static_cast<uint8_t>(Action::kSkip), 0, internal_id, r.line);
            for (uint32_t i = first; i < w.count(); i++) returns.push_back(i);
          }
          break;
        }
      }
    };
    for (uint32_t ci = 0; ci < 3; ci++) {
      const Chain& root = t.chains[ci];
      w.Begin(family, static_cast<uint8_t>(ci));
      std::fill(seen.begin(), seen.end(), 0);
      reachable = 0;
      std::vector<uint32_t> returns;
      stack.assign(1, ci);
      for (uint32_t ri : root.rules) {
        const uint32_t id = id_of[ri];
        out->span_start[id] = out->span_end[id] = w.count();
        InlineRule(ri, nullptr, returns);
        out->span_end[id] = w.count();
      }
      stack.clear();
      const uint32_t policy_index = w.count();
      for (uint32_t i : returns) {
        w.SetArg(i, policy_index);
        w.MarkReturnsToPolicy(i);
      }
      // The policy goes in past --max-records too, as compile.ts pushes it.
      w.Push(Full(family), static_cast<uint8_t>(root.policy == kDrop ? Action::kDrop : Action::kAccept), 0, policy_ids[ti][ci]);
      uint32_t n = w.End();
      out->tables.push_back({family, static_cast<uint8_t>(ci), n});
      out->rules_per_hook.push_back({std::string("ipv") + static_cast<char>('0' + family) + "/" + root.name, reachable});
    }
  }
  w.Finish();

  out->iface_cuts = ifaces.cuts();
  out->families = families;
  out->chains = 0;
  out->user_chains = 0;
  for (const Table& t : tables) {
    out->chains += static_cast<uint32_t>(t.chains.size());
    out->user_chains += static_cast<uint32_t>(t.chains.size() - 3);
  }
  out->source_rules = total_rules;
  out->records = 0;
  for (const TableInfo& ti : out->tables) out->records += ti.records;
  out->skipped = skipped;
  out->parsed_tables = static_cast<uint32_t>(tables.size());
  out->table_list.clear();
  for (const Table& t : tables) out->table_list.push_back({t.file, t.family});
  out->lines = lines;
  out->parse_seconds = parse_seconds;
  // The parsed rules are done with: gone before the caller copies the output.
  std::vector<Rule>().swap(rule_list);
  std::vector<Match>().swap(matches);
  std::vector<std::pair<u128, u128>>().swap(v6);
  tables.clear();
  out->compile_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

TextCompiler::TextCompiler(const Names& names, const Options& opts) : s_(new State(names, opts)) {}
TextCompiler::~TextCompiler() { delete s_; }

template <typename Fn>
bool TextCompiler::Step(Fn fn) {
  if (s_->failed) return false;
  auto t0 = std::chrono::steady_clock::now();
  try {
    fn();
  } catch (const Decline& d) {
    s_->failed = true;
    declined_ = (s_->files.empty() ? std::string("?") : s_->files.back()) + ":" + std::to_string(d.line) + ": " + d.why;
    return false;
  }
  s_->parse_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return true;
}

bool TextCompiler::BeginFile(const std::string& file, uint8_t family) {
  return Step([&] { s_->BeginFile(file, family); });
}
bool TextCompiler::Feed(std::string_view chunk, bool last) {
  return Step([&] { s_->Feed(chunk, last); });
}
bool TextCompiler::EndFile() {
  return Step([&] { s_->EndFile(); });
}
bool TextCompiler::AddFile(const std::string& file, std::string_view text, uint8_t family) {
  return BeginFile(file, family) && Feed(text, true) && EndFile();
}

bool TextCompiler::Compile(Output* out) {
  if (s_->failed) return false;
  try {
    s_->Compile(out);
  } catch (const Decline& d) {
    s_->failed = true;
    declined_ = std::string("compile:") + std::to_string(d.line) + ": " + d.why;
    return false;
  }
  return true;
}

}  // namespace rules
}  // namespace flatwall
