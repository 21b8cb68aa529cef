import type { LbEndpoint, Picker } from './types.js';

/**
 * Smooth weighted round robin (nginx's algorithm) over the non-ejected endpoints (all of
 * them in panic mode): on each pick every candidate's current weight grows by its weight,
 * the largest current weight wins, and the winner's current weight drops by the sum of
 * the candidates' weights. Over any run of `W` picks (W = sum of weights) each endpoint is
 * chosen `weight` times, interleaved (weights 5,1,1 give a a b a c a a, not a a a a a b c).
 * Ties go to the first candidate from a starting offset chosen at construction, so equal
 * weights give plain round robin from that offset. State is per endpoint list (a
 * different array starts over).
 */
export class WeightedRoundRobinPicker implements Picker {
  readonly #offset: number;
  #list: readonly LbEndpoint[] | null = null;
  #current = new Float64Array(0);

  /** `random` chooses the starting offset only. */
  constructor(random: () => number = Math.random) {
    this.#offset = random();
  }

  pick(endpoints: readonly LbEndpoint[], _hashKey: string | null): number {
    const n = endpoints.length;
    if (n <= 1) return n - 1;
    if (endpoints !== this.#list || this.#current.length !== n) {
      this.#list = endpoints;
      this.#current = new Float64Array(n);
    }
    const best = this.#choose(endpoints, false);
    return best >= 0 ? best : this.#choose(endpoints, true);
  }

  #choose(endpoints: readonly LbEndpoint[], panic: boolean): number {
    const n = endpoints.length;
    const current = this.#current;
    const start = Math.min(n - 1, Math.floor(this.#offset * n));
    let best = -1;
    let bestWeight = -Infinity;
    let total = 0;
    for (let k = 0; k < n; k++) {
      const i = start + k < n ? start + k : start + k - n;
      const e = endpoints[i]!;
      if (!panic && e.ejected) continue;
      const c = current[i]! + e.weight;
      current[i] = c;
      total += e.weight;
      if (c > bestWeight) {
        bestWeight = c;
        best = i;
      }
    }
    if (best >= 0) current[best] = bestWeight - total;
    return best;
  }
}
