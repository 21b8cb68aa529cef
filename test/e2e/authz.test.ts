/**
 * Inbound authorization and the strict dry run with real sidecars: an api sidecar
 * configured from a YAML file (`inbound.authorization`, `inbound.strictDryRun`) that the
 * test rewrites to change the policy, a web sidecar calling it over mTLS, curl and Node
 * clients. Denials are 403 WEFT_E_AUTHZ_DENIED, audits pass and are counted, a policy
 * change applies to the next request of an open keep-alive connection without closing
 * it, and open TCP connections the new rules deny are closed.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Client } from 'undici';
import { admin, makeCa, metricValue, runWeft, startSidecar, tempDir, type WeftProcess } from '../helpers/weft.js';

type Rules = readonly Record<string, unknown>[];

interface Inbound {
  protocol?: 'http' | 'tcp';
  mtls?: 'strict' | 'permissive';
  strictDryRun?: boolean;
  authorization?: { defaultAction?: 'allow' | 'deny'; rules: Rules };
}

/** The api sidecar's YAML (the inbound section as JSON, which is YAML too). */
function apiConfig(ca: string, app: string, inbound: Inbound): string {
  const section = { listen: '127.0.0.1:0', app, mtls: 'permissive', ...inbound };
  return `service: api\nidentity:\n  issuer: { dir: ${ca} }\ninbound: ${JSON.stringify(section)}\nadmin:\n  listen: 127.0.0.1:0\n`;
}

/** An app answering 200 with "METHOD URL". */
async function httpApp(t: TestContext): Promise<string> {
  const app = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end(`${req.method} ${req.url}`));
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => (app.close(() => r()), app.closeAllConnections())));
  return `127.0.0.1:${(app.address() as AddressInfo).port}`;
}

/** A CA, an app and the api sidecar started from a file; `apply` rewrites the file (atomically) and waits for the reload. */
async function apiSidecar(t: TestContext, inbound: Inbound, app?: string) {
  const dir = await tempDir(t);
  const ca = await makeCa(dir);
  const appAddress = app ?? (await httpApp(t));
  const file = join(dir, 'sidecar.yaml');
  await writeFile(file, apiConfig(ca, appAddress, inbound));
  const sc = await startSidecar(t, ['-c', file]);
  let reloads = 0;
  const apply = async (next: Inbound): Promise<void> => {
    await writeFile(`${file}.tmp`, apiConfig(ca, appAddress, next));
    await rename(`${file}.tmp`, file);
    reloads++;
    await logged(sc.proc, 'configuration applied', reloads);
  };
  return { ...sc, dir, ca, apply, inbound: sc.listeners['inbound']! };
}

/** Waits until `msg` has been logged `n` times; fails at once on a rejected reload. */
async function logged(proc: WeftProcess, msg: string, n: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const count = (m: string) => proc.lines.filter((l) => l.includes(`"msg":"${m}"`)).length;
  while (count(msg) < n) {
    if (count('configuration rejected; the running configuration keeps serving') > 0) assert.fail(`reload rejected: ${proc.lines.join('\n')}`);
    if (Date.now() > deadline) assert.fail(`"${msg}" not logged ${n} times within ${timeoutMs} ms: ${proc.lines.join('\n')}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** `curl -sS -i` → status, weft-error header and body. */
function curl(args: string[]): Promise<{ status: number; weftError: string | null; text: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('curl', ['-sS', '-i', '-m', '5', ...args]);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.once('error', reject);
    child.once('close', () => {
      const status = /^HTTP\/[\d.]+ (\d{3})/m.exec(out);
      const weftError = /^weft-error: (\S+)/im.exec(out);
      resolve({ status: status ? Number(status[1]) : 0, weftError: weftError ? weftError[1]! : null, text: out });
    });
  });
}

/** A web sidecar whose upstream `api` goes to `apiInbound`; resolves with its local plaintext address. */
async function webSidecar(t: TestContext, ca: string, apiInbound: string): Promise<string> {
  const web = await startSidecar(t, ['--service', 'web', '--issuer', ca, '--upstream', `api=127.0.0.1:0=${apiInbound}`, '--admin', '127.0.0.1:0']);
  return web.listeners['upstream api']!;
}

/** web's certificate files, issued by the test CA. */
async function webCert(dir: string, ca: string): Promise<{ cert: string; key: string; ca: string }> {
  const out = join(dir, 'web');
  const r = await runWeft(['ca', 'issue', '--issuer', ca, '--service', 'web', '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  const [cert, key, bundle] = await Promise.all(['cert.pem', 'key.pem', 'bundle.pem'].map((f) => readFile(join(out, f), 'utf8')));
  return { cert: cert!, key: key!, ca: bundle! };
}

const fromWeb = [{ service: 'web' }];

test('deny, path and method rules, audit: web calls api through the sidecars', async (t) => {
  const api = await apiSidecar(t, { authorization: { rules: [{ action: 'deny', from: fromWeb }] } });
  const web = await webSidecar(t, api.ca, api.inbound);

  const denied = await curl([`http://${web}/anything`]);
  assert.equal(denied.status, 403, denied.text);
  assert.equal(denied.weftError, 'WEFT_E_AUTHZ_DENIED', denied.text);
  assert.match(denied.text, /spiffe:\/\/example\.org\/ns\/default\/svc\/web denied by policy static rule 0/);

  // Only GET under /public/ from web; everything else falls to the default action, deny.
  await api.apply({ authorization: { defaultAction: 'deny', rules: [{ action: 'allow', from: fromWeb, to: { paths: [{ prefix: '/public/' }], methods: ['GET'] } }] } });
  const ok = await curl([`http://${web}/public/x?q=1`]);
  assert.equal(ok.status, 200, ok.text);
  assert.match(ok.text, /GET \/public\/x\?q=1$/);
  for (const args of [['-X', 'POST', `http://${web}/public/x`], [`http://${web}/private`], ['--path-as-is', `http://${web}/public/../private`], [`http://${web}/public/..%2Fprivate`], [`http://${web}/public`]]) {
    const r = await curl(args);
    assert.equal(r.status, 403, `${args.join(' ')}: ${r.text}`);
    assert.equal(r.weftError, 'WEFT_E_AUTHZ_DENIED', r.text);
    assert.match(r.text, /denied by the default action/);
  }

  // audit: let through, counted as "would be denied", logged (sampled).
  await api.apply({ authorization: { defaultAction: 'deny', rules: [{ action: 'audit', from: fromWeb }] } });
  const audited = await curl(['-X', 'DELETE', `http://${web}/orders/7`]);
  assert.equal(audited.status, 200, audited.text);
  assert.match(audited.text, /DELETE \/orders\/7$/);
  await logged(api.proc, 'authorization audit: this would be denied', 1);

  const metrics = (await admin(api.admin, '/metrics')).body;
  const decisions = (decision: string) => metricValue(metrics, 'weft_authz_decisions_total', { direction: 'inbound', service: 'api', decision });
  assert.equal(decisions('audit'), 1, metrics);
  assert.equal(decisions('deny'), 6, metrics);
  assert.equal(decisions('allow'), 1, metrics);
  assert.equal(metricValue(metrics, 'weft_errors_total', { service: 'api', error: 'WEFT_E_AUTHZ_DENIED' }), 6, metrics);
});

test('a policy change applies to the next request of an open keep-alive connection, which stays open', async (t) => {
  const api = await apiSidecar(t, { authorization: { defaultAction: 'deny', rules: [{ action: 'allow', from: fromWeb, to: { paths: [{ prefix: '/public/' }] } }] } });
  const tls = await webCert(api.dir, api.ca);
  const client = new Client(`https://${api.inbound}`, { connect: { ...tls, checkServerIdentity: () => undefined }, keepAliveTimeout: 60_000, pipelining: 1 });
  t.after(() => client.destroy());
  let connects = 0;
  let disconnects = 0;
  client.on('connect', () => connects++);
  client.on('disconnect', () => disconnects++);
  const get = async (path: string) => {
    const res = await client.request({ method: 'GET', path });
    const body = await res.body.text();
    return { status: res.statusCode, body, weftError: res.headers['weft-error'] };
  };

  assert.equal((await get('/public/a')).status, 200);
  const before = await get('/private');
  assert.equal(before.status, 403);
  assert.equal(before.weftError, 'WEFT_E_AUTHZ_DENIED');

  const start = Date.now();
  await api.apply({ authorization: { defaultAction: 'deny', rules: [{ action: 'allow', from: fromWeb, to: { paths: [{ prefix: '/private' }] } }] } });
  const applied = Date.now() - start;
  t.diagnostic(`file rewritten → configuration applied in ${applied} ms`);
  assert.ok(applied < 1_500, `the policy change took ${applied} ms to apply`);

  assert.equal((await get('/private')).status, 200, 'the new rules decide the next request');
  assert.equal((await get('/public/a')).status, 403);
  assert.equal(connects, 1, 'one connection for every request');
  assert.equal(disconnects, 0, 'the policy change did not close it');
});

test('TCP: a denied caller is disconnected, and an open connection the new rules deny is closed', async (t) => {
  const echo = createNetServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => echo.close(() => r())));
  const api = await apiSidecar(t, { protocol: 'tcp', authorization: { defaultAction: 'deny', rules: [{ action: 'allow', from: fromWeb }] } }, `127.0.0.1:${(echo.address() as AddressInfo).port}`);
  const tls = await webCert(api.dir, api.ca);
  const [host, port] = api.inbound.split(':') as [string, string];
  const socket = tlsConnect({ host, port: Number(port), ...tls, checkServerIdentity: () => undefined });
  t.after(() => socket.destroy());
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  socket.on('error', () => undefined);
  await new Promise<void>((r) => socket.once('secureConnect', () => r()));
  socket.write('ping');
  const echoed = await new Promise<string>((r) => socket.once('data', (d: Buffer) => r(d.toString())));
  assert.equal(echoed, 'ping');

  await api.apply({ protocol: 'tcp', authorization: { defaultAction: 'allow', rules: [{ action: 'deny', from: fromWeb }] } });
  await Promise.race([closed, new Promise((_, reject) => setTimeout(() => reject(new Error('the denied TCP connection stayed open')), 3_000))]);

  // A new connection from web: the handshake succeeds, then the sidecar closes it unanswered.
  const again = tlsConnect({ host, port: Number(port), ...tls, checkServerIdentity: () => undefined });
  t.after(() => again.destroy());
  again.on('error', () => undefined);
  let received = '';
  again.on('data', (d: Buffer) => (received += d.toString()));
  again.once('secureConnect', () => again.write('ping'));
  await new Promise<void>((r) => again.once('close', () => r()));
  assert.equal(received, '');

  const metrics = (await admin(api.admin, '/metrics')).body;
  assert.equal(metricValue(metrics, 'weft_authz_decisions_total', { service: 'api', decision: 'allow' }), 1, metrics);
  assert.equal(metricValue(metrics, 'weft_authz_decisions_total', { service: 'api', decision: 'deny' }), 2, metrics);
});

test('strict dry run: plaintext still served, counted and logged; mTLS callers are not counted', async (t) => {
  const api = await apiSidecar(t, { mtls: 'strict', strictDryRun: true });
  const plain = await curl([`http://${api.inbound}/hello`]);
  assert.equal(plain.status, 200, plain.text);
  assert.match(plain.text, /GET \/hello$/);
  await logged(api.proc, 'strict mode would refuse this plaintext caller', 1);

  const certDir = join(api.dir, 'web');
  await webCert(api.dir, api.ca);
  const mtls = await curl(['-k', '--cert', join(certDir, 'cert.pem'), '--key', join(certDir, 'key.pem'), `https://${api.inbound}/hello`]);
  assert.equal(mtls.status, 200, mtls.text);

  const metrics = (await admin(api.admin, '/metrics')).body;
  assert.equal(metricValue(metrics, 'weft_strict_dry_run_total', { service: 'api' }), 1, metrics);

  // Ending the dry run: the same file with strictDryRun false refuses plaintext.
  await api.apply({ mtls: 'strict', strictDryRun: false });
  const refused = await curl([`http://${api.inbound}/hello`]);
  assert.equal(refused.status, 0, refused.text);
});
