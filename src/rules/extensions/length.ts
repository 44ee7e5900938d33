// -m length (libxt_length.c, xt_length.c): the IP packet's length (IPv4
// total length; IPv6 payload length + 40), `--length N` or `lo:hi`.
import { Bytes } from './program';
import type { MatchExtension } from './registry';
import { range, uintRange } from './util';

interface LengthOpts {
  lo: number;
  hi: number;
  not: boolean;
  set: boolean;
}

export const length: MatchExtension<LengthOpts> = {
  name: 'length',
  create: () => ({ lo: 0, hi: 65535, not: false, set: false }),
  option(o, cx) {
    if (cx.opt.text !== '--length') return false;
    cx.once('length');
    o.not = cx.negated(true);
    [o.lo, o.hi] = uintRange(cx, cx.value('a length or range'), 65535, 'length');
    o.set = true;
    return true;
  },
  validate(o, cx) {
    if (!o.set) cx.fail('-m length requires --length');
  },
  save: (o) => `${o.not ? ' !' : ''} --length ${range(o.lo, o.hi)}`,
  list: (o) => ` length ${o.not ? '!' : ''}${range(o.lo, o.hi)}`,
  compile(o, cx) {
    cx.op('length', o.not, new Bytes().u16(o.lo).u16(o.hi));
  },
};
