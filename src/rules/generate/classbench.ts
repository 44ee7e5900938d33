// ClassBench-like rule generation (families acl, fw, ipc, acl6).
//
// For each rule, as ClassBench's db_generator does (Taylor & Turner 2007,
// Sec. IV): draw the protocol; for tcp/udp draw the port-pair class from that
// protocol's class mix; draw the (source, destination) prefix-length pair
// from the class's length distribution; then draw the port values (exact
// match and arbitrary range from the seed's tables, HI = 1024:65535,
// LO = 0:1023, WC = no port match) and addresses from the hierarchical pools
// (addr.ts). The rule is printed the way iptables-save prints it.

import { dim, PoolShape, V4Pool, V6Pool } from './addr';
import { cidr4, cidr6, portRange } from './format';
import { Prng, Weighted } from './prng';
import {
  ACL6_ICMP6_TYPES,
  AR,
  CbPrefixRows,
  EM,
  HI,
  LO,
  PAIR_CLASSES,
  PairClass,
  PortClass,
  PortRows,
  Proto,
  RangePrefixRows,
  SeedSpec,
  splitClass,
  V6_LEN,
  WC,
} from './tables';

export interface ClassbenchFamily {
  spec: SeedSpec;
  v6: boolean;
  /** PRNG stream id, so that families with the same seed differ. */
  stream: number;
  srcPool(n: number): PoolShape;
  dstPool(n: number): PoolShape;
}

interface PairTable {
  s: Uint8Array;
  d: Uint8Array;
  w: Weighted;
}

interface PortTable {
  lo: Uint16Array;
  hi: Uint16Array;
  w: Weighted;
}

interface CompiledProto {
  proto: Proto;
  classes: Int8Array; // indices into PAIR_CLASSES
  classW: Weighted | null;
  icmpTypes: Int16Array;
  icmpW: Weighted | null;
}

interface Compiled {
  protoW: Weighted;
  protos: CompiledProto[];
  pairs: PairTable[]; // by PAIR_CLASSES index
  noPorts: PairTable; // protocols without ports
  classSplit: Array<[PortClass, PortClass]>;
  spar: PortTable | null;
  spem: PortTable | null;
  dpar: PortTable | null;
  dpem: PortTable | null;
  actionW: Weighted;
}

function pairsFromCb(rows: CbPrefixRows, v6: boolean): PairTable {
  const s: number[] = [];
  const d: number[] = [];
  const w: number[] = [];
  for (const row of rows) {
    const total = row[0];
    const p = row[1];
    for (let j = 2; j + 1 < row.length; j += 2) {
      const sl = row[j];
      const dl = total - sl;
      if (sl < 0 || sl > 32 || dl < 0 || dl > 32) throw new Error(`bad prefix row ${row.join(',')}`);
      s.push(v6 ? V6_LEN[sl] : sl);
      d.push(v6 ? V6_LEN[dl] : dl);
      w.push(p * row[j + 1]);
    }
  }
  return { s: Uint8Array.from(s), d: Uint8Array.from(d), w: new Weighted(w) };
}

function pairsFromRanges(rows: RangePrefixRows, v6: boolean): PairTable {
  const s: number[] = [];
  const d: number[] = [];
  const w: number[] = [];
  for (const [sLo, sHi, dLo, dHi, weight] of rows) {
    const cells = (sHi - sLo + 1) * (dHi - dLo + 1);
    for (let a = sLo; a <= sHi; a++) {
      for (let b = dLo; b <= dHi; b++) {
        s.push(v6 ? V6_LEN[a] : a);
        d.push(v6 ? V6_LEN[b] : b);
        w.push(weight / cells);
      }
    }
  }
  return { s: Uint8Array.from(s), d: Uint8Array.from(d), w: new Weighted(w) };
}

function portTable(rows: PortRows): PortTable | null {
  if (rows.length === 0) return null;
  return {
    lo: Uint16Array.from(rows.map((r) => r[1])),
    hi: Uint16Array.from(rows.map((r) => r[2])),
    w: new Weighted(rows.map((r) => r[0])),
  };
}

const compiledCache = new WeakMap<ClassbenchFamily, Compiled>();

function compile(fam: ClassbenchFamily): Compiled {
  const hit = compiledCache.get(fam);
  if (hit) return hit;
  const spec = fam.spec;
  const px = spec.prefixes;
  const tableFor = (c: PairClass): PairTable => {
    const cb = px.byClass?.[c];
    if (cb) return pairsFromCb(cb, fam.v6);
    const ranges = c === 'wc_wc' ? px.noports ?? px.ports : px.ports ?? px.noports;
    if (ranges) return pairsFromRanges(ranges, fam.v6);
    const fallback = px.byClass?.wc_wc;
    if (fallback) return pairsFromCb(fallback, fam.v6);
    throw new Error(`no prefix table for class ${c}`);
  };
  const pairs = PAIR_CLASSES.map(tableFor);
  const protos = spec.protos.map((p): CompiledProto => {
    const entries = p.classes ? (Object.entries(p.classes) as Array<[PairClass, number]>) : [];
    let icmp = p.icmpTypes;
    if (fam.v6 && p.proto === 'icmp') icmp = ACL6_ICMP6_TYPES;
    return {
      proto: p.proto,
      classes: Int8Array.from(entries.map(([c]) => PAIR_CLASSES.indexOf(c))),
      classW: entries.length ? new Weighted(entries.map(([, w]) => w)) : null,
      icmpTypes: Int16Array.from((icmp ?? []).map(([t]) => t)),
      icmpW: icmp && icmp.length ? new Weighted(icmp.map(([, w]) => w)) : null,
    };
  });
  const c: Compiled = {
    protoW: new Weighted(spec.protos.map((p) => p.weight)),
    protos,
    pairs,
    noPorts: pairs[0],
    classSplit: PAIR_CLASSES.map(splitClass),
    spar: portTable(spec.spar),
    spem: portTable(spec.spem),
    dpar: portTable(spec.dpar),
    dpem: portTable(spec.dpem),
    actionW: new Weighted([...spec.actions]),
  };
  compiledCache.set(fam, c);
  return c;
}

/** Port match text for one side, or '' for a wildcard. */
function portValue(rng: Prng, cls: PortClass, ar: PortTable | null, em: PortTable | null): string {
  switch (cls) {
    case WC:
      return '';
    case HI:
      return '1024:65535';
    case LO:
      return '0:1023';
    case AR: {
      if (ar) {
        const i = ar.w.sample(rng);
        return portRange(ar.lo[i], ar.hi[i]);
      }
      const lo = rng.int(65535);
      return portRange(lo, lo + 1 + rng.int(65535 - lo));
    }
    case EM: {
      if (em) {
        const i = em.w.sample(rng);
        return String(em.lo[i]);
      }
      return String(1 + rng.int(65535));
    }
  }
  return '';
}

/** Streams the -A lines of a ClassBench-like family. */
export function* classbenchRules(fam: ClassbenchFamily, n: number, seed: number): Generator<string> {
  const c = compile(fam);
  const rng = new Prng(seed, fam.stream);
  const v6 = fam.v6;
  const src4 = v6 ? null : new V4Pool(seed, 1, fam.srcPool(n));
  const dst4 = v6 ? null : new V4Pool(seed, 2, fam.dstPool(n));
  const src6 = v6 ? new V6Pool(seed, 1, fam.srcPool(n)) : null;
  const dst6 = v6 ? new V6Pool(seed, 2, fam.dstPool(n)) : null;
  const w = new Uint32Array(4);
  const icmpName = v6 ? ' -p ipv6-icmp' : ' -p icmp';
  const icmpMatch = v6 ? ' -m icmp6 --icmpv6-type ' : ' -m icmp --icmp-type ';
  const unreach = v6 ? ' -j REJECT --reject-with icmp6-port-unreachable' : ' -j REJECT --reject-with icmp-port-unreachable';

  for (let i = 0; i < n; i++) {
    const p = c.protos[c.protoW.sample(rng)];
    let cls = 0;
    if (p.classW) cls = p.classes[p.classW.sample(rng)];
    const pt = p.proto === 'tcp' || p.proto === 'udp' ? c.pairs[cls] : c.noPorts;
    const k = pt.w.sample(rng);
    const sl = pt.s[k];
    const dl = pt.d[k];

    let line = '-A FORWARD';
    if (v6) {
      src6!.pick(rng, w);
      if (sl > 0) line += ' -s ' + cidr6(w[0], w[1], w[2], w[3], sl);
      dst6!.pick(rng, w);
      if (dl > 0) line += ' -d ' + cidr6(w[0], w[1], w[2], w[3], dl);
    } else {
      const sa = src4!.pick(rng);
      if (sl > 0) line += ' -s ' + cidr4(sa, sl);
      const da = dst4!.pick(rng);
      if (dl > 0) line += ' -d ' + cidr4(da, dl);
    }

    switch (p.proto) {
      case 'tcp':
      case 'udp': {
        const [sc, dc] = c.classSplit[cls];
        const sp = portValue(rng, sc, c.spar, c.spem);
        const dp = portValue(rng, dc, c.dpar, c.dpem);
        line += p.proto === 'tcp' ? ' -p tcp' : ' -p udp';
        if (sp || dp) {
          line += p.proto === 'tcp' ? ' -m tcp' : ' -m udp';
          if (sp) line += ' --sport ' + sp;
          if (dp) line += ' --dport ' + dp;
        }
        break;
      }
      case 'icmp': {
        line += icmpName;
        if (p.icmpW) {
          const t = p.icmpTypes[p.icmpW.sample(rng)];
          if (t >= 0) line += icmpMatch + t;
        }
        break;
      }
      case 'gre':
        line += ' -p gre';
        break;
      case 'all':
        break;
    }

    const a = c.actionW.sample(rng);
    if (a === 0) line += ' -j ACCEPT';
    else if (a === 1) line += ' -j DROP';
    else if (p.proto === 'tcp' && rng.chance(0.5)) line += ' -j REJECT --reject-with tcp-reset';
    else line += unreach;
    yield line;
  }
}

// Pool shapes. Sizes grow with the rule count so that a 1M-rule set is not a
// million copies of a few hundred prefixes, while small sets stay as
// concentrated as the ClassBench outputs (e.g. acl1's sources come from a
// handful of /24s, its destinations are spread out; fw1's destinations are a
// few servers, its sources the whole Internet).
export const ACL_SRC = (n: number): PoolShape => ({
  roots: dim(2 + n / 5000, 4096), subnets: dim(4 + n / 2000, 4096), hosts: 256, skew: [2, 3, 2],
});
export const ACL_DST = (n: number): PoolShape => ({
  roots: dim(16 + n / 100, 65536), subnets: dim(8 + n / 1000, 4096), hosts: 256, skew: [2, 2, 2],
});
export const FW_SRC = (n: number): PoolShape => ({
  roots: dim(6 + n / 500, 65536), subnets: dim(4 + n / 2000, 4096), hosts: 256, skew: [2, 3, 3],
});
export const FW_DST = (n: number): PoolShape => ({
  roots: dim(4 + n / 2000, 4096), subnets: dim(4 + n / 4000, 4096), hosts: 64, skew: [3, 3, 3],
});
export const IPC_SIDE = (n: number): PoolShape => ({
  roots: dim(8 + n / 500, 16384), subnets: dim(8 + n / 2000, 4096), hosts: 256, skew: [2, 2, 2],
});
