import type { OutlierDetectionConfig } from '../../config/traffic-policy-schema.js';
import type { LbEndpoint } from '../lb/types.js';

/**
 * What went wrong with an attempt: '5xx' is a 5xx answer other than 502/503/504;
 * 'gateway' is 502, 503 or 504; 'connect' is a failure to connect (or a reset before
 * the answer).
 */
export type FailureKind = '5xx' | 'gateway' | 'connect';

/**
 * Passive health checking for one endpoint list (make a new detector with a new list).
 * The caller reports each attempt's outcome; endpoints that fail in a row are ejected
 * (`endpoints[i].ejected = true`, so the pickers skip them) and return by themselves.
 *
 * Counting (Envoy's): 'gateway' and 'connect' count toward both consecutive5xx and
 * consecutiveGatewayErrors; '5xx' counts toward consecutive5xx and breaks a run of gateway
 * errors; a success resets both. A threshold of 0 is off. Outcomes reported for an
 * ejected endpoint (panic mode) are ignored.
 *
 * Max ejection percent (Envoy's rule with always_eject_one_host): an endpoint is ejected
 * only if, counting it, at most maxEjectionPercent of the endpoints are ejected; but one
 * endpoint may always be ejected when the percent is above 0. So the limit is
 * max(1, floor(endpoints × percent / 100)) ejected at once, and 0 % ejects nothing. A
 * refused ejection is counted (`ejectionsRefused`); the endpoint stays at its threshold
 * and is ejected on its next failure once there is room.
 *
 * Duration and decay: each endpoint has an ejection level n. An ejection raises n by one
 * (up to ceil(maxEjectionTime / baseEjectionTime), where the duration is capped anyway)
 * and lasts min(n × baseEjectionTime, maxEjectionTime). Time in service lowers n by one per
 * full baseEjectionTime since the endpoint last returned (Envoy lowers it once per
 * healthy `interval`), computed at the next ejection. So an endpoint ejected again soon
 * after returning stays out longer and longer; one that stayed healthy starts over.
 *
 * Returns are lazy (no timers): `tick(now?)` returns the endpoints whose time has come
 * and costs one comparison until the earliest return is due. Call it before each pick or
 * from a coarse timer; `failure` calls it before counting the ejected endpoints.
 */
export class OutlierDetector {
  /** Called after endpoint `i` is ejected (for metrics and logs). */
  onEject: ((i: number) => void) | undefined = undefined;
  /** Called after endpoint `i` returns to service. */
  onReturn: ((i: number) => void) | undefined = undefined;

  readonly #config: OutlierDetectionConfig | undefined;
  readonly #endpoints: readonly LbEndpoint[];
  readonly #clock: () => number;
  readonly #limit: number;
  readonly #maxLevel: number;
  readonly #c5xx: Uint32Array;
  readonly #cGateway: Uint32Array;
  readonly #level: Uint32Array;
  readonly #out: Uint8Array;
  readonly #returnAt: Float64Array;
  readonly #since: Float64Array;
  #ejectedCount = 0;
  #nextReturn = Infinity;
  #ejections = 0;
  #refused = 0;

  /**
   * `config` undefined: nothing is ever ejected (every method is a no-op). `endpoints` are
   * the objects the pickers see; the detector owns their `ejected` flag and clears it
   * here. `clock` returns milliseconds (default performance.now()).
   */
  constructor(config: OutlierDetectionConfig | undefined, endpoints: readonly LbEndpoint[], clock: () => number = () => performance.now()) {
    this.#config = config;
    this.#endpoints = endpoints;
    this.#clock = clock;
    const n = config === undefined ? 0 : endpoints.length;
    this.#c5xx = new Uint32Array(n);
    this.#cGateway = new Uint32Array(n);
    this.#level = new Uint32Array(n);
    this.#out = new Uint8Array(n);
    this.#returnAt = new Float64Array(n);
    this.#since = new Float64Array(n);
    const percent = config?.maxEjectionPercent ?? 0;
    this.#limit = percent > 0 ? Math.max(1, Math.floor((endpoints.length * percent) / 100)) : 0;
    this.#maxLevel = config === undefined ? 0 : Math.ceil(config.maxEjectionTime / config.baseEjectionTime);
    if (n > 0) this.#since.fill(clock());
    for (const e of endpoints) e.ejected = false;
  }

  /** Endpoint `i` answered (any status below 500, or whatever the caller counts as healthy). */
  success(i: number): void {
    if (!(i >= 0 && i < this.#out.length)) return;
    this.#c5xx[i] = 0;
    this.#cGateway[i] = 0;
  }

  /** Endpoint `i` failed; may eject it. */
  failure(i: number, kind: FailureKind): void {
    const config = this.#config;
    if (config === undefined || !(i >= 0 && i < this.#out.length) || this.#out[i] === 1) return;
    const c5xx = ++this.#c5xx[i]!;
    let cGateway: number;
    if (kind === '5xx') {
      this.#cGateway[i] = 0;
      cGateway = 0;
    } else {
      cGateway = ++this.#cGateway[i]!;
    }
    if ((config.consecutive5xx > 0 && c5xx >= config.consecutive5xx) || (config.consecutiveGatewayErrors > 0 && cGateway >= config.consecutiveGatewayErrors)) {
      this.#eject(i, config);
    }
  }

  /** Returns to service the endpoints whose ejection is over at `now` (default: the clock). Cheap until one is due. */
  tick(now?: number): void {
    if (this.#nextReturn === Infinity) return;
    const t = now ?? this.#clock();
    if (t < this.#nextReturn) return;
    let next = Infinity;
    for (let i = 0; i < this.#out.length; i++) {
      if (this.#out[i] === 0) continue;
      const at = this.#returnAt[i]!;
      if (at <= t) {
        this.#out[i] = 0;
        this.#endpoints[i]!.ejected = false;
        this.#since[i] = at;
        this.#c5xx[i] = 0;
        this.#cGateway[i] = 0;
        this.#ejectedCount--;
        this.onReturn?.(i);
      } else if (at < next) {
        next = at;
      }
    }
    this.#nextReturn = next;
  }

  /** Ejections since the detector was made. */
  get ejections(): number {
    return this.#ejections;
  }

  /** Ejections not made because of maxEjectionPercent. */
  get ejectionsRefused(): number {
    return this.#refused;
  }

  /** Endpoints ejected now (as of the last tick). */
  get ejected(): number {
    return this.#ejectedCount;
  }

  /** When endpoint `i` returns (clock time, ms), or null when it is not ejected. */
  returnsAt(i: number): number | null {
    return this.#out[i] === 1 ? this.#returnAt[i]! : null;
  }

  #eject(i: number, config: OutlierDetectionConfig): void {
    const now = this.#clock();
    this.tick(now);
    if (this.#ejectedCount + 1 > this.#limit) {
      this.#refused++;
      return;
    }
    const base = config.baseEjectionTime;
    const decayed = Math.max(0, this.#level[i]! - Math.floor((now - this.#since[i]!) / base));
    const level = Math.min(decayed + 1, this.#maxLevel);
    this.#level[i] = level;
    const at = now + Math.min(level * base, config.maxEjectionTime);
    this.#returnAt[i] = at;
    if (at < this.#nextReturn) this.#nextReturn = at;
    this.#out[i] = 1;
    this.#endpoints[i]!.ejected = true;
    this.#c5xx[i] = 0;
    this.#cGateway[i] = 0;
    this.#ejectedCount++;
    this.#ejections++;
    this.onEject?.(i);
  }
}
