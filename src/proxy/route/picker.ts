import { getRandomValues } from 'node:crypto';
import type { BackendPicker } from './types.js';

/**
 * The default source of the draws: xorshift32, seeded once from the system's randomness.
 * Good enough to spread requests by weight, and, unlike Math.random (whose cache refills
 * allocate), it allocates nothing per draw.
 */
let state = getRandomValues(new Uint32Array(1))[0]! | 1;

function nextUnit(): number {
  state ^= state << 13;
  state ^= state >>> 17;
  state ^= state << 5;
  return (state >>> 0) / 4294967296;
}

/** One backendRef of a rule, resolved: `backend` is null when the ref named nothing usable. */
export interface WeightedBackend<B> {
  readonly backend: B | null;
  readonly weight: number;
}

/**
 * Weight-proportional random choice among a rule's backends. An unresolved backendRef
 * (backend null) keeps its share: `pick()` returns null for that share of requests, and the
 * pipeline answers them 500 (Gateway API: requests that would go to an invalid backend get
 * a 500, the others are routed normally). `random`, when given, returns numbers in [0, 1)
 * (tests inject a seeded one); by default a built-in generator draws.
 */
export function compilePicker<B>(entries: readonly WeightedBackend<B>[], random?: () => number): BackendPicker<B> & { readonly totalWeight: number } {
  const used = entries.filter((e) => e.weight > 0);
  const all = [...new Set(used.flatMap((e) => (e.backend === null ? [] : [e.backend])))];
  const resolvedWeight = used.reduce((sum, e) => sum + (e.backend === null ? 0 : e.weight), 0);
  if (used.length <= 1 || resolvedWeight === 0) {
    // Nothing to draw: always the one backend, or always null (no weight on a resolved backend).
    const only = resolvedWeight === 0 ? null : used[0]!.backend;
    return Object.freeze({ all: Object.freeze(all), totalWeight: resolvedWeight, pick: () => only });
  }
  return new Weighted(used, all, random, resolvedWeight);
}

class Weighted<B> implements BackendPicker<B> {
  readonly all: readonly B[];
  /** Weight of the backends that resolved (the invalid share answers 500). */
  readonly totalWeight: number;
  readonly #ends: Float64Array;
  readonly #backends: readonly (B | null)[];
  readonly #sum: number;
  readonly #random: (() => number) | null;

  constructor(used: readonly WeightedBackend<B>[], all: B[], random: (() => number) | undefined, resolvedWeight: number) {
    this.all = Object.freeze(all);
    this.totalWeight = resolvedWeight;
    this.#backends = Object.freeze(used.map((e) => e.backend));
    this.#ends = new Float64Array(used.length);
    let sum = 0;
    used.forEach((e, i) => {
      sum += e.weight;
      this.#ends[i] = sum;
    });
    this.#sum = sum;
    this.#random = random ?? null;
  }

  pick(): B | null {
    const r = (this.#random === null ? nextUnit() : this.#random()) * this.#sum;
    const ends = this.#ends;
    // At most 16 backends per rule: a linear scan beats a binary search.
    for (let i = 0; i < ends.length - 1; i++) {
      if (r < ends[i]!) return this.#backends[i]!;
    }
    return this.#backends[ends.length - 1]!;
  }
}
