// End to end through `flatwall run --host` (host mode, native/dataplane/host.h)
// between two namespaces: the receiver's addresses (10.0.0.2/24, fd00::2/64)
// are "the host", so frames to them go through the INPUT rules (-i: the port
// they came in on), frames from them through OUTPUT (-o: the port they leave
// by), and frames to the receiver's second address (10.0.0.3, fd00::3, not
// given to --host) through FORWARD. Per-rule and per-chain counters of
// INPUT and OUTPUT count the real traffic (ctl list), LOG in INPUT has no
// output interface, -m addrtype LOCAL knows the host's addresses, and the
// metrics count frames per hook. NDP is judged by the rules (the kernel's
// default): the ICMP rules of each chain let it through.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { E2eLab, NETTOOL, V6_HEADER, e2eUnavailable, parseJson } from './harness';
import { Background, run } from '../../src/lab/proc';
import { FLATWALL_CLI } from '../../src/lab/engines';
import { apiCall } from '../../src/cli/ctl';
import { parsePing } from '../../src/lab/traffic';

const skip = e2eUnavailable();

// fa: the sender's side, fb: the receiver's (the host's) side.
//   7001  allowed to the host from fa (INPUT -i fa), and forwarded to .3
//   7002  allowed only "-i fb" in INPUT: never (frames to the host come in on fa)
//   7003  "-o fb" in a chain called from INPUT: never (INPUT has no output interface)
//   7004  "! -o fb" there: always
//   7005  the host's own connections to the sender: OUTPUT -o fa
//   7006  OUTPUT "-o fb": never (frames from the host leave by fa)
//   7007  UDP to the host with -m addrtype --dst-type LOCAL
//   7008  counted exactly: INPUT -i fa dpt:7008, OUTPUT -o fa spt:7008 (before the state rules)
function rules(v6: boolean): string {
  const icmp = v6 ? 'ipv6-icmp' : 'icmp';
  const head = v6 ? V6_HEADER.replace(':INPUT ACCEPT', ':INPUT DROP').replace(':OUTPUT ACCEPT', ':OUTPUT DROP')
    : '*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT DROP [0:0]\n';
  return `${head}:CHK - [0:0]
-A INPUT -i fa -p udp -m udp --dport 7008 -j ACCEPT
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p ${icmp} -j ACCEPT
-A INPUT -i fa -p tcp -m tcp --dport 7001 -j ACCEPT
-A INPUT -i fb -p tcp -m tcp --dport 7002 -j ACCEPT
-A INPUT -p udp -m udp --dport 7002 -j LOG --log-prefix "in7002 "
-A INPUT -p udp -m udp --dport 7007 -m addrtype --dst-type LOCAL -j ACCEPT
-A INPUT -j CHK
-A CHK -o fb -p tcp -m tcp --dport 7003 -j ACCEPT
-A CHK ! -o fb -p tcp -m tcp --dport 7004 -j ACCEPT
-A OUTPUT -o fa -p udp -m udp --sport 7008 -j ACCEPT
-A OUTPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A OUTPUT -p ${icmp} -j ACCEPT
-A OUTPUT -o fa -p tcp -m tcp --dport 7005 -j ACCEPT
-A OUTPUT -o fb -p tcp -m tcp --dport 7006 -j ACCEPT
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -p ${icmp} -j ACCEPT
-A FORWARD -i fa -o fb -p tcp -m tcp --dport 7001 -j ACCEPT
COMMIT
`;
}

describe('flatwall run --host: INPUT, OUTPUT and FORWARD by the host\'s addresses', { skip, timeout: 120_000 }, () => {
  let lab: E2eLab;
  const api = (method: string, path: string) => apiCall({ socket: lab.apiSocket }, method, path);
  const ctl = (...args: string[]) => run(process.execPath, [FLATWALL_CLI, 'ctl', '--socket', lab.apiSocket, ...args], { timeoutMs: 30_000, allowFail: true });
  /** A probe from the receiver (the host) to the sender. */
  const probeFromHost = async (kind: 'tcp' | 'udp', host: string, port: number, ms = 1500) => {
    const r = await run(process.execPath, [NETTOOL, `${kind}-probe`, host, String(port), String(ms)], { ns: lab.topo.receiver, timeoutMs: ms + 10_000 });
    return JSON.parse(r.stdout.trim()) as { result: string };
  };

  before(async () => {
    lab = await E2eLab.start({
      rules: { 'v4.rules': rules(false), 'v6.rules': rules(true) },
      echoPorts: [7001, 7002, 7003, 7004, 7007, 7008],
      fwArgs: ['--host', '10.0.0.2/24,fd00::2/64'],
    });
    const { sender: S, receiver: R } = lab.topo;
    await lab.sh(R, 'ip', ['addr', 'add', '10.0.0.3/24', 'dev', 'ra']);
    await lab.sh(R, 'ip', ['addr', 'add', 'fd00::3/64', 'dev', 'ra', 'nodad', 'preferred_lft', '0']);
    for (const p of [7005, 7006]) {
      const s = lab.topo.adopt(new Background(`echo S ${p}`, process.execPath, [NETTOOL, 'server', String(p)], { ns: S, maxLifetimeMs: 120_000 }));
      await s.waitFor((l) => l.includes('"listening"'), 10_000, 'echo server');
    }
  });
  after(async () => {
    await lab?.close();
  });

  test('the ready line names the host addresses', () => {
    const ready = lab.fw.lines.map(parseJson).find((j) => j?.msg === 'ready');
    assert.deepEqual(ready?.host, ['10.0.0.2/24', 'fd00::2/64']);
  });

  for (const [fam, host, fwd, sender] of [['IPv4', '10.0.0.2', '10.0.0.3', '10.0.0.1'], ['IPv6', 'fd00::2', 'fd00::3', 'fd00::1']] as const) {
    test(`${fam}: INPUT decides frames to the host, with -i the ingress port and no output interface`, async () => {
      const ok = await lab.probe('tcp', host, 7001);
      assert.equal(ok.result, 'ok', `TCP ${host}:7001\n${await lab.diag()}`);
      assert.equal((await lab.probe('tcp', host, 7002, 800)).result, 'timeout', '-i fb never holds in INPUT: the policy drops');
      assert.equal((await lab.probe('tcp', host, 7003, 800)).result, 'timeout', '-o fb never holds in INPUT');
      assert.equal((await lab.probe('tcp', host, 7004)).result, 'ok', '! -o fb always holds in INPUT');
      assert.equal((await lab.probe('udp', host, 7007)).result, 'ok', 'addrtype LOCAL is the host\'s address');
      // ICMP echo through INPUT and OUTPUT (IPv4 only: the ping of some
      // machines, GNU inetutils', has no IPv6).
      if (fam === 'IPv4') {
        const p = parsePing((await lab.sh(lab.topo.sender, 'ping', ['-q', '-c', '2', '-i', '0.2', '-W', '2', host])).stdout);
        assert.equal(p.received, 2, `ping ${host}`);
      }
    });

    test(`${fam}: OUTPUT decides the host's own connections, with -o the egress port`, async () => {
      assert.equal((await probeFromHost('tcp', sender, 7005)).result, 'ok', `TCP from the host to ${sender}:7005\n${await lab.diag()}`);
      assert.equal((await probeFromHost('tcp', sender, 7006, 800)).result, 'timeout', '-o fb never holds for frames leaving by fa');
    });

    test(`${fam}: frames to another address are FORWARD's`, async () => {
      assert.equal((await lab.probe('tcp', fwd, 7001)).result, 'ok', `TCP ${fwd}:7001 forwarded\n${await lab.diag()}`);
      // 7004 is allowed in INPUT only: FORWARD's policy drops it.
      assert.equal((await lab.probe('tcp', fwd, 7004, 800)).result, 'timeout');
      assert.equal((await lab.probe('udp', fwd, 7007, 800)).result, 'timeout', 'addrtype LOCAL is not another address');
    });
  }

  test('INPUT and OUTPUT counters count the real traffic (ctl list), LOG in INPUT has no OUT, metrics per hook', async () => {
    const N = 500;
    const size = 64;
    const b = JSON.parse((await lab.sh(lab.topo.sender, process.execPath, [NETTOOL, 'udp-burst', '10.0.0.2', '7008', String(N), String(size)], 60_000)).stdout);
    assert.equal(b.replies, N, `burst: ${JSON.stringify(b)}`);
    const ipLen = 20 + 8 + size;
    const row = (out: string, match: string) => {
      const l = out.split('\n').find((x) => x.endsWith(match));
      assert.ok(l, `no rule "${match}" in\n${out}`);
      const [pkts, bytes] = l.trim().split(/\s+/);
      return { pkts: Number(pkts), bytes: Number(bytes) };
    };
    const input = await ctl('list', '-x', 'INPUT');
    assert.equal(input.code, 0, input.stderr);
    assert.deepEqual(row(input.stdout, 'udp dpt:7008'), { pkts: N, bytes: N * ipLen });
    const output = await ctl('list', '-x', 'OUTPUT');
    assert.deepEqual(row(output.stdout, 'udp spt:7008'), { pkts: N, bytes: N * ipLen });
    // The policies counted what the tests above had dropped (SYNs to 7002 / 7003, retransmitted).
    const policy = (out: string, chain: string) => Number(new RegExp(`Chain ${chain} \\(policy DROP (\\d+) packets`).exec(out)?.[1]);
    assert.ok(policy(input.stdout, 'INPUT') >= 2, input.stdout);
    assert.ok(policy(output.stdout, 'OUTPUT') >= 1, output.stdout);
    assert.ok(row(input.stdout, 'tcp dpt:7001').pkts >= 1);
    assert.equal(row(input.stdout, 'tcp dpt:7002').pkts, 0, '-i fb in INPUT never matched');
    assert.equal(row(output.stdout, 'tcp dpt:7006').pkts, 0, '-o fb in OUTPUT never matched');
    const chk = await ctl('list', '-x', 'CHK');
    assert.equal(row(chk.stdout, 'tcp dpt:7003').pkts, 0, '-o fb in a chain called from INPUT never matched');
    assert.ok(row(chk.stdout, 'tcp dpt:7004').pkts >= 1, 'the IPv4 SYN to 7004 (the rest of its connection is ESTABLISHED)');

    // LOG: IN= the ingress port, OUT= none.
    await lab.probe('udp', '10.0.0.2', 7002, 500);
    let logged: Record<string, any> | undefined;
    for (let i = 0; i < 20 && !logged; i++) {
      await new Promise((r) => setTimeout(r, 100));
      logged = lab.fw.lines.map(parseJson).find((j) => j?.msg === 'packet' && j.prefix === 'in7002 ');
    }
    assert.ok(logged, 'LOG event');
    assert.equal(logged!.in, 'fa');
    assert.equal(logged!.out, '');
    assert.equal(logged!.chain, 'INPUT');

    const m = (await api('GET', '/metrics')).body;
    const sample = (hook: string) => Number(new RegExp(`^flatwall_hook_packets_total\\{hook="${hook}"\\} (\\d+)$`, 'm').exec(m)?.[1]);
    assert.ok(sample('INPUT') >= N, m);
    assert.ok(sample('OUTPUT') >= N);
    assert.ok(sample('FORWARD') >= 4);
    const stats = (await api('GET', '/stats')).json!;
    assert.equal(stats.hooks.INPUT.frames, sample('INPUT'));
  });
});
