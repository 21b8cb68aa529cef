import type { Socket } from 'node:net';
import type { HostPort } from '../../config/address.js';
import type { Connector } from '../upstream/connector.js';
import type { CircuitBreaker } from '../resilience/circuit-breaker.js';
import { WeftError } from '../../errors.js';

/** What an exchange that holds an upstream connection hears from it. */
export interface UpstreamOwner {
  onUpstreamData(chunk: Buffer): void;
  /** The upstream finished sending (FIN). */
  onUpstreamEnd(): void;
  /** The socket closed or failed; `err` when it failed. */
  onUpstreamClose(err: Error | null): void;
  onUpstreamDrain(): void;
}

/**
 * One connection to an endpoint, kept across exchanges. Its socket listeners are attached
 * once and forward to whichever exchange owns it, so lending it out costs no listener
 * churn per request.
 */
export class UpstreamConnection {
  readonly socket: Socket;
  readonly #pool: Http1Pool;
  owner: UpstreamOwner | null = null;
  /** Exchanges this connection has carried (a reused connection may have gone stale). */
  uses = 0;
  idleSince = 0;
  #error: Error | null = null;

  constructor(socket: Socket, pool: Http1Pool) {
    this.socket = socket;
    this.#pool = pool;
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('drain', this.#onDrain);
    socket.on('error', this.#onError);
    socket.on('close', this.#onClose);
  }

  /** Gives the connection back to its pool after a complete exchange. */
  release(): void {
    this.#pool.release(this);
  }

  /** Removes this object's listeners and gives the bare socket away (upgraded connections). */
  detach(): Socket {
    const s = this.socket;
    s.removeListener('data', this.#onData);
    s.removeListener('end', this.#onEnd);
    s.removeListener('drain', this.#onDrain);
    s.removeListener('error', this.#onError);
    s.removeListener('close', this.#onClose);
    this.owner = null;
    this.#pool.forget(this);
    return s;
  }

  readonly #onData = (chunk: Buffer): void => {
    if (this.owner !== null) this.owner.onUpstreamData(chunk);
    else this.socket.destroy(); // bytes on an idle connection: the upstream is confused, drop it
  };

  readonly #onEnd = (): void => {
    if (this.owner !== null) this.owner.onUpstreamEnd();
    else this.socket.destroy();
  };

  readonly #onDrain = (): void => {
    this.owner?.onUpstreamDrain();
  };

  readonly #onError = (err: Error): void => {
    this.#error = err;
    this.socket.destroy();
  };

  readonly #onClose = (): void => {
    const owner = this.owner;
    this.owner = null;
    this.#pool.forget(this);
    owner?.onUpstreamClose(this.#error);
  };
}

type AcquireCallback = (err: Error | null, conn: UpstreamConnection | null) => void;

/**
 * HTTP/1.1 connections to one endpoint: idle ones are reused most-recent first; a new one
 * is opened through the connector when none is idle and the cluster's circuit breaker
 * allows another connection, else the request waits (as a pending request, if the breaker
 * allows one more) for a connection of this pool to be released. Idle connections are
 * closed after `keepAliveMs` (kept below the endpoint's own idle timeout, so the endpoint
 * rarely closes one just as a request is sent on it).
 */
export class Http1Pool {
  readonly address: HostPort;
  /** How this endpoint is reached; the endpoint's HTTP/2 sessions (proxy/http2/session-pool.ts) use it too. */
  readonly connector: Connector;
  /** Told once when the pool closes (its cluster closed or was destroyed). */
  readonly #closeListeners: (() => void)[] = [];
  readonly #keepAliveMs: number;
  readonly #idle: UpstreamConnection[] = [];
  readonly #all = new Set<UpstreamConnection>();
  readonly #breaker: CircuitBreaker | null;
  /** Requests waiting for a connection (the breaker's maxConnections was reached). */
  readonly #waiting: { owner: UpstreamOwner; callback: AcquireCallback }[] = [];
  #sweeper: NodeJS.Timeout | null = null;
  #closed = false;

  constructor(address: HostPort, connector: Connector, keepAliveMs: number, breaker: CircuitBreaker | null = null) {
    this.address = address;
    this.connector = connector;
    this.#keepAliveMs = keepAliveMs;
    this.#breaker = breaker;
  }

  /** Connections open now (busy and idle). */
  get size(): number {
    return this.#all.size;
  }

  /**
   * Lends a connection to `owner`: an idle one unless `fresh`, else a new one.
   * `callback` runs once, possibly synchronously.
   */
  acquire(owner: UpstreamOwner, fresh: boolean, callback: AcquireCallback): void {
    if (!fresh) {
      const now = performance.now();
      let conn: UpstreamConnection | undefined;
      while ((conn = this.#idle.pop()) !== undefined) {
        if (!conn.socket.destroyed && now - conn.idleSince < this.#keepAliveMs) {
          conn.owner = owner;
          conn.uses++;
          return callback(null, conn);
        }
        conn.socket.destroy();
      }
    }
    if (this.#closed) return callback(new Error('the upstream pool is closed (configuration changed)'), null);
    const breaker = this.#breaker;
    if (breaker !== null && !breaker.tryConnection()) {
      if (this.#all.size === 0 || !breaker.tryPending()) {
        return callback(new WeftError('WEFT_E_OVERFLOW', 'the circuit breaker is open: too many connections and pending requests to this upstream'), null);
      }
      this.#waiting.push({ owner, callback });
      return;
    }
    this.#open(owner, callback);
  }

  #open(owner: UpstreamOwner, callback: AcquireCallback): void {
    this.connector.connect(this.address, (err, socket) => {
      if (err !== null || socket === null) {
        this.#breaker?.connectionClosed();
        return callback(err ?? new Error('no socket'), null);
      }
      const conn = new UpstreamConnection(socket, this);
      this.#all.add(conn);
      conn.owner = owner;
      conn.uses = 1;
      callback(null, conn);
    });
  }

  /** Takes a connection back after a complete exchange, for reuse. */
  release(conn: UpstreamConnection): void {
    conn.owner = null;
    if (this.#closed || conn.socket.destroyed) {
      conn.socket.destroy();
      return;
    }
    const waiter = this.#waiting.shift();
    if (waiter !== undefined) {
      this.#breaker!.pendingDone();
      conn.owner = waiter.owner;
      conn.uses++;
      waiter.callback(null, conn);
      return;
    }
    conn.idleSince = performance.now();
    this.#idle.push(conn);
    this.#sweeper ??= setInterval(this.#sweep, Math.min(1000, this.#keepAliveMs)).unref();
  }

  /** Called by a connection when its socket closes. */
  forget(conn: UpstreamConnection): void {
    if (!this.#all.delete(conn)) return;
    const i = this.#idle.indexOf(conn);
    if (i >= 0) this.#idle.splice(i, 1);
    if (this.#breaker === null) return;
    this.#breaker.connectionClosed();
    // A connection slot is free: the oldest waiting request opens a connection in it.
    const waiter = this.#waiting.shift();
    if (waiter === undefined) return;
    this.#breaker.pendingDone();
    if (this.#closed) return waiter.callback(new Error('the upstream pool is closed (configuration changed)'), null);
    if (this.#breaker.tryConnection()) {
      this.#open(waiter.owner, waiter.callback);
    } else {
      this.#breaker.tryPending();
      this.#waiting.unshift(waiter);
    }
  }

  /** A waiting request gave up (its caller left or it timed out). */
  cancel(owner: UpstreamOwner): void {
    const i = this.#waiting.findIndex((w) => w.owner === owner);
    if (i < 0) return;
    this.#waiting.splice(i, 1);
    this.#breaker?.pendingDone();
  }

  readonly #sweep = (): void => {
    const now = performance.now();
    for (const conn of [...this.#idle]) if (now - conn.idleSince >= this.#keepAliveMs) conn.socket.destroy();
    if (this.#idle.length === 0 && this.#sweeper !== null) {
      clearInterval(this.#sweeper);
      this.#sweeper = null;
    }
  };

  /**
   * Runs `listener` once when the pool closes (at once if it is closed): the HTTP/2
   * session pool of the same endpoint closes with it, since Cluster owns only this pool.
   */
  onClose(listener: () => void): void {
    if (this.#closed) listener();
    else this.#closeListeners.push(listener);
  }

  /** Closes idle connections now and busy ones as they are released. */
  close(): void {
    if (!this.#closed) for (const listener of this.#closeListeners.splice(0)) listener();
    this.#closed = true;
    for (const waiter of this.#waiting.splice(0)) {
      this.#breaker?.pendingDone();
      waiter.callback(new Error('the upstream pool is closed (configuration changed)'), null);
    }
    for (const conn of this.#idle.splice(0)) conn.socket.destroy();
    if (this.#sweeper !== null) clearInterval(this.#sweeper);
    this.#sweeper = null;
  }

  /** Closes everything now, failing what is in flight. */
  destroy(): void {
    this.close();
    for (const conn of [...this.#all]) conn.socket.destroy();
  }
}
