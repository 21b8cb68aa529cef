import type { Cluster } from '../upstream/cluster.js';
import type { UpstreamConnection, UpstreamOwner } from './upstream-pool.js';

/** How long a mirrored request may take before its connection is dropped. */
const MIRROR_TIMEOUT_MS = 10_000;

/**
 * A copy of a request sent to a mirror backend (RequestMirror): fire and forget. The
 * answer is not read beyond its first bytes; the connection is then closed (never reused,
 * so a mirror cannot confuse a pooled connection). Failures are ignored: mirroring never
 * affects the real request.
 */
class MirroredRequest implements UpstreamOwner {
  #conn: UpstreamConnection | null = null;
  readonly #timer: NodeJS.Timeout;

  constructor(cluster: Cluster, head: string) {
    this.#timer = setTimeout(() => this.#done(), MIRROR_TIMEOUT_MS).unref();
    const i = cluster.first(null);
    if (i < 0) {
      clearTimeout(this.#timer);
      return;
    }
    const endpoint = cluster.endpoints[i]!;
    endpoint.pool.acquire(this, false, (err, conn) => {
      if (err !== null || conn === null) return clearTimeout(this.#timer);
      this.#conn = conn;
      conn.socket.write(head, 'latin1');
    });
  }

  #done(): void {
    clearTimeout(this.#timer);
    const conn = this.#conn;
    this.#conn = null;
    if (conn !== null) {
      conn.owner = null;
      conn.socket.destroy();
    }
  }

  onUpstreamData(): void {
    this.#done();
  }

  onUpstreamEnd(): void {
    this.#done();
  }

  onUpstreamClose(): void {
    this.#conn = null;
    clearTimeout(this.#timer);
  }

  onUpstreamDrain(): void {}
}

/** Sends a copy of a request without a body (`head`, serialised) to `cluster`, ignoring the answer. */
export function mirrorRequest(cluster: Cluster, head: string): void {
  new MirroredRequest(cluster, head);
}
