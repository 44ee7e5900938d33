// Property test of the native (JSON / YAML) rule format's parser, the
// companion of iptables/parse.property.test.ts: the real rule files
// converted with toNative, printed as JSON and as YAML, then edited byte by
// byte (structural characters, control bytes, BOMs inserted or replacing),
// either parse or throw a RuleError positioned inside the text with no raw
// control character in its message; never any other exception. And what
// parses unedited round-trips: parseNative(toNative(x)) prints as x.
// Fixed seed; FC_RUNS / FC_SEED as in the other property test.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import YAML from 'yaml';
import { parseNative, toNative } from './native-format';
import { parseIptables } from './iptables/parse';
import { printTable } from './iptables/print';
import { RuleError } from './errors';
import type { RuleSet } from './model';

const ROOT = join(__dirname, '..', '..', '..');
const RUNS = Number(process.env.FC_RUNS ?? 0) || undefined;
const SEED = Number(process.env.FC_SEED ?? 20240612);

const sources: RuleSet[] = [
  ...readdirSync(join(ROOT, 'test', 'fixtures')).filter((f) => f.endsWith('.rules')).map((f) => join(ROOT, 'test', 'fixtures', f)),
  ...readdirSync(join(ROOT, 'rules', 'examples')).filter((f) => f.endsWith('.rules')).map((f) => join(ROOT, 'rules', 'examples', f)),
].map((p) => parseIptables(readFileSync(p, 'utf8'), { file: p }));
// One document per table (the native format holds one family), for the
// tables it can express (extension matches have no native form yet).
const docs = sources.flatMap((rs) => rs.tables.flatMap((t) => {
  try {
    return [toNative({ tables: [t] })];
  } catch (e) {
    if (e instanceof RuleError) return [];
    throw e;
  }
}));
const texts = docs.flatMap((d) => [JSON.stringify(d, null, 2), YAML.stringify(d)]);
const print = (rs: RuleSet) => rs.tables.map((t) => [...printTable(t)].join('\n')).join('\n');

test('native format: the real rule sets round-trip through JSON and YAML', () => {
  assert.ok(texts.length >= 4, `only ${texts.length} documents`);
  for (const d of docs) {
    const want = print(parseNative(JSON.stringify(d), 'a.json'));
    assert.equal(print(parseNative(YAML.stringify(d), 'a.yaml')), want);
    assert.equal(print(parseNative(JSON.stringify(toNative(parseNative(JSON.stringify(d), 'b.json'))), 'c.json')), want);
  }
});

test('native format: edited documents parse or fail with a RuleError inside the text', () => {
  const piece = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 4 }),
    fc.constantFrom('{', '}', '[', ']', ',', ':', '"', '-', '\n', ' ', '  ', 'null', 'true', '1e999', '-1', '""', '&a', '*a', '!!binary', '\x00', '\x1b', '\ufeff', '\t'),
  );
  fc.assert(fc.property(fc.nat({ max: texts.length - 1 }), fc.array(fc.tuple(fc.nat(), piece, fc.boolean()), { minLength: 1, maxLength: 4 }), (which, edits) => {
    let t = texts[which];
    for (const [at, s, replace] of edits) {
      const i = at % (t.length + 1);
      t = t.slice(0, i) + s + t.slice(i + (replace ? 1 : 0));
    }
    try {
      parseNative(t, 'p.json');
    } catch (e) {
      if (!(e instanceof RuleError)) assert.fail(`not a RuleError: ${(e as Error)?.stack ?? e}\ninput: ${JSON.stringify(t.slice(0, 1000))}`);
      const lines = t.split('\n');
      assert.ok(e.line >= 1 && e.line <= lines.length && e.col >= 1, `position ${e.line}:${e.col} outside the text: ${e.message}`);
      assert.ok(!/[\x00-\x1f\x7f-\x9f]/.test(e.message), `raw control character in ${JSON.stringify(e.message)}`);
    }
  }), { seed: SEED, numRuns: RUNS ?? 2000 });
});
