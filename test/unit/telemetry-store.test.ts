import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CERTIFICATE_TTL_MS, percentileMs, TelemetryStore } from '../../src/control/telemetry.js';
import { DURATION_BUCKETS, type ConnectionStats, type RequestStats, type TelemetryReport } from '../../src/control/telemetry-wire.js';

const T0 = 1_700_000_000_000; // a whole second
const N = DURATION_BUCKETS.length + 1;

/** A histogram with `counts[i]` requests in bucket i. */
function buckets(counts: Record<number, number>): number[] {
  const b = new Array<number>(N).fill(0);
  for (const [i, n] of Object.entries(counts)) b[Number(i)] = n;
  return b;
}

function rq(direction: 'inbound' | 'outbound', source: string, destination: string, tls: boolean, codes: Record<string, number>, histogram: Record<number, number>, route = '-'): RequestStats {
  return { direction, source, destination, tls, route, codes, buckets: buckets(histogram), sum: 0 };
}

function report(requests: RequestStats[], connections: ConnectionStats[] = [], extra: Partial<TelemetryReport> = {}): TelemetryReport {
  return { instance: null, certificate: null, requests, connections, ...extra };
}

test('percentiles interpolate linearly inside the bucket that holds the rank', () => {
  // 10 requests in (5 ms, 10 ms], 10 in (10 ms, 25 ms].
  const b = buckets({ 6: 10, 7: 10 });
  assert.ok(Math.abs(percentileMs(b, 0.5)! - 10) < 1e-9);
  assert.ok(Math.abs(percentileMs(b, 0.99)! - 24.7) < 1e-9, String(percentileMs(b, 0.99)));
  // The first bucket starts at 0: 4 requests in [0, 0.1 ms], the median is 0.05 ms.
  assert.ok(Math.abs(percentileMs(buckets({ 0: 4 }), 0.5)! - 0.05) < 1e-12);
  // +Inf reports the last finite bound (30 s).
  assert.equal(percentileMs(buckets({ 17: 3 }), 0.5), 30_000);
  assert.equal(percentileMs(buckets({}), 0.5), null);
});

test('rate, success and percentiles over the window; older slots leave it', () => {
  const s = new TelemetryStore();
  // 15 s ago: outside a 10 s window, inside a 60 s one.
  s.record('default', 'web', report([rq('outbound', 'web', 'api', true, { '200': 100 }, { 9: 100 }, 'default/r/0')]), T0 - 15_000);
  s.record('default', 'web', report([rq('outbound', 'web', 'api', true, { '200': 18, '404': 9, '503': 3 }, { 6: 15, 7: 15 }, 'default/r/0')]), T0 - 4000);
  const top = s.top(10_000, T0);
  assert.equal(top.windowSeconds, 10);
  assert.equal(top.routes.length, 1);
  const r = top.routes[0]!;
  assert.deepEqual({ source: r.source, destination: r.destination, route: r.route, tls: r.tls, requests: r.requests }, { source: 'web', destination: 'api', route: 'default/r/0', tls: true, requests: 30 });
  assert.equal(r.requestsPerSecond, 3);
  assert.equal(r.successRate, 0.9, '3 of 30 are 5xx; 404s are successes');
  assert.ok(Math.abs(r.p50Ms! - 10) < 1e-9);
  // p99: rank 29.7 → (10, 25] ms, 14.7 of 15 in: 10 + 15 * 14.7 / 15 = 24.7.
  assert.ok(Math.abs(r.p99Ms! - 24.7) < 1e-9);
  const wide = s.top(60_000, T0).routes[0]!;
  assert.equal(wide.requests, 130);
  assert.ok(Math.abs(wide.requestsPerSecond - 130 / 60) < 1e-12);
  // Out of the window entirely after a minute.
  assert.deepEqual(s.top(60_000, T0 + 60_000).routes, []);
  // Windows are whole seconds, 1 to 60.
  assert.equal(s.top(500, T0).windowSeconds, 1);
  assert.equal(s.top(600_000, T0).windowSeconds, 60);
});

test('routes are ranked by requests, one row per (source, destination, route, tls)', () => {
  const s = new TelemetryStore();
  s.record('default', 'web', report([rq('outbound', 'web', 'api', true, { '200': 5 }, { 5: 5 }, 'default/a/0'), rq('outbound', 'web', 'api', true, { '200': 9 }, { 5: 9 }, 'default/a/1')]), T0);
  s.record('default', 'web', report([rq('outbound', 'web', 'api', true, { '200': 1 }, { 5: 1 }, 'default/a/0')]), T0 + 1000);
  const routes = s.top(10_000, T0 + 1000).routes.map((r) => [r.route, r.requests]);
  assert.deepEqual(routes, [['default/a/1', 9], ['default/a/0', 6]]);
});

test('edges: outbound rows when the window has any, else inbound; plaintext callers make their own edge', () => {
  const s = new TelemetryStore();
  // Both sidecars of web -> api report the same 20 requests; only the caller's count.
  s.record('default', 'web', report([rq('outbound', 'web', 'api', true, { '200': 20 }, { 4: 20 })]), T0);
  s.record('default', 'api', report([rq('inbound', 'web', 'api', true, { '200': 20 }, { 4: 20 }), rq('inbound', 'unknown', 'api', false, { '200': 4, '500': 1 }, { 4: 5 })]), T0);
  // db is called by api's sidecar, but only db's inbound side reported: its rows stand.
  s.record('default', 'db', report([rq('inbound', 'api', 'db', true, { '200': 7 }, { 3: 7 })]), T0);
  const edges = s.edges(10_000, T0).map((e) => [e.source, e.destination, e.protocol, e.tls, e.requests, e.successRate]);
  assert.deepEqual(edges, [
    ['api', 'db', 'http', true, 7, 1],
    ['unknown', 'api', 'http', false, 5, 0.8],
    ['web', 'api', 'http', true, 20, 1],
  ]);
  // The same choice in top: 20 requests web -> api, not 40.
  assert.equal(s.top(10_000, T0).routes.find((r) => r.source === 'web')!.requests, 20);
  // A pair with outbound rows and plaintext inbound rows of the same pair: two edges.
  s.record('default', 'api', report([rq('inbound', 'web', 'api', false, { '200': 2 }, { 4: 2 })]), T0);
  const webApi = s.edges(10_000, T0).filter((e) => e.source === 'web' && e.destination === 'api').map((e) => [e.tls, e.requests]);
  assert.deepEqual(webApi, [[true, 20], [false, 2]]);
  // Once web's outbound rows leave the window, api's inbound rows show the hop.
  s.record('default', 'api', report([rq('inbound', 'web', 'api', true, { '200': 3 }, { 4: 3 })]), T0 + 20_000);
  const later = s.edges(10_000, T0 + 20_000).map((e) => [e.source, e.destination, e.tls, e.requests]);
  assert.deepEqual(later, [['web', 'api', true, 3]]);
  // Namespace: only the rows reported from it.
  s.record('shop', 'cart', report([rq('outbound', 'cart', 'api', true, { '200': 1 }, { 4: 1 })]), T0 + 20_000);
  assert.deepEqual(s.edges(10_000, T0 + 20_000, { namespace: 'shop' }).map((e) => e.source), ['cart']);
});

test('TCP rows make tcp edges with connection and byte rates', () => {
  const s = new TelemetryStore();
  const conn = (direction: 'inbound' | 'outbound', opened: number, bytesSent: number, bytesReceived: number): ConnectionStats => ({ direction, source: 'api', destination: 'redis', tls: true, opened, closed: opened, bytesSent, bytesReceived });
  s.record('default', 'api', report([], [conn('outbound', 4, 1000, 3000)]), T0 - 2000);
  s.record('default', 'redis', report([], [conn('inbound', 4, 1000, 3000)]), T0 - 2000);
  const edges = s.edges(10_000, T0);
  assert.equal(edges.length, 1);
  const e = edges[0]!;
  assert.deepEqual(
    { protocol: e.protocol, tls: e.tls, cps: e.connectionsPerSecond, bps: e.bytesPerSecond, requests: e.requests, p50: e.p50Ms, success: e.successRate },
    { protocol: 'tcp', tls: true, cps: 0.4, bps: 400, requests: 0, p50: null, success: null },
  );
  assert.deepEqual(s.top(10_000, T0).routes, [], 'top lists HTTP routes only');
});

test('expiry: slots after a minute, certificates after five minutes without a report', () => {
  const s = new TelemetryStore();
  const cert = { spiffeId: 'spiffe://weft.local/ns/default/svc/api', notAfter: '2030-01-01T00:00:00.000Z' };
  s.record('default', 'api', report([rq('inbound', 'unknown', 'api', false, { '200': 1 }, { 1: 1 })], [], { instance: 'api-0123456789ab', certificate: cert }), T0);
  s.record('default', 'api', report([], [], { instance: 'api-0123456789ab', certificate: { ...cert, notAfter: '2030-01-02T00:00:00.000Z' } }), T0 + 1000);
  s.record('default', 'api', report([], [], { instance: 'api-ba9876543210', certificate: cert }), T0 + 1000);
  assert.deepEqual(s.services(T0).map((x) => x.service), ['api'], 'unknown is no service');
  assert.deepEqual(
    s.certificates(T0 + 1000).map((c) => [c.instance, c.notAfter]),
    [['api-0123456789ab', '2030-01-02T00:00:00.000Z'], ['api-ba9876543210', '2030-01-01T00:00:00.000Z']],
    'the latest certificate per instance',
  );
  s.prune(T0 + 61_000);
  assert.equal(s.seriesCount, 0);
  assert.equal(s.certificates(T0 + 61_000).length, 2);
  s.prune(T0 + 1000 + CERTIFICATE_TTL_MS + 1);
  assert.equal(s.certificates(T0 + 1000 + CERTIFICATE_TTL_MS + 1).length, 0);
});

test('the series cap drops the least recently reported series', () => {
  const s = new TelemetryStore({ maxSeries: 3 });
  for (let i = 0; i < 5; i++) s.record('default', 'web', report([rq('outbound', 'web', `api${i}`, true, { '200': 1 }, { 1: 1 })]), T0 + i);
  // api2 reports again: it is now the most recent, so api3 goes next.
  s.record('default', 'web', report([rq('outbound', 'web', 'api2', true, { '200': 1 }, { 1: 1 })]), T0 + 10);
  s.record('default', 'web', report([rq('outbound', 'web', 'api5', true, { '200': 1 }, { 1: 1 })]), T0 + 11);
  assert.equal(s.seriesCount, 3);
  assert.equal(s.droppedSeries, 3);
  assert.deepEqual(s.edges(10_000, T0 + 11).map((e) => e.destination), ['api2', 'api4', 'api5']);
  // Rows with nothing in them make no series.
  s.record('default', 'web', report([rq('outbound', 'web', 'idle', true, {}, {})]), T0 + 12);
  assert.equal(s.droppedSeries, 3);
});
