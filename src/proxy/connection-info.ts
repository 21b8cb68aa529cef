import type { Socket } from 'node:net';
import type { HopLabels } from '../obs/metrics.js';
import type { PeerIdentity } from './tls.js';
import type { CompiledAuthz } from './authz/authz.js';
import type { CallerCounter } from './caller-tally.js';

/** What the listener learned about a downstream connection, computed once when it opens. */
export interface ConnectionInfo {
  readonly peer: PeerIdentity;
  readonly tls: boolean;
  /** Metric labels for everything on this connection. */
  readonly hop: HopLabels;
  /** x-forwarded-client-cert value for requests on this connection, or null. */
  readonly xfcc: string | null;
  /** The caller's source address (for logs), or null when the socket had none. */
  readonly remoteAddress: string | null;
  /** This caller's counters in the sidecar's CallerTally (inbound listeners), or null. */
  readonly callers: CallerCounter | null;
}

const infos = new WeakMap<Socket, ConnectionInfo>();

/** Associates connection facts with a socket (the listener does this before any request). */
export function setConnectionInfo(socket: Socket, info: ConnectionInfo): void {
  infos.set(socket, info);
}

/** The facts recorded for `socket`, or null before the listener dispatched it. */
export function peekConnectionInfo(socket: Socket): ConnectionInfo | null {
  return infos.get(socket) ?? null;
}

/** The facts recorded for `socket`; throws if the listener did not record any (a bug). */
export function getConnectionInfo(socket: Socket): ConnectionInfo {
  const info = infos.get(socket);
  if (info === undefined) throw new Error('connection has no recorded info');
  return info;
}

/** Who may use a listener, from its current compiled configuration. */
export interface Admission {
  /** SPIFFE IDs allowed to call, or null for everyone the trust bundle admits. */
  readonly allow: ReadonlySet<string> | null;
  /** True on a strict inbound listener: plaintext connections are no longer welcome. */
  readonly requireTls: boolean;
  /**
   * Authorization rules, checked after `admitted` per request (HTTP) or connection (TCP),
   * or null for none. A new configuration compiles a new object: identity tells a change.
   */
  readonly authz: CompiledAuthz | null;
  /**
   * A dry run of strict mTLS on a listener that still accepts plaintext (permissive
   * security, `requireTls` false): plaintext requests and connections are let through,
   * counted and logged as what strict mode would refuse.
   */
  readonly strictDryRun: boolean;
}

/**
 * Whether the caller of `conn` may use the listener now: the identity and TLS rules (the
 * allow-list, strict mode), not the authorization rules. Checked per request (HTTP) and
 * per connection (TCP), and again for open connections when a reload tightens the rules.
 */
export function admitted(admission: Admission, conn: ConnectionInfo): boolean {
  if (admission.requireTls && !conn.tls) return false;
  return admission.allow === null || (conn.peer.spiffeId !== null && admission.allow.has(conn.peer.spiffeId));
}
