// The management API: HTTP/1.1 (node:http) on a Unix socket, and optionally
// on TCP with a bearer token.
//
// How it works: a Router maps (method, path pattern) to a handler; the
// server reads at most the route's body limit, calls the handler and writes
// its result as JSON (or text). Every failure becomes a JSON error object
// {error, code, ...} with a status: 400 bad input (rule errors add file,
// line, column and token), 401 missing/wrong token, 404 unknown path, 405
// known path with another method (with Allow), 413 body too large, 415
// unsupported Content-Type, 503 not ready, 507 a rule set that would not
// fit in memory beside the running one (./admission.ts), 500 anything
// unexpected.
//
// Invariants:
// - The Unix socket is created mode 0600 (umask while binding, then chmod)
//   in a directory of mode 0700 we create if missing; a stale socket (one
//   nobody answers on) is replaced, a live one is an error; the socket is
//   removed by close().
// - A TCP listener never starts without a token; the token is compared in
//   constant time (SHA-256 of both sides, timingSafeEqual).
// - The API listens only where told (a Unix path, an ADDR:PORT); it has
//   nothing to do with the dataplane ports.
//
// Adding a route: router.add('GET', '/conntrack/:id', handler). Handlers
// get {params, query, headers, text(), json()} and return {status?, body}
// or throw ApiError.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createConnection } from 'node:net';
import { chmodSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { createHash, timingSafeEqual } from 'node:crypto';
import { constants as bufferConstants } from 'node:buffer';
import { decodeUtf8Sliced } from '../rules/load';
import { RuleError, RuleLimitError, excerpt } from '../rules/errors';
import { AdmissionError } from './admission';
import { SharedBody } from './shared-body';
import { log } from './log';

export const DEFAULT_SOCKET = '/run/flatwall/flatwall.sock';
export const SMALL_BODY = 64 * 1024;

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extra: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export interface ApiRequest {
  method: string;
  path: string;
  params: Record<string, string>;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  /** The body as text (read once, within the route's limit). */
  text(): Promise<string>;
  /** The body as bytes (the same single read). */
  bytes(): Promise<Buffer>;
  /**
   * The body read into shared memory as it arrives, for a thread that reads
   * it meanwhile (shared-body.ts); bytes() then resolves to the same bytes.
   * Undefined without a Content-Length of at least `minBytes`, over the
   * limit, or once read.
   */
  sharedBody?(minBytes: number): { body: SharedBody; complete: Promise<Buffer> } | undefined;
  /** Over the Unix socket (root-only by its mode), not TCP. */
  local: boolean;
  /** The body as a JSON object; an empty body is {}. */
  json(): Promise<Record<string, unknown>>;
}

export interface ApiResponse {
  status?: number;
  /** An object is sent as JSON; a string as text/plain (or `contentType`). */
  body: unknown;
  contentType?: string;
}

export type Handler = (req: ApiRequest) => ApiResponse | Promise<ApiResponse>;

interface Route {
  method: string;
  parts: string[];
  handler: Handler;
  maxBody: number;
}

export class Router {
  private readonly routes: Route[] = [];

  /** `pattern`: /a/:param/b; `maxBody`: bytes of request body accepted. */
  add(method: string, pattern: string, handler: Handler, maxBody = SMALL_BODY): this {
    this.routes.push({ method, parts: pattern.split('/').filter(Boolean), handler, maxBody });
    return this;
  }

  match(method: string, path: string): { route: Route; params: Record<string, string> } {
    const segs = path.split('/').filter(Boolean);
    const allowed = new Set<string>();
    for (const r of this.routes) {
      const params = matchParts(r.parts, segs);
      if (!params) continue;
      if (r.method === method || (method === 'HEAD' && r.method === 'GET')) return { route: r, params };
      allowed.add(r.method);
    }
    if (allowed.size === 0) throw new ApiError(404, 'not_found', `no such endpoint: ${path}`);
    const allow = [...allowed].join(', ');
    throw new ApiError(405, 'method_not_allowed', `${method} is not allowed on ${path} (allowed: ${allow})`, {}, { Allow: allow });
  }
}

function matchParts(parts: string[], segs: string[]): Record<string, string> | undefined {
  if (parts.length !== segs.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < parts.length; i++) {
    if (parts[i].startsWith(':')) {
      try {
        params[parts[i].slice(1)] = decodeURIComponent(segs[i]);
      } catch {
        return undefined;
      }
    } else if (parts[i] !== segs[i]) {
      return undefined;
    }
  }
  return params;
}

export interface ApiServerOptions {
  /** Unix socket path; undefined = none. */
  socket?: string;
  /** TCP "ADDR:PORT" ([v6]:port for IPv6); requires `token`. */
  listen?: string;
  token?: string;
  /**
   * Serve GET/HEAD /health and /ready on TCP without the token (a kubelet's
   * httpGet probe cannot send one). Nothing else is opened.
   */
  openProbes?: boolean;
}

/** The paths --api-open-probes serves without a token. */
export const PROBE_PATHS: ReadonlySet<string> = new Set(['/health', '/ready']);

export function parseListen(s: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(s) ?? /^([^:]+):(\d+)$/.exec(s);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) throw new Error(`--api-listen must be ADDR:PORT or [ADDR]:PORT, got "${s}"`);
  return { host: m[1], port };
}

function tokenDigest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

export class ApiServer {
  private readonly servers: Server[] = [];
  private socketPath: string | undefined;
  private readonly tokenHash: Buffer | undefined;
  private readonly openProbes: boolean;
  /** The TCP address actually bound (port 0 picks one). */
  tcpAddress: { host: string; port: number } | undefined;

  constructor(
    private readonly router: Router,
    private readonly opts: ApiServerOptions,
  ) {
    if (opts.listen && !opts.token) throw new Error('refusing a TCP API listener without a token (--api-token-file)');
    this.tokenHash = opts.token ? tokenDigest(opts.token) : undefined;
    this.openProbes = opts.openProbes === true;
  }

  async start(): Promise<void> {
    try {
      if (this.opts.socket) await this.listenUnix(this.opts.socket);
      if (this.opts.listen) await this.listenTcp(parseListen(this.opts.listen));
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  private async listenUnix(path: string): Promise<void> {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    await removeStaleSocket(path);
    const srv = createServer((req, res) => this.serve(req, res, false));
    const old = process.umask(0o177);
    try {
      await listen(srv, () => srv.listen(path));
    } finally {
      process.umask(old);
    }
    chmodSync(path, 0o600);
    this.socketPath = path;
    this.servers.push(srv);
  }

  private async listenTcp(addr: { host: string; port: number }): Promise<void> {
    const srv = createServer((req, res) => this.serve(req, res, true));
    await listen(srv, () => srv.listen(addr.port, addr.host));
    const a = srv.address();
    if (a && typeof a === 'object') this.tcpAddress = { host: a.address, port: a.port };
    this.servers.push(srv);
  }

  private authorized(req: IncomingMessage): boolean {
    const h = req.headers.authorization ?? '';
    const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
    // Always hash and compare, so timing does not reveal whether a header was sent.
    const given = tokenDigest(m ? m[1] : '');
    return timingSafeEqual(given, this.tokenHash!) && m !== null;
  }

  /** One request; whatever happens in it is logged, never thrown into the event loop. */
  private serve(req: IncomingMessage, res: ServerResponse, tcp: boolean): void {
    this.handle(req, res, tcp).catch((err) => {
      log('error', 'api request failed', { method: req.method, error: excerpt(String((err as Error)?.stack ?? err), 2000) });
      res.destroy();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse, tcp: boolean): Promise<void> {
    const t0 = performance.now();
    let status = 500;
    let path = '?';
    try {
      const url = parseTarget(req.url);
      path = url.pathname;
      const probe = this.openProbes && (req.method === 'GET' || req.method === 'HEAD') && PROBE_PATHS.has(url.pathname);
      if (tcp && !probe && !this.authorized(req)) {
        throw new ApiError(401, 'unauthorized', 'a valid bearer token is required (Authorization: Bearer TOKEN)', {}, { 'WWW-Authenticate': 'Bearer' });
      }
      const { route, params } = this.router.match(req.method ?? 'GET', url.pathname);
      let body: Promise<Buffer> | undefined;
      const bytes = () => (body ??= readBody(req, route.maxBody));
      const text = async () => bodyText(await bytes());
      const sharedBody = (minBytes: number) => {
        const declared = Number(req.headers['content-length'] ?? 0);
        if (body || !(Number.isInteger(declared) && declared > 0 && declared >= minBytes && declared <= route.maxBody)) return undefined;
        const sb = new SharedBody(declared);
        body = readBodyShared(req, sb);
        // Its reader is the build thread: the promise may be awaited only if
        // the build falls back to it, so a client that goes away must not be
        // an unhandled rejection (the process's crash handler).
        body.catch(() => undefined);
        return { body: sb, complete: body };
      };
      const r = await route.handler({
        method: req.method ?? 'GET', path: url.pathname, params, query: url.searchParams, headers: req.headers,
        text, bytes, sharedBody, local: !tcp,
        json: async () => {
          const t = (await text()).trim();
          if (t === '') return {};
          let v: unknown;
          try {
            v = JSON.parse(t);
          } catch (err) {
            throw new ApiError(400, 'bad_json', `request body is not valid JSON: ${(err as Error).message}`);
          }
          if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ApiError(400, 'bad_json', 'request body must be a JSON object');
          return v as Record<string, unknown>;
        },
      });
      // Drain what the handler did not read, so the connection stays usable.
      if (!body) await bytes().catch(() => undefined);
      status = r.status ?? 200;
      send(res, status, r.body, r.contentType, req.method === 'HEAD');
    } catch (err) {
      // No request may end the process: a failure while answering a
      // failure (a reply too large to serialize, a closed socket) still
      // gets the shortest answer we can give.
      try {
        const e = toApiError(err);
        status = e.status;
        send(res, e.status, errorBody(e), undefined, false, e.headers);
        if (e.status === 413) req.resume();
        if (e.status >= 500 && e.status !== 507) log('error', 'api error', { method: req.method, path, error: excerpt((err as Error).stack ?? String(err), 2000) });
      } catch (again) {
        status = 500;
        log('error', 'api error', { method: req.method, path, error: excerpt(String(again), 400) });
        try {
          if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'application/json' });
          res.end('{"error":"internal error while answering","code":"internal"}\n');
        } catch {
          res.destroy();
        }
      }
    }
    if (req.method !== 'GET' && req.method !== 'HEAD' || status >= 400) {
      log(status >= 500 ? 'error' : status >= 400 ? 'warn' : 'info', 'api', {
        method: req.method, path, status, ms: Math.round((performance.now() - t0) * 10) / 10, transport: tcp ? 'tcp' : 'unix',
      });
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.servers.map((s) => new Promise<void>((r) => {
      s.close(() => r());
      s.closeAllConnections?.();
    })));
    this.servers.length = 0;
    if (this.socketPath) {
      try {
        unlinkSync(this.socketPath);
      } catch {
        // already gone
      }
      this.socketPath = undefined;
    }
  }
}

function listen(srv: Server, go: () => void): Promise<void> {
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.once('listening', () => {
      srv.off('error', reject);
      resolve();
    });
    go();
  });
}

/** A socket file nobody answers on is left over from a crash: remove it. */
async function removeStaleSocket(path: string): Promise<void> {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new Error(`${path} exists and is not a socket`);
  const alive = await new Promise<boolean>((resolve) => {
    const c = createConnection(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
  if (alive) throw new Error(`another process is serving the API on ${path}`);
  unlinkSync(path);
}

function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > max) return Promise.reject(new ApiError(413, 'body_too_large', `request body of ${declared} bytes exceeds the limit of ${max}`));
  return new Promise((resolve, reject) => {
    // With a Content-Length, one buffer of that size from the start: a
    // snapshot body is hundreds of MB, and growing it chunk by chunk in a
    // process whose heap holds a million rules costs seconds of GC.
    const whole = declared > 0 ? Buffer.allocUnsafe(declared) : undefined;
    const chunks: Buffer[] = [];
    let n = 0;
    req.on('data', (c: Buffer) => {
      if (n + c.length > max || (whole && n + c.length > whole.length)) {
        req.removeAllListeners('data');
        req.resume();
        reject(new ApiError(413, 'body_too_large', `request body exceeds the limit of ${whole ? `its Content-Length, ${whole.length}` : max} bytes`));
        return;
      }
      if (whole) c.copy(whole, n);
      else chunks.push(c);
      n += c.length;
    });
    req.on('end', () => resolve(whole ? whole.subarray(0, n) : Buffer.concat(chunks)));
    req.on('error', () => reject(new ApiError(400, 'bad_request', `the client closed the connection after ${n} body bytes`)));
  });
}

/** How long a streamed body may send nothing before the request is dropped (its 400). */
const BODY_STALL_MS = 60_000;

/** readBody into a SharedBody of the request's Content-Length, which a reader on another thread follows. */
function readBodyShared(req: IncomingMessage, sb: SharedBody): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (err: Error) => {
      sb.abort();
      if (!settled) reject(err);
      settled = true;
    };
    req.on('data', (c: Buffer) => {
      if (settled) return;
      if (!sb.write(c)) {
        req.removeAllListeners('data');
        req.resume();
        fail(new ApiError(413, 'body_too_large', `request body exceeds its Content-Length, ${sb.buffer.byteLength} bytes`));
      }
    });
    req.on('end', () => {
      req.setTimeout(0); // the stall limit is the body's, not the build's
      const b = sb.end();
      if (b) {
        settled = true;
        resolve(b);
      } else if (sb.abandoned) {
        // Its reader stopped (the firewall is stopping, or the build failed: the caller has that error).
        fail(new ApiError(503, 'unavailable', 'the build reading the request body stopped before its end'));
      } else {
        fail(new ApiError(400, 'bad_request', `request body ended after ${sb.received} of its Content-Length, ${sb.buffer.byteLength} bytes`));
      }
    });
    // A client that sends nothing for BODY_STALL_MS holds a build thread and its admitted memory: it is let go.
    req.setTimeout(BODY_STALL_MS, () => req.destroy());
    // A client that goes away mid-body ('error': aborted, then 'close'): its
    // error, and the reader must not wait for the rest.
    const gone = () => fail(new ApiError(400, 'bad_request', `the client closed the connection after ${sb.received} of ${sb.buffer.byteLength} body bytes`));
    req.on('error', gone);
    req.on('close', gone);
  });
}

/** The request target as a URL; one that is not (GET http://[) is the client's error. */
function parseTarget(target: string | undefined): URL {
  try {
    return new URL(target ?? '/', 'http://flatwall');
  } catch {
    throw new ApiError(400, 'bad_request', `the request target is not a valid path: ${excerpt(target ?? '')}`);
  }
}

/** A body as UTF-8 text; one longer than V8's longest string is too large, not an internal error. */
function bodyText(b: Buffer): Promise<string> {
  if (b.length > bufferConstants.MAX_STRING_LENGTH) {
    throw new ApiError(413, 'body_too_large', `request body of ${b.length} bytes is longer than the longest text this process can hold (${bufferConstants.MAX_STRING_LENGTH} characters)`);
  }
  return decodeUtf8Sliced(b);
}

function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof RuleError) {
    const at = { reason: err.reason, file: err.file, line: err.line, column: err.col, token: err.token };
    if (err instanceof RuleLimitError) return new ApiError(413, 'too_many_rules', err.message, { ...at, limit: err.limit });
    return new ApiError(400, 'rule_error', err.message, at);
  }
  if (err instanceof AdmissionError) return new ApiError(507, 'insufficient_memory', err.message, err.detail);
  return new ApiError(500, 'internal', (err as Error)?.message ?? String(err));
}

/**
 * The JSON error object. Its strings pass through excerpt(): messages that
 * are not rule errors quote input too (JSON.parse's "Unexpected token"
 * shows the bytes it met; a path; a file name).
 */
function errorBody(e: ApiError): Record<string, unknown> {
  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(e.extra)) extra[k] = typeof v === 'string' ? excerpt(v, 1024) : v;
  return { error: excerpt(e.message, 1024), code: e.code, ...extra };
}

const json = (v: unknown) => JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? (x <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(x) : x.toString()) : x));

function send(res: ServerResponse, status: number, body: unknown, contentType: string | undefined, head: boolean, headers: Record<string, string> = {}): void {
  const isText = typeof body === 'string';
  const payload = isText ? (body as string) : `${json(body)}\n`;
  res.writeHead(status, {
    'Content-Type': contentType ?? (isText ? 'text/plain; charset=utf-8' : 'application/json'),
    'Content-Length': Buffer.byteLength(payload),
    'Cache-Control': 'no-store',
    ...headers,
  });
  res.end(head ? undefined : payload);
}
