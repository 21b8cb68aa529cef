/**
 * A token bucket: `ratePerSecond` tokens a second, at most `burst` saved up. `take()`
 * spends one and returns 0, or returns how many milliseconds until one is available.
 */
export class TokenBucket {
  readonly #rate: number;
  readonly #burst: number;
  #tokens: number;
  #at: number;
  readonly #now: () => number;

  constructor(ratePerSecond: number, burst = ratePerSecond, now: () => number = () => performance.now()) {
    if (!(ratePerSecond > 0) || !(burst >= 1)) throw new Error('a token bucket needs a positive rate and a burst of at least 1');
    this.#rate = ratePerSecond;
    this.#burst = burst;
    this.#tokens = burst;
    this.#now = now;
    this.#at = now();
  }

  take(): number {
    const now = this.#now();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#at) * this.#rate) / 1000);
    this.#at = now;
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - this.#tokens) * 1000) / this.#rate);
  }
}
