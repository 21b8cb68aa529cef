/**
 * The telemetry contract between sidecars, the control plane and its clients (`weft tap`,
 * `weft top`, the dashboard). Sidecars send counts since their previous report (deltas),
 * never per-request data except to an active tap. Label values are bounded: service names,
 * SPIFFE IDs, route names (`namespace/route/rule`, or `-` when no route matched), never
 * paths or addresses. Paths appear only in tap events, which are not stored.
 */

/** Request duration bucket bounds in seconds, shared by /metrics and telemetry (the last bucket, +Inf, is implicit). */
export const DURATION_BUCKETS: readonly number[] = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];

/** `unknown`: a plaintext caller, or a peer without a weft SPIFFE ID. */
export const UNKNOWN = 'unknown';

/** One hop of traffic as a sidecar saw it. */
export interface HopKey {
  readonly direction: 'inbound' | 'outbound';
  /** The caller's service (inbound: from its SPIFFE ID, or `unknown`; outbound: this sidecar's service). */
  readonly source: string;
  /** The called service (inbound: this sidecar's service; outbound: the upstream's name). */
  readonly destination: string;
  /** The hop between the sidecars (or from a plaintext caller) was mutual TLS. */
  readonly tls: boolean;
}

/** HTTP requests of one hop and route since the previous report. */
export interface RequestStats extends HopKey {
  /** The route rule that matched (`namespace/route/rule`), or `-`. */
  readonly route: string;
  /** Requests by HTTP status code (as a string key: "200"). */
  readonly codes: Readonly<Record<string, number>>;
  /** Non-cumulative counts per DURATION_BUCKETS bound, plus one for +Inf (length DURATION_BUCKETS.length + 1). */
  readonly buckets: readonly number[];
  /** Sum of durations, seconds. */
  readonly sum: number;
}

/** TCP connections of one hop since the previous report (opaque TCP listeners only). */
export interface ConnectionStats extends HopKey {
  readonly opened: number;
  readonly closed: number;
  /** Bytes from the caller towards the destination. */
  readonly bytesSent: number;
  /** Bytes from the destination back to the caller. */
  readonly bytesReceived: number;
}

/**
 * `POST /v1/telemetry` (client certificate; the reporting service is the certificate's),
 * every `intervalMs` the previous answer gave (2 s by default).
 * Answer: 200 `{intervalMs}`.
 */
export interface TelemetryReport {
  /** The catalog instance id when registered, else null. */
  readonly instance: string | null;
  /** The sidecar certificate in use (expiry shown by the dashboard). */
  readonly certificate: { readonly spiffeId: string; readonly notAfter: string } | null;
  readonly requests: readonly RequestStats[];
  readonly connections: readonly ConnectionStats[];
}

/** A tap session a sidecar must feed: the requests of its service that match. */
export interface TapSession {
  readonly id: string;
  /** Path prefix to match, or null for all. */
  readonly path: string | null;
  /** Method to match (upper case), or null for all. */
  readonly method: string | null;
}

/**
 * `GET /v1/tap/sessions` (client certificate), with `If-None-Match: "VERSION"`: the tap
 * sessions for the caller's service; a long poll while they are still VERSION (304 after 30 s).
 */
export interface TapSessions {
  readonly version: string;
  readonly sessions: readonly TapSession[];
}

/** One request seen by a tapped sidecar. */
export interface TapEvent extends HopKey {
  /** The sessions this event matched. */
  readonly sessions: readonly string[];
  /** ISO time the request started. */
  readonly time: string;
  /** The caller's SPIFFE ID, or `unknown`. */
  readonly sourceIdentity: string;
  readonly protocol: 'http/1.1' | 'http/1.0' | 'h2';
  readonly method: string;
  readonly path: string;
  readonly authority: string | null;
  readonly route: string;
  readonly status: number;
  /** The weft-error code of a local reply, or null. */
  readonly error: string | null;
  readonly latencyMs: number;
  /** The endpoint of the last attempt (`host:port`), or null when none was tried. */
  readonly upstream: string | null;
  readonly attempts: number;
  readonly traceId: string | null;
}

/** `POST /v1/tap/events {events: TapEvent[]}` (client certificate), batched every 100 ms while sessions are active. */
export interface TapEvents {
  readonly events: readonly TapEvent[];
}

/** `GET /v1/tap?service=S[&namespace=NS][&path=P][&method=M]` (admin token): NDJSON lines of these, until the client goes. */
export type TapLine =
  | { readonly type: 'started'; readonly service: string; readonly namespace: string; readonly sidecars: number }
  | ({ readonly type: 'request' } & Omit<TapEvent, 'sessions'>);

/** Aggregated figures of a window (what top and the dashboard show). */
export interface WindowFigures {
  readonly requests: number;
  readonly requestsPerSecond: number;
  /** Share of requests answered without a 5xx, 0–1, or null without requests. */
  readonly successRate: number | null;
  /** Latency percentiles in milliseconds (interpolated within histogram buckets), or null without requests. */
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
}

/** `GET /v1/top[?window=10s]` (admin token): the busiest routes first. */
export interface TopAnswer {
  readonly windowSeconds: number;
  readonly routes: readonly (WindowFigures & { readonly source: string; readonly destination: string; readonly route: string; readonly tls: boolean })[];
}

/** A service in the topology. */
export interface TopologyService {
  readonly namespace: string;
  readonly service: string;
  readonly instances: number;
  readonly passing: number;
  /** strict | permissive (the effective mTLS mode), or null when unknown. */
  readonly mtls: string | null;
}

/** An edge: who calls whom, from the caller's sidecar (mTLS) or the destination's (plaintext callers). */
export interface TopologyEdge extends WindowFigures {
  readonly source: string;
  readonly destination: string;
  readonly protocol: 'http' | 'tcp';
  readonly tls: boolean;
  readonly connectionsPerSecond: number;
  readonly bytesPerSecond: number;
}

/** `GET /v1/topology[?window=10s]` (admin token). */
export interface TopologyAnswer {
  readonly windowSeconds: number;
  readonly generatedAt: string;
  readonly services: readonly TopologyService[];
  readonly edges: readonly TopologyEdge[];
}

/** `GET /v1/certificates` (admin token): the CA chain and the sidecars' certificates as last reported. */
export interface CertificatesAnswer {
  readonly ca: readonly { readonly subject: string; readonly role: 'root' | 'intermediate'; readonly notAfter: string }[];
  readonly sidecars: readonly { readonly namespace: string; readonly service: string; readonly instance: string | null; readonly spiffeId: string; readonly notAfter: string; readonly reportedAt: string }[];
}
