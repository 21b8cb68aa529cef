import { performServerHandshake, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { ConnectionInfo } from '../connection-info.js';
import type { HttpListenerContext } from '../http1/server-connection.js';
import { H2Exchange, PSEUDO_HEADER_ALLOWANCE } from './stream-exchange.js';

/** Streams a caller may have open at once on one connection (SETTINGS_MAX_CONCURRENT_STREAMS). */
export const MAX_CONCURRENT_STREAMS = 100;

/**
 * One caller's HTTP/2 connection (h2c from the app on outbound listeners, h2 over mTLS
 * on inbound ones): an HTTP/2 server session on the socket the listener accepted (and
 * already read the preface of, or chose by ALPN), each stream an `H2Exchange`. Node's
 * `http2.performServerHandshake` takes the socket as it is, TLS or not, with or without
 * ALPN (an `http2.Server` would refuse a TLS socket without ALPN h2), on Node 20 and 24.
 * Timeouts are checked by the listener's sweep like HTTP/1's: the idle timeout closes a
 * connection without streams (GOAWAY), the stream idle timeout resets a quiet stream.
 */
export class H2ServerConnection {
  readonly socket: Socket;
  readonly info: ConnectionInfo;
  readonly #ctx: HttpListenerContext;
  readonly #session: ServerHttp2Session;
  readonly #exchanges = new Set<H2Exchange>();
  readonly #clientAddress: string | undefined;
  /** When the last stream ended (or the connection opened): the idle timeout counts from it. */
  #idleSince = performance.now();
  #closing = false;

  constructor(socket: Socket, info: ConnectionInfo, ctx: HttpListenerContext) {
    this.socket = socket;
    this.info = info;
    this.#ctx = ctx;
    this.#clientAddress = socket.remoteAddress;
    const limits = ctx.route().limits;
    this.#session = performServerHandshake(socket, {
      settings: { maxConcurrentStreams: MAX_CONCURRENT_STREAMS, maxHeaderListSize: limits.maxHeaderBytes, enablePush: false },
      maxHeaderListPairs: limits.maxHeaders + PSEUDO_HEADER_ALLOWANCE,
    });
    this.#session.on('error', () => {}); // the socket closes; streams see their own errors
    this.#session.on('stream', this.#onStream);
  }

  /** No stream in flight. */
  get idle(): boolean {
    return this.#exchanges.size === 0;
  }

  /** Drain: GOAWAY now; streams in flight finish, new ones are refused. */
  closeIfIdle(): void {
    if (this.#closing) return;
    this.#closing = true;
    if (!this.#session.closed && !this.#session.destroyed) this.#session.close();
  }

  /** Called by the listener's sweep about once a second. */
  checkTimeouts(now: number): void {
    const { idleTimeout, streamIdleTimeout } = this.#ctx.route().limits;
    if (this.#exchanges.size === 0) {
      if (now - this.#idleSince > idleTimeout) this.closeIfIdle();
      return;
    }
    for (const exchange of this.#exchanges) exchange.checkIdle(now, streamIdleTimeout);
  }

  readonly #onStream = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number): void => {
    const route = this.#ctx.route();
    const exchange = new H2Exchange(stream, headers, flags, route, { info: this.info, clientAddress: this.#clientAddress });
    this.#exchanges.add(exchange);
    stream.once('close', () => {
      this.#exchanges.delete(exchange);
      if (this.#exchanges.size === 0) this.#idleSince = performance.now();
    });
    try {
      exchange.start();
    } catch {
      // A bug on this stream (a route that throws…) must not take the sidecar down.
      exchange.internalError();
    }
    if (route.draining.value) this.closeIfIdle();
  };
}
