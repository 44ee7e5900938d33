// RuleFileWatcher (--watch-rules) on the two layouts it must follow: a
// Kubernetes ConfigMap volume (the key a symlink into ..data, updated by
// renaming a new ..data symlink over the old one, as kubelet's
// AtomicWriter does) and a plain file written in place or replaced by
// rename. Only a changed content counts; a touch or a swap to the same
// content does not.
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, renameSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RuleFileWatcher } from './watch';

const dirs: string[] = [];
const watchers: RuleFileWatcher[] = [];
afterEach(() => {
  for (const w of watchers.splice(0)) w.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function scratch(): string {
  const d = mkdtempSync(join(tmpdir(), 'flatwall-watch-'));
  dirs.push(d);
  return d;
}

/** One kubelet AtomicWriter update: a new timestamped dir, ..data swapped by rename, the old dir removed. */
let seq = 0;
function configMapWrite(dir: string, files: Record<string, string>, first = false): void {
  const ts = `..2024_01_01_00_00_00.${++seq}`;
  mkdirSync(join(dir, ts));
  for (const [k, v] of Object.entries(files)) writeFileSync(join(dir, ts, k), v);
  const old = first ? undefined : require('node:fs').readlinkSync(join(dir, '..data'));
  symlinkSync(ts, join(dir, '..data_tmp'));
  renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
  if (first) for (const k of Object.keys(files)) symlinkSync(join('..data', k), join(dir, k));
  if (old) rmSync(join(dir, old), { recursive: true, force: true });
}

function watcher(files: string[]): { w: RuleFileWatcher; calls: () => number; next: () => Promise<void> } {
  let n = 0;
  let wake: (() => void) | undefined;
  const w = new RuleFileWatcher(files, {
    debounceMs: 50,
    onChange: async () => {
      n++;
      wake?.();
    },
  });
  watchers.push(w);
  return {
    w, calls: () => n,
    next: () => new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no change seen within 10 s')), 10_000);
      wake = () => {
        clearTimeout(t);
        wake = undefined;
        resolve();
      };
    }),
  };
}

/** Wait for the watcher to settle: the debounce, then the check. */
async function settle(w: RuleFileWatcher): Promise<void> {
  await new Promise((r) => setTimeout(r, 300));
  await w.idle();
}

test('a ConfigMap update (..data symlink swapped) is one change; the same content again is none', async () => {
  const dir = scratch();
  configMapWrite(dir, { 'rules.v4': 'one\n', other: 'x' }, true);
  const { w, calls, next } = watcher([join(dir, 'rules.v4')]);
  w.remember();
  w.start();
  await settle(w);
  assert.equal(calls(), 0, 'nothing changed since remember()');

  const seen = next();
  configMapWrite(dir, { 'rules.v4': 'two\n', other: 'x' });
  await seen;
  await settle(w);
  assert.equal(calls(), 1);

  // A swap whose rules.v4 is the same (only another key changed): no reload.
  configMapWrite(dir, { 'rules.v4': 'two\n', other: 'y' });
  await settle(w);
  assert.equal(calls(), 1);
  assert.ok(w.checks >= 2, `the swap was looked at (${w.checks} checks)`);

  // And the next real change is seen (the file watch was re-armed on the new target).
  const again = next();
  configMapWrite(dir, { 'rules.v4': 'three\n', other: 'y' });
  await again;
  await settle(w);
  assert.equal(calls(), 2);
});

test('a plain file: written in place, touched, replaced by rename', async () => {
  const dir = scratch();
  const f = join(dir, 'rules.v4');
  writeFileSync(f, 'a\n');
  const { w, calls, next } = watcher([f]);
  w.start();
  await settle(w);
  assert.equal(calls(), 0);

  let seen = next();
  writeFileSync(f, 'b\n');
  await seen;
  await settle(w);
  assert.equal(calls(), 1);

  // mtime moves, content does not.
  const later = new Date(Date.now() + 5000);
  utimesSync(f, later, later);
  await settle(w);
  assert.equal(calls(), 1);

  seen = next();
  writeFileSync(join(dir, '.rules.v4.tmp'), 'c\n');
  renameSync(join(dir, '.rules.v4.tmp'), f);
  await seen;
  await settle(w);
  assert.equal(calls(), 2);
});

test('a change between remember() and start() is not missed', async () => {
  const dir = scratch();
  const f = join(dir, 'rules.v4');
  writeFileSync(f, 'a\n');
  const { w, calls, next } = watcher([f]);
  w.remember();
  writeFileSync(f, 'changed during the initial load\n');
  const seen = next();
  w.start();
  await seen;
  assert.equal(calls(), 1);
});

test('several files in one directory and a file that disappears and comes back', async () => {
  const dir = scratch();
  const a = join(dir, 'a.v4');
  const b = join(dir, 'b.v6');
  writeFileSync(a, 'a\n');
  writeFileSync(b, 'b\n');
  const { w, calls, next } = watcher([a, b]);
  w.start();
  await settle(w);
  let seen = next();
  rmSync(b);
  await seen; // unreadable is a content too: the reload reports why
  await settle(w);
  assert.equal(calls(), 1);
  seen = next();
  writeFileSync(b, 'b2\n');
  await seen;
  await settle(w);
  assert.equal(calls(), 2);
});
