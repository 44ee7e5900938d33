// iptables-save text -> an nft script, for the lab's nft engines.
//
// This is deliberately not a general iptables-to-nft translator. It handles
// the shapes the benchmark generators emit (`flatwall gen chain`):
//
//   -A FORWARD [-s A[/L]] [-d A[/L]] [-p tcp|udp|icmp] [-m tcp|udp]
//              [--sport P[:Q]] [--dport P[:Q]] -j ACCEPT|DROP
//
// in the filter table's FORWARD chain (IPv4), plus the chain policies, and
// refuses anything else with the line and the token it cannot translate.
//
// Two forms:
//   rules  one nft rule per iptables rule, in order (first match, like iptables)
//   set    the rules before the last one folded into one set lookup, when they
//          all have the same shape (the same fields, protocol and verdict) and
//          the last rule matches everything; only then is the set form
//          equivalent (within one verdict, order does not matter). This is the
//          seed paper's "interval set" form; the set has `flags interval` only
//          when some element is a prefix or a range.

export type NftForm = 'rules' | 'set';

export class NftTranslationError extends Error {}

interface Rule {
  line: number;
  saddr?: string;
  daddr?: string;
  proto?: 'tcp' | 'udp' | 'icmp';
  sport?: string;
  dport?: string;
  verdict: 'accept' | 'drop';
}

const SUPPORTED =
  'the nft engines translate only: -A FORWARD [-s ADDR] [-d ADDR] [-p tcp|udp|icmp] [-m tcp|udp] [--sport P[:Q]] [--dport P[:Q]] -j ACCEPT|DROP (the shapes `flatwall gen chain` emits)';

const V4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\/(\d{1,2}))?$/;
const PORT = /^(\d{1,5})(?::(\d{1,5}))?$/;

function addr(tok: string | undefined, line: number): string {
  const m = tok === undefined ? null : V4.exec(tok);
  if (!m || m.slice(1, 5).some((o) => Number(o) > 255) || (m[5] !== undefined && Number(m[5]) > 32)) {
    throw new NftTranslationError(`line ${line}: "${tok}" is not an IPv4 address or prefix (${SUPPORTED})`);
  }
  const a = `${m[1]}.${m[2]}.${m[3]}.${m[4]}`;
  return m[5] === undefined || m[5] === '32' ? a : `${a}/${m[5]}`;
}

function port(tok: string | undefined, line: number): string {
  const m = tok === undefined ? null : PORT.exec(tok);
  if (!m || Number(m[1]) > 65535 || (m[2] !== undefined && (Number(m[2]) > 65535 || Number(m[2]) < Number(m[1])))) {
    throw new NftTranslationError(`line ${line}: "${tok}" is not a port or port range (${SUPPORTED})`);
  }
  return m[2] === undefined || m[2] === m[1] ? m[1] : `${m[1]}-${m[2]}`;
}

function parseRule(text: string, line: number): Rule {
  const t = text.split(/\s+/);
  if (t[0] !== '-A' || t[1] !== 'FORWARD') {
    throw new NftTranslationError(`line ${line}: only "-A FORWARD" rules can be translated, got "${t.slice(0, 2).join(' ')}" (${SUPPORTED})`);
  }
  const r: Partial<Rule> & { line: number } = { line };
  let i = 2;
  let module: string | undefined;
  while (i < t.length) {
    const tok = t[i];
    switch (tok) {
      case '-s':
        r.saddr = addr(t[i + 1], line);
        i += 2;
        break;
      case '-d':
        r.daddr = addr(t[i + 1], line);
        i += 2;
        break;
      case '-p': {
        const p = t[i + 1];
        if (p !== 'tcp' && p !== 'udp' && p !== 'icmp') throw new NftTranslationError(`line ${line}: protocol "${p}" (${SUPPORTED})`);
        r.proto = p;
        i += 2;
        break;
      }
      case '-m':
        module = t[i + 1];
        if ((module !== 'tcp' && module !== 'udp') || module !== r.proto) {
          throw new NftTranslationError(`line ${line}: match "-m ${module}" (${SUPPORTED})`);
        }
        i += 2;
        break;
      case '--sport':
      case '--dport':
        if (r.proto !== 'tcp' && r.proto !== 'udp') throw new NftTranslationError(`line ${line}: ${tok} needs -p tcp or -p udp`);
        r[tok === '--sport' ? 'sport' : 'dport'] = port(t[i + 1], line);
        i += 2;
        break;
      case '-j': {
        const v = t[i + 1];
        if (v !== 'ACCEPT' && v !== 'DROP') throw new NftTranslationError(`line ${line}: target "${v}" (${SUPPORTED})`);
        r.verdict = v === 'ACCEPT' ? 'accept' : 'drop';
        i += 2;
        if (i !== t.length) throw new NftTranslationError(`line ${line}: "${t[i]}" after the target (${SUPPORTED})`);
        break;
      }
      default:
        throw new NftTranslationError(`line ${line}: "${tok}" (${SUPPORTED})`);
    }
  }
  if (!r.verdict) throw new NftTranslationError(`line ${line}: a rule without -j ACCEPT|DROP (${SUPPORTED})`);
  return r as Rule;
}

function ruleText(r: Rule): string {
  const parts: string[] = [];
  if (r.saddr) parts.push(`ip saddr ${r.saddr}`);
  if (r.daddr) parts.push(`ip daddr ${r.daddr}`);
  if (r.proto && !r.sport && !r.dport) parts.push(r.proto === 'icmp' ? 'ip protocol icmp' : `meta l4proto ${r.proto}`);
  if (r.sport) parts.push(`${r.proto} sport ${r.sport}`);
  if (r.dport) parts.push(`${r.proto} dport ${r.dport}`);
  parts.push(r.verdict);
  return parts.join(' ');
}

const shapeOf = (r: Rule) => `${r.saddr ? 's' : ''}${r.daddr ? 'd' : ''}${r.proto ?? ''}${r.sport ? 'S' : ''}${r.dport ? 'D' : ''}:${r.verdict}`;

export interface NftScript {
  script: string;
  rules: number;
  form: NftForm;
  /** Set form: the number of elements and whether the set needed `flags interval`. */
  setElements?: number;
  interval?: boolean;
}

/** Translate iptables-save text (see the header for what is accepted). */
export function translateToNft(text: string, form: NftForm, table = 'flatwall'): NftScript {
  let policy: 'accept' | 'drop' = 'accept';
  const rules: Rule[] = [];
  let inFilter = false;
  let lineNo = 0;
  let start = 0;
  while (start <= text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    const raw = text.slice(start, end);
    start = end + 1;
    lineNo++;
    const l = raw.trim();
    if (l === '' || l.startsWith('#')) continue;
    if (l.startsWith('*')) {
      if (l !== '*filter') throw new NftTranslationError(`line ${lineNo}: table "${l.slice(1)}" (only *filter can be translated)`);
      inFilter = true;
      continue;
    }
    if (l === 'COMMIT') {
      inFilter = false;
      continue;
    }
    if (!inFilter) throw new NftTranslationError(`line ${lineNo}: "${l.slice(0, 40)}" outside a *filter table`);
    if (l.startsWith(':')) {
      const m = /^:(\S+)\s+(\S+)/.exec(l);
      if (!m) throw new NftTranslationError(`line ${lineNo}: bad chain line "${l}"`);
      const [, chain, pol] = m;
      if (chain !== 'INPUT' && chain !== 'FORWARD' && chain !== 'OUTPUT') {
        throw new NftTranslationError(`line ${lineNo}: user chain "${chain}" (${SUPPORTED})`);
      }
      if (chain === 'FORWARD') {
        if (pol !== 'ACCEPT' && pol !== 'DROP') throw new NftTranslationError(`line ${lineNo}: policy "${pol}"`);
        policy = pol === 'ACCEPT' ? 'accept' : 'drop';
      }
      continue;
    }
    rules.push(parseRule(l, lineNo));
  }

  const head = `table ip ${table} {\n`;
  const chainHead = `  chain forward {\n    type filter hook forward priority 0; policy ${policy};\n`;
  if (form === 'rules') {
    const body = rules.map((r) => `    ${ruleText(r)}\n`);
    return { script: `flush ruleset\n${head}${chainHead}${body.join('')}  }\n}\n`, rules: rules.length, form };
  }

  // Set form: rules[0 .. n-2] one shape and verdict; the last rule unconditional.
  const last = rules[rules.length - 1];
  const folded = last && !last.saddr && !last.daddr && !last.proto ? rules.slice(0, -1) : rules;
  const tail = folded.length < rules.length ? [last] : [];
  if (folded.length === 0) {
    // Nothing before the catch-all (a 1-rule set): the set form is the rule form.
    const r = translateToNft(text, 'rules', table);
    return { ...r, form, setElements: 0, interval: false };
  }
  const shape = shapeOf(folded[0]);
  for (const r of folded) {
    if (shapeOf(r) !== shape) {
      throw new NftTranslationError(
        `set form: line ${r.line} has another shape or verdict than line ${folded[0].line}; a set can only replace rules with one shape and one verdict (use the one-rule-per-line nft engine)`,
      );
    }
  }
  const r0 = folded[0];
  const keys: Array<{ expr: string; type: string; get: (r: Rule) => string }> = [];
  if (r0.saddr) keys.push({ expr: 'ip saddr', type: 'ipv4_addr', get: (r) => r.saddr! });
  if (r0.daddr) keys.push({ expr: 'ip daddr', type: 'ipv4_addr', get: (r) => r.daddr! });
  if (r0.sport) keys.push({ expr: `${r0.proto} sport`, type: 'inet_service', get: (r) => r.sport! });
  if (r0.dport) keys.push({ expr: `${r0.proto} dport`, type: 'inet_service', get: (r) => r.dport! });
  if (keys.length === 0) throw new NftTranslationError('set form: the rules have no address or port to put in a set');
  const seen = new Set<string>();
  const elems: string[] = [];
  let interval = false;
  for (const r of folded) {
    const vals = keys.map((k) => k.get(r));
    if (vals.some((v) => v.includes('/') || v.includes('-'))) interval = true;
    const e = vals.join(' . ');
    if (seen.has(e)) continue; // the same key twice: one verdict, so the same rule
    seen.add(e);
    elems.push(e);
  }
  const protoMatch = r0.proto && !r0.sport && !r0.dport ? (r0.proto === 'icmp' ? 'ip protocol icmp ' : `meta l4proto ${r0.proto} `) : '';
  const lines: string[] = [];
  lines.push('flush ruleset\n', head);
  lines.push(`  set fold {\n    type ${keys.map((k) => k.type).join(' . ')};\n${interval ? '    flags interval;\n' : ''}    elements = {\n`);
  for (let i = 0; i < elems.length; i++) lines.push(`      ${elems[i]}${i + 1 < elems.length ? ',' : ''}\n`);
  lines.push('    }\n  }\n');
  lines.push(chainHead);
  lines.push(`    ${protoMatch}${keys.map((k) => k.expr).join(' . ')} @fold ${r0.verdict}\n`);
  for (const r of tail) lines.push(`    ${ruleText(r)}\n`);
  lines.push('  }\n}\n');
  return { script: lines.join(''), rules: rules.length, form, setElements: elems.length, interval };
}
