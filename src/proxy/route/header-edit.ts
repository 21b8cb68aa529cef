import type { HeaderEdit } from './types.js';

/**
 * RequestHeaderModifier / ResponseHeaderModifier filters: compiled into a HeaderEdit once,
 * applied to each request or response head in place. Order: `remove`, then `set`
 * (replaces every line of the name), then `add` (a new line; for HTTP/2, another value).
 * Names are lower case in the compiled edit: HTTP field names are case-insensitive, and a
 * header line a filter adds to an HTTP/1 head goes out in lower case.
 */

/** Headers a modifier may not touch, with what to do instead (checked by the route schema). */
const UNEDITABLE: ReadonlyMap<string, string> = new Map([
  ['host', 'the Host header cannot be edited by a header modifier: use a URLRewrite filter with hostname'],
  ['x-forwarded-client-cert', 'x-forwarded-client-cert is set by weft from the caller\'s verified certificate: it cannot be edited'],
  ...['connection', 'transfer-encoding', 'content-length', 'te', 'upgrade', 'keep-alive', 'proxy-connection'].map(
    (name) => [name, `${name} is a connection or framing header that the proxy manages: it cannot be edited`] as const,
  ),
]);

/** Why a header modifier may not edit `name` (any case), or null when it may. */
export function uneditableHeaderProblem(name: string): string | null {
  return UNEDITABLE.get(name.toLowerCase()) ?? null;
}

/** A header modifier filter's configuration, as validated by the route schema. */
export interface HeaderModifierInput {
  readonly set?: readonly { readonly name: string; readonly value: string }[] | undefined;
  readonly add?: readonly { readonly name: string; readonly value: string }[] | undefined;
  readonly remove?: readonly string[] | undefined;
}

/** Compiles a header modifier; null when it edits nothing. */
export function compileHeaderEdit(input: HeaderModifierInput | undefined): HeaderEdit | null {
  if (input === undefined) return null;
  const pairs = (list: HeaderModifierInput['set']) => Object.freeze((list ?? []).map((h) => Object.freeze([h.name.toLowerCase(), h.value] as const)));
  const edit: HeaderEdit = Object.freeze({
    remove: Object.freeze((input.remove ?? []).map((n) => n.toLowerCase())),
    set: pairs(input.set),
    add: pairs(input.add),
  });
  return edit.remove.length + edit.set.length + edit.add.length === 0 ? null : edit;
}

/** An HTTP/1 head's headers: parallel arrays of names as sent, lower-case names and values. */
export interface HeaderLines {
  names: string[];
  lower: string[];
  values: string[];
}

/**
 * Applies an edit to HTTP/1 header lines, in place. `set` replaces the value of the first
 * line of that name (keeping its spelling and position) and drops the other lines of the
 * name, or appends a line when there is none; `add` always appends a line.
 */
export function applyHeaderEdit(edit: HeaderEdit, headers: HeaderLines): void {
  if (edit.remove.length > 0) {
    dropLines(headers, 0, edit.remove);
  }
  // Indexed loops, no destructuring: iterating the frozen lists would allocate per request.
  for (let i = 0; i < edit.set.length; i++) {
    const name = edit.set[i]![0];
    const value = edit.set[i]![1];
    const at = headers.lower.indexOf(name);
    if (at < 0) {
      headers.names.push(name);
      headers.lower.push(name);
      headers.values.push(value);
      continue;
    }
    headers.values[at] = value;
    if (headers.lower.indexOf(name, at + 1) > 0) dropLines(headers, at + 1, name);
  }
  for (let i = 0; i < edit.add.length; i++) {
    const name = edit.add[i]![0];
    const value = edit.add[i]![1];
    headers.names.push(name);
    headers.lower.push(name);
    headers.values.push(value);
  }
}

/** Drops the lines from `from` on named `drop` (one lower-case name, or a list), compacting in place. */
function dropLines(headers: HeaderLines, from: number, drop: string | readonly string[]): void {
  const { names, lower, values } = headers;
  let w = from;
  for (let r = from; r < lower.length; r++) {
    const l = lower[r]!;
    if (typeof drop === 'string' ? l === drop : drop.includes(l)) continue;
    if (w !== r) {
      names[w] = names[r]!;
      lower[w] = lower[r]!;
      values[w] = values[r]!;
    }
    w++;
  }
  names.length = w;
  lower.length = w;
  values.length = w;
}

/**
 * Applies an edit to an HTTP/2 header object (lower-case keys), in place. `add` to a
 * present header makes its value an array (a new array: the old one is not mutated).
 * Pseudo-headers (`:path`, `:authority`, …) are never touched.
 */
export function applyHeaderEditToObject(edit: HeaderEdit, headers: Record<string, string | string[] | number | undefined>): void {
  for (let i = 0; i < edit.remove.length; i++) {
    const name = edit.remove[i]!;
    if (!isPseudo(name)) delete headers[name];
  }
  for (let i = 0; i < edit.set.length; i++) {
    const name = edit.set[i]![0];
    const value = edit.set[i]![1];
    if (!isPseudo(name)) headers[name] = value;
  }
  for (let i = 0; i < edit.add.length; i++) {
    const name = edit.add[i]![0];
    const value = edit.add[i]![1];
    if (isPseudo(name)) continue;
    const old = headers[name];
    headers[name] = old === undefined ? value : Array.isArray(old) ? [...old, value] : [String(old), value];
  }
}

function isPseudo(name: string): boolean {
  return name.charCodeAt(0) === 0x3a; /* : */
}
