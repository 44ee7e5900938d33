// flatwall lab: a Sender -- Firewall -- Receiver lab in network namespaces,
// a firewall in the middle with a (large) rule set, a short traffic check,
// and teardown. See src/lab/ for the pieces.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ENGINES, engineMode, engineTools, isEngine, startEngine, countRules, type EngineName, type RunningEngine } from '../lab/engines';
import { parseGenSpec, writeGenerated } from '../lab/rules';
import { Topology, installTeardown } from '../lab/topology';
import { ping, quickCheck, type IperfResult, type PingResult } from '../lab/traffic';
import { haveCommand } from '../lab/tools';
import { EXIT_ERRORS, EXIT_OK, Progress, UsageError, parse } from './args';

export const LAB_HELP = `Usage: flatwall lab [OPTIONS]

Build a three-namespace lab (Sender -- Firewall -- Receiver, joined by veth
pairs, names unique to this run), start a firewall in the Firewall namespace
with a rule set, check traffic through it (ping RTT, iperf3 TCP and UDP
1400 B throughput), print the result and tear everything down (also on
errors and Ctrl-C). Needs root, iproute2, ping and iperf3.

  flatwall     an L2 bump in the wire: \`flatwall run --port fa --port fb\`;
               sender 10.0.0.1/24, receiver 10.0.0.2/24, no addresses on F
  iptables-legacy, iptables-nft, nft, nft-set
               kernel forwarding in F: sender 10.0.1.1/24 via 10.0.1.254,
               receiver 10.0.2.1/24 via 10.0.2.254; rules loaded with
               iptables-legacy-restore, iptables-nft-restore, or translated
               to nft (one rule per line, or nft-set: folded into one set when
               the rules have one shape and one verdict) and loaded by nft -f

Options:
  -r, --rules FILE        rule file (iptables-save or JSON/YAML)
  -g, --generate FAM:N    generated rule set (default chain:1000000: 999,999
                          rules that never match the test traffic, then ACCEPT)
  -e, --engine NAME       ${ENGINES.join(' | ')} (default flatwall)
  -d, --duration S        seconds per throughput test (default 2)
  -w, --workers N         flatwall packet workers (default 1)
      --load-timeout S    give up loading the rules after S seconds (default 300)
      --keep              leave the lab up; print how to enter and remove it
      --json              print the result as one JSON object
  -q, --quiet             no progress on stderr
  -h, --help              show this help

Exit status: 0 when traffic passed, 1 on errors (setup, rules, no traffic),
2 on usage errors.
`;

const fmtBps = (b?: number) => (b === undefined ? '-' : b >= 1e9 ? `${(b / 1e9).toFixed(2)} Gb/s` : b >= 1e6 ? `${(b / 1e6).toFixed(1)} Mb/s` : `${(b / 1e3).toFixed(1)} kb/s`);
const fmtInt = (n: number) => n.toLocaleString('en-US');

export async function runLab(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    rules: { type: 'string', short: 'r' },
    generate: { type: 'string', short: 'g' },
    engine: { type: 'string', short: 'e', default: 'flatwall' },
    duration: { type: 'string', short: 'd', default: '2' },
    workers: { type: 'string', short: 'w', default: '1' },
    'load-timeout': { type: 'string', default: '300' },
    keep: { type: 'boolean' },
    json: { type: 'boolean' },
    quiet: { type: 'boolean', short: 'q' },
    help: { type: 'boolean', short: 'h' },
  }, false);
  if (values.help) {
    process.stdout.write(LAB_HELP);
    return EXIT_OK;
  }
  if (values.rules && values.generate) throw new UsageError('give --rules or --generate, not both');
  const engine = values.engine!;
  if (!isEngine(engine)) throw new UsageError(`unknown engine "${engine}" (one of: ${ENGINES.join(', ')})`);
  const gen = values.rules ? undefined : parseGenSpec(values.generate ?? 'chain:1000000');
  if (typeof gen === 'string') throw new UsageError(gen);
  const duration = Number(values.duration);
  if (!Number.isInteger(duration) || duration < 1 || duration > 60) throw new UsageError('--duration must be an integer from 1 to 60');
  const workers = Number(values.workers);
  if (!Number.isInteger(workers) || workers < 1) throw new UsageError('--workers must be a positive integer');
  const loadTimeout = Number(values['load-timeout']);
  if (!(loadTimeout > 0)) throw new UsageError('--load-timeout must be a positive number of seconds');

  const say = (s: string) => {
    if (!values.quiet) process.stderr.write(`lab: ${s}\n`);
  };
  const missing = [...(process.getuid?.() === 0 ? [] : ['root']), ...['ip', 'ping', 'iperf3', ...engineTools(engine)].filter((t) => !haveCommand(t))];
  if (missing.length) {
    process.stderr.write(`flatwall lab: needs ${missing.join(', ')}\n`);
    return EXIT_ERRORS;
  }

  installTeardown(true, (sig) => say(`${sig}: tearing down`));
  const workDir = mkdtempSync(join(tmpdir(), `flatwall-lab-${process.pid}-`));
  let topo: Topology | undefined;
  let fw: RunningEngine | undefined;
  let keep = false;
  const result: Record<string, unknown> = { engine };
  try {
    let rulesFile = values.rules!;
    let genSeconds: number | undefined;
    if (gen) {
      rulesFile = join(workDir, `${gen.family}-${gen.rules}.rules`);
      say(`generating ${gen.family}:${fmtInt(gen.rules)} rules`);
      const p = new Progress('generating', values.quiet);
      genSeconds = await writeGenerated(gen, rulesFile, (d, t) => p.update(d, t));
      p.done();
      result.generated = { family: gen.family, rules: gen.rules, seconds: +genSeconds.toFixed(3) };
    }
    const rules = gen?.rules ?? countRules(rulesFile);
    topo = Topology.create(engineMode(engine), 'flatwall');
    result.topology = { mode: topo.mode, namespaces: topo.namespaces, ...topo.ep };
    say(`${topo.mode} topology ${topo.namespaces.join(' / ')}; loading ${fmtInt(rules)} rules into ${engine}`);
    fw = await startEngine(engine as EngineName, topo, rulesFile, {
      timeoutMs: loadTimeout * 1000, workDir, workers, keep: values.keep, rules,
    });
    result.load = fw.report;
    say(`rules loaded in ${fw.report.loadSeconds.toFixed(2)} s; checking traffic`);
    await ping(topo, { count: 1, intervalS: 0.2, deadlineS: 3 }); // warm-up: ARP / neighbour entries
    const check = await quickCheck(topo, duration, (s) => say(s));
    result.traffic = check;
    result.memory = fw.memory();
    const passed = check.ping.received > 0 && (check.tcp.bps ?? 0) > 0;
    result.passed = passed;
    if (values.keep) {
      keep = true;
      topo.keep();
      result.kept = { workDir, firewallPid: fw.pid, log: fw.logFile };
    } else {
      const stopped = await fw.stop();
      fw = undefined;
      if (stopped) result.counters = { verdicts: stopped.verdicts, drops: stopped.drops };
    }
    if (values.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    else process.stdout.write(report(engine, rules, genSeconds, fw?.report ?? (result.load as RunningEngine['report']), check, result));
    if (keep) {
      process.stdout.write(`\nThe lab is still up (--keep):\n${topo.instructions(fw?.pid ? [fw.pid] : [])}\n  files:     ${workDir}${fw?.logFile ? ` (firewall log: ${fw.logFile})` : ''}\n`);
    }
    return passed ? EXIT_OK : EXIT_ERRORS;
  } catch (err) {
    process.stderr.write(`flatwall lab: ${(err as Error).message}\n`);
    return EXIT_ERRORS;
  } finally {
    if (!keep) {
      if (fw) await fw.stop().catch(() => undefined);
      if (topo) await topo.destroy();
      rmSync(workDir, { recursive: true, force: true });
    }
  }
}

function report(engine: string, rules: number, genSeconds: number | undefined, load: RunningEngine['report'], c: { ping: PingResult; tcp: IperfResult; udp: IperfResult }, r: Record<string, unknown>): string {
  const lines: string[] = [];
  const topo = r.topology as { mode: string; namespaces: string[]; senderIp: string; receiverIp: string };
  lines.push(`flatwall lab: ${engine} with ${fmtInt(rules)} rules${genSeconds !== undefined ? ` (generated in ${genSeconds.toFixed(1)} s)` : ''}`);
  lines.push(`  topology     ${topo.mode}: ${topo.namespaces[0]} (${topo.senderIp}) -> ${topo.namespaces[1]} -> ${topo.namespaces[2]} (${topo.receiverIp})`);
  const extra: string[] = [];
  if (load.startupSeconds !== undefined) extra.push(`process ready after ${load.startupSeconds.toFixed(2)} s`);
  if (load.translateSeconds !== undefined) extra.push(`nft translation ${load.translateSeconds.toFixed(2)} s`);
  const what = engine === 'flatwall' ? 'parse + compile + install' : engine.startsWith('iptables') ? `${engine}-restore` : 'nft -f';
  lines.push(`  rule load    ${load.loadSeconds.toFixed(3)} s (${what}${extra.length ? `; ${extra.join(', ')}` : ''})`);
  const m = (r.memory ?? load.memory) as { rssMb?: number; peakRssMb?: number; kernelMb?: number };
  if (m.rssMb !== undefined) lines.push(`  memory       ${m.rssMb.toFixed(0)} MB resident (peak ${m.peakRssMb?.toFixed(0)} MB)`);
  else if (m.kernelMb !== undefined) lines.push(`  memory       ~${m.kernelMb.toFixed(0)} MB kernel (Slab + vmalloc growth while loading)`);
  const p = c.ping;
  lines.push(`  ping RTT     ${p.avgMs !== undefined ? `${p.avgMs.toFixed(3)} ms avg (min ${p.minMs}, max ${p.maxMs}), ${p.received}/${p.sent} replies` : `no replies${p.error ? `: ${p.error}` : ''}`}`);
  lines.push(`  TCP          ${c.tcp.error ? `failed: ${c.tcp.error}` : `${fmtBps(c.tcp.bps)} (iperf3, ${c.tcp.retransmits ?? 0} retransmits)`}`);
  lines.push(`  UDP 1400 B   ${c.udp.error ? `failed: ${c.udp.error}` : `${fmtBps(c.udp.bps)} received, ${fmtBps(c.udp.senderBps)} offered, ${c.udp.lostPct}% lost`}`);
  const ct = r.counters as { verdicts?: Record<string, number>; drops?: Record<string, number> } | undefined;
  if (ct?.verdicts) {
    const d = Object.entries(ct.drops ?? {}).map(([k, v]) => `${k} ${v}`).join(', ');
    lines.push(`  counters     accept ${fmtInt(ct.verdicts.accept)}, drop ${fmtInt(ct.verdicts.drop)}, reject ${fmtInt(ct.verdicts.reject)}${d ? `; drops: ${d}` : ''}`);
  }
  lines.push(`  result       ${r.passed ? 'traffic passed' : 'traffic did NOT pass'}`);
  return `${lines.join('\n')}\n`;
}
