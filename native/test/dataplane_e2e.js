'use strict';
// End-to-end test of the dataplane through real kernel interfaces. Run by
// dataplane_e2e.sh inside the firewall's network namespace, which sets up:
//   netns $S (sender, 10.9.0.1 fd00:9::1) --veth-- [$FA | fw | $FB] --veth or TAP-- netns $R (receiver, .2)
// Environment: S, R (namespace names), FA, FB (fw ports), KIND_B ('afpacket'|'tap'),
// WORKERS, IPERF_SECONDS, FLATWALL_ADDON (path to the .node file).
// Prints one JSON line per measurement and "N passed, N failed" at the end.

const { execSync, spawn } = require('child_process');
const path = require('path');
const { pack, REJECT_WITH } = require('./dataplane_rules');

const addonPath = process.env.FLATWALL_ADDON ||
  path.join(__dirname, '..', '..', 'build', 'Release', 'flatwall_native.node');
const native = require(addonPath);
const { S, R, FA, FB } = process.env;
const KIND_B = process.env.KIND_B || 'afpacket';
const WORKERS = Number(process.env.WORKERS || 1);
const IPERF_SECONDS = Number(process.env.IPERF_SECONDS || 5);

let passed = 0, failed = 0;
function check(name, ok, detail) {
  if (ok) passed++; else failed++;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${detail !== undefined ? ' ' + JSON.stringify(detail) : ''}`);
}
function sh(cmd, opts = {}) {
  try {
    return { ok: true, out: execSync(cmd, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts }) };
  } catch (e) {
    return { ok: false, out: (e.stdout || '') + (e.stderr || ''), status: e.status };
  }
}
const inS = (c) => `ip netns exec ${S} ${c}`;
const inR = (c) => `ip netns exec ${R} ${c}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const RULE = {
  v4: [
    { id: 0, action: 'REJECT', arg: REJECT_WITH['tcp-reset'], proto: [6, 6], dport: [9999, 9999] },
    { id: 1, action: 'REJECT', arg: REJECT_WITH['icmp-port-unreachable'], proto: [17, 17], dport: [9998, 9998] },
    { id: 2, action: 'LOG', proto: [1, 1] },
    { id: 3, action: 'DROP', proto: [6, 6], dport: [9997, 9997] },
    { id: 4, action: 'ACCEPT' },
  ],
  v6: [
    { id: 5, action: 'REJECT', arg: REJECT_WITH['tcp-reset'], proto: [6, 6], dport: [9999, 9999] },
    { id: 6, action: 'REJECT', arg: REJECT_WITH['icmp6-adm-prohibited'], proto: [17, 17], dport: [9998, 9998] },
    { id: 7, action: 'ACCEPT' },
  ],
};

function pingMs(target, v6) {
  const r = sh(inS(`ping ${v6 ? '-6 ' : ''}-c 20 -i 0.05 -W 1 ${target}`));
  const m = /= [\d.]+\/([\d.]+)\//.exec(r.out);
  return { ok: r.ok, avg: m ? Number(m[1]) : null };
}

function iperf(target, extra = '') {
  const srv = spawn('ip', ['netns', 'exec', R, 'iperf3', '-s', '-1', '-p', '5201'], { stdio: 'ignore' });
  execSync('sleep 0.5');
  const r = sh(inS(`iperf3 -c ${target} -p 5201 -t ${IPERF_SECONDS} -J ${extra}`), { timeout: (IPERF_SECONDS + 20) * 1000 });
  srv.kill();
  try {
    const j = JSON.parse(r.out);
    const end = j.end.sum_received || j.end.sum;
    return { ok: true, gbps: end.bits_per_second / 1e9, retransmits: (j.end.sum_sent || {}).retransmits };
  } catch {
    return { ok: false, out: r.out.slice(0, 400) };
  }
}

async function main() {
  const ports = [
    { name: FA, kind: 'afpacket', ifaceClassId: 1 },
    { name: FB, kind: KIND_B, ifaceClassId: 2 },
  ];
  const dp = new native.Dataplane({ ports, workers: WORKERS, nonIpPolicy: 'accept', logRatePerSec: 50,
                                    txMode: process.env.TXMODE || 'ring' });
  const buf = pack(native.layout, RULE);

  // IP before any ruleset: fail closed.
  dp.start();
  if (KIND_B === 'tap') {
    // The TAP device was created in this namespace: hand it to the receiver.
    execSync(`ip link set ${FB} netns ${R}`);
    execSync(inR(`ip addr add 10.9.0.2/24 dev ${FB}`));
    execSync(inR(`ip -6 addr add fd00:9::2/64 dev ${FB} nodad`));
    execSync(inR(`ip link set ${FB} up`));
    await sleep(300);
  }
  const before = pingMs('10.9.0.2');
  check('no ruleset: IPv4 is dropped', !before.ok);
  let c = dp.counters();
  check('no ruleset: counted as no_ruleset', c.dropsByReason.no_ruleset > 0, c.dropsByReason.no_ruleset);

  const g1 = await dp.setRules(buf, [1, 2], 8);
  check('setRules resolves a generation', g1.generation === 1, g1);

  const p4 = pingMs('10.9.0.2');
  check('IPv4 ping through the bridge', p4.ok, p4);
  const p6 = pingMs('fd00:9::2', true);
  check('IPv6 ping (and NDP) through the bridge', p6.ok, p6);

  const logs = dp.pollLogs();
  check('LOG events for ICMP, rate limited', logs.length > 0 && logs[0].ruleId === 2 && logs[0].family === 4 &&
        logs[0].src === '10.9.0.1' && logs[0].iif === FA && logs[0].oif === FB, logs[0]);

  // REJECT with TCP RST: the connection is refused at once.
  let t0 = Date.now();
  let r = sh(inS(`timeout 3 bash -c 'echo > /dev/tcp/10.9.0.2/9999'`));
  check('REJECT tcp-reset refuses the connection (IPv4)', !r.ok && /refused/i.test(r.out) && Date.now() - t0 < 2000, r.out.trim());
  r = sh(inS(`timeout 3 bash -c 'echo > /dev/tcp/fd00:9::2/9999'`));
  check('REJECT tcp-reset refuses the connection (IPv6)', !r.ok && /refused/i.test(r.out), r.out.trim());
  // REJECT with ICMP port unreachable: a connected UDP socket sees ECONNREFUSED.
  const udpProbe = (host, fam) => sh(inS(`python3 -c "
import socket
s=socket.socket(socket.${fam},socket.SOCK_DGRAM); s.settimeout(2); s.connect(('${host}',9998))
s.send(b'x')
try:
    s.recv(10); print('reply')
except ConnectionRefusedError: print('refused')
except PermissionError: print('prohibited')
except socket.timeout: print('timeout')
"`));
  r = udpProbe('10.9.0.2', 'AF_INET');
  check('REJECT icmp-port-unreachable (IPv4 UDP)', r.out.trim() === 'refused', r.out.trim());
  r = udpProbe('fd00:9::2', 'AF_INET6');
  // Linux maps ICMPv6 administratively-prohibited to EACCES.
  check('REJECT icmp6-adm-prohibited (IPv6 UDP)', r.out.trim() === 'prohibited', r.out.trim());
  // DROP: the connection times out.
  t0 = Date.now();
  r = sh(inS(`timeout 2 bash -c 'echo > /dev/tcp/10.9.0.2/9997'`));
  check('DROP: connection times out', !r.ok && Date.now() - t0 >= 1900, r.status);

  // TCP throughput through the bridge (GSO super-packets via vnet headers).
  const c0 = dp.counters();
  const tcp = iperf('10.9.0.2');
  const c1 = dp.counters();
  check('iperf3 TCP through the bridge', tcp.ok && tcp.gbps > 0.1, tcp);
  console.log(JSON.stringify({ measure: 'bridge_tcp', kind_b: KIND_B, workers: WORKERS, ...tcp }));
  const tcp6 = iperf('fd00:9::2');
  check('iperf3 TCP over IPv6 through the bridge', tcp6.ok && tcp6.gbps > 0.1, tcp6);
  console.log(JSON.stringify({ measure: 'bridge_tcp6', kind_b: KIND_B, workers: WORKERS, ...tcp6 }));
  console.log(JSON.stringify({ measure: 'bridge_ping_ms', v4: p4.avg, v6: p6.avg }));

  // Symmetric steering: during the single-flow IPv4 iperf run, the worker
  // that received the data (port A) also received the ACKs (port B).
  if (WORKERS > 1) {
    const delta = (p) => c1.ports[p].rxPerWorker.map((v, w) => v - c0.ports[p].rxPerWorker[w]);
    const dA = delta(0), dB = delta(1);
    const argmax = (a) => a.indexOf(Math.max(...a));
    const share = (a) => Math.max(...a) / a.reduce((x, y) => x + y, 0);
    console.log(JSON.stringify({ rxPerWorkerDuringIperf: { [FA]: dA, [FB]: dB } }));
    check('symmetric fanout: both directions of the flow on one worker',
          argmax(dA) === argmax(dB) && share(dA) > 0.95 && share(dB) > 0.95, { dA, dB });

    // Many flows: 64 UDP flows (distinct source ports), 3 datagrams each
    // way A->B, and the receiver answers each with 2 datagrams (B->A). If
    // every flow's two directions meet on one worker, each worker received
    // on port B exactly twice what it received on port A.
    const echo = spawn('ip', ['netns', 'exec', R, 'python3', '-c', `
import socket
s=socket.socket(); s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 7000)); s.settimeout(8)
try:
    while True:
        d,a=s.recvfrom(100); s.sendto(d,a); s.sendto(d,a)
except socket.timeout: pass`], { stdio: 'ignore' });
    await sleep(500);
    const u0 = dp.counters();
    sh(inS(`python3 -c "
import socket,time
socks=[]
for i in range(64):
    s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('10.9.0.1', 40000+i)); socks.append(s)
for r in range(3):
    for s in socks: s.sendto(b'x', ('10.9.0.2', 7000))
    time.sleep(0.05)
time.sleep(0.5)
"`));
    const u1 = dp.counters();
    echo.kill();
    const ua = u1.ports[0].rxPerWorker.map((v, w) => v - u0.ports[0].rxPerWorker[w]);
    const ub = u1.ports[1].rxPerWorker.map((v, w) => v - u0.ports[1].rxPerWorker[w]);
    check('symmetric fanout over 64 flows: per worker, B->A = 2 x A->B',
          ua.reduce((x, y) => x + y, 0) >= 192 && ua.every((a, w) => Math.abs(ub[w] - 2 * a) <= 2) &&
          ua.filter((a) => a > 0).length > 1, { ua, ub });
  }

  // Ruleset swap under load: swap every 50 ms during an iperf run.
  const srv = spawn('ip', ['netns', 'exec', R, 'iperf3', '-s', '-1', '-p', '5202'], { stdio: 'ignore' });
  await sleep(500);
  const cli = spawn('ip', ['netns', 'exec', S, 'iperf3', '-c', '10.9.0.2', '-p', '5202', '-t', '3', '-J'], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  cli.stdout.on('data', (d) => { out += d; });
  const done = new Promise((res) => cli.on('exit', res));
  let swaps = 0, last = g1.generation;
  let finished = false;
  done.then(() => { finished = true; });
  while (!finished) {
    const g = await dp.setRules(buf, [1, 2], 8);
    if (g.generation !== last + 1) break;
    last = g.generation;
    swaps++;
    await sleep(50);
  }
  await done;
  srv.kill();
  let swapGbps = 0;
  try { swapGbps = JSON.parse(out).end.sum_received.bits_per_second / 1e9; } catch { /* */ }
  check('ruleset swaps under load, traffic keeps flowing', swaps > 10 && swapGbps > 0.1, { swaps, swapGbps });

  // Counters.
  c = dp.counters();
  const rp = c.rules.packets;
  check('per-rule counters (generation scoped)', c.generation === last && rp instanceof BigUint64Array && rp.length === 8, { generation: c.generation });
  check('port counters', c.ports[0].rxPackets > 0 && c.ports[1].txPackets > 0, c.ports);
  check('verdict counters', c.verdicts.accept > 0 && c.verdicts.reject >= 4 && c.verdicts.drop > 0, c.verdicts);
  console.log(JSON.stringify({ dropsByReason: Object.fromEntries(Object.entries(c.dropsByReason).filter(([, v]) => v)) }));

  // Bad buffers are refused and the running generation stays.
  let err = null;
  try { await dp.setRules(new ArrayBuffer(8), [1, 2], 8); } catch (e) { err = e; }
  check('setRules rejects a malformed buffer', err && /ruleset/.test(err.message), err && err.message);
  err = null;
  try { await dp.setRules(buf, [1, 2], 3); } catch (e) { err = e; }
  check('setRules rejects rule ids >= ruleCount', err && /rule_id/.test(err.message), err && err.message);
  check('generation unchanged after refused swaps', dp.counters().generation === last);

  await dp.stop();
  check('stop resolves', true);
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(2);
});
