// Soak and fault benchmark (issue 12, item 5):
//   npm run bench:soak [-- --quick] [--duration S] [--rules N] [--udp-rate PPS] [--tcp-mbps M]
//                      [--churn-rate N] [--kills K] [--workers W] [--max-growth-pct P] [--name NAME]
//   npm run bench:soak -- --render bench/results/soak.json
//
// Soak: `flatwall run` bridges the lab (Sender -- flatwall -- Receiver) with
// a stateful rule set (HEAD below: a counted UDP flow, conntrack INVALID
// drop and ESTABLISHED,RELATED accept, recent / hashlimit / connlimit /
// limit rules, service allows; then N generated `acl` rules) for --duration seconds
// (default 600; --quick 60) under mixed traffic:
//   - iperf3 TCP at --tcp-mbps (default 200; 0 = as fast as it goes),
//   - a UDP stream at --udp-rate datagrams/s (default 1000, 64 B), echoed by
//     the receiver (nettool udp-stream: numbered, send-timestamped),
//   - connection churn (nettool churn): --churn-rate new TCP connections/s
//     (connect, 1-byte echo, close: TIME_WAIT entries) and as many UDP
//     datagrams to a new port each (unreplied entries; the receiver's ICMP
//     port unreachable comes back RELATED),
//   - ping at 10/s through the limit rule (when iputils ping is on PATH).
// Once a second (a 1 s grid) PUT /rules replaces the rules, alternating the
// seed-1 and seed-2 sets (same head and tail, so the head's counters carry
// over); a third of a second later a random single-rule insert (POST /rules
// -I FORWARD p, a rule of 10.99/16, which no traffic uses) and another third
// later a delete by number (the inserted rule or a random acl rule), both
// inside the acl part. Every second, just before the next PUT, one sample:
// flatwall run's VmRSS (/proc/PID/status), its V8 heap (GET /stats
// `process`: used, total, after the last major collection), the reload generation and counts, drops by reason, conntrack
// entries, the counters of the UDP flow's two rules (GET /rules), the load
// average.
//
// Checks (each reported; any failure makes the exit status 1):
//   - the firewall never exited during the soak (a crash is restarted from
//     the snapshot, counted, and the soak goes on);
//   - every PUT answered 200, every edit 201 / 200; flatwall counted no
//     reload failure;
//   - the generation moved by exactly one per successful PUT or edit;
//   - the UDP flow's rule counters never decreased from one sample to the
//     next, across every reload and edit;
//   - once the traffic stopped, exactly: echoes received <= packets of the
//     `--sport 7101` rule <= packets of the `--dport 7101` rule <= datagrams
//     sent; every frame flatwall received was forwarded or dropped (sum rx =
//     sum tx - REJECT answers + sum drops), the drops by reason sum to the
//     port drops, and the frames flatwall sent out of fb (fa) are the frames
//     the receiver's ra (the sender's sa) got;
//   - RSS and the V8 heap flat: the median of the last window against the
//     median of the second (windows of min(60 s, duration / 6): the second
//     and the last minute of a 10-minute run), growth at most
//     --max-growth-pct (default 5) % or 4 MB, whichever is larger. For the
//     heap, of its size just after the last major collection (GET /stats
//     `process.heapAfterMajorGcBytes`): the heap used is a sawtooth of
//     ~15-60 MB here, garbage piling up between collections, whose median
//     moved by -66 % and +63 % between the windows of two runs without any
//     trend, with the collector's timing. The heap used, its minima and
//     the slopes are reported beside, not checked.
// Fault: under the same kind of load, --kills times (default 5; --quick 2):
// kill -9 flatwall run, wait for it to be gone, spawn it again from the
// snapshot (`flatwall compile -o` of the seed-1 set, made before the soak;
// `flatwall run --snapshot SNAP -r FILE`), and time from the spawn to the
// "ready" line and to the first echo of a datagram sent after the old
// process was gone (such a datagram can only have crossed the new one, both
// ways).
//
// Writes bench/results/NAME.json, NAME.md, NAME-rss.svg, NAME-heap.svg,
// NAME-conntrack.svg, NAME-traffic.svg (NAME: soak, or soak-quick with
// --quick). Progress on stderr. `--render FILE.json` renders the checks,
// NAME.md and the plots again from a run's JSON, without running anything
// (after a change to the report; the measurements are the file's).
import { Prng } from '../src/rules/generate/prng';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { generateLines } from '../src/rules/generate';
import { Topology, installTeardown } from '../src/lab/topology';
import { FLATWALL_CLI } from '../src/lab/engines';
import { Background, run, runSync, sleep } from '../src/lab/proc';
import { missingTools } from '../src/lab/tools';
import { apiCall } from '../src/cli/ctl';
import { argv, flag, opt } from './args';
import { checksOf, markdown, plots, type SoakResult, type Sample, type Reload, type Edit, type Kill, type Crash } from './soak-report';

const quick = flag('--quick');
const DURATION = Number(opt('--duration') ?? (quick ? 60 : 600));
const N = Number(opt('--rules') ?? 5000);
const UDP_RATE = Number(opt('--udp-rate') ?? 1000);
const TCP_MBPS = Number(opt('--tcp-mbps') ?? 200);
const CHURN = Number(opt('--churn-rate') ?? 100);
const KILLS = Number(opt('--kills') ?? (quick ? 2 : 5));
const WORKERS = Number(opt('--workers') ?? 1);
const MAX_GROWTH_PCT = Number(opt('--max-growth-pct') ?? 5);
const NAME = opt('--name') ?? (quick ? 'soak-quick' : 'soak');
const outDir = join(__dirname, '..', '..', 'bench', 'results');
const NETTOOL = join(__dirname, '..', 'src', 'lab', 'nettool.js');

const T0 = performance.now();
const progress = (m: string) => process.stderr.write(`[${((performance.now() - T0) / 1000).toFixed(0)}s] ${m}\n`);
/** Epoch milliseconds, the clock nettool prints (see src/lab/nettool.ts). */
const epochMs = () => performance.timeOrigin + performance.now();

const UDP_PORT = 7101;
const TCP_PORTS = '7001-7002';
const UDP_CHURN_PORTS = '20000-20999';
const IPERF_PORT = 5201;

/**
 * The head of FORWARD, before the generated acl rules: the counted UDP flow
 * first (every datagram and echo on its own rule, so the counters can be
 * checked exactly), then the usual stateful part, then the services the
 * bench's traffic uses. The generated sets end in catch-all rules (seed 1
 * accepts the rest, seed 2 rejects it), so the head decides every flow of
 * the bench and the acl part everything else. The limits are set above what
 * the churn sends, so none of the bench's traffic is dropped by them: they
 * run on every new flow.
 */
export const HEAD = [
  `-A FORWARD -p udp -m udp --dport ${UDP_PORT} -j ACCEPT`,
  `-A FORWARD -p udp -m udp --sport ${UDP_PORT} -j ACCEPT`,
  '-A FORWARD -m conntrack --ctstate INVALID -j DROP',
  '-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
  '-A FORWARD -p tcp -m tcp --dport 22 -m conntrack --ctstate NEW -m recent --update --seconds 60 --hitcount 4 --name ssh --rsource -j DROP',
  '-A FORWARD -p tcp -m tcp --dport 22 -m conntrack --ctstate NEW -m recent --set --name ssh --rsource',
  '-A FORWARD -p tcp -m conntrack --ctstate NEW -m hashlimit --hashlimit-above 2000/sec --hashlimit-burst 4000 --hashlimit-mode srcip --hashlimit-name synflood -j DROP',
  '-A FORWARD -p tcp -m conntrack --ctstate NEW -m connlimit --connlimit-above 50000 --connlimit-mask 32 -j REJECT --reject-with tcp-reset',
  `-A FORWARD -p tcp -m multiport --dports ${TCP_PORTS.replace('-', ':')} -m conntrack --ctstate NEW -m recent --set --name churn`,
  '-A FORWARD -p icmp -m icmp --icmp-type 8 -m limit --limit 50/sec --limit-burst 100 -j ACCEPT',
  '-A FORWARD -p icmp -j DROP',
  `-A FORWARD -p tcp -m tcp --dport ${IPERF_PORT}:${IPERF_PORT + 1} -j ACCEPT`,
  `-A FORWARD -p tcp -m multiport --dports ${TCP_PORTS.replace('-', ':')} -j ACCEPT`,
  `-A FORWARD -p udp -m udp --dport ${UDP_CHURN_PORTS.replace('-', ':')} -j ACCEPT`,
];

function ruleFile(dir: string, seed: number): string {
  const lines = [...generateLines({ family: 'acl', rules: N, seed })];
  const first = lines.findIndex((l) => l.startsWith('-A '));
  const f = join(dir, `soak-s${seed}.rules`);
  writeFileSync(f, `${[...lines.slice(0, first), ...HEAD, ...lines.slice(first)].join('\n')}\n`);
  return f;
}


async function api(sock: string, method: string, path: string, body?: string, ct?: string, timeoutMs = 30_000) {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      apiCall({ socket: sock }, method, path, body, ct),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${method} ${path}: no answer within ${timeoutMs / 1000} s`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function vmRssMb(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

interface Fw {
  proc: Background;
  pid: number;
  spawnAt: number;
  readyAt?: number;
  ready?: Record<string, unknown>;
  /** Which process this is: 0 the first, +1 per restart. */
  instance: number;
}

class Soak {
  readonly dir = mkdtempSync(join(tmpdir(), 'flatwall-soak-'));
  readonly sock = join(this.dir, 'api.sock');
  topo!: Topology;
  files!: [string, string];
  bodies!: [string, string];
  snap!: string;
  fw!: Fw;
  instances = 0;
  /** Set while the bench itself kills the firewall (the fault phase): that exit is no crash. */
  killing = false;
  soakEnd = Infinity;
  readonly crashes: Crash[] = [];
  readonly logLevels: Record<string, number> = {};

  spawn(extra: string[]): Fw {
    const args = [FLATWALL_CLI, 'run', '--port', 'fa', '--port', 'fb', '-r', this.files[0], '-w', String(WORKERS), '--api-socket', this.sock, ...extra];
    const spawnAt = epochMs();
    const proc = this.topo.adopt(new Background('flatwall run', process.execPath, args, { ns: this.topo.firewall, maxLifetimeMs: (DURATION + 1800) * 1000 }));
    const fw: Fw = { proc, pid: proc.pid!, spawnAt, instance: this.instances++ };
    proc.child.stdout?.on('data', (s: string) => {
      for (const m of s.matchAll(/"level":"(\w+)"/g)) this.logLevels[m[1]] = (this.logLevels[m[1]] ?? 0) + 1;
    });
    void proc.waitFor((l) => l.includes('"msg":"ready"'), 120_000, 'ready line').then((l) => {
      fw.readyAt = epochMs();
      fw.ready = JSON.parse(l);
    }, () => undefined);
    void proc.exited.then((r) => this.onExit(fw, r));
    return fw;
  }

  async start(extra: string[]): Promise<Fw> {
    const fw = this.spawn(extra);
    await fw.proc.waitFor((l) => l.includes('"msg":"ready"'), 120_000, 'ready line');
    while (fw.readyAt === undefined) await sleep(1);
    this.fw = fw;
    return fw;
  }

  /** An exit the bench did not cause, during the soak: a crash; restart from the snapshot so the soak goes on. */
  private onExit(fw: Fw, r: { code: number | null; signal: NodeJS.Signals | null }): void {
    if (this.killing || fw !== this.fw || epochMs() > this.soakEnd) return;
    const c: Crash = {
      t: +((epochMs() - this.soakT0) / 1000).toFixed(1), instance: fw.instance, code: r.code, signal: r.signal,
      stderr: fw.proc.stderr.slice(-2000), lastLines: fw.proc.lines.slice(-10),
    };
    this.crashes.push(c);
    progress(`CRASH at ${c.t} s: exit ${r.code ?? r.signal}: ${c.stderr.slice(-300)}`);
    void this.start(['--snapshot', this.snap]).then((f) => progress(`  restarted from the snapshot (pid ${f.pid})`), (e) => progress(`  restart failed: ${(e as Error).message}`));
  }

  soakT0 = 0;
}

interface Stream { proc: Background; lines: { at: number; j: Record<string, any> }[] }

function nettool(s: Soak, ns: string, label: string, args: string[], stdin = false, lifetimeS = DURATION + 600): Stream {
  const proc = s.topo.adopt(new Background(label, process.execPath, [NETTOOL, ...args], { ns, stdin, maxLifetimeMs: lifetimeS * 1000 }));
  const st: Stream = { proc, lines: [] };
  let partial = '';
  proc.child.stdout?.on('data', (d: string) => {
    const at = epochMs();
    const parts = (partial + d).split('\n');
    partial = parts.pop()!;
    for (const l of parts) {
      try {
        st.lines.push({ at, j: JSON.parse(l) });
      } catch { /* not ours */ }
    }
  });
  return st;
}

async function echoServers(s: Soak): Promise<void> {
  const ports = [UDP_PORT, ...TCP_PORTS.split('-').map(Number)];
  for (const p of [...new Set(ports)]) {
    const srv = s.topo.adopt(new Background(`echo ${p}`, process.execPath, [NETTOOL, 'server', String(p)], { ns: s.topo.receiver }));
    await srv.waitFor((l) => l.includes('"listening"'), 10_000, 'echo server');
  }
}

/** iperf3 TCP, server and client, for `seconds`; the client's JSON (with 1 s intervals) when it ends. */
function iperfTcp(s: Soak, seconds: number, port: number): { done: Promise<Record<string, any> | undefined>; stop: () => Promise<void> } {
  const server = s.topo.adopt(new Background('iperf3 server', 'iperf3', ['-s', '-1', '-p', String(port), '--forceflush'], { ns: s.topo.receiver, maxLifetimeMs: (seconds + 120) * 1000 }));
  let client: Background | undefined;
  const done = (async () => {
    await server.waitFor((l) => l.includes('Server listening'), 5000, 'iperf3 server');
    const args = ['-c', s.topo.ep.receiverIp, '-p', String(port), '-t', String(seconds), '-i', '1', '-J', '--connect-timeout', '5000'];
    if (TCP_MBPS > 0) args.push('-b', `${TCP_MBPS}M`);
    client = s.topo.adopt(new Background('iperf3 client', 'iperf3', args, { ns: s.topo.sender, maxLifetimeMs: (seconds + 120) * 1000 }));
    await client.exited;
    try {
      return JSON.parse(client.lines.join('\n'));
    } catch {
      return { error: `iperf3 client: no JSON output ${client.stderr.slice(0, 200)}` };
    }
  })().catch((err) => ({ error: (err as Error).message.slice(0, 300) }));
  return {
    done,
    stop: async () => {
      await client?.stop('SIGINT', 3000);
      await server.stop('SIGKILL', 1000);
    },
  };
}

/** ping through the limit rule, 10/s, if iputils ping is on PATH (needs -i below 0.2 s). */
function pinger(s: Soak, seconds: number): Promise<string | undefined> {
  if (missingTools(['ping']).length) return Promise.resolve(undefined);
  return run('ping', ['-q', '-n', '-i', '0.1', '-w', String(seconds), s.topo.ep.receiverIp], { ns: s.topo.sender, timeoutMs: (seconds + 30) * 1000, allowFail: true })
    .then((r) => /\d+ packets transmitted.*/.exec(r.stdout)?.[0] ?? r.stderr.trim().slice(0, 200));
}

function vethCounters(ns: string, dev: string): { rxPackets: number; rxDropped: number; txPackets: number } {
  const j = JSON.parse(runSync('ip', ['-s', '-j', 'link', 'show', 'dev', dev], { ns }).stdout)[0];
  return { rxPackets: j.stats64.rx.packets, rxDropped: j.stats64.rx.dropped, txPackets: j.stats64.tx.packets };
}

/** One sample (see the header). */
async function sample(s: Soak): Promise<Sample> {
  const fw = s.fw;
  const t = +((epochMs() - s.soakT0) / 1000).toFixed(2);
  const smp: Sample = { t, instance: fw.instance, load1: +loadavg()[0].toFixed(2), rssMb: vmRssMb(fw.pid) };
  try {
    const a0 = performance.now();
    const st = await api(s.sock, 'GET', '/stats', undefined, undefined, 10_000);
    smp.apiMs = +(performance.now() - a0).toFixed(1);
    if (st.status !== 200) throw new Error(`GET /stats: ${st.status}`);
    const j = st.json!;
    Object.assign(smp, {
      heapUsedMb: j.process.heapUsedBytes / 1048576, heapTotalMb: j.process.heapTotalBytes / 1048576, externalMb: j.process.externalBytes / 1048576,
      heapAfterGcMb: j.process.heapAfterMajorGcBytes === null ? undefined : j.process.heapAfterMajorGcBytes / 1048576, majorGcs: j.process.majorGcs,
      generation: j.reload.generation, reloadsOk: j.reload.succeeded, reloadsFailed: j.reload.failed,
      conntrack: j.conntrack?.entries, drops: Object.fromEntries(Object.entries(j.dropsByReason as Record<string, number>).filter(([, v]) => v > 0)),
    });
    const r = await api(s.sock, 'GET', '/rules?chain=FORWARD&limit=2', undefined, undefined, 10_000);
    if (r.status !== 200) throw new Error(`GET /rules: ${r.status}`);
    const [a, b] = r.json!.rules as { spec: string; packets: string | number }[];
    if (!/--dport 7101/.test(a.spec) || !/--sport 7101/.test(b.spec)) throw new Error(`FORWARD 1-2 are not the UDP flow's rules: ${a.spec} / ${b.spec}`);
    smp.udpIn = Number(a.packets);
    smp.udpOut = Number(b.packets);
  } catch (err) {
    smp.error = (err as Error).message.slice(0, 300);
  }
  return smp;
}

/** The soak's reloads and edits on a 1 s grid, until soakEnd. */
async function reloader(s: Soak, reloads: Reload[], edits: Edit[]): Promise<void> {
  // Seeded, so the edits are the same every run.
  const seeded = new Prng(12);
  const rnd = () => seeded.float();
  const H = HEAD.length;
  for (let k = 0; ; k++) {
    const slot = s.soakT0 + k * 1000;
    if (slot >= s.soakEnd) return;
    const late = epochMs() - slot;
    if (late < 0) await sleep(-late);
    // The running set is seed 1 at start: replace by seed 2, then back.
    const which = k % 2 === 0 ? 1 : 0;
    const r0 = performance.now();
    const rel: Reload = { t: +((epochMs() - s.soakT0) / 1000).toFixed(2), seed: which + 1, lateMs: Math.max(0, +late.toFixed(1)), ms: 0, status: 0 };
    try {
      const a = await api(s.sock, 'PUT', '/rules', s.bodies[which], 'text/plain', 60_000);
      rel.status = a.status;
      if (a.status === 200) Object.assign(rel, { generation: a.json!.generation, serverSeconds: a.json!.seconds, carried: a.json!.carried, rules: a.json!.rules });
      else rel.error = a.body.slice(0, 300);
    } catch (err) {
      rel.error = (err as Error).message.slice(0, 300);
    }
    rel.ms = +(performance.now() - r0).toFixed(1);
    reloads.push(rel);
    // The acl part is FORWARD H+1 .. H+N; the edits stay inside it.
    for (const [at, kind] of [[333, 'insert'], [666, 'delete']] as const) {
      const wait = slot + at - epochMs();
      if (wait > 0) await sleep(wait);
      if (epochMs() >= s.soakEnd) return;
      const e: Edit = { t: +((epochMs() - s.soakT0) / 1000).toFixed(2), kind, ms: 0, status: 0 };
      const e0 = performance.now();
      try {
        let a;
        if (kind === 'insert') {
          e.pos = H + 1 + Math.floor(rnd() * (N + 1));
          const rule = `-I FORWARD ${e.pos} -s 10.99.${Math.floor(rnd() * 256)}.${Math.floor(rnd() * 256)}/32 -p tcp -m tcp --dport ${1 + Math.floor(rnd() * 65535)} -j DROP`;
          a = await api(s.sock, 'POST', '/rules', JSON.stringify({ rule }));
        } else {
          // Half the time the rule just inserted, else a random acl rule (the acl part is N + 1 long now).
          const ins = edits[edits.length - 1];
          e.pos = ins?.kind === 'insert' && ins.status === 201 && rnd() < 0.5 ? ins.pos! : H + 1 + Math.floor(rnd() * (N + 1));
          a = await api(s.sock, 'DELETE', `/rules/FORWARD/${e.pos}`);
        }
        e.status = a.status;
        if (a.status === 200 || a.status === 201) Object.assign(e, { generation: a.json!.generation, method: a.json!.method, fallback: a.json!.fallback });
        else e.error = a.body.slice(0, 300);
      } catch (err) {
        e.error = (err as Error).message.slice(0, 300);
      }
      e.ms = +(performance.now() - e0).toFixed(1);
      edits.push(e);
    }
  }
}

async function soakPhase(s: Soak, res: SoakResult): Promise<void> {
  progress(`soak: ${DURATION} s; TCP ${TCP_MBPS || 'unlimited'} Mb/s, UDP ${UDP_RATE}/s echoed, churn ${CHURN} TCP + ${CHURN} UDP flows/s; a reload a second`);
  const t0 = epochMs();
  s.soakT0 = t0;
  s.soakEnd = t0 + DURATION * 1000;
  const tcp = iperfTcp(s, DURATION, IPERF_PORT);
  const udp = nettool(s, s.topo.sender, 'udp-stream', ['udp-stream', s.topo.ep.receiverIp, String(UDP_PORT), String(UDP_RATE), String(DURATION)]);
  const churn = nettool(s, s.topo.sender, 'churn', ['churn', s.topo.ep.receiverIp, TCP_PORTS, UDP_CHURN_PORTS, String(CHURN), String(DURATION)]);
  const ping = pinger(s, DURATION);
  const gen0 = (await api(s.sock, 'GET', '/stats')).json!.reload;
  res.soak.generationStart = gen0.generation;
  res.soak.reloadsOkStart = gen0.succeeded;
  const rel = reloader(s, res.soak.reloads, res.soak.edits);
  // Samples at 0.9 s into each slot: after the slot's delete, before the next PUT.
  for (let k = 0; ; k++) {
    const at = t0 + k * 1000 + 900;
    if (at >= s.soakEnd) break;
    const w = at - epochMs();
    if (w > 0) await sleep(w);
    const smp = await sample(s);
    res.soak.samples.push(smp);
    if (k % 30 === 0 || smp.error) {
      progress(`  t=${smp.t.toFixed(0)} s rss ${smp.rssMb?.toFixed(1)} MB heap ${smp.heapUsedMb?.toFixed(1)}/${smp.heapTotalMb?.toFixed(1)} MB gen ${smp.generation} conntrack ${smp.conntrack} load ${smp.load1}${smp.error ? ` ERROR ${smp.error}` : ''}`);
    }
  }
  await rel;
  progress('soak: waiting for the traffic to end');
  const [tcpJson, pingSummary] = await Promise.all([tcp.done, ping, udp.proc.exited, churn.proc.exited]);
  await tcp.stop();
  await sleep(2000); // quiescence: every frame in flight has arrived
  const final = await sample(s);
  const st = (await api(s.sock, 'GET', '/stats')).json!;
  const udpSum: any = udp.lines.map((l) => l.j).find((j) => j.kind === 'udp-stream');
  const churnSum: any = churn.lines.map((l) => l.j).find((j) => j.kind === 'churn');
  const rel0 = (t: number) => +((t - t0) / 1000).toFixed(2);
  res.soak.final = {
    sample: final, ports: st.ports, verdicts: st.verdicts, dropsByReason: st.dropsByReason, conntrack: st.conntrack, reload: st.reload, flowCache: st.flowCache,
    veth: { ra: vethCounters(s.topo.receiver, 'ra'), sa: vethCounters(s.topo.sender, 'sa') },
    matchStates: (await api(s.sock, 'GET', '/matches/state')).json!.states,
  };
  res.soak.traffic = {
    udp: udpSum, churn: churnSum, ping: pingSummary,
    tcp: tcpJson ? {
      mbps: tcpJson.end?.sum_received?.bits_per_second / 1e6, retransmits: tcpJson.end?.sum_sent?.retransmits, error: tcpJson.error,
      intervals: (tcpJson.intervals ?? []).map((i: any) => ({ t: +(i.sum.end as number).toFixed(2), mbps: +(i.sum.bits_per_second / 1e6).toFixed(1) })),
    } : { error: 'iperf3 client gave no JSON' },
    udpPerSecond: udp.lines.filter((l) => l.j.t !== undefined).map((l) => ({ t: rel0(l.j.t), sent: l.j.sent, echoed: l.j.echoed })),
    churnPerSecond: churn.lines.filter((l) => l.j.t !== undefined).map((l) => ({ t: rel0(l.j.t), tcpOk: l.j.tcpOk, tcpFailed: l.j.tcpFailed, udpSent: l.j.udpSent })),
  };
  res.soak.crashes = s.crashes;
  progress(`soak done: ${res.soak.reloads.length} reloads, ${res.soak.edits.length} edits, ${s.crashes.length} crashes`);
}

async function faultPhase(s: Soak, res: SoakResult): Promise<void> {
  const seconds = KILLS * 25 + 20;
  progress(`fault: ${KILLS} x kill -9 under load, restart from the snapshot`);
  const udp = nettool(s, s.topo.sender, 'udp-stream (fault)', ['udp-stream', s.topo.ep.receiverIp, String(UDP_PORT), String(UDP_RATE), String(seconds)], true);
  const churn = nettool(s, s.topo.sender, 'churn (fault)', ['churn', s.topo.ep.receiverIp, TCP_PORTS, UDP_CHURN_PORTS, String(CHURN), String(seconds)]);
  const tcp = iperfTcp(s, seconds, IPERF_PORT + 1);
  const watch = (T: number, timeoutMs: number) => {
    const key = Number(T.toFixed(3));
    const p = udp.proc.waitFor((l) => l.startsWith('{"watch":') && JSON.parse(l).watch === key, timeoutMs, 'an echo');
    udp.proc.send(`watch ${key.toFixed(3)}`);
    return p.then((l) => JSON.parse(l) as { recvAt: number; sentAt: number; seq: number });
  };
  try {
    for (let i = 0; i < KILLS; i++) {
      await sleep(3000);
      const k: Kill = { n: i + 1, load1: +loadavg()[0].toFixed(2) };
      try {
        // Traffic flows before the kill.
        await watch(epochMs(), 10_000);
        const old = s.fw;
        s.killing = true;
        const killAt = epochMs();
        process.kill(old.pid, 'SIGKILL');
        const ex = await old.proc.exited;
        const exitAt = epochMs();
        k.killToExitMs = +(exitAt - killAt).toFixed(1);
        k.exit = ex.signal ?? String(ex.code);
        const echo = watch(exitAt, 60_000);
        const fw = s.spawn(['--snapshot', s.snap]);
        s.fw = fw;
        s.killing = false;
        const e = await echo;
        while (fw.readyAt === undefined && fw.proc.running) await sleep(5);
        k.spawnToFirstEchoMs = +(e.recvAt - fw.spawnAt).toFixed(1);
        k.exitToFirstEchoMs = +(e.recvAt - exitAt).toFixed(1);
        k.firstEchoSentAfterSpawnMs = +(e.sentAt - fw.spawnAt).toFixed(1);
        k.killAt = killAt;
        if (fw.readyAt !== undefined) {
          k.spawnToReadyMs = +(fw.readyAt - fw.spawnAt).toFixed(1);
          // The line's own timestamp (ms resolution), before the pipe and this process's event loop.
          k.spawnToReadyLoggedMs = +(Date.parse(String(fw.ready!.ts)) - fw.spawnAt).toFixed(1);
          k.ready = { seconds: fw.ready!.seconds, snapshotReadSeconds: fw.ready!.snapshotReadSeconds, buildSeconds: fw.ready!.buildSeconds, image: fw.ready!.image, rules: fw.ready!.rules };
        }
        const rd = await api(s.sock, 'GET', '/ready');
        k.readyStatus = rd.status;
        progress(`  kill ${i + 1}: gone after ${k.killToExitMs} ms; spawn -> ready ${k.spawnToReadyMs} ms, spawn -> first echo ${k.spawnToFirstEchoMs} ms`);
      } catch (err) {
        s.killing = false;
        k.error = (err as Error).message.slice(0, 300);
        progress(`  kill ${i + 1}: ${k.error}`);
      }
      res.fault.kills.push(k);
    }
    await sleep(3000);
  } finally {
    udp.proc.send('stop');
    await Promise.race([udp.proc.exited, sleep(5000)]);
    await tcp.stop();
    await churn.proc.stop('SIGTERM', 2000);
  }
  const sum = udp.lines.map((l) => l.j).find((j) => j.kind === 'udp-stream');
  for (const k of res.fault.kills) {
    // The gap in the echoes around the kill: last echo before it, first after.
    const g = (sum?.gaps as { fromMs: number; toMs: number }[] | undefined)?.find((x) => k.killAt !== undefined && x.fromMs <= k.killAt + 50 && x.toMs > k.killAt);
    if (g) k.outageMs = +(g.toMs - g.fromMs).toFixed(1);
  }
  res.fault.udp = sum ? { sent: sum.sent, echoed: sum.echoed } : undefined;
  // The last restart stops cleanly.
  const r = await s.fw.proc.stop('SIGTERM', 10_000);
  res.fault.finalExit = r.signal ?? r.code;
  res.fault.stoppedLine = s.fw.proc.lines.some((l) => l.includes('"msg":"stopped"'));
}

async function main(): Promise<void> {
  installTeardown(true);
  const missing = missingTools(['ip', 'iperf3']);
  if (missing.length) throw new Error(`bench:soak needs ${missing.join(', ')}`);
  mkdirSync(outDir, { recursive: true });
  const s = new Soak();
  const load0 = loadavg();
  const res: SoakResult = {
    meta: {
      date: new Date().toISOString(), cpus: cpus().length, memGb: +(totalmem() / 2 ** 30).toFixed(1), loadavgStart: load0.map((x) => +x.toFixed(2)),
      command: `npm run bench:soak${argv.length ? ` -- ${argv.join(' ')}` : ''}`, quick, name: NAME,
    },
    config: { durationS: DURATION, aclRules: N, headRules: HEAD.length, udpRate: UDP_RATE, tcpMbps: TCP_MBPS, churnRate: CHURN, kills: KILLS, workers: WORKERS, maxGrowthPct: MAX_GROWTH_PCT },
    soak: { samples: [], reloads: [], edits: [], crashes: [] },
    fault: { kills: [] },
  };
  try {
    progress(`generating 2 x ${N} acl rules (+${HEAD.length}) and the snapshot of the first`);
    s.files = [ruleFile(s.dir, 1), ruleFile(s.dir, 2)];
    s.bodies = [readFileSync(s.files[0], 'utf8'), readFileSync(s.files[1], 'utf8')];
    s.snap = join(s.dir, 'soak-s1.snap');
    const c = await run(process.execPath, [FLATWALL_CLI, 'compile', '-q', s.files[0], '-o', s.snap], { timeoutMs: 600_000 });
    res.meta.compileSeconds = +c.seconds.toFixed(2);
    s.topo = Topology.create('bridge', 'fwsoak');
    await echoServers(s);
    const fw = await s.start([]);
    progress(`flatwall run ready in ${((fw.readyAt! - fw.spawnAt) / 1000).toFixed(2)} s (pid ${fw.pid})`);
    await soakPhase(s, res);
    await faultPhase(s, res);
  } finally {
    res.meta.loadavgEnd = loadavg().map((x) => +x.toFixed(2));
    res.meta.logLevels = s.logLevels;
    await s.topo?.destroy();
    rmSync(s.dir, { recursive: true, force: true });
  }
  writeResults(res, true);
}

/** The checks, the JSON (of a run), the Markdown and the plots. */
function writeResults(res: SoakResult, json: boolean): void {
  res.checks = checksOf(res);
  if (json) writeFileSync(join(outDir, `${res.meta.name}.json`), `${JSON.stringify(res, null, 1)}\n`);
  for (const [file, svg] of plots(res)) writeFileSync(join(outDir, file), svg);
  const md = markdown(res);
  writeFileSync(join(outDir, `${res.meta.name}.md`), md);
  process.stdout.write(md);
  if (res.checks.some((c) => !c.ok)) process.exitCode = 1;
}

const render = opt('--render');
(render ? Promise.resolve().then(() => writeResults(JSON.parse(readFileSync(render, 'utf8')) as SoakResult, false)) : main()).catch((err) => {
  process.stderr.write(`bench:soak: ${(err as Error).stack ?? err}\n`);
  process.exitCode = 1;
});
