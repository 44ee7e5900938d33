// Two more tables of the end-to-end lab (issue 14, item 3), the kinds the
// low-cost middlebox-network papers publish: packet rate and throughput by
// packet size, and throughput and latency through a chain of middleboxes.
// Same lab, engines and traffic tool as bench/e2e.ts (src/lab: veth pairs
// between network namespaces, iperf3, ping).
//
//   npm run bench:sweep [-- --quick] [--table sizes|chain] [--duration S] [--repeat R]
//                          [--sizes 64,128,...] [--big N] [--hops 1,2,4,8]
//                          [--hop-rules N] [--hop-engines flatwall,iptables-legacy]
//                          [--workers N] [--fw-args "ARGS"] [--load-timeout S] [--out DIR]
//                          [--suffix S] [--size-engines flatwall,flatwall-afxdp,veth]
//
//   sizes  UDP frames of 64, 128, 256, 512, 800, 1024 and 1500 B (--sizes;
//          Ethernet frame lengths with the 4-byte FCS, as RFC 2544 and
//          bench:e2e's 64-byte rate count them: UDP payload = size - 46)
//          through Sender -> Firewall -> Receiver with kernel forwarding
//          (iptables-legacy) at 1 rule, flatwall at 1 rule and flatwall at
//          1M rules (--big; 100k with --quick), `flatwall gen chain N` rule
//          sets. The three labs are up at once and every size is measured
//          on each of them in turn (the order rotating), so a change in the
//          machine's load hits all three alike. Per point: received packets
//          per second (kpps), received frame bits per second (Mb/s, frame
//          length x packets), iperf3's payload Mb/s, what the sender sent and
//          the loss, and where the datagrams went (flatwall's RX ring full,
//          the receiver's socket buffer full, delivered: counters over the
//          run). iperf3 -u -b 0: one sender thread as fast as it can.
//          --size-engines: the flatwall engines measured at 1 and --big
//          rules (default flatwall; flatwall-afxdp = `--io afxdp`), and
//          veth for the path without a firewall (one veth pair); all the
//          labs are up at once, as above.
//   chain  1, 2, 4 and 8 firewalls in series (--hops): Sender -- FW1 -- ...
//          -- FWN -- Receiver (Topology.create(mode, tag, { hops })), every
//          hop flatwall (a bump in the wire, `flatwall run --port fa --port
//          fb`) or every hop kernel forwarding with iptables-legacy (routed),
//          each hop with `flatwall gen chain 1000` (--hop-rules). Per point:
//          idle ping RTT (avg of 50 echoes) and iperf3 TCP throughput.
//
// --hop-engines may name flatwall-afxdp too (AF_XDP ports on every hop).
// --fw-args passes more arguments to every `flatwall run` (e.g. "--busy-poll 0");
// the tables say which; --suffix S writes e2e-sizes-S.* and e2e-chain-S.* instead,
// so such a run sits beside the default one.
// --repeat R measures every point R times (sizes: the whole sweep again;
// chain: the engine order alternating per repeat); the tables show medians
// and, with R > 1, [min-max]. Every point carries the load averages, the
// machine's CPU busy fraction during the measurement and (flatwall) the CPU
// its processes used. Writes bench/results/e2e-sizes.{json,md},
// e2e-sizes-*.svg, e2e-chain.{json,md}, e2e-chain-*.svg (JSON after every
// point); progress on stderr.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ENGINES, engineMode, engineTools, isEngine, isFlatwall, startEngine, type EngineName, type LoadReport, type RunningEngine } from '../src/lab/engines';
import { writeGenerated } from '../src/lab/rules';
import { Topology, installTeardown } from '../src/lab/topology';
import { iperf, ping, type IperfResult, type PingResult } from '../src/lab/traffic';
import { missingTools } from '../src/lab/tools';
import { run } from '../src/lab/proc';
import { apiCall } from '../src/cli/ctl';
import { svgPlot } from './plot';
import { argv, flag, opt } from './args';
import { cpuJiffies, labMachine, printHeaderHelp, processCpuSeconds, processSchedSeconds } from './lab-info';

// ---------------------------------------------------------------- options
if (flag('--help') || flag('-h')) printHeaderHelp(__filename);
const quick = flag('--quick');
const table = opt('--table');
if (table !== undefined && table !== 'sizes' && table !== 'chain') fail('--table: sizes or chain');
const list = (name: string, dflt: string) => (opt(name) ?? dflt).split(',').filter(Boolean).map(Number);
const sizes = list('--sizes', '64,128,256,512,800,1024,1500');
if (sizes.some((s) => !Number.isInteger(s) || s < 64 || s > 1518)) fail('--sizes: frame lengths from 64 to 1518');
const big = Number(opt('--big') ?? (quick ? 100_000 : 1_000_000));
const hopCounts = list('--hops', '1,2,4,8');
if (hopCounts.some((h) => !Number.isInteger(h) || h < 1 || h > 64)) fail('--hops: integers from 1 to 64');
const hopRules = Number(opt('--hop-rules') ?? 1000);
const hopEngines = (opt('--hop-engines') ?? 'flatwall,iptables-legacy').split(',').filter(Boolean);
const sizeEngines = (opt('--size-engines') ?? 'flatwall').split(',').filter(Boolean);
for (const e of sizeEngines) if (!isFlatwall(e) && e !== 'veth') fail(`--size-engines: flatwall, flatwall-afxdp or veth, not ${e}`);
for (const e of hopEngines) if (!isEngine(e)) fail(`--hop-engines: unknown engine ${e} (one of ${ENGINES.join(', ')})`);
for (const [name, n] of [['--big', big], ['--hop-rules', hopRules]] as const) if (!Number.isInteger(n) || n < 1) fail(`${name}: a positive integer`);
const D = Number(opt('--duration') ?? (quick ? 1 : 3));
if (!(D > 0)) fail('--duration: seconds > 0');
const repeats = Number(opt('--repeat') ?? 1);
if (!Number.isInteger(repeats) || repeats < 1) fail('--repeat: a positive integer');
const workers = Number(opt('--workers') ?? 1);
const fwArgs = (opt('--fw-args') ?? '').split(/\s+/).filter(Boolean);
const fwDesc = `\`flatwall run --port fa --port fb${fwArgs.length ? ` ${fwArgs.join(' ')}` : ''}\``;
const loadTimeout = Number(opt('--load-timeout') ?? 180);
const outDir = opt('--out') ?? join(__dirname, '..', '..', 'bench', 'results');
const suffix = opt('--suffix') ? `-${opt('--suffix')}` : '';
if (!/^[-a-z0-9_.]*$/i.test(suffix)) fail('--suffix: letters, digits, - _ .');
const SIZES = `e2e-sizes${suffix}`;
const CHAIN = `e2e-chain${suffix}`;
// Arguments with spaces quoted, so the line can be pasted back.
const command = `npm run bench:sweep${argv.length ? ` -- ${argv.map((a) => (/[\s"]/.test(a) ? JSON.stringify(a) : a)).join(' ')}` : ''}`;
/** The kernel-forwarding reference, as bench:e2e's targets take it. */
const KERNEL: EngineName = 'iptables-legacy';
/** Ethernet header + IPv4 + UDP + FCS: a frame of S bytes carries S - 46 bytes of UDP payload. */
const FRAME_OVERHEAD = 46;

function fail(msg: string): never {
  process.stderr.write(`bench:sweep: ${msg}\n`);
  process.exit(2);
}

const tStart = performance.now();
/** When a table's run began (each table reports its own). */
interface Began {
  at: string;
  t: number;
}
const began = (): Began => ({ at: new Date().toISOString(), t: performance.now() });
const since = (b: Began) => ((performance.now() - b.t) / 1000).toFixed(0);
const machine = labMachine();
const fmtN = (n: number) => (n >= 1_000_000 ? `${n / 1_000_000}M` : n >= 1000 ? `${n / 1000}k` : String(n));
const la = () => loadavg().map((x) => +x.toFixed(2));

function say(s: string): void {
  const t = ((performance.now() - tStart) / 1000).toFixed(0).padStart(4);
  process.stderr.write(`bench:sweep ${t}s ${s}\n`);
}

// ---------------------------------------------------------------- shared
/** What the machine and the firewall processes did during one measurement. */
interface CpuShare {
  /** Busy fraction of all the machine's CPUs (every tenant, not only this lab). */
  machineBusy: number;
  /** CPU the firewall processes used, in cores (flatwall; kernel forwarding runs in softirq, not attributable). */
  firewallCores?: number;
  /**
   * Time the firewall processes' threads were runnable but waited for a CPU
   * (schedstat), per second of the run: threads' worth of starvation.
   */
  firewallWaiting?: number;
}

async function withCpu<T>(pids: number[], f: () => Promise<T>): Promise<{ r: T; cpu: CpuShare }> {
  const j0 = cpuJiffies();
  const c0 = pids.map(processCpuSeconds);
  const s0 = pids.map(processSchedSeconds);
  const t0 = performance.now();
  const r = await f();
  const dt = (performance.now() - t0) / 1000;
  const j1 = cpuJiffies();
  const c1 = pids.map(processCpuSeconds);
  const s1 = pids.map(processSchedSeconds);
  const used = pids.length ? c1.reduce((a: number, c, i) => a + ((c ?? NaN) - (c0[i] ?? NaN)), 0) : undefined;
  const waited = pids.length ? s1.reduce((a: number, s, i) => a + ((s?.wait ?? NaN) - (s0[i]?.wait ?? NaN)), 0) : undefined;
  const perS = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? undefined : +(x / dt).toFixed(3));
  return {
    r,
    cpu: {
      machineBusy: +((j1.busy - j0.busy) / Math.max(1, j1.total - j0.total)).toFixed(3),
      firewallCores: perS(used),
      firewallWaiting: perS(waited),
    },
  };
}

interface Lab {
  topo: Topology;
  engines: RunningEngine[];
  loads: LoadReport[];
  /** Its scratch directory (flatwall's API sockets: api.sock, api-2.sock, ...). */
  dir: string;
}

/** A topology with `hops` firewalls of `engine`, each loaded with `file`. */
async function startLab(engine: EngineName, hops: number, file: string, rules: number, workDir: string): Promise<Lab> {
  const topo = Topology.create(engineMode(engine), 'fwsweep', { hops });
  // A directory per lab: the sizes table keeps three up at once, each with its API sockets.
  const dir = mkdtempSync(join(workDir, 'lab-'));
  const lab: Lab = { topo, engines: [], loads: [], dir };
  try {
    for (let hop = 0; hop < hops; hop++) {
      const fw = await startEngine(engine, topo, file, { timeoutMs: loadTimeout * 1000, workDir: dir, workers, rules, hop, extraArgs: isFlatwall(engine) ? fwArgs : undefined });
      lab.engines.push(fw);
      lab.loads.push(fw.report);
    }
    // Neighbour entries and route caches before anything is measured.
    await ping(topo, { count: 2, intervalS: 0.2, deadlineS: 6 });
    return lab;
  } catch (e) {
    await topo.destroy();
    throw e;
  }
}

async function stopLab(lab: Lab): Promise<void> {
  try {
    for (const fw of lab.engines) await fw.stop();
  } finally {
    await lab.topo.destroy();
  }
}

const pidsOf = (lab: Lab) => lab.engines.flatMap((e) => (e.pid ? [e.pid] : []));

/**
 * Counters that say where a UDP datagram the sender sent was lost: the
 * receiver's UDP receive-buffer overflows (/proc/net/snmp in its namespace),
 * the backlog drops of every CPU (/proc/net/softnet_stat, machine-wide),
 * and, for a flatwall hop, its ports' counters (GET /stats: frames in on fa,
 * dropped by the kernel because fa's RX ring was full, out on fb).
 */
interface LossCounters {
  rcvbufErrors?: number;
  udpInDatagrams?: number;
  backlogDrops?: number;
  fwRx?: number;
  fwRingDrops?: number;
  fwTx?: number;
}

async function lossCounters(lab: Lab): Promise<LossCounters> {
  const c: LossCounters = {};
  const snmp = await run('cat', ['/proc/net/snmp'], { ns: lab.topo.receiver, timeoutMs: 5000, allowFail: true });
  const udp = snmp.stdout.split('\n').filter((l) => l.startsWith('Udp:')).map((l) => l.trim().split(/\s+/).slice(1));
  if (udp.length === 2) {
    const v = (k: string) => Number(udp[1][udp[0].indexOf(k)]);
    c.rcvbufErrors = v('RcvbufErrors');
    c.udpInDatagrams = v('InDatagrams');
  }
  try {
    c.backlogDrops = readFileSync('/proc/net/softnet_stat', 'utf8').trim().split('\n').reduce((a, l) => a + parseInt(l.trim().split(/\s+/)[1], 16), 0);
  } catch {
    /* no softnet_stat */
  }
  if (lab.engines[0] && isFlatwall(lab.engines[0].name)) {
    try {
      const ports = (await apiCall({ socket: join(lab.dir, 'api.sock') }, 'GET', '/stats')).json?.ports as { name: string; rxPackets: number; txPackets: number; kernelDrops: number }[];
      const fa = ports.find((p) => p.name === 'fa');
      const fb = ports.find((p) => p.name === 'fb');
      c.fwRx = fa?.rxPackets;
      c.fwRingDrops = fa?.kernelDrops;
      c.fwTx = fb?.txPackets;
    } catch {
      /* no API answer: the figures stay unknown */
    }
  }
  return c;
}

function lossDelta(a: LossCounters, b: LossCounters): LossCounters {
  const d: LossCounters = {};
  for (const k of Object.keys(b) as (keyof LossCounters)[]) {
    const x = a[k];
    const y = b[k];
    if (typeof x === 'number' && typeof y === 'number' && Number.isFinite(x) && Number.isFinite(y)) d[k] = y - x;
  }
  return d;
}

const median = (a: number[]) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** Median of the measured values (null: none), with [min-max] when there are several. */
function summary(vals: (number | null | undefined)[], digits: number): { median: number | null; text: string } {
  const v = vals.filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
  if (!v.length) return { median: null, text: '–' };
  const m = median(v);
  const f = (x: number) => x.toFixed(digits).replace(/^-(0\.?0*)$/, '$1'); // no "-0.0"
  const text = v.length > 1 ? `${f(m)} [${f(Math.min(...v))}-${f(Math.max(...v))}]` : f(m);
  return { median: m, text };
}

const ratioText = (a: number | null, b: number | null) => (a === null || b === null || b === 0 ? '' : (a / b).toFixed(2));

function loadLine(points: { loadavg: number[] }[], started: number[], ended: number[]): string {
  const one = points.map((p) => p.loadavg[0]);
  return `Load averages (1/5/15 min): ${started.join(' / ')} at the start, ${ended.join(' / ')} at the end; the 1-minute figure ranged ${one.length ? `${Math.min(...one).toFixed(2)}-${Math.max(...one).toFixed(2)}` : 'n/a'} over the points (each point's is in the JSON).`;
}

const VM_LIMITS = [
  `**What this VM limits.** ${machine.cpus} vCPUs (${machine.cpu}), shared with other jobs: the sender (iperf3 client), the receiver (iperf3 server) and every`,
  'firewall hop run on the same cores, and the kernel\'s veth transmit runs the next namespace\'s receive path in the sending thread\'s softirq, so a',
  'hop\'s cost is paid on whichever core sent the frame. No figure here is a single firewall\'s capacity; they are what this path carries when everything',
  'competes for two cores. By default flatwall\'s worker keeps polling its rings for 200 ms after traffic (`--busy-poll 200000`), calling sched_yield()',
  'between polls, and runs at nice -10 (`--worker-nice`); the command line above says if a run changed that.',
];

// ---------------------------------------------------------------- sizes
interface SizeConfig {
  id: string;
  engine: EngineName;
  rules: number;
}

interface SizePoint {
  config: string;
  engine: EngineName;
  rules: number;
  frameBytes: number;
  payloadBytes: number;
  rep: number;
  /** Received packets per second, thousands. */
  kpps: number | null;
  /** Received frame bits per second (frame length incl. FCS x packets), Mb/s. */
  frameMbps: number | null;
  /** iperf3's received payload throughput, Mb/s. */
  payloadMbps: number | null;
  /** What the sender sent, thousands of packets per second. */
  sentKpps: number | null;
  lostPct: number | null;
  /** Datagrams the sender sent in the run (iperf3's count). */
  sentPackets: number | null;
  /** Where they went: the counters' growth over the run (LossCounters). */
  counters: LossCounters;
  cpu: CpuShare;
  loadavg: number[];
  error?: string;
  iperf: IperfResult;
}

async function runSizes(workDir: string): Promise<void> {
  const configs: SizeConfig[] = [
    { id: `kernel@1`, engine: KERNEL, rules: 1 },
    ...sizeEngines.filter(isFlatwall).flatMap((e): SizeConfig[] => [
      { id: `${e}@1`, engine: e, rules: 1 },
      { id: `${e}@${fmtN(big)}`, engine: e, rules: big },
    ]),
    ...(sizeEngines.includes('veth') ? [{ id: 'veth', engine: 'veth' as EngineName, rules: 1 }] : []),
  ];
  const started = la();
  const b = began();
  const points: SizePoint[] = [];
  const setup: Record<string, unknown>[] = [];
  const labs = new Map<string, Lab>();
  const write = (done: boolean) => writeSizes(done, b, configs, points, setup, started);
  try {
    for (const c of configs) {
      const missing = missingTools(engineTools(c.engine));
      if (missing.length) {
        setup.push({ config: c.id, status: 'skipped', reason: `missing ${missing.join(', ')}` });
        continue;
      }
      const file = join(workDir, `chain-${c.rules}.rules`);
      const gs = await writeGenerated({ family: 'chain', rules: c.rules }, file);
      say(`sizes: ${c.id}: generated chain:${c.rules} in ${gs.toFixed(2)} s, loading`);
      try {
        const lab = await startLab(c.engine, 1, file, c.rules, workDir);
        labs.set(c.id, lab);
        setup.push({ config: c.id, status: 'ok', load: lab.loads[0] });
        say(`sizes: ${c.id}: loaded in ${lab.loads[0].loadSeconds.toFixed(2)} s`);
      } catch (e) {
        setup.push({ config: c.id, status: 'failed', reason: (e as Error).message });
        say(`sizes: ${c.id}: failed: ${(e as Error).message}`);
      } finally {
        rmSync(file, { force: true }); // loaded; the 1M file is ~67 MB
      }
    }
    const up = configs.filter((c) => labs.has(c.id));
    let k = 0;
    const total = repeats * sizes.length * up.length;
    for (let rep = 0; rep < repeats; rep++) {
      for (const [si, size] of sizes.entries()) {
        // Rotate which lab goes first, so none is always measured right after the same neighbour.
        const shift = (si + rep) % up.length;
        for (const c of [...up.slice(shift), ...up.slice(0, shift)]) {
          const lab = labs.get(c.id)!;
          const len = size - FRAME_OVERHEAD;
          k++;
          const avg = la();
          const before = await lossCounters(lab);
          const { r, cpu } = await withCpu(pidsOf(lab), () => iperf(lab.topo, { seconds: D, udp: true, len }));
          const counters = lossDelta(before, await lossCounters(lab));
          const p: SizePoint = {
            config: c.id, engine: c.engine, rules: c.rules, frameBytes: size, payloadBytes: len, rep,
            kpps: r.pps !== undefined ? r.pps / 1000 : null,
            frameMbps: r.pps !== undefined ? (r.pps * size * 8) / 1e6 : null,
            payloadMbps: r.bps !== undefined ? r.bps / 1e6 : null,
            sentKpps: r.senderBps !== undefined ? r.senderBps / 8 / len / 1000 : null,
            lostPct: r.lostPct ?? null, cpu, loadavg: avg, error: r.error, iperf: r,
            sentPackets: r.sentPackets ?? null,
            counters,
          };
          points.push(p);
          say(`[${k}/${total}] ${size} B ${c.id}: ${p.kpps?.toFixed(1)} kpps, ${p.frameMbps?.toFixed(0)} Mb/s, sent ${p.sentKpps?.toFixed(1)} kpps, lost ${p.lostPct}%, machine busy ${(cpu.machineBusy * 100).toFixed(0)}%${cpu.firewallCores !== undefined ? `, flatwall ${cpu.firewallCores} cores, waiting ${cpu.firewallWaiting}` : ''}, load ${avg[0]}${r.error ? `, ${r.error}` : ''}`);
          write(false);
        }
      }
    }
    for (const [id, lab] of labs) {
      const s = setup.find((x) => x.config === id)!;
      s.memory = lab.engines[0].memory();
    }
  } finally {
    for (const lab of labs.values()) await stopLab(lab).catch((e) => say(`stop: ${(e as Error).message}`));
  }
  write(true);
  say(`sizes: written ${join(outDir, `${SIZES}.json`)}, ${SIZES}.md, ${SIZES}-*.svg`);
}

function writeSizes(done: boolean, runStart: Began, configs: SizeConfig[], points: SizePoint[], setup: Record<string, unknown>[], started: number[]): void {
  mkdirSync(outDir, { recursive: true });
  const ended = la();
  const get = (id: string, size: number, k: 'kpps' | 'frameMbps' | 'payloadMbps' | 'sentKpps' | 'lostPct', digits: number) =>
    summary(points.filter((p) => p.config === id && p.frameBytes === size).map((p) => p[k]), digits);
  const ids = configs.map((c) => c.id);
  const [kern] = ids;
  const others = ids.slice(1);
  const L: string[] = [];
  L.push(`# Packet-size sweep: kernel forwarding vs flatwall, UDP${quick ? ' (--quick)' : ''}`, '');
  L.push(`Sender -> Firewall -> Receiver in network namespaces, veth links, on one ${machine.cpus}-vCPU VM (${machine.cpu}; kernel ${machine.kernel}).`);
  L.push(`${kern} = kernel forwarding (routed) with ${KERNEL} and 1 rule; flatwall = an L2 bump in the wire (${fwDesc}, ${workers} worker${workers > 1 ? 's' : ''}; flatwall-afxdp: the same with \`--io afxdp\`), \`flatwall gen chain N\` rules (N-1 that never match, then ACCEPT)${ids.includes('veth') ? '; veth = no firewall, sender and receiver on one veth pair (the limit of the path)' : ''}.`);
  L.push(`iperf3 UDP \`-b 0 -l (size - 46)\`, ${D} s per point, ${repeats} repeat${repeats > 1 ? 's' : ''} (median${repeats > 1 ? ' [min-max]' : ''}); the ${ids.length} labs up at once, each size measured on each in turn.`);
  L.push('Frame sizes count the Ethernet header and the 4-byte FCS (RFC 2544; veth carries no FCS, so the bytes on the link are size - 4). Mb/s = received frames x frame length x 8 (no preamble or gap); iperf3\'s payload rate is in the JSON.');
  L.push(`Started ${runStart.at}, ${done ? 'finished' : 'PARTIAL (still running)'} after ${since(runStart)} s. Command: \`${command}\`.`, '');
  L.push(loadLine(points, started, ended), '');
  L.push(...VM_LIMITS);
  L.push('With `-b 0` one iperf3 thread sends as fast as it can; where nothing is lost, the sender (sharing the cores with the path) was the limit, not the firewall.', '');
  const failed = setup.filter((s) => s.status !== 'ok');
  for (const s of failed) L.push(`${s.config}: ${s.status}: ${s.reason}`, '');
  const tableOf = (title: string, k: 'kpps' | 'frameMbps', digits: number) => {
    L.push(`## ${title}`, '');
    L.push(`| frame (B) | UDP payload (B) | ${ids.join(' | ')} | ${others.map((o) => `${o} / ${kern}`).join(' | ')} |`);
    L.push(`|---:|---:|${ids.map(() => '---:').join('|')}|${others.map(() => '---:').join('|')}|`);
    for (const s of sizes) {
      const cells = ids.map((id) => get(id, s, k, digits));
      L.push(`| ${s} | ${s - FRAME_OVERHEAD} | ${cells.map((c) => c.text).join(' | ')} | ${cells.slice(1).map((c) => ratioText(c.median, cells[0].median)).join(' | ')} |`);
    }
    L.push('');
  };
  tableOf('Packet rate received (kpps)', 'kpps', 1);
  tableOf('Throughput received (Mb/s of frames)', 'frameMbps', 0);
  L.push('## Sent (kpps) and lost (%)', '');
  L.push(`| frame (B) | ${ids.map((id) => `${id} sent | lost`).join(' | ')} |`);
  L.push(`|---:|${ids.map(() => '---:|---:').join('|')}|`);
  for (const s of sizes) L.push(`| ${s} | ${ids.map((id) => `${get(id, s, 'sentKpps', 1).text} | ${get(id, s, 'lostPct', 1).text}`).join(' | ')} |`);
  L.push('');
  L.push('## Where the datagrams went (% of those sent)', '');
  L.push('Counters over each run: flatwall\'s RX ring on fa full (the kernel\'s drop count for its AF_PACKET ring; AF_XDP: XDP_STATISTICS rx_dropped + rx_ring_full + tx_invalid_descs), the receiver\'s UDP socket buffer full', '(RcvbufErrors in its namespace), delivered to the socket (InDatagrams), the rest (sent - the three; the backlog drops of every CPU, machine-wide, are in the JSON).', 'Medians over the repeats.', '');
  L.push(`| frame (B) | ${ids.map((id) => `${id} ${id.startsWith('flatwall') ? 'ring full | ' : ''}socket full | delivered | rest`).join(' | ')} |`);
  L.push(`|---:|${ids.map((id) => (id.startsWith('flatwall') ? '---:|---:|---:|---:' : '---:|---:|---:')).join('|')}|`);
  for (const sz of sizes) {
    const cells = ids.map((id) => {
      const ps = points.filter((p) => p.config === id && p.frameBytes === sz && p.sentPackets);
      const pct = (f: (p: SizePoint) => number | undefined) => summary(ps.map((p) => { const v = f(p); return v === undefined ? null : (100 * v) / p.sentPackets!; }), 1).text;
      const ring = (p: SizePoint) => p.counters.fwRingDrops;
      const sock = (p: SizePoint) => p.counters.rcvbufErrors;
      const got = (p: SizePoint) => p.counters.udpInDatagrams;
      const rest = (p: SizePoint) => (got(p) === undefined || sock(p) === undefined ? undefined : p.sentPackets! - got(p)! - sock(p)! - (ring(p) ?? 0));
      return `${id.startsWith('flatwall') ? `${pct(ring)} | ` : ''}${pct(sock)} | ${pct(got)} | ${pct(rest)}`;
    });
    L.push(`| ${sz} | ${cells.join(' | ')} |`);
  }
  L.push('');
  L.push('## CPU during the points', '');
  L.push('Machine busy: all CPUs, every tenant (median over the points of a lab). flatwall cores: CPU its process used (main thread and worker);', 'flatwall waiting: time its threads were runnable but had no CPU (schedstat), per second (1.0 = one thread waiting all the time).', '');
  L.push('| lab | rule load (s) | machine busy | flatwall cores | flatwall waiting | memory (MB) |', '|---|---:|---:|---:|---:|---:|');
  for (const id of ids) {
    const ps = points.filter((p) => p.config === id);
    const s = setup.find((x) => x.config === id) as { load?: LoadReport; memory?: { rssMb?: number; kernelMb?: number } } | undefined;
    const mem = s?.memory?.rssMb ?? s?.memory?.kernelMb;
    L.push(`| ${id} | ${s?.load ? s.load.loadSeconds.toFixed(3) : ''} | ${summary(ps.map((p) => p.cpu.machineBusy * 100), 0).text}% | ${summary(ps.map((p) => p.cpu.firewallCores), 2).text} | ${summary(ps.map((p) => p.cpu.firewallWaiting), 2).text} | ${mem?.toFixed(1) ?? ''} |`);
  }
  L.push('', `Plots: [packet rate](${SIZES}-kpps.svg), [throughput](${SIZES}-mbps.svg).`, '');
  writeFileSync(join(outDir, `${SIZES}.md`), L.join('\n'));
  const json = {
    benchmark: SIZES, quick, done, startedAt: runStart.at, seconds: +since(runStart), command, machine,
    durationSeconds: D, repeats, workers, flatwallArgs: fwArgs, sizes, frameOverheadBytes: FRAME_OVERHEAD, configs, loadavgStart: started, loadavgEnd: ended, setup, points,
  };
  writeFileSync(join(outDir, `${SIZES}.json`), `${JSON.stringify(json, null, 2)}\n`);
  if (!done) return;
  for (const [k, label] of [['kpps', 'packets received (kpps)'], ['mbps', 'frames received (Mb/s)']] as const) {
    const series = ids.map((id) => ({
      name: id,
      points: sizes.flatMap((s) => {
        const y = get(id, s, k === 'kpps' ? 'kpps' : 'frameMbps', 3).median;
        return y === null ? [] : [{ x: s, y }];
      }),
    }));
    writeFileSync(join(outDir, `${SIZES}-${k}.svg`), svgPlot(series, { title: `UDP by frame size: ${label}${quick ? ' (quick)' : ''}`, xLabel: 'frame size (B, incl. FCS)', yLabel: label, linearX: true }));
  }
}

// ---------------------------------------------------------------- chain
interface ChainPoint {
  engine: EngineName;
  hops: number;
  rep: number;
  status: 'ok' | 'skipped' | 'failed';
  reason?: string;
  idlePingMs: number | null;
  tcpMbps: number | null;
  retransmits?: number;
  /** Each hop's rule load, seconds. */
  loadSeconds: number[];
  /** During the TCP run. */
  cpu?: CpuShare;
  loadavg: number[];
  ping?: PingResult;
  tcp?: IperfResult;
  seconds: number;
}

async function chainPoint(engine: EngineName, hops: number, file: string, workDir: string, rep: number): Promise<ChainPoint> {
  const p: ChainPoint = { engine, hops, rep, status: 'ok', idlePingMs: null, tcpMbps: null, loadSeconds: [], loadavg: la(), seconds: 0 };
  const t0 = performance.now();
  const missing = missingTools(engineTools(engine));
  if (missing.length) return { ...p, status: 'skipped', reason: `missing ${missing.join(', ')}` };
  let lab: Lab | undefined;
  try {
    lab = await startLab(engine, hops, file, hopRules, workDir);
    p.loadSeconds = lab.loads.map((l) => +l.loadSeconds.toFixed(4));
    const ip = await ping(lab.topo, { count: quick ? 20 : 50, intervalS: quick ? 0.02 : 0.05, deadlineS: quick ? 4 : 8 });
    p.ping = ip;
    p.idlePingMs = ip.avgMs ?? null;
    const { r, cpu } = await withCpu(pidsOf(lab), () => iperf(lab!.topo, { seconds: D }));
    p.tcp = r;
    p.cpu = cpu;
    p.tcpMbps = r.bps !== undefined ? r.bps / 1e6 : null;
    p.retransmits = r.retransmits;
    if (ip.error || r.error) p.reason = [ip.error, r.error].filter(Boolean).join('; ');
  } catch (e) {
    p.status = 'failed';
    p.reason = (e as Error).message;
  } finally {
    if (lab) await stopLab(lab).catch((e) => say(`stop: ${(e as Error).message}`));
    p.seconds = +((performance.now() - t0) / 1000).toFixed(1);
  }
  return p;
}

async function runChain(workDir: string): Promise<void> {
  const started = la();
  const b = began();
  const points: ChainPoint[] = [];
  const file = join(workDir, `chain-${hopRules}.rules`);
  await writeGenerated({ family: 'chain', rules: hopRules }, file);
  const total = repeats * hopCounts.length * hopEngines.length;
  let k = 0;
  for (let rep = 0; rep < repeats; rep++) {
    for (const hops of hopCounts) {
      for (const e of (rep % 2 ? [...hopEngines].reverse() : hopEngines) as EngineName[]) {
        k++;
        say(`[${k}/${total}] chain of ${hops} ${e} hop${hops > 1 ? 's' : ''}`);
        const p = await chainPoint(e, hops, file, workDir, rep);
        points.push(p);
        say(`chain ${hops} x ${e}: ${p.status !== 'ok' ? `${p.status}: ${p.reason}` : `TCP ${p.tcpMbps?.toFixed(0)} Mb/s, ping ${p.idlePingMs} ms, machine busy ${((p.cpu?.machineBusy ?? 0) * 100).toFixed(0)}%${p.cpu?.firewallCores !== undefined ? `, flatwall hops ${p.cpu.firewallCores} cores, waiting ${p.cpu.firewallWaiting}` : ''}, load ${p.loadavg[0]}${p.reason ? `, ${p.reason}` : ''}`} (${p.seconds} s)`);
        writeChain(false, b, points, started);
      }
    }
  }
  rmSync(file, { force: true });
  writeChain(true, b, points, started);
  say(`chain: written ${join(outDir, `${CHAIN}.json`)}, ${CHAIN}.md, ${CHAIN}-*.svg`);
}

function writeChain(done: boolean, runStart: Began, points: ChainPoint[], started: number[]): void {
  mkdirSync(outDir, { recursive: true });
  const ended = la();
  const get = (e: string, h: number, f: (p: ChainPoint) => number | null | undefined, digits: number) =>
    summary(points.filter((p) => p.engine === e && p.hops === h && p.status === 'ok').map(f), digits);
  const L: string[] = [];
  L.push(`# Chains of middleboxes: 1 to ${Math.max(...hopCounts)} firewalls in series${quick ? ' (--quick)' : ''}`, '');
  L.push(`Sender -- FW1 -- ... -- FWN -- Receiver in network namespaces, veth links, on one ${machine.cpus}-vCPU VM (${machine.cpu}; kernel ${machine.kernel}).`);
  L.push(`Every hop of a chain is the same engine: flatwall = an L2 bump in the wire per hop (${fwDesc}, ${workers} worker${workers > 1 ? 's' : ''}), one L2 segment end to end;`);
  L.push(`${KERNEL} = kernel forwarding per hop (a router per hop, a /24 per link). Each hop has \`flatwall gen chain ${hopRules}\` (${hopRules - 1} rules that never match, then ACCEPT).`);
  L.push(`Idle ping: ${quick ? 20 : 50} echoes, average RTT. TCP: iperf3, one stream, ${D} s. ${repeats} repeat${repeats > 1 ? 's' : ''} (median${repeats > 1 ? ' [min-max]' : ''}), the engine order alternating per repeat.`);
  L.push(`Started ${runStart.at}, ${done ? 'finished' : 'PARTIAL (still running)'} after ${since(runStart)} s. Command: \`${command}\`.`, '');
  L.push(loadLine(points, started, ended), '');
  L.push(...VM_LIMITS);
  L.push('With N hops there are N firewalls (N flatwall processes, or N kernel routers whose work runs in softirq) on the same two cores as the sender and receiver.', '');
  // Ratio columns: every other engine against the kernel (or the last engine named).
  const ref = hopEngines.includes(KERNEL) ? KERNEL : hopEngines[hopEngines.length - 1];
  const vs = hopEngines.filter((e) => e !== ref);
  L.push('## TCP throughput (Mb/s) and idle ping RTT (ms)', '');
  L.push(`| hops | ${hopEngines.map((e) => `${e} TCP`).join(' | ')} |${vs.map((e) => ` ${e} / ${ref} TCP |`).join('')} ${hopEngines.map((e) => `${e} ping`).join(' | ')} |${vs.map((e) => ` ${e} - ${ref} ping (us) |`).join('')}`);
  L.push(`|---:|${hopEngines.map(() => '---:').join('|')}|${vs.map(() => '---:|').join('')}${hopEngines.map(() => '---:').join('|')}|${vs.map(() => '---:|').join('')}`);
  for (const h of hopCounts) {
    const tcp = new Map(hopEngines.map((e) => [e, get(e, h, (p) => p.tcpMbps, 0)]));
    const pg = new Map(hopEngines.map((e) => [e, get(e, h, (p) => p.idlePingMs, 3)]));
    const dPing = (e: string) => (pg.get(e)!.median !== null && pg.get(ref)!.median !== null ? ((pg.get(e)!.median! - pg.get(ref)!.median!) * 1000).toFixed(0) : '');
    L.push(`| ${h} | ${hopEngines.map((e) => tcp.get(e)!.text).join(' | ')} |${vs.map((e) => ` ${ratioText(tcp.get(e)!.median, tcp.get(ref)!.median)} |`).join('')} ${hopEngines.map((e) => pg.get(e)!.text).join(' | ')} |${vs.map((e) => ` ${dPing(e)} |`).join('')}`);
  }
  L.push('');
  L.push(`## Relative to the same engine's 1-hop chain`, '');
  L.push(`| hops | ${hopEngines.map((e) => `${e} TCP`).join(' | ')} | ${hopEngines.map((e) => `${e} ping per hop (us)`).join(' | ')} |`);
  L.push(`|---:|${hopEngines.map(() => '---:').join('|')}|${hopEngines.map(() => '---:').join('|')}|`);
  const base = Math.min(...hopCounts);
  for (const h of hopCounts) {
    const rel = hopEngines.map((e) => ratioText(get(e, h, (p) => p.tcpMbps, 0).median, get(e, base, (p) => p.tcpMbps, 0).median));
    const perHop = hopEngines.map((e) => {
      const v = get(e, h, (p) => p.idlePingMs, 4).median;
      return v === null ? '' : ((v * 1000) / h).toFixed(0);
    });
    L.push(`| ${h} | ${rel.join(' | ')} | ${perHop.join(' | ')} |`);
  }
  L.push('');
  L.push('## CPU during the TCP run, TCP retransmits, rule loads', '');
  L.push('Machine busy: all CPUs, every tenant. flatwall cores: CPU all the chain\'s flatwall processes used together; waiting: time their threads', 'were runnable but had no CPU (schedstat), per second.', '');
  L.push(`| hops | ${hopEngines.map((e) => `${e} machine busy | ${isFlatwall(e) ? 'flatwall cores | waiting | ' : ''}retransmits | load per hop (s)`).join(' | ')} |`);
  L.push(`|---:|${hopEngines.map((e) => (isFlatwall(e) ? '---:|---:|---:|---:|---:' : '---:|---:|---:')).join('|')}|`);
  for (const h of hopCounts) {
    L.push(`| ${h} | ${hopEngines.map((e) => {
      const busy = get(e, h, (p) => (p.cpu ? p.cpu.machineBusy * 100 : null), 0).text;
      const cores = isFlatwall(e) ? `${get(e, h, (p) => p.cpu?.firewallCores, 2).text} | ${get(e, h, (p) => p.cpu?.firewallWaiting, 2).text} | ` : '';
      return `${busy}% | ${cores}${get(e, h, (p) => p.retransmits, 0).text} | ${get(e, h, (p) => Math.max(...p.loadSeconds), 3).text}`;
    }).join(' | ')} |`);
  }
  L.push('');
  for (const p of points.filter((x) => x.status !== 'ok' || x.reason)) L.push(`${p.hops} x ${p.engine} (repeat ${p.rep + 1}): ${p.status}: ${p.reason}`, '');
  L.push(`Plots: [TCP throughput](${CHAIN}-tcp_mbps.svg), [idle ping](${CHAIN}-idle_ping_ms.svg).`, '');
  writeFileSync(join(outDir, `${CHAIN}.md`), L.join('\n'));
  const json = {
    benchmark: CHAIN, quick, done, startedAt: runStart.at, seconds: +since(runStart), command, machine,
    durationSeconds: D, repeats, workers, flatwallArgs: fwArgs, hops: hopCounts, hopRules, engines: hopEngines, loadavgStart: started, loadavgEnd: ended, points,
  };
  writeFileSync(join(outDir, `${CHAIN}.json`), `${JSON.stringify(json, null, 2)}\n`);
  if (!done) return;
  for (const [k, label, f] of [
    ['tcp_mbps', 'TCP throughput (Mb/s)', (p: ChainPoint) => p.tcpMbps],
    ['idle_ping_ms', 'idle ping RTT (ms)', (p: ChainPoint) => p.idlePingMs],
  ] as const) {
    const series = hopEngines.map((e) => ({
      name: e,
      points: hopCounts.flatMap((h) => {
        const y = get(e, h, f, 4).median;
        return y === null ? [] : [{ x: h, y }];
      }),
    }));
    writeFileSync(join(outDir, `${CHAIN}-${k}.svg`), svgPlot(series, { title: `Chain of firewalls: ${label}${quick ? ' (quick)' : ''}`, xLabel: 'firewalls in series', yLabel: label, linearX: true }));
  }
}

// ---------------------------------------------------------------- main
async function main(): Promise<void> {
  if (process.getuid?.() !== 0) fail('needs root (network namespaces)');
  const missing = missingTools(['ip', 'ping', 'iperf3']);
  if (missing.length) fail(`needs ${missing.join(', ')}`);
  installTeardown(true, (sig) => say(`${sig}: tearing down, partial results in ${outDir}`));
  const workDir = mkdtempSync(join(tmpdir(), `flatwall-bench-sweep-${process.pid}-`));
  process.on('exit', () => rmSync(workDir, { recursive: true, force: true }));
  say(`load average ${la().join(' ')}; ${D} s per point, ${repeats} repeat${repeats > 1 ? 's' : ''}${quick ? ' (--quick)' : ''}`);
  if (table !== 'chain') await runSizes(workDir);
  if (table !== 'sizes') await runChain(workDir);
}

main().catch((e) => {
  process.stderr.write(`bench:sweep: ${(e as Error).stack ?? e}\n`);
  process.exitCode = 1;
});
