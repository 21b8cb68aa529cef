import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { MAX_QUEUED_SPANS, TRACE_HEADERS, Tracer, type HeaderGetter, type HopSpan, type SpanEnd, type SpanStart, type TracingOptions } from '../../src/obs/tracing.js';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../helpers/otlp.js';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';
const TRACESTATE = 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7 ,  x@y=z';
const SPIFFE_WEB = 'spiffe://weft.test/ns/default/sa/web';

/** A pino logger whose lines are kept in `lines`. */
function memoryLogger(): { log: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l !== '') lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: pino({ level: 'info' }, stream), lines };
}

function headers(h: Record<string, string>): HeaderGetter {
  return (name) => h[name] ?? null;
}

function start(over: Partial<SpanStart> = {}): SpanStart {
  return {
    kind: 'inbound',
    method: 'GET',
    path: '/items/42?token=secret',
    authority: 'api.default:8080',
    protocol: 'http/1.1',
    peer: SPIFFE_WEB,
    tls: true,
    destination: 'api',
    startTimeMs: Date.now() - 5.25,
    ...over,
  };
}

function end(over: Partial<SpanEnd> = {}): SpanEnd {
  return { status: 200, error: null, route: '-', upstream: '127.0.0.1:9000', attempts: 1, grpcStatus: null, endTimeMs: Date.now(), ...over };
}

interface Setup {
  tracer: Tracer;
  receiver: OtlpReceiver;
  lines: Record<string, unknown>[];
}

async function setup(t: TestContext, options: Partial<TracingOptions> = {}): Promise<Setup> {
  const receiver = await startOtlpReceiver();
  const { log, lines } = memoryLogger();
  const tracer = new Tracer({ endpoint: receiver.url, sampling: 1, headers: {}, service: 'api', namespace: 'shop', spiffeId: 'spiffe://weft.test/ns/shop/sa/api', exportDelayMs: 10, ...options }, log);
  t.after(async () => {
    await tracer.shutdown();
    await receiver.close();
  });
  return { tracer, receiver, lines };
}

function header(hop: HopSpan, name: string): string | undefined {
  const found = hop.headers.filter(([n]) => n === name);
  assert.ok(found.length <= 1, `${name} appears ${found.length} times`);
  return found[0]?.[1];
}

function headerNames(hop: HopSpan): string[] {
  return hop.headers.map(([n]) => n).sort();
}

/** Ends `hop` and waits for its span at the receiver. */
async function exported(receiver: OtlpReceiver, hop: HopSpan, outcome: SpanEnd = end()): Promise<ReceivedSpan> {
  hop.end(outcome);
  const [span] = await receiver.waitForSpans((s) => s.spanId === hop.spanId, 5000);
  return span!;
}

const TRACEPARENT = /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/;

test('W3C traceparent with the sampled flag: a child span, a new traceparent with its id, tracestate unchanged', async (t) => {
  const { tracer, receiver } = await setup(t, { sampling: 0 });
  const hop = tracer.start(headers({ traceparent: `00-${TRACE_ID}-${PARENT_ID}-01`, tracestate: TRACESTATE }), start());
  assert.ok(hop);
  assert.equal(hop.traceId, TRACE_ID);
  assert.match(hop.spanId, /^[0-9a-f]{16}$/);
  assert.notEqual(hop.spanId, PARENT_ID);
  assert.deepEqual(headerNames(hop), ['traceparent', 'tracestate']);
  assert.equal(header(hop, 'traceparent'), `00-${TRACE_ID}-${hop.spanId}-01`);
  assert.equal(header(hop, 'tracestate'), TRACESTATE);
  const span = await exported(receiver, hop);
  assert.equal(span.traceId, TRACE_ID);
  assert.equal(span.parentSpanId, PARENT_ID);
  assert.equal(span.kind, 'SERVER');
});

test('W3C traceparent without the sampled flag: not traced (null), nothing exported', async (t) => {
  const { tracer, receiver } = await setup(t, { sampling: 1 });
  assert.equal(tracer.start(headers({ traceparent: `00-${TRACE_ID}-${PARENT_ID}-00`, tracestate: TRACESTATE }), start()), null);
  // Other flag bits do not matter; only bit 0 is "sampled".
  assert.equal(tracer.start(headers({ traceparent: `00-${TRACE_ID}-${PARENT_ID}-02` }), start()), null);
  const hop = tracer.start(headers({ traceparent: `00-${TRACE_ID}-${PARENT_ID}-03` }), start());
  assert.ok(hop);
  assert.equal(header(hop, 'traceparent'), `00-${TRACE_ID}-${hop.spanId}-01`);
  await exported(receiver, hop);
  await tracer.shutdown();
  assert.deepEqual(receiver.spans.map((s) => s.spanId), [hop.spanId]);
});

test('an invalid traceparent is ignored like an absent one (and its tracestate with it)', async (t) => {
  const { tracer } = await setup(t, { sampling: 1 });
  const invalid = [
    `00-${TRACE_ID.toUpperCase()}-${PARENT_ID}-01`, // upper case
    `ff-${TRACE_ID}-${PARENT_ID}-01`, // version ff
    `00-${'0'.repeat(32)}-${PARENT_ID}-01`, // zero trace id
    `00-${TRACE_ID}-${'0'.repeat(16)}-01`, // zero parent id
    `00-${TRACE_ID.slice(1)}-${PARENT_ID}-01`, // short trace id
    `00-${TRACE_ID}-${PARENT_ID}0-01`, // long parent id
    `00-${TRACE_ID}-${PARENT_ID}-1`, // short flags
    `00-${TRACE_ID}-${PARENT_ID}-0g`, // non-hex flags
    `00-${TRACE_ID}-${PARENT_ID}-01-extra`, // version 00 has exactly four fields
    `0-${TRACE_ID}-${PARENT_ID}-01`,
    `00_${TRACE_ID}_${PARENT_ID}_01`,
    '',
    'garbage',
  ];
  for (const traceparent of invalid) {
    const hop = tracer.start(headers({ traceparent, tracestate: TRACESTATE }), start());
    assert.ok(hop, traceparent);
    assert.notEqual(hop.traceId, TRACE_ID, traceparent);
    assert.deepEqual(headerNames(hop), ['traceparent'], traceparent);
    assert.equal(header(hop, 'traceparent'), `00-${hop.traceId}-${hop.spanId}-01`);
    hop.end(end());
  }
  // A later version is read by the version 00 rules, extra fields allowed (W3C Trace Context §3.2.4).
  const future = tracer.start(headers({ traceparent: `01-${TRACE_ID}-${PARENT_ID}-01-what-comes-next` }), start());
  assert.equal(future?.traceId, TRACE_ID);
  assert.equal(header(future!, 'traceparent'), `00-${TRACE_ID}-${future!.spanId}-01`);
});

test('no parent, sampling 1: a root span; sampling 0: a hop that records nothing and carries traceparent flag 00', async (t) => {
  const on = await setup(t, { sampling: 1 });
  const root = on.tracer.start(headers({}), start());
  assert.ok(root);
  assert.deepEqual(headerNames(root), ['traceparent']);
  assert.equal(header(root, 'traceparent'), `00-${root.traceId}-${root.spanId}-01`);
  const span = await exported(on.receiver, root);
  assert.equal(span.parentSpanId, '');
  assert.equal(span.traceId, root.traceId);

  const off = await setup(t, { sampling: 0 });
  const ids = new Set<string>();
  for (let i = 0; i < 50; i++) {
    const hop = off.tracer.start(headers({ tracestate: TRACESTATE }), start());
    assert.ok(hop);
    assert.deepEqual(headerNames(hop), ['traceparent']);
    assert.match(header(hop, 'traceparent')!, TRACEPARENT);
    assert.equal(header(hop, 'traceparent'), `00-${hop.traceId}-${hop.spanId}-00`);
    assert.notEqual(hop.traceId, '0'.repeat(32));
    ids.add(hop.traceId);
    hop.end(end());
  }
  assert.equal(ids.size, 50, 'each new trace has its own id');
  // The next sidecar follows the decision: flag 00 → null.
  assert.equal(on.tracer.start(headers({ traceparent: `00-${[...ids][0]}-${PARENT_ID}-00` }), start()), null);
  await off.tracer.shutdown();
  assert.equal(off.receiver.spans.length, 0);
  assert.equal(off.receiver.requests, 0);
});

test('sampling 0.25 with no parent records about a quarter of new traces', async (t) => {
  const { tracer } = await setup(t, { sampling: 0.25 });
  let sampled = 0;
  const n = 4000;
  for (let i = 0; i < n; i++) {
    const hop = tracer.start(headers({}), start())!;
    if (header(hop, 'traceparent')!.endsWith('-01')) sampled++;
    hop.end(end());
  }
  // Mean 1000, sd ≈ 27: ±200 is over 7 sd.
  assert.ok(sampled > 800 && sampled < 1200, `sampled ${sampled} of ${n}`);
});

test('B3 single header, 128-bit: traced like W3C; traceparent and the updated b3 are sent on', async (t) => {
  const { tracer, receiver } = await setup(t, { sampling: 0 });
  const hop = tracer.start(headers({ b3: `${TRACE_ID}-${PARENT_ID}-1` }), start({ kind: 'outbound', destination: 'api' }));
  assert.ok(hop);
  assert.equal(hop.traceId, TRACE_ID);
  assert.deepEqual(headerNames(hop), ['b3', 'traceparent']);
  assert.equal(header(hop, 'traceparent'), `00-${TRACE_ID}-${hop.spanId}-01`);
  assert.equal(header(hop, 'b3'), `${TRACE_ID}-${hop.spanId}-1`);
  const span = await exported(receiver, hop);
  assert.equal(span.parentSpanId, PARENT_ID);
  assert.equal(span.kind, 'CLIENT');
});

test('B3 single header, 64-bit trace id: the trace id is padded for W3C and kept 64-bit in b3; debug "d" is kept', async (t) => {
  const { tracer, receiver } = await setup(t, { sampling: 0 });
  const short = 'a3ce929d0e0e4736';
  const hop = tracer.start(headers({ b3: `${short}-${PARENT_ID}-d-1111111111111111` }), start());
  assert.ok(hop);
  assert.equal(hop.traceId, `${'0'.repeat(16)}${short}`);
  assert.equal(header(hop, 'traceparent'), `00-${'0'.repeat(16)}${short}-${hop.spanId}-01`);
  assert.equal(header(hop, 'b3'), `${short}-${hop.spanId}-d`);
  const span = await exported(receiver, hop);
  assert.equal(span.parentSpanId, PARENT_ID);
});

test('B3 not sampled ("-0", a bare "0", x-b3-sampled: 0): not traced', async (t) => {
  const { tracer } = await setup(t, { sampling: 1 });
  assert.equal(tracer.start(headers({ b3: `${TRACE_ID}-${PARENT_ID}-0` }), start()), null);
  assert.equal(tracer.start(headers({ b3: '0' }), start()), null);
  assert.equal(tracer.start(headers({ 'x-b3-traceid': TRACE_ID, 'x-b3-spanid': PARENT_ID, 'x-b3-sampled': '0' }), start()), null);
  assert.equal(tracer.start(headers({ 'x-b3-sampled': '0' }), start()), null);
});

test('B3 multi headers, 64-bit: x-b3-* rewritten with this span (parent = the caller span), traceparent added', async (t) => {
  const { tracer, receiver } = await setup(t, { sampling: 0 });
  const short = 'a3ce929d0e0e4736';
  const hop = tracer.start(headers({ 'x-b3-traceid': short, 'x-b3-spanid': PARENT_ID, 'x-b3-parentspanid': '1111111111111111', 'x-b3-sampled': '1' }), start());
  assert.ok(hop);
  assert.equal(hop.traceId, `${'0'.repeat(16)}${short}`);
  assert.deepEqual(headerNames(hop), ['traceparent', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-spanid', 'x-b3-traceid']);
  assert.equal(header(hop, 'x-b3-traceid'), short);
  assert.equal(header(hop, 'x-b3-spanid'), hop.spanId);
  assert.equal(header(hop, 'x-b3-parentspanid'), PARENT_ID);
  assert.equal(header(hop, 'x-b3-sampled'), '1');
  assert.equal(header(hop, 'traceparent'), `00-${hop.traceId}-${hop.spanId}-01`);
  const span = await exported(receiver, hop);
  assert.equal(span.parentSpanId, PARENT_ID);

  const debug = tracer.start(headers({ 'x-b3-traceid': TRACE_ID, 'x-b3-spanid': PARENT_ID, 'x-b3-flags': '1' }), start());
  assert.ok(debug);
  assert.equal(header(debug, 'x-b3-traceid'), TRACE_ID);
  assert.equal(header(debug, 'x-b3-flags'), '1');
  assert.equal(header(debug, 'x-b3-sampled'), undefined);
  debug.end(end());
});

test('W3C and B3 both present: W3C wins, and the B3 form the caller used is rewritten to match', async (t) => {
  const { tracer, receiver } = await setup(t, { sampling: 0 });
  const otherTrace = '11111111111111112222222222222222';
  const hop = tracer.start(headers({ traceparent: `00-${TRACE_ID}-${PARENT_ID}-01`, tracestate: 'a=b', b3: `${otherTrace}-3333333333333333-1` }), start());
  assert.ok(hop);
  assert.equal(hop.traceId, TRACE_ID);
  assert.deepEqual(headerNames(hop), ['b3', 'traceparent', 'tracestate']);
  assert.equal(header(hop, 'b3'), `${TRACE_ID}-${hop.spanId}-1`);
  assert.equal(header(hop, 'tracestate'), 'a=b');
  const span = await exported(receiver, hop);
  assert.equal(span.parentSpanId, PARENT_ID);
  // W3C says not sampled, B3 says sampled: W3C decides.
  assert.equal(tracer.start(headers({ traceparent: `00-${TRACE_ID}-${PARENT_ID}-00`, b3: `${TRACE_ID}-${PARENT_ID}-1` }), start()), null);
  // An invalid traceparent falls back to B3.
  const b3 = tracer.start(headers({ traceparent: 'junk', b3: `${otherTrace}-3333333333333333-1` }), start());
  assert.equal(b3?.traceId, otherTrace);
  b3?.end(end());
});

test('every header name written is in TRACE_HEADERS', async (t) => {
  const { tracer } = await setup(t, { sampling: 0.5 });
  assert.deepEqual([...TRACE_HEADERS].sort(), ['b3', 'traceparent', 'tracestate', 'x-b3-flags', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-spanid', 'x-b3-traceid']);
  const cases: Record<string, string>[] = [
    {},
    { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01`, tracestate: 'a=b' },
    { b3: `${TRACE_ID}-${PARENT_ID}-1` },
    { 'x-b3-traceid': TRACE_ID, 'x-b3-spanid': PARENT_ID, 'x-b3-sampled': '1' },
  ];
  for (const c of cases) {
    const hop = tracer.start(headers(c), start());
    assert.ok(hop);
    for (const [name] of hop.headers) assert.ok(TRACE_HEADERS.includes(name), name);
    hop.end(end());
  }
});

test('span name, kind, attributes, status and resource', async (t) => {
  const { tracer, receiver } = await setup(t, { sampling: 1 });
  const startMs = Date.now() - 12.5;
  const inbound = tracer.start(headers({ traceparent: `00-${TRACE_ID}-${PARENT_ID}-01` }), start({ startTimeMs: startMs }))!;
  const s = await exported(receiver, inbound, end({ route: 'shop/api-route/0', endTimeMs: startMs + 10 }));
  assert.equal(s.name, 'GET shop/api-route/0');
  assert.equal(s.kind, 'SERVER');
  assert.equal(s.service, 'api');
  assert.equal(s.statusCode, 0);
  assert.deepEqual(s.attributes, {
    'http.request.method': 'GET',
    'url.path': '/items/42',
    'server.address': 'api.default',
    'server.port': 8080,
    'network.protocol.name': 'http',
    'network.protocol.version': '1.1',
    'http.response.status_code': 200,
    'weft.direction': 'inbound',
    'weft.destination': 'api',
    'weft.route': 'shop/api-route/0',
    'weft.upstream': '127.0.0.1:9000',
    'weft.attempts': 1,
    'weft.peer': SPIFFE_WEB,
    'weft.tls': true,
  });
  assert.equal(s.resource['service.namespace'], 'shop');
  assert.equal(s.resource['weft.spiffe_id'], 'spiffe://weft.test/ns/shop/sa/api');
  assert.equal(s.resource['service.instance.id'], `${(await import('node:os')).hostname()}:${process.pid}`);
  const durationNs = BigInt(s.endTimeUnixNano) - BigInt(s.startTimeUnixNano);
  assert.ok(durationNs > 9_900_000n && durationNs < 10_100_000n, `duration ${durationNs} ns`);
  assert.ok(Math.abs(Number(BigInt(s.startTimeUnixNano) / 1000n) / 1000 - startMs) < 0.01, 'start time kept to the µs');

  // No route, an h2 outbound hop over [v6]:port, a 404: an error for a client span.
  const outbound = tracer.start(headers({}), start({ kind: 'outbound', protocol: 'h2', authority: '[::1]:9443', peer: null, tls: false, destination: 'billing', path: '/pay' }))!;
  const o = await exported(receiver, outbound, end({ status: 404, upstream: null, attempts: 2 }));
  assert.equal(o.name, 'GET');
  assert.equal(o.kind, 'CLIENT');
  assert.equal(o.statusCode, 2);
  assert.equal(o.attributes['error.type'], '404');
  assert.equal(o.attributes['server.address'], '::1');
  assert.equal(o.attributes['server.port'], 9443);
  assert.equal(o.attributes['network.protocol.version'], '2');
  assert.equal(o.attributes['peer.service'], 'billing');
  assert.equal(o.attributes['weft.attempts'], 2);
  assert.equal(o.attributes['weft.peer'], undefined);
  assert.equal(o.attributes['weft.upstream'], undefined);
  assert.equal(o.attributes['weft.route'], undefined);

  // A 404 is not a server error; a 503 is; a weft-error always is, with its code as error.type.
  const ok404 = await exported(receiver, tracer.start(headers({}), start())!, end({ status: 404 }));
  assert.equal(ok404.statusCode, 0);
  assert.equal(ok404.attributes['error.type'], undefined);
  const e503 = await exported(receiver, tracer.start(headers({}), start())!, end({ status: 503 }));
  assert.equal(e503.statusCode, 2);
  assert.equal(e503.attributes['error.type'], '503');
  const weftErr = await exported(receiver, tracer.start(headers({}), start())!, end({ status: 503, error: 'WEFT_E_NO_HEALTHY_UPSTREAM' }));
  assert.equal(weftErr.statusCode, 2);
  assert.equal(weftErr.attributes['error.type'], 'WEFT_E_NO_HEALTHY_UPSTREAM');

  // gRPC status; a method outside the HTTP set; HTTP/1.0; no authority.
  const grpc = await exported(receiver, tracer.start(headers({}), start({ method: 'POST', protocol: 'h2', path: '/pkg.Svc/Call' }))!, end({ grpcStatus: 14 }));
  assert.equal(grpc.attributes['rpc.grpc.status_code'], 14);
  const other = await exported(receiver, tracer.start(headers({}), start({ method: 'PROPFIND', protocol: 'http/1.0', authority: null }))!, end({ route: 'a/b/1' }));
  assert.equal(other.name, 'HTTP a/b/1');
  assert.equal(other.attributes['http.request.method'], '_OTHER');
  assert.equal(other.attributes['http.request.method_original'], 'PROPFIND');
  assert.equal(other.attributes['network.protocol.version'], '1.0');
  assert.equal(other.attributes['server.address'], undefined);
});

test('end() twice exports one span', async (t) => {
  const { tracer, receiver } = await setup(t, { sampling: 1 });
  const hop = tracer.start(headers({}), start())!;
  hop.end(end());
  hop.end(end({ status: 500 }));
  await tracer.shutdown();
  assert.equal(receiver.spans.filter((s) => s.spanId === hop.spanId).length, 1);
  assert.equal(receiver.spans[0]!.attributes['http.response.status_code'], 200);
});

test('the collector headers are sent with each export; shutdown flushes what is queued', async (t) => {
  const { tracer, receiver } = await setup(t, { sampling: 1, headers: { 'x-api-key': 'k1' }, exportDelayMs: 60_000 });
  for (let i = 0; i < 3; i++) tracer.start(headers({}), start())!.end(end());
  assert.equal(receiver.spans.length, 0);
  await tracer.shutdown();
  assert.equal(receiver.spans.length, 3);
  assert.equal(receiver.lastHeaders['x-api-key'], 'k1');
  assert.match(String(receiver.lastHeaders['content-type']), /^application\/json/);
});

test('a collector that refuses every export: one warning a minute at most, naming the setting to check', async (t) => {
  let exports = 0;
  const collector = createHttpServer((req, res) => {
    exports++;
    req.resume();
    req.on('end', () => res.writeHead(400, { 'content-type': 'application/json' }).end('{"message":"no"}'));
  });
  await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r));
  t.after(() => {
    collector.closeAllConnections();
    collector.close();
  });
  const { log, lines } = memoryLogger();
  const tracer = new Tracer({ endpoint: `http://127.0.0.1:${(collector.address() as AddressInfo).port}/v1/traces`, sampling: 1, headers: {}, service: 'api', namespace: 'default', spiffeId: 'spiffe://weft.test/ns/default/sa/api', exportDelayMs: 5 }, log);
  t.after(() => tracer.shutdown());
  const deadline = Date.now() + 5000;
  while (exports < 5 && Date.now() < deadline) {
    for (let i = 0; i < 10; i++) tracer.start(headers({}), start())!.end(end());
    await new Promise((r) => setTimeout(r, 30));
  }
  await tracer.shutdown();
  assert.ok(exports >= 5, `${exports} exports`);
  const warnings = lines.filter((l) => l['code'] === 'WEFT_E_TRACE_EXPORT');
  assert.equal(warnings.length, 1, JSON.stringify(lines));
  assert.match(String(warnings[0]!['msg']), /observability\.tracing\.endpoint/);
  assert.ok(Number(warnings[0]!['droppedSpans']) >= 1);
});

test('an unreachable collector: start and end stay cheap, shutdown is bounded', async (t) => {
  // A port that was free a moment ago: connection refused (the exporter retries with backoff).
  const port = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
  const { log } = memoryLogger();
  const tracer = new Tracer({ endpoint: `http://127.0.0.1:${port}/v1/traces`, sampling: 1, headers: {}, service: 'api', namespace: 'default', spiffeId: 'spiffe://weft.test/ns/default/sa/api', exportDelayMs: 1 }, log);
  t.after(() => tracer.shutdown());
  // More spans than the queue holds: the excess is dropped, never blocks.
  const n = MAX_QUEUED_SPANS * 3;
  const began = performance.now();
  for (let i = 0; i < n; i++) tracer.start(headers({}), start())!.end(end());
  const perSpanUs = ((performance.now() - began) * 1000) / n;
  assert.ok(perSpanUs < 200, `${perSpanUs.toFixed(1)} µs per span`);
  await new Promise((r) => setTimeout(r, 50));
  const t0 = performance.now();
  await tracer.shutdown();
  assert.ok(performance.now() - t0 < 4000, 'shutdown waits 3 s at most');
});

test('sampling outside 0..1 is refused with WEFT_E_TRACE_CONFIG', () => {
  const { log } = memoryLogger();
  for (const sampling of [-0.1, 1.5, Number.NaN]) {
    assert.throws(() => new Tracer({ endpoint: 'http://127.0.0.1:1/v1/traces', sampling, headers: {}, service: 's', namespace: 'n', spiffeId: 'spiffe://t/ns/n/sa/s' }, log), { code: 'WEFT_E_TRACE_CONFIG' });
  }
});
