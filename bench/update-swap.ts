// bench/update.ts --phases swap: throughput and loss over time while flatwall
// replaces its whole rule set under load.
//
// flatwall runs on the bridge lab with N rules (seed 1). Two iperf3 runs go
// through it, one after the other so they do not compete for the bridge:
// TCP (as fast as it goes) and UDP at a fixed rate below the bridge's
// capacity. A few seconds into each, PUT /rules replaces the set by another
// N-rule set (the other seed, same allow rules first, so the stream's flow
// stays allowed).
//
// The receiver's iperf3 server reports every 0.1 s (text, --forceflush): its
// per-interval received rate and, for UDP, lost/total datagrams are the
// truth. Each report line is timestamped on arrival with this process's
// clock, the clock the PUT is timed with; the stream's zero on that clock is
// the smallest (arrival - interval end) over its lines, i.e. the least
// delayed report. "Active" is when the dataplane published the new
// classifier: the PUT's answer minus the server's counter carry-over, which
// runs after the publish (src/control/firewall.ts).
//
// Each run is bounded (iperf3 time + margin) and both servers and the lab are
// torn down on failure by the caller's Topology.
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { Background, run, runSync } from '../src/lab/proc';
import { startEngine, type RunningEngine } from '../src/lab/engines';
import { Topology } from '../src/lab/topology';
import { apiCall } from '../src/cli/ctl';
import { svgPlot } from './plot';

export const SWAP_PORT = 5201;
/** Allow rules for the iperf3 flows, placed before the generated rules. */
export const SWAP_ALLOW = [
  `-A FORWARD -p tcp -m tcp --dport ${SWAP_PORT} -j ACCEPT`, `-A FORWARD -p tcp -m tcp --sport ${SWAP_PORT} -j ACCEPT`,
  `-A FORWARD -p udp -m udp --dport ${SWAP_PORT} -j ACCEPT`, `-A FORWARD -p udp -m udp --sport ${SWAP_PORT} -j ACCEPT`,
].join('\n') + '\n';

export const UDP_RATE_MBPS = 200;
const UDP_LEN = 1400;
const INTERVAL_S = 0.1;
const PRE_S = 3;
const POST_S = 5;

export interface SwapInterval {
  /** Interval start and end, seconds since the stream's start. */
  start: number;
  end: number;
  /** Received by the iperf3 server, Mb/s. */
  mbps: number;
  /** UDP only: datagrams lost / expected in the interval (receiver side). */
  lost?: number;
  total?: number;
}

export interface SwapRun {
  proto: 'tcp' | 'udp';
  /** Which flatwall settings (SwapVariant.name). */
  variant: string;
  rules: number;
  streamSeconds: number;
  /** On the stream's time axis, seconds. */
  putStart: number;
  active: number;
  answer: number;
  /**
   * The PUT's stages on the same axis, from the server's timings counted back
   * from the answer: the body upload ends when the server starts (it reads
   * the whole body first), then parse + compile, then setRules (classifier
   * build on a pool thread while the JS thread computes counter keys), whose
   * end is `active`, then the counter carry-over until `answer`.
   */
  stages?: { serverStart: number; setRulesStart: number };
  putSeconds: number;
  server: { seconds: number; compileSeconds?: number; setRulesSeconds?: number; countersSeconds?: number; buildSeconds?: number };
  intervals: SwapInterval[];
  /** Client's end summary: TCP retransmits, UDP sent datagrams. */
  senderRetransmits?: number;
  senderPackets?: number;
  /** UDP: where the datagrams went missing (lossWhere()). */
  lossWhere?: {
    sent: number; received: number; flatwallRx: number; ringFull: number; notForwarded: number; flatwallTx: number;
    beforeFlatwall: number; afterFlatwall: number;
    /** Of afterFlatwall: dropped by the receiving socket, buffer full (the iperf3 server did not read in time). */
    receiverRcvbufErrors?: number;
  };
  error?: string;
}

const UNITS: Record<string, number> = { '': 1e-6, K: 1e-3, M: 1, G: 1e3 };

/** One iperf3 server interval line, e.g. "[  5]   0.10-0.20  sec  2.38 MBytes   200 Mbits/sec  0.01 ms  0/1786 (0%)". */
export function parseServerLine(l: string): SwapInterval | undefined {
  const m = /^\[\s*\d+\]\s+([\d.]+)-([\d.]+)\s+sec\s+[\d.]+\s+\w?Bytes\s+([\d.]+)\s+([KMG]?)bits\/sec(?:\s+[\d.]+\s+ms\s+(-?\d+)\/(\d+))?/.exec(l);
  if (!m || /sender|receiver/.test(l)) return undefined;
  const iv: SwapInterval = { start: +m[1], end: +m[2], mbps: +m[3] * UNITS[m[4]] };
  if (m[5] !== undefined) Object.assign(iv, { lost: Math.max(0, +m[5]), total: +m[6] });
  return iv;
}

/** Lines of a process's stdout, each with its arrival time (performance.now()). */
function timestampLines(p: Background): { t: number; line: string }[] {
  const got: { t: number; line: string }[] = [];
  let partial = '';
  p.child.stdout?.on('data', (s: string) => {
    const t = performance.now();
    const parts = (partial + s).split('\n');
    partial = parts.pop()!;
    for (const line of parts) got.push({ t, line });
  });
  return got;
}

/** PUT /rules of iptables-save text, timed from the request to the answer (active). */
export async function put(sock: string, body: string): Promise<{ start: number; end: number; j: Record<string, any> }> {
  const start = performance.now();
  const a = await apiCall({ socket: sock }, 'PUT', '/rules', body, 'text/plain');
  const end = performance.now();
  if (a.status !== 200) throw new Error(`PUT /rules: ${a.status} ${a.body.slice(0, 200)}`);
  return { start, end, j: a.json! };
}

interface PortStats { name: string; rxPackets: number; txPackets: number; drops: number; kernelDrops: number }

async function portStats(sock: string): Promise<PortStats[]> {
  const a = await apiCall({ socket: sock }, 'GET', '/stats');
  if (a.status !== 200) throw new Error(`GET /stats: ${a.status}`);
  return a.json!.ports as PortStats[];
}

/**
 * Where a UDP stream's datagrams went missing, from flatwall's port counters
 * over the whole stream (a few control packets -- ARP, iperf3's TCP control
 * connection -- are in them too): before flatwall's RX ring, in it (ring
 * full: the kernel's tp_drops), inside flatwall (not forwarded), or after
 * flatwall sent them (the receiver host).
 */
function lossWhere(before: PortStats[], after: PortStats[], sent: number, received: number) {
  const d = after.map((p, i) => ({
    rx: p.rxPackets - before[i].rxPackets, tx: p.txPackets - before[i].txPackets,
    drops: p.drops - before[i].drops, kernelDrops: p.kernelDrops - before[i].kernelDrops,
  }));
  const inIdx = d[0].rx >= d[1].rx ? 0 : 1;
  const ingress = d[inIdx];
  const egress = d[1 - inIdx];
  return {
    sent, received, flatwallRx: ingress.rx, ringFull: ingress.kernelDrops, notForwarded: ingress.drops, flatwallTx: egress.tx,
    beforeFlatwall: sent - ingress.rx - ingress.kernelDrops, afterFlatwall: egress.tx - received,
  };
}

/** The receiver's UDP receive-buffer drops so far (/proc/net/snmp, Udp: RcvbufErrors; per network namespace). */
function rcvbufErrors(ns: string): number {
  const lines = runSync('cat', ['/proc/net/snmp'], { ns }).stdout.split('\n').filter((l) => l.startsWith('Udp:'));
  const [names, values] = lines.map((l) => l.trim().split(/\s+/));
  const i = names?.indexOf('RcvbufErrors') ?? -1;
  return i > 0 ? Number(values[i]) : NaN;
}

async function swapRun(topo: Topology, sock: string, proto: 'tcp' | 'udp', rules: number, file: string, seconds: number, progress: (m: string) => void): Promise<Omit<SwapRun, 'variant'>> {
  const server = topo.adopt(new Background(`iperf3 server (${proto})`, 'iperf3', ['-s', '-1', '-p', String(SWAP_PORT), '-i', String(INTERVAL_S), '--forceflush'], {
    ns: topo.receiver, maxLifetimeMs: (seconds + 60) * 1000,
  }));
  const lines = timestampLines(server);
  // Read before the stream starts, so the bench's own file read is not in the measurement.
  const body = readFileSync(file, 'utf8');
  try {
    await server.waitFor((l) => l.includes('Server listening'), 5000, 'iperf3 server');
    const args = ['-c', topo.ep.receiverIp, '-p', String(SWAP_PORT), '-t', String(seconds), '-i', String(INTERVAL_S), '-J', '--connect-timeout', '5000'];
    if (proto === 'udp') args.push('-u', '-b', `${UDP_RATE_MBPS}M`, '-l', String(UDP_LEN));
    progress(`swap: iperf3 ${proto.toUpperCase()} ${seconds} s, PUT /rules (${rules} rules) after ${PRE_S} s`);
    const stats0 = proto === 'udp' ? await portStats(sock) : undefined;
    const rcvbuf0 = rcvbufErrors(topo.receiver);
    const client = run('iperf3', args, { ns: topo.sender, timeoutMs: (seconds + 30) * 1000, allowFail: true });
    // Wait for the first report so PRE_S counts from the stream's start, not the spawn.
    await server.waitFor((l) => parseServerLine(l) !== undefined, 10_000, 'first iperf3 interval');
    await new Promise((r) => setTimeout(r, PRE_S * 1000));
    const p = await put(sock, body);
    progress(`  PUT answered after ${((p.end - p.start) / 1000).toFixed(2)} s`);
    const c = await client;
    await Promise.race([server.exited, new Promise((r) => setTimeout(r, 3000))]);
    const stats1 = stats0 ? await portStats(sock) : undefined;
    const receiverRcvbufErrors = rcvbufErrors(topo.receiver) - rcvbuf0;
    if (c.timedOut) throw new Error('iperf3 client did not finish in time');
    const intervals: { t: number; iv: SwapInterval }[] = [];
    for (const { t, line } of lines) {
      const iv = parseServerLine(line);
      // Interval reports only: never an end-of-test summary, however iperf3 words it.
      if (iv && iv.end - iv.start <= 2 * INTERVAL_S) intervals.push({ t, iv });
    }
    if (intervals.length === 0) throw new Error(`iperf3 server reported no intervals: ${c.stdout.slice(0, 200)} ${server.stderr.slice(0, 200)}`);
    const zero = Math.min(...intervals.map(({ t, iv }) => t - iv.end * 1000));
    const rel = (t: number) => +((t - zero) / 1000).toFixed(3);
    const timings = p.j.timings ?? {};
    let client_: Record<string, any> = {};
    try {
      client_ = JSON.parse(c.stdout);
    } catch { /* the server's figures are the result; the client's are extra */ }
    return {
      proto, rules, streamSeconds: seconds,
      putStart: rel(p.start), active: rel(p.end - (timings.countersSeconds ?? 0) * 1000), answer: rel(p.end), putSeconds: (p.end - p.start) / 1000,
      stages: timings.compileSeconds === undefined ? undefined : {
        serverStart: rel(p.end - p.j.seconds * 1000), setRulesStart: rel(p.end - p.j.seconds * 1000 + timings.compileSeconds * 1000),
      },
      server: { seconds: p.j.seconds, compileSeconds: timings.compileSeconds, setRulesSeconds: timings.setRulesSeconds, countersSeconds: timings.countersSeconds, buildSeconds: p.j.buildSeconds },
      intervals: intervals.map(({ iv }) => iv),
      senderRetransmits: client_.end?.sum_sent?.retransmits,
      senderPackets: client_.end?.sum?.packets,
      lossWhere: stats0 && stats1 && client_.end?.sum?.packets !== undefined
        ? { ...lossWhere(stats0, stats1, client_.end.sum.packets, client_.end.sum.packets - intervals.reduce((a, { iv }) => a + (iv.lost ?? 0), 0)), receiverRcvbufErrors }
        : undefined,
    };
  } finally {
    await server.stop('SIGKILL', 1000);
  }
}

/** flatwall settings compared side by side in one swap phase. */
export interface SwapVariant {
  name: string;
  args: string[];
}
export const SWAP_VARIANTS: SwapVariant[] = [
  { name: 'priority', args: [] }, // flatwall run's defaults: workers at nice -10, builds at +10
  { name: 'equal', args: ['--worker-nice', '0', '--build-nice', '0'] },
];

/**
 * The swap phase, for each variant: flatwall with `files[0]` loaded, then a
 * TCP run replacing it by `files[1]` and a UDP run replacing it back by
 * `files[0]`.
 */
export async function swapPhase(dir: string, rules: number, files: [string, string], timeoutMs: number, progress: (m: string) => void,
  variants: SwapVariant[] = SWAP_VARIANTS): Promise<SwapRun[]> {
  const runs: SwapRun[] = [];
  for (const v of variants) {
    const topo = Topology.create('bridge', 'fwbswp');
    const sock = join(dir, 'swap-api.sock');
    let fw: RunningEngine | undefined;
    try {
      progress(`swap [${v.name}]: flatwall run with ${rules} rules ${v.args.join(' ')}`);
      fw = await startEngine('flatwall', topo, files[0], { timeoutMs, workDir: dir, extraArgs: ['--api-socket', sock, ...v.args] });
      // The stream must outlast the replace: estimate it from a replace by the same set.
      progress('swap: timing one replace without load, to size the streams');
      const warm = await put(sock, readFileSync(files[0], 'utf8'));
      const est = (warm.end - warm.start) / 1000;
      const seconds = Math.ceil(PRE_S + est * 1.5 + POST_S);
      progress(`  ${est.toFixed(2)} s; streams of ${seconds} s`);
      for (const [proto, file] of [['tcp', files[1]], ['udp', files[0]]] as const) {
        try {
          runs.push({ ...(await swapRun(topo, sock, proto, rules, file, seconds, progress)), variant: v.name });
        } catch (err) {
          progress(`  ${proto}: ${(err as Error).message}`);
          runs.push({ proto, variant: v.name, rules, streamSeconds: seconds, putStart: NaN, active: NaN, answer: NaN, putSeconds: NaN, server: { seconds: NaN }, intervals: [], error: (err as Error).message.slice(0, 300) });
        }
      }
    } finally {
      await fw?.stop().catch(() => undefined);
      await topo.destroy();
    }
  }
  return runs;
}

/** The plot file of a run. */
export function swapPlotName(r: SwapRun): string {
  return `update-swap-${r.proto}${r.variant === SWAP_VARIANTS[0].name ? '' : `-${r.variant}`}.svg`;
}

interface Window {
  n: number;
  minMbps?: number;
  medianMbps?: number;
  lost?: number;
  total?: number;
}

function window(ivs: SwapInterval[]): Window {
  const m = ivs.map((i) => i.mbps).sort((a, b) => a - b);
  const w: Window = { n: ivs.length };
  if (m.length) Object.assign(w, { minMbps: m[0], medianMbps: m.length % 2 ? m[(m.length - 1) / 2] : (m[m.length / 2 - 1] + m[m.length / 2]) / 2 });
  if (ivs.some((i) => i.total !== undefined)) Object.assign(w, { lost: ivs.reduce((a, i) => a + (i.lost ?? 0), 0), total: ivs.reduce((a, i) => a + (i.total ?? 0), 0) });
  return w;
}

/** Intervals before the PUT, overlapping PUT..active, after activation (the last, partial interval dropped). */
export function windows(r: SwapRun): { before: Window; during: Window; after: Window; all: Window } {
  const full = r.intervals.filter((i) => i.end - i.start > INTERVAL_S / 2);
  return {
    before: window(full.filter((i) => i.end <= r.putStart)),
    during: window(full.filter((i) => i.end > r.putStart && i.start < r.active)),
    after: window(full.filter((i) => i.start >= r.active)),
    // Throughput over full intervals; loss over every report, the last partial one too.
    all: { ...window(full), ...(() => { const a = window(r.intervals); return a.total === undefined ? {} : { lost: a.lost, total: a.total }; })() },
  };
}

export function swapMarkdown(runs: SwapRun[], meta: Record<string, unknown>): string {
  const f = (x?: number) => (x === undefined ? '-' : x.toFixed(0));
  const loss = (w: Window) => (w.total === undefined ? '-' : `${w.lost} / ${w.total}${w.total ? ` (${((100 * w.lost!) / w.total).toFixed(2)} %)` : ''}`);
  const out = [
    '# Throughput and loss across a rule-set replace (bench/update.ts --phases swap)',
    '',
    `${meta.date}, ${meta.cpus} CPUs, load average ${meta.loadavg}. flatwall on the bridge lab; iperf3 through it, receiver-side reports every ${INTERVAL_S} s; ` +
      `PUT /rules replaces the whole \`acl\` set by another of the same size ${PRE_S} s into each stream. ` +
      `"Active" = dataplane publish (PUT answer minus the counter carry-over that follows it). TCP and UDP (${UDP_RATE_MBPS} Mb/s offered, ${UDP_LEN} B) are separate runs. ` +
      `Variants, run one after the other: ${SWAP_VARIANTS.map((v) => `"${v.name}" (${v.args.length ? v.args.join(' ') : 'flatwall run\'s defaults: packet workers at nice -10, classifier builds at +10'})`).join(', ')}.`,
    '',
    '| run | rules | PUT start | active | answer | window | intervals | min Mb/s | median Mb/s | UDP lost / sent |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of runs) {
    if (r.error) {
      out.push(`| ${r.proto} ${r.variant} | ${r.rules.toLocaleString('en')} | failed: ${r.error.replace(/\|/g, '/')} | | | | | | | |`);
      continue;
    }
    const w = windows(r);
    for (const k of ['before', 'during', 'after', 'all'] as const) {
      out.push(`| ${r.proto} ${r.variant} | ${r.rules.toLocaleString('en')} | ${r.putStart.toFixed(2)} s | ${r.active.toFixed(2)} s | ${r.answer.toFixed(2)} s | ${k} | ${w[k].n} | ${f(w[k].minMbps)} | ${f(w[k].medianMbps)} | ${loss(w[k])} |`);
    }
  }
  const staged = runs.filter((x) => !x.error && x.stages);
  if (staged.length) {
    out.push('', 'The same intervals by stage of the PUT (stage bounds from the server\'s timings; an interval counts in every stage it overlaps):', '',
      '| run | stage | from | to | intervals | min Mb/s | median Mb/s | UDP lost / sent |', '|---|---|---|---|---|---|---|---|');
    for (const r of staged) {
      const full = r.intervals.filter((i) => i.end - i.start > INTERVAL_S / 2);
      const st: [string, number, number][] = [
        ['body upload', r.putStart, r.stages!.serverStart], ['parse + compile', r.stages!.serverStart, r.stages!.setRulesStart],
        ['setRules (classifier build)', r.stages!.setRulesStart, r.active], ['counter carry-over', r.active, r.answer],
      ];
      for (const [name, a, b] of st) {
        const w = window(full.filter((i) => i.end > a && i.start < b));
        out.push(`| ${r.proto} ${r.variant} | ${name} | ${a.toFixed(2)} s | ${b.toFixed(2)} s | ${w.n} | ${f(w.minMbps)} | ${f(w.medianMbps)} | ${loss(w)} |`);
      }
    }
  }
  for (const r of runs.filter((x) => !x.error)) {
    const w = r.lossWhere;
    const where = w ? `; of the ${w.sent - w.received} lost: ${w.beforeFlatwall} before flatwall's RX ring, ${w.ringFull} at a full RX ring, ${w.notForwarded} not forwarded, ${w.afterFlatwall} after flatwall sent them (${w.receiverRcvbufErrors ?? '?'} of them by the receiving socket, its buffer full; flatwall received ${w.flatwallRx}, sent ${w.flatwallTx}; counters include a few control packets)` : '';
    const extra = r.proto === 'tcp' ? `TCP retransmits (sender): ${r.senderRetransmits ?? '?'}` : `UDP datagrams sent (client): ${r.senderPackets ?? '?'}${where}`;
    out.push('', `${r.proto} ${r.variant}: PUT took ${r.putSeconds.toFixed(2)} s (server ${r.server.seconds.toFixed(2)} s = parse + compile ${r.server.compileSeconds?.toFixed(2)} s, setRules ${r.server.setRulesSeconds?.toFixed(2)} s, counter carry-over ${r.server.countersSeconds?.toFixed(2)} s); ${extra}. Plot: ${swapPlotName(r)}`);
  }
  return `${out.join('\n')}\n`;
}

export function swapPlot(r: SwapRun, quick: boolean): string {
  const pts = r.intervals.filter((i) => i.end - i.start > INTERVAL_S / 2);
  const series = [{ name: `${r.proto.toUpperCase()} received`, points: pts.map((i) => ({ x: i.end, y: i.mbps })) }];
  if (r.proto === 'udp') series.push({ name: 'UDP lost', points: pts.map((i) => ({ x: i.end, y: ((i.lost ?? 0) * UDP_LEN * 8) / 1e6 / (i.end - i.start) })) });
  return svgPlot(series, {
    title: `${r.proto.toUpperCase()} across a ${r.rules.toLocaleString('en')}-rule replace (${r.variant})${quick ? ' (quick)' : ''}`,
    xLabel: 'seconds since the stream started', yLabel: 'Mb/s (per 0.1 s, receiver)', linearX: true,
    marks: [{ x: r.putStart, label: 'PUT /rules' }, { x: r.active, label: 'new rules active' }],
  });
}
