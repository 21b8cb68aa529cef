/**
 * Test helpers for the load-balancing and resilience tests: a seeded random source (so
 * every statistical test is deterministic) and the bound used for distribution checks.
 */

/** mulberry32: a small seeded PRNG returning numbers in [0, 1). */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The bound for "count is as expected": a count of successes in `n` independent trials of
 * probability `p` is binomial with standard deviation sqrt(n·p·(1-p)); we accept within
 * 5 standard deviations (a false alarm about once in 1.7 million for a true random source;
 * with a fixed seed the outcome is fixed, so the bound only has to be honest).
 */
export function assertBinomial(count: number, n: number, p: number, what: string): void {
  const sigma = Math.sqrt(n * p * (1 - p));
  const expected = n * p;
  if (Math.abs(count - expected) > 5 * sigma) {
    throw new Error(`${what}: ${count} of ${n}, expected ${expected.toFixed(1)} ± ${(5 * sigma).toFixed(1)} (5σ)`);
  }
}

/** A clock the test moves by hand (milliseconds). */
export function manualClock(start = 1_000): { now: () => number; advance: (ms: number) => void; set: (ms: number) => void } {
  let t = start;
  return {
    now: () => t,
    advance: (ms) => {
      t += ms;
    },
    set: (ms) => {
      t = ms;
    },
  };
}
