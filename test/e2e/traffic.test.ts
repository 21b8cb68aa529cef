// Traffic management through real sidecars on loopback, configured in the sidecars' static
// files (the same engine as connected mode): header matches and filters, retries and the
// retry budget, timeouts, circuit breaking, outlier detection, load balancing, rate limits
// and fault injection. Every instance is an app in this process behind its own sidecar.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeCa, tempDir, admin, metricValue, startSidecar } from '../helpers/weft.js';
import { endpoint, fire, startCaller, startInstances, upstreamYaml, type InstanceHandler } from '../helpers/traffic.js';

async function setup(t: import('node:test').TestContext) {
  const dir = await tempDir(t);
  return { dir, ca: await makeCa(dir) };
}

/** 4 standard deviations of a binomial count: a correct proxy fails this bound about once in 15,000 runs. */
function band(n: number, p: number): [number, number] {
  const sd = Math.sqrt(n * p * (1 - p));
  return [n * p - 4 * sd, n * p + 4 * sd];
}

test('header match sends x-canary: 1 to v2 only; path rewrite and header modifiers reach the app', async (t) => {
  const { dir, ca } = await setup(t);
  const [v1, v2] = await startInstances(t, ca, 'api', [{ name: 'v1' }, { name: 'v2' }]);
  const caller = await startCaller(
    t,
    dir,
    ca,
    upstreamYaml('api', `[${endpoint(v1!, { version: 'v1' })}, ${endpoint(v2!, { version: 'v2' })}]`) +
    `    routes:
      - kind: HTTPRoute
        name: api
        rules:
          - matches: [{ path: { type: PathPrefix, value: /api }, headers: [{ name: x-canary, value: "1" }] }]
            backendRefs: [{ name: api, subset: { version: v2 } }]
          - matches: [{ path: { type: PathPrefix, value: /old } }]
            filters:
              - type: URLRewrite
                urlRewrite: { path: { type: ReplacePrefixMatch, replacePrefixMatch: /new } }
              - type: RequestHeaderModifier
                requestHeaderModifier: { set: [{ name: x-env, value: prod }], add: [{ name: x-added, value: yes }], remove: [x-secret] }
              - type: ResponseHeaderModifier
                responseHeaderModifier: { set: [{ name: x-served-by, value: weft }] }
            backendRefs: [{ name: api, subset: { version: v1 } }]
          - matches: [{ path: { type: PathPrefix, value: /api } }]
            filters:
              - type: RequestMirror
                requestMirror: { backendRef: { name: api, subset: { version: v2 } }, percent: 100 }
            backendRefs: [{ name: api, subset: { version: v1 } }]
          - matches: [{ path: { type: Exact, value: /moved } }]
            filters:
              - type: RequestRedirect
                requestRedirect: { path: { type: ReplaceFullPath, replaceFullPath: /api/here }, statusCode: 301 }
`,
  );
  // Same path prefix: the rule with a header match takes precedence (Gateway API).
  const canary = await fire(caller.url, { n: 50, concurrency: 4, path: '/api/x', headers: { 'x-canary': '1' } });
  assert.deepEqual(canary.bodies, { v2: 50 });
  const mirroredBefore = v2!.hits;
  const plain = await fire(caller.url, { n: 50, concurrency: 4, path: '/api/x' });
  assert.deepEqual(plain.bodies, { v1: 50 });
  // RequestMirror: v2 gets a copy of each (its answers are dropped).
  const deadline = Date.now() + 5_000;
  while (v2!.hits - mirroredBefore < 50 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.equal(v2!.hits - mirroredBefore, 50, 'every request mirrored to v2');

  const moved = await fire(caller.url, { n: 1, path: '/moved' });
  assert.equal(moved.answers[0]!.status, 301);
  assert.equal(moved.answers[0]!.headers['location'], `http://${new URL(caller.url).host}/api/here`);

  const before = v1!.seen.length;
  const rewritten = await fire(caller.url, { n: 1, path: '/old/items?id=7', headers: { 'x-secret': 's3', 'x-env': 'dev' } });
  assert.equal(rewritten.answers[0]!.status, 200);
  assert.equal(rewritten.answers[0]!.headers['x-served-by'], 'weft');
  const seen = v1!.seen.slice(before).at(-1)!;
  assert.equal(seen.url, '/new/items?id=7');
  assert.equal(seen.headers['x-env'], 'prod');
  assert.equal(seen.headers['x-added'], 'yes');
  assert.equal(seen.headers['x-secret'], undefined);

  // Routes are attached: what no rule matches is 404, as the Gateway API says.
  const none = await fire(caller.url, { n: 1, path: '/elsewhere' });
  assert.equal(none.answers[0]!.status, 404);
  assert.equal(none.answers[0]!.headers['weft-error'], 'WEFT_E_NO_ROUTE');
});

test('retries on 503 turn a 50% failing instance into >99% success within the budget; an exhausted budget lets failures through', async (t) => {
  const { dir, ca } = await setup(t);
  const flaky: InstanceHandler = (_req, res, i) => {
    if (Math.random() < 0.5) {
      res.statusCode = 503;
      res.end('unavailable');
    } else {
      res.end(i.name);
    }
  };
  const [api] = await startInstances(t, ca, 'api', [{ name: 'api', handler: flaky }]);
  const upstream = (budget: string) => upstreamYaml('api', `["${api!.address}"]`) +
    `    trafficPolicy:
      retryBudget: ${budget}
    routes:
      - kind: HTTPRoute
        name: api
        rules:
          - retry: { attempts: 10, codes: [503], backoff: 1ms }
            backendRefs: [{ name: api }]
`;
  // Each request needs about one retry on average: a budget of 150% of requests holds.
  const caller = await startCaller(t, dir, ca, upstream('{ percent: 150, minRetriesPerSecond: 10, ttl: 10s }'));
  const n = 1000;
  const held = await fire(caller.url, { n, concurrency: 4 });
  const ok = held.statuses[200] ?? 0;
  t.diagnostic(`budget holds: ${ok}/${n} succeeded, ${api!.hits} attempts at the app`);
  assert.ok(ok / n > 0.99, `success rate ${ok / n}`);
  const retried = await admin(caller.admin, '/metrics');
  assert.ok(metricValue(retried.body, 'weft_retries_total', { direction: 'outbound', service: 'api' }) >= api!.hits - n);

  // A budget of 10% (and at least 1 retry/s): failures pass through instead of multiplying load.
  await caller.update(upstream('{ percent: 10, minRetriesPerSecond: 1, ttl: 10s }'));
  const hitsBefore = api!.hits;
  const exhausted = await fire(caller.url, { n, concurrency: 4 });
  const attempts = api!.hits - hitsBefore;
  const failed = exhausted.statuses[503] ?? 0;
  t.diagnostic(`budget exhausted: ${failed}/${n} failed, ${attempts} attempts (${(attempts / n).toFixed(2)} per request)`);
  // Unbounded retries would take ~2 attempts per request; the budget allows ~1.1 + 1/s.
  assert.ok(attempts / n < 1.3, `attempts per request ${attempts / n}`);
  assert.ok(failed > n * 0.3, `failures passed through: ${failed}`);
});

test('a slow backend answers 504 at the route timeout', async (t) => {
  const { dir, ca } = await setup(t);
  const slow: InstanceHandler = (_req, res) => void setTimeout(() => res.end('late'), 3_000);
  const [api] = await startInstances(t, ca, 'api', [{ name: 'api', handler: slow }]);
  const caller = await startCaller(
    t,
    dir,
    ca,
    upstreamYaml('api', `["${api!.address}"]`) +
    `    routes:
      - kind: HTTPRoute
        name: api
        rules:
          - timeouts: { request: 400ms }
            backendRefs: [{ name: api }]
`,
  );
  const r = await fire(caller.url, { n: 5, concurrency: 5 });
  for (const a of r.answers) {
    assert.equal(a.status, 504);
    assert.equal(a.headers['weft-error'], 'WEFT_E_TIMEOUT');
    // Tolerance: the timer fires at 400 ms; the answer crosses a loopback sidecar (+ up to 150 ms on a busy 2-core machine).
    assert.ok(a.ms >= 390 && a.ms < 550 + 150, `answered after ${a.ms.toFixed(0)} ms`);
  }
});

test('circuit breaking: with maxRequests N, a burst of 3N slow requests lets at most N reach the app; the rest get 503 at once', async (t) => {
  const { dir, ca } = await setup(t);
  const N = 5;
  const slow: InstanceHandler = (_req, res, i) => void setTimeout(() => res.end(i.name), 600);
  const [api] = await startInstances(t, ca, 'api', [{ name: 'api', handler: slow }]);
  const caller = await startCaller(
    t,
    dir,
    ca,
    upstreamYaml('api', `["${api!.address}"]`) +
    `    trafficPolicy:
      connectionPool: { maxRequests: ${N} }
`,
  );
  const burst = await fire(caller.url, { n: 3 * N, concurrency: 3 * N });
  const overflow = burst.answers.filter((a) => a.status === 503);
  t.diagnostic(`at most ${api!.maxInFlight} at the app; ${overflow.length} overflowed`);
  assert.ok(api!.maxInFlight <= N, `the app saw ${api!.maxInFlight} at once`);
  assert.equal(burst.statuses[200], N);
  assert.equal(overflow.length, 2 * N);
  for (const a of overflow) {
    assert.equal(a.headers['weft-error'], 'WEFT_E_OVERFLOW');
    assert.ok(a.ms < 300, `overflow answered after ${a.ms.toFixed(0)} ms`);
  }
});

test('outlier detection ejects an endpoint that returns 500s and brings it back after the ejection time', async (t) => {
  const { dir, ca } = await setup(t);
  let broken = true;
  const bad: InstanceHandler = (_req, res, i) => {
    res.statusCode = broken ? 500 : 200;
    res.end(i.name);
  };
  const instances = await startInstances(t, ca, 'api', [{ name: 'a' }, { name: 'b' }, { name: 'bad', handler: bad }]);
  const caller = await startCaller(
    t,
    dir,
    ca,
    upstreamYaml('api', `[${instances.map((i) => `"${i.address}"`).join(', ')}]`) +
    `    trafficPolicy:
      loadBalancer: { policy: RoundRobin }
      outlierDetection: { consecutive5xx: 3, baseEjectionTime: 3s, maxEjectionPercent: 50 }
`,
  );
  const badOne = instances[2]!;
  await fire(caller.url, { n: 30, concurrency: 1 });
  assert.equal(badOne.hits, 3, 'ejected after exactly 3 consecutive 500s (one client, round robin)');
  const ejectedAt = Date.now();
  const during = await fire(caller.url, { n: 60, concurrency: 2 });
  assert.ok(Date.now() - ejectedAt < 2_500, 'the check ran inside the ejection time');
  assert.equal(badOne.hits, 3, 'no traffic while ejected');
  assert.equal(during.statuses[200], 60);
  broken = false;
  await new Promise((r) => setTimeout(r, 3_200 - (Date.now() - ejectedAt)));
  await fire(caller.url, { n: 30, concurrency: 1 });
  assert.ok(badOne.hits >= 3 + 9, `back after the ejection time: ${badOne.hits - 3} requests`);
});

test('least request sends a slow endpoint clearly less traffic than round robin does', async (t) => {
  const { dir, ca } = await setup(t);
  const slow: InstanceHandler = (_req, res, i) => void setTimeout(() => res.end(i.name), 100);
  const fast: InstanceHandler = (_req, res, i) => void setTimeout(() => res.end(i.name), 5);
  const instances = await startInstances(t, ca, 'api', [
    { name: 'slow', handler: slow },
    { name: 'fast1', handler: fast },
    { name: 'fast2', handler: fast },
  ]);
  const upstream = (policy: string) => upstreamYaml('api', `[${instances.map((i) => `"${i.address}"`).join(', ')}]`) +
    `    trafficPolicy:
      loadBalancer: { policy: ${policy} }
`;
  const caller = await startCaller(t, dir, ca, upstream('RoundRobin'));
  const rr = await fire(caller.url, { n: 600, concurrency: 6 });
  await caller.update(upstream('LeastRequest'));
  const lr = await fire(caller.url, { n: 600, concurrency: 6 });
  const rrShare = (rr.bodies['slow'] ?? 0) / 600;
  const lrShare = (lr.bodies['slow'] ?? 0) / 600;
  t.diagnostic(`slow endpoint's share: round robin ${(rrShare * 100).toFixed(1)}%, least request ${(lrShare * 100).toFixed(1)}%`);
  assert.ok(rrShare > 0.3, `round robin gives each endpoint a third: ${rrShare}`);
  assert.ok(lrShare < rrShare / 2, `least request: ${lrShare} vs round robin ${rrShare}`);
});

test('rate limit: 429 beyond the configured rate, counted per caller', async (t) => {
  const { dir, ca } = await setup(t);
  // The limit is the destination's: set on its own sidecar (inbound), one bucket per caller identity.
  const app = createServer((_req, res) => res.end('ok'));
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => app.close(() => r())));
  const file = join(dir, 'limited.yaml');
  await writeFile(
    file,
    `service: limited\nidentity:\n  issuer: { dir: ${ca} }\nadmin:\n  listen: 127.0.0.1:0\ninbound:\n  listen: 127.0.0.1:0\n  app: 127.0.0.1:${(app.address() as AddressInfo).port}\n  protocol: http\n  trafficPolicy:\n    rateLimit: { requestsPerSecond: 5, burst: 10, perCaller: true }\n`,
  );
  const dest = await startSidecar(t, ['-c', file]);
  const upstream = upstreamYaml('limited', `["${dest.listeners['inbound']!}"]`) +
    ``;
  const web = await startCaller(t, dir, ca, upstream, 'web');
  const batch = await startCaller(t, dir, ca, upstream, 'batch');
  const a = await fire(web.url, { n: 30, concurrency: 1 });
  const b = await fire(batch.url, { n: 30, concurrency: 1 });
  t.diagnostic(`web: ${JSON.stringify(a.statuses)}, batch: ${JSON.stringify(b.statuses)}`);
  // Each caller has its own bucket of 10, refilled at 5/s while its 30 requests run (well under a second on loopback).
  for (const r of [a, b]) {
    const ok = r.statuses[200] ?? 0;
    assert.ok(ok >= 10 && ok <= 16, JSON.stringify(r.statuses));
    assert.equal(ok + (r.statuses[429] ?? 0), 30);
    assert.equal(r.answers.find((x) => x.status === 429)?.headers['weft-error'], 'WEFT_E_RATE_LIMITED');
  }
});

test('fault injection: 10% aborts and a 1 s delay for 20% show up within tolerance', async (t) => {
  const { dir, ca } = await setup(t);
  const [api] = await startInstances(t, ca, 'api', [{ name: 'api' }]);
  const caller = await startCaller(
    t,
    dir,
    ca,
    upstreamYaml('api', `["${api!.address}"]`) +
    `    trafficPolicy:
      faultInjection:
        delay: { fixed: 1s, percent: 20 }
        abort: { status: 503, percent: 10 }
`,
  );
  const n = 1000;
  const r = await fire(caller.url, { n, concurrency: 50 });
  const aborted = r.answers.filter((a) => a.status === 503 && a.headers['weft-error'] === 'WEFT_E_FAULT_ABORT').length;
  // 1 s apart from the undelayed answers (a few ms): a loaded machine does not blur the two.
  const delayed = r.answers.filter((a) => a.status === 200 && a.ms >= 990).length;
  const served = r.statuses[200] ?? 0;
  t.diagnostic(`${aborted} aborted, ${delayed} of ${served} served were delayed`);
  const [aLo, aHi] = band(n, 0.1);
  assert.ok(aborted >= aLo && aborted <= aHi, `aborted ${aborted} outside [${aLo.toFixed(0)}, ${aHi.toFixed(0)}]`);
  // Delays are drawn independently of aborts: 20% of the served requests.
  const [dLo, dHi] = band(served, 0.2);
  assert.ok(delayed >= dLo && delayed <= dHi, `delayed ${delayed} outside [${dLo.toFixed(0)}, ${dHi.toFixed(0)}]`);
  assert.equal(aborted + served, n);
});

test('TCPRoute splits TCP connections by weight between subsets', async (t) => {
  const { dir, ca } = await setup(t);
  const { createServer: createNet } = await import('node:net');
  const instances: string[] = [];
  for (const name of ['blue', 'green']) {
    const server = createNet((socket) => socket.end(name));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    t.after(() => new Promise<void>((r) => server.close(() => r())));
    const sidecar = await startSidecar(t, ['--service', 'db', '--issuer', ca, '--inbound', '127.0.0.1:0', '--app', `127.0.0.1:${(server.address() as AddressInfo).port}`, '--protocol', 'tcp', '--admin', '127.0.0.1:0']);
    instances.push(sidecar.listeners['inbound']!);
  }
  const caller = await startCaller(
    t,
    dir,
    ca,
    `  - name: db
    listen: 127.0.0.1:0
    protocol: tcp
    endpoints: [{ address: "${instances[0]}", metadata: { color: blue } }, { address: "${instances[1]}", metadata: { color: green } }]
    routes:
      - kind: TCPRoute
        name: db
        rules:
          - backendRefs: [{ name: db, subset: { color: blue }, weight: 3 }, { name: db, subset: { color: green }, weight: 1 }]
`,
  );
  const { connect } = await import('node:net');
  const { hostname, port } = new URL(caller.url);
  const counts: Record<string, number> = {};
  const n = 400;
  for (let i = 0; i < n; i++) {
    const answer = await new Promise<string>((resolve) => {
      const socket = connect(Number(port), hostname);
      let data = '';
      socket.on('data', (d) => (data += d.toString()));
      socket.on('close', () => resolve(data));
      socket.on('error', () => resolve('error'));
    });
    counts[answer] = (counts[answer] ?? 0) + 1;
  }
  t.diagnostic(`connections: ${JSON.stringify(counts)}`);
  const [lo, hi] = band(n, 0.25);
  assert.equal((counts['blue'] ?? 0) + (counts['green'] ?? 0), n);
  assert.ok((counts['green'] ?? 0) >= lo && (counts['green'] ?? 0) <= hi, `green got ${counts['green']}`);
});
