// The IPv4 TOS / IPv6 traffic class byte: -m tos (libxt_tos.c, xt_dscp.c
// tos_mt: (tos & mask) == value), -m dscp (libxt_dscp.c, xt_dscp.c: the
// upper six bits) and -m ecn (libxt_ecn.c, xt_ecn.c: the ECN field and
// TCP's ECE/CWR flags).
import { byName } from '../by-name';
import { Bytes } from './program';
import type { MatchExtension } from './registry';
import { uint } from './util';

const hex2 = (n: number) => `0x${n.toString(16).padStart(2, '0')}`;
const TOS_NAMES: Record<string, number> = byName({
  'minimize-delay': 0x10, 'maximize-throughput': 0x08, 'maximize-reliability': 0x04, 'minimize-cost': 0x02, 'normal-service': 0x00,
});
const DSCP_CLASSES: Record<string, number> = byName({
  CS0: 0, CS1: 8, CS2: 16, CS3: 24, CS4: 32, CS5: 40, CS6: 48, CS7: 56, BE: 0,
  AF11: 10, AF12: 12, AF13: 14, AF21: 18, AF22: 20, AF23: 22, AF31: 26, AF32: 28, AF33: 30, AF41: 34, AF42: 36, AF43: 38, EF: 46,
});

function num(s: string): number | undefined {
  if (/^0x[0-9a-fA-F]{1,2}$/.test(s)) return parseInt(s, 16);
  if (/^\d{1,3}$/.test(s)) return Number(s);
  return undefined;
}

interface TosOpts { value: number; mask: number; not: boolean; set: boolean }
export const tos: MatchExtension<TosOpts> = {
  name: 'tos',
  create: () => ({ value: 0, mask: 0xff, not: false, set: false }),
  option(o, cx) {
    if (cx.opt.text !== '--tos') return false;
    cx.once('tos');
    o.not = cx.negated(true);
    const v = cx.value('a TOS value');
    const named = TOS_NAMES[v.text.toLowerCase()];
    if (named !== undefined) {
      // A symbolic name compares the old TOS bits (mask 0x3f, xt_tos's parse).
      o.value = named, o.mask = 0x3f;
    } else {
      const [a, b] = v.text.split('/');
      const val = num(a);
      const mask = b === undefined ? 0xff : num(b);
      if (val === undefined || mask === undefined || val > 255 || mask > 255) cx.fail(v, `bad TOS value "${v.text}"`);
      o.value = val!, o.mask = mask!;
    }
    o.set = true;
    return true;
  },
  validate(o, cx) {
    if (!o.set) cx.fail('-m tos requires --tos');
  },
  save: (o) => `${o.not ? ' !' : ''} --tos ${hex2(o.value)}/${hex2(o.mask)}`,
  list: (o) => ` tos match${o.not ? '!' : ''}${hex2(o.value)}/${hex2(o.mask)}`,
  compile(o, cx) {
    cx.op('tos', o.not, new Bytes().u8(o.value & o.mask).u8(o.mask));
  },
};

interface DscpOpts { dscp: number; not: boolean; set: boolean }
export const dscp: MatchExtension<DscpOpts> = {
  name: 'dscp',
  create: () => ({ dscp: 0, not: false, set: false }),
  option(o, cx) {
    if (cx.opt.text !== '--dscp' && cx.opt.text !== '--dscp-class') return false;
    cx.once('dscp');
    o.not = cx.negated(true);
    const v = cx.value(cx.opt.text === '--dscp' ? 'a DSCP value' : 'a DSCP class');
    const d = cx.opt.text === '--dscp' ? num(v.text) : DSCP_CLASSES[v.text.toUpperCase()];
    if (d === undefined || d > 63) cx.fail(v, `bad DSCP "${v.text}" (0-63 or a class such as EF, AF41, CS1)`);
    o.dscp = d!;
    o.set = true;
    return true;
  },
  validate(o, cx) {
    if (!o.set) cx.fail('-m dscp requires --dscp or --dscp-class');
  },
  save: (o) => `${o.not ? ' !' : ''} --dscp ${hex2(o.dscp)}`,
  list: (o) => ` DSCP match ${o.not ? '!' : ''}${hex2(o.dscp)}`,
  compile(o, cx) {
    cx.op('dscp', o.not, new Bytes().u8(o.dscp));
  },
};

// EcnBits of native/extensions/header_matches.h.
const ECE = 1, INV_ECE = 2, CWR = 4, INV_CWR = 8, IP = 16, INV_IP = 32;
interface EcnOpts { ops: number; ect: number }
export const ecn: MatchExtension<EcnOpts> = {
  name: 'ecn',
  create: () => ({ ops: 0, ect: 0 }),
  option(o, cx) {
    switch (cx.opt.text) {
      case '--ecn-tcp-cwr': cx.once('cwr'); o.ops |= CWR | (cx.negated(true) ? INV_CWR : 0); return true;
      case '--ecn-tcp-ece': cx.once('ece'); o.ops |= ECE | (cx.negated(true) ? INV_ECE : 0); return true;
      case '--ecn-ip-ect': {
        cx.once('ect');
        o.ops |= IP | (cx.negated(true) ? INV_IP : 0);
        o.ect = uint(cx, cx.value('an ECT value (0-3)'), 3, 'ECT');
        return true;
      }
    }
    return false;
  },
  validate(o, cx) {
    if (!o.ops) cx.fail('-m ecn requires --ecn-tcp-cwr, --ecn-tcp-ece or --ecn-ip-ect');
    if ((o.ops & (ECE | CWR)) && !(cx.rule.proto && !cx.rule.proto.not && cx.rule.proto.v === 6)) {
      cx.fail('-m ecn --ecn-tcp-* requires -p tcp');
    }
  },
  save(o) {
    let s = '';
    if (o.ops & ECE) s += `${o.ops & INV_ECE ? ' !' : ''} --ecn-tcp-ece`;
    if (o.ops & CWR) s += `${o.ops & INV_CWR ? ' !' : ''} --ecn-tcp-cwr`;
    if (o.ops & IP) s += `${o.ops & INV_IP ? ' !' : ''} --ecn-ip-ect ${o.ect}`;
    return s;
  },
  list(o) {
    let s = ' ECN match';
    if (o.ops & ECE) s += `${o.ops & INV_ECE ? ' !' : ''} ECE`;
    if (o.ops & CWR) s += `${o.ops & INV_CWR ? ' !' : ''} CWR`;
    if (o.ops & IP) s += `${o.ops & INV_IP ? ' !' : ''} ECT=${o.ect}`;
    return s;
  },
  compile(o, cx) {
    cx.op('ecn', false, new Bytes().u8(o.ops).u8(o.ect));
  },
};
