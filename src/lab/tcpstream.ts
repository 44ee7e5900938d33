#!/usr/bin/env node
// Long TCP flows at a constant rate, for the hot-standby lab and bench
// (test/e2e/standby.test.ts, bench/standby.ts): whether the same
// connections keep delivering bytes across a failover, and the longest
// pause in what the receiving application got.
//
//   tcpstream server PORT               accept connections; every 100 ms a line
//                                       {"t", "conns": [{"id", "bytes", "lastAt"}]}, and
//                                       on a connection's end or error {"event", "id", "bytes"}
//   tcpstream client HOST PORT CONNS CHUNK INTERVAL_MS SECONDS
//                                       CONNS connections, each writing CHUNK bytes every
//                                       INTERVAL_MS for SECONDS; prints {"event":"connected"}, any
//                                       {"event":"error","id","code"}, and {"event":"done","sent"}
//
// The server keeps, per connection, the pauses between data arrivals longer
// than 5 ms ({"at": start of the pause, "ms"}; the last 64), printed on stdin
// "gaps". Times are epoch milliseconds (performance.timeOrigin +
// performance.now()), the clock the parent compares them with.
import net from 'node:net';

const [mode, ...rest] = process.argv.slice(2);
const out = (o: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(o)}\n`);
const now = () => performance.timeOrigin + performance.now();
const num = (s: string | undefined, what: string) => {
  const n = Number(s);
  if (!Number.isFinite(n) || n < 0) {
    process.stderr.write(`tcpstream: bad ${what}: ${s}\n`);
    process.exit(2);
  }
  return n;
};

interface Conn {
  id: number;
  bytes: number;
  lastAt: number;
  gaps: { at: number; ms: number }[];
}

function server(port: number): void {
  const conns: Conn[] = [];
  const srv = net.createServer((s) => {
    const c: Conn = { id: conns.length, bytes: 0, lastAt: now(), gaps: [] };
    conns.push(c);
    s.on('data', (b) => {
      const t = now();
      if (t - c.lastAt > 5) {
        c.gaps.push({ at: c.lastAt, ms: t - c.lastAt });
        if (c.gaps.length > 64) c.gaps.shift();
      }
      c.lastAt = t;
      c.bytes += b.length;
    });
    s.on('error', (e: NodeJS.ErrnoException) => out({ event: 'error', id: c.id, code: e.code, bytes: c.bytes }));
    s.on('end', () => {
      out({ event: 'end', id: c.id, bytes: c.bytes });
      s.end();
    });
  });
  srv.listen(port, '0.0.0.0', () => out({ listening: port }));
  setInterval(() => out({ t: now(), conns: conns.map((c) => ({ id: c.id, bytes: c.bytes, lastAt: c.lastAt })) }), 100);
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (s: string) => {
    if (s.includes('gaps')) out({ gaps: conns.map((c) => ({ id: c.id, bytes: c.bytes, gaps: c.gaps })) });
  });
}

function client(host: string, port: number, n: number, chunk: number, intervalMs: number, seconds: number): void {
  const buf = Buffer.alloc(chunk, 0x5a);
  let connected = 0;
  let sent = 0;
  const socks: net.Socket[] = [];
  for (let i = 0; i < n; i++) {
    const s = net.createConnection({ host, port });
    s.setNoDelay(true);
    socks.push(s);
    s.on('connect', () => {
      if (++connected === n) out({ event: 'connected', conns: n, localPorts: socks.map((x) => x.localPort) });
    });
    s.on('error', (e: NodeJS.ErrnoException) => out({ event: 'error', id: i, code: e.code }));
  }
  const tick = setInterval(() => {
    if (connected < n) return;
    for (const s of socks) {
      if (s.destroyed) continue;
      // Only what the kernel takes: a stalled flow must not pile up in memory.
      if (s.writableLength < 1 << 20) {
        s.write(buf);
        sent += chunk;
      }
    }
  }, intervalMs);
  setTimeout(() => {
    clearInterval(tick);
    out({ event: 'done', sent });
    for (const s of socks) s.end();
    setTimeout(() => process.exit(0), 1000).unref();
  }, seconds * 1000);
}

switch (mode) {
  case 'server':
    server(num(rest[0], 'PORT'));
    break;
  case 'client':
    client(rest[0], num(rest[1], 'PORT'), num(rest[2], 'CONNS'), num(rest[3], 'CHUNK'), num(rest[4], 'INTERVAL_MS'), num(rest[5], 'SECONDS'));
    break;
  default:
    process.stderr.write('usage: tcpstream server PORT | client HOST PORT CONNS CHUNK INTERVAL_MS SECONDS\n');
    process.exit(2);
}
