import { constants, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { Endpoint } from '../upstream/cluster.js';
import { downstreamHeaders } from './headers.js';
import { h2Pool, type H2EndpointPool, type SessionLimits } from './session-pool.js';

const { NGHTTP2_CANCEL, NGHTTP2_INTERNAL_ERROR, NGHTTP2_NO_ERROR, NGHTTP2_REFUSED_STREAM, NGHTTP2_FLAG_END_STREAM } = constants;

/** Errors of `session.request` that mean the session takes no new stream (nothing was sent). */
const SESSION_GONE = new Set(['ERR_HTTP2_GOAWAY_SESSION', 'ERR_HTTP2_INVALID_SESSION', 'ERR_HTTP2_OUT_OF_STREAMS']);

/**
 * How one attempt ended. This is the seam for retries, circuit breaking and outlier
 * detection: each outcome says whether the endpoint was reached, whether the request could
 * be sent again (nothing of it was processed), and what the upstream answered.
 */
export type AttemptOutcome =
  /** No session with the endpoint (connection refused, TLS or identity failure, not HTTP/2): nothing was sent. */
  | { readonly kind: 'connect-failure'; readonly error: Error }
  /** The endpoint did not process the stream (REFUSED_STREAM, GOAWAY before it): safe to send again if `bodyConsumed` is false. */
  | { readonly kind: 'refused'; readonly bodyConsumed: boolean }
  /** The response ended normally (relayed, or declined by the owner): its status and grpc-status (null when none). */
  | { readonly kind: 'response'; readonly status: number; readonly grpcStatus: number | null; readonly relayed: boolean }
  /** The upstream stream was reset or its session failed; `code` is the RST_STREAM code, `responseStarted` whether the caller got headers. */
  | { readonly kind: 'reset'; readonly code: number; readonly responseStarted: boolean }
  /** The attempt's own timeout (timeouts.backendRequest) fired; the upstream stream was cancelled. */
  | { readonly kind: 'timeout'; readonly responseStarted: boolean };

/** The exchange an attempt works for. */
export interface AttemptOwner {
  /** The caller's stream: the request body is read from it, the response written to it. */
  readonly downstream: ServerHttp2Stream;
  /** Trailers the caller sent after its request body, once they arrived (else null). */
  readonly requestTrailers: IncomingHttpHeaders | null;
  /**
   * Response headers arrived. Returns the headers to send the caller (the response is then
   * relayed: committed), or null to decline it (the attempt cancels the upstream stream and
   * reports a `response` outcome with `relayed: false`, e.g. to retry on this status).
   */
  attemptResponse(attempt: H2Attempt, headers: IncomingHttpHeaders, endStream: boolean): OutgoingHttpHeaders | null;
  /** The attempt ended (not called after `cancel`). */
  attemptDone(attempt: H2Attempt, outcome: AttemptOutcome): void;
  /** Bytes moved: for the stream idle timeout. */
  touch(): void;
}

/** What one attempt sends. */
export interface AttemptRequest {
  readonly endpoint: Endpoint;
  /** Request headers for the upstream (pseudo-headers included); `grpc-timeout` is set per attempt by the owner. */
  readonly headers: OutgoingHttpHeaders;
  /** The request had no body (END_STREAM on its headers). */
  readonly endStream: boolean;
  /** timeouts.backendRequest for this attempt (ms), or null. */
  readonly timeoutMs: number | null;
  readonly limits: SessionLimits;
  /** Drop the endpoint's open session first (the previous attempt on it was refused). */
  readonly freshSession: boolean;
  /** A retry: the whole request body, kept while the first attempt sent it (null: read it from the caller). */
  readonly body?: readonly Buffer[] | null;
}

/**
 * One attempt to one endpoint: gets the endpoint's HTTP/2 session, opens a stream, relays
 * the request body from the caller with backpressure, hands the response headers to the
 * owner, relays the response body and trailers to the caller with backpressure, and
 * reports its outcome once. RST_STREAM travels both ways: an upstream reset after the
 * response started resets the caller's stream with the same code; `cancel` resets the
 * upstream stream with CANCEL.
 */
export class H2Attempt {
  readonly request: AttemptRequest;
  readonly #owner: AttemptOwner;
  #pool: H2EndpointPool | null = null;
  #session: ClientHttp2Session | null = null;
  #up: ClientHttp2Stream | null = null;
  #timer: NodeJS.Timeout | null = null;
  #done = false;
  /** Response headers went to the caller. */
  #committed = false;
  #status = 0;
  #grpcStatus: number | null = null;
  #responseTrailers: IncomingHttpHeaders | null = null;
  #upstreamEnded = false;
  /** Some of the caller's request body (or its end) was read for this attempt. */
  #bodyConsumed = false;

  constructor(owner: AttemptOwner, request: AttemptRequest) {
    this.#owner = owner;
    this.request = request;
  }

  /** Response headers went to the caller (nothing else can answer it now). */
  get committed(): boolean {
    return this.#committed;
  }

  /** Starts the attempt; the outcome comes through `owner.attemptDone`. */
  start(): void {
    const { endpoint, limits, freshSession } = this.request;
    this.#pool = h2Pool(endpoint);
    this.#pool.session(limits, freshSession, (err, session) => {
      if (this.#done) return;
      if (err !== null || session === null) return this.#end({ kind: 'connect-failure', error: err ?? new Error('no session') });
      this.#open(session);
    });
  }

  /** Resets the upstream stream (CANCEL) and stops relaying; no outcome is reported. */
  cancel(): void {
    if (this.#done) return;
    this.#done = true;
    this.#cleanup();
    const up = this.#up;
    if (up !== null && !up.closed) up.close(NGHTTP2_CANCEL);
  }

  #open(session: ClientHttp2Session): void {
    const { headers, endStream, timeoutMs } = this.request;
    let up: ClientHttp2Stream;
    try {
      up = session.request(headers, { endStream, waitForTrailers: !endStream });
    } catch (err) {
      // The session is closing (GOAWAY) or out of stream IDs: nothing was sent. Anything
      // else (a header a route edit made invalid) cannot be sent at all.
      if (SESSION_GONE.has((err as NodeJS.ErrnoException).code ?? '')) return this.#end({ kind: 'refused', bodyConsumed: false });
      return this.#end({ kind: 'reset', code: NGHTTP2_INTERNAL_ERROR, responseStarted: false });
    }
    this.#up = up;
    this.#session = session;
    this.#pool!.streamOpened(session);
    if (timeoutMs !== null) this.#timer = setTimeout(this.#onTimeout, timeoutMs);
    up.on('error', () => {}); // 'close' reports it
    up.on('response', this.#onResponse);
    up.on('headers', this.#onInterim);
    up.on('continue', this.#onContinue);
    up.on('trailers', this.#onTrailers);
    up.on('close', this.#onUpClose);
    const body = this.request.body ?? null;
    if (!endStream && body !== null) {
      up.on('wantTrailers', this.#onWantTrailers);
      for (const chunk of body) up.write(chunk);
      up.end();
    } else if (!endStream) {
      const down = this.#owner.downstream;
      up.on('wantTrailers', this.#onWantTrailers);
      up.on('drain', this.#onUpDrain);
      down.on('data', this.#onRequestData);
      down.on('end', this.#onRequestEnd);
      down.resume();
    }
  }

  readonly #onRequestData = (chunk: Buffer): void => {
    this.#bodyConsumed = true;
    this.#owner.touch();
    const up = this.#up!;
    if (!up.write(chunk)) this.#owner.downstream.pause();
  };

  readonly #onRequestEnd = (): void => {
    this.#bodyConsumed = true;
    const up = this.#up!;
    if (!up.destroyed) up.end();
  };

  readonly #onUpDrain = (): void => {
    this.#owner.downstream.resume();
  };

  readonly #onWantTrailers = (): void => {
    const trailers = this.#owner.requestTrailers;
    // Empty trailers: Node ends the stream with an empty DATA frame instead.
    try {
      this.#up!.sendTrailers(trailers === null ? {} : downstreamHeaders(trailers, true));
    } catch {
      this.#up!.close(NGHTTP2_INTERNAL_ERROR); // 'close' reports the reset
    }
  };

  readonly #onContinue = (): void => {
    const down = this.#owner.downstream;
    if (!this.#committed && !down.headersSent && !down.destroyed) down.additionalHeaders({ ':status': 100 });
  };

  readonly #onInterim = (headers: IncomingHttpHeaders): void => {
    const status = Number(headers[':status']);
    const down = this.#owner.downstream;
    if (status >= 100 && status < 200 && !this.#committed && !down.headersSent && !down.destroyed) down.additionalHeaders(downstreamHeaders(headers, false));
  };

  readonly #onResponse = (headers: IncomingHttpHeaders, flags: number): void => {
    if (this.#done) return;
    this.#owner.touch();
    const endStream = (flags & NGHTTP2_FLAG_END_STREAM) !== 0;
    this.#status = Number(headers[':status']);
    this.#grpcStatus = grpcStatusIn(headers);
    const out = this.#owner.attemptResponse(this, headers, endStream);
    const up = this.#up!;
    if (out === null) {
      up.close(NGHTTP2_CANCEL);
      this.#cleanup();
      return this.#end({ kind: 'response', status: this.#status, grpcStatus: this.#grpcStatus, relayed: false });
    }
    const down = this.#owner.downstream;
    if (down.destroyed || down.closed) return; // the caller went away: the owner cancels
    try {
      down.respond(out, { endStream, waitForTrailers: !endStream });
    } catch {
      // A header the caller's side refuses (an invalid value from a route edit): nothing was sent.
      up.close(NGHTTP2_CANCEL);
      return this.#end({ kind: 'reset', code: NGHTTP2_INTERNAL_ERROR, responseStarted: false });
    }
    this.#committed = true;
    if (!endStream) {
      down.once('wantTrailers', this.#onDownWantTrailers);
      down.on('drain', this.#onDownDrain);
      up.on('data', this.#onResponseData);
    }
    up.on('end', this.#onResponseEnd);
    up.resume();
  };

  readonly #onResponseData = (chunk: Buffer): void => {
    this.#owner.touch();
    const down = this.#owner.downstream;
    if (down.destroyed) return;
    if (!down.write(chunk)) this.#up!.pause();
  };

  readonly #onDownDrain = (): void => {
    this.#up?.resume();
  };

  readonly #onTrailers = (trailers: IncomingHttpHeaders): void => {
    this.#responseTrailers = trailers;
    const grpc = grpcStatusIn(trailers);
    if (grpc !== null) this.#grpcStatus = grpc;
  };

  readonly #onResponseEnd = (): void => {
    this.#upstreamEnded = true;
    const down = this.#owner.downstream;
    if (this.#committed && !down.destroyed && !down.writableEnded) down.end();
  };

  readonly #onDownWantTrailers = (): void => {
    const trailers = this.#responseTrailers;
    const down = this.#owner.downstream;
    if (down.destroyed || down.closed) return;
    try {
      down.sendTrailers(trailers === null ? {} : downstreamHeaders(trailers, true));
    } catch {
      down.close(NGHTTP2_INTERNAL_ERROR);
    }
  };

  readonly #onUpClose = (): void => {
    const up = this.#up!;
    if (this.#session !== null) this.#pool!.streamClosed(this.#session);
    if (this.#done) return;
    const code = up.rstCode ?? NGHTTP2_INTERNAL_ERROR;
    if (this.#upstreamEnded && this.#committed) {
      // The whole response arrived (a reset after its end, from a server that stops reading
      // the request body, changes nothing). The caller's side may still be flushing: its
      // trailers go out on 'wantTrailers', which stays attached.
      return this.#end({ kind: 'response', status: this.#status, grpcStatus: this.#grpcStatus, relayed: true }, true);
    }
    if (!this.#committed && (code === NGHTTP2_REFUSED_STREAM || up.id === undefined)) {
      return this.#end({ kind: 'refused', bodyConsumed: this.#bodyConsumed });
    }
    if (this.#committed) {
      const down = this.#owner.downstream;
      if (!down.destroyed && !down.closed) down.close(code === NGHTTP2_NO_ERROR ? NGHTTP2_INTERNAL_ERROR : code);
    }
    this.#end({ kind: 'reset', code, responseStarted: this.#committed });
  };

  readonly #onTimeout = (): void => {
    this.#timer = null;
    if (this.#done) return;
    const up = this.#up;
    if (up !== null && !up.closed) up.close(NGHTTP2_CANCEL);
    this.#end({ kind: 'timeout', responseStarted: this.#committed });
  };

  #end(outcome: AttemptOutcome, flushing = false): void {
    if (this.#done) return;
    this.#done = true;
    this.#cleanup(flushing);
    this.#owner.attemptDone(this, outcome);
  }

  /**
   * Stops relaying: the caller's stream may be used by another attempt or a local reply.
   * `flushing`: the response is complete and its trailers still to be sent to the caller.
   */
  #cleanup(flushing = false): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    const down = this.#owner.downstream;
    down.removeListener('data', this.#onRequestData);
    down.removeListener('end', this.#onRequestEnd);
    down.removeListener('drain', this.#onDownDrain);
    if (!flushing) down.removeListener('wantTrailers', this.#onDownWantTrailers);
    const up = this.#up;
    if (up !== null) {
      up.removeListener('data', this.#onResponseData);
      up.removeListener('drain', this.#onUpDrain);
    }
  }
}

/** The grpc-status a header block carries, or null. */
function grpcStatusIn(headers: IncomingHttpHeaders): number | null {
  const v = headers['grpc-status'];
  if (typeof v !== 'string') return null;
  const n = Number(v);
  return Number.isInteger(n) ? n : null;
}
