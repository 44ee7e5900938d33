// Against the real kernel: every rule file is loaded with iptables-restore
// (legacy and nft back ends) in a fresh network namespace, and iptables-save
// must print exactly what `flatwall print` prints for it.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseIptables } from '../src/rules/iptables/parse';
import { printTable } from '../src/rules/iptables/print';
import { NetNs, kernelTestsUnavailable } from './netns';
import { IpsetStore } from '../src/sets/store';
import { useSetStore } from '../src/sets/registry';

const ROOT = join(__dirname, '..', '..');
const files = [
  join(ROOT, 'test', 'fixtures', 'canonical.rules'),
  // One rule per option shape of every match and target extension
  // (src/rules/extensions/), as iptables-save prints them.
  join(ROOT, 'test', 'fixtures', 'extensions.rules'),
  join(ROOT, 'test', 'fixtures', 'extensions6.rules'),
  // The raw table beside filter: every table is compared.
  join(ROOT, 'test', 'fixtures', 'raw.rules'),
  ...readdirSync(join(ROOT, 'rules', 'examples')).filter((f) => f.endsWith('.rules')).map((f) => join(ROOT, 'rules', 'examples', f)),
];

const strip = (text: string) => text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).join('\n');

for (const backend of ['legacy', 'nft'] as const) {
  const skip = kernelTestsUnavailable([`iptables-${backend}-restore`, `ip6tables-${backend}-restore`, 'ip']);
  test(`iptables-${backend}-save prints what flatwall print prints`, { skip }, () => {
    assert.ok(files.length >= 5);
    for (const file of files) {
      const text = readFileSync(file, 'utf8');
      const rs = parseIptables(text, { file });
      const v6 = rs.tables[0].family === 6;
      const ns = new NetNs('kc');
      try {
        ns.exec(`${v6 ? 'ip6' : 'ip'}tables-${backend}-restore`, [], text);
        for (const t of rs.tables) {
          const kernel = strip(ns.exec(`${v6 ? 'ip6' : 'ip'}tables-${backend}-save`, ['-t', t.name]));
          const ours = strip([...printTable(t)].join('\n'));
          assert.equal(ours, kernel, `${file} ${t.name} (${backend})`);
        }
      } finally {
        ns.close();
      }
    }
  });
}

test('a file iptables-restore rejects is rejected by flatwall too', { skip: kernelTestsUnavailable(['iptables-legacy-restore', 'ip']) }, () => {
  const bad = [
    '-A FORWARD -m tcp --dport 80 -j ACCEPT',
    '-A FORWARD -p tcp --sport 4:3 -j ACCEPT',
    '-A FORWARD -p tcp --dport 65536 -j ACCEPT',
    '-A FORWARD -j NOSUCHCHAIN',
    '-A FORWARD -p udp -j REJECT --reject-with tcp-reset',
    '-A FORWARD -j NOTRACK',
    '-A FORWARD -j CT --notrack',
    'RAW -A PREROUTING -j REJECT',
    'RAW -A PREROUTING -o eth0 -j NOTRACK',
    'RAW -A OUTPUT -i eth0 -j CT',
  ];
  for (const rule of bad) {
    const text = rule.startsWith('RAW ')
      ? `*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:X - [0:0]\n${rule.slice(4)}\nCOMMIT\n`
      : `*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n${rule}\nCOMMIT\n`;
    const ns = new NetNs('kr');
    try {
      assert.throws(() => ns.exec('iptables-legacy-restore', [], text), Error, `kernel accepted: ${rule}`);
      assert.throws(() => parseIptables(text, { file: 'bad.rules' }), /bad\.rules:5:\d+: /, `flatwall accepted: ${rule}`);
    } finally {
      ns.close();
    }
  }
});

test('-m set rules print as iptables-save prints them (sets created in the namespace first)', { skip: kernelTestsUnavailable(['iptables-nft-restore', 'ipset', 'ip']) }, () => {
  const sets = 'create S4 hash:ip family inet\ncreate N4 hash:net family inet\ncreate P4 hash:ip,port family inet\n';
  const text = '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n' +
    '-A FORWARD -m set --match-set S4 src,dst -j ACCEPT\n' +
    '-A FORWARD -m set ! --match-set S4 dst -j DROP\n' +
    '-A FORWARD -p udp -m set --match-set P4 src,dst -j ACCEPT\n' +
    '-A FORWARD -m set --match-set N4 src --return-nomatch ! --update-counters ! --update-subcounters -j DROP\nCOMMIT\n';
  const store = new IpsetStore();
  store.restore(sets, 'sets');
  useSetStore(store);
  const ns = new NetNs('ks');
  try {
    ns.exec('ipset', ['restore'], sets);
    ns.exec('iptables-nft-restore', [], text);
    const kernel = strip(ns.exec('iptables-nft-save', ['-t', 'filter']));
    const ours = strip([...printTable(parseIptables(text, { file: 'set.rules' }).tables[0])].join('\n'));
    assert.equal(ours, kernel);
  } finally {
    ns.close();
    useSetStore(undefined);
  }
});
