import type { MessageHead, RequestHead, ResponseHead } from './head.js';

/**
 * Header rules shared by every HTTP hop: hop-by-hop headers never cross the proxy
 * (RFC 9110 §7.6.1), and the forwarding headers are written by the sidecar, never trusted
 * from the caller. The output is the serialised head, ready to write to the next hop.
 */

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'upgrade', 'proxy-authenticate', 'proxy-authorization']);

/** Headers that only the sidecar may set on inbound requests. */
const SIDECAR_OWNED = new Set(['x-forwarded-client-cert', 'x-forwarded-proto', 'x-forwarded-for']);

/** True for headers that describe one connection and must not be forwarded. */
export function isHopByHop(name: string): boolean {
  return HOP_BY_HOP.has(name);
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
 * The request head to send upstream. The request keeps its version; the connection to the
 * upstream is kept alive (HTTP/1.0 requests ask for it), or asks for the upgrade the
 * caller asked for. Hop-by-hop headers and those named in `Connection` are dropped, except
 * `TE: trailers` (gRPC needs it); on inbound, forwarding headers are the sidecar's.
 */
export function upstreamRequestHead(head: RequestHead, upgrade: boolean, fwd: ForwardingHeaders): string {
  const { names, lower, values } = head;
  const listed = connectionListed(head);
  let out = `${head.method} ${head.target} HTTP/1.${head.minor}\r\n`;
  let priorXff: string | null = null;
  for (let i = 0; i < names.length; i++) {
    const low = lower[i]!;
    if (HOP_BY_HOP.has(low)) {
      if (low === 'te' && values[i]!.toLowerCase() === 'trailers') out += `${names[i]}: ${values[i]}\r\n`;
      continue;
    }
    if (listed !== null && listed.has(low)) continue;
    if (fwd.inbound && SIDECAR_OWNED.has(low)) {
      if (low === 'x-forwarded-for') priorXff = priorXff === null ? values[i]! : `${priorXff}, ${values[i]}`;
      continue;
    }
    out += `${names[i]}: ${values[i]}\r\n`;
  }
  if (head.chunked) out += 'transfer-encoding: chunked\r\n';
  if (upgrade) out += `connection: upgrade\r\nupgrade: ${head.upgrade}\r\n`;
  else if (head.minor === 0) out += 'connection: keep-alive\r\n';
  if (fwd.inbound) {
    const xff = fwd.clientAddress === undefined ? priorXff : priorXff === null ? fwd.clientAddress : `${priorXff}, ${fwd.clientAddress}`;
    if (xff !== null) out += `x-forwarded-for: ${xff}\r\n`;
    out += `x-forwarded-proto: ${fwd.proto}\r\n`;
    if (fwd.xfcc !== null) out += `x-forwarded-client-cert: ${fwd.xfcc}\r\n`;
  }
  return `${out}\r\n`;
}

/** How the proxy frames the response on the caller's connection. */
export interface ResponseFraming {
  /** The connection to the caller closes after this response. */
  readonly close: boolean;
  /** An HTTP/1.0 caller whose connection stays open must be told so. */
  readonly keepAlive10: boolean;
}

/**
 * The response head to send downstream: the upstream's status and reason, its end-to-end
 * headers byte for byte, and the proxy's own framing and connection headers. A 101 keeps
 * its Upgrade header; Content-Length is dropped when the body is chunked.
 */
export function downstreamResponseHead(head: ResponseHead, framing: ResponseFraming): string {
  const { names, lower, values } = head;
  const listed = connectionListed(head);
  const switching = head.status === 101;
  let out = `HTTP/1.1 ${head.status} ${head.reason}\r\n`;
  for (let i = 0; i < names.length; i++) {
    const low = lower[i]!;
    if (HOP_BY_HOP.has(low) || (listed !== null && listed.has(low))) continue;
    if (head.chunked && low === 'content-length') continue;
    out += `${names[i]}: ${values[i]}\r\n`;
  }
  if (switching) return `${out}connection: upgrade\r\nupgrade: ${head.upgrade ?? ''}\r\n\r\n`;
  if (head.chunked) out += 'transfer-encoding: chunked\r\n';
  if (framing.close) out += 'connection: close\r\n';
  else if (framing.keepAlive10) out += 'connection: keep-alive\r\n';
  return `${out}\r\n`;
}

/** Header names listed in `Connection` (other than the connection options themselves), or null. */
function connectionListed(head: MessageHead): Set<string> | null {
  const tokens = head.connection;
  if (tokens === null) return null;
  let listed: Set<string> | null = null;
  for (const t of tokens) {
    if (t === 'close' || t === 'keep-alive' || t === 'upgrade') continue;
    (listed ??= new Set()).add(t);
  }
  return listed;
}

/** Envoy's x-forwarded-client-cert format: `By=<our id>;Hash=<sha256 hex>;URI=<caller id>`. */
export function formatXfcc(by: string, certHash: string, uri: string): string {
  return `By=${by};Hash=${certHash};URI=${uri}`;
}
