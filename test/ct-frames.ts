// Stateful replay fixtures: scripted packet sequences with the ct state each
// packet must get (as netfilter defines it, and as the kernel differential
// test test/e2e/replay-kernel.test.ts confirms on the real kernel), and the
// frames they are made of, built byte for byte as test/e2e/ct-driver.ts's
// Python driver sends them (valid IPv4 header, TCP/UDP/ICMP checksums, the
// same marker in the IPv4 id / IPv6 flow label), written as pcap files.
import { isIPv4 } from 'node:net';
import { writePcap, type PcapRecord } from '../src/io/pcap';
import type { End, PacketSpec, Step } from './e2e/ct-driver';

export type CtState = 'NEW' | 'ESTABLISHED' | 'RELATED' | 'INVALID' | 'UNTRACKED';

export interface CtStep extends Step {
  /** The state with nf_conntrack_tcp_loose=0 (--ct-tcp-strict) ... */
  ct: CtState;
  /** ... and with tcp_loose=1 (the default, Linux's and flatwall's) when it differs. */
  ctLoose?: CtState;
}

/** The sequence for one family: a TCP handshake, data and FIN close, lone and out-of-state TCP packets, UDP, ICMP queries and errors. */
export function ctScript(v6: boolean): CtStep[] {
  const portUnreach = v6 ? { type: 1, code: 4 } : { type: 3, code: 3 };
  const hostUnreach = v6 ? { type: 1, code: 3 } : { type: 3, code: 1 };
  const echoReq = v6 ? 128 : 8;
  const echoRep = v6 ? 129 : 0;
  const tcp = (from: 'a' | 'b', sport: number, dport: number, flags: string, seq: number, ack = 0, data = 0) =>
    ({ from, proto: 'tcp' as const, sport, dport, flags, seq, ack, data });
  const udp = (from: 'a' | 'b', sport: number, dport: number) => ({ from, proto: 'udp' as const, sport, dport, data: 4 });
  const icmp = (from: 'a' | 'b', type: number, id: number) => ({ from, proto: 'icmp' as const, type, code: 0, id });
  return [
    { what: 'handshake: SYN', ...tcp('a', 40001, 80, 'S', 1000), ct: 'NEW', pass: true },
    { what: 'handshake: SYN/ACK', ...tcp('b', 80, 40001, 'SA', 5000, 1001), ct: 'ESTABLISHED', pass: true },
    { what: 'handshake: ACK', ...tcp('a', 40001, 80, 'A', 1001, 5001), ct: 'ESTABLISHED', pass: true },
    { what: 'data from inside', ...tcp('a', 40001, 80, 'PA', 1001, 5001, 10), ct: 'ESTABLISHED', pass: true },
    { what: 'data ACK from outside', ...tcp('b', 80, 40001, 'A', 5001, 1011), ct: 'ESTABLISHED', pass: true },
    { what: 'FIN from inside', ...tcp('a', 40001, 80, 'FA', 1011, 5001), ct: 'ESTABLISHED', pass: true },
    { what: 'ACK of the FIN', ...tcp('b', 80, 40001, 'A', 5001, 1012), ct: 'ESTABLISHED', pass: true },
    { what: 'FIN from outside', ...tcp('b', 80, 40001, 'FA', 5001, 1012), ct: 'ESTABLISHED', pass: true },
    { what: 'last ACK (TIME_WAIT)', ...tcp('a', 40001, 80, 'A', 1012, 5002), ct: 'ESTABLISHED', pass: true },
    { what: 'new SYN on the TIME_WAIT tuple', ...tcp('a', 40001, 80, 'S', 9000000), ct: 'NEW', pass: true },
    { what: 'unsolicited SYN/ACK', ...tcp('b', 80, 40003, 'SA', 1, 1), ct: 'INVALID', pass: false },
    { what: 'lone RST', ...tcp('a', 40004, 80, 'R', 1), ct: 'INVALID', pass: false },
    { what: 'lone RST/ACK from outside', ...tcp('b', 80, 40005, 'RA', 1, 1), ct: 'INVALID', pass: false },
    { what: 'lone FIN', ...tcp('a', 40006, 80, 'FA', 1, 1), ct: 'INVALID', pass: false },
    { what: 'mid-stream ACK (loose: picked up)', ...tcp('a', 40007, 80, 'A', 1, 1), ct: 'INVALID', ctLoose: 'NEW', pass: false },
    { what: 'its answer', ...tcp('b', 80, 40007, 'A', 1, 2), ct: 'INVALID', ctLoose: 'ESTABLISHED', pass: false },
    { what: 'refused: SYN', ...tcp('a', 40008, 80, 'S', 300), ct: 'NEW', pass: true },
    { what: 'refused: RST/ACK answer', ...tcp('b', 80, 40008, 'RA', 0, 301), ct: 'ESTABLISHED', pass: true },
    // netfilter deletes a connection whose only answer was a RST.
    { what: 'refused: the RST/ACK again (its connection is gone)', ...tcp('b', 80, 40008, 'RA', 0, 301), ct: 'INVALID', pass: false },
    { what: 'refused: SYN again', ...tcp('a', 40008, 80, 'S', 400), ct: 'NEW', pass: true },
    { what: 'reset: SYN', ...tcp('a', 40009, 80, 'S', 500), ct: 'NEW', pass: true },
    { what: 'reset: SYN/ACK', ...tcp('b', 80, 40009, 'SA', 800, 501), ct: 'ESTABLISHED', pass: true },
    { what: 'reset: ACK', ...tcp('a', 40009, 80, 'A', 501, 801), ct: 'ESTABLISHED', pass: true },
    { what: 'reset: RST from outside', ...tcp('b', 80, 40009, 'R', 801), ct: 'ESTABLISHED', pass: true },
    { what: 'SYN from outside (NEW, no rule)', ...tcp('b', 40010, 80, 'S', 1), ct: 'NEW', pass: false },
    { what: 'SYN to be answered by an ICMP error', ...tcp('a', 40011, 80, 'S', 7000), ct: 'NEW', pass: true },
    { what: 'host unreachable quoting that SYN', from: 'b', proto: 'icmp', ...hostUnreach, quote: tcp('a', 40011, 80, 'S', 7000), ct: 'RELATED', pass: true },
    { what: 'UDP request', ...udp('a', 5353, 53), ct: 'NEW', pass: true },
    { what: 'UDP reply', ...udp('b', 53, 5353), ct: 'ESTABLISHED', pass: true },
    { what: 'UDP again from inside', ...udp('a', 5353, 53), ct: 'ESTABLISHED', pass: true },
    { what: 'UDP from outside (NEW, no rule)', ...udp('b', 6000, 53), ct: 'NEW', pass: false },
    { what: 'port unreachable quoting the UDP flow', from: 'b', proto: 'icmp', ...portUnreach, quote: udp('a', 5353, 53), ct: 'RELATED', pass: true },
    { what: 'port unreachable quoting nothing tracked', from: 'b', proto: 'icmp', ...portUnreach, quote: udp('a', 5999, 53), ct: 'INVALID', pass: false },
    { what: 'echo request', ...icmp('a', echoReq, 77), ct: 'NEW', pass: true },
    { what: 'echo reply', ...icmp('b', echoRep, 77), ct: 'ESTABLISHED', pass: true },
    { what: 'unsolicited echo reply', ...icmp('b', echoRep, 78), ct: 'INVALID', pass: false },
    { what: 'echo request from outside (NEW, no rule)', ...icmp('b', echoReq, 79), ct: 'NEW', pass: false },
    { what: 'a reply to that dropped request', ...icmp('a', echoRep, 79), ct: 'INVALID', pass: false },
  ];
}

/** The state a step must get. */
export const expectedCt = (s: CtStep, loose: boolean): CtState => (loose ? s.ctLoose ?? s.ct : s.ct);
/** Whether it passes the stateful rule set (ct-driver's ruleset()); the loose pickups are accepted as NEW and answered. */
export const expectedPass = (s: CtStep, loose: boolean): boolean => (loose && s.ctLoose ? true : s.pass);

/**
 * ct-driver's rule set preceded by one counting rule per ct state (no
 * target: they only count), so that the kernel's state of every packet can
 * be read back from the counters (iptables-save -c).
 */
export function countingRuleset(ruleset: string): string {
  const count = ['NEW', 'ESTABLISHED', 'RELATED', 'INVALID', 'UNTRACKED']
    .map((s) => `-A FORWARD -m conntrack --ctstate ${s} -m comment --comment "ct ${s}"\n`).join('');
  return ruleset.replace(/(:OUTPUT ACCEPT \[0:0\]\n)/, `$1${count}`);
}

/** The ct state counters of an iptables-save -c output. */
export function ctCounters(save: string): Record<CtState, number> {
  const out = { NEW: 0, ESTABLISHED: 0, RELATED: 0, INVALID: 0, UNTRACKED: 0 };
  for (const m of save.matchAll(/^\[(\d+):\d+\] -A FORWARD .*--comment "ct (\w+)"/gm)) out[m[2] as CtState] = Number(m[1]);
  return out;
}

// ---- frames, as ct-driver's DRIVER_PY builds them ---------------------------

function csum(b: Buffer): number {
  let s = 0;
  for (let i = 0; i < b.length; i += 2) s += (b[i] << 8) | (i + 1 < b.length ? b[i + 1] : 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

function addr(ip: string, v6: boolean): Buffer {
  if (!v6) {
    if (!isIPv4(ip)) throw new Error(`not IPv4: ${ip}`);
    return Buffer.from(ip.split('.').map(Number));
  }
  const [head, tail = ''] = ip.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = ip.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), 2 * i));
  return b;
}

const macBytes = (m: string) => Buffer.from(m.replace(/:/g, ''), 'hex');

function l4(p: PacketSpec, src: Buffer, dst: Buffer, v6: boolean, ends: Record<'a' | 'b', End>): [number, Buffer] {
  const data = Buffer.alloc(p.data ?? 0, 'x');
  let h: Buffer;
  let num: number;
  if (p.proto === 'tcp') {
    let fl = 0;
    for (const c of p.flags ?? '') fl |= { F: 1, S: 2, R: 4, P: 8, A: 16 }[c as 'F']!;
    h = Buffer.alloc(20);
    h.writeUInt16BE(p.sport!, 0);
    h.writeUInt16BE(p.dport!, 2);
    h.writeUInt32BE((p.seq ?? 0) >>> 0, 4);
    h.writeUInt32BE((p.ack ?? 0) >>> 0, 8);
    h[12] = 5 << 4;
    h[13] = fl;
    h.writeUInt16BE(64240, 14);
    h = Buffer.concat([h, data]);
    num = 6;
  } else if (p.proto === 'udp') {
    h = Buffer.alloc(8);
    h.writeUInt16BE(p.sport!, 0);
    h.writeUInt16BE(p.dport!, 2);
    h.writeUInt16BE(8 + data.length, 4);
    h = Buffer.concat([h, data]);
    num = 17;
  } else {
    const head = Buffer.alloc(8);
    head[0] = p.type!;
    head[1] = p.code ?? 0;
    if (!p.quote) {
      head.writeUInt16BE(p.id ?? 0, 4);
      head.writeUInt16BE(1, 6);
    }
    h = Buffer.concat([head, p.quote ? ipPacket(p.quote, 0, v6, ends) : data]);
    num = v6 ? 58 : 1;
  }
  let c: number;
  if (num === 1) c = csum(h);
  else {
    const pseudo = Buffer.alloc(v6 ? 8 : 4);
    if (v6) {
      pseudo.writeUInt32BE(h.length, 0);
      pseudo[7] = num;
    } else {
      pseudo[1] = num;
      pseudo.writeUInt16BE(h.length, 2);
    }
    c = csum(Buffer.concat([src, dst, pseudo, h]));
  }
  if (num === 17 && c === 0) c = 0xffff;
  h.writeUInt16BE(c, { 6: 16, 17: 6, 1: 2, 58: 2 }[num]!);
  return [num, h];
}

function ipPacket(p: PacketSpec, marker: number, v6: boolean, ends: Record<'a' | 'b', End>): Buffer {
  const me = ends[p.from];
  const peer = ends[p.from === 'a' ? 'b' : 'a'];
  const src = addr(v6 ? me.ip6 : me.ip4, v6);
  const dst = addr(v6 ? peer.ip6 : peer.ip4, v6);
  const [num, seg] = l4(p, src, dst, v6, ends);
  if (v6) {
    const hdr = Buffer.alloc(8);
    hdr.writeUInt32BE(((6 << 28) | marker) >>> 0, 0);
    hdr.writeUInt16BE(seg.length, 4);
    hdr[6] = num;
    hdr[7] = 64;
    return Buffer.concat([hdr, src, dst, seg]);
  }
  const hdr = Buffer.alloc(20);
  hdr[0] = 0x45;
  hdr.writeUInt16BE(20 + seg.length, 2);
  hdr.writeUInt16BE(marker, 4);
  hdr[8] = 64;
  hdr[9] = num;
  src.copy(hdr, 12);
  dst.copy(hdr, 16);
  hdr.writeUInt16BE(csum(hdr), 10);
  return Buffer.concat([hdr, seg]);
}

/** Step i's frame as the driver sends it (marker 0x4000 + i). */
export function stepFrame(p: PacketSpec, i: number, v6: boolean, ends: Record<'a' | 'b', End>): Buffer {
  const me = ends[p.from];
  const eth = Buffer.alloc(14);
  macBytes(me.nextHop).copy(eth, 0);
  macBytes(me.mac).copy(eth, 6);
  eth.writeUInt16BE(v6 ? 0x86dd : 0x0800, 12);
  return Buffer.concat([eth, ipPacket(p, 0x4000 + i, v6, ends)]);
}

/** A capture of the steps, one frame per `gapMs` from `startSec`. */
export function stepsPcap(steps: PacketSpec[], v6: boolean, ends: Record<'a' | 'b', End>, startSec = 1_700_000_000, gapMs = 10): Buffer {
  const recs: PcapRecord[] = steps.map((s, i) => {
    const data = stepFrame(s, i, v6, ends);
    const us = i * gapMs * 1000;
    return { tsSec: startSec + Math.floor(us / 1e6), tsFrac: us % 1e6, origLen: data.length, data };
  });
  return writePcap(recs);
}
