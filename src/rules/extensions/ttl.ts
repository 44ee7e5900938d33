// -m ttl (libipt_ttl.c, xt_ttl.c) and -m hl (libip6t_hl.c, ip6t_hl.c):
// compare the TTL / hop limit. In FORWARD the kernel has already
// decremented it (ip_forward, ip6_forward), and so does what a FORWARD rule
// sees here (native/extensions/header_matches.h HopLimit).
import { Bytes } from './program';
import type { MatchExtension } from './registry';
import { uint } from './util';

interface TtlOpts {
  mode: number; // 0 eq, 1 ne, 2 lt, 3 gt; -1 unset
  value: number;
}

function make(name: 'ttl' | 'hl', family: 4 | 6): MatchExtension<TtlOpts> {
  const OPTS = [`--${name}-eq`, `--${name}-lt`, `--${name}-gt`];
  const label = name === 'ttl' ? 'TTL' : 'HL';
  return {
    name,
    family,
    create: () => ({ mode: -1, value: 0 }),
    option(o, cx) {
      const i = OPTS.indexOf(cx.opt.text);
      if (i === -1) return false;
      if (o.mode !== -1) cx.fail(cx.opt, `-m ${name} takes only one of ${OPTS.join(', ')}`);
      const not = cx.negated(i === 0);
      o.value = uint(cx, cx.value('a value'), 255, label);
      o.mode = i === 0 ? (not ? 1 : 0) : i + 1;
      return true;
    },
    validate(o, cx) {
      if (o.mode === -1) cx.fail(`-m ${name} requires ${OPTS.join(', ')}`);
    },
    save: (o) => (o.mode === 1 ? ` ! ${OPTS[0]} ${o.value}` : ` ${OPTS[o.mode === 0 ? 0 : o.mode - 1]} ${o.value}`),
    list: (o) => ` ${label} ${['match', 'match', 'match', 'match'][o.mode]} ${label} ${['==', '!=', '<', '>'][o.mode]} ${o.value}`,
    compile(o, cx) {
      cx.op('ttl', false, new Bytes().u8(o.mode).u8(o.value));
    },
  };
}

export const ttl = make('ttl', 4);
export const hl = make('hl', 6);
