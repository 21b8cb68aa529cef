import type { Socket } from 'node:net';
import type { Cluster } from '../upstream/cluster.js';
import type { SidecarMetrics } from '../../obs/metrics.js';
import { admitted, type Admission, type ConnectionInfo } from '../connection-info.js';
import { joinSockets } from './join.js';

/**
 * Carries an opaque byte stream (Redis, PostgreSQL…) between the downstream socket and
 * the first cluster endpoint that accepts a connection. Callers off the allow-list are
 * disconnected. Half-closes are forwarded; an error on either side closes both.
 */
export function proxyTcp(cluster: Cluster, metrics: SidecarMetrics, socket: Socket, conn: ConnectionInfo, admission: Admission): void {
  if (!admitted(admission, conn)) {
    metrics.error(conn.hop.direction, conn.hop.service, 'WEFT_E_FORBIDDEN');
    socket.destroy();
    return;
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
