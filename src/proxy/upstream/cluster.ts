import type { Socket } from 'node:net';
import type { HostPort } from '../../config/address.js';
import { formatHostPort } from '../../config/address.js';
import type { TrafficPolicyConfig } from '../../config/traffic-policy-schema.js';
import { createPicker } from '../lb/picker.js';
import type { LbEndpoint, Picker } from '../lb/types.js';
import { CircuitBreaker } from '../resilience/circuit-breaker.js';
import { FaultInjector } from '../resilience/fault-injector.js';
import { OutlierDetector } from '../resilience/outlier-detector.js';
import { RetryBudget } from '../resilience/retry-budget.js';
import type { Connector } from './connector.js';
import { Http1Pool } from '../http1/upstream-pool.js';

/** One endpoint of a cluster: its address, HTTP/1.1 pool and load-balancing state. */
export interface Endpoint extends LbEndpoint {
  readonly address: HostPort;
  readonly label: string;
  readonly pool: Http1Pool;
}

/** An endpoint as the configuration gives it: an address, a weight (default 1). */
export interface EndpointConfig {
  readonly address: HostPort;
  readonly weight?: number;
}

/** How an attempt on an endpoint ended, for outlier detection. */
export type AttemptOutcome = 'success' | '5xx' | 'gateway' | 'connect';

/**
 * A set of endpoints reached through one connector (plaintext to the app, or mTLS to
 * remote sidecars with one expected identity), with the destination's traffic policy:
 * a picker (least request by default), a circuit breaker, an outlier detector, a retry
 * budget and fault injection. Clusters are reused by `key` across configuration reloads,
 * so pooled connections and breaker and outlier state survive a reload that keeps them.
 */
export class Cluster {
  readonly key: string;
  /** A name for messages and logs: the service (and subset) this cluster reaches. */
  readonly name: string;
  readonly endpoints: readonly Endpoint[];
  readonly breaker: CircuitBreaker;
  readonly outlier: OutlierDetector;
  readonly budget: RetryBudget;
  /** Fault injection for requests to this destination, or null. */
  readonly fault: FaultInjector | null;
  /** ConsistentHash: the lower-case header whose value is hashed, or null. */
  readonly hashHeader: string | null;
  readonly #picker: Picker;
  readonly #connector: Connector;

  constructor(options: { key: string; name?: string; endpoints: readonly (HostPort | EndpointConfig)[]; connector: Connector; keepAliveTimeoutMs: number; policy?: TrafficPolicyConfig }) {
    this.key = options.key;
    this.name = options.name ?? options.key;
    this.#connector = options.connector;
    const policy = options.policy;
    this.breaker = new CircuitBreaker(policy?.connectionPool);
    this.endpoints = options.endpoints.map((e) => {
      const address = 'address' in e ? e.address : e;
      const weight = 'address' in e ? (e.weight ?? 1) : 1;
      const label = formatHostPort(address);
      return {
        address,
        label,
        key: label,
        pool: new Http1Pool(address, options.connector, options.keepAliveTimeoutMs, this.breaker),
        active: 0,
        weight,
        ejected: false,
      };
    });
    this.#picker = createPicker(policy?.loadBalancer);
    this.hashHeader = policy?.loadBalancer?.consistentHash?.header.toLowerCase() ?? null;
    this.outlier = new OutlierDetector(policy?.outlierDetection, this.endpoints);
    this.budget = new RetryBudget(policy?.retryBudget);
    this.fault = policy?.faultInjection === undefined ? null : new FaultInjector(policy.faultInjection);
  }

  /**
   * Index of the endpoint for a new request or connection, by the load balancer over the
   * endpoints not ejected (all of them when every one is ejected); -1 when there is none.
   */
  first(hashKey: string | null = null): number {
    this.outlier.tick();
    return this.#picker.pick(this.endpoints, hashKey);
  }

  /** The endpoint to use for connection attempt `attempt` (0-based) of a request that started at `first`. */
  at(first: number, attempt: number): Endpoint {
    return this.endpoints[(first + attempt) % this.endpoints.length]!;
  }

  /** Records how an attempt on `endpoint` ended (outlier detection). */
  report(endpoint: Endpoint, outcome: AttemptOutcome): void {
    const i = this.endpoints.indexOf(endpoint);
    if (i < 0) return;
    if (outcome === 'success') this.outlier.success(i);
    else this.outlier.failure(i, outcome);
  }

  /**
   * Opens a raw connection (TCP proxying): the load balancer's choice first, then each
   * other endpoint once until one connects.
   */
  connectAny(callback: (err: Error | null, socket: Socket | null, endpoint: Endpoint | null) => void): void {
    if (this.endpoints.length === 0) return callback(new Error('no healthy instance of this upstream service'), null, null);
    const first = this.first();
    const attempt = (n: number, lastError: Error | null): void => {
      if (n === this.endpoints.length) return callback(lastError, null, null);
      const endpoint = this.at(first, n);
      this.#connector.connect(endpoint.address, (err, socket) => {
        if (err) {
          this.report(endpoint, 'connect');
          attempt(n + 1, err);
        } else {
          callback(null, socket, endpoint);
        }
      });
    };
    attempt(0, null);
  }

  /** Closes idle pooled connections now and busy ones when their exchange ends; idempotent. */
  close(): Promise<void> {
    this.#connector.close();
    for (const e of this.endpoints) e.pool.close();
    return Promise.resolve();
  }

  /** Closes every connection now, failing whatever is in flight. */
  destroy(): Promise<void> {
    this.#connector.close();
    for (const e of this.endpoints) e.pool.destroy();
    return Promise.resolve();
  }
}
