// The real-world corpus (test/corpus/: what ufw, ferm, shorewall,
// shorewall6, firehol, arno and fail2ban write) decided by the kernel and by
// flatwall, in FORWARD and in host mode (INPUT: frames to the router's own
// addresses, which flatwall replay --host sends through INPUT). Each file's
// filter table runs on a Linux router whose ports are
// named as the tools expected (eth0 towards the sender, eth1 towards the
// receiver), with nf_conntrack at its defaults; the same probe frames
// (first packets of many flows, both directions: TCP SYNs and lone ACKs to
// common ports, UDP, ICMP echo and errors) cross it, and flatwall replay
// (connection tracking on, the kernel's tcp_loose) replays exactly those
// frames. Every rule's and every policy's packet count must agree, in every
// chain.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { IpsetStore } from '../../src/sets/store';
import { useSetStore } from '../../src/sets/registry';
import { join } from 'node:path';
import { e2eUnavailable } from './harness';
import { runSync } from '../../src/lab/proc';
import { Topology, installTeardown } from '../../src/lab/topology';
import { parseIptables } from '../../src/rules/iptables/parse';
import { compile } from '../../src/rules/compile';
import { native } from '../../src/native';
import { build, frameOffsets, kernelChainCounts, sendFrom, silence, type F, type Net } from './frame-lab';
import { CORPUS, corpusFiles } from '../corpus-files';

const skip = e2eUnavailable(['python3', 'iptables-restore', 'ip6tables-restore', 'iptables-save', 'sysctl', 'ipset']);


/** The `*filter ... COMMIT` block of an iptables-save file. */
function filterTable(text: string): string {
  const lines = text.split('\n');
  const a = lines.findIndex((l) => l === '*filter');
  const b = lines.findIndex((l, i) => i > a && l === 'COMMIT');
  return lines.slice(a, b + 1).join('\n') + '\n';
}

// Probe flows, each its own tuple (the source port differs), so every
// frame is a flow's first packet whichever way the rules go.
function probes(v6: boolean): Array<F & { reverse: boolean; toHost?: boolean }> {
  const out: Array<F & { reverse: boolean; toHost?: boolean }> = [];
  let sport = 0;
  // Through the router (FORWARD), then to the router itself (INPUT, host mode).
  for (const [reverse, toHost] of [[false, false], [true, false], [false, true], [true, true]] as const) {
    for (const dport of [22, 25, 53, 80, 113, 443, 631, 3128, 8080, 10000]) {
      // Every probe its own source port: the router's own answers (RSTs from
      // its stack) are not in the capture, so no two probes may share a flow.
      out.push({ v6, src: 1 + (sport % 3), sport: 30000 + sport++, proto: 'tcp', flags: 0x02, dport, reverse, toHost });
      out.push({ v6, src: 1 + (sport % 3), sport: 30000 + sport++, proto: 'tcp', flags: 0x10, dport, reverse, toHost }); // a lone ACK: NEW (loose) in both
    }
    for (const dport of [53, 67, 123, 137, 500, 1194, 5353]) out.push({ v6, src: 1 + (sport % 3), sport: 30000 + sport++, proto: 'udp', dport, reverse, toHost });
    // Echo requests with their own identifiers: each is its own flow.
    out.push({ v6, src: 1, proto: 'icmp', reverse, toHost, icmpId: sport++ }, { v6, src: 2, proto: 'icmp', ttl: 2, reverse, toHost, icmpId: sport++ });
  }
  // From the address fail2ban banned (test/corpus/fail2ban/*.ipset).
  for (const dport of [22, 80]) out.push({ v6, src: BANNED, proto: 'tcp', flags: 0x02, dport, reverse: false });
  return out;
}

const BANNED = 99;

interface Result { kernel: ReturnType<typeof kernelChainCounts>; flatwall: ReturnType<typeof kernelChainCounts>; frames: number; compared: Set<string> }

/** Chains `from` reaches through -j and -g. */
function reach(rs: ReturnType<typeof parseIptables>, from: string): Set<string> {
  const t = rs.tables[0];
  const seen = new Set<string>([from]);
  const todo = [from];
  while (todo.length) {
    for (const r of t.chains.get(todo.pop()!)?.rules ?? []) {
      if ((r.target.kind === 'jump' || r.target.kind === 'goto') && !seen.has(r.target.chain)) {
        seen.add(r.target.chain);
        todo.push(r.target.chain);
      }
    }
  }
  return seen;
}
const results = new Map<string, Result>();

describe('the real-world corpus: flatwall counts every rule as the kernel does', { skip, timeout: 900_000 }, () => {
  const files = corpusFiles();

  before(async () => {
    installTeardown(false);
    for (const file of files) {
      const v6 = file.endsWith('.v6');
      const table = filterTable(readFileSync(join(CORPUS, file), 'utf8'));
      const k = Topology.create('routed', 'fwck');
      try {
        const F = k.firewall;
        // The ports get the names the tools' configurations use.
        for (const [from, to] of [['fa', 'eth0'], ['fb', 'eth1']]) {
          runSync('ip', ['-n', F, 'link', 'set', from, 'down'], { timeoutMs: 10_000 });
          runSync('ip', ['-n', F, 'link', 'set', from, 'name', to], { timeoutMs: 10_000 });
          runSync('ip', ['-n', F, 'link', 'set', to, 'up'], { timeoutMs: 10_000 });
        }
        // A link taken down loses its IPv6 addresses: give them back.
        runSync('ip', ['-n', F, 'addr', 'replace', 'fd00:1::fe/64', 'dev', 'eth0', 'nodad'], { timeoutMs: 10_000 });
        runSync('ip', ['-n', F, 'addr', 'replace', 'fd00:2::fe/64', 'dev', 'eth1', 'nodad'], { timeoutMs: 10_000 });
        runSync('sysctl', ['-q', '-w', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.eth0.rp_filter=0', 'net.ipv4.conf.eth1.rp_filter=0'], { ns: F, timeoutMs: 10_000 });
        // fail2ban's ipset action: its sets, in the kernel and in flatwall's store.
        const ipsetFile = join(CORPUS, file.replace(/\.v[46]$/, '.ipset'));
        const store = new IpsetStore();
        if (existsSync(ipsetFile)) {
          const text = readFileSync(ipsetFile, 'utf8');
          runSync('ipset', ['restore'], { ns: F, input: text, timeoutMs: 20_000 });
          store.restore(text, ipsetFile);
        }
        useSetStore(store);
        runSync(v6 ? 'ip6tables-restore' : 'iptables-restore', [], { ns: F, input: table, timeoutMs: 20_000 });
        const macs = { sa: k.mac(k.sender, 'sa'), ra: k.mac(k.receiver, 'ra'), e0: k.mac(F, 'eth0'), e1: k.mac(F, 'eth1') };
        for (const [ip, m, dev] of [['10.0.2.1', macs.ra, 'eth1'], ['fd00:2::1', macs.ra, 'eth1'], ['10.0.1.1', macs.sa, 'eth0'], ['fd00:1::1', macs.sa, 'eth0'],
          ['10.0.1.2', macs.sa, 'eth0'], ['10.0.1.3', macs.sa, 'eth0'], ['fd00:1::2', macs.sa, 'eth0'], ['fd00:1::3', macs.sa, 'eth0']])
          runSync('ip', ['-n', F, 'neigh', 'replace', ip, 'lladdr', m, 'dev', dev, 'nud', 'permanent'], { timeoutMs: 10_000 });
        silence(k.sender, 'sa');
        silence(k.receiver, 'ra');
        const fwd: Net = {
          srcMac: macs.sa, dstMac: macs.e0, dst4: '10.0.2.1', dst6: 'fd00:2::1',
          src4: (n) => (n === BANNED ? '198.51.100.7' : `10.0.1.${n}`), src6: (n) => (n === BANNED ? '2001:db8::7' : `fd00:1::${n}`),
        };
        const rev: Net = { srcMac: macs.ra, dstMac: macs.e1, src4: () => '10.0.2.1', dst4: '10.0.1.1', src6: () => 'fd00:2::1', dst6: 'fd00:1::1' };
        // To the router's own address on the link the frame arrives on.
        const fwdHost: Net = { ...fwd, dst4: '10.0.1.254', dst6: 'fd00:1::fe' };
        const revHost: Net = { ...rev, dst4: '10.0.2.254', dst6: 'fd00:2::fe' };
        const ps = probes(v6);
        const frames = ps.map((p, i) => build({ ...p, dport: p.dport, src: p.reverse ? 1 : p.src, pad: i % 3 ? 0 : 20 },
          p.reverse ? (p.toHost ? revHost : rev) : p.toHost ? fwdHost : fwd));
        // In order, each from its side.
        await sendFrom(frames.map((frame, i) => ({ ns: ps[i].reverse ? k.receiver : k.sender, dev: ps[i].reverse ? 'ra' : 'sa', frame })));
        const kernel = kernelChainCounts(F, v6);
        // flatwall replay of exactly those frames.
        const rs = parseIptables(table, { file, family: v6 ? 6 : 4 });
        const c = compile(rs);
        const res = await native().replayFrames(c.buffer, Buffer.concat(frames), frameOffsets(frames), {
          iif: c.ifaces.classOf('eth0'), oif: c.ifaces.classOf('eth1'), ruleCount: c.rules.length,
          // The sender spaces frames 2 ms apart: the rate matches of these
          // tables (1/sec, bursts of 5-10) see them as the kernel did.
          timestamps: BigUint64Array.from(frames, (_, i) => 1_000_000_000_000n + BigInt(i) * 2_000_000n),
          reverse: Uint8Array.from(ps, (p) => (p.reverse ? 1 : 0)),
          conntrack: true, conntrackTcpLoose: true, sets: store.native,
          // Host mode: the router's addresses are the host's.
          hostAddrs: v6 ? ['fd00:1::fe/64', 'fd00:2::fe/64'] : ['10.0.1.254/24', '10.0.2.254/24'],
        });
        const flatwall = { rules: new Map<string, number[]>(), policies: new Map<string, number>() };
        for (const r of c.rules) {
          if (r.internal || r.family !== (v6 ? 6 : 4)) continue;
          if (r.policy) flatwall.policies.set(r.chain, res.hits[r.id]);
          else {
            if (!flatwall.rules.has(r.chain)) flatwall.rules.set(r.chain, []);
            flatwall.rules.get(r.chain)![r.index - 1] = res.hits[r.id];
          }
        }
        // The router's own answers (a REJECT's ICMP error or RST, its TCP
        // stack's RST to a closed port, an echo reply) cross its OUTPUT
        // chain, and they are not in the capture: compare the chains
        // FORWARD and INPUT reach and OUTPUT does not.
        const out = reach(rs, 'OUTPUT');
        const compared = new Set([...reach(rs, 'FORWARD'), ...reach(rs, 'INPUT')].filter((ch) => !out.has(ch)));
        results.set(file, { kernel, flatwall, frames: frames.length, compared });
      } finally {
        useSetStore(undefined);
        await k.destroy();
      }
    }
  });

  for (const file of files) {
    test(file, (t) => {
      const r = results.get(file);
      assert.ok(r, 'ran');
      const { kernel, flatwall } = r;
      const bad: string[] = [];
      let counted = 0;
      for (const [chain, ks] of kernel.rules) {
        if (!r.compared.has(chain)) continue;
        const fs = flatwall.rules.get(chain) ?? [];
        ks.forEach((n, i) => {
          counted += n;
          if ((fs[i] ?? 0) !== n) bad.push(`${chain}#${i + 1}: kernel ${n}, flatwall ${fs[i] ?? 0}`);
        });
      }
      for (const [chain, n] of kernel.policies) {
        if (chain !== 'FORWARD' && chain !== 'INPUT') continue;
        if ((flatwall.policies.get(chain) ?? 0) !== n) bad.push(`policy ${chain}: kernel ${n}, flatwall ${flatwall.policies.get(chain) ?? 0}`);
      }
      t.diagnostic(`${r.frames} frames, ${r.compared.size} chains compared, ${counted} rule hits in the kernel`);
      assert.deepEqual(bad, [], `${file}: ${bad.length} disagreements:\n${bad.join('\n')}`);
      // The probes reached the rules (a lab where nothing crosses must fail).
      assert.ok(counted > 0 || [...kernel.policies.values()].some((n) => n > 0), 'the kernel counted nothing');
    });
  }
});
