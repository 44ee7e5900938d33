// Stateful replay against the real kernel: the scripted sequences of
// test/ct-frames.ts (TCP handshake, data, FIN close, lone and out-of-state
// RST/FIN/SYN-ACK, mid-stream ACKs, UDP, echo, ICMP errors quoting tracked
// and untracked flows), IPv4 and IPv6, are sent with raw frames (ct-driver.ts)
// through a router namespace running iptables + nf_conntrack with the
// stateful rule set plus one counting rule per ct state; after every frame
// the counters (iptables-save -c) say which state the kernel gave it. The
// driver writes what it sent as a pcap, `flatwall replay` decides that
// capture with the same rules, and the ct state of every frame (and whether
// it passed) must be the kernel's. Both nf_conntrack_tcp_loose settings, the
// kernel's sysctl against the default (loose) and --ct-tcp-strict.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kernelTestsUnavailable } from '../netns';
import { run, runSync } from '../../src/lab/proc';
import { Topology, installTeardown } from '../../src/lab/topology';
import { DRIVER_PY, ruleset, type End } from './ct-driver';
import { countingRuleset, ctCounters, ctScript, expectedCt, expectedPass, type CtState, type CtStep } from '../ct-frames';

const skip = kernelTestsUnavailable(['ip', 'python3', 'iptables-restore', 'ip6tables-restore', 'iptables-save', 'ip6tables-save', 'sysctl']);
const CLI = join(__dirname, '..', '..', 'src', 'cli', 'main.js');

interface KernelRun {
  /** The state each frame got, from the counter that moved ('none' if none did, 'A+B' if several). */
  states: string[];
  arrived: boolean[];
  pcap: string;
}

/** The frames through S -- F (iptables + nf_conntrack) -- R, one family at a time. */
async function kernelRun(dir: string, loose: boolean): Promise<{ out: Record<4 | 6, KernelRun>; outMac: string }> {
  const k = Topology.create('routed', 'fwrpk');
  try {
    const F = k.firewall;
    runSync('iptables-restore', [], { ns: F, input: countingRuleset(ruleset(false, 'fa')), timeoutMs: 20_000 });
    runSync('ip6tables-restore', [], { ns: F, input: countingRuleset(ruleset(true, 'fa')), timeoutMs: 20_000 });
    runSync('sysctl', ['-q', '-w', `net.netfilter.nf_conntrack_tcp_loose=${loose ? 1 : 0}`], { ns: F, timeoutMs: 10_000 });
    const macs = { sa: k.mac(k.sender, 'sa'), fa: k.mac(F, 'fa'), fb: k.mac(F, 'fb'), ra: k.mac(k.receiver, 'ra') };
    // The router knows the ends without asking (they will not answer), and
    // the ends' stacks are silent: only the script's frames cross.
    for (const [ip, mac, dev] of [['10.0.1.1', macs.sa, 'fa'], ['fd00:1::1', macs.sa, 'fa'], ['10.0.2.1', macs.ra, 'fb'], ['fd00:2::1', macs.ra, 'fb']])
      runSync('ip', ['-n', F, 'neigh', 'replace', ip, 'lladdr', mac, 'dev', dev, 'nud', 'permanent'], { timeoutMs: 10_000 });
    for (const [ns, dev] of [[k.sender, 'sa'], [k.receiver, 'ra']]) {
      runSync('ip', ['-n', ns, 'addr', 'flush', 'dev', dev], { timeoutMs: 10_000 });
      runSync('sysctl', ['-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1'], { ns, timeoutMs: 10_000 });
    }
    const a: End = { ns: k.sender, dev: 'sa', mac: macs.sa, nextHop: macs.fa, ip4: '10.0.1.1', ip6: 'fd00:1::1' };
    const b: End = { ns: k.receiver, dev: 'ra', mac: macs.ra, nextHop: macs.fb, ip4: '10.0.2.1', ip6: 'fd00:2::1' };
    const out = {} as Record<4 | 6, KernelRun>;
    for (const family of [4, 6] as const) {
      const steps = ctScript(family === 6);
      const pcap = join(dir, `kernel-${loose ? 'loose' : 'strict'}-v${family}.pcap`);
      const probe = ['ip', 'netns', 'exec', F, family === 6 ? 'ip6tables-save' : 'iptables-save', '-c', '-t', 'filter'];
      const r = await run('python3', ['-c', DRIVER_PY], { input: JSON.stringify({ a, b, family, steps, waitMs: 250, pcap, probe }), timeoutMs: 90_000 });
      const { arrived, probes } = JSON.parse(r.stdout.trim()) as { arrived: boolean[]; probes: string[] };
      assert.equal(probes.length, steps.length + 1);
      const counts = probes.map(ctCounters);
      const states = steps.map((_, i) => {
        const moved = (Object.keys(counts[i]) as CtState[]).filter((s) => counts[i + 1][s] !== counts[i][s]);
        const total = moved.reduce((n, s) => n + counts[i + 1][s] - counts[i][s], 0);
        return moved.length === 0 ? 'none' : total > 1 ? `${moved.join('+')} x${total}` : moved[0];
      });
      out[family] = { states, arrived, pcap };
    }
    return { out, outMac: macs.ra };
  } finally {
    await k.destroy();
  }
}

function replay(dir: string, pcap: string, outMac: string, loose: boolean): { ctstate?: string; verdict: string }[] {
  const out = execFileSync(process.execPath, [CLI, 'replay', '--json', '-r', 'v4.rules', '-r', 'v6.rules', '-p', pcap, '-i', 'fa', '-o', 'fb',
    '--out-mac', outMac, ...(loose ? [] : ['--ct-tcp-strict'])], { encoding: 'utf8', cwd: dir, timeout: 60_000 });
  return JSON.parse(out).frames;
}

function table(steps: CtStep[], kernel: KernelRun, flatwall: { ctstate?: string; verdict: string }[], loose: boolean): string {
  return steps.map((s, i) => {
    const same = kernel.states[i] === flatwall[i]?.ctstate && kernel.arrived[i] === (flatwall[i]?.verdict === 'ACCEPT');
    return `${same ? '  ' : '!!'} kernel=${kernel.states[i].padEnd(11)} ${kernel.arrived[i] ? 'pass' : 'drop'}  ` +
      `flatwall=${String(flatwall[i]?.ctstate).padEnd(11)} ${flatwall[i]?.verdict === 'ACCEPT' ? 'pass' : 'drop'}  (scripted ${expectedCt(s, loose)})  ${s.what}`;
  }).join('\n');
}

describe('flatwall replay: the ct state of every frame is the kernel\'s', { skip, timeout: 300_000 }, () => {
  for (const loose of [false, true]) {
    test(`IPv4 and IPv6, nf_conntrack_tcp_loose=${loose ? 1 : 0} / ${loose ? 'default' : '--ct-tcp-strict'}`, async () => {
      installTeardown(false);
      const dir = mkdtempSync(join(tmpdir(), 'fw-replay-kernel-'));
      try {
        writeFileSync(join(dir, 'v4.rules'), countingRuleset(ruleset(false, 'fa')));
        writeFileSync(join(dir, 'v6.rules'), `# Generated by ip6tables-save\n${countingRuleset(ruleset(true, 'fa'))}`);
        const { out, outMac } = await kernelRun(dir, loose);
        let compared = 0;
        for (const family of [4, 6] as const) {
          const steps = ctScript(family === 6);
          const kernel = out[family];
          const flatwall = replay(dir, kernel.pcap, outMac, loose);
          const t = table(steps, kernel, flatwall, loose);
          assert.equal(flatwall.length, steps.length, 'one replayed frame per frame sent');
          assert.deepEqual(flatwall.map((f) => f.ctstate), kernel.states, `IPv${family}: flatwall replay and the kernel disagree:\n${t}`);
          assert.deepEqual(flatwall.map((f) => f.verdict === 'ACCEPT'), kernel.arrived, `IPv${family}: verdicts differ:\n${t}`);
          // The kernel behaved as scripted (a broken lab must fail, not agree trivially).
          assert.deepEqual(kernel.states, steps.map((s) => expectedCt(s, loose)), `IPv${family}: the kernel did not behave as scripted:\n${t}`);
          assert.deepEqual(kernel.arrived, steps.map((s) => expectedPass(s, loose)), `IPv${family}: the kernel did not behave as scripted:\n${t}`);
          compared += steps.length;
        }
        process.stderr.write(`replay-kernel (tcp_loose=${loose ? 1 : 0}): ${compared} frames, ct state and verdict equal to the kernel's\n`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
