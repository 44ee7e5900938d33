// Issue 11's figures in one file: bench/results/extensions.json from the two
// runs that measure extension rules side by side with the plain table,
//   npm run bench:classifier -- --ext --breakdown   -> extensions-replay.json
//   npm run bench:e2e -- --engines flatwall --ext --repeat R ...  -> e2e-ext.json
// (see bench/results/extensions.md for what they measure). Earlier e2e runs
// kept as e2e-ext-run*.json are summarized too, each with the block it ran
// (runs from before fail2ban's -m set rule joined the block ran 7 head
// rules), and the pairs of every e2e run with the current block (the same
// head and tail rules as e2e-ext.json) are pooled (median over all pairs);
// earlier blocks are never pooled with it. Run after both:
//   node dist/bench/extensions-summary.js
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = join(__dirname, '..', '..', 'bench', 'results');
const read = (f: string) => JSON.parse(readFileSync(join(dir, f), 'utf8'));
const r3 = (x: number) => +x.toFixed(3);
const span = (a: number[]) => [r3(Math.min(...a)), r3(Math.max(...a))];

const replay = read('extensions-replay.json');
const e2e = read('e2e-ext.json');
const ratio = (r: { median: number; min: number; max: number; rounds?: number[]; ratios?: number[] }) =>
  ({ median: r3(r.median), min: r3(r.min), max: r3(r.max), each: (r.rounds ?? r.ratios ?? []).map(r3) });

const e2eRatios = (d: any) => d.extRatios.filter((r: any) => ['tcp_mbps', 'udp_mbps', 'pps64_k', 'load_s', 'mem_mb'].includes(r.metric))
  .map((r: any) => ({ engine: r.engine, rules: r.rules, metric: r.metric, ...ratio(r), plain: r.plain.map(r3), ext: r.ext.map(r3) }));
const median = (a: number[]) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const earlier = readdirSync(dir).filter((f) => /^e2e-ext-run\d+\.json$/.test(f)).sort().map((f) => ({ file: f, d: read(f) }));
const block = (d: any) => JSON.stringify([d.ext?.head ?? [], d.ext?.tail ?? []]);
const sameBlock = (d: any) => block(d) === block(e2e);
const blockNote = (d: any) => (sameBlock(d) ? 'the current block' : (d.ext?.head ?? []).some((l: string) => l.includes('-m set'))
  ? 'a different block' : 'the block without the -m set rule (7 head rules)');
const runs = [...earlier.filter((x) => sameBlock(x.d)).map((x) => x.d), e2e];
const pooled: Record<string, unknown>[] = [];
for (const metric of ['tcp_mbps', 'udp_mbps', 'pps64_k']) {
  const rules = [...new Set(runs.flatMap((d) => d.extRatios.map((r: any) => r.rules)))].sort((a: any, b: any) => a - b);
  for (const n of rules) {
    const all = runs.flatMap((d) => d.extRatios.filter((r: any) => r.rules === n && r.metric === metric && r.engine === 'flatwall').flatMap((r: any) => r.ratios));
    const q = (f: number) => r3([...all].sort((a, b) => a - b)[Math.min(all.length - 1, Math.floor(f * all.length))]);
    if (all.length) pooled.push({ rules: n, metric, pairs: all.length, median: r3(median(all)), p25: q(0.25), p75: q(0.75), min: r3(Math.min(...all)), max: r3(Math.max(...all)), below_1: all.filter((x: number) => x < 1).length });
  }
}

const replaySummary = (rp: any) => ({
  command: rp.command, date: rp.date, cpu: rp.cpu, cores: rp.cores, frames_per_call: rp.frames, rounds: rp.rounds,
  measure: 'frames/s through native replayFrames (frame parser + ext::EvaluateExt), process CPU time, (F-1)/(T_full - T_1frame); ratio per round',
  sizes: rp.summary.map((s: any) => ({
    rules: s.rules, plain_mfps: r3(s.plain_fps_cpu / 1e6), ext_mfps: r3(s.ext_fps_cpu / 1e6),
    ratio_cpu: ratio(s.ratio_cpu), ratio_wall: ratio(s.ratio_wall),
    ns_per_frame: { plain: Math.round(s.plain_ns_per_frame), ext: Math.round(s.ext_ns_per_frame) }, loadavg: s.loadavg,
  })),
  breakdown: (rp.breakdown ?? []).map((b: any) => ({
    rules: b.rules, table: b.variant, ratio_cpu: ratio(b.ratio_cpu), added_ns_per_frame: Math.round(b.ext_ns_per_frame - b.plain_ns_per_frame),
  })),
  verified: rp.checks.every((c: any) => c.ok),
  checks: rp.checks.filter((c: any) => c.ext).map((c: any) => ({ rules: c.rules, accepted: c.accepted, frames: c.frames, headRuleHits: c.headRuleHits, logHits: c.logHits, probes_ok: (c.probes as string[]).every((p) => p.startsWith('ok')) })),
});
// Kept earlier runs of the replay path (extensions-replay-*.json: an older
// addon, or the block before the -m set rule; `block` says which block).
const olderReplays = readdirSync(dir).filter((f) => /^extensions-replay-.+\.json$/.test(f)).sort();

const out = {
  issue: 11,
  what: 'ext/plain: the same generated chain table with and without a block of match-extension rules (bench/ext-rules.ts: fail2ban -m set, recent, ttl, length, hashlimit, limit LOG) that every benchmark packet runs, verdict unchanged (ACCEPT)',
  ext_rules: { head: replay.ext_head, tail: replay.ext_tail, set: replay.ext_set ?? null },
  replay: replaySummary(replay),
  replay_earlier_runs: olderReplays.map((f) => {
    const d = read(f);
    const note = (d.ext_head ?? []).some((l: string) => l.includes('-m set')) ? 'with the -m set rule' : 'the block without the -m set rule (7 head rules)';
    return { file: f, block: note, ...replaySummary(d) };
  }),
  e2e: {
    command: e2e.command, started: e2e.startedAt, seconds: e2e.seconds, repeats: e2e.repeats, duration_s: e2e.durationSeconds, machine: e2e.machine,
    loadavg: span(e2e.points.map((p: any) => p.loadavg[0])),
    ratios: e2eRatios(e2e),
    programs_ran: e2e.points.filter((p: any) => p.raw?.rule_check).map((p: any) => ({ rules: p.rules, table: p.variant, rep: p.rep, ...p.raw.rule_check, verdicts: undefined })),
  },
  e2e_earlier_runs: earlier.map(({ file, d }) => ({ file, block: blockNote(d), cpu: d.machine?.cpu, command: d.command, started: d.startedAt, loadavg: span(d.points.map((p: any) => p.loadavg[0])), ratios: e2eRatios(d) })),
  e2e_pooled: { runs: runs.length, note: 'every ext/plain pair of every e2e run with the current block (flatwall), median [min-max]', ratios: pooled },
};
writeFileSync(join(dir, 'extensions.json'), `${JSON.stringify(out, null, 1)}\n`);
process.stdout.write('written: bench/results/extensions.json\n');
