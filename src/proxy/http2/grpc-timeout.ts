/**
 * The gRPC deadline header (gRPC over HTTP/2: `grpc-timeout`): at most 8 ASCII digits and
 * a unit, H (hours), M (minutes), S (seconds), m (milliseconds), u (microseconds) or
 * n (nanoseconds).
 */

const UNIT_MS: Readonly<Record<string, number>> = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 1e-3, n: 1e-6 };

/** Largest value the header carries: 8 digits. */
const MAX_VALUE = 99_999_999;

/**
 * The timeout in milliseconds (fractional below 1 ms), or null when the value is absent or
 * malformed (a malformed header is ignored, like Envoy does, rather than failing the call).
 */
export function parseGrpcTimeout(value: string | undefined): number | null {
  if (value === undefined) return null;
  const n = value.length;
  if (n < 2 || n > 9) return null;
  const unit = UNIT_MS[value[n - 1]!];
  if (unit === undefined) return null;
  let digits = 0;
  for (let i = 0; i < n - 1; i++) {
    const c = value.charCodeAt(i) - 0x30;
    if (c < 0 || c > 9) return null;
    digits = digits * 10 + c;
  }
  return digits * unit;
}

/**
 * `ms` as a header value in the finest unit whose count fits in 8 digits (microseconds up
 * to 100 s, then milliseconds, seconds…), rounded up so a positive time never becomes 0.
 */
export function formatGrpcTimeout(ms: number): string {
  const t = Math.max(0, ms);
  const us = Math.ceil(t * 1000);
  if (us <= MAX_VALUE) return `${us}u`;
  for (const unit of ['m', 'S', 'M'] as const) {
    const v = Math.ceil(t / UNIT_MS[unit]!);
    if (v <= MAX_VALUE) return `${v}${unit}`;
  }
  return `${Math.min(MAX_VALUE, Math.ceil(t / UNIT_MS['H']!))}H`;
}
