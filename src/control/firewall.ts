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
