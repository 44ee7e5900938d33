// Connection tracking through the management API: `flatwall ctl conntrack`
// lists, counts, deletes and flushes the connections a stateful rule set
// created for real traffic, /metrics exposes the node_exporter-style
// conntrack series, and misuse is refused with the right exit status.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { E2eLab, V4_HEADER, e2eUnavailable } from './harness';
import { apiCall } from '../../src/cli/ctl';
import { run } from '../../src/lab/proc';
import { FLATWALL_CLI } from '../../src/lab/engines';

const skip = e2eUnavailable();

// Stateful: replies only as ESTABLISHED, new connections only to 7201/7202.
const RULES = `${V4_HEADER}-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -p tcp -m conntrack --ctstate NEW -m tcp --dport 7201 -j ACCEPT
-A FORWARD -p tcp -m conntrack --ctstate NEW -m tcp --dport 7202 -j ACCEPT
-A FORWARD -p icmp -j ACCEPT
COMMIT
`;

describe('ctl conntrack', { skip, timeout: 90_000 }, () => {
  let lab: E2eLab;
  const ctl = (...args: string[]) => run(process.execPath, [FLATWALL_CLI, 'ctl', '--socket', lab.apiSocket, 'conntrack', ...args], { timeoutMs: 30_000, allowFail: true });
  const lines = (out: string) => out.split('\n').filter(Boolean);

  before(async () => {
    lab = await E2eLab.start({ rules: { 'ct.rules': RULES }, echoPorts: [7201, 7202, 7203] });
  });
  after(async () => {
    await lab?.close();
  });

  test('lists, counts, deletes and flushes the connections traffic created', async () => {
    assert.equal((await lab.probe('tcp', '10.0.0.2', 7201)).result, 'ok', await lab.diag());
    assert.equal((await lab.probe('tcp', '10.0.0.2', 7202)).result, 'ok', await lab.diag());
    // Not allowed as NEW: dropped, so never tracked (conntrack commits on ACCEPT).
    assert.equal((await lab.probe('tcp', '10.0.0.2', 7203, 800)).result, 'timeout');

    const l = await ctl('-L', '-p', 'tcp');
    assert.equal(l.code, 0, l.stderr);
    const conns = lines(l.stdout);
    const c7201 = conns.filter((x) => x.includes('dport=7201'));
    assert.equal(c7201.length, 1, l.stdout);
    assert.match(c7201[0], /^tcp +6 \d+ [A-Z_]+ src=10\.0\.0\.1 dst=10\.0\.0\.2 sport=\d+ dport=7201 packets=\d+ src=10\.0\.0\.2 dst=10\.0\.0\.1 sport=7201 dport=\d+ \[ASSURED\] zone=0$/);
    assert.equal(conns.filter((x) => x.includes('dport=7203')).length, 0, 'a dropped NEW connection is not tracked');
    assert.match(l.stderr, /flow entries have been shown/);

    const count = await ctl('-C');
    assert.equal(count.code, 0, count.stderr);
    assert.ok(Number(count.stdout.trim()) >= 2, count.stdout);

    const metrics = await apiCall({ socket: lab.apiSocket }, 'GET', '/metrics');
    const entries = /^flatwall_conntrack_entries (\d+)$/m.exec(metrics.body);
    assert.ok(entries && Number(entries[1]) >= 2, 'flatwall_conntrack_entries');
    assert.match(metrics.body, /^flatwall_conntrack_entries_limit \d+$/m);
    assert.match(metrics.body, /^flatwall_conntrack_stat_insert_total \d+$/m);

    // Delete the 7201 connection by its reply-direction tuple (either works).
    const sport = /sport=(\d+) dport=7201/.exec(c7201[0])![1];
    const d = await ctl('-D', '-p', 'tcp', '-s', '10.0.0.2', '-d', '10.0.0.1', '--sport', '7201', '--dport', sport);
    assert.equal(d.code, 0, d.stderr);
    assert.equal(lines((await ctl('-L', '--port', '7201')).stdout).length, 0);
    assert.equal(lines((await ctl('-L', '--port', '7202')).stdout).length, 1);
    // Deleting it again: nothing to delete is an error (exit 1), as in conntrack(8).
    assert.equal((await ctl('-D', '-p', 'tcp', '-s', '10.0.0.2', '-d', '10.0.0.1', '--sport', '7201', '--dport', sport)).code, 1);

    const f = await ctl('-F', '--port', '7202');
    assert.equal(f.code, 0, f.stderr);
    assert.match(f.stdout, /1 flow entries have been deleted/);
    assert.equal(lines((await ctl('-L', '--port', '7202')).stdout).length, 0);
  });

  test('misuse: usage errors exit 2, refused input exits 1', async () => {
    assert.equal((await ctl('-s', '10.0.0.1')).code, 2, '-s outside -D');
    assert.equal((await ctl('-D', '-p', 'tcp')).code, 2, '-D without addresses');
    assert.equal((await ctl('--port', '70000')).code, 2);
    assert.equal((await ctl('-f', 'ipx')).code, 2);
    const bad = await ctl('--addr', 'not-an-address');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /bad address/);
  });
});
