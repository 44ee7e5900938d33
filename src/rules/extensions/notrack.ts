// -j NOTRACK and -j CT (libxt_CT.c; the kernel's net/netfilter/xt_CT.c):
// the raw table's targets. `CT --notrack` and `NOTRACK` both give the packet
// the untracked conntrack (nf_ct_set(skb, NULL, IP_CT_UNTRACKED)) and go on
// (XT_CONTINUE): conntrack then neither finds nor creates an entry for it,
// and the filter table sees `--ctstate UNTRACKED`. Both register with
// .table = "raw", so the kernel refuses them anywhere else.
//
// A bare `-j CT` attaches a template without helper, zone or timeouts: the
// packet is tracked as usual, but later raw rules see it as NEW, and a later
// NOTRACK does nothing (xt_ct_target and notrack_tg act only on a packet
// that has no conntrack yet, "Previously seen? Ignore.").
//
// `CT --helper NAME` is what shorewall writes for every helper it knows
// (test/corpus/shorewall/*): flatwall has no conntrack helpers, so it is
// loaded as that same template without the helper, and the operator is told
// once per file: the connection is tracked, but its related connections
// (an FTP data channel) are not expected, so they are NEW, not RELATED; and
// -m helper, which matches only such related connections (xt_helper.c:
// ct->master's helper), never matches, as without the CT rule. The other
// options (--zone*, --timeout, --ctevents, --expevents) change which entry
// a packet meets, when it expires, or what is reported: refused by name
// rather than silently ignored.
// The op: native/extensions/ext_table.h Op::kCt.
import { byName } from '../by-name';
import { Bytes } from './program';
import type { TargetExtension } from './targets';

interface CtOpts {
  notrack: boolean;
  helper?: string; // kept for printing; assigns nothing
}

const UNSUPPORTED: Record<string, string> = byName({
  '--zone': 'conntrack zones are not implemented (flatwall keeps one zone per port pair)',
  '--zone-orig': 'conntrack zones are not implemented (flatwall keeps one zone per port pair)',
  '--zone-reply': 'conntrack zones are not implemented (flatwall keeps one zone per port pair)',
  '--timeout': 'timeout policies are not implemented (use flatwall run --ct-timeout)',
  '--ctevents': 'conntrack events are not delivered by flatwall',
  '--expevents': 'conntrack events are not delivered by flatwall',
});

export const ct: TargetExtension<CtOpts> = {
  name: 'CT',
  action: 'COUNT',
  tables: ['raw'],
  create: () => ({ notrack: false }),
  option(o, cx) {
    if (cx.opt.text === '--notrack') {
      cx.once('notrack'); cx.negated(false);
      o.notrack = true;
      return true;
    }
    if (cx.opt.text === '--helper') {
      cx.once('helper'); cx.negated(false);
      const v = cx.value('a helper name');
      o.helper = v.text;
      return true;
    }
    const why = UNSUPPORTED[cx.opt.text];
    if (why) cx.fail(cx.opt, `CT ${cx.opt.text}: ${why}`);
    return false;
  },
  validate(o, cx) {
    // xt_ct_tg_check: with --notrack the helper is never looked at.
    if (o.helper !== undefined && !o.notrack) {
      cx.notice('CT --helper: flatwall has no conntrack helpers; these connections are tracked without one ' +
        '(their related connections are NEW, not RELATED, and -m helper never matches)');
    }
  },
  save: (o) => `${o.notrack ? ' --notrack' : ''}${o.helper !== undefined ? ` --helper ${o.helper}` : ''}`,
  list: (o) => ` CT${o.notrack ? ' notrack' : ''}${o.helper !== undefined ? ` helper ${o.helper}` : ''}`,
  compile(o, cx) {
    cx.op('ct', false, new Bytes().u8(o.notrack ? 0 : 1).pad4());
  },
};

export const notrack: TargetExtension<Record<string, never>> = {
  name: 'NOTRACK',
  listName: 'CT',
  action: 'COUNT',
  tables: ['raw'],
  create: () => ({}),
  option: () => false,
  save: () => '',
  list: () => ' NOTRACK',
  compile(_o, cx) {
    cx.op('ct', false, new Bytes().u8(0).pad4());
  },
};
