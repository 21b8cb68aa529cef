import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

/**
 * An OTLP/HTTP trace receiver for tests: an HTTP server on 127.0.0.1:0 that accepts
 * `POST /v1/traces` in the JSON encoding (gzip or not) and keeps the spans, flattened.
 * Protobuf bodies get 415 with a message (the sidecar's exporter sends JSON).
 */

/** An attribute value as the tests see it (OTLP AnyValue, flattened; 64-bit ints as numbers). */
export type AttributeValue = string | number | boolean | null | AttributeValue[];

/** One received span, flattened from resourceSpans → scopeSpans → spans. */
export interface ReceivedSpan {
  readonly traceId: string;
  readonly spanId: string;
  /** '' for a root span. */
  readonly parentSpanId: string;
  readonly name: string;
  /** SPAN_KIND_* without the prefix: INTERNAL, SERVER, CLIENT, PRODUCER, CONSUMER, UNSPECIFIED. */
  readonly kind: string;
  readonly attributes: Readonly<Record<string, AttributeValue>>;
  /** The resource's service.name. */
  readonly service: string;
  readonly resource: Readonly<Record<string, AttributeValue>>;
  /** 0 unset, 1 ok, 2 error. */
  readonly statusCode: number;
  readonly startTimeUnixNano: string;
  readonly endTimeUnixNano: string;
}

/** A running receiver. */
export interface OtlpReceiver {
  /** The traces URL to configure: http://127.0.0.1:PORT/v1/traces. */
  readonly url: string;
  /** Every span received so far, in arrival order. */
  readonly spans: readonly ReceivedSpan[];
  /** Export requests received (accepted or not). */
  readonly requests: number;
  /** The headers of the last export request. */
  readonly lastHeaders: Readonly<Record<string, string | string[] | undefined>>;
  /**
   * Resolves with the spans that match `predicate` once at least `count` (default 1) have
   * arrived; rejects after `timeoutMs` with what did arrive.
   */
  waitForSpans(predicate: (span: ReceivedSpan) => boolean, timeoutMs: number, count?: number): Promise<ReceivedSpan[]>;
  close(): Promise<void>;
}

const KINDS = ['UNSPECIFIED', 'INTERNAL', 'SERVER', 'CLIENT', 'PRODUCER', 'CONSUMER'];
/** Request bodies larger than this are refused (413). */
const MAX_BODY = 16 * 1024 * 1024;

interface OtlpKeyValue {
  key: string;
  value?: OtlpAnyValue;
}
interface OtlpAnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: number | string;
  doubleValue?: number;
  arrayValue?: { values?: OtlpAnyValue[] };
  bytesValue?: string;
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind?: number | string;
  attributes?: OtlpKeyValue[];
  status?: { code?: number | string };
  startTimeUnixNano: string | number;
  endTimeUnixNano: string | number;
}
interface OtlpRequest {
  resourceSpans?: { resource?: { attributes?: OtlpKeyValue[] }; scopeSpans?: { spans?: OtlpSpan[] }[] }[];
}

function anyValue(v: OtlpAnyValue | undefined): AttributeValue {
  if (v === undefined) return null;
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.arrayValue !== undefined) return (v.arrayValue.values ?? []).map(anyValue);
  if (v.bytesValue !== undefined) return v.bytesValue;
  return null;
}

function attributes(list: OtlpKeyValue[] | undefined): Record<string, AttributeValue> {
  const out: Record<string, AttributeValue> = {};
  for (const kv of list ?? []) out[kv.key] = anyValue(kv.value);
  return out;
}

/** Ids arrive as hex in OTLP/JSON; base64 (the protobuf JSON mapping) is converted to hex. */
function hexId(id: string | undefined, bytes: number): string {
  if (id === undefined || id === '') return '';
  if (id.length === bytes * 2 && /^[0-9a-f]+$/i.test(id)) return id.toLowerCase();
  return Buffer.from(id, 'base64').toString('hex');
}

function kindName(kind: number | string | undefined): string {
  if (typeof kind === 'string') return kind.replace(/^SPAN_KIND_/, '');
  return KINDS[kind ?? 0] ?? 'UNSPECIFIED';
}

/** Flattens one OTLP/JSON ExportTraceServiceRequest. */
export function flattenOtlp(body: OtlpRequest): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  for (const rs of body.resourceSpans ?? []) {
    const resource = attributes(rs.resource?.attributes);
    const service = typeof resource['service.name'] === 'string' ? resource['service.name'] : '';
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        out.push({
          traceId: hexId(s.traceId, 16),
          spanId: hexId(s.spanId, 8),
          parentSpanId: hexId(s.parentSpanId, 8),
          name: s.name,
          kind: kindName(s.kind),
          attributes: attributes(s.attributes),
          service,
          resource,
          statusCode: Number(s.status?.code ?? 0),
          startTimeUnixNano: String(s.startTimeUnixNano),
          endTimeUnixNano: String(s.endTimeUnixNano),
        });
      }
    }
  }
  return out;
}

/** Starts a receiver; close it in the test's `after`. */
export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const waiters = new Set<() => void>();
  let requests = 0;
  let lastHeaders: IncomingMessage['headers'] = {};

  const reply = (res: ServerResponse, status: number, body: string, type = 'application/json') => {
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };

  const server = createServer((req, res) => {
    requests++;
    lastHeaders = req.headers;
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) tooLarge = true;
      else chunks.push(c);
    });
    req.on('end', () => {
      if (req.method !== 'POST' || req.url?.split('?')[0] !== '/v1/traces') return reply(res, 404, JSON.stringify({ message: 'POST /v1/traces only' }));
      if (tooLarge) return reply(res, 413, JSON.stringify({ message: `body over ${MAX_BODY} bytes` }));
      const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
      if (type === 'application/x-protobuf') {
        return reply(res, 415, JSON.stringify({ message: 'this test receiver reads OTLP/HTTP JSON only: send Content-Type application/json' }));
      }
      if (type !== 'application/json') return reply(res, 415, JSON.stringify({ message: `unsupported content type '${type}': send application/json` }));
      let parsed: OtlpRequest;
      try {
        let raw = Buffer.concat(chunks);
        if (req.headers['content-encoding'] === 'gzip') raw = gunzipSync(raw);
        parsed = JSON.parse(raw.toString('utf8')) as OtlpRequest;
      } catch (e) {
        return reply(res, 400, JSON.stringify({ message: `not OTLP JSON: ${(e as Error).message}` }));
      }
      spans.push(...flattenOtlp(parsed));
      for (const w of waiters) w();
      reply(res, 200, '{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}/v1/traces`,
    spans,
    get requests() {
      return requests;
    },
    get lastHeaders() {
      return lastHeaders;
    },
    waitForSpans(predicate, timeoutMs, count = 1) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = spans.filter(predicate);
          if (found.length < count) return false;
          done();
          resolve(found);
          return true;
        };
        const timer = setTimeout(() => {
          done();
          const seen = spans.map((s) => `${s.service} ${s.kind} ${s.name} ${s.traceId}/${s.spanId}<-${s.parentSpanId}`).join('\n  ');
          reject(new Error(`fewer than ${count} matching span(s) after ${timeoutMs} ms; received ${spans.length}:\n  ${seen}`));
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          waiters.delete(waiter);
        };
        const waiter = () => void check();
        if (!check()) waiters.add(waiter);
      });
    },
    close() {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
