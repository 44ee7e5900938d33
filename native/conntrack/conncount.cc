#include "conntrack/conncount.h"

#include <cstdio>
#include <cstring>

#include "conntrack/conntrack.h"

namespace flatwall {
namespace ct {

uint32_t ConnCount::Counter::Bucket(const uint32_t key[4]) const {
  uint64_t h = 0x9e3779b97f4a7c15ull ^ family;
  for (int i = 0; i < 4; ++i) {
    h = (h ^ key[i]) * 0xff51afd7ed558ccdull;
    h ^= h >> 29;
  }
  return uint32_t(h) & uint32_t(heads.size() - 1);
}

int32_t* ConnCount::Counter::Link(const uint32_t key[4]) {
  int32_t* link = &heads[Bucket(key)];
  while (*link >= 0 && std::memcmp(nodes[size_t(*link)].key, key, 16) != 0) link = &nodes[size_t(*link)].next;
  return link;
}

uint8_t ConnCount::Open(uint8_t family, const uint32_t mask[4]) {
  std::lock_guard<std::mutex> g(control_);
  for (uint8_t id = 1; id <= kMaxCounters; ++id) {
    Counter& c = counters_[id];
    c.Lock();
    // Free: no rule uses it and no entry carries its tag any more.
    const bool free = !c.open && c.connections == 0;
    if (free) {
      c.open = true;
      c.family = family;
      std::memcpy(c.mask, mask, sizeof c.mask);
      c.keys = 0, c.full = 0;
      if (c.nodes.size() != capacity_) c.nodes.resize(capacity_);
      size_t nb = 16;
      while (nb < 2ull * capacity_) nb <<= 1;
      c.heads.assign(nb, -1);
      for (uint32_t i = 0; i < capacity_; ++i) c.nodes[i].next = i + 1 < capacity_ ? int32_t(i + 1) : -1;
      c.free_head = 0;
    }
    c.Unlock();
    if (free) return id;
  }
  return 0;
}

void ConnCount::Close(uint8_t id) {
  std::lock_guard<std::mutex> g(control_);
  Counter& c = counters_[id & kTagIdMask];
  c.Lock();
  c.open = false;
  c.Unlock();
}

void ConnCount::Mask(uint8_t id, const uint32_t addr[4], uint32_t out[4]) const {
  const Counter& c = counters_[id & kTagIdMask];
  for (int i = 0; i < 4; ++i) out[i] = addr[i] & c.mask[i];
}

uint32_t ConnCount::Read(uint8_t id, const uint32_t key[4]) const {
  Counter& c = const_cast<Counter&>(counters_[id & kTagIdMask]);
  c.Lock();
  const int32_t n = *c.Link(key);
  const uint32_t count = n >= 0 ? c.nodes[size_t(n)].count : 0;
  c.Unlock();
  return count;
}

uint32_t ConnCount::Add(uint8_t id, const uint32_t key[4]) {
  Counter& c = counters_[id & kTagIdMask];
  c.Lock();
  int32_t* link = c.Link(key);
  uint32_t count = 1;
  if (*link >= 0) {
    count = ++c.nodes[size_t(*link)].count;
    ++c.connections;
  } else if (c.free_head >= 0) {
    const int32_t n = c.free_head;
    Node& node = c.nodes[size_t(n)];
    c.free_head = node.next;
    std::memcpy(node.key, key, sizeof node.key);
    node.count = 1;
    node.next = -1;
    *link = n;
    ++c.keys, ++c.connections;
  } else {
    ++c.full;
    count = 0;
  }
  c.Unlock();
  return count;
}

void ConnCount::Drop(uint8_t id, const uint32_t key[4]) {
  Counter& c = counters_[id & kTagIdMask];
  c.Lock();
  int32_t* link = c.Link(key);
  if (*link >= 0) {
    const int32_t n = *link;
    Node& node = c.nodes[size_t(n)];
    --c.connections;
    if (--node.count == 0) {
      *link = node.next;
      node.next = c.free_head;
      c.free_head = n;
      --c.keys;
    }
  }
  c.Unlock();
}

void ConnCount::EndpointKey(uint8_t tag, const Entry& e, uint32_t out[4]) const {
  Mask(tag, (tag & kTagEndpointB) ? e.key.b : e.key.a, out);
}

void ConnCount::Release(Entry* e) {
  for (uint8_t& tag : e->counted) {
    if (!tag) continue;
    uint32_t key[4];
    EndpointKey(tag, *e, key);
    Drop(tag, key);
    tag = 0;
  }
}

void ConnCount::Acquire(Entry* e) {
  for (uint8_t& tag : e->counted) {
    if (!tag) continue;
    uint32_t key[4];
    EndpointKey(tag, *e, key);
    if (!Add(tag, key)) tag = 0;  // not counted: nothing to release later
  }
}

ConnCount::CounterStats ConnCount::Stats(uint8_t id) const {
  const Counter& c = counters_[id & kTagIdMask];
  c.Lock();
  CounterStats s{c.keys, c.connections, capacity_, c.full};
  c.Unlock();
  return s;
}

std::string ConnCount::List(uint8_t id) const {
  Counter& c = const_cast<Counter&>(counters_[id & kTagIdMask]);
  std::string out;
  c.Lock();
  for (const int32_t head : c.heads) {
    for (int32_t n = head; n >= 0; n = c.nodes[size_t(n)].next) {
      const Node& node = c.nodes[size_t(n)];
      char a[64];
      if (c.family == 4) {
        const uint32_t v = node.key[0];
        std::snprintf(a, sizeof a, "%u.%u.%u.%u", v >> 24, (v >> 16) & 255, (v >> 8) & 255, v & 255);
      } else {
        int k = 0;
        for (int w = 0; w < 8; ++w) {
          const uint32_t v = (node.key[w / 2] >> (w % 2 ? 0 : 16)) & 0xffff;
          k += std::snprintf(a + k, sizeof a - size_t(k), w ? ":%x" : "%x", v);
        }
      }
      out += std::string(a) + " count=" + std::to_string(node.count) + "\n";
    }
  }
  c.Unlock();
  return out;
}

}  // namespace ct
}  // namespace flatwall
