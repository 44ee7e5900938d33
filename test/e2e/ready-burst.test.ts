// Issue 12: "a burst of 1000 frames sent right after the ready line lost
// ~120 frames once in four runs: can ready come before the ports forward?"
//
// What this asserts, in every run (no timing): when `flatwall run` prints
// "ready", its AF_PACKET sockets are bound (/proc/net/packet) and every
// worker is inside its polling loop (workersRunning in the ready line,
// which Dataplane::Start now waits for); and every frame of a 1000-datagram
// burst sent the moment the line appears is accounted for: the frames the
// kernel received on the input port equal the frames flatwall read plus
// those the kernel dropped because the RX ring was full (kernelDrops), every
// frame read was judged by the UDP rule and forwarded, and every datagram
// forwarded reached the receiver's UDP layer (read, or counted in its
// RcvbufErrors). Runs alternate 1 and 2 workers and a cold and a warm ARP
// cache. The loss itself is printed, not asserted: it is RX ring overflow
// (a 270-frame ring fills in < 0.5 ms at the ~600 kpps a tight sendto loop
// reaches, before a worker that shares 2 vCPUs with sender and receiver
// drains it), the same after any idle period as right after ready; see
// docs/ARCHITECTURE.md, "A burst after ready". READY_BURST_RUNS=N for more runs.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Topology, installTeardown } from '../../src/lab/topology';
import { Background, runSync, sleep } from '../../src/lab/proc';
import { FLATWALL_CLI } from '../../src/lab/engines';
import { apiCall } from '../../src/cli/ctl';
import { V4_HEADER, e2eUnavailable, parseJson } from './harness';

const skip = e2eUnavailable(['python3', 'sysctl']);
const RUNS = Number(process.env.READY_BURST_RUNS ?? 8);
const BURST = 1000;
const PORT = 7301;

// The sender waits for "go N" on stdin, then sends N datagrams in a tight loop.
const SENDER_PY = String.raw`
import socket, sys, json, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
print(json.dumps({'waiting': 1}), flush=True)
for line in sys.stdin:
    n = int(line.split()[1]); err = 0; t0 = time.perf_counter()
    for i in range(n):
        try: s.sendto(i.to_bytes(4, 'big') + b'x' * 60, (sys.argv[1], int(sys.argv[2])))
        except OSError: err += 1
    print(json.dumps({'sent': n - err, 'errors': err, 'us': int((time.perf_counter() - t0) * 1e6)}), flush=True)
`;
// The receiver counts datagrams; "count" prints the count since the last one.
// A 16 MB receive buffer (SO_RCVBUFFORCE) so that it does not drop a burst.
const RECEIVER_PY = String.raw`
import socket, sys, json, select
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)
s.bind(('0.0.0.0', int(sys.argv[1])))
print(json.dumps({'listening': 1}), flush=True)
n = 0
while True:
    r, _, _ = select.select([s, sys.stdin], [], [])
    if s in r:
        s.recv(2048); n += 1
    if sys.stdin in r:
        if not sys.stdin.readline(): break
        print(json.dumps({'got': n}), flush=True); n = 0
`;

const RULES = `${V4_HEADER}-A FORWARD -p udp -m udp --dport ${PORT} -j ACCEPT\nCOMMIT\n`;

describe('ready means forwarding: a burst right after the ready line', { skip, timeout: 60_000 + RUNS * 20_000 }, () => {
  let topo: Topology;
  let dir: string;
  let snd: Background;
  let rcv: Background;

  const linkStats = (ns: string, dev: string) => {
    const j = JSON.parse(runSync('ip', ['-n', ns, '-s', '-j', 'link', 'show', dev], { timeoutMs: 10_000 }).stdout)[0];
    return { rx: Number(j.stats64.rx.packets), tx: Number(j.stats64.tx.packets), txDropped: Number(j.stats64.tx.dropped) };
  };
  const udp = (ns: string) => {
    const l = runSync('cat', ['/proc/net/snmp'], { ns, timeoutMs: 10_000 }).stdout.split('\n').filter((x) => x.startsWith('Udp:'));
    const h = l[0].split(/\s+/);
    const v = l[1].split(/\s+/).map(Number);
    return { in: v[h.indexOf('InDatagrams')], rcvbuf: v[h.indexOf('RcvbufErrors')] };
  };
  /** The F namespace's packet sockets: interface index -> [running flags]. */
  const packetSockets = () => {
    const m = new Map<number, number[]>();
    for (const l of runSync('cat', ['/proc/net/packet'], { ns: topo.firewall, timeoutMs: 10_000 }).stdout.trim().split('\n').slice(1)) {
      const f = l.trim().split(/\s+/);
      const ifindex = Number(f[4]);
      m.set(ifindex, [...(m.get(ifindex) ?? []), Number(f[5])]);
    }
    return m;
  };
  const ifindex = (dev: string) => Number(runSync('cat', [`/sys/class/net/${dev}/ifindex`], { ns: topo.firewall, timeoutMs: 10_000 }).stdout.trim());

  before(async () => {
    installTeardown(false);
    topo = Topology.create('bridge', 'fwrdy');
    dir = mkdtempSync(join(tmpdir(), 'flatwall-ready-'));
    writeFileSync(join(dir, 'r.rules'), RULES);
    // Quiet links: no IPv6 (router solicitations, MLD) and, in warm runs,
    // permanent neighbours, so that after the baseline nothing but the
    // burst (and in cold runs its ARP exchange) crosses the firewall.
    for (const ns of [topo.sender, topo.receiver]) runSync('sysctl', ['-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1'], { ns, timeoutMs: 10_000 });
    rcv = topo.adopt(new Background('udp receiver', 'python3', ['-c', RECEIVER_PY, String(PORT)], { ns: topo.receiver, stdin: true, maxLifetimeMs: 60_000 + RUNS * 20_000 }));
    await rcv.waitFor((l) => l.includes('listening'), 10_000, 'receiver');
    snd = topo.adopt(new Background('udp sender', 'python3', ['-c', SENDER_PY, topo.ep.receiverIp, String(PORT)], { ns: topo.sender, stdin: true, maxLifetimeMs: 60_000 + RUNS * 20_000 }));
    await snd.waitFor((l) => l.includes('waiting'), 10_000, 'sender');
  });
  after(async () => {
    await topo?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test(`${RUNS} starts, each with ${BURST} datagrams sent at the ready line: ports bound, workers polling, every frame accounted for`, async (t) => {
    const sMac = topo.mac(topo.sender, 'sa');
    const rMac = topo.mac(topo.receiver, 'ra');
    const faIndex = ifindex('fa');
    const fbIndex = ifindex('fb');
    const figures: Array<Record<string, unknown>> = [];
    for (let i = 0; i < RUNS; i++) {
      const workers = i % 2 === 0 ? 1 : 2;
      const coldArp = i % 4 >= 2;
      for (const [ns, ip, mac] of [[topo.sender, topo.ep.receiverIp, rMac], [topo.receiver, topo.ep.senderIp, sMac]]) {
        const dev = ns === topo.sender ? 'sa' : 'ra';
        // "nud all": a plain flush leaves permanent entries.
        runSync('ip', ['-n', ns, 'neigh', 'flush', 'dev', dev, 'nud', 'all'], { timeoutMs: 10_000 });
        if (!coldArp) runSync('ip', ['-n', ns, 'neigh', 'replace', ip, 'lladdr', mac, 'dev', dev, 'nud', 'permanent'], { timeoutMs: 10_000 });
      }
      const sock = join(dir, `api${i}.sock`);
      const fa0 = linkStats(topo.firewall, 'fa');
      const fb0 = linkStats(topo.firewall, 'fb');
      const r0 = udp(topo.receiver);
      const fw = topo.adopt(new Background('flatwall run', process.execPath,
        [FLATWALL_CLI, 'run', '--port', 'fa', '--port', 'fb', '-r', join(dir, 'r.rules'), '-w', String(workers), '--api-socket', sock],
        { ns: topo.firewall, maxLifetimeMs: 60_000 }));
      const ready = parseJson(await fw.waitFor((l) => parseJson(l)?.msg === 'ready', 30_000, 'ready line'))!;
      const from = snd.lines.length;
      snd.send(`go ${BURST}`);

      // Ready means: every worker polls, every port's sockets are bound.
      assert.equal(ready.workersRunning, workers, `run ${i}: the ready line says ${ready.workersRunning} of ${workers} workers poll`);
      const socks = packetSockets();
      for (const [dev, idx] of [['fa', faIndex], ['fb', fbIndex]] as const) {
        assert.deepEqual(socks.get(idx), Array(workers).fill(1), `run ${i}: ${dev} has ${workers} bound (running) packet sockets at ready`);
      }

      const sent = parseJson(await snd.waitFor((l) => l.includes('"sent"'), 30_000, 'burst sent', from))!;
      assert.equal(sent.sent, BURST, `run ${i}: the sender sent every datagram`);
      // Wait until the counters stop moving (the worker drains its ring).
      const stats = async () => (await apiCall({ socket: sock }, 'GET', '/stats')).json!;
      let s = await stats();
      for (let k = 0; k < 50; k++) {
        await sleep(200);
        const again = await stats();
        const same = JSON.stringify(again.ports) === JSON.stringify(s.ports);
        s = again;
        if (same) break;
      }
      const rf = rcv.lines.length;
      rcv.send('count');
      const got = parseJson(await rcv.waitFor((l) => l.includes('"got"'), 10_000, 'receiver count', rf))!.got as number;
      const rules = (await apiCall({ socket: sock }, 'GET', '/rules')).json!;
      const udpRule = rules.rules.find((r: { spec: string }) => r.spec.includes(`--dport ${PORT}`));
      const [pa, pb] = s.ports as Array<{ name: string; rxPackets: number; txPackets: number; drops: number; kernelDrops: number }>;
      const fa = linkStats(topo.firewall, 'fa');
      const fb = linkStats(topo.firewall, 'fb');
      const r1 = udp(topo.receiver);
      const kernelIn = fa.rx - fa0.rx;
      const run = {
        run: i, workers, coldArp, burstUs: sent.us, arrivedAtFa: kernelIn, read: pa.rxPackets, ringDrops: pa.kernelDrops,
        forwarded: pb.txPackets, received: got, lost: BURST - got, receiverBufferDrops: r1.rcvbuf - r0.rcvbuf,
      };
      figures.push(run);
      t.diagnostic(JSON.stringify(run));

      // Every frame that reached fa was read by a worker or counted as a ring drop.
      assert.equal(pa.rxPackets + pa.kernelDrops, kernelIn, `run ${i}: frames at fa = read + ring drops: ${JSON.stringify(run)}`);
      // Quiet links: those are the burst and, cold, one ARP request (the
      // sender's neighbour queue may drop datagrams while it waits: fewer).
      if (coldArp) assert.ok(kernelIn <= BURST + 1, `run ${i}: only the burst and its ARP request crossed fa: ${JSON.stringify(run)}`);
      else assert.equal(kernelIn, BURST, `run ${i}: only the burst crossed fa: ${JSON.stringify(run)}`);
      // Every frame read was forwarded (the UDP rule's counter: the datagrams among them); none dropped.
      assert.equal(pa.drops, 0, `run ${i}: no frame read on fa was dropped`);
      assert.equal(pb.txPackets, pa.rxPackets, `run ${i}: every frame read on fa left by fb`);
      assert.equal(pb.txPackets, fb.tx - fb0.tx, `run ${i}: the kernel sent what flatwall says it sent on fb`);
      // Cold, the ARP request is among the frames read, or among the ring drops.
      const arpRead = pa.rxPackets - Number(udpRule.packets);
      assert.ok(arpRead === 0 || (coldArp && arpRead === 1), `run ${i}: the UDP rule judged every datagram read (${arpRead} other frames): ${JSON.stringify(run)}`);
      // ... and every datagram forwarded reached the receiver's UDP layer.
      assert.equal((r1.in - r0.in) + (r1.rcvbuf - r0.rcvbuf), Number(udpRule.packets), `run ${i}: forwarded datagrams = received + receiver drops`);
      assert.equal(got, r1.in - r0.in, `run ${i}: the receiver read what its UDP layer delivered`);
      const stop = await fw.stop('SIGTERM', 10_000);
      assert.equal(stop.code, 0, `run ${i}: flatwall run stopped cleanly: ${fw.stderr.slice(-300)}`);
    }
    const lost = figures.map((f) => f.lost as number);
    t.diagnostic(`lost per run: ${lost.join(' ')}; ring drops: ${figures.map((f) => f.ringDrops).join(' ')}`);
  });
});
