// Hot standby: a second `flatwall run` keeps a replica of the active's
// rules, IP sets and connection tables and takes the ports over when the
// active dies, so established connections survive the crash.
//
// Roles
//   The active (`--replication-listen ADDR:PORT`) serves one standby at a
//   time over TCP. The standby (`--standby-of ADDR:PORT`) builds the same
//   Firewall (same ports in the same order, same worker count) but does not
//   start its dataplane: two AF_PACKET sockets on one interface would both
//   receive and both forward every frame. It compiles the replicated rules
//   and loads the replicated sets (classifiers built, ready to publish), and
//   imports the connection records into the tables of the same workers.
//   When the active goes away (the connection ends: a kill -9 closes its
//   socket at once; or no message for --standby-timeout, a hung active) it
//   tells the active it takes over (a hung active that wakes up reads this
//   and stops forwarding: src/cli/run.ts exits), gives the replica fresh
//   timeouts, opens the ports and forwards.
//
// Why the same worker gets the same flows: the ports' AF_PACKET sockets
//   join a PACKET_FANOUT_HASH group, one socket per worker in worker order,
//   and the kernel picks the member by the flow's symmetric hash modulo the
//   member count (net/packet/af_packet.c, fanout_demux_hash), so with the
//   same worker count the standby's worker w receives the flows the
//   active's worker w owned. Records carry the worker index; the handshake
//   refuses a standby with another worker count or port count.
//
// Protocol (modelled on conntrackd's FT-FW "reliable" mode: conntrack-tools
//   src/sync-ftfw.c, src/network.c nethdr_track_seq). Every message from the
//   active has a sequence number, one more than the last; the standby acks
//   them (cumulative, as FT-FW's ACK) and, on a gap, asks for a resync (as
//   FT-FW's NET_F_RESYNC, answered by a full dump). A (re)connection always
//   starts with a full sync: SYNC_BEGIN, the sets, the rules, the dump of
//   every table (taken by each worker at a batch boundary), SYNC_END.
//   Changes (conntrack.h: Replication) are drained from the workers' rings
//   every --replication-interval ms and sent as CT_EVENTS; those drained
//   while a dump is being taken are sent after it (a record replayed over
//   a later dump leaves the right state: each record is the entry's whole
//   state). Heartbeats (FT-FW's ALIVE) every --heartbeat-interval ms keep
//   a quiet link alive. Sequence numbers matter less over TCP than over
//   FT-FW's UDP, but they also catch a record lost to a full ring on the
//   active (it resyncs) and any bug in between.
//
// Frame: u32 payload length, u8 type, 3 zero bytes, u64 sequence (0 for
// the standby's messages), payload. Records are the native 48-byte
// ct::Record in host byte order; the handshake refuses another byte order.
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { endianness } from 'node:os';
import { timingSafeEqual, createHash } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';
import { log } from './log';
import { parseIptables } from '../rules/iptables/parse';
import { printTable } from '../rules/iptables/print';
import type { Family, RuleSet } from '../rules/model';
import { isDeferred, materialize } from '../rules/deferred';
import type { Firewall } from './firewall';

export const PROTOCOL_VERSION = 1;
export const RECORD_BYTES = 48;
const HEADER = 16;
const MAX_FRAME = 256 * 1024 * 1024; // a million rules as text fit
const MAX_HELLO = 64 * 1024; // until the handshake is done
const DUMP_CHUNK = 21845 * RECORD_BYTES; // ~1 MB per CT_DUMP message
// A standby that reads slower than the changes come: past this much unsent,
// changes are dropped and a full sync follows once it has caught up
// (closing the link instead would make it take over).
const BACKLOG_BYTES = 64 * 1024 * 1024;

export enum Msg {
  Hello = 1, // JSON, both ways
  SyncBegin = 2,
  Sets = 3, // ipset save text
  Rules = 4, // JSON { generation, tables: [{ family, text }] }
  CtDump = 5, // records
  SyncEnd = 6,
  CtEvents = 7, // records
  Heartbeat = 8,
  Ack = 9, // standby -> active: u64 seq
  Resync = 10, // standby -> active
  Takeover = 11, // standby -> active: fencing
  Refused = 12, // active -> standby: JSON { error }
}

export interface Hello {
  proto: number;
  role: 'active' | 'standby';
  workers: number;
  ports: number;
  conntrack: boolean;
  endian: string;
  recordBytes: number;
  heartbeatMs?: number;
  token?: string; // sha256 hex of the shared token
  probe?: boolean; // only asks whether this is an active (probeActive)
  /** The active's process, for a standby in the same PID namespace (processAlive). */
  pid?: number;
  pidNs?: string;
  startTicks?: string;
}

/** This process as /proc names it: its PID namespace and start time (field 22 of /proc/PID/stat). */
export function selfIdent(): { pid: number; pidNs?: string; startTicks?: string } {
  try {
    return { pid: process.pid, pidNs: readlinkSync('/proc/self/ns/pid'), startTicks: procStat(process.pid)?.startTicks };
  } catch {
    return { pid: process.pid };
  }
}

function procStat(pid: number): { state: string; startTicks: string } | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // After the command name in parentheses: field 3 (state) onwards; field 22 is the start time.
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { state: f[0], startTicks: f[19] };
  } catch {
    return undefined;
  }
}

/**
 * Whether the active named by its greeting is a live process this standby
 * can see (same PID namespace, same start time: not a reused PID) that is
 * neither stopped nor a zombie. A silent but live active is slow (its
 * JavaScript thread held by a long garbage collection: seconds at a million
 * rules, bench/results/update-health.md), not dead.
 */
export function processAlive(h: Pick<Hello, 'pid' | 'pidNs' | 'startTicks'>): boolean {
  if (!h.pid || !h.pidNs || !h.startTicks) return false;
  try {
    if (readlinkSync('/proc/self/ns/pid') !== h.pidNs) return false;
  } catch {
    return false;
  }
  const st = procStat(h.pid);
  return st !== undefined && st.startTicks === h.startTicks && !['T', 't', 'Z', 'X', 'x'].includes(st.state);
}

export function encode(type: Msg, seq: bigint, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(HEADER);
  h.writeUInt32LE(payload.length, 0);
  h.writeUInt8(type, 4);
  h.writeBigUInt64LE(seq, 8);
  return Buffer.concat([h, payload]);
}

/** Splits a byte stream into frames; throws on a frame over MAX_FRAME (a confused or hostile peer). */
export class FrameReader {
  private buf: Buffer<ArrayBufferLike> = Buffer.alloc(0);
  /** The largest frame accepted (small until the peer has said who it is). */
  max = MAX_FRAME;
  push(chunk: Buffer): { type: Msg; seq: bigint; payload: Buffer }[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out = [];
    while (this.buf.length >= HEADER) {
      const len = this.buf.readUInt32LE(0);
      if (len > this.max) throw new Error(`replication: frame of ${len} bytes refused`);
      if (this.buf.length < HEADER + len) break;
      out.push({ type: this.buf.readUInt8(4) as Msg, seq: this.buf.readBigUInt64LE(8), payload: this.buf.subarray(HEADER, HEADER + len) });
      this.buf = this.buf.subarray(HEADER + len);
    }
    return out;
  }
}

function tokenHash(token: string | undefined): string | undefined {
  return token === undefined ? undefined : createHash('sha256').update(token).digest('hex');
}

function sameToken(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined) return b === undefined;
  if (b === undefined || a.length !== b.length) return false;
  return timingSafeEqual(Buffer.from(a), Buffer.from(b));
}

/** Why `peer` cannot replicate with us (undefined: it can). */
export function incompatible(ours: Hello, peer: Hello): string | undefined {
  if (peer.proto !== PROTOCOL_VERSION) return `protocol ${peer.proto}, this flatwall speaks ${PROTOCOL_VERSION}`;
  if (peer.endian !== ours.endian || peer.recordBytes !== ours.recordBytes) return 'another byte order or record layout';
  if (peer.workers !== ours.workers) return `the peer has ${peer.workers} workers, this process ${ours.workers} (the fanout gives flows to workers by their count)`;
  if (peer.ports !== ours.ports) return `the peer has ${peer.ports} ports, this process ${ours.ports}`;
  if (peer.conntrack !== ours.conntrack) return 'conntrack on one side only';
  return undefined;
}

export function parseAddr(s: string, flag: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(s) ?? /^([^:]+):(\d+)$/.exec(s);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) throw new Error(`${flag} must be ADDR:PORT or [ADDR]:PORT, got "${s}"`);
  return { host: m[1], port };
}

/** The running rule set as iptables-save text per family (what the standby parses). */
export function rulesPayload(fw: Firewall): Buffer | undefined {
  const rs = fw.ruleset;
  if (!rs) return undefined;
  const tables: { family: Family; text: string }[] = [];
  for (const family of [4, 6] as Family[]) {
    const ts = rs.source.tables.filter((t) => t.family === family);
    if (!ts.length) continue;
    const lines: string[] = [];
    for (const t of ts) lines.push(...printTable(t));
    tables.push({ family, text: `${lines.join('\n')}\n` });
  }
  return Buffer.from(JSON.stringify({ generation: fw.status.generation, tables }));
}

/** The replicated rules as one RuleSet. */
export function parseRulesPayload(p: Buffer): RuleSet {
  const j = JSON.parse(p.toString('utf8')) as { tables: { family: Family; text: string }[] };
  const tables = [];
  for (const t of j.tables) tables.push(...parseIptables(t.text, { file: `<active IPv${t.family}>`, family: t.family }).tables);
  return { tables };
}

/**
 * The active's sets as a restore text that replaces each set's members
 * (create -exist, flush, add): a set the standby's rules reference cannot
 * be destroyed and created again.
 */
export function setsRestoreText(save: string): string {
  const out: string[] = [];
  for (const line of save.split('\n')) {
    if (!line) continue;
    out.push(line);
    const m = /^create (\S+) /.exec(line);
    if (m) out.push(`flush ${m[1]}`);
  }
  return out.length ? `${out.join('\n')}\n` : '';
}

export interface ReplicationStats {
  role: 'active' | 'standby';
  connected: boolean;
  /** Messages and records sent (active) or received (standby). */
  messages: number;
  records: number;
  resyncs: number;
  /** Active: seconds from sending the oldest unacknowledged message until now (0 when all are acked); standby: since the last message. */
  lagSeconds: number;
  /** Standby: entries in the replica; active: entries the last dump sent. */
  replicaEntries: number;
  failovers: number;
  lastSeq: number;
  /** Records lost to full worker rings on the active (each loss forces a resync). */
  lostRecords: number;
  refusedRecords: number;
}

function emptyStats(role: 'active' | 'standby'): ReplicationStats {
  return { role, connected: false, messages: 0, records: 0, resyncs: 0, lagSeconds: 0, replicaEntries: 0, failovers: 0, lastSeq: 0, lostRecords: 0, refusedRecords: 0 };
}

export interface ActiveOptions {
  listen: string;
  heartbeatMs: number;
  intervalMs: number;
  token?: string;
  /** A standby said it took over: this process must stop forwarding. */
  onFenced: () => void;
}

/** The active's side: serves one standby at a time. */
export class ReplicationServer {
  readonly stats = emptyStats('active');
  private server: Server | undefined;
  private peer: Peer | undefined;
  private drainTimer: NodeJS.Timeout | undefined;
  private beatTimer: NodeJS.Timeout | undefined;
  private lostSeen = 0;
  private readonly ident = selfIdent();
  address: { host: string; port: number } | undefined;

  constructor(private readonly fw: Firewall, private readonly opts: ActiveOptions) {}

  hello(): Hello {
    const c = this.fw.replicationShape();
    return { proto: PROTOCOL_VERSION, role: 'active', ...c, endian: endianness(), recordBytes: RECORD_BYTES, heartbeatMs: this.opts.heartbeatMs, ...this.ident };
  }

  async start(): Promise<void> {
    const { host, port } = parseAddr(this.opts.listen, '--replication-listen');
    const srv = createServer((s) => this.accept(s));
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(port, host, () => resolve());
    });
    srv.on('error', (err) => log('error', 'replication listener failed', { error: err.message }));
    this.server = srv;
    const a = srv.address();
    if (a && typeof a === 'object') this.address = { host: a.address, port: a.port };
    this.lostSeen = this.fw.ctDrain(0).lost;
    this.drainTimer = setInterval(() => this.drain(), this.opts.intervalMs);
    this.beatTimer = setInterval(() => this.peer?.beat(), this.opts.heartbeatMs);
    log('info', 'replication listening', { address: this.address, heartbeatMs: this.opts.heartbeatMs, intervalMs: this.opts.intervalMs });
  }

  private accept(s: Socket): void {
    s.setNoDelay(true);
    const peer = new Peer(this, s, this.fw, this.stats);
    const reader = new FrameReader();
    reader.max = MAX_HELLO;
    let greeted = false;
    s.on('data', (chunk) => {
      let frames;
      try {
        frames = reader.push(chunk);
      } catch (err) {
        log('warn', 'replication peer sent a bad frame; closed', { error: (err as Error).message });
        s.destroy();
        return;
      }
      for (const f of frames) {
        if (!greeted) {
          if (f.type !== Msg.Hello) return void s.destroy();
          greeted = true;
          let h: Hello;
          try {
            h = JSON.parse(f.payload.toString('utf8')) as Hello;
          } catch {
            return void s.destroy();
          }
          const ours = this.hello();
          const why = !sameToken(tokenHash(this.opts.token), h.token) ? 'bad replication token' : incompatible(ours, h);
          s.write(encode(Msg.Hello, 0n, Buffer.from(JSON.stringify(ours))));
          if (h.probe) return void s.end();
          if (why) {
            log('warn', 'standby refused', { remote: s.remoteAddress, reason: why });
            s.end(encode(Msg.Refused, 0n, Buffer.from(JSON.stringify({ error: why }))));
            return;
          }
          reader.max = MAX_FRAME;
          // One standby: a new one (a restarted standby) replaces the old.
          if (this.peer) this.peer.close('replaced by a new standby connection');
          this.peer = peer;
          this.stats.connected = true;
          log('info', 'standby connected', { remote: `${s.remoteAddress}:${s.remotePort}` });
          void peer.fullSync('connect');
          continue;
        }
        // Only the current standby is heard: a refused or replaced one
        // must not fence this process or ask for resyncs.
        if (this.peer !== peer) return;
        peer.onMessage(f.type, f.seq, f.payload);
      }
    });
    const gone = () => {
      if (this.peer === peer) {
        this.peer = undefined;
        this.stats.connected = false;
        log('warn', 'standby disconnected', { remote: s.remoteAddress });
      }
    };
    s.on('close', gone);
    s.on('error', () => undefined);
  }

  fenced(): void {
    log('error', 'the standby took over: this process stops forwarding');
    this.opts.onFenced();
  }

  /** Moves the workers' change records to the standby (or drops them when there is none). */
  drain(): void {
    for (;;) {
      const { records, lost } = this.fw.ctDrain(65536);
      if (lost !== this.lostSeen) {
        this.stats.lostRecords = lost;
        this.lostSeen = lost;
        if (this.peer) void this.peer.fullSync('records lost to a full ring');
      }
      if (records.length) this.peer?.events(records);
      if (records.length < 65536 * RECORD_BYTES) break;
    }
    this.peer?.checkRulesAndSets();
    this.peer?.updateLag();
  }

  async close(): Promise<void> {
    if (this.drainTimer) clearInterval(this.drainTimer);
    if (this.beatTimer) clearInterval(this.beatTimer);
    this.peer?.close('stopping');
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}

/** One connected standby, as the active sees it. */
class Peer {
  private seq = 0n;
  private syncing = false;
  private pending: Buffer[] = [];
  private rulesGen = -1;
  private setsChanges = -1;
  private readonly sent: { seq: bigint; at: number }[] = [];
  private acked = 0n;
  private behind = false;
  private again: string | undefined; // a resync asked for while one ran (its dump may predate the reason)

  constructor(private readonly server: ReplicationServer, private readonly s: Socket, private readonly fw: Firewall, private readonly stats: ReplicationStats) {}

  private send(type: Msg, payload?: Buffer): void {
    if (this.s.destroyed) return;
    this.seq++;
    this.s.write(encode(type, this.seq, payload));
    this.stats.messages++;
    this.stats.lastSeq = Number(this.seq);
    if (type !== Msg.Heartbeat) this.sent.push({ seq: this.seq, at: performance.now() });
    if (this.sent.length > 100000) this.sent.splice(0, this.sent.length - 100000);
  }

  beat(): void {
    this.send(Msg.Heartbeat);
  }

  events(records: Buffer): void {
    if (this.syncing) {
      this.pending.push(records);
      return;
    }
    if (this.behind || this.s.writableLength > BACKLOG_BYTES) {
      if (!this.behind) log('warn', 'the standby falls behind: changes dropped until it catches up, then a full sync', { backlogBytes: this.s.writableLength });
      this.behind = true;
      return;
    }
    this.send(Msg.CtEvents, records);
    this.stats.records += records.length / RECORD_BYTES;
  }

  /** Resends the rules and sets when they changed since they were last sent. */
  checkRulesAndSets(): void {
    if (this.syncing) return;
    if (this.behind) {
      if (this.s.writableLength > BACKLOG_BYTES / 4) return;
      this.behind = false;
      void this.fullSync('the standby caught up after falling behind');
      return;
    }
    const sets = this.fw.sets.changes;
    if (sets !== this.setsChanges) this.sendSets();
    const rs = this.fw.ruleset;
    if (rs && this.fw.status.generation !== this.rulesGen) {
      // The payload prints the model: one from the build thread is read first, in slices.
      if (isDeferred(rs)) void materialize(rs).catch(() => undefined);
      else this.sendRules();
    }
  }

  private sendSets(): void {
    this.setsChanges = this.fw.sets.changes;
    this.send(Msg.Sets, Buffer.from(this.fw.sets.saveText()));
  }

  private sendRules(): void {
    const p = rulesPayload(this.fw);
    if (!p) return;
    this.rulesGen = this.fw.status.generation;
    this.send(Msg.Rules, p);
  }

  async fullSync(why: string): Promise<void> {
    if (this.syncing) {
      this.again = why;
      return;
    }
    this.syncing = true;
    this.pending = [];
    const t0 = performance.now();
    try {
      // The rules payload prints the model: one from the build thread is read first, in slices.
      for (let rs = this.fw.ruleset; rs && isDeferred(rs); rs = this.fw.ruleset) await materialize(rs);
      this.send(Msg.SyncBegin, Buffer.from(JSON.stringify({ why })));
      this.sendSets();
      this.sendRules();
      const dump: Buffer = await this.fw.ctExport();
      for (let off = 0; off < dump.length; off += DUMP_CHUNK) this.send(Msg.CtDump, dump.subarray(off, off + DUMP_CHUNK));
      this.stats.replicaEntries = dump.length / RECORD_BYTES;
      this.send(Msg.SyncEnd);
      this.stats.resyncs++;
      log('info', 'standby synced', { why, entries: dump.length / RECORD_BYTES, rulesGeneration: this.rulesGen, seconds: +((performance.now() - t0) / 1000).toFixed(4) });
    } finally {
      this.syncing = false;
      const queued = this.pending;
      this.pending = [];
      for (const b of queued) this.events(b);
    }
    const again = this.again;
    this.again = undefined;
    if (again && !this.s.destroyed) await this.fullSync(again);
  }

  onMessage(type: Msg, _seq: bigint, payload: Buffer): void {
    if (type === Msg.Ack && payload.length >= 8) {
      this.acked = payload.readBigUInt64LE(0);
      let i = 0;
      while (i < this.sent.length && this.sent[i].seq <= this.acked) i++;
      if (i) this.sent.splice(0, i);
      this.updateLag();
    } else if (type === Msg.Resync) {
      log('warn', 'standby asked for a resync');
      void this.fullSync('standby request');
    } else if (type === Msg.Takeover) {
      this.server.fenced();
    }
  }

  updateLag(): void {
    this.stats.lagSeconds = this.sent.length ? (performance.now() - this.sent[0].at) / 1000 : 0;
  }

  close(why: string): void {
    log('info', 'standby connection closed', { why });
    this.s.destroy();
  }
}

export interface StandbyOptions {
  of: string;
  timeoutMs: number;
  token?: string;
  /** Called once, when this process must take the ports over (the replica is complete). */
  onTakeover: (reason: string, lostAt: number) => Promise<void>;
}

/** The standby's side: follows the active, keeps the replica, decides the takeover. */
export class StandbyClient {
  readonly stats = emptyStats('standby');
  private s: Socket | undefined;
  private expected = 0n;
  private resyncing = false;
  private synced = false;
  private lastMessage = 0;
  private watchdog: NodeJS.Timeout | undefined;
  private retry: NodeJS.Timeout | undefined;
  private stopped = false;
  private tookOver = false;
  private inSync = false;
  private rulesApplying: Promise<unknown> = Promise.resolve();
  private rulesOk = false;
  private active: Hello | undefined;
  private silentAlive = false;
  private refused = false; // the active said no (token, shape): retry slowly

  constructor(private readonly fw: Firewall, private readonly opts: StandbyOptions) {}

  hello(): Hello {
    const c = this.fw.replicationShape();
    return { proto: PROTOCOL_VERSION, role: 'standby', ...c, endian: endianness(), recordBytes: RECORD_BYTES, token: tokenHash(this.opts.token) };
  }

  start(): void {
    this.connect();
    this.watchdog = setInterval(() => this.watch(), Math.max(5, Math.floor(this.opts.timeoutMs / 10)));
  }

  /** Whether the replica is complete enough to take over (a full sync done, its rules active). */
  get ready(): boolean {
    return this.synced && this.rulesOk;
  }

  private connect(): void {
    if (this.stopped || this.tookOver) return;
    const { host, port } = parseAddr(this.opts.of, '--standby-of');
    const s = createConnection({ host, port });
    s.setNoDelay(true);
    this.s = s;
    const reader = new FrameReader();
    reader.max = MAX_HELLO;
    let greeted = false;
    let everConnected = false;
    s.on('connect', () => {
      everConnected = true;
      s.write(encode(Msg.Hello, 0n, Buffer.from(JSON.stringify(this.hello()))));
    });
    s.on('data', (chunk) => {
      let frames;
      try {
        frames = reader.push(chunk);
      } catch (err) {
        log('error', 'replication: bad frame from the active', { error: (err as Error).message });
        s.destroy();
        return;
      }
      for (const f of frames) {
        if (this.tookOver) return;
        if (!greeted) {
          greeted = true;
          let h: Hello;
          try {
            h = JSON.parse(f.payload.toString('utf8')) as Hello;
          } catch {
            h = { proto: -1 } as Hello;
          }
          const why = f.type !== Msg.Hello || h.role !== 'active' ? 'the peer did not greet as an active' : incompatible(this.hello(), h);
          if (why) {
            this.refused = true;
            log('error', 'cannot stand by for this active; retrying every 5 s', { reason: why });
            s.destroy();
            return;
          }
          reader.max = MAX_FRAME;
          this.active = h;
          this.stats.connected = true;
          this.lastMessage = performance.now();
          this.expected = 1n;
          log('info', 'connected to the active', { of: this.opts.of, heartbeatMs: h.heartbeatMs });
          continue;
        }
        this.onMessage(f.type, f.seq, f.payload);
      }
    });
    s.on('error', (err) => {
      if (!everConnected) return; // refused: retried below
      log('warn', 'replication connection error', { error: err.message });
    });
    s.on('close', () => {
      if (this.s !== s) return;
      const wasConnected = this.stats.connected;
      this.stats.connected = false;
      this.s = undefined;
      if (this.stopped || this.tookOver) return;
      if (wasConnected && this.ready) {
        void this.takeover('connection to the active closed', performance.now());
        return;
      }
      if (wasConnected && !this.refused) log('warn', 'lost the active before the replica was complete; reconnecting', { of: this.opts.of });
      this.retry = setTimeout(() => this.connect(), this.refused ? 5000 : 200);
      this.refused = false;
    });
  }

  private sendCtl(type: Msg, payload?: Buffer): void {
    if (this.s && !this.s.destroyed) this.s.write(encode(type, 0n, payload));
  }

  private onMessage(type: Msg, seq: bigint, payload: Buffer): void {
    this.lastMessage = performance.now();
    this.stats.messages++;
    if (type === Msg.Refused) {
      this.refused = true;
      log('error', 'the active refused this standby; retrying every 5 s', { reason: payload.toString('utf8') });
      return;
    }
    // A full sync starts a new sequence window, whatever came before.
    if (type === Msg.SyncBegin) {
      this.resyncing = false;
      this.expected = seq;
    }
    if (seq !== this.expected) {
      if (!this.resyncing) {
        log('warn', 'replication: sequence gap; asking for a resync', { expected: Number(this.expected), got: Number(seq) });
        this.resyncing = true;
        this.sendCtl(Msg.Resync);
      }
      return;
    }
    if (this.resyncing) return;
    this.expected = seq + 1n;
    this.stats.lastSeq = Number(seq);
    switch (type) {
      case Msg.SyncBegin:
        this.inSync = true;
        this.fw.ctImport(Buffer.alloc(0), true);
        this.stats.resyncs++;
        break;
      case Msg.Sets:
        this.applySets(payload);
        break;
      case Msg.Rules:
        this.applyRules(payload);
        break;
      case Msg.CtDump:
      case Msg.CtEvents: {
        const refused = this.fw.ctImport(payload, false);
        this.stats.records += payload.length / RECORD_BYTES;
        if (refused) {
          this.stats.refusedRecords += refused;
          log('warn', 'replication: records refused (malformed or table full)', { refused });
        }
        break;
      }
      case Msg.SyncEnd:
        this.inSync = false;
        this.synced = true;
        log('info', 'replica synced', { entries: this.fw.conntrackCount().entries, seq: Number(seq) });
        break;
      default:
        break;
    }
    this.stats.replicaEntries = this.fw.conntrackCount().entries;
    // Cumulative ack of every message applied (FT-FW's ACK).
    const a = Buffer.alloc(8);
    a.writeBigUInt64LE(seq, 0);
    this.sendCtl(Msg.Ack, a);
  }

  private applySets(payload: Buffer): void {
    try {
      const text = setsRestoreText(payload.toString('utf8'));
      if (text) this.fw.sets.restore(text, '<active ipset>', { exist: true });
    } catch (err) {
      log('error', 'replicated IP sets refused', { error: (err as Error).message });
    }
  }

  private applyRules(payload: Buffer): void {
    let rs: RuleSet;
    try {
      rs = parseRulesPayload(payload);
    } catch (err) {
      log('error', 'replicated rules refused', { error: (err as Error).message });
      return;
    }
    this.rulesApplying = this.fw.replace(rs).then(
      (a) => {
        this.rulesOk = true;
        log('info', 'replicated rules active', { rules: a.rules, generation: a.generation, seconds: +a.seconds.toFixed(3) });
      },
      (err) => log('error', 'replicated rules refused', { error: (err as Error).message }),
    );
  }

  private watch(): void {
    if (!this.stats.connected || this.tookOver) return;
    const idle = performance.now() - this.lastMessage;
    this.stats.lagSeconds = idle / 1000;
    if (this.silentAlive && idle <= this.opts.timeoutMs) {
      this.silentAlive = false;
      log('info', 'the active speaks again', {});
    }
    if (idle <= this.opts.timeoutMs || !this.ready) return;
    // Timers run before the poll phase reads the sockets: after a stall of
    // this process, messages may be waiting. Decide after they are read.
    setImmediate(() => {
      const still = performance.now() - this.lastMessage;
      if (still <= this.opts.timeoutMs || this.tookOver || !this.stats.connected) return;
      if (this.active && processAlive(this.active)) {
        if (!this.silentAlive) {
          this.silentAlive = true;
          log('warn', 'the active is silent but alive; not taking over (it is taken over when it exits, is stopped, or its connection ends)', {
            silentMs: Math.round(still), pid: this.active.pid,
          });
        }
        return;
      }
      void this.takeover(`no message from the active for ${Math.round(still)} ms`, this.lastMessage + this.opts.timeoutMs);
    });
  }

  private async takeover(reason: string, lostAt: number): Promise<void> {
    if (this.tookOver) return;
    this.tookOver = true;
    log('warn', 'active lost', { of: this.opts.of, reason, replicaEntries: this.fw.conntrackCount().entries, lastSeq: this.stats.lastSeq });
    // Fencing: an active that is only hung reads this when it wakes up.
    this.sendCtl(Msg.Takeover);
    const s = this.s;
    s?.end();
    setTimeout(() => s?.destroy(), 1000).unref();
    if (this.watchdog) clearInterval(this.watchdog);
    await this.rulesApplying;
    this.stats.failovers++;
    await this.opts.onTakeover(reason, lostAt);
  }

  stop(): void {
    this.stopped = true;
    if (this.watchdog) clearInterval(this.watchdog);
    if (this.retry) clearTimeout(this.retry);
    this.s?.destroy();
  }

  /** Whether a sync is in progress (for /health). */
  get syncing(): boolean {
    return this.inSync;
  }
}

/** The replication figures for /metrics, whichever role this process has now (set by run). */
export const replication: { server?: ReplicationServer; client?: StandbyClient; failovers: number } = { failovers: 0 };

/**
 * Whether an active firewall answers at `addr` (within `timeoutMs`): a
 * process started with both --rules and --standby-of asks first, so that
 * a restarted former active becomes the standby of the one that took
 * over instead of opening the ports beside it.
 */
export function probeActive(addr: string, hello: Hello, timeoutMs: number): Promise<boolean> {
  const { host, port } = parseAddr(addr, '--standby-of');
  return new Promise((resolve) => {
    const s = createConnection({ host, port });
    const reader = new FrameReader();
    const done = (v: boolean) => {
      clearTimeout(t);
      s.destroy();
      resolve(v);
    };
    const t = setTimeout(() => done(false), timeoutMs);
    s.on('connect', () => s.write(encode(Msg.Hello, 0n, Buffer.from(JSON.stringify({ ...hello, probe: true })))));
    s.on('data', (chunk) => {
      try {
        const f = reader.push(chunk)[0];
        if (!f) return;
        const h = JSON.parse(f.payload.toString('utf8')) as Hello;
        done(f.type === Msg.Hello && h.role === 'active');
      } catch {
        done(false);
      }
    });
    s.on('error', () => done(false));
    s.on('close', () => done(false));
  });
}
