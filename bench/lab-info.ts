// What the network-namespace benchmarks (bench/e2e.ts, bench/sweep.ts) print
// about themselves and the machine: the header comment as --help, the tools'
// versions, and the CPU share a measurement had.
import { readdirSync, readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { execFileSync } from 'node:child_process';

/** Print the script's header comment (the `//` block at its top) and exit 0. */
export function printHeaderHelp(file: string): never {
  // The compiled file begins with "use strict".
  const lines = readFileSync(file, 'utf8').split('\n');
  const start = lines.findIndex((l) => l.startsWith('//'));
  const end = lines.findIndex((l, i) => i > start && !l.startsWith('//'));
  process.stdout.write(lines.slice(start, end).map((l) => l.slice(3)).join('\n') + '\n');
  process.exit(0);
}

/** The first line of `cmd args`, or 'n/a'. */
export function toolVersion(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'pipe'] }).split('\n')[0].trim();
  } catch {
    return 'n/a';
  }
}

/** The machine and the tool versions, for the JSON of a lab benchmark. */
export function labMachine(): Record<string, string | number | undefined> {
  return {
    cpus: cpus().length,
    cpu: cpus()[0]?.model,
    memGb: +(totalmem() / 2 ** 30).toFixed(1),
    kernel: toolVersion('uname', ['-r']),
    node: process.version,
    iperf3: toolVersion('iperf3', ['--version']),
    nft: toolVersion('nft', ['--version']),
    iptables: toolVersion('iptables-legacy', ['--version']),
  };
}

/** Jiffies of the whole machine (/proc/stat's cpu line): busy and total. */
export function cpuJiffies(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest is inside user)
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - f[3] - f[4], total };
}

/** CPU seconds (user + system) a process has used so far, or undefined once it is gone. */
export function processCpuSeconds(pid: number): number | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the ")" that ends the command name: utime is the 14th field overall.
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // USER_HZ: 100 on Linux
  } catch {
    return undefined;
  }
}

/**
 * Scheduler time of every thread of a process so far (/proc/PID/task/TID/schedstat):
 * seconds on a CPU and seconds runnable but waiting for one. Undefined once it is gone.
 */
export function processSchedSeconds(pid: number): { run: number; wait: number } | undefined {
  try {
    let run = 0;
    let wait = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const [r, w] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').trim().split(/\s+/).map(Number);
      run += r / 1e9;
      wait += w / 1e9;
    }
    return { run, wait };
  } catch {
    return undefined;
  }
}
