import { Counter, Gauge, Registry } from 'prom-client';
import { RequestMetrics } from './request-metrics.js';

/** Request duration buckets in seconds: fine below a millisecond, where proxy overhead lives. */
export const DURATION_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];

/** Labels of one side of a hop: which way, which local service, who the peer is. */
export interface HopLabels {
  readonly direction: 'inbound' | 'outbound';
  /** The local service (inbound) or the upstream's name (outbound). */
  readonly service: string;
  /** The peer's SPIFFE ID, or `unknown` when the peer presented none (plaintext). */
  readonly peer: string;
  readonly tls: 'true' | 'false';
}

/**
 * The sidecar's Prometheus metrics. Label values are bounded: directions, service names,
 * SPIFFE IDs and status codes only, never paths or addresses. Per-request figures are
 * kept by RequestMetrics (no label hashing per request); the rest are prom-client's.
 */
export class SidecarMetrics {
  readonly registry = new Registry();
  readonly #requests: RequestMetrics<HopLabels>;
  readonly #connections: Counter<'direction' | 'service' | 'peer' | 'tls'>;
  readonly #activeConnections: Gauge<'direction' | 'service'>;
  readonly #errors: Counter<'direction' | 'service' | 'error'>;
  readonly certExpiry: Gauge<'spiffe_id'>;
  readonly certRenewals: Counter<'result'>;
  readonly configReloads: Counter<'result'>;
  readonly configVersion: Gauge;

  constructor() {
    const registers = [this.registry];
    this.#requests = new RequestMetrics<HopLabels>({
      registry: this.registry,
      counter: {
        name: 'weft_requests_total',
        help: 'HTTP requests completed, by direction, local service or upstream, peer identity, TLS and status code.',
      },
      histogram: {
        name: 'weft_request_duration_seconds',
        help: 'HTTP request duration as seen by the sidecar, from request headers to the end of the response.',
      },
      buckets: DURATION_BUCKETS,
      key: (hop) => `${hop.direction}\0${hop.service}\0${hop.peer}\0${hop.tls}`,
    });
    this.#connections = new Counter({
      name: 'weft_connections_total',
      help: 'Connections accepted (inbound, after the TLS handshake) or opened by local callers (outbound).',
      labelNames: ['direction', 'service', 'peer', 'tls'],
      registers,
    });
    this.#activeConnections = new Gauge({
      name: 'weft_connections_active',
      help: 'Connections currently open on the sidecar listeners.',
      labelNames: ['direction', 'service'],
      registers,
    });
    this.#errors = new Counter({
      name: 'weft_errors_total',
      help: 'Local replies and refused connections, by weft-error code.',
      labelNames: ['direction', 'service', 'error'],
      registers,
    });
    this.certExpiry = new Gauge({
      name: 'weft_certificate_expiry_timestamp_seconds',
      help: 'When the sidecar certificate in use expires (Unix seconds).',
      labelNames: ['spiffe_id'],
      registers,
    });
    this.certRenewals = new Counter({
      name: 'weft_certificate_renewals_total',
      help: 'Certificate renewals and reloads, by result.',
      labelNames: ['result'],
      registers,
    });
    this.configReloads = new Counter({
      name: 'weft_config_reloads_total',
      help: 'Configuration reloads, by result (applied, rejected).',
      labelNames: ['result'],
      registers,
    });
    this.configVersion = new Gauge({
      name: 'weft_config_version',
      help: 'Version of the configuration snapshot being served (increments on every applied reload).',
      registers,
    });
  }

  /** Counts one finished HTTP request and observes its duration. */
  request(hop: HopLabels, code: number, seconds: number): void {
    this.#requests.observe(hop, code, seconds);
  }

  /** Counts an opened connection and tracks it as active until `closed` is called. */
  connectionOpened(hop: HopLabels): void {
    this.#connections.labels(hop).inc();
    this.#activeConnections.labels(hop.direction, hop.service).inc();
  }

  connectionClosed(hop: Pick<HopLabels, 'direction' | 'service'>): void {
    this.#activeConnections.labels(hop.direction, hop.service).dec();
  }

  /** Counts a local reply or refused connection by its weft-error code. */
  error(direction: HopLabels['direction'], service: string, error: string): void {
    this.#errors.labels(direction, service, error).inc();
  }
}
