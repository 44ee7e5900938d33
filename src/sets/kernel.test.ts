// flatwall's sets against the real ipset tool and kernel, in a throwaway
// network namespace (ipset state is per netns): the same restore text goes
// into both, then `ipset -s list`, `ipset -s save`, `list -t`, `list -n`
// must be byte-identical to flatwall's (only "Size in memory" differs: the
// kernel's is its own allocation), `ipset test` must agree element by
// element with the same message, and refused commands must give ipset's
// message. Random sets of every type add a differential of the kernel's
// own semantics (most specific prefix, nomatch, proto:port).
// Skipped with a message when ipset is missing, a failure under CI=1.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { NetNs, kernelTestsUnavailable } from '../../test/netns';
import { IpsetStore } from './store';
import { RuleError } from '../rules/errors';

const skip = kernelTestsUnavailable(['ip', 'ipset']);

const normalize = (s: string) => s.replace(/^Size in memory: \d+$/gm, 'Size in memory: N');

// Fixed initvals: the kernel picks a random one otherwise, which both would print.
const FIXED = `create a hash:ip family inet hashsize 64 maxelem 1000 timeout 300 counters comment bucketsize 12 initval 0x5212ffb2
add a 1.2.3.5 timeout 0
add a 1.2.3.4 timeout 0 comment "hello world"
add a 10.0.0.0/30 timeout 0 packets 7 bytes 900
add a 10.0.1.9-10.0.1.7 timeout 0
create n hash:net family inet6 hashsize 1024 maxelem 65536 bucketsize 12 initval 0x2c421d49
add n 2001:db8::/32
add n 2001:db8:1::/48 nomatch
add n ::ffff:1.2.3.4
add n 2001:db8:0:1::5/128
create p hash:ip,port family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0xc82d9ef8
add p 1.2.3.4,udp:53
add p 1.2.3.4,80
add p 1.2.3.4,icmp:8/0
add p 1.2.3.4,icmp:echo-reply
add p 1.2.3.4,sctp:1-3
add p 1.2.3.4,gre:0
add p 1.2.3.4,icmp:200/7
add p 1.2.3.4,udplite:80
add p 1.2.3.0/30,tcp:5
create np hash:net,port family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x9e52ad22
add np 10.0.0.0/8,tcp:22
add np 10.1.0.0/16,tcp:22 nomatch
add np 10.2.0.5-10.2.0.9,udp:53
create b bitmap:port range 1-1024
add b 22
add b 80-82
add b udp:443
create n4 hash:net family inet hashsize 1024 maxelem 65536 timeout 0 comment bucketsize 12 initval 0x76bf0f3e
add n4 10.0.0.0/8 timeout 0 comment "eight"
add n4 10.1.2.3 timeout 0
add n4 192.168.0.0/24 timeout 0 nomatch
add n4 10.0.0.5-10.0.0.9 timeout 0
create p6 hash:ip,port family inet6 hashsize 1024 maxelem 65536 bucketsize 12 initval 0x55cd3a77
add p6 2001:db8::1,ipv6-icmp:128/0
add p6 2001:db8::1,icmpv6:1/3
add p6 2001:db8::1,udplite:7
add p6 ::ffff:1.2.3.4,tcp:80
add p6 ::1,icmpv6:echo-request
create e hash:ip family inet hashsize 100 maxelem 10 bucketsize 3 initval 0x00000001
create nf6 hash:net,port family inet6 hashsize 1024 maxelem 65536 counters bucketsize 12 initval 0x00000002
add nf6 2001:db8::/64,udp:53 packets 1 bytes 2
add nf6 2001:db8::1,sctp:9
`;

describe('sets against the kernel\'s ipset', { skip, timeout: 180_000 }, () => {
  let ns: NetNs;
  const ipset = (args: string[], input?: string) => ns.exec('ipset', args, input);
  const sh = (script: string) => ns.exec('sh', ['-c', script]);

  before(() => {
    ns = new NetNs('ipset');
  });
  after(() => ns?.close());

  const load = (text: string) => {
    ipset(['destroy']);
    ipset(['restore'], text);
    const s = new IpsetStore();
    s.restore(text, 'k.ipset');
    return s;
  };

  test('list, save, terse, names: byte-identical (but Size in memory)', () => {
    const s = load(FIXED);
    assert.equal(normalize(s.listText()), normalize(ipset(['-s', 'list'])));
    assert.equal(s.saveText(), ipset(['-s', 'save']));
    assert.equal(normalize(s.listText(undefined, { terse: true })), normalize(ipset(['list', '-t'])));
    assert.equal(s.listText(undefined, { names: true }), ipset(['list', '-n']));
    for (const name of s.names()) {
      assert.equal(normalize(s.listText(name)), normalize(ipset(['-s', 'list', name])), name);
      assert.equal(s.saveText(name), ipset(['-s', 'save', name]), name);
    }
    // What ipset save printed restores to the same save, in both.
    const again = load(ipset(['-s', 'save']));
    assert.equal(again.saveText(), ipset(['-s', 'save']));
  });

  test('ipset test: the same answers and messages', () => {
    const s = load(FIXED);
    const queries: [string, string][] = [
      ['a', '1.2.3.4'], ['a', '1.2.3.6'], ['a', '10.0.0.3'], ['a', '10.0.1.8'],
      ['n', '2001:db8:2::1'], ['n', '2001:db8:1::1'], ['n', '2001:db8::/32'], ['n', '2001:db8:1::/48'], ['n', '::ffff:1.2.3.4'],
      ['n', '2001:db8:0:1::5'],
      ['p', '1.2.3.4,tcp:80'], ['p', '1.2.3.4,80'], ['p', '1.2.3.4,udp:80'], ['p', '1.2.3.4,icmp:ping'], ['p', '1.2.3.4,icmp:0/0'],
      ['p', '1.2.3.4,sctp:2'], ['p', '1.2.3.4,gre:0'], ['p', '1.2.3.2,5'], ['p', '1.2.3.4,icmp:200/7'],
      ['np', '10.9.9.9,tcp:22'], ['np', '10.1.9.9,tcp:22'], ['np', '10.1.0.0/16,tcp:22'], ['np', '10.2.0.6,udp:53'], ['np', '10.2.0.6,tcp:53'],
      ['b', '22'], ['b', '23'], ['b', 'tcp:81'], ['b', '443'],
      ['n4', '10.200.0.1'], ['n4', '192.168.0.7'], ['n4', '10.0.0.1/8'], ['n4', '10.0.0.6'], ['n4', '172.16.0.1'],
      ['p6', '2001:db8::1,icmpv6:128/0'], ['p6', '::1,ipv6-icmp:ping'], ['p6', '2001:db8::1,udplite:8'],
      ['nf6', '2001:db8::77,udp:53'], ['nf6', '2001:db8::1,sctp:9'], ['nf6', '2001:db8:1::1,udp:53'],
    ];
    const script = queries.map(([n, e]) => `ipset test ${n} '${e}' 2>&1; echo "rc=$?"`).join('\n');
    const out = sh(script).trimEnd().split('\n');
    assert.equal(out.length, queries.length * 2, out.join('\n'));
    queries.forEach(([n, e], i) => {
      const r = s.test(n, e);
      const ours = r.present ? `Warning: ${r.element} is in set ${n}.` : `${r.element} is NOT in set ${n}.`;
      assert.equal(ours, out[2 * i], `${n} ${e}`);
      assert.equal(r.present ? 'rc=0' : 'rc=1', out[2 * i + 1], `${n} ${e}`);
    });
  });

  test('refused commands: ipset\'s message', () => {
    load(FIXED);
    const bad = [
      'add a 1.2.3.4 timeout 0', // already added
      'add e 1.1.1.1 timeout 5',
      'add e 0.0.0.0',
      'del a 9.9.9.9',
      'add nope 1.1.1.1',
      'create a hash:ip',
      'add n4 0.0.0.0-255.255.255.255',
      'add p 1.2.3.4,gre:1',
      'add p 1.2.3.4,icmp:3/300',
      'add p 1.2.3.4,foo:1',
      'add p 1.2.3.4,udplite:http',
      'add p 1.2.3.4',
      'add b 2000',
      'add b sctp:5',
      'add a 1.2.3.4/33',
      'add n 2001:db8::1-2001:db8::5',
      'add e 1.1.1.1 comment x',
      'swap a n4',
      'create x hash:foo',
      'create x hash:ip timeout 2147484',
      'create x bitmap:port',
      'add e 10.0.0.0/28',
    ];
    for (const line of bad) {
      let kernel = '';
      try {
        ipset(['restore'], `${line}\n`);
      } catch (err) {
        kernel = String((err as { stderr?: string }).stderr ?? '').split('\n')[0];
      }
      const m = /^ipset v[\d.]+: (?:Error in line \d+: )?(.*)$/.exec(kernel);
      assert.ok(m, `${line}: ipset did not refuse it (${kernel})`);
      const s = load(FIXED);
      let ours = '';
      try {
        s.restore(`${line}\n`, 'k');
      } catch (err) {
        ours = err instanceof RuleError ? err.reason : (err as Error).message;
      }
      assert.equal(ours, m[1], line);
    }
  });

  test('timeouts count down alike (within a second)', () => {
    const text = `create t hash:ip family inet hashsize 1024 maxelem 65536 timeout 600 bucketsize 12 initval 0x00000003
add t 192.0.2.1
add t 192.0.2.2 timeout 30
add t 192.0.2.3 timeout 0
create bt bitmap:port range 1-100 timeout 50
add bt 7
add bt 8 timeout 5
`;
    const s = load(text);
    const re = / timeout (\d+)/g;
    const k = ipset(['-s', 'save']);
    const f = s.saveText();
    assert.equal(f.replace(/^add (.*) timeout \d+/gm, 'add $1 timeout T'), k.replace(/^add (.*) timeout \d+/gm, 'add $1 timeout T'));
    const kt = [...k.matchAll(re)].map((m) => Number(m[1]));
    const ft = [...f.matchAll(re)].map((m) => Number(m[1]));
    assert.equal(ft.length, kt.length);
    ft.forEach((v, i) => assert.ok(Math.abs(v - kt[i]) <= 1, `${v} vs ${kt[i]}`));
  });

  test('random sets of every type: list, save and test agree with the kernel', () => {
    let seed = 7;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const v4 = () => `10.${rnd(2)}.${rnd(3)}.${rnd(8)}`;
    const v6 = () => `2001:db8:${rnd(2)}::${rnd(8).toString(16)}`;
    const port = () => ['tcp:80', 'udp:53', 'tcp:22', 'sctp:7', 'icmp:echo-request', 'gre:0'][rnd(6)];
    const port6 = () => ['tcp:80', 'udp:53', 'udplite:22', 'icmpv6:echo-reply', 'esp:0'][rnd(5)];
    const specs: [string, string, () => string, boolean][] = [
      ['hip4', 'hash:ip family inet', v4, false],
      ['hip6', 'hash:ip family inet6', v6, false],
      ['hn4', 'hash:net family inet', () => `${v4()}/${[8, 16, 24, 30, 31, 32][rnd(6)]}`, true],
      ['hn6', 'hash:net family inet6', () => `${v6()}/${[32, 48, 64, 125, 127, 128][rnd(6)]}`, true],
      ['hipp4', 'hash:ip,port family inet', () => `${v4()},${port()}`, false],
      ['hipp6', 'hash:ip,port family inet6', () => `${v6()},${port6()}`, false],
      ['hnp4', 'hash:net,port family inet', () => `${v4()}/${[16, 24, 29, 32][rnd(4)]},${port().replace('icmp:echo-request', 'tcp:443')}`, true],
      ['bp', 'bitmap:port range 0-100', () => String(rnd(101)), false],
    ];
    let text = '';
    const seen = new Set<string>();
    specs.forEach(([name, type], i) => {
      text += `create ${name} ${type}${type.startsWith('hash') ? ` hashsize 64 maxelem 65536 bucketsize 12 initval 0x${(i + 16).toString(16).padStart(8, '0')}` : ''}\n`;
    });
    // Elements: a duplicate (after masking) would stop the kernel's restore; -exist lets it stand in both.
    for (const [name, , gen, nets] of specs) {
      for (let i = 0; i < 60; i++) {
        const e = gen();
        text += `add ${name} ${e}${nets && rnd(4) === 0 ? ' nomatch' : ''} -exist\n`;
        seen.add(e);
      }
    }
    const s = load(text);
    assert.equal(normalize(s.listText()), normalize(ipset(['-s', 'list'])));
    assert.equal(s.saveText(), ipset(['-s', 'save']));
    const queries: [string, string][] = [];
    for (const [name, , gen, nets] of specs) {
      for (let i = 0; i < 60; i++) {
        let e = gen();
        if (nets) e = e.replace(/\/\d+/, ''); // a host address: the kernel's nets loop
        queries.push([name, e]);
      }
    }
    const out = sh(queries.map(([n, e]) => `ipset -q test ${n} '${e}'; echo $?`).join('\n')).trimEnd().split('\n');
    queries.forEach(([n, e], i) => assert.equal(s.test(n, e).present ? '0' : '1', out[i], `${n} ${e}`));
  });
});
