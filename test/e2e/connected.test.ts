/**
 * Connected mode on loopback: sidecars enroll with a join token, find each other through
 * the catalog, restart from their state folder without a token, and keep serving from the
 * last-known-good snapshot when the server is gone (also across their own restart).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { admin, makeCa, runWeft, startSidecar, startWeft, tempDir } from '../helpers/weft.js';
import { createToken, startServer } from '../helpers/control.js';
import { app } from '../helpers/http-pair.js';

async function get(url: string): Promise<{ status: number; body: string }> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
    return { status: res.status, body: await res.text() };
  } catch (err) {
    return { status: 0, body: (err as Error).message };
  }
}

async function eventually<T>(what: string, fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T = await fn();
  while (!ok(last)) {
    if (Date.now() > deadline) assert.fail(`${what}: still ${JSON.stringify(last)} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
    last = await fn();
  }
  return last;
}

test('sidecars enroll, find each other by service name, and survive the server', async (t) => {
  const dir = await tempDir(t);
  const data = join(dir, 'data');
  let server = await startServer(t, data, ['--instance-ttl', '3s']);
  const port = new URL(server.url).port;
  const apiApp = await app(t, (_req, res) => res.end('api says hi'));
  const apiToken = await createToken(server.url, data, ['--service', 'api']);
  const webToken = await createToken(server.url, data, ['--service', 'web']);

  const api = await startSidecar(t, ['--server', server.url, '--token', apiToken, '--service', 'api', '--inbound', '127.0.0.1:0', '--app', apiApp.address, '--state', join(dir, 'api'), '--admin', '127.0.0.1:0']);
  const webArgs = ['--server', server.url, '--service', 'web', '--upstream', 'api=127.0.0.1:0', '--state', join(dir, 'web'), '--admin', '127.0.0.1:0'];
  let web = await startSidecar(t, [...webArgs, '--token', webToken]);
  const viaWeb = () => get(`http://${web.listeners['upstream api']!}/`);
  // api registers and reports passing; web's snapshot then carries its endpoint.
  const first = await eventually('web reaches api by name', viaWeb, (r) => r.status === 200);
  assert.equal(first.body, 'api says hi');
  const certs = JSON.parse((await admin(api.admin, '/certs')).body) as { source: string; spiffeId: string };
  assert.equal(certs.source, 'control-plane');
  assert.equal(certs.spiffeId, 'spiffe://weft.local/ns/default/svc/api');

  // A restart needs no token: the certificate and the snapshot are in the state folder.
  assert.equal(await web.proc.stop(), 0);
  web = await startSidecar(t, webArgs);
  await eventually('web after its restart', viaWeb, (r) => r.status === 200);

  // The server goes away: traffic keeps flowing, and a restarted sidecar serves from its
  // last-known-good snapshot.
  assert.equal(await server.proc.stop(), 0);
  for (let i = 0; i < 20; i++) {
    const r = await viaWeb();
    assert.equal(r.status, 200, r.body);
  }
  assert.equal(await web.proc.stop(), 0);
  web = await startSidecar(t, webArgs);
  await web.proc.waitFor('the server is unreachable; serving the last-known-good snapshot from the state folder');
  for (let i = 0; i < 20; i++) assert.equal((await viaWeb()).status, 200, 'served from the last-known-good snapshot');

  // The server comes back (same data, same port): the sidecars follow it again.
  server = await startServer(t, data, ['--instance-ttl', '3s', '--listen', `127.0.0.1:${port}`]);
  await web.proc.waitFor('following the server', 20_000);
  assert.equal((await viaWeb()).status, 200);
});

test('enrollment trusts only the CA the token pins: an impostor that adds the real root to its bundle gets no token', async (t) => {
  const dir = await tempDir(t);
  const data = join(dir, 'data');
  const server = await startServer(t, data);
  const token = await createToken(server.url, data, ['--service', 'api']);
  // The impostor: its own CA, a certificate with the server's SPIFFE ID, and a /v1/ca
  // answer whose bundle holds the real root (public) next to its own.
  const fake = await makeCa(dir, 'weft.local', 'impostor-ca');
  assert.equal((await runWeft(['ca', 'issue', '--issuer', fake, '--service', 'weft-server', '--namespace', 'weft-system', '--out', join(dir, 'impostor')])).code, 0);
  const realRoot = await readFile(join(data, 'ca', 'bundle.pem'), 'utf8');
  const seen: string[] = [];
  const impostor = createHttpsServer({ cert: await readFile(join(dir, 'impostor', 'cert.pem')), key: await readFile(join(dir, 'impostor', 'key.pem')) }, (req, res) => {
    seen.push(`${req.method ?? ''} ${req.url ?? ''}`);
    if (req.url === '/v1/ca') {
      res.end(JSON.stringify({ trustDomain: 'weft.local', bundle: realRoot + readFileSync(join(fake, 'bundle.pem'), 'utf8'), serverSpiffeId: 'spiffe://weft.local/ns/weft-system/svc/weft-server' }));
    } else res.writeHead(500).end();
  });
  await new Promise<void>((r) => impostor.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => impostor.close(() => r())));
  const proc = startWeft(t, ['sidecar', '--server', `https://127.0.0.1:${(impostor.address() as AddressInfo).port}`, '--token', token, '--service', 'api', '--state', join(dir, 'api'), '--admin', '127.0.0.1:0']);
  const waiting = await proc.waitFor('waiting for the server to enroll');
  assert.match(String(waiting['error']), /certificate|self.signed|verify/i, 'the impostor fails verification against the pinned root');
  await new Promise((r) => setTimeout(r, 1500));
  assert.deepEqual(seen.filter((s) => s.startsWith('POST')), [], 'the join token never reached the impostor');
  assert.equal(await proc.stop(), 1, 'stopped while waiting: cannot start');
});
