// The extension-rule variant of the benchmarks' generated tables (issue 11:
// "no regression with limit/hashlimit/recent rules present in the table").
//
// `extLines()` is the generated rule set (e.g. `flatwall gen chain N`) with
// a block of match-extension rules written the way real rule sets have
// them: at the top of FORWARD, before the N generated rules,
//
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
// So a benchmark packet runs 3 (TCP) or 4 (UDP, ICMP) match programs, each
// false for the benchmark's traffic (sources 10.0.0.0/16, TTL 64, ports
// other than 22 and 139, ICMP echo of < 1000 bytes, UDP under 512 MiB/s per
// source), and still ends at the final ACCEPT: the verdict is unchanged,
// the walk pays one classifier lookup more per false program, and (in the
// dataplane) the flow cache does not memoize walks that ran a program.
// Deliberately absent: ufw's leading `--ctstate RELATED,ESTABLISHED -j
// ACCEPT`, which would accept the benchmark's flows before any of this and
// so measure nothing.
import { generateLines, type GenFamily } from '../src/rules/generate';

/** The rules at the top of FORWARD (prepended to the generated rules). */
export const EXT_HEAD: readonly string[] = [
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
export const EXT_SUMMARY = `${EXT_HEAD.length} rules at the top of FORWARD (recent SSH pair on tcp/22, recent port-scan ` +
  'blacklist --rcheck on every packet and --set on tcp/139, ttl --ttl-lt 4, length on ICMP, hashlimit 512mb/s per source ' +
  'on UDP) and a limit 3/min LOG just before the final ACCEPT';

/** Match programs a benchmark packet of protocol `proto` runs with the block in place. */
export function programsPerPacket(proto: 'tcp' | 'udp' | 'icmp'): number {
  return proto === 'tcp' ? 3 : 4; // rcheck, ttl, LOG-limit; + hashlimit (UDP) or length (ICMP)
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
