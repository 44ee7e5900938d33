// Name tables iptables accepts, and the names iptables-save prints back.
import { byName } from '../by-name';

// getprotobyname() on Debian's /etc/protocols, plus iptables' own aliases.
export const PROTO_BY_NAME: Record<string, number> = byName({
  all: 0, ip: 0, icmp: 1, igmp: 2, ipencap: 4, tcp: 6, egp: 8, udp: 17, ipv6: 41, 'ipv6-route': 43,
  'ipv6-frag': 44, rsvp: 46, gre: 47, esp: 50, ah: 51, 'ipv6-icmp': 58, icmpv6: 58, 'ipv6-nonxt': 59,
  'ipv6-opts': 60, ospf: 89, pim: 103, vrrp: 112, l2tp: 115, sctp: 132, mh: 135, 'ipv6-mh': 135, udplite: 136,
  dccp: 33,
});

// What iptables-save prints for a protocol number (the /etc/protocols name).
export const PROTO_NAME: Record<number, string> = {
  1: 'icmp', 2: 'igmp', 4: 'ipencap', 6: 'tcp', 8: 'egp', 17: 'udp', 33: 'dccp', 41: 'ipv6', 43: 'ipv6-route',
  44: 'ipv6-frag', 46: 'rsvp', 47: 'gre', 50: 'esp', 51: 'ah', 58: 'ipv6-icmp', 59: 'ipv6-nonxt', 60: 'ipv6-opts',
  89: 'ospf', 103: 'pim', 112: 'vrrp', 115: 'l2tp', 132: 'sctp', 135: 'mobility-header', 136: 'udplite',
};

export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const PROTO_ICMP = 1;
export const PROTO_ICMPV6 = 58;
export const PROTO_SCTP = 132;
export const PROTO_UDPLITE = 136;
export const PROTO_DCCP = 33;

// getservbyname() for the services rule files commonly name.
export const SERVICES: Record<string, number> = byName({
  'ftp-data': 20, ftp: 21, ssh: 22, telnet: 23, smtp: 25, domain: 53, bootps: 67, bootpc: 68, tftp: 69,
  http: 80, www: 80, kerberos: 88, pop3: 110, sunrpc: 111, ntp: 123, 'netbios-ns': 137, 'netbios-dgm': 138,
  'netbios-ssn': 139, imap2: 143, imap: 143, snmp: 161, 'snmp-trap': 162, bgp: 179, ldap: 389, https: 443,
  'microsoft-ds': 445, submissions: 465, isakmp: 500, syslog: 514, submission: 587, ldaps: 636, imaps: 993,
  pop3s: 995, openvpn: 1194, mysql: 3306, 'ms-wbt-server': 3389, 'ipsec-nat-t': 4500, postgresql: 5432,
  'http-alt': 8080,
});

// libxt_tcp's flag names, in the order iptables prints them.
export const TCP_FLAG_NAMES: [string, number][] = [
  ['FIN', 0x01], ['SYN', 0x02], ['RST', 0x04], ['PSH', 0x08], ['ACK', 0x10], ['URG', 0x20],
];
export const TCP_FLAGS_ALL = 0x3f;

type IcmpName = [type: number, codeLo: number, codeHi: number];

export const ICMP_TYPES: Record<string, IcmpName> = byName({
  'echo-reply': [0, 0, 255], pong: [0, 0, 255],
  'destination-unreachable': [3, 0, 255],
  'network-unreachable': [3, 0, 0], 'host-unreachable': [3, 1, 1], 'protocol-unreachable': [3, 2, 2],
  'port-unreachable': [3, 3, 3], 'fragmentation-needed': [3, 4, 4], 'source-route-failed': [3, 5, 5],
  'network-unknown': [3, 6, 6], 'host-unknown': [3, 7, 7], 'network-prohibited': [3, 9, 9],
  'host-prohibited': [3, 10, 10], 'TOS-network-unreachable': [3, 11, 11], 'TOS-host-unreachable': [3, 12, 12],
  'communication-prohibited': [3, 13, 13], 'host-precedence-violation': [3, 14, 14],
  'precedence-cutoff': [3, 15, 15], 'source-quench': [4, 0, 255], redirect: [5, 0, 255],
  'network-redirect': [5, 0, 0], 'host-redirect': [5, 1, 1], 'TOS-network-redirect': [5, 2, 2],
  'TOS-host-redirect': [5, 3, 3], 'echo-request': [8, 0, 255], ping: [8, 0, 255],
  'router-advertisement': [9, 0, 255], 'router-solicitation': [10, 0, 255], 'time-exceeded': [11, 0, 255],
  'ttl-exceeded': [11, 0, 255], 'ttl-zero-during-transit': [11, 0, 0], 'ttl-zero-during-reassembly': [11, 1, 1],
  'parameter-problem': [12, 0, 255], 'ip-header-bad': [12, 0, 0], 'required-option-missing': [12, 1, 1],
  'timestamp-request': [13, 0, 255], 'timestamp-reply': [14, 0, 255], 'address-mask-request': [17, 0, 255],
  'address-mask-reply': [18, 0, 255],
});

export const ICMPV6_TYPES: Record<string, IcmpName> = byName({
  'destination-unreachable': [1, 0, 255], 'no-route': [1, 0, 0], 'communication-prohibited': [1, 1, 1],
  'beyond-scope': [1, 2, 2], 'address-unreachable': [1, 3, 3], 'port-unreachable': [1, 4, 4],
  'failed-policy': [1, 5, 5], 'reject-route': [1, 6, 6], 'packet-too-big': [2, 0, 255],
  'time-exceeded': [3, 0, 255], 'ttl-exceeded': [3, 0, 255], 'ttl-zero-during-transit': [3, 0, 0],
  'ttl-zero-during-reassembly': [3, 1, 1], 'parameter-problem': [4, 0, 255], 'bad-header': [4, 0, 0],
  'unknown-header-type': [4, 1, 1], 'unknown-option': [4, 2, 2], 'echo-request': [128, 0, 255],
  ping: [128, 0, 255], 'echo-reply': [129, 0, 255], pong: [129, 0, 255], 'mld-listener-query': [130, 0, 255],
  'mld-listener-report': [131, 0, 255], 'mld-listener-done': [132, 0, 255],
  'mld-listener-reduction': [132, 0, 255], 'router-solicitation': [133, 0, 255],
  'router-advertisement': [134, 0, 255], 'neighbour-solicitation': [135, 0, 255],
  'neighbor-solicitation': [135, 0, 255], 'neighbour-advertisement': [136, 0, 255],
  'neighbor-advertisement': [136, 0, 255], redirect: [137, 0, 255],
});

// REJECT --reject-with: accepted spellings -> the name iptables-save prints.
export const REJECT_V4: Record<string, string> = byName({
  'icmp-net-unreachable': 'icmp-net-unreachable', 'net-unreach': 'icmp-net-unreachable',
  'icmp-host-unreachable': 'icmp-host-unreachable', 'host-unreach': 'icmp-host-unreachable',
  'icmp-port-unreachable': 'icmp-port-unreachable', 'port-unreach': 'icmp-port-unreachable',
  'icmp-proto-unreachable': 'icmp-proto-unreachable', 'proto-unreach': 'icmp-proto-unreachable',
  'icmp-net-prohibited': 'icmp-net-prohibited', 'net-prohib': 'icmp-net-prohibited',
  'icmp-host-prohibited': 'icmp-host-prohibited', 'host-prohib': 'icmp-host-prohibited',
  'icmp-admin-prohibited': 'icmp-admin-prohibited', 'admin-prohib': 'icmp-admin-prohibited',
  'tcp-reset': 'tcp-reset', 'tcp-rst': 'tcp-reset',
});
export const REJECT_V6: Record<string, string> = byName({
  'icmp6-no-route': 'icmp6-no-route', 'no-route': 'icmp6-no-route',
  'icmp6-adm-prohibited': 'icmp6-adm-prohibited', 'adm-prohibited': 'icmp6-adm-prohibited',
  'icmp6-addr-unreachable': 'icmp6-addr-unreachable', 'addr-unreach': 'icmp6-addr-unreachable',
  'icmp6-port-unreachable': 'icmp6-port-unreachable', 'port-unreach': 'icmp6-port-unreachable',
  'tcp-reset': 'tcp-reset',
});
// Values of native/classifier/rule_table.h RejectWith.
export const REJECT_CODE: Record<string, number> = byName({
  'icmp-net-unreachable': 0, 'icmp-host-unreachable': 1, 'icmp-port-unreachable': 2,
  'icmp-proto-unreachable': 3, 'icmp-net-prohibited': 4, 'icmp-host-prohibited': 5,
  'icmp-admin-prohibited': 6, 'tcp-reset': 7, 'icmp6-no-route': 8, 'icmp6-adm-prohibited': 9,
  'icmp6-addr-unreachable': 10, 'icmp6-port-unreachable': 11,
});

// syslog levels for LOG --log-level.
export const LOG_LEVELS: Record<string, number> = byName({
  emerg: 0, panic: 0, alert: 1, crit: 2, err: 3, error: 3, warn: 4, warning: 4, notice: 5, info: 6, debug: 7,
});
export const LOG_LEVEL_DEFAULT = 4;
