// IP sets as the control plane sees them: the types flatwall supports (the
// native store is native/sets/set_store.h), their options and elements, and
// the name tables ipset prints with (protocols and services from the
// system's /etc/protocols and /etc/services, as ipset's getprotobynumber /
// getservbyname use them, with a built-in fallback; ICMP and ICMPv6 names
// from ipset's lib/icmp.c and lib/icmpv6.c).
import { byName } from '../rules/by-name';
import { readFileSync } from 'node:fs';

export type SetTypeName = 'hash:ip' | 'hash:net' | 'hash:ip,port' | 'hash:net,port' | 'bitmap:port';
export type FamilyName = 'inet' | 'inet6';

export interface SetTypeInfo {
  dims: 1 | 2;
  /** What `ipset list` prints as Revision (the kernel's, Linux 6.x). */
  revision: number;
  /** hash:net*: prefixes, nomatch. */
  nets: boolean;
  /** hash:*,port: a protocol and port dimension. */
  port: boolean;
  hash: boolean;
}

export const SET_TYPES: Record<SetTypeName, SetTypeInfo> = {
  'hash:ip': { dims: 1, revision: 6, nets: false, port: false, hash: true },
  'hash:net': { dims: 1, revision: 7, nets: true, port: false, hash: true },
  'hash:ip,port': { dims: 2, revision: 7, nets: false, port: true, hash: true },
  'hash:net,port': { dims: 2, revision: 8, nets: true, port: true, hash: true },
  'bitmap:port': { dims: 1, revision: 3, nets: false, port: false, hash: false },
};

/** ipset's old type names, still accepted by `ipset create`. */
export const TYPE_ALIASES: Record<string, SetTypeName> = byName({
  iphash: 'hash:ip', nethash: 'hash:net', ipporthash: 'hash:ip,port', portmap: 'bitmap:port',
});

/** Types ipset knows that flatwall does not implement (a clear error instead of "unknown"). */
export const UNSUPPORTED_TYPES = [
  'bitmap:ip', 'bitmap:ip,mac', 'hash:mac', 'hash:ip,mac', 'hash:ip,mark', 'hash:ip,port,ip', 'hash:ip,port,net',
  'hash:net,net', 'hash:net,port,net', 'hash:net,iface', 'list:set',
];

export const DEFAULT_HASHSIZE = 1024;
export const DEFAULT_MAXELEM = 65536;
export const MAX_TIMEOUT = 2147483; // IPSET_MAX_TIMEOUT, seconds
export const MAX_NAME_LEN = 31;
export const MAX_COMMENT_LEN = 255;

/** Create options, as the native store takes and returns them. */
export interface SetOptions {
  type: SetTypeName;
  family?: FamilyName; // hash types
  hashsize?: number;
  maxelem?: number;
  timeout?: number;
  counters?: boolean;
  comment?: boolean;
  bucketsize?: number;
  initval?: number;
  range?: [number, number]; // bitmap:port
}

/** One element as the native store takes and returns it. */
export interface SetEntry {
  addr?: string;
  cidr?: number;
  proto?: number;
  port?: number;
  nomatch?: boolean;
  /** Add: the entry's timeout (0 = permanent). Listed: seconds left. */
  timeout?: number;
  packets?: bigint | number;
  bytes?: bigint | number;
  comment?: string;
}

/** A set as the native store lists it. */
export interface NativeSetInfo {
  name: string;
  id: number;
  type: SetTypeName;
  revision: number;
  options: Required<Pick<SetOptions, 'type' | 'counters' | 'comment'>> & SetOptions;
  entries: number;
  memoryBytes: number;
  members?: SetEntry[];
}

/** The native SetStore object (native/addon/sets_binding.cc). */
export interface NativeSetStore {
  create(name: string, options: SetOptions, exist?: boolean): void;
  destroy(name?: string): void;
  flush(name?: string): void;
  swap(a: string, b: string): void;
  rename(a: string, b: string): void;
  add(name: string, entry: SetEntry, exist?: boolean): boolean;
  del(name: string, entry: SetEntry, exist?: boolean): boolean;
  test(name: string, entry: SetEntry): boolean;
  restore(commands: NativeCommand[]): void;
  list(name?: string, members?: boolean): NativeSetInfo[];
  names(): string[];
  find(name: string): number;
  describe(name: string): { id: number; type: SetTypeName; family?: FamilyName; dims: 1 | 2 } | undefined;
  gc(budget?: number): number;
  memoryBytes(): number;
  lookup(id: number, dirs: number[], key: Record<string, unknown>, nowNs?: number | bigint): 'match' | 'nomatch' | 'absent';
  clone(): NativeSetStore;
}

export type NativeCommand =
  | { op: 'create'; name: string; options: SetOptions; exist?: boolean }
  | { op: 'add' | 'del'; name: string; entry: SetEntry; exist?: boolean }
  | { op: 'flush' | 'destroy'; name?: string }
  | { op: 'swap' | 'rename'; name: string; name2: string };

// ---- protocol, service and ICMP names ----

interface NameDb {
  byName: Map<string, number>;
  byNumber: Map<number, string>;
}

// Debian netbase's /etc/protocols for the protocols a port type meets, for
// systems without the file (the FROM scratch image).
const BUILTIN_PROTOCOLS = `ip 0 IP
icmp 1 ICMP
igmp 2 IGMP
ipencap 4 IP-ENCAP
tcp 6 TCP
egp 8 EGP
pup 12 PUP
udp 17 UDP
hmp 20 HMP
xns-idp 22 XNS-IDP
rdp 27 RDP
iso-tp4 29 ISO-TP4
dccp 33 DCCP
xtp 36 XTP
ddp 37 DDP
idpr-cmtp 38 IDPR-CMTP
ipv6 41 IPv6
ipv6-route 43 IPv6-Route
ipv6-frag 44 IPv6-Frag
idrp 45 IDRP
rsvp 46 RSVP
gre 47 GRE
esp 50 IPSEC-ESP
ah 51 IPSEC-AH
skip 57 SKIP
ipv6-icmp 58 IPv6-ICMP
ipv6-nonxt 59 IPv6-NoNxt
ipv6-opts 60 IPv6-Opts
rspf 73 RSPF CPHB
vmtp 81 VMTP
eigrp 88 EIGRP
ospf 89 OSPFIGP
ax.25 93 AX.25
ipip 94 IPIP
etherip 97 ETHERIP
encap 98 ENCAP
pim 103 PIM
ipcomp 108 IPCOMP
vrrp 112 VRRP
l2tp 115 L2TP
isis 124 ISIS
sctp 132 SCTP
fc 133 FC
mobility-header 135 Mobility-Header
udplite 136 UDPLite
mpls-in-ip 137 MPLS-in-IP
manet 138
hip 139 HIP
shim6 140 Shim6
wesp 141 WESP
rohc 142 ROHC
ethernet 143 Ethernet
`;

function parseDb(text: string, value: (field: string) => number | undefined): NameDb {
  const byName = new Map<string, number>();
  const byNumber = new Map<number, string>();
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) continue;
    const [name, num, ...aliases] = line.split(/\s+/);
    const v = value(num);
    if (v === undefined) continue;
    if (!byNumber.has(v)) byNumber.set(v, name);
    for (const n of [name, ...aliases]) if (!byName.has(n)) byName.set(n, v);
  }
  return { byName, byNumber };
}

let protocols: NameDb | undefined;
function protocolDb(): NameDb {
  if (!protocols) {
    let text = BUILTIN_PROTOCOLS;
    try {
      text = readFileSync('/etc/protocols', 'utf8');
    } catch {
      // no /etc/protocols: the built-in table
    }
    protocols = parseDb(text, (f) => (/^\d+$/.test(f) && Number(f) <= 255 ? Number(f) : undefined));
  }
  return protocols;
}

/** getprotobyname (exact name or alias, as glibc). */
export function protocolNumber(name: string): number | undefined {
  return protocolDb().byName.get(name);
}

/** getprotobynumber's name, or undefined. */
export function protocolName(n: number): string | undefined {
  return protocolDb().byNumber.get(n);
}

const BUILTIN_SERVICES = `ftp-data 20/tcp
ftp 21/tcp
ssh 22/tcp
telnet 23/tcp
smtp 25/tcp mail
domain 53/tcp
domain 53/udp
http 80/tcp www
pop3 110/tcp pop-3
ntp 123/udp
imap2 143/tcp imap
snmp 161/udp
https 443/tcp
submission 587/tcp
imaps 993/tcp
pop3s 995/tcp
`;

const services = new Map<string, Map<string, number>>(); // proto -> name -> port
let servicesLoaded = false;
function serviceDb(proto: string): Map<string, number> | undefined {
  if (!servicesLoaded) {
    servicesLoaded = true;
    let text = BUILTIN_SERVICES;
    try {
      text = readFileSync('/etc/services', 'utf8');
    } catch {
      // no /etc/services: the built-in table
    }
    for (const raw of text.split('\n')) {
      const line = raw.replace(/#.*/, '').trim();
      if (!line) continue;
      const [name, portProto, ...aliases] = line.split(/\s+/);
      const m = /^(\d+)\/(\S+)$/.exec(portProto ?? '');
      if (!m || Number(m[1]) > 65535) continue;
      let db = services.get(m[2]);
      if (!db) services.set(m[2], (db = new Map()));
      for (const n of [name, ...aliases]) if (!db.has(n)) db.set(n, Number(m[1]));
    }
  }
  return services.get(proto);
}

/** getservbyname(name, proto). */
export function servicePort(name: string, proto: string): number | undefined {
  return serviceDb(proto)?.get(name);
}

// ipset lib/icmp.c, lib/icmpv6.c: names in table order (parsing takes the
// first name the given text is a case-insensitive prefix of).
export const ICMP_NAMES: [string, number, number][] = [
  ['echo-reply', 0, 0], ['pong', 0, 0], ['network-unreachable', 3, 0], ['host-unreachable', 3, 1],
  ['protocol-unreachable', 3, 2], ['port-unreachable', 3, 3], ['fragmentation-needed', 3, 4],
  ['source-route-failed', 3, 5], ['network-unknown', 3, 6], ['host-unknown', 3, 7], ['network-prohibited', 3, 9],
  ['host-prohibited', 3, 10], ['TOS-network-unreachable', 3, 11], ['TOS-host-unreachable', 3, 12],
  ['communication-prohibited', 3, 13], ['host-precedence-violation', 3, 14], ['precedence-cutoff', 3, 15],
  ['source-quench', 4, 0], ['network-redirect', 5, 0], ['host-redirect', 5, 1], ['TOS-network-redirect', 5, 2],
  ['TOS-host-redirect', 5, 3], ['echo-request', 8, 0], ['ping', 8, 0], ['router-advertisement', 9, 0],
  ['router-solicitation', 10, 0], ['ttl-zero-during-transit', 11, 0], ['ttl-zero-during-reassembly', 11, 1],
  ['ip-header-bad', 12, 0], ['required-option-missing', 12, 1], ['timestamp-request', 13, 0],
  ['timestamp-reply', 14, 0], ['address-mask-request', 17, 0], ['address-mask-reply', 18, 0],
];

export const ICMPV6_NAMES: [string, number, number][] = [
  ['no-route', 1, 0], ['communication-prohibited', 1, 1], ['address-unreachable', 1, 3], ['port-unreachable', 1, 4],
  ['packet-too-big', 2, 0], ['ttl-zero-during-transit', 3, 0], ['ttl-zero-during-reassembly', 3, 1],
  ['bad-header', 4, 0], ['unknown-header-type', 4, 1], ['unknown-option', 4, 2], ['echo-request', 128, 0],
  ['ping', 128, 0], ['echo-reply', 129, 0], ['pong', 129, 0], ['router-solicitation', 133, 0],
  ['router-advertisement', 134, 0], ['neighbour-solicitation', 135, 0], ['neigbour-solicitation', 135, 0],
  ['neighbour-advertisement', 136, 0], ['neigbour-advertisement', 136, 0], ['redirect', 137, 0],
];

/** name_to_icmp(v6): the first table name `s` is a case-insensitive prefix of. */
export function icmpTypeCode(table: [string, number, number][], s: string): number | undefined {
  const l = s.toLowerCase();
  const hit = table.find(([n]) => n.toLowerCase().startsWith(l));
  return hit ? (hit[1] << 8) | hit[2] : undefined;
}

/** icmp_to_name(v6): the first name of a type/code, or undefined. */
export function icmpName(table: [string, number, number][], typecode: number): string | undefined {
  return table.find(([, t, c]) => t === typecode >> 8 && c === (typecode & 255))?.[0];
}
