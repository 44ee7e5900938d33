// `npm run bench:classifier -- --ext`: the FORWARD walk WITH match programs,
// plain table vs the same table with the extension block of bench/ext-rules.ts.
//
// The classifier binding (`lookup`, `bench`) answers keys and never runs a
// match program, so it cannot see what extension rules cost. This measures
// through native replayFrames (what `flatwall replay` runs: the dataplane's
// frame parser, then ext::EvaluateExt, the walk the packet workers run,
// minus the flow cache and the I/O), stateless (no conntrack: the walk is
// what is measured). The block's `-m set` rule tests fail2ban's f2b-sshd
// set (extIpsetText(): 10,000 banned addresses), restored into one
// IpsetStore that the compiler resolves the set name against and that every
// call, plain and ext alike, is handed as `sets` (each call clones it, in
// the 1-frame call as in the full one, so the clone is taken out too).
//
// Frames: 2^18 distinct synthetic IPv4 frames (50% TCP ACK, 40% UDP, 10% ICMP
// echo; 1024 sources in 10.0.0.0/22, 1024 destinations in 10.0.128.0/22,
// ports 1024-61023, TTL 64, 18-byte payloads), repeated to --frames per call,
// stamped 1 us apart (the rate and history matches run on that clock).
// replayFrames builds the classifier inside the call, so each round times a
// 1-frame call and a full call back to back and takes the difference as the
// walk: frames/s = (F - 1) / (T_full - T_one), both in process CPU time
// (user + system, less sensitive to other jobs on a shared machine than the
// wall clock, which is reported too). Rounds alternate the variant that
// goes first; the ratio ext/plain is taken per round (side by side) and
// reported as median [min-max].
//
// Verification, per size: every benchmark frame is ACCEPTed by the table's
// final rule; the head rules never match (their programs are false); the
// tail's `limit 3/min burst 10 LOG` matched at least once and at most its
// burst plus rate: it has no indexed condition and sits right before the
// final ACCEPT, so every frame's walk ran its program. Probe frames (a UDP
// frame from a banned address, REJECTed by the set rule: the store is
// wired; TTL 3,
// a 1200-byte ping, tcp/139 then tcp/5201 from one source, 7 SYNs to tcp/22
// from another, conntrack on) check that the programs decide what the
// kernel would.
//
// --breakdown adds, per size, tables with only parts of the block (each
// reached rule alone, and the block without the --rcheck rule), each paired
// with plain in the same rounds: what each match costs a packet.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { parseText } from '../src/rules/load';
import { compile } from '../src/rules/compile';
import { native } from '../src/native';
import { frame, type FrameSpec } from '../test/frames';
import { IpsetStore } from '../src/sets/store';
import { useSetStore } from '../src/sets/registry';
import type { NativeSetStore } from '../src/sets/types';
import { bannedAddresses, EXT_BANNED, EXT_HEAD, EXT_SET, EXT_SUMMARY, EXT_TAIL, extIpsetText, extLines, programsPerPacket } from './ext-rules';
import { argv, flag, opt } from './args';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const DISTINCT = 1 << 18;

interface Variant {
  name: string;
  head: readonly string[];
  tail: readonly string[];
}
const has = (s: string) => (l: string) => l.includes(s);
const VARIANTS: Variant[] = [
  { name: 'plain', head: [], tail: [] },
  { name: 'ext', head: EXT_HEAD, tail: EXT_TAIL },
];
const BREAKDOWN: Variant[] = [
  { name: 'only the fail2ban set (every packet)', head: EXT_HEAD.filter(has('-m set')), tail: [] },
  { name: 'ext without the --rcheck rule', head: EXT_HEAD.filter((l) => !l.includes('--rcheck')), tail: EXT_TAIL },
  { name: 'only recent --rcheck (every packet)', head: EXT_HEAD.filter(has('--rcheck')), tail: [] },
  { name: 'only ttl (every packet)', head: EXT_HEAD.filter(has('-m ttl')), tail: [] },
  { name: 'only hashlimit (UDP, 40%)', head: EXT_HEAD.filter(has('-m hashlimit')), tail: [] },
  { name: 'only length (ICMP, 10%)', head: EXT_HEAD.filter(has('-m length')), tail: [] },
  { name: 'only the limit LOG tail (every packet)', head: [], tail: EXT_TAIL },
];

interface Prepared {
  variant: string;
  ext: boolean; // the full block
  buffer: ArrayBuffer;
  opts: { iif: number; oif: number; ruleCount: number; sets: NativeSetStore };
  finalId: number;
  headIds: number[];
  logId: number;
  records: number;
  compileSeconds: number;
}

interface Round {
  rules: number; round: number; variant: string; ext: boolean; first: boolean;
  one_cpu_s: number; full_cpu_s: number; one_wall_s: number; full_wall_s: number;
  fps_cpu: number; fps_wall: number; loadavg: number;
}

const median = (a: number[]) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const cpuS = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

function buildFrames(total: number) {
  const bufs: Buffer[] = [];
  const proto: number[] = [];
  for (let i = 0; i < DISTINCT; i++) {
    const p = [6, 6, 6, 6, 6, 17, 17, 17, 17, 1][i % 10];
    proto.push(p);
    bufs.push(frame({ family: 4, src: 0x0a000001 + (i % 1024), dst: 0x0a008000 + ((i >> 3) % 1024), proto: p,
      sport: 30000 + (i % 20000), dport: 1024 + ((i * 7919) % 60000), tcpFlags: 0x10, icmpType: 8, payload: 18 }));
  }
  const reps = Math.max(1, Math.round(total / DISTINCT));
  const n = reps * DISTINCT;
  const one = Buffer.concat(bufs);
  const frames = Buffer.alloc(one.length * reps);
  for (let k = 0; k < reps; k++) one.copy(frames, k * one.length);
  const offsets = new Uint32Array(n + 1);
  let o = 0;
  for (let k = 0; k < reps; k++) for (let i = 0; i < DISTINCT; i++) offsets[k * DISTINCT + i + 1] = (o += bufs[i].length);
  const timestamps = new BigUint64Array(n);
  for (let i = 0; i < n; i++) timestamps[i] = BigInt(i) * 1000n;
  const mix = { tcp: proto.filter((p) => p === 6).length / DISTINCT, udp: proto.filter((p) => p === 17).length / DISTINCT, icmp: proto.filter((p) => p === 1).length / DISTINCT };
  return { frames, offsets, timestamps, n, bytes: frames.length, mix, first: bufs[0] };
}

function prepare(n: number, v: Variant, sets: NativeSetStore): Prepared {
  const ext = v.name === 'ext';
  const t0 = performance.now();
  let c = compile(parseText(`${[...extLines('chain', n, v.name !== 'plain', 1, v.head, v.tail)].join('\n')}\n`, `chain-${n}-${v.name}`));
  const compileSeconds = (performance.now() - t0) / 1000;
  const fwd = c.rules.filter((r) => r.chain === 'FORWARD' && !r.policy && !r.internal);
  const last = fwd.reduce((a, b) => (b.index > a.index ? b : a));
  const p: Prepared = {
    variant: v.name, ext, buffer: c.buffer, opts: { iif: c.ifaces.classOf('eth0'), oif: c.ifaces.classOf('eth1'), ruleCount: c.rules.length, sets },
    finalId: last.id,
    headIds: ext ? fwd.filter((r) => r.index <= EXT_HEAD.length).map((r) => r.id) : [],
    logId: ext ? fwd.find((r) => r.index === last.index - EXT_TAIL.length)!.id : -1,
    records: c.tables.find((t) => t.family === 4 && t.hook === 'FORWARD')!.records,
    compileSeconds,
  };
  c = undefined as never;
  gc();
  return p;
}

/** Probe frames through the ext table, conntrack on: each program decides as the kernel would. */
async function probes(p: Prepared): Promise<{ ok: boolean; detail: string[] }> {
  const S = 0x0a000001, D = 0x0a008001;
  const banned = bannedAddresses(1)[0].split('.').reduce((a, o) => a * 256 + Number(o), 0);
  const cases: [string, FrameSpec, string][] = [
    [`UDP from ${bannedAddresses(1)[0]} (in ${EXT_SET}: -m set ... -j REJECT)`, { family: 4, src: banned, dst: D, proto: 17, sport: 4000, dport: 5201, payload: 18 }, 'REJECT'],
    ['TTL 3 (ttl --ttl-lt 4)', { family: 4, src: S, dst: D, proto: 17, sport: 4000, dport: 5201, payload: 18 }, 'DROP'],
    ['1200-byte ping (length 1000:65535)', { family: 4, src: S, dst: D, proto: 1, icmpType: 8, payload: 1172 }, 'DROP'],
    ['84-byte ping', { family: 4, src: S, dst: D, proto: 1, icmpType: 8, payload: 56 }, 'ACCEPT'],
    ['tcp/139 from 10.0.9.9 (recent --set portscan)', { family: 4, src: 0x0a000909, dst: D, proto: 6, sport: 4001, dport: 139, tcpFlags: 2 }, 'DROP'],
    ['then tcp/5201 from 10.0.9.9 (recent --rcheck portscan)', { family: 4, src: 0x0a000909, dst: D, proto: 6, sport: 4002, dport: 5201, tcpFlags: 2 }, 'DROP'],
    ['tcp/5201 from 10.0.9.10', { family: 4, src: 0x0a00090a, dst: D, proto: 6, sport: 4003, dport: 5201, tcpFlags: 2 }, 'ACCEPT'],
  ];
  for (let k = 1; k <= 7; k++) {
    cases.push([`SYN ${k} to tcp/22 from 10.0.9.11 (recent SSH, hitcount 6)`, { family: 4, src: 0x0a00090b, dst: D, proto: 6, sport: 5000 + k, dport: 22, tcpFlags: 2 }, k >= 6 ? 'DROP' : 'ACCEPT']);
  }
  const bufs = cases.map(([, f]) => frame(f));
  const ttl3 = bufs[1];
  ttl3[22] = 3; // TTL 3
  ttl3.writeUInt16BE(0, 24); // IPv4 checksum again
  let s = 0;
  for (let i = 0; i < 20; i += 2) s += ttl3.readUInt16BE(14 + i);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  ttl3.writeUInt16BE(~s & 0xffff, 24);
  const offsets = new Uint32Array(bufs.length + 1);
  bufs.forEach((b, i) => (offsets[i + 1] = offsets[i] + b.length));
  const timestamps = new BigUint64Array(bufs.map((_, i) => BigInt(i) * 1_000_000n));
  const res = await native().replayFrames(p.buffer, Buffer.concat(bufs), offsets, { ...p.opts, timestamps, conntrack: true });
  let ok = true;
  const detail = cases.map(([what, , want], i) => {
    const got = ['ACCEPT', 'DROP', 'REJECT'][res.verdict[i]] ?? `code ${res.verdict[i]}`;
    if (got !== want) ok = false;
    return `${got === want ? 'ok' : 'WRONG'}: ${what}: ${got}${got === want ? '' : ` (want ${want})`}`;
  });
  return { ok, detail };
}

export async function runExtReplay(): Promise<void> {
  const sizes = (opt('--sizes') ?? '1,100000,1000000').split(',').map(Number);
  if (sizes.some((n) => !Number.isInteger(n) || n < 1)) throw new Error('--sizes takes positive integers');
  const rounds = Number(opt('--rounds') ?? 5);
  const total = Number(opt('--frames') ?? 1 << 23);
  const name = opt('--out') ?? 'extensions-replay';
  const variants = flag('--breakdown') ? [...VARIANTS, ...BREAKDOWN] : VARIANTS;
  const out = join(__dirname, '..', '..', 'bench', 'results');
  mkdirSync(out, { recursive: true });
  const say = (s: string) => process.stderr.write(`bench:classifier --ext: ${s}\n`);
  say('measures the walk WITH match programs through native replayFrames (the classifier binding never runs them)');
  // fail2ban's set, for the compiler (the rule names it) and for every call.
  const store = new IpsetStore();
  const restored = store.restore(extIpsetText(), `${EXT_SET}.ipset`);
  useSetStore(store);
  say(`${EXT_SET}: ${store.summary(EXT_SET)[0].entries} entries restored in ${restored.seconds.toFixed(2)} s`);
  const fr = buildFrames(total);
  say(`${fr.n} frames (${DISTINCT} distinct, ${(fr.bytes / 2 ** 20).toFixed(0)} MiB) per call, ${rounds} rounds per size`);
  const one = { frames: fr.first, offsets: new Uint32Array([0, fr.first.length]), timestamps: fr.timestamps.subarray(0, 1) };
  const all: Round[] = [];
  const checks: Record<string, unknown>[] = [];
  for (const n of sizes) {
    say(`${n} rules: compile ${variants.map((v) => v.name).join(', ')}`);
    const prepared = variants.map((v) => prepare(n, v, store.native));
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 ? [...prepared].reverse() : prepared;
      for (const p of order) {
        gc();
        let w0 = performance.now();
        let c0 = cpuS();
        await native().replayFrames(p.buffer, one.frames, one.offsets, { ...p.opts, timestamps: one.timestamps });
        const oneCpu = cpuS() - c0;
        const oneWall = (performance.now() - w0) / 1000;
        gc();
        w0 = performance.now();
        c0 = cpuS();
        const res = await native().replayFrames(p.buffer, fr.frames, fr.offsets, { ...p.opts, timestamps: fr.timestamps });
        const fullCpu = cpuS() - c0;
        const fullWall = (performance.now() - w0) / 1000;
        all.push({ rules: n, round: r, variant: p.variant, ext: p.ext, first: p === order[0], one_cpu_s: oneCpu, full_cpu_s: fullCpu, one_wall_s: oneWall, full_wall_s: fullWall,
          fps_cpu: (fr.n - 1) / (fullCpu - oneCpu), fps_wall: (fr.n - 1) / (fullWall - oneWall), loadavg: loadavg()[0] });
        if (r === 0) {
          let accepted = 0;
          let byFinal = 0;
          for (let i = 0; i < fr.n; i++) {
            if (res.verdict[i] === 0) accepted++;
            if (res.finalRule[i] === p.finalId) byFinal++;
          }
          const seconds = fr.n * 1e-6;
          const logMax = 10 + Math.ceil((3 * seconds) / 60);
          const c: Record<string, unknown> = { rules: n, variant: p.variant, ext: p.ext, frames: fr.n, accepted, acceptedByFinalRule: byFinal, records: p.records, compileSeconds: +p.compileSeconds.toFixed(2) };
          let ok = accepted === fr.n && byFinal === fr.n;
          if (p.ext) {
            c.headRuleHits = p.headIds.map((id) => res.hits[id]);
            c.logHits = res.hits[p.logId];
            c.logHitsAllowed = `1..${logMax}`;
            ok = ok && p.headIds.every((id) => res.hits[id] === 0) && res.hits[p.logId] >= 1 && res.hits[p.logId] <= logMax;
            const pr = await probes(p);
            c.probes = pr.detail;
            ok = ok && pr.ok;
          }
          c.ok = ok;
          checks.push(c);
          if (!ok) say(`!! ${n} rules ${p.variant}: verification failed: ${JSON.stringify(c)}`);
        }
      }
      const last = all.slice(-order.length);
      say(`${n} rules round ${r + 1}/${rounds}: ${last.map((x) => `${x.variant} ${(x.fps_cpu / 1e6).toFixed(2)} M frames/s`).join(', ')} (load ${loadavg()[0].toFixed(1)})`);
    }
  }
  // Summary per size: medians and the per-round paired ratio.
  const summarize = (n: number, variant: string) => {
    const rs = all.filter((x) => x.rules === n && (x.variant === 'plain' || x.variant === variant));
    const pl = rs.filter((x) => x.variant === 'plain');
    const ex = rs.filter((x) => x.variant === variant);
    const ratio = (k: 'fps_cpu' | 'fps_wall') => pl.map((p) => ex.find((e) => e.round === p.round)![k] / p[k]);
    const rc = ratio('fps_cpu');
    const rw = ratio('fps_wall');
    const build = (a: Round[]) => median(a.map((x) => x.one_cpu_s));
    return {
      rules: n, variant,
      plain_fps_cpu: median(pl.map((x) => x.fps_cpu)), ext_fps_cpu: median(ex.map((x) => x.fps_cpu)),
      ratio_cpu: { median: median(rc), min: Math.min(...rc), max: Math.max(...rc), rounds: rc },
      ratio_wall: { median: median(rw), min: Math.min(...rw), max: Math.max(...rw), rounds: rw },
      plain_ns_per_frame: 1e9 / median(pl.map((x) => x.fps_cpu)), ext_ns_per_frame: 1e9 / median(ex.map((x) => x.fps_cpu)),
      one_frame_call_cpu_s: { plain: build(pl), ext: build(ex) },
      loadavg: [Math.min(...rs.map((x) => x.loadavg)), Math.max(...rs.map((x) => x.loadavg))],
    };
  };
  const summary = sizes.map((n) => summarize(n, 'ext'));
  const breakdown = variants.length > 2 ? sizes.flatMap((n) => variants.slice(1).map((v) => summarize(n, v.name))) : [];
  const f2 = (x: number) => x.toFixed(2);
  const L: string[] = [];
  L.push('# Match programs on the replay path: plain vs --ext', '');
  L.push(`Command: \`npm run bench:classifier -- ${argv.join(' ')}\`. ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown CPU'}), Node ${process.version}, ${new Date().toISOString()}.`);
  L.push('The classifier binding (`bench:classifier` without --ext) never runs match programs; this measures native replayFrames ' +
    '(the frame parser and ext::EvaluateExt, the walk of the packet workers without flow cache or I/O), conntrack off.');
  L.push(`Table: \`flatwall gen chain N\`; ext adds ${EXT_SUMMARY}. Programs per benchmark frame: TCP ${programsPerPacket('tcp')}, UDP ${programsPerPacket('udp')}, ICMP ${programsPerPacket('icmp')}, all false.`);
  L.push(`Frames per call: ${fr.n} (${DISTINCT} distinct; ${Math.round(fr.mix.tcp * 100)}% TCP, ${Math.round(fr.mix.udp * 100)}% UDP, ${Math.round(fr.mix.icmp * 100)}% ICMP). ` +
    `Rate = (F-1) / (T_full - T_1 frame) in process CPU time; ${rounds} rounds per size, alternating which variant goes first; ratio ext/plain per round, median [min-max].`, '');
  L.push('| rules | plain M frames/s | ext M frames/s | ext/plain (CPU time) | ext/plain (wall clock) | ns/frame plain -> ext | 1-frame call (build) CPU s plain / ext | load avg |');
  L.push('|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const s of summary) {
    L.push(`| ${s.rules} | ${f2(s.plain_fps_cpu / 1e6)} | ${f2(s.ext_fps_cpu / 1e6)} | ${f2(s.ratio_cpu.median)} [${f2(s.ratio_cpu.min)}-${f2(s.ratio_cpu.max)}] | ` +
      `${f2(s.ratio_wall.median)} [${f2(s.ratio_wall.min)}-${f2(s.ratio_wall.max)}] | ${s.plain_ns_per_frame.toFixed(0)} -> ${s.ext_ns_per_frame.toFixed(0)} | ` +
      `${f2(s.one_frame_call_cpu_s.plain)} / ${f2(s.one_frame_call_cpu_s.ext)} | ${s.loadavg.map((x) => x.toFixed(1)).join('-')} |`);
  }
  if (breakdown.length) {
    L.push('', `Breakdown (--breakdown): each table paired with plain in the same rounds; added ns per frame = ext ns/frame - plain ns/frame (medians).`, '');
    L.push('| rules | table | ext/plain (CPU time) | ns/frame plain -> this | added ns/frame |', '|---:|---|---:|---:|---:|');
    for (const b of breakdown) {
      L.push(`| ${b.rules} | ${b.variant} | ${f2(b.ratio_cpu.median)} [${f2(b.ratio_cpu.min)}-${f2(b.ratio_cpu.max)}] | ${b.plain_ns_per_frame.toFixed(0)} -> ${b.ext_ns_per_frame.toFixed(0)} | ${(b.ext_ns_per_frame - b.plain_ns_per_frame).toFixed(0)} |`);
    }
  }
  L.push('', 'Verification (round 1 of each size):', '');
  for (const c of checks) {
    L.push(`- ${c.ok ? 'ok' : '**FAILED**'}: ${c.rules} rules ${c.variant}: ${c.accepted}/${c.frames} frames accepted, ${c.acceptedByFinalRule} by the final ACCEPT` +
      (c.ext ? `; head rules' hits ${JSON.stringify(c.headRuleHits)}; tail LOG hits ${c.logHits} (allowed ${c.logHitsAllowed})` : ''));
    if (c.probes) for (const p of c.probes as string[]) L.push(`  - ${p}`);
  }
  L.push('');
  const md = L.join('\n');
  writeFileSync(join(out, `${name}.json`), `${JSON.stringify({ benchmark: 'classifier --ext (replay path)', command: `npm run bench:classifier -- ${argv.join(' ')}`,
    date: new Date().toISOString(), cpu: cpus()[0]?.model, cores: cpus().length, node: process.version, frames: fr.n, distinct: DISTINCT, mix: fr.mix,
    rounds, ext_head: EXT_HEAD, ext_tail: EXT_TAIL, ext_set: { name: EXT_SET, type: 'hash:ip', entries: EXT_BANNED }, summary, breakdown, variants, checks, rounds_raw: all }, null, 1)}\n`);
  writeFileSync(join(out, `${name}.md`), md);
  process.stdout.write(`${md}\nwritten: bench/results/${name}.{json,md}\n`);
  if (checks.some((c) => !c.ok)) process.exitCode = 1;
}
