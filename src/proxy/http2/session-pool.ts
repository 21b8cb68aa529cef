import { connect as h2Connect, type ClientHttp2Session, type ClientSessionOptions } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import type { Endpoint } from '../upstream/cluster.js';
import { WeftError } from '../../errors.js';

/**
 * HTTP/2 client sessions to cluster endpoints: one session per endpoint, shared by every
 * stream to it (nghttp2 queues streams beyond the peer's concurrency limit), opened on first
 * use through the endpoint's own connector (mTLS with ALPN `h2` to remote sidecars, plain
 * TCP — h2c — to the app), opened again after it closes, closed when idle for
 * SESSION_IDLE_MS and when the endpoint's cluster closes. Kept beside the Cluster (a
 * WeakMap by Endpoint object), which knows only its HTTP/1 pools.
 */

/**
 * A session with no stream for this long is closed. HTTP/2 ends sessions gracefully
 * (GOAWAY names the streams it did not process, which are safe to send again), so one idle
 * time serves the app and remote sidecars alike.
 */
const SESSION_IDLE_MS = 30_000;

/** Connection-level receive window: several streams in flight each get data without waiting for the others. */
const SESSION_WINDOW = 4 * 1024 * 1024;

/** How long a new connection may take to deliver the peer's SETTINGS (the connector bounds the connection itself). */
const SETTINGS_TIMEOUT_MS = 10_000;

/** Longest a graceful close waits for streams in flight before the session is destroyed (the listeners' drain is shorter). */
const CLOSE_GRACE_MS = 60_000;

/** Called once with a usable session or why there is none. */
export type SessionCallback = (err: Error | null, session: ClientHttp2Session | null) => void;

/** Sizes the pool applies to new sessions (from the listener's limits). */
export interface SessionLimits {
  /** Response header fields accepted (pseudo-headers included). */
  readonly maxHeaderListPairs: number;
  /** Largest response header block, in bytes. */
  readonly maxHeaderListSize: number;
}

const pools = new WeakMap<Endpoint, H2EndpointPool>();

/** The HTTP/2 session pool of `endpoint` (created on first use, closed with the endpoint's cluster). */
export function h2Pool(endpoint: Endpoint): H2EndpointPool {
  let pool = pools.get(endpoint);
  if (pool === undefined) {
    pool = new H2EndpointPool(endpoint);
    pools.set(endpoint, pool);
    const created = pool;
    endpoint.pool.onClose(() => created.close());
  }
  return pool;
}

/** The HTTP/2 session to one endpoint. */
export class H2EndpointPool {
  readonly #endpoint: Endpoint;
  #session: ClientHttp2Session | null = null;
  /** Streams open on #session (the idle check counts them). */
  #active = 0;
  #waiting: SessionCallback[] | null = null;
  #closed = false;

  constructor(endpoint: Endpoint) {
    this.#endpoint = endpoint;
  }

  /**
   * A usable session: the open one, else a new one once its connection is up and the peer's
   * SETTINGS arrived (so a peer that does not speak HTTP/2 is a connect failure, nothing
   * sent). `fresh` drops the open session first (it refused a stream). `callback` may run
   * synchronously.
   */
  session(limits: SessionLimits, fresh: boolean, callback: SessionCallback): void {
    const open = this.#session;
    if (open !== null && (fresh || open.closed || open.destroyed)) {
      this.#forget(open);
      if (!open.closed) open.close();
    } else if (open !== null) {
      return callback(null, open);
    }
    if (this.#closed) return callback(new WeftError('WEFT_E_UPSTREAM_CONNECT', 'the upstream pool is closed (configuration changed)'), null);
    if (this.#waiting !== null) {
      this.#waiting.push(callback);
      return;
    }
    this.#waiting = [callback];
    this.#open(limits);
  }

  /** A stream opened on `session` (pairs with `streamClosed`). */
  streamOpened(session: ClientHttp2Session): void {
    if (session === this.#session) this.#active++;
  }

  /** A stream on `session` closed. */
  streamClosed(session: ClientHttp2Session): void {
    if (session === this.#session && this.#active > 0) this.#active--;
  }

  /** Closes the session gracefully (streams in flight finish); no new one is opened. */
  close(): void {
    this.#closed = true;
    const session = this.#session;
    if (session !== null) {
      this.#forget(session);
      closeGracefully(session);
    }
  }

  #open(limits: SessionLimits): void {
    const label = this.#endpoint.label;
    this.#endpoint.pool.connector.connect(
      this.#endpoint.address,
      (err, socket) => {
        if (err !== null || socket === null) return this.#settle(err ?? new Error('no socket'), null);
        const alpn = (socket as TLSSocket).alpnProtocol;
        if (typeof alpn === 'string' && alpn !== 'h2') {
          socket.destroy();
          return this.#settle(new WeftError('WEFT_E_UPSTREAM_PROTOCOL', `${label} chose ALPN ${alpn}, not h2`), null);
        }
        const options: ClientSessionOptions = {
          createConnection: () => socket,
          settings: { enablePush: false, maxHeaderListSize: limits.maxHeaderListSize },
          maxHeaderListPairs: limits.maxHeaderListPairs,
        };
        let session: ClientHttp2Session;
        try {
          session = h2Connect(`${(socket as TLSSocket).encrypted === true ? 'https' : 'http'}://${label}`, options);
        } catch (e) {
          socket.destroy();
          return this.#settle(e as Error, null);
        }
        let ready = false;
        // A peer that accepted the connection but sends no SETTINGS does not speak HTTP/2.
        const timer = setTimeout(() => session.destroy(), SETTINGS_TIMEOUT_MS);
        session.on('error', () => {}); // 'close' follows; streams see their own errors
        session.once('remoteSettings', () => {
          ready = true;
          clearTimeout(timer);
          if (this.#closed) {
            session.close();
            return this.#settle(new WeftError('WEFT_E_UPSTREAM_CONNECT', 'the upstream pool is closed (configuration changed)'), null);
          }
          try {
            session.setLocalWindowSize(SESSION_WINDOW);
          } catch {
            // closed meanwhile: its streams fail and the next caller opens a new session
          }
          this.#session = session;
          this.#active = 0;
          this.#settle(null, session);
        });
        session.once('close', () => {
          clearTimeout(timer);
          this.#forget(session);
          if (!ready) this.#settle(new WeftError('WEFT_E_UPSTREAM_CONNECT', `${label} closed the connection before its HTTP/2 settings arrived (does it speak HTTP/2?)`), null);
        });
        session.on('goaway', () => this.#forget(session));
        session.setTimeout(SESSION_IDLE_MS, () => {
          if (session !== this.#session || this.#active === 0) {
            this.#forget(session);
            session.close();
          }
        });
      },
      { alpn: ['h2'] },
    );
  }

  #settle(err: Error | null, session: ClientHttp2Session | null): void {
    const waiting = this.#waiting ?? [];
    this.#waiting = null;
    for (const callback of waiting) callback(err, session);
  }

  #forget(session: ClientHttp2Session): void {
    if (this.#session === session) {
      this.#session = null;
      this.#active = 0;
    }
  }
}

/** GOAWAY now; streams in flight may finish within CLOSE_GRACE_MS. */
function closeGracefully(session: ClientHttp2Session): void {
  if (session.destroyed) return;
  session.close();
  const timer = setTimeout(() => session.destroy(), CLOSE_GRACE_MS);
  timer.unref();
  session.once('close', () => clearTimeout(timer));
}
