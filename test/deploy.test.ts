// deploy/: the plain Kubernetes manifests and the Helm chart, validated
// without a cluster (test/deploy/validate.ts: kubernetes-models' OpenAPI
// validators, TypeScript's excess-property check against the same
// definitions, the Multus CRD schema, CNI and network-selection schemas),
// the chart rendered by Go's text/template as helm does
// (test/deploy/helm.ts). Then what the objects must say for flatwall: the
// probe contract wired, the security context, the ConfigMap watched, the
// arguments parsed by flatwall run's own option table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDir, validateDocs, type Doc } from './deploy/validate';
import { loadChart, renderChart, ValuesError } from './deploy/helm';
import { RUN_OPTIONS } from '../src/cli/run';
import { parse } from '../src/cli/args';
import { FLATWALL_CLI } from '../src/lab/engines';

const ROOT = join(__dirname, '..', '..');
const PLAIN = join(ROOT, 'deploy', 'kubernetes');
const CHART = join(ROOT, 'deploy', 'helm', 'flatwall');
// The image's user: cnf/Containerfile's ARG UID.
const UID = Number(/^ARG UID=(\d+)$/m.exec(readFileSync(join(ROOT, 'cnf', 'Containerfile'), 'utf8'))![1]);
const TOKEN_SECRET = { api: { token: { existingSecret: 'flatwall-api-token' } } };

const clone = <T>(x: T): T => JSON.parse(JSON.stringify(x));
const byKind = (docs: Doc[], kind: string) => docs.filter((d) => d.obj.kind === kind).map((d) => d.obj);
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const daemonSet = (docs: Doc[]): any => byKind(docs, 'DaemonSet')[0];

test('the plain manifests validate', () => {
  const docs = loadDir(PLAIN);
  assert.deepEqual(docs.map((d) => d.obj.kind).sort(), ['ConfigMap', 'DaemonSet', 'Namespace', 'NetworkAttachmentDefinition', 'NetworkAttachmentDefinition']);
  assert.deepEqual(validateDocs(docs), []);
});

test('the validator refuses what a cluster would (each mistake alone)', () => {
  const docs = loadDir(PLAIN);
  const ds = docs.findIndex((d) => d.obj.kind === 'DaemonSet');
  const nad = docs.findIndex((d) => d.obj.kind === 'NetworkAttachmentDefinition');
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const cases: [string, RegExp, (d: Doc[]) => void][] = [
    ['a misspelt field', /livenesProbe/, (d) => {
      const c = d[ds].obj.spec.template.spec.containers[0];
      c.livenesProbe = c.livenessProbe;
      delete c.livenessProbe;
    }],
    ['an unknown field deep down', /runAsNonRot/, (d) => { d[ds].obj.spec.template.spec.containers[0].securityContext.runAsNonRot = true; }],
    ['a value outside an enum', /imagePullPolicy|Sometimes/, (d) => { d[ds].obj.spec.template.spec.containers[0].imagePullPolicy = 'Sometimes'; }],
    ['a wrong type', /containerPort|number/, (d) => { d[ds].obj.spec.template.spec.containers[0].ports[0].containerPort = 'api'; }],
    ['capabilities as a string', /add/, (d) => { d[ds].obj.spec.template.spec.containers[0].securityContext.capabilities.add = 'NET_RAW'; }],
    ['a missing required field', /name/, (d) => { delete d[ds].obj.spec.template.spec.containers[0].name; }],
    ['no selector', /selector/, (d) => { delete d[ds].obj.spec.selector; }],
    ['a bad quantity', /memory|quantity|pattern|match/i, (d) => { d[ds].obj.spec.template.spec.containers[0].resources.limits.memory = 'lots'; }],
    ['a kind that does not exist', /no schema/, (d) => { d[ds].obj.kind = 'DaemonSets'; }],
    ['NAD: unknown spec field', /additional/, (d) => { d[nad].obj.spec.configs = d[nad].obj.spec.config; }],
    ['NAD: config not JSON', /not JSON/, (d) => { d[nad].obj.spec.config = '{"type": "host-device",'; }],
    ['NAD: host-device without a device', /device/, (d) => { d[nad].obj.spec.config = '{"cniVersion": "0.3.1", "name": "x", "type": "host-device"}'; }],
    ['NAD: CNI config without cniVersion', /cniVersion/, (d) => { d[nad].obj.spec.config = '{"name": "x", "type": "host-device", "device": "eth9"}'; }],
    ['NAD: a label that is no string', /labels|string/, (d) => { d[nad].obj.metadata.labels.x = 3; }],
    ['networks annotation: not JSON', /not JSON/, (d) => { d[ds].obj.spec.template.metadata.annotations['k8s.v1.cni.cncf.io/networks'] = 'flatwall-a@net1,'; }],
    ['networks annotation: no name', /name/, (d) => { d[ds].obj.spec.template.metadata.annotations['k8s.v1.cni.cncf.io/networks'] = '[{"interface": "net1"}]'; }],
  ];
  for (const [what, re, mutate] of cases) {
    const d = clone(docs);
    mutate(d);
    const problems = validateDocs(d);
    assert.ok(problems.length > 0, `${what}: not refused`);
    assert.ok(problems.some((p) => re.test(p)), `${what}: ${problems.join(' | ')}`);
  }
});

/** What the DaemonSet must say for flatwall, on the objects of one rendering. */
function checkContract(docs: Doc[], expect: { ports: number; tokenSecret: string }): Record<string, unknown> {
  const ds = daemonSet(docs);
  const pod = ds.spec.template.spec;
  assert.equal(pod.containers.length, 1);
  const c = pod.containers[0];

  // Security: non-root (the image's user), read-only root, two capabilities, seccomp.
  assert.equal(pod.securityContext.runAsNonRoot, true);
  assert.equal(pod.securityContext.runAsUser, UID);
  assert.equal(pod.securityContext.fsGroup, UID, 'the user reads the mounted token');
  assert.equal(pod.securityContext.seccompProfile.type, 'RuntimeDefault');
  assert.equal(c.securityContext.readOnlyRootFilesystem, true);
  assert.equal(c.securityContext.allowPrivilegeEscalation, false);
  assert.deepEqual(c.securityContext.capabilities, { drop: ['ALL'], add: ['NET_RAW', 'NET_ADMIN'] });
  assert.equal(pod.hostNetwork ?? false, false);
  assert.equal(c.securityContext.privileged ?? false, false);

  // The arguments, parsed by flatwall run's own option table (unknown options throw).
  assert.equal(c.command[0], '/usr/bin/node');
  assert.equal(c.command.at(-1), '/opt/flatwall/dist/src/cli/main.js');
  assert.equal(c.args[0], 'run');
  const { values } = parse(c.args.slice(1), RUN_OPTIONS, false);

  // Ports: as many as asked, in the annotation's order, each an attachment shipped alongside.
  const sel: { name: string; interface: string }[] = JSON.parse(ds.spec.template.metadata.annotations['k8s.v1.cni.cncf.io/networks']);
  assert.equal(values.port?.length, expect.ports);
  assert.deepEqual(values.port, sel.map((s) => s.interface));
  const nads = byKind(docs, 'NetworkAttachmentDefinition');
  for (const s of sel) assert.ok(nads.some((n) => n.metadata.name === s.name && n.metadata.namespace === ds.metadata.namespace), `attachment ${s.name} shipped`);

  // Mounts: each has a volume; the rules are a shipped ConfigMap mounted whole (no
  // subPath, or updates never arrive) and watched; the token from the Secret.
  const vol = (mountPath: string) => {
    const m = c.volumeMounts.find((x: { mountPath: string }) => x.mountPath === mountPath);
    assert.ok(m, `a mount at ${mountPath}`);
    assert.equal(m.subPath, undefined, `${mountPath} mounted whole`);
    const v = pod.volumes.find((x: { name: string }) => x.name === m.name);
    assert.ok(v, `volume ${m.name}`);
    return v;
  };
  assert.equal(values.rules?.length, 1);
  const rulesFile = values.rules![0];
  const rulesVol = vol(rulesFile.slice(0, rulesFile.lastIndexOf('/')));
  const cm = byKind(docs, 'ConfigMap').find((x) => x.metadata.name === rulesVol.configMap?.name);
  assert.ok(cm, 'the rules ConfigMap is shipped');
  const key = rulesFile.slice(rulesFile.lastIndexOf('/') + 1);
  assert.equal(typeof cm.data[key], 'string');
  assert.equal(values['watch-rules'], true);
  const tokenFile = values['api-token-file']!;
  assert.equal(vol(tokenFile.slice(0, tokenFile.lastIndexOf('/'))).secret.secretName, expect.tokenSecret);
  // The read-only root's writable places: the API socket and the snapshots.
  assert.ok(vol('/run/flatwall').emptyDir);
  assert.ok(vol('/var/lib/flatwall').emptyDir);

  // The probe contract: /health for liveness, /ready for readiness, open on the API's TCP port.
  assert.equal(values['api-open-probes'], true);
  const apiPort = Number(values['api-listen']!.split(':').pop());
  const named = c.ports.find((p: { name: string }) => p.name === 'api');
  assert.equal(named.containerPort, apiPort);
  assert.deepEqual(c.livenessProbe.httpGet, { path: '/health', port: 'api' });
  assert.deepEqual(c.readinessProbe.httpGet, { path: '/ready', port: 'api' });
  assert.ok(Number.isInteger(pod.terminationGracePeriodSeconds) && pod.terminationGracePeriodSeconds > 0);
  assert.ok(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory);

  // The ConfigMap's rules are a rule set flatwall accepts.
  const dir = mkdtempSync(join(tmpdir(), 'flatwall-deploy-'));
  try {
    writeFileSync(join(dir, key), cm.data[key]);
    const r = spawnSync(process.execPath, [FLATWALL_CLI, 'check', join(dir, key)], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return values;
}

test('the plain DaemonSet: probes, security, the watched ConfigMap, the Secret, arguments flatwall accepts', () => {
  checkContract(loadDir(PLAIN), { ports: 2, tokenSecret: 'flatwall-api-token' });
});

/** Helm's own labels (and the release's instance label) are what a chart adds to the plain objects. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
function withoutHelmLabels(o: any): any {
  if (Array.isArray(o)) return o.map(withoutHelmLabels);
  if (o && typeof o === 'object') {
    return Object.fromEntries(Object.entries(o)
      .filter(([k]) => !['app.kubernetes.io/instance', 'app.kubernetes.io/managed-by', 'helm.sh/chart'].includes(k))
      .map(([k, v]) => [k, withoutHelmLabels(v)]));
  }
  return o;
}
const key = (o: { kind: string; metadata: { name: string } }) => `${o.kind}/${o.metadata.name}`;

test('helm: defaults without a token are refused by values.schema.json', async () => {
  await assert.rejects(renderChart(loadChart(CHART), { name: 'flatwall', namespace: 'flatwall' }), (e: Error) => e instanceof ValuesError && /token/.test(e.message));
});

test('helm: rendered with defaults and the token Secret, it validates and is the plain manifests', async () => {
  const docs = await renderChart(loadChart(CHART), { name: 'flatwall', namespace: 'flatwall', values: TOKEN_SECRET });
  assert.deepEqual(validateDocs(docs), []);
  checkContract(docs, { ports: 2, tokenSecret: 'flatwall-api-token' });
  // The same objects as deploy/kubernetes (but the Namespace, which helm --create-namespace makes).
  const plain = loadDir(PLAIN).map((d) => d.obj).filter((o) => o.kind !== 'Namespace').sort((a, b) => key(a).localeCompare(key(b)));
  const chart = docs.map((d) => withoutHelmLabels(d.obj)).sort((a, b) => key(a).localeCompare(key(b)));
  assert.deepEqual(chart, plain);
  // And helm's labels are there.
  assert.equal(daemonSet(docs).metadata.labels['app.kubernetes.io/managed-by'], 'Helm');
  assert.equal(daemonSet(docs).spec.selector.matchLabels['app.kubernetes.io/instance'], 'flatwall');
});

test('helm: the values reach the objects (4 ports, workers, io mode, resources, a token value, tolerations)', async () => {
  const docs = await renderChart(loadChart(CHART), {
    name: 'edge', namespace: 'cnf',
    values: {
      ports: [
        { interface: 'net1', attachment: 'wire0-a', config: '{"cniVersion": "1.0.0", "name": "wire0-a", "type": "macvlan", "master": "ens2f0", "mode": "passthru"}' },
        { interface: 'net2', attachment: 'wire0-b', config: '{"cniVersion": "1.0.0", "name": "wire0-b", "type": "macvlan", "master": "ens2f1", "mode": "passthru"}' },
        { interface: 'net3', attachment: 'wire1-a', config: '{"cniVersion": "0.3.1", "name": "wire1-a", "type": "host-device", "pciBusID": "0000:3b:00.2"}' },
        { interface: 'net4', attachment: 'shared-b', config: '' },
      ],
      workers: 2, cpuPin: true,
      io: { txMode: 'sendmmsg', busyPollUs: 0, ringFrames: 4096 },
      api: { port: 9555, token: { value: 'a-token-of-sufficient-length' } },
      resources: { requests: { cpu: 3, memory: '2Gi' }, limits: { cpu: 3, memory: '2Gi', 'hugepages-2Mi': '64Mi' } },
      tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'cnf', effect: 'NoSchedule' }, { operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 }],
      // helm merges maps: the default label stays unless set to null.
      nodeSelector: { 'node-role.kubernetes.io/cnf': '', 'flatwall.io/ports': null },
      extraArgs: ['--conntrack-max', '524288'], nodeArgs: ['--max-old-space-size=1536'],
      rules: '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD -i net3 -p tcp -m tcp --dport 22 -m comment --comment "no \\"ssh\\" here" -j DROP\nCOMMIT\n',
    },
  });
  // shared-b has no config: an existing attachment, not created.
  assert.deepEqual(byKind(docs, 'NetworkAttachmentDefinition').map((n) => n.metadata.name), ['wire0-a', 'wire0-b', 'wire1-a']);
  const problems = validateDocs(docs);
  // The annotation names shared-b, which this rendering does not ship: only that may fail checkContract, not validation.
  assert.deepEqual(problems, []);
  const ds = daemonSet(docs);
  const c = ds.spec.template.spec.containers[0];
  const { values } = parse(c.args.slice(1), RUN_OPTIONS, false);
  assert.deepEqual(values.port, ['net1', 'net2', 'net3', 'net4']);
  assert.equal(values.workers, '2');
  assert.equal(values['cpu-pin'], true);
  assert.equal(values['tx-mode'], 'sendmmsg');
  assert.equal(values['busy-poll'], '0');
  assert.equal(values['ring-frames'], '4096');
  assert.equal(values['api-listen'], '0.0.0.0:9555');
  assert.equal(values['conntrack-max'], '524288');
  assert.deepEqual(c.command, ['/usr/bin/node', '--max-old-space-size=1536', '/opt/flatwall/dist/src/cli/main.js']);
  assert.equal(c.ports[0].containerPort, 9555);
  assert.deepEqual(c.resources, { requests: { cpu: '3', memory: '2Gi' }, limits: { cpu: '3', memory: '2Gi', 'hugepages-2Mi': '64Mi' } });
  assert.deepEqual(ds.spec.template.spec.tolerations, [
    { effect: 'NoSchedule', key: 'dedicated', operator: 'Equal', value: 'cnf' }, { effect: 'NoExecute', operator: 'Exists', tolerationSeconds: 300 }]);
  assert.deepEqual(ds.spec.template.spec.nodeSelector, { 'node-role.kubernetes.io/cnf': '' });
  // The token value: a Secret of the release, the one the pod mounts.
  const secret = byKind(docs, 'Secret')[0];
  assert.equal(secret.metadata.name, 'edge-api-token');
  assert.equal(secret.stringData.token, 'a-token-of-sufficient-length');
  assert.equal(ds.spec.template.spec.volumes.find((v: { name: string }) => v.name === 'api-token').secret.secretName, 'edge-api-token');
  // The rules arrive byte for byte (quotes and all).
  const cm = byKind(docs, 'ConfigMap')[0];
  assert.equal(cm.metadata.name, 'edge-rules');
  assert.match(cm.data['rules.v4'], /--comment "no \\"ssh\\" here"/);
  assert.equal(ds.metadata.namespace, 'cnf');
});

test('helm: values.schema.json refuses values flatwall or the chart cannot use', async () => {
  const chart = loadChart(CHART);
  const base = loadChart(CHART).values as { ports: unknown[] };
  const bad: [string, Record<string, unknown>][] = [
    ['an odd number of ports', { ports: base.ports.concat([{ interface: 'net3', attachment: 'x', config: '' }]) }],
    ['ten ports', { ports: Array.from({ length: 10 }, (_, i) => ({ interface: `net${i}`, attachment: `a${i}`, config: '' })) }],
    ['a TAP io mode', { io: { txMode: 'tap' } }],
    ['no workers', { workers: 0 }],
    ['a misspelt key', { worker: 2 }],
    ['busy-poll of 1e6 (printed 1e+06 by Go)', { io: { busyPollUs: 1000000 } }],
    ['a ring of 8 frames', { io: { ringFrames: 8 } }],
    ['an attachment name that would break the annotation', { ports: [{ interface: 'net1', attachment: "a'b", config: '' }, base.ports[1]] }],
    ['a short token', { api: { token: { value: 'short' } } }],
    ['one replication port for both containers', { standby: { enabled: true, replicationPorts: [7401, 7401], apiPort: 9441, heartbeatMs: 50, timeoutMs: 150 } }],
    ['a standby timeout of 0', { standby: { enabled: true, timeoutMs: 0 } }],
  ];
  for (const [what, v] of bad) {
    const values = { ...TOKEN_SECRET, ...v };
    await assert.rejects(renderChart(chart, { name: 'flatwall', namespace: 'flatwall', values }), (e: Error) => e instanceof ValuesError, what);
  }
});

test('helm: standby.enabled adds a second container naming the first as its active, and each other', async () => {
  const docs = await renderChart(loadChart(CHART), {
    name: 'flatwall', namespace: 'flatwall',
    values: { ...TOKEN_SECRET, workers: 2, standby: { enabled: true, replicationPorts: [7501, 7502], apiPort: 9442, heartbeatMs: 40, timeoutMs: 200 } },
  });
  assert.deepEqual(validateDocs(docs), []);
  const pod = daemonSet(docs).spec.template.spec;
  assert.deepEqual(pod.containers.map((c: { name: string }) => c.name), ['flatwall', 'flatwall-standby']);
  assert.equal(pod.shareProcessNamespace, true, 'the standby sees whether a silent active still runs');
  const [a, b] = pod.containers.map((c: { args: string[] }) => parse(c.args.slice(1), RUN_OPTIONS, false).values);
  // The same ports, rules and workers: the fanout gives flows to workers by their count and order.
  for (const k of ['port', 'rules', 'workers', 'watch-rules'] as const) assert.deepEqual(a[k], b[k], k);
  assert.equal(a['replication-listen'], '127.0.0.1:7501');
  assert.equal(a['standby-of'], '127.0.0.1:7502');
  assert.equal(a['active-unless-peer'], true);
  assert.equal(b['replication-listen'], '127.0.0.1:7502');
  assert.equal(b['standby-of'], '127.0.0.1:7501');
  assert.equal(b['active-unless-peer'], undefined);
  for (const v of [a, b]) {
    assert.equal(v['heartbeat-interval'], '40');
    assert.equal(v['standby-timeout'], '200');
  }
  // Two API listeners in one network namespace: distinct ports and names, each container probed on its own.
  assert.equal(a['api-listen'], '0.0.0.0:9440');
  assert.equal(b['api-listen'], '0.0.0.0:9442');
  assert.notEqual(a['api-socket'], b['api-socket']);
  const names = pod.containers.flatMap((c: { ports: { name: string }[] }) => c.ports.map((p) => p.name));
  assert.equal(new Set(names).size, names.length);
  assert.deepEqual(pod.containers[1].readinessProbe.httpGet, { path: '/ready', port: 'api-standby' });
  assert.deepEqual(pod.containers[1].livenessProbe.httpGet, { path: '/health', port: 'api-standby' });
  // Disabled (the default): one container, none of the replication flags.
  const one = daemonSet(await renderChart(loadChart(CHART), { name: 'flatwall', namespace: 'flatwall', values: TOKEN_SECRET })).spec.template.spec;
  assert.equal(one.containers.length, 1);
  assert.equal(one.shareProcessNamespace, undefined);
  assert.ok(!one.containers[0].args.some((x: string) => /replication|standby/.test(x)));
});
