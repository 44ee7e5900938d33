#include "dataplane/dataplane.h"

#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <random>
#include <stdexcept>
#include <system_error>

#include "dataplane/flow_cache.h"
#include "dataplane/host.h"
#include "dataplane/parse.h"
#include "dataplane/reject.h"
#include "conntrack/conncount.h"
#include "io/net_caps.h"
#include "io/tap_port.h"
#include "io/xsk_port.h"

namespace flatwall {

namespace {
constexpr uint64_t kIdle = UINT64_MAX;  // worker holds no ruleset (blocked, or not running)
constexpr uint64_t kWaking = 0;         // worker is about to reload current_
constexpr uint32_t kMaxBatch = 256;
constexpr int kIdlePollMs = 1000;   // Stop wakes pollers through the eventfd
constexpr int kStallPollMs = 1;     // waiting for TX ring room

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);  // vDSO: no syscall
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

// Conntrack time: monotonic (a wall-clock step must not expire or revive
// flows), read once per batch.
uint64_t MonoNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);  // vDSO: no syscall
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}
}  // namespace

struct alignas(64) Dataplane::WorkerState {
  explicit WorkerState(uint32_t flow_cache) : cache(flow_cache) {}
  ~WorkerState() {
    if (cmd_fd >= 0) close(cmd_fd);
  }
  std::atomic<uint64_t> observed{kIdle};
  std::atomic<uint64_t> batch_epoch{0};  // bumped at every batch boundary (WaitSetReaders)
  std::atomic<uint64_t> beat_ns{0};      // CLOCK_MONOTONIC of the last loop round (Health)
  alignas(64) WorkerCounters counters;
  TokenBucket bucket;  // worker-private
  LogRing logs;
  std::unique_ptr<ct::Table> ct;   // this worker's flows; null when conntrack is off
  std::unique_ptr<ct::EventRing> ct_events;  // its changes for a standby; null unless ct_replicate
  FlowCache cache;                 // worker-private
  // Control mailbox: the control thread stores a command and signals
  // cmd_fd; the worker runs it at a batch boundary and clears `cmd`.
  alignas(64) std::atomic<ConntrackCommand*> cmd{nullptr};
  int cmd_fd = -1;
};

Dataplane::Dataplane(DataplaneConfig config) : config_(std::move(config)) {
  const auto& ports = config_.ports;
  if (ports.empty() || ports.size() % 2 != 0)
    throw std::invalid_argument("dataplane: ports must come in pairs (bump in the wire)");
  if (ports.size() > kMaxPorts) throw std::invalid_argument("dataplane: too many ports");
  if (config_.workers == 0 || config_.workers > 64)
    throw std::invalid_argument("dataplane: workers must be 1..64");
  if (config_.batch == 0 || config_.batch > kMaxBatch)
    throw std::invalid_argument("dataplane: batch must be 1..256");
  for (size_t i = 0; i < ports.size(); ++i) {
    const auto& p = ports[i];
    if (p.name.empty()) throw std::invalid_argument("dataplane: port without a name");
    for (size_t j = 0; j < i; ++j)
      if (ports[j].name == p.name) throw std::invalid_argument("dataplane: port " + p.name + " given twice");
    if (p.kind == PortKind::kAfPacket && (p.ring_frames == 0 || p.frame_size < 2048))
      throw std::invalid_argument("dataplane: port " + p.name + ": bad ring size");
  }
  if (config_.conntrack && config_.conntrack_max == 0)
    throw std::invalid_argument("dataplane: conntrackMax must be at least 1");
  if (config_.conntrack_max > (1u << 28))
    throw std::invalid_argument("dataplane: conntrackMax must be at most 268435456");
  if (config_.flow_cache > (1u << 24))
    throw std::invalid_argument("dataplane: flowCache must be at most 16777216");
  for (const auto& p : config_.host.v4)
    if (p.plen > 32) throw std::invalid_argument("dataplane: host prefix length above 32");
  for (const auto& p : config_.host.v6)
    if (p.plen > 128) throw std::invalid_argument("dataplane: host prefix length above 128");
  // Several tables: one secret seed for all, and the shared existence index
  // for ICMP errors that reach another worker than their flow
  // (conntrack.h: Threads). 2 slots per allowed entry, at most 4M (32 MB).
  const uint32_t ct_seed = std::random_device{}() | 1;
  if (config_.conntrack && config_.workers > 1) {
    uint32_t n = 1024;
    while (n < 2ull * config_.conntrack_max && n < (1u << 22)) n <<= 1;
    related_.reset(new std::atomic<uint64_t>[n]());
    related_size_ = n;
  }
  if (config_.conntrack) {
    conncount_ = std::make_shared<ct::ConnCount>(config_.conntrack_max);
    ext_states_->set_conncount(conncount_);
  }
  for (uint32_t w = 0; w < config_.workers; ++w) {
    workers_.push_back(std::make_unique<WorkerState>(config_.flow_cache));
    WorkerState& ws = *workers_.back();
    ws.bucket.Configure(config_.log_rate_per_sec / config_.workers);
    if (config_.conntrack) {
      ct::Config c;
      c.limit = (config_.conntrack_max + config_.workers - 1) / config_.workers;
      c.timeouts = config_.ct_timeouts;
      c.tcp_loose = config_.ct_tcp_loose;
      c.seed = ct_seed;
      c.related_index = related_.get();
      c.related_mask = related_size_ ? related_size_ - 1 : 0;
      c.conncount = conncount_.get();
      if (config_.ct_replicate) {
        ws.ct_events = std::make_unique<ct::EventRing>();
        c.events = ws.ct_events.get();
      }
      ws.ct = std::make_unique<ct::Table>(c);
    }
    ws.cmd_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (ws.cmd_fd < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  }
  kernel_drops_.assign(ports.size(), 0);
  sets_ = std::make_shared<sets::SetStore>([this] { WaitSetReaders(); });
}

Dataplane::~Dataplane() {
  Stop();
  // The store may outlive us (a JS handle shares it): no workers read it now.
  sets_->SetSynchronize({});
}

namespace {

// The MTU of an interface (SIOCGIFMTU), or 1500 when it cannot be read.
// TCPMSS --clamp-mss-to-pmtu clamps to the smaller of a frame's two ports.
uint32_t InterfaceMtu(const std::string& name) {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 1500;
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  const int r = ioctl(fd, SIOCGIFMTU, &ifr);
  close(fd);
  return r == 0 && ifr.ifr_mtu > 0 ? uint32_t(ifr.ifr_mtu) : 1500;
}

// Why a port could not be opened with EPERM, in the operator's terms.
std::string CapabilityHint() {
  const io::NetCapState c = io::CurrentNetCaps();
  std::string h = "opening ports needs CAP_NET_RAW and CAP_NET_ADMIN; this process has";
  h += c.raw_permitted ? " CAP_NET_RAW" : " no CAP_NET_RAW";
  h += c.admin_permitted ? ", CAP_NET_ADMIN" : ", no CAP_NET_ADMIN";
  h += " (a container needs both added: podman --cap-add NET_RAW,NET_ADMIN, Kubernetes securityContext.capabilities.add)";
  return h;
}

}  // namespace

namespace {
io::AfPacketOptions AfOptions(const PortConfig& p, const DataplaneConfig& c) {
  io::AfPacketOptions o;
  o.frame_size = p.frame_size;
  o.rx_frames = o.tx_frames = p.ring_frames;
  o.qdisc_bypass = c.qdisc_bypass;
  o.tx_ring = c.tx_ring;
  o.promisc = c.promisc;
  return o;
}
}  // namespace

void Dataplane::Prepare() {
  std::lock_guard<std::mutex> lock(life_mu_);
  if (running_) throw std::logic_error("dataplane: already started");
  if (!prepared_.empty()) return;
  std::vector<std::vector<std::unique_ptr<io::Queue>>> queues;
  io::ScopedNetCaps caps;
  try {
    for (const auto& p : config_.ports) {
      // AF_XDP sockets cannot be bound ahead: the active's hold the queues.
      // They open at Start (UMEM, bind, attach: milliseconds); an auto
      // port prepares its AF_PACKET fall-back.
      if (p.kind == PortKind::kTap || p.kind == PortKind::kAfXdp) queues.emplace_back();
      else queues.push_back(io::PrepareAfPacketPort(p.name, config_.workers, AfOptions(p, config_)));
    }
  } catch (const std::system_error& e) {
    if (e.code().value() != EPERM) throw;
    throw std::runtime_error(std::string(e.what()) + " (" + CapabilityHint() + ")");
  }
  prepared_ = std::move(queues);
}

void Dataplane::Start() {
  std::lock_guard<std::mutex> lock(life_mu_);
  if (running_) throw std::logic_error("dataplane: already started");
  port_mtu_.clear();
  for (const auto& p : config_.ports) port_mtu_.push_back(InterfaceMtu(p.name));
  std::vector<std::vector<std::unique_ptr<io::Queue>>> queues(config_.ports.size());
  std::vector<std::unique_ptr<io::XdpRedirect>> programs;
  IoChoice choice;
  {
    // The one step that needs CAP_NET_RAW / CAP_NET_ADMIN (io/net_caps.h).
    io::ScopedNetCaps caps;
    try {
      // AF_XDP ports first, all together: a worker's sockets share one UMEM.
      std::vector<size_t> xdp;
      bool all_auto = true;
      for (size_t i = 0; i < config_.ports.size(); ++i) {
        const PortKind k = config_.ports[i].kind;
        if (k == PortKind::kAfXdp || k == PortKind::kAuto) xdp.push_back(i);
        if (k == PortKind::kAfXdp) all_auto = false;
      }
      if (!xdp.empty()) {
        std::vector<std::string> names;
        for (size_t i : xdp) names.push_back(config_.ports[i].name);
        io::XskOptions o;
        o.ring_size = std::max<uint32_t>(2048, config_.ports[xdp[0]].ring_frames);
        o.native = !config_.xdp_generic;
        try {
          // Each XDP socket serves one RX queue, and a frame's RX queue is
          // the one its sender picked (veth: the peer's TX queue, from the
          // sending socket's own hash), not a symmetric hash of the flow as
          // PACKET_FANOUT_HASH gives: the two directions of a connection
          // would meet different workers' conntrack tables.
          if (config_.workers > 1 && config_.conntrack)
            throw std::invalid_argument(
                "AF_XDP with conntrack serves one worker: RX queues follow the senders' choice, not a "
                "symmetric flow hash, so a connection's directions would reach different workers (use "
                "AF_PACKET, whose fanout hash is symmetric, for more workers)");
          io::XskPorts xp = io::OpenXskPorts(names, config_.workers, o);
          for (size_t j = 0; j < xdp.size(); ++j) queues[xdp[j]] = std::move(xp.queues[j]);
          programs = std::move(xp.programs);
          choice.xdp_mode = io::XdpModeName(xp.mode);
          choice.zero_copy = xp.zero_copy;
        } catch (const std::exception& e) {
          if (!all_auto) throw;
          choice.fallback = e.what();  // auto: AF_PACKET instead, and say why
        }
      }
      std::vector<std::string> kinds;
      auto note = [&](const char* k) {
        if (std::find(kinds.begin(), kinds.end(), k) == kinds.end()) kinds.push_back(k);
      };
      for (size_t i = 0; i < config_.ports.size(); ++i) {
        const auto& p = config_.ports[i];
        if (p.kind == PortKind::kTap) {
          queues[i] = std::move(io::OpenTapPort(p.name, config_.workers).queues);
          note("tap");
        } else if (!queues[i].empty()) {
          note("afxdp");
        } else if (i < prepared_.size() && !prepared_[i].empty()) {
          // A standby's prepared sockets (Prepare): binding them is all that is left.
          io::ActivateAfPacketPort(prepared_[i], config_.promisc);
          queues[i] = std::move(prepared_[i]);
          note("afpacket");
        } else {
          queues[i] = io::OpenAfPacketPort(p.name, config_.workers, AfOptions(p, config_));
          note("afpacket");
        }
      }
      prepared_.clear();  // auto ports that opened as AF_XDP drop theirs
      for (size_t k = 0; k < kinds.size(); ++k) choice.io += (k ? "," : "") + kinds[k];
    } catch (const std::system_error& e) {
      if (e.code().value() != EPERM) throw;
      throw std::runtime_error(std::string(e.what()) + " (" + CapabilityHint() + ")");
    }
  }
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  queues_ = std::move(queues);
  xdp_programs_ = std::move(programs);
  io_choice_ = choice;
  stop_.store(false);
  running_ = true;
  // A worker that never goes round its loop shows as stuck from its start.
  for (auto& ws : workers_) ws->beat_ns.store(MonoNs(), std::memory_order_relaxed);
  for (uint32_t w = 0; w < config_.workers; ++w) threads_.emplace_back([this, w] { RunWorker(w); });
  // Return (and let the caller say "ready") only once every worker polls.
  std::unique_lock<std::mutex> wait(start_mu_);
  start_cv_.wait(wait, [this] { return workers_running_.load() == config_.workers; });
}

void Dataplane::Stop() {
  std::lock_guard<std::mutex> lock(life_mu_);
  if (!running_) return;
  stop_.store(true);
  const uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof one);
  for (auto& t : threads_) t.join();
  threads_.clear();
  for (size_t p = 0; p < queues_.size(); ++p)
    for (auto& q : queues_[p]) kernel_drops_[p] += q->TakeKernelDrops();
  queues_.clear();  // closes sockets / TAP fds (AF_XDP: then the UMEMs)
  xdp_programs_.clear();  // detaches the XDP programs
  close(wake_fd_);
  wake_fd_ = -1;
  running_ = false;
}

// ---- ruleset swap ----------------------------------------------------------

namespace {

// This thread's nice value raised by `delta` for the scope, then restored
// (restoring needs CAP_SYS_NICE; without it the pool thread stays nicer,
// which only makes later builds yield too).
class ThreadNice {
 public:
  explicit ThreadNice(int delta) {
    if (delta == 0) return;
    errno = 0;
    const int cur = getpriority(PRIO_PROCESS, gettid());
    if (errno == 0 && setpriority(PRIO_PROCESS, gettid(), cur + delta) == 0) saved_ = cur, set_ = true;
  }
  ~ThreadNice() {
    if (set_) (void)setpriority(PRIO_PROCESS, gettid(), saved_);
  }
  ThreadNice(const ThreadNice&) = delete;
  ThreadNice& operator=(const ThreadNice&) = delete;

 private:
  int saved_ = 0;
  bool set_ = false;
};

// A million-rule table set is hundreds of MB in many allocations, and glibc
// keeps what is freed in its arenas: without giving it back, the resident
// size grows by the old tables at every replace (bench/results/
// update-health.md). malloc_trim(3) returns free pages to the kernel
// (madvise) from the thread that ran the build, never a packet worker.
void ReturnFreedMemory() {
#ifdef __GLIBC__
  malloc_trim(0);
#endif
}

}  // namespace

uint64_t Dataplane::SetRules(const uint8_t* buf, size_t len, std::vector<uint16_t> iface_ids,
                             uint32_t rule_count, SetRulesInfo* info, const uint8_t* image,
                             size_t image_len) {
  if (iface_ids.empty())
    for (const auto& p : config_.ports) iface_ids.push_back(p.iface_class_id);
  if (iface_ids.size() != config_.ports.size())
    throw std::invalid_argument("ruleset: ifaceClassIds must have one id per port");
  std::shared_ptr<Ruleset> rs;
  {
    // The build yields the CPU to the workers (and everything else).
    ThreadNice low(config_.build_nice);
    rs.reset(Ruleset::Build(buf, len, std::move(iface_ids), rule_count, config_.workers, image,
                            image_len, info ? &info->image_error : nullptr, ext_states_.get())
                 .release());
  }
  uint64_t generation;
  {
    std::lock_guard<std::mutex> swap(swap_mu_);
    rs->generation = rs->base_generation = next_generation_;
    std::shared_ptr<Ruleset> old = Publish(rs);
    if (info) {
      info->build_seconds = rs->build_seconds();
      info->memory_bytes = rs->memory_bytes();
      if (old) old->SumCounters(&info->previous_packets, &info->previous_bytes);
    }
    generation = rs->generation;
  }  // `old` is released here, after every worker left it
  // Outside swap_mu_ (edits wait on it) and at the build's niceness.
  ThreadNice low(config_.build_nice);
  ReturnFreedMemory();
  return generation;
}

uint64_t Dataplane::ApplyEdits(RulesetEdits&& edits, SetRulesInfo* info) {
  std::lock_guard<std::mutex> swap(swap_mu_);
  std::shared_ptr<Ruleset> cur;
  {
    std::lock_guard<std::mutex> lock(owner_mu_);
    cur = current_owner_;
  }
  if (!cur) throw std::invalid_argument("edit: no rule set is active");
  // Small: the overlays only. Built under swap_mu_ so `cur` stays current.
  std::shared_ptr<Ruleset> rs(Ruleset::Derive(*cur, std::move(edits)).release());
  rs->generation = next_generation_;
  rs->base_generation = cur->base_generation;
  cur.reset();
  Publish(rs);
  if (info) {
    info->build_seconds = rs->build_seconds();
    info->memory_bytes = rs->memory_bytes();
  }
  return rs->generation;
}

// Caller holds swap_mu_ and has set rs->generation to next_generation_.
std::shared_ptr<Ruleset> Dataplane::Publish(const std::shared_ptr<Ruleset>& rs) {
  ++next_generation_;
  std::shared_ptr<Ruleset> old;
  {
    std::lock_guard<std::mutex> lock(owner_mu_);
    old = std::move(current_owner_);
    current_owner_ = rs;
  }
  current_.store(rs.get(), std::memory_order_seq_cst);
  WaitQuiescent(rs->generation);
  return old;
}

void Dataplane::WaitQuiescent(uint64_t generation) {
  for (auto& ws : workers_) {
    for (;;) {
      const uint64_t v = ws->observed.load(std::memory_order_seq_cst);
      if (v == kIdle || (v != kWaking && v >= generation)) break;
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  }
}

// A set store grace period: every worker that may hold a pointer the store
// has just unpublished has left it (passed a batch boundary, or was idle).
// The seq_cst pairs: the store's unpublish (seq_cst) precedes our seq_cst
// reads; a worker's next batch starts with a seq_cst epoch store and then
// loads set pointers with seq_cst, so it sees the new pointer.
void Dataplane::WaitSetReaders() {
  for (auto& ws : workers_) {
    const uint64_t e0 = ws->batch_epoch.load(std::memory_order_seq_cst);
    for (;;) {
      if (ws->observed.load(std::memory_order_seq_cst) == kIdle) break;
      if (ws->batch_epoch.load(std::memory_order_seq_cst) != e0) break;
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }
}

// ---- counters and logs -------------------------------------------------------

CountersSnapshot Dataplane::Counters(bool with_rules) {
  CountersSnapshot s;
  std::shared_ptr<Ruleset> rs;
  {
    std::lock_guard<std::mutex> lock(owner_mu_);
    rs = current_owner_;
  }
  if (rs) {
    s.generation = rs->generation;
    if (with_rules) rs->SumCounters(&s.rule_packets, &s.rule_bytes);
  }
  {
    std::lock_guard<std::mutex> lock(life_mu_);
    for (size_t p = 0; p < queues_.size(); ++p)
      for (auto& q : queues_[p]) kernel_drops_[p] += q->TakeKernelDrops();
    for (size_t p = 0; p < config_.ports.size(); ++p) {
      PortSnapshot ps;
      ps.name = config_.ports[p].name;
      ps.kernel_drops = kernel_drops_[p];
      s.ports.push_back(std::move(ps));
    }
  }
  for (auto& ws : workers_) {
    const WorkerCounters& c = ws->counters;
    for (size_t p = 0; p < s.ports.size(); ++p) {
      PortSnapshot& ps = s.ports[p];
      ps.rx_packets += c.ports[p].rx_packets.Get();
      ps.rx_bytes += c.ports[p].rx_bytes.Get();
      ps.tx_packets += c.ports[p].tx_packets.Get();
      ps.tx_bytes += c.ports[p].tx_bytes.Get();
      ps.drops += c.ports[p].drops.Get();
      ps.rx_per_worker.push_back(c.ports[p].rx_packets.Get());
    }
    for (uint32_t r = 0; r < kDropReasonCount; ++r) s.drops[r] += c.drops[r].Get();
    s.accept += c.accept.Get();
    s.drop += c.drop.Get();
    s.reject += c.reject.Get();
    s.reject_sent += c.reject_sent.Get();
    s.accept_bytes += c.accept_bytes.Get();
    s.drop_bytes += c.drop_bytes.Get();
    s.reject_bytes += c.reject_bytes.Get();
    s.log_emitted += c.log_emitted.Get();
    s.log_rate_limited += c.log_rate_limited.Get();
    s.log_queue_full += c.log_queue_full.Get();
    s.batches += c.batches.Get();
    s.l4_truncated_judged += c.l4_truncated_judged.Get();
    s.l4_truncated_hotdrop += c.l4_truncated_hotdrop.Get();
    s.l4_truncated_bound += c.l4_truncated_bound.Get();
    s.l4_truncated_strict += c.l4_truncated_strict.Get();
    s.ndp_judged += c.ndp_judged.Get();
    s.ndp_bypassed += c.ndp_bypassed.Get();
    s.ct_untracked += c.ct_untracked.Get();
    for (uint32_t h = 0; h < kHookCount; ++h) {
      s.hook_frames[h] += c.hook_frames[h].Get();
      s.hook_bytes[h] += c.hook_bytes[h].Get();
    }
    s.flow_cache_hits += ws->cache.hits();
    s.flow_cache_misses += ws->cache.misses();
    s.worker_nice_failures = worker_nice_failures_.load();
    s.workers_running = workers_running_.load();
    if (ws->ct) {
      const ct::Stats& t = ws->ct->stats();
      ConntrackSnapshot& x = s.conntrack;
      x.entries += t.entries.Get();
      x.found += t.found.Get();
      x.invalid += t.invalid.Get();
      x.ignore += t.ignore.Get();
      x.insert += t.insert.Get();
      x.insert_failed += t.insert_failed.Get();
      x.drop += t.drop.Get();
      x.early_drop += t.early_drop.Get();
      x.expired += t.expired.Get();
      x.memory_bytes += uint64_t(ws->ct->capacity()) * sizeof(ct::Entry);
    }
  }
  s.conntrack.memory_bytes += uint64_t(related_size_) * sizeof(uint64_t);
  s.conntrack.enabled = config_.conntrack;
  s.conntrack.limit = config_.conntrack ? config_.conntrack_max : 0;
  return s;
}

// ---- conntrack control -----------------------------------------------------

namespace {
// One command on one table (worker `w`'s); `now_ns` for listings.
void ApplyCommand(ct::Table& t, ConntrackCommand* c, uint64_t now_ns, uint32_t w) {
  switch (c->op) {
    case ConntrackCommand::Op::kExport: {
      const size_t from = c->records.size();
      t.Export(now_ns, &c->records);
      for (size_t i = from; i < c->records.size(); ++i) c->records[i].worker = uint8_t(w);
      c->count += c->records.size() - from;
      break;
    }
    case ConntrackCommand::Op::kList:
      if (c->rows.size() < c->limit) c->count += t.List(c->filter, c->limit - c->rows.size(), now_ns, &c->rows);
      break;
    case ConntrackCommand::Op::kFlush:
      c->count += t.Flush(c->filter);
      break;
    case ConntrackCommand::Op::kDelete:
      c->count += t.Delete(c->tuple) ? 1 : 0;
      break;
  }
}
}  // namespace

void Dataplane::Conntrack(ConntrackCommand* cmd) {
  if (!config_.conntrack) return;
  std::lock_guard<std::mutex> ctl(ct_mu_);     // one command at a time
  std::lock_guard<std::mutex> lock(life_mu_);  // workers neither start nor stop meanwhile
  for (uint32_t w = 0; w < workers_.size(); ++w) {
    WorkerState* ws = workers_[w].get();
    if (!running_) {
      ApplyCommand(*ws->ct, cmd, MonoNs(), w);
      continue;
    }
    ws->cmd.store(cmd, std::memory_order_release);
    const uint64_t one = 1;
    (void)!write(ws->cmd_fd, &one, sizeof one);
    while (ws->cmd.load(std::memory_order_acquire) != nullptr)
      std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

IoChoice Dataplane::io_choice() {
  std::lock_guard<std::mutex> lock(life_mu_);
  return io_choice_;
}

uint64_t Dataplane::DrainCtEvents(std::vector<ct::Record>* out, size_t max) {
  std::lock_guard<std::mutex> lock(repl_mu_);
  uint64_t lost = 0;
  for (uint32_t w = 0; w < workers_.size(); ++w) {
    WorkerState& ws = *workers_[w];
    if (!ws.ct_events) continue;
    if (out->size() < max) {
      ws.ct_events->Drain(
          [out, w](const ct::Record& r) {
            out->push_back(r);
            out->back().worker = uint8_t(w);
          },
          uint32_t(std::min<size_t>(max - out->size(), UINT32_MAX)));
    }
    lost += ws.ct->stats().repl_lost.Get();
  }
  return lost;
}

size_t Dataplane::ImportCt(const ct::Record* records, size_t n, bool replace_all) {
  if (!config_.conntrack) return n;
  std::lock_guard<std::mutex> lock(life_mu_);
  if (running_) throw std::logic_error("conntrack import: only into a stopped dataplane (a standby's)");
  if (replace_all)
    for (auto& ws : workers_) ws->ct->Clear();
  size_t refused = 0;
  for (size_t i = 0; i < n; ++i) {
    const ct::Record& r = records[i];
    if (r.worker >= workers_.size() || r.key.zone >= config_.ports.size() / 2 ||
        !workers_[r.worker]->ct->Import(r))
      ++refused;
  }
  return refused;
}

void Dataplane::RearmCt() {
  if (!config_.conntrack) return;
  std::lock_guard<std::mutex> lock(life_mu_);
  if (running_) throw std::logic_error("conntrack rearm: only while the dataplane is stopped");
  const uint64_t now = MonoNs();
  for (auto& ws : workers_) ws->ct->Rearm(now);
}

HealthSnapshot Dataplane::Health() {
  HealthSnapshot h;
  h.now_ns = MonoNs();
  {
    std::lock_guard<std::mutex> lock(life_mu_);
    h.running = running_;
    if (h.running)
      for (const auto& ws : workers_) h.worker_beat_ns.push_back(ws->beat_ns.load(std::memory_order_relaxed));
    for (size_t i = 0; i < config_.ports.size(); ++i) {
      PortHealth p;
      p.name = config_.ports[i].name;
      p.tap = config_.ports[i].kind == PortKind::kTap;
      p.kind = p.tap ? "tap" : config_.ports[i].kind == PortKind::kAfPacket ? "afpacket" : "afxdp";
      if (h.running && i < queues_.size() && !queues_[i].empty()) {
        p.bound_ifindex = queues_[i][0]->ifindex();
        if (!p.tap) p.kind = dynamic_cast<io::XskQueue*>(queues_[i][0].get()) ? "afxdp" : "afpacket";
      }
      h.ports.push_back(std::move(p));
    }
  }
  // The link as the kernel has it now, by name, in this network namespace
  // (a TAP device may have been moved to another one: its fd is the port).
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  for (PortHealth& p : h.ports) {
    if (fd < 0 || p.tap) continue;
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, p.name.c_str(), IFNAMSIZ - 1);
    if (ioctl(fd, SIOCGIFINDEX, &ifr) != 0) continue;  // no such interface
    p.ifindex = ifr.ifr_ifindex;
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) != 0) continue;
    p.admin_up = ifr.ifr_flags & IFF_UP;
    const bool running = ifr.ifr_flags & IFF_RUNNING;
    ethtool_value link{ETHTOOL_GLINK, 0};
    ifr.ifr_data = reinterpret_cast<char*>(&link);
    p.carrier = ioctl(fd, SIOCETHTOOL, &ifr) == 0 ? link.data != 0 : running;
  }
  if (fd >= 0) close(fd);
  return h;
}

void Dataplane::PollLogs(std::vector<LogEvent>* out, size_t max, uint64_t* dropped) {
  std::lock_guard<std::mutex> lock(poll_mu_);
  for (auto& ws : workers_) {
    if (out->size() >= max) break;
    ws->logs.Drain([out](const LogEvent& e) { out->push_back(e); }, uint32_t(max - out->size()));
  }
  uint64_t lost = 0;
  for (auto& ws : workers_)
    lost += ws->counters.log_rate_limited.Get() + ws->counters.log_queue_full.Get();
  *dropped = lost - logs_dropped_reported_;
  logs_dropped_reported_ = lost;
}

// ---- the worker --------------------------------------------------------------

namespace {

// What one matched record does to the worker's state: per-rule counters
// (every matched record, terminal or not, like iptables counts every rule a
// packet matched) and LOG events.
struct Visit {
  RuleCounterView rules;
  WorkerCounters* counters;
  TokenBucket* bucket;
  LogRing* logs;
  const ParsedFrame* pf;
  uint64_t ts_ns;
  uint32_t bytes;
  uint8_t iif, oif;
  ext::Context cx;

  void OnMatch(const RuleCommon& r) {
    if (RuleCounter* c = rules.find(r.rule_id)) {
      c->packets.Inc();
      c->bytes.Add(bytes);
    }
  }
  void OnLog(const RuleCommon& r) {
    if (!bucket->Take(ts_ns)) {
      counters->log_rate_limited.Inc();
      return;
    }
    LogEvent e;
    std::memset(&e, 0, sizeof e);
    e.ts_ns = ts_ns;
    e.rule_id = r.rule_id;
    e.len = bytes;
    e.iif = iif, e.oif = oif;
    e.fragment = pf->later_fragment;
    const KeyCommon* c;
    if (pf->cls == FrameClass::kIPv4) {
      e.family = 4;
      e.src[0] = pf->key4.src, e.dst[0] = pf->key4.dst;
      c = &pf->key4.c;
    } else {
      e.family = 6;
      std::memcpy(e.src, pf->key6.src, 16);
      std::memcpy(e.dst, pf->key6.dst, 16);
      c = &pf->key6.c;
    }
    e.proto = c->proto, e.sport = c->sport, e.dport = c->dport, e.icmp = c->icmp;
    e.tcp_flags = c->tcp_flags;
    if (logs->Push(e)) counters->log_emitted.Inc();
    else counters->log_queue_full.Inc();
  }
  void OnExt() {}
  const ext::Context& ext_context() const { return cx; }
};

}  // namespace

void Dataplane::RunWorker(uint32_t w) {
  WorkerState& ws = *workers_[w];
  WorkerCounters& ctr = ws.counters;
  const uint32_t nports = uint32_t(queues_.size());
  const uint32_t batch = config_.batch;
  const bool non_ip_accept = config_.non_ip_accept;
  const bool ndp_bypass = config_.ndp_bypass;
  const bool drop_l4_truncated = config_.drop_l4_truncated;

  // Linux keeps a nice value per thread: PRIO_PROCESS with a thread id.
  if (config_.worker_nice != 0 && setpriority(PRIO_PROCESS, gettid(), config_.worker_nice) != 0)
    worker_nice_failures_.fetch_add(1);

  if (config_.cpu_pin) {
    // Pin worker w to the w-th CPU this process may run on.
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) == 0) {
      const int n = CPU_COUNT(&allowed);
      int want = n ? int(w % uint32_t(n)) : 0, cpu = -1;
      for (int i = 0; i < CPU_SETSIZE && want >= 0; ++i)
        if (CPU_ISSET(i, &allowed) && want-- == 0) cpu = i;
      if (cpu >= 0) {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        pthread_setaffinity_np(pthread_self(), sizeof one, &one);
      }
    }
  }

  io::Queue* q[kMaxPorts];
  for (uint32_t p = 0; p < nports; ++p) q[p] = queues_[p][w].get();
  io::RxFrame frames[kMaxBatch];
  ParsedFrame pf;
  pollfd pfds[kMaxPorts + 2];
  ct::Table* const ct = ws.ct.get();
  const uint32_t gc_budget = config_.ct_gc_budget;
  ct::Result cr;
  const uint64_t busy_poll_ns = uint64_t(config_.busy_poll_us) * 1000;
  // The loop starts as if traffic had just been seen: for the first
  // busy-poll window the worker polls instead of sleeping in poll(). A
  // burst sent the moment "ready" is announced (a sender waiting for it,
  // frames queued during start-up) then finds it polling, as after any
  // traffic; asleep in poll(), a 1000-frame burst at ~600 kpps mostly filled
  // the 270-frame RX ring before the worker ran at all (docs/ARCHITECTURE.md,
  // "Start-up, ready, and a burst after it").
  uint64_t last_work_ns = NowNs();
  // Host mode's addresses (null: a bridge, everything FORWARD).
  const ext::HostAddrs* const host =
      config_.host.v4.empty() && config_.host.v6.empty() ? nullptr : &config_.host;

  {
    std::lock_guard<std::mutex> l(start_mu_);
    workers_running_.fetch_add(1);
  }
  start_cv_.notify_all();
  while (!stop_.load(std::memory_order_relaxed)) {
    // Batch boundary: pick up the current ruleset and say so.
    Ruleset* rs = current_.load(std::memory_order_seq_cst);
    ws.observed.store(rs ? rs->generation : kIdle, std::memory_order_release);
    ws.batch_epoch.store(ws.batch_epoch.load(std::memory_order_relaxed) + 1, std::memory_order_seq_cst);
    const uint64_t batch_ns = NowNs();
    // Conntrack timeouts and rate matches both run on the monotonic clock.
    const uint64_t mono_ns = MonoNs();
    ws.beat_ns.store(mono_ns, std::memory_order_relaxed);
    if (ConntrackCommand* cmd = ws.cmd.load(std::memory_order_acquire)) {
      uint64_t v;
      (void)!read(ws.cmd_fd, &v, sizeof v);
      ApplyCommand(*ct, cmd, mono_ns, w);
      ws.cmd.store(nullptr, std::memory_order_release);
    }
    if (ct) ct->Gc(mono_ns, gc_budget);
    bool progress = false;
    bool stalled[kMaxPorts] = {};  // out port p had no TX room

    for (uint32_t in = 0; in < nports; ++in) {
      const uint32_t out = in ^ 1;
      io::Queue* iq = q[in];
      io::Queue* oq = q[out];
      const uint32_t n = iq->RxBurst(frames, batch);
      if (n == 0) continue;
      ctr.batches.Inc();
      uint32_t done = 0;
      for (; done < n; ++done) {
        if (!oq->TxHasRoom()) {
          oq->TxFlush();
          if (!oq->TxHasRoom()) {
            stalled[out] = true;  // keep the rest in the RX ring: backpressure
            break;
          }
        }
        const io::RxFrame& f = frames[done];
        PortCounters& pin = ctr.ports[in];
        pin.rx_packets.Inc();
        pin.rx_bytes.Add(f.len);
        auto drop = [&](DropReason r) {
          ctr.drops[uint8_t(r)].Inc();
          pin.drops.Inc();
        };
        if (f.truncated || !f.data) {
          drop(DropReason::kRxTruncated);
          continue;
        }
        const auto* vh = reinterpret_cast<const io::VnetHdr*>(f.vnet);
        ParseFrame(f.data, f.len, vh->gso_type != io::kVnetGsoNone, &pf);
        bool forward = false;
        if (pf.cls == FrameClass::kNdp) {
          // An ordinary ICMPv6 packet to the kernel's ip6tables; RFC 4861
          // link-scope traffic passes unfiltered only on request.
          if (ndp_bypass) {
            ctr.ndp_bypassed.Inc();
          } else {
            ctr.ndp_judged.Inc();
            pf.cls = FrameClass::kIPv6;
          }
        }
        if (pf.l4_truncated && drop_l4_truncated) {
          ctr.l4_truncated_strict.Inc();
          pf.cls = FrameClass::kMalformed, pf.reason = DropReason::kL4Truncated;
        }
        switch (pf.cls) {
          case FrameClass::kMalformed:
            drop(pf.reason);
            break;
          case FrameClass::kArp:
          case FrameClass::kNdp:
            forward = true;
            break;
          case FrameClass::kOther:
            if (non_ip_accept) forward = true;
            else drop(DropReason::kNonIpPolicy);
            break;
          case FrameClass::kIPv4:
          case FrameClass::kIPv6: {
            if (!rs) {
              drop(DropReason::kNoRuleset);
              break;
            }
            Visit v{rs->counters(w), &ctr, &ws.bucket, &ws.logs, &pf, f.ts_ns ? f.ts_ns : batch_ns,
                    pf.l3_len, uint8_t(in), uint8_t(out), {}};
            v.cx.frame = f.data, v.cx.len = f.len, v.cx.pf = &pf, v.cx.now_ns = mono_ns;
            v.cx.writable = f.data;
            v.cx.csum_partial = (vh->flags & io::kVnetNeedsCsum) != 0;
            v.cx.mtu = std::min(port_mtu_[in], port_mtu_[out]);
            v.cx.sets = sets_.get(), v.cx.sets_now_ns = mono_ns;
            v.cx.host = &config_.host;
            // A table's verdict, acted on: true when the frame goes on
            // (ACCEPT), else it was dropped or rejected and counted. An L4
            // rule that could not read a truncated header drops it
            // (hotdrop.h), as NF_DROP on hotdrop.
            auto settle = [&](const RuleCommon* verdict) -> bool {
              if (!verdict) {
                drop(DropReason::kNoVerdict);
                return false;
              }
              if (verdict == &Ruleset::kHotDrop) {
                ctr.drop.Inc();
                ctr.drop_bytes.Add(pf.l3_len);
                drop(DropReason::kMatchHotdrop);
                return false;
              }
              if (verdict == &kL4HotDrop || verdict == &kL4HotDropBound) {
                (verdict == &kL4HotDrop ? ctr.l4_truncated_hotdrop : ctr.l4_truncated_bound).Inc();
                ctr.drop.Inc();
                ctr.drop_bytes.Add(pf.l3_len);
                drop(DropReason::kL4Truncated);
                return false;
              }
              switch (Action(verdict->action)) {
                case Action::kAccept:
                  return true;
                case Action::kReject: {
                  ctr.reject.Inc();
                  ctr.reject_bytes.Add(pf.l3_len);
                  drop(DropReason::kRuleReject);
                  // The answer goes back out of the input port.
                  uint8_t* tx = iq->TxReserve();
                  if (tx) {
                    std::memset(tx, 0, io::kVnetHdrLen);  // complete checksums, no GSO
                    const uint32_t len = BuildReject(f.data, f.len, pf, RejectWith(verdict->arg),
                                                     tx + io::kVnetHdrLen,
                                                     iq->TxCapacity() - io::kVnetHdrLen);
                    if (len && iq->TxCommit(len + io::kVnetHdrLen)) {
                      ctr.reject_sent.Inc();
                      ctr.ports[in].tx_packets.Inc();
                      ctr.ports[in].tx_bytes.Add(len);
                    }
                  }
                  return false;
                }
                default:
                  ctr.drop.Inc();
                  ctr.drop_bytes.Add(pf.l3_len);
                  drop(DropReason::kRuleDrop);
                  return false;
              }
            };
            const bool v4 = pf.cls == FrameClass::kIPv4;
            KeyCommon& kc = v4 ? pf.key4.c : pf.key6.c;
            // The filter hook: FORWARD, or in host mode INPUT / OUTPUT for
            // frames to / from the host (dataplane/host.h).
            const Hook hook = v4 ? ChooseHook(pf.key4, host) : ChooseHook(pf.key6, host);
            // The raw table, before conntrack (NF_IP_PRI_RAW): there is no
            // conntrack yet, so a ctstate match sees INVALID, as
            // xt_conntrack does for a packet without nfct, until a NOTRACK
            // rule makes it UNTRACKED (or a bare CT, NEW: the template).
            bool untracked = false;
            if (v4 ? rs->has_raw4() : rs->has_raw6()) {
              const Hook raw = RawHook(hook);
              HookIfaces(raw, rs->iface_id(in), rs->iface_id(out), &kc);
              kc.ct_state = kCtInvalid;
              // LOG: no OUT= before routing, no IN= for a host's own frames.
              v.iif = raw == Hook::kRawOutput ? 0xff : uint8_t(in);
              v.oif = raw == Hook::kRawOutput ? uint8_t(out) : 0xff;
              v.cx.hook = raw;
              v.cx.raw_ct = &kc.ct_state;
              ctr.hook_frames[uint32_t(raw)].Inc();
              ctr.hook_bytes[uint32_t(raw)].Add(pf.l3_len);
              const RuleCommon* rv = v4 ? rs->Filter(raw, pf.key4, v) : rs->Filter(raw, pf.key6, v);
              v.cx.raw_ct = nullptr;
              untracked = kc.ct_state == kCtUntracked;
              v.iif = uint8_t(in), v.oif = uint8_t(out);
              if (!settle(rv)) break;
            }
            // Conntrack before the filter rules, as netfilter's PRE_ROUTING:
            // the state of an existing flow is updated now, a new flow waits
            // for the verdict (Commit below). Zone = the port pair. An
            // untracked packet neither finds nor makes an entry.
            cr.pending = false;
            if (untracked) {
              ctr.ct_untracked.Inc();
              cr.state = kCtUntracked, cr.found = nullptr;
              kc.ct_state = kCtUntracked;
              v.cx.ct = &cr;
            } else if (ct) {
              ct->Track(f.data, pf, uint8_t(in >> 1), mono_ns, &cr);
              kc.ct_state = cr.state;
              v.cx.ct = &cr;
            }
            // The filter table, with no output / input interface in INPUT /
            // OUTPUT.
            HookIfaces(hook, rs->iface_id(in), rs->iface_id(out), &kc);
            if (hook == Hook::kInput) v.oif = 0xff;  // LOG: no OUT=
            if (hook == Hook::kOutput) v.iif = 0xff;
            v.cx.hook = hook;
            ctr.hook_frames[uint32_t(hook)].Inc();
            ctr.hook_bytes[uint32_t(hook)].Add(pf.l3_len);
            const RuleCommon* verdict = v4 ? ws.cache.Filter(*rs, rs->generation, hook, pf.key4, v)
                                           : ws.cache.Filter(*rs, rs->generation, hook, pf.key6, v);
            if (pf.l4_truncated && verdict && verdict != &Ruleset::kHotDrop && verdict != &kL4HotDrop &&
                verdict != &kL4HotDropBound)
              ctr.l4_truncated_judged.Inc();
            if (!settle(verdict)) break;
            // netfilter confirms a new conntrack when its packet is
            // accepted; a full table without an evictable entry drops it.
            if (cr.pending && !ct->Commit(cr, mono_ns)) {
              drop(DropReason::kConntrackFull);
              break;
            }
            ctr.accept.Inc();
            ctr.accept_bytes.Add(pf.l3_len);
            forward = true;
            break;
          }
        }
        if (forward) {
          // Vnet header and frame, unchanged: GSO and checksum metadata pass
          // through to the kernel on the other side.
          if (oq->TxForward(f)) {
            ctr.ports[out].tx_packets.Inc();
            ctr.ports[out].tx_bytes.Add(f.len);
          } else {
            drop(DropReason::kTxRingFull);
          }
        }
      }
      // Flush before giving the RX frames back: in sendmmsg mode the queued
      // messages point into them.
      oq->TxFlush();
      iq->TxFlush();
      iq->RxRelease(done);
      if (done) progress = true;
    }
    if (progress) {
      last_work_ns = batch_ns;
      continue;
    }
    // Keep polling the rings for busy_poll_ns after traffic (VPP's
    // "adaptive" rx-mode): a frame arriving within that window is picked up
    // without the poll() sleep and wake-up. On a VM that wake-up is the
    // bridge's main added latency: the frame's softirq runs on the sender's
    // vCPU, and waking the worker means an IPI to a halted vCPU (a VM exit
    // on both sides), ~40 us per round trip measured here (the reply needs
    // no wake-up: it reaches our other RX ring inside the worker's own
    // sendto), where kernel forwarding finishes the whole round trip inside
    // the sender's syscall.
    // Between polls the worker calls sched_yield(), not a pause loop: with
    // 2 vCPUs the sender and receiver processes need the CPU the worker
    // spins on, and yield hands it to any runnable task (a plain pause loop
    // cost ~15 % TCP throughput here; the yield loop did not). It spins only
    // when that CPU would otherwise idle. Then sleep in poll().
    bool any_stalled = false;
    for (uint32_t p = 0; p < nports; ++p) any_stalled |= stalled[p];
    if (!any_stalled && batch_ns - last_work_ns < busy_poll_ns) {
      sched_yield();
      continue;
    }

    // Nothing to do: block. Poll every port for input, except ports whose
    // output is stalled (their frames are waiting in the RX ring; polling
    // for input would spin), which wait for the output to become writable.
    bool any_stall = false;
    for (uint32_t p = 0; p < nports; ++p) {
      pfds[p].fd = q[p]->fd();
      pfds[p].events = stalled[p ^ 1] ? 0 : POLLIN;
      if (stalled[p]) pfds[p].events |= POLLOUT, any_stall = true;
      pfds[p].revents = 0;
    }
    pfds[nports] = {wake_fd_, POLLIN, 0};
    pfds[nports + 1] = {ws.cmd_fd, POLLIN, 0};
    ws.observed.store(kIdle, std::memory_order_seq_cst);
    const int ready = poll(pfds, nports + 2, any_stall ? kStallPollMs : kIdlePollMs);
    // A whole idle period (kIdlePollMs without a frame): sweep a bigger
    // slice of the conntrack table, so expired flows leave the entry count
    // without traffic. Not before every poll: under load the worker polls
    // between bursts, and a 256 KB sweep each time cost real throughput.
    if (ready == 0 && ct && !any_stall) ct->Gc(MonoNs(), gc_budget * 128);
    ws.observed.store(kWaking, std::memory_order_seq_cst);
  }
  for (uint32_t p = 0; p < nports; ++p) q[p]->TxFlush();
  ws.observed.store(kIdle, std::memory_order_seq_cst);
  workers_running_.fetch_sub(1);
}

}  // namespace flatwall
