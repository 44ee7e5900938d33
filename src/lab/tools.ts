// Which external tools are present (for clear errors, skips and CI failures).
import { spawnSync } from 'node:child_process';

const cache = new Map<string, boolean>();

export function haveCommand(cmd: string): boolean {
  let v = cache.get(cmd);
  if (v === undefined) {
    v = spawnSync('sh', ['-c', 'command -v "$1"', 'sh', cmd], { stdio: 'ignore', timeout: 5000 }).status === 0;
    cache.set(cmd, v);
  }
  return v;
}

export function missingTools(tools: string[]): string[] {
  return tools.filter((t) => !haveCommand(t));
}
