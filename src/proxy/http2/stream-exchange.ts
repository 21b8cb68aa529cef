import { constants, type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { admitted, type ConnectionInfo } from '../connection-info.js';
import { describeDenial } from '../authz/authz.js';
import type { HttpRoute } from '../http1/exchange.js';
import type { CompiledRule } from '../route/types.js';
import type { Cluster, Endpoint } from '../upstream/cluster.js';
import { admitRetry, retryBackoffMs } from '../upstream/retry.js';
import { H2Attempt, type AttemptOutcome, type AttemptOwner } from './attempt.js';
import { formatGrpcTimeout, parseGrpcTimeout } from './grpc-timeout.js';
import { downstreamHeaders, join, requestView, upstreamRequestHeaders } from './headers.js';
import { applyHeaderEditToObject as applyHeaderEdit } from '../route/header-edit.js';
import { grpcErrorFields, isGrpc, sendLocalReply } from './local-reply.js';
import type { SessionLimits } from './session-pool.js';
import { RequestRecord } from '../../obs/request-record.js';
import { Observer } from '../../obs/observer.js';

/** Request bodies up to this size are kept while sent, so that the request can be retried. */
const RETAIN_MAX = 64 * 1024;

/** gRPC status codes that count as endpoint failures for outlier detection. */
const GRPC_UNAVAILABLE = 14;
const GRPC_INTERNAL = 13;

const { NGHTTP2_CANCEL, NGHTTP2_INTERNAL_ERROR, NGHTTP2_NO_ERROR, NGHTTP2_FLAG_END_STREAM } = constants;

/** Pseudo-headers and the like beyond `limits.maxHeaders` that a request or response may carry. */
export const PSEUDO_HEADER_ALLOWANCE = 8;

/** Largest upstream response header block accepted (as HTTP/1's response head limit). */
const MAX_RESPONSE_HEADERS = 64 * 1024;

/** What a stream needs from its HTTP/2 connection. */
export interface H2StreamContext {
  readonly info: ConnectionInfo;
  readonly clientAddress: string | undefined;
}

/**
 * One request stream of a caller's HTTP/2 connection, forwarded over HTTP/2 (no
 * translation between versions): the same checks as HTTP/1 (allow-list, authorization
 * rules, strict dry run, caller counts), the route's rule (404 / gRPC UNIMPLEMENTED when
 * none matches, redirects, 500 without backends, header edits, rewrites), the deadline
 * (timeouts.request and the caller's grpc-timeout, whichever is sooner; 504 /
 * DEADLINE_EXCEEDED), then attempts (`H2Attempt`) to the cluster's endpoints, moving to the
 * next endpoint while no session can be established.
 */
export class H2Exchange implements AttemptOwner {
  readonly downstream: ServerHttp2Stream;
  requestTrailers: IncomingHttpHeaders | null = null;
  /** When bytes last moved either way (the connection's sweep reads it). */
  lastActivity: number;
  readonly #headers: IncomingHttpHeaders;
  readonly #endStream: boolean;
  readonly #ctx: H2StreamContext;
  readonly #route: HttpRoute;
  readonly #start: number;
  readonly #record: RequestRecord;
  readonly #grpc: boolean;
  #rule: CompiledRule<Cluster> | null = null;
  #cluster: Cluster;
  #upstreamHeaders: OutgoingHttpHeaders = {};
  #limits: SessionLimits;
  /** performance.now() by which the whole request must be done (Infinity: no deadline). */
  #deadline = Infinity;
  /** The caller sent grpc-timeout: each attempt forwards the time left. */
  #forwardGrpcTimeout = false;
  #timer: NodeJS.Timeout | null = null;
  #attempt: H2Attempt | null = null;
  #first = 0;
  /** Endpoints tried so far (connect failures move on). */
  #tries = 0;
  #refusedRetried = false;
  #status = 0;
  #finished = false;
  /** The request holds a slot in its cluster's circuit breaker (and a retry slot while retrying). */
  #holdsSlot = false;
  #retrying = false;
  /** Tries of the request so far (a retry adds one; endpoint failover within a try does not). */
  #round = 1;
  /** The endpoint of the attempt in flight (least-request count, outlier reports). */
  #endpoint: Endpoint | null = null;
  /** The request body as the caller sent it, kept for a retry (null: not kept, or too large). */
  #retained: Buffer[] | null = null;
  #retainedBytes = 0;

  constructor(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number, route: HttpRoute, ctx: H2StreamContext) {
    this.downstream = stream;
    this.#headers = headers;
    this.#endStream = (flags & NGHTTP2_FLAG_END_STREAM) !== 0;
    this.#route = route;
    this.#ctx = ctx;
    this.#start = performance.now();
    this.lastActivity = this.#start;
    this.#record = new RequestRecord(this.#start, headers[':method'] ?? '', headers[':path'] ?? '', headers[':authority'] ?? join(headers['host']) ?? null, 'h2');
    this.#grpc = isGrpc(headers);
    this.#cluster = route.cluster;
    const { maxHeaders, maxHeaderBytes } = route.limits;
    this.#limits = { maxHeaderListPairs: maxHeaders * 2 + PSEUDO_HEADER_ALLOWANCE, maxHeaderListSize: Math.max(MAX_RESPONSE_HEADERS, maxHeaderBytes) };
  }

  /** The response went to the caller, or the exchange ended. */
  get finished(): boolean {
    return this.#finished;
  }

  /** Checks the request and starts the first attempt (or answers it locally). */
  start(): void {
    const stream = this.downstream;
    stream.on('error', () => {}); // 'close' follows
    stream.on('close', this.#onDownClose);
    stream.on('trailers', (trailers: IncomingHttpHeaders) => (this.requestTrailers = trailers));
    if (this.#endStream) stream.resume();
    const headers = this.#headers;
    const method = headers[':method'] ?? '';
    const target = headers[':path'] ?? '';
    const info = this.#ctx.info;
    const route = this.#route;
    const tracer = route.obs.tracer;
    if (tracer !== null) {
      const r = this.#record;
      r.trace = tracer.start((name) => join(headers[name]) ?? null, {
        kind: route.inbound ? 'inbound' : 'outbound',
        method,
        path: target,
        authority: r.authority,
        protocol: 'h2',
        peer: info.peer.spiffeId,
        tls: info.tls,
        destination: info.hop.service,
        startTimeMs: performance.timeOrigin + this.#start,
      });
    }
    if (method === 'CONNECT') return this.#fail(501, 'WEFT_E_METHOD', 'CONNECT (and WebSocket over HTTP/2) is not supported by the sidecar');
    if (info.callers !== null) info.callers.requests++;
    const admission = route.admission;
    if (!admitted(admission, info)) return this.#fail(403, 'WEFT_E_FORBIDDEN', `caller ${info.peer.spiffeId ?? '(plaintext)'} is not allowed by inbound.allow`);
    if (admission.authz !== null) {
      const decision = admission.authz.checkRequest(info.peer.spiffeId, method, target, (name) => join(headers[name]));
      if (!decision.allowed) {
        route.policy.denied(info, decision, method, target);
        return this.#fail(403, 'WEFT_E_AUTHZ_DENIED', `caller ${info.peer.spiffeId ?? '(plaintext)'} ${describeDenial(decision)}`);
      }
      if (decision.audited) route.policy.audited(info, decision, method, target);
      else route.policy.allowed();
    }
    if (admission.strictDryRun && !info.tls) {
      if (info.callers !== null) info.callers.wouldReject++;
      route.policy.strictDryRun(info, method, target);
    }
    this.#upstreamHeaders = upstreamRequestHeaders(headers, { inbound: route.inbound, proto: info.tls ? 'https' : 'http', clientAddress: this.#ctx.clientAddress, xfcc: info.xfcc });
    if (this.#record.trace !== null) applyHeaderEdit(Observer.traceHeaderEdit(this.#record.trace), this.#upstreamHeaders);
    if (route.router !== null && !this.#applyRoute()) return;
    const cluster = this.#cluster;
    if (cluster.endpoints.length === 0) {
      // Connected mode: the catalog has no healthy instance of this upstream right now.
      return this.#fail(503, 'WEFT_E_NO_ENDPOINTS', `no healthy instance of ${cluster.name}`);
    }
    if (cluster.fault !== null) {
      const fault = cluster.fault.decide((name) => join(headers[name]));
      if (fault !== null && fault.abortStatus > 0) {
        return this.#fail(fault.abortStatus, 'WEFT_E_FAULT_ABORT', `fault injected: ${cluster.name} answers ${fault.abortStatus} for this share of requests`);
      }
      if (fault !== null && fault.delayMs > 0) {
        setTimeout(() => {
          if (!this.#finished) this.#forward();
        }, fault.delayMs);
        return;
      }
    }
    this.#forward();
  }

  /** Takes a breaker slot and starts the first try. */
  #forward(): void {
    const cluster = this.#cluster;
    if (this.#rule?.retry != null && !this.#endStream) {
      // Keep the body (up to RETAIN_MAX) as the first attempt sends it, so a retry can send it again.
      this.#retained = [];
      const keep = (chunk: Buffer): void => {
        if (this.#retained === null) return;
        this.#retainedBytes += chunk.length;
        if (this.#retainedBytes > RETAIN_MAX) this.#retained = null;
        else this.#retained.push(chunk);
      };
      this.downstream.on('data', keep);
      this.downstream.pause(); // flows when the attempt reads it, to both listeners
    }
    if (!cluster.breaker.tryRequest()) return this.#fail(503, 'WEFT_E_OVERFLOW', `the circuit breaker of ${cluster.name} is open: too many concurrent requests`);
    this.#holdsSlot = true;
    cluster.budget.recordRequest();
    this.#startDeadline();
    this.#first = cluster.first(this.#hashKey());
    this.#next(false);
  }

  /** ConsistentHash: the value of the cluster's hash header, or null. */
  #hashKey(): string | null {
    const name = this.#cluster.hashHeader;
    return name === null ? null : (join(this.#headers[name]) ?? null);
  }

  /** The route's rule: false when it answered the request itself (no match, redirect, no backends). */
  #applyRoute(): boolean {
    const view = requestView(this.#headers);
    const rule = this.#route.router!.match(view);
    if (rule === null) {
      this.#fail(404, 'WEFT_E_NO_ROUTE', 'no route rule matches this request');
      return false;
    }
    this.#rule = rule;
    this.#record.route = rule.name;
    if (rule.redirect !== null) {
      const scheme = this.#headers[':scheme'] ?? 'http';
      const host = this.#headers[':authority'] ?? join(this.#headers['host']) ?? '';
      const status = rule.redirect.status;
      const down = this.downstream;
      try {
        if (!down.destroyed && !down.closed) down.respond({ ':status': status, location: rule.redirect.location(view, scheme, host) }, { endStream: true });
      } catch {
        down.close(NGHTTP2_INTERNAL_ERROR); // a Location Node refuses
      }
      this.#finish(status);
      return false;
    }
    const backend = rule.noBackends ? null : rule.backends.pick();
    if (backend === null) {
      this.#fail(500, 'WEFT_E_NO_BACKEND', `route rule ${rule.name} has no backend to send to`);
      return false;
    }
    this.#cluster = backend;
    const out = this.#upstreamHeaders;
    if (rule.requestHeaders !== null) applyHeaderEdit(rule.requestHeaders, out);
    if (rule.rewrite !== null) {
      if (rule.rewrite.hostname !== null) out[':authority'] = rule.rewrite.hostname;
      const path = rule.rewrite.path(view);
      if (path !== null) out[':path'] = view.query === null ? path : `${path}?${view.query}`;
    }
    return true;
  }

  /** The overall deadline: timeouts.request and the caller's grpc-timeout, whichever is sooner. */
  #startDeadline(): void {
    let budget = this.#rule?.requestTimeoutMs ?? null;
    if (this.#grpc && this.#headers['grpc-timeout'] !== undefined) {
      const asked = parseGrpcTimeout(join(this.#headers['grpc-timeout']));
      if (asked === null) {
        delete this.#upstreamHeaders['grpc-timeout']; // malformed: ignored, not passed on
      } else {
        this.#forwardGrpcTimeout = true;
        budget = budget === null ? asked : Math.min(budget, asked);
      }
    }
    if (budget === null) return;
    this.#deadline = this.#start + budget;
    this.#timer = setTimeout(this.#onDeadline, Math.max(0, this.#deadline - performance.now()));
  }

  /**
   * Starts the next attempt: to the endpoint after the ones tried (connect failures), or
   * the same one on a new session (`fresh`: the last session refused the stream).
   */
  #next(fresh: boolean): void {
    const endpoint = this.#cluster.at(this.#first, this.#tries);
    this.#endpoint = endpoint;
    this.#record.upstream = endpoint.label;
    this.#record.attempts = this.#round;
    endpoint.active++;
    const base = this.#round > 1 ? { ...this.#upstreamHeaders, 'x-weft-attempt': String(this.#round) } : this.#upstreamHeaders;
    const headers = this.#forwardGrpcTimeout ? { ...base, 'grpc-timeout': formatGrpcTimeout(this.#deadline - performance.now()) } : base;
    const body = this.#round > 1 && !this.#endStream ? this.#retained : null;
    const attempt = new H2Attempt(this, { endpoint, headers, endStream: this.#endStream, timeoutMs: this.#rule?.backendTimeoutMs ?? null, limits: this.#limits, freshSession: fresh, body });
    this.#attempt = attempt;
    attempt.start();
  }

  attemptResponse(_attempt: H2Attempt, headers: IncomingHttpHeaders, endStream: boolean): OutgoingHttpHeaders | null {
    const status = Number(headers[':status']);
    // A trailers-only gRPC answer carries its status in the head: retryable like an HTTP status.
    const grpcStatus = endStream && headers['grpc-status'] !== undefined ? Number(headers['grpc-status']) : null;
    if (this.#retryable(status, grpcStatus)) return null;
    this.#status = status;
    this.#record.upstreamHeaders = performance.now();
    this.#record.grpcStatus = grpcStatus;
    const out = downstreamHeaders(headers, false);
    if (this.#rule?.responseHeaders) applyHeaderEdit(this.#rule.responseHeaders, out);
    return out;
  }

  attemptDone(attempt: H2Attempt, outcome: AttemptOutcome): void {
    if (attempt !== this.#attempt || this.#finished) return;
    this.#attempt = null;
    this.#report(outcome);
    switch (outcome.kind) {
      case 'response':
        if (!outcome.relayed) return this.#retry(); // declined by attemptResponse: retryable
        if (outcome.grpcStatus !== null) this.#record.grpcStatus = outcome.grpcStatus;
        return this.#finish(outcome.status);
      case 'connect-failure': {
        if (this.#tries + 1 < this.#cluster.endpoints.length) {
          this.#tries++;
          return this.#next(false);
        }
        const code = (outcome.error as NodeJS.ErrnoException).code === 'WEFT_E_PEER_IDENTITY' ? 'WEFT_E_PEER_IDENTITY' : 'WEFT_E_UPSTREAM_CONNECT';
        return this.#fail(503, code, `upstream unreachable: ${outcome.error.message}`);
      }
      case 'refused':
        // Nothing was processed: once more on a new session, if the body is still whole.
        if (!outcome.bodyConsumed && !this.#refusedRetried) {
          this.#refusedRetried = true;
          return this.#next(true);
        }
        return this.#fail(503, 'WEFT_E_UPSTREAM_RESET', 'the upstream refused the stream (it was closing its connection)');
      case 'reset':
        if (!outcome.responseStarted && this.#retryable(502, null)) return this.#retry();
        if (!outcome.responseStarted) return this.#fail(502, 'WEFT_E_UPSTREAM_RESET', `the upstream reset the stream before responding (HTTP/2 error ${outcome.code})`);
        // Cut off after it started: the caller's stream was reset with the same code.
        this.#route.metrics.error(this.#ctx.info.hop.direction, this.#ctx.info.hop.service, 'WEFT_E_UPSTREAM_RESET');
        return this.#finish(this.#status, 'WEFT_E_UPSTREAM_RESET');
      case 'timeout':
        if (!outcome.responseStarted && this.#retryable(504, null)) return this.#retry();
        return this.#timedOut(outcome.responseStarted, 'the upstream did not answer within timeouts.backendRequest');
    }
  }

  /** The attempt's endpoint is free again; its outcome feeds outlier detection (gRPC UNAVAILABLE counts as a gateway error, INTERNAL as a 5xx). */
  #report(outcome: AttemptOutcome): void {
    const endpoint = this.#endpoint;
    if (endpoint === null) return;
    this.#endpoint = null;
    endpoint.active--;
    const cluster = this.#cluster;
    switch (outcome.kind) {
      case 'connect-failure':
        return cluster.report(endpoint, 'connect');
      case 'reset':
      case 'timeout':
        return cluster.report(endpoint, 'gateway');
      case 'refused':
        return;
      case 'response': {
        const { status, grpcStatus } = outcome;
        if (status === 502 || status === 503 || status === 504 || grpcStatus === GRPC_UNAVAILABLE) return cluster.report(endpoint, 'gateway');
        if (status >= 500 || grpcStatus === GRPC_INTERNAL) return cluster.report(endpoint, '5xx');
        return cluster.report(endpoint, 'success');
      }
    }
  }

  /**
   * True when the rule retries this answer (an HTTP status in `codes`, or a gRPC status in
   * `grpcCodes`), the request can be sent again (it had no body: HTTP/2 bodies are streamed,
   * not kept), tries remain, and the retry budget and the breaker allow one more.
   */
  #retryable(status: number, grpcStatus: number | null): boolean {
    const retry = this.#rule?.retry ?? null;
    if (retry === null || this.#round > retry.attempts) return false;
    // Sent again only whole: no body, or all of it kept (the caller finished sending it).
    if (!this.#endStream && (this.#retained === null || !this.downstream.readableEnded)) return false;
    if (!retry.codes.has(status) && (grpcStatus === null || !retry.grpcCodes.has(grpcStatus))) return false;
    if (!admitRetry(this.#cluster, this.#retrying, this.#route.metrics, this.#ctx.info.hop)) return false;
    this.#retrying = true;
    return true;
  }

  /** A new try after the rule's backoff, on an endpoint the load balancer picks again. */
  #retry(): void {
    const cluster = this.#cluster;
    cluster.budget.recordRetry();
    this.#route.metrics.retry(this.#ctx.info.hop.direction, this.#ctx.info.hop.service);
    this.#round++;
    const wait = retryBackoffMs(this.#rule!.retry!.backoffMs, this.#round - 1);
    if (performance.now() + wait >= this.#deadline) return this.#timedOut(false, 'the request did not complete within its deadline');
    const go = () => {
      if (this.#finished) return;
      this.#tries = 0;
      this.#first = cluster.first(this.#hashKey());
      this.#next(false);
    };
    if (wait < 1) go();
    else setTimeout(go, wait);
  }

  /** `start` threw: answer 500 (or reset what was started) and count it. */
  internalError(): void {
    this.#attempt?.cancel();
    this.#attempt = null;
    if (this.downstream.headersSent) {
      this.#route.metrics.error(this.#ctx.info.hop.direction, this.#ctx.info.hop.service, 'WEFT_E_INTERNAL');
      if (!this.downstream.destroyed && !this.downstream.closed) this.downstream.close(NGHTTP2_INTERNAL_ERROR);
      this.#finish(500, 'WEFT_E_INTERNAL');
    } else {
      this.#fail(500, 'WEFT_E_INTERNAL', 'internal error in the sidecar');
    }
  }

  touch(): void {
    this.lastActivity = performance.now();
  }

  /** Nothing moved for `limit` ms (limits.streamIdleTimeout): reset both streams. */
  checkIdle(now: number, limit: number): void {
    if (this.#finished || now - this.lastActivity <= limit) return;
    this.#attempt?.cancel();
    this.#attempt = null;
    this.#route.metrics.error(this.#ctx.info.hop.direction, this.#ctx.info.hop.service, 'WEFT_E_STREAM_IDLE');
    if (!this.downstream.destroyed && !this.downstream.closed) this.downstream.close(NGHTTP2_CANCEL);
    this.#finish(this.downstream.headersSent ? this.#status : 504, 'WEFT_E_STREAM_IDLE');
  }

  readonly #onDeadline = (): void => {
    this.#timer = null;
    if (this.#finished) return;
    const committed = this.#attempt?.committed ?? false;
    this.#attempt?.cancel(); // RST_STREAM CANCEL upstream
    this.#attempt = null;
    this.#timedOut(committed, this.#forwardGrpcTimeout ? 'the gRPC deadline (grpc-timeout) passed' : 'the request did not complete within timeouts.request');
  };

  /** A timeout: 504 (gRPC: DEADLINE_EXCEEDED), in trailers when the response had started; an HTTP response cut off is reset. */
  #timedOut(responseStarted: boolean, message: string): void {
    const down = this.downstream;
    if (!responseStarted) return this.#fail(504, 'WEFT_E_TIMEOUT', message);
    this.#route.metrics.error(this.#ctx.info.hop.direction, this.#ctx.info.hop.service, 'WEFT_E_TIMEOUT');
    if (this.#grpc && !down.destroyed && !down.closed && !down.writableEnded) {
      down.once('wantTrailers', () => {
        if (down.destroyed || down.closed) return;
        try {
          down.sendTrailers(grpcErrorFields(504, 'WEFT_E_TIMEOUT', message));
        } catch {
          down.close(NGHTTP2_CANCEL);
        }
      });
      down.end();
    } else if (!down.destroyed && !down.closed) {
      down.close(NGHTTP2_CANCEL);
    }
    this.#finish(504, 'WEFT_E_TIMEOUT');
  }

  /** The caller's stream closed: reset by the caller (499) or complete. */
  readonly #onDownClose = (): void => {
    if (this.#finished) return;
    const attempt = this.#attempt;
    this.#attempt = null;
    attempt?.cancel();
    const whole = attempt !== null && attempt.committed && this.downstream.rstCode === NGHTTP2_NO_ERROR;
    this.#finish(whole ? this.#status : 499);
  };

  /** A local reply (nothing of a response was sent), counted like HTTP/1's. */
  #fail(status: number, code: string, message: string): void {
    const hop = this.#ctx.info.hop;
    this.#route.metrics.error(hop.direction, hop.service, code);
    sendLocalReply(this.downstream, { status, code, message, grpc: this.#grpc, head: this.#headers[':method'] === 'HEAD' });
    this.#finish(status, code);
  }

  #finish(status: number, error: string | null = null): void {
    if (this.#finished) return;
    this.#finished = true;
    if (this.#endpoint !== null) {
      this.#endpoint.active--;
      this.#endpoint = null;
    }
    if (this.#holdsSlot) {
      this.#cluster.breaker.requestDone();
      if (this.#retrying) this.#cluster.breaker.retryDone();
    }
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    const record = this.#record;
    record.status = status;
    record.error = error;
    record.end = performance.now();
    this.#route.obs.request(this.#ctx.info.hop, record);
    // A request body nobody reads any more is read and dropped, so the caller is not stalled.
    const down = this.downstream;
    if (!down.readableEnded && !down.destroyed) {
      down.removeAllListeners('data');
      down.resume();
    }
  }
}
