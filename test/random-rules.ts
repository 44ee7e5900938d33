// Random rule sets and packets for differential tests: small pools of
// addresses, ports, interfaces and flags so that rules and packets collide
// often, with user chains, jumps, gotos, RETURNs, LOGs and negations.
import type { Pkt } from './reference';

export function rng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ADDRS = ['10.0.0.0/8', '10.1.0.0/16', '10.1.2.3/32', '192.168.0.0/24', '0.0.0.0/1', '172.16.0.0/12'];
const IFACES = ['eth0', 'eth1', 'eth+', 'wan0', 'veth+', 'lo'];
const PKT_IFACES = ['eth0', 'eth1', 'eth2', 'wan0', 'veth12', 'lo', 'x'];
const PORTS = ['80', '443', '1024:65535', ':1023', '22', '53', '8000:8080'];
const STATES = ['NEW', 'ESTABLISHED', 'RELATED', 'INVALID', 'UNTRACKED', 'ESTABLISHED,RELATED', 'NEW,INVALID'];
const FLAGS = ['SYN,ACK SYN', 'ALL NONE', 'FIN,SYN,RST,ACK SYN', 'ACK ACK', 'SYN SYN,ACK'];

export function randomRuleset(r: () => number, nChains: number, nRules: number): string {
  const pick = <T>(a: T[]) => a[Math.floor(r() * a.length)];
  const bang = () => (r() < 0.25 ? '! ' : '');
  const chains = Array.from({ length: nChains }, (_, i) => `C${i}`);
  const lines = ['*filter', ':INPUT ACCEPT [0:0]', `:FORWARD ${r() < 0.5 ? 'DROP' : 'ACCEPT'} [0:0]`, ':OUTPUT ACCEPT [0:0]'];
  for (const c of chains) lines.push(`:${c} - [0:0]`);
  const emit = (chain: string, idx: number) => {
    const parts: string[] = [];
    if (r() < 0.4) parts.push(`${bang()}-s ${pick(ADDRS)}`);
    if (r() < 0.3) parts.push(`${bang()}-d ${pick(ADDRS)}`);
    if (r() < 0.3) parts.push(`${bang()}-i ${pick(IFACES)}`);
    // iptables refuses -o in INPUT (a user chain may have it: it never matches there).
    if (r() < 0.2 && chain !== 'INPUT') parts.push(`${bang()}-o ${pick(IFACES)}`);
    const pr = r();
    if (pr < 0.35) {
      parts.push('-p tcp');
      if (r() < 0.5) parts.push(`${bang()}--dport ${pick(PORTS)}`);
      if (r() < 0.3) parts.push(`${bang()}--sport ${pick(PORTS)}`);
      if (r() < 0.3) parts.push(`${bang()}--tcp-flags ${pick(FLAGS)}`);
      if (r() < 0.15) parts.push(`-m multiport ${bang()}--${pick(['sports', 'dports', 'ports'])} 22,80,1000:2000`);
    } else if (pr < 0.55) {
      parts.push('-p udp');
      if (r() < 0.5) parts.push(`${bang()}--dport ${pick(PORTS)}`);
    } else if (pr < 0.65) {
      parts.push('-p icmp');
      if (r() < 0.7) parts.push(`${bang()}--icmp-type ${pick(['8', '0', '3/3', 'destination-unreachable', 'any'])}`);
    } else if (pr < 0.7) {
      parts.push(`! -p tcp`);
    }
    if (r() < 0.2) parts.push(`-m conntrack ${bang()}--ctstate ${pick(STATES)}`);
    if (r() < 0.1) parts.push(`-m iprange ${bang()}--src-range 10.1.0.0-10.1.255.7`);
    // Targets: jumps only forward (to higher-numbered chains) so there are no loops.
    const later = chains.filter((c) => chain.startsWith('C') ? Number(c.slice(1)) > Number(chain.slice(1)) : true);
    const t = r();
    if (t < 0.15 && later.length) parts.push(`-j ${pick(later)}`);
    else if (t < 0.22 && later.length) parts.push(`-g ${pick(later)}`);
    else if (t < 0.32) parts.push('-j RETURN');
    else if (t < 0.42) parts.push('-j LOG --log-prefix "x "');
    else if (t < 0.47) parts.push('');
    else parts.push(`-j ${pick(['ACCEPT', 'DROP', 'DROP', 'ACCEPT'])}`);
    void idx;
    lines.push(`-A ${chain} ${parts.join(' ')}`.trimEnd());
  };
  for (let i = 0; i < nRules; i++) emit(pick(['FORWARD', 'FORWARD', 'INPUT', ...chains]), i);
  lines.push('COMMIT');
  return lines.join('\n');
}

export function randomPacket(r: () => number): Pkt {
  const pick = <T>(a: T[]) => a[Math.floor(r() * a.length)];
  const addrs = [0x0a000001, 0x0a010000, 0x0a010203, 0x0a010204, 0xc0a80005, 0xc0a80100, 0x0affffff, 0xac100001, 0x80000000, 0x7fffffff, 0x0a0101ff, 0x0a010107, 0x0a010108];
  const proto = pick([6, 6, 17, 1, 47]);
  const ports = [0, 22, 53, 79, 80, 81, 443, 1023, 1024, 1500, 2000, 2001, 8000, 8080, 8081, 65535];
  return {
    src: pick(addrs), dst: pick(addrs), proto, sport: pick(ports), dport: pick(ports),
    iif: pick(PKT_IFACES), oif: pick(PKT_IFACES), icmpType: pick([0, 3, 8, 11]), icmpCode: pick([0, 1, 3]),
    tcpFlags: pick([0x02, 0x12, 0x10, 0x00, 0x3f, 0x11, 0x04]), ct: pick([1, 2, 4, 8, 16]), hasL4: r() < 0.9,
  };
}

