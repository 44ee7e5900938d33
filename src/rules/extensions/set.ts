// -m set (libxt_set.c revision 4, net/netfilter/xt_set.c): the packet's
// addresses/ports tested against an IP set of the set store (src/sets/,
// native/sets/set_store.h). `--match-set NAME FLAGS` with FLAGS a comma
// list of src/dst, one per dimension of the set (the kernel never matches
// with fewer flags than the set has dimensions); `!` inverts;
// --return-nomatch reverses the sense for hash:net sets: a nomatch element
// matches and a plain one does not (iptables-extensions(8)). The set
// must exist when the rule is loaded, as iptables-restore requires.
import { setDims } from '../../sets/registry';
import { Bytes } from './program';
import type { MatchExtension } from './registry';

interface SetOpts {
  name?: string;
  dirs: number[]; // 1 src, 2 dst
  not: boolean;
  returnNomatch: boolean;
  noCounters: boolean;
  noSubcounters: boolean;
  id: number;
}

export const set: MatchExtension<SetOpts> = {
  name: 'set',
  create: () => ({ dirs: [], not: false, returnNomatch: false, noCounters: false, noSubcounters: false, id: -1 }),
  option(o, cx) {
    switch (cx.opt.text) {
      case '--match-set': case '--set': {
        cx.once('match-set');
        o.not = cx.negated(true);
        const n = cx.value('a set name and flags');
        const f = cx.value('flags (src, dst, comma separated)');
        if (n.text.length === 0 || n.text.length > 31) cx.fail(n, 'set name must be 1-31 characters');
        const dirs = f.text.split(',').map((d) => (d === 'src' ? 1 : d === 'dst' ? 2 : 0));
        if (dirs.some((d) => d === 0) || dirs.length > 6) cx.fail(f, `bad set flags "${f.text}" (up to six of src, dst)`);
        const dims = setDims(n.text);
        if (!dims) cx.fail(n, `Set ${n.text} doesn't exist (load it with --ipset FILE)`);
        o.name = n.text;
        o.dirs = dirs;
        o.id = dims!.id;
        return true;
      }
      case '--return-nomatch': cx.negated(false); o.returnNomatch = true; return true;
      case '--update-counters': if (!cx.negated(true)) cx.fail(cx.opt, '--update-counters is the default; only ! --update-counters is accepted'); o.noCounters = true; return true;
      case '--update-subcounters': if (!cx.negated(true)) cx.fail(cx.opt, 'only ! --update-subcounters is accepted'); o.noSubcounters = true; return true;
      case '--packets-eq': case '--packets-lt': case '--packets-gt': case '--bytes-eq': case '--bytes-lt': case '--bytes-gt':
        cx.fail(cx.opt, `${cx.opt.text} is not supported (the set store does not count packets per entry)`);
    }
    return false;
  },
  validate(o, cx) {
    if (!o.name) cx.fail('-m set requires --match-set');
  },
  // set_printv4_matchinfo (revision 4) with its save prefix.
  save(o) {
    let s = `${o.not ? ' !' : ''} --match-set ${o.name} ${o.dirs.map((d) => (d === 1 ? 'src' : 'dst')).join(',')}`;
    if (o.returnNomatch) s += ' --return-nomatch';
    if (o.noCounters) s += ' ! --update-counters';
    if (o.noSubcounters) s += ' ! --update-subcounters';
    return s;
  },
  list(o) {
    let s = `${o.not ? ' !' : ''} match-set ${o.name} ${o.dirs.map((d) => (d === 1 ? 'src' : 'dst')).join(',')}`;
    if (o.returnNomatch) s += ' return-nomatch';
    if (o.noCounters) s += ' ! update-counters';
    if (o.noSubcounters) s += ' ! update-subcounters';
    return s;
  },
  compile(o, cx) {
    const p = new Bytes().u32(o.id).u8(o.dirs.length).u8(o.returnNomatch ? 1 : 0);
    for (let i = 0; i < 6; i++) p.u8(o.dirs[i] ?? 0);
    cx.op('set', o.not, p);
  },
};
