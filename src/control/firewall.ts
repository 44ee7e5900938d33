// The running firewall: owns the native Dataplane, loads and reloads rule
// files, and turns the dataplane's batched counters and LOG events into
// structured logs. JavaScript never sees a packet: it configures, swaps rule
// sets and reads counters.
import { setImmediate as nextTurn } from 'node:timers/promises';
import { targetExtension } from '../rules/extensions/targets';
import { decodeUtf8Sliced, readRuleTextsAsync, ruleCount, unreadable } from '../rules/load';
import { compileAsync, compileSteps, logRuleOf, ruleIdCount, type CompiledRuleSet, type LogRule } from '../rules/compile';
import { isDeferred, materialize, movableBytes, recipeSourceSteps, recipeTextLength, type Recipe } from '../rules/deferred';
import { buildOffThread, buildStreamOffThread, buildThreadsEnded, setReferenceCounts, type BuildHooks, type StreamRequest, type ThreadBuilt } from './build-thread';
import { SharedBody } from './shared-body';
import { open, type FileHandle } from 'node:fs/promises';
import { fastPathEnabled } from '../rules/text-fast-path';
import { tableOfKey, type Family, type RuleSet, type TableName } from '../rules/model';
import { native } from '../native';
import { log } from './log';
import { CounterBank, fileCounters, identitiesSteps, type LiveCounters, type RuleIdentities } from './counters';
import { runSliced } from '../rules/steps';
import { applyRuleOp, cloneRuleSet, type RuleOp } from './ruleops';
import { initialEditState, planBatch, planEdit, type EditPlan, type EditState } from './edits';
import { isRuleOp, parseBatch } from './batch';
import type { RulesCache } from './rules-cache';
import type { LoadedSnapshot } from './snapshot';
import { IpsetStore } from '../sets/store';
import { setReferenceCounter } from '../sets/registry';
import { countRuleCommands } from '../rules/iptables/parse';
import { looksNative } from '../rules/native-format';
import { RuleLimitError, excerpt, overRuleLimit } from '../rules/errors';
import { admit, collect, defaultMaxRules, fastTextDemand, textDemand, type Demand } from './admission';
import type { DataplaneHealth } from './health';

export interface PortSpec {
  name: string;
  /** afxdp: AF_XDP sockets and an XDP program; auto: AF_XDP where it attaches natively, else AF_PACKET (see io()). */
  kind: 'afpacket' | 'afxdp' | 'auto' | 'tap';
}

/** How the dataplane opened its ports (native Dataplane::io_choice). */
export interface IoChoice {
  /** The socket kinds in use: 'afpacket', 'afxdp', 'tap', comma-separated when mixed. */
  io: string;
  /** AF_XDP only: 'native' (in the driver) or 'generic' (after the skb is built). */
  xdpMode: string;
  zeroCopy: boolean;
  /** --io auto: why AF_XDP was not used ('' when it was). */
  fallback: string;
}

export interface FirewallOptions {
  ports: PortSpec[];
  ruleFiles: string[];
  /**
   * Rule texts of at least this many characters are parsed and compiled on
   * the build thread (build-thread.ts); smaller ones here, in slices.
   * Default 1 MiB (about 12,000 rules), or FLATWALL_BUILD_THREAD_MIN_BYTES.
   */
  buildThreadMinBytes?: number;
  /**
   * A rule set from the build thread arrives without its model
   * (src/rules/deferred.ts): 'lazy' reads it at the first listing or edit,
   * 'background' right after activation, in slices. Default 'lazy'.
   */
  ruleModel?: 'lazy' | 'background';
  workers: number;
  cpuPin?: boolean;
  nonIpPolicy?: 'accept' | 'drop';
  ringFrames?: number;
  logRatePerSec?: number;
  /** AF_PACKET transmit: 'ring' (PACKET_TX_RING, default) or 'sendmmsg' (native/dataplane/README.md, Measurements). */
  txMode?: 'ring' | 'sendmmsg';
  /** AF_XDP: attach the XDP program in the driver ('native', default) or after the skb ('generic', any device). */
  xdpMode?: 'native' | 'generic';
  /** Keep polling the rings this many microseconds after traffic before sleeping in poll() (default 0). */
  busyPollUs?: number;
  /** Nice value of the packet workers, and of a classifier build while it runs (default 0 each; see native DataplaneConfig). */
  workerNice?: number;
  buildNice?: number;
  /** Connection tracking (default on); false = stateless, every packet UNTRACKED. */
  conntrack?: boolean;
  /** Tracked connections, all workers together (default 262144, netfilter's usual nf_conntrack_max). */
  conntrackMax?: number;
  /** Timeouts in seconds by netfilter name: tcp_established, tcp_syn_sent, ..., udp, udp_stream, icmp, generic. */
  conntrackTimeouts?: Record<string, number>;
  /** Pick up TCP connections mid-stream (nf_conntrack_tcp_loose; default true, as Linux; false: a non-SYN without an entry is INVALID). */
  conntrackTcpLoose?: boolean;
  /** Drop frames whose L4 header is cut short before the rules (default false: judged, hot-dropped at an L4 rule, as the kernel). */
  dropL4Truncated?: boolean;
  /** Forward ICMPv6 NDP (133-137) without the rules (default false: judged by the FORWARD rules, as the kernel). */
  ndpBypass?: boolean;
  /** The family of the iptables-save rule files (-4/-6); default: detected per file (src/rules/family.ts). */
  ruleFamily?: 4 | 6;
  /** Keep the compiled rule files as snapshots here (--rules-cache; src/control/rules-cache.ts). */
  rulesCache?: RulesCache;
  /** Leave out tables other than filter and raw (--skip-tables); every load logs which and how many rules. */
  skipOtherTables?: boolean;
  /** Notices about the rule files (a file loaded as IPv4 for want of evidence). */
  onRuleNotice?: (message: string) => void;
  /**
   * Host mode: the host's addresses as "ADDR/PLEN" (native/dataplane/host.h).
   * Frames to them walk INPUT, frames from them OUTPUT, the rest FORWARD.
   * Empty or absent: a bridge, everything FORWARD.
   */
  hostAddrs?: string[];
  /** Seed per-rule counters from the files' [packets:bytes] (iptables-restore -c). */
  restoreCounters?: boolean;
  /** At most this many rules in a rule set (--max-rules; default: defaultMaxRules(), sized to the heap). */
  maxRules?: number;
  /** The workers publish conntrack changes for a hot standby (src/control/standby.ts; native conntrack.h: Replication). */
  conntrackReplicate?: boolean;
}

/** Which conntrack entries a list or flush applies to (all given fields must match). */
export interface ConntrackFilter {
  family?: 4 | 6;
  /** Protocol number or name (tcp, udp, icmp, icmpv6, sctp, ...). */
  proto?: number | string;
  /** Either endpoint's address. */
  addr?: string;
  /** Either endpoint's port. */
  port?: number;
  /** The port pair (0 = ports 1st/2nd, 1 = 3rd/4th, ...). */
  zone?: number;
}

/** One connection, in its original direction (what `conntrack -L` shows). */
export interface ConntrackEntry {
  family: 4 | 6;
  proto: number;
  zone: number;
  src: string;
  dst: string;
  sport?: number;
  dport?: number;
  /** ICMP queries: the identifier and kind (1 echo, 2 timestamp, 3 info, 4 address mask). */
  id?: number;
  kind?: number;
  /** TCP only: NONE, SYN_SENT, SYN_RECV, ESTABLISHED, FIN_WAIT, CLOSE_WAIT, LAST_ACK, TIME_WAIT, CLOSE, SYN_SENT2. */
  state?: string;
  /** Seconds until it expires. */
  timeout: number;
  /** No reply seen yet (conntrack's [UNREPLIED]). */
  unreplied: boolean;
  /** conntrack's [ASSURED]: never evicted by early drop. */
  assured: boolean;
  packets: number;
}

/** The connection to delete: original or reply direction, ICMP by id. */
export interface ConntrackTuple {
  proto: number | string;
  src: string;
  dst: string;
  sport?: number;
  dport?: number;
  id?: number;
  zone?: number;
}

/**
 * counters().conntrack: summed over workers; names follow node_exporter's
 * nf_conntrack collectors (node_nf_conntrack_entries, _entries_limit,
 * node_nf_conntrack_stat_found, _invalid, _ignore, _insert, _insert_failed,
 * _drop, _early_drop). `expired` and `memoryBytes` are flatwall's own.
 */
export interface ConntrackCounters {
  enabled: boolean;
  entries: number;
  limit: number;
  found: number;
  invalid: number;
  ignore: number;
  insert: number;
  insert_failed: number;
  drop: number;
  early_drop: number;
  expired: number;
  memoryBytes: number;
}

/** What the last rule set activation did, for /metrics and the API. */
export interface ReloadStatus {
  generation: number;
  /** Seconds since the epoch of the last attempt, its duration, and whether it worked. */
  lastAttempt: number;
  lastSeconds: number;
  lastOk: boolean;
  lastError?: string;
  /** Time of the last successful activation. */
  lastSuccess: number;
  buildSeconds: number;
  memoryBytes: number;
  carried: number;
  succeeded: number;
  failed: number;
}

/** Where a reload is: GET /reload/progress, ctl reload's progress bar, and one log line per stage. */
export interface ReloadProgress {
  stage: 'parse' | 'compile' | 'build' | 'counters';
  /** parse: lines; compile: built-in chain rules inlined; build: records (done 0 until built). */
  done: number;
  total: number;
  file?: string;
  /** Seconds since the reload started. */
  seconds: number;
}

export interface Activation {
  rules: number;
  records: number;
  seconds: number;
  generation: number;
  buildSeconds: number;
  carried: number;
  /**
   * 'rebuild': the whole rule set was compiled and its classifiers built;
   * 'overlay': a single-rule edit applied over the running classifiers
   * (src/control/edits.ts), with `fallback` saying why an edit was not.
   */
  method: 'rebuild' | 'overlay';
  fallback?: string;
  /** Where the time went: parse + compile (JS), setRules (native build + swap, with the counter fingerprints computed meanwhile), counter carry-over (JS). */
  timings: { compileSeconds: number; setRulesSeconds: number; countersSeconds: number };
  /** From a snapshot: whether its classifier image was used, else why not (the classifiers were built from its tables). */
  image?: { loaded: boolean; error?: string };
}

/** One state of a stateful match, as the dataplane reports it. */
export interface MatchState {
  kind: 'limit' | 'hashlimit' | 'recent';
  key: string; // limit:FAMILY/CHAIN/SPEC#N, hashlimit:FAMILY:NAME, recent:NAME
  entries: number;
  capacity: number;
  evictions: number;
  refused: number; // limit: packets over the rate; hashlimit: new keys refused by a full table
  listing?: string;
}

/**
 * The memory demand of one rule text. iptables-save: its rule lines,
 * counted without parsing; more than `max` with the `before` counted
 * elsewhere is the rule limit's error (at the line), before any estimate.
 */
export function textDemandOf(what: string, file: string, text: string, max: number, before = 0): Demand {
  if (looksNative(file, text)) return textDemand(what, text.length, 0, 'native');
  const c = countRuleCommands(text, Math.max(0, max - before));
  if (c.over) throw overRuleLimit({ file, line: c.over.line, col: 1 }, max);
  return textDemand(what, text.length, c.rules, 'save');
}

function sameTables(a: Array<{ family: Family; name: TableName }>, b: Array<{ family: Family; name: TableName }>): boolean {
  const key = (l: typeof a) => l.map((t) => `${t.family}/${t.name}`).sort().join(',');
  return key(a) === key(b);
}

/** A heap up to this size is collected right after a swap (Firewall.releaseReplaced). */
const RELEASE_GC_MAX_HEAP = 128 << 20;

/** Which compiler built a text on the build thread, and why not the addon's. */
function logFastPath(r: Parameters<NonNullable<BuildHooks['onFastPath']>>[0], streamed = false): void {
  const how = streamed ? { streamed } : {};
  if (r.taken) log('info', 'rule text compiled by the addon', { parseSeconds: r.parseSeconds, compileSeconds: r.compileSeconds, ...how });
  else log('info', 'rule text compiled by the reference parser', { reason: r.reason, ...how });
}

export class Firewall {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  private readonly dp: any;
  private rules: CompiledRuleSet | undefined;
  private logTimer: NodeJS.Timeout | undefined;
  private reloading: Promise<void> | undefined;
  private readonly bank = new CounterBank();
  // Rule set changes run one at a time, in arrival order.
  private chain: Promise<unknown> = Promise.resolve();
  private queued = 0;
  private reservedBytes = 0;
  // Streamed PUT bodies still arriving (replaceTextStreamed): not queued yet, not idle either.
  private streaming = 0;
  private swapping = 0;
  /** Settles when the generation being published has its bookkeeping (see beginPublish). */
  private publishing: Promise<void> | undefined;

  /** Marks the window in which the dataplane may run rules the bookkeeping does not have yet; call the result at its end. */
  private beginPublish(): () => void {
    let done!: () => void;
    const p = new Promise<void>((resolve) => (done = resolve));
    this.publishing = p;
    return () => {
      if (this.publishing === p) this.publishing = undefined;
      done();
    };
  }
  private started = false;
  // Started from a snapshot whose rule metadata is not parsed yet.
  private metadataPending = false;
  // Single-rule edits since the last full build (undefined: edits rebuild).
  private edits: EditState | undefined;
  // A snapshot's activation: the replaced generation's final counters, kept
  // until the snapshot's metadata tells which rules they carry to.
  private pendingCarry: { generation: number; previous: LiveCounters | undefined } | undefined;
  private readonly stopping = new AbortController();
  /** The IP sets `-m set` rules test: the dataplane's own store (src/sets/store.ts). */
  readonly sets: IpsetStore;
  private setGcTimer: NodeJS.Timeout | undefined;
  readonly status: ReloadStatus = {
    generation: 0, lastAttempt: 0, lastSeconds: 0, lastOk: false, lastSuccess: 0, buildSeconds: 0, memoryBytes: 0, carried: 0,
    succeeded: 0, failed: 0,
  };

  /** The rule limit every load, replace and edit is held to. */
  readonly maxRules: number;
  readonly buildThreadMinBytes: number;

  constructor(private readonly opts: FirewallOptions) {
    this.maxRules = opts.maxRules ?? defaultMaxRules();
    const envMin = process.env.FLATWALL_BUILD_THREAD_MIN_BYTES;
    this.buildThreadMinBytes = opts.buildThreadMinBytes ?? (envMin && Number(envMin) >= 0 ? Number(envMin) : 1 << 20);
    this.dp = new (native().Dataplane)({
      ports: opts.ports.map((p) => ({ name: p.name, kind: p.kind, ringFrames: opts.ringFrames })),
      workers: opts.workers,
      cpuPin: opts.cpuPin ?? false,
      nonIpPolicy: opts.nonIpPolicy ?? 'accept',
      logRatePerSec: opts.logRatePerSec,
      txMode: opts.txMode,
      xdpMode: opts.xdpMode,
      busyPollUs: opts.busyPollUs,
      workerNice: opts.workerNice,
      buildNice: opts.buildNice,
      conntrack: opts.conntrack ?? true,
      conntrackMax: opts.conntrackMax,
      conntrackTimeouts: opts.conntrackTimeouts,
      conntrackTcpLoose: opts.conntrackTcpLoose ?? true,
      dropL4Truncated: opts.dropL4Truncated ?? false,
      ndpBypass: opts.ndpBypass ?? false,
      hostAddrs: opts.hostAddrs ?? [],
      conntrackReplicate: opts.conntrackReplicate ?? false,
    });
    this.sets = new IpsetStore(this.dp.sets());
    // Expired set entries are absent at once; this reclaims their slots
    // (bounded work: at most 64k slots a second).
    this.setGcTimer = setInterval(() => this.sets.gc(65536), 1000);
    this.setGcTimer.unref();
  }

  /** The active rule set with its source; undefined before the first one (or while a snapshot's metadata loads). */
  get ruleset(): CompiledRuleSet | undefined {
    return this.metadataPending ? undefined : this.rules;
  }

  get rulesCache(): RulesCache | undefined {
    return this.opts.rulesCache;
  }

  get hasRuleFiles(): boolean {
    return this.opts.ruleFiles.length > 0;
  }

  get loadingMetadata(): boolean {
    return this.metadataPending;
  }

  /** Parse, compile and swap in the rule files. On any error the running rules stay. */
  load(): Promise<Activation> {
    return this.serial(async () => {
      const t0 = performance.now();
      let key: string | undefined;
      const restore = this.opts.restoreCounters ?? false;
      const files = this.opts.ruleFiles;
      const opts = { family: this.opts.ruleFamily, skipOtherTables: this.opts.skipOtherTables, maxRules: this.maxRules };
      const keyOf = async (read: Array<{ file: string; bytes: Uint8Array }>) => {
        if (this.opts.rulesCache) key = await runSliced(this.opts.rulesCache.keySteps(read, opts));
      };
      const a = await this.attempt(t0, async () => {
        if (files.length === 0) throw new Error('no rule files to load (started from a snapshot without --rules)');
        // Large files are compiled while they are read (as a large PUT body):
        // this thread never decodes or scans them unless the addon declines.
        const streamed = await this.streamFiles(files, opts, restore);
        if (streamed) {
          // The key is hashed here while the thread compiles.
          const [built] = await Promise.all([streamed.built, keyOf(streamed.read)]);
          if (!('declined' in built)) return this.withSkipped(built);
        }
        // All read before any is parsed: the admission check and the cache key see them together.
        const { texts, bytes } = streamed
          ? { texts: await Promise.all(streamed.read.map(async (r) => ({ file: r.file, text: await decodeUtf8Sliced(r.bytes) }))), bytes: [] }
          : await readRuleTextsAsync(files);
        if (!streamed) await keyOf(texts.map((t, i) => ({ file: t.file, bytes: bytes[i] })));
        let d = textDemand('the rule files', 0, 0, 'save');
        for (const t of texts) {
          // A scan of each text: the probes get a turn between them.
          await nextTurn();
          const one = textDemandOf('the rule files', t.file, t.text, this.maxRules, d.rules);
          d = { ...d, rules: d.rules + one.rules, chars: d.chars + one.chars, heapBytes: d.heapBytes + one.heapBytes, nativeBytes: d.nativeBytes + one.nativeBytes };
        }
        this.admit(d);
        await nextTurn();
        const recipe: Recipe = { texts, opts, bytes: bytes.map(movableBytes) };
        // Declined by the addon while read: the reference builds them, without asking again.
        return this.withSkipped(await this.build(recipe, restore, undefined, !streamed));
      }, restore);
      if (key) this.cacheRules(key);
      return a;
    });
  }

  /** The build, with the tables --skip-tables left out logged. */
  private withSkipped<T extends CompiledRuleSet | ThreadBuilt>(built: T): T {
    for (const t of 'skipped' in built ? built.skipped : built.source.skipped ?? []) {
      log('warn', 'table skipped (--skip-tables)', { file: t.file, line: t.line, table: t.table, rules: t.rules });
    }
    return built;
  }

  /**
   * The rule files read into shared memory while the build thread compiles
   * them (startStream), when they are large and the addon's compiler is on;
   * undefined otherwise, or when a file changed size while it was read (the
   * caller reads them again). `read`: the files' bytes, for the cache key,
   * the model and a build by the reference if the addon declined.
   */
  private async streamFiles(files: string[], opts: StreamRequest['stream']['opts'], restore: boolean):
    Promise<{ built: Promise<ThreadBuilt | { declined: string }>; read: Array<{ file: string; bytes: Buffer }> } | undefined> {
    if (!fastPathEnabled()) return undefined;
    const handles: Array<{ file: string; handle: FileHandle; size: number; regular: boolean }> = [];
    try {
      for (const file of files) {
        try {
          // Listed as soon as open, so that `finally` closes it whatever follows.
          const h = { file, handle: await open(file, 'r'), size: 0, regular: false };
          handles.push(h);
          const st = await h.handle.stat();
          h.size = st.size;
          h.regular = st.isFile();
        } catch (err) {
          throw unreadable(file, err);
        }
      }
      // Small texts, and what has no size to read to (a pipe, a directory), take the reader's way.
      if (handles.reduce((n, h) => n + h.size, 0) < this.buildThreadMinBytes || handles.some((h) => !h.regular || h.size >= 2 ** 31)) return undefined;
      const bodies = handles.map((h) => ({ file: h.file, body: new SharedBody(h.size) }));
      const built = this.startStream('the rule files', bodies, [], opts, restore);
      for (let i = 0; i < bodies.length; i++) {
        let whole: boolean;
        try {
          whole = await bodies[i].body.fillFrom(handles[i].handle);
        } catch (err) {
          whole = false;
          log('warn', 'rule file not read while compiling; reading it again', { file: handles[i].file, error: excerpt((err as Error).message, 400) });
        }
        if (!whole) {
          for (const b of bodies) b.body.abort();
          await built.catch(() => undefined);
          if (this.stopping.signal.aborted) throw new Error('the load was stopped: the firewall is stopping');
          return undefined;
        }
      }
      return { built, read: bodies.map((b) => ({ file: b.file, bytes: Buffer.from(b.body.buffer) })) };
    } finally {
      await Promise.all(handles.map((h) => h.handle.close().catch(() => undefined)));
    }
  }

  /**
   * A recipe compiled: on the build thread when its texts are large
   * (build-thread.ts: the event loop stays free, the model is read later
   * if ever), here in slices when small (a thread costs tens of ms).
   */
  private build(recipe: Recipe, restore: boolean, onParsed?: (parsedTables: number) => void, fastPath = true): Promise<CompiledRuleSet | ThreadBuilt> {
    const bytes = recipe.texts.reduce((n, t) => n + recipeTextLength(t), 0);
    if (bytes >= this.buildThreadMinBytes) {
      return buildOffThread({ recipe, fileCounters: restore, fastPath }, {
        ...this.progressOptions, onNotice: this.opts.onRuleNotice, onParsed, onFastPath: (r) => logFastPath(r), signal: this.stopping.signal,
      });
    }
    return runSliced((function* (p: Firewall['progressOptions'], onNotice?: (m: string) => void) {
      const { source, parsedTables } = yield* recipeSourceSteps(recipe, p.onParseProgress, onNotice);
      onParsed?.(parsedTables);
      return yield* compileSteps(source, p);
    })(this.progressOptions, this.opts.onRuleNotice));
  }

  /**
   * The rules that name each IP set (-m set), for `ipset list`'s References
   * and so that a set rules use cannot be destroyed or renamed (the kernel
   * refuses it: "in use by a kernel component"). One pass, only when the
   * rule set has -m set rules.
   */
  private countSetReferences(counts?: Map<string, number>): void {
    const rs = this.rules;
    if (!rs || !rs.stats.features['-m set']) {
      setReferenceCounter(undefined);
      return;
    }
    const c = counts ?? setReferenceCounts(rs.source);
    setReferenceCounter((name) => c.get(name) ?? 0);
  }

  /** Write the running rule set to the rules cache, in the background (logged; a failure changes nothing else). */
  private cacheRules(key: string): void {
    const cache = this.opts.rulesCache!;
    const compiled = this.rules!;
    if (cache.lookup(key)) return;
    if (compiled.stats.features['-m set']) {
      log('info', 'rules not cached: rule sets with -m set cannot be snapshotted', { cache: cache.dir });
      return;
    }
    const t0 = performance.now();
    // The snapshot holds the listing: a model read on the build thread is read here first, in slices.
    setImmediate(() => {
      materialize(compiled).then(() => cache.store(key, compiled, this.opts.ruleFiles)).then(
        (bytes) => log('info', 'rules cached', { file: cache.path(key), bytes, seconds: +((performance.now() - t0) / 1000).toFixed(3) }),
        (err) => log('warn', 'rules not cached', { cache: cache.dir, error: excerpt((err as Error).message, 400) }),
      );
    });
  }

  /**
   * Forward from a snapshot's verified tables at once, with the classifiers
   * loaded from its image (or built from the tables if the native side
   * refuses the image: Activation.image says why); the rule metadata
   * (listing, per-rule counters by identity) comes later with adoptMetadata.
   */
  activateSnapshot(snap: LoadedSnapshot): Promise<Activation> {
    const shell: CompiledRuleSet = {
      buffer: snap.buffer, tables: snap.header.tables, rules: [], ifaces: snap.ifaces, source: { tables: [] }, stats: snap.header.stats,
    };
    return this.serial(async () => {
      // Its rule metadata is parsed later, into as much heap as a rule file's.
      const rules = snap.header.stats.sourceRules;
      if (rules > this.maxRules) throw overRuleLimit({ file: 'the snapshot', line: 0, col: 0 }, this.maxRules);
      this.admit({ ...textDemand('the snapshot', 0, rules, 'save'), nativeBytes: snap.buffer.byteLength + (snap.image?.byteLength ?? 0) });
      const r = await this.attempt(performance.now(), async () => shell, false, snap.header.ruleCount, snap.image, true);
      this.metadataPending = true;
      return r;
    });
  }

  /**
   * Replace the running rules by a snapshot (PUT /rules with a snapshot
   * body): active once its tables are verified and its classifiers loaded
   * from the image; the listing and the counter carry-over follow when the
   * metadata is parsed, in the background (`metadata` settles then).
   */
  async replaceWithSnapshot(snap: LoadedSnapshot): Promise<Activation & { metadata: Promise<boolean> }> {
    const r = await this.activateSnapshot(snap);
    return { ...r, metadata: this.loadSnapshotMetadata(snap, r.generation) };
  }

  /**
   * Parse a snapshot's metadata (seconds at 1M rules, yielding as it goes)
   * and adopt it if generation `generation` is still the running one.
   * Never rejects: a failure is logged, the rules keep forwarding.
   */
  async loadSnapshotMetadata(snap: LoadedSnapshot, generation: number): Promise<boolean> {
    // Not before the caller has its answer: restore() starts with seconds of
    // synchronous work (reading, hashing and splitting the metadata).
    await new Promise((r) => setImmediate(r));
    const t0 = performance.now();
    try {
      const compiled = await snap.restore(this.stopping.signal);
      const adopted = await this.adoptMetadata(generation, compiled);
      if (adopted) log('info', 'snapshot metadata loaded', { rules: compiled.stats.sourceRules, carried: this.bank.lastCarried, seconds: (performance.now() - t0) / 1000 });
      return adopted;
    } catch (err) {
      if (!this.stopping.signal.aborted) log('error', 'snapshot metadata unusable; rules keep forwarding, listing unavailable until a reload', { error: (err as Error).message });
      return false;
    }
  }

  /**
   * The snapshot's parsed metadata, if no other rule set replaced it
   * meanwhile: now the counters of the rule set it replaced carry over.
   */
  adoptMetadata(generation: number, compiled: CompiledRuleSet): Promise<boolean> {
    return this.serial(async () => {
      if (!this.metadataPending || this.status.generation !== generation) return false;
      const carry = this.pendingCarry;
      this.pendingCarry = undefined;
      this.bank.swap(await runSliced(identitiesSteps(compiled.rules)), carry?.generation === generation ? carry.previous : undefined);
      this.status.carried = this.bank.lastCarried;
      this.rules = compiled;
      // With the snapshot's rule spans, edits take the overlay from here on.
      this.edits = initialEditState(compiled, generation);
      this.metadataPending = false;
      return true;
    });
  }

  /**
   * Replace the rule set (PUT /rules): a RuleSet, or a function that parses
   * one given the running source (run in turn, so a parse error counts as a
   * failed attempt). `restore`: take counters from it.
   */
  replace(rs: RuleSet | ((running: RuleSet | undefined) => RuleSet | Promise<RuleSet>), restore = false): Promise<Activation> {
    return this.serial(() => this.attempt(performance.now(), async () => compileAsync(typeof rs === 'function' ? await rs(await this.runningSource()) : rs, this.progressOptions), restore));
  }

  /**
   * Replace the rule set by iptables-save text (PUT /rules): `prepare` gets
   * the running rule set (its model not read) and gives the recipe, or
   * throws; the text is parsed and compiled on the build thread when large.
   * `parsedTables` lets the caller refuse a text of no tables.
   */
  replaceText(prepare: (running: CompiledRuleSet | undefined) => Promise<Recipe>, restore: boolean, check: (parsedTables: number) => void): Promise<Activation> {
    return this.serial(() => this.attempt(performance.now(), async () => this.build(await prepare(this.ruleset), restore, check), restore));
  }

  /** True when no rule set change is queued or running (a streamed PUT starts only then). */
  get idle(): boolean {
    return this.queued === 0 && this.streaming === 0;
  }

  /**
   * PUT /rules of an iptables-save body, compiled by the addon while it
   * arrives (shared-body.ts; build-thread.ts StreamRequest): the build
   * thread starts on the first bytes instead of after the last, and this
   * thread never decodes or scans the text. Taken only when idle (the
   * running tables the thread checks against are the ones it replaces).
   * A body the addon declines, or one that would leave running tables in
   * place, is built from the whole body by `fallback` (routes.ts's
   * textReplacement), exactly as if it had not been streamed.
   */
  async replaceTextStreamed(body: SharedBody, complete: Promise<Buffer>, opts: { file: string; family?: Family }, restore: boolean,
    check: (parsedTables: number) => void, fallback: (bytes: Buffer) => Promise<(running: CompiledRuleSet | undefined) => Promise<Recipe>>): Promise<Activation> {
    const t0 = performance.now();
    const running = this.runningTables();
    const streamed = this.startStream('the request body', [{ file: opts.file, body }], running, { family: opts.family, maxRules: this.maxRules, saveOnly: true }, restore, check);
    // The queue is entered once the body is whole: a client that stalls or
    // goes away half-way holds no other change up (its 400 comes from here).
    this.streaming++;
    let bytes: Buffer;
    try {
      bytes = await complete.catch(async (err) => {
        // Its reader was stopped (stopping, the thread failed): the build's error is the answer.
        if (body.abandoned) await streamed;
        throw err;
      });
    } finally {
      this.streaming--;
    }
    return this.serial(() => this.attempt(t0, async () => {
      const r = await streamed;
      if (!('declined' in r)) {
        // Another change ran while the body arrived and left other tables: the reference merges with them.
        if (sameTables(this.runningTables(), running)) return r;
        r.cancel();
        log('info', 'rule text compiled again by the reference parser', { reason: 'the running tables changed while the body arrived' });
      }
      // The addon has said no to this text (or its build is stale): the reference builds it.
      const prepare = await fallback(bytes);
      return this.build(await prepare(this.ruleset), restore, check, !('declined' in r));
    }, restore));
  }

  /** The running rule set's tables, by family and name. */
  private runningTables(): StreamRequest['stream']['running'] {
    return [...new Map((this.rules?.tables ?? []).map((t) => {
      const name = tableOfKey(t.hook);
      return [`${t.family}/${name}`, { family: t.family, name }] as const;
    })).values()];
  }

  /**
   * The build thread compiling `bodies` while they fill (build-thread.ts
   * StreamRequest), admitted for the compiler's records before a byte is
   * parsed and for the classifiers once the rules are counted.
   */
  private startStream(what: string, bodies: Array<{ file: string; body: SharedBody }>, running: StreamRequest['stream']['running'],
    opts: StreamRequest['stream']['opts'], restore: boolean, check?: (parsedTables: number) => void): Promise<ThreadBuilt | { declined: string }> {
    const length = bodies.reduce((n, b) => n + b.body.buffer.byteLength, 0);
    const demand = fastTextDemand(what, length);
    this.admit(demand);
    // Held against other builds admitted while this one runs (a reload while a PUT uploads).
    const reserved = demand.nativeBytes;
    this.reservedBytes += reserved;
    const p = buildStreamOffThread({
      stream: { inputs: bodies.map(({ file, body }) => ({ buffer: body.buffer, progress: body.progress, file })), running, opts },
      fileCounters: restore,
    }, bodies.map((b) => new Uint8Array(b.body.buffer)), {
      ...this.progressOptions, onNotice: this.opts.onRuleNotice, onFastPath: (r) => logFastPath(r, true), signal: this.stopping.signal,
      onParsed: (tables, rules) => {
        check?.(tables);
        this.admit(fastTextDemand(what, length, rules), reserved);
      },
    });
    // Whatever the caller does meanwhile, the thread's answer is observed.
    p.catch(() => undefined).finally(() => (this.reservedBytes -= reserved));
    return p;
  }

  /** The running rule set's model, read first if it was built on the build thread. */
  async runningSource(): Promise<RuleSet | undefined> {
    await materialize(this.ruleset);
    return this.ruleset?.source;
  }

  /**
   * Throws AdmissionError if a rule set of demand `d` would not fit in
   * memory beside the running one (src/control/admission.ts). Callers check
   * before parsing, inside their turn of the queue (so after the reload
   * before them has freed what it replaced).
   */
  admit(d: Demand, ownReservation = 0): void {
    admit(d, { rules: this.rules?.stats.sourceRules ?? 0, nativeBytes: this.status.memoryBytes, reservedBytes: this.reservedBytes - ownReservation });
  }

  /** One edit (insert, append, delete, policy), on a copy of the running rule set. */
  edit(makeOp: (running: RuleSet) => RuleOp): Promise<Activation & { op: RuleOp }> {
    return this.serial(async () => {
      const t0 = performance.now();
      await materialize(this.rules);
      const running = this.rules?.source ?? { tables: [] };
      const op = makeOp(running);
      const now = this.rules?.stats.sourceRules ?? 0;
      if ((op.op === 'append' || op.op === 'insert') && now + op.rules.length > this.maxRules) {
        const pos = op.rules[0]?.pos ?? { file: '<request>', line: 1, col: 1 };
        throw new RuleLimitError(pos, `the rule set has ${now} rules; ${op.rules.length} more would be over the rule limit (--max-rules ${this.maxRules})`, this.maxRules);
      }
      const plan = this.rules && this.edits && !this.metadataPending ? planEdit(this.rules, this.edits, op) : 'no base build to edit';
      if (typeof plan !== 'string') return { ...(await this.applyEdit(t0, plan)), op };
      const next = cloneRuleSet(running);
      applyRuleOp(next, op);
      return { ...(await this.attempt(t0, async () => compileAsync(next, this.progressOptions), false)), fallback: plan, op };
    });
  }

  /**
   * A file of edits (ctl apply, src/control/batch.ts) as one activation: one
   * overlay delta when every edit can be one, else one rebuild of the final
   * rule set. A RuleError anywhere in the file applies nothing.
   */
  applyBatch(text: string, file: string, family: Family): Promise<Activation & { edits: number; ops: number }> {
    return this.serial(async () => {
      const t0 = performance.now();
      await materialize(this.rules);
      const running = this.rules?.source ?? { tables: [] };
      const batch = parseBatch(text, file, running, family);
      const after = ruleCount(batch.next);
      if (after > this.maxRules) {
        throw new RuleLimitError({ file, line: 1, col: 1 }, `the edits leave ${after} rules, over the rule limit (--max-rules ${this.maxRules})`, this.maxRules);
      }
      const done = { edits: batch.edits, ops: batch.ops.length };
      const ruleOps = batch.ops.filter(isRuleOp);
      const plan = ruleOps.length !== batch.ops.length ? 'the file creates or deletes chains'
        : this.rules && this.edits && !this.metadataPending ? planBatch(this.rules, this.edits, ruleOps) : 'no base build to edit';
      if (typeof plan !== 'string') return { ...(await this.applyEdit(t0, plan)), ...done };
      return { ...(await this.attempt(t0, async () => compileAsync(batch.next, this.progressOptions), false)), fallback: plan, ...done };
    });
  }

  /** An edit as an overlay over the running classifiers (src/control/edits.ts). */
  private applyEdit(t0: number, plan: EditPlan): Promise<Activation> {
    return this.tracked(t0, async () => {
      const t1 = performance.now();
      const published = this.beginPublish();
      let r;
      try {
        r = await this.dp.applyEdits(plan.native);
        // Active: now commit the bookkeeping (nothing above changed it).
        plan.commit();
        this.bank.edit(plan.added, plan.removed);
        this.rules = plan.compiled;
        this.countSetReferences();
        this.edits = plan.state;
      } finally {
        published();
      }
      const t2 = performance.now();
      return {
        memoryBytes: r.memoryBytes,
        activation: {
          rules: plan.compiled.stats.sourceRules, records: plan.compiled.stats.records, seconds: (performance.now() - t0) / 1000, generation: r.generation,
          buildSeconds: r.buildSeconds, carried: 0, method: 'overlay',
          timings: { compileSeconds: (t1 - t0) / 1000, setRulesSeconds: (t2 - t1) / 1000, countersSeconds: (performance.now() - t2) / 1000 },
        },
      };
    });
  }

  /** One activation, with the reload status every kind keeps the same way. */
  /** The reload in progress, if any (see ReloadProgress). */
  get progress(): ReloadProgress | undefined {
    return this.current ? { ...this.current.p, seconds: (performance.now() - this.current.t0) / 1000 } : undefined;
  }

  private current: { t0: number; p: Omit<ReloadProgress, 'seconds'>; stageT0: number } | undefined;

  /** A reload's step: updates the progress, and logs each stage once it ends (with its counts and time). */
  private step(stage: ReloadProgress['stage'], done: number, total: number, file?: string): void {
    const c = this.current;
    if (!c) return;
    if (c.p.stage !== stage || c.p.file !== file) this.endStage();
    if (c.p.stage !== stage || c.p.file !== file) c.stageT0 = performance.now();
    c.p = { stage, done, total, file };
  }

  private endStage(): void {
    const c = this.current;
    if (!c || c.p.total === 0) return;
    log('info', 'reload stage done', { stage: c.p.stage, ...(c.p.file ? { file: c.p.file } : {}), done: c.p.done, total: c.p.total, seconds: +((performance.now() - c.stageT0) / 1000).toFixed(3) });
  }

  /** Progress callbacks for the parse and compile of a reload (LoadOptions / CompileOptions). */
  readonly progressOptions = {
    onParseProgress: (file: string, done: number, total: number) => this.step('parse', done, total, file),
    onProgress: (done: number, total: number) => this.step('compile', done, total),
  };

  private async tracked(t0: number, run: () => Promise<{ activation: Activation; memoryBytes: number }>): Promise<Activation> {
    this.status.lastAttempt = Date.now() / 1000;
    this.swapping++;
    this.current = { t0, stageT0: t0, p: { stage: 'parse', done: 0, total: 0 } };
    try {
      const { activation: a, memoryBytes } = await run();
      Object.assign(this.status, {
        generation: a.generation, lastSeconds: a.seconds, lastOk: true, lastError: undefined, lastSuccess: Date.now() / 1000,
        buildSeconds: a.buildSeconds, memoryBytes, carried: a.carried,
      });
      this.status.succeeded++;
      return a;
    } catch (err) {
      Object.assign(this.status, { lastSeconds: (performance.now() - t0) / 1000, lastOk: false, lastError: (err as Error).message });
      this.status.failed++;
      throw err;
    } finally {
      this.endStage();
      this.current = undefined;
      this.swapping--;
    }
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    this.queued++;
    // What was queued when the firewall began to stop does not start.
    const run = () => (this.stopping.signal.aborted ? Promise.reject(new Error('the firewall is stopping')) : fn());
    const p = this.chain.then(run, run).finally(() => this.queued--);
    this.chain = p.catch(() => undefined);
    return p;
  }

  /**
   * Build and publish one rule set. `deferCounters` (a snapshot, whose rules
   * are not known until its metadata is parsed): the replaced generation's
   * final counters wait in pendingCarry for adoptMetadata.
   */
  private async attempt(t0: number, build: () => Promise<CompiledRuleSet | ThreadBuilt>, restore: boolean, ruleCount?: number, image?: Uint8Array,
    deferCounters = false): Promise<Activation> {
    return this.tracked(t0, async () => {
      const b = await build();
      // From the build thread, what the swap needs of the model arrives while the classifier builds.
      const { compiled, later } = 'later' in b ? b : { compiled: b, later: undefined };
      try {
        return await this.activate(t0, compiled, later, restore, ruleCount, image, deferCounters);
      } catch (err) {
        if ('cancel' in b) b.cancel();
        throw err;
      }
    });
  }

  private async activate(t0: number, compiled: CompiledRuleSet, later: ThreadBuilt['later'] | undefined, restore: boolean, ruleCount: number | undefined,
    image: Uint8Array | undefined, deferCounters: boolean): Promise<{ activation: Activation; memoryBytes: number }> {
    // One activation: the classifier build, the counter swap, the bookkeeping.
    const t1 = performance.now();
    this.step('build', 0, compiled.stats.records);
    const ids = this.opts.ports.map((p) => compiled.ifaces.classOf(p.name));
    // The classifier builds on the libuv pool; meanwhile the counter
    // identities of the new rules arrive from the build thread or are
    // computed here. If the build fails, they are simply dropped.
    // From here until the bookkeeping is the new rule set's, the dataplane
    // may already run it: listings wait (ruleCounters), nothing else does.
    const published = this.beginPublish();
    let r, t2, t3;
    try {
      const pending = this.dp.setRules(compiled.buffer, ids, ruleCount ?? ruleIdCount(compiled), image);
      let identity: RuleIdentities;
      let late: Awaited<ThreadBuilt['later']> | undefined;
      try {
        if (later) {
          // The tables are already with the dataplane: if the thread fails
          // now, the rest is computed here from the model, so what runs and
          // what the bookkeeping says never part.
          late = await later.catch((err) => {
            log('warn', 'build thread failed after the tables; reading the rule model here', { error: excerpt((err as Error).message, 400) });
            return undefined;
          });
          if (!late) await materialize(compiled);
          else compiled.logRules = late.logRules;
        }
        identity = late?.identities ?? await runSliced(identitiesSteps(compiled.rules));
      } catch (err) {
        await pending.catch(() => undefined);
        throw err;
      }
      r = await pending;
      this.step('build', compiled.stats.records, compiled.stats.records);
      this.step('counters', 0, ruleIdCount(compiled));
      t2 = performance.now();
      // A snapshot replaced before its metadata came: its counters cannot
      // be told apart by rule, so they, and what it had waiting, are lost.
      if (this.pendingCarry) {
        log('warn', 'counters of the snapshot rule set are lost: it was replaced before its rule metadata loaded', { generation: this.pendingCarry.generation });
        this.pendingCarry = undefined;
        this.bank.reset();
      }
      if (deferCounters) {
        this.pendingCarry = { generation: r.generation, previous: this.metadataPending ? undefined : r.previous as LiveCounters | undefined };
      } else {
        this.bank.swap(identity, this.metadataPending ? undefined : r.previous as LiveCounters | undefined, restore ? (late ? late.fileCounters : fileCounters(compiled)) : undefined);
      }
      t3 = performance.now();
      this.rules = compiled;
      if (this.opts.ruleModel === 'background' && isDeferred(compiled)) {
        materialize(compiled).catch((err) => log('error', 'rule model not read; listings will try again', { error: excerpt((err as Error).message, 400) }));
      }
      this.countSetReferences(late ? late.setReferences ?? new Map() : undefined);
      this.edits = initialEditState(compiled, r.generation);
      this.releaseReplaced();
      this.metadataPending = false;
    } finally {
      published();
    }
    return {
      memoryBytes: r.memoryBytes,
      activation: {
        rules: compiled.stats.sourceRules, records: compiled.stats.records, seconds: (performance.now() - t0) / 1000, generation: r.generation,
        buildSeconds: r.buildSeconds, carried: deferCounters ? 0 : this.bank.lastCarried, method: 'rebuild', // deferred: adoptMetadata carries
        timings: { compileSeconds: (t1 - t0) / 1000, setRulesSeconds: (t2 - t1) / 1000, countersSeconds: (t3 - t2) / 1000 },
        ...(image ? { image: { loaded: r.imageError === undefined, error: r.imageError as string | undefined } } : {}),
      },
    };
  }

  /**
   * The replaced generation's buffers (its packed tables, its body or file
   * bytes: ~130 MB at a million rules) live outside the JS heap and go only
   * when V8 collects the objects holding them, which on a heap without a
   * rule model (a few MB) it does not hurry to: each replace would leave one
   * generation resident. A full collection of such a heap takes ~10 ms, so
   * it is done right after the swap; with a model read (hundreds of MB of
   * heap, a collection of hundreds of ms: a probe would wait) it is left to V8.
   */
  private releaseReplaced(): void {
    setImmediate(() => {
      if (process.memoryUsage().heapUsed > RELEASE_GC_MAX_HEAP) return;
      const t0 = performance.now();
      collect();
      log('debug', 'replaced rule set released', { gcMs: +(performance.now() - t0).toFixed(1), rssBytes: process.memoryUsage.rss() });
    });
  }

  /** Rules are active and the ports are open (the probe contract's full answer: src/control/health.ts). */
  get ready(): boolean {
    return this.started && this.rules !== undefined;
  }

  /** start() ran and stop() did not. */
  get dataplaneStarted(): boolean {
    return this.started;
  }

  /** Worker loop beats and port links, from the dataplane (src/control/health.ts). */
  dataplaneHealth(): DataplaneHealth {
    return this.dp.health();
  }

  /**
   * Per-rule counters as the operator sees them (carried over reloads).
   * Waits for a swap in progress, so the counters and `ruleset` agree.
   */
  async ruleCounters(): Promise<{ ruleset: CompiledRuleSet | undefined; get: (id: number) => [bigint, bigint] }> {
    // Only while a new generation is being published (not while a reload
    // parses and compiles: the running rules' listing stays valid then).
    // Listings read the model: one built on the build thread is read first,
    // in slices, and a publish may begin meanwhile.
    for (;;) {
      while (this.publishing) await this.publishing;
      const rs = this.rules;
      if (!rs || !isDeferred(rs)) break;
      await materialize(rs);
    }
    const c = this.dp.counters();
    const live: LiveCounters = c.rules;
    return { ruleset: this.rules, get: (id) => this.bank.get(id, live) };
  }

  /** Zero per-rule counters (all, or the given rule ids). */
  zero(ids?: number[] | ((rs: CompiledRuleSet) => number[] | undefined)): Promise<number> {
    // A selector picks the ids in turn, from the rule set that runs then (not one a reload replaced meanwhile).
    return this.serial(async () => {
      if (typeof ids === 'function') await materialize(this.rules);
      const chosen = typeof ids === 'function' ? (this.rules ? ids(this.rules) : []) : ids;
      return this.bank.zero(this.dp.counters().rules, chosen);
    });
  }

  /** How start() opened the ports. */
  get io(): IoChoice {
    return this.dp.io() as IoChoice;
  }

  /** A hot standby's ports: sockets and rings ready, unbound (receiving nothing) until start() binds them. */
  prepare(): void {
    this.dp.prepare();
  }

  start(): void {
    this.dp.start();
    this.started = true;
    this.logTimer = setInterval(() => this.drainLogs(), 200);
  }

  /**
   * SIGHUP and --watch-rules: reload atomically; a file with an error keeps
   * the old rules. Logged either way, with what asked for it. A SIGHUP
   * during a reload is ignored (that reload reads the files anyway); a
   * watched change (`wait`) runs after it instead, since the files may have
   * changed again after that reload read them.
   */
  async reload(trigger: 'SIGHUP' | 'watch' = 'SIGHUP', wait = false): Promise<void> {
    while (this.reloading) {
      if (!wait) {
        log('warn', 'reload already in progress; ignored', { trigger });
        return;
      }
      await this.reloading;
    }
    let done!: () => void;
    this.reloading = new Promise<void>((r) => (done = r));
    try {
      const r = await this.load();
      log('info', 'rules reloaded', { ...r, files: this.opts.ruleFiles, trigger });
    } catch (err) {
      log('error', 'reload failed; the running rules stay', { error: (err as Error).message, files: this.opts.ruleFiles, trigger });
    } finally {
      this.reloading = undefined;
      done();
    }
  }

  /** Dataplane counters; `{ rules: false }` skips the per-rule arrays (live generation only), the costly part at 1M rules. */
  counters(opts?: { rules: boolean }) {
    return this.dp.counters(opts);
  }

  /**
   * The live states of stateful matches (limit buckets, recent and
   * hashlimit tables): counts, and with `list` each one's listing as
   * /proc/net/xt_recent/NAME and /proc/net/ipt_hashlimit/NAME show it.
   */
  matchStates(list = false): MatchState[] {
    return this.dp.matchStates({ list });
  }

  // ---- connection tracking (run by the workers at a batch boundary, off the JS thread) ----

  /** Tracked connections matching `filter`, at most `limit` (default 10000). */
  conntrackList(filter: ConntrackFilter = {}, limit = 10000): Promise<ConntrackEntry[]> {
    return this.dp.conntrackList({ filter, limit });
  }

  /** Connections tracked now (node_nf_conntrack_entries) and the limit. */
  conntrackCount(): { entries: number; limit: number } {
    const c = this.dp.counters({ rules: false }).conntrack as ConntrackCounters;
    return { entries: c.entries, limit: c.limit };
  }

  /** Removes the matching connections (all without a filter); resolves to how many. */
  conntrackFlush(filter: ConntrackFilter = {}): Promise<number> {
    return this.dp.conntrackFlush(filter);
  }

  /** Removes one connection; resolves to whether it existed. */
  conntrackDelete(tuple: ConntrackTuple): Promise<boolean> {
    return this.dp.conntrackDelete(tuple);
  }

  // ---- replication for a hot standby (src/control/standby.ts) ----

  /** What a standby must share with this firewall to take its flows over. */
  replicationShape(): { workers: number; ports: number; conntrack: boolean } {
    return { workers: this.opts.workers, ports: this.opts.ports.length, conntrack: this.opts.conntrack ?? true };
  }

  /** Change records queued by the workers (48 bytes each) and the records lost to full rings so far. */
  ctDrain(max: number): { records: Buffer; lost: number } {
    return this.dp.ctDrain(max);
  }

  /** Every table's entries as records, taken by each worker at a batch boundary. */
  ctExport(): Promise<Buffer> {
    return this.dp.ctExport();
  }

  /** Applies records to a stopped dataplane's tables (a standby's); returns how many were refused. */
  ctImport(records: Buffer, replaceAll: boolean): number {
    return this.dp.ctImport(records, replaceAll);
  }

  /** Fresh timeouts for a replica about to forward (before start()). */
  ctRearm(): void {
    this.dp.ctRearm();
  }

  private drainLogs(): void {
    const events = this.dp.pollLogs(1000);
    // A model not read yet (src/rules/deferred.ts) is not read for this:
    // the build thread sent what LOG lines say of its LOG and NFLOG rules.
    const rs = this.rules;
    const deferred = rs !== undefined && isDeferred(rs);
    for (const e of events) {
      const sr = deferred ? undefined : rs?.rules[e.ruleId];
      const src: LogRule | undefined = deferred ? rs.logRules?.get(e.ruleId) : sr && logRuleOf(sr);
      const target = src?.target;
      const ext = target && target.kind === 'ext' ? targetExtension(target.name) : undefined;
      log('info', 'packet', {
        event: ext ? ext.name : 'LOG',
        prefix: target && target.kind === 'LOG' ? target.prefix ?? '' : undefined,
        ...(ext && target && target.kind === 'ext' ? ext.logFields?.(target.o) : {}),
        rule: src ? `${src.file}:${src.line}` : e.ruleId,
        chain: src?.chain,
        spec: src?.spec,
        in: e.iif, out: e.oif, src: e.src, dst: e.dst, proto: e.proto, sport: e.sport, dport: e.dport, len: e.len,
      });
    }
    if (events.dropped > 0) log('warn', 'LOG events lost (queue full or rate limit)', { dropped: events.dropped });
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    this.started = false;
    if (this.logTimer) clearInterval(this.logTimer);
    if (this.setGcTimer) clearInterval(this.setGcTimer);
    this.drainLogs();
    await this.dp.stop();
    // A build thread still inside the addon (told to stop: its pull throws) must leave it before the process exits.
    await buildThreadsEnded();
  }
}
