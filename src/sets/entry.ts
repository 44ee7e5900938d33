// Set elements as ipset(8) writes them: parsing (with the kernel's
// expansion of ranges and CIDRs into the stored elements) and printing.
// Messages follow ipset 7.x (lib/parse.c, lib/errcode.c) so that scripts
// and eyes that know ipset read them as is.
//
//   hash:ip        IPv4: ADDR, ADDR/CIDR (every address of the net),
//                  FROM-TO; IPv6: one address (/128 allowed)
//   hash:net       IPv4: ADDR[/CIDR], FROM-TO (as the CIDRs covering it);
//                  IPv6: ADDR[/CIDR]
//   hash:ip,port   the hash:ip address, then ,[PROTO:]PORT[-PORT]: tcp when
//                  no protocol is given, ports for tcp/udp/sctp/udplite
//                  (numbers or /etc/services names), icmp:NAME|TYPE/CODE
//                  (inet), icmpv6:NAME|TYPE/CODE (inet6), any other protocol
//                  with port 0 only
//   hash:net,port  the hash:net address, then the same port part
//   bitmap:port    [tcp:|udp:]PORT[-PORT]
import { formatIPv4, formatIPv6, parseIPv4, parseIPv6, V4_MAX } from '../rules/address';
import {
  ICMP_NAMES, ICMPV6_NAMES, SET_TYPES, icmpName, icmpTypeCode, protocolName, protocolNumber, servicePort,
  type FamilyName, type SetEntry, type SetTypeName,
} from './types';

/** A bad element: the message, and where in the element text it starts. */
export class ElementError extends Error {
  constructor(message: string, readonly offset = 0) {
    super(message);
  }
}

export interface ElementContext {
  type: SetTypeName;
  family?: FamilyName;
}

/** At most this many elements from one element text (a range or CIDR). */
export const MAX_EXPANSION = 1 << 20;

const syntax = (msg: string, offset = 0) => new ElementError(`Syntax error: ${msg}`, offset);

/** ipset_strchr: a separator counts only when the text neither starts nor ends with it. */
function sepIndex(s: string, sep: string): number {
  const i = s.indexOf(sep);
  return i >= 0 && s[0] !== sep && s[s.length - 1] !== sep ? i : -1;
}

/** string_to_number_ll: strtoull(base 0) and a range check. */
export function ipsetNumber(s: string, min: number, max: number, offset = 0): number {
  const m = /^\s*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(s);
  if (!m) throw syntax(`'${s}' is invalid as number`, offset);
  const digits = m[2];
  let v = /^0[xX]/.test(digits) ? BigInt(digits) : digits.length > 1 && digits[0] === '0' ? BigInt(`0o${digits.slice(1)}`) : BigInt(digits);
  const ull = (1n << 64n) - 1n;
  if (v > ull) throw syntax(`'${s}' is out of range ${min}-${max}`, offset);
  if (m[1] === '-' && v !== 0n) v = ull + 1n - v; // strtoull negates
  if (v < BigInt(min) || v > BigInt(max)) throw syntax(`'${s}' is out of range ${min}-${max}`, offset);
  return Number(v);
}

// ---- addresses ----

interface Addr4 { family: 'inet'; lo: number; hi: number; cidr?: number; text: string }
interface Addr6 { family: 'inet6'; value: bigint; cidr?: number; text: string }

function resolveFailed(s: string, family: FamilyName, offset: number): ElementError {
  return syntax(`cannot parse ${s}: resolving to ${family === 'inet' ? 'IPv4' : 'IPv6'} address failed`, offset);
}

/** An IPv4 address, a CIDR or a range; `range`/`cidr` say what is allowed. */
function parseAddr4(s: string, offset: number): Addr4 {
  const slash = sepIndex(s, '/');
  if (slash >= 0) {
    const a = parseIPv4(s.slice(0, slash));
    const cidr = ipsetNumber(s.slice(slash + 1), 0, 32, offset + slash + 1);
    if (a === undefined) throw resolveFailed(s.slice(0, slash), 'inet', offset);
    return { family: 'inet', lo: a, hi: a, cidr, text: s };
  }
  const dash = sepIndex(s, '-');
  if (dash >= 0) {
    const a = parseIPv4(s.slice(0, dash));
    if (a === undefined) throw resolveFailed(s.slice(0, dash), 'inet', offset);
    const b = parseIPv4(s.slice(dash + 1));
    if (b === undefined) throw resolveFailed(s.slice(dash + 1), 'inet', offset + dash + 1);
    return { family: 'inet', lo: a, hi: b, text: s };
  }
  const a = parseIPv4(s);
  if (a === undefined) throw resolveFailed(s, 'inet', offset);
  return { family: 'inet', lo: a, hi: a, text: s };
}

function parseAddr6(s: string, offset: number, plain: boolean): Addr6 {
  const slash = sepIndex(s, '/');
  if (sepIndex(s, '-') >= 0 && slash < 0) {
    throw syntax(plain ? `plain IP address must be supplied: ${s}` : `IP address or IP/cidr must be specified: ${s}`, offset);
  }
  let cidr: number | undefined;
  let addr = s;
  if (slash >= 0) {
    addr = s.slice(0, slash);
    cidr = ipsetNumber(s.slice(slash + 1), 0, 128, offset + slash + 1);
    if (plain && cidr !== 128) throw syntax(`plain IP address must be supplied: ${s}`, offset);
  }
  const v = parseIPv6(addr);
  if (v === undefined) throw resolveFailed(addr, 'inet6', offset);
  return { family: 'inet6', value: v, cidr, text: s };
}

/** The CIDR blocks covering [lo, hi] (the kernel's ip_set_range_to_cidr loop). */
export function rangeToCidrs(lo: number, hi: number): [number, number][] {
  const out: [number, number][] = [];
  let ip = lo;
  while (ip <= hi) {
    let len = 32;
    // Largest block starting at ip and ending within hi.
    while (len > 0) {
      const size = 2 ** (32 - (len - 1));
      if (ip % size !== 0 || ip + size - 1 > hi) break;
      len--;
    }
    out.push([ip, len]);
    ip += 2 ** (32 - len);
    if (out.length > MAX_EXPANSION) break;
  }
  return out;
}

function tooMany(n: number, offset: number): ElementError {
  return new ElementError(`the element expands to ${n} entries, more than flatwall expands at once (${MAX_EXPANSION})`, offset);
}

/** The address part of a hash:ip / hash:ip,port element as stored entries. */
function hostAddresses(family: FamilyName, s: string, offset: number): { addrs: string[]; shown: string } {
  if (family === 'inet6') {
    const a = parseAddr6(s, offset, true);
    return { addrs: [formatIPv6(a.value)], shown: formatIPv6(a.value) };
  }
  const a = parseAddr4(s, offset);
  let lo = a.lo;
  let hi = a.hi;
  if (a.cidr !== undefined) {
    // hash_ip4_uadt: every address of the network.
    if (a.cidr === 0) throw new ElementError('The value of the CIDR parameter of the IP address is invalid', offset);
    const size = 2 ** (32 - a.cidr);
    lo = a.lo - (a.lo % size);
    hi = lo + size - 1;
  } else if (lo > hi) {
    if (hi === 0) throw new ElementError('Null-valued element, cannot be stored in a hash type of set', offset);
    [lo, hi] = [hi, lo];
  }
  if (hi - lo + 1 > MAX_EXPANSION) throw tooMany(hi - lo + 1, offset);
  const addrs: string[] = [];
  // The kernel skips 0.0.0.0 inside a range; a lone 0.0.0.0 is refused.
  for (let ip = lo; ip <= hi; ip++) if (ip !== 0 || lo === hi) addrs.push(formatIPv4(ip));
  return { addrs, shown: a.cidr !== undefined ? `${formatIPv4(a.lo)}/${a.cidr}` : lo === hi ? formatIPv4(lo) : `${formatIPv4(lo)}-${formatIPv4(hi)}` };
}

/** The address part of a hash:net / hash:net,port element as stored (addr, cidr) pairs. */
function netAddresses(family: FamilyName, s: string, offset: number): { nets: [string, number][]; shown: string } {
  if (family === 'inet6') {
    const a = parseAddr6(s, offset, false);
    const cidr = a.cidr ?? 128;
    if (cidr === 0) throw new ElementError('The value of the CIDR parameter of the IP address is invalid', offset);
    const shown = cidr === 128 ? formatIPv6(a.value) : `${formatIPv6(a.value)}/${cidr}`;
    return { nets: [[formatIPv6(a.value), cidr]], shown };
  }
  const a = parseAddr4(s, offset);
  if (a.cidr !== undefined) {
    if (a.cidr === 0) throw new ElementError('The value of the CIDR parameter of the IP address is invalid', offset);
    return { nets: [[formatIPv4(a.lo), a.cidr]], shown: a.cidr === 32 ? formatIPv4(a.lo) : `${formatIPv4(a.lo)}/${a.cidr}` };
  }
  let { lo, hi } = a;
  if (lo === hi) return { nets: [[formatIPv4(lo), 32]], shown: formatIPv4(lo) };
  if (lo > hi) [lo, hi] = [hi, lo];
  if (lo === 0 && hi === V4_MAX) throw new ElementError('Invalid range, covers the whole address space', offset);
  const blocks = rangeToCidrs(lo, hi);
  if (blocks.length > MAX_EXPANSION) throw tooMany(blocks.length, offset);
  return { nets: blocks.map(([ip, len]) => [formatIPv4(ip), len]), shown: `${formatIPv4(lo)}-${formatIPv4(hi)}` };
}

// ---- protocol and port ----

interface ProtoPorts { proto: number; ports: number[]; shown: string }

function parsePort(s: string, proto: string, offset: number): number {
  const named = servicePort(s, proto);
  if (named !== undefined) return named;
  return ipsetNumber(s, 0, 65535, offset);
}

function portRange(s: string, proto: string, offset: number): number[] {
  const dash = sepIndex(s, '-');
  if (dash < 0) return [parsePort(s, proto, offset)];
  let a = parsePort(s.slice(0, dash), proto, offset);
  let b = parsePort(s.slice(dash + 1), proto, offset + dash + 1);
  if (a > b) [a, b] = [b, a];
  const out: number[] = [];
  for (let p = a; p <= b; p++) out.push(p);
  return out;
}

/** ipset_parse_proto: a name (icmpv6 = ipv6-icmp), else a number with a name. */
export function parseProto(s: string, offset: number): number {
  let n = protocolNumber(s.toLowerCase() === 'icmpv6' ? 'ipv6-icmp' : s);
  if (n === undefined) {
    let v: number | undefined;
    try {
      v = ipsetNumber(s, 0, 255, offset);
    } catch {
      v = undefined;
    }
    // ipset 7.17 takes a number /etc/protocols does not name (it prints it as one).
    if (v === undefined) throw syntax(`cannot parse '${s}' as a protocol`, offset);
    n = v;
  }
  if (n === 0) throw syntax(`Unsupported protocol '${s}'`, offset);
  return n;
}

function parseIcmp(s: string, family: 'ICMP' | 'ICMPv6', offset: number): number {
  const named = icmpTypeCode(family === 'ICMP' ? ICMP_NAMES : ICMPV6_NAMES, s);
  if (named !== undefined) return named;
  const slash = sepIndex(s, '/');
  if (slash < 0) throw new ElementError(`Cannot parse ${s} as an ${family} type/code.`, offset);
  const t = ipsetNumber(s.slice(0, slash), 0, 255, offset);
  const c = ipsetNumber(s.slice(slash + 1), 0, 255, offset + slash + 1);
  return (t << 8) | c;
}

/** ipset_parse_proto_port. */
function protoPorts(family: FamilyName | undefined, s: string, offset: number): ProtoPorts {
  const colon = sepIndex(s, ':');
  if (colon < 0) return { proto: 6, ports: portRange(s, 'tcp', offset), shown: s };
  const pname = s.slice(0, colon);
  const rest = s.slice(colon + 1);
  const ro = offset + colon + 1;
  const proto = parseProto(pname, offset);
  switch (proto) {
    case 6: case 17: case 132: case 136:
      return { proto, ports: portRange(rest, pname, ro), shown: s };
    case 1:
      if (family !== 'inet') throw syntax('Protocol ICMP can be used with family inet only', offset);
      return { proto, ports: [parseIcmp(rest, 'ICMP', ro)], shown: s };
    case 58:
      if (family !== 'inet6') throw syntax('Protocol ICMPv6 can be used with family inet6 only', offset);
      return { proto, ports: [parseIcmp(rest, 'ICMPv6', ro)], shown: s };
    default:
      if (rest !== '0') throw syntax(`Protocol ${pname} can be used with pseudo port value 0 only.`, offset);
      return { proto, ports: [0], shown: s };
  }
}

// ---- elements ----

export interface ParsedElement {
  entries: SetEntry[];
  /** The element as `ipset test` names it in its message (parsed, then printed). */
  shown: string;
}

/** Parses one element for a set of this type and family. */
export function parseElement(ctx: ElementContext, text: string): ParsedElement {
  const info = SET_TYPES[ctx.type];
  if (ctx.type === 'bitmap:port') {
    // ipset_parse_tcp_udp_port
    const pp = protoPorts(undefined, text, 0);
    if (pp.proto !== 6 && pp.proto !== 17) throw syntax('Only protocols TCP and UDP are valid');
    return { entries: pp.ports.map((port) => ({ port })), shown: pp.ports.length === 1 ? String(pp.ports[0]) : text };
  }
  const family = ctx.family ?? 'inet';
  let addrPart = text;
  let portPart: string | undefined;
  if (info.port) {
    const comma = sepIndex(text, ',');
    if (comma < 0) throw syntax(`Second element is missing from ${text}.`);
    addrPart = text.slice(0, comma);
    portPart = text.slice(comma + 1);
  }
  const addrs: { addr: string; cidr?: number }[] = [];
  let shown: string;
  if (info.nets) {
    const n = netAddresses(family, addrPart, 0);
    for (const [addr, cidr] of n.nets) addrs.push({ addr, cidr });
    shown = n.shown;
  } else {
    const h = hostAddresses(family, addrPart, 0);
    for (const addr of h.addrs) addrs.push({ addr });
    shown = h.shown;
  }
  if (portPart === undefined) return { entries: addrs, shown };
  const pp = protoPorts(family, portPart, addrPart.length + 1);
  if (addrs.length * pp.ports.length > MAX_EXPANSION) throw tooMany(addrs.length * pp.ports.length, 0);
  const entries: SetEntry[] = [];
  for (const a of addrs) for (const port of pp.ports) entries.push({ ...a, proto: pp.proto, port });
  const one = entries.length === 1 ? entries[0] : undefined;
  return { entries, shown: `${shown},${one ? protoPortText(family, one.proto!, one.port!) : pp.shown}` };
}

/** How ipset prints proto:port (ipset_print_proto_port). */
export function protoPortText(family: FamilyName | undefined, proto: number, port: number): string {
  const name = protocolName(proto) ?? String(proto);
  if (proto === 1 && family !== 'inet6') return `${name}:${icmpName(ICMP_NAMES, port) ?? `${port >> 8}/${port & 255}`}`;
  if (proto === 58 && family === 'inet6') return `${name}:${icmpName(ICMPV6_NAMES, port) ?? `${port >> 8}/${port & 255}`}`;
  return `${name}:${port}`;
}

/** An element as `ipset list` / `ipset save` print it (no extensions). */
export function formatElement(ctx: ElementContext, e: SetEntry): string {
  if (ctx.type === 'bitmap:port') return String(e.port);
  const info = SET_TYPES[ctx.type];
  const host = ctx.family === 'inet6' ? 128 : 32;
  let s = e.addr ?? '';
  if (info.nets && e.cidr !== undefined && e.cidr !== host) s += `/${e.cidr}`;
  if (info.port) s += `,${protoPortText(ctx.family, e.proto ?? 0, e.port ?? 0)}`;
  return s;
}

/** The extensions after an element: timeout, nomatch, counters, comment (ipset's order). */
export function formatExtensions(opts: { timeout?: number; counters?: boolean }, e: SetEntry): string {
  let s = '';
  if (opts.timeout !== undefined) s += ` timeout ${e.timeout ?? 0}`;
  if (e.nomatch) s += ' nomatch';
  if (opts.counters) s += ` packets ${e.packets ?? 0} bytes ${e.bytes ?? 0}`;
  if (e.comment !== undefined && e.comment !== '') s += ` comment "${e.comment}"`;
  return s;
}
