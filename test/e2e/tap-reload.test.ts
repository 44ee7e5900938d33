// TAP ports forward as AF_PACKET ports do (`flatwall run --tap`), and SIGHUP
// reloads: a bad file keeps the running rules, a good one changes verdicts.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { E2eLab, V4_HEADER, V6_HEADER, e2eUnavailable, parseJson } from './harness';
import { iperf, parsePing } from '../../src/lab/traffic';

const skip = e2eUnavailable();

const OPEN = `${V4_HEADER.replace(':FORWARD DROP', ':FORWARD ACCEPT')}-A FORWARD -p udp -m udp --dport 7002 -j DROP
COMMIT
`;
const OPEN6 = `${V6_HEADER.replace(':FORWARD DROP', ':FORWARD ACCEPT')}-A FORWARD -p udp -m udp --dport 7002 -j DROP
COMMIT
`;

describe('TAP ports', { skip, timeout: 60_000 }, () => {
  let lab: E2eLab;
  before(async () => {
    lab = await E2eLab.start({ rules: { 'v4.rules': OPEN, 'v6.rules': OPEN6 }, tap: true, echoPorts: [7001, 7002] });
  });
  after(async () => {
    await lab?.close();
  });

  test('forward IPv4 and IPv6 like AF_PACKET ports, with the same verdicts', async () => {
    const S = lab.topo.sender;
    for (const dst of ['10.0.0.2', 'fd00::2']) {
      assert.equal(parsePing((await lab.sh(S, 'ping', ['-q', '-c', '3', '-i', '0.05', '-W', '2', dst])).stdout).received, 3, `ping ${dst}\n${await lab.diag()}`);
      assert.equal((await lab.probe('tcp', dst, 7001)).result, 'ok', `tcp ${dst}`);
      assert.equal((await lab.probe('udp', dst, 7001)).result, 'ok', `udp ${dst}`);
      assert.equal((await lab.probe('udp', dst, 7002, 800)).result, 'timeout', `udp ${dst}:7002 must be dropped`);
    }
    const r = await iperf(lab.topo, { seconds: 1 });
    assert.ifError(r.error);
    assert.ok((r.bps ?? 0) > 50e6, `TCP over TAP: ${r.bps} b/s`);
    const c = await lab.stopFirewall();
    assert.deepEqual(c!.ports.map((p: { name: string }) => p.name), ['ftapa', 'ftapb']);
    assert.ok(c!.ports[0].rxPackets > 100 && c!.ports[1].rxPackets > 100, JSON.stringify(c!.ports));
  });
});

describe('SIGHUP reload', { skip, timeout: 60_000 }, () => {
  let lab: E2eLab;
  before(async () => {
    lab = await E2eLab.start({ rules: { 'live.rules': OPEN }, echoPorts: [7001, 7002] });
  });
  after(async () => {
    await lab?.close();
  });

  const logLine = (msg: string, from: number) => lab.fw.waitFor((l) => parseJson(l)?.msg === msg, 15_000, `"${msg}" log line`, from);

  test('a bad file keeps the old rules; a good file changes verdicts', async () => {
    const file = lab.files['live.rules'];
    assert.equal((await lab.probe('udp', '10.0.0.2', 7001)).result, 'ok');
    assert.equal((await lab.probe('udp', '10.0.0.2', 7002, 800)).result, 'timeout');

    // A file with an error: reported with its position, the running rules stay.
    writeFileSync(file, `${V4_HEADER}-A FORWARD -p udp -m udp --dport 7001 -j DROP\n-A FORWARD -p udp --dport 99999 -j ACCEPT\nCOMMIT\n`);
    let from = lab.fw.lines.length;
    lab.fw.signal('SIGHUP');
    const failed = parseJson(await logLine('reload failed; the running rules stay', from))!;
    assert.match(failed.error, /live\.rules:6:\d+/, failed.error);
    assert.equal((await lab.probe('udp', '10.0.0.2', 7001)).result, 'ok', 'old rules still active');
    assert.equal((await lab.probe('udp', '10.0.0.2', 7002, 800)).result, 'timeout', 'old rules still active');

    // A good file: 7001 dropped, 7002 allowed.
    writeFileSync(file, `${V4_HEADER.replace(':FORWARD DROP', ':FORWARD ACCEPT')}-A FORWARD -p udp -m udp --dport 7001 -j DROP\nCOMMIT\n`);
    from = lab.fw.lines.length;
    lab.fw.signal('SIGHUP');
    const ok = parseJson(await logLine('rules reloaded', from))!;
    assert.equal(ok.generation, 2);
    assert.equal((await lab.probe('udp', '10.0.0.2', 7001, 800)).result, 'timeout', 'new rules drop 7001');
    assert.equal((await lab.probe('udp', '10.0.0.2', 7002)).result, 'ok', 'new rules allow 7002');
    const c = await lab.stopFirewall();
    assert.equal(c!.generation, 2);
  });
});
