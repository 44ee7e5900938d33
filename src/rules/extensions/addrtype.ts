// -m addrtype (libxt_addrtype.c, xt_addrtype.c revision 1): the address
// type of the source and/or destination. Which types can hold without a
// routing table, and what host mode adds, is in
// native/extensions/addrtype.h.
import { Bytes } from './program';
import type { MatchExtension, OptionContext } from './registry';

// XT_ADDRTYPE_*: 1 << RTN_*.
export const ADDR_TYPES = [
  'UNSPEC', 'UNICAST', 'LOCAL', 'BROADCAST', 'ANYCAST', 'MULTICAST', 'BLACKHOLE', 'UNREACHABLE', 'PROHIBIT', 'THROW', 'NAT', 'XRESOLVE',
];

interface AddrTypeOpts {
  src: number;
  dst: number;
  flags: number; // 1 invert src, 2 invert dst, 4 limit-iface-in, 8 limit-iface-out
}

function types(cx: OptionContext): number {
  const v = cx.value('a list of address types');
  let mask = 0;
  for (const part of v.text.split(',')) {
    const i = ADDR_TYPES.indexOf(part.toUpperCase());
    if (i === -1) cx.fail(v, `unknown address type "${part}"`);
    mask |= 1 << i;
  }
  return mask;
}
const names = (mask: number) => ADDR_TYPES.filter((_, i) => mask & (1 << i)).join(',');

export const addrtype: MatchExtension<AddrTypeOpts> = {
  name: 'addrtype',
  create: () => ({ src: 0, dst: 0, flags: 0 }),
  option(o, cx) {
    switch (cx.opt.text) {
      case '--src-type':
        cx.once('src');
        if (cx.negated(true)) o.flags |= 1;
        o.src = types(cx);
        return true;
      case '--dst-type':
        cx.once('dst');
        if (cx.negated(true)) o.flags |= 2;
        o.dst = types(cx);
        return true;
      case '--limit-iface-in':
        cx.negated(false);
        if (o.flags & 8) cx.fail(cx.opt, '--limit-iface-in and --limit-iface-out are exclusive');
        o.flags |= 4;
        return true;
      case '--limit-iface-out':
        cx.negated(false);
        if (o.flags & 4) cx.fail(cx.opt, '--limit-iface-in and --limit-iface-out are exclusive');
        o.flags |= 8;
        return true;
    }
    return false;
  },
  validate(o, cx) {
    if (!o.src && !o.dst) cx.fail('-m addrtype requires --src-type or --dst-type');
  },
  save(o) {
    let s = '';
    if (o.src) s += `${o.flags & 1 ? ' !' : ''} --src-type ${names(o.src)}`;
    if (o.dst) s += `${o.flags & 2 ? ' !' : ''} --dst-type ${names(o.dst)}`;
    if (o.flags & 4) s += ' --limit-iface-in';
    if (o.flags & 8) s += ' --limit-iface-out';
    return s;
  },
  list(o) {
    let s = ' ADDRTYPE match';
    if (o.src) s += ` src-type ${o.flags & 1 ? '!' : ''}${names(o.src)}`;
    if (o.dst) s += ` dst-type ${o.flags & 2 ? '!' : ''}${names(o.dst)}`;
    if (o.flags & 4) s += ' limit-in';
    if (o.flags & 8) s += ' limit-out';
    return s;
  },
  compile(o, cx) {
    cx.op('addrtype', false, new Bytes().u16(o.src).u16(o.dst).u8(o.flags));
  },
};
