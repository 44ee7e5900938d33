// Reference matchers for the tests. Deliberately plain and slow: they follow
// the definitions, not the compiled form.
//
// * evalIptables walks the parsed chains the way the kernel's ipt_do_table
//   does: jumps push, RETURN and the end of a chain pop, goto replaces, and a
//   built-in chain ends in its policy. It knows nothing of the compiler.
// * evalRecords scans compiled records linearly with the LOG/COUNT/SKIP
//   continuation rules of native/classifier/rule_table.h.
import type { Family, Rule, Table } from '../src/rules/model';
import type { DecodedRecord } from '../src/rules/pack';
import { ACTION } from '../src/rules/pack';
import { REJECT_CODE } from '../src/rules/iptables/names';

export interface Pkt {
  src: number | bigint;
  dst: number | bigint;
  proto: number;
  sport: number;
  dport: number;
  iif: string;
  oif: string;
  icmpType: number;
  icmpCode: number;
  tcpFlags: number;
  ct: number; // one CT bit
  hasL4: boolean;
  /** The L4 header is cut short (hasL4 false): the first L4 match reached hot-drops the packet. */
  truncated?: boolean;
}

export interface RefResult {
  verdict: 'ACCEPT' | 'DROP' | 'REJECT';
  rejectCode: number;
  /** Source rule ids counted, in order (jumps, LOGs, RETURNs, the final rule or policy). */
  counted: number[];
  /** Dropped by an L4 match that could not read a cut-short header (ipt_do_table's hotdrop; nothing more counted). */
  hotdrop?: boolean;
}

const HOTDROP = Symbol('hotdrop');
// An L4 match on a packet without its L4 header: no match, or, when the
// header is cut short, the kernel's hotdrop (xt_tcpudp.c tcp_mt et al.).
const noL4 = (p: Pkt): false => {
  if (p.truncated) throw HOTDROP;
  return false;
};

function ifaceMatch(m: { name: string; wildcard: boolean }, name: string): boolean {
  return m.wildcard ? name.startsWith(m.name) : name === m.name;
}

const inR = (v: number | bigint, lo: number | bigint, hi: number | bigint) => v >= lo && v <= hi;

export function ruleMatches(r: Rule, p: Pkt): boolean {
  const neg = (not: boolean, b: boolean) => (not ? !b : b);
  if (r.src && !neg(r.src.not, inR(p.src, r.src.v.lo, r.src.v.hi))) return false;
  if (r.dst && !neg(r.dst.not, inR(p.dst, r.dst.v.lo, r.dst.v.hi))) return false;
  if (r.proto && !neg(r.proto.not, p.proto === r.proto.v)) return false;
  if (r.inIface && !neg(r.inIface.not, ifaceMatch(r.inIface.v, p.iif))) return false;
  if (r.outIface && !neg(r.outIface.not, ifaceMatch(r.outIface.v, p.oif))) return false;
  for (const m of r.matches) {
    switch (m.module) {
      case 'tcp': case 'udp': case 'sctp':
        if (!p.hasL4) return noL4(p);
        if (m.sport && !neg(m.sport.not, inR(p.sport, m.sport.v.lo, m.sport.v.hi))) return false;
        if (m.dport && !neg(m.dport.not, inR(p.dport, m.dport.v.lo, m.dport.v.hi))) return false;
        if (m.module === 'tcp' && m.flags && !neg(m.flags.not, (p.tcpFlags & m.flags.v.mask) === m.flags.v.comp)) return false;
        break;
      case 'icmp': case 'icmp6': {
        if (!p.hasL4) return noL4(p);
        const t = m.type!;
        const hit = t.v.any || (p.icmpType === t.v.type && p.icmpCode >= t.v.codeLo && p.icmpCode <= t.v.codeHi);
        if (!neg(t.not, hit)) return false;
        break;
      }
      case 'multiport': {
        if (!p.hasL4) return noL4(p);
        const inList = (port: number) => m.ports!.v.some((r2) => port >= r2.lo && port <= r2.hi);
        const hit = m.which === 'sports' ? inList(p.sport) : m.which === 'dports' ? inList(p.dport) : inList(p.sport) || inList(p.dport);
        if (!neg(m.ports!.not, hit)) return false;
        break;
      }
      case 'iprange':
        if (m.src && !neg(m.src.not, inR(p.src, m.src.v.lo, m.src.v.hi))) return false;
        if (m.dst && !neg(m.dst.not, inR(p.dst, m.dst.v.lo, m.dst.v.hi))) return false;
        break;
      case 'conntrack': case 'state': {
        const s = m.module === 'state' ? m.state : m.ctstate;
        if (s && !neg(s.not, (p.ct & s.v) !== 0)) return false;
        break;
      }
      case 'comment':
        break;
    }
  }
  return true;
}

type ChainResult = { kind: 'verdict'; verdict: RefResult['verdict']; code: number } | { kind: 'return' };

export function evalIptables(t: Table, hook: string, p: Pkt, policyId: number): RefResult {
  const counted: number[] = [];
  const walk = (name: string, depth: number): ChainResult => {
    if (depth > 100) throw new Error('reference: chain depth exceeded');
    for (const r of t.chains.get(name)!.rules) {
      if (!ruleMatches(r, p)) continue;
      counted.push(r.id!);
      const tg = r.target;
      switch (tg.kind) {
        case 'ACCEPT': case 'DROP':
          return { kind: 'verdict', verdict: tg.kind, code: 0 };
        case 'REJECT':
          return { kind: 'verdict', verdict: 'REJECT', code: REJECT_CODE[tg.with] };
        case 'RETURN':
          return { kind: 'return' };
        case 'LOG': case 'none':
          break;
        case 'jump': {
          const res = walk(tg.chain, depth + 1);
          if (res.kind === 'verdict') return res;
          break;
        }
        case 'goto': {
          const res = walk(tg.chain, depth + 1);
          return res; // a verdict, or return from this chain too
        }
      }
    }
    return { kind: 'return' };
  };
  let res: ChainResult;
  try {
    res = walk(hook, 0);
  } catch (e) {
    if (e !== HOTDROP) throw e;
    return { verdict: 'DROP', rejectCode: 0, counted, hotdrop: true };
  }
  if (res.kind === 'verdict') return { verdict: res.verdict, rejectCode: res.code, counted };
  counted.push(policyId);
  return { verdict: t.chains.get(hook)!.policy ?? 'ACCEPT', rejectCode: 0, counted };
}

export interface RecPkt {
  src: number | bigint;
  dst: number | bigint;
  proto: number;
  sport: number;
  dport: number;
  iif: number; // interface class
  oif: number;
  icmp: number; // type << 8 | code
  tcpFlags: number;
  ct: number;
  hasL4: boolean;
}

export function recordMatches(r: DecodedRecord, p: RecPkt): boolean {
  return inR(p.src, r.srcLo, r.srcHi) && inR(p.dst, r.dstLo, r.dstHi) &&
    inR(p.sport, r.sportLo, r.sportHi) && inR(p.dport, r.dportLo, r.dportHi) &&
    inR(p.proto, r.protoLo, r.protoHi) && inR(p.iif, r.iifLo, r.iifHi) && inR(p.oif, r.oifLo, r.oifHi) &&
    inR(p.icmp, r.icmpLo, r.icmpHi) &&
    (((p.tcpFlags & r.tcpMask) === r.tcpValue) !== ((r.flags & 2) !== 0)) &&
    (p.ct & r.ct) !== 0 && (!r.needsL4 || p.hasL4);
}

/** First matching record index >= start, by linear scan. */
export function firstMatch(records: DecodedRecord[], p: RecPkt, start: number): number {
  for (let i = start; i < records.length; i++) if (recordMatches(records[i], p)) return i;
  return -1;
}

export function evalRecords(records: DecodedRecord[], p: RecPkt, internalId: number): RefResult {
  const counted: number[] = [];
  let start = 0;
  for (;;) {
    const i = firstMatch(records, p, start);
    if (i < 0) throw new Error('reference: no record matched (the policy record must match everything)');
    const r = records[i];
    if (r.ruleId !== internalId) counted.push(r.ruleId);
    if (r.action === ACTION.LOG || r.action === ACTION.COUNT || r.action === ACTION.SKIP) {
      if (r.arg <= i) throw new Error(`reference: record ${i} continues backwards to ${r.arg}`);
      start = r.arg;
      continue;
    }
    const verdict = r.action === ACTION.ACCEPT ? 'ACCEPT' : r.action === ACTION.DROP ? 'DROP' : 'REJECT';
    return { verdict, rejectCode: r.action === ACTION.REJECT ? r.arg : 0, counted };
  }
}

export function toRecPkt(p: Pkt, classOf: (name: string) => number, family: Family): RecPkt {
  void family;
  return {
    src: p.src, dst: p.dst, proto: p.proto, sport: p.sport, dport: p.dport,
    iif: classOf(p.iif), oif: classOf(p.oif), icmp: (p.icmpType << 8) | p.icmpCode,
    tcpFlags: p.tcpFlags, ct: p.ct, hasL4: p.hasL4,
  };
}
