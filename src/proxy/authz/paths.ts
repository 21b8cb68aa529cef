/**
 * How authorization reads a request path (docs/authorization.md, "Paths"). The request is
 * forwarded unchanged; only the comparison with rule paths uses the canonical form:
 *
 * - the query string (from `?`) and a fragment (from `#`) are not part of the path;
 * - an absolute-form target (`http://host/p`) is read as its path (`/p`);
 * - percent-escapes of visible ASCII characters other than `/`, `\` and `%` are decoded
 *   once (`%70rivate` is `private`, `%2e%2e` is `..`); other escapes keep their bytes, with
 *   upper-case hex digits;
 * - dot segments are resolved (`/a/./b/../c` is `/a/c`, never above `/`) and empty segments
 *   dropped (`//a` is `/a`).
 *
 * A path holding `%2F`, `%5C` or `\` is ambiguous: apps differ on whether those separate
 * segments. It gets two readings, one with them as data and one with them as `/`.
 */

/** Index where the path of a request target ends: its `?` or `#`, else its length. */
export function pathEnd(target: string): number {
  for (let i = 0; i < target.length; i++) {
    const c = target.charCodeAt(i);
    if (c === 0x3f /* ? */ || c === 0x23 /* # */) return i;
  }
  return target.length;
}

/** The readings of a path that needs normalising; the second one only for an ambiguous path. */
export interface PathReadings {
  readonly first: string;
  readonly second: string | null;
}

/**
 * The canonical readings of `target`'s path (up to `end`), or null when the path as
 * received is already canonical (origin-form, no `%`, `\`, `//` or `/.`): then it is
 * compared as it is, without a copy.
 */
export function readingsOf(target: string, end: number): PathReadings | null {
  if (end > 0 && target.charCodeAt(0) === 0x2f && isPlain(target, end)) return null;
  let path = target.slice(0, end);
  if (!path.startsWith('/')) {
    const scheme = path.indexOf('://');
    if (scheme <= 0 || !/^[A-Za-z][A-Za-z0-9+.-]*$/.test(path.slice(0, scheme))) {
      // `*` (OPTIONS) or authority-form: no rule path (they start with /) matches it.
      return { first: path, second: null };
    }
    const slash = path.indexOf('/', scheme + 3);
    path = slash < 0 ? '/' : path.slice(slash);
  }
  const first = canonicalPath(path, false);
  return { first, second: /%2f|%5c|\\/i.test(path) ? canonicalPath(path, true) : null };
}

function isPlain(target: string, end: number): boolean {
  for (let i = 0; i < end; i++) {
    const c = target.charCodeAt(i);
    if (c === 0x25 /* % */ || c === 0x5c /* \ */) return false;
    if (c === 0x2f /* / */ && i + 1 < end) {
      const next = target.charCodeAt(i + 1);
      if (next === 0x2f || next === 0x2e /* . */) return false;
    }
  }
  return true;
}

const HEX = '0123456789ABCDEF';

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

/**
 * The canonical form of an origin-form path (see the module comment). With
 * `slashesSeparate`, `%2F`, `%5C` and `\` become `/` before dot segments are resolved.
 */
export function canonicalPath(path: string, slashesSeparate: boolean): string {
  let out = '';
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c === 0x25 && i + 2 < path.length) {
      const hi = hexValue(path.charCodeAt(i + 1));
      const lo = hexValue(path.charCodeAt(i + 2));
      if (hi >= 0 && lo >= 0) {
        const byte = hi * 16 + lo;
        i += 2;
        if ((byte === 0x2f || byte === 0x5c) && slashesSeparate) out += '/';
        else if (byte >= 0x21 && byte <= 0x7e && byte !== 0x2f && byte !== 0x5c && byte !== 0x25) out += String.fromCharCode(byte);
        else out += `%${HEX[hi]}${HEX[lo]}`;
        continue;
      }
    }
    out += c === 0x5c && slashesSeparate ? '/' : path[i];
  }
  return removeDotSegments(out);
}

/** RFC 3986 §5.2.4 for an absolute path, and empty segments dropped. */
function removeDotSegments(path: string): string {
  const segments = path.split('/');
  const out: string[] = [];
  for (let i = 1; i < segments.length; i++) {
    const s = segments[i]!;
    if (s === '' || s === '.') continue;
    if (s === '..') out.pop();
    else out.push(s);
  }
  const last = segments[segments.length - 1];
  const trailing = out.length > 0 && segments.length > 1 && (last === '' || last === '.' || last === '..');
  return `/${out.join('/')}${trailing ? '/' : ''}`;
}

/**
 * A rule's path as a request would carry it: characters a request target cannot hold
 * (non-ASCII, spaces, controls) percent-encoded as UTF-8. canonicalPath then gives the
 * form requests are compared in.
 */
export function canonicalRulePath(path: string): string {
  let out = '';
  for (const ch of path) {
    const c = ch.codePointAt(0)!;
    if (c >= 0x21 && c <= 0x7e) out += ch;
    else for (const b of Buffer.from(ch, 'utf8')) out += `%${HEX[b >> 4]}${HEX[b & 15]}`;
  }
  return out;
}
