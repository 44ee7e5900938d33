#include "dataplane/ruleset.h"

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>

#include "conntrack/conncount.h"

namespace flatwall {

const RuleCommon Ruleset::kAcceptAll = [] {
  RuleCommon c{};
  c.rule_id = UINT32_MAX;  // not a rule: never counted
  c.action = uint8_t(Action::kAccept);
  return c;
}();

const RuleCommon Ruleset::kHotDrop = [] {
  RuleCommon c{};
  c.rule_id = UINT32_MAX;  // not a rule: never counted
  c.action = uint8_t(Action::kDrop);
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
                                        size_t image_len, std::string* image_error,
                                        ext::ExtStateRegistry* states) {
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
  // Every hook's table: a bridge walks FORWARD, host mode also INPUT and
  // OUTPUT (dataplane/host.h); raw PREROUTING / OUTPUT before conntrack.
  for (uint32_t h = 0; h < kHooks; ++h) {
    const int t4 = rs->tables_->Find(Family::kIPv4, Hook(h));
    const int t6 = rs->tables_->Find(Family::kIPv6, Hook(h));
    if (t4 >= 0) rs->cls4_[h] = rs->tables_->v4(size_t(t4)), rs->t4_[h] = uint32_t(t4);
    if (t6 >= 0) rs->cls6_[h] = rs->tables_->v6(size_t(t6)), rs->t6_[h] = uint32_t(t6);
  }
  rs->fwd4_ = rs->cls4_[kFwd];
  rs->fwd6_ = rs->cls6_[kFwd];
  // Match programs: checked against the tables, states found again or made.
  if (!states) {
    // A rule set of its own (evaluateRuleset, tests): walks of bare keys,
    // without a connection table, so a connlimit count is the packet's own.
    rs->own_states_ = std::make_shared<ext::ExtStateRegistry>();
    rs->own_states_->set_conncount(std::make_shared<ct::ConnCount>(1024));
    states = rs->own_states_.get();
  }
  {
    std::vector<TableInfo> infos;
    for (size_t i = 0; i < rs->tables_->size(); ++i) infos.push_back(rs->tables_->info(i));
    rs->ext_ = ext::ExtTable::Parse(buf, len, infos, states);
  }
  for (uint32_t h = 0; h < kHooks; ++h) {
    CheckRuleIds(rs->cls4_[h], rule_count, (std::string("ipv4 ") + HookName(uint8_t(h))).c_str());
    CheckRuleIds(rs->cls6_[h], rule_count, (std::string("ipv6 ") + HookName(uint8_t(h))).c_str());
  }
  for (uint32_t h = 0; h < kHooks; ++h) {
    if (rs->cls4_[h]) rs->hot4_[h] = std::make_shared<const HotdropIndex<RuleRecord4>>(*rs->cls4_[h]);
    if (rs->cls6_[h]) rs->hot6_[h] = std::make_shared<const HotdropIndex<RuleRecord6>>(*rs->cls6_[h]);
  }
  rs->iface_ids_ = std::move(iface_ids);
  rs->rule_count_ = rule_count;
  rs->base_rule_count_ = rule_count;
  for (uint32_t w = 0; w < workers; ++w)
    rs->counters_.push_back(std::make_shared<RuleCounterArray>(rule_count));
  for (size_t i = 0; i < rs->tables_->size(); ++i) {
    if (const Classifier4* c = rs->tables_->v4(i)) rs->memory_bytes_ += c->stats().memory_bytes;
    if (const Classifier6* c = rs->tables_->v6(i)) rs->memory_bytes_ += c->stats().memory_bytes;
  }
  for (uint32_t h = 0; h < kHooks; ++h) {
    if (rs->hot4_[h]) rs->memory_bytes_ += rs->hot4_[h]->memory_bytes();
    if (rs->hot6_[h]) rs->memory_bytes_ += rs->hot6_[h]->memory_bytes();
  }
  rs->build_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rs;
}

template <typename C, typename Rec>
std::unique_ptr<Ruleset::TableEdits<C>> Ruleset::MakeEdits(const C* main, TableEditSpec<Rec>&& spec,
                                                           uint32_t rule_count, const char* name) {
  auto fail = [name](const std::string& why) {
    throw std::invalid_argument(std::string("edit: ") + name + " FORWARD: " + why);
  };
  if (!main) fail("the rule set has no such table");
  const uint32_t n = main->size();
  const uint32_t policy = n - 1;
  auto e = std::make_unique<TableEdits<C>>();
  // Overlay: every record checked as the table validation would, anchors
  // inside the main table and in merged (non-decreasing) order.
  if (spec.anchors.size() != spec.overlay.size()) fail("one anchor per overlay record is required");
  const uint32_t count = uint32_t(spec.overlay.size());
  for (uint32_t i = 0; i < count; ++i) {
    if (const char* why = CheckEditRecord(spec.overlay[i], i, count))
      fail("overlay record " + std::to_string(i) + ": " + why);
    if (spec.overlay[i].c.rule_id >= rule_count)
      fail("overlay record " + std::to_string(i) + ": rule_id past ruleCount");
    if (spec.anchors[i] > policy) fail("anchor past the policy");
    if (i && spec.anchors[i] < spec.anchors[i - 1]) fail("anchors out of order");
  }
  if (count) e->overlay = BuildClassifier(spec.overlay.data(), count);
  if (count) e->overlay_hot = HotdropIndexFor<C>(*e->overlay);
  e->anchors = std::move(spec.anchors);
  // Dead ranges: sorted, disjoint, never the policy.
  std::sort(spec.dead.begin(), spec.dead.end());
  for (size_t i = 0; i < spec.dead.size(); ++i) {
    const auto& d = spec.dead[i];
    if (d.first >= d.second || d.second > policy) fail("dead range outside the rules");
    if (i && d.first < spec.dead[i - 1].second) fail("dead ranges overlap");
  }
  e->dead = std::move(spec.dead);
  if (spec.policy >= 0) {
    if (spec.policy != int(Action::kAccept) && spec.policy != int(Action::kDrop))
      fail("policy must be ACCEPT or DROP");
    e->policy_override = true;
    e->policy = main->record(policy).c;
    e->policy.action = uint8_t(spec.policy);
  }
  return e;
}

std::unique_ptr<Ruleset> Ruleset::Derive(const Ruleset& cur, RulesetEdits&& edits) {
  const auto t0 = std::chrono::steady_clock::now();
  if (edits.base_generation != cur.base_generation)
    throw std::invalid_argument("edit: made for generation " + std::to_string(edits.base_generation) +
                                ", but the running rules were built as generation " +
                                std::to_string(cur.base_generation));
  if (edits.rule_count < cur.base_rule_count_ ||
      edits.rule_count - cur.base_rule_count_ > kEditRuleIds)
    throw std::invalid_argument("edit: ruleCount " + std::to_string(edits.rule_count) +
                                " outside [" + std::to_string(cur.base_rule_count_) + ", base + " +
                                std::to_string(kEditRuleIds) + "]");
  std::unique_ptr<Ruleset> rs(new Ruleset());
  rs->tables_ = cur.tables_;
  for (uint32_t h = 0; h < kHooks; ++h) {
    rs->cls4_[h] = cur.cls4_[h], rs->cls6_[h] = cur.cls6_[h];
    rs->t4_[h] = cur.t4_[h], rs->t6_[h] = cur.t6_[h];
  }
  rs->fwd4_ = cur.fwd4_;
  rs->fwd6_ = cur.fwd6_;
  for (uint32_t h = 0; h < kHooks; ++h) rs->hot4_[h] = cur.hot4_[h], rs->hot6_[h] = cur.hot6_[h];
  rs->ext_ = cur.ext_;
  rs->own_states_ = cur.own_states_;
  rs->iface_ids_ = cur.iface_ids_;
  rs->base_rule_count_ = cur.base_rule_count_;
  rs->rule_count_ = edits.rule_count;
  rs->counters_ = cur.counters_;
  rs->edit_counters_ = cur.edit_counters_;
  if (rs->edit_counters_.empty())
    for (size_t w = 0; w < cur.counters_.size(); ++w)
      rs->edit_counters_.push_back(std::make_shared<RuleCounterArray>(kEditRuleIds));
  // A family the edits leave out keeps its current edits.
  rs->edits4_ = edits.v4.present ? MakeEdits(cur.fwd4_, std::move(edits.v4), edits.rule_count, "ipv4")
                                 : cur.edits4_;
  rs->edits6_ = edits.v6.present ? MakeEdits(cur.fwd6_, std::move(edits.v6), edits.rule_count, "ipv6")
                                 : cur.edits6_;
  rs->memory_bytes_ = cur.memory_bytes_ - cur.OverlayBytes() + rs->OverlayBytes();
  rs->build_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rs;
}

size_t Ruleset::OverlayBytes() const {
  size_t n = 0;
  if (edits4_ && edits4_->overlay) n += edits4_->overlay->stats().memory_bytes;
  if (edits6_ && edits6_->overlay) n += edits6_->overlay->stats().memory_bytes;
  return n;
}

uint32_t Ruleset::overlay_records() const {
  uint32_t n = 0;
  if (edits4_ && edits4_->overlay) n += edits4_->overlay->size();
  if (edits6_ && edits6_->overlay) n += edits6_->overlay->size();
  return n;
}

void Ruleset::SumCounters(std::vector<uint64_t>* packets, std::vector<uint64_t>* bytes) const {
  packets->assign(rule_count_, 0);
  bytes->assign(rule_count_, 0);
  for (uint32_t w = 0; w < counters_.size(); ++w) {
    const RuleCounterView view = counters(w);
    for (uint32_t i = 0; i < rule_count_; ++i) {
      if (const RuleCounter* c = view.find(i)) {
        (*packets)[i] += c->packets.Get();
        (*bytes)[i] += c->bytes.Get();
      }
    }
  }
}

}  // namespace flatwall
