// Conntrack micro-benchmark: the table alone (no parsing, no I/O), for the
// per-worker-vs-shared decision in native/dataplane/README.md. Built and run
// by `npm run bench:conntrack` (bench/conntrack.ts), or by hand:
//
//   g++ -std=c++17 -O3 -Inative -pthread -o /tmp/ct_bench native/test/ct_bench.cc
//       native/conntrack/conntrack.cc native/conntrack/conncount.cc
//   /tmp/ct_bench [flows=1000000] [threads=2]
//
// Prints one JSON object: for N distinct UDP flows in a table sized for
// them, new-flow inserts/s (Track + Commit), established lookups/s (Track of
// a reply in random flow order: every lookup a cache miss at 1M flows), and
// hot lookups/s (1k flows, cache resident); each for
//   per_worker      one thread, its own table (flatwall's design);
//   mutex_1thread   the same table behind one std::mutex, uncontended
//                   (the least a shared table with a lock would pay);
//   per_worker_Nt   N threads, each with its own table (aggregate);
//   mutex_Nt        N threads sharing one table behind a mutex (aggregate).
//   per_worker_replicating  one thread, its own table publishing its
//                   changes for a hot standby (conntrack.h: Replication)
//                   into its ring, which another thread drains as the
//                   control thread does (every record a new flow or its
//                   first reply: one per insert and one per first lookup).
// Plus memory per allowed entry (slots * 64 B / limit).
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "classifier/rule_table.h"
#include "conntrack/conntrack.h"

using namespace flatwall;

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Parsed frames of `n` UDP flows (orig and reply), addresses spread out.
struct Flows {
  std::vector<ParsedFrame> orig, reply;
};

Flows MakeFlows(uint32_t n, uint32_t salt) {
  Flows f;
  f.orig.resize(n);
  f.reply.resize(n);
  for (uint32_t i = 0; i < n; ++i) {
    ParsedFrame& o = f.orig[i];
    o.cls = FrameClass::kIPv4;
    o.key4.src = 0x0a000000u | (i * 2654435761u >> 8);
    o.key4.dst = 0xc0a80000u | ((i ^ salt) & 0xffff);
    o.key4.c.proto = 17;
    o.key4.c.sport = uint16_t(1024 + (i % 60000));
    o.key4.c.dport = 53;
    o.key4.c.flags = kKeyHasL4;
    ParsedFrame& r = f.reply[i];
    r = o;
    r.key4.src = o.key4.dst, r.key4.dst = o.key4.src;
    r.key4.c.sport = o.key4.c.dport, r.key4.c.dport = o.key4.c.sport;
  }
  return f;
}

std::vector<uint32_t> Shuffled(uint32_t n, uint64_t seed) {
  std::vector<uint32_t> v(n);
  for (uint32_t i = 0; i < n; ++i) v[i] = i;
  for (uint32_t i = n; i > 1; --i) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    std::swap(v[i - 1], v[(seed >> 33) % i]);
  }
  return v;
}

struct NoLock {
  void lock() {}
  void unlock() {}
};

struct Rates {
  double insert = 0, lookup = 0, hot = 0;
  uint64_t failed = 0, early_drop = 0, established = 0;
};

// Runs the three phases on `t` for `f`, locking `mu` around every packet.
template <typename M>
Rates Phases(ct::Table& t, M& mu, const Flows& f, const std::vector<uint32_t>& order) {
  Rates r;
  const uint64_t now = 1000000000ull;
  ct::Result res;
  const uint8_t dummy[1] = {0};
  const uint32_t n = uint32_t(f.orig.size());
  double t0 = Now();
  for (uint32_t i = 0; i < n; ++i) {
    std::lock_guard<M> g(mu);
    t.Track(dummy, f.orig[i], 0, now, &res);
    if (!t.Commit(res, now)) ++r.failed;
  }
  r.insert = n / (Now() - t0);
  t0 = Now();
  uint64_t est = 0;
  for (uint32_t i : order) {
    std::lock_guard<M> g(mu);
    t.Track(dummy, f.reply[i], 0, now, &res);
    est += res.state == kCtEstablished;
  }
  r.lookup = n / (Now() - t0);
  r.established = est;
  const uint32_t hot = std::min<uint32_t>(n, 1000), rounds = std::max<uint32_t>(1, n / hot);
  t0 = Now();
  for (uint32_t k = 0; k < rounds; ++k)
    for (uint32_t i = 0; i < hot; ++i) {
      std::lock_guard<M> g(mu);
      t.Track(dummy, f.reply[i], 0, now, &res);
    }
  r.hot = double(hot) * rounds / (Now() - t0);
  r.early_drop = t.stats().early_drop.Get();
  return r;
}

ct::Config Cfg(uint32_t limit) {
  ct::Config c;
  c.limit = limit;
  c.seed = 7;
  return c;
}

void Print(const char* name, const Rates& r, bool comma) {
  std::printf("  \"%s\": {\"insert_per_s\": %.0f, \"lookup_per_s\": %.0f, \"hot_lookup_per_s\": %.0f, "
              "\"insert_failed\": %llu, \"early_drop\": %llu, \"established_lookups\": %llu}%s\n",
              name, r.insert, r.lookup, r.hot, (unsigned long long)r.failed, (unsigned long long)r.early_drop,
              (unsigned long long)r.established, comma ? "," : "");
}

}  // namespace

int main(int argc, char** argv) {
  const uint32_t n = argc > 1 ? uint32_t(std::atoi(argv[1])) : 1000000;
  const uint32_t threads = argc > 2 ? uint32_t(std::atoi(argv[2])) : 2;
  const Flows flows = MakeFlows(n, 0);
  const auto order = Shuffled(n, 42);

  Rates solo, locked;
  {
    ct::Table t(Cfg(n));
    NoLock nl;
    solo = Phases(t, nl, flows, order);
    std::printf("{\n  \"flows\": %u,\n  \"threads\": %u,\n  \"entry_bytes\": %zu,\n", n, threads, sizeof(ct::Entry));
    std::printf("  \"slots\": %u,\n  \"bytes_per_allowed_entry\": %.1f,\n", t.capacity(),
                double(t.capacity()) * sizeof(ct::Entry) / n);
  }
  {
    ct::Table t(Cfg(n));
    std::mutex mu;
    locked = Phases(t, mu, flows, order);
  }
  // N threads, own tables vs one shared table behind a mutex. Each thread
  // gets n / threads flows of its own.
  auto parallel = [&](bool shared) {
    const uint32_t per = n / threads;
    std::vector<Flows> fl;
    std::vector<std::vector<uint32_t>> ord;
    for (uint32_t w = 0; w < threads; ++w) {
      fl.push_back(MakeFlows(per, w + 1));
      ord.push_back(Shuffled(per, w + 100));
    }
    std::vector<std::unique_ptr<ct::Table>> tables;
    for (uint32_t w = 0; w < (shared ? 1 : threads); ++w) tables.push_back(std::make_unique<ct::Table>(Cfg(shared ? n : per)));
    std::mutex mu;
    std::vector<Rates> rs(threads);
    std::vector<std::thread> th;
    for (uint32_t w = 0; w < threads; ++w)
      th.emplace_back([&, w] {
        if (shared) rs[w] = Phases(*tables[0], mu, fl[w], ord[w]);
        else {
          NoLock nl;
          rs[w] = Phases(*tables[w], nl, fl[w], ord[w]);
        }
      });
    for (auto& t : th) t.join();
    Rates sum;
    for (const Rates& r : rs) {
      sum.insert += r.insert, sum.lookup += r.lookup, sum.hot += r.hot, sum.failed += r.failed;
      sum.established += r.established;
      sum.early_drop = shared ? r.early_drop : sum.early_drop + r.early_drop;
    }
    return sum;
  };
  const Rates pw = parallel(false), mt = parallel(true);
  Rates repl;
  uint64_t drained = 0, lost = 0;
  {
    auto ring = std::make_unique<ct::EventRing>();
    ct::Config c = Cfg(n);
    c.events = ring.get();
    ct::Table t(c);
    std::atomic<bool> done{false};
    std::thread consumer([&] {
      while (!done.load(std::memory_order_relaxed)) {
        if (!ring->Drain([&](const ct::Record&) { ++drained; }, 1u << 16)) std::this_thread::yield();
      }
      drained += ring->Drain([](const ct::Record&) {}, 1u << 20);
    });
    NoLock nl;
    repl = Phases(t, nl, flows, order);
    done.store(true);
    consumer.join();
    lost = t.stats().repl_lost.Get();
  }
  Print("per_worker", solo, true);
  Print("mutex_1thread", locked, true);
  Print("per_worker_Nt", pw, true);
  Print("mutex_Nt", mt, true);
  Print("per_worker_replicating", repl, true);
  std::printf("  \"replication_records\": %llu,\n  \"replication_records_lost\": %llu\n}\n", (unsigned long long)drained,
              (unsigned long long)lost);
  return 0;
}
