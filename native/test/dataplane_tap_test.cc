// The whole dataplane (workers, TAP queues or AF_PACKET rings, parse, verdicts, REJECT, LOG,
// counters, ruleset swap) driven with the pcap fixtures, inside a private
// network namespace:
//
//   test socket --AF_PACKET--> [dpA] ==TAP==> Dataplane ==TAP==> [dpB] --AF_PACKET--> test socket
//   test socket -> [dpA2 =veth= dpA] =rings=> Dataplane =rings=> [dpB =veth= dpB2] -> test socket
//
// The test sends frames out of dpA (TAP: the kernel hands them to the
// dataplane through the TAP queues) or dpA2 (veth: they arrive on dpA's
// AF_PACKET RX rings, with the outer VLAN tag moved to metadata, which the
// port must put back) and receives what the dataplane sends out of dpB. Needs CAP_NET_ADMIN and /dev/net/tun: skipped (with a
// note, not a failure) without them. Runs in its own thread, which alone
// enters the new namespace (the dataplane's workers, started from it,
// inherit it).
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <thread>

#include "dataplane/bytes.h"
#include "dataplane/dataplane.h"
#include "dataplane/parse.h"
#include "test/dataplane_test_rules.h"
#include "test/dataplane_testing.h"

namespace flatwall {
namespace {

using Frame = std::vector<uint8_t>;

bool WriteFile(const char* path, const char* v) {
  const int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = write(fd, v, std::strlen(v)) == ssize_t(std::strlen(v));
  close(fd);
  return ok;
}

int RawSocket(const char* ifname) {
  const int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
  if (fd < 0) return -1;
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = int(if_nametoindex(ifname));
  int one = 1;
  timeval tv{0, 150000};
  if (bind(fd, reinterpret_cast<sockaddr*>(&sll), sizeof sll) != 0 ||
      setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one) != 0 ||
      setsockopt(fd, SOL_PACKET, PACKET_AUXDATA, &one, sizeof one) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Everything received until the socket has been quiet for 150 ms. The
// kernel moves a received outer VLAN tag to auxdata; put it back.
std::vector<Frame> Drain(int fd) {
  std::vector<Frame> out;
  for (;;) {
    Frame f(70000);
    char cbuf[CMSG_SPACE(sizeof(tpacket_auxdata))];
    iovec iov{f.data(), f.size()};
    msghdr m{};
    m.msg_iov = &iov, m.msg_iovlen = 1;
    m.msg_control = cbuf, m.msg_controllen = sizeof cbuf;
    const ssize_t n = recvmsg(fd, &m, 0);
    if (n < 0) break;
    f.resize(size_t(n));
    for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
      if (c->cmsg_level != SOL_PACKET || c->cmsg_type != PACKET_AUXDATA) continue;
      tpacket_auxdata aux;
      std::memcpy(&aux, CMSG_DATA(c), sizeof aux);
      if ((aux.tp_status & TP_STATUS_VLAN_VALID) && f.size() >= 12) {
        const uint16_t tpid = (aux.tp_status & TP_STATUS_VLAN_TPID_VALID) ? aux.tp_vlan_tpid : 0x8100;
        const uint8_t tag[4] = {uint8_t(tpid >> 8), uint8_t(tpid), uint8_t(aux.tp_vlan_tci >> 8),
                                uint8_t(aux.tp_vlan_tci)};
        f.insert(f.begin() + 12, tag, tag + 4);
      }
    }
    out.push_back(std::move(f));
  }
  return out;
}

void Send(int fd, const Frame& f) { (void)!send(fd, f.data(), f.size(), 0); }

DropReason ReasonByName(const std::string& name) {
  for (uint32_t r = 1; r < kDropReasonCount; ++r)
    if (name == DropReasonName(DropReason(r))) return DropReason(r);
  return DropReason::kNone;
}

std::vector<uint8_t> Rules(bool drop_all) {
  using namespace dptest;
  if (drop_all) return PackForward({Rule4(Wild(0, Action::kDrop))}, {Rule6(Wild(4, Action::kDrop))});
  auto icmp = Wild(0, Action::kLog, 1);
  icmp.proto_lo = icmp.proto_hi = 1;
  return PackForward(
      {Rule4(icmp), Rule4(ProtoPort(Wild(1, Action::kReject, uint32_t(RejectWith::kTcpReset)), 6, 9999)),
       Rule4(ProtoPort(Wild(2, Action::kDrop), 17, 53)), Rule4(Wild(3, Action::kAccept))},
      {Rule6(Wild(4, Action::kAccept))});
}

void Body(PortKind kind, bool* skipped) {
  if (unshare(CLONE_NEWNET) != 0 || access("/dev/net/tun", R_OK | W_OK) != 0) {
    *skipped = true;
    return;
  }
  // No IPv6 autoconfiguration chatter from the kernel on the test links.
  WriteFile("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
  WriteFile("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1");

  DataplaneConfig cfg;
  // AF_XDP with conntrack serves one worker (RX queues are not a symmetric hash).
  cfg.workers = kind == PortKind::kAfXdp ? 1 : 2;
  cfg.log_rate_per_sec = 1000;
  const char* ta = "dpA";  // where the test sends and receives
  const char* tb = "dpB";
  if (kind == PortKind::kTap) {
    cfg.ports = {{"dpA", PortKind::kTap, 0, 0, 1}, {"dpB", PortKind::kTap, 0, 0, 2}};
  } else {
    // veth pairs dpA|dpA2 and dpB|dpB2; the dataplane owns dpA and dpB. A
    // child process inherits this thread's namespace.
    if (system("ip link add dpA type veth peer name dpA2 && ip link add dpB type veth peer name dpB2 && "
               "ip link set dpA up && ip link set dpA2 up && ip link set dpB up && ip link set dpB2 up") != 0) {
      *skipped = true;
      return;
    }
    cfg.ports = {{"dpA", kind, 64, io::kDefaultFrameSize, 1}, {"dpB", kind, 64, io::kDefaultFrameSize, 2}};
    ta = "dpA2", tb = "dpB2";
  }
  Dataplane dp(cfg);
  dp.Start();
  const int sa = RawSocket(ta), sb = RawSocket(tb);
  DP_CHECK(sa >= 0 && sb >= 0);
  if (sa < 0 || sb < 0) return;
  Drain(sa), Drain(sb);

  const auto good = dptest::ReadPcap(dptest::FixturePath("parse_wellformed.pcap"));
  const auto bad = dptest::ReadPcap(dptest::FixturePath("parse_malformed.pcap"));
  const auto bad_expect = dptest::ReadLines(dptest::FixturePath("parse_malformed.expect"));
  DP_CHECK(good.size() > 20 && bad.size() == bad_expect.size());

  // 1. Before any ruleset: IP is dropped (fail closed), ARP passes.
  Send(sa, good[0]);
  Send(sa, good[13]);
  auto got = Drain(sb);
  DP_CHECK_EQ(got.size(), size_t(1));
  DP_CHECK(!got.empty() && got[0] == good[13]);
  DP_CHECK_EQ(dp.Counters().drops[uint32_t(DropReason::kNoRuleset)], 1u);

  // 2. Rules in: every well-formed frame but the UDP one to port 53 goes
  //    through unchanged (VLAN tags included).
  const auto buf = Rules(false);
  DP_CHECK_EQ(dp.SetRules(buf.data(), buf.size(), {}, 5), 1u);
  for (const auto& f : good) Send(sa, f);
  got = Drain(sb);
  std::vector<Frame> want;
  for (size_t i = 0; i < good.size(); ++i)
    if (i != 1) want.push_back(good[i]);
  std::sort(got.begin(), got.end());
  std::sort(want.begin(), want.end());
  DP_CHECK_EQ(got.size(), want.size());
  DP_CHECK(got == want);

  // 3. Malformed frames: none passes, each counted under its reason.
  const CountersSnapshot before = dp.Counters();
  std::map<DropReason, uint64_t> expect_reasons;
  for (size_t i = 0; i < bad.size(); ++i) {
    if (bad[i].size() < 14) continue;  // the kernel will not send a runt Ethernet frame
    const DropReason reason = ReasonByName(bad_expect[i].substr(bad_expect[i].find('=') + 1));
    // A veth's receive path untags the outer VLAN (skb_vlan_untag) before
    // packet sockets see the frame, and drops a tag cut short itself.
    // (XDP runs before that: AF_XDP ports see and count them.)
    if (kind == PortKind::kAfPacket && reason == DropReason::kVlanTruncated) continue;
    Send(sa, bad[i]);
    ++expect_reasons[reason];
  }
  DP_CHECK(Drain(sb).empty());
  const CountersSnapshot after = dp.Counters();
  for (const auto& [reason, n] : expect_reasons) {
    const uint64_t counted = after.drops[uint32_t(reason)] - before.drops[uint32_t(reason)];
    if (counted != n) {
      std::printf("  reason %s: counted %llu, expected %llu\n", DropReasonName(reason),
                  (unsigned long long)counted, (unsigned long long)n);
      ++dptest::Failures();
    }
  }

  // 3b. L4 header cut short: judged without L4, as the kernel does. The
  //     TCP ones meet the REJECT rule (-p tcp --dport 9999) and the UDP one
  //     the DROP rule (-p udp --dport 53) first: hot-dropped, uncounted by
  //     those rules. ICMP and SCTP (the ICMP LOG rule has no L4 match) and
  //     every IPv6 one reach ACCEPT.
  const auto trunc = dptest::ReadPcap(dptest::FixturePath("parse_truncated.pcap"));
  DP_CHECK_EQ(trunc.size(), size_t(8));
  const CountersSnapshot t0 = dp.Counters();
  for (const auto& f : trunc) Send(sa, f);
  got = Drain(sb);
  const CountersSnapshot t1 = dp.Counters();
  DP_CHECK_EQ(got.size(), size_t(5));
  DP_CHECK_EQ(t1.l4_truncated_hotdrop - t0.l4_truncated_hotdrop, 3u);
  DP_CHECK_EQ(t1.l4_truncated_judged - t0.l4_truncated_judged, 5u);
  DP_CHECK_EQ(t1.l4_truncated_bound + t1.l4_truncated_strict, 0u);
  DP_CHECK_EQ(t1.drops[uint32_t(DropReason::kL4Truncated)] - t0.drops[uint32_t(DropReason::kL4Truncated)], 3u);
  DP_CHECK_EQ(t1.rule_packets[1] + t1.rule_packets[2], t0.rule_packets[1] + t0.rule_packets[2]);
  DP_CHECK_EQ(t1.conntrack.invalid - t0.conntrack.invalid, 8u);

  // 4. REJECT: a SYN to port 9999 is answered with a RST out of dpA.
  Frame syn = good[0];
  ParsedFrame p;
  ParseFrame(syn.data(), uint32_t(syn.size()), false, &p);
  net::Store16(syn.data() + p.l4_off + 2, 9999);
  Send(sa, syn);
  DP_CHECK(Drain(sb).empty());
  got = Drain(sa);
  DP_CHECK_EQ(got.size(), size_t(1));
  if (got.size() == 1) {
    ParsedFrame r;
    ParseFrame(got[0].data(), uint32_t(got[0].size()), false, &r);
    DP_CHECK(r.cls == FrameClass::kIPv4);
    DP_CHECK_EQ(r.key4.c.sport, 9999);
    DP_CHECK_EQ(r.key4.c.dport, 1234);
    DP_CHECK_EQ(r.key4.c.tcp_flags, net::kTcpRst | net::kTcpAck);
  }

  // 5. LOG on ICMP, then ACCEPT.
  std::vector<LogEvent> logs;
  uint64_t lost = 0;
  dp.PollLogs(&logs, 100, &lost);
  logs.clear();
  Send(sa, good[3]);
  DP_CHECK_EQ(Drain(sb).size(), size_t(1));
  dp.PollLogs(&logs, 100, &lost);
  DP_CHECK_EQ(logs.size(), size_t(1));
  if (!logs.empty()) {
    DP_CHECK_EQ(logs[0].rule_id, 0u);
    DP_CHECK_EQ(logs[0].family, 4);
    DP_CHECK_EQ(logs[0].src[0], 0x0a000001u);
    DP_CHECK_EQ(logs[0].iif, 0);
    DP_CHECK_EQ(logs[0].oif, 1);
    DP_CHECK_EQ(logs[0].icmp, 8 << 8);
  }
  DP_CHECK_EQ(lost, 0u);

  CountersSnapshot c = dp.Counters();
  DP_CHECK_EQ(c.generation, 1u);
  DP_CHECK_EQ(c.rule_packets.size(), size_t(5));
  DP_CHECK_EQ(c.rule_packets[1], 1u);  // the REJECT
  DP_CHECK_EQ(c.rule_packets[2], 1u);  // the DROP of udp:53
  DP_CHECK(c.rule_packets[0] >= 2);    // ICMP logged twice (fixture run + step 5)
  DP_CHECK_EQ(c.reject_sent, 1u);
  DP_CHECK(c.ports[0].rx_packets > 0 && c.ports[1].tx_packets > 0);

  // 6. Swap to drop-all: generation 2, its own counters.
  const auto drop_all = Rules(true);
  DP_CHECK_EQ(dp.SetRules(drop_all.data(), drop_all.size(), {}, 5), 2u);
  Send(sa, good[0]);
  DP_CHECK(Drain(sb).empty());
  c = dp.Counters();
  DP_CHECK_EQ(c.generation, 2u);
  DP_CHECK_EQ(c.rule_packets[0], 1u);
  // NDP is judged by the rules like any ICMPv6 packet: dropped here.
  size_t ndp = 0;
  for (const auto& f : good) {
    ParsedFrame q;
    ParseFrame(f.data(), uint32_t(f.size()), false, &q);
    if (q.cls != FrameClass::kNdp) continue;
    Send(sa, f);
    ++ndp;
  }
  DP_CHECK(ndp >= 2);
  DP_CHECK(Drain(sb).empty());
  c = dp.Counters();
  DP_CHECK_EQ(c.ndp_judged, uint64_t(ndp) * 2);  // step 2 (accepted) and now
  DP_CHECK_EQ(c.rule_packets[4], uint64_t(ndp));
  DP_CHECK_EQ(c.ndp_bypassed, 0u);

  // 7. Swaps under traffic: a sender thread keeps frames coming while the
  //    rule set is replaced 40 times (under ASan, a worker still using a
  //    freed generation would be caught). Every frame is either forwarded
  //    or dropped by a rule: none lost to anything else.
  const CountersSnapshot s0 = dp.Counters();
  std::atomic<bool> sending{true};
  std::atomic<uint64_t> sent{0};
  std::thread sender([&] {
    while (sending.load()) {
      Send(sa, good[0]);
      if (sent.fetch_add(1) % 64 == 63) std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
  for (int i = 0; i < 40; ++i) {
    const auto& b = i % 2 ? buf : drop_all;
    const uint64_t before = sent.load();
    DP_CHECK_EQ(dp.SetRules(b.data(), b.size(), {}, 5), uint64_t(3 + i));
    // Traffic between every two swaps, however loaded the machine (a
    // starved sender thread once sent fewer than 100 frames in all).
    for (int w = 0; w < 1000 && sent.load() < before + 8; ++w) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  sending.store(false);
  sender.join();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const CountersSnapshot s1 = dp.Counters();
  const uint64_t rx = s1.ports[0].rx_packets - s0.ports[0].rx_packets;
  const uint64_t ok = (s1.accept - s0.accept) + (s1.drop - s0.drop);
  DP_CHECK(sent.load() > 100);
  DP_CHECK_EQ(rx, ok);
  DP_CHECK_EQ(s1.generation, 42u);

  // 8. Conntrack control under traffic: the workers keep updating their
  //    tables while lists and flushes run (by the workers, at batch
  //    boundaries; a build with -fsanitize=thread checks there is no race).
  //    Generation 42 is `buf`, which accepts the SYN: each one is tracked.
  ConntrackCommand clear;  // the fixture flows of steps 2-7
  clear.op = ConntrackCommand::Op::kFlush;
  dp.Conntrack(&clear);
  DP_CHECK(clear.count > 0);
  sending.store(true);
  std::thread sender2([&] {
    while (sending.load()) {
      Send(sa, good[0]);
      std::this_thread::sleep_for(std::chrono::microseconds(300));
    }
  });
  size_t listed = 0, flushed = 0;
  for (int i = 0; i < 40; ++i) {
    ConntrackCommand list;
    list.op = ConntrackCommand::Op::kList;
    list.limit = 100;
    dp.Conntrack(&list);
    for (const auto& row : list.rows) DP_CHECK(row.proto == 6 && row.sport == 1234 && row.dport == 80);
    listed += list.rows.size();
    ConntrackCommand flush;
    flush.op = ConntrackCommand::Op::kFlush;
    dp.Conntrack(&flush);
    flushed += flush.count;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  sending.store(false);
  sender2.join();
  DP_CHECK(listed > 0 && flushed > 0);
  const CountersSnapshot s2 = dp.Counters();
  DP_CHECK(s2.conntrack.enabled && s2.conntrack.insert >= flushed);
  DP_CHECK(s2.conntrack.entries <= 1);  // one flow (the same SYN), at most one entry left

  close(sa), close(sb);
  dp.Stop();
  if (kind == PortKind::kTap) {
    DP_CHECK_EQ(if_nametoindex("dpA"), 0u);  // the TAPs we created are gone
    DP_CHECK_EQ(if_nametoindex("dpB"), 0u);
  }

  // 9. The stricter behaviours, on request: truncated L4 headers dropped
  //    before the rules, NDP passed without them (drop-all rules here).
  DataplaneConfig strict = cfg;
  strict.drop_l4_truncated = true;
  strict.ndp_bypass = true;
  Dataplane dp2(strict);
  dp2.Start();
  const int sa2 = RawSocket(ta), sb2 = RawSocket(tb);
  DP_CHECK(sa2 >= 0 && sb2 >= 0);
  if (sa2 < 0 || sb2 < 0) return;
  Drain(sa2), Drain(sb2);
  DP_CHECK_EQ(dp2.SetRules(drop_all.data(), drop_all.size(), {}, 5), 1u);
  for (const auto& f : trunc) Send(sa2, f);
  for (const auto& f : good) {
    ParsedFrame q;
    ParseFrame(f.data(), uint32_t(f.size()), false, &q);
    if (q.cls == FrameClass::kNdp) Send(sa2, f);
  }
  got = Drain(sb2);
  DP_CHECK_EQ(got.size(), ndp);
  c = dp2.Counters();
  DP_CHECK_EQ(c.l4_truncated_strict, uint64_t(trunc.size()));
  DP_CHECK_EQ(c.drops[uint32_t(DropReason::kL4Truncated)], uint64_t(trunc.size()));
  DP_CHECK_EQ(c.l4_truncated_judged + c.l4_truncated_hotdrop, 0u);
  DP_CHECK_EQ(c.ndp_bypassed, uint64_t(ndp));
  DP_CHECK_EQ(c.ndp_judged, 0u);
  close(sa2), close(sb2);
  dp2.Stop();
}

void RunInPrivateNetns(PortKind kind) {
  bool skipped = false;
  std::thread t([&] {
    try {
      Body(kind, &skipped);
    } catch (const std::exception& e) {
      std::printf("  exception: %s\n", e.what());
      ++dptest::Failures();
    }
  });
  t.join();
  if (skipped) std::printf("  (skipped: needs CAP_NET_ADMIN, /dev/net/tun and ip(8))\n");
}

DP_TEST(DataplaneThroughTapsInPrivateNetns) { RunInPrivateNetns(PortKind::kTap); }
DP_TEST(DataplaneThroughAfPacketVethsInPrivateNetns) { RunInPrivateNetns(PortKind::kAfPacket); }
DP_TEST(DataplaneThroughAfXdpVethsInPrivateNetns) { RunInPrivateNetns(PortKind::kAfXdp); }

}  // namespace
}  // namespace flatwall
