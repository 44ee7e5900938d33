// `flatwall run --watch-rules`: reload when a rule file changes on disk.
//
// Kubernetes mounts a ConfigMap as a directory in which each key is a
// symlink into `..data`, itself a symlink to a timestamped directory; an
// update writes a new timestamped directory and renames a fresh `..data_tmp`
// symlink over `..data` (atomic), then removes the old directory. The file's
// own inode never changes, so watching the file alone misses the update:
// what changes is an entry of the directory. A file bind-mounted on its own
// (podman -v FILE:FILE) or written in place is the opposite case: the
// directory sees nothing, the file's inode does. So both are watched: the
// directory of every rule file (entries renamed, created, removed) and the
// file itself (inotify follows the symlink to the current target), and the
// file watches are re-armed after every change, since the target they
// followed may be gone.
//
// An event only says "look": the files' identity (device, inode, size,
// mtime of what the path resolves to) is compared with the last one seen,
// and when it moved, their content hash; only a changed content reloads
// (kubelet's swap also creates and removes entries around it, editors
// touch files). Events are debounced so that a swap made of several steps,
// or a file written in several writes, reloads once. A reload is the same
// one SIGHUP does (Firewall.reload): atomic, logged, and a file with an
// error keeps the running rules; the content it had is remembered, so it is
// not retried until it changes again.
import { createHash } from 'node:crypto';
import { readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import { dirname } from 'node:path';

export interface RuleWatchOptions {
  /** Quiet time after the last event before the files are looked at (ms). */
  debounceMs?: number;
  /** Poll this often when the files cannot be watched (inotify limits, ...). */
  pollMs?: number;
  /** Called with a change: the caller reloads (serially; a reload in progress is waited for). */
  onChange: () => Promise<void>;
  /** Warnings (a directory that cannot be watched). */
  onWarn?: (message: string, fields: Record<string, unknown>) => void;
}

/** What a path resolves to now; undefined when it cannot be read. */
function identity(file: string): string | undefined {
  try {
    const s = statSync(file);
    return `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}`;
  } catch {
    return undefined;
  }
}

function contentHash(file: string): string {
  try {
    return createHash('sha256').update(readFileSync(file)).digest('hex');
  } catch (err) {
    // A file that cannot be read is a state too: the reload reports why.
    return `unreadable:${(err as NodeJS.ErrnoException).code ?? 'error'}`;
  }
}

export class RuleFileWatcher {
  private readonly debounceMs: number;
  private readonly pollMs: number;
  private dirWatchers: FSWatcher[] = [];
  private fileWatchers: FSWatcher[] = [];
  private timer: NodeJS.Timeout | undefined;
  private poller: NodeJS.Timeout | undefined;
  private ids: (string | undefined)[] = [];
  private hashes: string[] = [];
  private busy: Promise<void> = Promise.resolve();
  private closed = false;
  /** Changes seen (content differed) and events looked at; for tests and logs. */
  changes = 0;
  checks = 0;

  constructor(private readonly files: string[], private readonly o: RuleWatchOptions) {
    this.debounceMs = o.debounceMs ?? 300;
    this.pollMs = o.pollMs ?? 2000;
  }

  /**
   * Remember the files as they are now: call it before they are loaded, so
   * that a change between that load and start() is not missed.
   */
  remember(): void {
    this.ids = this.files.map(identity);
    this.hashes = this.files.map(contentHash);
  }

  /** Start watching (and look once: the files may have changed since remember()). */
  start(): void {
    if (this.ids.length === 0) this.remember();
    let failed = false;
    for (const dir of [...new Set(this.files.map((f) => dirname(f)))]) {
      try {
        const w = watch(dir, { persistent: false }, () => this.poke());
        w.on('error', () => this.poke());
        this.dirWatchers.push(w);
      } catch (err) {
        failed = true;
        this.o.onWarn?.('cannot watch a rule file directory; polling instead', { dir, error: (err as Error).message, pollMs: this.pollMs });
      }
    }
    this.armFiles();
    if (failed) {
      this.poller = setInterval(() => this.poke(), this.pollMs);
      this.poller.unref();
    }
    this.poke();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.poller) clearInterval(this.poller);
    for (const w of [...this.dirWatchers, ...this.fileWatchers]) w.close();
    this.dirWatchers = [];
    this.fileWatchers = [];
  }

  /** Resolves once every change seen so far has been handled (tests). */
  idle(): Promise<void> {
    return this.busy;
  }

  private armFiles(): void {
    for (const w of this.fileWatchers) w.close();
    this.fileWatchers = [];
    for (const f of this.files) {
      try {
        const w = watch(f, { persistent: false }, () => this.poke());
        w.on('error', () => this.poke());
        this.fileWatchers.push(w);
      } catch {
        // Missing now (between a swap's steps): the directory watch sees it come back.
      }
    }
  }

  private poke(): void {
    if (this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.busy = this.busy.then(() => this.check());
    }, this.debounceMs);
    this.timer.unref();
  }

  private async check(): Promise<void> {
    if (this.closed) return;
    this.checks++;
    const ids = this.files.map(identity);
    const moved = ids.some((id, i) => id !== this.ids[i]);
    this.ids = ids;
    this.armFiles();
    if (!moved) return;
    const hashes = this.files.map(contentHash);
    const changed = hashes.some((h, i) => h !== this.hashes[i]);
    this.hashes = hashes;
    if (!changed) return;
    this.changes++;
    try {
      await this.o.onChange();
    } catch {
      // onChange reports its own failures (Firewall.reload logs them).
    }
  }
}
