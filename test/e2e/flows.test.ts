// End to end through `flatwall run` as a bump in the wire between two
// namespaces: real sockets, IPv4 and IPv6, allowed / denied / rejected flows,
// ARP and NDP through the bridge, a GSO-sized TCP stream.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { E2eLab, NETTOOL, V4_HEADER, V6_HEADER, e2eUnavailable } from './harness';
import { Background } from '../../src/lab/proc';
import { iperf, parsePing } from '../../src/lab/traffic';

const skip = e2eUnavailable();

// 7001: allowed both ways. 7002: no rule (policy DROP). 7003: REJECT.
// 10.0.0.3 / fd00::3 (a second address on the receiver): every packet dropped.
const V4 = `${V4_HEADER}-A FORWARD -d 10.0.0.3/32 -j DROP
-A FORWARD -p icmp -j ACCEPT
-A FORWARD -p tcp -m tcp --dport 7001 -j ACCEPT
-A FORWARD -p tcp -m tcp --sport 7001 -j ACCEPT
-A FORWARD -p udp -m udp --dport 7001 -j ACCEPT
-A FORWARD -p udp -m udp --sport 7001 -j ACCEPT
-A FORWARD -p tcp -m tcp --dport 5201 -j ACCEPT
-A FORWARD -p tcp -m tcp --sport 5201 -j ACCEPT
-A FORWARD -p tcp -m tcp --dport 7003 -j REJECT --reject-with tcp-reset
-A FORWARD -p udp -m udp --dport 7003 -j REJECT --reject-with icmp-port-unreachable
COMMIT
`;
const V6 = `${V6_HEADER}-A FORWARD -d fd00::3/128 -j DROP
-A FORWARD -p ipv6-icmp -j ACCEPT
-A FORWARD -p tcp -m tcp --dport 7001 -j ACCEPT
-A FORWARD -p tcp -m tcp --sport 7001 -j ACCEPT
-A FORWARD -p udp -m udp --dport 7001 -j ACCEPT
-A FORWARD -p udp -m udp --sport 7001 -j ACCEPT
-A FORWARD -p tcp -m tcp --dport 7003 -j REJECT --reject-with tcp-reset
-A FORWARD -p udp -m udp --dport 7003 -j REJECT --reject-with icmp6-port-unreachable
COMMIT
`;

describe('flatwall run between two namespaces', { skip, timeout: 90_000 }, () => {
  let lab: E2eLab;
  before(async () => {
    lab = await E2eLab.start({ rules: { 'v4.rules': V4, 'v6.rules': V6 }, echoPorts: [7001, 7002, 7003] });
    const { receiver: R } = lab.topo;
    await lab.sh(R, 'ip', ['addr', 'add', '10.0.0.3/24', 'dev', 'ra']);
    // Deprecated (preferred_lft 0), so that replies from the echo server never pick it as their source.
    await lab.sh(R, 'ip', ['addr', 'add', 'fd00::3/64', 'dev', 'ra', 'nodad', 'preferred_lft', '0']);
  });
  after(async () => {
    await lab?.close();
  });

  for (const [fam, dst] of [['IPv4', '10.0.0.2'], ['IPv6', 'fd00::2']] as const) {
    test(`${fam}: allowed TCP, UDP and ICMP flows pass end to end`, async () => {
      const t = await lab.probe('tcp', dst, 7001);
      assert.equal(t.result, 'ok', `TCP ${dst}:7001 ${t.result}\n${await lab.diag()}`);
      const u = await lab.probe('udp', dst, 7001);
      assert.equal(u.result, 'ok', `UDP ${dst}:7001 ${u.result}\n${await lab.diag()}`);
      const p = parsePing((await lab.sh(lab.topo.sender, 'ping', ['-q', '-c', '3', '-i', '0.1', '-W', '2', dst])).stdout);
      assert.equal(p.received, 3, `ping ${dst}`);
    });

    test(`${fam}: denied flows are dropped`, async () => {
      const denied = fam === 'IPv4' ? '10.0.0.3' : 'fd00::3';
      // No rule for 7002: the FORWARD policy (DROP) applies; the server listens, so a reply would prove a leak.
      assert.equal((await lab.probe('tcp', dst, 7002, 800)).result, 'timeout');
      assert.equal((await lab.probe('udp', dst, 7002, 800)).result, 'timeout');
      // A dropped destination: ICMP and TCP to 7001 both dropped.
      const p = parsePing((await lab.sh(lab.topo.sender, 'ping', ['-q', '-c', '2', '-i', '0.2', '-W', '1', denied])).stdout);
      assert.equal(p.received, 0, `ping ${denied} must not be answered`);
      assert.equal((await lab.probe('tcp', denied, 7001, 800)).result, 'timeout');
    });

    test(`${fam}: REJECT answers with a TCP RST (connection refused) and ICMP port unreachable`, async () => {
      // The server listens on 7003 too, so "refused" can only come from the firewall.
      const t = await lab.probe('tcp', dst, 7003, 3000);
      assert.equal(t.result, 'refused');
      assert.ok(t.ms < 1000, `RST took ${t.ms} ms`);
      const u = await lab.probe('udp', dst, 7003, 3000);
      assert.equal(u.result, 'refused', 'ICMP port unreachable reported as ECONNREFUSED on the connected UDP socket');
    });
  }

  // NDP is judged by the rules as in the kernel: `-p ipv6-icmp -j ACCEPT` lets it pass.
  test('ARP and NDP resolution work through the bridge', async () => {
    const { sender: S, receiver: R } = lab.topo;
    const mac = lab.topo.mac(R, 'ra');
    await lab.sh(S, 'ip', ['neigh', 'flush', 'dev', 'sa']);
    await lab.sh(S, 'ip', ['-6', 'neigh', 'flush', 'dev', 'sa']);
    assert.equal(parsePing((await lab.sh(S, 'ping', ['-q', '-c', '1', '-W', '2', '10.0.0.2'])).stdout).received, 1);
    assert.equal(parsePing((await lab.sh(S, 'ping', ['-q', '-c', '1', '-W', '2', 'fd00::2'])).stdout).received, 1);
    const n4 = (await lab.sh(S, 'ip', ['neigh', 'show', '10.0.0.2', 'dev', 'sa'])).stdout;
    const n6 = (await lab.sh(S, 'ip', ['-6', 'neigh', 'show', 'fd00::2', 'dev', 'sa'])).stdout;
    assert.match(n4, new RegExp(`lladdr ${mac}`), `ARP entry: ${n4}`);
    assert.match(n6, new RegExp(`lladdr ${mac}`), `NDP entry: ${n6}`);
  });

  test('a GSO-sized TCP stream is carried intact (iperf3 1 s, then 48 MB with a sha256 check)', async () => {
    const { sender: S, receiver: R } = lab.topo;
    const tso = (await lab.sh(S, 'ethtool', ['-k', 'sa'])).stdout;
    if (tso) assert.match(tso, /tcp-segmentation-offload: on/, 'the sender hands GSO frames to the veth');
    const r = await iperf(lab.topo, { seconds: 1, port: 5201 });
    assert.ifError(r.error);
    assert.ok((r.bps ?? 0) > 100e6, `iperf3 TCP through the bridge: ${r.bps} b/s`);
    // A byte-exact transfer to a sha256 sink on 5201 (the iperf3 server is gone).
    const sink = lab.topo.adopt(new Background('sink', process.execPath, [NETTOOL, 'sink', '5201'], { ns: R, maxLifetimeMs: 60_000 }));
    await sink.waitFor((l) => l.includes('"listening"'), 10_000);
    const b = await lab.sh(S, process.execPath, [NETTOOL, 'blast', '10.0.0.2', '5201', String(48 << 20)], 60_000);
    const res = JSON.parse(b.stdout.trim());
    assert.equal(res.intact, true, `transfer: ${b.stdout} ${b.stderr}`);
    await sink.stop();
  });

  test('the final counters show no ring or offload drops', async () => {
    const c = await lab.stopFirewall();
    assert.ok(c, 'stopped line');
    const drops = c!.drops as Record<string, number>;
    for (const k of ['bad_vnet_hdr', 'rx_truncated', 'tx_error', 'no_ruleset']) assert.equal(drops[k] ?? 0, 0, `${k}: ${JSON.stringify(drops)}`);
    assert.ok(c!.verdicts.accept > 1000, 'accepted packets counted');
    assert.ok(c!.verdicts.reject >= 4, `rejects counted: ${JSON.stringify(c!.verdicts)}`);
  });
});
