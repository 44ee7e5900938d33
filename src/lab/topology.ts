// The three-namespace lab: Sender -- Firewall -- Receiver, joined by two veth
// pairs (sa <-> fa, fb <-> ra). Two layouts:
//
//   bridge  the Firewall namespace has no addresses (IPv6 off); a userspace
//           firewall bridges fa <-> fb as a bump in the wire.
//           S: sa 10.0.0.1/24 fd00::1/64     R: ra 10.0.0.2/24 fd00::2/64
//   routed  the kernel forwards in the Firewall namespace (ip_forward=1).
//           S: sa 10.0.1.1/24 via 10.0.1.254, fd00:1::1/64 via fd00:1::fe
//           F: fa 10.0.1.254/24 fd00:1::fe/64, fb 10.0.2.254/24 fd00:2::fe/64
//           R: ra 10.0.2.1/24 via 10.0.2.254, fd00:2::1/64 via fd00:2::fe
//
// Namespace names carry the PID and a sequence number, so concurrent runs
// never collide. Every live topology is torn down when the process exits,
// whatever the reason (see installTeardown); keep() opts one out.
import { killAllTracked, runSync, type Background } from './proc';

export type TopoMode = 'bridge' | 'routed';

export interface Endpoints {
  senderIp: string;
  receiverIp: string;
  senderIp6: string;
  receiverIp6: string;
}

export const BRIDGE_ENDPOINTS: Endpoints = { senderIp: '10.0.0.1', receiverIp: '10.0.0.2', senderIp6: 'fd00::1', receiverIp6: 'fd00::2' };
export const ROUTED_ENDPOINTS: Endpoints = { senderIp: '10.0.1.1', receiverIp: '10.0.2.1', senderIp6: 'fd00:1::1', receiverIp6: 'fd00:2::1' };

let seq = 0;
const liveTopologies = new Set<Topology>();

export class Topology {
  readonly sender: string;
  readonly firewall: string;
  readonly receiver: string;
  readonly ep: Endpoints;
  /** Processes that must die before the namespaces go. */
  private readonly procs: Background[] = [];
  private destroyed = false;
  private kept = false;

  private constructor(
    readonly mode: TopoMode,
    tag: string,
  ) {
    const base = `${tag}-${process.pid}-${++seq}`;
    this.sender = `${base}-snd`;
    this.firewall = `${base}-fw`;
    this.receiver = `${base}-rcv`;
    this.ep = mode === 'bridge' ? BRIDGE_ENDPOINTS : ROUTED_ENDPOINTS;
  }

  get namespaces(): string[] {
    return [this.sender, this.firewall, this.receiver];
  }

  /** Create the namespaces, links and addresses. On any error, nothing is left behind. */
  static create(mode: TopoMode, tag = 'flatwall'): Topology {
    const t = new Topology(mode, tag);
    liveTopologies.add(t);
    try {
      t.build();
    } catch (err) {
      t.destroySync();
      throw err;
    }
    return t;
  }

  private ip(ns: string, ...args: string[]): void {
    runSync('ip', ['-n', ns, ...args], { timeoutMs: 10_000 });
  }

  private sysctl(ns: string, ...kv: string[]): void {
    runSync('sysctl', ['-q', '-w', ...kv], { ns, timeoutMs: 10_000 });
  }

  private build(): void {
    const { sender: S, firewall: F, receiver: R } = this;
    for (const ns of this.namespaces) runSync('ip', ['netns', 'add', ns], { timeoutMs: 10_000 });
    for (const ns of this.namespaces) this.ip(ns, 'link', 'set', 'lo', 'up');
    // No DAD: addresses are usable at once, and no stray NDP during tests.
    for (const ns of [S, R]) this.sysctl(ns, 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0');
    if (this.mode === 'bridge') {
      // The bump in the wire has no stack of its own on its ports.
      this.sysctl(F, 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1');
    } else {
      this.sysctl(F, 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0');
    }
    runSync('ip', ['link', 'add', 'sa', 'netns', S, 'type', 'veth', 'peer', 'name', 'fa', 'netns', F], { timeoutMs: 10_000 });
    runSync('ip', ['link', 'add', 'fb', 'netns', F, 'type', 'veth', 'peer', 'name', 'ra', 'netns', R], { timeoutMs: 10_000 });
    if (this.mode === 'bridge') {
      this.ip(S, 'addr', 'add', '10.0.0.1/24', 'dev', 'sa');
      this.ip(R, 'addr', 'add', '10.0.0.2/24', 'dev', 'ra');
      this.ip(S, 'addr', 'add', 'fd00::1/64', 'dev', 'sa', 'nodad');
      this.ip(R, 'addr', 'add', 'fd00::2/64', 'dev', 'ra', 'nodad');
      for (const [ns, dev] of [[S, 'sa'], [F, 'fa'], [F, 'fb'], [R, 'ra']]) this.ip(ns, 'link', 'set', dev, 'up');
    } else {
      this.ip(S, 'addr', 'add', '10.0.1.1/24', 'dev', 'sa');
      this.ip(S, 'addr', 'add', 'fd00:1::1/64', 'dev', 'sa', 'nodad');
      this.ip(F, 'addr', 'add', '10.0.1.254/24', 'dev', 'fa');
      this.ip(F, 'addr', 'add', 'fd00:1::fe/64', 'dev', 'fa', 'nodad');
      this.ip(F, 'addr', 'add', '10.0.2.254/24', 'dev', 'fb');
      this.ip(F, 'addr', 'add', 'fd00:2::fe/64', 'dev', 'fb', 'nodad');
      this.ip(R, 'addr', 'add', '10.0.2.1/24', 'dev', 'ra');
      this.ip(R, 'addr', 'add', 'fd00:2::1/64', 'dev', 'ra', 'nodad');
      for (const [ns, dev] of [[S, 'sa'], [F, 'fa'], [F, 'fb'], [R, 'ra']]) this.ip(ns, 'link', 'set', dev, 'up');
      this.ip(S, 'route', 'add', 'default', 'via', '10.0.1.254');
      this.ip(S, '-6', 'route', 'add', 'default', 'via', 'fd00:1::fe');
      this.ip(R, 'route', 'add', 'default', 'via', '10.0.2.254');
      this.ip(R, '-6', 'route', 'add', 'default', 'via', 'fd00:2::fe');
      this.sysctl(F, 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1');
    }
  }

  /** A process that lives in one of the namespaces; it is stopped before teardown. */
  adopt<T extends Background>(p: T): T {
    this.procs.push(p);
    return p;
  }

  /** Leave everything up when the process exits (flatwall lab --keep). */
  keep(): void {
    this.kept = true;
    liveTopologies.delete(this);
  }

  /** How to enter and remove a kept topology. */
  instructions(extraPids: number[] = []): string {
    const del = this.namespaces.map((n) => `ip netns del ${n}`).join('; ');
    const kill = extraPids.length ? `kill ${extraPids.join(' ')}; ` : '';
    return [
      `  sender:    ip netns exec ${this.sender} bash      (${this.ep.senderIp}, ${this.ep.senderIp6})`,
      `  firewall:  ip netns exec ${this.firewall} bash`,
      `  receiver:  ip netns exec ${this.receiver} bash      (${this.ep.receiverIp}, ${this.ep.receiverIp6})`,
      `  e.g.       ip netns exec ${this.sender} ping ${this.ep.receiverIp}`,
      `  remove:    ${kill}${del}`,
    ].join('\n');
  }

  /** Stop adopted processes (SIGTERM, then SIGKILL) and delete the namespaces. */
  async destroy(): Promise<void> {
    if (this.destroyed || this.kept) return;
    await Promise.all(this.procs.map((p) => p.stop('SIGTERM', 3000).catch(() => undefined)));
    this.destroySync();
  }

  /** Synchronous last resort (exit handlers): SIGKILL adopted processes, delete namespaces. */
  destroySync(): void {
    if (this.destroyed || this.kept) return;
    this.destroyed = true;
    liveTopologies.delete(this);
    for (const p of this.procs) {
      try {
        if (p.running) p.child.kill('SIGKILL');
      } catch {
        /* gone */
      }
    }
    for (const ns of this.namespaces) runSync('ip', ['netns', 'del', ns], { allowFail: true, timeoutMs: 10_000 });
  }

  /** The MAC address of an interface in a namespace. */
  mac(ns: string, dev: string): string {
    const out = runSync('ip', ['-n', ns, '-j', 'link', 'show', 'dev', dev], { timeoutMs: 5000 }).stdout;
    return (JSON.parse(out) as Array<{ address: string }>)[0].address;
  }
}

let installed = false;

/**
 * Tear down every live topology when the process ends: on normal exit
 * (synchronously), and on SIGINT/SIGTERM/SIGHUP (gracefully, then exit with
 * 128 + signal). With handleSignals false, only the exit hook is installed
 * (test runners own their signals).
 */
export function installTeardown(handleSignals = true, onSignal?: (sig: NodeJS.Signals) => void): void {
  if (installed) return;
  installed = true;
  process.on('exit', () => {
    for (const t of [...liveTopologies]) t.destroySync();
    killAllTracked();
  });
  if (!handleSignals) return;
  let stopping = false;
  const codes: Record<string, number> = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as NodeJS.Signals[]) {
    process.on(sig, () => {
      if (stopping) return;
      stopping = true;
      onSignal?.(sig);
      const hard = setTimeout(() => process.exit(codes[sig]), 8000);
      void Promise.all([...liveTopologies].map((t) => t.destroy().catch(() => t.destroySync()))).finally(() => {
        clearTimeout(hard);
        process.exit(codes[sig]);
      });
    });
  }
}

/** Topologies still up (for tests that check nothing leaks). */
export function liveTopologyCount(): number {
  return liveTopologies.size;
}
