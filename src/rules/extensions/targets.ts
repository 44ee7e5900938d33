// Target extensions as modules (like iptables' extensions/libxt_NFLOG.c):
// the non-terminal targets beyond LOG. The built-in verdicts (ACCEPT, DROP,
// REJECT, RETURN, LOG, jumps) stay in the rule parser.
import type { Family, TableName } from '../model';
import type { CompileContext, OptionContext, ValidateContext } from './registry';
import { nflog } from './nflog';
import { tcpmss } from './tcpmss';
import { ct, notrack } from './notrack';

export interface TargetExtension<O = unknown> {
  readonly name: string;
  /** The record action: LOG (emits a log event) or COUNT (counts and goes on). */
  readonly action: 'LOG' | 'COUNT';
  /** The tables it is valid in (xt_register_target's .table); absent: any. */
  readonly tables?: readonly TableName[];
  /** The target column of `iptables -L` when it is not the name (NOTRACK lists as CT). */
  readonly listName?: string;
  create(): O;
  option(o: O, cx: OptionContext): boolean;
  validate?(o: O, cx: ValidateContext): void;
  save(o: O, family: Family): string;
  list(o: O, family: Family): string;
  /** Ops run when the rule matched (the last ops of its program). */
  compile?(o: O, cx: CompileContext): void;
  /** Extra fields of the log events it emits. */
  logFields?(o: O): Record<string, unknown>;
}

const ALL: TargetExtension<any>[] = [nflog, tcpmss, ct, notrack];
export const TARGETS: ReadonlyMap<string, TargetExtension<any>> = new Map(ALL.map((t) => [t.name, t]));

export function targetExtension(name: string): TargetExtension<any> {
  const t = TARGETS.get(name);
  if (!t) throw new Error(`unknown target extension ${name}`);
  return t;
}
