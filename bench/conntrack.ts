// Stateful filtering, side by side in one run: new TCP connections per second
// (nettool tcp-crr: connect, 1-byte request/response, close, one at a time)
// and established-flow throughput (iperf3 TCP) through
//   flatwall-stateful   flatwall run (conntrack on, the default)
//   flatwall-stateless  flatwall run --no-conntrack
//   iptables            kernel forwarding + iptables-legacy + nf_conntrack
// at 1 and 1M rules (--quick: 1 and 10k), plus memory per tracked flow
// (flatwall: its table; kernel: the nf_conntrack slab object) and the
// conntrack table micro-benchmark (native/test/ct_bench.cc, if g++ exists).
//
// The rule set for every engine and size: the ESTABLISHED,RELATED rule first
// (what real stateful sets do), then N generated rules the traffic never
// matches (`flatwall gen chain`: /32 sources in 10.200.0.0+, without its
// final ACCEPT), then ACCEPT for the test ports in both directions (so the
// stateless run passes replies too), policy DROP. A NEW connection walks all
// N rules; an established packet stops at rule 1 (stateful) or walks them
// all (stateless flatwall; the classifier does not care).
//
//   npm run bench:conntrack [-- --quick] [--seconds S] [--repeat R] [--engines a,b]
import { execFileSync } from 'node:child_process';
import { createReadStream, createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { tmpdir, cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { startEngine, type EngineName } from '../src/lab/engines';
import { writeGenerated } from '../src/lab/rules';
import { Topology, installTeardown } from '../src/lab/topology';
import { iperf, ping, rr, startEchoServer, type IperfResult, type RrResult } from '../src/lab/traffic';
import { haveCommand } from '../src/lab/tools';
import { flag, opt as arg } from './args';

const quick = flag('--quick');
const seconds = Number(arg('--seconds') ?? (quick ? 3 : 5));
// Rounds per size; the variants' order rotates each round so that none is
// always first after the rules load (noisy shared machines: compare medians).
const repeat = Number(arg('--repeat') ?? 2);
const sizes = quick ? [1, 10_000] : [1, 1_000_000];
type Variant = 'flatwall-stateful' | 'flatwall-stateless' | 'iptables';
const variants = (arg('--engines')?.split(',') ?? ['flatwall-stateful', 'flatwall-stateless', 'iptables']) as Variant[];
const root = join(__dirname, '..', '..');
const out = join(root, 'bench', 'results');

const say = (s: string) => process.stderr.write(`bench:conntrack: ${s}\n`);

/** The generated set wrapped as described above, streamed (1M rules ~ 70 MB). */
async function writeRules(n: number, dir: string): Promise<string> {
  const gen = join(dir, `acl-${n}.gen`);
  await writeGenerated({ family: 'chain', rules: n }, gen);
  const file = join(dir, `stateful-${n}.rules`);
  const w = createWriteStream(file);
  for await (const line of createInterface({ input: createReadStream(gen) })) {
    if (line === '-A FORWARD -j ACCEPT') continue; // chain's final catch-all: our port rules decide
    if (line === 'COMMIT') {
      for (const p of [7001, 5201]) w.write(`-A FORWARD -p tcp -m tcp --dport ${p} -j ACCEPT\n-A FORWARD -p tcp -m tcp --sport ${p} -j ACCEPT\n`);
      w.write('-A FORWARD -p icmp -j ACCEPT\n');
    }
    w.write(`${line}\n`);
    if (line.startsWith(':OUTPUT')) w.write('-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n');
  }
  w.end();
  await once(w, 'finish');
  rmSync(gen);
  return file;
}

interface Point {
  variant: Variant;
  rules: number;
  loadSeconds?: number;
  connPerSec?: number;
  crr?: RrResult;
  tcpGbps?: number;
  tcp?: IperfResult;
  conntrack?: Record<string, number>;
  error?: string;
}

async function measure(variant: Variant, rules: number, file: string, dir: string): Promise<Point> {
  const engine: EngineName = variant === 'iptables' ? 'iptables-legacy' : 'flatwall';
  const topo = Topology.create(engine === 'flatwall' ? 'bridge' : 'routed', 'fwctb');
  const p: Point = { variant, rules };
  try {
    const fw = await startEngine(engine, topo, file, {
      timeoutMs: 600_000, workDir: dir, rules, extraArgs: variant === 'flatwall-stateless' ? ['--no-conntrack'] : [],
    });
    p.loadSeconds = fw.report.loadSeconds;
    try {
      topo.adopt(await startEchoServer(topo));
      await ping(topo, { count: 2, intervalS: 0.2, deadlineS: 5 }); // neighbours
      p.crr = await rr(topo, 'tcp-crr', seconds);
      p.connPerSec = p.crr.perSecond;
      p.tcp = await iperf(topo, { seconds, port: 5201 });
      p.tcpGbps = p.tcp.bps !== undefined ? p.tcp.bps / 1e9 : undefined;
      if (engine !== 'flatwall') {
        const ct = execFileSync('ip', ['netns', 'exec', topo.firewall, 'sh', '-c', 'cat /proc/sys/net/netfilter/nf_conntrack_count'], { encoding: 'utf8' });
        p.conntrack = { entries: Number(ct.trim()) };
      }
    } finally {
      const stopped = (await fw.stop()) as { conntrack?: Record<string, number> } | undefined;
      if (stopped?.conntrack) p.conntrack = stopped.conntrack;
    }
  } catch (e) {
    p.error = (e as Error).message.split('\n')[0];
  } finally {
    await topo.destroy();
  }
  return p;
}

/** Kernel bytes per conntrack: the nf_conntrack slab object size. */
function kernelCtObjectBytes(): number | undefined {
  try {
    const line = readFileSync('/proc/slabinfo', 'utf8').split('\n').find((l) => l.startsWith('nf_conntrack '));
    return line ? Number(line.split(/\s+/)[3]) : undefined;
  } catch {
    return undefined;
  }
}

function microBench(dir: string): Record<string, unknown> | undefined {
  if (!haveCommand('g++')) return undefined;
  const bin = join(dir, 'ct_bench');
  execFileSync('g++', ['-std=c++17', '-O3', `-I${join(root, 'native')}`, '-pthread', '-o', bin,
    join(root, 'native/test/ct_bench.cc'), join(root, 'native/conntrack/conntrack.cc'), join(root, 'native/conntrack/conncount.cc')]);
  return JSON.parse(execFileSync(bin, [String(quick ? 100_000 : 1_000_000), '2'], { encoding: 'utf8' }));
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0 || !haveCommand('iperf3')) {
    process.stderr.write('bench:conntrack needs root and iperf3\n');
    process.exit(1);
  }
  installTeardown(true);
  mkdirSync(out, { recursive: true });
  const dir = mkdtempSync(join(tmpdir(), 'flatwall-ctbench-'));
  const points: Point[] = [];
  let micro: Record<string, unknown> | undefined;
  try {
    say('conntrack table micro-benchmark (ct_bench)');
    micro = microBench(dir);
    for (const n of sizes) {
      say(`generating ${n} rules`);
      const file = await writeRules(n, dir);
      for (let round = 0; round < repeat; round++) {
        const order = variants.map((_, i) => variants[(i + round) % variants.length]);
        for (const v of order) {
          say(`round ${round + 1}/${repeat}: ${v}, ${n} rules: load, ${seconds} s tcp-crr, ${seconds} s iperf3`);
          const p = await measure(v, n, file, dir);
          say(`  ${p.error ?? `${p.connPerSec?.toFixed(0)} conn/s, ${p.tcpGbps?.toFixed(2)} Gb/s`}`);
          points.push(p);
        }
      }
      rmSync(file);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const median = (xs: Array<number | undefined>) => {
    const v = xs.filter((x): x is number => x !== undefined).sort((a, b) => a - b);
    return v.length ? (v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2) : undefined;
  };
  const of = (v: Variant, n: number) => points.filter((p) => p.variant === v && p.rules === n);
  const summary = sizes.flatMap((n) => variants.map((v) => ({
    variant: v, rules: n, runs: of(v, n).length,
    loadSeconds: median(of(v, n).map((p) => p.loadSeconds)),
    connPerSec: median(of(v, n).map((p) => p.connPerSec)),
    tcpGbps: median(of(v, n).map((p) => p.tcpGbps)),
    errors: of(v, n).filter((p) => p.error || p.tcp?.error || p.crr?.error).map((p) => p.error ?? p.tcp?.error ?? p.crr?.error),
  })));
  const ratio = (n: number) => {
    const s = summary.find((p) => p.variant === 'flatwall-stateful' && p.rules === n)?.tcpGbps;
    const l = summary.find((p) => p.variant === 'flatwall-stateless' && p.rules === n)?.tcpGbps;
    return s && l ? s / l : undefined;
  };
  const flatMem = points.find((p) => p.conntrack?.memoryBytes)?.conntrack;
  const memory = {
    flatwallBytesPerAllowedEntry: flatMem ? flatMem.memoryBytes / flatMem.limit : undefined,
    flatwallEntryBytes: 64,
    kernelNfConntrackObjectBytes: kernelCtObjectBytes(),
  };
  const fmt = (x: number | undefined, d = 0) => (x === undefined ? '-' : x.toFixed(d));
  const md = [
    `Machine: ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), load average ${loadavg().map((x) => x.toFixed(1)).join(' ')} at the end; ${seconds} s per measurement, ${repeat} rounds (medians; every run in the JSON).`,
    '',
    '| engine | rules | load s | new TCP conn/s | established TCP Gb/s | runs | errors |',
    '|---|---:|---:|---:|---:|---:|---|',
    ...summary.map((p) => `| ${p.variant} | ${p.rules} | ${fmt(p.loadSeconds, 2)} | ${fmt(p.connPerSec)} | ${fmt(p.tcpGbps, 2)} | ${p.runs} | ${p.errors.join('; ')} |`),
    '',
    ...sizes.map((n) => `Stateful / stateless flatwall throughput at ${n} rules: ${ratio(n) !== undefined ? `${(100 * ratio(n)!).toFixed(0)} %` : '-'}`),
    '',
    `Memory per tracked flow: flatwall ${memory.flatwallEntryBytes} B per slot, ${fmt(memory.flatwallBytesPerAllowedEntry)} B per allowed entry (preallocated); kernel nf_conntrack slab object ${fmt(memory.kernelNfConntrackObjectBytes)} B (plus its hash bucket).`,
  ];
  if (micro) {
    const m = micro as Record<string, Record<string, number>>;
    md.push('', `Table micro-benchmark (${micro.flows} flows): per-worker ${fmt(m.per_worker.insert_per_s / 1e6, 2)} M inserts/s, ${fmt(m.per_worker.lookup_per_s / 1e6, 2)} M lookups/s (cold), ${fmt(m.per_worker.hot_lookup_per_s / 1e6, 1)} M/s (hot); mutex-shared with 2 threads ${fmt(m.mutex_Nt.lookup_per_s / 1e6, 2)} M lookups/s vs per-worker ${fmt(m.per_worker_Nt.lookup_per_s / 1e6, 2)} M.`);
  }
  const result = { machine: { cpus: cpus().length, node: process.version, loadavg: loadavg() }, seconds, repeat, quick, summary, points, memory, micro,
    statefulOverStateless: Object.fromEntries(sizes.map((n) => [n, ratio(n)])) };
  const name = quick ? 'conntrack-quick' : 'conntrack';
  writeFileSync(join(out, `${name}.json`), `${JSON.stringify(result, null, 2)}\n`);
  writeFileSync(join(out, `${name}.md`), `${md.join('\n')}\n`);
  process.stdout.write(`${md.join('\n')}\n\nwritten: bench/results/${name}.json, bench/results/${name}.md\n`);
}

main().catch((e) => {
  process.stderr.write(`bench:conntrack: ${(e as Error).stack}\n`);
  process.exit(1);
});
