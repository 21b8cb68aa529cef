import type { RateLimitConfig } from '../../config/traffic-policy-schema.js';

/** Callers with a bucket of their own at most, by default (perCaller: true). */
export const MAX_TRACKED_CALLERS = 10_000;

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * The local rate limit enforced by a destination's own sidecar: a token bucket refilled
 * continuously at `requestsPerSecond`, holding at most `burst` tokens, starting full. Each
 * request takes a token; without one it is refused (`take` returns false; the proxy
 * answers 429 with `weft-error: WEFT_E_RATE_LIMITED` and can send `retryAfterMs`).
 *
 * perCaller false: one bucket for all callers (the key is ignored). perCaller true: one
 * bucket per caller key (the SPIFFE ID; a plaintext caller's source address). At most
 * `maxCallers` (default 10,000) buckets are kept, in least-recently-used order. When a
 * new caller comes and the table is full, it takes the place of the least recently used
 * caller if that one's bucket has refilled to `burst` (nothing is lost: a full bucket is
 * what a new caller gets); otherwise, while all tracked callers are busy, new callers
 * share one more bucket, `other`, with the same rate and burst.
 *
 * `config` undefined: no limit (`take` is always true). `clock` returns milliseconds
 * (default performance.now()). Allocates only when a caller is first tracked.
 */
export class RateLimiter {
  readonly #config: RateLimitConfig | undefined;
  readonly #clock: () => number;
  readonly #perMs: number;
  readonly #burst: number;
  readonly #maxCallers: number;
  readonly #shared: Bucket;
  readonly #other: Bucket;
  readonly #callers = new Map<string, Bucket>();
  #limited = 0;
  #retryAfter = 0;

  constructor(config: RateLimitConfig | undefined, clock: () => number = () => performance.now(), options: { maxCallers?: number } = {}) {
    this.#config = config;
    this.#clock = clock;
    this.#perMs = (config?.requestsPerSecond ?? 1) / 1000;
    this.#burst = config?.burst ?? 1;
    this.#maxCallers = options.maxCallers ?? MAX_TRACKED_CALLERS;
    const now = config === undefined ? 0 : clock();
    this.#shared = { tokens: this.#burst, at: now };
    this.#other = { tokens: this.#burst, at: now };
  }

  /** Takes a token for a request from `callerKey`; false when the caller's bucket is empty (counted in `limited`). */
  take(callerKey: string): boolean {
    const config = this.#config;
    if (config === undefined) return true;
    const now = this.#clock();
    const bucket = config.perCaller ? this.#bucketOf(callerKey, now) : this.#shared;
    const tokens = Math.min(this.#burst, bucket.tokens + (now - bucket.at) * this.#perMs);
    bucket.at = now;
    if (tokens >= 1) {
      bucket.tokens = tokens - 1;
      return true;
    }
    bucket.tokens = tokens;
    this.#limited++;
    this.#retryAfter = Math.ceil((1 - tokens) / this.#perMs);
    return false;
  }

  /** Requests refused since the limiter was made. */
  get limited(): number {
    return this.#limited;
  }

  /** After a refusal: milliseconds until that bucket has a token again (for Retry-After). */
  get retryAfterMs(): number {
    return this.#retryAfter;
  }

  /** Callers with a bucket of their own (perCaller). */
  get trackedCallers(): number {
    return this.#callers.size;
  }

  #bucketOf(key: string, now: number): Bucket {
    const callers = this.#callers;
    const known = callers.get(key);
    if (known !== undefined) {
      // Most recently used last: delete and re-insert (a Map iterates in insertion order).
      callers.delete(key);
      callers.set(key, known);
      return known;
    }
    if (callers.size < this.#maxCallers) {
      const bucket = { tokens: this.#burst, at: now };
      callers.set(key, bucket);
      return bucket;
    }
    for (const [oldestKey, oldest] of callers) {
      if (oldest.tokens + (now - oldest.at) * this.#perMs < this.#burst) return this.#other;
      callers.delete(oldestKey);
      oldest.tokens = this.#burst;
      oldest.at = now;
      callers.set(key, oldest);
      return oldest;
    }
    return this.#other;
  }
}
