import type { Socket } from 'node:net';
import type { HopLabels } from '../obs/metrics.js';
import type { PeerIdentity } from './tls.js';

/** What the listener learned about a downstream connection, computed once when it opens. */
export interface ConnectionInfo {
  readonly peer: PeerIdentity;
  readonly tls: boolean;
  /** False when an allow-list is set and the caller is not on it. */
  readonly allowed: boolean;
  /** Metric labels for everything on this connection. */
  readonly hop: HopLabels;
  /** x-forwarded-client-cert value for requests on this connection, or null. */
  readonly xfcc: string | null;
}

const infos = new WeakMap<Socket, ConnectionInfo>();

/** Associates connection facts with a socket (the listener does this before any request). */
export function setConnectionInfo(socket: Socket, info: ConnectionInfo): void {
  infos.set(socket, info);
}

/** The facts recorded for `socket`; throws if the listener did not record any (a bug). */
export function getConnectionInfo(socket: Socket): ConnectionInfo {
  const info = infos.get(socket);
  if (info === undefined) throw new Error('connection has no recorded info');
  return info;
}
