// The firewalls the lab can put in the Firewall namespace, behind one
// interface: start with a rule file (measuring the load), report memory, stop.
//
//   flatwall         `flatwall run --port fa --port fb`, an L2 bump in the wire
//                    (AF_PACKET ports)
//   flatwall-afxdp   the same with `--io afxdp` (AF_XDP ports, shared UMEM)
//   veth             no firewall: the sender's and receiver's veth ends joined
//                    directly (the 'direct' topology), the limit of the path
//   iptables-legacy  kernel forwarding, rules via iptables-legacy-restore
//   iptables-nft     kernel forwarding, rules via iptables-nft-restore
//   nft              kernel forwarding, rules translated one per line, nft -f
//   nft-set          kernel forwarding, rules folded into one nft set (only
//                    when the rule set has one shape and one verdict)
import { existsSync, readFileSync, writeFileSync, openSync, readSync, closeSync, fstatSync } from 'node:fs';
import { join } from 'node:path';
import { looksNative } from '../rules/native-format';
import { parseFiles } from '../rules/load';
import { printTable } from '../rules/iptables/print';
import { translateToNft, type NftForm } from './nft';
import { Background, run, sleep } from './proc';
import type { Topology, TopoMode } from './topology';

export const ENGINES = ['flatwall', 'flatwall-afxdp', 'iptables-legacy', 'iptables-nft', 'nft', 'nft-set', 'veth'] as const;
export type EngineName = (typeof ENGINES)[number];

/** A flatwall process (AF_PACKET or AF_XDP ports). */
export function isFlatwall(e: string): e is 'flatwall' | 'flatwall-afxdp' {
  return e === 'flatwall' || e === 'flatwall-afxdp';
}

export function isEngine(s: string): s is EngineName {
  return (ENGINES as readonly string[]).includes(s);
}

export function engineMode(e: EngineName): TopoMode {
  return isFlatwall(e) ? 'bridge' : e === 'veth' ? 'direct' : 'routed';
}

/** Commands an engine needs besides `ip` (for skip/fail decisions). */
export function engineTools(e: EngineName): string[] {
  switch (e) {
    case 'flatwall':
    case 'flatwall-afxdp':
    case 'veth':
      return [];
    case 'iptables-legacy':
      return ['iptables-legacy-restore', 'ip6tables-legacy-restore'];
    case 'iptables-nft':
      return ['iptables-nft-restore', 'ip6tables-nft-restore'];
    default:
      return ['nft'];
  }
}

export const FLATWALL_CLI = join(__dirname, '..', 'cli', 'main.js');

export interface MemoryReport {
  /** Resident set of the firewall process (flatwall), MB. */
  rssMb?: number;
  /** Its peak resident set, MB. */
  peakRssMb?: number;
  /** Kernel engines: growth of Slab + VmallocUsed while loading (whole machine, approximate), MB. */
  kernelMb?: number;
}

export interface LoadReport {
  engine: EngineName;
  rules: number;
  /** The engine's own load: flatwall parse + compile + install; kernel engines the restore / nft -f run. */
  loadSeconds: number;
  /** flatwall: from spawning the process to its "ready" line (includes Node start-up). */
  startupSeconds?: number;
  /** nft engines: our iptables -> nft translation (not part of loadSeconds). */
  translateSeconds?: number;
  memory: MemoryReport;
  detail?: Record<string, unknown>;
}

export interface RunningEngine {
  readonly name: EngineName;
  readonly report: LoadReport;
  /** The firewall process (flatwall), if any. */
  readonly pid?: number;
  /** Where the firewall's logs go (flatwall --keep). */
  readonly logFile?: string;
  memory(): MemoryReport;
  /** Stop the firewall; flatwall returns its final counters ("stopped" log line). */
  stop(): Promise<Record<string, unknown> | undefined>;
}

export interface EngineOptions {
  /** Bound on the whole load (process start + rules). */
  timeoutMs: number;
  /** A scratch directory for converted rule files and logs. */
  workDir: string;
  workers?: number;
  cpuPin?: boolean;
  /** flatwall: run detached, logs to a file, survive this process (lab --keep). */
  keep?: boolean;
  /** Extra arguments for `flatwall run`. */
  extraArgs?: string[];
  /** Rule count, when the caller knows it (generated sets); otherwise counted. */
  rules?: number;
  /** Which Firewall namespace of a chain (topo.firewalls, 0-based; default 0). */
  hop?: number;
}

/** The namespace of hop o.hop, checked against the topology. */
function hopNamespace(topo: Topology, o: EngineOptions): string {
  const hop = o.hop ?? 0;
  const ns = topo.firewalls[hop];
  if (ns === undefined) throw new Error(`hop ${hop}: the topology has ${topo.firewalls.length} firewall${topo.firewalls.length > 1 ? 's' : ''}`);
  return ns;
}

function procStatus(pid: number): { rssMb?: number; peakRssMb?: number } {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string) => {
      const m = new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s);
      return m ? Number(m[1]) / 1024 : undefined;
    };
    return { rssMb: kb('VmRSS'), peakRssMb: kb('VmHWM') };
  } catch {
    return {};
  }
}

/** Slab + VmallocUsed, MB: where the kernel keeps iptables / nftables rules. */
export function kernelRuleMemoryMb(): number {
  const s = readFileSync('/proc/meminfo', 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? 0);
  return (kb('Slab') + kb('VmallocUsed')) / 1024;
}

/** Count "-A" lines of an iptables-save file without holding it as one string. */
export function countRules(file: string): number {
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    let n = 0;
    let p2 = 0x0a; // the two previous bytes; the file starts as if after a newline
    let p1 = 0x0a;
    for (;;) {
      const len = readSync(fd, buf, 0, buf.length, null);
      if (len <= 0) break;
      for (let i = 0; i < len; i++) {
        const c = buf[i];
        if (c === 0x41 /* A */ && p1 === 0x2d /* - */ && p2 === 0x0a) n++;
        p2 = p1;
        p1 = c;
      }
    }
    return n;
  } finally {
    closeSync(fd);
  }
}

/**
 * The kernel engines load iptables-save text. A native (JSON/YAML) file is
 * printed in that form first; IPv6 files go to ip6tables-*-restore.
 */
export function kernelRuleText(file: string, workDir: string): { file: string; family: 4 | 6 } {
  const head = Buffer.alloc(65536);
  const fd = openSync(file, 'r');
  const n = readSync(fd, head, 0, head.length, 0);
  const size = fstatSync(fd).size;
  closeSync(fd);
  const text = head.subarray(0, n).toString('utf8');
  if (looksNative(file, text)) {
    const { ruleset } = parseFiles([file]);
    const t = ruleset.tables.filter((x) => x.name === 'filter');
    const fam = t[0]?.family ?? 4;
    const out = join(workDir, `converted-v${fam}.rules`);
    writeFileSync(out, `${t.flatMap((x) => [...printTable(x)]).join('\n')}\n`);
    return { file: out, family: fam as 4 | 6 };
  }
  const v6 = /^# Generated by ip6tables/m.test(text) || (size > 0 && /^-A \S+ .*-[sd] [0-9a-fA-F]*:[0-9a-fA-F:]*\//m.test(text));
  return { file, family: v6 ? 6 : 4 };
}

async function waitForFileLine(file: string, pred: (l: string) => boolean, proc: Background, timeoutMs: number): Promise<string> {
  const t0 = performance.now();
  for (;;) {
    if (existsSync(file)) {
      const line = readFileSync(file, 'utf8').split('\n').find(pred);
      if (line) return line;
    }
    if (!proc.running) throw new Error(`flatwall run exited before it was ready; see ${file}`);
    if (performance.now() - t0 > timeoutMs) throw new Error(`flatwall run: not ready within ${timeoutMs / 1000} s; see ${file}`);
    await sleep(100);
  }
}

const parseJson = (l: string): Record<string, unknown> | undefined => {
  try {
    return JSON.parse(l);
  } catch {
    return undefined;
  }
};

async function startFlatwall(name: 'flatwall' | 'flatwall-afxdp', topo: Topology, rulesFile: string, o: EngineOptions): Promise<RunningEngine> {
  const args = [FLATWALL_CLI, 'run', '--port', 'fa', '--port', 'fb', '-r', rulesFile, '-w', String(o.workers ?? 1)];
  if (name === 'flatwall-afxdp') args.push('--io', 'afxdp');
  if (o.cpuPin) args.push('--cpu-pin');
  if (o.extraArgs) args.push(...o.extraArgs);
  // Its own API socket, so labs and tests never compete for the default one.
  // Hops of a chain after the first get their own (api-2.sock, ...).
  const hopSuffix = o.hop ? `-${o.hop + 1}` : '';
  const ns = hopNamespace(topo, o);
  if (!o.extraArgs?.includes('--api-socket')) args.push('--api-socket', join(o.workDir, `api${hopSuffix}.sock`));
  const logFile = o.keep ? join(o.workDir, `firewall${hopSuffix}.log`) : undefined;
  const t0 = performance.now();
  const proc = new Background('flatwall run', process.execPath, args, { ns, detached: o.keep, stdoutFile: logFile });
  if (!o.keep) topo.adopt(proc);
  let readyLine: string;
  try {
    readyLine = logFile
      ? await waitForFileLine(logFile, (l) => l.includes('"msg":"ready"'), proc, o.timeoutMs)
      : await proc.waitFor((l) => l.includes('"msg":"ready"'), o.timeoutMs, 'ready line');
  } catch (err) {
    await proc.stop('SIGKILL', 1000);
    const errLine = proc.lines.map(parseJson).find((j) => j?.level === 'error');
    throw new Error(errLine ? `flatwall run: ${errLine.msg}: ${errLine.error}` : (err as Error).message);
  }
  const startupSeconds = (performance.now() - t0) / 1000;
  const ready = parseJson(readyLine)!;
  if (o.keep) proc.child.unref();
  const pid = proc.pid!;
  const memory = () => procStatus(pid);
  return {
    name,
    pid,
    logFile,
    report: {
      engine: name, rules: Number(ready.rules), loadSeconds: Number(ready.seconds), startupSeconds,
      memory: memory(), detail: { records: ready.records, workers: ready.workers, buildSeconds: ready.buildSeconds, snapshotReadSeconds: ready.snapshotReadSeconds, image: ready.image },
    },
    memory,
    async stop() {
      const r = await proc.stop('SIGTERM', 10_000);
      const stopped = proc.lines.map(parseJson).find((j) => j?.msg === 'stopped');
      if (r.code !== 0 && !stopped) throw new Error(`flatwall run exited with ${r.code ?? r.signal}${proc.stderr ? `: ${proc.stderr.trim().slice(-300)}` : ''}`);
      return stopped;
    },
  };
}

/** No firewall at all: the direct topology's one veth pair. */
function startVeth(rulesFile: string, o: EngineOptions): RunningEngine {
  const memory = {};
  return {
    name: 'veth',
    report: { engine: 'veth', rules: o.rules ?? 0, loadSeconds: 0, memory, detail: { note: 'no firewall: sender and receiver on one veth pair' } },
    memory: () => memory,
    async stop() {
      return undefined;
    },
  };
}

async function startKernel(name: Exclude<EngineName, 'flatwall' | 'flatwall-afxdp' | 'veth'>, topo: Topology, rulesFile: string, o: EngineOptions): Promise<RunningEngine> {
  const { file, family } = kernelRuleText(rulesFile, o.workDir);
  const rules = o.rules ?? countRules(file);
  let translateSeconds: number | undefined;
  let detail: Record<string, unknown> | undefined;
  let cmd: string;
  let args: string[];
  let stdinFile: string | undefined;
  if (name === 'iptables-legacy' || name === 'iptables-nft') {
    cmd = `${family === 6 ? 'ip6' : 'ip'}tables-${name === 'iptables-legacy' ? 'legacy' : 'nft'}-restore`;
    args = [];
    stdinFile = file;
  } else {
    if (family === 6) throw new Error(`${name}: the nft translation handles IPv4 rule files only`);
    const t0 = performance.now();
    const s = translateToNft(readFileSync(file, 'utf8'), name === 'nft-set' ? 'set' : ('rules' as NftForm));
    translateSeconds = (performance.now() - t0) / 1000;
    const script = join(o.workDir, `${name}.nft`);
    writeFileSync(script, s.script);
    detail = { form: s.form, setElements: s.setElements, interval: s.interval };
    cmd = 'nft';
    args = ['-f', script];
  }
  const before = kernelRuleMemoryMb();
  const r = await run(cmd, args, { ns: hopNamespace(topo, o), timeoutMs: o.timeoutMs, stdinFile, allowFail: true });
  if (r.timedOut) throw new Error(`${name}: loading ${rules} rules did not finish within ${o.timeoutMs / 1000} s`);
  if (r.code !== 0) throw new Error(`${name}: ${cmd} failed (exit ${r.code}): ${r.stderr.trim().split('\n').slice(0, 3).join(' | ')}`);
  const kernelMb = Math.max(0, kernelRuleMemoryMb() - before);
  const memory = { kernelMb: +kernelMb.toFixed(1) };
  return {
    name,
    report: { engine: name, rules, loadSeconds: r.seconds, translateSeconds, memory, detail },
    memory: () => memory,
    async stop() {
      return undefined; // the rules go with the namespace
    },
  };
}

/** Start `name` in topo's Firewall namespace (of hop o.hop in a chain) with the rules in rulesFile. */
export function startEngine(name: EngineName, topo: Topology, rulesFile: string, o: EngineOptions): Promise<RunningEngine> {
  if (topo.mode !== engineMode(name)) throw new Error(`${name} needs a ${engineMode(name)} topology`);
  if (isFlatwall(name)) return startFlatwall(name, topo, rulesFile, o);
  if (name === 'veth') return Promise.resolve(startVeth(rulesFile, o));
  return startKernel(name, topo, rulesFile, o);
}
