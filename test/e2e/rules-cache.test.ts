// flatwall run --rules-cache DIR: the first start compiles the files and
// writes the cache in the background; a restart with the same files starts
// from the cached snapshot (and forwards by the same rules); a changed file
// misses; a corrupt entry falls back to the files.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { E2eLab, V4_HEADER, e2eUnavailable, parseJson } from './harness';
import { Background } from '../../src/lab/proc';
import { FLATWALL_CLI } from '../../src/lab/engines';

const skip = e2eUnavailable();
const RULES = `${V4_HEADER}-A FORWARD -p udp -m udp --dport 7101 -j ACCEPT\n-A FORWARD -p udp -m udp --sport 7101 -j ACCEPT\n-A FORWARD -p icmp -j ACCEPT\nCOMMIT\n`;

describe('flatwall run --rules-cache', { skip, timeout: 120_000 }, () => {
  let lab: E2eLab;
  let cache = '';
  let rules = '';
  before(async () => {
    lab = await E2eLab.start({ rules: { 'c.rules': RULES }, echoPorts: [7101] });
    await lab.stopFirewall();
    cache = join(lab.dir, 'cache');
    rules = lab.files['c.rules'];
  });
  after(async () => {
    await lab?.close();
  });

  const start = async () => {
    const fw = lab.topo.adopt(new Background('flatwall run --rules-cache', process.execPath,
      [FLATWALL_CLI, 'run', '--port', 'fa', '--port', 'fb', '-r', rules, '--rules-cache', cache, '--api-socket', 'off'], { ns: lab.topo.firewall, maxLifetimeMs: 60_000 }));
    const ready = parseJson(await fw.waitFor((l) => parseJson(l)?.msg === 'ready', 30_000, 'ready'))!;
    return { fw, ready, logs: () => fw.lines.map(parseJson).filter(Boolean) as Record<string, any>[] };
  };

  test('a miss compiles and caches; a restart with the same files starts from the cache', async () => {
    const a = await start();
    assert.ok(a.logs().some((j) => j.msg === 'rules cache miss'));
    assert.equal(a.ready.snapshot, undefined);
    const cached = parseJson(await a.fw.waitFor((l) => parseJson(l)?.msg === 'rules cached', 30_000, 'cached'))!;
    assert.ok(cached.bytes > 0);
    await a.fw.stop('SIGTERM', 10_000);

    const b = await start();
    assert.ok(b.logs().some((j) => j.msg === 'rules cache hit'));
    assert.equal(b.ready.snapshot, cached.file, 'started from the cached snapshot');
    assert.deepEqual(b.ready.image, { loaded: true });
    assert.equal((await lab.probe('udp', '10.0.0.2', 7101)).result, 'ok', 'the cached rules forward');
    await b.fw.stop('SIGTERM', 10_000);
  });

  test('a changed file misses; a corrupt entry falls back to the files', async () => {
    writeFileSync(rules, RULES.replace('-A FORWARD -p icmp -j ACCEPT\n', ''));
    const c = await start();
    assert.ok(c.logs().some((j) => j.msg === 'rules cache miss'));
    const cached = parseJson(await c.fw.waitFor((l) => parseJson(l)?.msg === 'rules cached', 30_000, 'cached'))!;
    await c.fw.stop('SIGTERM', 10_000);
    assert.ok(readdirSync(cache).filter((f) => f.endsWith('.snap')).length <= 2, 'old entries pruned');
    const bytes = readFileSync(cached.file);
    bytes[bytes.length - 5] ^= 0xff; // in the metadata: verified when read
    bytes[bytes.readUInt32LE(12) + 48 + 16] ^= 0xff; // in the tables
    writeFileSync(cached.file, bytes);
    const d = await start();
    assert.ok(d.logs().some((j) => j.msg === 'snapshot refused; compiling the rule files instead'), JSON.stringify(d.logs().slice(0, 5)));
    assert.equal(d.ready.snapshot, undefined);
    assert.equal((await lab.probe('udp', '10.0.0.2', 7101)).result, 'ok');
    // The bad entry was replaced by a good one: the next start hits it.
    await d.fw.waitFor((l) => parseJson(l)?.msg === 'rules cached', 30_000, 'cached again');
    await d.fw.stop('SIGTERM', 10_000);
    const e = await start();
    assert.equal(e.ready.snapshot, cached.file);
    await e.fw.stop('SIGTERM', 10_000);
  });
});
