// The probe contract's judgement, part by part (src/control/health.ts); the
// same contract against a running firewall is test/e2e/health.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { evaluateHealth, WORKER_STUCK_MS, type DataplaneHealth, type RulesHealth } from './health';

const port = (name: string, o: Partial<DataplaneHealth['ports'][number]> = {}) =>
  ({ name, kind: 'afpacket' as const, boundIfindex: 7, ifindex: 7, adminUp: true, carrier: true, ...o });
const dp = (o: Partial<DataplaneHealth> = {}): DataplaneHealth =>
  ({ running: true, workers: [{ id: 0, beatAgeMs: 3 }, { id: 1, beatAgeMs: 900 }], ports: [port('a'), port('b', { boundIfindex: 8, ifindex: 8 })], ...o });
const rules = (o: Partial<RulesHealth> = {}): RulesHealth =>
  ({ generation: 1, lastOk: true, lastAttempt: 1_700_000_000, lastSuccess: 1_700_000_000, metadataLoading: false, ...o });

test('all parts working: ok and ready', () => {
  const h = evaluateHealth(dp(), rules(), true);
  assert.equal(h.status, 'ok');
  assert.equal(h.ready, true);
  assert.deepEqual(h.notReady, []);
  assert.deepEqual(Object.keys(h.parts), ['api', 'workers', 'ports', 'rules']);
  assert.deepEqual(h.parts.ports.ports.map((p) => p.state), ['up', 'up']);
  assert.equal(h.parts.rules.lastReload.at, '2023-11-14T22:13:20.000Z');
});

test('start-up: rules loading, ports not opened yet: starting, not ready, but alive', () => {
  const h = evaluateHealth(dp({ running: false, workers: [] }), rules({ generation: 0, lastAttempt: 0, lastOk: false, lastSuccess: 0 }), false);
  assert.equal(h.status, 'starting');
  assert.equal(h.ready, false);
  assert.deepEqual(h.notReady, ['no rule set active yet', 'ports not started']);
  assert.equal(h.parts.rules.status, 'starting');
  assert.equal(h.parts.workers.status, 'starting');
  assert.deepEqual(h.parts.ports.ports.map((p) => p.state), ['closed', 'closed']);
});

test('a port whose link is down or without carrier: degraded (alive), not ready, says which', () => {
  const down = evaluateHealth(dp({ ports: [port('a', { adminUp: false, carrier: false }), port('b')] }), rules(), true);
  assert.equal(down.status, 'degraded');
  assert.equal(down.parts.ports.status, 'degraded');
  assert.equal(down.parts.ports.ports[0].state, 'down');
  assert.equal(down.ready, false);
  assert.deepEqual(down.notReady, ['port a down']);
  const nc = evaluateHealth(dp({ ports: [port('a'), port('b', { carrier: false })] }), rules(), true);
  assert.equal(nc.parts.ports.ports[1].state, 'no-carrier');
  assert.deepEqual(nc.notReady, ['port b no-carrier']);
});

test('an interface deleted or re-created under the socket: failed (a restart binds it again)', () => {
  const gone = evaluateHealth(dp({ ports: [port('a', { ifindex: 0 }), port('b')] }), rules(), true);
  assert.equal(gone.status, 'failed');
  assert.equal(gone.parts.ports.ports[0].state, 'missing');
  const re = evaluateHealth(dp({ ports: [port('a'), port('b', { ifindex: 12 })] }), rules(), true);
  assert.equal(re.status, 'failed');
  assert.deepEqual({ ...re.parts.ports.ports[1] }, { name: 'b', kind: 'afpacket', state: 'replaced', status: 'failed', ifindex: 12, boundIfindex: 7 });
  assert.equal(re.ready, false);
});

test('a worker without a loop round for longer than the limit: failed, names the worker', () => {
  const h = evaluateHealth(dp({ workers: [{ id: 0, beatAgeMs: 1 }, { id: 1, beatAgeMs: WORKER_STUCK_MS + 1 }] }), rules(), true);
  assert.equal(h.status, 'failed');
  assert.equal(h.parts.workers.status, 'failed');
  assert.deepEqual(h.parts.workers.workers.map((w) => w.status), ['ok', 'failed']);
  assert.deepEqual(h.notReady, [`worker 1 stuck (no loop round for ${WORKER_STUCK_MS + 1} ms)`]);
  // Exactly at the limit is still a round.
  assert.equal(evaluateHealth(dp({ workers: [{ id: 0, beatAgeMs: WORKER_STUCK_MS }] }), rules(), true).status, 'ok');
});

test('the dataplane stopped after a start: failed', () => {
  const h = evaluateHealth(dp({ running: false, workers: [] }), rules(), true);
  assert.equal(h.status, 'failed');
  assert.deepEqual(h.notReady, ['dataplane stopped']);
});

test('a failed reload: degraded with its error, still ready on the running rules', () => {
  const h = evaluateHealth(dp(), rules({ generation: 3, lastOk: false, lastError: 'r.v4:2:4: unknown option "--dportx"' }), true);
  assert.equal(h.status, 'degraded');
  assert.equal(h.parts.rules.status, 'degraded');
  assert.equal(h.parts.rules.generation, 3);
  assert.equal(h.parts.rules.lastReload.error, 'r.v4:2:4: unknown option "--dportx"');
  assert.equal(h.ready, true);
});

test('TAP ports: open while the dataplane runs, whatever namespace the device is in', () => {
  const h = evaluateHealth(dp({ ports: [port('t0', { kind: 'tap', boundIfindex: 0, ifindex: 0, adminUp: false, carrier: false }), port('t1', { kind: 'tap', boundIfindex: 0, ifindex: 0 })] }), rules(), true);
  assert.deepEqual(h.parts.ports.ports.map((p) => [p.state, p.status]), [['open', 'ok'], ['open', 'ok']]);
  assert.equal(h.ready, true);
});

test('from a snapshot whose listing is still parsed: ready, metadata loading', () => {
  const h = evaluateHealth(dp(), rules({ metadataLoading: true }), true);
  assert.equal(h.ready, true);
  assert.equal(h.parts.rules.metadata, 'loading');
});
