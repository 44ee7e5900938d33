// Connection tracking: the state behind `-m conntrack --ctstate` and
// `-m state --state`.
//
// What it decides
//   For every IPv4/IPv6 packet the dataplane forwards, Track() names the
//   packet's ct state as netfilter defines it for rule matching (one CtState
//   bit of classifier/rule_table.h):
//     NEW          first packet(s) of a flow in its original direction, before
//                  any reply was seen (a retransmitted SYN is still NEW);
//     ESTABLISHED  any packet of a flow that has seen a reply, and every
//                  reply-direction packet;
//     RELATED      an ICMP/ICMPv6 error (v4 types 3,4,5,11,12; v6 1-4) whose
//                  quoted header belongs to a tracked flow, and whose outer
//                  destination is the quoted packet's source (netfilter's
//                  "outer daddr" check);
//     INVALID      a packet the state machine refuses: TCP with an invalid
//                  flag combination, a non-SYN TCP packet without an entry
//                  (unless tcp_loose), a SYN/ACK or FIN or RST without one, a
//                  transition netfilter's table marks sIV, an ICMP reply or
//                  unknown informational type without an entry, an ICMP error
//                  quoting nothing tracked or quoting a truncated/malformed
//                  header, a packet whose own L4 header is cut short
//                  (ParsedFrame::l4_truncated: the kernel makes no conntrack
//                  for it), or a NEW flow that could not be stored (table full);
//     UNTRACKED    IPv4/IPv6 later fragments (netfilter would reassemble them
//                  first; a bump in the wire must forward them as they are and
//                  they carry no ports, so they cannot be looked up), ICMPv6
//                  MLD (130-132, 143) and NDP solicitations/advertisements
//                  (133-136), which nf_conntrack_icmpv6_error leaves untracked
//                  (its noct_valid_new table; a redirect, 137, is INVALID),
//                  and every packet when conntrack is off.
//
// Protocols
//   TCP: netfilter's tcp_conntracks transition table (nf_conntrack_proto_tcp.c)
//   for states NONE, SYN_SENT, SYN_RECV, ESTABLISHED, FIN_WAIT, CLOSE_WAIT,
//   LAST_ACK, TIME_WAIT, CLOSE, SYN_SENT2 and packet classes SYN, SYN/ACK, FIN,
//   ACK, RST, none - WITHOUT window tracking (no sequence/ack checks: a packet
//   netfilter would find out of window is accepted here with the state it
//   would have had in window). sIV transitions make the packet INVALID and
//   leave the entry alone; sIG transitions pass without a state change. A SYN
//   in the original direction of a TIME_WAIT/CLOSE entry replaces it by a new
//   connection (netfilter's -NF_REPEAT). No entry: a SYN opens one
//   (SYN_SENT); with tcp_loose (the default, as Linux's
//   nf_conntrack_tcp_loose=1: tcp_new picks up a connection whose history is
//   lost) a packet whose first transition from NONE is ESTABLISHED (an ACK
//   without SYN/FIN/RST) opens one in ESTABLISHED, as NEW; SYN/ACK, FIN and
//   RST without an entry stay INVALID. tcp_loose = false (`flatwall run
//   --ct-tcp-strict`, nf_conntrack_tcp_loose=0) makes every non-SYN packet
//   without an entry INVALID: no mid-stream pickup, and after a restart live
//   flows must reconnect. A connection becomes "assured" when it reaches
//   ESTABLISHED from SYN_RECV. A RST before any reply was seen (a refused
//   connection, or one its opener aborts) deletes the entry at once, as
//   netfilter does; the RST itself keeps its state (ESTABLISHED as a reply).
//   UDP (and UDP-Lite): NEW until a reply, then ESTABLISHED and assured;
//   timeout `udp` (30 s) while unreplied, `udp_stream` (120 s) after.
//   ICMP/ICMPv6 queries (echo, and v4 timestamp/info/address mask): one flow
//   per (requester, responder, id, query kind); a request opens it, the
//   matching reply type answers it; timeout `icmp` (30 s).
//   Anything else (SCTP, DCCP, GRE, ESP...): generic, by (src, dst, proto)
//   plus ports when the parser found some; NEW then ESTABLISHED on a reply;
//   timeout `generic` (600 s).
//
// Key and direction
//   Entries are keyed by the canonical 5-tuple: the two endpoints
//   (address, port) sorted, plus family, protocol, ICMP query kind and zone
//   (the port pair the flow crosses, so two pairs never share state). Both
//   directions of a flow compute the same key; the entry remembers which
//   endpoint sent the first packet (orig) so a packet knows whether it is
//   original or reply. ICMP queries are keyed requester-first instead of
//   sorted (a request from the other side is another flow, as in netfilter).
//
// Table
//   Preallocated at construction, never grown: a power-of-two array of
//   buckets of kSlotsPerBucket 64-byte entries (one cache line each). A key
//   lives in one of two buckets chosen by independent bits of its hash
//   (two-choice hashing; an insert takes the less loaded one), so a lookup
//   compares at most 8 slots and a delete just clears the slot (no
//   tombstones: probing never goes further). When both buckets are full, an
//   insert first tries one cuckoo step (move one of their 8 entries to its
//   own other bucket). The entry count is
//   bounded by `limit` (the per-worker share of --conntrack-max); capacity is
//   about 1.5x the limit so that probe windows rarely fill. When an insert
//   finds no free slot in its window, or the table already holds `limit`
//   entries, it does what netfilter's early_drop does: evict a non-assured
//   entry from the probed window (the first one found; expired entries are
//   reused first). If there is none, the insert fails: insert_failed and drop
//   are counted and the dataplane drops the packet (netfilter drops it too).
//   Unlike netfilter, a flow is inserted only after the rules ACCEPTed its
//   first packet (Commit), so a packet the rules drop never evicts anything.
//
// Time
//   Every call takes `now_ns` from the caller (the dataplane reads
//   CLOCK_MONOTONIC once per batch; `flatwall replay` passes each frame's
//   capture timestamp, never going backwards; tests inject any clock). An expired entry
//   is treated as absent by the lookup that meets it (lazy expiry) and
//   cleared by Gc(), which the dataplane calls once per batch with a bounded
//   budget of slots (a cursor sweeps the whole table over time).
//
// Threads
//   A Table has exactly one user at a time: the worker that owns it (see
//   native/dataplane/README.md for why per-worker tables are sound: symmetric
//   fanout puts both directions of a flow on the same worker). No locks, no
//   atomics on the hot path except the single-writer counters; control
//   operations (List, Flush, Delete) are executed by the owning worker at a
//   batch boundary, or directly when no worker runs.
//   The one thing steering does not bring to the right worker is an ICMP
//   error: it is hashed on its own addresses and protocol. For it, the
//   tables of one dataplane share an existence index: an array of atomic
//   64-bit fingerprints (the keyed hash of a flow's key, same secret seed in
//   every table), where a table stores a flow's fingerprint when it inserts
//   it (one relaxed store) and clears it when it removes it (one CAS, only if
//   the slot still holds that fingerprint). An error whose quoted flow is not
//   in the local table is RELATED when its fingerprint is in the index. Cost:
//   nothing per packet; one atomic store per new flow, one CAS per removed
//   flow. A slot shared by two flows keeps the newer one (the older flow's
//   errors may then be INVALID on other workers); a false match needs a
//   64-bit collision under a random seed. An expired flow stays in the index
//   until its table removes it (lookup, insert or GC).
//
// Replication (a hot standby: src/control/standby.ts, docs/API.md)
//   With Config::events set, the table publishes every change of an entry
//   as a Record (the entry's whole replicated state, never a delta) into its
//   worker's SPSC ring (dataplane/log_ring.h): kRecNew when Commit stores it,
//   kRecUpdate when a packet changes its TCP state or its reply/assured
//   flags, kRecDestroy when it leaves the table for any reason (timeout,
//   RST, a SYN reusing a TIME_WAIT tuple, early drop, flush, delete). A
//   packet that only refreshes the timeout or counts publishes nothing:
//   conntrackd replicates ctnetlink's events, which the kernel raises on
//   new, destroyed and changed (state, status) conntracks, not on a timer
//   refresh, and keeps them on the backup in its "external cache" until a
//   failover commits them (conntrack-tools doc/manual/conntrack-tools.tmpl,
//   "committing external cache"; src/sync-mode.c). A full ring loses the record
//   and counts it (Stats::repl_lost): the consumer then asks for a full
//   resync (Export). Because every record is the entry's whole state,
//   replaying in order any stretch of a worker's records that starts
//   before an Export was taken gives the table's state after the last one:
//   a key's final value is its last record, or the export's when it has
//   none since. The replica (Import) holds entries that never expire while
//   it stands by (nothing on the backup runs timers, as conntrackd's
//   external cache); Rearm gives each the full timeout of its state at
//   takeover, as conntrackd's commit gives entries a fresh timeout
//   (CommitTimeout, src/cache-ct.c cache_ct_commit_step). Not replicated:
//   packet counts beyond the record's, and connlimit tags (an imported entry
//   counts for no connlimit rule).
//
// Complexity: Track/Commit O(1) (at most 8 slot compares + one insert, or a
// cuckoo step of at most 32 compares), Gc O(budget), List/Flush O(capacity).
// Memory: 64 bytes per slot, capacity = next power of two >= 1.5 * limit,
// so 96-192 bytes per allowed entry, plus (several workers) 16 bytes per
// allowed entry of shared index.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/counters.h"
#include "dataplane/log_ring.h"
#include "dataplane/parse.h"

namespace flatwall {
namespace ct {

class ConnCount;

enum TcpState : uint8_t {
  kTcpNone = 0,
  kTcpSynSent,
  kTcpSynRecv,
  kTcpEstablished,
  kTcpFinWait,
  kTcpCloseWait,
  kTcpLastAck,
  kTcpTimeWait,
  kTcpClose,
  kTcpSynSent2,
  kTcpStateCount,
};
const char* TcpStateName(uint8_t s);

// Timeouts in seconds; defaults are netfilter's.
struct Timeouts {
  uint32_t tcp[kTcpStateCount] = {0, 120, 60, 432000, 120, 60, 30, 120, 10, 120};
  uint32_t udp = 30;
  uint32_t udp_stream = 120;
  uint32_t icmp = 30;
  uint32_t generic = 600;
  // Sets the timeout called `name` (netfilter's names without the protocol
  // prefix where unambiguous: tcp_established, tcp_syn_sent, tcp_syn_recv,
  // tcp_fin_wait, tcp_close_wait, tcp_last_ack, tcp_time_wait, tcp_close,
  // udp, udp_stream, icmp, generic). False for an unknown name.
  bool Set(const std::string& name, uint32_t seconds);
  static const char* const kNames[];  // null-terminated list of the names above
};

// One replicated entry: what a standby needs to take a flow over (its key,
// direction, TCP state, reply and assured flags), 48 bytes, host byte order
// (the replication handshake refuses a peer of another byte order).
enum RecordOp : uint8_t { kRecNew = 1, kRecUpdate = 2, kRecDestroy = 3 };
struct Record;
constexpr uint32_t kEventRingSize = 16384;  // per worker: 768 KB, ~3M records/s at a 5 ms drain

struct Config {
  uint32_t limit = 262144;  // entries this table may hold
  Timeouts timeouts;
  bool tcp_loose = true;   // pick up mid-stream TCP connections (see above)
  uint32_t seed = 0;       // hash seed; 0 = random. Tables sharing an index share it.
  // The shared existence index (power-of-two size, mask = size - 1), or
  // null: only needed when several tables (workers) exist.
  std::atomic<uint64_t>* related_index = nullptr;
  uint32_t related_mask = 0;
  // The connlimit counters (conncount.h) entries may be tagged by, or null.
  ConnCount* conncount = nullptr;
  // Where changes are published for a standby (see Replication), or null.
  SpscRing<Record, kEventRingSize>* events = nullptr;
};

// Canonical flow key, embedded in the entry. 40 bytes.
struct Key {
  uint32_t a[4];  // endpoint A address (IPv4: a[0]; rest 0), host order
  uint32_t b[4];
  uint16_t pa, pb;  // ports (ICMP query: the id on both sides)
  uint8_t family;   // 4 or 6
  uint8_t proto;
  uint8_t kind;     // ICMP query kind (1 echo, 2 timestamp, 3 info, 4 mask); 0 otherwise
  uint8_t zone;     // port pair
  bool operator==(const Key& o) const;
};
static_assert(sizeof(Key) == 40, "key layout");

enum EntryFlags : uint8_t {
  kUsed = 1 << 0,
  kOrigIsA = 1 << 1,  // endpoint A sent the first packet
  kSeenReply = 1 << 2,
  kAssured = 1 << 3,
};

struct alignas(64) Entry {
  Key key;
  uint64_t expires_ns;
  uint32_t hash;
  uint8_t flags;
  uint8_t tcp_state;
  uint8_t counted[2];  // connlimit counters that count this entry (conncount.h), 0 = none
  uint64_t packets;  // both directions, for listings
};
static_assert(sizeof(Entry) == 64, "one cache line per entry");

struct Record {
  Key key;
  uint8_t flags;      // kOrigIsA | kSeenReply | kAssured
  uint8_t tcp_state;
  uint8_t op;         // RecordOp; kRecNew in an export
  uint8_t worker;     // the table's worker (set by the dataplane)
  uint32_t packets;   // at the time of the record, saturated
};
static_assert(sizeof(Record) == 48, "replication record layout");
using EventRing = SpscRing<Record, kEventRingSize>;

// Counters of one table (single writer: its worker). Names follow
// node_exporter's nf_conntrack collectors (node_nf_conntrack_entries,
// node_nf_conntrack_stat_{found,invalid,ignore,insert,insert_failed,drop,
// early_drop}).
struct Stats {
  Counter entries;        // entries in the table now (stored, not added)
  Counter found;          // packets that found their entry
  Counter invalid;        // packets whose state was INVALID
  Counter ignore;         // packets left UNTRACKED
  Counter insert;         // entries inserted
  Counter insert_failed;  // inserts refused (table full, nothing to evict)
  Counter drop;           // packets dropped because of insert_failed
  Counter early_drop;     // non-assured entries evicted to make room
  Counter expired;        // entries removed by timeout (lazy or Gc)
  Counter repl_lost;      // replication records lost to a full ring
};

// What Track found out about one packet.
struct Result {
  uint8_t state = 0;        // CtState bit for the classifier key
  bool pending = false;     // a NEW flow: Commit() it if the packet is accepted
  Entry entry;              // the would-be entry when pending
  Entry* found = nullptr;   // the packet's live entry (its own flow, or the one a RELATED
                            // error quotes); null when pending or untracked. Valid until
                            // the next call on the table.
};

// A listing row / a filter / a tuple to delete, all in original direction.
struct FlowView {
  uint8_t family = 0, proto = 0, zone = 0, tcp_state = 0, kind = 0;
  uint32_t src[4] = {0, 0, 0, 0}, dst[4] = {0, 0, 0, 0};
  uint16_t sport = 0, dport = 0;
  bool seen_reply = false, assured = false;
  uint64_t expires_in_ms = 0;
  uint64_t packets = 0;
};

struct Filter {
  uint8_t family = 0;   // 0 = any
  uint8_t proto = 0;    // 0 = any
  int zone = -1;        // -1 = any
  bool has_addr = false;
  uint32_t addr[4] = {0, 0, 0, 0};  // either endpoint (host order)
  int port = -1;        // either endpoint's port, -1 = any
  bool Matches(const Entry& e) const;
};

class Table {
 public:
  explicit Table(const Config& config);
  Table(const Table&) = delete;
  Table& operator=(const Table&) = delete;

  // The ct state of the packet `pf` (parsed from `frame`), crossing port pair
  // `zone`. Updates an existing entry at once (as netfilter does before the
  // filter runs); a new flow is only described in r->entry (pending).
  void Track(const uint8_t* frame, const ParsedFrame& pf, uint8_t zone, uint64_t now_ns, Result* r);
  // Inserts a pending entry (the packet was accepted). False when the table
  // is full and nothing could be evicted: the caller drops the packet.
  bool Commit(const Result& r, uint64_t now_ns);
  // Clears expired entries among the next `budget` slots.
  void Gc(uint64_t now_ns, uint32_t budget);

  // Control operations: only by the owning worker, or while none runs.
  size_t List(const Filter& f, size_t limit, uint64_t now_ns, std::vector<FlowView>* out) const;
  size_t Flush(const Filter& f);
  bool Delete(const FlowView& tuple);

  // Replication (see above). Export appends every live entry as kRecNew.
  // Import applies one record (new/update: insert or overwrite the entry,
  // never expiring until Rearm; destroy: remove it); false for a record
  // that is malformed or finds the table full. Rearm gives every entry the
  // full timeout of its state from now. All three: owner only, like List.
  void Export(uint64_t now_ns, std::vector<Record>* out) const;
  bool Import(const Record& r);
  void Rearm(uint64_t now_ns);
  // Removes every entry without publishing it (a replica's full resync).
  void Clear();
  // The timeout of an entry's state, in seconds (as Track would set it).
  uint32_t TimeoutOf(const Entry& e) const;

  const Stats& stats() const { return stats_; }
  uint32_t limit() const { return limit_; }
  uint32_t capacity() const { return mask_ + 1; }
  uint32_t size() const { return count_; }
  const Timeouts& timeouts() const { return timeouts_; }

  static constexpr uint32_t kSlotsPerBucket = 4;
  static constexpr uint32_t kProbeBuckets = 2;

 private:
  void Buckets(uint32_t hash, Entry* out[2]) const;
  Entry* Find(const Key& k, uint32_t hash, uint64_t now_ns);
  uint64_t Hash64(const Key& k) const;
  void Publish(const Key& k);
  void Unpublish(const Key& k);
  bool Published(const Key& k) const;
  Entry* Displace(Entry* const buckets[2], uint64_t now_ns);
  void Remove(Entry* e);
  uint32_t Hash(const Key& k) const;
  void TrackTcp(const ParsedFrame& pf, const KeyCommon& kc, const Key& key, bool a_is_src,
                uint64_t now_ns, Result* r);
  void TrackIcmpError(const uint8_t* frame, const ParsedFrame& pf, uint8_t zone, uint64_t now_ns,
                      Result* r);
  void MakePending(const Key& key, uint32_t hash, bool a_is_src, uint8_t tcp_state,
                   uint32_t timeout_s, uint64_t now_ns, Result* r);

  Timeouts timeouts_;
  bool tcp_loose_;
  uint32_t seed_;
  uint32_t limit_;
  uint32_t mask_;          // slots - 1
  uint32_t bucket_mask_;   // buckets - 1
  uint32_t count_ = 0;
  uint32_t gc_cursor_ = 0;
  std::unique_ptr<Entry[]> slots_;
  Stats stats_;
  std::atomic<uint64_t>* related_;  // shared, not owned; null with one table
  uint32_t related_mask_;
  ConnCount* conncount_;            // shared, not owned; null without connlimit
  EventRing* events_;               // not owned; null unless replicating
  void Emit(RecordOp op, const Entry& e);
};

// Fills `key` (canonical) from an original-direction tuple; returns whether
// endpoint A is the source. Exposed for tests and Delete.
bool MakeKey(uint8_t family, const uint32_t* src, const uint32_t* dst, uint16_t sport,
             uint16_t dport, uint8_t proto, uint8_t kind, uint8_t zone, bool ordered, Key* key);

}  // namespace ct
}  // namespace flatwall
