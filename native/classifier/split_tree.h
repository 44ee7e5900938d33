// Internal: the fallback of the tuple classifier. It holds the records that
// hashing cannot separate: the ones left when the table cap is reached, the
// ones colliding beyond the limit under their own exact tuple (many rules
// that differ only in arbitrary port ranges, interfaces or tcp flags), and
// the rules with no hashable field at all (the policy, "-i eth1 -j DROP").
//
// It is a HyperSplit-style binary tree: every node cuts one field at one
// point, a record whose range straddles the point goes to both sides. That
// replication is what makes cutting trees blow up on wildcard-heavy sets
// (rte_acl in the anchors), so here it is bounded twice: a split must shrink
// the larger side, and the whole tree may hold at most `budget` record
// references. When either bound bites, the node stays a leaf and is scanned
// linearly. Memory is therefore linear in the record count whatever the
// rules look like, and the worst lookup degrades to a linear scan of one
// leaf, never to anything exponential.
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <vector>

#include "classifier/family.h"
#include "classifier/image.h"

namespace flatwall {
namespace detail {

template <typename Rec>
class SplitTree {
  using F = Family<Rec>;
  using Key = typename F::Key;
  // One value type for every field keeps nodes uniform; for IPv4 the
  // addresses and all the 16-bit fields fit in 32 bits.
  using V = typename F::Addr;

 public:
  static constexpr int kFields = 8;  // src dst sport dport proto iif oif icmp

  // `rules` ascending. `budget` caps the record references over all leaves.
  void Build(const Rec* recs, const std::vector<uint32_t>& rules, size_t budget) {
    nodes_.clear();
    leaf_rules_.clear();
    size_ = uint32_t(rules.size());
    if (rules.empty()) return;
    min_index_ = rules.front();
    max_index_ = rules.back();
    struct Pending {
      uint32_t node;
      uint32_t depth;
      std::vector<uint32_t> rules;
    };
    // Breadth first, so that when the budget runs out it is the deep,
    // already small nodes that stay leaves, not a whole sibling subtree.
    std::deque<Pending> queue;
    nodes_.push_back(Node{});
    queue.push_back(Pending{0, 0, rules});
    size_t references = rules.size();
    std::vector<V> los, his;
    while (!queue.empty()) {
      Pending p = std::move(queue.front());
      queue.pop_front();
      const size_t m = p.rules.size();
      int field = -1;
      V point = 0;
      size_t left_n = 0, right_n = 0;
      if (m > kLeafSize && p.depth < kMaxDepth) {
        BestSplit(recs, p.rules, &field, &point, &left_n, &right_n, los, his);
      }
      // A split is taken only if it shrinks the larger side by a real
      // fraction (else a chain of useless nodes), and fits the budget.
      const bool split = field >= 0 && std::max(left_n, right_n) <= m - std::max<size_t>(1, m / 16) &&
                         references - m + left_n + right_n <= budget;
      if (!split) {
        Node& n = nodes_[p.node];
        n.field = kLeaf;
        n.child[0] = uint32_t(leaf_rules_.size());
        n.child[1] = uint32_t(m);
        leaf_rules_.insert(leaf_rules_.end(), p.rules.begin(), p.rules.end());
        continue;
      }
      references = references - m + left_n + right_n;
      std::vector<uint32_t> left, right;
      left.reserve(left_n);
      right.reserve(right_n);
      for (uint32_t r : p.rules) {
        if (Lo(recs[r], field) <= point) left.push_back(r);
        if (Hi(recs[r], field) > point) right.push_back(r);
      }
      const uint32_t li = uint32_t(nodes_.size());
      nodes_.push_back(Node{});
      nodes_.push_back(Node{});
      Node& n = nodes_[p.node];
      n.field = uint8_t(field);
      n.point = point;
      n.child[0] = li;
      n.child[1] = li + 1;
      p.rules.clear();
      p.rules.shrink_to_fit();
      queue.push_back(Pending{li, p.depth + 1, std::move(left)});
      queue.push_back(Pending{li + 1, p.depth + 1, std::move(right)});
    }
    nodes_.shrink_to_fit();
    leaf_rules_.shrink_to_fit();
  }

  // The key's value in every field, in node field order, so the descent
  // indexes an array instead of branching on the field.
  static void KeyValues(const Key& k, V out[kFields]) {
    out[0] = F::Src(k);
    out[1] = F::Dst(k);
    out[2] = k.c.sport;
    out[3] = k.c.dport;
    out[4] = k.c.proto;
    out[5] = k.c.iif;
    out[6] = k.c.oif;
    out[7] = k.c.icmp;
  }

  // First record in [start, best) matching k, else best.
  uint32_t Lookup(const Rec* recs, const Key& k, uint32_t start, uint32_t best) const {
    if (nodes_.empty()) return best;
    V vals[kFields];
    KeyValues(k, vals);
    const Node* n = &nodes_[0];
    while (n->field != kLeaf) n = &nodes_[n->child[vals[n->field] > n->point]];
    const uint32_t* r = leaf_rules_.data() + n->child[0];
    const uint32_t* end = r + n->child[1];
    // A leaf is short and ascending; skipping below `start` linearly is
    // cheaper than a binary search at these sizes.
    for (; r != end; ++r) {
      const uint32_t i = *r;
      if (i >= best) break;
      if (i >= start && Matches(recs[i], k)) return i;
    }
    return best;
  }

  bool empty() const { return size_ == 0; }
  uint32_t size() const { return size_; }
  uint32_t min_index() const { return min_index_; }
  uint32_t max_index() const { return max_index_; }
  size_t memory_bytes() const {
    return nodes_.capacity() * sizeof(Node) + leaf_rules_.capacity() * sizeof(uint32_t);
  }
  size_t references() const { return leaf_rules_.size(); }

  // The tree in an image (classifier/image.h), field by field: nodes have
  // padding, which must not reach the file.
  void Save(ImageWriter* w) const {
    w->U32(size_);
    w->U32(min_index_);
    w->U32(max_index_);
    w->U32(uint32_t(nodes_.size()));
    for (const Node& n : nodes_) {
      if constexpr (sizeof(V) == sizeof(uint32_t)) {
        w->U32(uint32_t(n.point));
      } else {
        w->U64(uint64_t(n.point >> 64));
        w->U64(uint64_t(n.point));
      }
      w->U32(n.child[0]);
      w->U32(n.child[1]);
      w->U32(n.field);
    }
    w->Array(leaf_rules_.data(), leaf_rules_.size());
  }

  // Reads what Save wrote and checks what Lookup relies on: fields below
  // kFields, children after their parent (so a descent ends) and inside
  // the node array, leaves inside the leaf array, record indices below
  // `count`.
  void Load(ImageReader* r, uint32_t count) {
    size_ = r->U32("tree size");
    min_index_ = r->U32("tree min index");
    max_index_ = r->U32("tree max index");
    const uint32_t n = r->Count("tree nodes", sizeof(V) + 3 * sizeof(uint32_t));
    nodes_.resize(n);
    for (Node& node : nodes_) {
      if constexpr (sizeof(V) == sizeof(uint32_t)) {
        node.point = r->U32("tree node");
      } else {
        const uint64_t hi = r->U64("tree node");
        node.point = (V(hi) << 64) | r->U64("tree node");
      }
      node.child[0] = r->U32("tree node");
      node.child[1] = r->U32("tree node");
      const uint32_t field = r->U32("tree node");
      ImageCheck(field == kLeaf || field < uint32_t(kFields), "tree node", "unknown field");
      node.field = uint8_t(field);
    }
    r->Array(&leaf_rules_, "tree leaves");
    ImageCheck((size_ == 0) == nodes_.empty(), "tree", "size disagrees with its nodes");
    for (uint32_t i = 0; i < n; ++i) {
      const Node& node = nodes_[i];
      if (node.field == kLeaf) {
        ImageCheck(uint64_t(node.child[0]) + node.child[1] <= leaf_rules_.size(), "tree leaf",
                   "runs past the leaf array");
      } else {
        ImageCheck(node.child[0] > i && node.child[0] < n && node.child[1] > i && node.child[1] < n,
                   "tree node", "child out of order or out of range");
      }
    }
    for (uint32_t rule : leaf_rules_) ImageCheck(rule < count, "tree leaf", "record index out of range");
  }

 private:
  static constexpr uint8_t kLeaf = 0xff;
  static constexpr size_t kLeafSize = 8;
  static constexpr uint32_t kMaxDepth = 40;

  struct Node {
    V point = 0;
    uint32_t child[2] = {0, 0};  // v <= point, v > point; a leaf: begin, count
    uint8_t field = kLeaf;
  };

  static V Lo(const Rec& r, int f) {
    switch (f) {
      case 0: return F::SrcLo(r);
      case 1: return F::DstLo(r);
      case 2: return r.c.sport_lo;
      case 3: return r.c.dport_lo;
      case 4: return r.c.proto_lo;
      case 5: return r.c.iif_lo;
      case 6: return r.c.oif_lo;
      default: return r.c.icmp_lo;
    }
  }
  static V Hi(const Rec& r, int f) {
    switch (f) {
      case 0: return F::SrcHi(r);
      case 1: return F::DstHi(r);
      case 2: return r.c.sport_hi;
      case 3: return r.c.dport_hi;
      case 4: return r.c.proto_hi;
      case 5: return r.c.iif_hi;
      case 6: return r.c.oif_hi;
      default: return r.c.icmp_hi;
    }
  }
  // For each field, the cut point p (left: v <= p) that minimises the larger
  // side; across fields, the smallest larger side, then the least
  // replication. Candidate points are the records' upper bounds: between
  // two consecutive ones the counts on each side cannot change.
  static void BestSplit(const Rec* recs, const std::vector<uint32_t>& rules, int* best_field,
                        V* best_point, size_t* best_left, size_t* best_right, std::vector<V>& los,
                        std::vector<V>& his) {
    const size_t m = rules.size();
    size_t best_max = SIZE_MAX, best_sum = SIZE_MAX;
    for (int f = 0; f < kFields; ++f) {
      los.resize(m);
      his.resize(m);
      for (size_t i = 0; i < m; ++i) {
        los[i] = Lo(recs[rules[i]], f);
        his[i] = Hi(recs[rules[i]], f);
      }
      std::sort(los.begin(), los.end());
      std::sort(his.begin(), his.end());
      if (los.front() == los.back() && his.front() == his.back()) continue;
      // Walk the distinct upper bounds; `l` counts lows <= p.
      size_t l = 0;
      for (size_t h = 0; h < m;) {
        const V p = his[h];
        while (h < m && his[h] == p) ++h;
        if (h == m) break;  // p is the largest upper bound: right side empty
        while (l < m && los[l] <= p) ++l;
        const size_t left = l, right = m - h;
        const size_t mx = std::max(left, right), sum = left + right;
        if (mx < best_max || (mx == best_max && sum < best_sum)) {
          best_max = mx, best_sum = sum;
          *best_field = f, *best_point = p, *best_left = left, *best_right = right;
        }
      }
    }
  }

  std::vector<Node> nodes_;
  std::vector<uint32_t> leaf_rules_;
  uint32_t size_ = 0, min_index_ = 0, max_index_ = 0;
};

}  // namespace detail
}  // namespace flatwall
