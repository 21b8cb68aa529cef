import type { LbEndpoint, Picker } from './types.js';

/**
 * Round robin. Two ways to use it:
 *
 * - `new RoundRobin(size).next()` returns the index to try first among `size` endpoints;
 *   callers that fail to connect move on with `(first + attempt) % size`.
 * - As a Picker (`pick`), it walks the endpoint list in order, skipping ejected endpoints
 *   (all are candidates in panic mode). Weights are ignored (WeightedRoundRobin uses them).
 *   `start` sets where the walk begins, so that many sidecars started together do not all
 *   send their first request to endpoint 0.
 */
export class RoundRobin implements Picker {
  #next = 0;
  #cursor: number;
  /** The endpoint count `next()` cycles over (not used by `pick`). */
  readonly size: number;

  constructor(size = 0, start = 0) {
    this.size = size;
    this.#cursor = start;
  }

  /** The next index in 0..size-1, in turn. */
  next(): number {
    const i = this.#next;
    this.#next = i + 1 === this.size ? 0 : i + 1;
    return i;
  }

  pick(endpoints: readonly LbEndpoint[], _hashKey: string | null): number {
    const n = endpoints.length;
    if (n === 0) return -1;
    const start = this.#cursor % n;
    for (let k = 0; k < n; k++) {
      const i = start + k < n ? start + k : start + k - n;
      if (!endpoints[i]!.ejected) {
        this.#cursor = i + 1;
        return i;
      }
    }
    this.#cursor = start + 1;
    return start;
  }
}
