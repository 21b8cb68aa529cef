import type { Socket } from 'node:net';
import type { HostPort } from '../../config/address.js';
import { formatHostPort } from '../../config/address.js';
import { RoundRobin } from '../lb/round-robin.js';
import type { Connector } from './connector.js';
import { Http1Pool } from '../http1/upstream-pool.js';

/** One endpoint of a cluster with its HTTP connection pool. */
export interface Endpoint {
  readonly address: HostPort;
  readonly label: string;
  readonly pool: Http1Pool;
}

/**
 * A set of endpoints reached through one connector (plaintext to the app, or mTLS to
 * remote sidecars with one expected identity), with an HTTP/1.1 pool per endpoint and a
 * round-robin picker. Clusters are reused by `key` across configuration reloads so
 * pooled connections survive a reload.
 */
export class Cluster {
  readonly key: string;
  readonly endpoints: readonly Endpoint[];
  readonly #picker: RoundRobin;
  readonly #connector: Connector;

  constructor(options: { key: string; endpoints: readonly HostPort[]; connector: Connector; keepAliveTimeoutMs: number }) {
    this.key = options.key;
    this.#connector = options.connector;
    this.#picker = new RoundRobin(options.endpoints.length);
    this.endpoints = options.endpoints.map((address) => ({
      address,
      label: formatHostPort(address),
      pool: new Http1Pool(address, options.connector, options.keepAliveTimeoutMs),
    }));
  }

  /** Index of the endpoint to try first for a new request or connection. */
  first(): number {
    return this.#picker.next();
  }

  /** The endpoint to use for attempt `attempt` (0-based) of a request that started at `first`. */
  at(first: number, attempt: number): Endpoint {
    return this.endpoints[(first + attempt) % this.endpoints.length]!;
  }

  /**
   * Opens a raw connection (TCP proxying), trying each endpoint once in round-robin order
   * until one connects.
   */
  connectAny(callback: (err: Error | null, socket: Socket | null, endpoint: Endpoint | null) => void): void {
    if (this.endpoints.length === 0) return callback(new Error('no healthy instance of this upstream service'), null, null);
    const first = this.first();
    const attempt = (n: number, lastError: Error | null): void => {
      if (n === this.endpoints.length) return callback(lastError, null, null);
      const endpoint = this.at(first, n);
      this.#connector.connect(endpoint.address, (err, socket) => {
        if (err) attempt(n + 1, err);
        else callback(null, socket, endpoint);
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
