// Per-rule counters against the traffic actually sent, and malformed frames
// injected with a raw AF_PACKET socket: counted under their reason, dropped,
// and the dataplane keeps forwarding. The Firewall class runs in its own
// process inside the Firewall namespace (src/lab/fwhost.ts), which answers
// "counters" on stdin with the per-rule packet and byte counts.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { E2eLab, NETTOOL, V4_HEADER, e2eUnavailable } from './harness';
import { parsePing } from '../../src/lab/traffic';
import { sniff } from './frame-lab';

const skip = e2eUnavailable(['python3']);

const RULES = `${V4_HEADER}-A FORWARD -p udp -m udp --dport 7101 -j ACCEPT
-A FORWARD -p udp -m udp --sport 7101 -j ACCEPT
-A FORWARD -p udp -m udp --dport 7102 -j DROP
-A FORWARD -p icmp -m icmp --icmp-type 8 -j ACCEPT
-A FORWARD -p icmp -m icmp --icmp-type 0 -j ACCEPT
-A FORWARD -p tcp -j ACCEPT
COMMIT
`;
// Line numbers of the rules above in the file (the header is 4 lines).
const L = { udpOut: 5, udpBack: 6, udpDrop: 7, echoReq: 8, echoRep: 9 };

// Malformed frames, each sent 3 times from the sender's veth with a raw
// AF_PACKET socket (python3, no scapy): the reason the dataplane must count.
const INJECT = String.raw`
import socket, struct, sys
dst = bytes.fromhex(sys.argv[1].replace(':', '')); src = bytes.fromhex(sys.argv[2].replace(':', ''))
def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
def ip4(proto, payload, ihl=5, ver=4, tot=None, bad=False):
    h = bytearray(struct.pack('!BBHHHBBH4s4s', (ver << 4) | ihl, 0, 20 + len(payload) if tot is None else tot, 1, 0, 64, proto, 0,
                              bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])))
    c = csum(bytes(h)); h[10:12] = struct.pack('!H', c ^ 0x5a5a if bad else c)
    return bytes(h) + payload
def ip6(nxt, payload, plen=None):
    a = bytes.fromhex('fd000000000000000000000000000001'); b = bytes.fromhex('fd000000000000000000000000000002')
    return struct.pack('!IHBB', 6 << 28, len(payload) if plen is None else plen, nxt, 64) + a + b + payload
eth = lambda t, p: dst + src + struct.pack('!H', t) + p
udp = struct.pack('!HHHH', 40000, 7101, 16, 0) + b'malformd'
tcp_bad_doff = struct.pack('!HHIIBBHHH', 40000, 7101, 1, 0, 3 << 4, 0x02, 1024, 0, 0)
frames = {
    'ip4_bad_ihl': eth(0x0800, ip4(17, udp, ihl=4)),
    'ip4_bad_checksum': eth(0x0800, ip4(17, udp, bad=True)),
    'ip4_bad_total_len': eth(0x0800, ip4(17, udp, tot=1400)),
    'ip4_bad_version': eth(0x0800, ip4(17, udp, ver=7)),
    'tcp_bad_doff': eth(0x0800, ip4(6, tcp_bad_doff)),
    'l4_truncated': eth(0x0800, ip4(17, b'\x9c\x40\x1b')),
    'ip6_bad_payload_len': eth(0x86dd, ip6(17, udp, plen=1400)),
}
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(('sa', 0))
for _ in range(3):
    for f in frames.values(): s.send(f)
print(' '.join(frames))
`;

describe('per-rule counters and malformed frames', { skip, timeout: 60_000 }, () => {
  let lab: E2eLab;
  before(async () => {
    lab = await E2eLab.start({ rules: { 'counted.rules': RULES }, fwhost: true, echoPorts: [7101, 7102] });
  });
  after(async () => {
    await lab?.close();
  });

  test('per-rule packet and byte counters match the traffic sent', async () => {
    const { sender: S } = lab.topo;
    const before = await lab.counters();
    const N = 200;
    const M = 50;
    const K = 20;
    const size = 100;
    const a = JSON.parse((await lab.sh(S, process.execPath, [NETTOOL, 'udp-burst', '10.0.0.2', '7101', String(N), String(size)])).stdout);
    const b = JSON.parse((await lab.sh(S, process.execPath, [NETTOOL, 'udp-burst', '10.0.0.2', '7102', String(M), String(size)])).stdout);
    const p = parsePing((await lab.sh(S, 'ping', ['-q', '-c', String(K), '-i', '0.01', '-s', '56', '-W', '2', '10.0.0.2'])).stdout);
    assert.equal(a.sent, N);
    assert.equal(a.replies, N, 'every allowed datagram echoed');
    assert.equal(b.replies, 0, 'every dropped datagram dropped');
    assert.equal(p.received, K);
    const after = await lab.counters();
    const delta = (line: number) => {
      const x = after.rules.find((r) => r.line === line)!;
      const y = before.rules.find((r) => r.line === line)!;
      return { packets: x.packets - y.packets, bytes: x.bytes - y.bytes };
    };
    const ipLen = 20 + 8 + size; // the counters count IP bytes, like iptables
    assert.deepEqual(delta(L.udpOut), { packets: N, bytes: N * ipLen });
    assert.deepEqual(delta(L.udpBack), { packets: N, bytes: N * ipLen });
    assert.deepEqual(delta(L.udpDrop), { packets: M, bytes: M * ipLen });
    assert.deepEqual(delta(L.echoReq), { packets: K, bytes: K * 84 });
    assert.deepEqual(delta(L.echoRep), { packets: K, bytes: K * 84 });
  });

  test('malformed frames are counted under their reason and dropped; the dataplane keeps running', async () => {
    const { sender: S, receiver: R } = lab.topo;
    const before = (await lab.counters()).counters;
    const cap = await sniff(R, 'ra');
    const r = await lab.sh(S, 'python3', ['-c', INJECT, lab.topo.mac(R, 'ra'), lab.topo.mac(S, 'sa')]);
    assert.equal(r.code, 0, r.stderr);
    const reasons = r.stdout.trim().split(' ');
    assert.equal(reasons.length, 7);
    await new Promise((res) => setTimeout(res, 300));
    const after = (await lab.counters()).counters;
    for (const reason of reasons) {
      assert.equal(after.dropsByReason[reason] - before.dropsByReason[reason], 3, `${reason}: ${JSON.stringify(after.dropsByReason)}`);
    }
    // None of them reached the receiver (what else the hosts send meanwhile,
    // neighbour discovery say, may pass: only the injected frames are looked for).
    const injected = (await cap.stop()).filter((f) => f.includes(Buffer.from('malformd')) || f.includes(Buffer.from([0x9c, 0x40, 0x1b])));
    assert.equal(injected.length, 0, 'nothing injected was forwarded to the receiver');
    // Still forwarding.
    assert.equal(parsePing((await lab.sh(S, 'ping', ['-q', '-c', '3', '-i', '0.05', '-W', '2', '10.0.0.2'])).stdout).received, 3);
    assert.equal((await lab.probe('udp', '10.0.0.2', 7101)).result, 'ok');
    assert.ok(lab.fw.running, 'the firewall process is still running');
  });
});
