// Builds small packed table sets (rule_table.h) for the dataplane tests.
#pragma once

#include <cstring>
#include <vector>

#include "classifier/rule_table.h"

namespace flatwall {
namespace dptest {

inline RuleCommon Wild(uint32_t id, Action a, uint32_t arg = 0) {
  RuleCommon c{};
  c.rule_id = id;
  c.arg = arg;
  c.sport_lo = 0, c.sport_hi = 0xffff;
  c.dport_lo = 0, c.dport_hi = 0xffff;
  c.iif_lo = 0, c.iif_hi = 0xffff;
  c.oif_lo = 0, c.oif_hi = 0xffff;
  c.icmp_lo = 0, c.icmp_hi = 0xffff;
  c.proto_lo = 0, c.proto_hi = 0xff;
  c.ct_state_mask = kCtAny;
  c.action = uint8_t(a);
  return c;
}

inline RuleRecord4 Rule4(const RuleCommon& c) {
  RuleRecord4 r{};
  r.c = c;
  r.src_lo = 0, r.src_hi = 0xffffffff;
  r.dst_lo = 0, r.dst_hi = 0xffffffff;
  return r;
}

inline RuleRecord6 Rule6(const RuleCommon& c) {
  RuleRecord6 r{};
  r.c = c;
  for (int i = 0; i < 4; ++i) r.src_lo[i] = r.dst_lo[i] = 0, r.src_hi[i] = r.dst_hi[i] = 0xffffffff;
  return r;
}

// Proto + destination port range, with kRuleNeedsL4.
inline RuleCommon ProtoPort(RuleCommon c, uint8_t proto, uint16_t port) {
  c.proto_lo = c.proto_hi = proto;
  c.dport_lo = c.dport_hi = port;
  c.flags |= kRuleNeedsL4;
  return c;
}

// FORWARD tables for both families (either may be empty: then omitted).
inline std::vector<uint8_t> PackForward(const std::vector<RuleRecord4>& v4,
                                        const std::vector<RuleRecord6>& v6) {
  const uint16_t tables = uint16_t(!v4.empty()) + uint16_t(!v6.empty());
  size_t off = sizeof(TableSetHeader) + tables * sizeof(TableDesc);
  const size_t off4 = off;
  off += v4.size() * sizeof(RuleRecord4);
  const size_t off6 = off;
  off += v6.size() * sizeof(RuleRecord6);
  std::vector<uint8_t> buf(off);
  TableSetHeader h{kTableMagic, kTableVersion, tables, uint32_t(off), 0};
  std::memcpy(buf.data(), &h, sizeof h);
  size_t d = sizeof h;
  if (!v4.empty()) {
    TableDesc t{uint8_t(Family::kIPv4), uint8_t(Hook::kForward), sizeof(RuleRecord4),
                uint32_t(v4.size()), uint32_t(off4), 0};
    std::memcpy(buf.data() + d, &t, sizeof t);
    d += sizeof t;
    std::memcpy(buf.data() + off4, v4.data(), v4.size() * sizeof(RuleRecord4));
  }
  if (!v6.empty()) {
    TableDesc t{uint8_t(Family::kIPv6), uint8_t(Hook::kForward), sizeof(RuleRecord6),
                uint32_t(v6.size()), uint32_t(off6), 0};
    std::memcpy(buf.data() + d, &t, sizeof t);
    std::memcpy(buf.data() + off6, v6.data(), v6.size() * sizeof(RuleRecord6));
  }
  return buf;
}

}  // namespace dptest
}  // namespace flatwall
