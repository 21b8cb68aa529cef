import type { Socket } from 'node:net';
import type { LimitsConfig } from '../../config/sidecar-schema.js';
import type { SidecarMetrics } from '../../obs/metrics.js';
import type { Admission, ConnectionInfo } from '../connection-info.js';
import type { Cluster } from '../upstream/cluster.js';
import type { Router } from '../route/types.js';
import type { PolicyRecorder } from '../policy-recorder.js';
import { BodyFramer, type Framing } from './body-framer.js';
import { HeadError, parseResponseHead, type RequestHead, type ResponseHead } from './head.js';
import { downstreamResponseHead } from './headers.js';
import type { UpstreamConnection, UpstreamOwner } from './upstream-pool.js';

/** The compiled HTTP stage of a listener: where requests go and how they are labelled. */
export interface HttpRoute {
  readonly inbound: boolean;
  /** Checked on every request, so a reload that tightens it applies to open connections too. */
  readonly admission: Admission;
  /** Counts and logs the admission's authorization decisions and strict dry-run events. */
  readonly policy: PolicyRecorder;
  /** Where requests go when no route is attached (the upstream's own service / the app). */
  readonly cluster: Cluster;
  /** The routes attached to this upstream (HTTPRoute, GRPCRoute), or null: every request goes to `cluster`. */
  readonly router: Router<Cluster> | null;
  readonly limits: LimitsConfig;
  readonly metrics: SidecarMetrics;
  /** Set while the listener drains: responses ask the caller to close the connection. */
  readonly draining: { readonly value: boolean };
}

/** The caller's side of an exchange: the downstream connection that owns it. */
export interface Downstream {
  readonly socket: Socket;
  readonly info: ConnectionInfo;
  /** The upstream is ready for request body bytes. */
  upstreamReady(): void;
  /** The upstream drained: request body bytes may flow again. */
  upstreamDrained(): void;
  /** The response is complete (or failed after it started); `close` ends the connection. */
  exchangeFinished(close: boolean): void;
  /** The upstream switched protocols: join the sockets. */
  tunnel(upstream: Socket, fromUpstream: Buffer | null): void;
  /** Sends a local reply (nothing of the response was sent yet). */
  reply(status: number, code: string, message: string, close: boolean): void;
  /** Notes activity, for the idle timeout. */
  touch(): void;
}

/** Largest upstream response head accepted. */
const MAX_RESPONSE_HEAD = 64 * 1024;
const HEAD_END = Buffer.from('\r\n\r\n');
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

const enum R {
  Connecting,
  Head,
  Body,
  Done,
}

/**
 * One request forwarded to the route's cluster and its response relayed back: picks an
 * endpoint (the next one when a connection cannot be established), writes the request
 * head, passes body bytes through as the downstream feeds them, parses the response head,
 * and passes the response body through with its framing. A request without a body that
 * meets a reused connection the upstream had just closed is sent again on a new one
 * (idempotent methods only).
 */
export class Exchange implements UpstreamOwner {
  readonly #route: HttpRoute;
  readonly #down: Downstream;
  readonly #head: RequestHead;
  readonly #requestHead: string;
  readonly #upgrade: boolean;
  readonly #keepAlive: boolean;
  readonly #start: number;
  readonly #first: number;
  #attempt = 0;
  #staleRetried = false;
  /** The request head waits to go out with the first body bytes, in one write. */
  #headSent = false;
  #upstream: UpstreamConnection | null = null;
  #state = R.Connecting;
  #requestDone: boolean;
  #pending: Buffer | null = null;
  readonly #framer = new BodyFramer();
  #response: ResponseHead | null = null;
  #close = false;
  #responseBytes = 0;
  #extraBytes = false;
  #finished = false;
  #status = 0;

  constructor(route: HttpRoute, down: Downstream, head: RequestHead, requestHead: string, opts: { upgrade: boolean; keepAlive: boolean; hasBody: boolean; start: number }) {
    this.#route = route;
    this.#down = down;
    this.#head = head;
    this.#requestHead = requestHead;
    this.#upgrade = opts.upgrade;
    this.#keepAlive = opts.keepAlive;
    this.#requestDone = !opts.hasBody;
    this.#start = opts.start;
    this.#first = route.cluster.first();
  }

  start(): void {
    if (this.#route.cluster.endpoints.length === 0) {
      // Connected mode: the catalog has no healthy instance of this upstream right now.
      this.#route.metrics.error(this.#down.info.hop.direction, this.#down.info.hop.service, 'WEFT_E_NO_ENDPOINTS');
      this.#localReply(503, 'WEFT_E_NO_ENDPOINTS', 'no healthy instance of this upstream service');
      return;
    }
    this.#connect(false);
  }

  /** Request body bytes for the upstream; false when the upstream asks to wait for drain. */
  sendBody(chunk: Buffer): boolean {
    const socket = this.#upstream!.socket;
    if (!this.#headSent) {
      this.#headSent = true;
      return writeHead(socket, this.#requestHead, chunk, 0, chunk.length);
    }
    return socket.write(chunk);
  }

  /** The downstream delivered the whole request body. */
  requestComplete(): void {
    this.#requestDone = true;
  }

  /** The caller went away: drop the upstream connection, count the request as 499. */
  abort(): void {
    if (this.#finished) return;
    this.#dropUpstream();
    this.#finish(499);
  }

  /** The caller's socket drained: response bytes may flow again. */
  downstreamDrained(): void {
    this.#upstream?.socket.resume();
  }

  #connect(fresh: boolean): void {
    const endpoint = this.#route.cluster.at(this.#first, this.#attempt);
    endpoint.pool.acquire(this, fresh, (err, conn) => {
      if (this.#finished) {
        conn?.release();
        return;
      }
      if (err !== null || conn === null) {
        if (this.#attempt + 1 < this.#route.cluster.endpoints.length) {
          this.#attempt++;
          this.#connect(false);
          return;
        }
        const code = (err as NodeJS.ErrnoException | null)?.code === 'WEFT_E_PEER_IDENTITY' ? 'WEFT_E_PEER_IDENTITY' : 'WEFT_E_UPSTREAM_CONNECT';
        this.#localReply(503, code, `upstream unreachable: ${err?.message ?? 'no connection'}`);
        return;
      }
      this.#upstream = conn;
      this.#state = R.Head;
      this.#headSent = false;
      this.#down.upstreamReady(); // may send body bytes, with the head
      if (!this.#headSent) {
        this.#headSent = true;
        conn.socket.write(this.#requestHead, 'latin1');
      }
    });
  }

  onUpstreamData(chunk: Buffer): void {
    this.#down.touch();
    this.#responseBytes += chunk.length;
    if (this.#state === R.Body) {
      this.#relayBody(chunk, 0);
      return;
    }
    if (this.#state !== R.Head) {
      this.#extraBytes = true; // bytes after the response: the connection cannot be reused
      return;
    }
    const buf = this.#pending === null ? chunk : Buffer.concat([this.#pending, chunk]);
    this.#pending = null;
    try {
      this.#parseHeads(buf);
    } catch (err) {
      if (!(err instanceof HeadError)) throw err;
      this.#dropUpstream();
      this.#localReply(err.status, err.code, err.message);
    }
  }

  #parseHeads(buf: Buffer): void {
    let offset = 0;
    for (;;) {
      const end = buf.indexOf(HEAD_END, offset);
      if (end < 0) {
        if (buf.length - offset > MAX_RESPONSE_HEAD) throw new HeadError(502, 'WEFT_E_UPSTREAM_PROTOCOL', 'the upstream response head is too large');
        this.#pending = offset === buf.length ? null : buf.subarray(offset);
        return;
      }
      const head = parseResponseHead(buf.toString('latin1', offset, end), { maxHeaders: this.#route.limits.maxHeaders * 2 });
      const next = end + 4;
      if (head.status === 101) {
        if (!this.#upgrade) throw new HeadError(502, 'WEFT_E_UPSTREAM_PROTOCOL', 'the upstream switched protocols without being asked to');
        this.#switchProtocols(head, next < buf.length ? buf.subarray(next) : null);
        return;
      }
      if (head.status < 200) {
        // Interim responses (100 Continue, 103 Early Hints) are relayed to HTTP/1.1 callers.
        if (this.#head.minor === 1) this.#down.socket.write(buf.subarray(offset, next));
        offset = next;
        continue;
      }
      this.#startResponse(head, buf, next);
      return;
    }
  }

  #startResponse(head: ResponseHead, buf: Buffer, bodyStart: number): void {
    this.#response = head;
    this.#status = head.status;
    const noBody = this.#head.method === 'HEAD' || head.status === 204 || head.status === 304;
    const framing: Framing = noBody ? 'none' : head.chunked ? 'chunked' : head.contentLength >= 0 ? 'length' : 'close';
    this.#framer.reset(framing, head.contentLength, this.#route.limits.maxHeaderBytes, false);
    this.#close = !this.#keepAlive || this.#route.draining.value || framing === 'close' || !this.#requestDone || this.#upgrade;
    this.#state = R.Body;
    this.#relayBody(buf, bodyStart, downstreamResponseHead(head, { close: this.#close, keepAlive10: this.#head.minor === 0 }));
  }

  /** Relays response body bytes from `buf[start..]`, after `head` when the response starts. */
  #relayBody(buf: Buffer, start: number, head: string | null = null): void {
    let n: number;
    try {
      n = this.#framer.feed(buf, start);
    } catch {
      // A malformed body after the head went out: the caller sees the connection close.
      this.#route.metrics.error(this.#down.info.hop.direction, this.#down.info.hop.service, 'WEFT_E_UPSTREAM_PROTOCOL');
      this.#dropUpstream();
      this.#down.socket.destroy();
      this.#finish(this.#status);
      return;
    }
    const down = this.#down.socket;
    const flowing = head !== null ? writeHead(down, head, buf, start, n) : n === 0 || down.write(start === 0 && n === buf.length ? buf : buf.subarray(start, start + n));
    if (!flowing) this.#upstream?.socket.pause();
    if (start + n < buf.length) this.#extraBytes = true;
    if (this.#framer.done) this.#responseComplete();
  }

  #responseComplete(): void {
    this.#state = R.Done;
    const conn = this.#upstream;
    this.#upstream = null;
    if (conn !== null) {
      const response = this.#response!;
      const reusable =
        this.#requestDone &&
        !this.#extraBytes &&
        this.#framer.framing !== 'close' &&
        (response.minor === 1 ? !hasToken(response, 'close') : hasToken(response, 'keep-alive'));
      conn.owner = null;
      if (reusable) {
        if (conn.socket.isPaused()) conn.socket.resume();
        conn.release();
      } else {
        conn.socket.destroy();
      }
    }
    this.#finish(this.#status);
    this.#down.exchangeFinished(this.#close);
  }

  #switchProtocols(head: ResponseHead, rest: Buffer | null): void {
    const conn = this.#upstream!;
    this.#upstream = null;
    this.#state = R.Done;
    this.#status = 101;
    this.#down.socket.write(downstreamResponseHead(head, { close: false, keepAlive10: false }), 'latin1');
    this.#finish(101);
    this.#down.tunnel(conn.detach(), rest);
  }

  onUpstreamEnd(): void {
    if (this.#state === R.Body && this.#framer.framing === 'close') {
      this.#responseComplete(); // #close is set: the caller's connection ends with the body
      return;
    }
    this.#upstreamFailed(null);
  }

  onUpstreamClose(err: Error | null): void {
    this.#upstreamFailed(err);
  }

  onUpstreamDrain(): void {
    this.#down.upstreamDrained();
  }

  #upstreamFailed(err: Error | null): void {
    if (this.#finished || this.#state === R.Done) return;
    const conn = this.#upstream;
    this.#dropUpstream();
    if (this.#state === R.Head && this.#responseBytes === 0) {
      // A reused connection closed before answering: the upstream had timed it out just
      // as the request went out. Safe to send again when repeating it changes nothing.
      if (conn !== null && conn.uses > 1 && !this.#staleRetried && this.#requestDone && !this.#upgrade && IDEMPOTENT.has(this.#head.method) && this.#head.contentLength <= 0 && !this.#head.chunked) {
        this.#staleRetried = true;
        this.#state = R.Connecting;
        this.#connect(true);
        return;
      }
      this.#localReply(502, 'WEFT_E_UPSTREAM_RESET', `upstream closed the connection before responding${err ? `: ${err.message}` : ''}`);
      return;
    }
    if (this.#state === R.Head) {
      this.#localReply(502, 'WEFT_E_UPSTREAM_RESET', 'upstream closed the connection in the middle of its response head');
      return;
    }
    // The response was cut off after it started: the caller sees its connection close.
    this.#route.metrics.error(this.#down.info.hop.direction, this.#down.info.hop.service, 'WEFT_E_UPSTREAM_RESET');
    this.#down.socket.destroy();
    this.#finish(this.#status);
  }

  #dropUpstream(): void {
    const conn = this.#upstream;
    this.#upstream = null;
    if (conn !== null) {
      conn.owner = null;
      conn.socket.destroy();
    }
  }

  #localReply(status: number, code: string, message: string): void {
    this.#state = R.Done;
    this.#status = status;
    this.#finished = true;
    this.#down.reply(status, code, message, !this.#requestDone || !this.#keepAlive);
  }

  #finish(code: number): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#route.metrics.request(this.#down.info.hop, code, (performance.now() - this.#start) / 1000);
  }
}

/** Bodies up to this size travel in the same buffer as their head: one write, one TLS record. */
const COALESCE_MAX = 16 * 1024;

/**
 * Writes a serialised head and the body bytes `body[start..start+n]` to `socket`: one
 * buffer when the body is small (one syscall, one TLS record), else two writes.
 */
function writeHead(socket: Socket, head: string, body: Buffer | null, start: number, n: number): boolean {
  if (body === null || n === 0) return socket.write(head, 'latin1');
  if (n > COALESCE_MAX) {
    socket.write(head, 'latin1');
    return socket.write(body.subarray(start, start + n));
  }
  const out = Buffer.allocUnsafe(head.length + n); // latin1: one byte per character
  out.write(head, 0, head.length, 'latin1');
  body.copy(out, head.length, start, start + n);
  return socket.write(out);
}

function hasToken(head: ResponseHead, token: string): boolean {
  return head.connection !== null && head.connection.includes(token);
}
