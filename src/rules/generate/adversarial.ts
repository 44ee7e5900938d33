// The "adversarial" family: rule sets built to hurt decomposition and
// tuple-space classifiers, and decision-tree (cutting) classifiers.
//
// * Tuple explosion: the (source length, destination length) pair of rule i
//   walks all 33 x 33 = 1089 IPv4 pairs in a seed-permuted order
//   (k = (i * 653 + offset) mod 1089; 653 is coprime with 1089), so every set
//   of >= 1089 rules uses every pair and a tuple-space search has up to 1089
//   tables to probe, times the port/protocol tuples.
// * Wildcards: on top of that walk, 25% of rules get a wildcard source,
//   destination or both, which is what makes cutting classifiers replicate
//   rules into every child.
// * Overlap in addresses: 70% of addresses come from a tiny hierarchy (2 roots,
//   4 subnets, 16 hosts per side), so prefixes of every length nest inside
//   each other; the rest are uniformly random.
// * Overlap in ports: arbitrary ranges that are never prefix-aligned (odd
//   start, even end, so [lo, hi] needs up to 30 prefixes to express) and are
//   centred on a few hot spots (22, 53, 80, 123, 443, 1024, 3306, 8080,
//   32768, 50000) with heavy-tailed widths, so ranges overlap each other partially;
//   exact ports mostly from the same hot spots; source and destination both
//   constrained in many rules; 8% of tcp/udp rules use multiport lists mixing
//   ports and ranges.
// * Mixed protocols (tcp 35%, udp 30%, icmp 10%, any 25%) and actions
//   (ACCEPT 45%, DROP 45%, REJECT 10%), so overlapping rules disagree and the
//   first match really matters; 5% carry a comment.

import { V4Pool } from './addr';
import { cidr4, portRange } from './format';
import { hash32, Prng, Weighted } from './prng';

const HOT_PORTS = [22, 53, 80, 123, 443, 1024, 3306, 8080, 32768, 50000];

const PROTO_W = new Weighted([0.35, 0.3, 0.1, 0.25]); // tcp, udp, icmp, all
// Port classes: WC, HI, LO, AR, EM
const SPORT_W = new Weighted([0.35, 0.1, 0.05, 0.35, 0.15]);
const DPORT_W = new Weighted([0.2, 0.05, 0.05, 0.45, 0.25]);
const ACTION_W = new Weighted([0.45, 0.45, 0.1]);

/** A non-prefix-aligned range [odd, even] around a hot spot; heavy-tailed width. */
function arbitraryRange(rng: Prng): [number, number] {
  const centre = HOT_PORTS[rng.int(HOT_PORTS.length)];
  const u = rng.float();
  const width = 2 + Math.floor(u * u * u * 40000);
  let lo = centre - rng.int(width + 1);
  if (lo < 1) lo = 1;
  lo |= 1;
  if (lo > 65533) lo = 65533;
  let hi = lo + width;
  if (hi > 65534) hi = 65534;
  hi &= ~1;
  if (hi <= lo) hi = lo + 1;
  return [lo, hi];
}

function exactPort(rng: Prng): number {
  return rng.chance(0.6) ? HOT_PORTS[rng.int(HOT_PORTS.length)] : 1 + rng.int(65535);
}

function portText(rng: Prng, cls: number): string {
  switch (cls) {
    case 1:
      return '1024:65535';
    case 2:
      return '0:1023';
    case 3: {
      const [lo, hi] = arbitraryRange(rng);
      return portRange(lo, hi);
    }
    case 4:
      return String(exactPort(rng));
    default:
      return '';
  }
}

/** multiport list: 2-7 items, ranges count double, at most 15 ports in all. */
function multiportList(rng: Prng): string {
  const items = 2 + rng.int(6);
  let used = 0;
  const parts: string[] = [];
  for (let j = 0; j < items && used < 14; j++) {
    if (rng.chance(0.4) && used <= 13) {
      const [lo, hi] = arbitraryRange(rng);
      parts.push(portRange(lo, hi));
      used += 2;
    } else {
      parts.push(String(exactPort(rng)));
      used += 1;
    }
  }
  return parts.join(',');
}

export function* adversarialRules(n: number, seed: number): Generator<string> {
  const rng = new Prng(seed, 0xad5e);
  const offset = hash32(seed >>> 0, 0xad) % 1089;
  const hotShape = { roots: 2, subnets: 4, hosts: 16, skew: [1, 1, 1] as [1, 1, 1] };
  const hotSrc = new V4Pool(seed, 11, hotShape);
  const hotDst = new V4Pool(seed, 12, hotShape);

  for (let i = 0; i < n; i++) {
    const k = (Math.imul(i % 1089, 653) + offset) % 1089;
    let sl = Math.floor(k / 33);
    let dl = k % 33;
    if (rng.chance(0.25)) {
      const m = rng.int(5);
      if (m < 2) sl = 0;
      else if (m < 4) dl = 0;
      else sl = dl = 0;
    }
    const sa = rng.chance(0.7) ? hotSrc.pick(rng) : rng.u32();
    const da = rng.chance(0.7) ? hotDst.pick(rng) : rng.u32();
    let line = '-A FORWARD';
    if (sl > 0) line += ' -s ' + cidr4(sa, sl);
    if (dl > 0) line += ' -d ' + cidr4(da, dl);

    const proto = PROTO_W.sample(rng);
    if (proto <= 1) {
      const name = proto === 0 ? 'tcp' : 'udp';
      line += ' -p ' + name;
      const sp = portText(rng, SPORT_W.sample(rng));
      const multi = rng.chance(0.08);
      const dp = multi ? '' : portText(rng, DPORT_W.sample(rng));
      if (sp || dp) {
        line += ' -m ' + name;
        if (sp) line += ' --sport ' + sp;
        if (dp) line += ' --dport ' + dp;
      }
      if (multi) line += ' -m multiport --dports ' + multiportList(rng);
    } else if (proto === 2) {
      line += ' -p icmp';
      if (rng.chance(0.7)) line += ' -m icmp --icmp-type ' + rng.int(19);
    }

    if (rng.chance(0.05)) line += ' -m comment --comment "adv rule ' + i + '"';

    const a = ACTION_W.sample(rng);
    if (a === 0) line += ' -j ACCEPT';
    else if (a === 1) line += ' -j DROP';
    else if (proto === 0 && rng.chance(0.5)) line += ' -j REJECT --reject-with tcp-reset';
    else line += ' -j REJECT --reject-with icmp-port-unreachable';
    yield line;
  }
}
