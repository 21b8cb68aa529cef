/**
 * Header rules shared by every HTTP hop: hop-by-hop headers never cross the proxy
 * (RFC 9110 §7.6.1), ambiguous message framing is refused (request smuggling), and the
 * forwarding headers are written by the sidecar, never trusted from the caller.
 */

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'proxy-authenticate',
  'proxy-authorization',
]);

/** Headers that only the sidecar may set on inbound requests. */
const SIDECAR_OWNED = new Set(['x-forwarded-client-cert', 'x-forwarded-proto', 'x-forwarded-for']);

/** True for headers that describe one connection and must not be forwarded. */
export function isHopByHop(name: string): boolean {
  return HOP_BY_HOP.has(name);
}

/**
 * Returns why a request's framing is ambiguous, or null when it is not: a
 * `Transfer-Encoding` together with a `Content-Length`, several `Content-Length` values,
 * or underscore spellings (`content_length`, `transfer_encoding`) that some servers
 * read as the real thing.
 */
export function framingProblem(rawHeaders: readonly string[]): string | null {
  let contentLength = 0;
  let transferEncoding = false;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    if (name === 'content-length') contentLength++;
    else if (name === 'transfer-encoding') transferEncoding = true;
    else if (name === 'content_length' || name === 'transfer_encoding') {
      return `header "${rawHeaders[i]}" is an ambiguous spelling of a framing header`;
    }
  }
  if (contentLength > 1) return 'several Content-Length headers';
  if (contentLength === 1 && transferEncoding) return 'both Transfer-Encoding and Content-Length';
  return null;
}

/** What the sidecar adds to a request it forwards. */
export interface ForwardingHeaders {
  /** Strip any caller-sent x-forwarded-client-cert/-proto/-for and write our own (inbound). */
  readonly inbound: boolean;
  /** x-forwarded-proto value (inbound only). */
  readonly proto: 'http' | 'https';
  /** Peer address appended to x-forwarded-for (inbound only). */
  readonly clientAddress: string | undefined;
  /** x-forwarded-client-cert value for an authenticated caller, else null. */
  readonly xfcc: string | null;
}

/**
 * Builds the header list (flat name/value array, as undici takes it) for the upstream
 * request from the caller's raw headers: hop-by-hop headers and the ones named in
 * `Connection` are dropped; on inbound, forwarding headers are replaced by the sidecar's.
 */
export function upstreamRequestHeaders(rawHeaders: readonly string[], fwd: ForwardingHeaders): string[] {
  const out: string[] = [];
  let connectionTokens: string | null = null;
  let priorXff: string | null = null;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    const value = rawHeaders[i + 1]!;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower)) {
      if (lower === 'connection') connectionTokens = connectionTokens === null ? value : `${connectionTokens},${value}`;
      else if (lower === 'te' && value.trim().toLowerCase() === 'trailers') out.push(name, value);
      continue;
    }
    // The sidecar already answered `Expect: 100-continue` (Node does), so it goes no further.
    if (lower === 'expect' && value.trim().toLowerCase() === '100-continue') continue;
    if (fwd.inbound && SIDECAR_OWNED.has(lower)) {
      if (lower === 'x-forwarded-for') priorXff = priorXff === null ? value : `${priorXff}, ${value}`;
      continue;
    }
    out.push(name, value);
  }
  if (connectionTokens !== null) dropConnectionListed(out, connectionTokens);
  if (fwd.inbound) {
    if (fwd.clientAddress !== undefined) {
      out.push('x-forwarded-for', priorXff === null ? fwd.clientAddress : `${priorXff}, ${fwd.clientAddress}`);
    } else if (priorXff !== null) {
      out.push('x-forwarded-for', priorXff);
    }
    out.push('x-forwarded-proto', fwd.proto);
    if (fwd.xfcc !== null) out.push('x-forwarded-client-cert', fwd.xfcc);
  }
  return out;
}

/**
 * The response headers to send downstream, as a flat name/value list for writeHead, from
 * the upstream's raw header bytes: hop-by-hop headers and those named in `Connection` are
 * dropped; bytes pass through unchanged (latin1).
 */
export function downstreamResponseHeaders(raw: readonly Buffer[]): string[] {
  const out: string[] = [];
  let connectionTokens: string | null = null;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1');
    const value = raw[i + 1]!.toString('latin1');
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower)) {
      if (lower === 'connection') connectionTokens = connectionTokens === null ? value : `${connectionTokens},${value}`;
      continue;
    }
    out.push(name, value);
  }
  if (connectionTokens !== null) dropConnectionListed(out, connectionTokens);
  return out;
}

function dropConnectionListed(out: string[], tokens: string): void {
  // The common case, `Connection: keep-alive` or `close`, names no other header.
  const plain = tokens.toLowerCase();
  if (plain === 'keep-alive' || plain === 'close') return;
  const names = new Set(tokens.split(',').map((t) => t.trim().toLowerCase()).filter((t) => t !== '' && t !== 'close' && t !== 'keep-alive' && t !== 'upgrade'));
  if (names.size === 0) return;
  for (let i = out.length - 2; i >= 0; i -= 2) {
    if (names.has(out[i]!.toLowerCase())) out.splice(i, 2);
  }
}

/** Envoy's x-forwarded-client-cert format: `By=<our id>;Hash=<sha256 hex>;URI=<caller id>`. */
export function formatXfcc(by: string, certHash: string, uri: string): string {
  return `By=${by};Hash=${certHash};URI=${uri}`;
}
