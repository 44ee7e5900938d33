// Parse + compile time and peak memory of `flatwall check`, from 1 to 1M
// rules. Each point runs in its own process so its peak RSS is its own.
//   npm run bench:parse [-- --quick] [--families chain,acl] [--max N]
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
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

interface Point { family: string; rules: number; read_s: number; parse_s: number; compile_s: number; total_s: number; max_rss_mb: number; records: number }
const points: Point[] = [];
try {
  for (const family of families) {
    for (const n of sizes) {
      process.stderr.write(`bench:parse ${family} ${n} rules...\n`);
      const file = join(dir, `${family}-${n}.rules`);
      execFileSync(process.execPath, [cli, 'gen', '-q', family, String(n), '-o', file]);
      const r = JSON.parse(execFileSync(process.execPath, [cli, 'check', '-q', '--json', file], { encoding: 'utf8', maxBuffer: 1 << 24 }));
      const s = r.seconds;
      points.push({
        family, rules: n, read_s: s.readSeconds, parse_s: s.parseSeconds, compile_s: s.compileSeconds,
        total_s: s.readSeconds + s.parseSeconds + s.compileSeconds, max_rss_mb: r.maxRssBytes / 2 ** 20, records: r.records,
      });
      rmSync(file);
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
const md = ['| family | rules | parse s | compile s | total s | peak RSS MB |', '|---|---:|---:|---:|---:|---:|',
  ...points.map((p) => `| ${p.family} | ${p.rules} | ${p.parse_s.toFixed(3)} | ${p.compile_s.toFixed(3)} | ${p.total_s.toFixed(3)} | ${p.max_rss_mb.toFixed(0)} |`)].join('\n');
writeFileSync(join(out, 'parse.json'), `${JSON.stringify({ machine: { cpus: require('node:os').cpus().length, node: process.version }, points }, null, 2)}\n`);
writeFileSync(join(out, 'parse.md'), `${md}\n`);
process.stdout.write(`${md}\n\nwritten: bench/results/parse.json, bench/results/parse.md\n`);
