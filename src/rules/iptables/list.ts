// Rule -> the columns of `iptables -L -v -n` (numeric listing): target, prot,
// opt, in, out, source, destination and the trailing match/target text, in
// the spellings the xtables extensions print (libxt_tcp "tcp dpt:22",
// libxt_icmp "icmptype 8", libxt_conntrack "ctstate NEW", ...). The layout
// (widths, K/M/G numbers) is the caller's: src/cli/ctl.ts.
import { formatIPv4, formatIPv6 } from '../address';
import type { AddrRange, Family, Neg, PortRange, Rule } from '../model';
import { ctStates } from './print';
import { extension } from '../extensions/registry';
import { targetExtension } from '../extensions/targets';

export interface ListColumns {
  target: string;
  /** Protocol with "!" in front when negated. */
  prot: string;
  opt: string;
  in: string;
  out: string;
  source: string;
  destination: string;
  /** Match and target details, each item starting with a space, as iptables prints them. */
  extra: string;
}

function addr(a: Neg<AddrRange> | undefined, family: Family): string {
  if (!a) return family === 4 ? '0.0.0.0/0' : '::/0';
  const full = family === 4 ? 32 : 128;
  const p = a.v.prefix ?? full;
  const lo = family === 4 ? formatIPv4(a.v.lo as number) : formatIPv6(a.v.lo as bigint);
  // xtables_ipmask_to_numeric: no "/32" (or "/128").
  return `${a.not ? '!' : ''}${lo}${p === full ? '' : `/${p}`}`;
}

function iface(m: Rule['inIface']): string {
  if (!m) return '*';
  return `${m.not ? '!' : ''}${m.v.name}${m.v.wildcard ? '+' : ''}`;
}

// libxt_tcp/udp print_ports.
function ports(name: string, p: Neg<PortRange> | undefined): string {
  if (!p) return '';
  const { lo, hi } = p.v;
  if (lo === 0 && hi === 65535 && !p.not) return '';
  const inv = p.not ? '!' : '';
  return lo === hi ? ` ${name}:${inv}${lo}` : ` ${name}s:${inv}${lo}:${hi}`;
}

const hex2 = (n: number) => `0x${n.toString(16).toUpperCase().padStart(2, '0')}`;

function rangeText(a: AddrRange, family: Family): string {
  const f = (v: number | bigint) => (family === 4 ? formatIPv4(v as number) : formatIPv6(v as bigint));
  return `${f(a.lo)}-${f(a.hi)}`;
}

function matchText(r: Rule, family: Family): string {
  let s = '';
  for (const m of r.matches) {
    switch (m.module) {
      case 'ext':
        s += extension(m).list(m.o, family);
        break;
      case 'tcp': case 'udp': case 'sctp':
        s += ` ${m.module}${ports('spt', m.sport)}${ports('dpt', m.dport)}`;
        if (m.module === 'tcp' && m.flags && (m.flags.v.mask !== 0 || m.flags.not)) {
          s += ` flags:${m.flags.not ? '!' : ''}${hex2(m.flags.v.mask)}/${hex2(m.flags.v.comp)}`;
        }
        break;
      case 'icmp': case 'icmp6': {
        const t = m.type!;
        s += m.module === 'icmp' ? ' icmp' : ' ipv6-icmp';
        if (t.v.any) {
          s += `${t.not ? ' !' : ''}any`;
          break;
        }
        s += `${t.not ? ' !' : ''}type ${t.v.type}`;
        if (t.v.codeLo === t.v.codeHi) s += ` code ${t.v.codeLo}`;
        else if (t.v.codeLo !== 0 || t.v.codeHi !== 255) s += ` codes ${t.v.codeLo}-${t.v.codeHi}`;
        break;
      }
      case 'multiport':
        s += ` multiport ${m.which} ${m.ports!.not ? '!' : ''}${m.ports!.v.map((p) => (p.lo === p.hi ? `${p.lo}` : `${p.lo}:${p.hi}`)).join(',')}`;
        break;
      case 'iprange':
        if (m.src) s += ` source IP range${m.src.not ? ' !' : ''} ${rangeText(m.src.v, family)}`;
        if (m.dst) s += ` destination IP range${m.dst.not ? ' !' : ''} ${rangeText(m.dst.v, family)}`;
        break;
      case 'conntrack':
        if (m.ctstate) s += `${m.ctstate.not ? ' !' : ''} ctstate ${ctStates(m.ctstate.v)}`;
        break;
      case 'state':
        s += ` state ${m.state!.not ? '!' : ''}${ctStates(m.state!.v)}`;
        break;
      case 'comment':
        s += ` /* ${m.comment} */`;
        break;
    }
  }
  return s;
}

function targetText(r: Rule, family: Family): string {
  const t = r.target;
  switch (t.kind) {
    case 'REJECT':
      return ` reject-with ${t.with}`;
    case 'LOG':
      return ` LOG flags ${t.flags ?? 0} level ${t.level ?? 4}${t.prefix ? ` prefix "${t.prefix}"` : ''}`;
    case 'ext':
      return targetExtension(t.name).list(t.o, family);
    default:
      return '';
  }
}

export function listColumns(r: Rule, family: Family): ListColumns {
  const t = r.target;
  const target = t.kind === 'jump' || t.kind === 'goto' ? t.chain : t.kind === 'none' ? '' : t.kind === 'ext' ? targetExtension(t.name).listName ?? t.name : t.kind;
  const p = r.proto;
  // iptables 1.8.9 (Debian 12, the reference) prints the number under -n;
  // "all" is protocol 0.
  const prot = p ? `${p.not ? '!' : ''}${p.v}` : '0';
  return {
    target,
    prot,
    opt: '--',
    in: iface(r.inIface),
    out: iface(r.outIface),
    source: addr(r.src, family),
    destination: addr(r.dst, family),
    // iptables prints "[goto] " right after the destination, before the matches.
    extra: (t.kind === 'goto' ? '[goto] ' : '') + matchText(r, family) + targetText(r, family),
  };
}
