// The "chain" family: the seed experiment.
//
// N-1 rules that never match test traffic, then one ACCEPT. The classic
// linear-scan firewall (iptables, Kurek et al. 2024) pays for every one of
// the N-1 misses on every packet; a classifier whose speed does not depend on
// the number of rules should not.
//
//   -A FORWARD -s 10.200.x.y/32 -p tcp -m tcp --dport P -j DROP   (N-1 times)
//   -A FORWARD -j ACCEPT
//
// Sources are unique per rule and lie in 10.200.0.0 - 10.215.255.255 (for up
// to 2^20 + 1 rules; larger sets continue linearly up to 10.255.255.255).
// Test traffic comes from 10.0.0.0/16 (IPv4) and fd00::/64 (IPv6), so no
// DROP rule matches it: IPv4 test packets reach the final ACCEPT after
// N-1 misses, and these IPv4 rules never apply to IPv6 packets at all.

import { ip4 } from './format';
import { hash32, Prng } from './prng';

const BASE = 0x0ac80000; // 10.200.0.0
const PERMUTED = 1 << 20; // 10.200.0.0 - 10.215.255.255
const LINEAR_MAX = 0x0affffff - BASE + 1; // up to 10.255.255.255

export const CHAIN_MAX_RULES = LINEAR_MAX + 1;

export function* chainRules(n: number, seed: number): Generator<string> {
  if (n === 0) return;
  const misses = n - 1;
  if (misses > LINEAR_MAX) throw new Error(`chain: at most ${CHAIN_MAX_RULES} rules`);
  const rng = new Prng(seed, 0xc4a1);
  // A seed-dependent bijection of [0, 2^20): odd multiplier plus offset.
  const mult = (hash32(seed >>> 0, 1) | 1) & (PERMUTED - 1);
  const off = hash32(seed >>> 0, 2) & (PERMUTED - 1);
  const permute = misses <= PERMUTED;
  for (let i = 0; i < misses; i++) {
    const idx = permute ? (Math.imul(i, mult) + off) & (PERMUTED - 1) : i;
    const port = 1 + rng.int(65535);
    yield '-A FORWARD -s ' + ip4((BASE + idx) >>> 0) + '/32 -p tcp -m tcp --dport ' + port + ' -j DROP';
  }
  yield '-A FORWARD -j ACCEPT';
}
