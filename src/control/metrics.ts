// Prometheus text exposition (format 0.0.4) of the running firewall.
//
// Names follow the exporter conventions: prefix flatwall_, base units
// (bytes, seconds), _total for counters, labels for the dimension that
// varies (verdict, port, reason, family/hook). Per-rule series are opt-in
// (`--metrics-rules top:K` or `all`): a million rules must not become a
// million series unless the operator asks for it.
import { PerformanceObserver, constants as perfConstants, type PerformanceEntry } from 'node:perf_hooks';
import type { Firewall } from './firewall';
import { firewallHealth } from './health';
import { rulePositions } from '../rules/positions';
import { replication } from './standby';

export type RuleMetricsMode = { kind: 'none' } | { kind: 'top'; k: number } | { kind: 'all' };

export function parseRuleMetrics(s: string | undefined): RuleMetricsMode {
  if (s === undefined || s === 'none' || s === '0') return { kind: 'none' };
  if (s === 'all') return { kind: 'all' };
  const m = /^top:(\d+)$/.exec(s);
  if (m && Number(m[1]) > 0) return { kind: 'top', k: Number(m[1]) };
  throw new Error(`--metrics-rules must be none, top:K or all, got "${s}"`);
}

/**
 * The process's memory (Node's process.memoryUsage()): RSS, the V8 heap
 * (used, and reserved by V8), and memory outside it that JavaScript objects
 * own (external, of which ArrayBuffers). The dataplane's own allocations
 * (classifiers, conntrack tables, rings) are in the RSS only.
 */
export function processMemory(): {
  rssBytes: number; heapUsedBytes: number; heapTotalBytes: number; externalBytes: number; arrayBuffersBytes: number;
  heapAfterMajorGcBytes: number | null; majorGcs: number;
} {
  const m = process.memoryUsage();
  return {
    rssBytes: m.rss, heapUsedBytes: m.heapUsed, heapTotalBytes: m.heapTotal, externalBytes: m.external, arrayBuffersBytes: m.arrayBuffers,
    heapAfterMajorGcBytes: afterGc.count ? afterGc.bytes : null, majorGcs: afterGc.count,
  };
}

/**
 * The V8 heap just after the last major (mark-compact) collection. The used
 * heap is a sawtooth: garbage piles up between collections, by tens of MB
 * at a reload a second, so a sample of it says more about when the last
 * collection ran than about what is kept; after a major collection it is
 * what stays allocated (plus what was allocated during incremental
 * marking), where a leak shows. Read in the gc observer's callback, which
 * runs soon after the collection (a little allocated since is in it).
 */
const afterGc = { bytes: 0, count: 0 };
let gcObserver: PerformanceObserver | undefined;

/** Start following major collections (flatwall run, once at start). */
export function watchMajorGc(): void {
  if (gcObserver) return;
  gcObserver = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if ((e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind === perfConstants.NODE_PERFORMANCE_GC_MAJOR) {
        afterGc.count++;
        afterGc.bytes = process.memoryUsage().heapUsed;
      }
    }
  });
  gcObserver.observe({ entryTypes: ['gc'] });
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

class Exposition {
  private readonly out: string[] = [];

  family(name: string, type: 'counter' | 'gauge', help: string): this {
    this.out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    return this;
  }

  sample(name: string, value: number | bigint, labels: Record<string, string> = {}): this {
    const l = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',');
    const num = typeof value === 'bigint' ? value.toString() : Number.isFinite(value) ? String(value) : value > 0 ? '+Inf' : value < 0 ? '-Inf' : 'NaN';
    this.out.push(`${name}${l ? `{${l}}` : ''} ${num}`);
    return this;
  }

  text(): string {
    return `${this.out.join('\n')}\n`;
  }
}

export async function renderMetrics(fw: Firewall, mode: RuleMetricsMode): Promise<string> {
  const c = fw.counters({ rules: false }); // per-rule series come from ruleCounters() below
  const st = fw.status;
  const e = new Exposition();
  const P = 'flatwall_';

  e.family(`${P}packets_total`, 'counter', 'IP packets decided by the rules (FORWARD; in host mode also INPUT and OUTPUT), by verdict.');
  for (const v of ['accept', 'drop', 'reject'] as const) e.sample(`${P}packets_total`, c.verdicts[v], { verdict: v });
  e.family(`${P}bytes_total`, 'counter', 'IP bytes of the packets decided by the rules, by verdict.');
  for (const v of ['accept', 'drop', 'reject'] as const) e.sample(`${P}bytes_total`, c.verdicts[`${v}Bytes`] ?? 0, { verdict: v });
  // Host mode walks INPUT, FORWARD or OUTPUT per frame (native/dataplane/host.h).
  const hooks = c.hooks as Record<string, { frames: number; bytes: number }> | undefined;
  if (hooks) {
    e.family(`${P}hook_packets_total`, 'counter', 'IP packets that went through each built-in chain\'s rules (all FORWARD unless host mode).');
    for (const [hook, h] of Object.entries(hooks)) e.sample(`${P}hook_packets_total`, h.frames, { hook });
    e.family(`${P}hook_bytes_total`, 'counter', 'IP bytes of those packets, by built-in chain.');
    for (const [hook, h] of Object.entries(hooks)) e.sample(`${P}hook_bytes_total`, h.bytes, { hook });
  }
  e.family(`${P}reject_replies_total`, 'counter', 'TCP RST and ICMP unreachable answers sent for REJECT.').sample(`${P}reject_replies_total`, c.verdicts.rejectSent);

  const ports = c.ports as Array<Record<string, number | string>>;
  const portFamily = (name: string, key: string, help: string) => {
    e.family(`${P}${name}`, 'counter', help);
    for (const p of ports) e.sample(`${P}${name}`, p[key] as number, { port: p.name as string });
  };
  portFamily('port_receive_packets_total', 'rxPackets', 'Frames received on the port.');
  portFamily('port_receive_bytes_total', 'rxBytes', 'Ethernet frame bytes received on the port.');
  portFamily('port_transmit_packets_total', 'txPackets', 'Frames sent out of the port (forwarded and REJECT answers).');
  portFamily('port_transmit_bytes_total', 'txBytes', 'Ethernet frame bytes sent out of the port.');
  portFamily('port_drops_total', 'drops', 'Frames received on the port and not forwarded, whatever the reason.');
  portFamily('port_kernel_drops_total', 'kernelDrops', 'Frames the kernel dropped for the port: receive ring full (AF_PACKET, AF_XDP), no free UMEM frame or a frame larger than one (AF_XDP).');
  if (fw.dataplaneStarted) {
    // How the ports were opened (--io), as an info metric: constant 1, the facts in labels.
    const health = fw.dataplaneHealth();
    const io = fw.io;
    e.family(`${P}port_info`, 'gauge', 'Each port as opened: its kind (afpacket, afxdp, tap) and, for AF_XDP, the XDP mode and zero-copy.');
    for (const p of health.ports) {
      e.sample(`${P}port_info`, 1, { port: p.name, kind: p.kind, ...(p.kind === 'afxdp' ? { xdp_mode: io.xdpMode, zero_copy: String(io.zeroCopy) } : {}) });
    }
  }

  e.family(`${P}drops_total`, 'counter', 'Frames dropped, by reason.');
  for (const [reason, n] of Object.entries(c.dropsByReason as Record<string, number>)) e.sample(`${P}drops_total`, n, { reason });

  // The kernel's defaults and the stricter flags, counted either way.
  const l4t = c.l4Truncated as { judged: number; hotdrop: number; hotdropBound: number; strict: number } | undefined;
  if (l4t) {
    e.family(`${P}l4_truncated_packets_total`, 'counter',
      'Frames whose TCP/UDP/SCTP/DCCP/ICMP header is cut short, by outcome: judged (by the rules, as a later fragment: no rule with an L4 match on the way), ' +
      'hotdrop (dropped at the first rule with an L4 match, as the kernel), hotdrop_bound (dropped, fail closed: more L4 rules on the way than the bound), ' +
      'strict (dropped before the rules, --drop-l4-truncated). The drops are flatwall_drops_total{reason="l4_truncated"}.');
    e.sample(`${P}l4_truncated_packets_total`, l4t.judged, { outcome: 'judged' });
    e.sample(`${P}l4_truncated_packets_total`, l4t.hotdrop, { outcome: 'hotdrop' });
    e.sample(`${P}l4_truncated_packets_total`, l4t.hotdropBound, { outcome: 'hotdrop_bound' });
    e.sample(`${P}l4_truncated_packets_total`, l4t.strict, { outcome: 'strict' });
  }
  if (typeof c.ctUntracked === 'number') {
    e.family(`${P}conntrack_untracked_packets_total`, 'counter', 'IP frames a raw-table NOTRACK or CT --notrack rule left untracked (ctstate UNTRACKED).');
    e.sample(`${P}conntrack_untracked_packets_total`, c.ctUntracked);
  }
  const ndp = c.ndp as { judged: number; bypassed: number } | undefined;
  if (ndp) {
    e.family(`${P}ndp_packets_total`, 'counter', 'ICMPv6 neighbour discovery frames (types 133-137), by outcome: judged by the FORWARD rules, or bypassed (--ndp-bypass).');
    e.sample(`${P}ndp_packets_total`, ndp.judged, { outcome: 'judged' });
    e.sample(`${P}ndp_packets_total`, ndp.bypassed, { outcome: 'bypassed' });
  }

  e.family(`${P}log_events_total`, 'counter', 'LOG rule events, by outcome.');
  e.sample(`${P}log_events_total`, c.logs.emitted, { result: 'emitted' });
  e.sample(`${P}log_events_total`, c.logs.rateLimited, { result: 'rate_limited' });
  e.sample(`${P}log_events_total`, c.logs.queueFull, { result: 'queue_full' });

  // Stateful matches: entries, capacity, evictions and refusals per table
  // (limit buckets summed, they have one entry each).
  const states = fw.matchStates();
  if (states.length) {
    const label = (s: { kind: string; key: string }) => ({ kind: s.kind, name: s.kind === 'limit' ? '' : s.key.replace(/^[a-z]+:(\d:)?/, '') });
    const byName = (k: 'entries' | 'capacity' | 'evictions' | 'refused') => {
      const m = new Map<string, { l: Record<string, string>; v: number }>();
      for (const s of states) {
        const l = label(s);
        const id = `${l.kind}/${l.name}`;
        const cur = m.get(id) ?? { l, v: 0 };
        cur.v += s[k];
        m.set(id, cur);
      }
      return [...m.values()];
    };
    const fam = (name: string, type: 'gauge' | 'counter', help: string, k: 'entries' | 'capacity' | 'evictions' | 'refused') => {
      e.family(`${P}${name}`, type, help);
      for (const { l, v } of byName(k)) e.sample(`${P}${name}`, v, l);
    };
    fam('match_state_entries', 'gauge', 'Entries of recent/hashlimit tables in use (limit: one bucket per rule).', 'entries');
    fam('match_state_capacity', 'gauge', 'Entries a table holds at most.', 'capacity');
    fam('match_state_evictions_total', 'counter', 'Entries dropped to make room (recent: least recently used; hashlimit: expired).', 'evictions');
    fam('match_state_refused_total', 'counter', 'limit: packets over the rate; hashlimit: new keys dropped by a full table.', 'refused');
  }

  // Connection tracking, named after node_exporter's nf_conntrack
  // collectors (node_nf_conntrack_entries, _entries_limit, _stat_*).
  const ct = c.conntrack as Record<string, number | boolean> | undefined;
  if (ct && ct.enabled) {
    e.family(`${P}conntrack_entries`, 'gauge', 'Connections currently tracked.').sample(`${P}conntrack_entries`, ct.entries as number);
    e.family(`${P}conntrack_entries_limit`, 'gauge', 'Most connections the table holds (--conntrack-max).').sample(`${P}conntrack_entries_limit`, ct.limit as number);
    const stat: Array<[string, string]> = [
      ['found', 'Packets of connections already tracked.'],
      ['invalid', 'Packets that could not be tracked (state INVALID).'],
      ['ignore', 'Packets conntrack did not track (UNTRACKED).'],
      ['insert', 'Connections inserted.'],
      ['insert_failed', 'Connections that could not be inserted (table full, no entry to evict).'],
      ['drop', 'Packets dropped because their new connection could not be inserted.'],
      ['early_drop', 'Unreplied connections evicted to make room for new ones.'],
      ['expired', 'Connections removed by their timeout.'],
    ];
    for (const [k, help] of stat) e.family(`${P}conntrack_stat_${k}_total`, 'counter', help).sample(`${P}conntrack_stat_${k}_total`, ct[k] as number);
    e.family(`${P}conntrack_memory_bytes`, 'gauge', 'Memory of the connection tables (preallocated).').sample(`${P}conntrack_memory_bytes`, ct.memoryBytes as number);
  }
  const fc = c.flowCache as { hits: number; misses: number } | undefined;
  if (fc) {
    e.family(`${P}flow_cache_lookups_total`, 'counter', 'Flow cache lookups, by result.');
    e.sample(`${P}flow_cache_lookups_total`, fc.hits, { result: 'hit' });
    e.sample(`${P}flow_cache_lookups_total`, fc.misses, { result: 'miss' });
  }

  const rs = fw.ruleset;
  e.family(`${P}rules`, 'gauge', 'Source rules reachable from each built-in chain, by family and hook.');
  e.family(`${P}rule_records`, 'gauge', 'Classifier records (rules after chain inlining and expansion), by family and hook.');
  if (rs) {
    for (const t of rs.tables) {
      const labels = { family: `ipv${t.family}`, hook: t.hook };
      e.sample(`${P}rules`, rs.stats.rulesPerHook[`ipv${t.family}/${t.hook}`] ?? 0, labels);
      e.sample(`${P}rule_records`, t.records, labels);
    }
  }
  e.family(`${P}ready`, 'gauge', '1 when /ready answers 200: rules active, every port up, every worker going round.').sample(`${P}ready`, firewallHealth(fw).ready ? 1 : 0);
  e.family(`${P}ruleset_generation`, 'gauge', 'Generation of the active rule set (1, 2, ... per swap).').sample(`${P}ruleset_generation`, st.generation);
  e.family(`${P}reloads_total`, 'counter', 'Rule set activations attempted, by result.');
  e.sample(`${P}reloads_total`, st.succeeded, { result: 'success' });
  e.sample(`${P}reloads_total`, st.failed, { result: 'failure' });
  e.family(`${P}last_reload_timestamp_seconds`, 'gauge', 'When the last rule set activation was attempted.').sample(`${P}last_reload_timestamp_seconds`, st.lastAttempt);
  e.family(`${P}last_reload_duration_seconds`, 'gauge', 'Duration of the last attempt: parse, compile, build and swap.').sample(`${P}last_reload_duration_seconds`, st.lastSeconds);
  e.family(`${P}last_reload_success`, 'gauge', '1 if the last attempt activated its rules, 0 if it failed (the old rules stayed).').sample(`${P}last_reload_success`, st.lastOk ? 1 : 0);
  e.family(`${P}last_reload_success_timestamp_seconds`, 'gauge', 'When rules were last activated.').sample(`${P}last_reload_success_timestamp_seconds`, st.lastSuccess);
  e.family(`${P}classifier_build_seconds`, 'gauge', 'Time the dataplane took to validate the tables and build the classifiers of the active rule set.').sample(`${P}classifier_build_seconds`, st.buildSeconds);
  e.family(`${P}classifier_memory_bytes`, 'gauge', 'Memory the classifiers of the active rule set own, records included.').sample(`${P}classifier_memory_bytes`, st.memoryBytes);

  // The process's memory, so a slow leak shows on a dashboard (bench:soak plots it).
  const mem = processMemory();
  e.family(`${P}process_resident_memory_bytes`, 'gauge', 'Resident set of the flatwall process (the dataplane\'s tables and rings included).').sample(`${P}process_resident_memory_bytes`, mem.rssBytes);
  e.family(`${P}process_heap_bytes`, 'gauge', 'V8 heap of the control plane: used, and total reserved by V8.');
  e.sample(`${P}process_heap_bytes`, mem.heapUsedBytes, { kind: 'used' });
  e.sample(`${P}process_heap_bytes`, mem.heapTotalBytes, { kind: 'total' });
  e.family(`${P}process_external_memory_bytes`, 'gauge', 'Memory outside the V8 heap owned by JavaScript objects (Buffers, ArrayBuffers).').sample(`${P}process_external_memory_bytes`, mem.externalBytes);
  e.family(`${P}process_major_gcs_total`, 'counter', 'Major (mark-compact) garbage collections of the V8 heap.').sample(`${P}process_major_gcs_total`, mem.majorGcs);
  if (mem.heapAfterMajorGcBytes !== null) {
    e.family(`${P}process_heap_after_major_gc_bytes`, 'gauge', 'V8 heap used just after the last major collection: what stays allocated.')
      .sample(`${P}process_heap_after_major_gc_bytes`, mem.heapAfterMajorGcBytes);
  }

  if (mode.kind !== 'none' && rs) {
    const { ruleset, get } = await fw.ruleCounters();
    if (ruleset) {
      // One pass; top:K keeps the K largest in a small sorted array
      // (O(rules x K) worst case, no sort or map of a million entries).
      const chosen: { id: number; c: [bigint, bigint] }[] = [];
      const pos = rulePositions(ruleset);
      for (const r of ruleset.rules) {
        if (r.internal || pos[r.id] < 0) continue; // < 0: deleted by an edit
        const c = get(r.id);
        if (mode.kind === 'all') {
          chosen.push({ id: r.id, c });
          continue;
        }
        if (chosen.length === mode.k && c[0] <= chosen[chosen.length - 1].c[0]) continue;
        let i = chosen.length;
        while (i > 0 && chosen[i - 1].c[0] < c[0]) i--;
        chosen.splice(i, 0, { id: r.id, c });
        if (chosen.length > mode.k) chosen.pop();
      }
      const ids = chosen.map((x) => x.id);
      const counts = new Map(chosen.map((x) => [x.id, x.c]));
      const label = (id: number) => {
        const r = ruleset.rules[id];
        return { family: `ipv${r.family}`, table: r.table, chain: r.chain, num: r.rule ? String(pos[id]) : 'policy', file: r.file, line: String(r.line) };
      };
      e.family(`${P}rule_packets_total`, 'counter', `Packets matched per rule (${mode.kind === 'all' ? 'all rules' : `top ${mode.k} by packets`}).`);
      for (const id of ids) e.sample(`${P}rule_packets_total`, counts.get(id)![0], label(id));
      e.family(`${P}rule_bytes_total`, 'counter', 'IP bytes matched per rule (same rules as flatwall_rule_packets_total).');
      for (const id of ids) e.sample(`${P}rule_bytes_total`, counts.get(id)![1], label(id));
    }
  }
  replicationMetrics(e, P);
  return e.text();
}

/** The hot standby's series (src/control/standby.ts), in the role this process has now. */
function replicationMetrics(e: Exposition, P: string): void {
  const r = replication.server ?? replication.client;
  if (!r) return;
  const st = r.stats;
  const role = { role: st.role };
  e.family(`${P}standby_connected`, 'gauge', 'Whether the replication peer (the standby of this active, or the active of this standby) is connected.')
    .sample(`${P}standby_connected`, st.connected ? 1 : 0, role);
  e.family(`${P}standby_replication_lag_seconds`, 'gauge',
    'Active: age of the oldest message the standby has not acknowledged (0 when all are). Standby: time since the last message from the active.')
    .sample(`${P}standby_replication_lag_seconds`, st.lagSeconds, role);
  e.family(`${P}standby_replication_messages_total`, 'counter', 'Replication messages sent (active) or received (standby).')
    .sample(`${P}standby_replication_messages_total`, st.messages, role);
  e.family(`${P}standby_replication_records_total`, 'counter', 'Connection records sent (active) or received (standby) as changes.')
    .sample(`${P}standby_replication_records_total`, st.records, role);
  e.family(`${P}standby_resyncs_total`, 'counter', 'Full resyncs (a connect, a sequence gap, records lost to a full ring).')
    .sample(`${P}standby_resyncs_total`, st.resyncs, role);
  e.family(`${P}standby_replica_entries`, 'gauge', 'Standby: connections in the replica. Active: connections the last full dump sent.')
    .sample(`${P}standby_replica_entries`, st.replicaEntries, role);
  e.family(`${P}standby_records_lost_total`, 'counter', 'Active: change records lost to full worker rings (each forces a resync).')
    .sample(`${P}standby_records_lost_total`, st.lostRecords, role);
  e.family(`${P}standby_records_refused_total`, 'counter', 'Standby: records refused by the tables (malformed, or a full table).')
    .sample(`${P}standby_records_refused_total`, st.refusedRecords, role);
  e.family(`${P}failovers_total`, 'counter', 'Takeovers this process made as a standby.')
    .sample(`${P}failovers_total`, replication.failovers);
}
