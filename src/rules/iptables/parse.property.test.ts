// Property tests of the iptables-save parser (fast-check), on arbitrary text
// and on the real rule files mutated token by token:
//   1. every input parses, or throws a RuleError whose line and column lie
//      inside the input and whose message and token hold no raw control
//      character; never any other exception;
//   2. on everything that parses, print -> parse is the identity (the model
//      compared as data, source positions left out), and printing is a
//      fixed point: print(parse(print(parse(x)))) === print(parse(x)).
// A fixed seed keeps the run reproducible; FC_RUNS=N (and FC_SEED=S) for
// longer or other runs. A failure prints fast-check's seed and shrunk case:
// keep it below as an explicit regression example.
import test from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { parseIptables } from './parse';
import { printTable } from './print';
import { RuleError } from '../errors';
import type { RuleSet } from '../model';
import { IpsetStore, loadIpsetFiles } from '../../sets/store';
import { useSetStore } from '../../sets/registry';
import { generateLines, FAMILIES } from '../generate';
import { randomRuleset, rng } from '../../../test/random-rules';

const ROOT = join(__dirname, '..', '..', '..', '..');
const RUNS = Number(process.env.FC_RUNS ?? 0) || undefined;
const SEED = Number(process.env.FC_SEED ?? 20240612);
const params = (runs: number) => ({ seed: SEED, numRuns: RUNS ?? runs, endOnFailure: false });

/** Every rule file in the repository the parser should accept: fixtures, examples, the corpus. */
function realFiles(): Array<{ name: string; text: string }> {
  const out: Array<{ name: string; text: string }> = [];
  const dir = (d: string, re: RegExp) => {
    const abs = join(ROOT, d);
    if (!existsSync(abs)) return;
    for (const f of readdirSync(abs).sort()) {
      if (statSync(join(abs, f)).isDirectory()) dir(`${d}/${f}`, re);
      else if (re.test(f)) out.push({ name: `${d}/${f}`, text: readFileSync(join(abs, f), 'utf8') });
    }
  };
  dir('test/fixtures', /\.rules$/);
  dir('rules/examples', /\.rules$/);
  dir('test/corpus', /\.v[46]$/);
  return out;
}

// The -m set rules of the corpus name sets of an ipset dump beside them.
const sets = new IpsetStore();
const dumps = readdirSync(join(ROOT, 'test', 'corpus', 'fail2ban')).filter((f) => f.endsWith('.ipset'));
loadIpsetFiles(sets, dumps.map((f) => join(ROOT, 'test', 'corpus', 'fail2ban', f)));
useSetStore(sets);

const FILES = realFiles();
const LINES = FILES.flatMap((f) => f.text.split('\n'));
const TOKENS = [...new Set(LINES.flatMap((l) => l.split(/\s+/)).filter(Boolean))];
// Tokens that steer the parser into its error paths.
const SPECIAL = ['-A', '-I', '-N', '-P', '-F', '-X', '-D', '-j', '-g', '!', '-m', '-p', '-s', '-d', '-i', '-o', '--dport', '--sport',
  '"', '""', '"a b', '\\', '[1:2]', '[x:y]', '[99999999999999999999:1]', '*filter', '*nat', 'COMMIT', ':FORWARD', ':X', '-', '[0:0]',
  '0', '-1', '65536', '4294967296', '1e3', '0x10', '::', '1.2.3.4/33', '1.2.3.4/255.0.255.0', '::1/129', 'a,b,,c', ',', ':', '+',
  '\ufeff', '\u202e', '\x00', '\x1b[31m', '\r', '\t', 'é', '日本', '\ud800', 'x'.repeat(1100)];
const CONTROL = ['\x00', '\x01', '\x07', '\x1b', '\x7f', '\x85', '\x9b', '\ufeff', '\u202e', '\r', '\t', '\v', '\f'];

/** Any raw control character, C0, DEL or C1 (what excerpt() escapes). */
const RAW_CONTROL = /[\x00-\x1f\x7f-\x9f]/;

/** Property 1 for one input; returns the rule set when it parses. */
function parsesOrFailsWell(text: string, opts: { skipOtherTables: boolean; family?: 4 | 6 }): RuleSet | undefined {
  let rs: RuleSet;
  try {
    rs = parseIptables(text, { file: 'p.rules', ...opts });
  } catch (e) {
    if (!(e instanceof RuleError)) {
      assert.fail(`not a RuleError: ${(e as Error)?.stack ?? String(e)}\ninput: ${JSON.stringify(text.slice(0, 2000))}`);
    }
    const lines = text.split('\n');
    assert.ok(e.line >= 1 && e.line <= lines.length, `line ${e.line} of ${lines.length}: ${e.message}`);
    // A column may point just past the line's end (a missing argument).
    assert.ok(e.col >= 1 && e.col <= lines[e.line - 1].length + 1, `column ${e.col} of ${lines[e.line - 1].length + 1}: ${JSON.stringify(e.message)}`);
    assert.ok(!RAW_CONTROL.test(e.message), `raw control character in ${JSON.stringify(e.message)}`);
    assert.ok(e.token === undefined || !RAW_CONTROL.test(e.token), `raw control character in token ${JSON.stringify(e.token)}`);
    assert.ok(e.message.length < 2000, `message of ${e.message.length} characters`);
    return undefined;
  }
  return rs;
}

function print(rs: RuleSet): string {
  return rs.tables.map((t) => [...printTable(t, { counters: true })].join('\n')).join('\n');
}

/**
 * The model as comparable data: source positions left out, object keys
 * sorted, chains by name, absent counters as [0, 0] (what the printer writes).
 */
function model(rs: RuleSet): string {
  const norm = (v: unknown, key = ''): unknown => {
    if (typeof v === 'bigint') return v.toString();
    if (v instanceof Map) return [...v.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, x]) => [k, norm(x)]);
    if (Array.isArray(v)) return v.map((x) => norm(x));
    if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(o).sort()) {
        if (k === 'pos' || k === 'targetPos' || k === 'file' || k === 'counters' || o[k] === undefined) continue;
        out[k] = norm(o[k], k);
      }
      if ('rules' in o || 'matches' in o) out.counters = norm(o.counters ?? [0n, 0n]);
      return out;
    }
    void key;
    return v;
  };
  return JSON.stringify(norm(rs.tables));
}

/** Property 2 for a rule set that parsed from `text`. */
function roundTrips(rs: RuleSet, text: string): void {
  if (rs.tables.length === 0) return;
  const printed = print(rs);
  const family = rs.tables[0].family;
  let again: RuleSet;
  try {
    again = parseIptables(`${printed}\n`, { file: 'printed.rules', family });
  } catch (e) {
    assert.fail(`the printed rules do not parse: ${(e as Error).message}\ninput: ${JSON.stringify(text.slice(0, 2000))}\nprinted: ${JSON.stringify(printed.slice(0, 2000))}`);
  }
  const a = model(rs);
  const b = model(again);
  if (a !== b) {
    // Name the first rule that differs, not two screens of JSON.
    let i = 0;
    while (i < a.length && a[i] === b[i]) i++;
    const at = (s: string) => s.slice(Math.max(0, i - 300), i + 200);
    assert.fail(`print -> parse changed the rules near\n  parsed:  ${at(a)}\n  printed: ${at(b)}\ninput: ${JSON.stringify(text.slice(0, 1500))}`);
  }
  assert.equal(print(again), printed, 'printing is not a fixed point');
}

function check(text: string, opts: { skipOtherTables: boolean; family?: 4 | 6 } = { skipOtherTables: true }): void {
  const rs = parsesOrFailsWell(text, opts);
  if (rs) roundTrips(rs, text);
}

// ---- explicit examples (regressions found by the properties go here) -------

test('regression examples: each input parses and round-trips, or fails with a position', () => {
  const examples: string[] = [
    '',
    '\n\n',
    '*filter\nCOMMIT\n',
    '\ufeff*filter\nCOMMIT\n',
    '*filter\n-A FORWARD -m comment --comment "a\\"b" -j ACCEPT\nCOMMIT\n',
    '*filter\n-A FORWARD -j LOG --log-prefix "\x1b[31m"\nCOMMIT\n',
    '*filter\n-A FORWARD -s 1.2.3.4 \x00 -j DROP\nCOMMIT\n',
    `*filter\n-A FORWARD ${'x'.repeat(70000)}\nCOMMIT\n`,
    // Found by the round trip: an option spelling its default was kept in
    // the model, which the printer leaves out (or the reverse), so
    // parse(print(x)) differed from x.
    '*filter\n-A FORWARD -p tcp --dport 0:65535 -j ACCEPT\n-A FORWARD -p udp --sport 0: -j ACCEPT\nCOMMIT\n',
    '*filter\n-A FORWARD -m recent --set --name A --mask 255.255.255.255 --rsource\nCOMMIT\n',
    '# ip6tables-save\n*filter\n-A FORWARD -m recent --set --name A --mask ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff\nCOMMIT\n',
    '*filter\n-A FORWARD -m hashlimit --hashlimit-upto 1/sec --hashlimit-name h -j ACCEPT\nCOMMIT\n',
  ];
  for (const text of examples) {
    check(text);
    check(text, { skipOtherTables: false });
  }
});

// ---- property 1 and 2 on the real files as they are -------------------------

test('every real rule file, the generators\' and random rule sets parse and round-trip', () => {
  let parsed = 0;
  for (const f of FILES) {
    const rs = parsesOrFailsWell(f.text, { skipOtherTables: true });
    assert.ok(rs, `${f.name} does not parse`);
    roundTrips(rs, f.text);
    parsed++;
  }
  assert.ok(parsed >= 35, `only ${parsed} real files`);
  for (const family of FAMILIES) {
    for (const seed of [1, 2, 3]) roundTrips(parseIptables([...generateLines({ family, rules: 300, seed })].join('\n'), { file: family }), family);
  }
  fc.assert(fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 6 }), fc.integer({ min: 1, max: 60 }), (seed, chains, rules) => {
    const text = randomRuleset(rng(seed), chains, rules);
    const rs = parsesOrFailsWell(text, { skipOtherTables: false });
    assert.ok(rs, `random rule set ${seed} does not parse`);
    roundTrips(rs, text);
  }), params(200));
});

// ---- property 1 and 2 on arbitrary text --------------------------------------

test('arbitrary text: parses or fails with a RuleError at a position inside it', () => {
  const junk = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 200 }),
    fc.string({ unit: fc.constantFrom(' ', '\n', '"', '\\', '-', '!', '*', ':', '[', ']', '\x00', '\x1b', 'A', 'j'), maxLength: 200 }),
    fc.array(fc.oneof(fc.constantFrom(...SPECIAL), fc.constantFrom(...TOKENS)), { maxLength: 30 }).map((t) => t.join(' ')),
  );
  fc.assert(fc.property(junk, fc.boolean(), (text, skip) => check(text, { skipOtherTables: skip })), params(4000));
  // The same inside a table, so that rule and option parsing is reached.
  const body = fc.array(
    fc.array(fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...TOKENS) }, fc.constantFrom(...SPECIAL), fc.string({ unit: 'binary', maxLength: 12 })), { maxLength: 16 })
      .map((t) => `-A FORWARD ${t.join(' ')}`),
    { minLength: 1, maxLength: 6 });
  fc.assert(fc.property(body, fc.constantFrom<4 | 6 | undefined>(undefined, 4, 6), (rules, family) => {
    check(`*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n:USER - [0:0]\n${rules.join('\n')}\nCOMMIT\n`, { skipOtherTables: true, family });
  }), params(6000));
});

// ---- property 1 and 2 on mutated real files -----------------------------------

type Mutation =
  | { op: 'drop'; at: number }
  | { op: 'dup'; at: number }
  | { op: 'replace'; at: number; by: string }
  | { op: 'swap'; at: number; with: number }
  | { op: 'control'; at: number; c: string }
  | { op: 'cut'; at: number }
  | { op: 'dropLine' }
  | { op: 'dupLine' };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('drop' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('dup' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('replace' as const), at: fc.nat(), by: fc.oneof(fc.constantFrom(...TOKENS), fc.constantFrom(...SPECIAL), fc.string({ unit: 'binary', maxLength: 8 })) }),
  fc.record({ op: fc.constant('swap' as const), at: fc.nat(), with: fc.nat() }),
  fc.record({ op: fc.constant('control' as const), at: fc.nat(), c: fc.constantFrom(...CONTROL) }),
  fc.record({ op: fc.constant('cut' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('dropLine' as const) }),
  fc.record({ op: fc.constant('dupLine' as const) }),
);

/** One mutation of one line (its tokens: dropped, duplicated, replaced, swapped; a control byte; cut short). */
function mutate(lines: string[], li: number, m: Mutation): void {
  const line = lines[li];
  const toks = line.split(' ');
  const i = toks.length ? ('at' in m ? m.at % toks.length : 0) : 0;
  switch (m.op) {
    case 'drop': toks.splice(i, 1); break;
    case 'dup': toks.splice(i, 0, toks[i]); break;
    case 'replace': toks[i] = m.by; break;
    case 'swap': { const j = m.with % toks.length; [toks[i], toks[j]] = [toks[j], toks[i]]; break; }
    case 'control': { const at = m.at % (line.length + 1); lines[li] = line.slice(0, at) + m.c + line.slice(at); return; }
    case 'cut': lines[li] = line.slice(0, m.at % (line.length + 1)); return;
    case 'dropLine': lines.splice(li, 1); return;
    case 'dupLine': lines.splice(li, 0, line); return;
  }
  lines[li] = toks.join(' ');
}

test('mutated real files: tokens dropped, duplicated, replaced, control bytes inserted', () => {
  const arb = fc.record({
    file: fc.nat({ max: FILES.length - 1 }),
    edits: fc.array(fc.tuple(fc.nat(), mutation), { minLength: 1, maxLength: 4 }),
  });
  let parsedCount = 0;
  fc.assert(fc.property(arb, ({ file, edits }) => {
    const lines = FILES[file].text.split('\n');
    // Edit the rule lines mostly: they hold the options.
    const ruleLines = lines.map((l, i) => (/^(\[\S*\] )?-[AI] /.test(l) ? i : -1)).filter((i) => i >= 0);
    for (const [at, m] of edits) {
      if (lines.length === 0) break;
      const li = ruleLines.length && at % 4 !== 0 ? ruleLines[at % ruleLines.length] % lines.length : at % lines.length;
      mutate(lines, li, m);
    }
    const text = lines.join('\n');
    const rs = parsesOrFailsWell(text, { skipOtherTables: true });
    if (rs) {
      parsedCount++;
      roundTrips(rs, text);
    }
  }), params(8000));
  // Mutations that still parse are the round trip's interesting cases: some must.
  if (!RUNS || RUNS >= 500) assert.ok(parsedCount > 50, `only ${parsedCount} mutated files parsed`);
});

test.after(() => useSetStore(undefined));
