/**
 * The HTTP/2 pipeline with a router attached (route/types.ts), in process: a ProxyListener
 * with a stub Router<Cluster>, h2c apps as backends, node:http2 as the caller. Checks what
 * the pipeline does with a rule: no match, redirect, no backends, header edits, rewrites,
 * the backend picked, timeouts.backendRequest / timeouts.request and grpc-timeout.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect as h2Connect, createServer as createH2Server, type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Session } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { ProxyListener, type CompiledListener } from '../../src/proxy/listener/proxy-listener.js';
import { Cluster } from '../../src/proxy/upstream/cluster.js';
import { plainConnector } from '../../src/proxy/upstream/connector.js';
import { Observer } from '../../src/obs/observer.js';
import { SidecarMetrics } from '../../src/obs/metrics.js';
import { WatchedValue } from '../../src/watch.js';
import type { CertificateBundle } from '../../src/pki/certificate-bundle.js';
import type { CompiledRule, HeaderEdit, RequestView, Router } from '../../src/proxy/route/types.js';
import { makeCa, runWeft, tempDir } from '../helpers/weft.js';

const NO_EDIT: HeaderEdit = { remove: [], set: [], add: [] };

/** An h2c app that answers with what it received (or never, under /slow). */
async function echoApp(t: TestContext, name: string): Promise<string> {
  const server = createH2Server();
  const sessions = new Set<ServerHttp2Session>();
  server.on('session', (s: ServerHttp2Session) => (sessions.add(s), s.once('close', () => sessions.delete(s))));
  server.on('stream', (stream, headers: IncomingHttpHeaders) => {
    stream.on('error', () => {});
    stream.resume();
    if (String(headers[':path']).startsWith('/slow')) return;
    stream.respond({ ':status': 200, 'x-app': name, 'x-app-secret': 'hidden', 'content-type': 'application/json' });
    const seen = Object.fromEntries(Object.entries(headers).filter(([k]) => k.startsWith('x-') || k.startsWith(':')));
    stream.end(JSON.stringify(seen));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => {
    for (const s of sessions) s.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function cluster(t: TestContext, address: string): Cluster {
  const [host, port] = address.split(':') as [string, string];
  const c = new Cluster({ key: address, endpoints: [{ host, port: Number(port) }], connector: plainConnector(1000), keepAliveTimeoutMs: 4000 });
  t.after(() => c.destroy());
  return c;
}

function rule(name: string, backend: Cluster | null, extra: Partial<CompiledRule<Cluster>> = {}): CompiledRule<Cluster> {
  return {
    name,
    backends: { pick: () => backend, all: backend === null ? [] : [backend] },
    noBackends: backend === null,
    requestHeaders: null,
    responseHeaders: null,
    rewrite: null,
    redirect: null,
    mirror: null,
    requestTimeoutMs: null,
    backendTimeoutMs: null,
    retry: null,
    ...extra,
  };
}

async function bundle(t: TestContext): Promise<CertificateBundle> {
  const dir = await tempDir(t);
  const ca = await makeCa(dir);
  const r = await runWeft(['ca', 'issue', '--issuer', ca, '--service', 'web', '--out', join(dir, 'web')]);
  assert.equal(r.code, 0, r.stderr);
  const [keyPem, chainPem, bundlePem] = await Promise.all(['key.pem', 'cert.pem', 'bundle.pem'].map((f) => readFile(join(dir, 'web', f), 'utf8')));
  return { keyPem: keyPem!, chainPem: chainPem!, bundlePem: bundlePem!, spiffeId: 'spiffe://example.org/ns/default/svc/web', serial: '01', notBefore: new Date(), notAfter: new Date(Date.now() + 3_600_000) };
}

async function listener(t: TestContext, defaultCluster: Cluster, router: Router<Cluster>): Promise<string> {
  const compiled: CompiledListener = {
    key: 'test',
    name: 'upstream api',
    listen: { host: '127.0.0.1', port: 0 },
    direction: 'outbound',
    service: 'api',
    protocol: 'http',
    security: 'local',
    admission: { allow: null, requireTls: false, authz: null, strictDryRun: false },
    localSpiffeId: 'spiffe://example.org/ns/default/svc/web',
    localService: 'web',
    upstreamIdentity: 'spiffe://example.org/ns/default/svc/api',
    cluster: defaultCluster,
    clusters: [defaultCluster],
    router,
    tcpRoutes: null,
    rateLimiter: null,
    limits: { maxHeaderBytes: 16384, maxHeaders: 100, headerTimeout: 10_000, idleTimeout: 60_000, streamIdleTimeout: 300_000, connectTimeout: 1000 },
  };
  const l = new ProxyListener(compiled, { certs: new WatchedValue(await bundle(t)), obs: new Observer(new SidecarMetrics(), null) });
  const addr = await l.listen();
  t.after(() => l.drain(Date.now()));
  return `${addr.host}:${addr.port}`;
}

async function call(t: TestContext, address: string, headers: OutgoingHttpHeaders): Promise<{ headers: IncomingHttpHeaders; body: string; ms: number }> {
  const session = h2Connect(`http://${address}`);
  session.on('error', () => {});
  t.after(() => session.destroy());
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': 'GET', ...headers });
    let h: IncomingHttpHeaders = {};
    let body = '';
    req.on('response', (x) => (h = x));
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('close', () => resolve({ headers: h, body, ms: Date.now() - start }));
    req.on('error', reject);
    req.end();
  });
}

test('HTTP/2 with a router: no match, redirect, no backends, edits, rewrite, the picked backend, timeouts', async (t) => {
  const a = cluster(t, await echoApp(t, 'a'));
  const b = cluster(t, await echoApp(t, 'b'));
  const rules: Record<string, CompiledRule<Cluster>> = {
    '/redirect': rule('ns/r/0', b, { redirect: { status: 302, location: (req: RequestView, scheme, host) => `${scheme}://${host}/moved${req.path}` } }),
    '/nobackend': rule('ns/r/1', null),
    '/edit': rule('ns/r/2', b, {
      requestHeaders: { remove: ['x-drop'], set: [['x-set', 'set']], add: [['x-add', 'two']] },
      responseHeaders: { ...NO_EDIT, remove: ['x-app-secret'], set: [['x-resp', 'edited']] },
      rewrite: { hostname: 'rewritten.example', path: () => '/new/path' },
    }),
    '/slow-backend': rule('ns/r/3', b, { backendTimeoutMs: 200 }),
    '/slow-request': rule('ns/r/4', b, { requestTimeoutMs: 300 }),
    '/slow-grpc': rule('ns/r/5', b, { requestTimeoutMs: 5_000 }),
  };
  const router: Router<Cluster> = { match: (req) => rules[req.path] ?? null };
  const address = await listener(t, a, router);

  const none = await call(t, address, { ':path': '/none' });
  assert.equal(none.headers[':status'], 404);
  assert.equal(none.headers['weft-error'], 'WEFT_E_NO_ROUTE');
  const noneGrpc = await call(t, address, { ':path': '/none', 'content-type': 'application/grpc' });
  assert.equal(noneGrpc.headers[':status'], 200);
  assert.equal(noneGrpc.headers['grpc-status'], '12', 'gRPC: UNIMPLEMENTED');

  const redirect = await call(t, address, { ':path': '/redirect', ':authority': 'api.example' });
  assert.equal(redirect.headers[':status'], 302);
  assert.equal(redirect.headers['location'], 'http://api.example/moved/redirect');

  const nobackend = await call(t, address, { ':path': '/nobackend' });
  assert.equal(nobackend.headers[':status'], 500);
  assert.equal(nobackend.headers['weft-error'], 'WEFT_E_NO_BACKEND');

  const edit = await call(t, address, { ':path': '/edit?q=1', 'x-drop': 'gone', 'x-set': 'old', 'x-add': 'one' });
  assert.equal(edit.headers[':status'], 200);
  assert.equal(edit.headers['x-app'], 'b', 'the rule picked backend b, not the default cluster');
  assert.equal(edit.headers['x-app-secret'], undefined);
  assert.equal(edit.headers['x-resp'], 'edited');
  const seen = JSON.parse(edit.body) as Record<string, string>;
  assert.equal(seen[':path'], '/new/path?q=1', 'the rewrite keeps the query');
  assert.equal(seen[':authority'], 'rewritten.example');
  assert.equal(seen['x-drop'], undefined);
  assert.equal(seen['x-set'], 'set');
  assert.equal(seen['x-add'], 'one, two');

  const slowBackend = await call(t, address, { ':path': '/slow-backend' });
  assert.equal(slowBackend.headers[':status'], 504);
  assert.equal(slowBackend.headers['weft-error'], 'WEFT_E_TIMEOUT');
  assert.ok(slowBackend.ms >= 190 && slowBackend.ms < 1500, `${slowBackend.ms} ms`);

  const slowRequest = await call(t, address, { ':path': '/slow-request', 'content-type': 'application/grpc+proto' });
  assert.equal(slowRequest.headers['grpc-status'], '4', 'gRPC: DEADLINE_EXCEEDED');
  assert.ok(slowRequest.ms >= 290 && slowRequest.ms < 1500, `${slowRequest.ms} ms`);

  const deadline = await call(t, address, { ':path': '/slow-grpc', 'content-type': 'application/grpc', 'grpc-timeout': '200m' });
  assert.equal(deadline.headers['grpc-status'], '4');
  assert.ok(deadline.ms >= 190 && deadline.ms < 1500, `the sooner of grpc-timeout (200 ms) and timeouts.request (5 s): ${deadline.ms} ms`);
});
