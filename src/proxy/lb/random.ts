import { randomIndex } from './eligible.js';
import type { LbEndpoint, Picker } from './types.js';

const TRIES = 4;

/**
 * Random: a non-ejected endpoint drawn in proportion to its weight (uniformly when all
 * weights are equal); among all endpoints in panic mode. The weights' running sums are
 * computed on the first call for the endpoint list (a different array recomputes them).
 */
export class RandomPicker implements Picker {
  readonly #random: () => number;
  #list: readonly LbEndpoint[] | null = null;
  #n = 0;
  /** Running sums of the weights; null when all weights are equal. */
  #sums: Float64Array | null = null;

  constructor(random: () => number = Math.random) {
    this.#random = random;
  }

  pick(endpoints: readonly LbEndpoint[], _hashKey: string | null): number {
    const n = endpoints.length;
    if (n <= 1) return n - 1;
    if (endpoints !== this.#list || n !== this.#n) this.#prepare(endpoints);
    const sums = this.#sums;
    if (sums === null) {
      const i = randomIndex(endpoints, this.#random, -1, false);
      return i >= 0 ? i : randomIndex(endpoints, this.#random, -1, true);
    }
    const total = sums[n - 1]!;
    for (let t = 0; t < TRIES; t++) {
      const i = search(sums, this.#random() * total);
      if (!endpoints[i]!.ejected) return i;
    }
    // Many ejected: draw over the eligible weights by a walk.
    let eligible = 0;
    for (let i = 0; i < n; i++) if (!endpoints[i]!.ejected) eligible += endpoints[i]!.weight;
    const panic = eligible === 0;
    let u = this.#random() * (panic ? total : eligible);
    for (let i = 0; i < n; i++) {
      const e = endpoints[i]!;
      if (panic || !e.ejected) {
        u -= e.weight;
        if (u < 0) return i;
      }
    }
    // Rounding: the last candidate.
    for (let i = n - 1; i >= 0; i--) if (panic || !endpoints[i]!.ejected) return i;
    return 0;
  }

  #prepare(endpoints: readonly LbEndpoint[]): void {
    this.#list = endpoints;
    const n = endpoints.length;
    this.#n = n;
    let equal = true;
    const sums = new Float64Array(n);
    let total = 0;
    for (let i = 0; i < n; i++) {
      const w = endpoints[i]!.weight;
      if (w !== endpoints[0]!.weight) equal = false;
      total += w;
      sums[i] = total;
    }
    this.#sums = equal ? null : sums;
  }
}

/** The first index whose running sum exceeds `u`. */
function search(sums: Float64Array, u: number): number {
  let lo = 0;
  let hi = sums.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sums[mid]! > u) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}
