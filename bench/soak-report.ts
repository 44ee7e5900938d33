// bench:soak's result: its shape, the checks made on it, the Markdown
// summary and the plots (bench/soak.ts runs the soak and the faults).
import { svgPlot, type Series } from './plot';

export interface Sample {
  /** Seconds since the soak started. */
  t: number;
  /** Which flatwall run process (0; +1 per restart after a crash). */
  instance: number;
  load1: number;
  rssMb?: number;
  heapUsedMb?: number;
  heapTotalMb?: number;
  externalMb?: number;
  /** The heap used just after the last major collection (GET /stats process.heapAfterMajorGcBytes), and how many there were. */
  heapAfterGcMb?: number;
  majorGcs?: number;
  generation?: number;
  reloadsOk?: number;
  reloadsFailed?: number;
  conntrack?: number;
  /** Drops by reason, the non-zero ones. */
  drops?: Record<string, number>;
  /** Packets of FORWARD 1 (--dport 7101) and 2 (--sport 7101). */
  udpIn?: number;
  udpOut?: number;
  /** GET /stats round trip. */
  apiMs?: number;
  error?: string;
}

export interface Reload { t: number; seed: number; lateMs: number; ms: number; status: number; generation?: number; serverSeconds?: number; carried?: number; rules?: number; error?: string }
export interface Edit { t: number; kind: 'insert' | 'delete'; pos?: number; ms: number; status: number; generation?: number; method?: string; fallback?: string; error?: string }
export interface Crash { t: number; instance: number; code: number | null; signal: string | null; stderr: string; lastLines: string[] }
export interface Kill {
  n: number;
  load1: number;
  killAt?: number;
  exit?: string;
  killToExitMs?: number;
  spawnToReadyMs?: number;
  /** From the ready line's own `ts` (ms resolution). */
  spawnToReadyLoggedMs?: number;
  spawnToFirstEchoMs?: number;
  exitToFirstEchoMs?: number;
  /** When the first echoed datagram was sent, relative to the spawn. */
  firstEchoSentAfterSpawnMs?: number;
  /** Last echo before the kill to the first after. */
  outageMs?: number;
  readyStatus?: number;
  ready?: Record<string, unknown>;
  error?: string;
}

export interface SoakResult {
  meta: Record<string, any>;
  config: { durationS: number; aclRules: number; headRules: number; udpRate: number; tcpMbps: number; churnRate: number; kills: number; workers: number; maxGrowthPct: number };
  soak: {
    samples: Sample[]; reloads: Reload[]; edits: Edit[]; crashes: Crash[];
    generationStart?: number; reloadsOkStart?: number;
    final?: {
      sample: Sample; ports: { name: string; rxPackets: number; txPackets: number; drops: number; kernelDrops: number }[];
      verdicts: Record<string, number>; dropsByReason: Record<string, number>; conntrack: Record<string, any>; reload: Record<string, any>;
      flowCache?: { hits: number; misses: number };
      veth: Record<'ra' | 'sa', { rxPackets: number; rxDropped: number; txPackets: number }>;
      matchStates?: { kind: string; key: string; entries: number; capacity: number; evictions: number; refused: number }[];
    };
    traffic?: {
      udp?: { sent: number; echoed: number; maxGapMs: number; gaps: { fromMs: number; toMs: number }[] };
      churn?: { tcpStarted: number; tcpOk: number; tcpFailed: number; tcpSkipped: number; udpSent: number; errors: Record<string, number> };
      ping?: string;
      tcp: { mbps?: number; retransmits?: number; error?: string; intervals?: { t: number; mbps: number }[] };
      udpPerSecond: { t: number; sent: number; echoed: number }[];
      churnPerSecond: { t: number; tcpOk: number; tcpFailed: number; udpSent: number }[];
    };
  };
  fault: { kills: Kill[]; udp?: { sent: number; echoed: number }; finalExit?: string | number | null; stoppedLine?: boolean };
  checks?: Check[];
}

export interface Check { name: string; ok: boolean; detail: string }

const sum = (v: number[]) => v.reduce((a, b) => a + b, 0);
export function median(v: number[]): number {
  if (!v.length) return NaN;
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}
function quantile(v: number[], q: number): number {
  if (!v.length) return NaN;
  const s = [...v].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}
/** Least-squares slope of y over x. */
function slope(pts: { x: number; y: number }[]): number {
  const n = pts.length;
  if (n < 2) return NaN;
  const mx = sum(pts.map((p) => p.x)) / n;
  const my = sum(pts.map((p) => p.y)) / n;
  const num = sum(pts.map((p) => (p.x - mx) * (p.y - my)));
  const den = sum(pts.map((p) => (p.x - mx) ** 2));
  return den ? num / den : NaN;
}

/** The comparison windows: the second and the last, each min(60 s, duration / 6) long. */
export function windows(r: SoakResult): { w: number; base: [number, number]; end: [number, number] } {
  const d = r.config.durationS;
  const w = Math.min(60, d / 6);
  return { w, base: [w, 2 * w], end: [d - w, d] };
}

export interface Growth {
  key: string; first: number; baseMedian: number; endMedian: number; growthMb: number; growthPct: number; max: number; slopeMbPerMin: number; limitMb: number; ok: boolean;
  /** The windows' minima: the heap's level after a major GC (its sawtooth's floor), what is retained. */
  baseFloor: number; endFloor: number; floorGrowthMb: number; floorGrowthPct: number;
  /** Least-squares slope of the minima of 30 s buckets, from the second window on. */
  floorSlopeMbPerMin: number;
}

export function growth(r: SoakResult, key: 'rssMb' | 'heapUsedMb' | 'heapAfterGcMb' | 'heapTotalMb' | 'externalMb'): Growth {
  const { base, end } = windows(r);
  const s = r.soak.samples.filter((x) => x[key] !== undefined);
  const v = (a: number, b: number) => s.filter((x) => x.t >= a && x.t < b).map((x) => x[key]!);
  const baseMedian = median(v(base[0], base[1]));
  const endMedian = median(v(end[0], end[1] + 1));
  const g = endMedian - baseMedian;
  const limitMb = Math.max(4, (baseMedian * r.config.maxGrowthPct) / 100);
  const baseFloor = Math.min(...v(base[0], base[1]));
  const endFloor = Math.min(...v(end[0], end[1] + 1));
  const fg = endFloor - baseFloor;
  const buckets: { x: number; y: number }[] = [];
  for (let a = base[0]; a + 30 <= end[1]; a += 30) {
    const b = v(a, a + 30);
    if (b.length) buckets.push({ x: a + 15, y: Math.min(...b) });
  }
  return {
    key, first: s[0]?.[key] ?? NaN, baseMedian, endMedian, growthMb: g, growthPct: (100 * g) / baseMedian, max: Math.max(...s.map((x) => x[key]!)),
    slopeMbPerMin: 60 * slope(s.filter((x) => x.t >= base[0]).map((x) => ({ x: x.t, y: x[key]! }))), limitMb, ok: Number.isFinite(g) && g <= limitMb,
    floorSlopeMbPerMin: 60 * slope(buckets), baseFloor, endFloor, floorGrowthMb: fg, floorGrowthPct: (100 * fg) / baseFloor,
  };
}

export function checksOf(r: SoakResult): Check[] {
  const c: Check[] = [];
  const { samples, reloads, edits, crashes, final } = r.soak;
  const add = (name: string, ok: boolean, detail: string) => c.push({ name, ok, detail });
  add('no crash during the soak', crashes.length === 0 && !!final && !final.sample.error,
    crashes.length ? `${crashes.length} crashes: ${crashes.map((x) => `t=${x.t} s exit ${x.code ?? x.signal}`).join('; ')}` : final?.sample.error ? `final sample: ${final.sample.error}` : 'flatwall run ran the whole soak');
  const badPut = reloads.filter((x) => x.status !== 200);
  add('every PUT /rules answered 200', reloads.length > 0 && badPut.length === 0,
    `${reloads.length - badPut.length} of ${reloads.length}${badPut.length ? `; first failure at t=${badPut[0].t} s: ${badPut[0].status} ${badPut[0].error}` : ''}`);
  const badEdit = edits.filter((x) => x.status !== (x.kind === 'insert' ? 201 : 200));
  add('every single-rule edit answered 201 (insert) / 200 (delete)', edits.length > 0 && badEdit.length === 0,
    `${edits.length - badEdit.length} of ${edits.length}${badEdit.length ? `; first failure at t=${badEdit[0].t} s: ${badEdit[0].status} ${badEdit[0].error}` : ''}`);
  const errs = samples.filter((x) => x.error);
  add('every sample answered (GET /stats, GET /rules)', errs.length === 0, `${samples.length - errs.length} of ${samples.length}${errs.length ? `; first: t=${errs[0].t} s ${errs[0].error}` : ''}`);
  if (final) {
    add('flatwall counted no failed reload', final.reload.failed === 0, `reloads_total{result="failure"} = ${final.reload.failed}`);
    const okPut = reloads.filter((x) => x.status === 200).length;
    const okEdit = edits.length - badEdit.length;
    const dGen = final.reload.generation - (r.soak.generationStart ?? NaN);
    const dOk = final.reload.succeeded - (r.soak.reloadsOkStart ?? NaN);
    add('generation +1 per successful PUT or edit', !crashes.length && dGen === okPut + okEdit && dOk === dGen,
      `generation ${r.soak.generationStart} -> ${final.reload.generation} (+${dGen}), successful activations +${dOk}; PUTs ${okPut} + edits ${okEdit} = ${okPut + okEdit}`);
  }
  // Never decreasing, within one process.
  const dec: string[] = [];
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1];
    const b = samples[i];
    if (a.instance !== b.instance) continue;
    for (const k of ['udpIn', 'udpOut'] as const) {
      if (a[k] !== undefined && b[k] !== undefined && b[k]! < a[k]!) dec.push(`${k} ${a[k]} -> ${b[k]} at t=${b.t} s`);
    }
  }
  const counted = samples.filter((x) => x.udpIn !== undefined).length;
  add('the UDP flow\'s rule counters never decreased across reloads and edits', dec.length === 0 && counted > 1,
    dec.length ? `${dec.length} decreases, first: ${dec[0]}` : `${counted} samples, each >= the one before (FORWARD 1 and 2)`);
  const udp = r.soak.traffic?.udp;
  if (final && udp && !crashes.length) {
    const { udpIn, udpOut } = final.sample;
    const ok = udpIn !== undefined && udpOut !== undefined && udp.echoed <= udpOut && udpOut <= udpIn && udpIn <= udp.sent;
    add('echoed <= --sport 7101 packets <= --dport 7101 packets <= sent (after the traffic)', ok,
      `${udp.echoed} echoes received <= ${udpOut} <= ${udpIn} <= ${udp.sent} datagrams sent`);
  }
  if (final) {
    const p = final.ports;
    const rx = sum(p.map((x) => x.rxPackets));
    const tx = sum(p.map((x) => x.txPackets));
    const drops = sum(p.map((x) => x.drops));
    const rs = final.verdicts.rejectSent;
    add('every frame received was forwarded or dropped: sum rx = sum tx - REJECT answers + sum drops', rx === tx - rs + drops,
      `rx ${rx}, tx ${tx}, REJECT answers ${rs}, drops ${drops}: ${tx - rs + drops}`);
    const byReason = sum(Object.values(final.dropsByReason));
    add('drops by reason sum to the ports\' drops', byReason === drops, `${byReason} by reason, ${drops} by port`);
    const fa = p.find((x) => x.name === 'fa');
    const fb = p.find((x) => x.name === 'fb');
    if (fa && fb && !crashes.length) {
      const v = final.veth;
      add('frames flatwall sent out of fb = frames ra received; out of fa = frames sa received', fb.txPackets === v.ra.rxPackets && fa.txPackets === v.sa.rxPackets,
        `fb tx ${fb.txPackets}, ra rx ${v.ra.rxPackets} (dropped ${v.ra.rxDropped}); fa tx ${fa.txPackets}, sa rx ${v.sa.rxPackets} (dropped ${v.sa.rxDropped})`);
    }
  }
  const sign = (x: number) => (x >= 0 ? '+' : '');
  for (const [key, what] of [['rssMb', 'RSS (VmRSS)'], ['heapAfterGcMb', 'V8 heap after a major collection']] as const) {
    const g = growth(r, key);
    const { base, end } = windows(r);
    add(`${what} flat: median of ${end[0]}-${end[1]} s vs ${base[0]}-${base[1]} s grew at most max(4 MB, ${r.config.maxGrowthPct} %)`, g.ok,
      `${g.baseMedian.toFixed(1)} -> ${g.endMedian.toFixed(1)} MB (${sign(g.growthMb)}${g.growthMb.toFixed(2)} MB, ${sign(g.growthPct)}${g.growthPct.toFixed(1)} %; limit ${g.limitMb.toFixed(1)} MB)`);
  }
  const kills = r.fault.kills;
  const back = kills.filter((k) => k.spawnToFirstEchoMs !== undefined && k.spawnToReadyMs !== undefined && k.readyStatus === 200);
  add('after each kill -9 the restart from the snapshot forwarded again and was ready', kills.length === r.config.kills && back.length === kills.length,
    `${back.length} of ${r.config.kills}${kills.find((k) => k.error) ? `; ${kills.find((k) => k.error)!.error}` : ''}`);
  add('the last restart stopped cleanly on SIGTERM (exit 0, "stopped" line)', r.fault.finalExit === 0 && !!r.fault.stoppedLine, `exit ${r.fault.finalExit}, stopped line ${r.fault.stoppedLine ? 'yes' : 'no'}`);
  return c;
}

const f1 = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(1));
const f3 = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(3));
const f0 = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(0));
const n = (x: number | undefined) => (x === undefined ? '-' : x.toLocaleString('en'));

export function markdown(r: SoakResult): string {
  const { config: cf, meta: m, soak: s } = r;
  const { base, end } = windows(r);
  const loads = s.samples.map((x) => x.load1);
  const out: string[] = [
    `# Soak and faults (bench/soak.ts${r.meta.quick ? ', --quick' : ''})`,
    '',
    `${m.date}, ${m.cpus} CPUs, ${m.memGb} GB; \`${m.command}\`. The machine is shared with other work: load average ${m.loadavgStart.join(' ')} at the start (before the bench started anything), ` +
      `${m.loadavgEnd?.join(' ')} at the end; 1-minute load sampled each second: median ${f1(median(loads))}, max ${f1(Math.max(...loads))} (the bench's own traffic tools and flatwall's worker are in it). ` +
      'Figures are this run\'s, under that load.',
    '',
    `flatwall run (${cf.workers} worker${cf.workers > 1 ? 's' : ''}) bridges Sender -- Receiver with ${n(cf.headRules + cf.aclRules)} FORWARD rules: ${cf.headRules} head rules ` +
      '(the counted UDP flow, conntrack INVALID drop and ESTABLISHED,RELATED accept, recent, hashlimit, connlimit, limit, the allows of the bench\'s services), then ' +
      `${n(cf.aclRules)} generated \`acl\` rules (seed 1 or 2; they end in catch-alls, so they decide whatever the head does not), policy DROP. For ${cf.durationS} s: iperf3 TCP at ${cf.tcpMbps || 'unlimited'} Mb/s, ` +
      `a UDP stream of ${cf.udpRate} datagrams/s echoed by the receiver, ${cf.churnRate} new TCP connections/s (connect, 1-byte echo, close) and ${cf.churnRate} UDP datagrams/s to a new port each, ping at 10/s` +
      `${s.traffic?.ping ? '' : ' (not run: no iputils ping on PATH)'}. On a 1 s grid: PUT /rules alternating the seed-1 and seed-2 sets (text), 1/3 s later POST /rules -I (random position in the acl part), ` +
      '2/3 s later DELETE /rules/FORWARD/N (the inserted rule or a random acl rule); a sample 0.9 s into each second.',
    '',
    '## Checks',
    '',
    '| check | result | measured |',
    '|---|---|---|',
    ...(r.checks ?? []).map((c) => `| ${c.name} | ${c.ok ? 'pass' : '**FAIL**'} | ${c.detail.replace(/\|/g, '/')} |`),
    '',
    '## Memory of flatwall run',
    '',
    `Medians and minima of the second window (${base[0]}-${base[1]} s) and the last (${end[0]}-${end[1]} s), one sample a second. The heap used is a sawtooth (garbage piles up between ` +
      'major collections), so its median in a window depends on when the collector ran; the heap just after the last major collection (its value repeats until the next one) is what stays allocated, ' +
      'and it is the one checked, with the RSS. ' +
      `Slope: least squares over every sample from ${base[0]} s on; floor slope: over the minima of 30 s buckets from ${base[0]} s on. Plots: ${r.meta.name}-rss.svg, ${r.meta.name}-heap.svg.`,
    '',
    '| MB | first sample | median, second window | median, last window | growth | min, second window | min, last window | growth | max | slope MB/min | floor slope MB/min |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  const pm = (x: number, pct: number) => `${x >= 0 ? '+' : ''}${x.toFixed(2)} (${pct >= 0 ? '+' : ''}${pct.toFixed(1)} %)`;
  for (const [k, label] of [['rssMb', 'RSS (VmRSS)'], ['heapAfterGcMb', 'V8 heap after a major GC'], ['heapUsedMb', 'V8 heap used'], ['heapTotalMb', 'V8 heap total'], ['externalMb', 'external (Buffers)']] as const) {
    const g = growth(r, k);
    out.push(`| ${label} | ${f1(g.first)} | ${f1(g.baseMedian)} | ${f1(g.endMedian)} | ${pm(g.growthMb, g.growthPct)} | ${f1(g.baseFloor)} | ${f1(g.endFloor)} | ${pm(g.floorGrowthMb, g.floorGrowthPct)} | ${f1(g.max)} | ${f3(g.slopeMbPerMin)} | ${f3(g.floorSlopeMbPerMin)} |`);
  }
  const gcs = s.samples.filter((x) => x.majorGcs !== undefined);
  if (gcs.length > 1) {
    const d = gcs[gcs.length - 1].majorGcs! - gcs[0].majorGcs!;
    out.push('', `${d} major collections between the first and the last sample (one every ${((gcs[gcs.length - 1].t - gcs[0].t) / Math.max(1, d)).toFixed(1)} s).`);
  }
  const ok = s.reloads.filter((x) => x.status === 200);
  const ms = ok.map((x) => x.ms);
  const late = s.reloads.filter((x) => x.lateMs > 0);
  out.push('', '## Reloads and edits', '',
    `PUT /rules: ${s.reloads.length} (${ok.length} answered 200), request to answer p50 ${f0(median(ms))} ms, p99 ${f0(quantile(ms, 0.99))} ms, max ${f0(Math.max(...ms))} ms ` +
      `(server: p50 ${f0(median(ok.map((x) => (x.serverSeconds ?? NaN) * 1000)))} ms); ${late.length} started late (the previous second's work overran, by up to ${f0(Math.max(0, ...late.map((x) => x.lateMs)))} ms). ` +
      `Counters carried per PUT (rules with non-zero counters that continued): median ${f0(median(ok.map((x) => x.carried ?? NaN)))}.`);
  for (const kind of ['insert', 'delete'] as const) {
    const e = s.edits.filter((x) => x.kind === kind);
    const good = e.filter((x) => x.status === (kind === 'insert' ? 201 : 200));
    const methods: Record<string, number> = {};
    for (const x of good) methods[x.method ?? '?'] = (methods[x.method ?? '?'] ?? 0) + 1;
    const em = good.map((x) => x.ms);
    out.push('', `${kind === 'insert' ? 'POST /rules -I' : 'DELETE /rules/FORWARD/N'}: ${e.length} (${good.length} answered ${kind === 'insert' ? 201 : 200}; ${Object.entries(methods).map(([k, v]) => `${v} ${k}`).join(', ')}), ` +
      `p50 ${f1(median(em))} ms, p99 ${f1(quantile(em, 0.99))} ms, max ${f1(Math.max(...em))} ms.`);
  }
  const t = s.traffic;
  const fin = s.final;
  if (t) {
    const ct = s.samples.filter((x) => x.conntrack !== undefined && x.t >= cf.durationS / 2).map((x) => x.conntrack!);
    const tcpIv = t.tcp.intervals ?? [];
    out.push('', '## Traffic during the soak', '',
      `- UDP stream: ${n(t.udp?.sent)} sent, ${n(t.udp?.echoed)} echoes received (${t.udp ? ((100 * (t.udp.sent - t.udp.echoed)) / t.udp.sent).toFixed(3) : '-'} % lost on the round trip), longest gap between echoes ${f0(t.udp?.maxGapMs)} ms, ${t.udp?.gaps.length ?? '-'} gaps over 100 ms.` +
        (t.udp && fin?.sample.udpIn !== undefined && !s.crashes.length
          ? ` Where the lost ones went, from the two rules' counters: ${n(t.udp.sent - fin.sample.udpIn)} never reached the \`--dport 7101\` rule (lost before flatwall judged them: ` +
            `flatwall's RX ring on fa was full ${n(fin.ports.find((p) => p.name === 'fa')?.kernelDrops)} times over the soak, all traffic counted), ` +
            `${n(fin.sample.udpIn - fin.sample.udpOut!)} were forwarded to the receiver and their echoes never reached the \`--sport 7101\` rule (lost in the receiver, ` +
            `or at flatwall's RX ring on fb, full ${n(fin.ports.find((p) => p.name === 'fb')?.kernelDrops)} times), ` +
            `${n(fin.sample.udpOut! - t.udp.echoed)} echoes were forwarded back and not read by the sender (every frame out of fa reached sa, see the checks).`
          : ''),
      `- TCP (iperf3): ${f0(t.tcp.mbps)} Mb/s received on average${t.tcp.error ? ` (${t.tcp.error})` : ''}, ${t.tcp.retransmits ?? '-'} retransmits; 1 s intervals: min ${f0(Math.min(...tcpIv.map((x) => x.mbps)))}, median ${f0(median(tcpIv.map((x) => x.mbps)))} Mb/s.`,
      `- Churn: ${n(t.churn?.tcpOk)} TCP connections completed, ${n(t.churn?.tcpFailed)} failed${t.churn && Object.keys(t.churn.errors).length ? ` (${Object.entries(t.churn.errors).map(([k, v]) => `${k} ${v}`).join(', ')})` : ''}, ${n(t.churn?.tcpSkipped)} not started (256 open); ${n(t.churn?.udpSent)} UDP datagrams to new ports.`,
      `- ping: ${t.ping ?? 'not run'}.`,
      `- Conntrack entries in the second half: min ${n(Math.min(...ct))}, median ${n(median(ct))}, max ${n(Math.max(...ct))} (plot: ${r.meta.name}-conntrack.svg); at the end: inserted ${n(fin?.conntrack.insert)}, expired ${n(fin?.conntrack.expired)}, insert_failed ${n(fin?.conntrack.insert_failed)}, early_drop ${n(fin?.conntrack.early_drop)}, invalid ${n(fin?.conntrack.invalid)}.`,
    );
    if (fin) {
      const d = Object.entries(fin.dropsByReason).filter(([, v]) => v > 0);
      out.push(`- Drops by reason (whole soak): ${d.length ? d.map(([k, v]) => `${k} ${n(v)}`).join(', ') : 'none'}; verdicts: accept ${n(fin.verdicts.accept)}, drop ${n(fin.verdicts.drop)}, reject ${n(fin.verdicts.reject)}; flow cache ${n(fin.flowCache?.hits)} hits, ${n(fin.flowCache?.misses)} misses.`);
      if (fin.matchStates?.length) out.push(`- Match states at the end: ${fin.matchStates.map((x) => `${x.key} ${x.entries}/${x.capacity} entries${x.refused ? `, ${x.refused} refused` : ''}${x.evictions ? `, ${x.evictions} evictions` : ''}`).join('; ')}.`);
      out.push('', '| port | rx packets | tx packets | drops | kernel drops (ring full) |', '|---|---:|---:|---:|---:|',
        ...fin.ports.map((p) => `| ${p.name} | ${n(p.rxPackets)} | ${n(p.txPackets)} | ${n(p.drops)} | ${n(p.kernelDrops)} |`));
    }
    out.push('', `Plot of the traffic per second: ${r.meta.name}-traffic.svg.`);
  }
  const ks = r.fault.kills;
  const med = (k: keyof Kill) => f0(median(ks.map((x) => x[k] as number).filter((x) => Number.isFinite(x))));
  out.push('', '## kill -9 under load, restart from the snapshot', '',
    `${cf.kills} times, 3 s apart, with the same kind of traffic (UDP ${cf.udpRate}/s echoed, iperf3 TCP, churn): \`kill -9\` flatwall run, wait for the process to be gone, spawn \`flatwall run --snapshot SNAP -r FILE\` ` +
      `(SNAP: \`flatwall compile -o\` of the seed-1 set, ${r.meta.compileSeconds} s, made before the soak). "First echo": the first echo of a datagram sent after the old process was gone, which only the new process can have forwarded, both ways. ` +
      '"Outage": from the last echo before the kill to the first after it.',
    '"Ready (logged)": the ready line\'s own timestamp (ms resolution); "ready (read)": when the bench read the line from the pipe.',
    '', '| kill | load | gone after | spawn -> ready (logged) | spawn -> ready (read) | spawn -> first echo | gone -> first echo | outage | ready line: rules, load s, snapshot read s, image |', '|---|---:|---:|---:|---:|---:|---:|---:|---|',
    ...ks.map((k) => k.error ? `| ${k.n} | ${k.load1} | failed: ${k.error.replace(/\|/g, '/')} | | | | | | |`
      : `| ${k.n} | ${k.load1} | ${f1(k.killToExitMs)} ms | ${f0(k.spawnToReadyLoggedMs)} ms | ${f0(k.spawnToReadyMs)} ms | ${f0(k.spawnToFirstEchoMs)} ms | ${f0(k.exitToFirstEchoMs)} ms | ${f0(k.outageMs)} ms | ` +
        `${k.ready ? `${k.ready.rules}, ${Number(k.ready.seconds).toFixed(3)}, ${Number(k.ready.snapshotReadSeconds).toFixed(3)}, ${JSON.stringify(k.ready.image)}` : '-'} |`),
    `| median | | ${med('killToExitMs')} ms | ${med('spawnToReadyLoggedMs')} ms | ${med('spawnToReadyMs')} ms | ${med('spawnToFirstEchoMs')} ms | ${med('exitToFirstEchoMs')} ms | ${med('outageMs')} ms | |`,
  );
  const before = ks.filter((k) => k.spawnToFirstEchoMs !== undefined && k.spawnToReadyLoggedMs !== undefined && k.spawnToFirstEchoMs < k.spawnToReadyLoggedMs).length;
  out.push('', `First echo received before the ready line's timestamp: ${before} of ${ks.length} (the echo's time: when the sending nettool read it). ` +
    `UDP stream over the fault phase: ${n(r.fault.udp?.sent)} sent, ${n(r.fault.udp?.echoed)} echoed.`);
  out.push('', `flatwall's log lines by level (every process): ${Object.entries(r.meta.logLevels ?? {}).map(([k, v]) => `${k} ${v}`).join(', ')}.`, '');
  return `${out.join('\n')}\n`;
}

export function plots(r: SoakResult): [string, string][] {
  const s = r.soak.samples;
  const { base, end } = windows(r);
  const marks = [
    { x: base[0], label: 'second window' }, { x: end[0], label: 'last window' },
    ...r.soak.crashes.map((c) => ({ x: c.t, label: `crash (${c.code ?? c.signal})` })),
  ];
  const line = (name: string, k: keyof Sample): Series => ({ name, points: s.filter((x) => typeof x[k] === 'number').map((x) => ({ x: x.t, y: x[k] as number })) });
  const q = r.meta.quick ? ' (quick)' : '';
  const title = (what: string) => `${what}, ${r.config.durationS} s soak, a reload a second${q}`;
  const out: [string, string][] = [
    [`${r.meta.name}-rss.svg`, svgPlot([line('RSS (VmRSS)', 'rssMb')], { title: title('flatwall run RSS'), xLabel: 'seconds', yLabel: 'MB', linearX: true, marks, dots: false })],
    [`${r.meta.name}-heap.svg`, svgPlot([line('heap used', 'heapUsedMb'), line('after major GC', 'heapAfterGcMb'), line('heap total', 'heapTotalMb'), line('external', 'externalMb')],
      { title: title('flatwall run V8 heap'), xLabel: 'seconds', yLabel: 'MB', linearX: true, marks, dots: false })],
    [`${r.meta.name}-conntrack.svg`, svgPlot([line('conntrack entries', 'conntrack')], { title: title('Tracked connections'), xLabel: 'seconds', yLabel: 'entries', linearX: true, dots: false })],
  ];
  const t = r.soak.traffic;
  if (t) {
    const rate = <T extends { t: number }>(v: T[], k: keyof T) => v.slice(1).map((x, i) => ({ x: x.t, y: ((x[k] as number) - (v[i][k] as number)) / Math.max(0.001, x.t - v[i].t) }));
    out.push([`${r.meta.name}-traffic.svg`, svgPlot([
      { name: 'UDP echoes/s', points: rate(t.udpPerSecond, 'echoed') },
      { name: 'TCP Mb/s (iperf3)', points: (t.tcp.intervals ?? []).map((x) => ({ x: x.t, y: x.mbps })) },
      { name: 'new TCP conns/s', points: rate(t.churnPerSecond, 'tcpOk') },
      { name: 'PUT /rules ms', points: r.soak.reloads.filter((x) => x.status === 200).map((x) => ({ x: x.t, y: x.ms })) },
    ], { title: title('Traffic and reload latency'), xLabel: 'seconds', yLabel: 'per second (TCP: Mb/s; PUT: ms)', linearX: true, dots: false })]);
  }
  return out;
}
