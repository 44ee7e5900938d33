// The CNF image (cnf/): built from this checkout with `npm run image`, run
// with podman inside the Firewall namespace of a Sender -- F -- Receiver lab,
// exactly as a container network function is deployed (the pod's network
// namespace holds the two ports). It must filter as `flatwall run` does,
// reload on SIGHUP, and exit 0 on SIGTERM leaving nothing behind.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { E2eLab, V4_HEADER, e2eUnavailable, parseJson } from './harness';
import { parsePing } from '../../src/lab/traffic';

const skip = e2eUnavailable(['podman']);
const ROOT = join(__dirname, '..', '..', '..');
const IMAGE = `localhost/flatwall-test:${process.pid}`;

// 7001 allowed both ways, everything else but ICMP dropped.
const RULES = `${V4_HEADER}-A FORWARD -p icmp -j ACCEPT
-A FORWARD -p tcp -m tcp --dport 7001 -j ACCEPT
-A FORWARD -p tcp -m tcp --sport 7001 -j ACCEPT
COMMIT
`;

describe('the CNF image', { skip, timeout: 180_000 }, () => {
  let lab: E2eLab;
  before(async () => {
    const b = spawnSync(process.execPath, [join(ROOT, 'cnf', 'build.js'), '--tag', IMAGE], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(b.status, 0, `image build failed:\n${b.stderr.slice(-2000)}`);
    lab = await E2eLab.start({ rules: { 'rules.v4': RULES }, echoPorts: [7001, 7002], image: IMAGE });
  });
  after(async () => {
    await lab?.close();
    spawnSync('podman', ['rmi', '-f', IMAGE], { stdio: 'ignore', timeout: 60_000 });
  });

  test('filters like flatwall run: allowed flow and ICMP pass, others are dropped', async () => {
    assert.equal((await lab.probe('tcp', '10.0.0.2', 7001)).result, 'ok', await lab.diag());
    assert.equal((await lab.probe('tcp', '10.0.0.2', 7002, 800)).result, 'timeout');
    const p = parsePing((await lab.sh(lab.topo.sender, 'ping', ['-q', '-c', '3', '-i', '0.1', '-W', '2', '10.0.0.2'])).stdout);
    assert.equal(p.received, 3);
  });

  test('SIGHUP through podman reloads the mounted rule file', async () => {
    writeFileSync(lab.files['rules.v4'], RULES.replace('--dport 7001', '--dport 7002').replace('--sport 7001', '--sport 7002'));
    const k = spawnSync('podman', ['kill', '-s', 'HUP', lab.container!], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(k.status, 0, k.stderr);
    await lab.fw.waitFor((l) => l.includes('rules reloaded'), 20_000, 'reload line');
    assert.equal((await lab.probe('tcp', '10.0.0.2', 7002)).result, 'ok', await lab.diag());
    assert.equal((await lab.probe('tcp', '10.0.0.2', 7001, 800)).result, 'timeout');
  });

  test('SIGTERM drains and exits 0; the container is gone', async () => {
    const final = await lab.stopFirewall();
    assert.ok(final && final.verdicts.accept > 0, JSON.stringify(final));
    const code = (await lab.fw.exited).code;
    assert.equal(code, 0, lab.fw.stderr.slice(-500));
    const ps = spawnSync('podman', ['ps', '-a', '--format', '{{.Names}}'], { encoding: 'utf8', timeout: 30_000 });
    assert.ok(!ps.stdout.split('\n').includes(lab.container!), ps.stdout);
    assert.ok(lab.fw.lines.map(parseJson).some((j) => j?.msg === 'ready'), 'ready line');
  });
});
