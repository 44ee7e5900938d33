// Small parsers the extension modules share.
import type { OptionContext, Tok } from './registry';

/** Decimal digits only, at most `max` (xtables_strtoui's range check). */
export function uint(cx: OptionContext, tok: Tok, max: number, what: string): number {
  if (!/^\d{1,10}$/.test(tok.text) || Number(tok.text) > max) cx.fail(tok, `${what} "${tok.text}" must be an integer 0-${max}`);
  return Number(tok.text);
}

/** `N` or `lo:hi` (either side may be empty: 0 and max). */
export function uintRange(cx: OptionContext, tok: Tok, max: number, what: string): [number, number] {
  const s = tok.text;
  const c = s.indexOf(':');
  if (c === -1) {
    const v = uint(cx, tok, max, what);
    return [v, v];
  }
  const lo = s.slice(0, c) === '' ? 0 : uint(cx, { ...tok, text: s.slice(0, c) }, max, what);
  const hi = s.slice(c + 1) === '' ? max : uint(cx, { ...tok, text: s.slice(c + 1) }, max, what);
  if (lo > hi) cx.fail(tok, `invalid ${what} range "${s}" (min > max)`);
  return [lo, hi];
}

export const range = (lo: number, hi: number) => (lo === hi ? `${lo}` : `${lo}:${hi}`);
export const bang = (not: boolean) => (not ? ' !' : '');
