import type { AccessLog } from './access-log.js';
import type { HopSpan, Tracer } from './tracing.js';
import { TRACE_HEADERS } from './trace-headers.js';
import type { HeaderEdit } from '../proxy/route/types.js';
import type { HopLabels, SidecarMetrics } from './metrics.js';
import type { RequestRecord, TapSink, TcpRecord } from './request-record.js';

/**
 * Where a finished request or TCP connection is reported, once: the metrics, the span of a
 * traced request, the access log (sampled), and an active tap. One per sidecar, shared by
 * every listener; `accessLog` and `tap` may change at runtime.
 */
export class Observer {
  readonly metrics: SidecarMetrics;
  accessLog: AccessLog | null;
  tap: TapSink | null = null;
  /** Spans and trace headers, or null: tracing off (trace headers pass through untouched). */
  tracer: Tracer | null = null;

  constructor(metrics: SidecarMetrics, accessLog: AccessLog | null) {
    this.metrics = metrics;
    this.accessLog = accessLog;
  }

  /** A request is done (`record.status`, `record.end` set). */
  request(hop: HopLabels, r: RequestRecord): void {
    this.metrics.request(hop, r.route, r.status, (r.end - r.start) / 1000);
    const trace = r.trace;
    if (trace !== null) {
      trace.end({ status: r.status, error: r.error, route: r.route, upstream: r.upstream, attempts: r.attempts, grpcStatus: r.grpcStatus, endTimeMs: performance.timeOrigin + r.end });
    }
    const log = this.accessLog;
    if (log !== null && log.sample()) log.request(hop, r);
    const tap = this.tap;
    if (tap !== null && tap.active) tap.offer(hop, r);
  }

  /** The header edit that replaces a traced request's incoming trace headers with the span's. */
  static traceHeaderEdit(span: HopSpan): HeaderEdit {
    return { remove: TRACE_HEADERS, set: [], add: span.headers };
  }

  /** A TCP connection closed (or was refused). */
  connection(hop: HopLabels, c: TcpRecord): void {
    const t = this.metrics.tcp(hop);
    t.closed++;
    t.sent += c.sent;
    t.received += c.received;
    const log = this.accessLog;
    if (log !== null && log.sample()) log.connection(hop, c);
  }
}
