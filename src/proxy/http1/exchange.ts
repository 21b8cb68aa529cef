import type { Socket } from 'node:net';
import type { LimitsConfig } from '../../config/sidecar-schema.js';
import type { SidecarMetrics } from '../../obs/metrics.js';
import type { Observer } from '../../obs/observer.js';
import type { RequestRecord } from '../../obs/request-record.js';
import type { Admission, ConnectionInfo } from '../connection-info.js';
import type { Cluster, Endpoint } from '../upstream/cluster.js';
import { admitRetry, retryBackoffMs } from '../upstream/retry.js';
import { abortConnection } from '../upstream/connector.js';
import type { CompiledRule, HeaderEdit, Router } from '../route/types.js';
import { applyHeaderEdit } from '../route/header-edit.js';
import type { RateLimiter } from '../resilience/rate-limiter.js';
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
  /** Inbound: the destination's local rate limit (trafficPolicy.rateLimit), or null. */
  readonly rateLimiter: RateLimiter | null;
  readonly limits: LimitsConfig;
  readonly metrics: SidecarMetrics;
  /** Where finished requests are reported (metrics, access log, tap, spans). */
  readonly obs: Observer;
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
  /** The request is done (answered, cut off or abandoned): report it, with the weft-error code of a failure after the response started. */
  requestDone(status: number, error: string | null): void;
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

/** Request bodies up to this size are kept while they are sent, so that the request can be retried. */
const RETAIN_MAX = 64 * 1024;

/** Where one request goes: the cluster chosen by the route (or the listener's), and the matched rule. */
export interface Forward {
  readonly cluster: Cluster;
  /** The matched route rule (timeouts, retries, response header edits), or null without routes. */
  readonly rule: CompiledRule<Cluster> | null;
  /** ConsistentHash: the value of the cluster's hash header, or null. */
  readonly hashKey: string | null;
}

/**
 * One request forwarded to a cluster and its response relayed back: picks an endpoint with
 * the cluster's load balancer (the next one when a connection cannot be established),
 * writes the request head, passes body bytes through as the downstream feeds them, parses
 * the response head, and passes the response body through with its framing. With a route
 * rule: per-try and overall timeouts (to the response head), retries on the rule's status
 * codes within the cluster's retry budget and breaker (never once response bytes reached
 * the caller; only requests without a body or with a small one, kept while it was sent),
 * and response header edits. A request without a body that meets a reused connection the
 * upstream had just closed is sent again on a new one (idempotent methods only). Each
 * attempt's outcome feeds the cluster's outlier detection.
 */
export class Exchange implements UpstreamOwner {
  readonly #route: HttpRoute;
  readonly #down: Downstream;
  readonly #head: RequestHead;
  readonly #requestHead: string;
  readonly #upgrade: boolean;
  readonly #keepAlive: boolean;
  readonly #record: RequestRecord;
  readonly #start: number;
  readonly #cluster: Cluster;
  readonly #rule: CompiledRule<Cluster> | null;
  readonly #hashKey: string | null;
  #first = 0;
  /** Connection attempts of this try (endpoint failover). */
  #attempt = 0;
  /** Tries so far (1 = the first; retries add one each). */
  #tries = 0;
  #retrying = false;
  /** The request holds a slot in the cluster's breaker (from `start` on; not while a fault delay postpones it). */
  #holdsSlot = false;
  #endpoint: Endpoint | null = null;
  #staleRetried = false;
  /** The request head waits to go out with the first body bytes, in one write. */
  #headSent = false;
  #upstream: UpstreamConnection | null = null;
  #state = R.Connecting;
  #requestDone: boolean;
  /** The request body as sent so far, kept for a retry (null: not kept, the request cannot be retried once body bytes went out). */
  #retained: Buffer[] | null = null;
  #retainedBytes = 0;
  #pending: Buffer | null = null;
  readonly #framer = new BodyFramer();
  #response: ResponseHead | null = null;
  #close = false;
  #responseBytes = 0;
  #extraBytes = false;
  #finished = false;
  #status = 0;
  /** Per-try or overall timeout, or a retry's backoff; null when none is armed. */
  #timer: NodeJS.Timeout | null = null;
  #deadline = 0;

  constructor(route: HttpRoute, down: Downstream, head: RequestHead, requestHead: string, forward: Forward, record: RequestRecord, opts: { upgrade: boolean; keepAlive: boolean; hasBody: boolean }) {
    this.#route = route;
    this.#down = down;
    this.#head = head;
    this.#requestHead = requestHead;
    this.#upgrade = opts.upgrade;
    this.#keepAlive = opts.keepAlive;
    this.#requestDone = !opts.hasBody;
    this.#record = record;
    this.#start = record.start;
    this.#cluster = forward.cluster;
    this.#rule = forward.rule;
    this.#hashKey = forward.hashKey;
    const retry = forward.rule?.retry ?? null;
    if (retry !== null && opts.hasBody && !head.chunked && head.contentLength <= RETAIN_MAX && !opts.upgrade) this.#retained = [];
  }

  start(): void {
    const cluster = this.#cluster;
    // Connected mode: the catalog may have no healthy instance of this upstream right now.
    if (cluster.endpoints.length === 0) return this.#refuse(503, 'WEFT_E_NO_ENDPOINTS', `no healthy instance of ${cluster.name}`);
    if (!cluster.breaker.tryRequest()) return this.#refuse(503, 'WEFT_E_OVERFLOW', `the circuit breaker of ${cluster.name} is open: too many concurrent requests`);
    this.#holdsSlot = true;
    cluster.budget.recordRequest();
    const rule = this.#rule;
    if (rule !== null && rule.requestTimeoutMs !== null) this.#deadline = this.#start + rule.requestTimeoutMs;
    this.#try();
  }

  /** A local reply before the request took a slot in the cluster's breaker. */
  #refuse(status: number, code: string, message: string): void {
    this.#finished = true;
    this.#record.attempts = this.#tries;
    this.#state = R.Done;
    this.#status = status;
    this.#down.reply(status, code, message, !this.#requestDone || !this.#keepAlive);
  }

  /** Starts a try: picks an endpoint and connects (failing over to the next endpoint on connect errors). */
  #try(): void {
    this.#tries++;
    this.#attempt = 0;
    this.#state = R.Connecting;
    this.#first = this.#cluster.first(this.#hashKey);
    this.#armTimer();
    this.#connect(false);
  }

  /** Arms the timer for the earlier of the overall deadline and this try's own timeout. */
  #armTimer(): void {
    const rule = this.#rule;
    if (rule === null) return;
    let at = this.#deadline;
    if (rule.backendTimeoutMs !== null) {
      const tryEnd = performance.now() + rule.backendTimeoutMs;
      if (at === 0 || tryEnd < at) at = tryEnd;
    }
    if (at === 0) return;
    this.#clearTimer();
    this.#timer = setTimeout(this.#onTimeout, Math.max(0, at - performance.now()));
  }

  #clearTimer(): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
  }

  readonly #onTimeout = (): void => {
    this.#timer = null;
    if (this.#finished || this.#state === R.Body || this.#state === R.Done) return;
    const overall = this.#deadline !== 0 && performance.now() >= this.#deadline - 1;
    const endpoint = this.#endpoint;
    this.#dropUpstream();
    if (endpoint !== null) this.#cluster.report(endpoint, 'gateway');
    if (!overall && this.#retryable(504)) {
      this.#route.metrics.error(this.#down.info.hop.direction, this.#down.info.hop.service, 'WEFT_E_TIMEOUT');
      return this.#retry();
    }
    this.#localReply(504, 'WEFT_E_TIMEOUT', `${this.#cluster.name} did not answer within ${overall ? this.#rule!.requestTimeoutMs : this.#rule!.backendTimeoutMs} ms`);
  };

  /** Request body bytes for the upstream; false when the upstream asks to wait for drain. */
  sendBody(chunk: Buffer): boolean {
    if (this.#retained !== null) {
      this.#retained.push(Buffer.from(chunk)); // the caller's buffer may be reused
      this.#retainedBytes += chunk.length;
    }
    const socket = this.#upstream!.socket;
    if (!this.#headSent) {
      this.#headSent = true;
      return writeHead(socket, this.#headFor(), chunk, 0, chunk.length);
    }
    return socket.write(chunk);
  }

  /** The head of this try: the request head, with `x-weft-attempt` on retries. */
  #headFor(): string {
    if (this.#tries <= 1) return this.#requestHead;
    return `${this.#requestHead.slice(0, -2)}x-weft-attempt: ${this.#tries}\r\n\r\n`;
  }

  /** The downstream delivered the whole request body. */
  requestComplete(): void {
    this.#requestDone = true;
  }

  /**
   * The request cannot go on: the caller went away (499, the default), or the sidecar ended
   * it (`status` and the weft-error code: a stream idle timeout, a malformed request body).
   * Drops the upstream connection.
   */
  abort(status = 499, error: string | null = null): void {
    if (this.#finished) return;
    this.#dropUpstream();
    // Ended by the sidecar after the response started: the caller saw that status, cut off.
    this.#finish(error !== null && this.#status !== 0 ? this.#status : status, error);
  }

  /** The caller's socket drained: response bytes may flow again. */
  downstreamDrained(): void {
    this.#upstream?.socket.resume();
  }

  #connect(fresh: boolean): void {
    const endpoint = this.#cluster.at(this.#first, this.#attempt);
    this.#endpoint = endpoint;
    this.#record.upstream = endpoint.label;
    endpoint.active++;
    endpoint.pool.acquire(this, fresh, (err, conn) => {
      if (this.#finished || this.#endpoint !== endpoint || this.#state !== R.Connecting) {
        conn?.release();
        return;
      }
      if (err !== null || conn === null) {
        endpoint.active--;
        this.#endpoint = null;
        const code = (err as NodeJS.ErrnoException | null)?.code;
        if (code === 'WEFT_E_OVERFLOW') return this.#localReply(503, 'WEFT_E_OVERFLOW', err!.message);
        this.#cluster.report(endpoint, 'connect');
        if (this.#attempt + 1 < this.#cluster.endpoints.length) {
          this.#attempt++;
          this.#connect(false);
          return;
        }
        const reply = code === 'WEFT_E_PEER_IDENTITY' ? 'WEFT_E_PEER_IDENTITY' : 'WEFT_E_UPSTREAM_CONNECT';
        this.#localReply(503, reply, `upstream unreachable: ${err?.message ?? 'no connection'}`);
        return;
      }
      this.#upstream = conn;
      this.#state = R.Head;
      this.#headSent = false;
      if (this.#retained !== null && this.#retainedBytes > 0) {
        // A retry: the kept body goes out again behind the head.
        this.#headSent = true;
        const body = Buffer.concat(this.#retained);
        writeHead(conn.socket, this.#headFor(), body, 0, body.length);
        return;
      }
      this.#down.upstreamReady(); // may send body bytes, with the head
      if (!this.#headSent) {
        this.#headSent = true;
        conn.socket.write(this.#headFor(), 'latin1');
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
    const status = head.status;
    this.#record.upstreamHeaders = performance.now();
    const endpoint = this.#endpoint;
    if (endpoint !== null) this.#cluster.report(endpoint, status < 500 ? 'success' : status === 502 || status === 503 || status === 504 ? 'gateway' : '5xx');
    if (status >= 500 && this.#retryable(status)) {
      this.#dropUpstream();
      this.#retry();
      return;
    }
    this.#clearTimer();
    const edit = this.#rule?.responseHeaders ?? null;
    if (edit !== null) editResponse(head, edit);
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
      this.#finish(this.#status, 'WEFT_E_UPSTREAM_PROTOCOL');
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
    this.#endAttempt();
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
    this.#clearTimer();
    this.#endAttempt();
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
    const endpoint = this.#endpoint;
    this.#dropUpstream();
    if (this.#state === R.Head && endpoint !== null) this.#cluster.report(endpoint, 'gateway');
    if (this.#state === R.Head && this.#responseBytes === 0) {
      // A reused connection closed before answering: the upstream had timed it out just
      // as the request went out. Safe to send again when repeating it changes nothing.
      if (conn !== null && conn.uses > 1 && !this.#staleRetried && this.#requestDone && !this.#upgrade && IDEMPOTENT.has(this.#head.method) && this.#head.contentLength <= 0 && !this.#head.chunked) {
        this.#staleRetried = true;
        this.#state = R.Connecting;
        this.#connect(true);
        return;
      }
      if (this.#retryable(502)) return this.#retry();
      this.#localReply(502, 'WEFT_E_UPSTREAM_RESET', `upstream closed the connection before responding${err ? `: ${err.message}` : ''}`);
      return;
    }
    if (this.#state === R.Head) {
      if (this.#retryable(502)) return this.#retry();
      this.#localReply(502, 'WEFT_E_UPSTREAM_RESET', 'upstream closed the connection in the middle of its response head');
      return;
    }
    // The response was cut off after it started: the caller sees its connection close.
    this.#route.metrics.error(this.#down.info.hop.direction, this.#down.info.hop.service, 'WEFT_E_UPSTREAM_RESET');
    this.#down.socket.destroy();
    this.#finish(this.#status, 'WEFT_E_UPSTREAM_RESET');
  }

  #dropUpstream(): void {
    const endpoint = this.#endpoint;
    this.#endAttempt();
    const conn = this.#upstream;
    this.#upstream = null;
    if (conn !== null) {
      conn.owner = null;
      abortConnection(conn.socket); // RST: the upstream sees the request abandoned
    } else if (endpoint !== null && this.#state === R.Connecting) {
      endpoint.pool.cancel(this); // it may be waiting for a connection
    }
  }

  /** The current attempt no longer occupies its endpoint (least request). */
  #endAttempt(): void {
    const endpoint = this.#endpoint;
    if (endpoint !== null) {
      endpoint.active--;
      this.#endpoint = null;
    }
  }

  /**
   * True when the rule retries `status`, this request can be sent again (whole, and no
   * response byte reached the caller), tries remain, and the retry budget and the
   * breaker's concurrent retries allow one more.
   */
  #retryable(status: number): boolean {
    const retry = this.#rule?.retry ?? null;
    if (retry === null || !retry.codes.has(status) || this.#tries > retry.attempts) return false;
    if (this.#upgrade || !this.#requestDone) return false;
    if ((this.#head.contentLength > 0 || this.#head.chunked) && (this.#retained === null || this.#retainedBytes === 0)) return false;
    if (!admitRetry(this.#cluster, this.#retrying, this.#route.metrics, this.#down.info.hop)) return false;
    this.#retrying = true;
    return true;
  }

  /** Sends the request again after the rule's backoff (jittered, exponential). */
  #retry(): void {
    this.#cluster.budget.recordRetry();
    this.#route.metrics.retry(this.#down.info.hop.direction, this.#down.info.hop.service);
    this.#state = R.Connecting;
    this.#responseBytes = 0;
    this.#pending = null;
    this.#extraBytes = false;
    const wait = retryBackoffMs(this.#rule!.retry!.backoffMs, this.#tries);
    this.#clearTimer();
    if (this.#deadline !== 0 && performance.now() + wait >= this.#deadline) {
      this.#localReply(504, 'WEFT_E_TIMEOUT', `${this.#cluster.name} did not answer within ${this.#rule!.requestTimeoutMs} ms`);
      return;
    }
    if (wait < 1) return this.#try();
    this.#timer = setTimeout(() => {
      this.#timer = null;
      if (!this.#finished) this.#try();
    }, wait);
  }

  #localReply(status: number, code: string, message: string): void {
    this.#release();
    this.#record.attempts = this.#tries;
    this.#state = R.Done;
    this.#status = status;
    this.#finished = true;
    this.#down.reply(status, code, message, !this.#requestDone || !this.#keepAlive);
  }

  /** Gives back what this request holds in its cluster: the breaker's slots, the timer. */
  #release(): void {
    if (this.#finished) return;
    this.#clearTimer();
    if (this.#holdsSlot) this.#cluster.breaker.requestDone();
    if (this.#retrying) this.#cluster.breaker.retryDone();
    this.#holdsSlot = false;
    this.#retrying = false;
  }

  #finish(code: number, error: string | null = null): void {
    if (this.#finished) return;
    this.#release();
    this.#finished = true;
    this.#record.attempts = this.#tries;
    this.#down.requestDone(code, error);
  }
}

/** Applies a ResponseHeaderModifier to a parsed response head (its arrays are this exchange's own). */
function editResponse(head: ResponseHead, edit: HeaderEdit): void {
  applyHeaderEdit(edit, head);
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
