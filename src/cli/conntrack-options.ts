// The conntrack command-line flags, declared once for every command that
// runs connection tracking (flatwall run, flatwall replay), and turned into
// the native configuration (the Dataplane's and replayFrames' option names)
// in one place, so the two commands cannot drift apart.
import { native } from '../native';
import { UsageError } from './args';

export const CONNTRACK_OPTIONS = {
  'conntrack-max': { type: 'string' },
  'no-conntrack': { type: 'boolean' },
  'ct-tcp-loose': { type: 'boolean' },
  'ct-tcp-strict': { type: 'boolean' },
  'ct-timeout': { type: 'string', multiple: true },
} as const;

export const CONNTRACK_HELP = `      --conntrack-max N   tracked connections, all workers together (default 262144)
      --no-conntrack      stateless: no connection tracking, every packet UNTRACKED
      --ct-tcp-strict     no mid-stream pickup (nf_conntrack_tcp_loose=0): a TCP
                          packet other than SYN without an entry is INVALID
                          (default: an ACK without an entry starts a connection,
                          NEW, as Linux does with nf_conntrack_tcp_loose=1)
      --ct-tcp-loose      deprecated, no effect: mid-stream pickup is the default
      --ct-timeout NAME=S conntrack timeout in seconds (repeatable); NAME is one of
                          tcp_syn_sent tcp_syn_recv tcp_established tcp_fin_wait
                          tcp_close_wait tcp_last_ack tcp_time_wait tcp_close
                          tcp_syn_sent2 udp udp_stream icmp generic
`;

/** What the native side takes (Dataplane config, replayFrames options): the same field names. */
export interface ConntrackConfig {
  conntrack: boolean;
  conntrackMax?: number;
  conntrackTimeouts: Record<string, number>;
  conntrackTcpLoose: boolean;
}

export interface ConntrackValues {
  'conntrack-max'?: string;
  'no-conntrack'?: boolean;
  'ct-tcp-loose'?: boolean;
  'ct-tcp-strict'?: boolean;
  'ct-timeout'?: string[];
}

/** The parsed flags as the native configuration; a bad value is a UsageError (exit 2). */
export function conntrackConfig(values: ConntrackValues): ConntrackConfig {
  const conntrackTimeouts: Record<string, number> = {};
  for (const kv of values['ct-timeout'] ?? []) {
    const m = /^([a-z0-9_]+)=(\d+)$/.exec(kv);
    if (!m || Number(m[2]) < 1) throw new UsageError(`--ct-timeout must be NAME=SECONDS (seconds >= 1), got "${kv}"`);
    const known: string[] = native().conntrackTimeoutNames;
    if (!known.includes(m[1])) throw new UsageError(`--ct-timeout: unknown timeout "${m[1]}" (known: ${known.join(', ')})`);
    conntrackTimeouts[m[1]] = Number(m[2]);
  }
  let conntrackMax: number | undefined;
  const max = values['conntrack-max'];
  if (max !== undefined) {
    conntrackMax = Number(max);
    if (!Number.isInteger(conntrackMax) || conntrackMax < 1) throw new UsageError(`--conntrack-max must be an integer >= 1, got "${max}"`);
  }
  if (values['ct-tcp-loose'] && values['ct-tcp-strict']) throw new UsageError('--ct-tcp-loose and --ct-tcp-strict are exclusive');
  if (values['ct-tcp-loose']) {
    process.stderr.write('flatwall: --ct-tcp-loose is deprecated and has no effect: mid-stream pickup is the default (--ct-tcp-strict turns it off)\n');
  }
  return { conntrack: !values['no-conntrack'], conntrackMax, conntrackTimeouts, conntrackTcpLoose: !values['ct-tcp-strict'] };
}
