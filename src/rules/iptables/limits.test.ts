// The parser's limits (issue 12): a pathological line fails at once with a
// RuleError instead of growing tokens (a 50 MB single line took 950 MB of
// RSS), and --max-rules is counted before parsing and while parsing.
import test from 'node:test';
import assert from 'node:assert/strict';
import { MAX_LINE, MAX_TOKEN, MAX_TOKENS, countRuleCommands, parseIptables, tokenize } from './parse';
import { RuleError, RuleLimitError } from '../errors';
import { checkCount, parseText, ruleCount } from '../load';

const HEAD = '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n';
const body = (rules: string[]) => `${HEAD}${rules.join('\n')}\nCOMMIT\n`;

function fails(text: string, opts: { maxRules?: number; rulesBefore?: number } = {}): RuleError {
  try {
    parseIptables(text, { file: 'l.rules', ...opts });
  } catch (e) {
    if (e instanceof RuleError) return e;
    throw e;
  }
  assert.fail('parsed');
}

test('a 50 MB single line is refused at once, its excerpt short and escaped', () => {
  const line = `-A FORWARD ${'-p tcp '.repeat(7_000_000)}-j ACCEPT`;
  const heap0 = process.memoryUsage().heapUsed;
  const t0 = performance.now();
  const e = fails(`${HEAD}${line}\nCOMMIT\n`);
  const grew = process.memoryUsage().heapUsed - heap0;
  assert.deepEqual([e.line, e.col], [5, 1]);
  assert.match(e.reason, new RegExp(`^line too long: ${line.length} characters, at most ${MAX_LINE}$`));
  assert.ok(e.token!.length <= 65 && e.token!.endsWith('…'), e.token);
  // Tokens of that line would be ~14M objects (hundreds of MB); a refusal allocates none.
  assert.ok(grew < 64 << 20, `heap grew ${grew} bytes`);
  assert.ok(performance.now() - t0 < 5000);
  const ctl = fails(Buffer.alloc(1 << 20, 1).toString('latin1'));
  assert.match(ctl.message, /^l\.rules:1:1: line too long: 1048576 characters, at most 65536 \(at '(\\x01){64}…'\)$/);
});

test('an argument over 1023 characters, more than 254 arguments: errors at the offending one', () => {
  const long = 'x'.repeat(MAX_TOKEN + 1);
  const e = fails(body([`-A FORWARD -m comment --comment ${long} -j ACCEPT`]));
  assert.deepEqual([e.line, e.col, e.reason], [5, 33, `argument too long: ${MAX_TOKEN + 1} characters, at most ${MAX_TOKEN}`]);
  // The same in a quoted token (the tokenizer's slow path).
  assert.match(fails(body([`-A FORWARD -m comment --comment "${long}" -j ACCEPT`])).reason, /^argument too long/);
  // 1023 is still an argument (the comment's own limit of 256 speaks then).
  assert.match(fails(body([`-A FORWARD -m comment --comment ${'x'.repeat(MAX_TOKEN)} -j ACCEPT`])).reason, /comment/i);
  const many = `-A FORWARD${' -p tcp'.repeat(MAX_TOKENS)}`;
  const m = fails(body([many]));
  assert.equal(m.reason, `too many arguments on one line: at most ${MAX_TOKENS}`);
  // Argument 255 is the first one over: "-A", "FORWARD", 126 " -p tcp" pairs, then its "-p".
  assert.equal(m.col, '-A FORWARD'.length + 126 * ' -p tcp'.length + 2);
  assert.equal(tokenize(Array.from({ length: MAX_TOKENS }, () => 'a').join(' '), { file: 'f', line: 1, col: 1 }).length, MAX_TOKENS);
});

test('countRuleCommands: rule lines only, with counters, stopping past the limit', () => {
  const text = body(['-A FORWARD -j ACCEPT', '[1:2] -I FORWARD -j DROP', '  --append FORWARD -j ACCEPT', '-N X', '-P FORWARD DROP', '# -A FORWARD', '-A X -j RETURN']);
  assert.equal(countRuleCommands(text).rules, 4);
  assert.deepEqual(countRuleCommands(text, 2).over, { line: 7 });
  // An unclosed "[" on a long line is not searched past its line (no quadratic scan).
  const t0 = performance.now();
  assert.equal(countRuleCommands('[\n'.repeat(200_000)).rules, 0);
  assert.ok(performance.now() - t0 < 2000);
});

test('--max-rules: refused before parsing at the first rule line over it, and while parsing (expansions, -F, earlier files)', () => {
  const rules = Array.from({ length: 10 }, (_, i) => `-A FORWARD -p tcp --dport ${1000 + i} -j ACCEPT`);
  assert.equal(ruleCount(parseIptables(body(rules), { file: 'l.rules', maxRules: 10 })), 10);
  const e = fails(body(rules), { maxRules: 9 });
  assert.ok(e instanceof RuleLimitError);
  assert.equal(e.limit, 9);
  assert.deepEqual([e.line, e.col], [14, 1]);
  assert.equal(e.message, 'l.rules:14:1: more than 9 rules: over the rule limit (--max-rules 9)');
  // Rules counted elsewhere (an earlier file, the family a replace keeps) count.
  assert.equal(fails(body(rules), { maxRules: 12, rulesBefore: 3 }).line, 14);
  // Two source addresses are two rules: only the parser can tell.
  const two = fails(body(['-A FORWARD -s 10.0.0.1,10.0.0.2 -j DROP', '-A FORWARD -j ACCEPT']), { maxRules: 2 });
  assert.deepEqual([two instanceof RuleLimitError, two.line, two.col], [true, 6, 1]);
  // A flush gives its rules back.
  assert.equal(ruleCount(parseIptables(body(['-A FORWARD -j DROP', '-A FORWARD -j DROP', '-F FORWARD', '-A FORWARD -j ACCEPT']), { file: 'l.rules', maxRules: 3 })), 1);
});

test('--max-rules in the native format: the first rule over it', () => {
  const json = JSON.stringify({ chains: { FORWARD: { policy: 'DROP', rules: [{ action: 'ACCEPT' }, { action: 'DROP' }, { action: 'DROP' }] } } }, null, 1);
  assert.equal(ruleCount(parseText(json, 'n.json', { maxRules: 3 })), 3);
  assert.throws(() => parseText(json, 'n.json', { maxRules: 2 }), (e: RuleError) => e instanceof RuleLimitError && e.file === 'n.json' && e.line > 1);
  assert.throws(() => checkCount(parseText(json, 'n.json'), 'n.json', 3, 1), RuleLimitError);
});
