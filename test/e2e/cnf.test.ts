// The CNF image (cnf/): built from this checkout with `npm run image`, run
// with podman inside the Firewall namespace of a Sender -- F -- Receiver lab,
// exactly as a container network function is deployed (the pod's network
// namespace holds the two ports) and as deploy/ runs it: user 65532, a
// read-only root filesystem, every capability dropped but NET_RAW and
// NET_ADMIN, no_new_privs, the API socket and the snapshots in the image's volumes. It
// must start from a snapshot compiled by the image itself, filter as
// `flatwall run` does, answer the probes, reload on SIGHUP and when the
// mounted rule file changes (--watch-rules), and exit 0 on SIGTERM leaving
// nothing behind.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { E2eLab, IMAGE_UID, V4_HEADER, e2eUnavailable, parseJson } from './harness';
import { parsePing } from '../../src/lab/traffic';
import { apiCall } from '../../src/cli/ctl';

const skip = e2eUnavailable(['podman']);
const ROOT = join(__dirname, '..', '..', '..');
const IMAGE = `localhost/flatwall-test:${process.pid}`;

// 7001 allowed both ways, everything else but ICMP dropped.
const RULES = `${V4_HEADER}-A FORWARD -p icmp -j ACCEPT
-A FORWARD -p tcp -m tcp --dport 7001 -j ACCEPT
-A FORWARD -p tcp -m tcp --sport 7001 -j ACCEPT
COMMIT
`;
const RULES_7002 = RULES.replace('--dport 7001', '--dport 7002').replace('--sport 7001', '--sport 7002');

const CAP_NET_ADMIN = 12n;
const CAP_NET_RAW = 13n;
const NET_CAPS = (1n << CAP_NET_ADMIN) | (1n << CAP_NET_RAW);

/** A host directory the image's user owns, for one of the image's volumes. */
function volumeDir(parent: string, name: string): string {
  const d = join(parent, name);
  mkdirSync(d, { mode: 0o755 });
  chownSync(d, IMAGE_UID, IMAGE_UID);
  return d;
}

describe('the CNF image, non-root from a read-only root', { skip, timeout: 240_000 }, () => {
  let lab: E2eLab;
  let host: string;
  let runDir: string;
  let snapDir: string;
  const api = (m: string, p: string) => apiCall({ socket: join(runDir, 'flatwall.sock') }, m, p);

  before(async () => {
    const b = spawnSync(process.execPath, [join(ROOT, 'cnf', 'build.js'), '--tag', IMAGE], { encoding: 'utf8', timeout: 180_000 });
    assert.equal(b.status, 0, `image build failed:\n${b.stderr.slice(-2000)}`);
    host = mkdtempSync(join(tmpdir(), 'flatwall-cnf-'));
    runDir = volumeDir(host, 'run');
    snapDir = volumeDir(host, 'snap');
    // The image compiles its own snapshot into its snapshot volume, as an
    // init container would: same user, read-only root, no capability at all.
    const src = join(host, 'src');
    mkdirSync(src, { mode: 0o755 });
    writeFileSync(join(src, 'rules.v4'), RULES);
    const c = spawnSync('podman', ['--cgroup-manager=cgroupfs', 'run', '--rm', '--user', `${IMAGE_UID}:${IMAGE_UID}`, '--read-only', '--cap-drop', 'ALL',
      '--ulimit', 'nofile=4096:4096', '--ulimit', 'nproc=4096:4096', '--network', 'none',
      '-v', `${src}:/src:ro`, '-v', `${snapDir}:/var/lib/flatwall`, IMAGE, 'compile', '/src/rules.v4', '-o', '/var/lib/flatwall/rules.snap'],
    { encoding: 'utf8', timeout: 60_000 });
    assert.equal(c.status, 0, `compile in the image failed:\n${c.stderr.slice(-2000)}`);
    assert.ok(existsSync(join(snapDir, 'rules.snap')));
    lab = await E2eLab.start({
      rules: { 'rules.v4': RULES }, echoPorts: [7001, 7002], image: IMAGE,
      podmanArgs: ['-v', `${runDir}:/run/flatwall`, '-v', `${snapDir}:/var/lib/flatwall:ro`],
      fwArgs: ['--snapshot', '/var/lib/flatwall/rules.snap', '--watch-rules'],
    });
  });
  after(async () => {
    await lab?.close();
    spawnSync('podman', ['rmi', '-f', IMAGE], { stdio: 'ignore', timeout: 60_000 });
    if (host) rmSync(host, { recursive: true, force: true });
  });

  test('runs as 65532, read-only root, only NET_RAW and NET_ADMIN (and neither effective after the ports opened)', () => {
    const i = spawnSync('podman', ['inspect', lab.container!, '--format', '{{.State.Pid}} {{.Config.User}} {{.HostConfig.ReadonlyRootfs}}'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(i.status, 0, i.stderr);
    const [pid, user, ro] = i.stdout.trim().split(' ');
    assert.equal(user, `${IMAGE_UID}:${IMAGE_UID}`);
    assert.equal(ro, 'true');
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const field = (k: string) => status.match(new RegExp(`^${k}:\\s*(.*)$`, 'm'))![1];
    assert.deepEqual(field('Uid').split(/\s+/), [String(IMAGE_UID), String(IMAGE_UID), String(IMAGE_UID), String(IMAGE_UID)]);
    assert.equal(BigInt(`0x${field('CapBnd')}`), NET_CAPS, 'bounding set: the two');
    assert.equal(BigInt(`0x${field('CapPrm')}`), NET_CAPS, 'permitted: from node\'s file capabilities');
    // podman fills the ambient set for a non-root user, but file capabilities clear it at execve.
    assert.equal(BigInt(`0x${field('CapAmb')}`), 0n);
    // The main thread lowered them again once the ports were open.
    assert.equal(BigInt(`0x${field('CapEff')}`), 0n);
    // allowPrivilegeEscalation: false, as deploy/ sets it: the file capabilities still count.
    assert.equal(field('NoNewPrivs'), '1');
    const ready = lab.fw.lines.map(parseJson).find((j) => j?.msg === 'ready')!;
    assert.equal(ready.snapshot, '/var/lib/flatwall/rules.snap', 'started from the snapshot the image compiled');
  });

  test('filters like flatwall run: allowed flow and ICMP pass, others are dropped', async () => {
    assert.equal((await lab.probe('tcp', '10.0.0.2', 7001)).result, 'ok', await lab.diag());
    assert.equal((await lab.probe('tcp', '10.0.0.2', 7002, 800)).result, 'timeout');
    const p = parsePing((await lab.sh(lab.topo.sender, 'ping', ['-q', '-c', '3', '-i', '0.1', '-W', '2', '10.0.0.2'])).stdout);
    assert.equal(p.received, 3);
  });

  test('probes on the API socket in the /run/flatwall volume: ready, every part ok', async () => {
    const r = await api('GET', '/ready');
    assert.equal(r.status, 200, r.body);
    const h = await api('GET', '/health');
    assert.equal(h.status, 200);
    assert.equal(h.json!.status, 'ok', h.body);
    assert.deepEqual(h.json!.parts.ports.ports.map((p: { name: string; state: string }) => `${p.name}:${p.state}`), ['fa:up', 'fb:up']);
  });

  test('SIGHUP through podman reloads the mounted rule file', async () => {
    const from = lab.fw.lines.length;
    const k = spawnSync('podman', ['kill', '-s', 'HUP', lab.container!], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(k.status, 0, k.stderr);
    const line = JSON.parse(await lab.fw.waitFor((l) => l.includes('rules reloaded') && l.includes('"trigger":"SIGHUP"'), 20_000, 'reload line'));
    assert.equal(line.generation, 2);
    assert.ok(lab.fw.lines.length > from);
    assert.equal((await lab.probe('tcp', '10.0.0.2', 7001)).result, 'ok', await lab.diag());
  });

  test('--watch-rules: the mounted file changes, the rules follow', async () => {
    writeFileSync(lab.files['rules.v4'], RULES_7002);
    const line = JSON.parse(await lab.fw.waitFor((l) => l.includes('rules reloaded') && l.includes('"trigger":"watch"'), 20_000, 'reload by watch'));
    assert.equal(line.generation, 3);
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
