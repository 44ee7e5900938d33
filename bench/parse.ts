// Parse + compile time and peak memory of `flatwall check`, from 1 to 1M
// rules. Each point runs in its own process so its peak RSS is its own.
// Memory against input (issue 12: "a parser whose memory is a small multiple
// of its input, target <= 4x input plus the compiled table"): the peak RSS
// above the 1-rule run's (Node itself), less the packed table (records x
// their size), over the rule file's bytes.
// Both engines at every point, side by side: the addon's text fast path
// (src/rules/text-fast-path.ts, what `flatwall check` and the build thread
// use) and the TypeScript reference (FLATWALL_TEXT_FAST_PATH=0).
//   npm run bench:parse [-- --quick] [--families chain,acl] [--max N]
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { flag, opt as arg } from './args';

const quick = flag('--quick');
const families = (arg('--families') ?? 'chain,acl').split(',');
const max = Number(arg('--max') ?? (quick ? 10_000 : 1_000_000));
const sizes = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000].filter((n) => n <= max);
const cli = join(__dirname, '..', 'src', 'cli', 'main.js');
const dir = mkdtempSync(join(tmpdir(), 'flatwall-bench-'));
const out = join(__dirname, '..', '..', 'bench', 'results');
mkdirSync(out, { recursive: true });

const ENGINES = [{ name: 'addon', env: {} }, { name: 'reference', env: { FLATWALL_TEXT_FAST_PATH: '0' } }] as const;

interface Point {
  engine: string; compiled_by: string;
  family: string; rules: number; read_s: number; parse_s: number; compile_s: number; total_s: number; max_rss_mb: number; records: number;
  input_mb: number; table_mb: number; rss_over_input?: number;
}
const RECORD_BYTES = 52; // RuleRecord4 (native/classifier/rule_table.h); the benchmark families are IPv4
const points: Point[] = [];
try {
  for (const family of families) {
    for (const n of sizes) {
      process.stderr.write(`bench:parse ${family} ${n} rules...\n`);
      const file = join(dir, `${family}-${n}.rules`);
      execFileSync(process.execPath, [cli, 'gen', '-q', family, String(n), '-o', file]);
      for (const engine of ENGINES) {
      const r = JSON.parse(execFileSync(process.execPath, [cli, 'check', '-q', '--json', file], { encoding: 'utf8', maxBuffer: 1 << 24, env: { ...process.env, ...engine.env } }));
      const s = r.seconds;
      points.push({
        engine: engine.name, compiled_by: r.compiledBy,
        family, rules: n, read_s: s.readSeconds, parse_s: s.parseSeconds, compile_s: s.compileSeconds,
        total_s: s.readSeconds + s.parseSeconds + s.compileSeconds, max_rss_mb: r.maxRssBytes / 2 ** 20, records: r.records,
        input_mb: statSync(file).size / 2 ** 20, table_mb: (r.records * RECORD_BYTES) / 2 ** 20,
      });
      }
      rmSync(file);
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
for (const p of points) {
  const base = points.find((x) => x.family === p.family && x.engine === p.engine && x.rules === 1)?.max_rss_mb;
  if (base !== undefined && p.rules >= 10_000) p.rss_over_input = (p.max_rss_mb - base - p.table_mb) / p.input_mb;
}
const ratio = (p: Point) => {
  const ref = points.find((x) => x.engine === 'reference' && x.family === p.family && x.rules === p.rules);
  return p.engine === 'addon' && ref && p.total_s > 0 ? `${(ref.total_s / p.total_s).toFixed(1)}x` : '-';
};
const md = ['| engine | family | rules | input MB | parse s | compile s | total s | reference / addon | peak RSS MB | (RSS - Node - table) / input |', '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ...points.map((p) => `| ${p.engine}${p.compiled_by === p.engine ? '' : ` (ran: ${p.compiled_by})`} | ${p.family} | ${p.rules} | ${p.input_mb.toFixed(1)} | ${p.parse_s.toFixed(3)} | ${p.compile_s.toFixed(3)} | ${p.total_s.toFixed(3)} | ${ratio(p)} | ${p.max_rss_mb.toFixed(0)} | ${p.rss_over_input === undefined ? '-' : `${p.rss_over_input.toFixed(1)}x`} |`),
  '', 'engine: addon = the text fast path (native/rules/text_compiler.h), reference = the TypeScript parser and compiler; parse includes the family scan and the copy into the addon. Targets: parse + compile of 1M <= 2 s (issue 13), memory <= 4x input (issue 12).',
  'Node: the 1-rule run\'s peak RSS; table: records x 52 bytes; the ratio only from 10,000 rules (below, Node dominates). Target (issue 12): <= 4x.',
  `Machine: ${require('node:os').cpus().length} CPUs, load average ${require('node:os').loadavg().map((x: number) => x.toFixed(1)).join(' ')} at the end, ${new Date().toISOString()}.`].join('\n');
writeFileSync(join(out, 'parse.json'), `${JSON.stringify({ machine: { cpus: require('node:os').cpus().length, node: process.version }, points }, null, 2)}\n`);
writeFileSync(join(out, 'parse.md'), `${md}\n`);
process.stdout.write(`${md}\n\nwritten: bench/results/parse.json, bench/results/parse.md\n`);
