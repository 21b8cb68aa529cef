/**
 * Telemetry through a real `weft server`: sidecars (curl with enrolled client
 * certificates, as the sidecar's reporter and tap client would) post reports and tap
 * events; `/v1/top`, `/v1/topology`, `/v1/certificates` answer from them; `weft tap` and
 * `weft top` show them; bad reports are refused with a 400 that says why; the control
 * plane's own metrics are on `/metrics`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runWeft, tempDir } from '../helpers/weft.js';
import { createToken, curl, opensslCsr, startServer } from '../helpers/control.js';
import { DURATION_BUCKETS } from '../../src/control/telemetry-wire.js';

const N = DURATION_BUCKETS.length + 1;
const buckets = (counts: Record<number, number>) => Array.from({ length: N }, (_, i) => counts[i] ?? 0);

test('telemetry reports feed top, topology and certificates; weft tap and weft top show them', async (t) => {
  const dir = await tempDir(t);
  const data = join(dir, 'data');
  const server = await startServer(t, data);
  const admin = ['-H', `Authorization: Bearer ${(await readFile(join(data, 'admin-token'), 'utf8')).trim()}`];
  const enroll = async (name: string, service: string): Promise<{ cert: string[]; notAfter: string }> => {
    const token = await createToken(server.url, data, ['--service', service]);
    const csr = await opensslCsr(dir, name, `spiffe://weft.local/ns/default/svc/${service}`);
    const r = await curl(data, ['--data-binary', JSON.stringify({ token, csr }), `${server.url}/v1/enroll`]);
    assert.equal(r.status, 200, r.body);
    const answer = JSON.parse(r.body) as { certificate: string; notAfter: string };
    await writeFile(join(dir, `${name}.pem`), answer.certificate);
    return { cert: ['--cert', join(dir, `${name}.pem`), '--key', join(dir, `${name}.key`)], notAfter: answer.notAfter };
  };
  const api = await enroll('api1', 'api');
  const web = await enroll('web1', 'web');
  let posted = 0;
  /** POSTs `body` as JSON (from a file: a report of 2000 rows is too long for argv). */
  const post = async (cert: string[], path: string, body: unknown) => {
    const file = join(dir, `body-${posted++}.json`);
    await writeFile(file, typeof body === 'string' ? body : JSON.stringify(body));
    return curl(data, [...cert, '--data-binary', `@${file}`, `${server.url}${path}`]);
  };
  const get = async <T>(path: string): Promise<T> => {
    const r = await curl(data, [...admin, `${server.url}${path}`]);
    assert.equal(r.status, 200, `${path}: ${r.body}`);
    return JSON.parse(r.body) as T;
  };

  // An api instance in the catalog, passing.
  const reg = await post(api.cert, '/v1/catalog/instances', { address: '198.18.0.2', port: 8443 });
  assert.equal(reg.status, 200, reg.body);
  const id = (JSON.parse(reg.body) as { id: string }).id;
  assert.equal((await curl(data, [...api.cert, '-X', 'PUT', '--data-binary', '{"healthy":true}', `${server.url}/v1/catalog/instances/${id}/report`])).status, 200);

  // web's sidecar saw 20 requests to api (2 of them 503s); api's saw the same 20, and 4 from a plaintext caller.
  const webReport = {
    instance: null,
    certificate: { spiffeId: 'spiffe://weft.local/ns/default/svc/web', notAfter: web.notAfter },
    requests: [{ direction: 'outbound', source: 'web', destination: 'api', tls: true, route: 'default/api-route/0', codes: { '200': 18, '503': 2 }, buckets: buckets({ 6: 10, 7: 10 }), sum: 0.3 }],
    connections: [{ direction: 'outbound', source: 'web', destination: 'redis', tls: true, opened: 6, closed: 6, bytesSent: 3000, bytesReceived: 9000 }],
  };
  const apiReport = {
    instance: id,
    certificate: { spiffeId: 'spiffe://weft.local/ns/default/svc/api', notAfter: api.notAfter },
    requests: [
      { direction: 'inbound', source: 'web', destination: 'api', tls: true, route: 'default/api-route/0', codes: { '200': 18, '503': 2 }, buckets: buckets({ 6: 10, 7: 10 }), sum: 0.3 },
      { direction: 'inbound', source: 'unknown', destination: 'api', tls: false, route: '-', codes: { '200': 4 }, buckets: buckets({ 3: 4 }), sum: 0.004 },
    ],
    connections: [],
  };
  for (const [cert, body] of [
    [web.cert, webReport],
    [api.cert, apiReport],
  ] as const) {
    const r = await post(cert, '/v1/telemetry', body);
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(JSON.parse(r.body), { intervalMs: 2000 });
  }

  // Bad reports: a 400 that names the problem; nothing kept.
  const refused = async (cert: string[], body: unknown, pattern: RegExp, status = 400) => {
    const r = await post(cert, '/v1/telemetry', body);
    assert.equal(r.status, status, r.body);
    assert.match((JSON.parse(r.body) as { error: { message: string } }).error.message, pattern);
  };
  const row = webReport.requests[0]!;
  await refused(web.cert, 'not json', /not JSON/);
  await refused(web.cert, { ...webReport, requests: {} }, /"requests" must be an array/);
  await refused(web.cert, { ...webReport, requests: [{ ...row, source: 'api' }] }, /outbound row's source must be the reporting service "web"/);
  await refused(web.cert, { ...webReport, requests: [{ ...row, codes: { '200': -1 } }] }, /codes\.200 must be a non-negative integer/);
  await refused(web.cert, { ...webReport, requests: [{ ...row, codes: { ok: 1 } }] }, /"ok" is not an HTTP status code/);
  await refused(web.cert, { ...webReport, requests: [{ ...row, buckets: [1, 2] }] }, /buckets must be an array of 18 counts/);
  await refused(web.cert, { ...webReport, requests: [{ ...row, direction: 'sideways' }] }, /direction must be "inbound" or "outbound"/);
  await refused(web.cert, { ...webReport, requests: Array.from({ length: 2001 }, () => row) }, /at most 2000 rows/);
  await refused(web.cert, { ...webReport, certificate: { spiffeId: 'spiffe://weft.local/ns/default/svc/api', notAfter: web.notAfter } }, /caller's own SPIFFE ID/);
  await refused([], webReport, /client certificate/, 401);

  type Route = { source: string; destination: string; route: string; tls: boolean; requests: number; requestsPerSecond: number; successRate: number | null; p50Ms: number | null; p99Ms: number | null };
  const top = await get<{ windowSeconds: number; routes: Route[] }>('/v1/top?window=60s');
  assert.equal(top.windowSeconds, 60);
  assert.deepEqual(
    top.routes.map((r) => [r.source, r.destination, r.route, r.tls, r.requests]),
    [
      ['web', 'api', 'default/api-route/0', true, 20],
      ['unknown', 'api', '-', false, 4],
    ],
    "the hop web -> api counts once, from web's outbound rows",
  );
  const webApi = top.routes[0]!;
  assert.equal(webApi.successRate, 0.9);
  assert.ok(Math.abs(webApi.requestsPerSecond - 20 / 60) < 1e-9);
  assert.ok(Math.abs(webApi.p50Ms! - 10) < 1e-9 && Math.abs(webApi.p99Ms! - 24.7) < 1e-9, JSON.stringify(webApi));
  assert.equal((await curl(data, [...admin, `${server.url}/v1/top?window=2m`])).status, 400);
  assert.equal((await curl(data, [`${server.url}/v1/top`])).status, 401, 'the admin token is needed');

  type Topology = { services: { service: string; instances: number; passing: number; mtls: string | null }[]; edges: { source: string; destination: string; protocol: string; tls: boolean; requests: number; connectionsPerSecond: number; bytesPerSecond: number }[] };
  const topo = await get<Topology>('/v1/topology?window=60s');
  assert.deepEqual(
    topo.services.map((s) => [s.service, s.instances, s.passing, s.mtls]),
    [
      ['api', 1, 1, 'permissive'],
      ['redis', 0, 0, 'permissive'],
      ['web', 0, 0, 'permissive'],
    ],
  );
  assert.deepEqual(
    topo.edges.map((e) => [e.source, e.destination, e.protocol, e.tls, e.requests]),
    [
      ['unknown', 'api', 'http', false, 4],
      ['web', 'api', 'http', true, 20],
      ['web', 'redis', 'tcp', true, 0],
    ],
  );
  const redis = topo.edges.find((e) => e.protocol === 'tcp')!;
  assert.ok(Math.abs(redis.connectionsPerSecond - 0.1) < 1e-9 && Math.abs(redis.bytesPerSecond - 200) < 1e-9, JSON.stringify(redis));

  const certs = await get<{ ca: { role: string; subject: string; notAfter: string }[]; sidecars: { service: string; instance: string | null; notAfter: string }[] }>('/v1/certificates');
  assert.deepEqual(certs.ca.map((c) => c.role), ['intermediate', 'root']);
  assert.ok(certs.ca.every((c) => c.subject !== '' && Date.parse(c.notAfter) > Date.now()));
  assert.deepEqual(
    certs.sidecars.map((s) => [s.service, s.instance, s.notAfter]),
    [
      ['api', id, api.notAfter],
      ['web', null, web.notAfter],
    ],
  );

  // weft top --once: the same figures as a table.
  const topOut = await runWeft(['top', '--once', '--window', '60s', '--server', server.url, '--data', data]);
  assert.equal(topOut.code, 0, topOut.stderr);
  const lines = topOut.stdout.trimEnd().split('\n');
  assert.match(lines[0]!, /^SOURCE\s+DESTINATION\s+ROUTE\s+RPS\s+SUCCESS\s+P50\s+P99$/);
  assert.match(lines[1]!, /^web\s+api\s+default\/api-route\/0\s+0\.3\s+90\.0%\s+10\.0ms\s+24\.7ms$/);
  assert.match(lines[2]!, /^unknown \(plaintext\)\s+api\s+-\s+0\.1\s+100\.0%/);

  // A tap: api's sidecar long-polls its sessions, as the tap client does.
  const sessionsOf = async (cert: string[], version: string | null) => {
    const r = await curl(data, [...cert, '--max-time', '35', ...(version !== null ? ['-H', `If-None-Match: "${version}"`] : []), `${server.url}/v1/tap/sessions`]);
    return { status: r.status, body: r.status === 200 ? (JSON.parse(r.body) as { version: string; sessions: { id: string; path: string | null; method: string | null }[] }) : null };
  };
  const first = await sessionsOf(api.cert, null);
  assert.equal(first.status, 200);
  assert.deepEqual(first.body!.sessions, []);
  const poll = sessionsOf(api.cert, first.body!.version);
  const tap = runWeft(['tap', 'api', '--count', '2', '--json', '--timeout', '20s', '--server', server.url, '--data', data]);
  const woke = await poll;
  assert.equal(woke.status, 200);
  assert.equal(woke.body!.sessions.length, 1);
  const session = woke.body!.sessions[0]!;
  assert.deepEqual([session.path, session.method], [null, null]);
  const event = (sessions: string[], path: string, status = 200) => ({
    direction: 'inbound',
    source: 'web',
    destination: 'api',
    tls: true,
    sessions,
    time: new Date().toISOString(),
    sourceIdentity: 'spiffe://weft.local/ns/default/svc/web',
    protocol: 'http/1.1',
    method: 'GET',
    path,
    authority: 'api',
    route: 'default/api-route/0',
    status,
    error: status === 503 ? 'upstream_unavailable' : null,
    latencyMs: 12.5,
    upstream: '127.0.0.1:9000',
    attempts: 1,
    traceId: null,
  });
  // web cannot feed api's session; unknown session ids are ignored.
  const spoof = await post(web.cert, '/v1/tap/events', { events: [{ ...event([session.id], '/spoof'), direction: 'outbound', source: 'web', destination: 'api' }] });
  assert.equal(spoof.status, 200, spoof.body);
  assert.deepEqual(JSON.parse(spoof.body), { delivered: 0 });
  const fed = await post(api.cert, '/v1/tap/events', { events: [event([session.id, 'ffffffff'], '/orders/1'), event([session.id], '/orders/2', 503)] });
  assert.deepEqual(JSON.parse(fed.body), { delivered: 2 });
  assert.equal((await post(api.cert, '/v1/tap/events', { events: [{ ...event([session.id], '/x'), status: 99 }] })).status, 400);
  const tapped = await tap;
  assert.equal(tapped.code, 0, tapped.stderr);
  assert.match(tapped.stderr, /^tapping api \(1 sidecar\)…/);
  const tapLines = tapped.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(tapLines[0], { type: 'started', service: 'api', namespace: 'default', sidecars: 1 });
  assert.deepEqual(tapLines.slice(1).map((l) => [l['type'], l['path'], l['status'], l['error'], 'sessions' in l]), [
    ['request', '/orders/1', 200, null, false],
    ['request', '/orders/2', 503, 'upstream_unavailable', false],
  ]);

  // The session ended with its client: the sidecar learns an empty set.
  const after = await sessionsOf(api.cert, woke.body!.version);
  assert.equal(after.status, 200);
  assert.deepEqual(after.body!.sessions, []);

  // A filtered tap in the readable form: the server passes only what matches.
  const poll2 = sessionsOf(api.cert, after.body!.version);
  const tap2 = runWeft(['tap', 'api', '--method', 'post', '--path', '/orders', '--count', '1', '--timeout', '20s', '--server', server.url, '--data', data]);
  const s2 = (await poll2).body!.sessions[0]!;
  assert.deepEqual([s2.path, s2.method], ['/orders', 'POST']);
  await post(api.cert, '/v1/tap/events', { events: [event([s2.id], '/orders/3'), { ...event([s2.id], '/orders/4'), method: 'POST', status: 201 }] });
  const readable = await tap2;
  assert.equal(readable.code, 0, readable.stderr);
  assert.match(readable.stdout, /^\d\d:\d\d:\d\d\.\d{3}\s+in\s+web -> api\s+POST\s+\/orders\/4\s+route=default\/api-route\/0\s+201\s+12\.5ms\n$/);

  // Bad tap requests.
  for (const q of ['', '?service=API', '?service=api&method=G1', '?service=api&path=orders']) {
    assert.equal((await curl(data, [...admin, `${server.url}/v1/tap${q}`])).status, 400, q);
  }
  // A tap that sees nothing within its timeout with --count exits 1.
  const idle = await runWeft(['tap', 'api', '--count', '1', '--timeout', '1s', '--server', server.url, '--data', data]);
  assert.equal(idle.code, 1);
  assert.match(idle.stderr, /0 of 1 requests within 1s/);

  // The control plane's metrics.
  assert.equal((await curl(data, [...web.cert, `${server.url}/v1/snapshot`])).status, 200);
  const metrics = (await curl(data, [`${server.url}/metrics`])).body;
  const value = (pattern: RegExp) => Number(pattern.exec(metrics)?.[1] ?? NaN);
  assert.equal(value(/^weft_server_snapshot_pushes_total (\d+)$/m), 1);
  assert.equal(value(/^weft_server_csr_total\{via="join-token",result="signed"\} (\d+)$/m), 2);
  assert.equal(value(/^weft_server_telemetry_reports_total (\d+)$/m), 2);
  assert.equal(value(/^weft_server_tap_sessions (\d+)$/m), 0);
  assert.equal(value(/^weft_server_sidecars_connected (\d+)$/m), 0);
  assert.ok(value(/^weft_server_store_operation_duration_seconds_count\{operation="get"\} (\d+)$/m) > 0, metrics);
  assert.match(metrics, /^weft_server_store_operation_duration_seconds_bucket\{le="0\.0001",operation="put"\} \d+$/m);
});
