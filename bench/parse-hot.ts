// Micro-benchmarks of the rule parser's hot functions, with benchmark.js
// (statistically sound timing: it repeats each case until the relative
// margin of error is small). bench/parse.ts times whole 1M-rule files; this
// says where a line's cost goes, so a parser change can be judged per
// function before it is judged on 1M rules.
//
//   npm run bench:parse-hot [-- --out DIR]
//
// Cases: tokenizing one generated acl line, parsing an IPv4 and an IPv6
// address, and parsing a whole 1,000-line acl file (per line). Prints
// ops/s +- margin and writes bench/results/parse-hot.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tokenize, parseIptables } from '../src/rules/iptables/parse';
import { parseIPv4, parseIPv6 } from '../src/rules/address';
import { generateLines } from '../src/rules/generate';
import { opt } from './args';
// benchmark.js has no bundled types; the little used here is typed below.
// eslint-disable-next-line @typescript-eslint/no-var-requires
const Benchmark = require('benchmark') as {
  Suite: new (name: string) => BenchSuite;
};
interface BenchTarget {
  name: string;
  hz: number;
  stats: { rme: number; sample: number[] };
}
interface BenchSuite {
  add(name: string, fn: () => void): BenchSuite;
  on(ev: 'cycle' | 'complete', fn: (e: { target: BenchTarget }) => void): BenchSuite;
  run(o: { async: boolean }): void;
}

const outDir = opt('--out') ?? join(__dirname, '..', '..', 'bench', 'results');

const text1k = [...generateLines({ family: 'acl', rules: 1000, seed: 1 })].join('\n') + '\n';
const line = text1k.split('\n').find((l) => l.startsWith('-A FORWARD'))!;
const LINES = text1k.split('\n').filter((l) => l.startsWith('-A ')).length;
let sink = 0;

const results: Array<{ case: string; ops_per_s: number; rme_percent: number; samples: number }> = [];
new Benchmark.Suite('parser')
  .add('tokenize one acl line', () => {
    sink += tokenize(line, { file: 'bench', line: 1, col: 1 }).length;
  })
  .add('parseIPv4', () => {
    sink += parseIPv4('152.191.69.112') ?? 0;
  })
  .add('parseIPv6', () => {
    sink += Number(parseIPv6('2001:db8:85a3::8a2e:370:7334') ?? 0n) & 1;
  })
  .add(`parseIptables, 1k-line acl file (ops = files)`, () => {
    sink += parseIptables(text1k, { file: 'bench' }).tables.length;
  })
  .on('cycle', (e) => {
    const t = e.target;
    results.push({ case: t.name, ops_per_s: t.hz, rme_percent: t.stats.rme, samples: t.stats.sample.length });
    process.stderr.write(`${t.name}: ${t.hz.toFixed(0)} ops/s ±${t.stats.rme.toFixed(1)}% (${t.stats.sample.length} samples)\n`);
  })
  .on('complete', () => {
    const file = results.find((r) => r.case.startsWith('parseIptables'))!;
    const perLineUs = 1e6 / (file.ops_per_s * LINES);
    process.stdout.write(`\nwhole-file parse: ${perLineUs.toFixed(2)} us per rule line (${LINES} lines); 1M lines would take ~${(perLineUs).toFixed(1)} s of parsing\n`);
    mkdirSync(outDir, { recursive: true });
    writeFileSync(join(outDir, 'parse-hot.json'), `${JSON.stringify({ node: process.version, sink: sink & 1, perLineUs, results }, null, 2)}\n`);
    process.stdout.write(`written: ${join(outDir, 'parse-hot.json')}\n`);
  })
  .run({ async: false });
