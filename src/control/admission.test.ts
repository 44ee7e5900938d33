// The memory admission check on its own, with given memory figures: what
// it refuses, why it says so, and the default rule limit.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import {
  AdmissionError, DEFAULT_BUDGET_PER_RULE, HEAP_BYTES_PER_CHAR_NATIVE, HEAP_BYTES_PER_CHAR_SAVE, HEAP_BYTES_PER_RULE, NATIVE_BYTES_PER_RULE,
  NATIVE_BYTES_PER_CHAR_FAST, admit, defaultMaxRules, fastTextDemand, memoryNow, textDemand,
} from './admission';

const MiB = 1 << 20;
const GiB = 1 << 30;
const at = (heapLimit: number, heapUsed: number, available: number) => () => ({ heapLimit, heapUsed, available });

test('textDemand: per rule and per character for iptables-save, per character for JSON/YAML', () => {
  const s = textDemand('b', 1000, 10, 'save');
  assert.equal(s.heapBytes, 10 * HEAP_BYTES_PER_RULE + 1000 * HEAP_BYTES_PER_CHAR_SAVE);
  assert.equal(s.nativeBytes, 10 * NATIVE_BYTES_PER_RULE);
  assert.equal(textDemand('b', 1000, 0, 'native').heapBytes, 1000 * HEAP_BYTES_PER_CHAR_NATIVE);
});

test('admit: refused when the heap or the memory would not hold it, with the figures', () => {
  // The case: 6.4M rules (338 MB) beside a running set, in a 4 GiB heap.
  const big = textDemand('the request body', 338e6, 6_400_000, 'save');
  assert.throws(() => admit(big, { rules: 1000, nativeBytes: MiB }, at(4 * GiB, 200 * MiB, 20 * GiB)), (e: AdmissionError) => {
    assert.ok(e instanceof AdmissionError);
    assert.match(e.message, /^not enough memory for the request body \(6400000 rule lines, 322 MiB\): parsing and compiling it needs an estimated 5833 MiB of JS heap, 3896 MiB of the 4096 MiB heap limit is free beside the running 1000 rules; the running rules stay/);
    assert.equal(e.detail.heapNeeded, big.heapBytes);
    return true;
  });
  // The same 1M-rule body fits an empty 4 GiB heap, not one a 3.5 GiB table fills.
  const m = textDemand('b', 82e6, 1_000_000, 'save');
  admit(m, { rules: 0, nativeBytes: 0 }, at(4 * GiB, 100 * MiB, 20 * GiB));
  assert.throws(() => admit(m, { rules: 4_000_000, nativeBytes: 500 * MiB }, at(4 * GiB, 3.5 * GiB, 20 * GiB)), AdmissionError);
  // Heap to spare but not the memory: a container's limit, say.
  assert.throws(() => admit(m, { rules: 0, nativeBytes: 0 }, at(4 * GiB, 100 * MiB, 512 * MiB)), /the process may take 512 MiB more/);
  // Classifiers cost what the running ones cost per rule, if more than the default.
  const small = textDemand('b', 1e6, 100_000, 'save');
  admit(small, { rules: 100_000, nativeBytes: 100_000 * 400 }, at(4 * GiB, 0, 100 * MiB + 100_000 * 400));
  assert.throws(() => admit(small, { rules: 100_000, nativeBytes: 100_000 * 4000 }, at(4 * GiB, 0, 100 * MiB + 100_000 * 400)), AdmissionError);
});

test('admit with the process\'s own figures: garbage of an earlier reload is collected before it says no', () => {
  // ~50 MiB of garbage (old-space objects, as a replaced rule set leaves) in a small heap:
  // a demand 16 MiB over what looks free fits after a collection.
  const script = `
    const { admit, memoryNow } = require(${JSON.stringify(join(__dirname, 'admission.js'))});
    let junk = [];
    for (let i = 0; i < 600000; i++) junk.push({ i, s: 'x' + i });
    junk = undefined;
    const m = memoryNow();
    const demand = m.heapLimit - m.heapUsed + (16 << 20);
    admit({ what: 'b', rules: 1, chars: 1, heapBytes: demand, nativeBytes: 0 }, { rules: 0, nativeBytes: 0 });
    let refused = false;
    try { admit({ what: 'b', rules: 1, chars: 1, heapBytes: m.heapLimit, nativeBytes: 0 }, { rules: 0, nativeBytes: 0 }); } catch (e) { refused = e.name === 'AdmissionError'; }
    console.log(JSON.stringify({ refused }));
  `;
  const r = spawnSync(process.execPath, ['--max-old-space-size=96', '-e', script], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).refused, true);
});

test('defaultMaxRules: the heap limit (or memory, if less) at 1 KiB a rule, in thousands', () => {
  assert.equal(DEFAULT_BUDGET_PER_RULE, 1024);
  assert.equal(defaultMaxRules(4345298944, 24 * GiB), 4_243_000);
  assert.equal(defaultMaxRules(4 * GiB, 2 * GiB), 2_097_000);
  assert.equal(defaultMaxRules(MiB, GiB), 1000);
});

test('a streamed text: its compiler\'s records before the parse, memory admitted to a build under way not counted as free', () => {
  const d = fastTextDemand('the request body', 80 * MiB);
  assert.equal(d.heapBytes, 0);
  assert.equal(d.nativeBytes, 80 * MiB * NATIVE_BYTES_PER_CHAR_FAST);
  admit(d, { rules: 0, nativeBytes: 0 }, at(4 * GiB, 0, 1 * GiB));
  // The same beside another stream's 400 MiB reservation: 624 MiB left, 400 needed.
  admit(d, { rules: 0, nativeBytes: 0, reservedBytes: 400 * MiB }, at(4 * GiB, 0, 1 * GiB));
  assert.throws(() => admit(d, { rules: 0, nativeBytes: 0, reservedBytes: 700 * MiB }, at(4 * GiB, 0, 1 * GiB)),
    /the process may take 324 MiB more \(free memory or the cgroup limit, less 700 MiB admitted to a build under way\)/);
  // Once the rules are counted, the classifiers: a million at the running set's cost per rule.
  assert.throws(() => admit(fastTextDemand('b', 80 * MiB, 1_000_000), { rules: 1_000_000, nativeBytes: 1_000_000 * 900 }, at(4 * GiB, 0, 800 * MiB)), AdmissionError);
});
