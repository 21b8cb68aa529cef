/**
 * Every header name the tracer reads or writes: traceparent, tracestate, b3, x-b3-traceid,
 * x-b3-spanid, x-b3-parentspanid, x-b3-sampled, x-b3-flags. Apart from obs/tracing.ts so
 * that the request path can name them without loading the OpenTelemetry SDK, which is
 * loaded only when tracing is configured.
 */
export const TRACE_HEADERS: readonly string[] = Object.freeze(['traceparent', 'tracestate', 'b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags']);
