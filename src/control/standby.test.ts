// The hot standby's replication (src/control/standby.ts) between two
// Firewalls in this process, without traffic (no ports are opened before
// start()): the full sync of rules, sets and connections, the changes after
// it, the refusal of a standby of another shape, and, against a scripted
// active, the resync on a sequence gap and the takeover on silence.
// Traffic and kill -9: test/e2e/standby.test.ts.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createConnection, createServer, type Socket } from 'node:net';
import { endianness } from 'node:os';
import { readFileSync } from 'node:fs';
import { Firewall } from './firewall';
import { renderMetrics } from './metrics';
import { parseIptables } from '../rules/iptables/parse';
import {
  FrameReader, Msg, RECORD_BYTES, ReplicationServer, StandbyClient, encode, incompatible, parseRulesPayload, processAlive, replication, rulesPayload,
  selfIdent, setsRestoreText,
  type Hello,
} from './standby';

const ports = [{ name: 'sbx0', kind: 'afpacket' as const }, { name: 'sbx1', kind: 'afpacket' as const }];
const RULES = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -p tcp -m tcp --dport 443 -m conntrack --ctstate NEW -j ACCEPT
COMMIT
`;
const RULES6 = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -p ipv6-icmp -j ACCEPT
COMMIT
`;

/** A native ct::Record (conntrack.h): a TCP flow in ESTABLISHED, seen reply and assured, on `worker`. */
function tcpRecord(worker: number, src: number, dst: number, sport: number, dport: number): Buffer {
  const r = Buffer.alloc(RECORD_BYTES);
  // Canonical key: the smaller endpoint first.
  const aFirst = src < dst || (src === dst && sport <= dport);
  r.writeUInt32LE(aFirst ? src : dst, 0);
  r.writeUInt32LE(aFirst ? dst : src, 16);
  r.writeUInt16LE(aFirst ? sport : dport, 32);
  r.writeUInt16LE(aFirst ? dport : sport, 34);
  r.writeUInt8(4, 36); // family
  r.writeUInt8(6, 37); // tcp
  r.writeUInt8(0, 38); // kind
  r.writeUInt8(0, 39); // zone
  r.writeUInt8((aFirst ? 2 : 0) | 4 | 8, 40); // orig is A, seen reply, assured
  r.writeUInt8(3, 41); // ESTABLISHED
  r.writeUInt8(1, 42); // new
  r.writeUInt8(worker, 43);
  r.writeUInt32LE(10, 44);
  return r;
}

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('frames, handshake checks, the rules and sets payloads', () => {
  const r = new FrameReader();
  const a = encode(Msg.Rules, 7n, Buffer.from('abc'));
  const b = encode(Msg.Heartbeat, 8n);
  const both = Buffer.concat([a, b]);
  assert.deepEqual(r.push(both.subarray(0, 5)), []);
  const got = r.push(both.subarray(5));
  assert.deepEqual(got.map((f) => [f.type, f.seq, f.payload.toString()]), [[Msg.Rules, 7n, 'abc'], [Msg.Heartbeat, 8n, '']]);
  const huge = Buffer.alloc(16);
  huge.writeUInt32LE(0xffffffff, 0);
  assert.throws(() => new FrameReader().push(huge), /refused/);
  const h: Hello = { proto: 1, role: 'active', workers: 2, ports: 2, conntrack: true, endian: endianness(), recordBytes: RECORD_BYTES };
  assert.equal(incompatible(h, { ...h, role: 'standby' }), undefined);
  assert.match(incompatible(h, { ...h, workers: 1 })!, /workers/);
  assert.match(incompatible(h, { ...h, ports: 4 })!, /ports/);
  assert.match(incompatible(h, { ...h, endian: 'XX' })!, /byte order/);
  assert.match(incompatible(h, { ...h, proto: 2 })!, /protocol/);
  assert.equal(setsRestoreText('create s hash:ip family inet\nadd s 10.0.0.1\n'), 'create s hash:ip family inet\nflush s\nadd s 10.0.0.1\n');
  assert.equal(setsRestoreText(''), '');
  assert.throws(() => parseRulesPayload(Buffer.from('{"tables":[{"family":4,"text":"*filter\\n-A NOPE\\n"}]}')));
});

test('a standby follows the active: full sync, then rule, set and connection changes; the end of the link is a takeover', async () => {
  const active = new Firewall({ ports, ruleFiles: [], workers: 2, conntrackMax: 1000, conntrackReplicate: true });
  const standby = new Firewall({ ports, ruleFiles: [], workers: 2, conntrackMax: 1000 });
  await active.replace({ tables: [...parseIptables(RULES, { file: 'v4', family: 4 }).tables, ...parseIptables(RULES6, { file: 'v6', family: 6 }).tables] });
  active.sets.restore('create blk hash:ip family inet\nadd blk 10.9.9.9\n', 'sets');
  // Two flows, one per worker, in the active's (stopped) tables.
  assert.equal(active.ctImport(Buffer.concat([tcpRecord(0, 0x0a000001, 0x0a000002, 40000, 443), tcpRecord(1, 0x0a000001, 0x0a000002, 40001, 443)]), false), 0);
  assert.equal(active.conntrackCount().entries, 2);
  assert.equal(active.ctImport(Buffer.from([1, 2, 3]).subarray(0, 0), false), 0);
  assert.throws(() => active.ctImport(Buffer.alloc(47), false), /48-byte/);

  let fenced = 0;
  const server = new ReplicationServer(active, { listen: '127.0.0.1:0', heartbeatMs: 20, intervalMs: 5, onFenced: () => fenced++ });
  await server.start();
  const takeovers: string[] = [];
  const client = new StandbyClient(standby, {
    of: `127.0.0.1:${server.address!.port}`, timeoutMs: 2000,
    onTakeover: async (reason) => {
      takeovers.push(reason);
    },
  });
  try {
    client.start();
    await until('the replica', () => client.ready);
    assert.equal(server.stats.connected, true);
    assert.equal(standby.conntrackCount().entries, 2);
    const rows = await standby.conntrackList();
    assert.deepEqual(rows.map((r) => [r.src, r.dst, r.sport, r.dport, r.state, r.assured]).sort(),
      [['10.0.0.1', '10.0.0.2', 40000, 443, 'ESTABLISHED', true], ['10.0.0.1', '10.0.0.2', 40001, 443, 'ESTABLISHED', true]]);
    assert.equal(rulesPayload(standby)!.toString().replace(/"generation":\d+/, ''), rulesPayload(active)!.toString().replace(/"generation":\d+/, ''));
    assert.match(standby.sets.saveText(), /add blk 10\.9\.9\.9/);
    replication.server = server;
    const m = await renderMetrics(active, { kind: 'none' });
    replication.server = undefined;
    assert.match(m, /^flatwall_standby_connected\{role="active"\} 1$/m);
    assert.match(m, /^flatwall_standby_replica_entries\{role="active"\} 2$/m);
    assert.match(m, /^flatwall_failovers_total 0$/m);
    assert.match(m, /^# TYPE flatwall_standby_replication_lag_seconds gauge$/m);

    // A connection leaves the active (a flush here; a timeout or RST there): a destroy record follows.
    assert.equal(await active.conntrackFlush({ port: 40000 }), 1);
    await until('the destroy', () => standby.conntrackCount().entries === 1);
    assert.equal((await standby.conntrackList())[0].sport, 40001);
    // A rule change and a set change are resent.
    await active.replace(parseIptables(RULES.replace('443', '8443'), { file: 'v4b', family: 4 }));
    await until('the new rules', () => rulesPayload(standby)?.toString().includes('8443') ?? false);
    active.sets.restore('add blk 10.8.8.8\n', 'edit');
    await until('the set change', () => standby.sets.saveText().includes('10.8.8.8'));
    await until('the acks', () => server.stats.lagSeconds === 0);
    assert.ok(server.stats.messages > 5 && client.stats.messages > 5);
    assert.equal(client.stats.refusedRecords, 0);
    assert.equal(takeovers.length, 0);

    // The active goes away: its connection ends, the standby takes over at once.
    await server.close();
    await until('the takeover', () => takeovers.length === 1);
    assert.match(takeovers[0], /connection to the active closed/);
    assert.equal(fenced, 0);
  } finally {
    client.stop();
    await server.close();
  }
});

test('a standby of another shape is refused, never takes over, and cannot fence the active', async () => {
  const active = new Firewall({ ports, ruleFiles: [], workers: 2, conntrackReplicate: true });
  await active.replace(parseIptables(RULES, { file: 'v4', family: 4 }));
  let fenced = 0;
  const server = new ReplicationServer(active, { listen: '127.0.0.1:0', heartbeatMs: 20, intervalMs: 5, onFenced: () => fenced++ });
  await server.start();
  const standby = new Firewall({ ports, ruleFiles: [], workers: 1 });
  let took = false;
  const client = new StandbyClient(standby, { of: `127.0.0.1:${server.address!.port}`, timeoutMs: 100, onTakeover: async () => void (took = true) });
  try {
    client.start();
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(client.ready, false);
    assert.equal(server.stats.connected, false);
    assert.equal(standby.ruleset, undefined);
    assert.equal(took, false);
    // A refused peer's takeover notice is not heard; nor a huge first frame.
    const raw = createConnection({ host: '127.0.0.1', port: server.address!.port });
    await new Promise((r) => raw.on('connect', r));
    const bad: Hello = { proto: 1, role: 'standby', workers: 1, ports: 2, conntrack: true, endian: endianness(), recordBytes: RECORD_BYTES };
    raw.on('error', () => undefined);
    raw.write(encode(Msg.Hello, 0n, Buffer.from(JSON.stringify(bad))));
    await new Promise((r) => setTimeout(r, 100));
    raw.write(encode(Msg.Takeover, 0n));
    await new Promise((r) => setTimeout(r, 200));
    raw.destroy();
    const big = createConnection({ host: '127.0.0.1', port: server.address!.port });
    await new Promise((r) => big.on('connect', r));
    const h = Buffer.alloc(16);
    h.writeUInt32LE(1 << 20, 0);
    big.write(h);
    await new Promise((r) => big.on('close', r));
    assert.equal(fenced, 0);
  } finally {
    client.stop();
    await server.close();
  }
});

test('against a scripted active: a sequence gap asks for a resync, silence past the timeout is a takeover (and says so)', async () => {
  const standby = new Firewall({ ports, ruleFiles: [], workers: 1 });
  const fromStandby: Msg[] = [];
  let sock: Socket | undefined;
  const srv = createServer((s) => {
    sock = s;
    const reader = new FrameReader();
    s.on('data', (chunk) => {
      for (const f of reader.push(chunk)) {
        fromStandby.push(f.type);
        if (f.type === Msg.Hello) {
          const h: Hello = { proto: 1, role: 'active', workers: 1, ports: 2, conntrack: true, endian: endianness(), recordBytes: RECORD_BYTES };
          s.write(encode(Msg.Hello, 0n, Buffer.from(JSON.stringify(h))));
          s.write(encode(Msg.SyncBegin, 1n));
          s.write(encode(Msg.Rules, 2n, Buffer.from(JSON.stringify({ generation: 1, tables: [{ family: 4, text: RULES }] }))));
          s.write(encode(Msg.SyncEnd, 3n));
        }
      }
    });
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as { port: number }).port;
  const takeovers: string[] = [];
  const client = new StandbyClient(standby, { of: `127.0.0.1:${port}`, timeoutMs: 300, onTakeover: async (reason) => void takeovers.push(reason) });
  try {
    client.start();
    await until('the replica', () => client.ready);
    assert.ok(fromStandby.includes(Msg.Ack));
    // seq 4 never came: the records of 5 are not applied, a resync is asked for.
    sock!.write(encode(Msg.CtEvents, 5n, tcpRecord(0, 0x0a000001, 0x0a000002, 1, 443)));
    await until('the resync request', () => fromStandby.includes(Msg.Resync));
    assert.equal(standby.conntrackCount().entries, 0);
    // A new full sync restarts the sequence; its records apply.
    sock!.write(Buffer.concat([encode(Msg.SyncBegin, 10n), encode(Msg.CtDump, 11n, tcpRecord(0, 0x0a000001, 0x0a000002, 2, 443)), encode(Msg.SyncEnd, 12n)]));
    await until('the resynced replica', () => standby.conntrackCount().entries === 1);
    // Heartbeats keep it standing by; then the active falls silent (hung, its socket still open).
    for (let i = 13; i < 23; i++) {
      sock!.write(encode(Msg.Heartbeat, BigInt(i)));
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(takeovers.length, 0);
    const t0 = Date.now();
    await until('the takeover', () => takeovers.length === 1, 3000);
    assert.ok(Date.now() - t0 >= 200, 'not before the timeout');
    assert.match(takeovers[0], /no message from the active for \d+ ms/);
    // Fencing: the hung active is told, for when it wakes up.
    await until('the takeover notice', () => fromStandby.includes(Msg.Takeover));
  } finally {
    client.stop();
    sock?.destroy();
    await new Promise<void>((r) => srv.close(() => r()));
  }
});

test('silence from an active that is alive (same PID namespace, not stopped) is not a takeover; a stopped one is', async () => {
  const me = selfIdent();
  assert.equal(processAlive(me), true);
  assert.equal(processAlive({ ...me, startTicks: '1' }), false, 'a reused PID is another process');
  assert.equal(processAlive({ ...me, pidNs: 'pid:[1]' }), false, 'another PID namespace cannot be seen');
  assert.equal(processAlive({ pid: me.pid }), false);
  const standby = new Firewall({ ports, ruleFiles: [], workers: 1 });
  let ident: Partial<Hello> = me;
  let sock: Socket | undefined;
  const srv = createServer((s) => {
    sock = s;
    const reader = new FrameReader();
    s.on('data', (chunk) => {
      for (const f of reader.push(chunk)) {
        if (f.type !== Msg.Hello) continue;
        const h: Hello = { proto: 1, role: 'active', workers: 1, ports: 2, conntrack: true, endian: endianness(), recordBytes: RECORD_BYTES, ...ident };
        s.write(encode(Msg.Hello, 0n, Buffer.from(JSON.stringify(h))));
        s.write(encode(Msg.SyncBegin, 1n));
        s.write(encode(Msg.Rules, 2n, Buffer.from(JSON.stringify({ generation: 1, tables: [{ family: 4, text: RULES }] }))));
        s.write(encode(Msg.SyncEnd, 3n));
      }
    });
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as { port: number }).port;
  const takeovers: string[] = [];
  const client = new StandbyClient(standby, { of: `127.0.0.1:${port}`, timeoutMs: 100, onTakeover: async (reason) => void takeovers.push(reason) });
  try {
    client.start();
    await until('the replica', () => client.ready);
    // Silent for 6 timeouts, but the process it names (this one) runs: no takeover.
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(takeovers.length, 0, takeovers.join());
    // A stopped process (its PID's state T) is taken over: here, a child we stop.
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    await until('the child', () => processAlive({ pid: child.pid, pidNs: me.pidNs, startTicks: readStart(child.pid!) }));
    ident = { pid: child.pid, pidNs: me.pidNs, startTicks: readStart(child.pid!) };
    client.stop();
    sock?.destroy();
    const client2 = new StandbyClient(standby, { of: `127.0.0.1:${port}`, timeoutMs: 100, onTakeover: async (reason) => void takeovers.push(reason) });
    try {
      client2.start();
      await until('the second replica', () => client2.ready);
      await new Promise((r) => setTimeout(r, 400));
      assert.equal(takeovers.length, 0, 'the child runs');
      child.kill('SIGSTOP');
      await until('the takeover of a stopped active', () => takeovers.length === 1, 3000);
      assert.match(takeovers[0], /no message from the active/);
    } finally {
      client2.stop();
      child.kill('SIGKILL');
    }
  } finally {
    client.stop();
    sock?.destroy();
    await new Promise<void>((r) => srv.close(() => r()));
  }
});

function readStart(pid: number): string {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return s.slice(s.lastIndexOf(')') + 2).split(' ')[19];
}
