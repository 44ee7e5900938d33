// The hot-standby lab (test/e2e/standby.test.ts, bench/standby.ts): sender
// and receiver namespaces around a firewall namespace in which an active
// `flatwall run` and its standby (`--standby-of`) share the same two ports,
// under rules that accept only a NEW SYN from the sender and ESTABLISHED /
// RELATED after it, and long constant-rate TCP flows through them.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Background, sleep } from './proc';
import { Topology, installTeardown } from './topology';
import { FLATWALL_CLI } from './engines';

export const TCPSTREAM = join(__dirname, 'tcpstream.js');
export const STREAM_PORT = 5301;

/** Only the handshake's SYN may open a connection: a firewall without the flow's entry drops the rest. */
export const STANDBY_RULES = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -s 10.0.0.1/32 -d 10.0.0.2/32 -p tcp -m tcp --dport ${STREAM_PORT} --tcp-flags FIN,SYN,RST,ACK SYN -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -p icmp -j ACCEPT
COMMIT
`;

export const parseLine = (l: string): Record<string, any> | undefined => {
  try {
    return JSON.parse(l);
  } catch {
    return undefined;
  }
};

export interface FlowProgress {
  t: number;
  conns: { id: number; bytes: number; lastAt: number }[];
}

export class StandbyLab {
  readonly dir: string;
  readonly rules: string;
  private nextPort = 7400 + (process.pid % 500);
  server: Background | undefined;
  /** The last standby started (for diagnostics). */
  last: Background | undefined;

  private constructor(readonly topo: Topology, readonly workers: number) {
    this.dir = mkdtempSync(join(tmpdir(), 'flatwall-standby-'));
    this.rules = join(this.dir, 'v4.rules');
    writeFileSync(this.rules, STANDBY_RULES);
  }

  static create(tag: string, workers: number): StandbyLab {
    installTeardown(false);
    return new StandbyLab(Topology.create('bridge', tag), workers);
  }

  /** A fresh loopback address:port for one replication link. */
  replAddr(): string {
    return `127.0.0.1:${this.nextPort++}`;
  }

  private fw(label: string, args: string[]): Background {
    const api = join(this.dir, `${label}.sock`);
    return this.topo.adopt(new Background(label, process.execPath,
      [FLATWALL_CLI, 'run', '--port', 'fa', '--port', 'fb', '-w', String(this.workers), '--api-socket', api, ...args],
      { ns: this.topo.firewall, maxLifetimeMs: 600_000 }));
  }

  /** An active `flatwall run` with the rule file; serving a standby at `listen` if given. */
  async active(label: string, listen?: string, extra: string[] = []): Promise<Background> {
    const b = this.fw(label, ['-r', this.rules, ...(listen ? ['--replication-listen', listen] : []), ...extra]);
    await b.waitFor((l) => l.includes('"msg":"ready"'), 30_000, 'ready line');
    if (listen) await b.waitFor((l) => l.includes('"replication listening"'), 10_000, 'replication listener');
    return b;
  }

  /** A standby of the active at `of` (serving the next standby at `listen` once it has taken over); resolves once its replica has its rules. */
  async standby(label: string, of: string, listen?: string, extra: string[] = []): Promise<Background> {
    const b = this.fw(label, ['--standby-of', of, ...(listen ? ['--replication-listen', listen] : []), ...extra]);
    this.last = b;
    await b.waitFor((l) => l.includes('"replica synced"'), 30_000, 'replica synced');
    await b.waitFor((l) => l.includes('"replicated rules active"'), 30_000, 'replicated rules');
    return b;
  }

  /**
   * One of a pair of processes naming each other (deploy/helm's standby
   * containers): the rule file, serving at `listen`, standby of `peer`;
   * `first`: --active-unless-peer. Resolves once it is the active (ready
   * and listening) or a standby with its replica.
   */
  async pairMember(label: string, listen: string, peer: string, first: boolean): Promise<{ b: Background; role: 'active' | 'standby' }> {
    const b = this.fw(label, ['-r', this.rules, '--watch-rules', '--replication-listen', listen, '--standby-of', peer, ...(first ? ['--active-unless-peer'] : [])]);
    const l = await b.waitFor((x) => x.includes('"msg":"ready"') || x.includes('"msg":"standby"'), 30_000, 'ready or standby line');
    if (l.includes('"msg":"ready"')) {
      await b.waitFor((x) => x.includes('"replication listening"'), 10_000, 'replication listener');
      return { b, role: 'active' };
    }
    await b.waitFor((x) => x.includes('"replicated rules active"'), 30_000, 'replicated rules');
    return { b, role: 'standby' };
  }

  async startServer(): Promise<void> {
    this.server = this.topo.adopt(new Background('tcpstream server', process.execPath, [TCPSTREAM, 'server', String(STREAM_PORT)],
      { ns: this.topo.receiver, stdin: true, maxLifetimeMs: 600_000 }));
    await this.server.waitFor((l) => l.includes('"listening"'), 10_000, 'stream server');
  }

  /** `conns` flows of `chunk` bytes every `intervalMs`, for `seconds`. */
  async startClient(conns: number, chunk: number, intervalMs: number, seconds: number): Promise<Background> {
    const c = this.topo.adopt(new Background('tcpstream client', process.execPath,
      [TCPSTREAM, 'client', '10.0.0.2', String(STREAM_PORT), String(conns), String(chunk), String(intervalMs), String(seconds)],
      { ns: this.topo.sender, maxLifetimeMs: (seconds + 60) * 1000 }));
    await c.waitFor((l) => l.includes('"connected"'), 10_000, 'client connected');
    return c;
  }

  /** The server's latest progress line (bytes per connection). */
  progress(): FlowProgress {
    const lines = this.server!.lines;
    for (let i = lines.length - 1; i >= 0; i--) {
      const j = parseLine(lines[i]);
      if (j && Array.isArray(j.conns)) return j as FlowProgress;
    }
    return { t: 0, conns: [] };
  }

  /** Waits for a progress line newer than `after` (epoch ms). */
  async progressAfter(after: number, timeoutMs = 5000): Promise<FlowProgress> {
    const from = this.server!.lines.length;
    const l = await this.server!.waitFor((x) => (parseLine(x)?.t ?? 0) > after, timeoutMs, 'progress', Math.max(0, from - 5));
    return parseLine(l) as FlowProgress;
  }

  /** Pauses per connection (the server's record of gaps between arrivals over 5 ms). */
  async gaps(): Promise<{ id: number; bytes: number; gaps: { at: number; ms: number }[] }[]> {
    const l = await this.server!.ask('gaps', (x) => x.startsWith('{"gaps"'), 5000, 'gaps');
    return parseLine(l)!.gaps;
  }

  /** Bytes of each connection the server saw `ms` from now minus now: all > 0 means every flow moved. */
  async growth(ms: number): Promise<number[]> {
    const a = await this.progressAfter(performance.timeOrigin + performance.now());
    await sleep(ms);
    const b = await this.progressAfter(performance.timeOrigin + performance.now());
    return a.conns.map((c) => (b.conns.find((x) => x.id === c.id)?.bytes ?? 0) - c.bytes);
  }

  async close(): Promise<void> {
    await this.topo.destroy();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The JSON of a firewall's log line with this msg (the first, waiting up to timeoutMs). */
export async function logLine(b: Background, msg: string, timeoutMs: number, from = 0): Promise<Record<string, any>> {
  const l = await b.waitFor((x) => parseLine(x)?.msg === msg, timeoutMs, `"${msg}" line`, from);
  return parseLine(l)!;
}
