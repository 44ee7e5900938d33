// The dataplane: a transparent bump in the wire between pairs of ports
// (port 0 <-> port 1, 2 <-> 3, ...), run by N worker threads.
//
// Threads
//   Each worker owns one queue of every port (an AF_PACKET socket with RX
//   and TX rings in the port's fanout group, or one TAP queue) and runs
//   Worker::Run: RX burst from each port, parse, classify, apply the
//   verdict (forward into the peer port's TX ring, drop, or answer a REJECT
//   into the input port's TX ring), one TX flush per port per batch, and
//   poll() when there is nothing to do. No locks, no allocation, no
//   syscalls per packet (TAP ports excepted: read/write per frame). The JS
//   thread only configures, swaps rulesets, reads counters and drains logs.
//
// Per-frame policy
//   IPv4 / IPv6           FORWARD table of the current ruleset, with
//                         iif = input port's class id, oif = peer's;
//                         in host mode (DataplaneConfig::host) INPUT for
//                         frames to the host, OUTPUT for frames from it
//                         (dataplane/host.h: the choice, and -i/-o there). A
//                         truncated L4 header is judged without L4 and
//                         hot-dropped at an L4 rule (hotdrop.h), or dropped
//                         first with drop_l4_truncated.
//   NDP (ICMPv6 133-137)  the same (the kernel filters it like any ICMPv6);
//                         forwarded unfiltered with ndp_bypass.
//   ARP                   forwarded, never filtered.
//   any other ethertype   nonIpPolicy: accept (default) or drop.
//   malformed             dropped, counted by reason (parse.h).
//   before the first setRules: IP is dropped (no_ruleset): fail closed.
//
// Ruleset swap (RCU / quiescent-state style)
//   current_ is an atomic pointer. A worker loads it at every batch
//   boundary and then announces the generation it now uses in its own
//   `observed` word; before blocking in poll() it announces kIdle (it holds
//   no ruleset while blocked) and on waking it announces kWaking and loads
//   current_ again before touching any ruleset. SetRules builds the new
//   Ruleset off the JS thread, stores it in current_ (seq_cst), then waits
//   until every worker's word is kIdle or >= the new generation; only then
//   is the previous generation released. The seq_cst store/load pairs make
//   the idle case safe (a worker that was idle when checked must see the new
//   pointer when it wakes). The hot path pays one load and one store per
//   batch, both plain moves on x86.
//
// IP sets (sets()): the Dataplane owns one sets::SetStore, which the
//   workers read lock-free (native/sets/set_store.h). Its grace period
//   (WaitSetReaders) uses the same announcements: each worker bumps its
//   batch_epoch (seq_cst) at every batch boundary, and memory the store
//   unpublished is freed once every worker's epoch has moved on or it was
//   seen idle. One seq_cst store per batch more on the hot path.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "conntrack/conntrack.h"
#include "dataplane/counters.h"
#include "dataplane/log_ring.h"
#include "dataplane/ruleset.h"
#include "extensions/addrtype.h"
#include "io/afpacket_port.h"
#include "io/port.h"
#include "io/xdp_redirect.h"
#include "sets/set_store.h"

namespace flatwall {

// kAuto: AF_XDP when the socket binds and the program attaches in native
// mode, else AF_PACKET (Dataplane::io_choice says which, and why).
enum class PortKind : uint8_t { kAfPacket, kTap, kAfXdp, kAuto };

struct PortConfig {
  std::string name;
  PortKind kind = PortKind::kAfPacket;
  uint32_t ring_frames = io::kDefaultRingFrames;  // per RX and per TX ring (AF_PACKET)
  uint32_t frame_size = io::kDefaultFrameSize;
  uint16_t iface_class_id = 0;  // used until a ruleset says otherwise
};

// How the ports were opened, for the log and the API.
struct IoChoice {
  std::string io;        // "afpacket", "afxdp", "tap", or "afpacket,tap"...
  std::string xdp_mode;  // "native" / "generic" (AF_XDP only)
  bool zero_copy = false;
  std::string fallback;  // auto: why AF_XDP was not used ("" when it was, or not asked)
};

struct DataplaneConfig {
  std::vector<PortConfig> ports;  // an even number: pairs (0,1), (2,3)...
  uint32_t workers = 1;
  bool cpu_pin = false;
  bool non_ip_accept = true;     // nonIpPolicy
  double log_rate_per_sec = 1000;  // across all workers
  bool qdisc_bypass = false;
  bool tx_ring = true;           // AF_PACKET TX: ring (true) or sendmmsg (false)
  bool promisc = true;
  bool xdp_generic = false;      // AF_XDP: attach in generic (skb) mode instead of native
  uint32_t batch = 64;           // frames per RX burst
  uint32_t busy_poll_us = 0;     // keep polling the rings this long after traffic before sleeping
  // Scheduling: the nice value of each worker thread, and of the thread
  // that builds a new ruleset while it builds (0 = leave as is). On a
  // machine where rule loading and forwarding share cores, workers at -10
  // and builds at +10 keep a reload from starving the packet path.
  // Raising priority needs CAP_SYS_NICE; a failure is counted
  // (CountersSnapshot::worker_nice_failures), never fatal.
  int worker_nice = 0;
  int build_nice = 0;
  // Connection tracking (native/conntrack/conntrack.h). Off: every key is
  // UNTRACKED and no table is allocated.
  bool conntrack = true;
  uint32_t conntrack_max = 262144;  // all workers together (each gets its share)
  ct::Timeouts ct_timeouts;
  bool ct_tcp_loose = true;         // nf_conntrack_tcp_loose (Linux's default 1)
  // Stricter than the kernel, on request (counted either way, counters.h):
  bool drop_l4_truncated = false;   // drop a cut-short L4 header before the rules
  bool ndp_bypass = false;          // forward NDP without the rules
  uint32_t ct_gc_budget = 32;       // table slots the GC visits per batch (x128 per idle second)
  uint32_t flow_cache = 4096;       // flow cache entries per worker; 0 = off
  // Host mode: the host's addresses and prefixes (dataplane/host.h). Empty:
  // a bridge, every IP frame walks FORWARD. Also what -m addrtype calls
  // LOCAL and BROADCAST (extensions/addrtype.h).
  ext::HostAddrs host;
  // Hot standby (conntrack.h: Replication): the workers publish conntrack
  // changes into per-worker rings that DrainCtEvents empties.
  bool ct_replicate = false;
};

// Conntrack counters summed over workers (node_exporter's nf_conntrack names).
struct ConntrackSnapshot {
  bool enabled = false;
  uint64_t entries = 0, limit = 0, found = 0, invalid = 0, ignore = 0, insert = 0;
  uint64_t insert_failed = 0, drop = 0, early_drop = 0, expired = 0;
  uint64_t memory_bytes = 0;  // table memory, all workers
};

struct PortSnapshot {
  std::string name;
  uint64_t rx_packets = 0, rx_bytes = 0, tx_packets = 0, tx_bytes = 0, drops = 0;
  uint64_t kernel_drops = 0;  // RX ring full (PACKET_STATISTICS), cumulative
  std::vector<uint64_t> rx_per_worker;
};

struct CountersSnapshot {
  uint64_t generation = 0;
  std::vector<uint64_t> rule_packets, rule_bytes;  // indexed by rule_id
  std::vector<PortSnapshot> ports;
  uint64_t drops[kDropReasonCount] = {};
  uint64_t accept = 0, drop = 0, reject = 0, reject_sent = 0;
  uint64_t accept_bytes = 0, drop_bytes = 0, reject_bytes = 0;
  uint64_t log_emitted = 0, log_rate_limited = 0, log_queue_full = 0;
  uint64_t batches = 0;
  ConntrackSnapshot conntrack;
  uint64_t flow_cache_hits = 0, flow_cache_misses = 0;
  uint64_t l4_truncated_judged = 0, l4_truncated_hotdrop = 0, l4_truncated_bound = 0;
  uint64_t l4_truncated_strict = 0, ndp_judged = 0, ndp_bypassed = 0;
  uint64_t ct_untracked = 0;  // frames NOTRACK left untracked (raw table)
  uint64_t hook_frames[kHookCount] = {}, hook_bytes[kHookCount] = {};  // per Hook (rule_table.h)
  uint32_t worker_nice_failures = 0;  // workers whose worker_nice could not be set
  uint32_t workers_running = 0;       // workers inside their polling loop (all of them once Start returns)
};

// What /health reports of the dataplane (src/control/health.ts): when each
// worker last went round its loop, and each port's link as the kernel has
// it now. A worker goes round at least every kIdlePollMs (1 s) while idle,
// after every batch under load: a beat much older than that is a worker
// stuck in a call. Read by the control thread without stopping anyone.
struct PortHealth {
  std::string name;
  bool tap = false;
  std::string kind;       // "afpacket", "afxdp", "tap" (as opened; the configured kind before Start)
  int bound_ifindex = 0;  // AF_PACKET: the index the sockets were bound to
  int ifindex = 0;        // the index the name has now (0: no such interface)
  bool admin_up = false;  // IFF_UP
  // The link's carrier (ETHTOOL_GLINK: netif_carrier_ok, at once), or
  // IFF_RUNNING for a driver without it. Not IFF_RUNNING first: that is the
  // RFC 2863 operstate, which linkwatch updates up to a second late.
  bool carrier = false;
};
struct HealthSnapshot {
  bool running = false;
  uint64_t now_ns = 0;                  // CLOCK_MONOTONIC
  std::vector<uint64_t> worker_beat_ns;  // CLOCK_MONOTONIC (Start's time until the first round); empty when stopped
  std::vector<PortHealth> ports;
};

// A control operation on the conntrack tables (see Dataplane::Conntrack).
struct ConntrackCommand {
  enum class Op : uint8_t { kList, kFlush, kDelete, kExport } op = Op::kList;
  ct::Filter filter;        // kList, kFlush
  size_t limit = 0;         // kList: at most this many rows in total
  ct::FlowView tuple;       // kDelete: original or reply direction tuple
  std::vector<ct::FlowView> rows;  // kList result
  size_t count = 0;         // rows listed, entries flushed or deleted
  std::vector<ct::Record> records;  // kExport result, every worker's entries (Record::worker set)
};

class Dataplane {
 public:
  explicit Dataplane(DataplaneConfig config);  // validates; throws std::invalid_argument
  ~Dataplane();

  // Opens every port's queues (AF_PACKET sockets bound, rings mapped) and
  // starts the workers; returns once every worker has entered its polling
  // loop, so whatever the caller then announces ("ready") is true: frames
  // arriving from now on are read by a running worker. Throws on failure
  // (nothing left open).
  void Start();
  // A hot standby's half of Start: creates the AF_PACKET ports' sockets and
  // maps their rings, unbound (they receive nothing), so that the Start of
  // a takeover only binds them (io::ActivateAfPacketPort) and starts the
  // workers. TAP ports are opened by Start (opening one attaches it). Throws
  // like Start; a second call is a no-op.
  void Prepare();
  // Stops and joins the workers, closes the sockets/TAP fds (a TAP device
  // we created disappears with its last fd). Idempotent. Blocking.
  void Stop();
  bool running() const { return running_; }

  // Builds a ruleset from a packed table buffer and publishes it; returns
  // its generation once no worker can still use the previous one. Blocking
  // (build time + at most one batch per worker): call off the JS thread.
  // An empty iface_ids keeps the ports' configured class ids.
  // `info`, when given, receives the new ruleset's build figures and the
  // final per-rule counters of the generation it replaced, read after every
  // worker has left it (exact: nothing counts into it any more), so the
  // control plane can carry counters over a swap without losing packets.
  // `image`, when given, is a classifier image of `buf` (Ruleset::Build);
  // info->image_error then says why it was refused, if it was.
  struct SetRulesInfo {
    double build_seconds = 0;
    size_t memory_bytes = 0;
    std::vector<uint64_t> previous_packets, previous_bytes;  // empty: no previous
    std::string image_error;
  };
  uint64_t SetRules(const uint8_t* buf, size_t len, std::vector<uint16_t> iface_ids,
                    uint32_t rule_count, SetRulesInfo* info = nullptr,
                    const uint8_t* image = nullptr, size_t image_len = 0);
  // Publishes the current generation with a single-rule edit applied
  // (Ruleset::Derive: only the small overlays are built; classifiers and
  // counters are shared, so `info` gets no previous counters). Throws
  // std::invalid_argument when the edits do not fit the running rules.
  uint64_t ApplyEdits(RulesetEdits&& edits, SetRulesInfo* info = nullptr);

  // with_rules = false leaves rule_packets/rule_bytes empty: summing a
  // million rules per worker is the costly part, and most readers (metrics,
  // stats, conntrack counts) do not need it.
  CountersSnapshot Counters(bool with_rules = true);
  // Worker beats and port links (see HealthSnapshot). Cheap: two ioctls per
  // AF_PACKET port.
  HealthSnapshot Health();
  // How Start opened the ports (empty before the first Start).
  IoChoice io_choice();
  // Moves up to `max` queued LOG events into *out; *dropped gets the events
  // lost (rate limit + full queue) since the previous call.
  void PollLogs(std::vector<LogEvent>* out, size_t max, uint64_t* dropped);

  // Runs a conntrack control operation on every worker's table, by the
  // worker itself at its next batch boundary (woken through its eventfd if
  // it sleeps), or directly when the dataplane is not running: never
  // concurrently with packet processing. Blocking (at most one batch per
  // worker plus the operation): call off the JS thread. A no-op when
  // conntrack is off.
  void Conntrack(ConntrackCommand* cmd);

  // Replication for a hot standby (conntrack.h: Replication; ct_replicate).
  // DrainCtEvents moves up to `max` queued records into *out (each with its
  // worker index) and returns how many records were lost to full rings
  // since the dataplane began (the consumer resyncs when it grows); one
  // consumer at a time. ImportCt applies records to the tables of their
  // workers and RearmCt gives every entry a fresh timeout: both only while
  // the dataplane is stopped (a standby's), else std::logic_error; ImportCt
  // returns the records refused (malformed, unknown worker, table full).
  uint64_t DrainCtEvents(std::vector<ct::Record>* out, size_t max);
  size_t ImportCt(const ct::Record* records, size_t n, bool replace_all);
  void RearmCt();

  const DataplaneConfig& config() const { return config_; }

  // The IP sets `-m set` rules test (native/sets/set_store.h): workers call
  // sets().Test(...) lock-free; control operations may run on any thread.
  sets::SetStore& sets() { return *sets_; }
  const std::shared_ptr<sets::SetStore>& sets_ptr() const { return sets_; }

  // ---- used by the workers ----
  struct WorkerState;

 // Listings and counters of the stateful matches' states.
  ext::ExtStateRegistry& ext_states() { return *ext_states_; }

 private:
  void RunWorker(uint32_t w);
  void WaitQuiescent(uint64_t generation);
  void WaitSetReaders();  // the set store's grace period

  DataplaneConfig config_;
  bool running_ = false;
  std::atomic<bool> stop_{false};
  int wake_fd_ = -1;  // eventfd: wakes pollers on Stop

  // queues_[port][worker]
  std::vector<std::vector<std::unique_ptr<io::Queue>>> queues_;
  // The XDP programs of AF_XDP ports: destroyed (detached) after the queues.
  std::vector<std::unique_ptr<io::XdpRedirect>> xdp_programs_;
  IoChoice io_choice_;
  // Prepare's unbound AF_PACKET queues, [port][worker] (empty for TAP and
  // AF_XDP ports, which open at Start), until Start.
  std::vector<std::vector<std::unique_ptr<io::Queue>>> prepared_;
  // Shared conntrack existence index (several workers only); declared
  // before workers_ so that it outlives the tables pointing into it.
  std::unique_ptr<std::atomic<uint64_t>[]> related_;
  uint32_t related_size_ = 0;
  std::vector<std::unique_ptr<WorkerState>> workers_;
  std::shared_ptr<sets::SetStore> sets_;
  std::vector<std::thread> threads_;
  std::vector<uint64_t> kernel_drops_;  // per port, accumulated by Counters()

  // States of stateful matches (limit, hashlimit, recent), kept across
  // rule set generations (extensions/state.h).
  std::shared_ptr<ext::ExtStateRegistry> ext_states_ = std::make_shared<ext::ExtStateRegistry>();
  // The -m connlimit counters the conntrack tables tag (conntrack/conncount.h); null when off.
  std::shared_ptr<ct::ConnCount> conncount_;
  std::vector<uint32_t> port_mtu_;  // read at Start (TCPMSS clamping)
  std::atomic<Ruleset*> current_{nullptr};
  std::shared_ptr<Ruleset> current_owner_;  // guarded by owner_mu_
  std::mutex owner_mu_;
  std::shared_ptr<Ruleset> Publish(const std::shared_ptr<Ruleset>& rs);

  std::mutex swap_mu_;   // one SetRules/ApplyEdits at a time
  std::mutex poll_mu_;   // one log consumer at a time
  std::mutex life_mu_;   // Start/Stop/Counters/Conntrack vs each other
  std::mutex ct_mu_;     // one conntrack command at a time
  uint64_t next_generation_ = 1;
  std::atomic<uint32_t> worker_nice_failures_{0};
  // Workers inside their loop; Start waits on start_cv_ until all are.
  std::atomic<uint32_t> workers_running_{0};
  std::mutex start_mu_;
  std::condition_variable start_cv_;
  uint64_t logs_dropped_reported_ = 0;
  std::mutex repl_mu_;  // one replication consumer at a time
};

}  // namespace flatwall
