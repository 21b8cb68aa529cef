import { hostname } from 'node:os';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, trace, type Attributes, type Context, type Span, type TextMapGetter, type Tracer as OtelTracer } from '@opentelemetry/api';
import { ExportResultCode, parseTraceParent, type ExportResult } from '@opentelemetry/core';
import { B3Propagator } from '@opentelemetry/propagator-b3';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { AlwaysOnSampler, BasicTracerProvider, BatchSpanProcessor, RandomIdGenerator, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { WeftError } from '../errors.js';
import type { Logger } from './log.js';

/**
 * Distributed tracing for the sidecar (docs/tracing.md): W3C Trace Context (and B3) read
 * from each request, one span per hop (SERVER for inbound, CLIENT for outbound) exported
 * through OpenTelemetry's OTLP/HTTP exporter, and the trace headers to send on.
 *
 * No global tracer provider, propagator or context manager is registered: the parent of a
 * span is passed explicitly, so the app's own OpenTelemetry set-up (when it runs in the same
 * process, as in tests) is not touched.
 */

/** What the tracer needs: the collector and the resource that names this sidecar. */
export interface TracingOptions {
  /** The collector's OTLP/HTTP traces URL (JSON), e.g. http://127.0.0.1:4318/v1/traces. */
  endpoint: string;
  /** Share (0–1) of new traces recorded: requests without a parent context. A parent's sampled flag is always followed. */
  sampling: number;
  /** Extra headers sent to the collector (e.g. an API key). */
  headers: Record<string, string>;
  /** Resource: service.name, service.namespace, weft.spiffe_id (and service.instance.id = host:pid). */
  service: string;
  namespace: string;
  spiffeId: string;
  /** Export batch delay (default 1000 ms; tests may lower it). */
  exportDelayMs?: number;
}

/** Reads an incoming request header (lower-case name): its value, or null. */
export type HeaderGetter = (name: string) => string | null;

/** What is known of a hop when its request head has been read. */
export interface SpanStart {
  kind: 'inbound' | 'outbound';
  method: string;
  /** The request target; the query (after `?`) is never recorded. */
  path: string;
  authority: string | null;
  protocol: 'http/1.1' | 'http/1.0' | 'h2';
  /** caller's SPIFFE ID (inbound) or null */
  peer: string | null;
  tls: boolean;
  /** inbound: this service; outbound: the upstream */
  destination: string;
  /** epoch ms, may be fractional */
  startTimeMs: number;
}

/** How a hop ended. */
export interface SpanEnd {
  /** The response status sent to the caller (0: none). */
  status: number;
  /** The weft-error code of a reply the sidecar made itself (e.g. WEFT_E_NO_BACKEND), or null. */
  error: string | null;
  /** The route rule that matched (`namespace/route/rule`), or `-` (or empty) when none did. */
  route: string;
  /** The endpoint address the last attempt went to, or null. */
  upstream: string | null;
  attempts: number;
  grpcStatus: number | null;
  /** epoch ms, may be fractional */
  endTimeMs: number;
}

/** The span of one hop, and the trace headers to forward. */
export interface HopSpan {
  readonly traceId: string;
  readonly spanId: string;
  /** Trace headers to send on, replacing every incoming one named in TRACE_HEADERS (lower-case names). */
  readonly headers: readonly (readonly [name: string, value: string])[];
  /** Ends the span (once; later calls do nothing). A hop that records nothing ignores it. */
  end(outcome: SpanEnd): void;
}

export { TRACE_HEADERS } from './trace-headers.js';

/** Spans queued for export at most; beyond, new spans are dropped (never the request). */
export const MAX_QUEUED_SPANS = 2048;
/** At most one export failure is logged per this many ms. */
const ERROR_LOG_INTERVAL_MS = 60_000;
/** How long `shutdown` waits for the last export. */
const SHUTDOWN_WAIT_MS = 3_000;

/** The OTel getter over a HeaderGetter (the carrier is the function itself: no closure per request). */
const getter: TextMapGetter<HeaderGetter> = {
  get: (carrier, key) => carrier(key) ?? undefined,
  keys: () => [],
};

const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']);
const PROTOCOL_VERSION = { 'http/1.1': '1.1', 'http/1.0': '1.0', h2: '2' } as const;
const PADDING_64 = '0000000000000000';

/** Which B3 encoding the caller used (the one written back), if any. */
const enum B3Form {
  None,
  Single,
  Multi,
}

/** The exporter behind the batch processor: counts failures and logs at most one a minute. */
class LoggingExporter implements SpanExporter {
  readonly #inner: SpanExporter;
  readonly #log: Logger;
  readonly #endpoint: string;
  #lastLogMs = -Infinity;
  #failedSinceLog = 0;

  constructor(inner: SpanExporter, log: Logger, endpoint: string) {
    this.#inner = inner;
    this.#log = log;
    // Credentials or an API key in the URL stay out of the log: origin and path only.
    let shown = '<invalid URL>';
    try {
      const u = new URL(endpoint);
      shown = `${u.origin}${u.pathname}`;
    } catch {
      // the schema accepted it; keep the placeholder
    }
    this.#endpoint = shown;
  }

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    this.#inner.export(spans, (result) => {
      if (result.code !== ExportResultCode.SUCCESS) this.#failed(spans.length, result.error);
      resultCallback(result);
    });
  }

  #failed(count: number, error: Error | undefined): void {
    this.#failedSinceLog += count;
    const now = Date.now();
    if (now - this.#lastLogMs < ERROR_LOG_INTERVAL_MS) return;
    this.#lastLogMs = now;
    this.#log.warn(
      { code: 'WEFT_E_TRACE_EXPORT', endpoint: this.#endpoint, droppedSpans: this.#failedSinceLog, err: error?.message },
      'spans could not be exported: check observability.tracing.endpoint and that the OTLP collector is up (logged at most once a minute)',
    );
    this.#failedSinceLog = 0;
  }

  shutdown(): Promise<void> {
    return this.#inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.#inner.forceFlush?.() ?? Promise.resolve();
  }
}

/** A hop that records a span. */
class RecordedHop implements HopSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly headers: readonly (readonly [string, string])[];
  readonly #span: Span;
  readonly #spanName: string;
  readonly #server: boolean;
  #ended = false;

  constructor(span: Span, spanName: string, server: boolean, headers: readonly (readonly [string, string])[]) {
    const context = span.spanContext();
    this.traceId = context.traceId;
    this.spanId = context.spanId;
    this.headers = headers;
    this.#span = span;
    this.#spanName = spanName;
    this.#server = server;
  }

  end(outcome: SpanEnd): void {
    if (this.#ended) return;
    this.#ended = true;
    const span = this.#span;
    const { status, error, route } = outcome;
    const attributes: Attributes = { 'weft.attempts': outcome.attempts };
    if (status > 0) attributes['http.response.status_code'] = status;
    if (route !== '' && route !== '-') {
      attributes['weft.route'] = route;
      span.updateName(`${this.#spanName} ${route}`);
    }
    if (outcome.upstream !== null) attributes['weft.upstream'] = outcome.upstream;
    if (outcome.grpcStatus !== null) attributes['rpc.grpc.status_code'] = outcome.grpcStatus;
    if (error !== null) {
      attributes['error.type'] = error;
      span.setStatus({ code: SpanStatusCode.ERROR, message: error });
    } else if (status >= 500 || (!this.#server && status >= 400)) {
      attributes['error.type'] = String(status);
      span.setStatus({ code: SpanStatusCode.ERROR });
    }
    span.setAttributes(attributes);
    span.end(outcome.endTimeMs);
  }
}

/** A hop that records nothing: it only carries the not-sampled decision on. */
class UnsampledHop implements HopSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly headers: readonly (readonly [string, string])[];

  constructor(traceId: string, spanId: string) {
    this.traceId = traceId;
    this.spanId = spanId;
    this.headers = [['traceparent', `00-${traceId}-${spanId}-00`]];
  }

  end(): void {}
}

/**
 * The sidecar's tracer: decides per request whether a hop is traced, records its span and
 * says which trace headers to send on. Export is asynchronous and bounded; a collector that
 * is down or slow never delays or fails a request.
 */
export class Tracer {
  readonly #provider: BasicTracerProvider;
  readonly #tracer: OtelTracer;
  readonly #ids = new RandomIdGenerator();
  readonly #b3 = new B3Propagator();
  readonly #sampling: number;
  #shutdown: Promise<void> | null = null;

  constructor(options: TracingOptions, log: Logger) {
    if (!(options.sampling >= 0 && options.sampling <= 1)) {
      throw new WeftError('WEFT_E_TRACE_CONFIG', `tracing sampling must be a number from 0 to 1 (observability.tracing.sampling), got ${options.sampling}`);
    }
    this.#sampling = options.sampling;
    const exporter = new OTLPTraceExporter({ url: options.endpoint, headers: { ...options.headers }, timeoutMillis: 10_000 });
    this.#provider = new BasicTracerProvider({
      resource: resourceFromAttributes({
        'service.name': options.service,
        'service.namespace': options.namespace,
        'service.instance.id': `${hostname()}:${process.pid}`,
        'weft.spiffe_id': options.spiffeId,
      }),
      // The decision is made in start(): a span is only created when it is recorded.
      sampler: new AlwaysOnSampler(),
      spanLimits: { attributeValueLengthLimit: 2048 },
      spanProcessors: [
        new BatchSpanProcessor(new LoggingExporter(exporter, log, options.endpoint), {
          maxQueueSize: MAX_QUEUED_SPANS,
          maxExportBatchSize: 512,
          scheduledDelayMillis: options.exportDelayMs ?? 1000,
          exportTimeoutMillis: 10_000,
        }),
      ],
    });
    this.#tracer = this.#provider.getTracer('weft');
  }

  /** The span of one hop, or null when the request is not traced: then the caller forwards the headers unchanged. */
  start(get: HeaderGetter, span: SpanStart): HopSpan | null {
    // W3C Trace Context first (it wins over B3 when both come); an invalid traceparent is ignored like an absent one.
    const traceparent = get('traceparent');
    const parent = traceparent === null ? null : parseTraceParent(traceparent);
    let b3Form = B3Form.None;
    let b3Short = false;
    let b3Debug = false;
    let traceId: string;
    let parentSpanId: string;
    let sampled: boolean;
    const b3Single = get('b3');
    if (b3Single !== null) b3Form = B3Form.Single;
    else if (get('x-b3-traceid') !== null || get('x-b3-sampled') !== null || get('x-b3-flags') !== null) b3Form = B3Form.Multi;
    if (parent !== null) {
      traceId = parent.traceId;
      parentSpanId = parent.spanId;
      sampled = (parent.traceFlags & TraceFlags.SAMPLED) !== 0;
    } else if (b3Form !== B3Form.None) {
      const b3 = trace.getSpanContext(this.#b3.extract(ROOT_CONTEXT, get, getter));
      if (b3 === undefined) {
        // A bare deny ("b3: 0", "x-b3-sampled: 0"): the caller decided not to trace.
        if (b3Single === '0' || (b3Single === null && (get('x-b3-sampled') === '0' || get('x-b3-sampled') === 'false'))) return null;
        b3Form = B3Form.None;
        return this.#newTrace(span);
      }
      traceId = b3.traceId;
      parentSpanId = b3.spanId;
      sampled = (b3.traceFlags & TraceFlags.SAMPLED) !== 0;
      if (b3Form === B3Form.Single) {
        const dash = b3Single!.indexOf('-');
        b3Short = dash === 16;
        b3Debug = b3Single!.charCodeAt(dash + 18) === 0x64 /* d */;
      } else {
        b3Short = get('x-b3-traceid')!.length === 16;
        b3Debug = get('x-b3-flags') === '1';
      }
    } else {
      return this.#newTrace(span);
    }
    // A caller's decision not to sample is followed: no span, the headers pass untouched.
    if (!sampled) return null;
    const context = trace.setSpanContext(ROOT_CONTEXT, { traceId, spanId: parentSpanId, traceFlags: TraceFlags.SAMPLED, isRemote: true });
    const { otel, name } = this.#startSpan(span, context);
    const spanId = otel.spanContext().spanId;
    const headers: [string, string][] = [['traceparent', `00-${traceId}-${spanId}-01`]];
    if (parent !== null) {
      const tracestate = get('tracestate');
      if (tracestate !== null && tracestate !== '') headers.push(['tracestate', tracestate]);
    }
    if (b3Form === B3Form.Single) {
      const b3TraceId = b3Short && traceId.startsWith(PADDING_64) ? traceId.slice(16) : traceId;
      headers.push(['b3', `${b3TraceId}-${spanId}-${b3Debug ? 'd' : '1'}`]);
    } else if (b3Form === B3Form.Multi) {
      const b3TraceId = b3Short && traceId.startsWith(PADDING_64) ? traceId.slice(16) : traceId;
      headers.push(['x-b3-traceid', b3TraceId], ['x-b3-spanid', spanId], ['x-b3-parentspanid', parentSpanId]);
      headers.push(b3Debug ? ['x-b3-flags', '1'] : ['x-b3-sampled', '1']);
    }
    return new RecordedHop(otel, name, span.kind === 'inbound', headers);
  }

  /** No usable parent context: a root span with probability `sampling`, else a not-sampled traceparent for the next hops. */
  #newTrace(span: SpanStart): HopSpan {
    if (this.#sampling > 0 && Math.random() < this.#sampling) {
      const { otel, name } = this.#startSpan(span, ROOT_CONTEXT);
      const { traceId, spanId } = otel.spanContext();
      return new RecordedHop(otel, name, span.kind === 'inbound', [['traceparent', `00-${traceId}-${spanId}-01`]]);
    }
    return new UnsampledHop(this.#ids.generateTraceId(), this.#ids.generateSpanId());
  }

  #startSpan(span: SpanStart, context: Context): { otel: Span; name: string } {
    let method = span.method;
    const attributes: Attributes = {
      'http.request.method': method,
      'url.path': pathOnly(span.path),
      'network.protocol.name': 'http',
      'network.protocol.version': PROTOCOL_VERSION[span.protocol],
      'weft.direction': span.kind,
      'weft.destination': span.destination,
      'weft.tls': span.tls,
    };
    if (!KNOWN_METHODS.has(method)) {
      attributes['http.request.method'] = '_OTHER';
      attributes['http.request.method_original'] = method;
      method = 'HTTP';
    }
    if (span.authority !== null) setServerAddress(attributes, span.authority);
    if (span.peer !== null) attributes['weft.peer'] = span.peer;
    if (span.kind === 'outbound') attributes['peer.service'] = span.destination;
    const otel = this.#tracer.startSpan(
      method,
      { kind: span.kind === 'inbound' ? SpanKind.SERVER : SpanKind.CLIENT, attributes, startTime: span.startTimeMs },
      context,
    );
    return { otel, name: method };
  }

  /** Flushes the spans still queued (bounded wait) and stops the exporter. */
  shutdown(): Promise<void> {
    if (this.#shutdown === null) {
      let timer: NodeJS.Timeout | undefined;
      const waited = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, SHUTDOWN_WAIT_MS);
        timer.unref();
      });
      this.#shutdown = Promise.race([this.#provider.shutdown().catch(() => undefined), waited]).finally(() => clearTimeout(timer));
    }
    return this.#shutdown;
  }
}

/** The request target without its query. */
function pathOnly(target: string): string {
  const q = target.indexOf('?');
  return q === -1 ? target : target.slice(0, q);
}

/** server.address and server.port from an authority (`host`, `host:port`, `[v6]:port`). */
function setServerAddress(attributes: Attributes, authority: string): void {
  let host = authority;
  let port = '';
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    if (close !== -1) {
      host = authority.slice(1, close);
      if (authority.charCodeAt(close + 1) === 0x3a) port = authority.slice(close + 2);
    }
  } else {
    const colon = authority.lastIndexOf(':');
    if (colon !== -1 && authority.indexOf(':') === colon) {
      host = authority.slice(0, colon);
      port = authority.slice(colon + 1);
    }
  }
  attributes['server.address'] = host;
  const n = Number(port);
  if (port !== '' && Number.isInteger(n) && n > 0 && n < 65536) attributes['server.port'] = n;
}
