import type { SidecarMetrics, HopLabels } from '../../obs/metrics.js';
import type { Cluster } from './cluster.js';

/**
 * The cluster-side admission of one more try of a request, shared by the HTTP/1 and
 * HTTP/2 paths: the destination's retry budget must allow it (else counted as
 * `WEFT_E_RETRY_BUDGET`), and a request's first retry takes a slot of the breaker's
 * concurrent retries (`alreadyRetrying`: it holds one). The caller checks the rule (codes,
 * attempts) and whether the request can be sent again.
 */
export function admitRetry(cluster: Cluster, alreadyRetrying: boolean, metrics: SidecarMetrics, hop: HopLabels): boolean {
  if (!cluster.budget.canRetry()) {
    metrics.error(hop.direction, hop.service, 'WEFT_E_RETRY_BUDGET');
    return false;
  }
  return alreadyRetrying || cluster.breaker.tryRetry();
}

/**
 * How long to wait before retry `n` (1 for the first): `base * 2^(n-1)`, at most ten times
 * `base`, plus up to 50 % jitter; never sooner than `base` (GEP-1731). 0 when base is 0.
 */
export function retryBackoffMs(base: number, n: number): number {
  if (base <= 0) return 0;
  return Math.min(base * 2 ** (n - 1), base * 10) * (1 + 0.5 * Math.random());
}
