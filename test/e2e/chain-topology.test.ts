// The lab with N firewalls in series (Topology.create(mode, tag, { hops })),
// which bench:sweep's middlebox chains run on: routed hops forward between
// the ends (IPv4 and IPv6, the TTL says how many routers), bridge hops with a
// flatwall in each forward on one L2 segment, a DROP in the middle hop cuts
// the chain, and every namespace goes with the topology.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { Topology, installTeardown, liveTopologyCount } from '../../src/lab/topology';
import { startEngine } from '../../src/lab/engines';
import { run } from '../../src/lab/proc';
import { e2eUnavailable, V4_HEADER } from './harness';

const netnsList = () => spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;

/** One echo from the sender: the reply's TTL (hop limit), or undefined when none came back. */
async function pingTtl(topo: Topology, dst: string): Promise<number | undefined> {
  const r = await run('ping', ['-n', '-c', '1', '-W', '2', dst], { ns: topo.sender, timeoutMs: 10_000, allowFail: true });
  const m = /(?:ttl|hlim)=(\d+)/.exec(r.stdout);
  return m ? Number(m[1]) : undefined;
}

test('chain topology: hop counts outside 1..64 are refused before anything is created', () => {
  const before = netnsList();
  for (const hops of [0, -1, 1.5, 65]) assert.throws(() => Topology.create('routed', 'fwchain', { hops }), /hops must be an integer from 1 to 64/);
  assert.equal(netnsList(), before);
});

test('chain topology, routed: 3 kernel routers in series, IPv4 and IPv6, then nothing left', { skip: e2eUnavailable(), timeout: 60_000 }, async () => {
  installTeardown(false);
  const topo = Topology.create('routed', 'fwchain', { hops: 3 });
  const names = topo.namespaces;
  try {
    assert.equal(names.length, 5);
    assert.deepEqual(topo.ep, { senderIp: '10.0.1.1', receiverIp: '10.0.4.1', senderIp6: 'fd00:1::1', receiverIp6: 'fd00:4::1' });
    // The receiver answers with TTL 64; three routers on the way back take one each.
    assert.equal(await pingTtl(topo, topo.ep.receiverIp), 61);
    assert.equal(await pingTtl(topo, topo.ep.receiverIp6), 61);
    // A middle hop's addresses are reachable from both ends (its routes go both ways).
    assert.equal(await pingTtl(topo, '10.0.3.253'), 63);
  } finally {
    await topo.destroy();
  }
  const left = netnsList();
  for (const n of names) assert.ok(!left.includes(n), `${n} left behind`);
});

test('chain topology, bridge: a flatwall in each of 3 hops, a DROP in the middle one cuts the chain', { skip: e2eUnavailable(), timeout: 90_000 }, async () => {
  installTeardown(false);
  const dir = mkdtempSync(join(tmpdir(), 'flatwall-chain-'));
  const accept = join(dir, 'accept.rules');
  const drop = join(dir, 'drop.rules');
  writeFileSync(accept, `${V4_HEADER}-A FORWARD -j ACCEPT\nCOMMIT\n`);
  writeFileSync(drop, `${V4_HEADER}-A FORWARD -p icmp -j DROP\n-A FORWARD -j ACCEPT\nCOMMIT\n`);
  const liveBefore = liveTopologyCount();
  for (const middle of [accept, drop]) {
    const topo = Topology.create('bridge', 'fwchain', { hops: 3 });
    const names = topo.namespaces;
    try {
      assert.equal(topo.firewalls.length, 3);
      assert.equal(topo.firewall, topo.firewalls[0]);
      for (let hop = 0; hop < 3; hop++) {
        await startEngine('flatwall', topo, hop === 1 ? middle : accept, { timeoutMs: 30_000, workDir: dir, hop });
      }
      // No router on the way: the receiver's TTL arrives untouched.
      assert.equal(await pingTtl(topo, topo.ep.receiverIp), middle === accept ? 64 : undefined);
    } finally {
      await topo.destroy();
    }
    const left = netnsList();
    for (const n of names) assert.ok(!left.includes(n), `${n} left behind`);
  }
  assert.equal(liveTopologyCount(), liveBefore);
  rmSync(dir, { recursive: true, force: true });
});
