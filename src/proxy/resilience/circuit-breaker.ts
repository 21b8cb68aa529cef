/** The circuit breaker's limits: `trafficPolicy.connectionPool`, validated. */
export interface CircuitBreakerLimits {
  readonly maxConnections: number;
  readonly maxPendingRequests: number;
  readonly maxRequests: number;
  readonly maxRetries: number;
}

/** How many times each limit refused something, since the breaker was made. */
export interface CircuitBreakerOverflows {
  requests: number;
  retries: number;
  connections: number;
  pending: number;
}

/**
 * Circuit breaking as Envoy does it: caps on what a sidecar has in flight toward one
 * destination (all its endpoints together). Each `try*` takes a slot and returns true, or
 * returns false and counts an overflow when the limit is reached; the matching `*Done` /
 * `connectionClosed` gives the slot back (never below 0). The proxy answers an overflow
 * with 503 and `weft-error: WEFT_E_OVERFLOW`.
 *
 * A retry holds both a retry slot (`tryRetry`) and, like any attempt, a request slot
 * (`tryRequest`). A request that must wait for a connection (maxConnections reached)
 * holds a pending slot (`tryPending`) until it gets one or gives up.
 *
 * Without limits (`undefined`: no connectionPool in the policy) every limit is Infinity:
 * the same single comparison, which never fails; the counters still count.
 */
export class CircuitBreaker {
  readonly #maxRequests: number;
  readonly #maxRetries: number;
  readonly #maxConnections: number;
  readonly #maxPending: number;
  #requests = 0;
  #retries = 0;
  #connections = 0;
  #pending = 0;
  readonly #overflows: CircuitBreakerOverflows = { requests: 0, retries: 0, connections: 0, pending: 0 };

  constructor(limits: CircuitBreakerLimits | undefined) {
    this.#maxRequests = limits?.maxRequests ?? Infinity;
    this.#maxRetries = limits?.maxRetries ?? Infinity;
    this.#maxConnections = limits?.maxConnections ?? Infinity;
    this.#maxPending = limits?.maxPendingRequests ?? Infinity;
  }

  /** True when limits were given. */
  get limited(): boolean {
    return this.#maxRequests !== Infinity;
  }

  /** Takes a request slot (every attempt, retries included); false when maxRequests are in flight. */
  tryRequest(): boolean {
    if (this.#requests >= this.#maxRequests) {
      this.#overflows.requests++;
      return false;
    }
    this.#requests++;
    return true;
  }

  /** Gives back a request slot: the attempt is over (answered, failed or cancelled). */
  requestDone(): void {
    if (this.#requests > 0) this.#requests--;
  }

  /** Takes a retry slot; false when maxRetries retries are in flight. */
  tryRetry(): boolean {
    if (this.#retries >= this.#maxRetries) {
      this.#overflows.retries++;
      return false;
    }
    this.#retries++;
    return true;
  }

  /** Gives back a retry slot. */
  retryDone(): void {
    if (this.#retries > 0) this.#retries--;
  }

  /** Takes a connection slot before opening a connection; false when maxConnections are open. */
  tryConnection(): boolean {
    if (this.#connections >= this.#maxConnections) {
      this.#overflows.connections++;
      return false;
    }
    this.#connections++;
    return true;
  }

  /** Gives back a connection slot: the connection closed (or failed to open). */
  connectionClosed(): void {
    if (this.#connections > 0) this.#connections--;
  }

  /** Takes a pending slot for a request that waits for a connection; false when maxPendingRequests wait. */
  tryPending(): boolean {
    if (this.#pending >= this.#maxPending) {
      this.#overflows.pending++;
      return false;
    }
    this.#pending++;
    return true;
  }

  /** Gives back a pending slot: the request got a connection, or stopped waiting. */
  pendingDone(): void {
    if (this.#pending > 0) this.#pending--;
  }

  /** Requests (attempts) in flight. */
  get requests(): number {
    return this.#requests;
  }

  /** Retries in flight. */
  get retries(): number {
    return this.#retries;
  }

  /** Connections open (or opening). */
  get connections(): number {
    return this.#connections;
  }

  /** Requests waiting for a connection. */
  get pending(): number {
    return this.#pending;
  }

  /** Refusals per limit (a live view: read, do not write). */
  get overflows(): Readonly<CircuitBreakerOverflows> {
    return this.#overflows;
  }
}
