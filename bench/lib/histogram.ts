/**
 * An HDR-style log-linear latency histogram in whole microseconds.
 *
 * Layout (as in HdrHistogram): values are grouped by power of two; each power-of-two range is
 * split into 128 linear sub-buckets, so any recorded value is reported within 1/128 (< 0.8 %)
 * of its true value — two significant digits. Values from 0 µs up to `highestUs` (default
 * 60 s) are tracked in a fixed ~2,600-slot array whatever the number of samples: memory is
 * bounded. Larger values are clamped to `highestUs` for the percentiles (`max` stays exact),
 * and `mean`, `min` and `max` are computed from the exact values.
 */

/** log2 of the number of linear sub-buckets in the lower half of each range. */
const SUB_HALF_BITS = 7;
const SUB_HALF = 1 << SUB_HALF_BITS; // 128
const SUB_MASK = (SUB_HALF << 1) - 1; // 255: values below 256 land in bucket 0, exactly
/** Largest value the bucket arithmetic handles (it uses 32-bit `Math.clz32`). */
const LIMIT_US = 2 ** 31 - 1;

/** A bounded-memory latency histogram with ~1 % precision; see the module comment. */
export class Histogram {
  private readonly counts: Float64Array;
  private readonly highest: number;
  private total = 0;
  private sum = 0;
  private lowestSeen = Number.POSITIVE_INFINITY;
  private highestSeen = 0;

  /**
   * @param highestUs the largest value tracked with full precision, in µs (default 60 s);
   *   at most 2^31 - 1 (~35 min).
   */
  constructor(highestUs = 60_000_000) {
    if (!Number.isInteger(highestUs) || highestUs < 1 || highestUs > LIMIT_US) {
      throw new RangeError(`highestUs must be an integer in 1..${LIMIT_US}, got ${highestUs}`);
    }
    this.highest = highestUs;
    this.counts = new Float64Array(indexOf(highestUs) + 1);
  }

  /**
   * Records one value in µs. It is rounded to a whole µs; negative values count as 0 and
   * non-finite values are rejected with a RangeError.
   */
  record(us: number): void {
    if (!Number.isFinite(us)) throw new RangeError(`cannot record ${us}`);
    const v = us <= 0 ? 0 : Math.round(us);
    this.counts[indexOf(Math.min(v, this.highest))]! += 1;
    this.total += 1;
    this.sum += v;
    if (v < this.lowestSeen) this.lowestSeen = v;
    if (v > this.highestSeen) this.highestSeen = v;
  }

  /** Number of values recorded. */
  get count(): number {
    return this.total;
  }

  /** Exact largest value recorded, in µs (0 when empty). */
  get max(): number {
    return this.highestSeen;
  }

  /** Exact smallest value recorded, in µs (0 when empty). */
  get min(): number {
    return this.total === 0 ? 0 : this.lowestSeen;
  }

  /** Exact arithmetic mean of the values recorded, in µs (0 when empty). */
  get mean(): number {
    return this.total === 0 ? 0 : this.sum / this.total;
  }

  /**
   * The value at percentile `p` (0..100) in µs: the smallest value such that at least p % of
   * the samples are at or below it, reported as the top of its bucket (so never below the
   * true value, at most ~0.8 % above it) and never above `max`. `percentile(0)` is `min`,
   * `percentile(100)` is `max`; 0 when empty.
   */
  percentile(p: number): number {
    if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile must be in 0..100, got ${p}`);
    if (this.total === 0) return 0;
    if (p === 0) return this.min;
    if (p === 100) return this.highestSeen;
    const rank = Math.max(1, Math.ceil((p / 100) * this.total));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(highestEquivalent(i), this.highestSeen);
    }
    return this.highestSeen;
  }
}

/** Slot of value `v` (0 <= v <= LIMIT_US) in the counts array. */
function indexOf(v: number): number {
  // Bucket b holds values in [2^(b+7), 2^(b+8)) (bucket 0 also holds 0..127) with step 2^b.
  const bucket = 24 - Math.clz32(v | SUB_MASK); // (32 - clz) - (SUB_HALF_BITS + 1)
  const sub = v >>> bucket;
  return ((bucket + 1) << SUB_HALF_BITS) + sub - SUB_HALF;
}

/** Largest value that lands in slot `i` (the top of the bucket). */
function highestEquivalent(i: number): number {
  let bucket = (i >> SUB_HALF_BITS) - 1;
  let sub = (i & (SUB_HALF - 1)) + SUB_HALF;
  if (bucket < 0) {
    // Slots 0..127: the lower half of bucket 0, one value each.
    bucket = 0;
    sub -= SUB_HALF;
  }
  const lowest = sub * 2 ** bucket;
  return lowest + 2 ** bucket - 1;
}
