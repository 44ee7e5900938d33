// flatwall run: the firewall as a long-running process.
import { buildThreadsEnded, endBuildThreads } from '../control/build-thread';
import { RuleError } from '../rules/errors';
import { Firewall, type PortSpec } from '../control/firewall';
import { log } from '../control/log';
import { watchMajorGc } from '../control/metrics';
import { defaultMaxRules } from '../control/admission';
import { excerpt } from '../rules/errors';
import { readSnapshot, type LoadedSnapshot } from '../control/snapshot';
import { RulesCache } from '../control/rules-cache';
import { rmSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { apiConfig, startApi, API_HELP, API_OPTIONS, type ApiHandle } from './run-api';
import { loadIpsetFiles } from '../sets/store';
import { RuleFileWatcher } from '../control/watch';
import { useSetStore } from '../sets/registry';
import { EXIT_ERRORS, EXIT_OK, UsageError, familyFlag, parse } from './args';
import { CONNTRACK_HELP, CONNTRACK_OPTIONS, conntrackConfig } from './conntrack-options';
import { HOST_HELP, HOST_OPTIONS, hostAddrs } from './host-options';
import { ReplicationServer, StandbyClient, probeActive, replication, parseAddr } from '../control/standby';
import { readFileSync } from 'node:fs';
import { errnoText } from '../rules/load';

const STANDBY_HELP = `Hot standby (docs/API.md, "Hot standby"):
      --replication-listen A:P  serve a standby on TCP ADDR:PORT: the rules, the
                          IP sets and every connection, as they change
      --standby-of A:P    run as the hot standby of the active serving there: keep
                          its rules, sets and connections, ports closed, and take
                          the ports over when it dies (its connection ends, or
                          nothing arrives for --standby-timeout). Needs the same
                          ports in the same order and the same --workers. The
                          --rules files, if given, are what SIGHUP and
                          --watch-rules reload after a takeover
      --active-unless-peer  with --standby-of and --rules: start as the active
                          unless the --standby-of address answers as an active
                          (a restarted former active then becomes the standby of
                          the process that took over; deploy/helm)
      --replication-token-file F  a shared secret (first line of F) both sides must
                          present
      --heartbeat-interval MS  the active's heartbeat period (default 50)
      --replication-interval MS  how often the active sends connection changes
                          (default 5)
      --standby-timeout MS  take over after this long without a message (default 150)
`;

export const RUN_HELP = `Usage: flatwall run --port IF --port IF --rules FILE [OPTIONS]

Run the firewall as a transparent bump in the wire between pairs of ports
(1st <-> 2nd, 3rd <-> 4th, ...). IPv4 and IPv6 go through the FORWARD rules,
with -i/-o naming the input and output port; ARP passes. The defaults are
the kernel's: ICMPv6 NDP is filtered like any ICMPv6 packet, a frame whose
TCP/UDP/SCTP/ICMP header is cut short is judged without it and dropped at
the first rule with an L4 match it reaches (the kernel's hotdrop), and
conntrack picks up TCP connections mid-stream (nf_conntrack_tcp_loose=1).
The stricter behaviours are flags below; all are counted in the metrics.
With --host (host mode) frames to and from the host's addresses go through
the INPUT and OUTPUT rules instead, as on the host itself.

Writes JSON logs to stdout, one object per line, and a "ready" line once the
rules are active and every worker polls the bound ports. SIGHUP reloads
the rule files atomically (a file with an error keeps the running rules), and
so does a change of them on disk with --watch-rules; SIGTERM or SIGINT drains
and exits 0.

Options:
      --port IF           a port on interface IF (repeatable), opened as --io says
      --io KIND           how --port interfaces are opened: afpacket (default;
                          TPACKET rings, GSO super-packets pass whole), afxdp
                          (AF_XDP sockets on one shared UMEM per worker and an
                          XDP redirect program; fails if it cannot attach), or
                          auto (AF_XDP when it attaches in native mode, else
                          AF_PACKET; the log says which and why)
      --xdp-mode MODE     AF_XDP: native (the driver runs XDP; default) or
                          generic (after the kernel builds the skb: any device)
      --tap NAME          a TAP port (created if missing; repeatable)
  -r, --rules FILE        rule file (iptables-save or JSON/YAML; repeatable)
  -4, -6                  treat iptables-save files as IPv4 / IPv6 (default:
                          detect, as 'flatwall check' does)
      --skip-tables       leave out tables other than filter and raw (nat, mangle...)
                          instead of refusing the file; each load logs which
                          tables and how many rules were left out
      --ipset FILE        IP sets in 'ipset save' form, loaded before the rules
                          (repeatable; all files or none); -m set rules name
                          them, 'flatwall ctl ipset' edits them. Not reread on
                          SIGHUP (entries added since would be lost)
      --watch-rules       reload the --rules files when they change on disk, as
                          SIGHUP does (a Kubernetes ConfigMap update, which
                          swaps a symlink in the file's directory, or a file
                          written in place); a file with an error keeps the
                          running rules until it changes again
      --snapshot FILE     start from a snapshot ('flatwall compile'); the --rules
                          files, if given, are the fallback when it is refused
                          and what SIGHUP / ctl reload read
      --rules-cache DIR   keep the compiled --rules files as snapshots in DIR:
                          a start with unchanged files (same bytes, options,
                          flatwall build) starts from the snapshot; written in
                          the background after every load from the files
  -w, --workers N|auto    packet worker threads (default 1); auto: one per CPU
                          this process may run on (at most 64), except
                          AF_XDP with conntrack, which serves one worker
      --cpu-pin           pin worker i to CPU i
      --non-ip POLICY     frames other than IP/ARP/NDP: accept (default) or drop
      --ring-frames N     frames per RX/TX ring (default: the addon's)
      --tx-mode MODE      AF_PACKET transmit: ring (PACKET_TX_RING, default) or
                          sendmmsg (one copy less per frame: more TCP throughput
                          on veth, more UDP loss; see native/dataplane/README.md)
      --busy-poll US      keep polling the rings (yielding the CPU between
                          polls) for US microseconds after traffic before
                          sleeping in poll() (default 200000; 0 = always sleep:
                          no CPU spent while waiting, ~40 us more latency)
      --worker-nice N     nice value of the packet workers (default -10): under
                          CPU contention they run before rule loading; needs
                          CAP_SYS_NICE (a warning says when it could not be set)
      --build-nice N      nice value of a classifier build while it runs
                          (default 10)
      --log-rate N        LOG events per second, at most (rate limit)
      --stats-interval S  log counters every S seconds (default 0: only at exit)
      --max-rules N       refuse a rule set of more than N rules, whether from
                          the files, SIGHUP, the API or a snapshot (default:
                          sized to the JS heap, ${defaultMaxRules()} here); a reload
                          that would not fit in memory beside the running
                          rules is refused too (docs/API.md, Limits)
      --rule-model WHEN   when the model of a text reload's rules (what listings,
                          edits and saves read) is read on this thread: lazy
                          (default: at the first listing or edit; ~600 MB less
                          at 1M rules until then, and that first one waits
                          seconds) or background (right after each reload, in
                          slices: listings and edits are immediate)
      --drop-l4-truncated drop frames whose L4 header is cut short before the
                          rules (counted as drop reason l4_truncated; default:
                          judged, and dropped only at a rule with an L4 match)
      --ndp-bypass        pass ICMPv6 neighbour discovery (types 133-137)
                          without the rules, as link-scope traffic with hop
                          limit 255 (RFC 4861) that a bridge must not break
                          (default: NDP is judged by the FORWARD rules)
${CONNTRACK_HELP}${HOST_HELP}${STANDBY_HELP}  -c, --restore-counters  seed per-rule counters from the files' [packets:bytes]
${API_HELP}  -h, --help              show this help

Exit status: 0 after a clean stop, 1 on errors (bad rules, ports that cannot
be opened), 2 on usage errors.
`;

/** `flatwall run`'s options (exported: deploy/'s manifests are checked against them, test/deploy.test.ts). */
export const RUN_OPTIONS = {
  port: { type: 'string', multiple: true },
  tap: { type: 'string', multiple: true },
  rules: { type: 'string', short: 'r', multiple: true },
  ipset: { type: 'string', multiple: true },
  snapshot: { type: 'string' },
  'rules-cache': { type: 'string' },
  'watch-rules': { type: 'boolean' },
  workers: { type: 'string', short: 'w', default: '1' },
  'cpu-pin': { type: 'boolean' },
  'non-ip': { type: 'string', default: 'accept' },
  'ring-frames': { type: 'string' },
  'tx-mode': { type: 'string', default: 'ring' },
  io: { type: 'string', default: 'afpacket' },
  'xdp-mode': { type: 'string', default: 'native' },
  // 200 ms: request/response traffic and pings closer than that find the
  // worker polling instead of asleep (native/dataplane/README.md, Measurements).
  'busy-poll': { type: 'string', default: '200000' },
  'worker-nice': { type: 'string', default: '-10' },
  'build-nice': { type: 'string', default: '10' },
  'log-rate': { type: 'string' },
  'stats-interval': { type: 'string', default: '0' },
  'max-rules': { type: 'string' },
  'rule-model': { type: 'string' },
  ...CONNTRACK_OPTIONS,
  'drop-l4-truncated': { type: 'boolean' },
  'ndp-bypass': { type: 'boolean' },
  'skip-tables': { type: 'boolean' },
  '4': { type: 'boolean', short: '4' },
  '6': { type: 'boolean', short: '6' },
  ...HOST_OPTIONS,
  'restore-counters': { type: 'boolean', short: 'c' },
  'replication-listen': { type: 'string' },
  'standby-of': { type: 'string' },
  'active-unless-peer': { type: 'boolean' },
  'replication-token-file': { type: 'string' },
  'heartbeat-interval': { type: 'string', default: '50' },
  'replication-interval': { type: 'string', default: '5' },
  'standby-timeout': { type: 'string', default: '150' },
  ...API_OPTIONS,
  help: { type: 'boolean', short: 'h' },
} as const;

/**
 * --workers auto: a worker per CPU the process may use (sched_getaffinity, as
 * os.availableParallelism reads it). AF_XDP with conntrack is one worker
 * (native Dataplane::Start says why); auto I/O then stays on AF_PACKET for
 * the several workers, so it gets them.
 */
export function autoWorkers(io: string, noConntrack: boolean): number {
  if (io === 'afxdp' && !noConntrack) return 1;
  return Math.max(1, Math.min(64, availableParallelism()));
}

export async function runRun(argv: string[]): Promise<number> {
  const { values } = parse(argv, RUN_OPTIONS, false);
  if (values.help) {
    process.stdout.write(RUN_HELP);
    return EXIT_OK;
  }
  logCrashes();
  watchMajorGc();
  // Ports in command-line order, whichever option named them.
  const io = values.io!;
  if (io !== 'afpacket' && io !== 'afxdp' && io !== 'auto') throw new UsageError('--io must be afpacket, afxdp or auto');
  const xdpMode = values['xdp-mode'];
  if (xdpMode !== 'native' && xdpMode !== 'generic') throw new UsageError('--xdp-mode must be native or generic');
  const ports: PortSpec[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--port' || argv[i] === '--tap') ports.push({ name: argv[i + 1], kind: argv[i] === '--tap' ? 'tap' : io });
    else if (argv[i].startsWith('--port=') || argv[i].startsWith('--tap=')) {
      const [k, v] = argv[i].split('=', 2);
      ports.push({ name: v, kind: k === '--tap' ? 'tap' : io });
    }
  }
  if (ports.length < 2 || ports.length % 2 !== 0) throw new UsageError('run needs ports in pairs: at least two --port/--tap');
  const standbyOf = values['standby-of'];
  if (!values.rules?.length && !values.snapshot && !standbyOf) throw new UsageError('--rules FILE or --snapshot FILE is required (or --standby-of ADDR:PORT)');
  if (values['watch-rules'] && !values.rules?.length) throw new UsageError('--watch-rules needs --rules FILE (the files it watches)');
  const ruleFamily = familyFlag(values);
  const int = (name: string, v: string | undefined, min: number) => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer >= ${min}, got "${v}"`);
    return n;
  };
  const workers = values.workers === 'auto' ? autoWorkers(io, values['no-conntrack'] === true) : int('workers', values.workers, 1)!;
  const maxRules = int('max-rules', values['max-rules'], 1);
  const ruleModel = values['rule-model'] ?? 'lazy';
  if (ruleModel !== 'lazy' && ruleModel !== 'background') throw new UsageError(`--rule-model must be lazy or background, got "${excerpt(ruleModel)}"`);
  const statsInterval = int('stats-interval', values['stats-interval'], 0)!;
  if (values['non-ip'] !== 'accept' && values['non-ip'] !== 'drop') throw new UsageError('--non-ip must be accept or drop');
  const txMode = values['tx-mode'];
  if (txMode !== 'ring' && txMode !== 'sendmmsg') throw new UsageError('--tx-mode must be ring or sendmmsg');
  const busyPollUs = int('busy-poll', values['busy-poll'], 0)!;
  if (busyPollUs > 1_000_000) throw new UsageError('--busy-poll must be at most 1000000 microseconds');
  const nice = (name: 'worker-nice' | 'build-nice') => {
    const v = values[name]!;
    const n = Number(v);
    if (!/^-?\d+$/.test(v) || n < -20 || n > 19) throw new UsageError(`--${name} must be an integer in -20..19, got "${v}"`);
    return n;
  };
  for (const f of ['replication-listen', 'standby-of'] as const) {
    if (values[f] === undefined) continue;
    try {
      parseAddr(values[f]!, `--${f}`);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  }
  const heartbeatMs = int('heartbeat-interval', values['heartbeat-interval'], 1)!;
  const replIntervalMs = int('replication-interval', values['replication-interval'], 1)!;
  const standbyTimeoutMs = int('standby-timeout', values['standby-timeout'], 1)!;
  if (standbyOf && !values['active-unless-peer'] && values['ipset']?.length) throw new UsageError('--standby-of takes the IP sets from the active: --ipset is not allowed');
  if (values['active-unless-peer'] && (!standbyOf || !(values.rules?.length || values.snapshot))) {
    throw new UsageError('--active-unless-peer needs --standby-of ADDR:PORT and --rules FILE (or --snapshot FILE)');
  }
  let replToken: string | undefined;
  if (values['replication-token-file']) {
    try {
      replToken = readFileSync(values['replication-token-file'], 'utf8').split('\n')[0].trim();
    } catch (err) {
      throw new UsageError(`--replication-token-file: ${errnoText(err as NodeJS.ErrnoException)}`);
    }
    if (!replToken) throw new UsageError('--replication-token-file: the first line is empty');
  }
  const workerNice = nice('worker-nice');
  const buildNice = nice('build-nice');

  const ct = conntrackConfig(values);
  const host = hostAddrs(values);

  const apiConf = apiConfig(values);
  // Signals are handled from the start: a SIGTERM that arrives while the
  // rules load (or right after the "ready" line) stops cleanly once the
  // start-up is done, instead of killing the process half-way.
  let stopping: string | undefined;
  let requestStop: (why: string) => void = () => undefined;
  const stopRequested = new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      if (stopping) return;
      stopping = sig;
      log('info', 'stopping', { signal: sig });
      resolve();
    };
    requestStop = stop;
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
  let started = false;
  let fenced = false;
  // A standby's rules are the active's until it takes over.
  let standingBy = false;
  process.on('SIGHUP', () => {
    if (standingBy) log('warn', 'SIGHUP ignored: standing by (the rules are the active\'s until a takeover)');
    else if (started) void fw.reload();
    else log('warn', 'SIGHUP during start-up ignored');
  });
  let fw: Firewall;
  let api: ApiHandle | undefined;
  const watcher = values['watch-rules']
    ? new RuleFileWatcher(values.rules!, {
      onChange: async () => {
        log('info', 'rule files changed; reloading', { files: values.rules });
        await fw.reload('watch', true);
      },
      onWarn: (msg, fields) => log('warn', msg, fields),
    })
    : undefined;
  try {
    fw = new Firewall({
      ports, ruleFiles: values.rules ?? [], workers, cpuPin: values['cpu-pin'], nonIpPolicy: values['non-ip'],
      ringFrames: int('ring-frames', values['ring-frames'], 16), logRatePerSec: int('log-rate', values['log-rate'], 0),
      txMode, xdpMode, busyPollUs, workerNice, buildNice,
      ...ct,
      dropL4Truncated: values['drop-l4-truncated'] ?? false,
      ndpBypass: values['ndp-bypass'] ?? false,
      ruleFamily,
      skipOtherTables: values['skip-tables'],
      onRuleNotice: (m) => {
        process.stderr.write(`${m}\n`);
        log('warn', m);
      },
      hostAddrs: host,
      restoreCounters: values['restore-counters'],
      // [packets:bytes] of the files are not in a snapshot: -c loads the files.
      rulesCache: values['rules-cache'] && !values['restore-counters'] ? new RulesCache(values['rules-cache']) : undefined,
      maxRules,
      ruleModel,
      conntrackReplicate: values['replication-listen'] !== undefined,
    });
    // The API comes up first: /health answers and /ready says 503 until the rules are active.
    api = await startApi(fw, apiConf);
    // Sets before rules: -m set rules must find the sets they name.
    useSetStore(fw.sets);
    const serve = () => {
      if (!values['replication-listen']) return Promise.resolve();
      const srv = new ReplicationServer(fw, {
        listen: values['replication-listen'], heartbeatMs, intervalMs: replIntervalMs, token: replToken,
        onFenced: () => {
          fenced = true;
          requestStop('fenced: the standby took over');
        },
      });
      replication.server = srv;
      return srv.start();
    };
    // A process named with --rules and --standby-of: the standby of an
    // active that answers, else the active (a pair naming each other).
    const asStandby = standbyOf !== undefined && (!values['active-unless-peer'] ||
      await probeActive(standbyOf, { proto: 1, role: 'standby', ...fw.replicationShape(), endian: '', recordBytes: 0 }, 1000));
    if (asStandby) {
      const client = new StandbyClient(fw, {
        of: standbyOf!, timeoutMs: standbyTimeoutMs, token: replToken,
        onTakeover: async (reason, lostAt) => {
          const detectedMs = performance.now() - lostAt;
          try {
            fw.ctRearm();
            fw.start();
          } catch (err) {
            // Nothing forwards now: say why and exit 1, for the supervisor.
            log('error', 'takeover failed', { reason, error: excerpt(String((err as Error).message), 1024) });
            fenced = true;
            requestStop('takeover failed');
            return;
          }
          standingBy = false;
          replication.failovers++;
          log('warn', 'takeover', {
            reason, pid: process.pid,
            // From the loss of the active (its connection's end, or the last message + the timeout) to ports up.
            msSinceLoss: +(performance.now() - lostAt).toFixed(2), detectMs: +detectedMs.toFixed(2),
            entries: fw.conntrackCount().entries, generation: fw.status.generation,
            workersRunning: fw.counters({ rules: false }).workersRunning,
          });
          await serve().catch((err) => log('error', 'replication listener after takeover failed', { error: (err as Error).message }));
          if (watcher) {
            // The files as they are now: a change from here on reloads them.
            watcher.remember();
            watcher.start();
            log('info', 'watching the rule files', { files: values.rules });
          }
        },
      });
      replication.client = client;
      // The slow half of opening the ports now, so the takeover only binds them.
      fw.prepare();
      client.start();
      started = true;
      standingBy = true;
      log('info', 'standby', { of: standbyOf, ports: ports.map((p) => `${p.kind}:${p.name}`), workers, pid: process.pid, api: api?.where, timeoutMs: standbyTimeoutMs });
      await stopRequested;
      watcher?.close();
      client.stop();
      await replication.server?.close();
      await api?.close();
      if (fw.dataplaneStarted) await fw.stop();
      log('info', 'stopped', summary(fw.counters({ rules: false })));
      return fenced ? EXIT_ERRORS : EXIT_OK;
    }
    if (values.ipset?.length) {
      const r = loadIpsetFiles(fw.sets, values.ipset);
      log('info', 'ip sets loaded', { files: values.ipset, sets: r.sets, elements: r.commands, seconds: r.seconds });
    }
    // The files as they are before the load: a change during it is seen.
    watcher?.remember();
    const cache = fw.rulesCache;
    const key = !values.snapshot && cache ? cache.keyOfFiles(values.rules ?? [], { family: ruleFamily, skipOtherTables: values['skip-tables'] }) : undefined;
    const cached = key ? cache!.lookup(key) : undefined;
    if (cache) log('info', cached ? 'rules cache hit' : 'rules cache miss', { cache: cache.dir, ...(cached ? { snapshot: cached } : {}) });
    const { loaded, snap } = await initialRules(fw, values.snapshot ?? cached, values.rules?.length ?? 0, cached);
    fw.start();
    const opened = fw.io;
    if (opened.fallback) log('warn', 'AF_XDP not used: the ports are AF_PACKET', { io, reason: opened.fallback });
    if (opened.io.includes('afxdp')) log('info', 'AF_XDP ports', { xdpMode: opened.xdpMode, zeroCopy: opened.zeroCopy });
    if (snap) setImmediate(() => void fw.loadSnapshotMetadata(snap, loaded.generation));
    // The workers set their priority as they start; a failure is counted.
    setTimeout(() => {
      const failed = fw.counters({ rules: false }).workerNiceFailures;
      if (failed) log('warn', 'could not set the packet workers\' priority (needs CAP_SYS_NICE); they run at the default', { workerNice, workers: failed });
    }, 500).unref();
    log('info', 'ready', {
      ...loaded, ports: fw.dataplaneHealth().ports.map((p) => `${p.kind}:${p.name}`), io: opened.io, workers, conntrack: ct.conntrack, files: values.rules, pid: process.pid, api: api?.where,
      maxRules: fw.maxRules,
      // fw.start() returns once every worker polls its bound ports (Dataplane::Start).
      workersRunning: fw.counters({ rules: false }).workersRunning,
      ...(host.length ? { host } : {}),
      ctTcpLoose: ct.conntrackTcpLoose, dropL4Truncated: values['drop-l4-truncated'] ?? false, ndpBypass: values['ndp-bypass'] ?? false,
    });
    await serve();
  } catch (err) {
    // Not only rule errors quote input (a snapshot's, an ipset file's).
    const message = excerpt(String((err as Error)?.message ?? err), 1024);
    log('error', 'cannot start', { error: message });
    if (err instanceof RuleError) process.stderr.write(`flatwall: ${message}\n`);
    else process.stderr.write(`flatwall run: ${message}\n`);
    await api?.close();
    return EXIT_ERRORS;
  }

  const stats = statsInterval > 0 ? setInterval(() => log('info', 'counters', summary(fw.counters({ rules: false }))), statsInterval * 1000) : undefined;
  if (watcher) {
    watcher.start();
    log('info', 'watching the rule files', { files: values.rules });
  }
  started = true;
  await stopRequested;
  watcher?.close();
  if (stats) clearInterval(stats);
  await replication.server?.close();
  await api?.close();
  await fw.stop();
  log('info', 'stopped', summary(fw.counters({ rules: false })));
  // A standby took over: this process stopped forwarding because of it.
  return fenced ? EXIT_ERRORS : EXIT_OK;
}

/** The snapshot if it is good, else the rule files (if any). */
async function initialRules(fw: Firewall, snapshot: string | undefined, ruleFiles: number, cacheEntry?: string) {
  if (snapshot) {
    try {
      const t0 = performance.now();
      const snap = readSnapshot(snapshot);
      const readSeconds = (performance.now() - t0) / 1000;
      const loaded = await fw.activateSnapshot(snap);
      if (!loaded.image?.loaded) {
        log('warn', 'snapshot classifier image refused; built the classifiers from its tables instead', {
          snapshot, error: loaded.image?.error ?? 'the snapshot has no classifier image',
        });
      }
      return { loaded: { ...loaded, snapshot, snapshotReadSeconds: readSeconds }, snap };
    } catch (err) {
      if (ruleFiles === 0) throw err;
      log('error', 'snapshot refused; compiling the rule files instead', { snapshot, error: (err as Error).message });
      // A bad cache entry goes, so that the load below writes a good one.
      if (cacheEntry) rmSync(cacheEntry, { force: true });
    }
  }
  return { loaded: await fw.load(), snap: undefined as LoadedSnapshot | undefined };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function summary(c: any): Record<string, unknown> {
  const drops = Object.fromEntries(Object.entries(c.dropsByReason as Record<string, number>).filter(([, v]) => v > 0));
  return { generation: c.generation, verdicts: c.verdicts, hooks: c.hooks, conntrack: c.conntrack, l4Truncated: c.l4Truncated, ndp: c.ndp, ports: c.ports.map((p: Record<string, unknown>) => ({ ...p, rxPerWorker: undefined })), drops };
}

/**
 * An error nothing caught still ends the process (its state is unknown),
 * but as one JSON log line like every other, not a bare stack on stderr:
 * log shippers see why the firewall stopped. Exit 70 (EX_SOFTWARE).
 */
export function logCrashes(): void {
  let crashed = false;
  const crash = (kind: string) => (err: unknown) => {
    const e = err as Error;
    log('error', 'crash', { kind, error: excerpt(String(e?.message ?? err), 2000), stack: String(e?.stack ?? '').slice(0, 4000) });
    // A build thread inside the addon would abort the process as it exits
    // (SIGABRT, not this exit status): told to stop, it gets a moment to leave.
    if (crashed) process.exit(70);
    crashed = true;
    endBuildThreads();
    void buildThreadsEnded(3000).finally(() => process.exit(70));
  };
  process.on('uncaughtException', crash('uncaughtException'));
  process.on('unhandledRejection', crash('unhandledRejection'));
}
