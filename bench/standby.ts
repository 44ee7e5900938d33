// Hot standby under kill -9 (npm run bench:standby): long constant-rate TCP
// flows through an active flatwall whose rules accept only the handshake's
// SYN as NEW and ESTABLISHED after it, and a standby (--standby-of) beside
// it. Each round kills the active with SIGKILL, lets the standby take the
// ports over, and starts a new standby behind the new active (the restarted
// process), so every round is a failover with a fresh replica.
//
// Per kill: the time from the kill (this process's clock, just before
// kill()) to the standby's "takeover" log line (its ports bound and workers
// polling: forwarding again); the standby's own figure from the loss it saw
// (the replication connection's end) to ports up; and, at the receiving
// application, the longest pause in delivery across the kill (per
// connection, the gap between arrivals that spans the kill; it includes the
// senders' TCP recovery of segments lost while no one forwarded) and
// whether every connection kept delivering (bytes grew after the takeover,
// no reset, no end). Writes bench/results/standby.{json,md}.
//
//   node dist/bench/standby.js [--kills N] [--conns C] [--workers W] [--chunk BYTES] [--interval-ms MS] [--settle-ms MS]
import { writeFileSync, mkdirSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { StandbyLab, logLine, parseLine } from '../src/lab/standby-lab';
import { sleep, type Background } from '../src/lab/proc';
import { missingTools } from '../src/lab/tools';
import { argv, opt } from './args';

const kills = Number(opt('--kills') ?? 10);
const conns = Number(opt('--conns') ?? 8);
const workers = Number(opt('--workers') ?? 2);
const chunk = Number(opt('--chunk') ?? 1024);
const intervalMs = Number(opt('--interval-ms') ?? 2);
const settleMs = Number(opt('--settle-ms') ?? 2000);
const outDir = join(__dirname, '..', '..', 'bench', 'results');

interface Round {
  kill: number;
  killToTakeoverMs: number; // kill() -> takeover line (ms resolution of the log's ts)
  lossToPortsUpMs: number; // the standby's figure: connection end seen -> ports up
  detectMs: number;
  replicaEntries: number;
  maxPauseMs: number; // longest delivery pause spanning the kill, over all connections
  resumedConns: number; // connections whose bytes grew after the takeover
  conns: number;
  ended: number; // connections that ended or were reset
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : NaN;
};

async function main(): Promise<void> {
  const missing = missingTools(['ip']);
  if (missing.length || process.getuid?.() !== 0) {
    console.error(`bench:standby needs root and ${missing.join(', ') || 'ip'}`);
    process.exit(2);
  }
  const lab = StandbyLab.create('fwsbb', workers);
  const rounds: Round[] = [];
  try {
    await lab.startServer();
    let listen = lab.replAddr();
    let active: Background = await lab.active('active-0', listen);
    let nextListen = lab.replAddr();
    let standby = await lab.standby('standby-1', listen, nextListen);
    const client = await lab.startClient(conns, chunk, intervalMs, 3600);
    await sleep(settleMs);
    for (let k = 1; k <= kills; k++) {
      const from = standby.lines.length;
      const killedAt = performance.timeOrigin + performance.now();
      active.signal('SIGKILL');
      const take = await logLine(standby, 'takeover', 10_000, from);
      await active.exited;
      const growth = await lab.growth(1000);
      const gaps = await lab.gaps();
      let maxPause = 0;
      for (const c of gaps) {
        for (const g of c.gaps) if (g.at <= killedAt + 1 && g.at + g.ms >= killedAt) maxPause = Math.max(maxPause, g.ms);
      }
      const ended = lab.server!.lines.map(parseLine).filter((j) => j?.event === 'end' || j?.event === 'error').length;
      const r: Round = {
        kill: k, killToTakeoverMs: +(Date.parse(take.ts) - killedAt).toFixed(1), lossToPortsUpMs: take.msSinceLoss, detectMs: take.detectMs,
        replicaEntries: take.entries, maxPauseMs: +maxPause.toFixed(1), resumedConns: growth.filter((b) => b > 0).length, conns: growth.length, ended,
      };
      rounds.push(r);
      console.log(JSON.stringify(r));
      // The new active (the former standby) gets a new standby: the restarted process.
      active = standby;
      listen = nextListen;
      nextListen = lab.replAddr();
      standby = await lab.standby(`standby-${k + 1}`, listen, nextListen);
      await sleep(settleMs);
    }
    client.signal('SIGKILL');
  } finally {
    await lab.close();
  }
  const summary = {
    kills: rounds.length,
    connections: conns,
    connectionsLost: rounds.reduce((a, r) => a + (r.conns - r.resumedConns), 0),
    endedOrReset: rounds.length ? rounds[rounds.length - 1].ended : 0,
    killToTakeoverMs: { median: pct(rounds.map((r) => r.killToTakeoverMs), 50), max: Math.max(...rounds.map((r) => r.killToTakeoverMs)) },
    lossToPortsUpMs: { median: pct(rounds.map((r) => r.lossToPortsUpMs), 50), max: Math.max(...rounds.map((r) => r.lossToPortsUpMs)) },
    maxPauseMs: { median: pct(rounds.map((r) => r.maxPauseMs), 50), max: Math.max(...rounds.map((r) => r.maxPauseMs)) },
  };
  const result = {
    bench: 'standby', date: new Date().toISOString(), command: `npm run bench:standby -- ${argv.join(' ')}`.trim(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model, loadavg: loadavg() },
    params: { kills, conns, workers, chunk, intervalMs, settleMs, ratePerConnKBps: +((chunk / intervalMs) * 1000 / 1024).toFixed(1) },
    summary, rounds,
  };
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'standby.json'), `${JSON.stringify(result, null, 2)}\n`);
  writeFileSync(join(outDir, 'standby.md'), markdown(result));
  console.log(JSON.stringify(summary));
}

function markdown(r: { date: string; command: string; machine: { cpus: number; model?: string; loadavg: number[] }; params: Record<string, number>; summary: Record<string, any>; rounds: Round[] }): string {
  const s = r.summary;
  const rows = r.rounds.map((x) => `| ${x.kill} | ${x.killToTakeoverMs} | ${x.lossToPortsUpMs} | ${x.maxPauseMs} | ${x.resumedConns}/${x.conns} | ${x.replicaEntries} |`);
  return `# Hot standby: kill -9 of the active under load

\`${r.command}\` on ${r.date} (${r.machine.cpus} CPUs, ${r.machine.model ?? '?'}, load ${r.machine.loadavg.map((l) => l.toFixed(2)).join(' ')}).

${r.params.conns} TCP connections from the sender namespace, each writing ${r.params.chunk} bytes every ${r.params.intervalMs} ms
(${r.params.ratePerConnKBps} KB/s each), through rules that accept only the handshake's SYN as NEW and ESTABLISHED after it
(src/lab/standby-lab.ts), ${r.params.workers} workers on each firewall process. Each kill: SIGKILL of the active, the standby
takes the ports over, a new standby is started behind it (so the next kill fails over again).

* kill -> takeover: from just before kill() to the \`takeover\` line's timestamp (ms resolution): the ports are bound and every
  worker polls (forwarding again).
* loss -> ports up: the standby's own figure, from the end of the replication connection it saw to ports up.
* longest pause: at the receiving application, the longest gap between arrivals that spans the kill, over all connections;
  it includes the senders' TCP recovery of the segments sent while nobody forwarded.

| | median | max |
|---|---|---|
| kill -> takeover (ms) | ${s.killToTakeoverMs.median} | ${s.killToTakeoverMs.max} |
| loss -> ports up (ms) | ${s.lossToPortsUpMs.median} | ${s.lossToPortsUpMs.max} |
| longest delivery pause (ms) | ${s.maxPauseMs.median} | ${s.maxPauseMs.max} |

Connections lost over ${s.kills} kills: ${s.connectionsLost} (of ${s.connections} per kill); connections ended or reset: ${s.endedOrReset}.

| kill | kill -> takeover ms | loss -> ports up ms | longest pause ms | connections delivering after | replica entries |
|---|---|---|---|---|---|
${rows.join('\n')}
`;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
