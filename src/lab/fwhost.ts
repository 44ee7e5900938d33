#!/usr/bin/env node
// The Firewall class (src/control/firewall.ts) in a process of its own, for
// tests that need what `flatwall run` does not print: the per-rule counters.
// Run it inside the Firewall namespace:
//
//   ip netns exec NS node fwhost.js --port fa --port fb -r FILE [-r FILE] [--tap NAME] [-w N] [--ct-tcp-strict] [--ipset FILE] [--io KIND]
//
// It prints {"ready":...} once the rules are active, then answers lines on
// stdin, one JSON line each:
//   counters   {"counters": {...}, "rules": [{file, line, chain, packets, bytes}]}
//   reload     {"reloaded": true} or {"reloaded": false, "error": "..."}
//   conntrack  {"conntrack": [entries]}   (Firewall.conntrackList)
//   conntrack-flush  {"flushed": n}        (Firewall.conntrackFlush)
//   stop       drains, prints {"stopped": counters} and exits 0 (also on stdin EOF / SIGTERM)
import { createInterface } from 'node:readline';
import { Firewall, type PortSpec } from '../control/firewall';
import { loadIpsetFiles } from '../sets/store';
import { useSetStore } from '../sets/registry';

const argv = process.argv.slice(2);
const ports: PortSpec[] = [];
// --io before the --port options it applies to (test/e2e/harness.ts puts it first).
let io: PortSpec['kind'] = 'afpacket';
const ruleFiles: string[] = [];
const ipsetFiles: string[] = [];
let workers = 1;
let conntrackTcpLoose = true; // Linux's nf_conntrack_tcp_loose=1
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a === '--port') ports.push({ name: argv[++i], kind: io });
  else if (a === '--io') io = argv[++i] as PortSpec['kind'];
  else if (a === '--tap') ports.push({ name: argv[++i], kind: 'tap' });
  else if (a === '-r' || a === '--rules') ruleFiles.push(argv[++i]);
  else if (a === '-w') workers = Number(argv[++i]);
  else if (a === '--ct-tcp-loose') conntrackTcpLoose = true; // the default; kept for old callers
  else if (a === '--ct-tcp-strict') conntrackTcpLoose = false;
  else if (a === '--ipset') ipsetFiles.push(argv[++i]);
  else {
    process.stderr.write(`fwhost: unknown argument ${a}\n`);
    process.exit(2);
  }
}

const json = (o: unknown) => process.stdout.write(`${JSON.stringify(o, (_k, v) => (typeof v === 'bigint' ? Number(v) : v))}\n`);

async function main(): Promise<void> {
  const fw = new Firewall({ ports, ruleFiles, workers, conntrackTcpLoose });
  // IP sets before the rules that name them, as flatwall run --ipset.
  useSetStore(fw.sets);
  if (ipsetFiles.length) loadIpsetFiles(fw.sets, ipsetFiles);
  const loaded = await fw.load();
  fw.start();
  json({ ready: loaded });
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await fw.stop();
    json({ stopped: fw.counters() });
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  const rl = createInterface({ input: process.stdin });
  rl.on('line', async (cmd) => {
    switch (cmd.trim()) {
      case 'counters': {
        const c = fw.counters();
        const rs = fw.ruleset;
        const rules = (rs?.rules ?? []).map((r, i) => ({
          id: i, file: r.file, line: r.line, chain: r.chain, family: r.family,
          packets: Number(c.rules.packets[i] ?? 0), bytes: Number(c.rules.bytes[i] ?? 0),
        }));
        json({ counters: { ...c, rules: undefined }, rules });
        break;
      }
      case 'reload':
        try {
          await fw.load(); // on an error the running rules stay
          json({ reloaded: true });
        } catch (e) {
          json({ reloaded: false, error: (e as Error).message });
        }
        break;
      case 'conntrack':
        json({ conntrack: await fw.conntrackList() });
        break;
      case 'conntrack-flush':
        json({ flushed: await fw.conntrackFlush() });
        break;
      case 'stop':
        await stop();
        break;
      default:
        json({ error: `unknown command "${cmd}"` });
    }
  });
  rl.on('close', () => void stop());
}

main().catch((e) => {
  json({ error: (e as Error).message });
  process.exit(1);
});
