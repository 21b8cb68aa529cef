import type { FaultInjectionConfig } from '../../config/traffic-policy-schema.js';

/** What to do to one request. A field of 0 means no such fault. */
export interface FaultDecision {
  /** Wait this many milliseconds before sending the request on. */
  readonly delayMs: number;
  /** Answer locally with this HTTP status instead of sending the request (`weft-error: WEFT_E_FAULT_ABORT`). */
  readonly abortStatus: number;
  /** For a gRPC request: answer with this grpc-status (1..16) when not 0, else use abortStatus. */
  readonly abortGrpcStatus: number;
}

/**
 * Fault injection for chaos testing, applied by each caller's sidecar. When the request
 * carries every configured header with exactly its value (or no headers are configured),
 * the delay applies with probability delay.percent / 100 and, independently, the abort
 * with probability abort.percent / 100 (a request can be delayed, then aborted).
 *
 * `config` undefined: `decide` is always null. `random` returns numbers in [0, 1)
 * (Math.random by default); one draw for the delay, then one for the abort, each only
 * when configured.
 */
export class FaultInjector {
  readonly #config: FaultInjectionConfig | undefined;
  readonly #random: () => number;
  #delays = 0;
  #aborts = 0;

  constructor(config: FaultInjectionConfig | undefined, random: () => number = Math.random) {
    this.#config = config;
    this.#random = random;
  }

  /**
   * The faults for one request, or null when none applies (no allocation then). `header`
   * returns the request's value of a header by its lower-case name (undefined when
   * absent). A fault returns a new decision object, which the caller may keep.
   */
  decide(header: (lowerName: string) => string | undefined): FaultDecision | null {
    const config = this.#config;
    if (config === undefined) return null;
    const headers = config.headers;
    if (headers !== undefined) {
      for (let i = 0; i < headers.length; i++) {
        const h = headers[i]!;
        if (header(h.name) !== h.value) return null;
      }
    }
    const delay = config.delay;
    const delayMs = delay !== undefined && this.#random() * 100 < delay.percent ? delay.fixed : 0;
    const abort = config.abort;
    const aborted = abort !== undefined && this.#random() * 100 < abort.percent;
    if (delayMs === 0 && !aborted) return null;
    if (delayMs > 0) this.#delays++;
    if (aborted) this.#aborts++;
    return { delayMs, abortStatus: aborted ? abort.status : 0, abortGrpcStatus: aborted ? (abort.grpcStatus ?? 0) : 0 };
  }

  /** Requests delayed since the injector was made. */
  get delays(): number {
    return this.#delays;
  }

  /** Requests aborted since the injector was made. */
  get aborts(): number {
    return this.#aborts;
  }
}
