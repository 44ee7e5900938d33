// Network namespaces for tests that need the real kernel. Each namespace is
// named after the test run, and removed even when the test fails.
import { execFileSync, spawnSync } from 'node:child_process';
import { haveCommand } from '../src/lab/tools';

/**
 * Why kernel tests cannot run here, or undefined when they can. In CI the
 * tools are installed by the README's command, so a missing one is a failure
 * there, not a skip.
 */
export function kernelTestsUnavailable(tools: string[]): string | undefined {
  const missing = [];
  if (process.getuid?.() !== 0) missing.push('root');
  for (const t of tools) if (!haveCommand(t)) missing.push(t);
  if (missing.length === 0) return undefined;
  const why = `needs ${missing.join(', ')}`;
  if (process.env.CI) throw new Error(`kernel test ${why} (CI must provide it; see README)`);
  return why;
}

export class NetNs {
  readonly name: string;
  constructor(tag: string) {
    this.name = `fw${tag}${process.pid}${Math.floor(Math.random() * 1e4)}`.slice(0, 15);
    execFileSync('ip', ['netns', 'add', this.name]);
  }
  exec(cmd: string, args: string[], input?: string): string {
    return execFileSync('ip', ['netns', 'exec', this.name, cmd, ...args], { input, encoding: 'utf8', timeout: 30_000 });
  }
  close(): void {
    spawnSync('ip', ['netns', 'del', this.name], { stdio: 'ignore' });
  }
}
