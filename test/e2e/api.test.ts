// The management API of `flatwall run` with traffic through it: a UDP
// stream stays lossless across rule set replaces (PUT /rules), the per-rule
// counters `flatwall ctl list` shows equal the traffic sent (carried over
// every replace), a bad replace keeps the old rules and says where the error
// is, single-rule edits change verdicts, and a snapshot restarts forwarding.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';
import { E2eLab, NETTOOL, V4_HEADER, e2eUnavailable, parseJson } from './harness';
import { apiCall } from '../../src/cli/ctl';
import { Background, run } from '../../src/lab/proc';
import { FLATWALL_CLI } from '../../src/lab/engines';

const skip = e2eUnavailable();

const ALLOW = `-A FORWARD -p udp -m udp --dport 7101 -j ACCEPT
-A FORWARD -p udp -m udp --sport 7101 -j ACCEPT
-A FORWARD -p icmp -j ACCEPT
`;
const RULES = `${V4_HEADER}${ALLOW}COMMIT\n`;

/** A rule set that keeps the 7101 flow allowed but differs from the running one. */
function variant(i: number): string {
  const filler = Array.from({ length: 50 * (i + 1) }, (_, k) => `-A FORWARD -s 192.0.2.${k % 250}/32 -p tcp -m tcp --dport ${1000 + i * 100 + k} -j DROP`).join('\n');
  return `${V4_HEADER}-A FORWARD -p udp -m udp --dport 7102 -j DROP\n${i % 2 ? `${filler}\n${ALLOW}` : `${ALLOW}${filler}\n`}COMMIT\n`;
}

describe('management API under traffic', { skip, timeout: 120_000 }, () => {
  let lab: E2eLab;
  const api = (method: string, path: string, body?: string, ct?: string) => apiCall({ socket: lab.apiSocket }, method, path, body, ct);
  const ctl = (...args: string[]) => run(process.execPath, [FLATWALL_CLI, 'ctl', '--socket', lab.apiSocket, ...args], { timeoutMs: 30_000, allowFail: true });

  before(async () => {
    lab = await E2eLab.start({ rules: { 'api.rules': RULES }, echoPorts: [7101, 7102] });
  });
  after(async () => {
    await lab?.close();
  });

  test('zero loss for a flow that stays allowed across 5 replaces; ctl list counters equal the traffic', async () => {
    assert.equal((await api('GET', '/ready')).status, 200);
    const N = 1200;
    const size = 64;
    const burst = lab.sh(lab.topo.sender, process.execPath, [NETTOOL, 'udp-burst', '10.0.0.2', '7101', String(N), String(size)], 60_000);
    const generations: number[] = [];
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => setTimeout(r, 250));
      const a = await api('PUT', '/rules', variant(i), 'text/plain');
      assert.equal(a.status, 200, a.body);
      generations.push(a.json!.generation);
    }
    const b = JSON.parse((await burst).stdout);
    assert.deepEqual(generations, [2, 3, 4, 5, 6]);
    assert.equal(b.sent, N);
    assert.equal(b.replies, N, `lost ${N - b.replies} of ${N} datagrams across the replaces`);

    // The counters of the two allow rules survived every replace, exactly.
    const list = await ctl('list', '-x', 'FORWARD');
    assert.equal(list.code, 0, list.stderr);
    const row = (match: string) => {
      const l = list.stdout.split('\n').find((x) => x.endsWith(match));
      assert.ok(l, `no rule "${match}" in\n${list.stdout}`);
      const [pkts, bytes] = l.trim().split(/\s+/);
      return { pkts: Number(pkts), bytes: Number(bytes) };
    };
    const ipLen = 20 + 8 + size;
    assert.deepEqual(row('udp dpt:7101'), { pkts: N, bytes: N * ipLen });
    assert.deepEqual(row('udp spt:7101'), { pkts: N, bytes: N * ipLen });
    const m = (await api('GET', '/metrics')).body;
    assert.match(m, /^flatwall_ruleset_generation 6$/m);
    assert.match(m, /^flatwall_reloads_total\{result="success"\} 6$/m);
    // The process's memory, in /metrics and /stats (bench:soak samples it).
    const heap = Number(/^flatwall_process_heap_bytes\{kind="used"\} (\d+)$/m.exec(m)?.[1]);
    const rss = Number(/^flatwall_process_resident_memory_bytes (\d+)$/m.exec(m)?.[1]);
    assert.ok(heap > 1e6 && rss > heap, `heap ${heap}, rss ${rss}`);
    const pm = (await api('GET', '/stats')).json!.process;
    assert.ok(pm.heapUsedBytes > 1e6 && pm.heapTotalBytes >= pm.heapUsedBytes && pm.rssBytes > pm.heapUsedBytes, JSON.stringify(pm));
    // After a major collection its figure is in both; before the first, in
    // neither (six small replaces do not always need one).
    if (pm.majorGcs >= 1) {
      assert.ok(pm.heapAfterMajorGcBytes > 1e6, JSON.stringify(pm));
      assert.match(m, /^flatwall_process_heap_after_major_gc_bytes \d+$/m);
    } else {
      assert.equal(pm.heapAfterMajorGcBytes, null, JSON.stringify(pm));
      assert.doesNotMatch(m, /^flatwall_process_heap_after_major_gc_bytes /m);
    }
  });

  test('a bad replace is refused with its position; the old rules keep working', async () => {
    const bad = `${V4_HEADER}-A FORWARD -p udp -m udp --dport 7102 -j ACCEPT\n-A FORWARD -p udp --dport 7101 -j ACCPET\nCOMMIT\n`;
    const a = await api('PUT', '/rules', bad, 'text/plain');
    assert.equal(a.status, 400);
    assert.equal(a.json!.code, 'rule_error');
    assert.deepEqual([a.json!.line, a.json!.column, a.json!.token], [6, 35, 'ACCPET']);
    assert.equal((await lab.probe('udp', '10.0.0.2', 7101)).result, 'ok', 'old rules still allow 7101');
    assert.equal((await lab.probe('udp', '10.0.0.2', 7102, 800)).result, 'timeout', 'old rules still drop 7102');
    const m = (await api('GET', '/metrics')).body;
    assert.match(m, /^flatwall_last_reload_success 0$/m);
    assert.match(m, /^flatwall_ruleset_generation 6$/m);
  });

  test('single-rule insert, delete and policy change verdicts', async () => {
    const ins = await api('POST', '/rules', JSON.stringify({ rule: '-I FORWARD 1 -p udp -m udp --dport 7101 -j DROP' }));
    assert.equal(ins.status, 201, ins.body);
    assert.equal(ins.json!.method, 'overlay', 'an insert into FORWARD is applied without a rebuild');
    assert.equal((await lab.probe('udp', '10.0.0.2', 7101, 800)).result, 'timeout', 'inserted DROP at 1');
    // The inserted rule counts (the probe sends until it gives up: >= 1 datagram).
    const list = await ctl('list', '-x', '--line-numbers', 'FORWARD');
    const first = list.stdout.split('\n').find((l) => /^1\s/.test(l));
    assert.ok(first && /DROP\s.*udp dpt:7101$/.test(first) && Number(first.trim().split(/\s+/)[1]) >= 1, `inserted rule counted:\n${list.stdout}`);
    const del = await api('DELETE', '/rules/FORWARD/1');
    assert.equal(del.status, 200, del.body);
    assert.equal(del.json!.method, 'overlay');
    assert.equal((await lab.probe('udp', '10.0.0.2', 7101)).result, 'ok', 'DROP deleted');
    // Deleting a rule of the base build: 7102's DROP (rule 1 again), checked below.
    const del2 = await api('DELETE', '/rules/FORWARD/1');
    assert.equal(del2.json!.method, 'overlay', del2.body);
    // 7102 has a DROP rule; a UDP port without one follows the policy.
    assert.equal((await lab.probe('udp', '10.0.0.2', 7103, 800)).result, 'timeout', 'policy DROP');
    const pol = await api('PUT', '/chains/FORWARD/policy', JSON.stringify({ policy: 'ACCEPT' }));
    assert.equal(pol.status, 200, pol.body);
    assert.equal(pol.json!.method, 'overlay');
    assert.notEqual((await lab.probe('udp', '10.0.0.2', 7103, 800)).result, 'timeout', 'policy ACCEPT lets 7103 through (no server: refused)');
    // Its replies need the policy: only now can 7102 answer, if its DROP is gone.
    assert.equal((await lab.probe('udp', '10.0.0.2', 7102)).result, 'ok', 'base DROP deleted');
    // Put it back (the snapshot test below saves these rules and expects it).
    const back = await api('POST', '/rules', JSON.stringify({ rule: '-I FORWARD 1 -p udp -m udp --dport 7102 -j DROP' }));
    assert.equal(back.json!.method, 'overlay', back.body);
    assert.equal((await lab.probe('udp', '10.0.0.2', 7102, 800)).result, 'timeout', 'DROP inserted again');
  });

  test('PUT /rules with a snapshot: active without parsing, then listing and carried counters; a corrupt one is refused', async () => {
    const saved = await ctl('save');
    const file = join(lab.dir, 'live.rules');
    const snap = join(lab.dir, 'live.snap');
    writeFileSync(file, saved.stdout);
    const c = await run(process.execPath, [FLATWALL_CLI, 'compile', file, '-o', snap], { timeoutMs: 60_000, allowFail: true });
    assert.equal(c.code, 0, c.stderr);
    const count = async () => {
      const l = (await ctl('list', '-x', 'FORWARD')).stdout.split('\n').find((x) => x.endsWith('udp dpt:7101'));
      return Number(l?.trim().split(/\s+/)[0]);
    };
    const before = await count();
    assert.ok(before > 0, 'the allow rule has counted traffic');
    const gen = (await api('GET', '/stats')).json!.reload.generation;
    const r = await ctl('reload', snap);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /active in .* \(snapshot; rule listing and counter carry-over loading\)/);
    assert.equal((await lab.probe('udp', '10.0.0.2', 7101)).result, 'ok', 'forwarding with the snapshot rules');
    // The listing comes back once the metadata is parsed, with the counters carried over.
    let listed = 503;
    for (let i = 0; i < 100 && listed === 503; i++) {
      listed = (await api('GET', '/rules?limit=1')).status;
      if (listed === 503) await new Promise((res) => setTimeout(res, 100));
    }
    assert.equal(listed, 200);
    assert.ok(await count() >= before, 'counters carried over the snapshot replace');
    assert.equal((await api('GET', '/stats')).json!.reload.generation, gen + 1);
    // The same snapshot as a PUT body (what a client without the socket does), then a bad path.
    const put = await api('PUT', '/rules', readFileSync(snap) as unknown as string, 'application/vnd.flatwall.snapshot');
    assert.equal(put.status, 200, put.body);
    assert.equal(put.json!.metadata, 'loading');
    for (let i = 0; i < 100 && (await api('GET', '/rules?limit=1')).status === 503; i++) await new Promise((res) => setTimeout(res, 100));
    assert.ok(await count() >= before, 'counters carried over again');
    const missing = await api('POST', '/reload', JSON.stringify({ snapshot: join(lab.dir, 'nope.snap') }));
    assert.equal(missing.status, 400, missing.body);
    assert.equal(missing.json!.code, 'bad_snapshot');
    // A flipped byte in the tables: refused, nothing changes.
    const bytes = readFileSync(snap);
    bytes[bytes.readUInt32LE(12) + 48 + 16] ^= 0xff;
    const bad = await api('PUT', '/rules', bytes as unknown as string, 'application/vnd.flatwall.snapshot');
    assert.equal(bad.status, 400, bad.body);
    assert.equal(bad.json!.code, 'bad_snapshot');
    assert.equal((await api('GET', '/stats')).json!.reload.generation, gen + 2);
  });

  test('a raw table through the API: NOTRACK before conntrack, ctl list/save/zero -t raw, the untracked metric', async () => {
    // 7101 passes only as UNTRACKED: without the raw table's NOTRACK its
    // datagrams would be NEW and meet the policy.
    const rules = `*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]
-A PREROUTING -p udp -m udp --dport 7101 -j NOTRACK
-A PREROUTING -p udp -m udp --sport 7101 -j CT --notrack
COMMIT
${V4_HEADER}-A FORWARD -p udp -m udp --dport 7102 -j DROP
-A FORWARD -p udp -m conntrack --ctstate UNTRACKED -j ACCEPT
-A FORWARD -p icmp -j ACCEPT
COMMIT
`;
    const put = await api('PUT', '/rules', rules, 'text/plain');
    assert.equal(put.status, 200, put.body);
    assert.equal((await lab.probe('udp', '10.0.0.2', 7101)).result, 'ok', 'untracked both ways, accepted as UNTRACKED');
    assert.equal((await lab.probe('udp', '10.0.0.2', 7102, 800)).result, 'timeout');
    const raw = await ctl('list', '-t', 'raw', '-x');
    assert.equal(raw.code, 0, raw.stderr);
    assert.match(raw.stdout, /^Chain PREROUTING \(policy ACCEPT \d+ packets/m);
    const row = (text: string, re: RegExp) => text.split('\n').find((l) => re.test(l));
    const notrack = row(raw.stdout, /CT\s+17 .*udp dpt:7101 NOTRACK$/);
    assert.ok(notrack && Number(notrack.trim().split(/\s+/)[0]) >= 1, `NOTRACK rule counted:\n${raw.stdout}`);
    assert.ok(row(raw.stdout, /udp spt:7101 CT notrack$/), raw.stdout);
    // The filter listing is the default and holds no raw chain.
    const filter = await ctl('list');
    assert.doesNotMatch(filter.stdout, /PREROUTING/);
    const saved = await ctl('save');
    assert.match(saved.stdout, /^\*raw\n(.*\n)*-A PREROUTING -p udp -m udp --dport 7101 -j NOTRACK\n(.*\n)*COMMIT\n(.*\n)*\*filter\n/m);
    const onlyRaw = await ctl('save', '-t', 'raw');
    assert.doesNotMatch(onlyRaw.stdout, /\*filter/);
    assert.match(onlyRaw.stdout, /-j CT --notrack/);
    const metrics = await api('GET', '/metrics');
    const untracked = /^flatwall_conntrack_untracked_packets_total (\d+)/m.exec(metrics.body);
    assert.ok(untracked && Number(untracked[1]) >= 2, 'requests and replies left untracked');
    const zero = await ctl('zero', '-t', 'raw', 'PREROUTING');
    assert.equal(zero.code, 0, zero.stderr);
    assert.match(zero.stdout, /^zeroed 3 counters/);
    const after = await ctl('list', '-t', 'raw', '-x');
    assert.match(row(after.stdout, /udp dpt:7101 NOTRACK$/)!, /^\s+0\s+0 /);
    assert.equal((await ctl('list', '-t', 'nat')).code, 2, 'an unknown table is a usage error');
  });

  test('ctl apply FILE: a file of edits as one generation; an error names FILE:LINE:COL and applies nothing', async () => {
    const gen = (await api('GET', '/stats')).json!.reload.generation;
    const file = join(lab.dir, 'edits.rules');
    writeFileSync(file, '*filter\n-I FORWARD 1 -p udp -m udp --dport 7101 -j DROP\n-A FORWARD -p tcp -m tcp --dport 9 -j DROP\nCOMMIT\n');
    const a = await ctl('apply', file);
    assert.equal(a.code, 0, a.stderr);
    assert.match(a.stdout, /edits\.rules: 2 edits, generation \d+, [\d.]+ ms, overlay/);
    assert.equal((await api('GET', '/stats')).json!.reload.generation, gen + 1);
    assert.equal((await lab.probe('udp', '10.0.0.2', 7101, 800)).result, 'timeout', 'the inserted DROP is active');
    writeFileSync(file, '-D FORWARD 1\n-D FORWARD -p tcp -m tcp --dport 9 -j DROP\n-I FORWARD 1 -p udp --dport 70000 -j DROP\n');
    const bad = await ctl('apply', file);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /edits\.rules:3:29: port 70000 is out of range/);
    assert.equal((await lab.probe('udp', '10.0.0.2', 7101, 800)).result, 'timeout', 'nothing of the bad file applied');
    writeFileSync(file, '-D FORWARD 1\n-D FORWARD -p tcp -m tcp --dport 9 -j DROP\n');
    assert.equal((await ctl('apply', file)).code, 0);
    assert.equal((await lab.probe('udp', '10.0.0.2', 7101)).result, 'ok');
  });

  test('a snapshot restarts forwarding with the same rules; a corrupt one is refused', async () => {
    const saved = await ctl('save');
    assert.equal(saved.code, 0, saved.stderr);
    const file = join(lab.dir, 'saved.rules');
    const snap = join(lab.dir, 'saved.snap');
    writeFileSync(file, saved.stdout);
    const c = await run(process.execPath, [FLATWALL_CLI, 'compile', file, '-o', snap], { timeoutMs: 60_000, allowFail: true });
    assert.equal(c.code, 0, c.stderr);
    await lab.stopFirewall();

    const fw = lab.topo.adopt(new Background('flatwall run --snapshot', process.execPath,
      [FLATWALL_CLI, 'run', '--port', 'fa', '--port', 'fb', '--snapshot', snap, '--api-socket', lab.apiSocket], { ns: lab.topo.firewall, maxLifetimeMs: 60_000 }));
    const ready = parseJson(await fw.waitFor((l) => parseJson(l)?.msg === 'ready', 30_000, 'ready'))!;
    assert.equal(ready.snapshot, snap);
    assert.deepEqual(ready.image, { loaded: true }, 'classifiers loaded from the snapshot\'s image, not rebuilt');
    assert.equal((await lab.probe('udp', '10.0.0.2', 7101)).result, 'ok');
    assert.equal((await lab.probe('udp', '10.0.0.2', 7102, 800)).result, 'timeout');
    await fw.waitFor((l) => parseJson(l)?.msg === 'snapshot metadata loaded', 30_000, 'metadata');
    const again = await ctl('save');
    const body = (s: string) => s.split('\n').filter((l) => !l.startsWith('#')).join('\n');
    assert.equal(body(again.stdout), body(saved.stdout), 'the snapshot holds the same rules');
    assert.equal((await api('POST', '/reload')).status, 409, 'no --rules to reload');
    await fw.stop('SIGTERM', 10_000);

    // One flipped byte in the tables: refused, exit 1, clear message.
    const bytes = readFileSync(snap);
    bytes[bytes.readUInt32LE(12) + 48 + 16] ^= 0xff;
    writeFileSync(snap, bytes);
    const r = await run(process.execPath, [FLATWALL_CLI, 'run', '--port', 'fa', '--port', 'fb', '--snapshot', snap, '--api-socket', 'off'],
      { ns: lab.topo.firewall, timeoutMs: 30_000, allowFail: true });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /checksum mismatch: the snapshot is corrupt/);
  });
});
