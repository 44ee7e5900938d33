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
  size_t nb = 16;
  while (nb < 2 * entries_.size()) nb <<= 1;
  heads_.assign(nb, -1);
  for (size_t i = entries_.size(); i-- > 0;) free_.push_back(int32_t(i));
}

uint32_t RecentState::Bucket(uint8_t family, const uint32_t addr[4]) const {
  uint64_t h = 0x9e3779b97f4a7c15ull ^ family;
  for (int i = 0; i < 4; ++i) {
    h = (h ^ addr[i]) * 0xff51afd7ed558ccdull;
    h ^= h >> 29;
  }
  return uint32_t(h) & uint32_t(heads_.size() - 1);
}

void RecentState::LruUnlink(int32_t i) {
  Entry& e = entries_[size_t(i)];
  if (e.lru_prev >= 0) entries_[size_t(e.lru_prev)].lru_next = e.lru_next;
  else lru_head_ = e.lru_next;
  if (e.lru_next >= 0) entries_[size_t(e.lru_next)].lru_prev = e.lru_prev;
  else lru_tail_ = e.lru_prev;
  e.lru_prev = e.lru_next = -1;
}

void RecentState::LruAppend(int32_t i) {
  Entry& e = entries_[size_t(i)];
  e.lru_prev = lru_tail_, e.lru_next = -1;
  if (lru_tail_ >= 0) entries_[size_t(lru_tail_)].lru_next = i;
  else lru_head_ = i;
  lru_tail_ = i;
}

RecentState::Entry* RecentState::Lookup(uint8_t family, const uint32_t addr[4], uint8_t ttl, bool check_ttl) {
  // recent_entry_lookup: same family and address, and with --rttl the same
  // TTL (a TTL of 0 on either side matches any).
  const uint8_t want = check_ttl ? ttl : 0;
  for (int32_t i = heads_[Bucket(family, addr)]; i >= 0; i = entries_[size_t(i)].next) {
    Entry& e = entries_[size_t(i)];
    if (e.family != family || std::memcmp(e.addr, addr, sizeof e.addr) != 0) continue;
    if (want == e.ttl || want == 0 || e.ttl == 0) return &e;
  }
  return nullptr;
}

void RecentState::Remove(Entry& e) {
  const int32_t i = int32_t(&e - entries_.data());
  int32_t* link = &heads_[e.bucket];
  while (*link != i) link = &entries_[size_t(*link)].next;
  *link = e.next;
  LruUnlink(i);
  e.used = false;
  e.next = -1;
  free_.push_back(i);
  --used_;
}

RecentState::Entry* RecentState::Insert(uint8_t family, const uint32_t addr[4], uint8_t ttl, uint64_t now_ns) {
  // recent_entry_init: a full table first drops its least recently updated entry.
  if (free_.empty()) {
    if (Entry* old = Oldest()) {
      Remove(*old);
      ++evictions_;
    }
  }
  if (free_.empty()) return nullptr;
  const int32_t i = free_.back();
  free_.pop_back();
  Entry& e = entries_[size_t(i)];
  e.used = true;
  e.family = family, e.ttl = ttl;
  std::memcpy(e.addr, addr, sizeof e.addr);
  e.nstamps = 1, e.index = 1;
  Stamps(e)[0] = now_ns;
  e.last = now_ns;
  e.bucket = Bucket(family, addr);
  e.next = heads_[e.bucket];
  heads_[e.bucket] = i;
  LruAppend(i);
  ++used_;
  return &e;
}

void RecentState::Record(Entry& e, uint64_t now_ns) {
  // recent_entry_update: the ring wraps at its power-of-two size; the entry
  // moves to the LRU tail (list_move_tail).
  e.index &= ring_ - 1;
  Stamps(e)[e.index++] = now_ns;
  if (e.index > e.nstamps) e.nstamps = e.index;
  e.last = now_ns;
  const int32_t i = int32_t(&e - entries_.data());
  LruUnlink(i);
  LruAppend(i);
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
    // recent_entry_reap: only the least recently updated entry, and not
    // the one being worked on when an --update is about to record it
    // ("xt_recent: Fix attempt to update deleted entry").
    if (flags & kRecentReap) {
      Entry* old = Oldest();
      const bool updating = cmd == RecentCmd::kUpdate && ret;
      if (old && !(old == e && updating) && old->last < oldest_ok) {
        Remove(*old);
        if (old == e) {
          Unlock();
          return ret;
        }
      }
    }
  }
  if (cmd == RecentCmd::kSet || (cmd == RecentCmd::kUpdate && ret)) {
    Record(*e, now_ns);
    e->ttl = ttl;
  }
  Unlock();
  return ret;
}

// recent_seq_show: "src=ADDR ttl: T last_seen: S oldest_pkt: I S1, S2, ...".
std::string RecentState::List(uint64_t) const {
  // Copied under the lock, formatted after it: the workers never wait on
  // string building.
  Lock();
  std::vector<Entry> copy;
  std::vector<uint64_t> stamps;
  for (const Entry& e : entries_) {
    if (!e.used) continue;
    copy.push_back(e);
    const uint64_t* st = Stamps(e);
    stamps.insert(stamps.end(), st, st + ring_);
  }
  Unlock();
  std::string out;
  for (size_t k = 0; k < copy.size(); ++k) {
    const Entry& e = copy[k];
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
    const uint64_t* st = &stamps[k * ring_];
    for (uint32_t i = 0; i < e.nstamps; ++i) out += (i ? ", " : " ") + std::to_string(st[i]);
    out += "\n";
  }
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
