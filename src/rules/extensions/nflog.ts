// -j NFLOG (libxt_NFLOG.c, net/netfilter/xt_NFLOG.c): log the packet to a
// netlink group. flatwall has no nfnetlink_log: the event goes to the log
// stream (as -j LOG's do) with its group and prefix, so an operator's
// ulogd-style filter can still tell the groups apart. Non-terminal.
import type { TargetExtension } from './targets';
import { uint } from './util';

interface NflogOpts {
  group: number;
  prefix?: string;
  range?: number;
  size?: number;
  threshold: number;
}

const quote = (s: string) => (/^[-_0-9A-Za-z]+$/.test(s) ? s : `"${s.replace(/["\\']/g, (c) => `\\${c}`)}"`);

export const nflog: TargetExtension<NflogOpts> = {
  name: 'NFLOG',
  action: 'LOG',
  create: () => ({ group: 0, threshold: 1 }),
  option(o, cx) {
    switch (cx.opt.text) {
      case '--nflog-group': cx.once('group'); cx.negated(false); o.group = uint(cx, cx.value('a group'), 65535, 'group'); return true;
      case '--nflog-prefix': {
        cx.once('prefix'); cx.negated(false);
        const v = cx.value('a prefix');
        if (v.text.length > 63) cx.fail(v, 'NFLOG prefix longer than 63 characters');
        o.prefix = v.text;
        return true;
      }
      case '--nflog-range': cx.once('range'); cx.negated(false); o.range = uint(cx, cx.value('a size'), 0xffffffff, 'range'); return true;
      case '--nflog-size': cx.once('size'); cx.negated(false); o.size = uint(cx, cx.value('a size'), 0xffffffff, 'size'); return true;
      case '--nflog-threshold': cx.once('threshold'); cx.negated(false); o.threshold = uint(cx, cx.value('a count'), 65535, 'threshold'); return true;
    }
    return false;
  },
  // nflog_print order (libxt_NFLOG.c): prefix, group, size/range, threshold.
  save(o) {
    let s = '';
    if (o.prefix !== undefined) s += ` --nflog-prefix ${quote(o.prefix)}`;
    if (o.group) s += ` --nflog-group ${o.group}`;
    if (o.size !== undefined) s += ` --nflog-size ${o.size}`;
    else if (o.range !== undefined) s += ` --nflog-range ${o.range}`;
    if (o.threshold !== 1) s += ` --nflog-threshold ${o.threshold}`;
    return s;
  },
  list(o) {
    let s = '';
    if (o.prefix !== undefined) s += ` nflog-prefix ${quote(o.prefix)}`;
    if (o.group) s += ` nflog-group ${o.group}`;
    if (o.size !== undefined) s += ` nflog-size ${o.size}`;
    else if (o.range !== undefined) s += ` nflog-range ${o.range}`;
    if (o.threshold !== 1) s += ` nflog-threshold ${o.threshold}`;
    return s;
  },
  logFields: (o) => ({ prefix: o.prefix ?? '', nflogGroup: o.group }),
};
