import { randomIndex } from './eligible.js';
import type { LbEndpoint, Picker } from './types.js';

/**
 * Least request by the power of two choices: draws two distinct endpoints at random among
 * the non-ejected ones and sends to the one with fewer requests in flight relative to its
 * weight (`active / weight`, Envoy's comparison; compared as `active_a × weight_b` against
 * `active_b × weight_a`, so exactly). A tie is broken at random in proportion to the
 * weights (50/50 for equal weights). One non-ejected endpoint: it is chosen. None: the
 * two are drawn among all (panic mode).
 */
export class LeastRequestPicker implements Picker {
  readonly #random: () => number;

  constructor(random: () => number = Math.random) {
    this.#random = random;
  }

  pick(endpoints: readonly LbEndpoint[], _hashKey: string | null): number {
    const n = endpoints.length;
    if (n <= 1) return n - 1;
    let panic = false;
    let a = randomIndex(endpoints, this.#random, -1, false);
    if (a < 0) {
      panic = true;
      a = randomIndex(endpoints, this.#random, -1, true);
    }
    const b = randomIndex(endpoints, this.#random, a, panic);
    if (b < 0) return a;
    const ea = endpoints[a]!;
    const eb = endpoints[b]!;
    const la = ea.active * eb.weight;
    const lb = eb.active * ea.weight;
    if (la !== lb) return la < lb ? a : b;
    return this.#random() * (ea.weight + eb.weight) < ea.weight ? a : b;
  }
}
