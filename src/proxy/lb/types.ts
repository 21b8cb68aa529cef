/**
 * What the load-balancing pickers see of an endpoint. The same objects are shared with
 * the outlier detector (which sets `ejected`) and the caller (which maintains `active`).
 */
export interface LbEndpoint {
  /** Requests in flight on this endpoint, maintained by the caller (+1 when sent, -1 when done). */
  active: number;
  /** Relative share of traffic, a whole number >= 1 (1 when the endpoint has no weight). */
  readonly weight: number;
  /** Out of load balancing for now (set and cleared by the outlier detector). */
  ejected: boolean;
  /**
   * Optional stable identity (e.g. `10.0.0.7:8443`) that places the endpoint on the
   * consistent-hash ring. Without it the endpoint's index is used, so adding or removing an
   * endpoint remaps more keys than it needs to. Ignored by the other pickers.
   */
  readonly key?: string;
}

/**
 * Chooses an endpoint for a request. A picker is made for one endpoint list (it may
 * precompute from it on the first call); pass the same array on every call.
 */
export interface Picker {
  /**
   * Returns the index in `endpoints` of the endpoint to use. Ejected endpoints are skipped;
   * when every endpoint is ejected, all of them are candidates again (panic mode, as
   * Envoy). Returns -1 only when `endpoints` is empty. `hashKey` is the request's hash
   * input (the configured header's value) for ConsistentHash, else ignored; null = none.
   */
  pick(endpoints: readonly LbEndpoint[], hashKey: string | null): number;
}
