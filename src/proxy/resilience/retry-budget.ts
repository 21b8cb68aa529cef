import type { RetryBudgetConfig } from '../../config/traffic-policy-schema.js';

/** The budget used when the policy has no retryBudget (Linkerd's defaults): 20 %, 10 retries/s, over 10 s. */
export const DEFAULT_RETRY_BUDGET: RetryBudgetConfig = Object.freeze({ percent: 20, minRetriesPerSecond: 10, ttl: 10_000 });

/** The window is kept as this many buckets of ttl / BUCKETS each. */
const BUCKETS = 10;

/**
 * A retry budget (Linkerd's): retries toward a destination may add at most `percent` % of
 * the requests sent to it in the last `ttl`, or `minRetriesPerSecond` × ttl (in seconds)
 * retries, whichever is more. So a healthy destination with little traffic can still be
 * retried, and a failing one under load gets at most percent % more traffic, not a
 * multiple of it.
 *
 * The window slides in steps of ttl / 10: it holds the current bucket and the nine
 * before it (between 0.9 × ttl and ttl of history). Counting is lazy (no timers).
 *
 * Call `recordRequest()` for each original request (not for retries), then `tryRetry()`
 * before each retry (or `canRetry()` and `recordRetry()`). `config` undefined: the
 * DEFAULT_RETRY_BUDGET. `clock` returns milliseconds (default performance.now()).
 */
export class RetryBudget {
  readonly #clock: () => number;
  readonly #width: number;
  readonly #ratio: number;
  readonly #floor: number;
  readonly #requestsIn = new Float64Array(BUCKETS);
  readonly #retriesIn = new Float64Array(BUCKETS);
  #requests = 0;
  #retries = 0;
  #bucket: number;
  #exhausted = 0;

  constructor(config: RetryBudgetConfig | undefined, clock: () => number = () => performance.now()) {
    const c = config ?? DEFAULT_RETRY_BUDGET;
    this.#clock = clock;
    this.#width = c.ttl / BUCKETS;
    this.#ratio = c.percent / 100;
    this.#floor = (c.minRetriesPerSecond * c.ttl) / 1000;
    this.#bucket = Math.floor(clock() / this.#width);
  }

  /** Counts an original request (not a retry). */
  recordRequest(): void {
    this.#requestsIn[this.#advance()]!++;
    this.#requests++;
  }

  /** True when one more retry fits in the budget now (counts nothing). */
  canRetry(): boolean {
    this.#advance();
    return this.#retries + 1 <= this.#allowed();
  }

  /** Counts a retry (whether or not the budget allowed it). */
  recordRetry(): void {
    this.#retriesIn[this.#advance()]!++;
    this.#retries++;
  }

  /** canRetry() and, when true, recordRetry(); a refusal is counted in `exhausted`. */
  tryRetry(): boolean {
    if (!this.canRetry()) {
      this.#exhausted++;
      return false;
    }
    this.recordRetry();
    return true;
  }

  /** Retries allowed in the current window: max(minRetriesPerSecond × ttl, percent % of the requests). */
  get allowed(): number {
    this.#advance();
    return this.#allowed();
  }

  /** Requests and retries counted in the current window. */
  get window(): { requests: number; retries: number } {
    this.#advance();
    return { requests: this.#requests, retries: this.#retries };
  }

  /** Retries refused by `tryRetry` since the budget was made. */
  get exhausted(): number {
    return this.#exhausted;
  }

  #allowed(): number {
    const share = this.#ratio * this.#requests;
    return share > this.#floor ? share : this.#floor;
  }

  /** Moves the window to the clock's bucket, dropping buckets that fell out; returns the current slot. */
  #advance(): number {
    const bucket = Math.floor(this.#clock() / this.#width);
    if (bucket > this.#bucket) {
      const steps = bucket - this.#bucket;
      if (steps >= BUCKETS) {
        this.#requestsIn.fill(0);
        this.#retriesIn.fill(0);
        this.#requests = 0;
        this.#retries = 0;
      } else {
        for (let k = 1; k <= steps; k++) {
          const slot = (this.#bucket + k) % BUCKETS;
          this.#requests -= this.#requestsIn[slot]!;
          this.#retries -= this.#retriesIn[slot]!;
          this.#requestsIn[slot] = 0;
          this.#retriesIn[slot] = 0;
        }
      }
      this.#bucket = bucket;
    }
    const slot = this.#bucket % BUCKETS;
    return slot < 0 ? slot + BUCKETS : slot;
  }
}
