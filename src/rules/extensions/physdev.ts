// -m physdev (libxt_physdev.c, xt_physdev.c): the bridge ports of a
// bridged frame. flatwall is a bump in the wire between two ports, so every
// frame is bridged, --physdev-in/--physdev-out are its ingress and egress
// port (the same classes -i/-o use) and --physdev-is-in/-is-out/-is-bridged
// always hold.
import type { MatchExtension, OptionContext } from './registry';

interface PhysOpts {
  in?: { name: string; wildcard: boolean; not: boolean };
  out?: { name: string; wildcard: boolean; not: boolean };
  isIn?: boolean; // value = negated
  isOut?: boolean;
  isBridged?: boolean;
}

function iface(cx: OptionContext) {
  const not = cx.negated(true);
  const v = cx.value('an interface name');
  if (v.text.length === 0 || v.text.length > 15) cx.fail(v, `interface name "${v.text}" must be 1-15 characters`);
  const wildcard = v.text.endsWith('+');
  return { name: wildcard ? v.text.slice(0, -1) : v.text, wildcard, not };
}
const name = (i: { name: string; wildcard: boolean }) => i.name + (i.wildcard ? '+' : '');

export const physdev: MatchExtension<PhysOpts> = {
  name: 'physdev',
  create: () => ({}),
  option(o, cx) {
    switch (cx.opt.text) {
      case '--physdev-in': cx.once('in'); o.in = iface(cx); return true;
      case '--physdev-out': cx.once('out'); o.out = iface(cx); return true;
      case '--physdev-is-in': cx.once('is-in'); o.isIn = cx.negated(true); return true;
      case '--physdev-is-out': cx.once('is-out'); o.isOut = cx.negated(true); return true;
      case '--physdev-is-bridged': cx.once('is-bridged'); o.isBridged = cx.negated(true); return true;
    }
    return false;
  },
  validate(o, cx) {
    if (!o.in && !o.out && o.isIn === undefined && o.isOut === undefined && o.isBridged === undefined) {
      cx.fail('-m physdev requires at least one option');
    }
  },
  save(o) {
    let s = '';
    if (o.in) s += `${o.in.not ? ' !' : ''} --physdev-in ${name(o.in)}`;
    if (o.isIn !== undefined) s += `${o.isIn ? ' !' : ''} --physdev-is-in`;
    if (o.out) s += `${o.out.not ? ' !' : ''} --physdev-out ${name(o.out)}`;
    if (o.isOut !== undefined) s += `${o.isOut ? ' !' : ''} --physdev-is-out`;
    if (o.isBridged !== undefined) s += `${o.isBridged ? ' !' : ''} --physdev-is-bridged`;
    return s;
  },
  list(o) {
    let s = ' PHYSDEV match';
    if (o.in) s += `${o.in.not ? ' !' : ''} --physdev-in ${name(o.in)}`;
    if (o.isIn !== undefined) s += `${o.isIn ? ' !' : ''} --physdev-is-in`;
    if (o.out) s += `${o.out.not ? ' !' : ''} --physdev-out ${name(o.out)}`;
    if (o.isOut !== undefined) s += `${o.isOut ? ' !' : ''} --physdev-is-out`;
    if (o.isBridged !== undefined) s += `${o.isBridged ? ' !' : ''} --physdev-is-bridged`;
    return s;
  },
  ifaces: (o) => [o.in, o.out].filter((i): i is NonNullable<PhysOpts['in']> => i !== undefined),
  compile(o, cx) {
    const side = (key: 'iif' | 'oif', i: NonNullable<PhysOpts['in']>) => {
      const [lo, hi] = cx.ifaceRange(i.name, i.wildcard);
      const max = cx.ifaceRange('', true)[1];
      const alts: [number, number][] = i.not ? [...(lo > 0 ? [[0, lo - 1] as [number, number]] : []), ...(hi < max ? [[hi + 1, max] as [number, number]] : [])] : [[lo, hi]];
      cx.refine(key, alts);
    };
    if (o.in) side('iif', o.in);
    if (o.out) side('oif', o.out);
    // Every frame is bridged and has both ports: a negated "is" never holds.
    if (o.isIn || o.isOut || o.isBridged) cx.never();
  },
};
