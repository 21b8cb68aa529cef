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
 * One listener's policy outcomes as plain fields, incremented per request or connection
 * (no label hashing); read when /metrics is scraped. `authz` and `strictDryRun` say whether
 * the listener has rules or a dry run, so their series show 0 before the first event.
 */
export class PolicyCounters {
  /** Decisions of the authorization rules: allowed, denied, allowed by an audit rule. */
  allow = 0;
  deny = 0;
  audit = 0;
  /** Plaintext requests (HTTP) or connections (TCP) a strict dry run let through. */
  dryRun = 0;
  authz = false;
  strictDryRun = false;

  constructor(
    readonly direction: HopLabels['direction'],
    readonly service: string,
  ) {}
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
  readonly #retries: Counter<'direction' | 'service'>;
  readonly certExpiry: Gauge<'spiffe_id'>;
  readonly certRenewals: Counter<'result'>;
  readonly configReloads: Counter<'result'>;
  readonly configVersion: Gauge;
  readonly #policies = new Map<string, PolicyCounters>();

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
    this.#retries = new Counter({
      name: 'weft_retries_total',
      help: 'Requests sent again by a route rule\'s retry policy (each retry counts once).',
      labelNames: ['direction', 'service'],
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
    const policies = this.#policies;
    new Counter({
      name: 'weft_authz_decisions_total',
      help: 'Authorization decisions on inbound requests (HTTP) and connections (TCP): allow, deny, audit (allowed by an audit rule: would be denied).',
      labelNames: ['direction', 'service', 'decision'],
      registers,
      collect() {
        this.reset();
        for (const p of policies.values()) {
          if (!p.authz && p.allow + p.deny + p.audit === 0) continue;
          this.inc({ direction: p.direction, service: p.service, decision: 'allow' }, p.allow);
          this.inc({ direction: p.direction, service: p.service, decision: 'deny' }, p.deny);
          this.inc({ direction: p.direction, service: p.service, decision: 'audit' }, p.audit);
        }
      },
    });
    new Counter({
      name: 'weft_strict_dry_run_total',
      help: 'Plaintext requests (HTTP) or connections (TCP) a strict mTLS dry run let through that strict mode would refuse.',
      labelNames: ['service'],
      registers,
      collect() {
        this.reset();
        for (const p of policies.values()) {
          if (p.strictDryRun || p.dryRun > 0) this.inc({ service: p.service }, p.dryRun);
        }
      },
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

  /** The policy counters of a listener's direction and service (one object per pair, kept across reloads). */
  policyCounters(direction: HopLabels['direction'], service: string): PolicyCounters {
    const key = `${direction}\0${service}`;
    let counters = this.#policies.get(key);
    if (counters === undefined) {
      counters = new PolicyCounters(direction, service);
      this.#policies.set(key, counters);
    }
    return counters;
  }

  /** Counts one retry of a request. */
  retry(direction: HopLabels['direction'], service: string): void {
    this.#retries.labels(direction, service).inc();
  }

  /** Counts a local reply or refused connection by its weft-error code. */
  error(direction: HopLabels['direction'], service: string, error: string): void {
    this.#errors.labels(direction, service, error).inc();
  }
}
