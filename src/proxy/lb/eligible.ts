import type { LbEndpoint } from './types.js';

/** Random draws tried before counting the eligible endpoints (rejection sampling). */
const TRIES = 4;

/**
 * A uniformly random index among the eligible endpoints: not `exclude`, and not ejected
 * unless `includeEjected`. Returns -1 when none is eligible. Expected O(1) while few
 * endpoints are ejected (a few random draws), O(n) otherwise; allocates nothing.
 */
export function randomIndex(endpoints: readonly LbEndpoint[], random: () => number, exclude: number, includeEjected: boolean): number {
  const n = endpoints.length;
  for (let t = 0; t < TRIES; t++) {
    const i = draw(random, n);
    if (i !== exclude && (includeEjected || !endpoints[i]!.ejected)) return i;
  }
  let m = 0;
  for (let i = 0; i < n; i++) if (i !== exclude && (includeEjected || !endpoints[i]!.ejected)) m++;
  if (m === 0) return -1;
  let k = draw(random, m);
  for (let i = 0; i < n; i++) {
    if (i !== exclude && (includeEjected || !endpoints[i]!.ejected) && k-- === 0) return i;
  }
  return -1;
}

/** A random whole number in [0, n), safe against a `random` that returns 1. */
export function draw(random: () => number, n: number): number {
  const i = Math.floor(random() * n);
  return i < n ? i : n - 1;
}
