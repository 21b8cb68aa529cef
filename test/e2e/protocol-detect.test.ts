/**
 * Protocol detection with real clients: `http` listeners serve HTTP/1.1 and HTTP/2 on one
 * port (curl, curl --http2-prior-knowledge; ALPN or the connection preface over TLS, checked
 * with openssl s_client), and `auto` listener pairs carry HTTP/1, h2c, a server-first TCP
 * app (greeted within the bounded wait), TLS the app does itself, and redis-cli to
 * redis-server as opaque TCP.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { connect as h2Connect } from 'node:http2';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { connect as tlsConnect, createServer as createTlsServer } from 'node:tls';
import { join } from 'node:path';
import { AUTO_DETECT_WAIT_MS } from '../../src/proxy/listener/detect.js';
import { requireOrSkip } from '../helpers/require.js';
import { admin, makeCa, metricValue, runWeft, startSidecar, tempDir } from '../helpers/weft.js';
import { deadPort, dualProtocolApp } from '../helpers/http-pair.js';

const WEB_ID = 'spiffe://example.org/ns/default/svc/web';

/** Closes a server and every connection it accepted (sidecars keep theirs open while idle). */
function closeAll(t: TestContext, server: Server): void {
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  t.after(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** An app speaking HTTP/1.1 and h2c on one port; each answer says which version carried it. */
function dualApp(t: TestContext): Promise<string> {
  return dualProtocolApp(t, (version, path, headers) => `app saw HTTP/${version} ${path} xfcc=${headers['x-forwarded-client-cert'] ? 'yes' : 'no'}\n`);
}

/** api (`protocol`) in front of `app`, web with an upstream to it declared the same way. */
async function sidecarPair(t: TestContext, app: string, protocol: 'http' | 'auto') {
  const dir = await tempDir(t);
  const ca = await makeCa(dir);
  const api = await startSidecar(t, ['--service', 'api', '--protocol', protocol, '--issuer', ca, '--inbound', '127.0.0.1:0', '--app', app, '--admin', '127.0.0.1:0']);
  const inbound = api.listeners['inbound']!;
  const web = await startSidecar(t, ['--service', 'web', '--issuer', ca, '--upstream', `api=127.0.0.1:0=${inbound}=${protocol}`, '--admin', '127.0.0.1:0']);
  return { dir, ca, api, web, inbound, outbound: web.listeners['upstream api']! };
}

/** Runs a command (bounded); resolves with its exit code and output. */
function run(cmd: string, args: string[], input = '', timeoutMs = 10_000): Promise<{ code: number; stdout: string; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', () => resolve({ code: 127, stdout, output: `${cmd} could not run` }));
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, stdout, output: `${stdout}\n${stderr}` });
    });
  });
}

/** curl through a listener: the body and the HTTP version curl used. */
async function curl(url: string, extra: string[] = []): Promise<{ body: string; version: string }> {
  const r = await run('curl', ['-sS', '-m', '5', ...extra, '-w', '\n%{http_version}', url]);
  assert.equal(r.code, 0, r.output);
  const i = r.stdout.lastIndexOf('\n');
  return { body: r.stdout.slice(0, i), version: r.stdout.slice(i + 1) };
}

async function checkHttpBothWays(outbound: string): Promise<void> {
  const h1 = await curl(`http://${outbound}/one`);
  assert.equal(h1.version, '1.1');
  assert.equal(h1.body, 'app saw HTTP/1.1 /one xfcc=yes\n', 'HTTP/1.1 in, HTTP/1.1 to the app');
  const h2 = await curl(`http://${outbound}/two`, ['--http2-prior-knowledge']);
  assert.equal(h2.version, '2');
  assert.equal(h2.body, 'app saw HTTP/2 /two xfcc=yes\n', 'h2c in, HTTP/2 to the app');
}

test('http listeners serve HTTP/1.1 and h2c on one port, each kept end to end', async (t) => {
  const app = await dualApp(t);
  const { api, outbound } = await sidecarPair(t, app, 'http');
  await checkHttpBothWays(outbound);
  const metrics = (await admin(api.admin, '/metrics')).body;
  assert.equal(metricValue(metrics, 'weft_requests_total', { direction: 'inbound', source_identity: WEB_ID, tls: 'true', code: '200' }), 2);
  // One mTLS connection per protocol between the sidecars: HTTP/1.1 (no ALPN) and h2 (ALPN h2).
  assert.equal(metricValue(metrics, 'weft_connections_total', { direction: 'inbound', source_identity: WEB_ID, tls: 'true' }), 2);
});

test('TLS callers: ALPN chooses (h2 only when asked for alone), no ALPN or foreign ALPN never fails the handshake and the bytes decide', async (t) => {
  const app = await dualApp(t);
  const { dir, ca, inbound } = await sidecarPair(t, app, 'http');
  const certs = join(dir, 'web-cert');
  const issued = await runWeft(['ca', 'issue', '--issuer', ca, '--service', 'web', '--out', certs]);
  assert.equal(issued.code, 0, issued.stderr);
  const identity = ['-cert', join(certs, 'cert.pem'), '-cert_chain', join(certs, 'cert.pem'), '-key', join(certs, 'key.pem')];
  const request = 'GET /s HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n';
  const sClient = (alpn: string[]) => run('openssl', ['s_client', '-connect', inbound, '-ign_eof', ...identity, ...alpn], request);

  const both = await sClient(['-alpn', 'h2,http/1.1']);
  assert.match(both.output, /ALPN protocol: http\/1\.1/, 'an app declared http may speak only HTTP/1.1: a caller offering both gets it');
  assert.match(both.stdout, /app saw HTTP\/1\.1 \/s/);
  const h2only = await sClient(['-alpn', 'h2']);
  assert.match(h2only.output, /ALPN protocol: h2/);
  const none = await sClient([]);
  assert.match(none.output, /No ALPN negotiated/);
  assert.match(none.stdout, /app saw HTTP\/1\.1 \/s/, 'no ALPN: the request line decides');
  const foreign = await sClient(['-alpn', 'foo,bar']);
  assert.doesNotMatch(foreign.output, /alert no application protocol/);
  assert.match(foreign.stdout, /app saw HTTP\/1\.1 \/s/, 'an ALPN the sidecar does not speak: the bytes decide');

  // HTTP/2 over TLS without ALPN: the connection preface decides.
  const [cert, key, bundle] = await Promise.all(['cert.pem', 'key.pem', 'bundle.pem'].map((f) => readFile(join(certs, f), 'utf8')));
  const [host, port] = inbound.split(':') as [string, string];
  const session = h2Connect(`https://${inbound}`, {
    createConnection: () => tlsConnect({ host, port: Number(port), cert, key, ca: bundle, checkServerIdentity: () => undefined }),
  });
  session.on('error', () => {});
  t.after(() => session.destroy());
  const body = await new Promise<string>((resolve, reject) => {
    const req = session.request({ ':path': '/preface' });
    let text = '';
    req.on('data', (d: Buffer) => (text += d.toString()));
    req.on('end', () => resolve(text));
    req.on('error', reject);
    req.end();
  });
  assert.equal(body, 'app saw HTTP/2 /preface xfcc=yes\n');
});

test('auto listeners: HTTP/1.1 and h2c are detected and kept end to end', async (t) => {
  const app = await dualApp(t);
  const { outbound } = await sidecarPair(t, app, 'auto');
  await checkHttpBothWays(outbound);
});

test(`auto listeners: a server-first TCP app greets the caller within the bounded wait (${AUTO_DETECT_WAIT_MS} ms per auto hop)`, async (t) => {
  const server = createServer((socket) => {
    socket.write('220 banner.example ESMTP ready\r\n');
    socket.on('data', (d: Buffer) => socket.write(`250 ${d.toString().trim()}\r\n`));
    socket.on('error', () => {});
  });
  closeAll(t, server);
  const app = await listen(server);
  const { outbound } = await sidecarPair(t, app, 'auto');
  const [host, port] = outbound.split(':') as [string, string];
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const start = performance.now();
    const greeting = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), host);
      socket.setTimeout(5_000, () => socket.destroy(new Error('no greeting within 5 s')));
      socket.once('data', (d: Buffer) => {
        times.push(performance.now() - start);
        socket.write('EHLO client\r\n');
        socket.once('data', (reply: Buffer) => {
          socket.destroy();
          resolve(`${d.toString()}${reply.toString()}`);
        });
      });
      socket.on('error', reject);
    });
    assert.equal(greeting, '220 banner.example ESMTP ready\r\n250 EHLO client\r\n');
  }
  // Two auto hops (web's outbound listener, then api's inbound after TLS) each wait for the
  // caller's first bytes at most AUTO_DETECT_WAIT_MS: the greeting takes about twice that.
  for (const ms of times) {
    assert.ok(ms >= AUTO_DETECT_WAIT_MS, `greeted after ${ms.toFixed(0)} ms, before the wait could end`);
    assert.ok(ms < 1000, `greeted after ${ms.toFixed(0)} ms; the bound is 2 × ${AUTO_DETECT_WAIT_MS} ms plus connection setup, well under 1 s`);
  }
  t.diagnostic(`server-first greeting through two auto hops: ${times.map((ms) => ms.toFixed(0)).join(', ')} ms`);
});

test('auto listeners: TLS the app does itself (a ClientHello) is carried as opaque TCP', async (t) => {
  const dir = await tempDir(t);
  const ca = await makeCa(dir);
  const issued = await runWeft(['ca', 'issue', '--issuer', ca, '--service', 'tls-app', '--out', join(dir, 'tls-app')]);
  assert.equal(issued.code, 0, issued.stderr);
  const [cert, key] = await Promise.all(['cert.pem', 'key.pem'].map((f) => readFile(join(dir, 'tls-app', f), 'utf8')));
  const server = createTlsServer({ cert, key }, (socket) => {
    socket.on('error', () => {});
    socket.on('data', (d: Buffer) => socket.write(`tls echo: ${d.toString()}`));
  });
  closeAll(t, server);
  const app = await listen(server);
  const { outbound } = await sidecarPair(t, app, 'auto');
  const [host, port] = outbound.split(':') as [string, string];
  const reply = await new Promise<string>((resolve, reject) => {
    const socket = tlsConnect({ host, port: Number(port), rejectUnauthorized: false });
    socket.setTimeout(5_000, () => socket.destroy(new Error('no TLS echo within 5 s')));
    socket.once('secureConnect', () => socket.write('hello over app TLS'));
    socket.once('data', (d: Buffer) => {
      socket.destroy();
      resolve(d.toString());
    });
    socket.on('error', reject);
  });
  assert.equal(reply, 'tls echo: hello over app TLS');
});

/** Why redis-server cannot be used here, or null. */
async function redisUnavailable(): Promise<string | null> {
  const r = await run('redis-server', ['--version'], '', 5_000);
  return r.code === 0 ? null : 'redis-server is not installed';
}

test('auto listeners: a client-first TCP protocol (redis-cli to redis-server) is opaque TCP', async (t) => {
  if (!requireOrSkip(t, 'redis-server is', await redisUnavailable())) return;
  const port = await deadPort();
  const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  t.after(() => {
    if (redis.exitCode === null) redis.kill('SIGKILL');
  });
  const deadline = Date.now() + 10_000;
  let pong = '';
  for (let i = 0; i < 100 && Date.now() < deadline && pong !== 'PONG'; i++) {
    pong = (await run('redis-cli', ['-p', String(port), 'ping'], '', 2_000)).stdout.trim();
    if (pong !== 'PONG') await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(pong, 'PONG', 'redis-server did not start');
  const { outbound } = await sidecarPair(t, `127.0.0.1:${port}`, 'auto');
  const outPort = outbound.split(':')[1]!;
  const cli = (...args: string[]) => run('redis-cli', ['-h', '127.0.0.1', '-p', outPort, ...args]).then((r) => r.stdout.trim());
  const start = performance.now();
  assert.equal(await cli('SET', 'weft:detect', 'opaque bytes'), 'OK');
  assert.equal(await cli('GET', 'weft:detect'), 'opaque bytes');
  assert.ok(performance.now() - start < 2_000, 'a client-first protocol is decided at its first bytes, with no wait');
});

test('http listeners: a caller that sends nothing gets 408 after the header timeout, as HTTP/1 answers a slow head', async (t) => {
  const app = await dualApp(t);
  const dir = await tempDir(t);
  const ca = await makeCa(dir);
  const config = join(dir, 'api.yaml');
  await writeFile(config, `service: api\nidentity:\n  issuer:\n    dir: ${ca}\ninbound:\n  listen: 127.0.0.1:0\n  app: ${app}\n  protocol: http\n  mtls: permissive\nlimits:\n  headerTimeout: 1s\nadmin:\n  listen: 127.0.0.1:0\n`);
  const api = await startSidecar(t, ['-c', config]);
  const [host, port] = api.listeners['inbound']!.split(':') as [string, string];
  const start = Date.now();
  const text = await new Promise<string>((resolve, reject) => {
    const socket = connect(Number(port), host);
    let got = '';
    socket.setTimeout(10_000, () => socket.destroy(new Error(`still open after 10 s: ${got}`)));
    socket.on('data', (d: Buffer) => (got += d.toString('latin1')));
    socket.on('close', () => resolve(got));
    socket.on('error', reject);
  });
  const elapsed = Date.now() - start;
  assert.match(text, /^HTTP\/1\.1 408 /, text);
  assert.match(text, /weft-error: WEFT_E_HTTP_408/);
  // Permissive mode waits 300 ms for a TLS ClientHello, then the sweep (once a second) finds the connection past 1 s.
  assert.ok(elapsed >= 1000 && elapsed < 4000, `closed after ${elapsed} ms`);
  const metrics = (await admin(api.admin, '/metrics')).body;
  assert.equal(metricValue(metrics, 'weft_errors_total', { direction: 'inbound', error: 'WEFT_E_HTTP_408' }), 1);
});
