import { WeftError } from '../errors.js';

/** Longest SPIFFE ID weft accepts, in bytes (the SPIFFE ID spec's interoperability limit). */
export const MAX_SPIFFE_ID_BYTES = 2048;

const SCHEME = 'spiffe://';
const TRUST_DOMAIN_CHAR = /^[a-z0-9._-]$/;
const PATH_CHAR = /^[A-Za-z0-9._-]$/;

/** A parsed SPIFFE ID. `path` is '' for the ID of a trust domain itself, else starts with '/'. */
export interface SpiffeId {
  readonly trustDomain: string;
  readonly path: string;
}

/** A parsed weft service ID: `spiffe://TRUST_DOMAIN/ns/NAMESPACE/svc/SERVICE`. */
export interface ServiceSpiffeId {
  readonly trustDomain: string;
  readonly namespace: string;
  readonly service: string;
}

/**
 * Parses and validates a SPIFFE ID per the SPIFFE ID specification: lowercase `spiffe://`
 * scheme; a non-empty trust domain of lowercase letters, digits, `.`, `-` and `_` (so no
 * port and no userinfo); an optional path of non-empty segments made of letters, digits,
 * `.`, `-` and `_`, none of them `.` or `..`, with no trailing slash; no query, fragment or
 * percent-encoding; at most 2048 bytes. Throws WEFT_E_SPIFFE_ID naming the broken rule.
 */
export function parseSpiffeId(uri: string): SpiffeId {
  const fail = (rule: string): WeftError =>
    new WeftError('WEFT_E_SPIFFE_ID', `"${preview(uri)}" is not a valid SPIFFE ID: ${rule}`);

  if (typeof uri !== 'string' || uri === '') throw fail('it is empty; write it as spiffe://TRUST_DOMAIN/PATH');
  if (Buffer.byteLength(uri, 'utf8') > MAX_SPIFFE_ID_BYTES) {
    throw fail(`it is longer than ${MAX_SPIFFE_ID_BYTES} bytes; use a shorter path`);
  }
  if (!uri.startsWith(SCHEME)) {
    if (uri.toLowerCase().startsWith(SCHEME)) throw fail('the scheme must be lowercase "spiffe://"');
    throw fail('it must start with "spiffe://", e.g. spiffe://example.org/ns/default/svc/web');
  }
  const rest = uri.slice(SCHEME.length);
  if (rest.includes('?')) throw fail('a query ("?…") is not allowed; remove it');
  if (rest.includes('#')) throw fail('a fragment ("#…") is not allowed; remove it');
  if (rest.includes('%')) {
    throw fail('percent-encoding ("%xx") is not allowed; use only letters, digits, ".", "-" and "_"');
  }

  const slash = rest.indexOf('/');
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? '' : rest.slice(slash);
  const tdProblem = trustDomainProblem(trustDomain);
  if (tdProblem !== null) throw fail(tdProblem);

  if (path !== '') {
    const segments = path.slice(1).split('/');
    segments.forEach((segment, i) => {
      if (segment === '') {
        throw fail(
          i === segments.length - 1
            ? 'a trailing slash is not allowed; remove the final "/"'
            : 'path segments must not be empty ("//"); remove the extra "/"',
        );
      }
      if (segment === '.' || segment === '..') {
        throw fail(`path segments must not be "." or ".."; found "${segment}"`);
      }
      for (const ch of segment) {
        if (!PATH_CHAR.test(ch)) {
          throw fail(`the path contains the character ${quoteChar(ch)}; use only letters, digits, ".", "-" and "_"`);
        }
      }
    });
  }
  return { trustDomain, path };
}

/**
 * Throws WEFT_E_TRUST_DOMAIN unless `td` is a valid SPIFFE trust domain name (non-empty,
 * lowercase letters, digits, `.`, `-`, `_`; the bare name, not a `spiffe://` URI).
 */
export function validateTrustDomain(td: string): void {
  if (typeof td === 'string' && td.toLowerCase().startsWith(SCHEME)) {
    throw new WeftError(
      'WEFT_E_TRUST_DOMAIN',
      `"${preview(td)}" is not a trust domain name: give the name alone (e.g. example.org), without "spiffe://"`,
    );
  }
  const problem = trustDomainProblem(typeof td === 'string' ? td : '');
  if (problem !== null) {
    throw new WeftError('WEFT_E_TRUST_DOMAIN', `"${preview(String(td))}" is not a valid trust domain: ${problem}`);
  }
  if (Buffer.byteLength(SCHEME + td, 'utf8') > MAX_SPIFFE_ID_BYTES) {
    throw new WeftError('WEFT_E_TRUST_DOMAIN', `the trust domain is too long; keep it well under ${MAX_SPIFFE_ID_BYTES} bytes`);
  }
}

/**
 * The SPIFFE ID weft gives a service: `spiffe://TD/ns/NAMESPACE/svc/SERVICE`. Validates the
 * parts (throwing WEFT_E_TRUST_DOMAIN or WEFT_E_SPIFFE_ID) and the resulting ID.
 */
export function serviceSpiffeId(trustDomain: string, namespace: string, service: string): string {
  validateTrustDomain(trustDomain);
  checkSegment('namespace', namespace);
  checkSegment('service', service);
  const id = `${SCHEME}${trustDomain}/ns/${namespace}/svc/${service}`;
  parseSpiffeId(id);
  return id;
}

/**
 * Parses a weft service ID (`spiffe://TD/ns/NAMESPACE/svc/SERVICE`). Throws WEFT_E_SPIFFE_ID
 * when `uri` is not a valid SPIFFE ID or does not have exactly that shape.
 */
export function parseServiceSpiffeId(uri: string): ServiceSpiffeId {
  const { trustDomain, path } = parseSpiffeId(uri);
  const parts = path.split('/');
  if (parts.length !== 5 || parts[1] !== 'ns' || parts[3] !== 'svc') {
    throw new WeftError(
      'WEFT_E_SPIFFE_ID',
      `"${preview(uri)}" is not a weft service ID: expected spiffe://${trustDomain}/ns/NAMESPACE/svc/SERVICE`,
    );
  }
  return { trustDomain, namespace: parts[2] ?? '', service: parts[4] ?? '' };
}

/** The trust domain ID (`spiffe://TD`) of a trust domain name. */
export function trustDomainId(trustDomain: string): string {
  validateTrustDomain(trustDomain);
  return SCHEME + trustDomain;
}

function trustDomainProblem(td: string): string | null {
  if (td === '') return 'the trust domain is empty; write spiffe://TRUST_DOMAIN/…, e.g. spiffe://example.org/…';
  if (td.includes('@')) return 'userinfo ("user@") is not allowed in the trust domain; remove it';
  if (td.includes(':')) return 'a port is not allowed in the trust domain; remove ":PORT"';
  for (const ch of td) {
    if (TRUST_DOMAIN_CHAR.test(ch)) continue;
    if (/^[A-Z]$/.test(ch)) return `the trust domain must be lowercase; write "${td.toLowerCase()}"`;
    return `the trust domain contains the character ${quoteChar(ch)}; use only lowercase letters, digits, ".", "-" and "_"`;
  }
  return null;
}

function checkSegment(what: string, value: string): void {
  const problem =
    typeof value !== 'string' || value === ''
      ? 'it is empty'
      : value === '.' || value === '..'
        ? `it must not be "${value}"`
        : [...value].some((ch) => !PATH_CHAR.test(ch))
          ? 'use only letters, digits, ".", "-" and "_"'
          : null;
  if (problem !== null) {
    throw new WeftError('WEFT_E_SPIFFE_ID', `invalid ${what} "${preview(String(value))}" for a SPIFFE ID: ${problem}`);
  }
}

function quoteChar(ch: string): string {
  return /^[\x21-\x7e]$/.test(ch) ? `"${ch}"` : `U+${(ch.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;
}

function preview(text: string): string {
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}

/** The service name of a weft service ID, or `unknown` (no ID, or another shape); for labels and logs (once per connection). */
export function serviceOf(spiffeId: string | null): string {
  if (spiffeId === null) return 'unknown';
  try {
    return parseServiceSpiffeId(spiffeId).service;
  } catch {
    return 'unknown';
  }
}
