// `flatwall ctl apply FILE` / POST /rules/apply: an iptables-restore
// --noflush style file of edits to the running filter table, applied as one
// atomic batch. Lines:
//
//   -A CHAIN spec | -I CHAIN [N] spec | -D CHAIN N | -D CHAIN spec
//   -R CHAIN N spec   (replace rule N)
//   -P CHAIN POLICY | -N CHAIN | -X CHAIN
//   *filter, COMMIT, comments and blank lines (so an iptables-restore
//   --noflush file with those lines works as it is)
//
// Every line is parsed against the rule set as the lines before it left it
// (a simulation on a copy), so positions and chains mean what they mean in
// order, and any error is RuleError at its line and column with nothing
// applied. The batch then goes to the dataplane in one step: one overlay
// delta when every edit can be one (Firewall.applyBatch, edits.ts
// planBatch), else one full rebuild of the final rule set; either way one
// generation, never a half-applied file.
import { RuleError } from '../rules/errors';
import type { Family, RuleSet } from '../rules/model';
import { tokenize } from '../rules/iptables/parse';
import { applyRuleOp, cloneRuleSet, filterTable, parseRuleCommand, type RuleOp } from './ruleops';

/** A chain created or deleted by the batch: only a rebuild applies those. */
export type ChainOp = { op: 'newchain' | 'delchain'; family: Family; chain: string };

export interface Batch {
  /** In file order; a -R is a delete then an insert. */
  ops: (RuleOp | ChainOp)[];
  /** The rule set after every op (what a rebuild compiles). */
  next: RuleSet;
  /** Lines that were edits. */
  edits: number;
}

const MAX_CHAIN_NAME = 28;

export function isRuleOp(op: RuleOp | ChainOp): op is RuleOp {
  return op.op !== 'newchain' && op.op !== 'delchain';
}

/** Parse `text` against `running` (not changed). `family`: the default for lines that do not show one. */
export function parseBatch(text: string, file: string, running: RuleSet, family: Family): Batch {
  const next = cloneRuleSet(running);
  next.skipped = running.skipped;
  const ops: (RuleOp | ChainOp)[] = [];
  let edits = 0;
  let inTable = false;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const raw = lines[i].replace(/\r$/, '');
    const toks = tokenize(raw, { file, line: lineNo, col: 1 });
    if (toks.length === 0 || toks[0].text.startsWith('#')) continue;
    const t0 = toks[0];
    const at = (col: number) => ({ file, line: lineNo, col });
    const fail = (tok: { text: string; col: number }, reason: string): never => {
      throw new RuleError(at(tok.col), reason, tok.text);
    };
    if (t0.text.startsWith('*')) {
      if (t0.text !== '*filter') fail(t0, `apply edits the filter table; ${t0.text.slice(1)} changes by a reload (ctl reload)`);
      if (inTable) fail(t0, '*filter before COMMIT of the previous one');
      inTable = true;
      continue;
    }
    if (t0.text === 'COMMIT') {
      if (toks.length > 1) fail(toks[1], 'unexpected text after COMMIT');
      inTable = false;
      continue;
    }
    if (t0.text.startsWith(':')) {
      fail(t0, 'a chain line resets the chain in iptables-restore; in an apply file use -N CHAIN or -P CHAIN POLICY');
    }
    // Counters in front of a command ([packets:bytes]) are refused: an edit
    // has no counters of its own yet.
    if (t0.text.startsWith('[')) fail(t0, 'counters are not taken by apply (the rule starts at 0)');
    const cmd = t0.text;
    edits++;
    if (cmd === '-N' || cmd === '--new-chain' || cmd === '-X' || cmd === '--delete-chain') {
      const name = toks[1] ?? fail(t0, `${cmd} needs a chain name`);
      if (toks.length > 2) fail(toks[2], 'unexpected argument');
      for (const fam of [...new Set(next.tables.filter((t) => t.name === 'filter').map((t) => t.family))]) {
        const t = filterTable(next, fam, { file, line: lineNo, col: 1 });
        if (cmd === '-N' || cmd === '--new-chain') {
          if (name.text.length > MAX_CHAIN_NAME || /^[-!]/.test(name.text)) fail(name, `invalid chain name "${name.text}"`);
          if (t.chains.has(name.text)) fail(name, `chain ${name.text} already exists`);
          t.chains.set(name.text, { name: name.text, builtin: false, pos: at(name.col), rules: [] });
          ops.push({ op: 'newchain', family: fam, chain: name.text });
        } else {
          const c = t.chains.get(name.text) ?? fail(name, `chain ${name.text} does not exist`);
          if (c.builtin) fail(name, `cannot delete built-in chain ${name.text}`);
          if (c.rules.length) fail(name, `chain ${name.text} is not empty`);
          for (const other of t.chains.values()) {
            if (other.rules.some((r) => (r.target.kind === 'jump' || r.target.kind === 'goto') && r.target.chain === name.text)) {
              fail(name, `chain ${name.text} is still referenced`);
            }
          }
          t.chains.delete(name.text);
          ops.push({ op: 'delchain', family: fam, chain: name.text });
        }
      }
      continue;
    }
    // -A, -I, -D, -P through the single-rule parser (its errors are at line
    // 1 of '<request>'); -R as -D then -I at the same place.
    let line = raw.slice(t0.col - 1);
    let shift = t0.col - 1; // raw column = the single-rule line's column + shift
    let replace = 0;
    if (cmd === '-R' || cmd === '--replace') {
      const chainTok = toks[1] ?? fail(t0, '-R needs a chain and a rule number');
      const n = toks[2];
      if (!n || !/^\d+$/.test(n.text)) fail(n ?? chainTok, '-R needs a rule number after the chain');
      replace = Number(n!.text);
      const chain = next.tables.find((t) => t.family === family && t.name === 'filter')?.chains.get(chainTok.text);
      if (chain && (replace < 1 || replace > chain.rules.length)) {
        fail(n!, `rule number ${replace} does not exist (chain ${chain.name} has ${chain.rules.length})`);
      }
      line = `-I ${raw.slice(chainTok.col - 1)}`;
      shift = chainTok.col - 4;
    }
    let op: RuleOp;
    try {
      op = parseRuleCommand(line, next, family);
    } catch (err) {
      if (err instanceof RuleError) throw new RuleError(at(Math.max(1, err.col + shift)), err.reason, err.token);
      throw err;
    }
    // The rules are the file's: listings and errors name its line.
    if (op.op === 'insert' || op.op === 'append') {
      for (const r of op.rules) {
        r.pos = at(r.pos.col + shift);
        if (r.targetPos) r.targetPos = at(r.targetPos.col + shift);
      }
    }
    if (replace) {
      const chain = filterTable(next, op.family, { file, line: lineNo, col: 1 }).chains.get(op.chain)!;
      if (replace < 1 || replace > chain.rules.length) fail(toks[2], `rule number ${replace} does not exist (chain ${op.chain} has ${chain.rules.length})`);
      if (op.op !== 'insert' || op.rules.length !== 1) fail(t0, '-R replaces one rule: the spec must not expand to several (several -s or -d addresses)');
    }
    if (replace && op.op === 'insert') {
      const del: RuleOp = { op: 'delete', family: op.family, chain: op.chain, index: replace };
      applyRuleOp(next, del);
      ops.push(del);
    }
    applyRuleOp(next, op);
    ops.push(op);
  }
  if (edits === 0) throw new RuleError({ file, line: 1, col: 1 }, 'no edits in the file (expected -A, -I, -D, -R, -P, -N or -X lines)');
  return { ops, next, edits };
}
