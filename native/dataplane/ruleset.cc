#include "dataplane/ruleset.h"

#include <chrono>
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

template <typename C>
void CheckRuleIds(const C* cls, uint32_t rule_count, const char* name) {
  if (!cls) return;
  for (uint32_t i = 0; i < cls->size(); ++i) {
    const uint32_t id = cls->record(i).c.rule_id;
    if (id >= rule_count)
      throw std::invalid_argument(std::string("ruleset: ") + name + " record " + std::to_string(i) +
                                  ": rule_id " + std::to_string(id) + " >= ruleCount " +
                                  std::to_string(rule_count));
  }
}

}  // namespace

std::unique_ptr<Ruleset> Ruleset::Build(const uint8_t* buf, size_t len, std::vector<uint16_t> iface_ids,
                                        uint32_t rule_count, uint32_t workers, const uint8_t* image,
                                        size_t image_len, std::string* image_error) {
  // Counters are rule_count x 16 bytes per worker: refuse absurd counts
  // before allocating (the compiler's rule ids are dense).
  constexpr uint32_t kMaxRuleCount = 1u << 26;
  if (rule_count > kMaxRuleCount)
    throw std::invalid_argument("ruleset: ruleCount " + std::to_string(rule_count) + " exceeds " +
                                std::to_string(kMaxRuleCount));
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_ptr<Ruleset> rs(new Ruleset());
  std::string error;
  rs->tables_ = TableSet::LoadOrBuild(buf, len, image, image_len, ClassifierOptions{}, &error, image_error);
  if (!rs->tables_) throw std::invalid_argument("ruleset: " + error);
  // A bridge only forwards: the FORWARD tables are the ones that apply.
  const int t4 = rs->tables_->Find(Family::kIPv4, Hook::kForward);
  const int t6 = rs->tables_->Find(Family::kIPv6, Hook::kForward);
  if (t4 >= 0) rs->fwd4_ = rs->tables_->v4(size_t(t4));
  if (t6 >= 0) rs->fwd6_ = rs->tables_->v6(size_t(t6));
  CheckRuleIds(rs->fwd4_, rule_count, "ipv4 FORWARD");
  CheckRuleIds(rs->fwd6_, rule_count, "ipv6 FORWARD");
  rs->iface_ids_ = std::move(iface_ids);
  rs->rule_count_ = rule_count;
  for (uint32_t w = 0; w < workers; ++w)
    rs->counters_.push_back(std::make_unique<RuleCounterArray>(rule_count));
  for (size_t i = 0; i < rs->tables_->size(); ++i) {
    if (const Classifier4* c = rs->tables_->v4(i)) rs->memory_bytes_ += c->stats().memory_bytes;
    if (const Classifier6* c = rs->tables_->v6(i)) rs->memory_bytes_ += c->stats().memory_bytes;
  }
  rs->build_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rs;
}

void Ruleset::SumCounters(std::vector<uint64_t>* packets, std::vector<uint64_t>* bytes) const {
  packets->assign(rule_count_, 0);
  bytes->assign(rule_count_, 0);
  for (const auto& a : counters_) {
    for (uint32_t i = 0; i < rule_count_; ++i) {
      (*packets)[i] += (*a)[i].packets.Get();
      (*bytes)[i] += (*a)[i].bytes.Get();
    }
  }
}

}  // namespace flatwall
