/**
 * The sidecars' Prometheus metrics match the traffic a test sends through the demo mesh,
 * label by label: successes, the app's 5xx, route timeouts and plaintext callers of api
 * (counters by source and destination service and identity, route, response class and
 * code; duration histograms that put each request in the right bucket), the timeouts
 * counter, and TCP connections and bytes each way. Only the difference between a scrape
 * before and after the scripted traffic is compared, so warm-up requests do not count.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DemoMesh, demoPorts } from '../../src/cli/demo-mesh.js';
import { runWeft } from '../helpers/weft.js';

const TD = 'demo.weft.internal';
const WEB_ID = `spiffe://${TD}/ns/default/svc/web`;
const API_ID = `spiffe://${TD}/ns/default/svc/api`;
const ECHO_ID = `spiffe://${TD}/ns/default/svc/echo`;
/** demo.test.ts uses 31000 and 31500, dashboard.test.ts 29000: this range is the metrics test's own. */
const BASE_PORT = 27000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Prometheus text → value by `name{labels}` exactly as exposed. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    out.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return out;
}

/** `name{k="v",…}` with the labels in the order given (the order the sidecar exposes them in). */
function series(name: string, labels: Record<string, string>): string {
  return `${name}{${Object.entries(labels).map(([k, v]) => `${k}="${v}"`).join(',')}}`;
}

async function scrape(port: number): Promise<Map<string, number>> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  return samples(await res.text());
}

/** after − before for one series (0 when absent in both). */
function delta(before: Map<string, number>, after: Map<string, number>, key: string): number {
  return (after.get(key) ?? 0) - (before.get(key) ?? 0);
}

async function get(port: number, path: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  await res.text();
  return res.status;
}

/** One TCP connection through `port` that sends `bytes` and reads the echo back. */
function echoOnce(port: number, bytes: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => s.write(Buffer.alloc(bytes, 1)));
    let n = 0;
    s.on('data', (d: Buffer) => {
      n += d.length;
      if (n >= bytes) s.end();
    });
    s.on('close', () => resolve(n));
    s.on('error', reject);
    s.setTimeout(10_000, () => s.destroy(new Error('echo timed out')));
  });
}

test('metrics match scripted traffic through the demo mesh, label by label', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'weft-metrics-'));
  const mesh = new DemoMesh({ dir, ports: demoPorts(BASE_PORT), tcp: { name: 'echo', redisCli: false } });
  t.after(() => mesh.stop());
  await mesh.start();
  const p = mesh.ports;
  const routes = join(dir, 'api-timeouts.yaml');
  await writeFile(
    routes,
    `kind: HTTPRoute
metadata: { name: api-timeouts }
spec:
  parentRefs: [{ kind: Service, name: api }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /slow } }]
      timeouts: { request: 300ms }
      backendRefs: [{ name: api }]
    - backendRefs: [{ name: api }]
`,
  );
  const applied = await runWeft(['apply', '-f', routes, '--server', mesh.serverUrl, '--data', mesh.data]);
  assert.equal(applied.code, 0, applied.stderr);
  // Warm-up: api is in web's catalog, the route reached web (a slow call times out), echo answers.
  const deadline = Date.now() + 30_000;
  while ((await get(p.webToApi, '/ok').catch(() => 0)) !== 200 || (await get(p.webToApi, '/slow?ms=600').catch(() => 0)) !== 504) {
    assert.ok(Date.now() < deadline, 'the mesh never served api with the timeout route');
    await sleep(200);
  }
  while ((await echoOnce(p.webToTcp, 10).catch(() => 0)) !== 10) {
    assert.ok(Date.now() < deadline, 'the echo service never answered through the mesh');
    await sleep(200);
  }
  await sleep(800); // the warm-up's last timed-out call reaches api's sidecar as a 499
  const before = { web: await scrape(p.webAdmin), api: await scrape(p.apiAdmin), echo: await scrape(p.tcpAdmin) };

  // The script: web → api successes, the app's 503s, route timeouts; plaintext callers of api; TCP through web.
  const sent = { ok: 20, fail: 5, slow: 3, plain: 4, tcp: 2, tcpBytes: 3000 };
  for (let i = 0; i < sent.ok; i++) assert.equal(await get(p.webToApi, `/ok/${i}?q=${i}`), 200);
  for (let i = 0; i < sent.fail; i++) assert.equal(await get(p.webToApi, '/fail'), 503);
  for (let i = 0; i < sent.slow; i++) assert.equal(await get(p.webToApi, '/slow?ms=1500'), 504);
  for (let i = 0; i < sent.plain; i++) assert.equal(await get(p.apiInbound, '/plain'), 200);
  for (let i = 0; i < sent.tcp; i++) assert.equal(await echoOnce(p.webToTcp, sent.tcpBytes), sent.tcpBytes);

  // api's sidecar counts the timed-out calls when web's sidecar hangs up on them (499).
  const inbound = { direction: 'inbound', service: 'api', source_service: 'web', source_identity: WEB_ID, destination_identity: API_ID, tls: 'true' };
  let after = { web: await scrape(p.webAdmin), api: await scrape(p.apiAdmin), echo: await scrape(p.tcpAdmin) };
  const settle = Date.now() + 5_000;
  const key499 = series('weft_requests_total', { ...inbound, route: '-', response_class: '4xx', code: '499' });
  while (delta(before.api, after.api, key499) < sent.slow || delta(before.echo, after.echo, series('weft_tcp_connections_closed_total', { direction: 'inbound', service: 'echo', source_service: 'web', source_identity: WEB_ID, destination_identity: ECHO_ID, tls: 'true' })) < sent.tcp) {
    if (Date.now() > settle) break;
    await sleep(100);
    after = { web: await scrape(p.webAdmin), api: await scrape(p.apiAdmin), echo: await scrape(p.tcpAdmin) };
  }

  const outbound = { direction: 'outbound', service: 'api', source_service: 'web', source_identity: WEB_ID, destination_identity: API_ID, tls: 'true' };
  const plain = { direction: 'inbound', service: 'api', source_service: 'unknown', source_identity: 'unknown', destination_identity: API_ID, tls: 'false' };
  const slowRoute = 'default/api-timeouts/0';
  const mainRoute = 'default/api-timeouts/1';
  const expected: [string, Map<string, number>, Map<string, number>, number][] = [
    // web's outbound listener: by route, response class and code.
    [series('weft_requests_total', { ...outbound, route: mainRoute, response_class: '2xx', code: '200' }), before.web, after.web, sent.ok],
    [series('weft_requests_total', { ...outbound, route: mainRoute, response_class: '5xx', code: '503' }), before.web, after.web, sent.fail],
    [series('weft_requests_total', { ...outbound, route: slowRoute, response_class: '5xx', code: '504' }), before.web, after.web, sent.slow],
    [series('weft_request_duration_seconds_count', { ...outbound, route: mainRoute }), before.web, after.web, sent.ok + sent.fail],
    [series('weft_request_duration_seconds_count', { ...outbound, route: slowRoute }), before.web, after.web, sent.slow],
    // The timeouts took about 300 ms: none at or under 250 ms, all at or under 500 ms.
    [series('weft_request_duration_seconds_bucket', { le: '0.25', ...outbound, route: slowRoute }), before.web, after.web, 0],
    [series('weft_request_duration_seconds_bucket', { le: '0.5', ...outbound, route: slowRoute }), before.web, after.web, sent.slow],
    [series('weft_timeouts_total', { direction: 'outbound', service: 'api' }), before.web, after.web, sent.slow],
    [series('weft_errors_total', { direction: 'outbound', service: 'api', error: 'WEFT_E_TIMEOUT' }), before.web, after.web, sent.slow],
    // api's inbound listener: the mesh caller (no route inbound) and the plaintext one.
    [series('weft_requests_total', { ...inbound, route: '-', response_class: '2xx', code: '200' }), before.api, after.api, sent.ok],
    [series('weft_requests_total', { ...inbound, route: '-', response_class: '5xx', code: '503' }), before.api, after.api, sent.fail],
    [key499, before.api, after.api, sent.slow],
    [series('weft_requests_total', { ...plain, route: '-', response_class: '2xx', code: '200' }), before.api, after.api, sent.plain],
    [series('weft_request_duration_seconds_count', { ...plain, route: '-' }), before.api, after.api, sent.plain],
    // TCP through web's outbound listener to echo's sidecar: connections and bytes each way, on both sides.
    ...(['web', 'echo'] as const).flatMap((side) => {
      const hop = { direction: side === 'web' ? 'outbound' : 'inbound', service: 'echo', source_service: 'web', source_identity: WEB_ID, destination_identity: ECHO_ID, tls: 'true' };
      const b = before[side];
      const a = after[side];
      return [
        [series('weft_tcp_connections_opened_total', hop), b, a, sent.tcp],
        [series('weft_tcp_connections_closed_total', hop), b, a, sent.tcp],
        [series('weft_tcp_sent_bytes_total', hop), b, a, sent.tcp * sent.tcpBytes],
        [series('weft_tcp_received_bytes_total', hop), b, a, sent.tcp * sent.tcpBytes],
      ] as [string, Map<string, number>, Map<string, number>, number][];
    }),
  ];
  const wrong = expected.filter(([key, b, a, n]) => delta(b, a, key) !== n).map(([key, b, a, n]) => `${key}: ${delta(b, a, key)}, expected ${n}`);
  assert.deepEqual(wrong, [], `series that do not match the traffic sent:\n${wrong.join('\n')}`);

  // Nothing else moved: every request series that changed is one of the above.
  const requestKeys = new Set(expected.map(([key]) => key).filter((k) => k.startsWith('weft_requests_total')));
  for (const [side, b, a] of [['web', before.web, after.web], ['api', before.api, after.api]] as const) {
    for (const key of a.keys()) {
      if (key.startsWith('weft_requests_total') && delta(b, a, key) !== 0) assert.ok(requestKeys.has(key), `${side}: unexpected change in ${key}`);
    }
  }
  // Labels stay bounded: no path, query or address appears in any label value.
  for (const m of [after.web, after.api, after.echo]) {
    for (const key of m.keys()) assert.doesNotMatch(key, /\/ok|\/fail|\/slow|\/plain|127\.0\.0\.1|q=/, `a label holds a path or address: ${key}`);
  }
  // Histograms resolve sub-millisecond overhead: the buckets start at 100 µs.
  assert.ok(after.web.has(series('weft_request_duration_seconds_bucket', { le: '0.0001', ...outbound, route: mainRoute })));
});
