// Per-worker conntrack tables rely on both directions of a flow reaching the
// same worker (native/dataplane/README.md). Verified here with 2 workers, for
// AF_PACKET ports (PACKET_FANOUT_HASH) and for TAP ports (the kernel's tun
// queue selection): under a stateful rule set that accepts only NEW flows to
// the server and ESTABLISHED traffic, a reply that reached the other worker
// would find no entry (a SYN/ACK without a SYN is INVALID) and be dropped, so
// every connection must succeed, and both workers must have carried flows.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { E2eLab, V4_HEADER, e2eUnavailable } from './harness';

const skip = e2eUnavailable();
const RULES = `${V4_HEADER}-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -p tcp -m tcp --dport 7001 -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -p udp -m udp --dport 7001 -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -p icmp -j ACCEPT
COMMIT
`;

for (const tap of [false, true]) {
  describe(`conntrack with 2 workers over ${tap ? 'TAP' : 'AF_PACKET'} ports: both directions meet their entry`, { skip, timeout: 120_000 }, () => {
    test('32 TCP connections and 32 UDP exchanges all succeed, spread over both workers', async () => {
      const lab = await E2eLab.start({ rules: { 'v4.rules': RULES }, tap, fwhost: true, workers: 2, echoPorts: [7001] });
      try {
        const results: string[] = [];
        for (let i = 0; i < 32; i++) {
          results.push(`tcp:${(await lab.probe('tcp', '10.0.0.2', 7001, 2000)).result}`);
          results.push(`udp:${(await lab.probe('udp', '10.0.0.2', 7001, 2000)).result}`);
        }
        const failed = results.filter((r) => !r.endsWith(':ok'));
        assert.deepEqual(failed, [], `failed probes: ${failed.join(', ')}\n${await lab.diag()}`);
        const { counters } = await lab.counters();
        const rx = counters.ports.map((p: { rxPerWorker: number[] }) => p.rxPerWorker);
        // Each port's queue of each worker received traffic: flows were spread.
        for (const perWorker of rx) assert.ok(perWorker.every((n: number) => n > 0), `rx per worker ${JSON.stringify(rx)}`);
        assert.ok(counters.conntrack.insert >= 64, JSON.stringify(counters.conntrack));
        assert.equal(counters.conntrack.insert_failed, 0);
      } finally {
        await lab.close();
      }
    });
  });
}
