#include "extensions/xt_recent.h"

#include <cstdio>
#include <cstring>

namespace flatwall {
namespace ext {

RecentState::RecentState(std::string key, std::string config, const RecentConfig& cfg, std::string name)
    : State(std::move(key), std::move(config)), cfg_(cfg), name_(std::move(name)) {
  // Newer kernels size the ring to a power of two >= ip_pkt_list_tot
  // (recent_mt_check: nstamps_max_mask).
  while (ring_ < cfg.pkt_list_tot) ring_ <<= 1;
  entries_.resize(cfg.list_tot ? cfg.list_tot : 1);
  stamps_.assign(entries_.size() * ring_, 0);
}

RecentState::Entry* RecentState::Lookup(uint8_t family, const uint32_t addr[4], uint8_t ttl, bool check_ttl) {
  // recent_entry_lookup: same family and address, and with --rttl the same
  // TTL (a TTL of 0 on either side matches any).
  const uint8_t want = check_ttl ? ttl : 0;
  for (Entry& e : entries_) {
    if (!e.used || e.family != family || std::memcmp(e.addr, addr, sizeof e.addr) != 0) continue;
    if (want == e.ttl || want == 0 || e.ttl == 0) return &e;
  }
  return nullptr;
}

RecentState::Entry* RecentState::Oldest() {
  Entry* oldest = nullptr;
  for (Entry& e : entries_)
    if (e.used && (!oldest || e.lru < oldest->lru)) oldest = &e;
  return oldest;
}

void RecentState::Remove(Entry& e) {
  e.used = false;
  --used_;
}

RecentState::Entry* RecentState::Insert(uint8_t family, const uint32_t addr[4], uint8_t ttl, uint64_t now_ns) {
  // recent_entry_init: a full table first drops its least recently updated entry.
  if (used_ >= entries_.size()) {
    if (Entry* old = Oldest()) {
      Remove(*old);
      ++evictions_;
    }
  }
  for (Entry& e : entries_) {
    if (e.used) continue;
    e.used = true;
    e.family = family, e.ttl = ttl;
    std::memcpy(e.addr, addr, sizeof e.addr);
    e.nstamps = 1, e.index = 1;
    Stamps(e)[0] = now_ns;
    e.last = now_ns;
    e.lru = ++lru_clock_;
    ++used_;
    return &e;
  }
  return nullptr;
}

void RecentState::Record(Entry& e, uint64_t now_ns) {
  // recent_entry_update: the ring wraps at its power-of-two size.
  e.index &= ring_ - 1;
  Stamps(e)[e.index++] = now_ns;
  if (e.index > e.nstamps) e.nstamps = e.index;
  e.last = now_ns;
  e.lru = ++lru_clock_;
}

bool RecentState::Check(RecentCmd cmd, uint8_t flags, bool invert, uint8_t family, const uint32_t in_addr[4],
                        uint8_t ttl, uint64_t seconds_ns, uint32_t hitcount, uint64_t now_ns) {
  bool ret = invert;
  uint32_t addr[4];
  for (int i = 0; i < 4; ++i) addr[i] = in_addr[i] & cfg_.mask[i];
  Lock();
  Entry* e = Lookup(family, addr, ttl, flags & kRecentTtl);
  if (!e) {
    if (cmd == RecentCmd::kSet) {
      Insert(family, addr, ttl, now_ns);
      ret = !ret;
    }
    Unlock();
    return ret;
  }
  if (cmd == RecentCmd::kSet) {
    ret = !ret;
  } else if (cmd == RecentCmd::kRemove) {
    Remove(*e);
    Unlock();
    return !ret;
  } else {
    // A time older than now - seconds does not count (time_after(time, stamp)).
    const uint64_t oldest_ok = now_ns > seconds_ns ? now_ns - seconds_ns : 0;
    uint32_t hits = 0;
    const uint64_t* st = Stamps(*e);
    for (uint32_t i = 0; i < e->nstamps; ++i) {
      if (seconds_ns && st[i] < oldest_ok) continue;
      if (!hitcount || ++hits >= hitcount) {
        ret = !ret;
        break;
      }
    }
    // recent_entry_reap: only the least recently updated entry, and never
    // the one being worked on.
    if (flags & kRecentReap) {
      Entry* old = Oldest();
      if (old && old != e && old->last < oldest_ok) Remove(*old);
    }
  }
  if (cmd == RecentCmd::kSet || (cmd == RecentCmd::kUpdate && ret)) {
    Record(*e, now_ns);
    e->ttl = ttl;
  }
  Unlock();
  return ret;
}

void RecentState::Flush() {
  Lock();
  for (Entry& e : entries_) e.used = false;
  used_ = 0;
  Unlock();
}

// recent_seq_show: "src=ADDR ttl: T last_seen: S oldest_pkt: I S1, S2, ...".
std::string RecentState::List(uint64_t) const {
  std::string out;
  Lock();
  for (const Entry& e : entries_) {
    if (!e.used) continue;
    char buf[64];
    if (e.family == 4) {
      std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", e.addr[0] >> 24, (e.addr[0] >> 16) & 255,
                    (e.addr[0] >> 8) & 255, e.addr[0] & 255);
    } else {
      std::snprintf(buf, sizeof buf, "%x:%x:%x:%x:%x:%x:%x:%x", e.addr[0] >> 16, e.addr[0] & 0xffff,
                    e.addr[1] >> 16, e.addr[1] & 0xffff, e.addr[2] >> 16, e.addr[2] & 0xffff, e.addr[3] >> 16,
                    e.addr[3] & 0xffff);
    }
    out += std::string("src=") + buf + " ttl: " + std::to_string(e.ttl) + " last_seen: " + std::to_string(e.last) +
           " oldest_pkt: " + std::to_string(e.index);
    const uint64_t* st = Stamps(e);
    for (uint32_t i = 0; i < e.nstamps; ++i) out += (i ? ", " : " ") + std::to_string(st[i]);
    out += "\n";
  }
  Unlock();
  return out;
}

State::Stats RecentState::stats() const {
  Stats s;
  Lock();
  s.entries = used_;
  s.capacity = entries_.size();
  s.evictions = evictions_;
  Unlock();
  return s;
}

}  // namespace ext
}  // namespace flatwall
