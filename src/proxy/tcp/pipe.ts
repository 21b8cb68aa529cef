import type { Socket } from 'node:net';
import type { Cluster } from '../upstream/cluster.js';
import type { SidecarMetrics } from '../../obs/metrics.js';
import { admitted, type Admission, type ConnectionInfo } from '../connection-info.js';
import type { PolicyRecorder } from '../policy-recorder.js';
import { joinSockets } from './join.js';

/**
 * Carries an opaque byte stream (Redis, PostgreSQL…) between the downstream socket and
 * the first cluster endpoint that accepts a connection. Callers off the allow-list or
 * denied by the authorization rules (checked once, for the connection) are disconnected.
 * Half-closes are forwarded; an error on either side closes both.
 */
export function proxyTcp(cluster: Cluster, metrics: SidecarMetrics, socket: Socket, conn: ConnectionInfo, admission: Admission, policy: PolicyRecorder): void {
  if (!admitted(admission, conn)) {
    metrics.error(conn.hop.direction, conn.hop.service, 'WEFT_E_FORBIDDEN');
    socket.destroy();
    return;
  }
  if (admission.authz !== null) {
    const decision = admission.authz.checkConnection(conn.peer.spiffeId);
    if (!decision.allowed) {
      policy.denied(conn, decision, null, null);
      metrics.error(conn.hop.direction, conn.hop.service, 'WEFT_E_AUTHZ_DENIED');
      socket.destroy();
      return;
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
    if (err || upstream === null) {
      metrics.error(conn.hop.direction, conn.hop.service, 'WEFT_E_UPSTREAM_CONNECT');
      socket.destroy();
      return;
    }
    if (socket.destroyed) {
      upstream.destroy();
      return;
    }
    joinSockets(socket, upstream);
    socket.resume();
  });
}
