// Child processes for the lab: every one has a timeout, every background one
// is tracked so that teardown (normal end, error, Ctrl-C, process exit) can
// stop it, and commands run inside a network namespace with `ip netns exec`
// (which execs in place, so the child's pid is the command's own pid).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';

export interface RunOptions {
  /** Network namespace to run in (ip netns exec). */
  ns?: string;
  /** Hard limit; the child gets SIGTERM, then SIGKILL 1 s later. */
  timeoutMs: number;
  input?: string | Buffer;
  /** Resolve instead of reject on a non-zero exit or a timeout. */
  allowFail?: boolean;
  env?: NodeJS.ProcessEnv;
  /** Write stdout to this file instead of collecting it (large outputs). */
  stdoutFile?: string;
  /** Read stdin from this file (large inputs, e.g. a rule file for *-restore). */
  stdinFile?: string;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  seconds: number;
}

export class CommandError extends Error {
  constructor(
    message: string,
    readonly result: RunResult,
  ) {
    super(message);
  }
}

export function nsArgv(ns: string | undefined, cmd: string, args: string[]): [string, string[]] {
  return ns ? ['ip', ['netns', 'exec', ns, cmd, ...args]] : [cmd, args];
}

const live = new Set<ChildProcess>();

/** Every child started through this module that has not exited yet. */
export function liveChildren(): ChildProcess[] {
  return [...live];
}

function track(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  child.once('error', () => live.delete(child));
}

function killHard(child: ChildProcess, first: NodeJS.Signals = 'SIGTERM'): void {
  if (child.exitCode !== null || child.signalCode !== null) return;
  try {
    child.kill(first);
  } catch {
    /* already gone */
  }
  const t = setTimeout(() => {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        child.kill('SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }, 1000);
  t.unref();
}

function describe(cmd: string, args: string[]): string {
  const s = [cmd, ...args].join(' ');
  return s.length > 160 ? `${s.slice(0, 157)}...` : s;
}

/** Run a command to completion (bounded by timeoutMs). */
export function run(cmd: string, args: string[], opts: RunOptions): Promise<RunResult> {
  const [c, a] = nsArgv(opts.ns, cmd, args);
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    let outFd: number | undefined;
    let inFd: number | undefined;
    try {
      if (opts.stdoutFile) outFd = openSync(opts.stdoutFile, 'w');
      if (opts.stdinFile) inFd = openSync(opts.stdinFile, 'r');
    } catch (e) {
      if (outFd !== undefined) closeSync(outFd);
      reject(e);
      return;
    }
    const child = spawn(c, a, {
      stdio: [inFd ?? (opts.input !== undefined ? 'pipe' : 'ignore'), outFd ?? 'pipe', 'pipe'],
      env: opts.env ?? process.env,
    });
    track(child);
    if (inFd !== undefined) closeSync(inFd);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let errLen = 0;
    child.stdout?.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => {
      if (errLen < 1 << 20) err.push(b);
      errLen += b.length;
    });
    if (opts.input !== undefined) {
      child.stdin!.on('error', () => undefined); // EPIPE if the child exits early
      child.stdin!.end(opts.input);
    }
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killHard(child);
    }, opts.timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      if (outFd !== undefined) closeSync(outFd);
      reject(new Error(`cannot run ${cmd}: ${e.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (outFd !== undefined) closeSync(outFd);
      const r: RunResult = {
        code, signal, timedOut,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        seconds: (performance.now() - t0) / 1000,
      };
      if (opts.allowFail || (code === 0 && !timedOut)) resolve(r);
      else {
        const why = timedOut ? `timed out after ${opts.timeoutMs / 1000} s` : `exited with ${code ?? signal}`;
        const tail = r.stderr.trim().split('\n').slice(-3).join(' | ');
        reject(new CommandError(`${describe(c, a)}: ${why}${tail ? `: ${tail}` : ''}`, r));
      }
    });
  });
}

/** Synchronous variant for setup and teardown steps (short commands only). */
export function runSync(cmd: string, args: string[], opts: { ns?: string; timeoutMs?: number; input?: string; allowFail?: boolean } = {}): RunResult {
  const [c, a] = nsArgv(opts.ns, cmd, args);
  const t0 = performance.now();
  const r = spawnSync(c, a, { input: opts.input, encoding: 'utf8', timeout: opts.timeoutMs ?? 10_000, killSignal: 'SIGKILL', maxBuffer: 64 << 20 });
  const res: RunResult = {
    code: r.status, signal: r.signal, stdout: r.stdout ?? '', stderr: r.stderr ?? '',
    timedOut: r.error !== undefined && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT',
    seconds: (performance.now() - t0) / 1000,
  };
  if (r.error && !res.timedOut && !opts.allowFail) throw new Error(`cannot run ${cmd}: ${r.error.message}`);
  if (!opts.allowFail && (res.code !== 0 || res.timedOut)) {
    const why = res.timedOut ? 'timed out' : `exited with ${res.code ?? res.signal}`;
    throw new CommandError(`${describe(c, a)}: ${why}: ${res.stderr.trim().split('\n').slice(-3).join(' | ')}`, res);
  }
  return res;
}

/**
 * A long-running child (servers, the firewall). Its stdout is kept as lines;
 * waitFor() resolves on the first line that satisfies a predicate.
 */
export class Background {
  readonly child: ChildProcess;
  readonly lines: string[] = [];
  stderr = '';
  private partial = '';
  private waiters: Array<{ pred: (l: string) => boolean; resolve: (l: string) => void; reject: (e: Error) => void }> = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly maxTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly label: string,
    cmd: string,
    args: string[],
    opts: { ns?: string; maxLifetimeMs?: number; detached?: boolean; stdoutFile?: string; env?: NodeJS.ProcessEnv; stdin?: boolean } = {},
  ) {
    const [c, a] = nsArgv(opts.ns, cmd, args);
    const outFd = opts.stdoutFile ? openSync(opts.stdoutFile, 'a') : undefined;
    this.child = spawn(c, a, {
      stdio: [opts.stdin ? 'pipe' : 'ignore', outFd ?? 'pipe', outFd ?? 'pipe'],
      detached: opts.detached ?? false,
      env: opts.env ?? process.env,
    });
    if (outFd !== undefined) closeSync(outFd);
    this.child.stdin?.on('error', () => undefined);
    if (!opts.detached) track(this.child);
    this.child.stdout?.setEncoding('utf8');
    this.child.stdout?.on('data', (s: string) => this.onData(s));
    this.child.stderr?.setEncoding('utf8');
    this.child.stderr?.on('data', (s: string) => {
      if (this.stderr.length < 1 << 20) this.stderr += s;
    });
    this.exited = new Promise((resolve) => {
      this.child.once('error', (e) => {
        this.stderr += `\n${e.message}`;
        this.failWaiters(new Error(`${label}: cannot start: ${e.message}`));
        resolve({ code: null, signal: null });
      });
      this.child.once('close', (code, signal) => {
        if (this.partial) this.pushLine(this.partial);
        this.partial = '';
        this.failWaiters(new Error(`${label} exited (${code ?? signal}) before the expected output${this.stderrTail()}`));
        resolve({ code, signal });
      });
    });
    if (opts.maxLifetimeMs) {
      this.maxTimer = setTimeout(() => killHard(this.child), opts.maxLifetimeMs);
      this.maxTimer.unref();
    }
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  private stderrTail(): string {
    const t = this.stderr.trim().split('\n').slice(-3).join(' | ');
    return t ? `: ${t}` : '';
  }

  private onData(s: string): void {
    const parts = (this.partial + s).split('\n');
    this.partial = parts.pop()!;
    for (const l of parts) this.pushLine(l);
  }

  private pushLine(l: string): void {
    this.lines.push(l);
    for (const w of [...this.waiters]) {
      if (w.pred(l)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(l);
      }
    }
  }

  private failWaiters(e: Error): void {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w.reject(e);
  }

  /** The first line (already seen from index `from`, or future) matching pred, within timeoutMs. */
  waitFor(pred: (line: string) => boolean, timeoutMs: number, what = 'output', from = 0): Promise<string> {
    const seen = this.lines.slice(from).find(pred);
    if (seen !== undefined) return Promise.resolve(seen);
    if (!this.running) return Promise.reject(new Error(`${this.label} is not running (waiting for ${what})${this.stderrTail()}`));
    return new Promise((resolve, reject) => {
      const w = {
        pred,
        resolve: (l: string) => {
          clearTimeout(t);
          resolve(l);
        },
        reject: (e: Error) => {
          clearTimeout(t);
          reject(e);
        },
      };
      const t = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`${this.label}: no ${what} within ${timeoutMs / 1000} s${this.stderrTail()}`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  /** Write a line to the child's stdin (opts.stdin). */
  send(line: string): void {
    this.child.stdin?.write(`${line}\n`);
  }

  /** A request over stdin and the first reply line after it that satisfies pred. */
  async ask(line: string, pred: (line: string) => boolean, timeoutMs: number, what = 'reply'): Promise<string> {
    const from = this.lines.length;
    this.send(line);
    return this.waitFor(pred, timeoutMs, what, from);
  }

  signal(sig: NodeJS.Signals): void {
    if (this.running) this.child.kill(sig);
  }

  /** Stop with `sig`, SIGKILL after graceMs; resolves once it has exited. */
  async stop(sig: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.running) {
      try {
        this.child.kill(sig);
      } catch {
        /* gone */
      }
      const t = setTimeout(() => {
        try {
          this.child.kill('SIGKILL');
        } catch {
          /* gone */
        }
      }, graceMs);
      const r = await this.exited;
      clearTimeout(t);
      if (this.maxTimer) clearTimeout(this.maxTimer);
      return r;
    }
    if (this.maxTimer) clearTimeout(this.maxTimer);
    return this.exited;
  }
}

/** SIGKILL every tracked child that is still running (synchronous; for exit paths). */
export function killAllTracked(): void {
  for (const c of live) {
    try {
      c.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
