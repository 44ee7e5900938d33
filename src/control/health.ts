// The probe contract (docs/API.md, Probes): what /health and /ready answer,
// from the parts of a running firewall. A part is
//   ok        working;
//   starting  not yet (the rules are loading, the ports not yet opened);
//   degraded  working below par in a way a restart cannot mend (a port's
//             link is down, the last reload failed and the previous rules
//             run): the pod is kept, /ready may say no;
//   failed    broken in a way a restart can mend (a worker stuck in a call,
//             a port whose interface was deleted or re-created under its
//             socket, the dataplane stopped): /health answers 503, so a
//             liveness probe restarts the container.
// /ready is 200 only when the rules are active, every port is up and every
// worker goes round its loop: the pod forwards with the rules it was given.
import type { Firewall } from './firewall';
import { replication } from './standby';

export type PartStatus = 'ok' | 'starting' | 'degraded' | 'failed';

/**
 * A worker goes round its loop at least once a second while idle (its
 * poll() timeout, native/dataplane/dataplane.cc kIdlePollMs), after every
 * batch under load. Five times that without a round is a stuck worker.
 */
export const WORKER_STUCK_MS = 5000;

/** What the dataplane says of itself (the addon's health()). */
export interface DataplaneHealth {
  running: boolean;
  workers: { id: number; beatAgeMs: number }[];
  ports: { name: string; kind: 'afpacket' | 'afxdp' | 'tap'; boundIfindex: number; ifindex: number; adminUp: boolean; carrier: boolean }[];
}

/** What the rules part is judged from (Firewall.status and friends). */
export interface RulesHealth {
  /** Generation of the active rule set, 0 before the first activation. */
  generation: number;
  lastOk: boolean;
  lastError?: string;
  /** Seconds since the epoch of the last attempt and of the last success. */
  lastAttempt: number;
  lastSuccess: number;
  /** Started from a snapshot whose rule listing is still being parsed. */
  metadataLoading: boolean;
}

export interface PortReport {
  name: string;
  kind: 'afpacket' | 'afxdp' | 'tap';
  /** up, down (IFF_UP clear), no-carrier (up, no carrier), missing, replaced (a new interface under the name), open (TAP fd), closed (not started). */
  state: 'up' | 'down' | 'no-carrier' | 'missing' | 'replaced' | 'open' | 'closed';
  status: PartStatus;
  ifindex?: number;
  boundIfindex?: number;
}

export interface HealthReport {
  /** The worst part's status. */
  status: PartStatus;
  ready: boolean;
  /** Why /ready says no (empty when ready). */
  notReady: string[];
  pid: number;
  uptimeSeconds: number;
  parts: {
    api: { status: PartStatus };
    workers: { status: PartStatus; stuckAfterMs: number; workers: { id: number; beatAgeMs: number; status: PartStatus }[] };
    ports: { status: PartStatus; ports: PortReport[] };
    rules: {
      status: PartStatus; generation: number; metadata?: 'loading';
      lastReload: { ok: boolean; at?: string; error?: string; lastSuccess?: string };
    };
    /** A hot standby that has not taken over (src/control/standby.ts): its replica, not its (closed) ports. */
    standby?: { status: PartStatus; connected: boolean; replicaComplete: boolean };
  };
}

const RANK: Record<PartStatus, number> = { ok: 0, starting: 1, degraded: 2, failed: 3 };
const worst = (xs: PartStatus[]): PartStatus => xs.reduce<PartStatus>((a, b) => (RANK[b] > RANK[a] ? b : a), 'ok');
const iso = (s: number) => (s > 0 ? new Date(s * 1000).toISOString() : undefined);

function portReport(p: DataplaneHealth['ports'][number], running: boolean): PortReport {
  const base = { name: p.name, kind: p.kind };
  if (!running) return { ...base, state: 'closed', status: 'starting' };
  if (p.kind === 'tap') return { ...base, state: 'open', status: 'ok' };
  const ids = { ifindex: p.ifindex || undefined, boundIfindex: p.boundIfindex };
  if (p.ifindex === 0) return { ...base, ...ids, state: 'missing', status: 'failed' };
  if (p.ifindex !== p.boundIfindex) return { ...base, ...ids, state: 'replaced', status: 'failed' };
  if (!p.adminUp) return { ...base, ...ids, state: 'down', status: 'degraded' };
  if (!p.carrier) return { ...base, ...ids, state: 'no-carrier', status: 'degraded' };
  return { ...base, ...ids, state: 'up', status: 'ok' };
}

/**
 * The report from the parts' raw states. `started`: Firewall.start() ran
 * (and stop() did not): a dataplane that is not running then is broken.
 */
export function evaluateHealth(dp: DataplaneHealth, rules: RulesHealth, started: boolean): HealthReport {
  // Before start the dataplane is not running yet; after it, not running is broken.
  const dpDown = started && !dp.running;
  const workers = dp.running
    ? dp.workers.map((w) => ({ id: w.id, beatAgeMs: Math.round(w.beatAgeMs), status: (w.beatAgeMs > WORKER_STUCK_MS ? 'failed' : 'ok') as PartStatus }))
    : [];
  const workersStatus: PartStatus = dpDown ? 'failed' : !dp.running ? 'starting' : worst(workers.map((w) => w.status));
  const ports = dp.ports.map((p) => portReport(p, dp.running));
  const portsStatus: PartStatus = dpDown ? 'failed' : worst(ports.map((p) => p.status));

  let rulesStatus: PartStatus;
  if (rules.generation === 0) rulesStatus = rules.lastAttempt > 0 && !rules.lastOk ? 'failed' : 'starting';
  else rulesStatus = rules.lastOk ? 'ok' : 'degraded';
  const rulesPart: HealthReport['parts']['rules'] = {
    status: rulesStatus, generation: rules.generation, ...(rules.metadataLoading ? { metadata: 'loading' as const } : {}),
    lastReload: { ok: rules.lastOk, at: iso(rules.lastAttempt), error: rules.lastError, lastSuccess: iso(rules.lastSuccess) },
  };

  const notReady: string[] = [];
  if (rules.generation === 0) notReady.push('no rule set active yet');
  if (!dp.running) notReady.push(started ? 'dataplane stopped' : 'ports not started');
  for (const p of ports) if (dp.running && p.state !== 'up' && p.state !== 'open') notReady.push(`port ${p.name} ${p.state}`);
  for (const w of workers) if (w.status !== 'ok') notReady.push(`worker ${w.id} stuck (no loop round for ${w.beatAgeMs} ms)`);

  const parts = {
    api: { status: 'ok' as PartStatus },
    workers: { status: workersStatus, stuckAfterMs: WORKER_STUCK_MS, workers },
    ports: { status: portsStatus, ports },
    rules: rulesPart,
  };
  return {
    status: worst([parts.api.status, workersStatus, portsStatus, rulesStatus]),
    ready: notReady.length === 0,
    notReady,
    pid: process.pid,
    uptimeSeconds: Math.round(process.uptime()),
    parts,
  };
}

/** The report of a running Firewall. */
export function firewallHealth(fw: Firewall): HealthReport {
  const s = fw.status;
  const h = evaluateHealth(fw.dataplaneHealth(), {
    generation: s.generation, lastOk: s.lastOk, lastError: s.lastError, lastAttempt: s.lastAttempt, lastSuccess: s.lastSuccess,
    metadataLoading: fw.loadingMetadata,
  }, fw.dataplaneStarted);
  const c = replication.client;
  return c && !fw.dataplaneStarted ? standingBy(h, c.stats.connected, c.ready) : h;
}

/**
 * A standby keeps its ports closed by design: it is ready (to take over)
 * once its replica is complete (a full sync done, the replicated rules
 * active), so a pod with an active and a standby container is Ready when
 * both do their part.
 */
export function standingBy(h: HealthReport, connected: boolean, complete: boolean): HealthReport {
  const standby = { status: (complete ? 'ok' : 'starting') as PartStatus, connected, replicaComplete: complete };
  const notReady = complete ? [] : [connected ? 'standby: replica not complete yet' : 'standby: not connected to the active'];
  return {
    ...h,
    status: worst([h.parts.api.status, h.parts.rules.status === 'failed' ? 'failed' : 'ok', standby.status]),
    ready: complete,
    notReady,
    parts: { ...h.parts, standby },
  };
}
