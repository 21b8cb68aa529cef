/**
 * The contract between the route tables (Gateway API HTTPRoute / GRPCRoute semantics,
 * compiled once per snapshot) and the HTTP pipelines that use them (HTTP/1.1 in
 * `proxy/http1`, HTTP/2 and gRPC in `proxy/http2`). A router is generic over its backend
 * type `B`: the compiler resolves each backendRef once, through a callback, into whatever
 * the data plane forwards to (a cluster of endpoints).
 */

/** What matching and filters read of a request. Header names are lower case. */
export interface RequestView {
  readonly method: string;
  /** The path of the request target, as received (no query, percent-encoding kept). */
  readonly path: string;
  /** The raw query string after `?` (without it), or null when there is none. */
  readonly query: string | null;
  /** The value of a header (several lines joined with `, `), or undefined. */
  header(lowerName: string): string | undefined;
}

/**
 * One header edit list of a RequestHeaderModifier / ResponseHeaderModifier filter, compiled.
 * Every name is lower case. Apply with `applyHeaderEdit` (HTTP/1 lines) or
 * `applyHeaderEditToObject` (HTTP/2) from `header-edit.ts`.
 */
export interface HeaderEdit {
  /** Names to remove (applied first), then `set` (replaces), then `add` (appends). */
  readonly remove: readonly string[];
  readonly set: readonly (readonly [name: string, value: string])[];
  readonly add: readonly (readonly [name: string, value: string])[];
}

/** A RequestRedirect filter, compiled: `location(req, scheme, host)` gives the Location header. */
export interface CompiledRedirect {
  readonly status: 301 | 302 | 303 | 307 | 308;
  location(req: RequestView, scheme: string, host: string): string;
}

/** A URLRewrite filter, compiled. */
export interface CompiledRewrite {
  /** New Host / :authority, or null to keep it. */
  readonly hostname: string | null;
  /** The new path for this request (query kept by the caller), or null to keep it. */
  path(req: RequestView): string | null;
}

/** Weighted backends of one rule: `pick()` draws one by weight. */
export interface BackendPicker<B> {
  /**
   * A backend for this request, or null: the draw fell on the share of a backendRef that
   * did not resolve (or no weight is on a resolved one). Gateway API: answer that request
   * 500 (gRPC: UNAVAILABLE); a TCP connection is closed.
   */
  pick(): B | null;
  /** Every distinct backend the rule may send to (for validation and metrics). */
  readonly all: readonly B[];
}

/** Retry of one rule (Gateway API GEP-1731): `attempts` retries after the first try. */
export interface RetryPolicy {
  readonly attempts: number;
  /** HTTP status codes that are retried (gRPC: the status the proxy maps them from, see docs/routing.md). */
  readonly codes: ReadonlySet<number>;
  /** gRPC status codes that are retried (GRPCRoute; names as in the gRPC spec, e.g. UNAVAILABLE). */
  readonly grpcCodes: ReadonlySet<number>;
  /** Base backoff in ms: retry n waits base * 2^(n-1) (at most 10 times base) plus up to 50% jitter, never less than base (GEP-1731). */
  readonly backoffMs: number;
}

/** One rule of a route, compiled: what the pipeline does with a request it matched. */
export interface CompiledRule<B> {
  /** `<namespace>/<route name>/<rule index or rule name>`: the `route` label of metrics and logs. */
  readonly name: string;
  readonly backends: BackendPicker<B>;
  /** True when `backends.pick()` can only give null (no backendRefs, none resolved, or all weights 0): Gateway API answers 500. */
  readonly noBackends: boolean;
  readonly requestHeaders: HeaderEdit | null;
  readonly responseHeaders: HeaderEdit | null;
  readonly rewrite: CompiledRewrite | null;
  /** When set, the rule answers with this redirect (it has no backends: the schema refuses both). */
  readonly redirect: CompiledRedirect | null;
  /** RequestMirror: a copy of the request goes to this backend (responses ignored), for `percent` of requests. */
  readonly mirror: { readonly backend: B; readonly percent: number } | null;
  /** timeouts.request: whole request, all attempts (ms), or null. */
  readonly requestTimeoutMs: number | null;
  /** timeouts.backendRequest: each attempt (ms), or null. */
  readonly backendTimeoutMs: number | null;
  readonly retry: RetryPolicy | null;
}

/** The compiled routes attached to one service, all kinds merged with Gateway API precedence. */
export interface Router<B> {
  /** The rule for a request, or null when no rule matches (HTTP: 404; gRPC: UNIMPLEMENTED). */
  match(req: RequestView): CompiledRule<B> | null;
}
