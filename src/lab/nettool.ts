#!/usr/bin/env node
// Small socket tools the lab runs inside its namespaces (netperf is not
// packaged here, so these stand in for TCP_RR, UDP_RR and TCP_CRR). One
// transaction is outstanding at a time, like netperf's defaults; every mode
// prints one JSON line and is bounded in time.
//
//   nettool server PORT                 TCP + UDP echo on PORT (v4 and v6); prints {"listening":PORT}
//   nettool sink PORT                   TCP: sha256 of everything received, sent back at EOF
//   nettool tcp-rr  HOST PORT SECONDS   1-byte request/response on one connection
//   nettool udp-rr  HOST PORT SECONDS   1-byte datagram request/response (200 ms retransmit)
//   nettool tcp-crr HOST PORT SECONDS   connect, 1-byte request/response, close; repeated
//   nettool tcp-probe HOST PORT MS      one connect: ok | refused | timeout | error:CODE
//   nettool udp-probe HOST PORT MS      one datagram to an echo server: ok | refused | timeout
//   nettool blast HOST PORT BYTES       send BYTES of seeded data to a sink, compare the sha256
//   nettool udp-burst HOST PORT COUNT SIZE   COUNT datagrams of SIZE bytes, 2 ms apart; counts echoes
//   nettool udp-stream HOST PORT RATE SECONDS [SIZE]
//                                       RATE numbered datagrams/s to an echo server; a line a second
//                                       ({t, sent, echoed}), gaps in the echoes, and on stdin "watch T":
//                                       answers with the first echo of a datagram sent at or after T
//   nettool churn HOST TCPPORTS UDPPORTS RATE SECONDS
//                                       RATE new TCP connections/s (connect, 1-byte echo, close) to
//                                       TCPPORTS (e.g. 7001-7002) and RATE UDP datagrams/s, each from a
//                                       new socket to the next port of UDPPORTS (a new flow each); a line a second
//
// Times printed by udp-stream and churn are epoch milliseconds
// (performance.timeOrigin + performance.now()), the clock a parent process
// compares them with.
import { createHash } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';

const [mode, ...rest] = process.argv.slice(2);
const out = (o: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(o)}\n`);
const family = (host: string) => (host.includes(':') ? 'udp6' : 'udp4');

function server(port: number): void {
  const tcp = net.createServer((s) => {
    s.setNoDelay(true);
    s.on('data', (b) => s.write(b));
    s.on('error', () => undefined);
    s.on('end', () => s.end());
  });
  tcp.listen({ port, host: '::', ipv6Only: false });
  const u4 = dgram.createSocket('udp4');
  const u6 = dgram.createSocket({ type: 'udp6', ipv6Only: true });
  for (const u of [u4, u6]) {
    u.on('message', (m, r) => u.send(m, r.port, r.address));
    u.on('error', () => undefined);
  }
  let ready = 0;
  const up = () => {
    if (++ready === 3) out({ listening: port });
  };
  tcp.on('listening', up);
  u4.bind(port, '0.0.0.0', up);
  u6.bind(port, '::', up);
}

function sink(port: number): void {
  net
    .createServer((s) => {
      const h = createHash('sha256');
      let n = 0;
      s.on('data', (b) => {
        h.update(b);
        n += b.length;
      });
      s.on('end', () => s.end(`${JSON.stringify({ bytes: n, sha256: h.digest('hex') })}\n`));
      s.on('error', () => undefined);
    })
    .listen({ port, host: '::', ipv6Only: false }, () => out({ listening: port }));
}

/** Latency summary in microseconds. */
function stats(lat: number[]) {
  if (lat.length === 0) return {};
  const s = Float64Array.from(lat).sort();
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { meanUs: +(s.reduce((a, b) => a + b, 0) / s.length).toFixed(1), p50Us: +q(0.5).toFixed(1), p99Us: +q(0.99).toFixed(1) };
}

function finish(kind: string, n: number, t0: number, lat: number[], extra: Record<string, unknown> = {}): void {
  const seconds = (performance.now() - t0) / 1000;
  out({ kind, transactions: n, seconds: +seconds.toFixed(3), perSecond: +(n / seconds).toFixed(1), ...stats(lat), ...extra });
  process.exit(0);
}

function tcpRr(host: string, port: number, seconds: number): void {
  const lat: number[] = [];
  let n = 0;
  let t0 = 0;
  let sent = 0;
  const deadline = () => performance.now() - t0 >= seconds * 1000;
  const s = net.connect({ host, port, noDelay: true });
  const stall = setTimeout(() => finish('tcp-rr', n, t0 || performance.now(), lat, { timedOut: true }), seconds * 1000 + 5000);
  s.on('connect', () => {
    t0 = performance.now();
    sent = t0;
    s.write('x');
  });
  s.on('data', (b) => {
    for (let i = 0; i < b.length; i++) {
      const now = performance.now();
      lat.push((now - sent) * 1000);
      n++;
      if (deadline()) {
        clearTimeout(stall);
        s.destroy();
        finish('tcp-rr', n, t0, lat);
        return;
      }
      sent = now;
      s.write('x');
    }
  });
  s.on('error', (e) => {
    clearTimeout(stall);
    finish('tcp-rr', n, t0 || performance.now(), lat, { error: (e as NodeJS.ErrnoException).code ?? e.message });
  });
}

function udpRr(host: string, port: number, seconds: number): void {
  const lat: number[] = [];
  let n = 0;
  let timeouts = 0;
  const u = dgram.createSocket(family(host));
  const t0 = performance.now();
  let sent = 0;
  let timer: NodeJS.Timeout | undefined;
  const msg = Buffer.from('x');
  const send = () => {
    if (performance.now() - t0 >= seconds * 1000) {
      u.close();
      finish('udp-rr', n, t0, lat, { timeouts });
      return;
    }
    sent = performance.now();
    u.send(msg);
    timer = setTimeout(() => {
      timeouts++;
      send();
    }, 200);
  };
  u.on('message', () => {
    clearTimeout(timer);
    lat.push((performance.now() - sent) * 1000);
    n++;
    send();
  });
  u.on('error', () => undefined);
  u.connect(port, host, send);
}

function tcpCrr(host: string, port: number, seconds: number): void {
  const lat: number[] = [];
  let n = 0;
  let failures = 0;
  const t0 = performance.now();
  const next = () => {
    if (performance.now() - t0 >= seconds * 1000) {
      finish('tcp-crr', n, t0, lat, { failures });
      return;
    }
    const start = performance.now();
    const s = net.connect({ host, port, noDelay: true });
    const timer = setTimeout(() => {
      failures++;
      s.destroy();
      next();
    }, 3000);
    s.on('connect', () => s.write('x'));
    s.on('data', () => {
      clearTimeout(timer);
      lat.push((performance.now() - start) * 1000);
      n++;
      s.destroy();
      next();
    });
    s.on('error', () => {
      clearTimeout(timer);
      failures++;
      s.destroy();
      setTimeout(next, 10);
    });
  };
  next();
}

function tcpProbe(host: string, port: number, ms: number): void {
  const t0 = performance.now();
  const s = net.connect({ host, port });
  const done = (result: string) => {
    s.destroy();
    out({ result, ms: +(performance.now() - t0).toFixed(2) });
    process.exit(0);
  };
  const t = setTimeout(() => done('timeout'), ms);
  s.on('connect', () => {
    clearTimeout(t);
    done('ok');
  });
  s.on('error', (e: NodeJS.ErrnoException) => {
    clearTimeout(t);
    done(e.code === 'ECONNREFUSED' ? 'refused' : `error:${e.code}`);
  });
}

function udpProbe(host: string, port: number, ms: number): void {
  const t0 = performance.now();
  const u = dgram.createSocket(family(host));
  const done = (result: string) => {
    out({ result, ms: +(performance.now() - t0).toFixed(2) });
    process.exit(0);
  };
  const t = setTimeout(() => done('timeout'), ms);
  u.on('message', (m) => {
    clearTimeout(t);
    done(m.toString() === 'probe' ? 'ok' : 'garbled');
  });
  u.on('error', (e: NodeJS.ErrnoException) => {
    clearTimeout(t);
    done(e.code === 'ECONNREFUSED' ? 'refused' : `error:${e.code}`);
  });
  // Connected, so an ICMP port unreachable comes back as ECONNREFUSED. Send
  // twice: the error is reported on the operation after the ICMP arrived.
  u.connect(port, host, () => {
    u.send('probe');
    setTimeout(() => u.send('probe'), Math.min(200, ms / 3));
  });
}

function blast(host: string, port: number, bytes: number): void {
  const chunk = 1 << 20;
  const h = createHash('sha256');
  // Seeded, incompressible-looking data (xorshift), generated once per chunk index.
  const make = (i: number) => {
    const b = Buffer.allocUnsafe(chunk);
    let x = (0x9e3779b9 ^ (i * 0x85ebca6b)) >>> 0 || 1;
    for (let k = 0; k < chunk; k += 4) {
      x ^= x << 13;
      x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      b.writeUInt32LE(x, k);
    }
    return b;
  };
  const t0 = performance.now();
  const s = net.connect({ host, port });
  const kill = setTimeout(() => {
    out({ error: 'timeout', seconds: (performance.now() - t0) / 1000 });
    process.exit(1);
  }, 60_000);
  let reply = '';
  s.on('connect', async () => {
    let sent = 0;
    for (let i = 0; sent < bytes; i++) {
      const b = make(i).subarray(0, Math.min(chunk, bytes - sent));
      h.update(b);
      sent += b.length;
      if (!s.write(b)) await new Promise((r) => s.once('drain', r));
    }
    s.end();
  });
  s.on('data', (d) => (reply += d.toString()));
  s.on('end', () => {
    clearTimeout(kill);
    const r = JSON.parse(reply.trim());
    const sha = h.digest('hex');
    out({ bytes, received: r.bytes, intact: r.bytes === bytes && r.sha256 === sha, seconds: +((performance.now() - t0) / 1000).toFixed(3) });
    process.exit(0);
  });
  s.on('error', (e) => {
    out({ error: (e as NodeJS.ErrnoException).code ?? e.message });
    process.exit(1);
  });
}

function udpBurst(host: string, port: number, count: number, size: number): void {
  const u = dgram.createSocket(family(host));
  let replies = 0;
  let sent = 0;
  u.on('message', () => replies++);
  u.on('error', () => undefined);
  const payload = Buffer.alloc(size, 0x61);
  u.connect(port, host, () => {
    const tick = setInterval(() => {
      if (sent === count) {
        clearInterval(tick);
        setTimeout(() => {
          out({ sent, replies });
          process.exit(0);
        }, 500);
        return;
      }
      u.send(payload);
      sent++;
    }, 2);
  });
}

const epochMs = () => performance.timeOrigin + performance.now();

/**
 * A fixed-rate UDP stream through the firewall and back. Each datagram
 * carries its sequence number and send time, so an echo tells when its
 * datagram was sent: "watch T" (stdin) asks for the first echo of a
 * datagram sent at or after T, i.e. one that cannot have crossed a
 * firewall process that was gone by T. Sending catches up after an
 * event-loop stall, at most 0.2 s of datagrams at once.
 */
function udpStream(host: string, port: number, rate: number, seconds: number, size: number): void {
  const u = dgram.createSocket(family(host));
  const payload = Buffer.alloc(Math.max(16, size), 0x62);
  const t0 = epochMs();
  let sent = 0;
  let echoed = 0;
  let lastRecv = 0;
  let maxGapMs = 0;
  const gaps: { fromMs: number; toMs: number }[] = [];
  const watches: number[] = [];
  u.on('error', () => undefined); // ICMP errors while the firewall is down
  u.on('message', (m) => {
    if (m.length < 16) return;
    const now = epochMs();
    echoed++;
    const seq = m.readDoubleLE(0);
    const sentAt = m.readDoubleLE(8);
    if (lastRecv && now - lastRecv > 100) {
      if (gaps.length < 1000) gaps.push({ fromMs: +lastRecv.toFixed(1), toMs: +now.toFixed(1) });
      maxGapMs = Math.max(maxGapMs, now - lastRecv);
    }
    lastRecv = now;
    for (let i = watches.length - 1; i >= 0; i--) {
      if (sentAt >= watches[i]) {
        out({ watch: watches[i], recvAt: +now.toFixed(2), sentAt: +sentAt.toFixed(2), seq });
        watches.splice(i, 1);
      }
    }
  });
  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    clearInterval(tick);
    clearInterval(report);
    // The last echoes are still on their way.
    setTimeout(() => {
      out({ kind: 'udp-stream', sent, echoed, seconds: +((epochMs() - t0) / 1000).toFixed(3), maxGapMs: +maxGapMs.toFixed(1), gaps });
      process.exit(0);
    }, 500);
  };
  const tick = setInterval(() => {
    const now = epochMs();
    if (now - t0 >= seconds * 1000) return finish();
    const due = Math.min(Math.floor((rate * (now - t0)) / 1000), sent + Math.ceil(rate / 5));
    for (; sent < due; sent++) {
      payload.writeDoubleLE(sent, 0);
      payload.writeDoubleLE(epochMs(), 8);
      u.send(payload);
    }
  }, 2);
  const report = setInterval(() => out({ t: +epochMs().toFixed(1), sent, echoed }), 1000);
  let buf = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (d: string) => {
    buf += d;
    const lines = buf.split('\n');
    buf = lines.pop()!;
    for (const l of lines) {
      const m = /^watch ([\d.]+)$/.exec(l.trim());
      if (m) watches.push(Number(m[1]));
      else if (l.trim() === 'stop') finish();
    }
  });
  u.connect(port, host);
}

/** "7001-7004" or "7001": the ports of a range. */
function portRange(s: string): number[] {
  const m = /^(\d+)(?:-(\d+))?$/.exec(s ?? '');
  const a = Number(m?.[1]);
  const b = Number(m?.[2] ?? m?.[1]);
  if (!m || a < 1 || b > 65535 || b < a) {
    process.stderr.write(`nettool: bad port range "${s}"\n`);
    process.exit(2);
  }
  return Array.from({ length: b - a + 1 }, (_, i) => a + i);
}

/**
 * Connection churn: new TCP connections (each from a new source port:
 * SYN, 1-byte echo, FIN both ways, then TIME_WAIT in conntrack) and UDP
 * datagrams, each from a new socket (a new source port) to the next port
 * of a range (unreplied UDP entries where nothing listens; the receiver's
 * ICMP port unreachable comes back as RELATED). At most 256
 * connections are open at once; a tick that would exceed it counts the
 * connection as skipped.
 */
function churn(host: string, tcpPorts: number[], udpPorts: number[], rate: number, seconds: number): void {
  const t0 = epochMs();
  const c = { tcpStarted: 0, tcpOk: 0, tcpFailed: 0, tcpSkipped: 0, udpSent: 0 };
  const errors: Record<string, number> = {};
  let open = 0;
  let due = 0;
  const one = Buffer.from('c');
  // A socket per datagram: a new source port, so a new flow every time.
  const udpOne = (port: number) => {
    const u = dgram.createSocket(family(host));
    u.on('error', () => undefined);
    u.send(one, port, host, () => setTimeout(() => u.close(), 1000));
  };
  const connect = (port: number) => {
    open++;
    c.tcpStarted++;
    let done = false;
    const s = net.connect({ host, port, noDelay: true });
    const end = (err?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      open--;
      if (err) {
        c.tcpFailed++;
        errors[err] = (errors[err] ?? 0) + 1;
        s.destroy();
      } else {
        c.tcpOk++;
        s.end();
      }
    };
    const timer = setTimeout(() => end('timeout'), 3000);
    s.on('connect', () => s.write('x'));
    s.on('data', () => end());
    s.on('error', (e: NodeJS.ErrnoException) => end(e.code ?? 'error'));
    s.on('close', () => end('closed'));
  };
  const tick = setInterval(() => {
    const now = epochMs();
    if (now - t0 >= seconds * 1000) {
      clearInterval(tick);
      clearInterval(report);
      setTimeout(() => {
        out({ kind: 'churn', ...c, errors, seconds: +((now - t0) / 1000).toFixed(3) });
        process.exit(0);
      }, 3500); // the open connections finish or time out
      return;
    }
    const target = Math.min(Math.floor((rate * (now - t0)) / 1000), due + Math.ceil(rate / 5));
    for (; due < target; due++) {
      if (open < 256) connect(tcpPorts[due % tcpPorts.length]);
      else c.tcpSkipped++;
      udpOne(udpPorts[due % udpPorts.length]);
      c.udpSent++;
    }
  }, 10);
  const report = setInterval(() => out({ t: +epochMs().toFixed(1), ...c }), 1000);
}

const num = (s: string | undefined, what: string) => {
  const n = Number(s);
  if (!Number.isFinite(n) || n < 0) {
    process.stderr.write(`nettool: ${what} must be a number\n`);
    process.exit(2);
  }
  return n;
};

switch (mode) {
  case 'server':
    server(num(rest[0], 'PORT'));
    break;
  case 'sink':
    sink(num(rest[0], 'PORT'));
    break;
  case 'tcp-rr':
    tcpRr(rest[0], num(rest[1], 'PORT'), num(rest[2], 'SECONDS'));
    break;
  case 'udp-rr':
    udpRr(rest[0], num(rest[1], 'PORT'), num(rest[2], 'SECONDS'));
    break;
  case 'tcp-crr':
    tcpCrr(rest[0], num(rest[1], 'PORT'), num(rest[2], 'SECONDS'));
    break;
  case 'tcp-probe':
    tcpProbe(rest[0], num(rest[1], 'PORT'), num(rest[2], 'MS'));
    break;
  case 'udp-probe':
    udpProbe(rest[0], num(rest[1], 'PORT'), num(rest[2], 'MS'));
    break;
  case 'blast':
    blast(rest[0], num(rest[1], 'PORT'), num(rest[2], 'BYTES'));
    break;
  case 'udp-burst':
    udpBurst(rest[0], num(rest[1], 'PORT'), num(rest[2], 'COUNT'), num(rest[3], 'SIZE'));
    break;
  case 'udp-stream':
    udpStream(rest[0], num(rest[1], 'PORT'), num(rest[2], 'RATE'), num(rest[3], 'SECONDS'), rest[4] === undefined ? 64 : num(rest[4], 'SIZE'));
    break;
  case 'churn':
    churn(rest[0], portRange(rest[1]), portRange(rest[2]), num(rest[3], 'RATE'), num(rest[4], 'SECONDS'));
    break;
  default:
    process.stderr.write('usage: nettool server|sink|tcp-rr|udp-rr|tcp-crr|tcp-probe|udp-probe|blast|udp-burst|udp-stream|churn ...\n');
    process.exit(2);
}
