// Real rule sets written by Debian's firewall tools (ufw, ferm, shorewall,
// shorewall6, firehol, arno-iptables-firewall, fail2ban; see
// test/corpus/README.md): every .v4 / .v6 file of test/corpus is loaded alone
// the way `flatwall check --skip-tables FILE` loads it (parse the filter
// table, skip the others, compile). A file must load, unless it is in
// KNOWN_FAILING, where it must fail with exactly the recorded first line of
// the error. Both directions are asserted, so a file that changes status
// (newly loads, or stops somewhere else) fails this test until the list is
// updated: `npx tsc -p . && node test/corpus/status.js` prints the current
// list and rewrites test/corpus/STATUS.md.
import test from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { IpsetStore, loadIpsetFiles } from '../src/sets/store';
import { useSetStore } from '../src/sets/registry';
import { join } from 'node:path';
import { loadRuleFiles } from '../src/rules/load';
import { CORPUS, corpusFiles } from './corpus-files';


// file (relative to test/corpus) -> first line of the error, path relative too.
const KNOWN_FAILING: Record<string, string> = {};


// undefined if the file loads, else the first line of the error message.
// A file whose tool also wrote an `ipset save` dump (fail2ban's ipset
// action) loads with it, as `flatwall check --ipset F.ipset F.v4` does.
function load(rel: string): string | undefined {
  const abs = join(CORPUS, rel);
  const ipset = abs.replace(/\.v[46]$/, '.ipset');
  const sets = new IpsetStore();
  useSetStore(sets);
  try {
    if (existsSync(ipset)) loadIpsetFiles(sets, [ipset]);
    loadRuleFiles([abs], { skipOtherTables: true });
    return undefined;
  } catch (err) {
    return String((err as Error).message).split('\n')[0].split(abs).join(rel);
  } finally {
    useSetStore(undefined);
  }
}

const files = corpusFiles();

test('the corpus is there, and KNOWN_FAILING names only its files', () => {
  assert.ok(files.length >= 30, `only ${files.length} corpus files in ${CORPUS}`);
  const tools = new Set(files.map((f) => f.split('/')[0]));
  for (const t of ['ufw', 'ferm', 'shorewall', 'shorewall6', 'firehol', 'arno-iptables-firewall', 'fail2ban']) {
    assert.ok(tools.has(t), `no corpus files for ${t}`);
  }
  const stale = Object.keys(KNOWN_FAILING).filter((f) => !files.includes(f));
  assert.deepEqual(stale, [], 'KNOWN_FAILING names files that are not in test/corpus');
});

test('every corpus file loads as `flatwall check --skip-tables` loads it, or fails as recorded', async (t) => {
  for (const rel of files) {
    await t.test(rel, () => {
      const got = load(rel);
      const want = KNOWN_FAILING[rel];
      if (want === undefined) {
        assert.equal(got, undefined, `${rel} no longer loads; fix it, or add it to KNOWN_FAILING (node test/corpus/status.js)`);
      } else if (got === undefined) {
        assert.fail(`${rel} loads now: remove it from KNOWN_FAILING (and regenerate STATUS.md: node test/corpus/status.js)`);
      } else {
        assert.equal(got, want, `${rel} fails differently now: update KNOWN_FAILING (node test/corpus/status.js)`);
      }
    });
  }
});

test('--skip-tables says which tables were left out, and how many rules each had', () => {
  const file = join(CORPUS, 'shorewall', 'Universal.v4');
  const { compiled } = loadRuleFiles([file], { skipOtherTables: true });
  const text = readFileSync(file, 'utf8');
  // What the file holds, counted independently of the parser.
  const want: { table: string; rules: number }[] = [];
  let cur: { table: string; rules: number } | undefined;
  for (const l of text.split('\n')) {
    if (l.startsWith('*')) cur = l === '*filter' || l === '*raw' ? undefined : (want.push({ table: l.slice(1), rules: 0 }), want[want.length - 1]);
    else if (cur && /^(\[\d+:\d+\] )?-A /.test(l)) cur.rules++;
  }
  assert.ok(want.length >= 2, 'the file has other tables');
  assert.deepEqual(compiled.source.skipped?.map((s) => ({ table: s.table, rules: s.rules })), want);
  assert.throws(() => loadRuleFiles([file]), /table \w+ is not supported .*--skip-tables/);
});
