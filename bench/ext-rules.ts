// The extension-rule variant of the benchmarks' generated tables (issue 11:
// "no regression with limit/hashlimit/recent/set rules present in the
// table").
//
// `extLines()` is the generated rule set (e.g. `flatwall gen chain N`) with
// a block of match-extension rules written the way real rule sets have
// them: at the top of FORWARD, before the N generated rules,
//
//   fail2ban's ipset ban: `-m set --match-set f2b-sshd src -j REJECT` on
//     EVERY packet, the set a hash:ip of EXT_BANNED (10,000) addresses
//     (extIpsetText(): the one definition of the set, loaded by
//     bench:classifier --ext into the replay's set store and by bench:e2e
//     --ext through `flatwall run --ipset`, or `ipset restore` for the
//     kernel's iptables)
//   SSH brute-force guard (ufw's `limit`, the classic recent pair): tcp/22 only
//   port-scan blacklist:  `-m recent --rcheck` on EVERY packet, `--set` on tcp/139
//   `-m ttl --ttl-lt 4 -j DROP`             EVERY packet (stateless)
//   `-p icmp -m length --length 1000:65535` every ICMP packet (stateless)
//   `-p udp -m hashlimit --hashlimit-above 512mb/s --hashlimit-mode srcip`  every UDP packet
//
// and, just before the generated table's final `-j ACCEPT` (where ufw puts
// its `[UFW BLOCK]` log in front of the policy), a
// `-m limit --limit 3/min --limit-burst 10 -j LOG` that every packet reaches.
//
// So a benchmark packet runs 4 (TCP) or 5 (UDP, ICMP) match programs, each
// false for the benchmark's traffic (sources 10.0.0.0/16, none of them
// banned: the banned addresses are outside 10.0.0.0/8; TTL 64, ports
// other than 22 and 139, ICMP echo of < 1000 bytes, UDP under 512 MiB/s per
// source), and still ends at the final ACCEPT: the verdict is unchanged,
// the walk pays one classifier lookup more per false program, and (in the
// dataplane) the flow cache does not memoize walks that ran a program.
// Deliberately absent: ufw's leading `--ctstate RELATED,ESTABLISHED -j
// ACCEPT`, which would accept the benchmark's flows before any of this and
// so measure nothing.
import { generateLines, type GenFamily } from '../src/rules/generate';

/** fail2ban's set name for the sshd jail (action.d/iptables-ipset.conf: ipmset = f2b-<name>). */
export const EXT_SET = 'f2b-sshd';
/** Banned addresses in EXT_SET. */
export const EXT_BANNED = 10_000;

/**
 * The banned addresses: `n` distinct public-looking IPv4 addresses (first
 * octet 1-223, never 10, 127 or 0; so none in the benchmarks' 10.0.0.0/16),
 * from a fixed xorshift sequence: the same set every run.
 */
export function bannedAddresses(n = EXT_BANNED): string[] {
  const seen = new Set<number>();
  const out: string[] = [];
  let x = 0x2545f491;
  while (out.length < n) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    const a = x >>> 24;
    if (a === 0 || a === 10 || a === 127 || a >= 224 || seen.has(x)) continue;
    seen.add(x);
    out.push(`${a}.${(x >>> 16) & 255}.${(x >>> 8) & 255}.${x & 255}`);
  }
  return out;
}

/**
 * EXT_SET in ipset restore form, as fail2ban's iptables-ipset action makes
 * it: `ipset -exist create f2b-sshd hash:ip timeout 0 maxelem 65536` at the
 * first ban (default-ipsettime 0: entries stay until fail2ban unbans them),
 * then `ipset -exist add f2b-sshd IP timeout 0` per ban (ipsettime 0).
 */
export function extIpsetText(n = EXT_BANNED): string {
  return [`create ${EXT_SET} hash:ip family inet hashsize 1024 maxelem 65536 timeout 0`,
    ...bannedAddresses(n).map((a) => `add ${EXT_SET} ${a} timeout 0`)].join('\n') + '\n';
}

/** The rules at the top of FORWARD (prepended to the generated rules). */
export const EXT_HEAD: readonly string[] = [
  // fail2ban, banaction iptables-ipset with chain=FORWARD, type=allports,
  // protocol=all: `iptables -I FORWARD -p all -m set --match-set f2b-sshd
  // src -j REJECT --reject-with icmp-port-unreachable` (its default
  // blocktype), inserted at the top; iptables-save prints it without -p all.
  `-A FORWARD -m set --match-set ${EXT_SET} src -j REJECT --reject-with icmp-port-unreachable`,
  '-A FORWARD -p tcp -m tcp --dport 22 -m conntrack --ctstate NEW -m recent --set --name SSH --mask 255.255.255.255 --rsource',
  '-A FORWARD -p tcp -m tcp --dport 22 -m conntrack --ctstate NEW -m recent --update --seconds 30 --hitcount 6 --name SSH --mask 255.255.255.255 --rsource -j DROP',
  '-A FORWARD -m recent --rcheck --seconds 86400 --name portscan --mask 255.255.255.255 --rsource -j DROP',
  '-A FORWARD -p tcp -m tcp --dport 139 -m recent --set --name portscan --mask 255.255.255.255 --rsource -j DROP',
  '-A FORWARD -m ttl --ttl-lt 4 -j DROP',
  '-A FORWARD -p icmp -m length --length 1000:65535 -j DROP',
  '-A FORWARD -p udp -m hashlimit --hashlimit-above 512mb/s --hashlimit-mode srcip --hashlimit-name udp-flood -j DROP',
];
/** The rule just before the generated table's last rule (its final ACCEPT). */
export const EXT_TAIL: readonly string[] = [
  '-A FORWARD -m limit --limit 3/min --limit-burst 10 -j LOG --log-prefix "[FW FORWARD] "',
];
/** Short description for reports. */
export const EXT_SUMMARY = `${EXT_HEAD.length} rules at the top of FORWARD (fail2ban's \`-m set --match-set ${EXT_SET} src -j REJECT\` ` +
  `on every packet, a hash:ip of ${EXT_BANNED.toLocaleString('en-US')} banned addresses; recent SSH pair on tcp/22, recent port-scan ` +
  'blacklist --rcheck on every packet and --set on tcp/139, ttl --ttl-lt 4, length on ICMP, hashlimit 512mb/s per source ' +
  'on UDP) and a limit 3/min LOG just before the final ACCEPT';

/** Match programs a benchmark packet of protocol `proto` runs with the block in place. */
export function programsPerPacket(proto: 'tcp' | 'udp' | 'icmp'): number {
  return proto === 'tcp' ? 4 : 5; // set, rcheck, ttl, LOG-limit; + hashlimit (UDP) or length (ICMP)
}

/**
 * The generated rule set's lines, with the extension block when `ext`:
 * EXT_HEAD after the chain declarations, EXT_TAIL before the last rule.
 * The generated families all end FORWARD with one rule after which nothing
 * matches (chain: `-j ACCEPT`); the tail goes in front of it.
 */
export function* extLines(family: GenFamily, rules: number, ext: boolean, seed = 1,
  head: readonly string[] = EXT_HEAD, tail: readonly string[] = EXT_TAIL): Generator<string> {
  let pending: string | undefined; // the previous -A line, held back so the tail can precede the last one
  let headDone = false;
  for (const line of generateLines({ family, rules, seed })) {
    if (!ext) {
      yield line;
      continue;
    }
    if (line.startsWith('-A ')) {
      if (!headDone) {
        yield* head;
        headDone = true;
      }
      if (pending !== undefined) yield pending;
      pending = line;
      continue;
    }
    if (line === 'COMMIT' && pending !== undefined) {
      yield* tail;
      yield pending;
      pending = undefined;
    }
    yield line;
  }
}
