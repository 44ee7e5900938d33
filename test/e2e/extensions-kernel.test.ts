// Match and target extensions against the real kernel: one rule set of
// counting rules (no verdicts, so every packet meets every rule in order)
// using every stateless match, and rate and history matches at rates slow
// enough that the kernel's jiffies cannot matter (1/hour, bursts of 1-3).
// The same frames are sent
//   - through a Linux router (iptables in a namespace), read back with
//     iptables-save -c;
//   - through flatwall's dataplane (the Firewall host bridging two veths),
//     read back as per-rule counters;
//   - through flatwall replay (the frames as the router received them).
// Every rule's packet count must agree across the three, IPv4 and IPv6.
// connlimit rules are in the IPv4 table only: in the kernel they load
// conntrack, whose IPv6 defragmentation would hold the lone fragments the
// IPv6 table's frag rules count (flatwall forwards fragments as they are);
// and no packet meets more than two of them (the tags an entry carries,
// conntrack/conncount.h).
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { E2eLab, e2eUnavailable } from './harness';
import { runSync } from '../../src/lab/proc';
import { build, frameOffsets, kernelCounts, kernelRouter, routeFrames, send, silencedBridge, sniff, synMss, type F, type Net } from './frame-lab';
import { installTeardown } from '../../src/lab/topology';
import { parseIptables } from '../../src/rules/iptables/parse';
import { compile } from '../../src/rules/compile';
import { native } from '../../src/native';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IpsetStore } from '../../src/sets/store';
import { useSetStore } from '../../src/sets/registry';

const skip = e2eUnavailable(['python3', 'iptables-restore', 'ip6tables-restore', 'iptables-save', 'sysctl', 'ipset']);

// The frames: TTLs, TOS bytes, sizes, protocols, several sources (rate and
// history matches key on them), IPv6 extension headers. No TTL below 2: a
// router drops those before FORWARD, flatwall (a bump in the wire) does not.
function frames4(): F[] {
  const out: F[] = [];
  const tos = [0, 0x10, 0x08, 0xb8, 0x01, 0x02, 0x28];
  let i = 0;
  for (const src of [1, 2, 3, 5]) {
    for (const proto of ['tcp', 'udp', 'icmp', 'udp', 'tcp'] as const) {
      out.push({ src, proto, ttl: [64, 2, 9, 200, 255][i % 5], tos: tos[i % tos.length], pad: [0, 50, 300][i % 3],
        flags: proto === 'tcp' ? [0x02, 0x10 | 0x40, 0x10 | 0x80, 0x02 | 0x40 | 0x80][i % 4] : undefined, dport: [53, 123, 80][i % 3] });
      i++;
    }
  }
  out.push({ src: 1, proto: 'esp', spi: 150 }, { src: 1, proto: 'esp', spi: 250 }, { src: 2, proto: 'ah', spi: 5 }, { src: 2, proto: 'ah', spi: 6 });
  return out;
}

function frames6(): F[] {
  const out: F[] = [];
  const exts: F['ext'][] = [[], ['hbh'], ['dst'], ['rt'], ['frag'], ['hbh', 'dst', 'rt'], ['hbh', 'frag'], ['dst', 'frag']];
  let i = 0;
  for (const src of [1, 2, 3, 5]) {
    for (const proto of ['tcp', 'udp', 'icmp', 'udp'] as const) {
      out.push({ v6: true, src, proto, ttl: [64, 2, 9, 200, 255][i % 5], tos: [0, 0xb8, 0x01][i % 3], pad: [0, 40, 200][i % 3],
        ext: exts[i % exts.length], fragId: 50 + i, dport: [53, 80][i % 2] });
      i++;
    }
  }
  out.push({ v6: true, src: 1, proto: 'esp', spi: 150 }, { v6: true, src: 2, proto: 'esp', spi: 300 });
  return out;
}

// ---- rules ----------------------------------------------------------------

function rules4(srcMac: string): string {
  return `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m ttl --ttl-eq 63
-A FORWARD -m ttl ! --ttl-eq 63
-A FORWARD -m ttl --ttl-lt 10
-A FORWARD -m ttl --ttl-gt 100
-A FORWARD -m length --length 0:100
-A FORWARD -m length ! --length 60:200
-A FORWARD -m tos --tos 0x10/0x3f
-A FORWARD -m tos --tos 0x08/0xff
-A FORWARD -m dscp --dscp 0x2e
-A FORWARD -m dscp ! --dscp 0x00
-A FORWARD -m ecn --ecn-ip-ect 1
-A FORWARD -p tcp -m ecn --ecn-tcp-ece
-A FORWARD -p tcp -m ecn ! --ecn-tcp-cwr
-A FORWARD -m pkttype --pkt-type unicast
-A FORWARD -m pkttype ! --pkt-type broadcast
-A FORWARD -m mac --mac-source ${srcMac}
-A FORWARD -m mac ! --mac-source 02:00:00:00:00:99
-A FORWARD -m addrtype --src-type UNICAST --dst-type UNICAST
-A FORWARD -m addrtype --dst-type LOCAL
-A FORWARD -m addrtype ! --src-type MULTICAST,BROADCAST
-A FORWARD -m helper --helper ftp
-A FORWARD -m helper ! --helper ftp
-A FORWARD -p esp -m esp --espspi 100:200
-A FORWARD -p ah -m ah --ahspi 5
-A FORWARD -p esp -m esp ! --espspi 100:200
-A FORWARD -m limit --limit 1/hour --limit-burst 3
-A FORWARD -p udp -m limit --limit 2/hour --limit-burst 2
-A FORWARD -m hashlimit --hashlimit-upto 1/hour --hashlimit-burst 2 --hashlimit-mode srcip --hashlimit-name hsrc
-A FORWARD -p udp -m hashlimit --hashlimit-above 1/hour --hashlimit-burst 1 --hashlimit-mode srcip,dstport --hashlimit-name hport
-A FORWARD -m hashlimit --hashlimit-upto 1/hour --hashlimit-burst 1 --hashlimit-mode srcip --hashlimit-srcmask 30 --hashlimit-name hmask
-A FORWARD -p tcp -m recent --set --name T --rsource
-A FORWARD -p udp -m recent --rcheck --name T --rsource
-A FORWARD -p udp -m recent --update --seconds 600 --hitcount 3 --name T --rsource
-A FORWARD -p icmp -m recent --remove --name T --rsource
-A FORWARD -m recent ! --rcheck --name T --mask 255.255.255.252 --rsource
-A FORWARD -m recent --rcheck --name T --rdest
-A FORWARD -m connlimit --connlimit-above 1
-A FORWARD -p tcp -m connlimit --connlimit-upto 1 --connlimit-mask 30
-A FORWARD -p udp -m connlimit ! --connlimit-above 2 --connlimit-daddr
-A FORWARD -m set --match-set S4 src
-A FORWARD -m set ! --match-set S4 src
-A FORWARD -m set --match-set N4 src
-A FORWARD -m set --match-set N4 src --return-nomatch
-A FORWARD -p udp -m set --match-set P4 src,dst
-A FORWARD -m set --match-set P4 src,dst
-A FORWARD -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1300
-A FORWARD -j NFLOG --nflog-group 3
COMMIT
`;
}

/** The IP sets the rules name, for the addresses of `net` (ipset restore form). */
function setsText(net: Net): string {
  return [
    'create S4 hash:ip family inet', `add S4 ${net.src4(1)}`, `add S4 ${net.src4(3)}`,
    'create N4 hash:net family inet', `add N4 ${net.src4(0)}/29`, `add N4 ${net.src4(2)} nomatch`,
    'create P4 hash:ip,port family inet', `add P4 ${net.src4(1)},udp:53`, `add P4 ${net.src4(5)},udp:123`,
    'create S6 hash:ip family inet6', `add S6 ${net.src6(1)}`, `add S6 ${net.src6(5)}`,
    'create N6 hash:net family inet6', `add N6 ${net.src6(0)}/126`,
  ].join('\n') + '\n';
}

function rules6(): string {
  return `# Generated by ip6tables-save
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m hl --hl-eq 63
-A FORWARD -m hl ! --hl-eq 63
-A FORWARD -m hl --hl-lt 10
-A FORWARD -m hl --hl-gt 100
-A FORWARD -m length --length 0:100
-A FORWARD -m dscp --dscp 0x2e
-A FORWARD -m ecn --ecn-ip-ect 1
-A FORWARD -m ipv6header --header hop-by-hop --soft
-A FORWARD -m ipv6header --header hop-by-hop,ipv6-opts,ipv6-route
-A FORWARD -m ipv6header ! --header ipv6-frag --soft
-A FORWARD -m hbh
-A FORWARD -m hbh --hbh-len 8
-A FORWARD -m dst --dst-len 16
-A FORWARD -m rt --rt-type 2
-A FORWARD -m rt --rt-type 2 --rt-segsleft 0 --rt-len 24
-A FORWARD -m rt ! --rt-type 0
-A FORWARD -m frag
-A FORWARD -m frag --fragid 50:55
-A FORWARD -m frag --fragfirst
-A FORWARD -m frag --fraglast
-A FORWARD -m ipv6header ! --header hop-by-hop
-A FORWARD -m ah ! --ahspi 5
-A FORWARD -p esp -m esp --espspi 100:200
-A FORWARD -m addrtype --dst-type UNICAST
-A FORWARD -m limit --limit 1/hour --limit-burst 3
-A FORWARD -m hashlimit --hashlimit-upto 1/hour --hashlimit-burst 2 --hashlimit-mode srcip --hashlimit-srcmask 126 --hashlimit-name h6
-A FORWARD -p tcp -m recent --set --name T6 --rsource
-A FORWARD -p udp -m recent --update --seconds 600 --hitcount 2 --name T6 --rsource
-A FORWARD -m set --match-set S6 src
-A FORWARD -m set ! --match-set N6 src
COMMIT
`;
}

function table(rules: string, a: number[], b: number[], what: string): string {
  const lines = rules.split('\n').filter((l) => l.startsWith('-A FORWARD'));
  return lines.map((l, i) => `${a[i] === b[i] ? '  ' : '!!'} kernel=${a[i]} ${what}=${b[i]}  ${l}`).join('\n');
}

describe('match and target extensions: flatwall counts what the kernel counts', { skip, timeout: 300_000 }, () => {
  const kernel: Record<number, number[]> = {};
  const replay: Record<number, number[]> = {};
  const dataplane: Record<number, number[]> = {};
  const sent: Record<number, number> = {};
  const syns: Record<string, Array<{ mss: number; checksumOk: boolean }>> = {};
  let text4 = '';

  before(async () => {
    installTeardown(false);
    // The kernel: S -- F (router) -- R.
    const router = kernelRouter('fwxk');
    const { k, F, macs, net } = router;
    try {
      text4 = rules4(macs.sa);
      runSync('ipset', ['restore'], { ns: F, input: setsText(net), timeoutMs: 20_000 });
      const store = new IpsetStore();
      store.restore(setsText(net), 'sets');
      useSetStore(store);
      runSync('iptables-restore', [], { ns: F, input: text4, timeoutMs: 20_000 });
      runSync('ip6tables-restore', [], { ns: F, input: rules6(), timeoutMs: 20_000 });
      routeFrames(router);
      for (const fam of [4, 6] as const) {
        const fr = (fam === 4 ? frames4() : frames6()).map((f) => build(f, net));
        sent[fam] = fr.length;
        const cap = await sniff(k.receiver, 'ra');
        await send(k.sender, 'sa', fr);
        if (fam === 4) syns.kernel = synMss(await cap.stop());
        else await cap.stop();
        kernel[fam] = kernelCounts(F, fam === 6);
        // flatwall replay of exactly what the router received.
        const rs = parseIptables(fam === 4 ? text4 : rules6(), { file: `ext${fam}.rules` });
        const c = compile(rs);
        const ts = BigUint64Array.from(fr, (_, i) => 1_000_000_000_000n + BigInt(i) * 2_000_000n);
        const res = await native().replayFrames(c.buffer, Buffer.concat(fr), frameOffsets(fr), {
          ruleCount: c.rules.length, timestamps: ts, sets: store.native, conntrack: true,
        });
        replay[fam] = c.rules.filter((r) => r.chain === 'FORWARD' && r.rule).sort((a, b) => a.index - b.index).map((r) => res.hits[r.id]);
      }
    } finally {
      useSetStore(undefined);
      await k.destroy();
    }
    // flatwall's dataplane: S -- F (bump in the wire) -- R, the same frames
    // addressed for this topology. The MAC rule needs S's address, known
    // once the lab is up: the rules are rewritten and reloaded before the
    // first frame.
    const bnet: Net = { srcMac: '', dstMac: '', src4: (n) => `10.0.0.${n}`, dst4: '10.0.0.200', src6: (n) => `fd00::${n}`, dst6: 'fd00::200' };
    const setsFile = join(mkdtempSync(join(tmpdir(), 'fwx-sets-')), 'sets.ipset');
    writeFileSync(setsFile, setsText(bnet));
    // Started with no rules but the policies: the end hosts' start-up
    // chatter (IPv6 MLD reports, router solicitations) must not spend the
    // rate matches' tokens before the rules under test are loaded, after
    // the hosts are silenced.
    const empty = (v6: boolean) => `${v6 ? '# Generated by ip6tables-save\n' : ''}*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n`;
    const lab = await E2eLab.start({ rules: { 'v4.rules': empty(false), 'v6.rules': empty(true) }, fwhost: true, fwArgs: ['--ipset', setsFile] });
    try {
      const t = lab.topo;
      const net = await silencedBridge(t, bnet);
      writeFileSync(lab.files['v4.rules'], rules4(net.srcMac));
      writeFileSync(lab.files['v6.rules'], rules6());
      const reloaded = JSON.parse(await lab.fw.ask('reload', (l) => l.startsWith('{"reloaded"'), 20_000, 'reload'));
      assert.equal(reloaded.reloaded, true, JSON.stringify(reloaded));
      const before = await lab.counters();
      const cap = await sniff(t.receiver, 'ra');
      for (const fam of [4, 6] as const) await send(t.sender, 'sa', (fam === 4 ? frames4() : frames6()).map((f) => build(f, net)));
      syns.flatwall = synMss(await cap.stop());
      const after = await lab.counters();
      const file = (fam: 4 | 6) => lab.files[fam === 4 ? 'v4.rules' : 'v6.rules'];
      for (const fam of [4, 6] as const) {
        const lines = (fam === 4 ? rules4(net.srcMac) : rules6()).split('\n');
        const fwd = lines.map((l, i) => (l.startsWith('-A FORWARD') ? i + 1 : 0)).filter(Boolean);
        dataplane[fam] = fwd.map((line) => {
          const a = after.rules.find((r) => r.file === file(fam) && r.line === line);
          const b = before.rules.find((r) => r.file === file(fam) && r.line === line);
          return (a?.packets ?? NaN) - (b?.packets ?? 0);
        });
      }
    } finally {
      await lab.close();
    }
  });

  for (const fam of [4, 6] as const) {
    test(`IPv${fam}: replay counts every rule as the kernel does`, (t) => {
      const k = kernel[fam];
      const r = replay[fam];
      assert.ok(k && r, 'both ran');
      const text = fam === 4 ? text4 : rules6();
      t.diagnostic(`${sent[fam]} frames\n${table(text, k, r, 'replay')}`);
      assert.equal(k.length, r.length);
      assert.deepEqual(r, k, `flatwall replay and the kernel disagree:\n${table(text, k, r, 'replay')}`);
      // Not trivially equal: the frames made most rules count something,
      // and some rules not everything.
      assert.ok(k.filter((n) => n > 0).length >= k.length * 0.6, `too few rules matched:\n${table(text, k, r, 'replay')}`);
      assert.ok(k.some((n) => n > 0 && n < sent[fam]), 'some rules matched only some frames');
    });
  }
  test('TCPMSS --set-mss 1300: the receiver gets the SYNs with MSS 1300 and valid checksums, as from the kernel', () => {
    const k = syns.kernel;
    const f = syns.flatwall;
    assert.ok(k && f, 'both ran');
    assert.ok(k.length >= 4, `the kernel forwarded ${k.length} SYNs`);
    assert.ok(k.every((s) => s.mss === 1300 && s.checksumOk), JSON.stringify(k));
    assert.deepEqual(f, k);
  });

  for (const fam of [4, 6] as const) {
    test(`IPv${fam}: flatwall's dataplane counts every rule as the kernel does`, () => {
      const k = kernel[fam];
      const d = dataplane[fam];
      assert.ok(k && d, 'both ran');
      const text = fam === 4 ? text4 : rules6();
      assert.deepEqual(d, k, `flatwall's dataplane and the kernel disagree:\n${table(text, k, d, 'dataplane')}`);
    });
  }
});
