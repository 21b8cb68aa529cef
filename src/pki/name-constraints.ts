import { children, concat, encodeElement, readElement } from './der.js';
import { EXTENSION_OID, type CertificateExtension } from './extensions.js';

const TAG_SEQUENCE = 0x30;
const TAG_PERMITTED = 0xa0;
const TAG_EXCLUDED = 0xa1;
const TAG_URI = 0x86;

/** The URI-typed subtrees of a certificate's name constraints (other name types are ignored). */
export interface UriNameConstraints {
  /** Host constraints a URI must match one of (empty: URIs are not constrained). */
  readonly permitted: string[];
  /** Host constraints a URI must match none of. */
  readonly excluded: string[];
}

/**
 * A critical name constraints extension whose permitted subtrees are the given URI host
 * constraints (RFC 5280 §4.2.1.10: `example.org` matches exactly that host, `.example.org`
 * its subdomains). For a SPIFFE trust domain pass the trust domain name.
 */
export function uriNameConstraintsExtension(permittedHosts: readonly string[]): CertificateExtension {
  const subtrees = permittedHosts.map((host) =>
    encodeElement(TAG_SEQUENCE, encodeElement(TAG_URI, new TextEncoder().encode(host))),
  );
  const value = encodeElement(TAG_SEQUENCE, encodeElement(TAG_PERMITTED, concat(subtrees)));
  return { oid: EXTENSION_OID.nameConstraints, critical: true, value };
}

/**
 * Reads the URI subtrees of a name constraints extension value (the DER inside extnValue).
 * Throws a plain Error when it is malformed.
 */
export function readUriNameConstraints(buf: Uint8Array): UriNameConstraints {
  const top = readElement(buf, 0);
  const result = { permitted: [] as string[], excluded: [] as string[] };
  for (const part of children(buf, top)) {
    const list = part.tag === TAG_PERMITTED ? result.permitted : part.tag === TAG_EXCLUDED ? result.excluded : null;
    if (!list) continue;
    for (const subtree of children(buf, part)) {
      const base = children(buf, subtree)[0];
      if (base?.tag === TAG_URI) list.push(Buffer.from(buf.subarray(base.start, base.end)).toString('latin1'));
    }
  }
  return result;
}

/** The host part of a URI (`spiffe://example.org/x` → `example.org`), or null if it has none. */
export function uriHost(uri: string): string | null {
  const m = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/(?:[^/?#@]*@)?([^/?#:]*)/.exec(uri);
  return m?.[1] ? m[1].toLowerCase() : null;
}

/** True when `host` satisfies one host constraint (`example.org` or `.example.org`). */
export function hostMatches(host: string, constraint: string): boolean {
  const c = constraint.toLowerCase();
  return c.startsWith('.') ? host.endsWith(c) : host === c;
}

/**
 * Whether `uri` is allowed by the constraints: its host matches a permitted subtree (when
 * there are any) and no excluded one. A URI without a host is never allowed by a URI
 * constraint, as RFC 5280 requires.
 */
export function uriAllowed(uri: string, constraints: UriNameConstraints): boolean {
  if (constraints.permitted.length === 0 && constraints.excluded.length === 0) return true;
  const host = uriHost(uri);
  if (host === null) return false;
  if (constraints.excluded.some((c) => hostMatches(host, c))) return false;
  return constraints.permitted.length === 0 || constraints.permitted.some((c) => hostMatches(host, c));
}
