import type { Socket } from 'node:net';
import type { Cluster } from '../upstream/cluster.js';
import type { Observer } from '../../obs/observer.js';
import { admitted, type Admission, type ConnectionInfo } from '../connection-info.js';
import type { PolicyRecorder } from '../policy-recorder.js';
import { joinSockets } from './join.js';

/**
 * Carries an opaque byte stream (Redis, PostgreSQL…) between the downstream socket and
 * the first cluster endpoint that accepts a connection. Callers off the allow-list or
 * denied by the authorization rules (checked once, for the connection) are disconnected.
 * Half-closes are forwarded; an error on either side closes both. Every connection is
 * counted (opened, closed, bytes each way) and reported to the observer when it closes.
 */
export function proxyTcp(cluster: Cluster, obs: Observer, socket: Socket, conn: ConnectionInfo, admission: Admission, policy: PolicyRecorder): void {
  const start = performance.now();
  const hop = conn.hop;
  obs.metrics.tcp(hop).opened++;
  const refuse = (error: string): void => {
    obs.metrics.error(hop.direction, hop.service, error);
    socket.destroy();
    obs.connection(hop, { start, end: performance.now(), upstream: null, sent: 0, received: 0, error });
  };
  if (!admitted(admission, conn)) return refuse('WEFT_E_FORBIDDEN');
  if (admission.authz !== null) {
    const decision = admission.authz.checkConnection(conn.peer.spiffeId);
    if (!decision.allowed) {
      policy.denied(conn, decision, null, null);
      return refuse('WEFT_E_AUTHZ_DENIED');
    }
    if (decision.audited) policy.audited(conn, decision, null, null);
    else policy.allowed();
  }
  if (admission.strictDryRun && !conn.tls) {
    if (conn.callers !== null) conn.callers.wouldReject++;
    policy.strictDryRun(conn, null, null);
  }
  socket.pause();
  socket.on('error', () => socket.destroy());
  cluster.connectAny((err, upstream) => {
    if (err || upstream === null) return refuse('WEFT_E_UPSTREAM_CONNECT');
    if (socket.destroyed) {
      upstream.destroy();
      obs.connection(hop, { start, end: performance.now(), upstream: null, sent: 0, received: 0, error: null });
      return;
    }
    const endpoint = obs.accessLog === null ? null : `${upstream.remoteAddress ?? '?'}:${upstream.remotePort ?? 0}`;
    // Count the plaintext side's bytes: the app's socket (inbound: the upstream; outbound: the caller).
    const plain = hop.direction === 'inbound' ? upstream : socket;
    const fromCaller = hop.direction === 'inbound' ? () => plain.bytesWritten : () => plain.bytesRead;
    const toCaller = hop.direction === 'inbound' ? () => plain.bytesRead : () => plain.bytesWritten;
    socket.once('close', () => {
      obs.connection(hop, { start, end: performance.now(), upstream: endpoint, sent: fromCaller(), received: toCaller(), error: null });
    });
    joinSockets(socket, upstream);
    socket.resume();
  });
}
