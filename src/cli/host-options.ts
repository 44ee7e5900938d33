// The --host flag of flatwall run and flatwall replay (host mode: frames to
// the host's addresses walk INPUT, frames from them OUTPUT, the rest
// FORWARD; native/dataplane/host.h), declared once for both commands.
import { formatIPv4, formatIPv6, parseIPv4, parseIPv6 } from '../rules/address';
import { UsageError } from './args';

export const HOST_OPTIONS = {
  host: { type: 'string', multiple: true },
} as const;

export const HOST_HELP = `      --host ADDR/PLEN[,ADDR/PLEN...]
                          host mode: the host's own addresses (IPv4 or IPv6;
                          repeatable; /PLEN defaults to /32 or /128). Frames to
                          one of them go through INPUT (-i: the port they came
                          in on), frames from one through OUTPUT (-o: the port
                          they leave by), broadcast and multicast through
                          INPUT, the rest through FORWARD; -m addrtype LOCAL
                          and BROADCAST follow the addresses and prefixes
`;

/**
 * The --host values as canonical "ADDR/PLEN" strings (the native hostAddrs
 * option); a bad value is a UsageError (exit 2). Empty: not host mode.
 */
export function hostAddrs(values: { host?: string[] }): string[] {
  const out: string[] = [];
  for (const arg of values.host ?? []) {
    for (const item of arg.split(',')) {
      const text = item.trim();
      const m = /^([^/]+)(?:\/(\d{1,3}))?$/.exec(text);
      const v4 = m ? parseIPv4(m[1]) : undefined;
      const v6 = m && v4 === undefined ? parseIPv6(m[1]) : undefined;
      if (!m || (v4 === undefined && v6 === undefined)) {
        throw new UsageError(`--host must be ADDR/PLEN (an IPv4 or IPv6 address and prefix length), got "${text}"`);
      }
      const max = v4 !== undefined ? 32 : 128;
      const plen = m[2] === undefined ? max : Number(m[2]);
      if (plen > max) throw new UsageError(`--host ${text}: the prefix length must be 0..${max}`);
      const addr = v4 !== undefined ? formatIPv4(v4) : formatIPv6(v6!);
      const canon = `${addr}/${plen}`;
      if (!out.includes(canon)) out.push(canon);
    }
  }
  return out;
}
