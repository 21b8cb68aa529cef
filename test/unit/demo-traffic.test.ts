/**
 * DemoTraffic (weft demo's background traffic): each loop calls what it should at its pace,
 * with at most one call in flight, and stop() ends them promptly with nothing sent after.
 * Real loopback listeners on port 0 stand in for web's app, api's inbound port and web's
 * outbound TCP listener; the demo apps' /fail and /slow are checked on the real api app.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer } from 'node:net';
import { DemoTraffic } from '../../src/cli/demo-traffic.js';
import { apiApp, closeListener, httpGet, slowDelayMs } from '../../src/cli/demo-apps.js';
import type { DemoPorts } from '../../src/cli/demo-mesh.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function listen<S extends Server | TcpServer>(server: S): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

/** An HTTP server that records paths and the most calls it had in flight at once. */
function recorder(delayMs: number) {
  const paths: string[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const server = createServer((req, res) => {
    paths.push(req.url ?? '');
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    setTimeout(() => {
      inFlight--;
      res.end('ok');
    }, delayMs);
  });
  return { server, paths, maxInFlight: () => maxInFlight };
}

test('DemoTraffic: web every 200 ms with /fail and /slow, plaintext every second, TCP every 2 s; one call in flight; stop ends it', async (t) => {
  const web = recorder(50);
  const plain = recorder(0);
  let tcpConnections = 0;
  const tcp = createTcpServer((s) => {
    tcpConnections++;
    s.on('data', () => s.end('PING\r\n'));
  });
  t.after(() => Promise.all([closeListener(web.server), closeListener(plain.server), closeListener(tcp)]));
  const ports = { webApp: await listen(web.server), apiInbound: await listen(plain.server), webToTcp: await listen(tcp) } as DemoPorts;

  const traffic = new DemoTraffic({ ports, tcpService: 'echo' });
  traffic.start();
  await sleep(2300);
  const stopping = Date.now();
  await traffic.stop();
  assert.ok(Date.now() - stopping < 500, `stop took ${Date.now() - stopping} ms`);
  const seen = { web: web.paths.length, plain: plain.paths.length, tcp: tcpConnections };

  // ~12 web calls in 2.3 s (every 200 ms, each 50 ms long), paced, not flooding.
  assert.ok(seen.web >= 9 && seen.web <= 13, `web calls: ${seen.web}`);
  assert.equal(web.maxInFlight(), 1);
  assert.ok(web.paths.includes('/api/fail'), web.paths.join(' '));
  assert.ok(web.paths.includes('/api/slow?ms=150'), web.paths.join(' '));
  assert.ok(seen.plain >= 2 && seen.plain <= 3, `plaintext calls: ${seen.plain}`);
  assert.equal(plain.paths[0], '/plaintext');
  assert.ok(seen.tcp >= 1 && seen.tcp <= 2, `TCP connections: ${seen.tcp}`);
  const counts = traffic.counts();
  assert.equal(counts['web']!.ok + counts['web']!.failed, seen.web);
  assert.equal(counts['tcp']!.failed, 0, 'the echo answer counts as a success');

  await sleep(600);
  assert.deepEqual({ web: web.paths.length, plain: plain.paths.length, tcp: tcpConnections }, seen, 'calls after stop()');
});

test("the demo's api app: /fail answers 503, /slow?ms=N waits N ms (capped at 10 s)", async (t) => {
  const api = apiApp();
  t.after(() => closeListener(api));
  const port = await listen(api);
  assert.equal((await httpGet(port, '/fail')).status, 503);
  const started = Date.now();
  const slow = await httpGet(port, '/slow?ms=120');
  assert.equal(slow.status, 200);
  assert.ok(Date.now() - started >= 115, `answered after ${Date.now() - started} ms`);
  assert.equal((JSON.parse(slow.body) as { delayedMs: number }).delayedMs, 120);
  assert.deepEqual(['999999', '10000', '-5', 'x', null].map(slowDelayMs), [10_000, 10_000, 0, 0, 0]);
  // A client that gives up on a slow call leaves no timer behind (the app still answers others).
  assert.equal((await httpGet(port, '/slow?ms=5000', 100)).status, 0);
  assert.equal((await httpGet(port, '/')).status, 200);
});
