// -m helper (libxt_helper.c, xt_helper.c): the conntrack helper assigned to
// the connection. flatwall assigns no helpers (the kernel assigns none
// either unless CT --helper rules in the raw table ask, which Debian's
// defaults no longer do: nf_conntrack_helper=0), so `--helper NAME` never
// matches and `! --helper NAME` always does. docs/EXTENSIONS.md says so.
import { Bytes } from './program';
import type { MatchExtension } from './registry';

interface HelperOpts {
  name?: string;
  not: boolean;
}

export const helper: MatchExtension<HelperOpts> = {
  name: 'helper',
  create: () => ({ not: false }),
  option(o, cx) {
    if (cx.opt.text !== '--helper') return false;
    cx.once('helper');
    o.not = cx.negated(true);
    const v = cx.value('a helper name');
    if (v.text.length > 29) cx.fail(v, 'helper name longer than 29 characters');
    o.name = v.text;
    return true;
  },
  validate(o, cx) {
    if (o.name === undefined) cx.fail('-m helper requires --helper');
  },
  save: (o) => `${o.not ? ' !' : ''} --helper ${quote(o.name!)}`,
  list: (o) => ` helper match ${o.not ? '! ' : ''}"${o.name}"`,
  compile(o, cx) {
    cx.op('never', o.not, new Bytes());
  },
};

function quote(s: string): string {
  return /^[-_0-9A-Za-z]+$/.test(s) ? s : `"${s.replace(/["\\']/g, (c) => `\\${c}`)}"`;
}
