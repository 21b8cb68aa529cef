/**
 * The access log (docs/observability.md): one JSON line per request and per TCP connection
 * on both sidecars of a hop, with the caller's identity, the route, the endpoint, the
 * attempts, the timing breakdown, the status and the weft-error code; never the body, the
 * query string or header values. Sampling 0 and `--access-log off` write no line;
 * `--access-log FILE` writes to the file.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type AddressInfo } from 'node:net';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeCa, startSidecar, tempDir, type WeftProcess } from '../helpers/weft.js';
import { fire, startInstances, upstreamYaml } from '../helpers/traffic.js';

const WEB_ID = 'spiffe://example.org/ns/default/svc/web';
const API_ID = 'spiffe://example.org/ns/default/svc/api';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The access log lines among a sidecar's stdout lines. */
function accessLines(lines: readonly string[]): Record<string, unknown>[] {
  return lines.flatMap((l) => {
    try {
      const entry = JSON.parse(l) as Record<string, unknown>;
      return entry['component'] === 'access' ? [entry] : [];
    } catch {
      return [];
    }
  });
}

/** Waits until `proc` has logged at least `n` access lines (they are flushed every 250 ms). */
async function waitForLines(proc: WeftProcess, n: number, timeoutMs = 5_000): Promise<Record<string, unknown>[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const lines = accessLines(proc.lines);
    if (lines.length >= n || Date.now() > deadline) return lines;
    await sleep(50);
  }
}

async function startCallerWith(t: TestContext, dir: string, name: string, yaml: string, flags: string[] = []): Promise<{ proc: WeftProcess; listeners: Record<string, string> }> {
  const file = join(dir, `${name}.yaml`);
  await writeFile(file, yaml);
  const s = await startSidecar(t, ['-c', file, ...flags]);
  return { proc: s.proc, listeners: s.listeners };
}

function callerYaml(ca: string, apiAddress: string, extra = ''): string {
  return `service: web
identity:
  issuer: { dir: ${ca} }
admin:
  listen: 127.0.0.1:0
${extra}upstreams:
${upstreamYaml('api', `["${apiAddress}"]`)}    routes:
      - kind: HTTPRoute
        name: api
        rules:
          - matches: [{ path: { type: PathPrefix, value: /flaky } }]
            retry: { attempts: 1, codes: [503], backoff: 1ms }
            backendRefs: [{ name: api }]
          - matches: [{ path: { type: PathPrefix, value: /slow } }]
            timeouts: { request: 300ms }
            backendRefs: [{ name: api }]
          - backendRefs: [{ name: api }]
`;
}

test('every request leaves one JSON line on each sidecar, with identities, route, endpoint, attempts and timings; no body, query or header values', async (t) => {
  const dir = await tempDir(t);
  const ca = await makeCa(dir);
  let flaky = 0;
  const [api] = await startInstances(t, ca, 'api', [
    {
      name: 'api',
      handler: (req, res) => {
        if (req.url!.startsWith('/flaky')) {
          res.statusCode = flaky++ % 2 === 0 ? 503 : 200; // the first try fails, the retry succeeds
          res.end();
        } else if (req.url!.startsWith('/slow')) {
          setTimeout(() => res.end('late'), 2_000).unref();
        } else {
          res.end('ok');
        }
      },
    },
  ]);
  const caller = await startCallerWith(t, dir, 'web', callerYaml(ca, api!.address));
  const url = `http://${Object.entries(caller.listeners).find(([k]) => k.startsWith('upstream '))![1]}`;

  const res = await fetch(`${url}/items/42?token=s3cret-query`, { method: 'POST', headers: { authorization: 'Bearer s3cret-header' }, body: 's3cret-body' });
  assert.equal(res.status, 200);
  await res.text();
  const retried = await fetch(`${url}/flaky`);
  assert.equal(retried.status, 200);
  const slow = await fetch(`${url}/slow`);
  assert.equal(slow.status, 504);
  assert.equal(slow.headers.get('weft-error'), 'WEFT_E_TIMEOUT');

  const lines = await waitForLines(caller.proc, 3);
  assert.equal(lines.length, 3, JSON.stringify(lines));
  for (const l of [...lines, ...caller.proc.lines]) assert.doesNotMatch(JSON.stringify(l), /s3cret/, 'no body, query string or header value is logged');
  const [post, flakyLine, slowLine] = lines as Record<string, unknown>[];
  assert.equal(post!['kind'], 'http');
  assert.equal(post!['msg'], 'request');
  assert.equal(typeof post!['time'], 'string');
  assert.deepEqual(
    { direction: post!['direction'], method: post!['method'], path: post!['path'], status: post!['status'], error: post!['error'], source: post!['source'], sourceIdentity: post!['sourceIdentity'], destination: post!['destination'], destinationIdentity: post!['destinationIdentity'], tls: post!['tls'], route: post!['route'], upstream: post!['upstream'], attempts: post!['attempts'], protocol: post!['protocol'] },
    { direction: 'outbound', method: 'POST', path: '/items/42', status: 200, error: null, source: 'web', sourceIdentity: WEB_ID, destination: 'api', destinationIdentity: API_ID, tls: true, route: 'default/api/2', upstream: api!.address, attempts: 1, protocol: 'http/1.1' },
  );
  const upstreamHeadersMs = post!['upstreamHeadersMs'] as number;
  const durationMs = post!['durationMs'] as number;
  assert.ok(upstreamHeadersMs > 0 && upstreamHeadersMs <= durationMs, `time to upstream headers ${upstreamHeadersMs} ms within the total ${durationMs} ms`);
  assert.deepEqual([flakyLine!['route'], flakyLine!['status'], flakyLine!['attempts']], ['default/api/0', 200, 2], 'the retry shows as a second attempt');
  assert.deepEqual([slowLine!['route'], slowLine!['status'], slowLine!['error'], slowLine!['upstreamHeadersMs']], ['default/api/1', 504, 'WEFT_E_TIMEOUT', null]);
  assert.ok((slowLine!['durationMs'] as number) >= 290, `the timeout's duration ${String(slowLine!['durationMs'])} ms`);
});

test('the destination sidecar logs the same request with the caller identity and the app as endpoint', async (t) => {
  const dir = await tempDir(t);
  const ca = await makeCa(dir);
  const app = await listen(t, (socket) => socket.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok'));
  const inbound = await startSidecar(t, ['--service', 'api', '--issuer', ca, '--inbound', '127.0.0.1:0', '--app', app, '--protocol', 'http', '--admin', '127.0.0.1:0']);
  const caller = await startCallerWith(t, dir, 'web', callerYaml(ca, inbound.listeners['inbound']!));
  const url = `http://${Object.entries(caller.listeners).find(([k]) => k.startsWith('upstream '))![1]}`;
  const res = await fetch(`${url}/hello?x=1`);
  assert.equal(res.status, 200);
  const [line] = await waitForLines(inbound.proc, 1);
  assert.ok(line, 'the inbound sidecar logged the request');
  assert.deepEqual(
    [line['direction'], line['path'], line['status'], line['source'], line['sourceIdentity'], line['destination'], line['tls'], line['route'], line['upstream'], line['attempts']],
    ['inbound', '/hello', 200, 'web', WEB_ID, 'api', true, '-', app, 1],
  );
});

test('a TCP connection leaves one line with the bytes each way', async (t) => {
  const dir = await tempDir(t);
  const ca = await makeCa(dir);
  const echo = await listen(t, (socket) => socket.pipe(socket));
  const inbound = await startSidecar(t, ['--service', 'cache', '--issuer', ca, '--inbound', '127.0.0.1:0', '--app', echo, '--protocol', 'tcp', '--admin', '127.0.0.1:0']);
  const caller = await startSidecar(t, ['--service', 'web', '--issuer', ca, '--admin', '127.0.0.1:0', '--upstream', `cache=127.0.0.1:0=${inbound.listeners['inbound']!}=tcp`]);
  const listener = Object.entries(caller.listeners).find(([k]) => k.startsWith('upstream '))![1];
  const [host, port] = [listener.slice(0, listener.lastIndexOf(':')), Number(listener.slice(listener.lastIndexOf(':') + 1))];
  const payload = Buffer.alloc(10_000, 7);
  const echoed = await new Promise<number>((resolve, reject) => {
    const s = connect(port, host, () => s.end(payload));
    let n = 0;
    s.on('data', (d: Buffer) => (n += d.length));
    s.on('close', () => resolve(n));
    s.on('error', reject);
  });
  assert.equal(echoed, payload.length);
  for (const [proc, direction] of [[caller.proc, 'outbound'], [inbound.proc, 'inbound']] as const) {
    const [line] = await waitForLines(proc, 1);
    assert.ok(line, `${direction}: a line for the connection`);
    assert.deepEqual(
      [line['kind'], line['msg'], line['direction'], line['source'], line['destination'], line['tls'], line['bytesSent'], line['bytesReceived'], line['error']],
      ['tcp', 'connection', direction, 'web', 'cache', true, payload.length, payload.length, null],
    );
    assert.equal(typeof line['durationMs'], 'number');
  }
});

test('sampling 0 and --access-log off write no line; --access-log FILE writes there; sampling 0.5 writes about half', async (t) => {
  const dir = await tempDir(t);
  const ca = await makeCa(dir);
  const [api] = await startInstances(t, ca, 'api', [{ name: 'api', extra: ['--access-log', 'off'] }]);
  const quiet = await startCallerWith(t, dir, 'quiet', callerYaml(ca, api!.address, 'observability:\n  accessLog: { sampling: 0 }\n').replace('service: web', 'service: quiet'));
  const off = await startCallerWith(t, dir, 'off', callerYaml(ca, api!.address).replace('service: web', 'service: off'), ['--access-log', 'off']);
  const file = join(dir, 'logs', 'access.jsonl');
  const toFile = await startCallerWith(t, dir, 'filed', callerYaml(ca, api!.address).replace('service: web', 'service: filed'), ['--access-log', file, '--access-log-sampling', '0.5']);
  const urlOf = (c: { listeners: Record<string, string> }) => `http://${Object.entries(c.listeners).find(([k]) => k.startsWith('upstream '))![1]}`;
  for (const c of [quiet, off, toFile]) {
    const fired = await fire(urlOf(c), { n: 200, concurrency: 4, timeoutMs: 30_000 });
    assert.equal(fired.statuses[200], 200);
  }
  await sleep(600); // past the 250 ms flush
  assert.equal(accessLines(quiet.proc.lines).length, 0, 'sampling 0: no line');
  assert.equal(accessLines(off.proc.lines).length, 0, '--access-log off: no line');
  assert.equal(accessLines(toFile.proc.lines).length, 0, 'a file access log writes nothing to stdout');
  const written = (await readFile(file, 'utf8')).split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
  // Binomial(200, 0.5): sd 7.1; 60–140 is more than 5 sd either way.
  assert.ok(written.length >= 60 && written.length <= 140, `sampling 0.5 logged ${written.length} of 200`);
  assert.ok(written.every((l) => l['component'] === 'access' && l['source'] === 'filed'));
});

/** A TCP server on loopback; returns its address. */
async function listen(t: TestContext, onConnection: (socket: import('node:net').Socket) => void): Promise<string> {
  const sockets = new Set<import('node:net').Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    onConnection(socket);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => {
    for (const s of sockets) s.destroy(); // a sidecar's pooled connection would hold close() open
    return new Promise<void>((r) => server.close(() => r()));
  });
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}
