// Structured logs: one JSON object per line on stdout, with a timestamp, a
// level and a message, so `journalctl -o cat | jq` and log shippers read
// them as they are.
export type Level = 'debug' | 'info' | 'warn' | 'error';

export function log(level: Level, msg: string, fields: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ ts: new Date().toISOString(), level, msg, ...fields }, (_k, v) => (typeof v === 'bigint' ? Number(v) : v))}\n`);
}
