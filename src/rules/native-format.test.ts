// The native format means what the iptables form means: converting any rule
// set to JSON/YAML and loading it back compiles to the very same tables.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { parseIptables } from './iptables/parse';
import { parseNative, toNative } from './native-format';
import { compile } from './compile';
import { decodeTables } from './pack';
import { RuleError } from './errors';

const ROOT = join(__dirname, '..', '..', '..');
const files = [join(ROOT, 'test', 'fixtures', 'canonical.rules'),
  ...readdirSync(join(ROOT, 'rules', 'examples')).map((f) => join(ROOT, 'rules', 'examples', f))];

// Rule ids follow chain order, which the native form normalises; everything else must be equal.
const records = (rs: ReturnType<typeof parseIptables>) => JSON.stringify(
  decodeTables(compile(rs).buffer).map((t) => t.records.map(({ ruleId: _id, ...r }) => r)),
  (_k, v) => (typeof v === 'bigint' ? v.toString() : v));

test('iptables -> native (JSON and YAML) -> compile gives the same tables', () => {
  for (const f of files) {
    const rs = parseIptables(readFileSync(f, 'utf8'), { file: f });
    const want = records(rs);
    const obj = toNative(rs);
    for (const [fmt, text] of [['json', JSON.stringify(obj, null, 2)], ['yaml', YAML.stringify(obj)]]) {
      assert.equal(records(parseNative(text, `${f}.${fmt}`)), want, `${f} via ${fmt}`);
    }
  }
});

test('native-format errors point at the YAML node', () => {
  const cases: [string, RegExp, number, number][] = [
    ['chains:\n  FORWARD:\n    rules:\n      - {proto: tcp, dport: 70000, action: ACCEPT}\n', /port 70000 is out of range/, 4, 29],
    ['chains:\n  FORWARD:\n    rules:\n      - {dport: 80, action: ACCEPT}\n', /unknown option --dport/, 4, 17],
    ['chains:\n  FORWARD:\n    rules:\n      - {src: 10.0.0.0/8, colour: red}\n', /unknown key "colour"/, 4, 27],
    ['chains:\n  FORWARD:\n    policy: MAYBE\n', /policy must be ACCEPT or DROP/, 3, 13],
    ['chains:\n  mine:\n    policy: DROP\n', /only built-in chains have a policy/, 3, 13],
    ['chains:\n  FORWARD:\n    rules:\n      - {jump: nowhere}\n', /chain nowhere does not exist/, 4, 16],
    ['family: ipv5\n', /family must be "ipv4" or "ipv6"/, 1, 9],
    ['chains: [1, 2\n', /syntax error/, 2, 1],
    ['family: ipv4\nchains:\n  FORWARD:\n    rules:\n      - {src: "2001:db8::/32"}\n', /IPv6 syntax in an IPv4 table/, 5, 15],
  ];
  for (const [text, re, line, col] of cases) {
    try {
      parseNative(text, 'r.yaml');
      assert.fail(`no error for ${text}`);
    } catch (e) {
      assert.ok(e instanceof RuleError, String(e));
      assert.match(e.message, re);
      assert.equal(e.line, line, e.message);
      if (col !== 1) assert.equal(e.col, col, e.message);
    }
  }
});

test('a native rule set jumping to a chain defined later works', () => {
  const rs = parseNative(JSON.stringify({
    family: 'ipv6',
    chains: { FORWARD: { policy: 'DROP', rules: [{ proto: 'tcp', jump: 'web' }] }, web: { rules: [{ proto: 'tcp', dports: [80, 443], action: 'ACCEPT' }] } },
  }), 'x.json');
  assert.equal(rs.tables[0].family, 6);
  assert.equal(compile(rs).stats.sourceRules, 2);
});
