// The probe contract against a running `flatwall run` on two veth ports in a
// private namespace (docs/API.md, Probes): /ready only with the rules active
// and both ports up, /health naming the part that is not; a port's
// interface deleted and re-created under the socket fails /health (503,
// what a liveness probe restarts on). And --watch-rules on a ConfigMap-like
// directory: an update reloads, a bad one keeps the running rules (health
// says the reload failed, /ready stays 200), the fix reloads again.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { apiCall } from '../../src/cli/ctl';
import { Background } from '../../src/lab/proc';
import { FLATWALL_CLI } from '../../src/lab/engines';
import { NetNs, kernelTestsUnavailable } from '../netns';
import { V4_HEADER } from './harness';

const skip = kernelTestsUnavailable(['ip']);

const rules = (port: number) => `${V4_HEADER}-A FORWARD -p tcp -m tcp --dport ${port} -j ACCEPT\nCOMMIT\n`;

/** kubelet's AtomicWriter: a new timestamped directory, ..data renamed over, the old one removed. */
let seq = 0;
function configMapWrite(dir: string, key: string, text: string): void {
  const ts = `..2024_01_01_00_00_00.${++seq}`;
  mkdirSync(join(dir, ts));
  writeFileSync(join(dir, ts, key), text);
  let old: string | undefined;
  try {
    old = readlinkSync(join(dir, '..data'));
  } catch {
    symlinkSync(join('..data', key), join(dir, key));
  }
  symlinkSync(ts, join(dir, '..data_tmp'));
  renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
  if (old) rmSync(join(dir, old), { recursive: true, force: true });
}

describe('probe contract and --watch-rules against flatwall run', { skip, timeout: 120_000 }, () => {
  let ns: NetNs;
  let dir: string;
  let cm: string;
  let fw: Background;
  let sock: string;
  const api = (m: string, p: string) => apiCall({ socket: sock }, m, p);
  const ip = (...a: string[]) => ns.exec('ip', a);

  before(async () => {
    ns = new NetNs('hlth');
    // Two veth pairs: pa/pb are the firewall's ports, their peers stay up.
    ip('link', 'add', 'pa', 'type', 'veth', 'peer', 'name', 'qa');
    ip('link', 'add', 'pb', 'type', 'veth', 'peer', 'name', 'qb');
    for (const d of ['pa', 'qa', 'pb', 'qb']) ip('link', 'set', d, 'up');
    dir = mkdtempSync(join(tmpdir(), 'flatwall-health-'));
    sock = join(dir, 'api.sock');
    cm = join(dir, 'rules');
    mkdirSync(cm);
    configMapWrite(cm, 'rules.v4', rules(7001));
    fw = new Background('flatwall run', 'ip', ['netns', 'exec', ns.name, process.execPath, FLATWALL_CLI, 'run', '--port', 'pa', '--port', 'pb',
      '-r', join(cm, 'rules.v4'), '--watch-rules', '--api-socket', sock], { maxLifetimeMs: 110_000 });
    await fw.waitFor((l) => l.includes('"watching the rule files"'), 30_000, 'watching line');
  });
  after(async () => {
    await fw?.stop('SIGTERM', 10_000);
    ns?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('all up: /ready 200, /health ok with every part', async () => {
    const r = await api('GET', '/ready');
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(r.json, { ready: true, generation: 1 });
    const h = await api('GET', '/health');
    assert.equal(h.status, 200);
    const j = h.json!;
    assert.equal(j.status, 'ok', h.body);
    assert.deepEqual(Object.keys(j.parts), ['api', 'workers', 'ports', 'rules']);
    assert.deepEqual(j.parts.ports.ports.map((p: { name: string; state: string }) => `${p.name}:${p.state}`), ['pa:up', 'pb:up']);
    assert.equal(j.parts.workers.workers.length, 1);
    assert.ok(j.parts.workers.workers[0].beatAgeMs <= j.parts.workers.stuckAfterMs, h.body);
    assert.equal(j.parts.rules.generation, 1);
  });

  test('a port down: /ready 503 naming it, /health 200 degraded; up again: ready', async () => {
    ip('link', 'set', 'pb', 'down');
    const r = await api('GET', '/ready');
    assert.equal(r.status, 503);
    assert.deepEqual(r.json!.reasons, ['port pb down']);
    const h = await api('GET', '/health');
    assert.equal(h.status, 200, 'a link down is not mended by a restart');
    assert.equal(h.json!.status, 'degraded');
    assert.equal(h.json!.parts.ports.status, 'degraded');
    assert.equal(h.json!.parts.workers.status, 'ok');
    // Up, but its peer down: no carrier.
    ip('link', 'set', 'qb', 'down');
    ip('link', 'set', 'pb', 'up');
    assert.deepEqual((await api('GET', '/ready')).json!.reasons, ['port pb no-carrier']);
    ip('link', 'set', 'qb', 'up');
    // Carrier comes back asynchronously (linkwatch).
    let ready = 0;
    for (let i = 0; i < 50 && ready !== 200; i++) {
      ready = (await api('GET', '/ready')).status;
      if (ready !== 200) await new Promise((res) => setTimeout(res, 100));
    }
    assert.equal(ready, 200);
  });

  test('a ConfigMap update reloads; a bad one keeps the rules (health says so, still ready); the fix reloads', async () => {
    const listing = async () => (await api('GET', '/rules?format=save&family=4')).body;
    configMapWrite(cm, 'rules.v4', rules(7002));
    const ok = JSON.parse(await fw.waitFor((l) => l.includes('"rules reloaded"') && l.includes('"trigger":"watch"'), 20_000, 'reload by watch'));
    assert.equal(ok.generation, 2);
    assert.match(await listing(), /--dport 7002/);

    const before = fw.lines.length;
    configMapWrite(cm, 'rules.v4', `${V4_HEADER}-A FORWARD -p tcp --dportx 7003 -j ACCEPT\nCOMMIT\n`);
    const bad = JSON.parse(await fw.waitFor((l) => l.includes('"reload failed; the running rules stay"'), 20_000, 'failed reload'));
    assert.equal(bad.trigger, 'watch');
    assert.match(bad.error, /rules\.v4:\d+:\d+: unknown option --dportx/);
    assert.ok(fw.lines.slice(before).some((l) => l.includes('"rule files changed; reloading"')));
    assert.match(await listing(), /--dport 7002/, 'the running rules stay');
    const h = (await api('GET', '/health')).json!;
    assert.equal(h.status, 'degraded');
    assert.equal(h.parts.rules.status, 'degraded');
    assert.equal(h.parts.rules.lastReload.ok, false);
    assert.match(h.parts.rules.lastReload.error, /--dportx/);
    assert.equal((await api('GET', '/ready')).status, 200, 'the running rules still forward');

    configMapWrite(cm, 'rules.v4', rules(7004));
    await fw.waitFor((l) => l.includes('"rules reloaded"') && l.includes('"generation":3'), 20_000, 'reload after the fix');
    assert.match(await listing(), /--dport 7004/);
    assert.equal((await api('GET', '/health')).json!.status, 'ok');
  });

  test('a port re-created under its socket: /health 503 (failed: restart), ready 503 naming it', async () => {
    ip('link', 'del', 'pa');
    const gone = await api('GET', '/health');
    assert.equal(gone.status, 503, gone.body);
    assert.equal(gone.json!.parts.ports.ports[0].state, 'missing');
    ip('link', 'add', 'pa', 'type', 'veth', 'peer', 'name', 'qa');
    ip('link', 'set', 'pa', 'up');
    ip('link', 'set', 'qa', 'up');
    const h = await api('GET', '/health');
    assert.equal(h.status, 503);
    assert.equal(h.json!.status, 'failed');
    const pa = h.json!.parts.ports.ports[0];
    assert.equal(pa.state, 'replaced');
    assert.notEqual(pa.ifindex, pa.boundIfindex);
    const r = await api('GET', '/ready');
    assert.equal(r.status, 503);
    assert.ok(r.json!.reasons.includes('port pa replaced'), r.body);
  });
});
