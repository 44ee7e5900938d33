// A rule text that another thread reads while it arrives.
//
// A PUT /rules of a million rules is ~80 MB, and over the Unix socket it
// arrives in 64 KB pieces for a few hundred milliseconds; a rule file of
// that size is read in tens of ms more. The build thread (build-thread.ts)
// parses it as it comes instead of after: the event loop's thread copies
// each piece into one SharedArrayBuffer of the text's length (the copy it
// made anyway, into one buffer of that size; a file is pread straight into
// it) and publishes how far it has got; the build thread waits for whole
// lines and hands them to the addon's text compiler in place. Nothing is
// copied twice and the event loop never decodes or scans the text.
//
// The protocol is one Int32Array over a second SharedArrayBuffer:
//   [RECEIVED] bytes written so far, only ever growing, stored (Atomics)
//              after the bytes themselves, so a reader that loads it sees
//              every byte below it;
//   [STATE]    RECEIVING, then ENDED (all Content-Length bytes are there)
//              or ABORTED (the client went away, the body was refused);
// and every change is followed by Atomics.notify on RECEIVED, on which the
// reader sleeps with Atomics.wait (worker threads may block; the API thread
// never waits).
import type { FileHandle } from 'node:fs/promises';

const RECEIVED = 0;
const STATE = 1;
const RECEIVING = 0;
const ENDED = 1;
const ABORTED = 2;
/** Bytes of a file read at a time into a body. */
const FILE_STEP = 4 << 20;

/** The writing side, on the API thread. */
export class SharedBody {
  readonly buffer: SharedArrayBuffer;
  readonly progress: SharedArrayBuffer;
  private readonly bytes: Buffer;
  private readonly p: Int32Array;
  private n = 0;
  // This writer aborted it (the body did not arrive whole).
  private mine = false;

  constructor(length: number) {
    if (!(Number.isInteger(length) && length >= 0 && length < 2 ** 31)) throw new RangeError(`a shared body holds 0 to 2^31-1 bytes, not ${length}`);
    this.buffer = new SharedArrayBuffer(length);
    this.progress = new SharedArrayBuffer(8);
    this.bytes = Buffer.from(this.buffer);
    this.p = new Int32Array(this.progress);
  }

  get received(): number {
    return this.n;
  }

  /** Appends a piece; false (nothing written) when it would not fit. */
  write(chunk: Uint8Array): boolean {
    const state = Atomics.load(this.p, STATE);
    // Its reader was stopped (abortReaders: the firewall is stopping): the rest is dropped.
    if (state === ABORTED) return true;
    if (state !== RECEIVING || this.n + chunk.length > this.bytes.length) return false;
    this.bytes.set(chunk, this.n);
    this.n += chunk.length;
    this.publish(RECEIVED, this.n);
    return true;
  }

  /**
   * Fills it from a file opened with its length: read a few MiB at a time
   * (pread, on the libuv pool), each published as it lands. False, with the
   * readers told, if the file ended sooner or goes on (it changed since it
   * was sized).
   */
  async fillFrom(handle: FileHandle): Promise<boolean> {
    const total = this.bytes.length;
    while (this.n < total && Atomics.load(this.p, STATE) === RECEIVING) {
      const { bytesRead } = await handle.read(this.bytes, this.n, Math.min(FILE_STEP, total - this.n), this.n);
      if (bytesRead === 0) break;
      this.n += bytesRead;
      this.publish(RECEIVED, this.n);
    }
    // A file that grew since it was sized (written in place while read) is not whole either.
    if (this.n === total && (await handle.read(Buffer.alloc(1), 0, 1, total)).bytesRead > 0) {
      this.abort();
      return false;
    }
    return this.end() !== undefined;
  }

  /** All bytes are there: the body as a Buffer over the shared memory. False if fewer than its length came. */
  end(): Buffer | undefined {
    if (this.n !== this.bytes.length || Atomics.compareExchange(this.p, STATE, RECEIVING, ENDED) !== RECEIVING) {
      this.abort();
      return undefined;
    }
    Atomics.notify(this.p, RECEIVED);
    return this.bytes;
  }

  /** No more will come: a reader waiting throws. */
  abort(): void {
    if (Atomics.load(this.p, STATE) === RECEIVING) this.mine = true;
    abortReaders(this.progress);
  }

  /** Its readers were told to stop from elsewhere (abortReaders: the build was abandoned), not by this writer. */
  get abandoned(): boolean {
    return Atomics.load(this.p, STATE) === ABORTED && !this.mine;
  }

  private publish(at: number, v: number): void {
    Atomics.store(this.p, at, v);
    Atomics.notify(this.p, RECEIVED);
  }
}

/**
 * Tells the readers of the body behind `progress` that no more will come
 * (from any thread): a build that is no longer wanted stops at its next
 * pull, without being terminated inside the addon (build-thread.ts).
 */
export function abortReaders(progress: SharedArrayBuffer): void {
  const p = new Int32Array(progress);
  if (Atomics.compareExchange(p, STATE, RECEIVING, ABORTED) === RECEIVING) Atomics.notify(p, RECEIVED);
}

/** Thrown by a reader whose body will not be complete. */
export class BodyAborted extends Error {
  constructor() {
    super('the request body ended before its Content-Length');
  }
}

/**
 * The reading side, on a worker thread: blocks (Atomics.wait) until what it
 * asks for has arrived.
 */
export class SharedBodyReader {
  private readonly bytes: Buffer;
  private readonly p: Int32Array;

  constructor(buffer: SharedArrayBuffer, progress: SharedArrayBuffer) {
    this.bytes = Buffer.from(buffer);
    this.p = new Int32Array(progress);
  }

  get length(): number {
    return this.bytes.length;
  }

  /** Waits until at least `n` bytes (or all of a shorter body) have arrived; how many have. */
  waitFor(n: number): number {
    const want = Math.min(n, this.bytes.length);
    for (;;) {
      const got = Atomics.load(this.p, RECEIVED);
      if (got >= want) return got;
      const state = Atomics.load(this.p, STATE);
      if (state === ABORTED) throw new BodyAborted();
      // A notify between the loads and the wait changes RECEIVED or
      // STATE; the timeout covers a STATE change that raced the wait.
      Atomics.wait(this.p, RECEIVED, got, 100);
    }
  }

  /** The first `n` bytes, or all of a shorter body, once they are here. */
  head(n: number): Buffer {
    return this.bytes.subarray(0, Math.min(this.waitFor(n), n));
  }

  /** The whole body, once it is here. */
  all(): Buffer {
    this.waitFor(this.bytes.length);
    return this.bytes;
  }

  /**
   * A pull function for the addon's text compiler (rules_binding.cc): from
   * byte `from` on, each call gives the next run of whole lines that has
   * arrived (at least `min` bytes of them unless the body ends first), the
   * rest after the last newline at the end, then null.
   */
  puller(from: number, min = 256 << 10): () => Buffer | null {
    let at = from;
    // Bytes from `at` up to here hold no newline (a long line is searched once, not at every piece of it).
    let clear = from;
    return () => {
      const total = this.bytes.length;
      for (;;) {
        if (at >= total) return null;
        const got = this.waitFor(Math.min(total, Math.max(at + min, clear + 1)));
        if (got >= total) {
          const out = this.bytes.subarray(at, total);
          at = clear = total;
          return out;
        }
        const nl = this.bytes.subarray(clear, got).lastIndexOf(10);
        if (nl >= 0) {
          const out = this.bytes.subarray(at, clear + nl + 1);
          at = clear = clear + nl + 1;
          return out;
        }
        // A line longer than what has come: wait for more of it.
        clear = got;
      }
    };
  }
}
