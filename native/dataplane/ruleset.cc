#include "dataplane/ruleset.h"

#include <cstring>
#include <stdexcept>
#include <string>

namespace flatwall {

const RuleCommon Ruleset::kAcceptAll = [] {
  RuleCommon c{};
  c.rule_id = UINT32_MAX;  // not a rule: never counted
  c.action = uint8_t(Action::kAccept);
  return c;
}();

namespace {

[[noreturn]] void Invalid(const std::string& what) {
  throw std::invalid_argument("ruleset: " + what);
}

// Structural checks of the packed buffer: what the dataplane relies on to
// walk it safely. (The rule compiler guarantees more; this guards the
// native side against a buffer that is not what it claims to be.)
template <typename Rec>
void CheckRecords(const Rec* recs, uint32_t count, uint32_t rule_count, const char* name) {
  for (uint32_t i = 0; i < count; ++i) {
    const RuleCommon& c = recs[i].c;
    if (c.action > uint8_t(Action::kSkip)) Invalid(std::string(name) + ": bad action");
    if (c.rule_id >= rule_count)
      Invalid(std::string(name) + ": rule_id " + std::to_string(c.rule_id) + " >= ruleCount " +
              std::to_string(rule_count));
    const Action a = Action(c.action);
    if ((a == Action::kLog || a == Action::kCount || a == Action::kSkip) && c.arg <= i)
      Invalid(std::string(name) + ": continue index not after its record");
    if (a == Action::kReject && c.arg > uint32_t(RejectWith::kIcmp6PortUnreachable))
      Invalid(std::string(name) + ": bad reject-with");
  }
  if (count == 0) Invalid(std::string(name) + ": empty table (no policy record)");
  const Action last = Action(recs[count - 1].c.action);
  if (last != Action::kAccept && last != Action::kDrop && last != Action::kReject)
    Invalid(std::string(name) + ": last record is not a verdict");
}

}  // namespace

std::unique_ptr<Ruleset> Ruleset::Build(const uint8_t* buf, size_t len, std::vector<uint16_t> iface_ids,
                                        uint32_t rule_count, uint32_t workers) {
  std::unique_ptr<Ruleset> rs(new Ruleset());
  rs->keep_.assign(buf, buf + len);
  const uint8_t* b = rs->keep_.data();
  if (len < sizeof(TableSetHeader)) Invalid("buffer shorter than its header");
  TableSetHeader h;
  std::memcpy(&h, b, sizeof h);
  if (h.magic != kTableMagic) Invalid("bad magic");
  if (h.version != kTableVersion) Invalid("unsupported version " + std::to_string(h.version));
  if (h.total_bytes != len) Invalid("total_bytes does not match the buffer length");
  if (sizeof(TableSetHeader) + uint64_t(h.table_count) * sizeof(TableDesc) > len)
    Invalid("table descriptors past the end");
  for (uint32_t t = 0; t < h.table_count; ++t) {
    TableDesc d;
    std::memcpy(&d, b + sizeof(TableSetHeader) + t * sizeof(TableDesc), sizeof d);
    const bool v4 = d.family == uint8_t(Family::kIPv4);
    const bool v6 = d.family == uint8_t(Family::kIPv6);
    if (!v4 && !v6) Invalid("bad family");
    const size_t rsz = v4 ? sizeof(RuleRecord4) : sizeof(RuleRecord6);
    if (d.record_size != rsz) Invalid("record size mismatch");
    if (d.offset % 4 != 0 || uint64_t(d.offset) + uint64_t(d.count) * rsz > len)
      Invalid("table records out of bounds");
    if (d.hook != uint8_t(Hook::kForward)) continue;  // a bridge forwards only
    if (v4) {
      if (rs->fwd4_) Invalid("two IPv4 FORWARD tables");
      const auto* recs = reinterpret_cast<const RuleRecord4*>(b + d.offset);
      CheckRecords(recs, d.count, rule_count, "ipv4 FORWARD");
      rs->fwd4_ = BuildClassifier4(recs, d.count);
    } else {
      if (rs->fwd6_) Invalid("two IPv6 FORWARD tables");
      const auto* recs = reinterpret_cast<const RuleRecord6*>(b + d.offset);
      CheckRecords(recs, d.count, rule_count, "ipv6 FORWARD");
      rs->fwd6_ = BuildClassifier6(recs, d.count);
    }
  }
  rs->keep_.clear();
  rs->keep_.shrink_to_fit();  // classifiers copy their records
  rs->iface_ids_ = std::move(iface_ids);
  rs->rule_count_ = rule_count;
  for (uint32_t w = 0; w < workers; ++w)
    rs->counters_.push_back(std::make_unique<RuleCounterArray>(rule_count));
  return rs;
}

}  // namespace flatwall
