import { DURATION_BUCKETS, UNKNOWN, type TelemetryReport, type TopAnswer, type TopologyEdge, type WindowFigures } from './telemetry-wire.js';

/**
 * The control plane's telemetry: what the sidecars report (`POST /v1/telemetry`, deltas
 * every 2 s), kept in memory per replica in 1-second slots over the last MAX_WINDOW_MS,
 * and the figures `weft top`, the topology and the dashboard read from it.
 *
 * Memory is bounded: at most `maxSeries` distinct series (one per reporting namespace,
 * kind, direction, source, destination, tls and route), the least recently reported one
 * dropped beyond that; a series keeps at most one slot per second of the window. The
 * latest certificate per reporting instance is kept for `/v1/certificates` and forgotten
 * after CERTIFICATE_TTL_MS without a report.
 */

/** The longest window a question may ask about (and how long slots are kept). */
export const MAX_WINDOW_MS = 60_000;
/** A sidecar certificate not reported for this long is forgotten. */
export const CERTIFICATE_TTL_MS = 5 * 60_000;
/** Default cap on distinct series. */
export const DEFAULT_MAX_SERIES = 10_000;
/** Cap on remembered sidecar certificates. */
export const MAX_CERTIFICATES = 10_000;

const FINITE_BUCKETS = DURATION_BUCKETS.length;

interface HttpSlot {
  second: number;
  requests: number;
  /** Requests answered with a 5xx. */
  errors: number;
  /** Non-cumulative, DURATION_BUCKETS.length + 1 entries. */
  readonly buckets: number[];
}

interface TcpSlot {
  second: number;
  opened: number;
  bytes: number;
}

interface Series {
  readonly kind: 'http' | 'tcp';
  /** The reporting sidecar's namespace. */
  readonly namespace: string;
  readonly direction: 'inbound' | 'outbound';
  readonly source: string;
  readonly destination: string;
  readonly tls: boolean;
  /** `-` for TCP. */
  readonly route: string;
  /** Oldest first, one per second at most. */
  readonly slots: (HttpSlot | TcpSlot)[];
}

/** A sidecar certificate as last reported. */
export interface ReportedCertificate {
  readonly namespace: string;
  readonly service: string;
  readonly instance: string | null;
  readonly spiffeId: string;
  readonly notAfter: string;
  /** When it was reported (ms, the store's clock). */
  readonly reportedAtMs: number;
}

/** A service seen in telemetry (a reporter, or a named source or destination). */
export interface SeenService {
  readonly namespace: string;
  readonly service: string;
}

/** Options of a question: the window, and only the rows reported from one namespace. */
export interface QueryOptions {
  readonly namespace?: string;
}

/** Per-replica, in-memory telemetry with bounded memory (see the module comment). */
export class TelemetryStore {
  /** Insertion order = least recently reported first (a series is re-inserted on report). */
  readonly #series = new Map<string, Series>();
  readonly #certificates = new Map<string, ReportedCertificate>();
  readonly #maxSeries: number;
  #dropped = 0;

  constructor(options: { maxSeries?: number } = {}) {
    this.#maxSeries = options.maxSeries ?? DEFAULT_MAX_SERIES;
  }

  /** Series dropped so far because of the cap. */
  get droppedSeries(): number {
    return this.#dropped;
  }

  /** Distinct series held now. */
  get seriesCount(): number {
    return this.#series.size;
  }

  /**
   * Adds one validated report of a sidecar of `namespace/service` at `now` (milliseconds,
   * any monotonic or wall clock, the same for every call).
   */
  record(namespace: string, service: string, report: TelemetryReport, now: number): void {
    const second = Math.floor(now / 1000);
    for (const r of report.requests) {
      let requests = 0;
      let errors = 0;
      for (const [code, n] of Object.entries(r.codes)) {
        requests += n;
        if (code.startsWith('5')) errors += n;
      }
      if (requests === 0 && r.buckets.every((b) => b === 0)) continue;
      const slot = this.#slot(this.#touch('http', namespace, r, r.route, second), second, () => ({ second, requests: 0, errors: 0, buckets: new Array<number>(FINITE_BUCKETS + 1).fill(0) })) as HttpSlot;
      slot.requests += requests;
      slot.errors += errors;
      for (let i = 0; i <= FINITE_BUCKETS; i++) slot.buckets[i]! += r.buckets[i] ?? 0;
    }
    for (const c of report.connections) {
      if (c.opened === 0 && c.bytesSent === 0 && c.bytesReceived === 0 && c.closed === 0) continue;
      const slot = this.#slot(this.#touch('tcp', namespace, c, '-', second), second, () => ({ second, opened: 0, bytes: 0 })) as TcpSlot;
      slot.opened += c.opened;
      slot.bytes += c.bytesSent + c.bytesReceived;
    }
    if (report.certificate !== null) {
      const key = report.instance !== null ? `${namespace}/${report.instance}` : `${namespace}/${service}/${report.certificate.spiffeId}`;
      this.#certificates.delete(key);
      this.#certificates.set(key, { namespace, service, instance: report.instance, spiffeId: report.certificate.spiffeId, notAfter: report.certificate.notAfter, reportedAtMs: now });
      if (this.#certificates.size > MAX_CERTIFICATES) this.#certificates.delete(this.#certificates.keys().next().value!);
    }
  }

  /** Forgets slots older than MAX_WINDOW_MS, series left empty, and certificates older than CERTIFICATE_TTL_MS. */
  prune(now: number): void {
    const oldest = Math.floor(now / 1000) - MAX_WINDOW_MS / 1000 + 1;
    for (const [key, s] of this.#series) {
      let drop = 0;
      while (drop < s.slots.length && s.slots[drop]!.second < oldest) drop++;
      if (drop > 0) s.slots.splice(0, drop);
      if (s.slots.length === 0) this.#series.delete(key);
    }
    for (const [key, c] of this.#certificates) {
      if (now - c.reportedAtMs > CERTIFICATE_TTL_MS) this.#certificates.delete(key);
    }
  }

  /** The routes of the window, busiest first (rows chosen as for `edges`). */
  top(windowMs: number, now: number, options: QueryOptions = {}): TopAnswer {
    const seconds = windowSeconds(windowMs);
    const groups = new Map<string, { source: string; destination: string; route: string; tls: boolean; sum: HttpSum }>();
    for (const s of this.#chosen('http', seconds, now, options)) {
      const key = `${s.source}\0${s.destination}\0${s.route}\0${String(s.tls)}`;
      let g = groups.get(key);
      if (g === undefined) groups.set(key, (g = { source: s.source, destination: s.destination, route: s.route, tls: s.tls, sum: emptyHttpSum() }));
      addHttp(g.sum, s, seconds, now);
    }
    const routes = [...groups.values()]
      .map((g) => ({ source: g.source, destination: g.destination, route: g.route, tls: g.tls, ...figures(g.sum, seconds) }))
      .filter((r) => r.requests > 0)
      .sort((a, b) => b.requests - a.requests || a.source.localeCompare(b.source) || a.destination.localeCompare(b.destination) || a.route.localeCompare(b.route));
    return { windowSeconds: seconds, routes };
  }

  /**
   * Who calls whom in the window: one edge per (source, destination, tls) and protocol.
   * For each, the `outbound` rows when the window has any (the caller's sidecar saw the
   * whole hop), else the `inbound` rows (a caller without a sidecar: source `unknown`).
   * A plaintext edge therefore shows even when mesh callers reach the same destination.
   */
  edges(windowMs: number, now: number, options: QueryOptions = {}): TopologyEdge[] {
    const seconds = windowSeconds(windowMs);
    const http = new Map<string, { source: string; destination: string; tls: boolean; sum: HttpSum }>();
    for (const s of this.#chosen('http', seconds, now, options)) {
      const key = `${s.source}\0${s.destination}\0${String(s.tls)}`;
      let g = http.get(key);
      if (g === undefined) http.set(key, (g = { source: s.source, destination: s.destination, tls: s.tls, sum: emptyHttpSum() }));
      addHttp(g.sum, s, seconds, now);
    }
    const tcp = new Map<string, { source: string; destination: string; tls: boolean; opened: number; bytes: number }>();
    for (const s of this.#chosen('tcp', seconds, now, options)) {
      const key = `${s.source}\0${s.destination}\0${String(s.tls)}`;
      let g = tcp.get(key);
      if (g === undefined) tcp.set(key, (g = { source: s.source, destination: s.destination, tls: s.tls, opened: 0, bytes: 0 }));
      for (const slot of inWindow(s, seconds, now) as TcpSlot[]) {
        g.opened += slot.opened;
        g.bytes += slot.bytes;
      }
    }
    const edges: TopologyEdge[] = [
      ...[...http.values()].map((g) => ({ source: g.source, destination: g.destination, protocol: 'http' as const, tls: g.tls, connectionsPerSecond: 0, bytesPerSecond: 0, ...figures(g.sum, seconds) })),
      ...[...tcp.values()].map((g) => ({
        source: g.source,
        destination: g.destination,
        protocol: 'tcp' as const,
        tls: g.tls,
        connectionsPerSecond: g.opened / seconds,
        bytesPerSecond: g.bytes / seconds,
        requests: 0,
        requestsPerSecond: 0,
        successRate: null,
        p50Ms: null,
        p99Ms: null,
      })),
    ];
    return edges.sort((a, b) => a.source.localeCompare(b.source) || a.destination.localeCompare(b.destination) || a.protocol.localeCompare(b.protocol) || Number(b.tls) - Number(a.tls));
  }

  /**
   * Services seen in the telemetry of the last MAX_WINDOW_MS: the reporters, and the named
   * sources and destinations of their rows (in the reporter's namespace; `unknown` left out).
   */
  services(now: number): SeenService[] {
    const seen = new Map<string, SeenService>();
    const oldest = Math.floor(now / 1000) - MAX_WINDOW_MS / 1000 + 1;
    for (const s of this.#series.values()) {
      if (s.slots.at(-1)!.second < oldest) continue;
      for (const name of [s.source, s.destination]) {
        if (name !== UNKNOWN) seen.set(`${s.namespace}/${name}`, { namespace: s.namespace, service: name });
      }
    }
    return [...seen.values()];
  }

  /** The sidecars' certificates as last reported (within CERTIFICATE_TTL_MS), by namespace, service, instance. */
  certificates(now: number): ReportedCertificate[] {
    return [...this.#certificates.values()]
      .filter((c) => now - c.reportedAtMs <= CERTIFICATE_TTL_MS)
      .sort((a, b) => a.namespace.localeCompare(b.namespace) || a.service.localeCompare(b.service) || (a.instance ?? '').localeCompare(b.instance ?? '') || a.spiffeId.localeCompare(b.spiffeId));
  }

  /** The series of `kind` with data in the window, after the outbound-over-inbound choice per (source, destination, tls). */
  #chosen(kind: 'http' | 'tcp', seconds: number, now: number, options: QueryOptions): Series[] {
    const withData = [...this.#series.values()].filter((s) => s.kind === kind && inWindow(s, seconds, now).length > 0);
    const outbound = new Set(withData.filter((s) => s.direction === 'outbound').map((s) => `${s.source}\0${s.destination}\0${String(s.tls)}`));
    return withData.filter(
      (s) => (s.direction === 'outbound' || !outbound.has(`${s.source}\0${s.destination}\0${String(s.tls)}`)) && (options.namespace === undefined || s.namespace === options.namespace),
    );
  }

  /** The series of a row, created (dropping the least recently reported one beyond the cap) and marked most recent. */
  #touch(kind: 'http' | 'tcp', namespace: string, hop: { direction: 'inbound' | 'outbound'; source: string; destination: string; tls: boolean }, route: string, second: number): Series {
    const key = `${kind}\0${namespace}\0${hop.direction}\0${hop.source}\0${hop.destination}\0${String(hop.tls)}\0${route}`;
    let s = this.#series.get(key);
    if (s !== undefined) {
      this.#series.delete(key);
    } else {
      s = { kind, namespace, direction: hop.direction, source: hop.source, destination: hop.destination, tls: hop.tls, route, slots: [] };
      if (this.#series.size >= this.#maxSeries) {
        this.#series.delete(this.#series.keys().next().value!);
        this.#dropped++;
      }
    }
    this.#series.set(key, s);
    const oldest = second - MAX_WINDOW_MS / 1000 + 1;
    let drop = 0;
    while (drop < s.slots.length && s.slots[drop]!.second < oldest) drop++;
    if (drop > 0) s.slots.splice(0, drop);
    return s;
  }

  #slot(s: Series, second: number, create: () => HttpSlot | TcpSlot): HttpSlot | TcpSlot {
    const last = s.slots.at(-1);
    if (last !== undefined && last.second === second) return last;
    // A clock that went back a little: add to the newest slot rather than reorder.
    if (last !== undefined && last.second > second) return last;
    const slot = create();
    s.slots.push(slot);
    return slot;
  }
}

/** Whole seconds of a window, 1–60. */
function windowSeconds(windowMs: number): number {
  return Math.min(MAX_WINDOW_MS / 1000, Math.max(1, Math.ceil(windowMs / 1000)));
}

/** The slots of the last `seconds` seconds, this one included. */
function inWindow(s: Series, seconds: number, now: number): (HttpSlot | TcpSlot)[] {
  const oldest = Math.floor(now / 1000) - seconds + 1;
  let i = s.slots.length;
  while (i > 0 && s.slots[i - 1]!.second >= oldest) i--;
  return i === 0 ? s.slots : s.slots.slice(i);
}

interface HttpSum {
  requests: number;
  errors: number;
  readonly buckets: number[];
}

function emptyHttpSum(): HttpSum {
  return { requests: 0, errors: 0, buckets: new Array<number>(FINITE_BUCKETS + 1).fill(0) };
}

function addHttp(sum: HttpSum, s: Series, seconds: number, now: number): void {
  for (const slot of inWindow(s, seconds, now) as HttpSlot[]) {
    sum.requests += slot.requests;
    sum.errors += slot.errors;
    for (let i = 0; i <= FINITE_BUCKETS; i++) sum.buckets[i]! += slot.buckets[i]!;
  }
}

function figures(sum: HttpSum, seconds: number): WindowFigures {
  return {
    requests: sum.requests,
    requestsPerSecond: sum.requests / seconds,
    successRate: sum.requests === 0 ? null : (sum.requests - sum.errors) / sum.requests,
    p50Ms: percentileMs(sum.buckets, 0.5),
    p99Ms: percentileMs(sum.buckets, 0.99),
  };
}

/**
 * The `q` quantile of a non-cumulative histogram over DURATION_BUCKETS (+Inf last), in
 * milliseconds: linear interpolation inside the bucket that holds the rank (from 0 for the
 * first bucket); a rank in the +Inf bucket reports the last finite bound. Null when empty.
 */
export function percentileMs(buckets: readonly number[], q: number): number | null {
  const total = buckets.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  const rank = q * total;
  let below = 0;
  for (let i = 0; i < buckets.length; i++) {
    const n = buckets[i]!;
    if (n > 0 && below + n >= rank) {
      if (i >= FINITE_BUCKETS) return DURATION_BUCKETS[FINITE_BUCKETS - 1]! * 1000;
      const lower = i === 0 ? 0 : DURATION_BUCKETS[i - 1]!;
      const upper = DURATION_BUCKETS[i]!;
      return (lower + ((upper - lower) * (rank - below)) / n) * 1000;
    }
    below += n;
  }
  return DURATION_BUCKETS[FINITE_BUCKETS - 1]! * 1000;
}
