import { pino, type Logger } from 'pino';
import type { HopLabels } from './metrics.js';
import type { RequestRecord, TcpRecord } from './request-record.js';

/** How often buffered lines are written out at the latest. */
const FLUSH_MS = 250;

/** Milliseconds with microsecond precision. */
function ms(value: number): number {
  return Math.round(value * 1000) / 1000;
}

/**
 * The access log: one JSON line (pino) per HTTP request and per TCP connection, for a
 * sampled share of them, to stdout or a file. Lines are buffered (4 KiB, and written at
 * least every 250 ms) so that logging costs no system call per request. Never logs
 * bodies, headers or query strings. docs/observability.md lists the fields.
 */
export class AccessLog {
  readonly #log: Logger;
  readonly #sampling: number;
  readonly #destination: ReturnType<typeof pino.destination>;
  readonly #timer: NodeJS.Timeout;

  constructor(options: { path: string; sampling: number }) {
    this.#sampling = options.sampling;
    this.#destination = pino.destination({ dest: options.path === 'stdout' ? 1 : options.path, sync: true, minLength: 4096, mkdir: true });
    this.#log = pino(
      {
        base: { component: 'access' },
        timestamp: pino.stdTimeFunctions.isoTime,
        formatters: { level: (label) => ({ level: label }) },
      },
      this.#destination,
    );
    this.#timer = setInterval(() => this.flush(), FLUSH_MS).unref();
  }

  /** A sampled request or connection is logged; sampling 0 logs nothing. */
  sample(): boolean {
    return this.#sampling >= 1 || (this.#sampling > 0 && Math.random() < this.#sampling);
  }

  request(hop: HopLabels, r: RequestRecord): void {
    this.#log.info(
      {
        kind: 'http',
        direction: hop.direction,
        protocol: r.protocol,
        method: r.method,
        path: r.path,
        authority: r.authority,
        status: r.status,
        error: r.error,
        source: hop.source_service,
        sourceIdentity: hop.source_identity,
        destination: hop.service,
        destinationIdentity: hop.destination_identity,
        tls: hop.tls === 'true',
        route: r.route,
        upstream: r.upstream,
        attempts: r.attempts,
        upstreamHeadersMs: r.upstreamHeaders > 0 ? ms(r.upstreamHeaders - r.start) : null,
        durationMs: ms(r.end - r.start),
        grpcStatus: r.grpcStatus,
        traceId: r.trace?.traceId ?? null,
        spanId: r.trace?.spanId ?? null,
      },
      'request',
    );
  }

  connection(hop: HopLabels, c: TcpRecord): void {
    this.#log.info(
      {
        kind: 'tcp',
        direction: hop.direction,
        source: hop.source_service,
        sourceIdentity: hop.source_identity,
        destination: hop.service,
        destinationIdentity: hop.destination_identity,
        tls: hop.tls === 'true',
        upstream: c.upstream,
        error: c.error,
        bytesSent: c.sent,
        bytesReceived: c.received,
        durationMs: ms(c.end - c.start),
      },
      'connection',
    );
  }

  /** Writes out buffered lines. */
  flush(): void {
    try {
      this.#destination.flushSync();
    } catch {
      // not ready yet (a file still opening) or nothing to write
    }
  }

  /** Writes out what is buffered and stops. */
  close(): void {
    clearInterval(this.#timer);
    this.flush();
  }
}
