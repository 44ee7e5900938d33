// 1 vs 2 flatwall workers on a many-flow UDP mix (issue 14): what a second
// packet worker buys on this machine, and where the CPU goes.
//
//   npm run bench:workers [-- --workers 1,2] [--flows 64] [--clients 1,2]
//                            [--sizes 64,1442] [--rules N] [--duration S]
//                            [--repeat R] [--io afpacket] [--out DIR] [--suffix S]
//                            [--fw-args "ARGS"] [--fw-variants "ARGS|ARGS"] [--no-gso-check]
//
// Sender -> flatwall -> Receiver (the bridge lab of src/lab). flatwall runs
// with AF_PACKET ports (`--io afpacket`, the default): their
// PACKET_FANOUT_HASH group is symmetric, so several workers may share the
// flows with conntrack on (native/dataplane/README.md, "Fanout"); AF_XDP
// with conntrack is refused with more than one worker. Rules: `flatwall gen
// chain N` (--rules, default 1000).
//
// Traffic: --flows UDP flows (default 64) sent `iperf3 -u -b 0` by C clients
// (--clients; each `-P flows/C` on its own server port), so C sender
// threads; iperf3 3.12 sends all of a client's streams from one thread.
// Every stream has its own source port, so the fanout hash spreads them.
// Frame sizes (--sizes, Ethernet frame with FCS as in bench:sweep: payload =
// size - 46): 64 B (packet rate) and 1442 B (1396-byte payloads, ~bench:e2e's
// 1400 B throughput).
//
// Per point: received kpps and Mb/s of frames, sent kpps, loss; the frames
// each worker received (GET /stats rxPerWorker on fa: does the hash spread
// the flows?); the CPU: per CPU the jiffies of user, nice (other tenants'
// niced jobs run here: fuzzers at nice 19), system, softirq, idle, steal
// (/proc/stat), the flatwall process's CPU and its busiest threads
// (/proc/PID/task/*/stat), the time its threads waited for a CPU
// (schedstat), and iperf3's own accounting of each client and server. The
// worker counts alternate in order per repeat (1,2 then 2,1 ...).
//
// First, a GSO check (skip with --no-gso-check): one iperf3 TCP stream
// through flatwall on each I/O path, and the mean size of the frames fa
// received over it (GET /stats rxBytes / rxPackets): above the 1514-byte
// MTU frame only if GSO super-packets reach the firewall whole. It checks
// the reason given for AF_XDP's lower TCP rate (native/dataplane/README.md,
// "No GSO"), since ethtool is not installed here to read the veth's TSO flag.
// --fw-args passes more arguments to `flatwall run` (e.g. "--busy-poll 0");
// --fw-variants runs every point with each set of arguments ('|'-separated,
// an empty set = the defaults), the variant order rotating per repeat, so
// e.g. "|--busy-poll 0" compares busy polling on and off in one run.
// With --suffix S the results go to workers-S.* beside the default run.
// Writes bench/results/workers.{json,md} (JSON after every point).
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEngine, type RunningEngine } from '../src/lab/engines';
import { writeGenerated } from '../src/lab/rules';
import { Topology, installTeardown } from '../src/lab/topology';
import { iperf, ping, type IperfResult } from '../src/lab/traffic';
import { missingTools } from '../src/lab/tools';
import { run } from '../src/lab/proc';
import { apiCall } from '../src/cli/ctl';
import { argv, flag, opt } from './args';
import { labMachine, printHeaderHelp, processCpuSeconds, processSchedSeconds } from './lab-info';

if (flag('--help') || flag('-h')) printHeaderHelp(__filename);
const list = (name: string, dflt: string) => (opt(name) ?? dflt).split(',').filter(Boolean).map(Number);
const workerCounts = list('--workers', '1,2');
const flows = Number(opt('--flows') ?? 64);
const clientCounts = list('--clients', '1,2');
const sizes = list('--sizes', '64,1442');
const rules = Number(opt('--rules') ?? 1000);
const D = Number(opt('--duration') ?? 3);
const repeats = Number(opt('--repeat') ?? 3);
const io = opt('--io') ?? 'afpacket';
const outDir = opt('--out') ?? join(__dirname, '..', '..', 'bench', 'results');
const suffix = opt('--suffix') ? `-${opt('--suffix')}` : '';
const NAME = `workers${suffix}`;
const FRAME_OVERHEAD = 46;
const gsoCheck = !flag('--no-gso-check');
const fwArgs = (opt('--fw-args') ?? '').split(/\s+/).filter(Boolean);
const splitArgs = (v: string) => v.split(/\s+/).filter(Boolean);
const variants: string[][] = opt('--fw-variants') !== undefined ? opt('--fw-variants')!.split('|').map((v) => [...fwArgs, ...splitArgs(v)]) : [fwArgs];
const variantName = (v: string[]) => (v.length ? v.join(' ') : 'default');
const command = `npm run bench:workers${argv.length ? ` -- ${argv.join(' ')}` : ''}`;

function fail(msg: string): never {
  process.stderr.write(`bench:workers: ${msg}\n`);
  process.exit(2);
}
if (workerCounts.some((w) => !Number.isInteger(w) || w < 1 || w > 64)) fail('--workers: integers from 1 to 64');
if (!Number.isInteger(flows) || flows < 1 || flows > 128) fail('--flows: 1 to 128 (iperf3 -P)');
if (clientCounts.some((c) => !Number.isInteger(c) || c < 1 || flows % c !== 0)) fail('--clients: divisors of --flows');
if (sizes.some((s) => !Number.isInteger(s) || s < 64 || s > 1518)) fail('--sizes: frame lengths from 64 to 1518');
if (!Number.isInteger(rules) || rules < 1) fail('--rules: a positive integer');
if (!(D > 0)) fail('--duration: seconds > 0');
if (!Number.isInteger(repeats) || repeats < 1) fail('--repeat: a positive integer');
if (io !== 'afpacket' && io !== 'afxdp') fail('--io: afpacket or afxdp');
if (!/^[-a-z0-9_.]*$/i.test(suffix)) fail('--suffix: letters, digits, - _ .');

const tStart = performance.now();
const startedAt = new Date().toISOString();
const machine = labMachine();
const la = () => loadavg().map((x) => +x.toFixed(2));
function say(s: string): void {
  process.stderr.write(`bench:workers ${((performance.now() - tStart) / 1000).toFixed(0).padStart(4)}s ${s}\n`);
}

// ---------------------------------------------------------------- CPU accounting
const CPU_FIELDS = ['user', 'nice', 'system', 'idle', 'iowait', 'irq', 'softirq', 'steal'] as const;
type CpuLine = Record<(typeof CPU_FIELDS)[number], number>;

/** Per CPU (cpu0, cpu1, ...) jiffies from /proc/stat. */
function perCpu(): Record<string, CpuLine> {
  const out: Record<string, CpuLine> = {};
  for (const l of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^(cpu\d+)\s+(.*)$/.exec(l);
    if (!m) continue;
    const v = m[2].trim().split(/\s+/).map(Number);
    out[m[1]] = Object.fromEntries(CPU_FIELDS.map((k, i) => [k, v[i]])) as CpuLine;
  }
  return out;
}

/** Each CPU's time split, as fractions of the interval (sums to ~1 per CPU). */
function cpuDelta(a: Record<string, CpuLine>, b: Record<string, CpuLine>): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  for (const c of Object.keys(b)) {
    const d = CPU_FIELDS.map((k) => b[c][k] - a[c][k]);
    const tot = d.reduce((x, y) => x + y, 0) || 1;
    out[c] = Object.fromEntries(CPU_FIELDS.map((k, i) => [k, +(d[i] / tot).toFixed(3)]));
  }
  return out;
}

/** CPU seconds (user + system) of every process this PID namespace shows. */
function allProcessCpu(): Map<number, number> {
  const m = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const c = processCpuSeconds(Number(d));
    if (c !== undefined) m.set(Number(d), c);
  }
  return m;
}

/** CPU seconds (user + system) per thread of a process. */
function threadCpu(pid: number): Map<number, number> {
  const m = new Map<number, number>();
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const s = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      m.set(Number(tid), (Number(f[11]) + Number(f[12])) / 100);
    }
  } catch {
    /* gone */
  }
  return m;
}

// ---------------------------------------------------------------- one point
interface Point {
  /** The extra `flatwall run` arguments of this point ('default': none). */
  variant: string;
  workers: number;
  clients: number;
  frameBytes: number;
  rep: number;
  kpps: number | null;
  frameMbps: number | null;
  sentKpps: number | null;
  lostPct: number | null;
  /** Frames each worker took from fa over the run. */
  rxPerWorker: number[];
  /** Frames the kernel dropped at fa (RX ring full) over the run. */
  ringDrops: number | null;
  /** Datagrams the receiver's UDP sockets dropped (buffer full) and took, over the run (/proc/net/snmp in its namespace). */
  rcvbufErrors: number | null;
  udpInDatagrams: number | null;
  cpu: {
    /** Per CPU: fraction of the run in each state. */
    perCpu: Record<string, Record<string, number>>;
    /** The flatwall process, cores (CPU seconds / second). */
    firewallCores: number | null;
    /** Its busiest threads, cores each (the packet workers are the ones near 1). */
    firewallThreads: number[];
    /** Its threads' time runnable without a CPU, per second. */
    firewallWaiting: number | null;
    /** Cores busy, all CPUs, every tenant (/proc/stat: all but idle and iowait). */
    machineCores: number;
    /**
     * Cores used by the other processes visible here that lived through the
     * run (not flatwall, not the one-off iperf3 processes): this bench's Node
     * process, the lab's echo servers, anything else in this PID namespace.
     */
    otherVisibleCores: number;
    /** iperf3's own figures per client: % of one core, client (sender) and server (receiver). */
    iperfClientPct: (number | undefined)[];
    iperfServerPct: (number | undefined)[];
  };
  loadavg: number[];
  errors: string[];
  iperf: IperfResult[];
}

async function portStats(sock: string): Promise<{ rxPerWorker: number[]; kernelDrops: number } | undefined> {
  try {
    const ports = (await apiCall({ socket: sock }, 'GET', '/stats')).json?.ports as { name: string; rxPerWorker: number[]; kernelDrops: number }[];
    const fa = ports.find((p) => p.name === 'fa');
    return fa ? { rxPerWorker: fa.rxPerWorker, kernelDrops: fa.kernelDrops } : undefined;
  } catch {
    return undefined;
  }
}

/** The receiver namespace's UDP counters (RcvbufErrors: a socket's buffer was full). */
async function udpCounters(topo: Topology): Promise<{ rcvbufErrors: number; inDatagrams: number } | undefined> {
  const r = await run('cat', ['/proc/net/snmp'], { ns: topo.receiver, timeoutMs: 5000, allowFail: true });
  const udp = r.stdout.split('\n').filter((l) => l.startsWith('Udp:')).map((l) => l.trim().split(/\s+/).slice(1));
  if (udp.length !== 2) return undefined;
  const v = (k: string) => Number(udp[1][udp[0].indexOf(k)]);
  return { rcvbufErrors: v('RcvbufErrors'), inDatagrams: v('InDatagrams') };
}

let nextPort = 5301;
async function measure(topo: Topology, fw: RunningEngine, sock: string, variant: string, workers: number, clients: number, size: number, rep: number): Promise<Point> {
  const len = size - FRAME_OVERHEAD;
  const pid = fw.pid!;
  const avg = la();
  const st0 = await portStats(sock);
  const u0 = await udpCounters(topo);
  const c0 = perCpu();
  const p0 = processCpuSeconds(pid);
  const t0m = threadCpu(pid);
  const a0 = allProcessCpu();
  const s0 = processSchedSeconds(pid);
  const t0 = performance.now();
  const ports = Array.from({ length: clients }, () => {
    const p = nextPort++;
    if (nextPort > 5900) nextPort = 5301;
    return p;
  });
  const rs = await Promise.all(ports.map((port) => iperf(topo, { seconds: D, udp: true, len, port, parallel: flows / clients })));
  const dt = (performance.now() - t0) / 1000;
  const c1 = perCpu();
  const p1 = processCpuSeconds(pid);
  const t1m = threadCpu(pid);
  const a1 = allProcessCpu();
  const s1 = processSchedSeconds(pid);
  const st1 = await portStats(sock);
  const u1 = await udpCounters(topo);
  const ok = rs.filter((r) => r.pps !== undefined);
  const pps = ok.length === rs.length ? ok.reduce((a, r) => a + r.pps!, 0) : null;
  const sent = ok.length === rs.length ? ok.reduce((a, r) => a + (r.senderBps ?? 0) / 8 / len, 0) : null;
  const sentPk = rs.reduce((a, r) => a + (r.sentPackets ?? 0), 0);
  const threads = [...t1m].map(([tid, c]) => (c - (t0m.get(tid) ?? 0)) / dt).sort((a, b) => b - a).slice(0, workers + 2).map((x) => +x.toFixed(3));
  return {
    variant, workers, clients, frameBytes: size, rep,
    kpps: pps === null ? null : pps / 1000,
    frameMbps: pps === null ? null : (pps * size * 8) / 1e6,
    sentKpps: sent === null ? null : sent / 1000,
    // Loss over all clients: received / sent packets (iperf3's counts), as bench:sweep reports it.
    lostPct: pps === null || !sentPk ? null : +(100 * (1 - (pps * (rs[0].seconds ?? D)) / sentPk)).toFixed(2),
    rxPerWorker: st0 && st1 ? st1.rxPerWorker.map((v, i) => v - (st0.rxPerWorker[i] ?? 0)) : [],
    ringDrops: st0 && st1 ? st1.kernelDrops - st0.kernelDrops : null,
    rcvbufErrors: u0 && u1 ? u1.rcvbufErrors - u0.rcvbufErrors : null,
    udpInDatagrams: u0 && u1 ? u1.inDatagrams - u0.inDatagrams : null,
    cpu: {
      perCpu: cpuDelta(c0, c1),
      machineCores: +Object.values(cpuDelta(c0, c1)).reduce((a, c) => a + 1 - c.idle - c.iowait, 0).toFixed(3),
      otherVisibleCores: +([...a1].reduce((a, [p, c]) => (p === pid || !a0.has(p) ? a : a + c - a0.get(p)!), 0) / dt).toFixed(3),
      firewallCores: p0 !== undefined && p1 !== undefined ? +((p1 - p0) / dt).toFixed(3) : null,
      firewallThreads: threads,
      firewallWaiting: s0 && s1 ? +((s1.wait - s0.wait) / dt).toFixed(3) : null,
      iperfClientPct: rs.map((r) => r.cpu?.hostTotal),
      iperfServerPct: rs.map((r) => r.cpu?.remoteTotal),
    },
    loadavg: avg,
    errors: rs.flatMap((r) => (r.error ? [r.error] : [])),
    iperf: rs,
  };
}

// ---------------------------------------------------------------- output
const median = (a: number[]) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
function summary(vals: (number | null | undefined)[], digits: number): { median: number | null; text: string } {
  const v = vals.filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
  if (!v.length) return { median: null, text: '–' };
  const m = median(v);
  const f = (x: number) => x.toFixed(digits);
  return { median: m, text: v.length > 1 ? `${f(m)} [${f(Math.min(...v))}-${f(Math.max(...v))}]` : f(m) };
}

/** Counter n as a percentage of the datagrams the clients sent. */
function lostShare(p: Point, n: number | null): number | null {
  const sent = p.iperf.reduce((a, r) => a + (r.sentPackets ?? 0), 0);
  return n === null || !sent ? null : (100 * n) / sent;
}

interface GsoCheck {
  io: string;
  mbps: number | null;
  rxPackets: number | null;
  rxBytes: number | null;
  meanFrameBytes: number | null;
  error?: string;
}
const gso: GsoCheck[] = [];

async function runGsoCheck(workDir: string, file: string): Promise<void> {
  for (const rep of [0, 1]) {
    for (const e of ['flatwall', 'flatwall-afxdp'] as const) {
      const topo = Topology.create('bridge', 'fwgso');
      const dir = mkdtempSync(join(workDir, 'gso-'));
      const g: GsoCheck = { io: e === 'flatwall' ? 'afpacket' : 'afxdp', mbps: null, rxPackets: null, rxBytes: null, meanFrameBytes: null };
      try {
        const fw = await startEngine(e, topo, file, { timeoutMs: 120_000, workDir: dir, workers: 1, rules });
        await ping(topo, { count: 2, intervalS: 0.2, deadlineS: 6 });
        const sock = join(dir, 'api.sock');
        const fa = async () => ((await apiCall({ socket: sock }, 'GET', '/stats')).json?.ports as { name: string; rxPackets: number; rxBytes: number }[]).find((p) => p.name === 'fa')!;
        const a = await fa();
        const r = await iperf(topo, { seconds: 2 });
        const b = await fa();
        g.mbps = r.bps !== undefined ? +(r.bps / 1e6).toFixed(0) : null;
        g.rxPackets = b.rxPackets - a.rxPackets;
        g.rxBytes = b.rxBytes - a.rxBytes;
        g.meanFrameBytes = g.rxPackets ? Math.round(g.rxBytes / g.rxPackets) : null;
        if (r.error) g.error = r.error;
        await fw.stop();
      } catch (err) {
        g.error = (err as Error).message;
      } finally {
        await topo.destroy();
      }
      gso.push(g);
      say(`GSO check ${g.io}: TCP ${g.mbps} Mb/s, fa received ${g.rxPackets} frames, ${g.meanFrameBytes} B each on average${g.error ? `, ${g.error}` : ''}`);
    }
  }
}

function write(done: boolean, points: Point[], setup: Record<string, unknown>[], started: number[]): void {
  mkdirSync(outDir, { recursive: true });
  const json = {
    benchmark: NAME, done, startedAt, seconds: +((performance.now() - tStart) / 1000).toFixed(1), command, machine,
    io, flatwallArgs: fwArgs, variants: variants.map(variantName), rules, flows, workerCounts, clientCounts, sizes, durationSeconds: D, repeats, loadavgStart: started, loadavgEnd: la(), gsoCheck: gso, setup, points,
  };
  writeFileSync(join(outDir, `${NAME}.json`), `${JSON.stringify(json, null, 2)}\n`);
  let cur = '';
  const sel = (w: number, c: number, s: number) => points.filter((p) => (p.variant ?? 'default') === cur && p.workers === w && p.clients === c && p.frameBytes === s);
  const L: string[] = [];
  L.push(`# flatwall workers: ${workerCounts.join(' vs ')} on a ${flows}-flow UDP mix`, '');
  L.push(`Sender -> flatwall -> Receiver (bridge lab, veth links) on one ${machine.cpus}-vCPU VM (${machine.cpu}; kernel ${machine.kernel}).`);
  L.push(`\`flatwall run --port fa --port fb --io ${io} -w W${fwArgs.length ? ` ${fwArgs.join(' ')}` : ''}\` (conntrack on${fwArgs.length ? '' : ', default busy-poll and worker nice'}), \`flatwall gen chain ${rules}\`.`);
  if (variants.length > 1) L.push(`Variants (extra \`flatwall run\` arguments, every point run with each, the order rotating per repeat): ${variants.map((v) => `\`${variantName(v)}\``).join(', ')}.`);
  L.push(`Traffic: ${flows} UDP flows, \`iperf3 -u -b 0 -P ${flows}/C\` from C clients on their own server ports (C sender threads, C receiver threads), ${D} s per point, ${repeats} repeats (median [min-max]), the worker order alternating per repeat.`);
  L.push('Frame sizes include the Ethernet header and FCS (payload = size - 46). Mb/s = received frames x frame length x 8.');
  L.push(`Started ${startedAt}, ${done ? 'finished' : 'PARTIAL (still running)'} after ${((performance.now() - tStart) / 1000).toFixed(0)} s. Command: \`${command}\`.`);
  const one = points.map((p) => p.loadavg[0]);
  L.push(`Load averages (1/5/15 min): ${started.join(' / ')} at the start, ${la().join(' / ')} at the end; the 1-minute figure ranged ${one.length ? `${Math.min(...one).toFixed(2)}-${Math.max(...one).toFixed(2)}` : 'n/a'} over the points.`, '');
  for (const s of setup.filter((x) => x.status !== 'ok')) L.push(`workers ${s.workers}: ${s.status}: ${s.reason}`, '');
  for (const v of variants) {
    cur = variantName(v);
    if (variants.length > 1) L.push(`# Variant: ${cur}`, '');
    L.push('## Throughput', '');
    L.push(`| frame (B) | clients | ${workerCounts.map((w) => `${w}w kpps`).join(' | ')} | ${workerCounts.map((w) => `${w}w Mb/s`).join(' | ')} | ${workerCounts.map((w) => `${w}w sent kpps | ${w}w lost %`).join(' | ')} |${workerCounts.length > 1 ? ` ${workerCounts[1]}w / ${workerCounts[0]}w kpps |` : ''}`);
    L.push(`|---:|---:|${workerCounts.map(() => '---:').join('|')}|${workerCounts.map(() => '---:').join('|')}|${workerCounts.map(() => '---:|---:').join('|')}|${workerCounts.length > 1 ? '---:|' : ''}`);
    for (const s of sizes) {
      for (const c of clientCounts) {
        const k = workerCounts.map((w) => summary(sel(w, c, s).map((p) => p.kpps), 1));
        const m = workerCounts.map((w) => summary(sel(w, c, s).map((p) => p.frameMbps), 0).text);
        const sl = workerCounts.map((w) => `${summary(sel(w, c, s).map((p) => p.sentKpps), 1).text} | ${summary(sel(w, c, s).map((p) => p.lostPct), 1).text}`);
        const r = k.length > 1 && k[0].median && k[1].median !== null ? (k[1].median / k[0].median).toFixed(2) : '';
        L.push(`| ${s} | ${c} | ${k.map((x) => x.text).join(' | ')} | ${m.join(' | ')} | ${sl.join(' | ')} |${k.length > 1 ? ` ${r} |` : ''}`);
      }
    }
    L.push('');
    L.push('## Where the CPU went (medians over the repeats)', '');
    L.push('Per CPU, share of the run: usr = user (iperf3, flatwall\'s workers), nice = niced user time (on this VM: other tenants\' jobs at nice 19), sys = system calls');
    L.push('(sendto/recvfrom, the veth transmit), si = softirq (the veth receive path run on the sending CPU, the stack\'s UDP delivery), idle. flatwall cores: its');
    L.push('process\'s CPU (all threads); threads: its busiest threads, cores each; waiting: its threads\' time runnable without a CPU, per second. iperf3 client / server:');
    L.push('iperf3\'s own figure (% of one core) per client and per server.', '');
    const cpus = Object.keys(points[0]?.cpu.perCpu ?? {});
    L.push(`| frame (B) | clients | workers | ${cpus.map((c) => `${c} usr/nice/sys/si/idle`).join(' | ')} | flatwall cores | threads | waiting | lost at fa's ring / receiver's socket (% of sent) | rx per worker (%) | iperf3 client % | iperf3 server % |`);
    L.push(`|---:|---:|---:|${cpus.map(() => '---').join('|')}|---:|---|---:|---:|---|---|---|`);
    for (const s of sizes) {
      for (const c of clientCounts) {
        for (const w of workerCounts) {
          const ps = sel(w, c, s);
          if (!ps.length) continue;
          const pc = cpus.map((cpu) => ['user', 'nice', 'system', 'softirq', 'idle'].map((k) => (100 * (median(ps.map((p) => p.cpu.perCpu[cpu]?.[k] ?? 0)))).toFixed(0)).join('/'));
          const thr = Array.from({ length: Math.min(...ps.map((p) => p.cpu.firewallThreads.length)) }, (_, i) => median(ps.map((p) => p.cpu.firewallThreads[i])).toFixed(2)).join(', ');
          const share = (p: Point) => {
            const t = p.rxPerWorker.reduce((a, b) => a + b, 0);
            return t ? p.rxPerWorker.map((x) => (100 * x) / t) : [];
          };
          const sh = Array.from({ length: w }, (_, i) => median(ps.map((p) => share(p)[i] ?? NaN).filter(Number.isFinite)).toFixed(0)).join('/');
          const ip = (f: (p: Point) => (number | undefined)[]) => Array.from({ length: c }, (_, i) => median(ps.map((p) => f(p)[i] ?? NaN).filter(Number.isFinite)).toFixed(0)).join(', ');
          L.push(`| ${s} | ${c} | ${w} | ${pc.join(' | ')} | ${summary(ps.map((p) => p.cpu.firewallCores), 2).text} | ${thr} | ${summary(ps.map((p) => p.cpu.firewallWaiting), 2).text} | ${summary(ps.map((p) => lostShare(p, p.ringDrops)), 1).text} / ${summary(ps.map((p) => lostShare(p, p.rcvbufErrors)), 1).text} | ${sh} | ${ip((p) => p.cpu.iperfClientPct)} | ${ip((p) => p.cpu.iperfServerPct)} |`);
        }
      }
    }
    L.push('');
    L.push('## CPU accounting (cores, medians over the repeats)', '');
    L.push('machine: cores busy on all CPUs (every tenant). Counted: flatwall (its process), iperf3 clients and servers (their own figures, user + system, which');
    L.push('include the veth transmit and the receive softirq work the kernel charges to the sending or receiving task), other processes alive through the run (this bench,');
    L.push('the lab\'s helpers, kernel threads, other tenants\' long-lived processes). rest = machine - counted: processes that started or ended during the run');
    L.push('(in neither snapshot: other tenants\' short jobs), processes this PID namespace does not show, and interrupt time charged to no task.', '');
    L.push('| frame (B) | clients | workers | machine | flatwall | iperf3 clients | iperf3 servers | other visible | rest |', '|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const s of sizes) {
      for (const c of clientCounts) {
        for (const w of workerCounts) {
          const ps = sel(w, c, s);
          if (!ps.length) continue;
          const sum = (xs: (number | undefined)[]) => xs.reduce((a: number, x) => a + (x ?? 0), 0) / 100;
          const parts = ps.map((p) => {
            const fwc = p.cpu.firewallCores ?? 0;
            const cl = sum(p.cpu.iperfClientPct);
            const sv = sum(p.cpu.iperfServerPct);
            return { m: p.cpu.machineCores, fwc, cl, sv, ov: p.cpu.otherVisibleCores, rest: p.cpu.machineCores - fwc - cl - sv - p.cpu.otherVisibleCores };
          });
          const f = (k: keyof (typeof parts)[number]) => summary(parts.map((x) => x[k]), 2).text;
          L.push(`| ${s} | ${c} | ${w} | ${f('m')} | ${f('fwc')} | ${f('cl')} | ${f('sv')} | ${f('ov')} | ${f('rest')} |`);
        }
      }
    }
    L.push('');
  }
  if (gso.length) {
    L.push('## GSO check: mean frame size flatwall received during one TCP stream', '');
    L.push('One iperf3 TCP stream, 2 s, 1 worker, each I/O path twice. fa\'s rxBytes / rxPackets over the run (GET /stats): a mean above 1514 B means GSO', 'super-packets reached the firewall whole; at most 1514 B means MTU-sized segments.', '');
    L.push('| I/O | TCP (Mb/s) | frames received on fa | mean frame (B) |', '|---|---:|---:|---:|');
    for (const g of gso) L.push(`| ${g.io} | ${g.mbps ?? '–'} | ${g.rxPackets ?? '–'} | ${g.meanFrameBytes ?? '–'}${g.error ? ` (${g.error})` : ''} |`);
    L.push('');
  }
  const errs = points.filter((p) => p.errors.length);
  for (const p of errs) L.push(`${p.frameBytes} B, ${p.clients} clients, ${p.workers} workers, repeat ${p.rep + 1}: ${p.errors.join('; ')}`, '');
  writeFileSync(join(outDir, `${NAME}.md`), L.join('\n'));
}

// ---------------------------------------------------------------- main
async function main(): Promise<void> {
  if (process.getuid?.() !== 0) fail('needs root (network namespaces)');
  const missing = missingTools(['ip', 'ping', 'iperf3']);
  if (missing.length) fail(`needs ${missing.join(', ')}`);
  installTeardown(true, (sig) => say(`${sig}: tearing down, partial results in ${outDir}/${NAME}.json`));
  const workDir = mkdtempSync(join(tmpdir(), `flatwall-bench-workers-${process.pid}-`));
  process.on('exit', () => rmSync(workDir, { recursive: true, force: true }));
  const file = join(workDir, `chain-${rules}.rules`);
  await writeGenerated({ family: 'chain', rules }, file);
  const started = la();
  const points: Point[] = [];
  const setup: Record<string, unknown>[] = [];
  if (gsoCheck) await runGsoCheck(workDir, file);
  say(`load average ${started.join(' ')}; workers ${workerCounts.join(',')}, ${flows} flows from ${clientCounts.join(' or ')} clients, sizes ${sizes.join(',')}, ${D} s, ${repeats} repeats`);
  for (let rep = 0; rep < repeats; rep++) {
    const shift = rep % variants.length;
    for (const [v, w] of [...variants.slice(shift), ...variants.slice(0, shift)].flatMap((v) => (rep % 2 ? [...workerCounts].reverse() : workerCounts).map((w) => [v, w] as const))) {
      const topo = Topology.create('bridge', 'fwworkers');
      const dir = mkdtempSync(join(workDir, 'lab-'));
      try {
        const fw = await startEngine(io === 'afxdp' ? 'flatwall-afxdp' : 'flatwall', topo, file, { timeoutMs: 120_000, workDir: dir, workers: w, rules, extraArgs: v });
        setup.push({ variant: variantName(v), workers: w, rep, status: 'ok', load: fw.report });
        await ping(topo, { count: 2, intervalS: 0.2, deadlineS: 6 });
        for (const s of sizes) {
          for (const c of clientCounts) {
            const p = await measure(topo, fw, join(dir, 'api.sock'), variantName(v), w, c, s, rep);
            points.push(p);
            say(`rep ${rep + 1} ${variantName(v)} ${w}w ${s} B ${c} clients: ${p.kpps?.toFixed(1)} kpps, ${p.frameMbps?.toFixed(0)} Mb/s, sent ${p.sentKpps?.toFixed(1)} kpps, lost ${p.lostPct}%, rx/worker ${p.rxPerWorker.join('/')}, ring drops ${p.ringDrops}, socket full ${p.rcvbufErrors}, flatwall ${p.cpu.firewallCores} cores [${p.cpu.firewallThreads.join(', ')}], ` +
              `cpus ${Object.entries(p.cpu.perCpu).map(([k, v]) => `${k} u${(v.user * 100).toFixed(0)} n${(v.nice * 100).toFixed(0)} s${(v.system * 100).toFixed(0)} si${(v.softirq * 100).toFixed(0)} i${(v.idle * 100).toFixed(0)}`).join(' ')}, load ${p.loadavg[0]}${p.errors.length ? `, ${p.errors.join('; ')}` : ''}`);
            write(false, points, setup, started);
          }
        }
        await fw.stop();
      } catch (e) {
        setup.push({ variant: variantName(v), workers: w, rep, status: 'failed', reason: (e as Error).message });
        say(`workers ${w}: failed: ${(e as Error).message}`);
      } finally {
        await topo.destroy();
      }
    }
  }
  write(true, points, setup, started);
  say(`written ${join(outDir, `${NAME}.json`)}, ${NAME}.md`);
}

main().catch((e) => {
  process.stderr.write(`bench:workers: ${(e as Error).stack ?? e}\n`);
  process.exitCode = 1;
});
