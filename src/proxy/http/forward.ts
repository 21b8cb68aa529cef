import type { IncomingMessage, ServerResponse, IncomingHttpHeaders } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Dispatcher } from 'undici';
import { STATUS_CODES } from 'node:http';
import type { Cluster } from '../upstream/cluster.js';
import type { SidecarMetrics } from '../../obs/metrics.js';
import { admitted, type Admission, type ConnectionInfo } from '../connection-info.js';
import { downstreamResponseHeaders, framingProblem, upstreamRequestHeaders } from './headers.js';
import { localReply, localReplyRaw } from './local-reply.js';
import { joinSockets } from '../tcp/join.js';

/** The compiled HTTP stage of a listener: where requests go and how they are labelled. */
export interface HttpRoute {
  readonly inbound: boolean;
  /** Checked on every request, so a reload that tightens it applies to open connections too. */
  readonly admission: Admission;
  readonly cluster: Cluster;
  readonly metrics: SidecarMetrics;
  /** Set while the listener drains: responses ask the caller to close the connection. */
  readonly draining: { value: boolean };
}

/** Connect-phase failures: nothing reached the endpoint, so another may be tried. */
const CONNECT_ERRORS = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'WEFT_E_CONNECT_TIMEOUT',
  'WEFT_E_PEER_IDENTITY',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_SOCKET',
]);

/**
 * Proxies one HTTP request to the route's cluster: refuses callers off the allow-list
 * (403) and ambiguous framing (400), then streams the request and response through an
 * undici pool, trying the next endpoint when a connection cannot be established.
 */
export function forwardRequest(route: HttpRoute, req: IncomingMessage, res: ServerResponse, conn: ConnectionInfo): void {
  const start = performance.now();
  if (!admitted(route.admission, conn)) {
    return reject(route, res, conn, start, 403, 'WEFT_E_FORBIDDEN', `caller ${conn.peer.spiffeId ?? '(plaintext)'} is not allowed by inbound.allow`);
  }
  const framing = framingProblem(req.rawHeaders);
  if (framing !== null) {
    return reject(route, res, conn, start, 400, 'WEFT_E_BAD_FRAMING', `request refused: ${framing}`, true);
  }
  const headers = upstreamRequestHeaders(req.rawHeaders, {
    inbound: route.inbound,
    proto: conn.tls ? 'https' : 'http',
    clientAddress: req.socket.remoteAddress,
    xfcc: conn.xfcc,
  });
  new ForwardHandler(route, req, res, conn, headers, start).dispatch();
}

function reject(route: HttpRoute, res: ServerResponse, conn: ConnectionInfo, start: number, status: number, code: string, message: string, close = false): void {
  route.metrics.error(conn.hop.direction, conn.hop.service, code);
  localReply(res, status, code, message, close);
  route.metrics.request(conn.hop, status, (performance.now() - start) / 1000);
}

function hasBody(req: IncomingMessage): boolean {
  return req.headers['content-length'] !== undefined ? req.headers['content-length'] !== '0' : req.headers['transfer-encoding'] !== undefined;
}

/**
 * Per-request state of a forwarded exchange: one object with a fixed shape.
 *
 * It uses undici's raw handler interface (onConnect/onHeaders/onData/onComplete/onError)
 * rather than the controller one (onRequestStart/onResponseStart/…): undici 7 adapts a
 * controller-style handler by parsing the response headers into an object per request,
 * which the proxy would then rewrite and serialise again. The raw interface hands over the
 * header bytes, which go straight into a flat list for writeHead. Measured on the weft
 * pair (docs/performance.md): see the commit that introduced it. When undici drops the raw
 * interface (a later major), move to the controller one.
 */
class ForwardHandler implements Dispatcher.DispatchHandler {
  readonly #route: HttpRoute;
  readonly #req: IncomingMessage;
  readonly #res: ServerResponse;
  readonly #conn: ConnectionInfo;
  readonly #headers: string[];
  readonly #start: number;
  readonly #first: number;
  #attempt = 0;
  #connected = false;
  #abort: ((err?: Error) => void) | null = null;
  #resume: (() => void) | null = null;
  #done = false;

  constructor(route: HttpRoute, req: IncomingMessage, res: ServerResponse, conn: ConnectionInfo, headers: string[], start: number) {
    this.#route = route;
    this.#req = req;
    this.#res = res;
    this.#conn = conn;
    this.#headers = headers;
    this.#start = start;
    this.#first = route.cluster.first();
    res.once('close', this.#onDownstreamClose);
  }

  dispatch(): void {
    const endpoint = this.#route.cluster.at(this.#first, this.#attempt);
    try {
      endpoint.pool.dispatch(
        {
          path: this.#req.url ?? '/',
          method: this.#req.method ?? 'GET',
          headers: this.#headers,
          body: hasBody(this.#req) ? this.#req : null,
        },
        this,
      );
    } catch (err) {
      // undici refuses some requests outright (headers it will not send): never throw to the socket.
      this.#route.metrics.error(this.#conn.hop.direction, this.#conn.hop.service, 'WEFT_E_BAD_REQUEST');
      localReply(this.#res, 400, 'WEFT_E_BAD_REQUEST', `request cannot be forwarded: ${(err as Error).message}`, true);
      this.#finish(400);
    }
  }

  /** The request is about to be written on a connected socket. */
  onConnect(abort: (err?: Error) => void): void {
    this.#abort = abort;
    this.#connected = true;
    if (this.#res.destroyed) abort(new Error('caller went away'));
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return true; // 1xx interim responses are not relayed
    this.#resume = resume;
    const headers = downstreamResponseHeaders(rawHeaders);
    if (this.#route.draining.value) headers.push('connection', 'close');
    this.#res.writeHead(statusCode, statusText || (STATUS_CODES[statusCode] ?? ''), headers);
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.#res.write(chunk)) return true;
    // Backpressure: undici stops reading until the caller's socket drains.
    this.#res.once('drain', this.#onDrain);
    return false;
  }

  onComplete(trailers: (Buffer | string)[] | null): void {
    if (trailers !== null && trailers.length > 0) this.#res.addTrailers(pairsOf(trailers));
    this.#res.end();
    this.#finish(this.#res.statusCode);
  }

  onError(err: Error): void {
    if (this.#done) return;
    const code = (err as NodeJS.ErrnoException).code ?? '';
    const connectFailure = !this.#connected && CONNECT_ERRORS.has(code);
    if (connectFailure && this.#attempt + 1 < this.#route.cluster.endpoints.length && !this.#res.destroyed) {
      this.#attempt++;
      this.dispatch();
      return;
    }
    if (this.#res.destroyed) return this.#finish(499);
    const weftCode = code === 'WEFT_E_PEER_IDENTITY' ? code : connectFailure ? 'WEFT_E_UPSTREAM_CONNECT' : 'WEFT_E_UPSTREAM_RESET';
    const status = connectFailure ? 503 : 502;
    this.#route.metrics.error(this.#conn.hop.direction, this.#conn.hop.service, weftCode);
    localReply(this.#res, status, weftCode, `upstream ${connectFailure ? 'unreachable' : 'failed'}: ${err.message}`);
    this.#finish(this.#res.headersSent ? this.#res.statusCode : status);
  }

  #finish(code: number): void {
    if (this.#done) return;
    this.#done = true;
    this.#route.metrics.request(this.#conn.hop, code, (performance.now() - this.#start) / 1000);
  }

  readonly #onDrain = (): void => {
    this.#resume?.();
  };

  readonly #onDownstreamClose = (): void => {
    if (!this.#res.writableFinished) {
      this.#abort?.(new Error('caller went away'));
      this.#finish(499);
    }
  };
}

/** Trailers as [name, value] pairs (undici hands over raw bytes; its types say strings). */
function pairsOf(raw: readonly (Buffer | string)[]): [string, string][] {
  const text = (v: Buffer | string) => (typeof v === 'string' ? v : v.toString('latin1'));
  const out: [string, string][] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([text(raw[i]!), text(raw[i + 1]!)]);
  return out;
}

/**
 * Proxies an HTTP/1.1 upgrade (WebSocket and others): the upstream's 101 response is
 * relayed and the two sockets are then joined; any other response is relayed as is.
 */
export function forwardUpgrade(route: HttpRoute, req: IncomingMessage, socket: Duplex, head: Buffer, conn: ConnectionInfo): void {
  const start = performance.now();
  if (!admitted(route.admission, conn)) {
    route.metrics.error(conn.hop.direction, conn.hop.service, 'WEFT_E_FORBIDDEN');
    route.metrics.request(conn.hop, 403, 0);
    return localReplyRaw(socket, 403, 'WEFT_E_FORBIDDEN', 'caller is not allowed by inbound.allow');
  }
  const headers = upstreamRequestHeaders(req.rawHeaders, {
    inbound: route.inbound,
    proto: conn.tls ? 'https' : 'http',
    clientAddress: req.socket.remoteAddress,
    xfcc: conn.xfcc,
  });
  const endpoint = route.cluster.at(route.cluster.first(), 0);
  const record = (code: number) => route.metrics.request(conn.hop, code, (performance.now() - start) / 1000);
  socket.on('error', () => socket.destroy());
  const handler: Dispatcher.DispatchHandler = {
    onRequestStart() {},
    onRequestUpgrade(_controller, statusCode, resHeaders, upstream) {
      if (socket.destroyed) {
        upstream.destroy(); // the caller left while the upgrade was on its way
        return;
      }
      socket.write(rawHead(statusCode, resHeaders));
      if (head.length > 0) upstream.write(head);
      joinSockets(socket, upstream);
      record(statusCode);
    },
    onResponseStart(_controller, statusCode, resHeaders) {
      // Not upgraded: relay the response with the body de-chunked, delimited by the close.
      for (const name of ['transfer-encoding', 'keep-alive', 'upgrade', 'content-length']) delete resHeaders[name];
      resHeaders['connection'] = 'close';
      socket.write(rawHead(statusCode, resHeaders));
      record(statusCode);
    },
    onResponseData(_controller, chunk) {
      socket.write(chunk);
    },
    onResponseEnd() {
      socket.end();
    },
    onResponseError(_controller, err) {
      if (socket.destroyed) return;
      route.metrics.error(conn.hop.direction, conn.hop.service, 'WEFT_E_UPSTREAM_CONNECT');
      record(502);
      localReplyRaw(socket, 502, 'WEFT_E_UPSTREAM_CONNECT', `upgrade failed: ${err.message}`);
    },
  };
  try {
    endpoint.pool.dispatch({ path: req.url ?? '/', method: req.method ?? 'GET', headers, body: null, upgrade: req.headers.upgrade ?? 'websocket' }, handler);
  } catch (err) {
    // undici refuses some requests outright: never throw to the socket.
    route.metrics.error(conn.hop.direction, conn.hop.service, 'WEFT_E_BAD_REQUEST');
    record(400);
    localReplyRaw(socket, 400, 'WEFT_E_BAD_REQUEST', `upgrade cannot be forwarded: ${(err as Error).message}`);
  }
}

function rawHead(status: number, headers: IncomingHttpHeaders): string {
  let text = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) text += `${name}: ${v}\r\n`;
  }
  return `${text}\r\n`;
}
