// `flatwall run`'s last word: an error nothing caught is one JSON log line
// on stdout and exit 70, for both kinds of uncaught error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const run = join(__dirname, 'run.js');

for (const [kind, code] of [
  ['uncaughtException', "setTimeout(() => { throw new Error('boom \\x1b[31m') }, 1)"],
  ['unhandledRejection', "Promise.reject(new Error('boom \\x1b[31m'))"],
] as const) {
  test(`${kind}: one JSON line, exit 70`, () => {
    const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(run)}).logCrashes(); ${code}`], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.status, 70, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 1, r.stdout);
    const l = JSON.parse(lines[0]);
    assert.equal(l.level, 'error');
    assert.equal(l.msg, 'crash');
    assert.equal(l.kind, kind);
    assert.equal(l.error, 'boom \\x1b[31m');
    assert.match(l.stack, /Error: boom/);
    assert.equal(r.stderr, '');
  });
}
