import type { HopLabels } from './metrics.js';
import type { HopSpan } from './tracing.js';

/**
 * One HTTP request as the sidecar handled it: made when its head arrives, filled in by the
 * exchange (route, attempts, endpoint, timings), and handed to the Observer once when it
 * is done (metrics, access log, tap, span). Times are `performance.now()` values.
 */
export class RequestRecord {
  readonly start: number;
  readonly method: string;
  /** The request target as sent (path and query); logs and taps show only the path. */
  readonly target: string;
  readonly authority: string | null;
  readonly protocol: 'http/1.1' | 'http/1.0' | 'h2';
  /** The matched route rule (`namespace/route/rule`), or `-`. */
  route = '-';
  status = 0;
  /** The weft-error code of a local reply (or of a failure after the response started), or null. */
  error: string | null = null;
  /** Tries sent upstream (retries included; 0 when the request never left the sidecar). */
  attempts = 0;
  /** `host:port` of the last endpoint tried, or null. */
  upstream: string | null = null;
  /** When the upstream's response head arrived, or 0. */
  upstreamHeaders = 0;
  end = 0;
  grpcStatus: number | null = null;
  /** The hop's span when the request is traced (or carries a not-sampled decision on), else null. */
  trace: HopSpan | null = null;

  constructor(start: number, method: string, target: string, authority: string | null, protocol: RequestRecord['protocol']) {
    this.start = start;
    this.method = method;
    this.target = target;
    this.authority = authority;
    this.protocol = protocol;
  }

  /** The path without the query string (which may carry secrets). */
  get path(): string {
    const q = this.target.indexOf('?');
    return q < 0 ? this.target : this.target.slice(0, q);
  }
}

/** One opaque TCP connection, handed to the Observer when it closes. */
export interface TcpRecord {
  readonly start: number;
  readonly end: number;
  /** `host:port` of the endpoint, or null when none accepted. */
  readonly upstream: string | null;
  readonly sent: number;
  readonly received: number;
  /** Why it was refused or failed (weft-error code), or null. */
  readonly error: string | null;
}

/** Where finished requests go besides metrics: an active tap (sidecar/control/tap-client.ts). */
export interface TapSink {
  /** True while a tap session wants this sidecar's requests. */
  readonly active: boolean;
  offer(hop: HopLabels, record: RequestRecord): void;
}
