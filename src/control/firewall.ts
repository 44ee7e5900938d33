// The running firewall: owns the native Dataplane, loads and reloads rule
// files, and turns the dataplane's batched counters and LOG events into
// structured logs. JavaScript never sees a packet: it configures, swaps rule
// sets and reads counters.
import { loadRuleFiles } from '../rules/load';
import type { CompiledRuleSet } from '../rules/compile';
import { ruleSpec } from '../rules/iptables/print';
import { native } from '../native';
import { log } from './log';

export interface PortSpec {
  name: string;
  kind: 'afpacket' | 'tap';
}

export interface FirewallOptions {
  ports: PortSpec[];
  ruleFiles: string[];
  workers: number;
  cpuPin?: boolean;
  nonIpPolicy?: 'accept' | 'drop';
  ringFrames?: number;
  logRatePerSec?: number;
  /** Connection tracking (default on); false = stateless, every packet UNTRACKED. */
  conntrack?: boolean;
  /** Tracked connections, all workers together (default 262144, netfilter's usual nf_conntrack_max). */
  conntrackMax?: number;
  /** Timeouts in seconds by netfilter name: tcp_established, tcp_syn_sent, ..., udp, udp_stream, icmp, generic. */
  conntrackTimeouts?: Record<string, number>;
  /** Pick up TCP connections mid-stream (nf_conntrack_tcp_loose; default false: a non-SYN without an entry is INVALID). */
  conntrackTcpLoose?: boolean;
}

/** Which conntrack entries a list or flush applies to (all given fields must match). */
export interface ConntrackFilter {
  family?: 4 | 6;
  /** Protocol number or name (tcp, udp, icmp, icmpv6, sctp, ...). */
  proto?: number | string;
  /** Either endpoint's address. */
  addr?: string;
  /** Either endpoint's port. */
  port?: number;
  /** The port pair (0 = ports 1st/2nd, 1 = 3rd/4th, ...). */
  zone?: number;
}

/** One connection, in its original direction (what `conntrack -L` shows). */
export interface ConntrackEntry {
  family: 4 | 6;
  proto: number;
  zone: number;
  src: string;
  dst: string;
  sport?: number;
  dport?: number;
  /** ICMP queries: the identifier and kind (1 echo, 2 timestamp, 3 info, 4 address mask). */
  id?: number;
  kind?: number;
  /** TCP only: NONE, SYN_SENT, SYN_RECV, ESTABLISHED, FIN_WAIT, CLOSE_WAIT, LAST_ACK, TIME_WAIT, CLOSE, SYN_SENT2. */
  state?: string;
  /** Seconds until it expires. */
  timeout: number;
  /** No reply seen yet (conntrack's [UNREPLIED]). */
  unreplied: boolean;
  /** conntrack's [ASSURED]: never evicted by early drop. */
  assured: boolean;
  packets: number;
}

/** The connection to delete: original or reply direction, ICMP by id. */
export interface ConntrackTuple {
  proto: number | string;
  src: string;
  dst: string;
  sport?: number;
  dport?: number;
  id?: number;
  zone?: number;
}

/**
 * counters().conntrack: summed over workers; names follow node_exporter's
 * nf_conntrack collectors (node_nf_conntrack_entries, _entries_limit,
 * node_nf_conntrack_stat_found, _invalid, _ignore, _insert, _insert_failed,
 * _drop, _early_drop). `expired` and `memoryBytes` are flatwall's own.
 */
export interface ConntrackCounters {
  enabled: boolean;
  entries: number;
  limit: number;
  found: number;
  invalid: number;
  ignore: number;
  insert: number;
  insert_failed: number;
  drop: number;
  early_drop: number;
  expired: number;
  memoryBytes: number;
}

export class Firewall {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  private readonly dp: any;
  private rules: CompiledRuleSet | undefined;
  private logTimer: NodeJS.Timeout | undefined;
  private reloading = false;

  constructor(private readonly opts: FirewallOptions) {
    this.dp = new (native().Dataplane)({
      ports: opts.ports.map((p) => ({ name: p.name, kind: p.kind, ringFrames: opts.ringFrames })),
      workers: opts.workers,
      cpuPin: opts.cpuPin ?? false,
      nonIpPolicy: opts.nonIpPolicy ?? 'accept',
      logRatePerSec: opts.logRatePerSec,
      conntrack: opts.conntrack ?? true,
      conntrackMax: opts.conntrackMax,
      conntrackTimeouts: opts.conntrackTimeouts,
      conntrackTcpLoose: opts.conntrackTcpLoose ?? false,
    });
  }

  get ruleset(): CompiledRuleSet | undefined {
    return this.rules;
  }

  /** Parse, compile and swap in the rule files. On any error the running rules stay. */
  async load(): Promise<{ rules: number; records: number; seconds: number; generation: number }> {
    const t0 = performance.now();
    const { compiled } = loadRuleFiles(this.opts.ruleFiles);
    const ids = this.opts.ports.map((p) => compiled.ifaces.classOf(p.name));
    const { generation } = await this.dp.setRules(compiled.buffer, ids, compiled.rules.length);
    this.rules = compiled;
    return { rules: compiled.stats.sourceRules, records: compiled.stats.records, seconds: (performance.now() - t0) / 1000, generation };
  }

  start(): void {
    this.dp.start();
    this.logTimer = setInterval(() => this.drainLogs(), 200);
  }

  /** SIGHUP: reload atomically; a file with an error keeps the old rules. */
  async reload(): Promise<void> {
    if (this.reloading) {
      log('warn', 'reload already in progress; ignored');
      return;
    }
    this.reloading = true;
    try {
      const r = await this.load();
      log('info', 'rules reloaded', { ...r, files: this.opts.ruleFiles });
    } catch (err) {
      log('error', 'reload failed; the running rules stay', { error: (err as Error).message, files: this.opts.ruleFiles });
    } finally {
      this.reloading = false;
    }
  }

  counters() {
    return this.dp.counters();
  }

  // ---- connection tracking (run by the workers at a batch boundary, off the JS thread) ----

  /** Tracked connections matching `filter`, at most `limit` (default 10000). */
  conntrackList(filter: ConntrackFilter = {}, limit = 10000): Promise<ConntrackEntry[]> {
    return this.dp.conntrackList({ filter, limit });
  }

  /** Connections tracked now (node_nf_conntrack_entries) and the limit. */
  conntrackCount(): { entries: number; limit: number } {
    const c = this.dp.counters().conntrack as ConntrackCounters;
    return { entries: c.entries, limit: c.limit };
  }

  /** Removes the matching connections (all without a filter); resolves to how many. */
  conntrackFlush(filter: ConntrackFilter = {}): Promise<number> {
    return this.dp.conntrackFlush(filter);
  }

  /** Removes one connection; resolves to whether it existed. */
  conntrackDelete(tuple: ConntrackTuple): Promise<boolean> {
    return this.dp.conntrackDelete(tuple);
  }

  private drainLogs(): void {
    const events = this.dp.pollLogs(1000);
    const rules = this.rules;
    for (const e of events) {
      const src = rules?.rules[e.ruleId];
      const target = src?.rule?.target;
      log('info', 'packet', {
        event: 'LOG',
        prefix: target && target.kind === 'LOG' ? target.prefix ?? '' : undefined,
        rule: src ? `${src.file}:${src.line}` : e.ruleId,
        chain: src?.chain,
        spec: src?.rule ? ruleSpec(src.rule, src.family) : undefined,
        in: e.iif, out: e.oif, src: e.src, dst: e.dst, proto: e.proto, sport: e.sport, dport: e.dport, len: e.len,
      });
    }
    if (events.dropped > 0) log('warn', 'LOG events lost (queue full or rate limit)', { dropped: events.dropped });
  }

  async stop(): Promise<void> {
    if (this.logTimer) clearInterval(this.logTimer);
    this.drainLogs();
    await this.dp.stop();
  }
}
