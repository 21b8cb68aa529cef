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
  readonly #stdout: boolean;
  /** A write failed (disk full, file removed…): the log stops rather than fail requests. */
  #failed = false;

  /** `onError` hears once about the write failure that stopped the log. */
  constructor(options: { path: string; sampling: number; onError?: (err: Error) => void }) {
    this.#sampling = options.sampling;
    this.#stdout = options.path === 'stdout';
    this.#destination = pino.destination({ dest: this.#stdout ? 1 : options.path, sync: true, minLength: 4096, mkdir: true });
    // pino's own listener re-emits errors it does not handle: without this one, a failed
    // write would throw out of the request path and end the process.
    this.#destination.on('error', (err: Error) => {
      if (this.#failed) return;
      this.#failed = true;
      options.onError?.(err);
    });
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
    if (this.#failed) return false;
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

  /** Writes out what is buffered and stops (closing the file; stdout stays open). */
  close(): void {
    clearInterval(this.#timer);
    this.flush();
    if (!this.#stdout) this.#destination.end();
  }
}
