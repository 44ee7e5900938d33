// -m connlimit (libxt_connlimit.c revision 1, net/netfilter/xt_connlimit.c):
// the number of connections whose packets reached this rule, per source
// (or destination) address ANDed with --connlimit-mask. Native:
// extensions/xt_connlimit.h, counting in conntrack/conncount.h.
//
// iptables keeps one flag: --connlimit-upto N is "not above N", and `!`
// turns one into the other, so iptables-save prints `! --connlimit-above 5`
// as `--connlimit-upto 5` (checked against iptables 1.8.9).
import { Bytes } from './program';
import type { MatchExtension } from './registry';
import { uint } from './util';

interface ConnlimitOpts {
  limit?: number;
  upto: boolean; // XT_CONNLIMIT_INVERT: matches while count <= limit
  mask?: number; // prefix length; default the family's full length
  daddr: boolean;
}

export const connlimit: MatchExtension<ConnlimitOpts> = {
  name: 'connlimit',
  create: () => ({ upto: false, daddr: false }),
  option(o, cx) {
    const t = cx.opt.text;
    switch (t) {
      case '--connlimit-upto':
      case '--connlimit-above': {
        if (o.limit !== undefined) cx.fail(cx.opt, '-m connlimit takes only one of --connlimit-upto, --connlimit-above');
        const not = cx.negated(true);
        o.limit = uint(cx, cx.value('a connection count'), 0xffffffff, 'connlimit');
        o.upto = (t === '--connlimit-upto') !== not;
        return true;
      }
      case '--connlimit-mask': {
        cx.once('connlimit-mask');
        cx.negated(false);
        o.mask = uint(cx, cx.value('a prefix length'), 128, 'connlimit-mask');
        return true;
      }
      case '--connlimit-saddr': cx.negated(false); o.daddr = false; return true;
      case '--connlimit-daddr': cx.negated(false); o.daddr = true; return true;
    }
    return false;
  },
  // The mask iptables-save prints when none was given: the family's full
  // length, in the model too (so print -> parse keeps it).
  finish(o, family) {
    o.mask ??= family === 4 ? 32 : 128;
  },
  validate(o, cx) {
    if (o.limit === undefined) cx.fail('-m connlimit requires --connlimit-above or --connlimit-upto');
    if (o.mask !== undefined && o.mask > (cx.family === 4 ? 32 : 128)) {
      cx.fail(`--connlimit-mask ${o.mask} is longer than an IPv${cx.family} address`);
    }
  },
  save(o, family) {
    return ` --connlimit-${o.upto ? 'upto' : 'above'} ${o.limit} --connlimit-mask ${prefix(o, family)}` +
      ` --connlimit-${o.daddr ? 'daddr' : 'saddr'}`;
  },
  list(o, family) {
    return ` #conn ${o.daddr ? 'dst' : 'src'}/${prefix(o, family)} ${o.upto ? '<=' : '>'} ${o.limit}`;
  },
  compile(o, cx) {
    // A counter per rule, kept across reloads while the rule is unchanged.
    const spec = new Bytes().u32(cx.family);
    for (const w of maskWords(prefix(o, cx.family))) spec.u32(w);
    const state = cx.state('connlimit', spec.name(cx.ruleKey));
    cx.op('connlimit', false, new Bytes().u32(state).u32(o.limit!).u8((o.daddr ? 1 : 0) | (o.upto ? 2 : 0)).u8(0).u16(0));
  },
};

function prefix(o: ConnlimitOpts, family: 4 | 6): number {
  return o.mask ?? (family === 4 ? 32 : 128);
}

/** A prefix length as four host-order words (IPv4 in word 0). */
function maskWords(plen: number): number[] {
  return [0, 1, 2, 3].map((i) => {
    const bits = Math.max(0, Math.min(32, plen - 32 * i));
    return bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  });
}
