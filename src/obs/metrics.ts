import { Counter, Gauge, Registry } from 'prom-client';
import { DURATION_BUCKETS } from '../control/telemetry-wire.js';
import { RequestMetrics, type RequestSeries } from './request-metrics.js';

export { DURATION_BUCKETS };

/**
 * Labels of one side of a hop. `service` is always the hop's destination: this sidecar's
 * service on inbound listeners, the upstream on outbound ones. Identities are SPIFFE IDs,
 * or `unknown` (a plaintext caller, or a peer without one). All values are bounded.
 */
export interface HopLabels {
  readonly direction: 'inbound' | 'outbound';
  /** The destination service. */
  readonly service: string;
  /** The caller's service (inbound: from its SPIFFE ID; outbound: this sidecar's service), or `unknown`. */
  readonly source_service: string;
  readonly source_identity: string;
  /** inbound: this sidecar's SPIFFE ID; outbound: the identity the upstream must present. */
  readonly destination_identity: string;
  readonly tls: 'true' | 'false';
}

/** The label-set key of a hop (its values joined). */
export function hopKey(h: HopLabels): string {
  return `${h.direction}\0${h.service}\0${h.source_service}\0${h.source_identity}\0${h.destination_identity}\0${h.tls}`;
}

/** One hop's opaque TCP connections (read by the telemetry reporter; do not change them). */
export interface TcpSeries {
  readonly labels: HopLabels;
  opened: number;
  closed: number;
  /** Bytes from the caller towards the destination. */
  sent: number;
  /** Bytes from the destination back to the caller. */
  received: number;
}

/** What an outlier detector shows: its cluster's name, ejections so far, endpoints ejected now. */
export interface EjectionSource {
  readonly name: string;
  readonly outlier: { readonly ejections: number; readonly ejected: number };
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

/** Which dedicated counter a weft-error code also counts in. */
const DEDICATED: Readonly<Record<string, 'timeouts' | 'overflows' | 'rateLimited'>> = {
  WEFT_E_TIMEOUT: 'timeouts',
  WEFT_E_OVERFLOW: 'overflows',
  WEFT_E_RATE_LIMITED: 'rateLimited',
};

/**
 * The sidecar's Prometheus metrics (docs/observability.md lists them). Label values are
 * bounded: directions, service names, SPIFFE IDs, route names and status codes, never
 * paths or addresses. Per-request and per-connection figures are kept in plain fields (no
 * label hashing per request) and formatted when /metrics is scraped; the rest are
 * prom-client's.
 */
export class SidecarMetrics {
  readonly registry = new Registry();
  readonly #requests: RequestMetrics<HopLabels>;
  readonly #connections: Counter<keyof HopLabels>;
  readonly #activeConnections: Gauge<'direction' | 'service'>;
  readonly #errors: Counter<'direction' | 'service' | 'error'>;
  readonly #retries: Counter<'direction' | 'service'>;
  readonly #dedicated: Record<'timeouts' | 'overflows' | 'rateLimited', Counter<'direction' | 'service'>>;
  readonly certExpiry: Gauge<'spiffe_id'>;
  readonly certRenewals: Counter<'result'>;
  readonly configReloads: Counter<'result'>;
  readonly configVersion: Gauge;
  readonly #lastApplyError: Gauge<'code'>;
  readonly #policies = new Map<string, PolicyCounters>();
  readonly #tcp = new Map<string, TcpSeries>();
  readonly #tcpByLabels = new WeakMap<HopLabels, TcpSeries>();
  #ejectionSources: () => Iterable<EjectionSource> = () => [];

  constructor() {
    const registers = [this.registry];
    const hopLabels = ['direction', 'service', 'source_service', 'source_identity', 'destination_identity', 'tls'] as const;
    this.#requests = new RequestMetrics<HopLabels>({
      registry: this.registry,
      counter: {
        name: 'weft_requests_total',
        help: 'HTTP requests completed, by direction, destination service, source service and identity, destination identity, TLS, route, response class and status code.',
      },
      histogram: {
        name: 'weft_request_duration_seconds',
        help: 'HTTP request duration as seen by the sidecar, from the request head to the end of the response (or the local reply).',
      },
      buckets: DURATION_BUCKETS,
      key: hopKey,
    });
    this.#connections = new Counter({
      name: 'weft_connections_total',
      help: 'Connections accepted (inbound, after the TLS handshake) or opened by local callers (outbound).',
      labelNames: hopLabels,
      registers,
    });
    this.#activeConnections = new Gauge({
      name: 'weft_connections_active',
      help: 'Connections currently open on the sidecar listeners.',
      labelNames: ['direction', 'service'],
      registers,
    });
    const tcp = this.#tcp;
    const tcpCounter = (name: string, help: string, field: 'opened' | 'closed' | 'sent' | 'received') =>
      new Counter({
        name,
        help,
        labelNames: hopLabels,
        registers,
        collect() {
          this.reset();
          for (const t of tcp.values()) this.inc(t.labels, t[field]);
        },
      });
    tcpCounter('weft_tcp_connections_opened_total', 'Opaque TCP connections proxied (opened towards the destination or refused).', 'opened');
    tcpCounter('weft_tcp_connections_closed_total', 'Opaque TCP connections closed.', 'closed');
    tcpCounter('weft_tcp_sent_bytes_total', 'Bytes of closed TCP connections from the caller towards the destination.', 'sent');
    tcpCounter('weft_tcp_received_bytes_total', 'Bytes of closed TCP connections from the destination back to the caller.', 'received');
    this.#errors = new Counter({
      name: 'weft_errors_total',
      help: 'Local replies and refused connections, by weft-error code.',
      labelNames: ['direction', 'service', 'error'],
      registers,
    });
    this.#retries = new Counter({
      name: 'weft_retries_total',
      help: "Requests sent again by a route rule's retry policy (each retry counts once).",
      labelNames: ['direction', 'service'],
      registers,
    });
    const dedicated = (name: string, help: string) => new Counter({ name, help, labelNames: ['direction', 'service'], registers });
    this.#dedicated = {
      timeouts: dedicated('weft_timeouts_total', 'Requests or tries that ran out of time (timeouts.request, timeouts.backendRequest, grpc-timeout).'),
      overflows: dedicated('weft_overflows_total', 'Requests refused at once by a circuit breaker or connection pool limit (503 WEFT_E_OVERFLOW).'),
      rateLimited: dedicated('weft_rate_limited_total', 'Requests refused by a local rate limit (429 WEFT_E_RATE_LIMITED).'),
    };
    const ejectionSources = () => this.#ejectionSources();
    new Counter({
      name: 'weft_outlier_ejections_total',
      help: 'Endpoints ejected by outlier detection, by upstream cluster.',
      labelNames: ['service'],
      registers,
      collect() {
        this.reset();
        for (const c of ejectionSources()) this.inc({ service: c.name }, c.outlier.ejections);
      },
    });
    new Gauge({
      name: 'weft_outlier_ejected_endpoints',
      help: 'Endpoints ejected now, by upstream cluster.',
      labelNames: ['service'],
      registers,
      collect() {
        this.reset();
        for (const c of ejectionSources()) this.set({ service: c.name }, c.outlier.ejected);
      },
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
    this.#lastApplyError = new Gauge({
      name: 'weft_config_last_apply_error',
      help: ' 1 with the error code when the last configuration apply was rejected (the previous one keeps serving); no series after a successful apply.',
      labelNames: ['code'],
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
  request(hop: HopLabels, route: string, code: number, seconds: number): void {
    this.#requests.observe(hop, route, code, seconds);
  }

  /** Every request series (cumulative), for the telemetry reporter. */
  requestSeries(): IterableIterator<RequestSeries<HopLabels>> {
    return this.#requests.series();
  }

  /** Counts an opened connection and tracks it as active until `closed` is called. */
  connectionOpened(hop: HopLabels): void {
    this.#connections.labels(hop).inc();
    this.#activeConnections.labels(hop.direction, hop.service).inc();
  }

  connectionClosed(hop: Pick<HopLabels, 'direction' | 'service'>): void {
    this.#activeConnections.labels(hop.direction, hop.service).dec();
  }

  /** The TCP figures of a hop (one object per label set; the TCP proxy adds to it). */
  tcp(hop: HopLabels): TcpSeries {
    let series = this.#tcpByLabels.get(hop);
    if (series === undefined) {
      const key = hopKey(hop);
      series = this.#tcp.get(key);
      if (series === undefined) {
        series = { labels: hop, opened: 0, closed: 0, sent: 0, received: 0 };
        this.#tcp.set(key, series);
      }
      this.#tcpByLabels.set(hop, series);
    }
    return series;
  }

  /** Every TCP series (cumulative), for the telemetry reporter. */
  tcpSeries(): IterableIterator<TcpSeries> {
    return this.#tcp.values();
  }

  /** Where the outlier metrics read their clusters from (the live listeners' clusters). */
  setEjectionSources(sources: () => Iterable<EjectionSource>): void {
    this.#ejectionSources = sources;
  }

  /** The outcome of a configuration apply: the version served, or the error code of a rejected one. */
  configApplied(result: { version: number } | { error: string }): void {
    this.#lastApplyError.reset();
    if ('version' in result) {
      this.configReloads.inc({ result: 'applied' });
      this.configVersion.set(result.version);
    } else {
      this.configReloads.inc({ result: 'rejected' });
      this.#lastApplyError.set({ code: result.error }, 1);
    }
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

  /** Counts a local reply or refused connection by its weft-error code (and timeouts, overflows, rate limits apart). */
  error(direction: HopLabels['direction'], service: string, error: string): void {
    this.#errors.labels(direction, service, error).inc();
    const dedicated = DEDICATED[error];
    if (dedicated !== undefined) this.#dedicated[dedicated].labels(direction, service).inc();
  }
}
