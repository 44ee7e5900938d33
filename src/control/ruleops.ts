// Single-rule edits of the running rule set, in iptables' own syntax:
// "-A CHAIN spec", "-I CHAIN [n] spec", "-D CHAIN n", "-D CHAIN spec",
// "-P CHAIN POLICY". Each edit parses with the same RuleParser as rule files
// (so the same checks and the same file:line:column errors, the "file" being
// the request), and applies to a copy of the rule set: the running one is
// never touched until the compiled copy is active.
import { RuleError } from '../rules/errors';
import { BUILTIN_CHAINS, type Chain, type Family, type Policy, type Rule, type RuleSet, type Table } from '../rules/model';
import { LineCursor, RuleParser, tokenize, type RuleContext } from '../rules/iptables/parse';
import { ruleSpec } from '../rules/iptables/print';
import { ruleIdentity } from './counters';

export type RuleOp =
  | { op: 'append' | 'insert'; family: Family; chain: string; index: number; rules: Rule[] }
  | { op: 'delete'; family: Family; chain: string; index: number }
  | { op: 'policy'; family: Family; chain: string; policy: Policy };

export const REQUEST_FILE = '<request>';

/** A copy whose chains and rule arrays may be changed; Rule objects are shared (immutable). */
export function cloneRuleSet(rs: RuleSet): RuleSet {
  return {
    tables: rs.tables.map((t): Table => ({
      ...t,
      chains: new Map([...t.chains].map(([name, c]): [string, Chain] => [name, { ...c, rules: [...c.rules] }])),
    })),
  };
}

/** The family's filter table, which edits change; a RuleError at `pos` when there is none. */
export function filterTable(rs: RuleSet, family: Family, pos = { file: REQUEST_FILE, line: 1, col: 1 }): Table {
  // Single-rule edits are the filter table's (a raw table changes by a reload).
  const t = rs.tables.find((x) => x.family === family && x.name === 'filter');
  if (!t) throw new RuleError(pos, `the running rule set has no IPv${family} filter table`);
  return t;
}

/**
 * Parse one command line. `family` is the default when the rule itself does
 * not show one (an IPv6 address or icmpv6 decides it).
 */
export function parseRuleCommand(line: string, rs: RuleSet, family: Family = 4): RuleOp {
  const toks = tokenize(line, { file: REQUEST_FILE, line: 1, col: 1 });
  const cur = new LineCursor(toks, REQUEST_FILE, 1);
  const cmd = cur.next();
  if (!cmd) throw new RuleError({ file: REQUEST_FILE, line: 1, col: 1 }, 'empty rule command, expected -A, -I, -D or -P');
  let fam: Family | undefined;
  const famOf = () => fam ?? family;
  const chainTok = cur.value(cmd, 'a chain name');
  const chainIn = (f: Family) => filterTable(rs, f, cur.pos(chainTok)).chains.get(chainTok.text);
  const ctx: RuleContext = {
    family: famOf,
    setFamily: (f, tok, c) => {
      if (fam !== undefined && fam !== f) c.fail(tok, `IPv${f} syntax in an IPv${fam} rule`);
      fam = f;
    },
    chainExists: (name) => rs.tables.some((t) => t.name === 'filter' && t.chains.has(name)),
    table: () => 'filter',
  };
  const needChain = (f: Family) => chainIn(f) ?? cur.fail(chainTok, `chain ${chainTok.text} does not exist in the IPv${f} table`);
  switch (cmd.text) {
    case '-A': case '--append': case '-I': case '--insert': {
      const insert = cmd.text === '-I' || cmd.text === '--insert';
      let index = -1;
      const n = insert ? cur.peek() : undefined;
      if (n && /^\d+$/.test(n.text)) {
        cur.next();
        index = Number(n.text);
      }
      const rules = new RuleParser(cur, ctx, cur.pos(cmd), chainTok.text).parse();
      const chain = needChain(famOf());
      if (insert) {
        if (index === -1) index = 1;
        if (index < 1 || index > chain.rules.length + 1) cur.fail(n, `rule number ${index} is out of range 1-${chain.rules.length + 1}`);
      } else {
        index = chain.rules.length + 1;
      }
      for (const r of rules) checkJump(r, filterTable(rs, famOf()), cur);
      return { op: insert ? 'insert' : 'append', family: famOf(), chain: chain.name, index, rules };
    }
    case '-D': case '--delete': {
      const n = cur.peek();
      if (n && /^\d+$/.test(n.text) && toks.length === 3) {
        const chain = needChain(famOf());
        const index = Number(n.text);
        if (index < 1 || index > chain.rules.length) cur.fail(n, `rule number ${index} does not exist (chain ${chain.name} has ${chain.rules.length})`);
        return { op: 'delete', family: famOf(), chain: chain.name, index };
      }
      // By specification: the first rule with the same canonical spec.
      const rules = new RuleParser(cur, ctx, cur.pos(cmd)).parse();
      const chain = needChain(famOf());
      // Rule identities are equal exactly when canonical specs are, and
      // several times cheaper to build over a million rules.
      const want = ruleIdentity(rules[0]);
      const i = chain.rules.findIndex((r) => ruleIdentity(r) === want);
      if (i < 0) throw new RuleError(cur.pos(chainTok), `no rule in chain ${chain.name} matches "${ruleSpec(rules[0], famOf())}"`, chainTok.text);
      return { op: 'delete', family: famOf(), chain: chain.name, index: i + 1 };
    }
    case '-P': case '--policy': {
      const p = cur.value(chainTok, 'a policy');
      const chain = needChain(famOf());
      if (!chain.builtin) cur.fail(chainTok, `only built-in chains have a policy, ${chain.name} is a user chain`);
      if (p.text !== 'ACCEPT' && p.text !== 'DROP') cur.fail(p, 'policy must be ACCEPT or DROP');
      const extra = cur.next();
      if (extra) cur.fail(extra, 'unexpected argument');
      return { op: 'policy', family: famOf(), chain: chain.name, policy: p.text as Policy };
    }
    default:
      return cur.fail(cmd, 'expected -A, -I, -D or -P');
  }
}

function checkJump(r: Rule, t: Table, cur: LineCursor): void {
  if ((r.target.kind === 'jump' || r.target.kind === 'goto') && !t.chains.has(r.target.chain)) {
    throw new RuleError(r.targetPos ?? cur.pos(), `chain ${r.target.chain} does not exist`, r.target.chain);
  }
}

/** Apply `op` to `rs` in place (call it on a clone). */
export function applyRuleOp(rs: RuleSet, op: RuleOp): void {
  const chain = filterTable(rs, op.family).chains.get(op.chain)!;
  switch (op.op) {
    case 'append': case 'insert':
      chain.rules.splice(op.index - 1, 0, ...op.rules);
      break;
    case 'delete':
      chain.rules.splice(op.index - 1, 1);
      break;
    case 'policy':
      chain.policy = op.policy;
      break;
  }
}

export function isBuiltin(name: string): boolean {
  return (BUILTIN_CHAINS as readonly string[]).includes(name);
}
