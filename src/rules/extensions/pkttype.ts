// -m pkttype (libxt_pkttype.c, xt_pkttype.c): unicast, broadcast or
// multicast by the frame's destination MAC (see header_matches.h PktType).
import { Bytes } from './program';
import type { MatchExtension } from './registry';

const TYPES = ['unicast', 'broadcast', 'multicast'];
interface PktOpts {
  type: number;
  not: boolean;
}

export const pkttype: MatchExtension<PktOpts> = {
  name: 'pkttype',
  create: () => ({ type: -1, not: false }),
  option(o, cx) {
    if (cx.opt.text !== '--pkt-type') return false;
    cx.once('pkt-type');
    o.not = cx.negated(true);
    const v = cx.value('a packet type');
    const i = TYPES.indexOf(v.text.toLowerCase());
    if (i === -1) cx.fail(v, `bad packet type "${v.text}" (unicast, broadcast or multicast)`);
    o.type = i;
    return true;
  },
  validate(o, cx) {
    if (o.type === -1) cx.fail('-m pkttype requires --pkt-type');
  },
  save: (o) => `${o.not ? ' !' : ''} --pkt-type ${TYPES[o.type]}`,
  list: (o) => ` PKTTYPE ${o.not ? '!' : ''}= ${TYPES[o.type]}`,
  compile(o, cx) {
    cx.op('pkttype', o.not, new Bytes().u8(o.type));
  },
};
