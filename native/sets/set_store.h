// An ipset-compatible set store: the sets that `-m set --match-set NAME
// src,dst` rules test packets against (fail2ban's ipset actions, firehol),
// with ipset's types, options and semantics, edited by the control thread
// while the packet workers read.
//
// What a set is (semantics follow the kernel's net/netfilter/ipset/)
//   hash:ip        one address per entry (ip_set_hash_ip.c)
//   hash:net       one prefix per entry, /1../32 or /1../128; `nomatch`
//                  entries exclude (ip_set_hash_net.c)
//   hash:ip,port   address + protocol + port: `1.2.3.4,udp:53`, ICMP as
//                  `icmp:8/0` (type << 8 | code in the port, as the kernel's
//                  ip_set_getport.c stores it), any other protocol with
//                  port 0 (ip_set_hash_ipport.c)
//   hash:net,port  prefix + protocol + port, `nomatch` (ip_set_hash_netport.c)
//   bitmap:port    a port range; TCP and UDP ports only, either family
//                  (ip_set_bitmap_port.c, ip_set_get_ip_port)
// hash types have a family (inet or inet6): a packet of the other family
// never matches (ip_set_core.c ip_set_test: family check; same for a rule
// with fewer src/dst flags than the set has dimensions). Options: `timeout N`
// at create (default entry timeout) and per entry (0 = permanent), `maxelem`
// (default 65536; adding beyond it fails with "Hash is full, cannot add more
// elements"), `hashsize` (the initial table size, rounded up to a power of
// two >= 64 like the kernel's), `counters` and `comment` (stored and listed;
// per-entry packet/byte counters are not counted by packets here: they keep
// the value they were added with), `bucketsize`/`initval` (accepted and
// printed as ipset prints them; no effect on our tables).
//
// How a lookup works
//   A set is a table of slots (open addressing, linear probing, a seeded
//   64-bit mix of the key words so an attacker choosing source addresses
//   cannot aim at one probe chain without the per-set secret seed). A key
//   is packed into 64-bit words: IPv4 address | prefix | proto | port in one
//   word, IPv6 in three. hash:ip looks up (addr, /32). hash:net and
//   hash:net,port keep a bitmap of the prefix lengths present and probe
//   once per present length, most specific first, with the address masked
//   to it: the first live entry found decides (a `nomatch` entry: no
//   match), an expired one is skipped and the next shorter prefix tried -
//   exactly the kernel's mtype_test_cidrs loop over h->nets[] in
//   ip_set_hash_gen.h (there `ip_set_match_extensions` skips the expired
//   entry and a nomatch entry returns -ENOTEMPTY, which ip_set_test turns
//   into "no match"). Port types take the port from the key as
//   ip_set_get_ip4_port/ip_set_get_ip6_port do: TCP, UDP, UDP-Lite and
//   SCTP ports per the src/dst flag, ICMP and ICMPv6 type << 8 | code, 0 for
//   any other protocol; a later fragment (no L4 header: no kKeyHasL4) never
//   matches, as the kernel refuses to read its ports.
//
// Why lookups are lock-free (wait-free, in fact) for the packet workers
//   One writer: every control operation holds mu_ (the JS thread, the API,
//   restores, GC). Readers take no lock, allocate nothing, make no syscall
//   and never wait:
//   * Sets are reached through an array of atomic pointers indexed by id.
//     An id is bound to a name for the life of the store, so a compiled
//     rule naming a set tests whatever set has that name: the new one after
//     destroy + create, the other contents after a swap (as the kernel's
//     ip_set_swap exchanges the sets under their names), nothing under the
//     old name after a rename (the kernel refuses to destroy or rename a
//     referenced set; the control plane does too, src/sets/registry.ts).
//   * A table is an array of slots whose words are atomics. Deleting an
//     entry, expiring it and changing its timeout or nomatch flag are single
//     atomic stores; a reader sees the old or the new value, both valid.
//     Writing a new key into a slot (empty or dead) is bracketed by a
//     per-slot sequence number (a seqlock: odd while writing); a reader that
//     sees it odd, or changed across its read, treats the slot as not
//     holding its key and probes on. It never retries, so a writer
//     preempted mid-write delays nobody; the entry being written is simply
//     not added yet.
//   * What must be replaced wholesale - a table that grows (geometrically,
//     so an add costs O(1) amortised: fail2ban's one address at a time into
//     a 100k-entry set never copies the set), a flushed table, a destroyed
//     set, the sets a restore replaced - is unpublished with an atomic store
//     and freed only after a grace period: `synchronize`, a hook the owner
//     gives, returns once every reader that might still hold the old pointer
//     has left it. The Dataplane's hook (dataplane.h) waits until each
//     worker has passed a batch boundary or is idle, the same quiescent-
//     state scheme as its rule set swaps. A store without concurrent readers
//     (flatwall check, a replay's snapshot, single-threaded tests) needs no
//     hook.
//   Chosen over per-set copy-on-write snapshots: those make every add copy
//   the set; over a reader lock: a writer would stall the packet path.
//
// Memory bounds
//   A table grows by doubling up to next_pow2(2 * maxelem) slots (so a full
//   set is at most half full, and tombstones cannot force a rehash per add),
//   24 bytes per slot for IPv4 and 40 for IPv6: 3 MB / 5 MB at the default
//   maxelem 65536, whatever is added (an add beyond maxelem fails first);
//   during a resize the old table lives one grace period longer. bitmap:port: one bit per port of its range, or 8 bytes per port
//   with timeouts (512 KB for all 65536). Comments (<= 255 bytes) and
//   counters are kept control-side, one small record per entry that has
//   them. At most 65534 set names over the store's life (the kernel's
//   ip_set_max ceiling).
//
// Expiry
//   Time is CLOCK_MONOTONIC nanoseconds (MonoNs()); the workers pass theirs
//   in. An expired entry is absent to every lookup at once; its slot is
//   reclaimed by Gc(now, budget), bounded work the control thread runs
//   (flatwall run: every second), by an add that finds the table full, and
//   before a listing.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "classifier/packet_key.h"

namespace flatwall {
namespace sets {

enum class SetType : uint8_t { kHashIp = 0, kHashNet, kHashIpPort, kHashNetPort, kBitmapPort };
constexpr int kSetTypeCount = 5;

const char* SetTypeName(SetType t);  // "hash:ip", ...
bool ParseSetType(std::string_view name, SetType* out);
uint8_t SetTypeDims(SetType t);      // 1 or 2
uint8_t SetTypeRevision(SetType t);  // what `ipset list` prints (kernel 6.x)
bool SetTypeHasNets(SetType t);      // hash:net, hash:net,port
bool SetTypeHasPort(SetType t);      // hash:*,port

constexpr uint32_t kDefaultMaxElem = 65536;
constexpr uint32_t kDefaultHashSize = 1024;
constexpr uint32_t kMinHashSize = 64;        // IPSET_MIMINAL_HASHSIZE
constexpr uint32_t kMaxTimeout = 2147483;    // IPSET_MAX_TIMEOUT, seconds
constexpr size_t kMaxNameLen = 31;           // IPSET_MAXNAMELEN - 1
constexpr size_t kMaxCommentLen = 255;       // IPSET_MAX_COMMENT_SIZE
constexpr uint32_t kMaxSets = 65534;         // names bound over the store's life

// Protocol numbers the port types treat specially.
enum : uint8_t { kIpProtoIcmp = 1, kIpProtoTcp = 6, kIpProtoUdp = 17, kIpProtoIcmp6 = 58,
                 kIpProtoSctp = 132, kIpProtoUdpLite = 136 };
// TCP, UDP, SCTP, UDP-Lite: the protocols whose entries carry a real port
// (the kernel's ip_set_proto_with_ports).
bool ProtoWithPorts(uint8_t proto);

struct SetOptions {
  SetType type = SetType::kHashIp;
  uint8_t family = 4;                    // 4 or 6; bitmap:port: 0 (either)
  uint32_t hashsize = kDefaultHashSize;  // normalised at create (>= 64, power of two)
  uint32_t maxelem = kDefaultMaxElem;    // hash types
  bool has_timeout = false;
  uint32_t timeout = 0;                  // default entry timeout, seconds (has_timeout)
  bool counters = false;
  bool comment = false;
  uint8_t bucketsize = 12;               // normalised like the kernel's (2..12, even)
  bool has_initval = false;              // false: a random one is chosen at create
  uint32_t initval = 0;
  uint16_t port_from = 0, port_to = 0;   // bitmap:port range (inclusive)

  // Same create parameters (what `ipset -exist create` compares).
  bool SameAs(const SetOptions& o) const;
};

// One element, as the control plane names it.
struct Entry {
  uint8_t family = 4;     // of addr (hash types)
  uint32_t addr[4] = {};  // host order, most significant word first; IPv4 in addr[0]
  uint8_t cidr = 0;       // prefix length for hash:net*, 0 = a host address
  uint8_t proto = 0;      // hash:*,port: IP protocol (never 0)
  uint16_t port = 0;      // port, ICMP(v6) type << 8 | code, or bitmap:port's port
  bool nomatch = false;   // hash:net* only
  // Values, on add: a per-entry timeout (0 = permanent; only in a set with
  // timeouts), counters, comment. In listings `timeout` is the seconds left.
  bool has_timeout = false;
  uint32_t timeout = 0;
  bool has_counters = false;
  uint64_t packets = 0, bytes = 0;
  bool has_comment = false;
  std::string comment;
};

struct SetInfo {
  std::string name;
  uint32_t id = 0;
  SetOptions options;
  uint32_t entries = 0;        // live entries
  size_t memory_bytes = 0;
  std::vector<Entry> members;  // when listed with members
};

enum class SetErrc : uint8_t {
  kNoSet,          // The set with the given name does not exist
  kSetExists,      // Set cannot be created: set with the same name already exists
  kSecondNoSet,    // The second set (swap/rename target) does not exist
  kNameTaken,      // rename target exists
  kFull,           // Hash is full, cannot add more elements
  kExists,         // Element cannot be added to the set: it's already added
  kNotAdded,       // Element cannot be deleted from the set: it's not added
  kOutOfRange,     // Element is out of the range of the set
  kTypeMismatch,   // The sets cannot be swapped: their type does not match
  kTooManySets,    // maximal number of sets reached
  kInvalid,        // anything else the store refuses (bad option or element)
};

class SetError : public std::runtime_error {
 public:
  SetError(SetErrc code, const std::string& msg) : std::runtime_error(msg), code(code) {}
  SetErrc code;
  size_t index = SIZE_MAX;  // Restore: the failing command
};

// One line of a restore (`ipset restore` / `ipset save` output), already
// parsed: the control plane parses text, the store applies.
struct Command {
  enum class Op : uint8_t { kCreate, kAdd, kDel, kFlush, kDestroy, kSwap, kRename };
  Op op = Op::kCreate;
  std::string name;   // empty: all sets (kFlush, kDestroy)
  std::string name2;  // kSwap, kRename
  SetOptions options; // kCreate
  Entry entry;        // kAdd, kDel
  bool exist = false; // ipset -exist: no error for an existing set/element (create, add, del)
};

// Packet-side answer with nomatch told apart (for --return-nomatch).
enum class Match : uint8_t { kAbsent = 0, kMatch = 1, kNomatch = 2 };

class SetStore {
 public:
  // `synchronize`: see the essay; empty = no concurrent readers.
  explicit SetStore(std::function<void()> synchronize = {});
  ~SetStore();
  SetStore(const SetStore&) = delete;
  SetStore& operator=(const SetStore&) = delete;

  // A private copy (same ids, contents, seeds), e.g. for an offline replay.
  std::unique_ptr<SetStore> Clone() const;
  void SetSynchronize(std::function<void()> synchronize);
  // Control-side clock (tests inject one); default MonoNs.
  void SetClock(std::function<uint64_t()> clock);
  static uint64_t MonoNs();

  // ---- packet side: any thread, no locks, no allocation, no syscalls ----
  // dirs[i]: 1 = src, 2 = dst for dimension i (xt_set's src,dst flags);
  // fewer dirs than the set's dimensions never match, as in the kernel.
  // `now_ns`: CLOCK_MONOTONIC (MonoNs()). True iff a live, non-nomatch
  // entry matches.
  bool Test(uint32_t id, const uint8_t* dirs, uint8_t ndirs, const PacketKey4& key, uint64_t now_ns) const;
  bool Test(uint32_t id, const uint8_t* dirs, uint8_t ndirs, const PacketKey6& key, uint64_t now_ns) const;
  Match Lookup(uint32_t id, const uint8_t* dirs, uint8_t ndirs, const PacketKey4& key, uint64_t now_ns) const;
  Match Lookup(uint32_t id, const uint8_t* dirs, uint8_t ndirs, const PacketKey6& key, uint64_t now_ns) const;

  // ---- control side (serialized internally; throw SetError) ----
  // The id of the set named `name`, -1 when there is none.
  int32_t Find(std::string_view name) const;
  // Type, family and dimensions of a set, false when absent.
  bool Describe(std::string_view name, SetOptions* out) const;

  void Create(const std::string& name, const SetOptions& options, bool exist = false);
  void Destroy(const std::string& name);  // "" = every set
  void Flush(const std::string& name);    // "" = every set
  void Swap(const std::string& a, const std::string& b);
  void Rename(const std::string& from, const std::string& to);
  // Returns false when `exist` let an existing element stand (its timeout,
  // comment and counters are updated, as ipset -exist add does).
  bool Add(const std::string& name, const Entry& e, bool exist = false);
  // Returns false when `exist` and the element was not there.
  bool Del(const std::string& name, const Entry& e, bool exist = false);
  // `ipset test`: a host address in a hash:net* set tries every prefix
  // (most specific first); a prefix tests that exact entry. nomatch: false.
  bool TestEntry(const std::string& name, const Entry& e) const;
  // All commands or none: on an error nothing has changed and the
  // SetError's index names the command.
  void Restore(const std::vector<Command>& commands);

  // Sets in the kernel's listing order (its set index: a new set takes the
  // lowest free one, swap keeps names in place, rename moves the name),
  // optionally with their live members (`name` "" = all).
  // Reclaims the listed sets' expired entries first.
  std::vector<SetInfo> List(const std::string& name, bool members);
  std::vector<std::string> Names() const;

  // Reclaims expired entries, visiting at most `budget` slots (bitmap ports)
  // across all sets from where the previous call stopped. Returns the
  // entries reclaimed.
  size_t Gc(size_t budget);

  size_t memory_bytes() const;

  struct Set;  // set_store.cc

 private:
  Match LookupIn(const Set* s, const uint8_t* dirs, uint8_t ndirs, uint8_t family, const uint32_t* src,
                 const uint32_t* dst, const KeyCommon& c, uint64_t now_ns) const;
  const Set* Get(uint32_t id) const;
  void Publish(uint32_t id, Set* s);
  uint32_t Bind(const std::string& name);  // id of a name (allocates)
  void RestoreLocked(const std::vector<Command>& commands);
  void FinishRetired();

  static constexpr uint32_t kChunk = 256;
  struct Chunk {
    std::atomic<const Set*> slot[kChunk];
    Chunk();
  };
  std::atomic<Chunk*> chunks_[(kMaxSets + kChunk - 1) / kChunk + 1] = {};

  mutable std::mutex mu_;
  std::function<void()> synchronize_;
  std::function<uint64_t()> clock_;
  // Control side (under mu_): name -> id (bound for life), owned sets by id,
  // creation order.
  std::unordered_map<std::string, uint32_t> ids_;
  std::vector<std::string> id_names_;
  std::vector<std::unique_ptr<Set>> owned_;  // by id
  std::vector<int32_t> pos_;                 // by id: the kernel-style set index, -1 = none
  std::vector<std::function<void()>> retired_;  // freed after a grace period
  uint32_t gc_set_ = 0;  // Gc cursor
  size_t gc_slot_ = 0;
};

}  // namespace sets
}  // namespace flatwall
