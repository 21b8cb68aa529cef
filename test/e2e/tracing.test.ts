/**
 * Distributed tracing through two real sidecars (docs/tracing.md): a client's trace context
 * (W3C traceparent + tracestate, or B3) goes through web's outbound listener and api's inbound
 * listener to api's app, each sidecar exports its hop's span to an OTLP/HTTP receiver run by
 * the test, and the spans are linked by trace and parent ids; HTTP/1.1 and h2c; unsampled
 * contexts pass byte for byte; sampling 0 sends flag 00 on; no tracing leaves headers alone.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { request, type IncomingHttpHeaders } from 'node:http';
import { makeCa, startSidecar, tempDir } from '../helpers/weft.js';
import { dualProtocolApp } from '../helpers/http-pair.js';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../helpers/otlp.js';

const WEB_ID = 'spiffe://example.org/ns/default/svc/web';
const API_ID = 'spiffe://example.org/ns/default/svc/api';
/** Spans leave a sidecar in batches about once a second. */
const SPAN_WAIT_MS = 15_000;

/** The request heads api's app received, by path. */
type Seen = Map<string, IncomingHttpHeaders>;

/** An app speaking HTTP/1.1 and h2c on one port that records each request's headers by path. */
async function recordingApp(t: TestContext): Promise<{ address: string; seen: Seen }> {
  const seen: Seen = new Map();
  const address = await dualProtocolApp(t, (_version, path, headers) => {
    seen.set(path, headers);
    return 'ok\n';
  });
  return { address, seen };
}

/** api's sidecar in front of the app and web's sidecar with an upstream to it, both with `tracing` flags. */
async function pair(t: TestContext, tracing: string[]): Promise<{ outbound: string; seen: Seen }> {
  const dir = await tempDir(t);
  const ca = await makeCa(dir);
  const app = await recordingApp(t);
  const api = await startSidecar(t, ['--service', 'api', '--protocol', 'http', '--issuer', ca, '--inbound', '127.0.0.1:0', '--app', app.address, '--admin', '127.0.0.1:0', ...tracing]);
  const web = await startSidecar(t, ['--service', 'web', '--issuer', ca, '--upstream', `api=127.0.0.1:0=${api.listeners['inbound']!}=http`, '--admin', '127.0.0.1:0', ...tracing]);
  return { outbound: web.listeners['upstream api']!, seen: app.seen };
}

async function receiver(t: TestContext): Promise<OtlpReceiver> {
  const r = await startOtlpReceiver();
  t.after(() => r.close());
  return r;
}

/** An HTTP/1.1 GET with `headers`; resolves with the status (30 s bound). */
function get(address: string, path: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`http://${address}${path}`, { headers, timeout: 30_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** `curl --http2-prior-knowledge` (h2c) with `headers`; resolves with the status and HTTP version. */
function curlH2(url: string, headers: Record<string, string>): Promise<{ status: string; version: string }> {
  return new Promise((resolve, reject) => {
    const args = ['-sS', '-m', '10', '--http2-prior-knowledge', '-o', '/dev/null', '-w', '%{http_code} %{http_version}'];
    for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}: ${v}`);
    const child = spawn('curl', [...args, url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`curl exited ${code}: ${err}`));
      const [status, version] = out.split(' ');
      resolve({ status: status!, version: version! });
    });
  });
}

function randomHex(bytes: number): string {
  return Buffer.from(Array.from({ length: bytes }, () => Math.floor(Math.random() * 256))).toString('hex');
}

/** Waits for web's CLIENT span and api's SERVER span of `traceId` and checks how they link. */
async function hopSpans(r: OtlpReceiver, traceId: string, clientParent: string): Promise<{ client: ReceivedSpan; server: ReceivedSpan }> {
  const spans = await r.waitForSpans((s) => s.traceId === traceId, SPAN_WAIT_MS, 2);
  assert.equal(spans.length, 2, `two spans of trace ${traceId}: ${JSON.stringify(spans)}`);
  const client = spans.find((s) => s.kind === 'CLIENT');
  const server = spans.find((s) => s.kind === 'SERVER');
  assert.ok(client && server, `one CLIENT and one SERVER span: ${spans.map((s) => `${s.service} ${s.kind}`).join(', ')}`);
  assert.equal(client.service, 'web');
  assert.equal(server.service, 'api');
  assert.equal(client.resource['weft.spiffe_id'], WEB_ID);
  assert.equal(server.resource['weft.spiffe_id'], API_ID);
  assert.equal(client.parentSpanId, clientParent, "web's span is a child of the client's span");
  assert.equal(server.parentSpanId, client.spanId, "api's span is a child of web's span");
  return { client, server };
}

test('a traced request (W3C): a CLIENT span from web and a SERVER span from api, linked; the app gets the next traceparent and the tracestate', async (t) => {
  const r = await receiver(t);
  const { outbound, seen } = await pair(t, ['--trace-endpoint', r.url, '--trace-sampling', '0']);
  const traceId = randomHex(16);
  const parent = randomHex(8);
  const tracestate = 'vendor1=opaque-value,rojo=00f067aa0ba902b7';
  assert.equal(await get(outbound, '/w3c/items?token=secret', { traceparent: `00-${traceId}-${parent}-01`, tracestate }), 200);
  const { client, server } = await hopSpans(r, traceId, parent);

  const app = seen.get('/w3c/items?token=secret')!;
  assert.equal(app['traceparent'], `00-${traceId}-${server.spanId}-01`, "the app's parent is api's inbound span");
  assert.equal(app['tracestate'], tracestate);

  assert.equal(client.attributes['weft.direction'], 'outbound');
  assert.equal(client.attributes['http.request.method'], 'GET');
  assert.equal(client.attributes['url.path'], '/w3c/items');
  assert.equal(client.attributes['http.response.status_code'], 200);
  assert.equal(client.attributes['network.protocol.version'], '1.1');
  assert.equal(server.attributes['weft.direction'], 'inbound');
  assert.equal(server.attributes['weft.peer'], WEB_ID);
  assert.equal(server.attributes['weft.tls'], true);
  assert.equal(server.attributes['url.path'], '/w3c/items');
  assert.equal(server.attributes['http.response.status_code'], 200);
  for (const s of [client, server]) {
    assert.ok(!JSON.stringify(s.attributes).includes('secret'), 'no query string in any attribute');
    assert.ok(BigInt(s.endTimeUnixNano) >= BigInt(s.startTimeUnixNano));
  }
  assert.ok(BigInt(server.startTimeUnixNano) >= BigInt(client.startTimeUnixNano), 'the inbound hop starts after the outbound one');
});

test('B3 single header: linked spans, and the app gets b3 and traceparent for the inbound span', async (t) => {
  const r = await receiver(t);
  const { outbound, seen } = await pair(t, ['--trace-endpoint', r.url, '--trace-sampling', '0']);
  const traceId = randomHex(16);
  const parent = randomHex(8);
  assert.equal(await get(outbound, '/b3', { b3: `${traceId}-${parent}-1` }), 200);
  const { server } = await hopSpans(r, traceId, parent);
  const app = seen.get('/b3')!;
  assert.equal(app['b3'], `${traceId}-${server.spanId}-1`);
  assert.equal(app['traceparent'], `00-${traceId}-${server.spanId}-01`);
});

test('a traced HTTP/2 (h2c) request: linked spans with protocol version 2', async (t) => {
  const r = await receiver(t);
  const { outbound, seen } = await pair(t, ['--trace-endpoint', r.url, '--trace-sampling', '0']);
  const traceId = randomHex(16);
  const parent = randomHex(8);
  const res = await curlH2(`http://${outbound}/h2`, { traceparent: `00-${traceId}-${parent}-01`, tracestate: 'k=v' });
  assert.deepEqual(res, { status: '200', version: '2' });
  const { client, server } = await hopSpans(r, traceId, parent);
  assert.equal(client.attributes['network.protocol.version'], '2');
  assert.equal(server.attributes['network.protocol.version'], '2');
  const app = seen.get('/h2')!;
  assert.equal(app['traceparent'], `00-${traceId}-${server.spanId}-01`);
  assert.equal(app['tracestate'], 'k=v');
});

test('unsampled contexts pass byte for byte and export nothing; with sampling 0 and no header the app gets flag 00 and nothing is exported', async (t) => {
  const r = await receiver(t);
  const { outbound, seen } = await pair(t, ['--trace-endpoint', r.url, '--trace-sampling', '0']);
  const unsampled = `00-${randomHex(16)}-${randomHex(8)}-00`;
  const tracestate = 'congo=t61rcWkgMzE,  rojo=00f067aa0ba902b7';
  const b3 = `${randomHex(16)}-${randomHex(8)}-0`;
  assert.equal(await get(outbound, '/unsampled', { traceparent: unsampled, tracestate }), 200);
  assert.equal(await get(outbound, '/unsampled-b3', { b3 }), 200);
  assert.equal(await get(outbound, '/no-header', {}), 200);
  assert.equal(seen.get('/unsampled')!['traceparent'], unsampled);
  assert.equal(seen.get('/unsampled')!['tracestate'], tracestate);
  assert.equal(seen.get('/unsampled-b3')!['b3'], b3);
  assert.equal(seen.get('/unsampled-b3')!['traceparent'], undefined);
  const fresh = seen.get('/no-header')!['traceparent'];
  assert.match(String(fresh), /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);

  // A traced request afterwards: once its spans are in, the earlier ones would be too (one queue per sidecar, in order).
  const traceId = randomHex(16);
  const parent = randomHex(8);
  assert.equal(await get(outbound, '/after', { traceparent: `00-${traceId}-${parent}-01` }), 200);
  await hopSpans(r, traceId, parent);
  assert.deepEqual(r.spans.filter((s) => s.traceId !== traceId), [], 'only the sampled trace was exported');
});

test('no tracing configured: trace headers reach the app untouched', async (t) => {
  const { outbound, seen } = await pair(t, []);
  const headers = {
    traceparent: `00-${randomHex(16)}-${randomHex(8)}-01`,
    tracestate: 'a=b, c=d',
    b3: `${randomHex(16)}-${randomHex(8)}-1`,
    'x-b3-traceid': randomHex(8),
    'x-b3-spanid': randomHex(8),
    'x-b3-sampled': '1',
  };
  assert.equal(await get(outbound, '/off', headers), 200);
  const app = seen.get('/off')!;
  for (const [k, v] of Object.entries(headers)) assert.equal(app[k], v, k);
  assert.equal(await get(outbound, '/off-none', {}), 200);
  assert.equal(seen.get('/off-none')!['traceparent'], undefined, 'no traceparent is made up');
});
