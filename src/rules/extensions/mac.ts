// -m mac (libxt_mac.c, xt_mac.c): the Ethernet source address.
import { Bytes } from './program';
import type { MatchExtension } from './registry';

interface MacOpts {
  mac?: number[];
  not: boolean;
}
const hex = (b: number) => b.toString(16).padStart(2, '0');

export const mac: MatchExtension<MacOpts> = {
  name: 'mac',
  create: () => ({ not: false }),
  option(o, cx) {
    if (cx.opt.text !== '--mac-source') return false;
    cx.once('mac-source');
    o.not = cx.negated(true);
    const v = cx.value('a MAC address');
    const parts = v.text.split(':');
    if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{1,2}$/.test(p))) cx.fail(v, `bad MAC address "${v.text}"`);
    o.mac = parts.map((p) => parseInt(p, 16));
    return true;
  },
  validate(o, cx) {
    if (!o.mac) cx.fail('-m mac requires --mac-source');
  },
  save: (o) => `${o.not ? ' !' : ''} --mac-source ${o.mac!.map(hex).join(':')}`,
  list: (o) => ` MAC${o.not ? ' !' : ''} ${o.mac!.map(hex).join(':')}`,
  compile(o, cx) {
    cx.op('mac', o.not, new Bytes().raw(o.mac!));
  },
};
