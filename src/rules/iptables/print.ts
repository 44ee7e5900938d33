// RuleSet -> canonical iptables-save text: the same spelling, option order and
// defaults the kernel tools print, so `flatwall print` output can be diffed
// against `iptables-save` (test/kernel-conformance.test.ts does exactly that).
import { formatIPv4, formatIPv6 } from '../address';
import { TABLE_BUILTINS, CT_PRINT_ORDER, CT, type AddrRange, type Chain, type Family, type Neg, type PortRange, type Rule, type Table } from '../model';
import { LOG_LEVEL_DEFAULT, PROTO_NAME, TCP_FLAG_NAMES } from './names';
import { extension } from '../extensions/registry';
import { targetExtension } from '../extensions/targets';
import { LOG_FLAGS } from './parse';

export interface PrintOptions {
  counters?: boolean; // like iptables-save -c
  header?: string; // first comment line
}

function addr(a: AddrRange, family: Family): string {
  const lo = family === 4 ? formatIPv4(a.lo as number) : formatIPv6(a.lo as bigint);
  return `${lo}/${a.prefix ?? (family === 4 ? 32 : 128)}`;
}

function range(a: AddrRange, family: Family): string {
  const f = (v: number | bigint) => (family === 4 ? formatIPv4(v as number) : formatIPv6(v as bigint));
  return `${f(a.lo)}-${f(a.hi)}`;
}

const bang = (n: Neg<unknown>) => (n.not ? ' !' : '');

function port(r: PortRange): string {
  return r.lo === r.hi ? `${r.lo}` : `${r.lo}:${r.hi}`;
}

export function tcpFlags(flags: number): string {
  const names = TCP_FLAG_NAMES.filter(([, bit]) => flags & bit).map(([n]) => n);
  return names.length ? names.join(',') : 'NONE';
}

export function ctStates(mask: number): string {
  return CT_PRINT_ORDER.filter((s) => mask & CT[s]).join(',');
}

function quote(s: string): string {
  // xtables_save_string: bare when it is only [-_0-9A-Za-z], quoted otherwise.
  if (/^[-_0-9A-Za-z]+$/.test(s)) return s;
  return `"${s.replace(/["\\']/g, (c) => `\\${c}`)}"`;
}

/** One rule as iptables-save prints it, without "-A CHAIN". */
export function ruleSpec(r: Rule, family: Family): string {
  let s = '';
  if (r.src) s += `${bang(r.src)} -s ${addr(r.src.v, family)}`;
  if (r.dst) s += `${bang(r.dst)} -d ${addr(r.dst.v, family)}`;
  if (r.inIface) s += `${bang(r.inIface)} -i ${r.inIface.v.name}${r.inIface.v.wildcard ? '+' : ''}`;
  if (r.outIface) s += `${bang(r.outIface)} -o ${r.outIface.v.name}${r.outIface.v.wildcard ? '+' : ''}`;
  if (r.proto) s += `${bang(r.proto)} -p ${PROTO_NAME[r.proto.v] ?? r.proto.v}`;
  for (const m of r.matches) {
    s += ` -m ${m.module === 'ext' ? m.name : m.module}`;
    switch (m.module) {
      case 'ext':
        s += extension(m).save(m.o, family);
        break;
      case 'tcp': case 'udp': case 'sctp':
        // A full 0:65535 range is the default and is not printed.
        if (m.sport && !(m.sport.v.lo === 0 && m.sport.v.hi === 65535 && !m.sport.not)) s += `${bang(m.sport)} --sport ${port(m.sport.v)}`;
        if (m.dport && !(m.dport.v.lo === 0 && m.dport.v.hi === 65535 && !m.dport.not)) s += `${bang(m.dport)} --dport ${port(m.dport.v)}`;
        if (m.module === 'tcp' && m.flags && (m.flags.v.mask !== 0 || m.flags.not)) {
          s += `${bang(m.flags)} --tcp-flags ${tcpFlags(m.flags.v.mask)} ${tcpFlags(m.flags.v.comp)}`;
        }
        break;
      case 'icmp':
      case 'icmp6': {
        const t = m.type!;
        const opt = m.module === 'icmp' ? '--icmp-type' : '--icmpv6-type';
        if (t.v.any) s += `${bang(t)} ${opt} any`;
        else s += `${bang(t)} ${opt} ${t.v.type}${t.v.codeLo === 0 && t.v.codeHi === 255 ? '' : `/${t.v.codeLo}`}`;
        break;
      }
      case 'multiport':
        s += `${bang(m.ports!)} --${m.which} ${m.ports!.v.map(port).join(',')}`;
        break;
      case 'iprange':
        if (m.src) s += `${bang(m.src)} --src-range ${range(m.src.v, family)}`;
        if (m.dst) s += `${bang(m.dst)} --dst-range ${range(m.dst.v, family)}`;
        break;
      case 'conntrack':
        if (m.ctstate) s += `${bang(m.ctstate)} --ctstate ${ctStates(m.ctstate.v)}`;
        break;
      case 'state':
        s += `${bang(m.state!)} --state ${ctStates(m.state!.v)}`;
        break;
      case 'comment':
        s += ` --comment ${quote(m.comment!)}`;
        break;
    }
  }
  const t = r.target;
  switch (t.kind) {
    case 'none':
      break;
    case 'jump':
      s += ` -j ${t.chain}`;
      break;
    case 'goto':
      s += ` -g ${t.chain}`;
      break;
    case 'REJECT':
      s += ` -j REJECT --reject-with ${t.with}`;
      break;
    case 'LOG':
      s += ' -j LOG';
      if (t.prefix !== undefined) s += ` --log-prefix ${quote(t.prefix)}`;
      if (t.level !== undefined && t.level !== LOG_LEVEL_DEFAULT) s += ` --log-level ${t.level}`;
      for (const [opt, bit] of Object.entries(LOG_FLAGS)) if ((t.flags ?? 0) & bit) s += ` ${opt}`;
      break;
    case 'ext':
      s += ` -j ${t.name}${targetExtension(t.name).save(t.o, family)}`;
      break;
    default:
      s += ` -j ${t.kind}`;
  }
  return s.trimStart();
}

/** Chains in iptables-save order: built-ins first, then user chains by name. */
export function chainOrder(t: Table): Chain[] {
  const builtins = TABLE_BUILTINS[t.name].map((n) => t.chains.get(n)!).filter(Boolean);
  const user = [...t.chains.values()].filter((c) => !c.builtin).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return [...builtins, ...user];
}

export function* printTable(t: Table, opts: PrintOptions = {}): Generator<string> {
  if (opts.header) yield `# ${opts.header}`;
  yield `*${t.name}`;
  const chains = chainOrder(t);
  for (const c of chains) {
    const cnt = opts.counters && c.counters ? `[${c.counters[0]}:${c.counters[1]}]` : '[0:0]';
    yield `:${c.name} ${c.builtin ? c.policy : '-'} ${cnt}`;
  }
  for (const c of chains) {
    for (const r of c.rules) {
      const cnt = opts.counters ? `[${r.counters?.[0] ?? 0n}:${r.counters?.[1] ?? 0n}] ` : '';
      yield `${cnt}-A ${c.name} ${ruleSpec(r, t.family)}`.trimEnd();
    }
  }
  yield 'COMMIT';
}
