// End-to-end benchmark: the seed paper's experiment (Kurek et al. 2024, see
// /work/shared/reference/seed-firewall-paper.md) on one machine. Sender ->
// Firewall -> Receiver network namespaces joined by veth pairs; in the middle
// flatwall (an L2 bump in the wire) or kernel forwarding with iptables-legacy,
// iptables-nft, nft (one rule per line) or nft-set (the rules folded into one
// set); `flatwall gen chain N` rule sets (N-1 rules that never match, then
// ACCEPT), N = 1 ... 1M.
//
//   npm run bench:e2e [-- --quick] [--engines a,b] [--counts 1,1000] [--duration S]
//                        [--workers N] [--load-timeout S] [--out DIR]
//                        [--ext] [--repeat R] [--metrics tcp_mbps,udp_mbps,...]
//                        [--engine-counts "iptables-legacy=1;nft=1,1000"] [--suffix S]
//                        [--ref "iptables-legacy=1;veth=1"]
//
//   --engine-counts  measure these engines at these counts only (the rest of
//              --counts marked skipped), e.g. the kernel reference at 1 rule
//              beside flatwall at every count.
//   --ref      reference engines measured at a fixed count (iptables-legacy=1:
//              kernel forwarding at 1 rule) in every count's round, beside
//              the others: their table's column N is the reference measured
//              in N's round, and the targets pair each flatwall point with
//              the reference of the same round and repeat (measured minutes
//              apart otherwise, on a shared machine whose load drifts).
//   --suffix S write e2e-S.{json,md} and e2e-S-*.svg instead of e2e.*, so a
//              run with other engines (e.g. the I/O paths: --suffix io)
//              sits beside the default one.
//   --ext      also run every point with the extension block of
//              bench/ext-rules.ts in the table (fail2ban's -m set ban, recent,
//              hashlimit, limit+LOG, ttl, length rules whose match programs
//              every benchmark packet runs, verdict still ACCEPT; the set,
//              10,000 banned addresses, given to flatwall as `--ipset FILE`
//              and to the kernel's iptables by `ipset restore` in the
//              firewall namespace): plain and ext back to back, the
//              order alternating per repeat, so ext/plain ratios come from one
//              run. Writes e2e-ext.{json,md} (not e2e.*), with a table of the
//              ext/plain ratios (median [min-max] over repeats) and, for
//              flatwall, the check that the programs ran: the per-rule
//              counters of the block (API GET /rules) and the flow cache
//              (GET /stats; a walk that ran a program is never cached, so
//              ext should show no hits), and the set's entries (GET /sets).
//   --repeat R each (engine, N, table) point R times (default 1).
//   --metrics  only these measurements (keys as in the JSON: idle_ping_ms,
//              tcp_mbps, udp_mbps, tcp_rr, udp_rr, tcp_crr, icmp_load_ms,
//              syn_ms, pps64_k; load_s and mem_mb always). Quick ext check:
//              --engines flatwall --counts 1000000 --ext --repeat 3
//              --metrics tcp_mbps,udp_mbps,pps64_k --duration 2
//
// Metrics per (engine, N), the seed paper's rows: idle ping delay, TCP and UDP
// (1400 B) throughput (iperf3), TCP and UDP request/response rate and TCP
// connection rate (nettool: netperf is not packaged here, see
// src/lab/nettool.ts), ICMP latency under a TCP load, TCP latency (hping3 SYN
// to a listening port), rule load time, firewall memory, and the 64-byte
// packet rate (iperf3 UDP, 18-byte payload = 60-byte frames + FCS).
//
// Everything is bounded: each measurement has a fixed duration and a hard
// timeout; loads have a budget (--load-timeout) and a point whose load is
// predicted to exceed it (linear in N from the previous point) is skipped and
// marked so. Writes bench/results/e2e.json (after every point), e2e.md and
// e2e-*.svg; progress goes to stderr.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ENGINES, engineMode, engineTools, isEngine, isFlatwall, startEngine, type EngineName, type LoadReport } from '../src/lab/engines';
import { writeGenerated } from '../src/lab/rules';
import { Topology, installTeardown } from '../src/lab/topology';
import { hpingSyn, iperf, ping, pingUnderLoad, rr, startEchoServer } from '../src/lab/traffic';
import { missingTools } from '../src/lab/tools';
import { svgPlot } from './plot';
import { argv, flag, opt } from './args';
import { labMachine, printHeaderHelp } from './lab-info';
import { bannedAddresses, EXT_HEAD, EXT_SET, EXT_SUMMARY, EXT_TAIL, extIpsetText, extLines } from './ext-rules';
import { runSync } from '../src/lab/proc';
import { apiCall } from '../src/cli/ctl';
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';

// ---------------------------------------------------------------- options
if (flag('--help') || flag('-h')) printHeaderHelp(__filename);
const quick = flag('--quick');
const engines = (opt('--engines') ?? ENGINES.join(',')).split(',').filter(Boolean);
for (const e of engines) if (!isEngine(e)) fail(`unknown engine ${e} (one of ${ENGINES.join(', ')})`);
const counts = (opt('--counts') ?? (quick ? '1,1000,100000,1000000' : '1,10,100,1000,10000,100000,1000000')).split(',').map(Number);
if (counts.some((n) => !Number.isInteger(n) || n < 1)) fail('--counts: positive integers');
const D = Number(opt('--duration') ?? (quick ? 1 : 3)); // seconds per throughput / rate measurement
const workers = Number(opt('--workers') ?? 1);
const loadTimeout = Number(opt('--load-timeout') ?? (quick ? 30 : 180));
const outDir = opt('--out') ?? join(__dirname, '..', '..', 'bench', 'results');
const withExt = flag('--ext');
const repeats = Number(opt('--repeat') ?? 1);
if (!Number.isInteger(repeats) || repeats < 1) fail('--repeat: a positive integer');
const VARIANTS: Variant[] = withExt ? ['plain', 'ext'] : ['plain'];
const suffix = opt('--suffix') ? `-${opt('--suffix')}` : '';
if (!/^[-a-z0-9_.]*$/i.test(suffix)) fail('--suffix: letters, digits, - _ .');
const baseName = `${withExt ? 'e2e-ext' : 'e2e'}${suffix}`;
/** --engine-counts: engine -> the only counts it is measured at. */
const engineCounts = new Map<string, Set<number>>();
for (const part of (opt('--engine-counts') ?? '').split(';').filter(Boolean)) {
  const [e, ns] = part.split('=');
  if (!isEngine(e) || !engines.includes(e)) fail(`--engine-counts: ${e} is not one of the engines run (${engines.join(', ')})`);
  const set = new Set((ns ?? '').split(',').filter(Boolean).map(Number));
  if (!set.size || [...set].some((n) => !counts.includes(n))) fail(`--engine-counts: ${part}: counts from --counts (${counts.join(',')})`);
  engineCounts.set(e, set);
}
/** --ref: engine -> the one count it is measured at, in every round. */
const refCounts = new Map<string, number>();
for (const part of (opt('--ref') ?? '').split(';').filter(Boolean)) {
  const [e, nText] = part.split('=');
  const n = Number(nText);
  if (!isEngine(e) || !engines.includes(e)) fail(`--ref: ${e} is not one of the engines run (${engines.join(', ')})`);
  if (engineCounts.has(e)) fail(`--ref: ${e} is in --engine-counts too`);
  if (!Number.isInteger(n) || n < 1) fail(`--ref: ${part}: ENGINE=N, N a positive integer`);
  refCounts.set(e, n);
}
type Variant = 'plain' | 'ext';
const MEASURED = ['idle_ping_ms', 'tcp_mbps', 'udp_mbps', 'tcp_rr', 'udp_rr', 'tcp_crr', 'icmp_load_ms', 'syn_ms', 'pps64_k'];
const only = opt('--metrics')?.split(',').filter(Boolean);
for (const k of only ?? []) if (!MEASURED.includes(k)) fail(`--metrics: unknown ${k} (one of ${MEASURED.join(', ')})`);
const want = (k: string) => !only || only.includes(k);
/** Table rows: the metrics measured (--metrics), load time and memory always. */
const shown = (mt: { key: string }) => want(mt.key) || !MEASURED.includes(mt.key);
// In quick mode only the two engines the targets compare are run at 1M
// rules (the nft loads at 1M take 20-60 s each and would not fit 5 minutes).
const QUICK_1M = new Set<EngineName>(['flatwall', 'flatwall-afxdp', 'iptables-legacy']);

function fail(msg: string): never {
  process.stderr.write(`bench:e2e: ${msg}\n`);
  process.exit(2);
}

// ---------------------------------------------------------------- metrics
interface MetricDef {
  key: string;
  label: string;
  unit: string;
  higher: boolean;
  logY: boolean;
  digits: number;
}
const METRICS: MetricDef[] = [
  { key: 'idle_ping_ms', label: 'idle ping delay', unit: 'ms', higher: false, logY: true, digits: 3 },
  { key: 'tcp_mbps', label: 'TCP throughput', unit: 'Mb/s', higher: true, logY: true, digits: 0 },
  { key: 'udp_mbps', label: 'UDP throughput (1400 B)', unit: 'Mb/s', higher: true, logY: true, digits: 1 },
  { key: 'tcp_rr', label: 'TCP requests/s', unit: '/s', higher: true, logY: true, digits: 0 },
  { key: 'udp_rr', label: 'UDP requests/s', unit: '/s', higher: true, logY: true, digits: 0 },
  { key: 'tcp_crr', label: 'TCP connections/s', unit: '/s', higher: true, logY: true, digits: 0 },
  { key: 'icmp_load_ms', label: 'ICMP latency under TCP load', unit: 'ms', higher: false, logY: true, digits: 3 },
  { key: 'syn_ms', label: 'TCP latency (hping3 SYN)', unit: 'ms', higher: false, logY: true, digits: 3 },
  { key: 'load_s', label: 'rule load time', unit: 's', higher: false, logY: true, digits: 3 },
  { key: 'mem_mb', label: 'firewall memory', unit: 'MB', higher: false, logY: true, digits: 1 },
  { key: 'pps64_k', label: '64-byte packet rate (per worker)', unit: 'kpps', higher: true, logY: true, digits: 1 },
];

interface Point {
  engine: EngineName;
  rules: number;
  /** The count whose round measured it: rules, except for a --ref engine. */
  round: number;
  /** plain: the generated table; ext: with the extension block (--ext). */
  variant: Variant;
  rep: number;
  status: 'ok' | 'skipped' | 'failed';
  reason?: string;
  /** Metric values (null: not measured / no result). */
  m: Record<string, number | null>;
  /** Metrics whose measurement hit its time box (partial or no result). */
  timeboxed: string[];
  notes: string[];
  load?: LoadReport;
  raw: Record<string, unknown>;
  loadavg: number[];
  seconds: number;
}

const points: Point[] = [];
const startedAt = new Date().toISOString();
const tStart = performance.now();

function say(s: string): void {
  const t = ((performance.now() - tStart) / 1000).toFixed(0).padStart(4);
  process.stderr.write(`bench:e2e ${t}s ${s}\n`);
}

const machine = labMachine();

// ---------------------------------------------------------------- one point
async function measure(engine: EngineName, n: number, round: number, file: string, workDir: string, predicted: number | undefined, variant: Variant, rep: number, setsFile?: string): Promise<Point> {
  const p: Point = { engine, rules: n, round, variant, rep, status: 'ok', m: {}, timeboxed: [], notes: [], raw: {}, loadavg: loadavg().map((x) => +x.toFixed(2)), seconds: 0 };
  const t0 = performance.now();
  for (const mt of METRICS) p.m[mt.key] = null;
  if (quick && n >= 1_000_000 && !QUICK_1M.has(engine)) {
    p.status = 'skipped';
    p.reason = `--quick: 1M rules only for ${[...QUICK_1M].join(' and ')}`;
    return p;
  }
  if (predicted !== undefined && predicted > loadTimeout) {
    p.status = 'skipped';
    p.reason = `predicted load time ${predicted.toFixed(0)} s (linear from the previous point) exceeds the ${loadTimeout} s budget (--load-timeout)`;
    return p;
  }
  if (engineCounts.has(engine) && !engineCounts.get(engine)!.has(n)) {
    p.status = 'skipped';
    p.reason = `--engine-counts: ${engine} only at ${[...engineCounts.get(engine)!].join(', ')}`;
    return p;
  }
  if (engine === 'veth' && (n !== counts[0] || variant !== 'plain')) {
    p.status = 'skipped';
    p.reason = 'veth has no rules: measured once, at the first count';
    return p;
  }
  const missing = missingTools(engineTools(engine));
  if (missing.length) {
    p.status = 'skipped';
    p.reason = `missing ${missing.join(', ')}`;
    return p;
  }
  const topo = Topology.create(engineMode(engine), 'fwbench');
  const step = (s: string) => say(`${engine} ${n.toLocaleString('en-US')} rules${withExt ? ` ${variant}` : ''}: ${s}`);
  try {
    step('loading rules');
    let fw;
    // The ext block's -m set rule names fail2ban's set: flatwall loads it
    // before the rules (--ipset); the kernel needs it in the namespace
    // before iptables-restore (outside the measured load and memory).
    const extraArgs = variant === 'ext' && isFlatwall(engine) ? ['--ipset', setsFile!] : undefined;
    try {
      if (variant === 'ext' && !isFlatwall(engine)) {
        const r = runSync('ipset', ['restore'], { ns: topo.firewall, input: readFileSync(setsFile!, 'utf8'), timeoutMs: 60_000, allowFail: true });
        if (r.code !== 0) throw new Error(`ipset restore of ${EXT_SET} failed (exit ${r.code ?? r.signal}): ${r.stderr.trim().slice(0, 300)}`);
      }
      fw = await startEngine(engine, topo, file, { timeoutMs: loadTimeout * 1000, workDir, workers, rules: n, extraArgs });
    } catch (e) {
      const msg = (e as Error).message;
      p.status = /did not finish within|not ready within/.test(msg) ? 'skipped' : 'failed';
      p.reason = p.status === 'skipped' ? `load exceeded the ${loadTimeout} s budget: ${msg}` : msg;
      return p;
    }
    p.load = fw.report;
    p.m.load_s = fw.report.loadSeconds;
    await startEchoServer(topo);
    await ping(topo, { count: 2, intervalS: 0.2, deadlineS: 4 }); // neighbour entries, route caches

    let ipAvg = 0;
    if (want('idle_ping_ms')) {
      step('idle ping');
      const ip = await ping(topo, { count: quick ? 20 : 50, intervalS: quick ? 0.02 : 0.05, deadlineS: quick ? 4 : 8 });
      p.raw.idle_ping = ip;
      p.m.idle_ping_ms = ip.avgMs ?? null;
      ipAvg = ip.avgMs ?? 0;
    }

    if (want('tcp_mbps')) {
      step(`TCP throughput ${D} s`);
      const tcp = await iperf(topo, { seconds: D });
      p.raw.tcp = tcp;
      p.m.tcp_mbps = tcp.bps !== undefined ? tcp.bps / 1e6 : null;
      if (tcp.timedOut) p.timeboxed.push('tcp_mbps');
    }

    if (want('udp_mbps')) {
      step(`UDP 1400 B throughput ${D} s`);
      const udp = await iperf(topo, { seconds: D, udp: true, len: 1400 });
      p.raw.udp = udp;
      p.m.udp_mbps = udp.bps !== undefined ? udp.bps / 1e6 : null;
      if (udp.timedOut) p.timeboxed.push('udp_mbps');
    }

    for (const [key, kind] of [['tcp_rr', 'tcp-rr'], ['udp_rr', 'udp-rr'], ['tcp_crr', 'tcp-crr']] as const) {
      if (!want(key)) continue;
      step(`${kind} ${D} s`);
      const r = await rr(topo, kind, D);
      p.raw[key] = r;
      p.m[key] = r.perSecond ?? null;
      if (r.timedOut) p.timeboxed.push(key);
    }

    if (want('icmp_load_ms')) {
      step(`ICMP latency under TCP load ${D + 1} s`);
      const pl = await pingUnderLoad(topo, D + 1);
      p.raw.icmp_load = pl;
      p.m.icmp_load_ms = pl.avgMs ?? null;
    }

    if (!want('syn_ms')) {
      // not asked for
    } else if (missingTools(['hping3']).length === 0) {
      step('hping3 SYN latency');
      const slow = ipAvg > 5; // long chains: fewer probes, same time box
      const syn = await hpingSyn(topo, { count: slow ? 10 : 20, intervalMs: slow ? 100 : 20 });
      p.raw.syn = syn;
      p.m.syn_ms = syn.avgMs ?? null;
    } else p.notes.push('hping3 missing: no SYN latency');

    if (want('pps64_k')) {
      step(`64-byte packet rate ${D} s`);
      const small = await iperf(topo, { seconds: D, udp: true, len: 18 });
      p.raw.pps64 = small;
      if (small.pps !== undefined) p.m.pps64_k = small.pps / 1000 / (isFlatwall(engine) ? workers : 1);
      if (small.timedOut) p.timeboxed.push('pps64_k');
      if (small.lostPct !== undefined && small.lostPct < 1) p.notes.push('64-byte rate limited by the iperf3 sender (no loss)');
    }

    if (isFlatwall(engine)) p.raw.rule_check = await ruleCheck(join(workDir, 'api.sock'), variant);

    const mem = fw.memory();
    p.raw.memory = mem;
    p.m.mem_mb = mem.rssMb ?? mem.kernelMb ?? null;
    if (isFlatwall(engine)) p.raw.counters = await fw.stop();
    else await fw.stop();
    for (const [k, v] of Object.entries(p.raw)) {
      const err = (v as { error?: string } | undefined)?.error;
      if (err) p.notes.push(`${k}: ${err}`);
    }
  } catch (e) {
    p.status = 'failed';
    p.reason = (e as Error).message;
  } finally {
    await topo.destroy();
    p.seconds = +((performance.now() - t0) / 1000).toFixed(1);
  }
  return p;
}

// ---------------------------------------------------------------- output
const fmtN = (n: number) => (n >= 1_000_000 ? `${n / 1_000_000}M` : n >= 1000 ? `${n / 1000}k` : String(n));

/** The plain table's points of (engine, n), every repeat. */
function pointsOf(engine: string, n: number): Point[] {
  return points.filter((p) => p.engine === engine && (p.round ?? p.rules) === n && p.variant === 'plain');
}

function find(engine: string, n: number): Point | undefined {
  return pointsOf(engine, n)[0];
}

/** A metric over the repeats that measured it: median, min, max. */
function stat(engine: string, n: number, key: string): { median: number; min: number; max: number; count: number } | null {
  const v = pointsOf(engine, n).filter((p) => p.status === 'ok').map((p) => p.m[key]).filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
  return v.length ? { median: median(v), min: Math.min(...v), max: Math.max(...v), count: v.length } : null;
}

/** Median over the repeats (the first repeat's value when there is one). */
function val(engine: string, n: number, key: string): number | null {
  return stat(engine, n, key)?.median ?? null;
}

/** Median, and [min-max] over the repeats when there are several; `*` if a repeat hit its time box. */
function cell(engine: string, n: number, mt: MetricDef): string {
  const ps = pointsOf(engine, n);
  if (!ps.length) return '';
  if (!ps.some((p) => p.status === 'ok')) return ps[0].status === 'skipped' ? 'skip' : 'fail';
  const s = stat(engine, n, mt.key);
  if (!s) return '–';
  const f = (x: number) => x.toFixed(mt.digits);
  const txt = s.count > 1 ? `${f(s.median)} [${f(s.min)}-${f(s.max)}]` : f(s.median);
  return ps.some((p) => p.timeboxed.includes(mt.key)) ? `${txt}*` : txt;
}

interface Target {
  name: string;
  value: number | null;
  goal: string;
  met: boolean | null;
  detail: string;
}

/** Range text of a metric over the repeats, for the targets' detail. */
function rangeText(engine: string, n: number, key: string, digits: number): string {
  const s = stat(engine, n, key);
  if (!s) return 'n/a';
  return s.count > 1 ? `${s.median.toFixed(digits)} [${s.min.toFixed(digits)}-${s.max.toFixed(digits)}]` : s.median.toFixed(digits);
}

/**
 * Issue 14's targets, for each flatwall engine run (AF_PACKET and AF_XDP
 * ports): at the largest count, TCP and UDP >= 1.0x kernel forwarding
 * (iptables-legacy) at 1 rule, 64-byte frames per worker >= 2x the kernel's
 * rate at 1 rule, idle ping added over kernel forwarding <= 10 us; plus the
 * rule-count independence and the 1M-vs-1M comparison when measured.
 * Medians over the repeats.
 */
/**
 * a's metric against b's, paired by repeat (the same repeat of the rounds
 * given: with --ref, the reference was measured in the same round, right
 * beside a): ratio a/b or difference a-b per pair, median [min-max].
 */
function paired(a: [string, number], b: [string, number], key: string, op: 'ratio' | 'diff'): { median: number; min: number; max: number; values: number[] } | null {
  const vals: number[] = [];
  for (let rep = 0; rep < repeats; rep++) {
    const get = ([e, n]: [string, number]) => pointsOf(e, n).find((p) => p.rep === rep && p.status === 'ok')?.m[key];
    const x = get(a);
    const y = get(b);
    if (typeof x !== 'number' || typeof y !== 'number') continue;
    if (op === 'ratio' && y > 0) vals.push(x / y);
    if (op === 'diff') vals.push(x - y);
  }
  return vals.length ? { median: median(vals), min: Math.min(...vals), max: Math.max(...vals), values: vals } : null;
}

/**
 * Issue 14's targets, for each flatwall engine run (AF_PACKET and AF_XDP
 * ports): at the largest count, TCP and UDP >= 1.0x kernel forwarding
 * (iptables-legacy) at 1 rule, 64-byte frames per worker >= 2x the kernel's
 * rate at 1 rule, idle ping added over kernel forwarding <= 10 us; plus the
 * rule-count independence and the 1M-vs-1M comparison when measured.
 * Each is the median over the repeats of the paired ratio (difference);
 * the kernel point paired is the one of the same round when the kernel is
 * a --ref engine, else its 1-rule point of the same repeat.
 */
function targets(): Target[] {
  const top = Math.max(...counts);
  const t: Target[] = [];
  const K = 'iptables-legacy';
  const kRound = refCounts.get(K) === 1 ? top : 1;
  const kDesc = `${K}@1${kRound === top && top !== 1 ? `, same round` : ''}`;
  const range = (p: { min: number; max: number } | null, d: number, scale = 1) => (p && repeats > 1 ? ` [${(p.min * scale).toFixed(d)}-${(p.max * scale).toFixed(d)}]` : '');
  for (const F of engines.filter(isFlatwall)) {
    const goal = (name: string, key: string, g: number, unit: string, digits: number) => {
      const r = paired([F, top], [K, kRound], key, 'ratio');
      t.push({ name: `${F}@${fmtN(top)} ${name} / kernel forwarding (${kDesc})`, value: r?.median ?? null, goal: `>= ${g.toFixed(2)}`, met: r ? r.median >= g : null,
        detail: `${rangeText(F, top, key, digits)} / ${rangeText(K, kRound, key, digits)} ${unit}; paired ratios${range(r, 2)}` });
    };
    goal('TCP', 'tcp_mbps', 1.0, 'Mb/s', 0);
    goal('UDP', 'udp_mbps', 1.0, 'Mb/s', 0);
    goal('64-byte frames per worker', 'pps64_k', 2.0, 'kpps', 1);
    const d = paired([F, top], [K, kRound], 'idle_ping_ms', 'diff');
    t.push({ name: `idle ping RTT added by ${F}@${fmtN(top)} over kernel forwarding (${kDesc})`, value: d ? d.median * 1000 : null, goal: '<= 10 us', met: d ? d.median * 1000 <= 10 : null,
      detail: `${rangeText(F, top, 'idle_ping_ms', 3)} ms vs ${rangeText(K, kRound, 'idle_ping_ms', 3)} ms; paired differences${range(d, 0, 1000)} us` });
    for (const [k, name] of [['tcp_mbps', 'TCP'], ['udp_mbps', 'UDP']] as const) {
      const r = paired([F, top], [F, 1], k, 'ratio');
      if (top > 1) t.push({ name: `${F} ${name}: ${fmtN(top)} rules / 1 rule`, value: r?.median ?? null, goal: '>= 0.90', met: r ? r.median >= 0.9 : null, detail: `${rangeText(F, top, k, 0)} / ${rangeText(F, 1, k, 0)} Mb/s (different rounds); paired ratios${range(r, 2)}` });
    }
    const kTop = pointsOf(K, top).some((p) => p.rules === top && p.status === 'ok');
    if (top > 1 && kTop) {
      const u = paired([F, top], [K, top], 'udp_mbps', 'ratio');
      t.push({ name: `${F}@${fmtN(top)} UDP / ${K}@${fmtN(top)} UDP`, value: u?.median ?? null, goal: '>= 500x', met: u ? u.median >= 500 : null, detail: `${rangeText(F, top, 'udp_mbps', 1)} / ${rangeText(K, top, 'udp_mbps', 3)} Mb/s` });
    }
  }
  return t;
}

function markdown(done: boolean): string {
  const L: string[] = [];
  L.push(`# End-to-end benchmark${quick ? ' (--quick)' : ''}`);
  L.push('');
  L.push(`Sender -> Firewall -> Receiver in network namespaces on one ${machine.cpus}-vCPU VM (${machine.cpu}; kernel ${machine.kernel}), veth links.`);
  L.push(`flatwall is an L2 bump in the wire (\`flatwall run --port fa --port fb\`, ${workers} worker${workers > 1 ? 's' : ''}; flatwall-afxdp: the same with \`--io afxdp\`); the kernel engines forward (routing) in the Firewall namespace; veth = no firewall, the sender's and receiver's ends of one veth pair (the limit of the path).`);
  L.push(`Rules: \`flatwall gen chain N\` (N-1 rules that never match, then ACCEPT). ${D} s per throughput/rate measurement.`);
  if (withExt) L.push(`--ext: every point also with ${EXT_SUMMARY} (bench/ext-rules.ts); ${repeats} repeat${repeats > 1 ? 's' : ''}. The tables below are the plain table's; the ext/plain ratios follow them.`);
  L.push(`Started ${startedAt}, ${done ? 'finished' : 'PARTIAL (still running)'} after ${((performance.now() - tStart) / 1000).toFixed(0)} s. Command: \`npm run bench:e2e${argv.length ? ` -- ${argv.join(' ')}` : ''}\`.`);
  L.push('');
  L.push('Tools: iperf3 (throughput; UDP `-b 0`, the receiver\'s rate is reported), ping, hping3 (SYN to a listening port), and');
  L.push('nettool (src/lab/nettool.ts; a Node stand-in for netperf TCP_RR / UDP_RR / TCP_CRR, one transaction in flight, since netperf is not packaged in Debian here).');
  L.push('Memory: flatwall = resident set of the `flatwall run` process; kernel engines = growth of Slab + VmallocUsed while loading (whole machine, approximate).');
  L.push('64-byte rate: iperf3 UDP with 18-byte payloads (60-byte frames); on this VM the single iperf3 sender is often the limit. `skip` = not run (reason in the JSON), `*` = hit its time box, `–` = no result.');
  L.push('The VM may be shared with other jobs (2 vCPUs); the 1-minute load average at each point is in the JSON.');
  if (repeats > 1) L.push(`${repeats} repeats, interleaved (every engine at a count, then the next repeat): cells are the median [min-max] over the repeats.`);
  const la1 = points.map((p) => p.loadavg[0]);
  if (la1.length) L.push(`1-minute load average over the points: ${Math.min(...la1).toFixed(2)}-${Math.max(...la1).toFixed(2)} (median ${median(la1).toFixed(2)}).`);
  L.push('');
  const tg = targets();
  L.push('## Targets (same run)');
  L.push('');
  L.push('| target | measured | goal | met |');
  L.push('|---|---:|---|---|');
  for (const t of tg) {
    const v = t.value === null ? 'n/a' : t.goal.includes('us') ? `${t.value.toFixed(1)} us` : t.goal.includes('x') ? `${t.value.toFixed(0)}x` : t.value.toFixed(2);
    L.push(`| ${t.name} (${t.detail}) | ${v} | ${t.goal} | ${t.met === null ? 'n/a' : t.met ? 'yes' : '**no**'} |`);
  }
  L.push('');
  for (const e of engines) {
    L.push(`## ${e}`);
    L.push('');
    L.push(`| metric | ${counts.map(fmtN).join(' | ')} |`);
    L.push(`|---|${counts.map(() => '---:').join('|')}|`);
    for (const mt of METRICS.filter(shown)) L.push(`| ${mt.label} (${mt.unit}) | ${counts.map((n) => cell(e, n, mt)).join(' | ')} |`);
    const notOk = counts.flatMap((n) => pointsOf(e, n)).filter((p) => p.status !== 'ok');
    // One line per reason (an engine skipped at most counts by --engine-counts says so once).
    const reasons = new Map<string, number[]>();
    for (const p of notOk) {
      const r = `${p.status}: ${p.reason}`;
      if (!reasons.get(r)?.includes(p.rules)) reasons.set(r, [...(reasons.get(r) ?? []), p.rules]);
    }
    if (refCounts.has(e)) L.push(`\n${e} is a reference (--ref): ${fmtN(refCounts.get(e)!)} rule${refCounts.get(e)! > 1 ? 's' : ''} in every column, each measured in that count's round beside the other engines.`);
    for (const [r, ns] of reasons) L.push(`\n${ns.map(fmtN).join(', ')}${repeats > 1 ? ` (${notOk.filter((p) => `${p.status}: ${p.reason}` === r).length} of ${ns.length * repeats} runs)` : ''}: ${r}`);
    L.push('');
  }
  const ratioPairs = engines.filter(isFlatwall).flatMap((F) => engines.filter((o) => o !== F && !(isFlatwall(o) && o < F) && o !== 'veth').map((o) => [F, o] as const));
  for (const [F, other] of ratioPairs) {
    L.push(`## Ratio ${F} / ${other}`);
    L.push('');
    L.push(`Same metric, same rule count (medians; a --ref engine: its point measured in that count's round). For throughput and rates > 1 means ${F} is better; for latencies, load time and memory < 1 does.`);
    L.push('');
    L.push(`| metric | ${counts.map(fmtN).join(' | ')} |`);
    L.push(`|---|${counts.map(() => '---:').join('|')}|`);
    for (const mt of METRICS.filter(shown)) {
      const row = counts.map((n) => {
        const a = val(F, n, mt.key);
        const b = val(other, n, mt.key);
        if (a === null || b === null || b === 0) return '';
        const r = a / b;
        return r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r.toFixed(2);
      });
      L.push(`| ${mt.label} | ${row.join(' | ')} |`);
    }
    L.push('');
  }
  for (const ref of [['veth', counts[0]], ['iptables-legacy', 1]] as const) {
    if (!engines.includes(ref[0]) || !pointsOf(ref[0], ref[1]).length) continue;
    const sameRound = refCounts.get(ref[0]) === ref[1];
    L.push(`## Relative to ${ref[0]}@${fmtN(ref[1])}${ref[0] === 'veth' ? ' (no firewall: the limit of the path)' : ' (kernel forwarding)'}`, '');
    L.push(sameRound
      ? `Each engine's value at each count / ${ref[0]}@${fmtN(ref[1])}'s in the same round and repeat (a --ref engine): median [min-max] of the paired ratios. For throughput and rates > 1 is better; for latencies < 1.`
      : `Each engine's median at each count / ${ref[0]}@${fmtN(ref[1])}'s median. For throughput and rates > 1 is better; for latencies < 1.`, '');
    L.push(`| engine | metric | ${counts.map(fmtN).join(' | ')} |`, `|---|---|${counts.map(() => '---:').join('|')}|`);
    for (const e of engines.filter((x) => x !== ref[0])) {
      for (const k of ['idle_ping_ms', 'tcp_mbps', 'udp_mbps', 'tcp_rr', 'pps64_k'].filter((x) => want(x))) {
        const base = val(ref[0], ref[1], k);
        const row = counts.map((n) => {
          if (sameRound) {
            const r = paired([e, n], [ref[0], n], k, 'ratio');
            return r ? `${r.median.toFixed(2)}${repeats > 1 ? ` [${r.min.toFixed(2)}-${r.max.toFixed(2)}]` : ''}` : '';
          }
          const v = val(e, n, k);
          return v === null || !base ? '' : (v / base).toFixed(2);
        });
        if (row.some(Boolean)) L.push(`| ${e} | ${k} | ${row.join(' | ')} |`);
      }
    }
    L.push('');
  }
  L.push('## Side by side: throughput relative to each engine\'s own 1-rule value');
  L.push('');
  if (refCounts.size) L.push(`(For a --ref engine (${[...refCounts.keys()].join(', ')}) the same rules in every round: its row shows how the machine drifted between rounds.)`, '');
  L.push(`| engine | metric | ${counts.map(fmtN).join(' | ')} |`);
  L.push(`|---|---|${counts.map(() => '---:').join('|')}|`);
  for (const e of engines) {
    for (const k of ['tcp_mbps', 'udp_mbps']) {
      const base = val(e, 1, k);
      L.push(`| ${e} | ${k === 'tcp_mbps' ? 'TCP' : 'UDP'} | ${counts.map((n) => {
        const v = val(e, n, k);
        return v === null || !base ? '' : (v / base).toFixed(3);
      }).join(' | ')} |`);
    }
  }
  L.push('');
  if (withExt) L.push(...extMarkdown());
  if (!withExt) L.push('Plots (log x axis): ' + METRICS.filter(shown).map((m) => `[${m.label}](e2e${suffix}-${m.key}.svg)`).join(', ') + '.');
  L.push('');
  return L.join('\n');
}

function writeResults(done: boolean): void {
  mkdirSync(outDir, { recursive: true });
  const json = {
    benchmark: baseName, quick, done, startedAt, seconds: +((performance.now() - tStart) / 1000).toFixed(1),
    command: `npm run bench:e2e${argv.length ? ` -- ${argv.join(' ')}` : ''}`,
    machine, engines, counts, durationSeconds: D, workers, loadTimeoutSeconds: loadTimeout, repeats, metricsMeasured: only ?? MEASURED,
    ...(withExt ? { ext: { head: EXT_HEAD, tail: EXT_TAIL, summary: EXT_SUMMARY }, extRatios: extRatios() } : {}),
    metrics: METRICS.map(({ key, label, unit }) => ({ key, label, unit })),
    targets: targets(), points,
  };
  writeFileSync(join(outDir, `${baseName}.json`), `${JSON.stringify(json, null, 2)}\n`);
  writeFileSync(join(outDir, `${baseName}.md`), markdown(done));
  if (!done || withExt) return;
  for (const mt of METRICS.filter(shown)) {
    const series = engines.map((e) => ({
      name: e,
      points: counts.flatMap((n) => {
        const y = val(e, n, mt.key);
        return y === null ? [] : [{ x: n, y }];
      }),
    }));
    writeFileSync(join(outDir, `e2e${suffix}-${mt.key}.svg`), svgPlot(series, { title: `${mt.label}${quick ? ' (quick)' : ''}`, xLabel: 'rules (chain family)', yLabel: `${mt.label} (${mt.unit})`, logY: mt.logY }));
  }
}

// ---------------------------------------------------------------- --ext
/** The chain table with the extension block, streamed to `file`; seconds taken. */
async function writeExtRules(n: number, file: string): Promise<number> {
  const t0 = performance.now();
  const out = createWriteStream(file);
  let buf: string[] = [];
  for (const line of extLines('chain', n, true)) {
    buf.push(line);
    if (buf.length >= 16384) {
      if (!out.write(`${buf.join('\n')}\n`)) await once(out, 'drain');
      buf = [];
    }
  }
  out.end(buf.length ? `${buf.join('\n')}\n` : '');
  await once(out, 'finish');
  return (performance.now() - t0) / 1000;
}

/**
 * flatwall only, after the measurements: did the traffic run the programs?
 * The flow cache (a walk that ran a program is never cached: ext should
 * show ~no hits, plain mostly hits) and, for ext, the packet counters of
 * the block's rules (head rules 0: their programs were false; the tail's
 * limit LOG > 0: the walk reached it, past everything before it), and
 * fail2ban's set (entries; a banned address tests present).
 */
async function ruleCheck(socket: string, variant: Variant): Promise<Record<string, unknown>> {
  try {
    const stats = (await apiCall({ socket }, 'GET', '/stats')).json;
    const fc = stats?.flowCache as { hits: number; misses: number } | undefined;
    const r: Record<string, unknown> = { flowCacheHits: fc?.hits, flowCacheMisses: fc?.misses, verdicts: stats?.verdicts };
    if (variant === 'ext') {
      const head = (await apiCall({ socket }, 'GET', `/rules?family=4&chain=FORWARD&offset=0&limit=${EXT_HEAD.length}`)).json;
      const totalRules = Number(head?.total);
      const tail = (await apiCall({ socket }, 'GET', `/rules?family=4&chain=FORWARD&offset=${totalRules - EXT_TAIL.length - 1}&limit=${EXT_TAIL.length + 1}`)).json;
      r.headPackets = (head?.rules as { packets: number }[]).map((x) => x.packets);
      r.tailPackets = (tail?.rules as { packets: number }[]).map((x) => x.packets); // [LOG limit, final ACCEPT]
      // fail2ban's set is there and full, and a banned address is in it.
      const set = ((await apiCall({ socket }, 'GET', '/sets')).json?.sets as { name: string; entries: number; references: number }[] | undefined)?.find((x) => x.name === EXT_SET);
      const probe = bannedAddresses(1)[0];
      r.set = { name: EXT_SET, entries: set?.entries, references: set?.references,
        [`test ${probe}`]: (await apiCall({ socket }, 'GET', `/sets/${EXT_SET}/test?entry=${probe}`)).json?.present };
    }
    return r;
  } catch (e) {
    return { error: (e as Error).message };
  }
}

const median = (a: number[]) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** ext/plain per metric, paired by repeat: median, min, max, and each. */
function extRatios(): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const e of engines) {
    for (const n of counts) {
      for (const mt of METRICS) {
        const rs: number[] = [];
        const plain: number[] = [];
        const ext: number[] = [];
        for (let rep = 0; rep < repeats; rep++) {
          const get = (v: Variant) => points.find((p) => p.engine === e && p.rules === n && p.variant === v && p.rep === rep && p.status === 'ok')?.m[mt.key];
          const a = get('plain');
          const b = get('ext');
          if (a !== null && a !== undefined) plain.push(a);
          if (b !== null && b !== undefined) ext.push(b);
          if (a && b !== null && b !== undefined) rs.push(b / a);
        }
        if (rs.length) out.push({ engine: e, rules: n, metric: mt.key, median: median(rs), min: Math.min(...rs), max: Math.max(...rs), ratios: rs, plain, ext });
      }
    }
  }
  return out;
}

function extMarkdown(): string[] {
  const L: string[] = ['## ext / plain (same run, paired by repeat)', ''];
  L.push('Each cell: median ratio [min-max] over the repeats, then the medians plain -> ext. For throughput and rates < 1 means the extension block costs; for latencies, load time and memory > 1 does.', '');
  const rat = extRatios() as { engine: string; rules: number; metric: string; median: number; min: number; max: number; plain: number[]; ext: number[] }[];
  for (const e of engines) {
    L.push(`### ${e}`, '', `| metric | ${counts.map(fmtN).join(' | ')} |`, `|---|${counts.map(() => '---:').join('|')}|`);
    for (const mt of METRICS) {
      const row = counts.map((n) => {
        const r = rat.find((x) => x.engine === e && x.rules === n && x.metric === mt.key);
        return r ? `${r.median.toFixed(2)} [${r.min.toFixed(2)}-${r.max.toFixed(2)}] (${median(r.plain).toFixed(mt.digits)} -> ${median(r.ext).toFixed(mt.digits)})` : '';
      });
      if (row.some(Boolean)) L.push(`| ${mt.label} (${mt.unit}) | ${row.join(' | ')} |`);
    }
    L.push('');
  }
  const checks = points.filter((p) => p.raw.rule_check);
  if (checks.length) {
    L.push('Did the benchmark traffic run the programs? (flatwall: flow cache and rule counters after the measurements)', '');
    L.push(`| rules | table | repeat | flow cache hits / misses | head rules' packets | [limit LOG, final ACCEPT] packets | ${EXT_SET} |`, '|---:|---|---:|---|---|---|---|');
    for (const p of checks) {
      const c = p.raw.rule_check as Record<string, unknown>;
      L.push(`| ${fmtN(p.rules)} | ${p.variant} | ${p.rep + 1} | ${c.flowCacheHits} / ${c.flowCacheMisses} | ${c.headPackets ? JSON.stringify(c.headPackets) : ''} | ${c.tailPackets ? JSON.stringify(c.tailPackets) : ''} | ${c.set ? JSON.stringify(c.set) : ''} |`);
    }
    L.push('');
  }
  return L;
}

// ---------------------------------------------------------------- main
async function main(): Promise<void> {
  if (process.getuid?.() !== 0) fail('needs root (network namespaces)');
  const missing = missingTools(['ip', 'ping', 'iperf3']);
  if (missing.length) fail(`needs ${missing.join(', ')}`);
  installTeardown(true, (sig) => say(`${sig}: tearing down, partial results in ${outDir}/${baseName}.json`));
  const workDir = mkdtempSync(join(tmpdir(), `flatwall-bench-e2e-${process.pid}-`));
  process.on('exit', () => rmSync(workDir, { recursive: true, force: true }));
  const total = counts.length * engines.length * VARIANTS.length * repeats;
  say(`${engines.length} engines x ${counts.length} rule counts x ${VARIANTS.length} table${VARIANTS.length > 1 ? 's' : ''} x ${repeats} repeats, ${D} s per measurement${quick ? ' (--quick)' : ''}`);
  const lastLoad = new Map<string, { n: number; s: number }>();
  const setsFile = join(workDir, `${EXT_SET}.ipset`);
  if (withExt) writeFileSync(setsFile, extIpsetText());
  let k = 0;
  // The reference engines' tables, kept for the whole run.
  const refFiles = new Map<string, string>();
  for (const rn of new Set(refCounts.values())) {
    for (const v of VARIANTS) {
      const file = join(workDir, `ref-${rn}${v === 'ext' ? '-ext' : ''}.rules`);
      if (v === 'plain') await writeGenerated({ family: 'chain', rules: rn }, file);
      else await writeExtRules(rn, file);
      refFiles.set(`${rn}-${v}`, file);
    }
  }
  for (const n of counts) {
    const files = new Map<Variant, string>();
    for (const v of VARIANTS) {
      const file = join(workDir, `chain-${n}${v === 'ext' ? '-ext' : ''}.rules`);
      const gs = v === 'plain' ? await writeGenerated({ family: 'chain', rules: n }, file) : await writeExtRules(n, file);
      say(`generated chain:${n}${v === 'ext' ? ' with the extension block' : ''} in ${gs.toFixed(2)} s`);
      files.set(v, file);
    }
    // Interleaved: every engine (and table) at this rule count, one after
    // the other, so that changes in the machine's background load hit all
    // of them alike; with --ext the table that goes first alternates.
    for (let rep = 0; rep < repeats; rep++) {
      for (const e of engines as EngineName[]) {
        for (const v of rep % 2 ? [...VARIANTS].reverse() : VARIANTS) {
          k++;
          const ref = refCounts.get(e);
          const rn = ref ?? n; // the rules this engine loads in this round
          say(`[${k}/${total}] ${e} with ${rn.toLocaleString('en-US')} rules${ref !== undefined ? ` (reference, round of ${fmtN(n)})` : ''}${withExt ? ` (${v})` : ''}${repeats > 1 ? `, repeat ${rep + 1}` : ''}`);
          const prev = lastLoad.get(e);
          const predicted = prev ? (prev.s * rn) / prev.n : undefined;
          const p = await measure(e, rn, n, ref !== undefined ? refFiles.get(`${ref}-${v}`)! : files.get(v)!, workDir, prev && prev.s > 1 && prev.n !== rn ? predicted : undefined, v, rep, setsFile);
          if (p.load) lastLoad.set(e, { n: rn, s: p.load.loadSeconds + (p.load.translateSeconds ?? 0) });
          if (p.status !== 'ok') say(`${e} ${rn}: ${p.status}: ${p.reason}`);
          else say(`${e} ${rn}${withExt ? ` ${v}` : ''}: TCP ${p.m.tcp_mbps?.toFixed(0)} Mb/s, UDP ${p.m.udp_mbps?.toFixed(1)} Mb/s, 64 B ${p.m.pps64_k?.toFixed(1)} kpps, ping ${p.m.idle_ping_ms} ms, load ${p.m.load_s?.toFixed(2)} s (${p.seconds} s)` +
            (p.raw.rule_check ? ` ${JSON.stringify(p.raw.rule_check)}` : ''));
          points.push(p);
          writeResults(false);
        }
      }
    }
    for (const f of files.values()) rmSync(f, { force: true });
  }
  writeResults(true);
  process.stdout.write(markdown(true));
  process.stdout.write(`\nwritten: ${outDir}/${baseName}.json, ${baseName}.md${withExt ? '' : `, e2e${suffix}-*.svg`}\n`);
}

main().catch((e) => {
  process.stderr.write(`bench:e2e: ${(e as Error).stack ?? e}\n`);
  process.exitCode = 1;
});
