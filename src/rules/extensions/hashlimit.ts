// -m hashlimit (libxt_hashlimit.c revision 3, xt_hashlimit.c): token buckets
// per key in a table named by --hashlimit-name. Native state and the
// kernel semantics kept: extensions/xt_hashlimit.h.
import { Bytes } from './program';
import type { MatchExtension, OptionContext, Tok } from './registry';
import { parseRate, printRate } from './limit';
import { uint } from './util';

/** XT_HASHLIMIT_SCALE_v2: revision 2+ rates in 1/1,000,000 s per packet. */
const SCALE = 1000000;
const MAX_SIZE = 1048576;
const MODES: [string, number][] = [['srcip', 4], ['srcport', 8], ['dstip', 1], ['dstport', 2]];
const BYTE_UNITS: [string, number][] = [['mb', 1 << 20], ['kb', 1 << 10], ['b', 1]];

interface HashlimitOpts {
  above: boolean;
  avg: number;        // packets: SCALE-units per packet; bytes: bytes per second
  bytes: boolean;
  burst?: number;
  mode: number;
  name?: string;
  size: number;       // 0: the kernel's default
  max: number;
  gc: number;
  expire: number;
  srcmask?: number;
  dstmask?: number;
  rateSet: boolean;
}

function parseAmount(cx: OptionContext, tok: Tok, o: HashlimitOpts): void {
  const b = /^(\d+)(mb|kb|b)\/s$/i.exec(tok.text);
  if (b) {
    const mult = BYTE_UNITS.find(([u]) => u === b[2].toLowerCase())![1];
    const v = Number(b[1]) * mult;
    if (v === 0) cx.fail(tok, `bad byte rate "${tok.text}"`);
    o.bytes = true;
    o.avg = v;
    return;
  }
  o.avg = parseRate(cx, tok, SCALE);
}

function bytesText(v: number): string {
  for (const [u, m] of BYTE_UNITS) if (v >= m && v % m === 0) return `${v / m}${u}/s`;
  return `${v}b/s`;
}

export const hashlimit: MatchExtension<HashlimitOpts> = {
  name: 'hashlimit',
  create: () => ({ above: false, avg: 0, bytes: false, mode: 0, size: 0, max: 0, gc: 1000, expire: 10000, rateSet: false }),
  option(o, cx) {
    const t = cx.opt.text;
    switch (t) {
      case '--hashlimit': case '--hashlimit-upto': case '--hashlimit-above':
        if (o.rateSet) cx.fail(cx.opt, '-m hashlimit takes only one of --hashlimit-upto, --hashlimit-above');
        cx.negated(false);
        o.above = t === '--hashlimit-above';
        parseAmount(cx, cx.value('a rate'), o);
        o.rateSet = true;
        return true;
      case '--hashlimit-burst':
        cx.once('burst'); cx.negated(false);
        o.burst = uint(cx, cx.value('a burst'), 0xffffffff, 'burst');
        if (o.burst === 0) cx.fail(cx.opt, 'burst must be at least 1');
        return true;
      case '--hashlimit-mode': {
        cx.once('mode'); cx.negated(false);
        const v = cx.value('a mode list');
        for (const part of v.text.split(',')) {
          const m = MODES.find(([n]) => n === part);
          if (!m) cx.fail(v, `unknown hashlimit mode "${part}" (srcip, srcport, dstip, dstport)`);
          o.mode |= m![1];
        }
        return true;
      }
      case '--hashlimit-name': {
        cx.once('name'); cx.negated(false);
        const v = cx.value('a table name');
        if (v.text.length === 0 || v.text.length > 255) cx.fail(v, 'hashlimit name must be 1-255 characters');
        o.name = v.text;
        return true;
      }
      case '--hashlimit-srcmask': case '--hashlimit-dstmask': {
        cx.once(t); cx.negated(false);
        const v = uint(cx, cx.value('a prefix length'), cx.family() === 4 ? 32 : 128, 'prefix length');
        if (t === '--hashlimit-srcmask') o.srcmask = v;
        else o.dstmask = v;
        return true;
      }
      // HASHLIMIT_MAX_SIZE (1048576) bounds both, as the kernel's check does.
      case '--hashlimit-htable-size': cx.once(t); cx.negated(false); o.size = uint(cx, cx.value('a size'), MAX_SIZE, 'size'); return true;
      case '--hashlimit-htable-max': cx.once(t); cx.negated(false); o.max = uint(cx, cx.value('a size'), MAX_SIZE, 'max'); return true;
      case '--hashlimit-htable-gcinterval': cx.once(t); cx.negated(false); o.gc = uint(cx, cx.value('milliseconds'), 0xffffffff, 'gcinterval'); return true;
      case '--hashlimit-htable-expire': cx.once(t); cx.negated(false); o.expire = uint(cx, cx.value('milliseconds'), 0xffffffff, 'expire'); return true;
      case '--hashlimit-rate-match': case '--hashlimit-rate-interval':
        cx.fail(cx.opt, `${t} is not supported`);
    }
    return false;
  },
  validate(o, cx) {
    if (!o.rateSet) cx.fail('-m hashlimit requires --hashlimit-upto or --hashlimit-above');
    if (!o.name) cx.fail('-m hashlimit requires --hashlimit-name');
    if (o.expire === 0) cx.fail('--hashlimit-htable-expire must be at least 1');
    // A packet rate's burst is 5 unless given (iptables-save prints it either
    // way): the model holds it, so parse(print(x)) is x.
    if (!o.bytes && o.burst === undefined) o.burst = 5;
  },
  save(o, family) {
    const dmask = family === 4 ? 32 : 128;
    let s = o.above ? ' --hashlimit-above' : ' --hashlimit-upto';
    s += ` ${o.bytes ? bytesText(o.avg) : printRate(o.avg, SCALE)}`;
    // iptables 1.8.9 prints the burst of a packet rate always, of a byte rate when given.
    if (!o.bytes) s += ` --hashlimit-burst ${o.burst ?? 5}`;
    else if (o.burst !== undefined) s += ` --hashlimit-burst ${o.burst}`;
    if (o.mode) s += ` --hashlimit-mode ${MODES.filter(([, b]) => o.mode & b).map(([n]) => n).join(',')}`;
    s += ` --hashlimit-name ${o.name}`;
    if (o.size) s += ` --hashlimit-htable-size ${o.size}`;
    if (o.max) s += ` --hashlimit-htable-max ${o.max}`;
    if (o.gc !== 1000) s += ` --hashlimit-htable-gcinterval ${o.gc}`;
    if (o.expire !== 10000) s += ` --hashlimit-htable-expire ${o.expire}`;
    if (o.srcmask !== undefined && o.srcmask !== dmask) s += ` --hashlimit-srcmask ${o.srcmask}`;
    if (o.dstmask !== undefined && o.dstmask !== dmask) s += ` --hashlimit-dstmask ${o.dstmask}`;
    return s;
  },
  list(o, family) {
    const dmask = family === 4 ? 32 : 128;
    let s = ` limit: ${o.above ? 'above' : 'up to'} ${o.bytes ? bytesText(o.avg) : printRate(o.avg, SCALE)} burst ${o.burst ?? 5}`;
    if (o.mode) s += ` mode ${MODES.filter(([, b]) => o.mode & b).map(([n]) => n).join('-')}`;
    if (o.size) s += ` htable-size ${o.size}`;
    if (o.max) s += ` htable-max ${o.max}`;
    if (o.gc !== 1000) s += ` htable-gcinterval ${o.gc}`;
    if (o.expire !== 10000) s += ` htable-expire ${o.expire}`;
    if (o.srcmask !== undefined && o.srcmask !== dmask) s += ` srcmask ${o.srcmask}`;
    if (o.dstmask !== undefined && o.dstmask !== dmask) s += ` dstmask ${o.dstmask}`;
    return s;
  },
  // The table is configured by the first rule naming it (htable_find_get).
  declare(o, cx) {
    cx.state('hashlimit', tableSpec(o, cx.family), `hashlimit:${cx.family}:${o.name}`);
  },
  compile(o, cx) {
    const state = cx.state('hashlimit', tableSpec(o, cx.family), `hashlimit:${cx.family}:${o.name}`);
    cx.op('hashlimit', false, new Bytes().u32(state).u8(o.above ? 1 : 0));
  },
};

function tableSpec(o: HashlimitOpts, family: 4 | 6): Bytes {
  {
    const full = family === 4 ? 32 : 128;
    // htable_create's defaults on a machine with more than 1 GiB.
    const size = o.size || 8192;
    // htable_create: max defaults to 8 x size and is never below size.
    const max = Math.min(MAX_SIZE, o.max ? Math.max(o.max, size) : 8 * size);
    // Packets: avg/SCALE s = avg us per packet. Bytes: 1e12 ps / bytes per second.
    const intervalPs = o.bytes ? BigInt(Math.max(1, Math.floor(1e12 / o.avg))) : BigInt(o.avg) * 1000000n;
    const burst = BigInt(o.burst ?? (o.bytes ? o.avg : 5));
    return new Bytes().u64(intervalPs).u64(burst).u32(o.mode).u32(max).u32(o.expire).u32(o.gc)
      .u8(o.srcmask ?? full).u8(o.dstmask ?? full).u8(family).u8(o.bytes ? 1 : 0).u32(0).name(o.name!);
  }
}
