// The management API's IP set routes (docs/API.md, "IP sets"): ipset's
// list/save/test and an all-or-nothing restore endpoint every edit goes
// through, so that the HTTP API and `flatwall ctl ipset` (and a restore
// file) share one parser and one set of messages.
import { ApiError, type ApiRequest, type Router } from './api';
import type { Firewall } from './firewall';
import { REQUEST_FILE } from './ruleops';
import { argsToLine } from '../sets/parse';
import { SetStoreError, type IpsetStore } from '../sets/store';

/** Restore bodies: 100k `add` lines are ~4 MB. */
export const IPSET_BODY_LIMIT = 64 * 1024 * 1024;

const truthy = (v: string | null | undefined) => v === '1' || v === 'true' || v === 'yes';
const TEXT = 'text/plain; charset=utf-8';

function storeCall<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof SetStoreError) throw new ApiError(err.code === 'no_set' ? 404 : 400, err.code === 'no_set' ? 'no_such_set' : 'bad_element', err.message);
    throw err;
  }
}

/** format=list|save|names (+ terse=1), or undefined for JSON. */
function textFormat(sets: IpsetStore, req: ApiRequest, name?: string): { body: string; contentType: string } | undefined {
  const f = req.query.get('format');
  if (f === null || f === 'json') return undefined;
  if (f === 'list') return { body: storeCall(() => sets.listText(name, { terse: truthy(req.query.get('terse')) })), contentType: TEXT };
  if (f === 'names') return { body: storeCall(() => sets.listText(name, { names: true })), contentType: TEXT };
  if (f === 'save') return { body: storeCall(() => sets.saveText(name)), contentType: TEXT };
  throw new ApiError(400, 'bad_parameter', `format must be json, list, names or save, got "${f}"`);
}

/** Applies ipset restore text (what every edit becomes). */
function apply(sets: IpsetStore, text: string, exist: boolean) {
  const r = sets.restore(text, REQUEST_FILE, { exist });
  return { applied: r.commands, lines: r.lines, seconds: r.seconds };
}

function setName(req: ApiRequest): string {
  const n = req.params.name;
  if (!/^[^\s"]+$/.test(n)) throw new ApiError(400, 'bad_parameter', `"${n}" is not a set name`);
  return n;
}

function requireSet(sets: IpsetStore, name: string): void {
  if (!sets.describe(name)) throw new ApiError(404, 'no_such_set', 'The set with the given name does not exist');
}

export function ipsetRoutes(fw: Firewall, router: Router): Router {
  const sets = fw.sets;

  router.add('GET', '/sets', (req) => textFormat(sets, req) ?? { body: { sets: sets.summary() } });

  router.add('GET', '/sets/:name', (req) => {
    const name = setName(req);
    return textFormat(sets, req, name) ?? { body: { set: storeCall(() => sets.summary(name, true))[0] } };
  });

  router.add('GET', '/sets/:name/test', (req) => {
    const name = setName(req);
    const entry = req.query.get('entry');
    if (!entry) throw new ApiError(400, 'bad_parameter', 'entry is required: GET /sets/NAME/test?entry=ELEMENT');
    const r = storeCall(() => sets.test(name, entry));
    return { body: { set: name, element: r.element, present: r.present } };
  });

  // ipset restore: create/add/del/flush/destroy/swap/rename lines, all or nothing.
  router.add('POST', '/sets', async (req) => {
    const ct = String(req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    let text: string;
    let exist = truthy(req.query.get('exist'));
    if (ct === 'application/json') {
      const b = await req.json();
      if (typeof b.restore !== 'string') throw new ApiError(400, 'bad_request', 'body must be {"restore": "ipset save text", "exist": false} or text/plain ipset save text');
      text = b.restore;
      exist ||= b.exist === true;
    } else {
      text = await req.text();
    }
    return { body: apply(sets, text, exist) };
  }, IPSET_BODY_LIMIT);

  router.add('DELETE', '/sets', () => {
    if (sets.names().some((n) => sets.references(n) > 0)) throw new ApiError(409, 'set_in_use', 'Set cannot be destroyed: it is in use by a kernel component');
    return { body: { destroyed: true, ...apply(sets, 'destroy', false) } };
  });

  router.add('DELETE', '/sets/:name', (req) => {
    const name = setName(req);
    if (sets.references(name) > 0) throw new ApiError(409, 'set_in_use', 'Set cannot be destroyed: it is in use by a kernel component');
    requireSet(sets, name);
    return { body: { destroyed: true, ...apply(sets, argsToLine(['destroy', name]), false) } };
  });

  router.add('POST', '/sets/:name/flush', (req) => {
    const name = setName(req);
    requireSet(sets, name);
    return { body: { flushed: true, ...apply(sets, argsToLine(['flush', name]), false) } };
  });

  // One element: {"entry": "1.2.3.4", "timeout": 600, "nomatch": true,
  // "comment": "...", "exist": true} or a text/plain "ENTRY [options]".
  router.add('POST', '/sets/:name/entries', async (req) => {
    const name = setName(req);
    requireSet(sets, name);
    const ct = String(req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    let line: string;
    let exist = truthy(req.query.get('exist'));
    if (ct === 'text/plain') {
      line = `add ${name} ${(await req.text()).trim()}`;
    } else {
      const b = await req.json();
      if (typeof b.entry !== 'string') throw new ApiError(400, 'bad_request', 'body must be {"entry": "ELEMENT", "timeout"?: N, "nomatch"?: true, "comment"?: "...", "exist"?: true}');
      const args = ['add', name, b.entry];
      if (b.timeout !== undefined) args.push('timeout', String(b.timeout));
      if (b.nomatch === true) args.push('nomatch');
      if (b.comment !== undefined) args.push('comment', String(b.comment));
      line = argsToLine(args);
      exist ||= b.exist === true;
    }
    return { status: 201, body: apply(sets, line, exist) };
  });

  router.add('DELETE', '/sets/:name/entries', (req) => {
    const name = setName(req);
    requireSet(sets, name);
    const entry = req.query.get('entry');
    if (!entry) throw new ApiError(400, 'bad_parameter', 'entry is required: DELETE /sets/NAME/entries?entry=ELEMENT');
    return { body: apply(sets, argsToLine(['del', name, entry]), truthy(req.query.get('exist'))) };
  });

  return router;
}
