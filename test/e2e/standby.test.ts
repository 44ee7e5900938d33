// The hot standby (src/control/standby.ts) between namespaces: an active and
// its standby on the firewall namespace's two ports, 2 workers each, rules
// that accept only the handshake's SYN as NEW and ESTABLISHED after it, and
// four long TCP flows through them. kill -9 of the active: the standby takes
// the ports over and the same four connections keep delivering bytes (no
// reset), whichever worker owned them. The control case: the same kill
// followed by a plain restart (no replica) cuts the flows under these rules,
// so the first case shows the replica, not a lenient rule set.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { e2eUnavailable } from './harness';
import { StandbyLab, logLine, parseLine } from '../../src/lab/standby-lab';
import { sleep } from '../../src/lab/proc';

const skip = e2eUnavailable();

describe('hot standby: connections survive kill -9 of the active', { skip, timeout: 240_000 }, () => {
  test('the standby takes over with the replica; a restart without one cuts the flows', async (t) => {
    const lab = StandbyLab.create('fwsby', 2);
    try {
      await lab.startServer();
      const a1 = lab.replAddr();
      const a2 = lab.replAddr();
      const active = await lab.active('active', a1);
      const standby = await lab.standby('standby', a1, a2);
      // Flows opened through the active, after the standby synced: the
      // replica learns them from the change stream, not the first dump.
      const client = await lab.startClient(4, 1024, 2, 120);
      await sleep(1000);
      const before = await lab.growth(500);
      assert.ok(before.length === 4 && before.every((b) => b > 0), `flows before the kill: ${JSON.stringify(before)}`);
      const from = standby.lines.length;
      const killedAt = performance.timeOrigin + performance.now();
      active.signal('SIGKILL');
      await active.exited;
      const take = await logLine(standby, 'takeover', 10_000, from);
      assert.match(String(take.reason), /connection to the active closed/);
      assert.ok(take.entries >= 4, `replica entries at takeover: ${JSON.stringify(take)}`);
      // The same connections carry on: bytes keep growing on all four, none ended or reset.
      const after = await lab.growth(1000);
      assert.ok(after.length === 4 && after.every((b) => b > 0),
        `flows after the takeover: ${JSON.stringify(after)}\nstandby: ${standby.lines.slice(-8).join('\n')}`);
      const ended = lab.server!.lines.map(parseLine).filter((j) => j?.event === 'end' || j?.event === 'error');
      assert.deepEqual(ended, [], 'no connection ended');
      assert.deepEqual(client.lines.map(parseLine).filter((j) => j?.event === 'error'), [], 'no client error');
      const gaps = await lab.gaps();
      const worst = Math.max(...gaps.map((c) => Math.max(0, ...c.gaps.filter((g) => g.at + g.ms >= killedAt).map((g) => g.ms))));
      // Not a speed test (bench:standby measures): only that delivery resumed on its own.
      assert.ok(worst < 5000, `longest pause after the kill: ${worst} ms`);
      t.diagnostic(`takeover ${take.msSinceLoss} ms after the loss (detected ${take.detectMs} ms), ${take.entries} entries; longest pause in delivery ${worst.toFixed(1)} ms`);

      // Control: kill the new active (no standby behind it) and restart a
      // plain one from the rule file: its empty table has no entry for the
      // flows, their mid-stream segments are NEW without SYN and dropped.
      standby.signal('SIGKILL');
      await standby.exited;
      const restarted = await lab.active('restarted');
      await sleep(300);
      const cut = await lab.growth(1500);
      assert.ok(cut.every((b) => b === 0), `flows after a restart without the replica: ${JSON.stringify(cut)}`);
      const c = parseLine((await restarted.waitFor((l) => l.includes('"ready"'), 1000)))!;
      assert.equal(c.msg, 'ready');
      client.signal('SIGKILL');
    } finally {
      await lab.close();
    }
  });

  test('a pair naming each other (deploy/helm): the restarted former active becomes the standby, and takes over in turn', async () => {
    const lab = StandbyLab.create('fwsbp', 1);
    try {
      await lab.startServer();
      const pA = lab.replAddr();
      const pB = lab.replAddr();
      const a = await lab.pairMember('a', pA, pB, true);
      assert.equal(a.role, 'active', 'nothing answers at B yet: A starts as the active');
      const b = await lab.pairMember('b', pB, pA, false);
      assert.equal(b.role, 'standby');
      await lab.startClient(2, 1024, 2, 120);
      await sleep(800);
      let from = b.b.lines.length;
      a.b.signal('SIGKILL');
      await a.b.exited;
      await logLine(b.b, 'takeover', 10_000, from);
      await b.b.waitFor((l) => l.includes('"replication listening"'), 10_000, 'B serving after its takeover');
      // A restarted (the kubelet's restart of its container) finds B active.
      const a2 = await lab.pairMember('a2', pA, pB, true);
      assert.equal(a2.role, 'standby', 'the restarted A must not open the ports beside B');
      await sleep(300);
      from = a2.b.lines.length;
      b.b.signal('SIGKILL');
      await b.b.exited;
      const take = await logLine(a2.b, 'takeover', 10_000, from);
      assert.ok(take.entries >= 2, JSON.stringify(take));
      const g = await lab.growth(1000);
      assert.ok(g.length === 2 && g.every((x) => x > 0), `flows after two failovers: ${JSON.stringify(g)}`);
      assert.deepEqual(lab.server!.lines.map(parseLine).filter((j) => j?.event === 'end' || j?.event === 'error'), []);
    } finally {
      await lab.close();
    }
  });

  test('a stopped active (SIGSTOP) is taken over after the timeout; woken up, it reads the notice and exits 1', async () => {
    const lab = StandbyLab.create('fwsbs', 1);
    try {
      await lab.startServer();
      const a1 = lab.replAddr();
      const active = await lab.active('active', a1);
      const standby = await lab.standby('standby', a1, undefined, ['--standby-timeout', '300']);
      await lab.startClient(2, 1024, 2, 120);
      await sleep(800);
      const from = standby.lines.length;
      active.signal('SIGSTOP');
      const take = await logLine(standby, 'takeover', 10_000, from);
      assert.match(String(take.reason), /no message from the active for \d+ ms/);
      const g = await lab.growth(1000);
      assert.ok(g.length === 2 && g.every((x) => x > 0), `flows after the takeover of a stopped active: ${JSON.stringify(g)}`);
      active.signal('SIGCONT');
      const exit = await Promise.race([active.exited, sleep(10_000).then(() => undefined)]);
      assert.ok(exit, 'the woken active exits');
      assert.equal(exit!.code, 1);
      assert.ok(active.lines.some((l) => l.includes('the standby took over')), active.lines.slice(-5).join('\n'));
      const g2 = await lab.growth(1000);
      assert.ok(g2.every((x) => x > 0), `flows after the old active left: ${JSON.stringify(g2)}`);
      assert.deepEqual(lab.server!.lines.map(parseLine).filter((j) => j?.event === 'end' || j?.event === 'error'), []);
    } finally {
      await lab.close();
    }
  });
});
