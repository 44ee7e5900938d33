// Traffic measurements between the Sender and Receiver namespaces. Every
// measurement has a hard timeout and returns what it got (or an error
// string) instead of throwing, so a very slow firewall produces a marked,
// partial result and never a hang.
//
// Tools: ping (iputils), iperf3, hping3, and nettool (our Node stand-in for
// netperf's TCP_RR / UDP_RR / TCP_CRR, which Debian does not package here).
import { join } from 'node:path';
import { Background, run } from './proc';
import type { Topology } from './topology';

const NETTOOL = join(__dirname, 'nettool.js');
export const ECHO_PORT = 7001;
let iperfPort = 5201;

export interface PingResult {
  sent: number;
  received: number;
  lossPct: number;
  minMs?: number;
  avgMs?: number;
  maxMs?: number;
  mdevMs?: number;
  error?: string;
}

export interface IperfResult {
  /** Throughput at the receiver, bits/s. */
  bps?: number;
  /** Sender side, bits/s. */
  senderBps?: number;
  seconds?: number;
  retransmits?: number;
  lostPct?: number;
  /** UDP: datagrams delivered per second. */
  pps?: number;
  /** UDP: datagrams the client sent (iperf3's count). */
  sentPackets?: number;
  /** iperf3's own CPU accounting of the client (host) and server (remote) processes, % of one core. */
  cpu?: { hostTotal?: number; hostUser?: number; hostSystem?: number; remoteTotal?: number; remoteUser?: number; remoteSystem?: number };
  error?: string;
  timedOut?: boolean;
}

export interface RrResult {
  perSecond?: number;
  transactions?: number;
  seconds?: number;
  meanUs?: number;
  p99Us?: number;
  timeouts?: number;
  failures?: number;
  error?: string;
  timedOut?: boolean;
}

export interface SynResult {
  sent: number;
  received: number;
  avgMs?: number;
  minMs?: number;
  maxMs?: number;
  error?: string;
}

const errText = (e: unknown) => (e as Error).message.split('\n')[0].slice(0, 300);

export function parsePing(out: string): PingResult {
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(out);
  const sent = m ? Number(m[1]) : 0;
  const received = m ? Number(m[2]) : 0;
  const r: PingResult = { sent, received, lossPct: sent ? +(100 * (1 - received / sent)).toFixed(2) : 100 };
  const rtt = /= ([\d.]+)\/([\d.]+)\/([\d.]+)\/([\d.]+) ms/.exec(out);
  if (rtt) Object.assign(r, { minMs: +rtt[1], avgMs: +rtt[2], maxMs: +rtt[3], mdevMs: +rtt[4] });
  return r;
}

/** ping from the sender: count echoes at intervalS, at most deadlineS seconds. */
export async function ping(topo: Topology, o: { count: number; intervalS: number; deadlineS?: number; dst?: string; size?: number }): Promise<PingResult> {
  const dst = o.dst ?? topo.ep.receiverIp;
  const deadline = o.deadlineS ?? Math.ceil(o.count * o.intervalS + 2);
  const args = ['-q', '-n', '-c', String(o.count), '-i', String(o.intervalS), '-W', '2', '-w', String(deadline)];
  if (o.size !== undefined) args.push('-s', String(o.size));
  try {
    const r = await run('ping', [...args, dst], { ns: topo.sender, timeoutMs: (deadline + 5) * 1000, allowFail: true });
    const p = parsePing(r.stdout);
    if (p.sent === 0) p.error = r.stderr.trim() || `ping exited with ${r.code}`;
    return p;
  } catch (e) {
    return { sent: 0, received: 0, lossPct: 100, error: errText(e) };
  }
}

/** One iperf3 run against a fresh one-off server in the receiver namespace. */
export async function iperf(topo: Topology, o: { seconds: number; udp?: boolean; len?: number; dst?: string; timeoutMs?: number; port?: number; parallel?: number }): Promise<IperfResult> {
  // A fresh port each time, so that a server left over from a timed-out run never answers.
  const port = o.port ?? iperfPort++;
  if (iperfPort > 5900) iperfPort = 5201;
  const server = topo.adopt(new Background('iperf3 server', 'iperf3', ['-s', '-1', '-p', String(port), '--forceflush'], {
    ns: topo.receiver, maxLifetimeMs: (o.seconds + 40) * 1000,
  }));
  try {
    await server.waitFor((l) => l.includes('Server listening'), 5000, 'iperf3 server');
    const args = ['-c', o.dst ?? topo.ep.receiverIp, '-p', String(port), '-t', String(o.seconds), '-J', '--connect-timeout', '5000'];
    if (o.udp) args.push('-u', '-b', '0', '-l', String(o.len ?? 1400));
    else if (o.len) args.push('-l', String(o.len));
    // -P N: N streams (distinct source ports, so N flows) from the one client thread (iperf3 < 3.16 is single-threaded).
    if (o.parallel && o.parallel > 1) args.push('-P', String(o.parallel));
    const r = await run('iperf3', args, { ns: topo.sender, timeoutMs: o.timeoutMs ?? (o.seconds + 20) * 1000, allowFail: true });
    if (r.timedOut) return { error: `iperf3 did not finish within ${(o.timeoutMs ?? (o.seconds + 20) * 1000) / 1000} s`, timedOut: true };
    let j: { error?: string; end?: Record<string, Record<string, number>> };
    try {
      j = JSON.parse(r.stdout);
    } catch {
      return { error: `iperf3: ${r.stderr.trim() || 'no JSON output'}`.slice(0, 300) };
    }
    if (j.error) return { error: `iperf3: ${j.error}` };
    const rcv = j.end?.sum_received;
    const snd = j.end?.sum_sent;
    if (!rcv) return { error: 'iperf3: no receiver summary' };
    const res: IperfResult = { bps: rcv.bits_per_second, senderBps: snd?.bits_per_second, seconds: rcv.seconds };
    const cpu = j.end?.cpu_utilization_percent;
    if (cpu) res.cpu = { hostTotal: cpu.host_total, hostUser: cpu.host_user, hostSystem: cpu.host_system, remoteTotal: cpu.remote_total, remoteUser: cpu.remote_user, remoteSystem: cpu.remote_system };
    if (o.udp) {
      res.lostPct = +(j.end!.sum?.lost_percent ?? rcv.lost_percent ?? 0).toFixed(2);
      res.pps = Math.round(rcv.bytes / (o.len ?? 1400) / rcv.seconds);
      res.sentPackets = snd?.packets;
    } else res.retransmits = snd?.retransmits;
    return res;
  } catch (e) {
    return { error: errText(e) };
  } finally {
    await server.stop('SIGKILL', 1000);
  }
}

/** The echo server nettool clients talk to, in the receiver namespace. */
export async function startEchoServer(topo: Topology, port = ECHO_PORT): Promise<Background> {
  const s = topo.adopt(new Background('echo server', process.execPath, [NETTOOL, 'server', String(port)], { ns: topo.receiver }));
  await s.waitFor((l) => l.includes('"listening"'), 10_000, 'echo server');
  return s;
}

/** netperf-like TCP_RR / UDP_RR / TCP_CRR with nettool (needs startEchoServer). */
export async function rr(topo: Topology, kind: 'tcp-rr' | 'udp-rr' | 'tcp-crr', seconds: number, dst?: string): Promise<RrResult> {
  try {
    const r = await run(process.execPath, [NETTOOL, kind, dst ?? topo.ep.receiverIp, String(ECHO_PORT), String(seconds)], {
      ns: topo.sender, timeoutMs: (seconds + 15) * 1000, allowFail: true,
    });
    if (r.timedOut) return { error: `${kind} did not finish`, timedOut: true };
    const j = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}');
    return j;
  } catch (e) {
    return { error: errText(e) };
  }
}

/** hping3 SYNs to a listening port; per-packet RTTs from its output. */
export async function hpingSyn(topo: Topology, o: { count: number; intervalMs: number; port?: number; dst?: string }): Promise<SynResult> {
  const args = ['-S', '-p', String(o.port ?? ECHO_PORT), '-c', String(o.count), '-i', `u${Math.round(o.intervalMs * 1000)}`, '-I', 'sa', o.dst ?? topo.ep.receiverIp];
  try {
    const r = await run('hping3', args, { ns: topo.sender, timeoutMs: (o.count * o.intervalMs) / 1 + 8000, allowFail: true });
    const rtts = [...r.stdout.matchAll(/rtt=([\d.]+) ms/g)].map((m) => Number(m[1]));
    const res: SynResult = { sent: o.count, received: rtts.length };
    if (rtts.length) {
      res.avgMs = +(rtts.reduce((a, b) => a + b, 0) / rtts.length).toFixed(3);
      res.minMs = Math.min(...rtts);
      res.maxMs = Math.max(...rtts);
    } else res.error = r.stderr.trim().split('\n').slice(-1)[0] || 'no replies';
    return res;
  } catch (e) {
    return { sent: o.count, received: 0, error: errText(e) };
  }
}

/** ICMP latency while an iperf3 TCP stream loads the firewall. */
export async function pingUnderLoad(topo: Topology, seconds: number): Promise<PingResult & { loadBps?: number }> {
  const load = iperf(topo, { seconds });
  await new Promise((r) => setTimeout(r, 300));
  const interval = 0.02;
  const count = Math.max(5, Math.floor((seconds - 0.6) / interval));
  const p = await ping(topo, { count, intervalS: interval, deadlineS: Math.ceil(seconds + 3) });
  const l = await load;
  return { ...p, loadBps: l.bps };
}

export interface QuickCheck {
  ping: PingResult;
  tcp: IperfResult;
  udp: IperfResult;
}

/** The lab's short traffic check: idle ping, TCP and UDP (1400 B) throughput. */
export async function quickCheck(topo: Topology, seconds: number, progress?: (s: string) => void): Promise<QuickCheck> {
  progress?.('ping');
  const p = await ping(topo, { count: 20, intervalS: 0.05 });
  progress?.(`iperf3 TCP ${seconds} s`);
  const tcp = await iperf(topo, { seconds });
  progress?.(`iperf3 UDP 1400 B ${seconds} s`);
  const udp = await iperf(topo, { seconds, udp: true, len: 1400 });
  return { ping: p, tcp, udp };
}
