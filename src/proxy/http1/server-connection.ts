import type { Socket } from 'node:net';
import { admitted, type ConnectionInfo } from '../connection-info.js';
import { describeDenial } from '../authz/authz.js';
import { joinSockets } from '../tcp/join.js';
import { BodyFramer, type Framing } from './body-framer.js';
import { Exchange, type Downstream, type HttpRoute } from './exchange.js';
import { HeadError, parseRequestHead, type RequestHead } from './head.js';
import { upstreamRequestHead } from './headers.js';
import { localReplyBytes } from './local-reply.js';
import { planRequest } from './plan.js';
import { mirrorRequest } from './mirror.js';
import { RequestRecord } from '../../obs/request-record.js';
import { Observer } from '../../obs/observer.js';
import { applyHeaderEdit } from '../route/header-edit.js';

const HEAD_END = Buffer.from('\r\n\r\n');
const BARE_LF_END = Buffer.from('\n\n');
/** Pipelined bytes buffered while a response is in flight before the caller is paused. */
const MAX_BUFFERED = 64 * 1024;
/**
 * After answering a request whose body is still arriving, how long the rest is read and
 * dropped before the connection is closed: closing at once would reset the connection
 * while the caller is still sending, and the reset can destroy the answer before the
 * caller reads it (nginx's lingering close).
 */
const LINGER_MS = 5_000;

const enum C {
  /** Waiting for (the rest of) a request head. */
  Head,
  /** Passing the request body to the exchange. */
  Body,
  /** The request is complete; waiting for the response to finish. */
  Wait,
  /** Upgraded (WebSocket…) or closed: no more HTTP on this connection. */
  Gone,
}

/** What a downstream connection needs from its listener. */
export interface HttpListenerContext {
  /** The HTTP stage of the listener's configuration current now (read per request). */
  route(): HttpRoute;
}

/**
 * One caller's HTTP/1.1 connection to a listener: reads request heads with the strict
 * parser, answers what it must refuse itself (403 off the allow-list or denied by the
 * authorization rules, 400 malformed or
 * ambiguous framing, 431, 408, 501), hands each request to an Exchange and feeds it the
 * body bytes, then reads the next request once the response is complete (keep-alive,
 * pipelining). Timeouts are checked by the listener's sweep (`checkTimeouts`), not by a
 * timer per request.
 */
export class ServerConnection implements Downstream {
  readonly socket: Socket;
  readonly info: ConnectionInfo;
  readonly #ctx: HttpListenerContext;
  readonly #clientAddress: string | undefined;
  #state = C.Head;
  /** Bytes received and not yet used (a partial head, body bytes waiting, pipelined requests). */
  #pending: Buffer | null = null;
  /** Owned storage behind #pending once chunks had to be joined (grows by doubling). */
  #store: Buffer | null = null;
  /** Where the search for the end of the head resumes (bytes before it were searched). */
  #searched = 0;
  /** #readHeads is on the stack: a request answered at once does not read the next one itself. */
  #reading = false;
  #exchange: Exchange | null = null;
  /** The request in progress (from its head to its answer), or null. */
  #record: RequestRecord | null = null;
  #route: HttpRoute;
  readonly #framer = new BodyFramer();
  #upstreamReady = false;
  #bodyPaused = false;
  #peerEnded = false;
  /** The request in progress is a HEAD (a local reply to it has no body). */
  #headMethod = false;
  /** When the current head started arriving (0: no byte of it yet). */
  #headSince = 0;
  #lastActivity: number;
  /** When #close asked for the connection to end once its answers are flushed (0: it did not). */
  #closingSince = 0;
  /** The head being authorized, read by #header (set only during the check). */
  #checking: RequestHead | null = null;
  /** Header lookup for the authorization rules: one function per connection, not per request. */
  readonly #header = (lowerName: string): string | undefined => {
    const head = this.#checking;
    if (head === null) return undefined;
    const i = head.lower.indexOf(lowerName);
    return i < 0 ? undefined : head.values[i];
  };

  /** Header lookup for the tracer (of the head in #checking). */
  readonly #traceHeader = (lowerName: string): string | null => this.#header(lowerName) ?? null;

  constructor(socket: Socket, info: ConnectionInfo, ctx: HttpListenerContext) {
    this.socket = socket;
    this.info = info;
    this.#ctx = ctx;
    this.#route = ctx.route();
    this.#clientAddress = socket.remoteAddress;
    this.#lastActivity = performance.now();
    this.#headSince = this.#lastActivity; // a new connection owes its first head within the header timeout
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('drain', this.#onDrain);
    socket.on('close', this.#onClose);
  }

  /** Idle between requests: nothing received, nothing in flight. */
  get idle(): boolean {
    return this.#state === C.Head && this.#pending === null && this.#exchange === null;
  }

  /** Closes the connection now if it is idle (drain); otherwise after the current response. */
  closeIfIdle(): void {
    if (this.idle) this.#close();
  }

  /** Answered before the request body ended: send FIN, drop what still arrives, then close. */
  #linger(): void {
    this.#state = C.Gone;
    this.#clearPending();
    this.socket.end();
    if (this.socket.isPaused()) this.socket.resume();
    const timer = setTimeout(() => this.socket.destroy(), LINGER_MS);
    this.socket.once('close', () => clearTimeout(timer));
  }

  /** Ends the connection once what was written is flushed (no lingering half-open sockets). */
  #close(): void {
    this.#state = C.Gone;
    this.#closingSince = performance.now();
    this.socket.destroySoon();
  }

  /** Called by the listener's sweep about once a second. */
  checkTimeouts(now: number): void {
    const { headerTimeout, idleTimeout, streamIdleTimeout } = this.#route.limits;
    if (this.#state === C.Gone) {
      // destroySoon waits for the answers to be flushed: not forever for a caller that does not read them.
      if (this.#closingSince > 0 && now - this.#closingSince > idleTimeout) this.socket.destroy();
      return;
    }
    if (this.#state === C.Head && this.#exchange === null) {
      if (this.#headSince > 0 && now - this.#headSince > headerTimeout) {
        this.reply(408, 'WEFT_E_HTTP_408', `the request head did not arrive within ${headerTimeout} ms`, true);
      } else if (this.#headSince === 0 && now - this.#lastActivity > idleTimeout) {
        this.#close();
      }
    } else if (now - this.#lastActivity > streamIdleTimeout) {
      // Nothing moved either way in the middle of an exchange for the stream idle timeout
      // (long enough for long polls and quiet event streams; Envoy's default is the same).
      const exchange = this.#exchange;
      this.#exchange = null;
      this.#route.metrics.error(this.info.hop.direction, this.info.hop.service, 'WEFT_E_STREAM_IDLE');
      exchange?.abort(504, 'WEFT_E_STREAM_IDLE');
      this.socket.destroy();
    }
  }

  touch(): void {
    this.#lastActivity = performance.now();
  }

  readonly #onData = (chunk: Buffer): void => {
    this.#lastActivity = performance.now();
    switch (this.#state) {
      case C.Head:
        if (this.#headSince === 0) this.#headSince = this.#lastActivity;
        this.#append(chunk);
        this.#readHeads();
        break;
      case C.Body:
        if (this.#pending === null && this.#upstreamReady && !this.#bodyPaused) {
          this.#feedBody(chunk);
          break;
        }
        // The upstream is not connected yet (or is full): hold a bounded amount.
        this.#append(chunk);
        if (this.#pending!.length > MAX_BUFFERED) this.socket.pause();
        break;
      case C.Wait:
        // Pipelined requests wait for the response in flight; a caller that sends too much is paused.
        this.#append(chunk);
        if (this.#pending!.length > MAX_BUFFERED) this.socket.pause();
        break;
      case C.Gone:
        break;
    }
  };

  /**
   * Adds received bytes to #pending. Chunks are joined in owned storage that doubles when
   * full, so a head or body trickling in byte by byte costs linear, not quadratic, copying.
   */
  #append(chunk: Buffer): void {
    const pending = this.#pending;
    if (pending === null) {
      this.#pending = chunk;
      return;
    }
    const length = pending.length + chunk.length;
    let store = this.#store;
    if (store === null || store.byteOffset !== pending.byteOffset || store.buffer !== pending.buffer || length > store.length) {
      store = Buffer.allocUnsafe(Math.max(length * 2, 4096));
      pending.copy(store, 0);
      this.#store = store;
    }
    chunk.copy(store, pending.length);
    this.#pending = store.subarray(0, length);
  }

  /** Drops #pending and its storage. */
  #clearPending(): void {
    this.#pending = null;
    this.#store = null;
    this.#searched = 0;
  }

  /**
   * Reads the requests in #pending, one after the other while each is answered at once (a
   * local reply). A loop, not a recursion through reply → exchangeFinished: a caller that
   * pipelines thousands of refused requests in one write must not exhaust the stack.
   */
  #readHeads(): void {
    if (this.#reading) return;
    this.#reading = true;
    try {
      while (this.#state === C.Head && this.#pending !== null) {
        if (this.socket.writableNeedDrain) {
          // The caller is not reading its answers: read its next request once they are
          // flushed (#onDrain), so that the answers it does not read are not buffered
          // without bound. Waiting for the caller counts as idle time, not head time.
          this.socket.pause();
          this.#headSince = 0;
          return;
        }
        if (!this.#readHead()) return;
      }
    } finally {
      this.#reading = false;
    }
  }

  /** Reads one request head from #pending and starts its exchange; false when no complete head was there. */
  #readHead(): boolean {
    let buf = this.#pending!;
    // RFC 9112 §2.2: empty lines before a request line are ignored.
    let skip = 0;
    while (skip + 1 < buf.length && buf[skip] === 0x0d && buf[skip + 1] === 0x0a) skip += 2;
    if (skip > 0) {
      buf = buf.subarray(skip);
      this.#store = null;
      this.#searched = 0;
    }
    const limits = this.#route.limits;
    const end = buf.indexOf(HEAD_END, this.#searched);
    if (end < 0) {
      this.#pending = buf.length === 0 ? null : buf;
      this.#searched = Math.max(0, buf.length - 3);
      if (buf.length > limits.maxHeaderBytes) {
        this.reply(431, 'WEFT_E_HTTP_431', `request head larger than ${limits.maxHeaderBytes} bytes`, true);
      } else if (buf.indexOf(BARE_LF_END) >= 0) {
        this.reply(400, 'WEFT_E_BAD_REQUEST', 'bare LF in the message head (lines end with CRLF)', true);
      } else if (this.#peerEnded) {
        this.#close(); // the caller ended in the middle of a head: the rest will not come
      }
      return false;
    }
    if (end > limits.maxHeaderBytes) {
      this.reply(431, 'WEFT_E_HTTP_431', `request head larger than ${limits.maxHeaderBytes} bytes`, true);
      return false;
    }
    const rest = buf.length > end + 4 ? buf.subarray(end + 4) : null;
    this.#clearPending();
    let head: RequestHead;
    try {
      head = parseRequestHead(buf.toString('latin1', 0, end), limits);
    } catch (err) {
      if (!(err instanceof HeadError)) throw err;
      this.reply(err.status, err.code, err.message, true);
      return false;
    }
    this.#startExchange(head, rest);
    return true;
  }

  #startExchange(head: RequestHead, rest: Buffer | null): void {
    const start = performance.now();
    const host = head.lower.indexOf('host');
    const record = new RequestRecord(start, head.method, head.target, host >= 0 ? head.values[host]! : null, head.minor === 1 ? 'http/1.1' : 'http/1.0');
    this.#record = record;
    const route = this.#ctx.route();
    this.#route = route;
    const tracer = route.obs.tracer;
    if (tracer !== null) {
      this.#checking = head;
      record.trace = tracer.start(this.#traceHeader, {
        kind: route.inbound ? 'inbound' : 'outbound',
        method: head.method,
        path: head.target,
        authority: record.authority,
        protocol: record.protocol,
        peer: this.info.peer.spiffeId,
        tls: this.info.tls,
        destination: this.info.hop.service,
        startTimeMs: performance.timeOrigin + start,
      });
      this.#checking = null;
    }
    this.#headSince = 0;
    this.#headMethod = head.method === 'HEAD';
    const framing: Framing = head.chunked ? 'chunked' : head.contentLength > 0 ? 'length' : 'none';
    this.#pending = rest;
    this.#state = framing === 'none' ? C.Wait : C.Body;
    this.#framer.reset(framing, head.contentLength, route.limits.maxHeaderBytes, true);
    // A refused request with a body ends the connection: its body is not read.
    const refuse = (status: number, code: string, message: string) => this.reply(status, code, message, framing !== 'none');
    if (head.minor === 1 && host < 0) return refuse(400, 'WEFT_E_BAD_REQUEST', 'HTTP/1.1 request without a Host header');
    if (host >= 0 && head.lower.indexOf('host', host + 1) >= 0) return refuse(400, 'WEFT_E_BAD_REQUEST', 'several Host headers (RFC 9112 §3.2)');
    if (head.method === 'CONNECT') return refuse(501, 'WEFT_E_METHOD', 'CONNECT is not supported by the sidecar');
    const info = this.info;
    if (info.callers !== null) info.callers.requests++;
    const admission = route.admission;
    if (!admitted(admission, info)) {
      return refuse(403, 'WEFT_E_FORBIDDEN', `caller ${info.peer.spiffeId ?? '(plaintext)'} is not allowed by inbound.allow`);
    }
    if (admission.authz !== null) {
      this.#checking = head;
      const decision = admission.authz.checkRequest(info.peer.spiffeId, head.method, head.target, this.#header);
      this.#checking = null;
      if (!decision.allowed) {
        route.policy.denied(info, decision, head.method, head.target);
        return refuse(403, 'WEFT_E_AUTHZ_DENIED', `caller ${info.peer.spiffeId ?? '(plaintext)'} ${describeDenial(decision)}`);
      }
      if (decision.audited) route.policy.audited(info, decision, head.method, head.target);
      else route.policy.allowed();
    }
    if (admission.strictDryRun && !info.tls) {
      if (info.callers !== null) info.callers.wouldReject++;
      route.policy.strictDryRun(info, head.method, head.target);
    }
    if (route.rateLimiter !== null && !route.rateLimiter.take(info.peer.spiffeId ?? info.remoteAddress ?? 'unknown')) {
      return refuse(429, 'WEFT_E_RATE_LIMITED', `${route.inbound ? 'this service' : 'the upstream'} is rate limited; retry later`);
    }
    // The scheme the caller used: outbound listeners take plaintext from the app (their tls label means the mesh hop).
    const plan = planRequest(route, head, route.inbound && info.tls);
    if (plan.forward.rule !== null) record.route = plan.forward.rule.name;
    if (plan.reply !== null) {
      const r = plan.reply;
      return this.reply(r.status, r.code, r.message, framing !== 'none', r.location);
    }
    if (record.trace !== null) applyHeaderEdit(Observer.traceHeaderEdit(record.trace), plan.head);
    const upgrade = head.upgrade !== null && head.connection !== null && head.connection.includes('upgrade');
    const keepAlive = head.minor === 1 ? !(head.connection?.includes('close') ?? false) : (head.connection?.includes('keep-alive') ?? false);
    const requestHead = upstreamRequestHead(plan.head, upgrade, {
      inbound: route.inbound,
      proto: this.info.tls ? 'https' : 'http',
      clientAddress: this.#clientAddress,
      xfcc: this.info.xfcc,
    });
    this.#upstreamReady = false;
    this.#bodyPaused = false;
    const exchange = new Exchange(route, this, head, requestHead, plan.forward, record, { upgrade, keepAlive, hasBody: framing !== 'none' });
    this.#exchange = exchange;
    if (plan.mirror !== null && framing === 'none') mirrorRequest(plan.mirror, requestHead);
    if (plan.delayMs > 0) {
      setTimeout(() => {
        if (this.#exchange === exchange) exchange.start();
      }, plan.delayMs);
      return;
    }
    exchange.start();
  }

  upstreamReady(): void {
    this.#upstreamReady = true;
    if (this.#state !== C.Body) return;
    this.#pump();
    // Paused while the connection was being made (too much body arrived meanwhile).
    if (!this.#bodyPaused && this.#state === C.Body && this.socket.isPaused()) this.socket.resume();
  }

  upstreamDrained(): void {
    if (!this.#bodyPaused) return;
    this.#bodyPaused = false;
    this.socket.resume();
    this.#pump();
  }

  /** Feeds buffered body bytes to the exchange. */
  #pump(): void {
    const buf = this.#pending;
    if (buf !== null) {
      this.#clearPending();
      this.#feedBody(buf);
    }
    // A pipelined request read after the caller ended, whose body is not all here.
    if (this.#peerEnded && this.#state === C.Body && this.#pending === null) this.#bodyCutOff();
  }

  #feedBody(buf: Buffer): void {
    let n: number;
    try {
      n = this.#framer.feed(buf, 0);
    } catch (err) {
      if (!(err instanceof HeadError)) throw err;
      this.#failRequestBody(err);
      return;
    }
    const rest = n < buf.length ? buf.subarray(n) : null;
    const ok = n === 0 || this.#exchange!.sendBody(n === buf.length ? buf : buf.subarray(0, n));
    if (this.#framer.done) {
      this.#state = C.Wait;
      this.#exchange!.requestComplete();
    }
    if (rest !== null) {
      const later = this.#pending;
      this.#clearPending();
      this.#append(rest);
      if (later !== null) this.#append(later);
    }
    if (!ok && this.#state === C.Body) {
      this.#bodyPaused = true;
      this.socket.pause();
    }
  }

  /** Malformed chunked framing in the request body: the request cannot be completed. */
  #failRequestBody(err: HeadError): void {
    const exchange = this.#exchange;
    this.#exchange = null;
    exchange?.abort(err.status, err.code);
    this.#route.metrics.error(this.info.hop.direction, this.info.hop.service, err.code);
    this.#state = C.Gone;
    this.socket.destroy();
  }

  exchangeFinished(close: boolean): void {
    this.#exchange = null;
    this.#headMethod = false; // a local reply from now on answers the next request
    if (this.#state === C.Body) return this.#linger();
    // A caller that ended its side still gets answers to the requests it sent before.
    if (close || this.#route.draining.value || (this.#peerEnded && this.#pending === null)) return this.#close();
    this.#state = C.Head;
    if (this.socket.isPaused() && !this.#bodyPaused) this.socket.resume();
    if (this.#pending !== null) {
      this.#headSince = performance.now();
      this.#readHeads();
    }
  }

  requestDone(status: number, error: string | null): void {
    const record = this.#record;
    if (record === null) return;
    this.#record = null;
    record.status = status;
    record.error = error;
    record.end = performance.now();
    this.#route.obs.request(this.info.hop, record);
  }

  reply(status: number, code: string, message: string, close: boolean, location?: string): void {
    const hop = this.info.hop;
    if (code !== '') this.#route.metrics.error(hop.direction, hop.service, code);
    // A head that could not be parsed (or never came) is still one answered request.
    if (this.#record === null) this.#record = new RequestRecord(this.#headSince > 0 ? this.#headSince : performance.now(), '-', '-', null, 'http/1.1');
    this.requestDone(status, code === '' ? null : code);
    if (this.#state === C.Gone || this.socket.destroyed) return;
    this.#exchange = null;
    const unread = this.#state === C.Body;
    this.socket.write(localReplyBytes(status, code, message, { close: close || unread, head: this.#headMethod, location }));
    this.#headMethod = false;
    if (unread) return this.#linger();
    if (close) return this.#close();
    this.exchangeFinished(false);
  }

  tunnel(upstream: Socket, fromUpstream: Buffer | null): void {
    this.#state = C.Gone;
    this.#exchange = null;
    const socket = this.socket;
    socket.removeListener('data', this.#onData);
    socket.removeListener('end', this.#onEnd);
    socket.removeListener('drain', this.#onDrain);
    if (fromUpstream !== null) socket.write(fromUpstream);
    if (this.#pending !== null) upstream.write(this.#pending);
    this.#clearPending();
    joinSockets(socket, upstream);
    if (this.#peerEnded) upstream.end();
    socket.resume();
    upstream.resume();
  }

  readonly #onEnd = (): void => {
    this.#peerEnded = true;
    if (this.#exchange === null) {
      // The caller is done and nothing is in flight (a partial head is dropped).
      this.#close();
    } else if (this.#state === C.Body && this.#pending === null) {
      this.#bodyCutOff();
    }
    // In Wait, the response still comes back; the connection ends after it (or after the
    // requests pipelined behind it). Body bytes held for the upstream are fed first (#pump),
    // and the request cut off then if they do not complete it.
  };

  /** The caller ended in the middle of a request body: the upstream would wait for the rest forever. */
  #bodyCutOff(): void {
    const exchange = this.#exchange;
    this.#exchange = null;
    exchange?.abort();
    this.#state = C.Gone;
    this.socket.destroy();
  }

  readonly #onDrain = (): void => {
    if (this.#exchange !== null) {
      this.#exchange.downstreamDrained();
    } else if (this.#state === C.Head && this.socket.isPaused()) {
      // #readHeads waited for the caller to read its answers.
      this.socket.resume();
      if (this.#pending !== null) {
        this.#headSince = performance.now();
        this.#readHeads();
      }
    }
  };

  readonly #onClose = (): void => {
    this.#state = C.Gone;
    const exchange = this.#exchange;
    this.#exchange = null;
    exchange?.abort();
  };
}
