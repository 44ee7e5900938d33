// Rule update benchmark: how long a new rule set takes to become active.
//   npm run bench:update [-- --quick] [--sizes 1000,100000,1000000] [--engines iptables-nft,iptables-legacy,nft]
//                        [--phases flatwall,kernel,restart,swap,health] [--timeout SECONDS]
//                        [--swap-variants priority,equal] [--repeat N]
//
// For each size N (generated `acl` rule sets, two seeds, plus two rules that
// allow a test UDP flow):
// - flatwall: PUT /rules of the seed-2 set over the running seed-1 set of
//   the same size, timed from the request to the answer (the answer comes
//   once the new rules are active: parsed, compiled, built, published);
//   then PUT /rules of a snapshot of the seed-1 set (compiled beforehand),
//   timed to the answer (active) and to the listing being back.
// - kernel engines in a namespace: load seed 1, then time the load of seed
//   2 (iptables-restore replaces the table; the nft script starts with
//   `flush ruleset`), i.e. the same replace.
// At the largest size also:
// - a single-rule insert (POST /rules "-I FORWARD 1 ..."), and the same
//   `iptables -I` on the kernel engines;
// - a UDP stream (nettool udp-burst, 500 datagrams/s, echoed back) through
//   flatwall across a replace of the whole set: datagrams lost;
// - restart to forwarding: `flatwall run` from the source file and from a
//   snapshot (`flatwall compile`: packed tables + classifier image), process
//   spawn to the "ready" line; --repeat N runs each N times (alternating)
//   and reports the medians.
//
// Only with --phases swap (not in the default phases; bench/update-swap.ts):
// - iperf3 TCP, then UDP at a fixed rate, through flatwall across a replace
//   of the whole set at the largest size: received Mb/s and UDP loss per
//   0.1 s over time, with the PUT start and the activation marked; once
//   with flatwall run's scheduling defaults ("priority": workers at nice
//   -10, builds at +10) and once with everything at nice 0 ("equal").
//
// Only with --phases health (bench/results/update-health.{json,md}): at the
// largest size, the text replace of the running seed-1 set by seed 2 with a
// probe loop beside it, in a process of its own (bench/health-probe.ts: GET
// /health on the Unix socket, one at a time, 20 ms
// apart): how long the API takes to answer while a reload parses and
// compiles (p50, p99, max), and flatwall run's RSS before, after, and its peak.
//
// Writes bench/results/update.json and update.md (unless only the swap phase
// ran; a restart-only run replaces just the restart figures of the existing
// files), and for the swap phase update-swap.json, .md and one plot per run
// (update-swap-tcp.svg, -udp.svg, -tcp-equal.svg, -udp-equal.svg).
// Progress on stderr.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateLines } from '../src/rules/generate';
import { Topology, installTeardown } from '../src/lab/topology';
import { startEngine, FLATWALL_CLI, type EngineName, type RunningEngine } from '../src/lab/engines';
import { startEchoServer } from '../src/lab/traffic';
import { run } from '../src/lab/proc';
import { apiCall } from '../src/cli/ctl';
import { SNAPSHOT_CONTENT_TYPE } from '../src/control/snapshot';
import { put as putRules, swapPhase, swapMarkdown, swapPlot, swapPlotName, SWAP_ALLOW, SWAP_VARIANTS, type SwapRun } from './update-swap';

import { flag, opt } from './args';
const quick = flag('--quick');
const SIZES = (opt('--sizes') ?? (quick ? '1000,10000' : '1000,100000,1000000')).split(',').map(Number);
const KERNEL = (opt('--engines') ?? 'iptables-nft,iptables-legacy,nft').split(',').filter((e) => e && e !== 'none') as EngineName[];
const TIMEOUT_MS = Number(opt('--timeout') ?? 600) * 1000;
const PHASES = new Set((opt('--phases') ?? 'flatwall,kernel,restart').split(','));
const REPEAT = Math.max(1, Number(opt('--repeat') ?? 1));
const outDir = join(__dirname, '..', '..', 'bench', 'results');
mkdirSync(outDir, { recursive: true });
const t0 = performance.now();
const progress = (m: string) => process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(0)}s] ${m}\n`);

const ALLOW = '-A FORWARD -p udp -m udp --dport 7101 -j ACCEPT\n-A FORWARD -p udp -m udp --sport 7101 -j ACCEPT\n';

// REJECT becomes DROP: the nft translation (src/lab/nft.ts) takes ACCEPT/DROP
// only, and every engine must load the same rules.
function ruleFile(dir: string, n: number, seed: number, allow = ALLOW, tag = ''): string {
  const lines = [...generateLines({ family: 'acl', rules: n, seed })].map((l) => l.replace(/ -j REJECT( --reject-with \S+)?$/, ' -j DROP'));
  const first = lines.findIndex((l) => l.startsWith('-A '));
  lines.splice(first < 0 ? lines.indexOf('COMMIT') : first, 0, allow.trimEnd());
  const f = join(dir, `acl-${n}-s${seed}${tag}.rules`);
  writeFileSync(f, `${lines.join('\n')}\n`);
  return f;
}

interface Point {
  engine: string;
  rules: number;
  /** Replace of an N-rule set by another N-rule set, seconds (flatwall: PUT to answer). */
  updateSeconds?: number;
  /** flatwall: the server's own breakdown. */
  serverSeconds?: number;
  buildSeconds?: number;
  timings?: { compileSeconds: number; setRulesSeconds: number; countersSeconds: number };
  /** flatwall (snapshot): until the rule listing is back (metadata parsed, counters carried), and the untimed compile. */
  listingSeconds?: number;
  compileSeconds?: number;
  error?: string;
}

interface Extra {
  rules: number;
  insert: { engine: string; seconds?: number; error?: string }[];
  /** flatwall's single-rule edits at the largest size: median seconds, overlay or rebuild. */
  edits?: { edit: string; seconds?: number; method?: string; fallback?: string; error?: string }[];
  /** The first edit after the text PUT, which reads the rule model (not in the medians). */
  firstEdit?: { seconds?: number; method?: string; error?: string };
  swapUnderLoad?: { sent: number; replies: number; lost: number; putSeconds: number };
  /** Medians over `runs` (each field's own median). */
  restart?: {
    sourceSeconds: number; snapshotSeconds: number; compileSeconds: number; snapshotBytes?: number; snapshotReadSeconds?: number; snapshotBuildSeconds?: number;
    /** Classifiers loaded from the snapshot's image (false: refused and built, with the reason). */
    imageLoaded?: boolean; imageError?: string;
    /** The same snapshot compiled with --no-image (classifiers built at start), same runs. */
    noImageSeconds?: number; noImageBuildSeconds?: number;
    runs?: { sourceSeconds: number; snapshotSeconds: number; snapshotReadSeconds?: number; snapshotBuildSeconds?: number; noImageSeconds?: number; noImageBuildSeconds?: number }[];
    meta?: Record<string, unknown>;
  };
  restartError?: string;
}

async function flatwallPoints(dir: string, files: Map<number, [string, string]>, points: Point[], extra: Extra): Promise<void> {
  const topo = Topology.create('bridge', 'fwbupd');
  const sock = join(dir, 'api.sock');
  let fw: RunningEngine | undefined;
  try {
    fw = await startEngine('flatwall', topo, files.get(SIZES[0])![0], { timeoutMs: TIMEOUT_MS, workDir: dir, extraArgs: ['--api-socket', sock] });
    await startEchoServer(topo, 7101);
    const put = async (file: string) => {
      const p = await putRules(sock, readFileSync(file, 'utf8'));
      return { secs: (p.end - p.start) / 1000, j: p.j };
    };
    for (const n of SIZES) {
      const [a, b] = files.get(n)!;
      progress(`flatwall: PUT ${n} rules (seed 1), then the replace by seed 2`);
      try {
        await put(a);
        const r = await put(b);
        points.push({ engine: 'flatwall', rules: n, updateSeconds: r.secs, serverSeconds: r.j.seconds, buildSeconds: r.j.buildSeconds, timings: r.j.timings });
        progress(`  ${r.secs.toFixed(3)} s (server ${r.j.seconds.toFixed(3)} s, classifier build ${r.j.buildSeconds.toFixed(3)} s)`);
      } catch (err) {
        points.push({ engine: 'flatwall', rules: n, error: (err as Error).message });
      }
      // The same replace from a snapshot compiled beforehand (flatwall compile -o, not timed
      // here): uploaded as the body (what a remote client does), then named by path on the
      // Unix socket (flatwall ctl reload FILE.snap; the firewall reads the file itself).
      progress(`flatwall: the replace by a snapshot of seed 1 (compiled first)`);
      const snap = join(dir, `acl-${n}-s1.snap`);
      const c = await run(process.execPath, [FLATWALL_CLI, 'compile', a, '-o', snap], { timeoutMs: TIMEOUT_MS, allowFail: true });
      for (const [engine, method, path, body, ct] of [
        ['flatwall (snapshot upload)', 'PUT', '/rules', () => readFileSync(snap), SNAPSHOT_CONTENT_TYPE],
        ['flatwall (snapshot)', 'POST', '/reload', () => JSON.stringify({ snapshot: snap }), 'application/json'],
      ] as const) {
        try {
          if (c.code !== 0) throw new Error(`flatwall compile: ${c.stderr.slice(0, 200)}`);
          const b = body();
          const s = performance.now();
          const r = await apiCall({ socket: sock }, method, path, b, ct);
          const secs = (performance.now() - s) / 1000;
          if (r.status !== 200) throw new Error(`${method} ${path} (snapshot): ${r.status} ${r.body.slice(0, 200)}`);
          // Then the listing (and counter carry-over) once the metadata is parsed.
          while ((await apiCall({ socket: sock }, 'GET', '/rules?limit=1')).status === 503) await new Promise((res) => setTimeout(res, 50));
          const listed = (performance.now() - s) / 1000;
          points.push({ engine, rules: n, updateSeconds: secs, serverSeconds: r.json!.seconds, buildSeconds: r.json!.buildSeconds, listingSeconds: listed, compileSeconds: c.seconds });
          const j = r.json!;
          progress(`  ${engine}: active after ${secs.toFixed(3)} s (server: ${j.receiveSeconds !== undefined ? `body received ${j.receiveSeconds.toFixed(3)} s, ` : ''}read + verified ${j.verifySeconds?.toFixed(3)} s, activated ${j.seconds.toFixed(3)} s), listing after ${listed.toFixed(2)} s`);
        } catch (err) {
          points.push({ engine, rules: n, error: (err as Error).message });
        }
      }
    }
    const n = SIZES[SIZES.length - 1];
    // Edits need a rule set loaded from text (a snapshot-loaded one has no rule spans).
    progress(`flatwall: PUT ${n} rules (seed 2) as text again, for the edits`);
    await put(files.get(n)![1]);
    progress(`flatwall: single-rule edits at ${n}`);
    await singleRuleEdits(sock, n, extra);

    // A stream across a whole replace: 500 datagrams/s for the replace's duration plus margins.
    const last = points.filter((p) => p.engine === 'flatwall' && p.updateSeconds).pop();
    const count = Math.ceil(((last?.updateSeconds ?? 2) + 3) * 500);
    progress(`flatwall: ${count} UDP datagrams across a ${n}-rule replace`);
    const burst = run(process.execPath, [join(__dirname, '..', 'src', 'lab', 'nettool.js'), 'udp-burst', topo.ep.receiverIp, '7101', String(count), '64'],
      { ns: topo.sender, timeoutMs: count * 10 + 60_000 });
    await new Promise((r) => setTimeout(r, 1000));
    const r = await put(files.get(n)![0]);
    const b = JSON.parse((await burst).stdout);
    extra.swapUnderLoad = { sent: b.sent, replies: b.replies, lost: b.sent - b.replies, putSeconds: r.secs };
    progress(`  sent ${b.sent}, echoed ${b.replies}`);
  } finally {
    await fw?.stop().catch(() => undefined);
    await topo.destroy();
  }
}

/**
 * Single-rule edits over the running n-rule set, each EDIT_REPEATS times:
 * the median request-to-answer time (the answer comes once the edit is
 * active), and whether it took the overlay or a rebuild. The first insert
 * is also the `insert` figure compared with the kernel engines'.
 */
const EDIT_REPEATS = 5;
async function singleRuleEdits(sock: string, n: number, extra: Extra): Promise<void> {
  const mid = Math.floor(n / 2);
  const edits: [string, string, string, string?][] = [
    ['insert at 1', 'POST', '/rules', '-I FORWARD 1 -p tcp -m tcp --dport 23 -j DROP'],
    [`insert at ${mid}`, 'POST', '/rules', `-I FORWARD ${mid} -s 10.99.0.0/16 -j DROP`],
    ['append', 'POST', '/rules', '-A FORWARD -p udp -m udp --dport 9 -j DROP'],
    ['delete 1', 'DELETE', '/rules/FORWARD/1'],
    [`delete ${mid}`, 'DELETE', `/rules/FORWARD/${mid}`],
  ];
  extra.edits = [];
  // The first edit after a text reload reads the rule model on the main
  // thread (src/rules/deferred.ts, --rule-model lazy): timed on its own.
  {
    const s = performance.now();
    const r = await apiCall({ socket: sock }, 'POST', '/rules', JSON.stringify({ rule: '-I FORWARD 1 -p tcp -m tcp --dport 24 -j DROP' }));
    extra.firstEdit = r.status === 201 ? { seconds: (performance.now() - s) / 1000, method: (r.json as { method?: string }).method } : { error: r.body.slice(0, 200) };
    progress(`  first edit after the text reload (reads the model): ${extra.firstEdit.seconds !== undefined ? `${extra.firstEdit.seconds.toFixed(2)} s` : extra.firstEdit.error}`);
  }
  for (const [name, method, path, rule] of edits) {
    const times: number[] = [];
    let server: { method?: string; fallback?: string; seconds?: number } = {};
    let error: string | undefined;
    for (let i = 0; i < EDIT_REPEATS && !error; i++) {
      const s = performance.now();
      const r = await apiCall({ socket: sock }, method, path, rule ? JSON.stringify({ rule }) : undefined);
      if (r.status !== 200 && r.status !== 201) error = r.body.slice(0, 200);
      else {
        times.push((performance.now() - s) / 1000);
        server = r.json as typeof server;
      }
    }
    times.sort((a, b) => a - b);
    const seconds = times.length ? times[times.length >> 1] : undefined;
    extra.edits.push({ edit: name, seconds, method: server.method, fallback: server.fallback, error });
    if (name === 'insert at 1') extra.insert.push(seconds !== undefined ? { engine: 'flatwall', seconds } : { engine: 'flatwall', error });
    progress(`  ${name}: ${seconds !== undefined ? `${(seconds * 1000).toFixed(2)} ms (${server.method})` : error}`);
  }
}

async function kernelPoints(dir: string, files: Map<number, [string, string]>, points: Point[], extra: Extra): Promise<void> {
  for (const engine of KERNEL) {
    const topo = Topology.create('routed', 'fwbupk');
    try {
      for (const n of SIZES) {
        const [a, b] = files.get(n)!;
        progress(`${engine}: load ${n} rules, then the replace`);
        try {
          await startEngine(engine, topo, a, { timeoutMs: TIMEOUT_MS, workDir: dir, rules: n + 2 });
          const e = await startEngine(engine, topo, b, { timeoutMs: TIMEOUT_MS, workDir: dir, rules: n + 2 });
          points.push({ engine, rules: n, updateSeconds: e.report.loadSeconds });
          progress(`  ${e.report.loadSeconds.toFixed(3)} s`);
        } catch (err) {
          points.push({ engine, rules: n, error: (err as Error).message.slice(0, 200) });
          progress(`  ${(err as Error).message.slice(0, 200)}`);
          break; // a bigger set would take longer still
        }
      }
      if (engine !== 'nft' && points.some((p) => p.engine === engine && p.rules === SIZES[SIZES.length - 1] && p.updateSeconds)) {
        const cmd = engine === 'iptables-legacy' ? 'iptables-legacy' : 'iptables-nft';
        const r = await run(cmd, ['-I', 'FORWARD', '1', '-p', 'tcp', '--dport', '23', '-j', 'DROP'], { ns: topo.firewall, timeoutMs: TIMEOUT_MS, allowFail: true });
        extra.insert.push(r.code === 0 ? { engine, seconds: r.seconds } : { engine, error: r.stderr.slice(0, 200) });
      }
    } finally {
      await topo.destroy();
    }
  }
}

function median(v: number[]): number | undefined {
  if (v.length === 0) return undefined;
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function restart(dir: string, file: string, n: number, extra: Extra): Promise<void> {
  const snap = join(dir, `acl-${n}.snap`);
  progress(`restart: flatwall compile ${n} rules to a snapshot`);
  const c = await run(process.execPath, [FLATWALL_CLI, 'compile', '-q', file, '-o', snap], { timeoutMs: TIMEOUT_MS });
  const bytes = /(\d+) bytes/.exec(c.stderr)?.[1];
  // The same snapshot without the classifier image: the rebuild path, side by side.
  const bare = join(dir, `acl-${n}-noimage.snap`);
  await run(process.execPath, [FLATWALL_CLI, 'compile', '-q', '--no-image', file, '-o', bare], { timeoutMs: TIMEOUT_MS });
  const topo = Topology.create('bridge', 'fwbrst');
  try {
    const time = async (extraArgs: string[]) => {
      const e = await startEngine('flatwall', topo, file, { timeoutMs: TIMEOUT_MS, workDir: dir, extraArgs: ['--api-socket', 'off', ...extraArgs] });
      await e.stop();
      return e.report;
    };
    const runs: NonNullable<NonNullable<Extra['restart']>['runs']> = [];
    let image: { loaded?: boolean; error?: string } | undefined;
    for (let i = 1; i <= REPEAT; i++) {
      progress(`restart ${i}/${REPEAT}: from source`);
      const sourceSeconds = (await time([])).startupSeconds!;
      progress(`restart ${i}/${REPEAT}: from the snapshot`);
      const snapRun = await time(['--snapshot', snap]);
      image = snapRun.detail?.image as typeof image;
      progress(`restart ${i}/${REPEAT}: from the snapshot without an image`);
      const bareRun = await time(['--snapshot', bare]);
      runs.push({
        sourceSeconds, snapshotSeconds: snapRun.startupSeconds!,
        snapshotReadSeconds: snapRun.detail?.snapshotReadSeconds as number | undefined, snapshotBuildSeconds: snapRun.detail?.buildSeconds as number | undefined,
        noImageSeconds: bareRun.startupSeconds!, noImageBuildSeconds: bareRun.detail?.buildSeconds as number | undefined,
      });
      progress(`  source ${sourceSeconds.toFixed(2)} s, snapshot ${snapRun.startupSeconds!.toFixed(2)} s, without image ${bareRun.startupSeconds!.toFixed(2)} s`);
    }
    const med = (k: keyof (typeof runs)[number]) => median(runs.map((r) => r[k]).filter((v): v is number => v !== undefined));
    extra.restart = {
      sourceSeconds: med('sourceSeconds')!, snapshotSeconds: med('snapshotSeconds')!, compileSeconds: c.seconds, snapshotBytes: bytes ? Number(bytes) : undefined,
      snapshotReadSeconds: med('snapshotReadSeconds'), snapshotBuildSeconds: med('snapshotBuildSeconds'),
      imageLoaded: image?.loaded ?? false, imageError: image?.error, runs,
      noImageSeconds: med('noImageSeconds'), noImageBuildSeconds: med('noImageBuildSeconds'),
    };
  } finally {
    await topo.destroy();
  }
}

function markdown(points: Point[], extra: Extra, meta: Record<string, unknown>): string {
  const engines = [...new Set(points.map((p) => p.engine))];
  // The sizes measured (a restart-only run keeps the points of the last full run).
  const sizes = [...new Set(points.map((p) => p.rules))].sort((a, b) => a - b);
  const cell = (e: string, n: number) => {
    const p = points.find((x) => x.engine === e && x.rules === n);
    return !p ? '-' : p.error ? 'failed' : `${p.updateSeconds!.toFixed(3)} s`;
  };
  const out = points.length === 0 ? ['# Restart (bench/update.ts --phases restart)', ''] : [
    '# Rule update latency (bench/update.ts)',
    '',
    `${meta.date}, ${meta.cpus} CPUs, load average ${meta.loadavg}. Replace an N-rule \`acl\` set by another of the same size; flatwall: PUT /rules until the answer (rules active).`,
    '',
    `| engine | ${sizes.map((n) => `${n.toLocaleString('en')} rules`).join(' | ')} |`,
    `|---|${sizes.map(() => '---').join('|')}|`,
    ...engines.map((e) => `| ${e} | ${sizes.map((n) => cell(e, n)).join(' | ')} |`),
    '',
    `Single-rule insert at ${extra.rules.toLocaleString('en')} rules: ${extra.insert.map((i) => `${i.engine} ${i.seconds !== undefined ? `${(i.seconds * 1000).toFixed(1)} ms` : `failed (${i.error})`}`).join(', ')}.`,
    ...(extra.edits ? ['', `flatwall single-rule edits at ${extra.rules.toLocaleString('en')} rules (median of ${EDIT_REPEATS}, request to active): ` +
      extra.edits.map((e) => `${e.edit} ${e.seconds !== undefined ? `${(e.seconds * 1000).toFixed(2)} ms (${e.method})` : `failed (${e.error})`}`).join(', ') + '.'
      + (extra.firstEdit ? ` Before them, the first edit after the text reload, which reads the rule model on the main thread (\`--rule-model lazy\`): ${extra.firstEdit.seconds !== undefined ? `${extra.firstEdit.seconds.toFixed(2)} s` : `failed (${extra.firstEdit.error})`}.` : '')] : []),
  ];
  if (extra.swapUnderLoad) {
    const s = extra.swapUnderLoad;
    out.push('', `UDP stream (500 datagrams/s, echoed) across a ${extra.rules.toLocaleString('en')}-rule replace (${s.putSeconds.toFixed(2)} s): ${s.sent} sent, ${s.replies} echoed, ${s.lost} lost.`);
  }
  if (extra.restart) {
    const r = extra.restart;
    const n = r.runs?.length ?? 1;
    const when = r.meta ? `; ${r.meta.date}, load average ${r.meta.loadavg}` : '';
    const cls = r.imageLoaded ? 'classifiers loaded from the snapshot\'s image' : `classifier build${r.imageError ? ` (image refused: ${r.imageError})` : ''}`;
    out.push('', `Restart to forwarding at ${extra.rules.toLocaleString('en')} rules (spawn to "ready"${n > 1 ? `, median of ${n} runs` : ''}${when}): from source ${r.sourceSeconds.toFixed(2)} s, from a snapshot ${r.snapshotSeconds.toFixed(2)} s (of which reading + verifying the snapshot ${r.snapshotReadSeconds?.toFixed(2) ?? '?'} s, ${cls} ${r.snapshotBuildSeconds?.toFixed(2) ?? '?'} s; compile ${r.compileSeconds.toFixed(1)} s, ${r.snapshotBytes} bytes).`);
    if (r.noImageSeconds !== undefined) out.push('', `The same snapshot without its classifier image (\`compile --no-image\`, classifiers built at start), in the same runs: ${r.noImageSeconds.toFixed(2)} s (build ${r.noImageBuildSeconds?.toFixed(2) ?? '?'} s).`);
    if (n > 1) {
      const list = (k: 'snapshotSeconds' | 'sourceSeconds' | 'noImageSeconds') => r.runs!.map((x) => `${x[k]?.toFixed(2) ?? '?'} s`).join(', ');
      out.push('', `Runs: from a snapshot ${list('snapshotSeconds')}; without image ${list('noImageSeconds')}; from source ${list('sourceSeconds')}.`);
    }
  }
  const fw = points.filter((p) => p.engine === 'flatwall' && p.serverSeconds !== undefined);
  if (fw.length) {
    out.push('', 'flatwall breakdown (server side): ' + fw.map((p) => `${p.rules}: total ${p.serverSeconds!.toFixed(3)} s = parse + compile ${p.timings?.compileSeconds.toFixed(3) ?? '?'} s, setRules ${p.timings?.setRulesSeconds.toFixed(3) ?? '?'} s (classifier build ${p.buildSeconds!.toFixed(3)} s), counter carry-over ${p.timings?.countersSeconds.toFixed(3) ?? '?'} s`).join('; ') + '.');
  }
  const snaps = points.filter((p) => p.engine.startsWith('flatwall (snapshot') && p.listingSeconds !== undefined);
  if (snaps.length) {
    out.push('', 'flatwall from a snapshot of the new set (`flatwall compile -o`, compiled beforehand: ' +
      snaps.filter((p) => p.engine === 'flatwall (snapshot)').map((p) => `${p.rules.toLocaleString('en')} rules ${p.compileSeconds?.toFixed(1)} s`).join(', ') +
      '): "snapshot" = `flatwall ctl reload FILE.snap` on the Unix socket (POST /reload naming the file, which the firewall reads), "snapshot upload" = PUT /rules with the snapshot as the body; request to answer (active). ' +
      'The rule listing and the counter carry-over were back after: ' + snaps.map((p) => `${p.engine.slice(10, -1)} ${p.rules.toLocaleString('en')} ${p.listingSeconds!.toFixed(2)} s`).join(', ') + '.');
  }
  if (extra.restartError) out.push('', `Restart measurement failed: ${extra.restartError}`);
  const errs = points.filter((p) => p.error);
  if (errs.length) out.push('', 'Failures: ' + errs.map((p) => `${p.engine} at ${p.rules}: ${p.error}`).join('; '));
  return `${out.join('\n')}\n`;
}

// The swap phase at the largest size (default 1M; --quick: 100k), its own
// rule files (the iperf3 flows allowed first).
async function swap(dir: string, meta: () => Record<string, unknown>): Promise<void> {
  const n = opt('--sizes') ? SIZES[SIZES.length - 1] : quick ? 100_000 : 1_000_000;
  progress(`swap: generating ${n} rules (2 seeds)`);
  const files: [string, string] = [ruleFile(dir, n, 1, SWAP_ALLOW, '-swap'), ruleFile(dir, n, 2, SWAP_ALLOW, '-swap')];
  const names = (opt('--swap-variants') ?? SWAP_VARIANTS.map((v) => v.name).join(',')).split(',');
  const variants = SWAP_VARIANTS.filter((v) => names.includes(v.name));
  if (variants.length !== names.length) throw new Error(`--swap-variants: known ${SWAP_VARIANTS.map((v) => v.name).join(', ')}`);
  const runs: SwapRun[] = await swapPhase(dir, n, files, TIMEOUT_MS, progress, variants);
  const m = meta();
  writeFileSync(join(outDir, 'update-swap.json'), `${JSON.stringify({ meta: m, runs }, null, 2)}\n`);
  for (const r of runs) if (!r.error) writeFileSync(join(outDir, swapPlotName(r)), swapPlot(r, quick));
  const md = swapMarkdown(runs, m);
  writeFileSync(join(outDir, 'update-swap.md'), md);
  process.stdout.write(md);
  if (runs.some((r) => r.error)) process.exitCode = 1;
}

function lastResults(): { meta: Record<string, unknown>; points: Point[]; extra: Extra } | undefined {
  try {
    return JSON.parse(readFileSync(join(outDir, 'update.json'), 'utf8'));
  } catch {
    return undefined;
  }
}

/** The health phase (see the header). */
async function health(dir: string, meta: () => Record<string, unknown>): Promise<void> {
  const n = SIZES[SIZES.length - 1];
  progress(`health: generating ${n} rules (2 seeds)`);
  const a = ruleFile(dir, n, 1);
  const b = ruleFile(dir, n, 2);
  const topo = Topology.create('bridge', 'fwbhl');
  const sock = join(dir, 'api.sock');
  let fw: RunningEngine | undefined;
  try {
    fw = await startEngine('flatwall', topo, a, { timeoutMs: TIMEOUT_MS, workDir: dir, extraArgs: ['--api-socket', sock] });
    const rssStart = fw.memory();
    const runs: { putSeconds: number; probes: number; p50Ms: number; p99Ms: number; maxMs: number; over50ms: number; failed: number; failures: string[] }[] = [];
    for (let i = 0; i < REPEAT; i++) {
      const file = i % 2 === 0 ? b : a;
      progress(`health: replace ${n} rules by ${file.endsWith('s2.rules') ? 'seed 2' : 'seed 1'} with GET /health every 20 ms`);
      // The probes run in a process of their own (bench/health-probe.ts).
      const prober = spawn(process.execPath, [join(__dirname, 'health-probe.js'), sock], { stdio: ['pipe', 'pipe', 'inherit'] });
      let out = '';
      prober.stdout.on('data', (c: Buffer) => (out += c.toString()));
      const exited = new Promise((res) => prober.on('close', res));
      await new Promise((res) => setTimeout(res, 500));
      const p = await putRules(sock, readFileSync(file, 'utf8'));
      prober.stdin.end();
      await exited;
      const probed = JSON.parse(out) as { latencies: number[]; failures: string[] };
      const lat = probed.latencies;
      const failures = probed.failures;
      lat.sort((x, y) => x - y);
      const q = (f: number) => lat[Math.min(lat.length - 1, Math.floor(f * lat.length))];
      runs.push({ putSeconds: (p.end - p.start) / 1000, probes: lat.length, p50Ms: q(0.5), p99Ms: q(0.99), maxMs: lat[lat.length - 1], over50ms: lat.filter((x) => x > 50).length, failed: failures.length, failures: [...new Set(failures)] });
      progress(`  PUT ${runs[i].putSeconds.toFixed(2)} s; /health ${lat.length} answered, ${failures.length} failed, p50 ${q(0.5).toFixed(1)} ms, p99 ${q(0.99).toFixed(1)} ms, max ${lat[lat.length - 1].toFixed(1)} ms`);
    }
    const rssEnd = fw.memory();
    const m = meta();
    writeFileSync(join(outDir, 'update-health.json'), `${JSON.stringify({ meta: m, rules: n, runs, rss: { start: rssStart, end: rssEnd } }, null, 2)}\n`);
    const md = [
      '# The API during a text reload (bench/update.ts --phases health)', '',
      `${m.date}, ${m.cpus} CPUs, load average ${m.loadavg}. flatwall run holding ${n.toLocaleString('en')} \`acl\` rules; PUT /rules of another ${n.toLocaleString('en')}-rule set (text) while a client in another process (bench/health-probe.ts) sends GET /health on the Unix socket, one at a time, 20 ms apart; request-to-answer latency of every probe from 0.5 s before the PUT until it answered.`, '',
      '| run | PUT to active | probes answered | failed | p50 | p99 | max | probes over 50 ms |', '|---|---:|---:|---:|---:|---:|---:|---:|',
      ...runs.map((r, i) => `| ${i + 1} | ${r.putSeconds.toFixed(2)} s | ${r.probes} | ${r.failed}${r.failed ? ` (${r.failures.join('; ')})` : ''} | ${r.p50Ms.toFixed(1)} ms | ${r.p99Ms.toFixed(1)} ms | ${r.maxMs.toFixed(1)} ms | ${r.over50ms} |`),
      '', `flatwall run RSS: ${rssStart.rssMb?.toFixed(0)} MB after starting with ${n.toLocaleString('en')} rules, ${rssEnd.rssMb?.toFixed(0)} MB after the replaces, peak ${rssEnd.peakRssMb?.toFixed(0)} MB.`, '',
    ].join('\n');
    writeFileSync(join(outDir, 'update-health.md'), md);
    process.stdout.write(md);
  } finally {
    await fw?.stop().catch(() => undefined);
    await topo.destroy();
  }
}

async function main(): Promise<void> {
  installTeardown(true);
  const dir = mkdtempSync(join(tmpdir(), 'flatwall-bench-update-'));
  try {
    const meta = () => ({ date: new Date().toISOString(), cpus: cpus().length, loadavg: loadavg().map((x) => x.toFixed(1)).join(' '), quick });
    if (PHASES.has('swap')) await swap(dir, meta);
    if (PHASES.has('health')) await health(dir, meta);
    if ([...PHASES].every((p) => p === 'swap' || p === 'health')) return;
    const files = new Map<number, [string, string]>();
    for (const n of SIZES) {
      progress(`generating ${n} rules${PHASES.size === 1 && PHASES.has('restart') ? '' : ' (2 seeds)'}`);
      files.set(n, PHASES.size === 1 && PHASES.has('restart') ? [ruleFile(dir, n, 1), ''] : [ruleFile(dir, n, 1), ruleFile(dir, n, 2)]);
    }
    const points: Point[] = [];
    const extra: Extra = { rules: SIZES[SIZES.length - 1], insert: [] };
    if (PHASES.has('flatwall')) await flatwallPoints(dir, files, points, extra);
    if (PHASES.has('kernel')) await kernelPoints(dir, files, points, extra);
    if (PHASES.has('restart')) try {
      await restart(dir, files.get(extra.rules)![0], extra.rules, extra);
    } catch (err) {
      extra.restartError = (err as Error).message;
      progress(`restart: ${extra.restartError}`);
    }
    let m: Record<string, unknown> = meta();
    if (PHASES.size === 1 && PHASES.has('restart') && extra.restart) {
      // Only the restart figures are new: keep the rest of the last full run.
      const last = lastResults();
      if (last) {
        extra.restart.meta = m;
        Object.assign(extra, { ...last.extra, restart: extra.restart, restartError: undefined });
        points.push(...last.points);
        m = last.meta;
      }
    }
    writeFileSync(join(outDir, 'update.json'), `${JSON.stringify({ meta: m, points, extra }, null, 2)}\n`);
    const md = markdown(points, extra, m);
    writeFileSync(join(outDir, 'update.md'), md);
    process.stdout.write(md);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`bench:update: ${(err as Error).stack ?? err}\n`);
  process.exitCode = 1;
});
