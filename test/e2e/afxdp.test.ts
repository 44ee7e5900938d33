// AF_XDP ports under bad conditions (native/io/xsk_port.h, xdp_redirect.h),
// each against `flatwall run` in a bridge lab: a refused attach is an exit
// with the kernel's reason (--io afxdp) or a logged fall-back to AF_PACKET
// that forwards (--io auto); a second firewall on the same ports is refused
// while the first keeps forwarding; kill -9 leaves no XDP program behind
// (the BPF link dies with the process) so a restart attaches again; a frame
// larger than a UMEM frame is dropped and counted, not forwarded, while
// smaller ones pass; several workers with conntrack are refused with the
// reason, while stateless AF_XDP spreads flows over one worker per RX
// queue. Forwarding itself over AF_XDP is the whole e2e suite run again
// with FLATWALL_E2E_IO=afxdp (scripts/run-tests.js).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { apiCall } from '../../src/cli/ctl';
import { Background, run, runSync } from '../../src/lab/proc';
import { FLATWALL_CLI } from '../../src/lab/engines';
import { Topology, installTeardown } from '../../src/lab/topology';
import { V4_HEADER, e2eUnavailable, parseJson } from './harness';

const skip = e2eUnavailable();
const RULES = `${V4_HEADER}-A FORWARD -p icmp -j ACCEPT\n-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\nCOMMIT\n`;

describe('AF_XDP ports: refusals, fall-back, crash, oversized frames', { skip, timeout: 180_000 }, () => {
  let topo: Topology;
  let dir: string;
  let rules: string;
  let seq = 0;

  const xdpAttached = (dev: string) => /\bxdp/.test(runSync('ip', ['-n', topo.firewall, 'link', 'show', dev], { timeoutMs: 10_000 }).stdout);
  const ping = (size = 56, count = 2) =>
    run('ping', ['-c', String(count), '-i', '0.2', '-W', '1', '-M', 'do', '-s', String(size), topo.ep.receiverIp], { ns: topo.sender, timeoutMs: 15_000, allowFail: true });
  const mtu = (m: number) => {
    for (const [ns, dev] of [[topo.sender, 'sa'], [topo.firewall, 'fa'], [topo.firewall, 'fb'], [topo.receiver, 'ra']])
      runSync('ip', ['-n', ns, 'link', 'set', dev, 'mtu', String(m)], { timeoutMs: 10_000 });
  };
  const start = (args: string[]) => {
    const sock = join(dir, `api${++seq}.sock`);
    const fw = topo.adopt(new Background('flatwall run', process.execPath,
      [FLATWALL_CLI, 'run', '--port', 'fa', '--port', 'fb', '-r', rules, '--api-socket', sock, ...args], { ns: topo.firewall, maxLifetimeMs: 60_000 }));
    return { fw, sock };
  };
  const ready = async (fw: Background) => parseJson(await fw.waitFor((l) => parseJson(l)?.msg === 'ready', 30_000, 'ready line'))!;
  /** The process's exit status and its error line, for a start that must fail. */
  const refused = async (fw: Background) => {
    const r = await fw.exited;
    return { code: r.code, error: String(fw.lines.map(parseJson).find((j) => j?.level === 'error')?.error ?? '') };
  };

  before(() => {
    installTeardown(false);
    topo = Topology.create('bridge', 'fwxdp');
    dir = mkdtempSync(join(tmpdir(), 'flatwall-afxdp-'));
    rules = join(dir, 'r.rules');
    writeFileSync(rules, RULES);
  });
  after(async () => {
    await topo?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('an MTU too large for native XDP on veth: --io afxdp exits with the reason, --io auto falls back and forwards', async () => {
    mtu(9000);
    try {
      const a = start(['--io', 'afxdp']);
      const r = await refused(a.fw);
      assert.equal(r.code, 1);
      assert.match(r.error, /AF_XDP fa: attach native XDP/);
      assert.ok(!xdpAttached('fa') && !xdpAttached('fb'), 'nothing left attached after the refusal');

      const b = start(['--io', 'auto']);
      const line = await ready(b.fw);
      assert.equal(line.io, 'afpacket');
      const warn = b.fw.lines.map(parseJson).find((j) => j?.msg === 'AF_XDP not used: the ports are AF_PACKET');
      assert.ok(warn, 'the fall-back is logged');
      assert.match(String(warn.reason), /attach native XDP/);
      assert.equal((await ping()).code, 0, 'auto forwards on AF_PACKET');
      await b.fw.stop('SIGTERM', 10_000);
    } finally {
      mtu(1500);
    }
  });

  test('a second AF_XDP firewall on the same ports is refused; the first keeps forwarding', async () => {
    const a = start(['--io', 'afxdp']);
    const line = await ready(a.fw);
    assert.equal(line.io, 'afxdp');
    assert.deepEqual(line.ports, ['afxdp:fa', 'afxdp:fb']);
    assert.ok(xdpAttached('fa') && xdpAttached('fb'));
    const b = start(['--io', 'afxdp']);
    const r = await refused(b.fw);
    assert.equal(r.code, 1);
    assert.match(r.error, /another XDP program is attached|Device or resource busy/);
    assert.equal((await ping()).code, 0, 'the first firewall still forwards');
    const stats = (await apiCall({ socket: a.sock }, 'GET', '/stats')).json as any;
    assert.equal(stats.io.io, 'afxdp');
    const metrics = (await apiCall({ socket: a.sock }, 'GET', '/metrics')).body;
    for (const port of ['fa', 'fb']) assert.match(metrics, new RegExp(`^flatwall_port_info\\{port="${port}",kind="afxdp",xdp_mode="native",zero_copy="false"\\} 1$`, 'm'));
    await a.fw.stop('SIGTERM', 10_000);
    assert.ok(!xdpAttached('fa') && !xdpAttached('fb'), 'a clean stop detaches');
  });

  test('kill -9 leaves no XDP program behind: a restart attaches and forwards', async () => {
    const a = start(['--io', 'afxdp']);
    await ready(a.fw);
    assert.ok(xdpAttached('fa'));
    await a.fw.stop('SIGKILL', 1000);
    // The kernel releases the link with the last fd (the process's exit).
    let gone = false;
    for (let i = 0; i < 50 && !gone; i++) {
      gone = !xdpAttached('fa') && !xdpAttached('fb');
      if (!gone) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(gone, 'the XDP programs went with the process');
    const b = start(['--io', 'afxdp']);
    assert.equal((await ready(b.fw)).io, 'afxdp');
    assert.equal((await ping()).code, 0);
    await b.fw.stop('SIGTERM', 10_000);
  });

  test('generic XDP at MTU 9000: a frame larger than a UMEM frame is dropped and counted, smaller ones pass', async () => {
    mtu(9000);
    try {
      const a = start(['--io', 'afxdp', '--xdp-mode', 'generic']);
      const line = await ready(a.fw);
      assert.equal(line.io, 'afxdp');
      assert.equal((await ping(1400)).code, 0, 'a 1428-byte frame fits a 4 KB UMEM frame');
      const before = ((await apiCall({ socket: a.sock }, 'GET', '/stats')).json as any).ports[0];
      assert.notEqual((await ping(8000, 3)).code, 0, 'an 8 KB frame does not fit: not forwarded');
      const after = ((await apiCall({ socket: a.sock }, 'GET', '/stats')).json as any).ports[0];
      assert.ok(after.kernelDrops - before.kernelDrops >= 3, `kernel drops counted: ${before.kernelDrops} -> ${after.kernelDrops}`);
      // (An ARP may pass meanwhile: count bytes, 8 KB per oversized frame.)
      assert.ok(after.rxBytes - before.rxBytes < 8000, `the oversized frames never reached the worker: +${after.rxBytes - before.rxBytes} bytes`);
      assert.equal((await ping(1400)).code, 0, 'and forwarding goes on');
      await a.fw.stop('SIGTERM', 10_000);
    } finally {
      mtu(1500);
    }
  });

  test('stateless, one worker per RX queue: flows spread over the workers of a 2-queue veth', async () => {
    // A second path through the lab on 2-queue veths: S qa 10.1.0.1 -- F qfa|qfb -- R qr 10.1.0.2.
    const { sender: S, firewall: F, receiver: R } = topo;
    const ln = (a: string, ans: string, b: string, bns: string) =>
      runSync('ip', ['link', 'add', a, 'netns', ans, 'numtxqueues', '2', 'numrxqueues', '2', 'type', 'veth', 'peer', 'name', b, 'netns', bns, 'numtxqueues', '2', 'numrxqueues', '2'], { timeoutMs: 10_000 });
    ln('qa', S, 'qfa', F);
    ln('qfb', F, 'qr', R);
    runSync('ip', ['-n', S, 'addr', 'add', '10.1.0.1/24', 'dev', 'qa'], { timeoutMs: 10_000 });
    runSync('ip', ['-n', R, 'addr', 'add', '10.1.0.2/24', 'dev', 'qr'], { timeoutMs: 10_000 });
    for (const [ns, dev] of [[S, 'qa'], [F, 'qfa'], [F, 'qfb'], [R, 'qr']]) runSync('ip', ['-n', ns, 'link', 'set', dev, 'up'], { timeoutMs: 10_000 });
    const open = join(dir, 'open.rules');
    writeFileSync(open, `${V4_HEADER.replace(':FORWARD DROP', ':FORWARD ACCEPT')}COMMIT\n`);
    const sock = join(dir, 'api-q.sock');
    const fw = topo.adopt(new Background('flatwall run', process.execPath,
      [FLATWALL_CLI, 'run', '--port', 'qfa', '--port', 'qfb', '-r', open, '--api-socket', sock, '--io', 'afxdp', '-w', '2', '--no-conntrack'], { ns: F, maxLifetimeMs: 60_000 }));
    assert.equal((await ready(fw)).io, 'afxdp');
    const srv = topo.adopt(new Background('iperf3 server', 'iperf3', ['-s', '-1', '-p', '5299', '--forceflush'], { ns: R, maxLifetimeMs: 30_000 }));
    await srv.waitFor((l) => l.includes('listening'), 10_000, 'iperf3 listening');
    const r = await run('iperf3', ['-c', '10.1.0.2', '-p', '5299', '-u', '-b', '20M', '-l', '500', '-P', '16', '-t', '2', '-J'], { ns: S, timeoutMs: 20_000, allowFail: true });
    const got = JSON.parse(r.stdout).end?.sum?.packets - (JSON.parse(r.stdout).end?.sum?.lost_packets ?? 0);
    const stats = (await apiCall({ socket: sock }, 'GET', '/stats')).json as any;
    const perWorker: number[] = stats.ports[0].rxPerWorker;
    assert.equal(perWorker.length, 2);
    assert.ok(perWorker[0] > 100 && perWorker[1] > 100, `16 flows reached both workers: ${perWorker}`);
    assert.ok(got > 0.5 * (JSON.parse(r.stdout).end?.sum?.packets ?? 0), `most datagrams delivered: ${got}`);
    await fw.stop('SIGTERM', 10_000);
  });

  test('two workers with conntrack: --io afxdp refuses with the reason, --io auto uses AF_PACKET', async () => {
    const a = start(['--io', 'afxdp', '-w', '2']);
    const r = await refused(a.fw);
    assert.equal(r.code, 1);
    assert.match(r.error, /symmetric flow hash/);
    const b = start(['--io', 'auto', '-w', '2']);
    assert.equal((await ready(b.fw)).io, 'afpacket');
    assert.equal((await ping()).code, 0);
    await b.fw.stop('SIGTERM', 10_000);
  });
});
