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
//   direct  no firewall: the sender's sa and the receiver's ra are the two
//           ends of one veth pair (the Firewall namespace exists, empty), with
//           the bridge layout's addresses: the limit of the veth path.
//
// A chain of N firewalls in series (the middlebox-chain benchmark) is the
// same lab with more Firewall namespaces: Sender -- FW1 -- ... -- FWN --
// Receiver, each hop with fa towards the sender and fb towards the receiver
// (so `flatwall run --port fa --port fb` works in every hop), links sa <->
// FW1.fa, FWi.fb <-> FW(i+1).fa, FWN.fb <-> ra. One hop is exactly the layout
// above.
//   bridge  one L2 segment through every hop; the addresses are as above.
//   routed  link k (0..N) is subnet 10.0.(k+1).0/24, fd00:(k+1)::/64: the
//           sender and receiver are .1 on the first and last link; a hop's
//           fa is .254 (::fe), its fb .254 on the last link and .253 (::fd)
//           before another hop (whose fa is .254 there); each hop routes the
//           subnets beyond its neighbours via them, the ends route by default.
//
// Namespace names carry the PID and a sequence number, so concurrent runs
// never collide. Every live topology is torn down when the process exits,
// whatever the reason (see installTeardown); keep() opts one out.
import { killAllTracked, runSync, type Background } from './proc';

export type TopoMode = 'bridge' | 'routed' | 'direct';

export interface Endpoints {
  senderIp: string;
  receiverIp: string;
  senderIp6: string;
  receiverIp6: string;
}

export const BRIDGE_ENDPOINTS: Endpoints = { senderIp: '10.0.0.1', receiverIp: '10.0.0.2', senderIp6: 'fd00::1', receiverIp6: 'fd00::2' };
/** The routed layout's ends for `hops` firewalls in series (1: ROUTED_ENDPOINTS). */
export function routedEndpoints(hops: number): Endpoints {
  return { senderIp: '10.0.1.1', receiverIp: `10.0.${hops + 1}.1`, senderIp6: 'fd00:1::1', receiverIp6: `fd00:${(hops + 1).toString(16)}::1` };
}
export const ROUTED_ENDPOINTS: Endpoints = routedEndpoints(1);

/** At most this many hops: link subnets are 10.0.1.0/24 ... 10.0.(N+1).0/24. */
export const MAX_HOPS = 64;

export interface TopologyOptions {
  /** Firewalls in series between Sender and Receiver (default 1). */
  hops?: number;
}

let seq = 0;
const liveTopologies = new Set<Topology>();

export class Topology {
  readonly sender: string;
  /** The first (with one hop, the only) Firewall namespace. */
  readonly firewall: string;
  /** Every Firewall namespace, from the sender's side to the receiver's. */
  readonly firewalls: string[];
  readonly receiver: string;
  readonly ep: Endpoints;
  /** Processes that must die before the namespaces go. */
  private readonly procs: Background[] = [];
  private destroyed = false;
  private kept = false;

  private constructor(
    readonly mode: TopoMode,
    tag: string,
    readonly hops: number,
  ) {
    const base = `${tag}-${process.pid}-${++seq}`;
    this.sender = `${base}-snd`;
    // Hop 1 keeps the one-firewall name, so one hop is the classic lab.
    this.firewalls = Array.from({ length: hops }, (_, i) => `${base}-fw${i ? i + 1 : ''}`);
    this.firewall = this.firewalls[0];
    this.receiver = `${base}-rcv`;
    this.ep = mode === 'routed' ? routedEndpoints(hops) : BRIDGE_ENDPOINTS;
  }

  get namespaces(): string[] {
    return [this.sender, ...this.firewalls, this.receiver];
  }

  /** Create the namespaces, links and addresses. On any error, nothing is left behind. */
  static create(mode: TopoMode, tag = 'flatwall', o: TopologyOptions = {}): Topology {
    const hops = o.hops ?? 1;
    if (!Number.isInteger(hops) || hops < 1 || hops > MAX_HOPS) throw new Error(`topology: hops must be an integer from 1 to ${MAX_HOPS}, got ${hops}`);
    const t = new Topology(mode, tag, hops);
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
    const { sender: S, firewalls: Fs, receiver: R } = this;
    const N = Fs.length;
    for (const ns of this.namespaces) runSync('ip', ['netns', 'add', ns], { timeoutMs: 10_000 });
    for (const ns of this.namespaces) this.ip(ns, 'link', 'set', 'lo', 'up');
    // No DAD: addresses are usable at once, and no stray NDP during tests.
    for (const ns of [S, R]) this.sysctl(ns, 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0');
    for (const F of Fs) {
      if (this.mode === 'bridge') {
        // The bump in the wire has no stack of its own on its ports.
        this.sysctl(F, 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1');
      } else {
        this.sysctl(F, 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0');
      }
    }
    if (this.mode === 'direct') {
      runSync('ip', ['link', 'add', 'sa', 'netns', S, 'type', 'veth', 'peer', 'name', 'ra', 'netns', R], { timeoutMs: 10_000 });
      this.ip(S, 'addr', 'add', '10.0.0.1/24', 'dev', 'sa');
      this.ip(R, 'addr', 'add', '10.0.0.2/24', 'dev', 'ra');
      this.ip(S, 'addr', 'add', 'fd00::1/64', 'dev', 'sa', 'nodad');
      this.ip(R, 'addr', 'add', 'fd00::2/64', 'dev', 'ra', 'nodad');
      this.ip(S, 'link', 'set', 'sa', 'up');
      this.ip(R, 'link', 'set', 'ra', 'up');
      return;
    }
    // Link k joins ends[k] (its side towards the sender) and ends[k + 1].
    const ends: Array<[string, string]> = [[S, 'sa'], ...Fs.map((F) => [F, 'fa'] as [string, string]), [R, 'ra']];
    for (let k = 0; k <= N; k++) {
      const [lns, ldev] = k === 0 ? [S, 'sa'] : [Fs[k - 1], 'fb'];
      const [rns, rdev] = ends[k + 1];
      runSync('ip', ['link', 'add', ldev, 'netns', lns, 'type', 'veth', 'peer', 'name', rdev, 'netns', rns], { timeoutMs: 10_000 });
    }
    if (this.mode === 'bridge') {
      this.ip(S, 'addr', 'add', '10.0.0.1/24', 'dev', 'sa');
      this.ip(R, 'addr', 'add', '10.0.0.2/24', 'dev', 'ra');
      this.ip(S, 'addr', 'add', 'fd00::1/64', 'dev', 'sa', 'nodad');
      this.ip(R, 'addr', 'add', 'fd00::2/64', 'dev', 'ra', 'nodad');
      for (const [ns, dev] of this.devices()) this.ip(ns, 'link', 'set', dev, 'up');
      return;
    }
    // Link k's subnet: 10.0.(k+1).0/24 and fd00:(k+1)::/64.
    const v4 = (k: number, host: number) => `10.0.${k + 1}.${host}`;
    const v6 = (k: number, host: number) => `fd00:${(k + 1).toString(16)}::${host.toString(16)}`;
    // Hop i (0-based) sits between links i (fa) and i + 1 (fb).
    const faHost = 254;
    const fbHost = (i: number) => (i === N - 1 ? 254 : 253);
    const addr = (ns: string, dev: string, k: number, host: number) => {
      this.ip(ns, 'addr', 'add', `${v4(k, host)}/24`, 'dev', dev);
      this.ip(ns, 'addr', 'add', `${v6(k, host)}/64`, 'dev', dev, 'nodad');
    };
    addr(S, 'sa', 0, 1);
    Fs.forEach((F, i) => {
      addr(F, 'fa', i, faHost);
      addr(F, 'fb', i + 1, fbHost(i));
    });
    addr(R, 'ra', N, 1);
    for (const [ns, dev] of this.devices()) this.ip(ns, 'link', 'set', dev, 'up');
    this.ip(S, 'route', 'add', 'default', 'via', v4(0, faHost));
    this.ip(S, '-6', 'route', 'add', 'default', 'via', v6(0, faHost));
    this.ip(R, 'route', 'add', 'default', 'via', v4(N, fbHost(N - 1)));
    this.ip(R, '-6', 'route', 'add', 'default', 'via', v6(N, fbHost(N - 1)));
    Fs.forEach((F, i) => {
      // Links i and i + 1 are connected; the others are reached through a neighbour.
      for (let k = 0; k <= N; k++) {
        if (k === i || k === i + 1) continue;
        const [gw4, gw6] = k < i ? [v4(i, fbHost(i - 1)), v6(i, fbHost(i - 1))] : [v4(i + 1, faHost), v6(i + 1, faHost)];
        this.ip(F, 'route', 'add', `${v4(k, 0)}/24`, 'via', gw4);
        this.ip(F, '-6', 'route', 'add', `${v6(k, 0)}/64`, 'via', gw6);
      }
      this.sysctl(F, 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1');
    });
  }

  /** Every veth end, [namespace, device]. */
  private devices(): Array<[string, string]> {
    if (this.mode === 'direct') return [[this.sender, 'sa'], [this.receiver, 'ra']];
    return [[this.sender, 'sa'], ...this.firewalls.flatMap((F) => [[F, 'fa'], [F, 'fb']] as Array<[string, string]>), [this.receiver, 'ra']];
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
    const fws = this.firewalls.map((F, i) => `  ${this.hops > 1 ? `firewall ${i + 1}:` : 'firewall: '} ${this.hops > 9 && i < 9 ? ' ' : ''}ip netns exec ${F} bash`);
    return [
      `  sender:    ip netns exec ${this.sender} bash      (${this.ep.senderIp}, ${this.ep.senderIp6})`,
      ...fws,
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
