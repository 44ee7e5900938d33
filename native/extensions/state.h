// State of stateful matches (limit buckets, hashlimit and recent tables),
// and the registry that keeps it across rule set generations.
//
// A State is shared by every worker (one limit bucket serves a rule however
// many workers see its packets, as the kernel's xt_rateinfo is one per
// rule). The registry maps a key (what the compiler says identifies the
// state: a limit rule's identity, a table's name) to a weak reference: a
// new rule set asking for a key whose state is alive and configured the
// same gets that same object. The old generation holds its states until it
// is freed, so during a swap both generations see one bucket.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace flatwall {
namespace ct {
class ConnCount;
}
namespace ext {

class State {
 public:
  virtual ~State() = default;
  // The registry's identity of this state, and a fingerprint of its
  // configuration: a key whose configuration changed gets a new state.
  const std::string& key() const { return key_; }
  const std::string& config() const { return config_; }
  virtual const char* kind() const = 0;
  // A listing like /proc/net/xt_recent/NAME or /proc/net/ipt_hashlimit/NAME
  // (or the bucket of a limit rule), for the control plane. Not for workers.
  virtual std::string List(uint64_t now_ns) const = 0;
  // Counters for metrics: entries in use, evictions, refusals (table full).
  struct Stats {
    uint64_t entries = 0, capacity = 0, evictions = 0, full = 0;
  };
  virtual Stats stats() const = 0;

 protected:
  State(std::string key, std::string config) : key_(std::move(key)), config_(std::move(config)) {}

 private:
  std::string key_, config_;
};

// Control-thread side only (rule set builds, listings): one mutex, never
// taken by a packet worker.
class ExtStateRegistry {
 public:
  // The connection counters -m connlimit states count in (the dataplane's,
  // or a replay's); null when conntrack is off.
  void set_conncount(std::shared_ptr<ct::ConnCount> c) { conncount_ = std::move(c); }
  const std::shared_ptr<ct::ConnCount>& conncount() const { return conncount_; }

  // The live state for (key, config), or the one `make()` creates.
  template <typename Make>
  std::shared_ptr<State> Get(const std::string& key, const std::string& config, Make&& make) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = states_.find(key);
    if (it != states_.end()) {
      if (std::shared_ptr<State> s = it->second.lock()) {
        if (s->config() == config) return s;
      }
    }
    std::shared_ptr<State> s = make();
    states_[key] = s;
    return s;
  }
  // Every live state (dead entries are dropped on the way).
  std::vector<std::shared_ptr<State>> Live() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::shared_ptr<State>> out;
    for (auto it = states_.begin(); it != states_.end();) {
      if (std::shared_ptr<State> s = it->second.lock()) {
        out.push_back(std::move(s));
        ++it;
      } else {
        it = states_.erase(it);
      }
    }
    return out;
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::weak_ptr<State>> states_;
  std::shared_ptr<ct::ConnCount> conncount_;
};

}  // namespace ext
}  // namespace flatwall
