// -m limit (libxt_limit.c, net/netfilter/xt_limit.c): a token bucket per
// rule, `--limit N/unit` (default 3/hour) refilled, `--limit-burst` deep
// (default 5, at most 10000), starting full. Native: extensions/xt_limit.h.
import { Bytes } from './program';
import type { MatchExtension, OptionContext, Tok } from './registry';
import { uint } from './util';

/** XT_LIMIT_SCALE: rates are kept as 1/10000 s per packet, as the kernel does. */
export const LIMIT_SCALE = 10000;
const UNITS: [string, number][] = [['second', 1], ['minute', 60], ['hour', 3600], ['day', 86400]];

export interface LimitOpts {
  avg: number; // seconds per packet * LIMIT_SCALE
  burst: number;
}

/** libxt_limit parse_rate: "N/unit" where unit is any prefix of second/minute/hour/day. */
export function parseRate(cx: OptionContext, tok: Tok, scale: number): number {
  const m = /^(\d+)(?:\/([a-zA-Z]+))?$/.exec(tok.text);
  let mult = 1;
  if (m && m[2] !== undefined) {
    const u = UNITS.find(([name]) => name.startsWith(m[2].toLowerCase()));
    if (!u) cx.fail(tok, `bad rate "${tok.text}": unit must be second, minute, hour or day`);
    mult = u[1];
  }
  const r = m ? Number(m[1]) : 0;
  if (!m || r === 0) cx.fail(tok, `bad rate "${tok.text}", expected N/second, N/minute, N/hour or N/day`);
  const v = Math.floor((scale * mult) / r);
  if (v === 0) cx.fail(tok, `rate too fast "${tok.text}"`);
  return v;
}

/** libxt_limit print_rate: the largest unit that divides evenly enough. */
export function printRate(period: number, scale: number): string {
  const rates: [string, number][] = [['day', scale * 86400], ['hour', scale * 3600], ['min', scale * 60], ['sec', scale]];
  let i = 1;
  for (; i < rates.length; i++) {
    if (period > rates[i][1] || Math.floor(rates[i][1] / period) < rates[i][1] % period) break;
  }
  return `${Math.floor(rates[i - 1][1] / period)}/${rates[i - 1][0]}`;
}

export const limit: MatchExtension<LimitOpts> = {
  name: 'limit',
  create: () => ({ avg: Math.floor((LIMIT_SCALE * 3600) / 3), burst: 5 }),
  option(o, cx) {
    const t = cx.opt.text;
    if (t === '--limit') {
      cx.once('limit');
      cx.negated(false);
      o.avg = parseRate(cx, cx.value('a rate'), LIMIT_SCALE);
      return true;
    }
    if (t === '--limit-burst') {
      cx.once('limit-burst');
      cx.negated(false);
      o.burst = uint(cx, cx.value('a number'), 10000, 'burst');
      if (o.burst === 0) cx.fail(cx.opt, 'burst must be at least 1');
      return true;
    }
    return false;
  },
  save: (o) => ` --limit ${printRate(o.avg, LIMIT_SCALE)}${o.burst !== 5 ? ` --limit-burst ${o.burst}` : ''}`,
  list: (o) => ` limit: avg ${printRate(o.avg, LIMIT_SCALE)} burst ${o.burst}`,
  compile(o, cx) {
    // interval in ns = avg / LIMIT_SCALE s; the key is the rule's identity.
    const s = cx.state('limit', new Bytes().u64(BigInt(o.avg) * 100000n).u32(o.burst).name(cx.ruleKey));
    cx.op('limit', false, new Bytes().u32(s));
  },
};
