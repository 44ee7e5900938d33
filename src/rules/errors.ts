// Rule errors carry the position of the offending token, so every message can
// be printed the way compilers do: file:line:column: message.

export interface Position {
  file: string;
  line: number; // 1-based
  col: number; // 1-based
}

export class RuleError extends Error {
  readonly file: string;
  readonly line: number;
  readonly col: number;
  readonly token: string | undefined;
  readonly reason: string;

  constructor(pos: Position, reason: string, token?: string) {
    super(`${pos.file}:${pos.line}:${pos.col}: ${reason}${token !== undefined ? ` (at '${token}')` : ''}`);
    this.name = 'RuleError';
    this.file = pos.file;
    this.line = pos.line;
    this.col = pos.col;
    this.token = token;
    this.reason = reason;
  }

  toJSON(): Record<string, unknown> {
    return { error: this.reason, file: this.file, line: this.line, column: this.col, token: this.token };
  }
}
