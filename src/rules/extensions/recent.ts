// -m recent (libxt_recent.c, xt_recent.c revision 1): named tables of
// recently seen addresses. Native state: extensions/xt_recent.h. Tables
// have the kernel module's default sizes: ip_list_tot 100 entries,
// ip_pkt_list_tot 20 remembered times.
import { formatIPv4, formatIPv6, parseIPv4, parseIPv6 } from '../address';
import { Bytes } from './program';
import type { MatchExtension } from './registry';
import { uint } from './util';

const CMDS = ['--set', '--rcheck', '--update', '--remove'];
const LIST_TOT = 100;
const PKT_LIST_TOT = 20;

interface RecentOpts {
  cmd: number; // 1 set, 2 rcheck, 3 update, 4 remove; 0 unset
  not: boolean;
  seconds: number;
  reap: boolean;
  hitcount: number;
  rttl: boolean;
  name: string;
  mask?: number | bigint; // default all ones of the family
  dest: boolean;
}

export const recent: MatchExtension<RecentOpts> = {
  name: 'recent',
  create: () => ({ cmd: 0, not: false, seconds: 0, reap: false, hitcount: 0, rttl: false, name: 'DEFAULT', dest: false }),
  option(o, cx) {
    const t = cx.opt.text;
    const ci = CMDS.indexOf(t);
    if (ci !== -1) {
      if (o.cmd) cx.fail(cx.opt, '-m recent takes only one of --set, --rcheck, --update, --remove');
      o.not = cx.negated(true);
      o.cmd = ci + 1;
      return true;
    }
    switch (t) {
      case '--seconds': cx.once('seconds'); cx.negated(false); o.seconds = uint(cx, cx.value('seconds'), 0xffffffff, 'seconds'); return true;
      case '--reap': cx.once('reap'); cx.negated(false); o.reap = true; return true;
      case '--hitcount': cx.once('hitcount'); cx.negated(false); o.hitcount = uint(cx, cx.value('a count'), 0xffffffff, 'hitcount'); return true;
      case '--rttl': cx.once('rttl'); cx.negated(false); o.rttl = true; return true;
      case '--name': {
        cx.once('name');
        cx.negated(false);
        const v = cx.value('a table name');
        if (v.text.length === 0 || v.text.length > 199) cx.fail(v, 'recent table name must be 1-199 characters');
        o.name = v.text;
        return true;
      }
      case '--mask': {
        cx.once('mask');
        cx.negated(false);
        const v = cx.value('an address mask');
        if (v.text.includes(':')) {
          cx.setFamily(6, v);
          const m = parseIPv6(v.text);
          if (m === undefined) cx.fail(v, `invalid IPv6 mask "${v.text}"`);
          // All ones is the default (undefined): the model is the same with or without it.
          o.mask = m === (1n << 128n) - 1n ? undefined : m;
        } else {
          cx.setFamily(4, v);
          const m = parseIPv4(v.text);
          if (m === undefined) cx.fail(v, `invalid IPv4 mask "${v.text}"`);
          o.mask = m === 0xffffffff ? undefined : m;
        }
        return true;
      }
      case '--rsource': cx.negated(false); o.dest = false; return true;
      case '--rdest': cx.negated(false); o.dest = true; return true;
    }
    return false;
  },
  validate(o, cx) {
    // recent_mt_check's rules, with its messages' meaning.
    if (!o.cmd) cx.fail('-m recent requires one of --set, --rcheck, --update, --remove');
    if ((o.cmd === 1 || o.cmd === 4) && (o.seconds || o.hitcount || o.rttl || o.reap)) {
      cx.fail('--seconds, --hitcount, --rttl and --reap go only with --rcheck or --update');
    }
    if (o.reap && !o.seconds) cx.fail('--reap requires --seconds');
    if (o.hitcount > PKT_LIST_TOT) cx.fail(`--hitcount ${o.hitcount} is larger than the ${PKT_LIST_TOT} packets a table remembers`);
  },
  save(o, family) {
    let s = o.not ? ' !' : '';
    s += ` ${CMDS[o.cmd - 1]}`;
    if (o.seconds) s += ` --seconds ${o.seconds}`;
    if (o.reap) s += ' --reap';
    if (o.hitcount) s += ` --hitcount ${o.hitcount}`;
    if (o.rttl) s += ' --rttl';
    s += ` --name ${o.name}`;
    s += ` --mask ${maskText(o, family)}`;
    s += o.dest ? ' --rdest' : ' --rsource';
    return s;
  },
  list(o, family) {
    let s = ` recent:${o.not ? ' !' : ''} ${['SET', 'CHECK', 'UPDATE', 'REMOVE'][o.cmd - 1]}`;
    if (o.seconds) s += ` seconds: ${o.seconds}`;
    if (o.reap) s += ' reap';
    if (o.hitcount) s += ` hit_count: ${o.hitcount}`;
    if (o.rttl) s += ' TTL-Match';
    s += ` name: ${o.name}`;
    s += ` mask: ${maskText(o, family)}`;
    s += o.dest ? ' side: dest' : ' side: source';
    return s;
  },
  // The table is configured (its mask too) by the first rule naming it.
  declare(o, cx) {
    cx.state('recent', tableSpec(o, cx.family), `recent:${o.name}`);
  },
  compile(o, cx) {
    const state = cx.state('recent', tableSpec(o, cx.family), `recent:${o.name}`);
    // The mask is the table's (tableSpec), not the rule's.
    const p = new Bytes().u32(state).u8(o.cmd).u8((o.rttl ? 1 : 0) | (o.reap ? 2 : 0) | (o.dest ? 4 : 0)).u16(0)
      .u32(o.seconds).u32(o.hitcount);
    cx.op('recent', o.not, p);
  },
};

function maskWords(o: RecentOpts, family: 4 | 6): number[] {
  if (family === 4) return [o.mask === undefined ? 0xffffffff : Number(o.mask), 0, 0, 0];
  const m = o.mask === undefined ? (1n << 128n) - 1n : BigInt(o.mask);
  return [3, 2, 1, 0].map((i) => Number((m >> BigInt(32 * i)) & 0xffffffffn));
}

function tableSpec(o: RecentOpts, family: 4 | 6): Bytes {
  const b = new Bytes().u32(LIST_TOT).u32(PKT_LIST_TOT);
  for (const w of maskWords(o, family)) b.u32(w);
  return b.name(o.name);
}

function maskText(o: RecentOpts, family: 4 | 6): string {
  if (family === 4) return formatIPv4(o.mask === undefined ? 0xffffffff : Number(o.mask));
  return formatIPv6(o.mask === undefined ? (1n << 128n) - 1n : BigInt(o.mask));
}
