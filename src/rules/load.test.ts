// Reading rule files: what an operator sees for a file that is missing or
// saved with a byte order mark, and input bytes escaped in errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseFiles } from './load';

const RULES = '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD -p tcp --dport 22 -j ACCEPT\nCOMMIT\n';

test('a missing file is "No such file or directory", without a line and column', () => {
  assert.throws(() => parseFiles(['/nonexistent/rules.v4']), (e: Error) => {
    assert.equal(e.message, '/nonexistent/rules.v4: cannot read rule file: No such file or directory');
    return true;
  });
});

test('a UTF-8 byte order mark is accepted and said so; the rules load as without it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'flatwall-load-'));
  try {
    const bom = join(dir, 'bom.v4');
    const plain = join(dir, 'plain.v4');
    writeFileSync(bom, `\ufeff${RULES}`);
    writeFileSync(plain, RULES);
    const notices: string[] = [];
    const a = parseFiles([bom], { onNotice: (m) => notices.push(m) });
    const b = parseFiles([plain]);
    assert.ok(notices.some((n) => n === `${bom}: UTF-8 byte order mark at the start of the file ignored`), notices.join('\n'));
    const rules = (r: typeof a) => [...r.ruleset.tables[0].chains.values()].map((c) => [c.name, c.policy, c.rules.length]);
    assert.deepEqual(rules(a), rules(b));
    // Control bytes in a token are shown escaped, never raw.
    const esc = join(dir, 'esc.v4');
    writeFileSync(esc, '*filter\n-A FORWARD -p \x1b[31mtcp -j ACCEPT\nCOMMIT\n');
    assert.throws(() => parseFiles([esc]), (e: Error) => {
      assert.match(e.message, /esc\.v4:2:15: .*\(at '\\x1b\[31mtcp'\)$/);
      assert.ok(!e.message.includes('\x1b'));
      return true;
    });
  } finally {
    rmSync(dir, { recursive: true });
  }
});
