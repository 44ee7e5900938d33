// IPv6 extension headers and IPsec SPIs: -m ipv6header (libip6t_ipv6header.c),
// -m frag, -m hbh, -m dst, -m rt (libip6t_*.c and net/ipv6/netfilter/
// ip6t_*.c), and -m ah / -m esp for both families (libxt_esp.c, libipt_ah.c,
// libip6t_ah.c). Native: extensions/ipv6_headers.h.
import { Bytes } from './program';
import type { MatchExtension, OptionContext } from './registry';
import { range, uint, uintRange } from './util';

const HEADERS: [string[], number][] = [
  [['hop', 'hop-by-hop', '0'], 128], [['dst', 'ipv6-opts', '60'], 64], [['route', 'ipv6-route', '43'], 32],
  [['frag', 'ipv6-frag', '44'], 16], [['auth', 'ah', '51'], 8], [['esp', '50'], 4], [['none', 'ipv6-nonxt', '59'], 2], [['proto'], 1],
];
const SAVE_NAMES: [string, number][] = [
  ['hop-by-hop', 128], ['ipv6-opts', 64], ['ipv6-route', 32], ['ipv6-frag', 16], ['ah', 8], ['esp', 4], ['ipv6-nonxt', 2], ['protocol', 1],
];

interface HdrOpts { want: number; soft: boolean; not: boolean; set: boolean }
export const ipv6header: MatchExtension<HdrOpts> = {
  name: 'ipv6header',
  family: 6,
  create: () => ({ want: 0, soft: false, not: false, set: false }),
  option(o, cx) {
    if (cx.opt.text === '--soft') { cx.negated(false); o.soft = true; return true; }
    if (cx.opt.text !== '--header') return false;
    cx.once('header');
    o.not = cx.negated(true);
    const v = cx.value('a list of headers');
    for (const part of v.text.split(',')) {
      const h = HEADERS.find(([names]) => names.includes(part.toLowerCase()));
      if (!h) cx.fail(v, `unknown IPv6 header "${part}"`);
      o.want |= h![1];
    }
    o.set = true;
    return true;
  },
  validate(o, cx) { if (!o.set) cx.fail('-m ipv6header requires --header'); },
  save: (o) => `${o.not ? ' !' : ''} --header ${SAVE_NAMES.filter(([, b]) => o.want & b).map(([n]) => n).join(',')}${o.soft ? ' --soft' : ''}`,
  list: (o) => ` ipv6header: ${o.not ? '!' : ''}${SAVE_NAMES.filter(([, b]) => o.want & b).map(([n]) => n).join(',')}${o.soft ? ' soft' : ''}`,
  compile(o, cx) { cx.op('ipv6header', o.not, new Bytes().u8(o.want).u8(o.soft ? 1 : 0)); },
};

interface FragOpts { id?: [number, number]; idNot: boolean; first: boolean; more: boolean; last: boolean }
export const frag: MatchExtension<FragOpts> = {
  name: 'frag',
  family: 6,
  create: () => ({ idNot: false, first: false, more: false, last: false }),
  option(o, cx) {
    switch (cx.opt.text) {
      case '--fragid': cx.once('id'); o.idNot = cx.negated(true); o.id = uintRange(cx, cx.value('an id or range'), 0xffffffff, 'fragment id'); return true;
      case '--fragfirst': cx.negated(false); o.first = true; return true;
      case '--fragmore': cx.negated(false); o.more = true; return true;
      case '--fraglast': cx.negated(false); o.last = true; return true;
      case '--fraglen': case '--fragres': cx.fail(cx.opt, `${cx.opt.text} is not supported`);
    }
    return false;
  },
  save(o) {
    let s = '';
    if (o.id) s += `${o.idNot ? ' !' : ''} --fragid ${range(o.id[0], o.id[1])}`;
    if (o.first) s += ' --fragfirst';
    if (o.more) s += ' --fragmore';
    if (o.last) s += ' --fraglast';
    return s;
  },
  list(o) {
    let s = ' frag';
    if (o.id) s += ` id${o.id[0] === o.id[1] ? '' : 's'}:${o.idNot ? '!' : ''}${range(o.id[0], o.id[1])}`;
    if (o.first) s += ' first';
    if (o.more) s += ' more';
    if (o.last) s += ' last';
    return s;
  },
  compile(o, cx) {
    const fl = (o.first ? 1 : 0) | (o.more ? 2 : 0) | (o.last ? 4 : 0) | (o.id ? 8 : 0) | (o.idNot ? 16 : 0);
    cx.op('frag', false, new Bytes().u32(o.id?.[0] ?? 0).u32(o.id?.[1] ?? 0xffffffff).u8(fl));
  },
};

interface OptsOpts { len?: number; not: boolean }
function opts(name: 'hbh' | 'dst', hdr: number): MatchExtension<OptsOpts> {
  const lenOpt = `--${name}-len`;
  return {
    name,
    family: 6,
    create: () => ({ not: false }),
    option(o, cx) {
      if (cx.opt.text === `--${name}-opts`) cx.fail(cx.opt, `${cx.opt.text} is not supported`);
      if (cx.opt.text !== lenOpt) return false;
      cx.once('len');
      o.not = cx.negated(true);
      o.len = uint(cx, cx.value('a length'), 65535, 'length');
      return true;
    },
    save: (o) => (o.len === undefined ? '' : `${o.not ? ' !' : ''} ${lenOpt} ${o.len}`),
    list: (o) => ` ${name}${o.len === undefined ? '' : ` length:${o.not ? '!' : ''}${o.len}`}`,
    compile(o, cx) {
      cx.op('opts', false, new Bytes().u8(hdr).u8((o.len === undefined ? 0 : 1) | (o.not ? 2 : 0)).u16(o.len ?? 0));
    },
  };
}
export const hbh = opts('hbh', 0);
export const dst = opts('dst', 60);

interface RtOpts { type?: number; typeNot: boolean; len?: number; lenNot: boolean; segs?: [number, number]; segsNot: boolean }
export const rt: MatchExtension<RtOpts> = {
  name: 'rt',
  family: 6,
  create: () => ({ typeNot: false, lenNot: false, segsNot: false }),
  option(o, cx) {
    switch (cx.opt.text) {
      case '--rt-type': cx.once('type'); o.typeNot = cx.negated(true); o.type = uint(cx, cx.value('a type'), 255, 'routing type'); return true;
      case '--rt-len': cx.once('len'); o.lenNot = cx.negated(true); o.len = uint(cx, cx.value('a length'), 65535, 'length'); return true;
      case '--rt-segsleft': cx.once('segs'); o.segsNot = cx.negated(true); o.segs = uintRange(cx, cx.value('a number or range'), 255, 'segments left'); return true;
      case '--rt-0-res': case '--rt-0-addrs': case '--rt-0-not-strict': cx.fail(cx.opt, `${cx.opt.text} is not supported`);
    }
    return false;
  },
  save(o) {
    let s = '';
    if (o.type !== undefined) s += `${o.typeNot ? ' !' : ''} --rt-type ${o.type}`;
    if (o.segs) s += `${o.segsNot ? ' !' : ''} --rt-segsleft ${range(o.segs[0], o.segs[1])}`;
    if (o.len !== undefined) s += `${o.lenNot ? ' !' : ''} --rt-len ${o.len}`;
    return s;
  },
  list(o) {
    let s = ' rt';
    if (o.type !== undefined) s += ` type:${o.typeNot ? '!' : ''}${o.type}`;
    if (o.segs) s += ` segsleft${o.segs[0] === o.segs[1] ? '' : 's'}:${o.segsNot ? '!' : ''}${range(o.segs[0], o.segs[1])}`;
    if (o.len !== undefined) s += ` length:${o.lenNot ? '!' : ''}${o.len}`;
    return s;
  },
  compile(o, cx) {
    const fl = (o.type !== undefined ? 1 : 0) | (o.typeNot ? 2 : 0) | (o.len !== undefined ? 4 : 0) | (o.lenNot ? 8 : 0) |
      (o.segs ? 16 : 0) | (o.segsNot ? 32 : 0);
    cx.op('rt', false, new Bytes().u8(fl).u8(o.type ?? 0).u16(o.len ?? 0).u32(o.segs?.[0] ?? 0).u32(o.segs?.[1] ?? 255));
  },
};

interface SpiOpts { spi?: [number, number]; not: boolean }
function spi(name: 'ah' | 'esp', proto: number): MatchExtension<SpiOpts> {
  const opt = `--${name}spi`;
  return {
    name,
    create: () => ({ not: false }),
    option(o, cx: OptionContext) {
      if (cx.opt.text === '--ahlen' || cx.opt.text === '--ahres') cx.fail(cx.opt, `${cx.opt.text} is not supported`);
      if (cx.opt.text !== opt) return false;
      cx.once('spi');
      o.not = cx.negated(true);
      o.spi = uintRange(cx, cx.value('an SPI or range'), 0xffffffff, 'SPI');
      return true;
    },
    validate(o, cx) {
      // The kernel's ah/esp matches check the protocol themselves and are
      // registered with .proto (IPPROTO_AH/ESP): iptables requires -p.
      // (ip6t_ah alone is registered without a protocol.)
      if ((cx.family === 4 || name === 'esp') && !(cx.rule.proto && !cx.rule.proto.not && cx.rule.proto.v === proto)) {
        cx.fail(`-m ${name} requires -p ${name}`);
      }
    },
    save: (o) => (o.spi && !(o.spi[0] === 0 && o.spi[1] === 0xffffffff && !o.not) ? `${o.not ? ' !' : ''} ${opt} ${range(o.spi[0], o.spi[1])}` : ''),
    list: (o) => ` ${name} spi${o.spi && o.spi[0] !== o.spi[1] ? 's' : ''}:${o.not ? '!' : ''}${o.spi ? range(o.spi[0], o.spi[1]) : '0:4294967295'}`,
    compile(o, cx) {
      cx.op('spi', o.not, new Bytes().u8(proto).u8(0).u16(0).u32(o.spi?.[0] ?? 0).u32(o.spi?.[1] ?? 0xffffffff));
    },
  };
}
export const ah = spi('ah', 51);
export const esp = spi('esp', 50);
