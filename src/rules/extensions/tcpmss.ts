// -j TCPMSS (libxt_TCPMSS.c, net/netfilter/xt_TCPMSS.c): lower the MSS
// option of TCP SYNs, --set-mss N or --clamp-mss-to-pmtu. Non-terminal.
// What is rewritten and how: native/extensions/xt_tcpmss.h.
import { Bytes } from './program';
import type { TargetExtension } from './targets';
import { uint } from './util';

interface TcpmssOpts {
  mss?: number;
  clamp: boolean;
}

export const tcpmss: TargetExtension<TcpmssOpts> = {
  name: 'TCPMSS',
  action: 'COUNT',
  create: () => ({ clamp: false }),
  option(o, cx) {
    if (cx.opt.text === '--set-mss') {
      cx.once('mss'); cx.negated(false);
      if (o.clamp) cx.fail(cx.opt, 'TCPMSS takes only one of --set-mss, --clamp-mss-to-pmtu');
      o.mss = uint(cx, cx.value('an MSS'), 65535, 'MSS');
      if (o.mss === 0) cx.fail(cx.opt, 'MSS must be at least 1');
      return true;
    }
    if (cx.opt.text === '--clamp-mss-to-pmtu') {
      cx.negated(false);
      if (o.mss !== undefined) cx.fail(cx.opt, 'TCPMSS takes only one of --set-mss, --clamp-mss-to-pmtu');
      o.clamp = true;
      return true;
    }
    return false;
  },
  validate(o, cx) {
    if (o.mss === undefined && !o.clamp) cx.fail('TCPMSS requires --set-mss or --clamp-mss-to-pmtu');
    // tcpmss_tg4_check: "Only works on TCP SYN packets".
    const r = cx.rule;
    const tcp = r.matches.find((m) => m.module === 'tcp');
    const syn = tcp && tcp.module === 'tcp' && tcp.flags && !tcp.flags.not && (tcp.flags.v.mask & 0x02) && (tcp.flags.v.comp & 0x02);
    if (!(r.proto && !r.proto.not && r.proto.v === 6) || !syn) {
      cx.fail('TCPMSS is only valid for TCP SYN packets: use -p tcp --tcp-flags SYN,RST SYN');
    }
  },
  save: (o) => (o.clamp ? ' --clamp-mss-to-pmtu' : ` --set-mss ${o.mss}`),
  list: (o) => (o.clamp ? ' TCPMSS clamp to PMTU' : ` TCPMSS set ${o.mss}`),
  compile(o, cx) {
    cx.op('tcpmss', false, new Bytes().u16(o.clamp ? 0 : o.mss!));
  },
};
