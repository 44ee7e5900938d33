// Rule errors carry the position of the offending token, so every message can
// be printed the way compilers do: file:line:column: message.

export interface Position {
  file: string;
  line: number; // 1-based
  col: number; // 1-based
}

/**
 * Input text as an error may show it: control, non-printable and invisible
 * (bidi, zero-width, BOM) characters escaped (`\x01`, `\ufeff`), and at
 * most `max` characters, then an ellipsis. An error never echoes raw bytes
 * to a terminal, and a 50 MB token costs a 64-character excerpt, not a copy.
 */
export function excerpt(s: string, max = 64): string {
  let out = '';
  let n = 0;
  for (const ch of s) {
    if (n++ >= max) return `${out}…`;
    const c = ch.codePointAt(0)!;
    if (c < 0x20 || c === 0x7f || (c >= 0x80 && c < 0xa0)) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else if (c === 0xfeff || (c >= 0x200b && c <= 0x200f) || (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069) || (c >= 0xd800 && c <= 0xdfff)) {
      out += `\\u${c.toString(16).padStart(4, '0')}`;
    } else out += ch;
  }
  return out;
}

export class RuleError extends Error {
  readonly file: string;
  readonly line: number;
  readonly col: number;
  readonly token: string | undefined;
  readonly reason: string;

  constructor(pos: Position, reason: string, token?: string) {
    // Reasons quote input too ("invalid IPv4 mask \"...\""): both are excerpts.
    reason = excerpt(reason, 400);
    token = token === undefined ? undefined : excerpt(token);
    // Line 0: about the file as a whole (it could not be read), "FILE: reason".
    super(`${pos.line > 0 ? `${pos.file}:${pos.line}:${pos.col}` : pos.file}: ${reason}${token !== undefined ? ` (at '${token}')` : ''}`);
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

/**
 * A limit of the rule set's size (--max-rules) was reached: the input is
 * not wrong, only too large for this firewall. The API answers 413.
 */
export class RuleLimitError extends RuleError {
  constructor(pos: Position, reason: string, readonly limit: number) {
    super(pos, reason);
    this.name = 'RuleLimitError';
  }
}

/** The rule limit's one message, wherever it is reached (pre-count, parser, native format, edits). */
export function overRuleLimit(pos: Position, max: number): RuleLimitError {
  return new RuleLimitError(pos, `more than ${max} rules: over the rule limit (--max-rules ${max})`, max);
}

/** strerror(3)'s text for the errors reading a file gives, as cat(1) prints them. */
export function errnoText(err: NodeJS.ErrnoException): string {
  const known: Record<string, string> = {
    ENOENT: 'No such file or directory', EACCES: 'Permission denied', EISDIR: 'Is a directory',
    ENOTDIR: 'Not a directory', ELOOP: 'Too many levels of symbolic links', EMFILE: 'Too many open files',
    ENAMETOOLONG: 'File name too long', EIO: 'Input/output error', EPERM: 'Operation not permitted',
    ECONNREFUSED: 'Connection refused', ECONNRESET: 'Connection reset by peer', ETIMEDOUT: 'Connection timed out',
    EHOSTUNREACH: 'No route to host', ENETUNREACH: 'Network is unreachable', EPIPE: 'Broken pipe',
  };
  return (err.code && known[err.code]) ?? err.message;
}
