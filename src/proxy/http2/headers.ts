import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import type { RequestView } from '../route/types.js';

/**
 * Header rules of the HTTP/2 pipeline, the same as HTTP/1's (`http1/headers.ts`):
 * connection-specific headers never cross (RFC 9113 §8.2.2 forbids them anyway, except
 * `te: trailers`), and on inbound listeners the forwarding headers are the sidecar's.
 * Headers are Node's header objects: lower-case names, pseudo-headers first.
 */

const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'http2-settings']);

/** Written by the sidecar on inbound requests; any arriving value is dropped. */
const SIDECAR_OWNED = new Set(['x-forwarded-client-cert', 'x-forwarded-proto', 'x-forwarded-for']);

/** What the sidecar adds to a request it forwards (see http1/headers.ts ForwardingHeaders). */
export interface H2Forwarding {
  readonly inbound: boolean;
  readonly proto: 'http' | 'https';
  readonly clientAddress: string | undefined;
  /** x-forwarded-client-cert for an authenticated caller, else null. */
  readonly xfcc: string | null;
}

/**
 * The request headers for the upstream: pseudo-headers kept (`host` becomes `:authority`
 * when that is missing), connection-specific headers dropped (`te: trailers` kept), and
 * on inbound listeners x-forwarded-* written by the sidecar.
 */
export function upstreamRequestHeaders(incoming: IncomingHttpHeaders, fwd: H2Forwarding): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  let priorXff: string | null = null;
  for (const name of Object.keys(incoming)) {
    const value = incoming[name];
    if (value === undefined) continue;
    if (CONNECTION_SPECIFIC.has(name)) {
      if (name === 'te' && String(value).toLowerCase() === 'trailers') out['te'] = 'trailers';
      continue;
    }
    if (fwd.inbound && SIDECAR_OWNED.has(name)) {
      if (name === 'x-forwarded-for') priorXff = join(value) ?? null;
      continue;
    }
    out[name] = value;
  }
  if (out[':authority'] === undefined && out['host'] !== undefined) {
    out[':authority'] = out['host'];
    delete out['host'];
  }
  if (fwd.inbound) {
    const xff = fwd.clientAddress === undefined ? priorXff : priorXff === null ? fwd.clientAddress : `${priorXff}, ${fwd.clientAddress}`;
    if (xff !== null) out['x-forwarded-for'] = xff;
    out['x-forwarded-proto'] = fwd.proto;
    if (fwd.xfcc !== null) out['x-forwarded-client-cert'] = fwd.xfcc;
  }
  return out;
}

/** Response headers or trailers for the caller: everything but connection-specific headers. */
export function downstreamHeaders(incoming: IncomingHttpHeaders, trailers: boolean): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const name of Object.keys(incoming)) {
    const value = incoming[name];
    if (value === undefined || CONNECTION_SPECIFIC.has(name)) continue;
    if (trailers && name.charCodeAt(0) === 0x3a) continue; // no pseudo-header in trailers
    out[name] = value;
  }
  return out;
}

/** One header's value as text: several values joined with `, ` (Node keeps set-cookie as an array). */
export function join(value: string | string[] | number | undefined): string | undefined {
  if (value === undefined) return undefined;
  return Array.isArray(value) ? value.join(', ') : String(value);
}

/** What routing and authorization read of an HTTP/2 request. */
export function requestView(headers: IncomingHttpHeaders): RequestView {
  const target = headers[':path'] ?? '/';
  const q = target.indexOf('?');
  return {
    method: headers[':method'] ?? 'GET',
    path: q < 0 ? target : target.slice(0, q),
    query: q < 0 ? null : target.slice(q + 1),
    header: (lowerName) => join(headers[lowerName]),
  };
}

