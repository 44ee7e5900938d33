// flatwall replay: offline verdicts for a capture, with the dataplane's own
// frame parser, connection tracking and classifier. Check a rule set against
// real traffic before deploying it.
import { readFileSync, writeFileSync } from 'node:fs';
import { RuleError } from '../rules/errors';
import { loadRuleFiles } from '../rules/load';
import { ruleSpec } from '../rules/iptables/print';
import { chainKey } from '../rules/model';
import { HOOKS } from '../rules/pack';
import { native } from '../native';
import { LINKTYPE_ETHERNET, PcapError, readPcap, writePcap, type PcapRecord } from '../io/pcap';
import { EXIT_ERRORS, EXIT_OK, UsageError, familyFlag, parse } from './args';
import { CONNTRACK_HELP, CONNTRACK_OPTIONS, conntrackConfig } from './conntrack-options';
import { IpsetStore, loadIpsetFiles } from '../sets/store';
import { useSetStore } from '../sets/registry';
import { HOST_HELP, HOST_OPTIONS, hostAddrs } from './host-options';

export const REPLAY_HELP = `Usage: flatwall replay --rules FILE [--rules FILE] --pcap IN.pcap [OPTIONS]

Decide every frame of a capture with the given rules, exactly as 'flatwall
run' would (same frame parser, same connection tracking, same classifier),
and print each verdict, each frame's conntrack state and the hits per rule.
Frames go through the FORWARD rules of their family, as the kernel's: NDP
included, and a frame whose TCP/UDP/SCTP/ICMP header is cut short is judged
without it and dropped at the first rule with an L4 match it reaches (the
kernel's hotdrop).
With --host (host mode, as 'flatwall run --host') frames to the host go
through INPUT, frames from it through OUTPUT.

Connection tracking is on, as in 'flatwall run', with the same flags: it
sees the frames in capture order, with the capture's timestamps as its clock
(a frame stamped earlier than the one before it counts as that one's time),
so --ctstate / --state rules match as they would have on the live link. All
frames cross one port pair (one conntrack zone). A frame comes in on the -i
port and leaves by the -o port, unless its Ethernet source is an --out-mac:
then it comes in on -o and leaves by -i (conntrack itself tells original from
reply by the addresses and ports, not by the port).

Options:
  -r, --rules FILE        rule file (iptables-save or JSON/YAML); repeatable
  -p, --pcap FILE         input capture (classic pcap, Ethernet)
      --ipset FILE        IP sets (ipset save form) the rules name; repeatable
      --pass FILE         write the frames that would be forwarded here
      --drop FILE         write the frames that would be dropped or rejected here
  -i, --in-interface IF   the input port name rules see as -i (default eth0)
  -o, --out-interface IF  the output port name rules see as -o (default eth1)
      --out-mac MAC       frames sent by MAC (Ethernet source) come in on the -o
                          port instead, i.e. from the far side (repeatable)
  -4, -6                  treat iptables-save files as IPv4 / IPv6 (default:
                          detect, as 'flatwall check' does)
      --drop-l4-truncated drop frames whose L4 header is cut short before the
                          rules (as 'flatwall run --drop-l4-truncated')
      --ndp-bypass        pass ICMPv6 NDP (types 133-137) without the rules
                          (as 'flatwall run --ndp-bypass')
${CONNTRACK_HELP}${HOST_HELP}      --json              machine-readable output
  -q, --quiet             only the summary and rule hits, not every frame
  -h, --help              show this help

Exit status: 0 on success, 1 if the rules or the capture have errors, 2 on usage errors.
`;

const ACTIONS = ['ACCEPT', 'DROP', 'REJECT'];
const NOT_IP = 0xfe;
const MALFORMED = 0xff;
const CLASS_NAMES = ['malformed', 'ipv4', 'ipv6', 'arp', 'ndp', 'other'];
/** CtState bits (native/classifier/rule_table.h), as iptables names them. */
export const CT_STATES: ReadonlyArray<[number, string]> = [[1, 'INVALID'], [2, 'NEW'], [4, 'ESTABLISHED'], [8, 'RELATED'], [16, 'UNTRACKED']];
const ctName = (bit: number) => CT_STATES.find(([b]) => b === bit)?.[1];
/** Hook codes (native/classifier/rule_table.h). */
// The table a frame was decided in (pack.ts HOOKS: raw's when a raw rule dropped it).
const HOOK_NAMES: readonly string[] = HOOKS;

export async function runReplay(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    rules: { type: 'string', short: 'r', multiple: true },
    pcap: { type: 'string', short: 'p' },
    ipset: { type: 'string', multiple: true },
    pass: { type: 'string' },
    drop: { type: 'string' },
    'in-interface': { type: 'string', short: 'i', default: 'eth0' },
    'out-interface': { type: 'string', short: 'o', default: 'eth1' },
    'out-mac': { type: 'string', multiple: true },
    ...CONNTRACK_OPTIONS,
    '4': { type: 'boolean', short: '4' },
    '6': { type: 'boolean', short: '6' },
    'drop-l4-truncated': { type: 'boolean' },
    'ndp-bypass': { type: 'boolean' },
    ...HOST_OPTIONS,
    json: { type: 'boolean' },
    quiet: { type: 'boolean', short: 'q' },
    help: { type: 'boolean', short: 'h' },
  }, false);
  if (values.help) {
    process.stdout.write(REPLAY_HELP);
    return EXIT_OK;
  }
  if (!values.rules?.length) throw new UsageError('--rules FILE is required');
  if (!values.pcap) throw new UsageError('--pcap FILE is required');
  const family = familyFlag(values);
  const outMacs = (values['out-mac'] ?? []).map((m) => {
    if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(m)) throw new UsageError(`--out-mac must be a MAC address like 02:00:00:00:00:01, got "${m}"`);
    return Buffer.from(m.replace(/:/g, ''), 'hex');
  });
  const ct = conntrackConfig(values);
  const host = hostAddrs(values);

  let compiled;
  const sets = new IpsetStore();
  try {
    useSetStore(sets);
    if (values.ipset?.length) loadIpsetFiles(sets, values.ipset);
    compiled = loadRuleFiles(values.rules, { family, onNotice: (m) => process.stderr.write(`${m}\n`) }).compiled;
  } catch (err) {
    if (err instanceof RuleError) {
      process.stderr.write(`flatwall: ${err.message}\n`);
      return EXIT_ERRORS;
    }
    throw err;
  }
  let capture;
  try {
    capture = readPcap(readFileSync(values.pcap), values.pcap);
  } catch (err) {
    if (err instanceof PcapError || (err as NodeJS.ErrnoException).code) {
      process.stderr.write(`flatwall: ${(err as Error).message}\n`);
      return EXIT_ERRORS;
    }
    throw err;
  }
  if (capture.linktype !== LINKTYPE_ETHERNET) {
    process.stderr.write(`flatwall: ${values.pcap}: link type ${capture.linktype} is not supported (Ethernet only)\n`);
    return EXIT_ERRORS;
  }

  // Frames back to back, with offsets, for one native call.
  const recs = capture.records;
  const offsets = new Uint32Array(recs.length + 1);
  for (let i = 0; i < recs.length; i++) offsets[i + 1] = offsets[i] + recs[i].data.length;
  const frames = Buffer.concat(recs.map((r) => r.data));
  // The clock: each record's time in ns (BigInt: epoch ns exceed 2^53).
  const timestamps = new BigUint64Array(recs.length);
  const fracNs = capture.nanos ? 1n : 1000n;
  for (let i = 0; i < recs.length; i++) timestamps[i] = BigInt(recs[i].tsSec) * 1_000_000_000n + BigInt(recs[i].tsFrac) * fracNs;
  const reverse = new Uint8Array(recs.length);
  if (outMacs.length) {
    for (let i = 0; i < recs.length; i++) {
      const d = recs[i].data;
      if (d.length >= 12 && outMacs.some((m) => m.equals(d.subarray(6, 12)))) reverse[i] = 1;
    }
  }
  const res = await native().replayFrames(compiled.buffer, frames, offsets, {
    iif: compiled.ifaces.classOf(values['in-interface']!),
    oif: compiled.ifaces.classOf(values['out-interface']!),
    ruleCount: compiled.rules.length,
    timestamps,
    reverse,
    ...ct,
    dropL4Truncated: values['drop-l4-truncated'] ?? false,
    ndpBypass: values['ndp-bypass'] ?? false,
    sets: sets.native,
    ...(host.length ? { hostAddrs: host } : {}),
  });

  const describe = (ruleId: number) => {
    const r = compiled.rules[ruleId];
    if (!r) return { id: ruleId };
    return r.policy
      ? { id: ruleId, policy: r.policy, chain: chainKey(r.table, r.chain), family: `ipv${r.family}`, file: r.file }
      : { id: ruleId, file: r.file, line: r.line, chain: chainKey(r.table, r.chain), index: r.index, rule: ruleSpec(r.rule!, r.family) };
  };
  const pass: PcapRecord[] = [];
  const drop: PcapRecord[] = [];
  const summary: Record<string, unknown> & Record<'frames' | 'accepted' | 'dropped' | 'rejected' | 'malformed' | 'notIp', number> =
    { frames: recs.length, accepted: 0, dropped: 0, rejected: 0, malformed: 0, notIp: 0 };
  const ctstates: Record<string, number> = Object.fromEntries(CT_STATES.map(([, n]) => [n, 0]));
  const perFrame: Record<string, unknown>[] = [];
  // Host mode: the table each IP frame walked.
  const hooks: Record<string, number> = Object.fromEntries(HOOK_NAMES.slice(0, 3).map((n) => [n, 0]));
  for (let i = 0; i < recs.length; i++) {
    const v = res.verdict[i];
    let verdict: string;
    let detail: Record<string, unknown> = {};
    if (v === MALFORMED) {
      verdict = 'MALFORMED';
      detail = { reason: res.reasonNames[res.reason[i]] };
      summary.malformed++;
      drop.push(recs[i]);
    } else if (v === NOT_IP) {
      verdict = 'PASS';
      detail = { reason: `${CLASS_NAMES[res.cls[i]]} (not filtered)` };
      summary.notIp++;
      pass.push(recs[i]);
    } else {
      verdict = ACTIONS[v];
      if (res.hot[i]) {
        detail = { reason: `l4_truncated: the L4 header is cut short and a rule with an L4 match reads it (hot-dropped${res.hot[i] === 2 ? ', undecided within the bound: fail closed' : ''})` };
        summary.hotDropped = Number(summary.hotDropped ?? 0) + 1;
      } else if (res.finalRule[i] !== 0xffffffff) detail = describe(res.finalRule[i]);
      else detail = { reason: `no IPv${res.cls[i] === 1 ? 4 : 6} rules loaded (accepted)` };
      // The rules accepted a new flow but the conntrack table was full.
      if (res.reasonNames[res.reason[i]] === 'conntrack_full') detail = { ...detail, reason: 'conntrack_full' };
      if (verdict === 'ACCEPT') {
        summary.accepted++;
        pass.push(recs[i]);
      } else {
        summary[verdict === 'DROP' ? 'dropped' : 'rejected']++;
        drop.push(recs[i]);
      }
    }
    const ctstate = ctName(res.ctState[i]);
    if (ctstate) ctstates[ctstate]++;
    const hook = host.length ? HOOK_NAMES[res.hook[i]] : undefined;
    if (hook) hooks[hook] = (hooks[hook] ?? 0) + 1;
    perFrame.push({ frame: i + 1, len: recs[i].data.length, ...(reverse[i] ? { in: values['out-interface'] } : {}), verdict, ctstate, ...(hook ? { hook } : {}), ...detail });
  }
  summary.ctstates = ctstates;
  if (host.length) summary.hooks = hooks;
  const hits = [];
  for (let id = 0; id < compiled.rules.length; id++) {
    if (res.hits[id] > 0 && !compiled.rules[id].internal) hits.push({ ...describe(id), packets: res.hits[id], bytes: res.bytes[id] });
  }
  if (values.pass) writeFileSync(values.pass, writePcap(pass, capture.linktype, capture.nanos));
  if (values.drop) writeFileSync(values.drop, writePcap(drop, capture.linktype, capture.nanos));

  if (values.json) {
    process.stdout.write(`${JSON.stringify({ summary, frames: values.quiet ? undefined : perFrame, rules: hits, conntrack: res.conntrack }, null, 2)}\n`);
    return EXIT_OK;
  }
  const lines: string[] = [];
  const rule = (d: Record<string, unknown>) => (d.policy ? `policy ${d.chain} (${d.family})` : d.file ? `${d.file}:${d.line} ${d.chain}#${d.index}` : '');
  const where = (d: Record<string, unknown>) =>
    d.reason === 'conntrack_full' ? `conntrack table full (accepted by ${rule(d)})` : rule(d) || String(d.reason ?? '');
  if (!values.quiet) {
    const hookCol = (f?: Record<string, unknown>) => (host.length ? `${String(f ? f.hook ?? '-' : 'hook').padEnd(8)} ` : '');
    lines.push(`${'frame'.padStart(7)}  ${'verdict'.padEnd(9)} ${'ctstate'.padEnd(11)} ${hookCol()}decided by`);
    for (const f of perFrame) lines.push(`${String(f.frame).padStart(7)}  ${String(f.verdict).padEnd(9)} ${String(f.ctstate ?? '-').padEnd(11)} ${hookCol(f)}${where(f)}`);
    lines.push('');
  }
  lines.push('Rule hits:');
  lines.push(`${'pkts'.padStart(9)} ${'bytes'.padStart(11)}  source`);
  for (const h of hits) {
    const src = 'policy' in h && h.policy ? `policy ${h.chain} ${h.policy} (${h.family})` : `${h.file}:${h.line}  -A ${h.chain} ${(h as { rule?: string }).rule}`;
    lines.push(`${String(h.packets).padStart(9)} ${String(h.bytes).padStart(11)}  ${src}`);
  }
  lines.push('');
  const hot = summary.hotDropped ? ` (${summary.hotDropped} hot-dropped: L4 header cut short)` : '';
  lines.push(`${summary.frames} frames: ${summary.accepted} accepted, ${summary.dropped} dropped${hot}, ${summary.rejected} rejected, ${summary.malformed} malformed, ${summary.notIp} not IP (passed unfiltered)`);
  if (host.length) lines.push(`hooks: ${Object.keys(hooks).map((n) => `${hooks[n]} ${n}`).join(', ')} (host ${host.join(', ')})`);
  lines.push(`ctstate: ${CT_STATES.map(([, n]) => `${ctstates[n]} ${n}`).join(', ')}${ct.conntrack ? '' : ' (--no-conntrack)'}`);
  if (res.conntrack) {
    const c = res.conntrack;
    lines.push(`conntrack: ${c.entries} entries at the end (limit ${c.limit}), ${c.insert} inserted, ${c.expired} expired, ${c.earlyDrop} early drops, ${c.insertFailed} inserts failed`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  return EXIT_OK;
}
