/**
 * HTTP/1.1 semantics through a sidecar pair (client → web sidecar → mTLS → api sidecar →
 * app): chunked bodies with trailers, HTTP/1.0, HEAD, 100-continue, pipelining,
 * close-delimited responses, early responses, stale pooled connections and the header
 * timeout. Clients are curl and raw sockets, so what is checked is the bytes on the wire.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer as createNetServer, connect, type AddressInfo, type Socket } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { app, pair } from '../helpers/http-pair.js';
import { admin, makeCa, metricValue, startSidecar, tempDir } from '../helpers/weft.js';

function curl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '--max-time', '10', ...args], { encoding: 'latin1', maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** Writes `data` on a new connection and collects what comes back until `done` says so or the socket closes. */
function raw(address: string, data: string, done: (received: string) => boolean = () => false, timeoutMs = 5000): Promise<{ text: string; closed: boolean }> {
  const [host, port] = address.split(':') as [string, string];
  return new Promise((resolve) => {
    const socket = connect(Number(port), host);
    let text = '';
    let closed = false;
    const finish = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ text, closed });
    };
    const timer = setTimeout(finish, timeoutMs);
    socket.on('data', (d) => {
      text += d.toString('latin1');
      if (done(text)) finish();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      closed = true;
      finish();
    });
    socket.write(data, 'latin1');
  });
}

const count = (text: string, what: RegExp) => (text.match(what) ?? []).length;

/** One sidecar whose inbound listener takes plaintext (permissive) in front of `appAddress`; `limits` is YAML under `limits:`. */
async function plainSidecar(t: TestContext, appAddress: string, limits = '') {
  const dir = await tempDir(t);
  const ca = await makeCa(dir);
  const config = join(dir, 'api.yaml');
  await writeFile(config, `service: api\nidentity:\n  issuer:\n    dir: ${ca}\ninbound:\n  listen: 127.0.0.1:0\n  app: ${appAddress}\n  mtls: permissive\n${limits ? `limits:\n${limits}` : ''}admin:\n  listen: 127.0.0.1:0\n`);
  const sidecar = await startSidecar(t, ['-c', config]);
  return { sidecar, inbound: sidecar.listeners['inbound']! };
}

test('chunked request and response bodies pass through with their trailers (curl --raw)', async (t) => {
  const { address } = await app(t, (req, res) => {
    let body = '';
    req.setEncoding('latin1');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/plain', Trailer: 'x-length', 'x-saw-te': String(req.headers['transfer-encoding']) });
      res.write(`got ${body.length} bytes: `);
      res.write(body.toUpperCase());
      res.addTrailers({ 'x-length': String(body.length) });
      res.end();
    });
  });
  const { outbound } = await pair(t, address);
  const dir = await tempDir(t);
  await writeFile(join(dir, 'body'), 'hello chunked world');
  const r = await curl(['--raw', '-D', '-', '-H', 'Transfer-Encoding: chunked', '--data-binary', `@${join(dir, 'body')}`, `http://${outbound}/echo`]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(r.stdout, /^x-saw-te: chunked\r$/im, 'the app received a chunked request');
  assert.match(r.stdout, /^transfer-encoding: chunked\r$/im);
  assert.match(r.stdout, /HELLO CHUNKED WORLD/);
  assert.match(r.stdout, /\r\n0\r\nx-length: 19\r\n\r\n$/, `the trailer arrives after the last chunk: ${JSON.stringify(r.stdout.slice(-60))}`);
});

test('HTTP/1.0 callers, HEAD requests and 100-continue behave as HTTP says', async (t) => {
  const { address } = await app(t, (req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '5' }).end(req.method === 'HEAD' ? undefined : 'hello'));
  });
  const { outbound } = await pair(t, address);

  const old = await curl(['--http1.0', '-D', '-', `http://${outbound}/`]);
  assert.equal(old.code, 0, old.stderr);
  assert.match(old.stdout, /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(old.stdout, /\r\n\r\nhello$/);

  // HEAD: the length of the body that GET would have, no body, and the connection stays usable.
  const both = await raw(outbound, `HEAD / HTTP/1.1\r\nHost: api\r\n\r\nGET / HTTP/1.1\r\nHost: api\r\n\r\n`, (s) => s.endsWith('hello'));
  assert.equal(count(both.text, /HTTP\/1\.1 200 OK/g), 2, both.text);
  assert.equal(count(both.text, /hello/g), 1, `only the GET has a body: ${both.text}`);
  assert.ok(!both.closed);

  // Expect: 100-continue goes end to end: the app's interim 100 reaches curl before the body is sent.
  const dir = await tempDir(t);
  await writeFile(join(dir, 'body'), 'x'.repeat(4096));
  const cont = await curl(['-v', '-H', 'Expect: 100-continue', '--expect100-timeout', '5', '--data-binary', `@${join(dir, 'body')}`, `http://${outbound}/`]);
  assert.equal(cont.code, 0, cont.stderr);
  assert.match(cont.stderr, /< HTTP\/1\.1 100 Continue/, cont.stderr);
  assert.equal(cont.stdout, 'hello');
});

test('pipelined requests are answered in order on one connection', async (t) => {
  const { address } = await app(t, (req, res) => {
    // The first request is slow: answers must still come back in request order.
    setTimeout(() => res.end(`answer ${req.url}\n`), req.url === '/1' ? 200 : 0);
  });
  const { outbound } = await pair(t, address);
  const requests = ['/1', '/2', '/3'].map((p) => `GET ${p} HTTP/1.1\r\nHost: api\r\n\r\n`).join('');
  const r = await raw(outbound, requests, (s) => s.includes('answer /3'));
  const answers = [...r.text.matchAll(/answer (\/\d)/g)].map((m) => m[1]);
  assert.deepEqual(answers, ['/1', '/2', '/3']);
});

test('a close-delimited response reaches the caller whole, and its connection closes after it', async (t) => {
  const body = 'y'.repeat(100_000);
  const server = createNetServer((socket) => {
    socket.once('data', () => socket.end(`HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n${body}`));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const { outbound } = await pair(t, `127.0.0.1:${(server.address() as AddressInfo).port}`);
  const r = await raw(outbound, 'GET / HTTP/1.1\r\nHost: api\r\n\r\n');
  assert.ok(r.closed, 'the connection closes at the end of the body');
  assert.match(r.text, /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(r.text, /\r\nconnection: close\r\n/i);
  assert.equal(r.text.slice(r.text.indexOf('\r\n\r\n') + 4), body);
});

test('an early response (413 before the upload ends) reaches the caller', async (t) => {
  const { address } = await app(t, (req, res) => {
    // Answers at once; Node reads and drops the rest of the body itself.
    res.writeHead(413, { 'content-type': 'text/plain' });
    res.end('too big\n');
  });
  const { outbound } = await pair(t, address);
  const dir = await tempDir(t);
  await writeFile(join(dir, 'big'), Buffer.alloc(8 * 1024 * 1024, 1));
  const r = await curl(['-D', '-', '-H', 'Expect:', '--data-binary', `@${join(dir, 'big')}`, `http://${outbound}/upload`]);
  assert.match(r.stdout, /^HTTP\/1\.1 413 /, `${r.stdout}\n${r.stderr}`);
});

test('a request meeting a pooled connection the app just closed is sent again (idempotent) or fails with 502', async (t) => {
  // The app answers the first request of each connection and drops the connection on the
  // second, as a server whose keep-alive timer fires just as a request arrives.
  const server = createNetServer((socket) => {
    let n = 0;
    socket.on('data', () => {
      n++;
      if (n === 1) socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
      else socket.destroy();
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const { api, outbound } = await pair(t, `127.0.0.1:${(server.address() as AddressInfo).port}`);
  for (let i = 0; i < 3; i++) {
    const r = await curl(['-w', '%{http_code}', '-o', '/dev/null', `http://${outbound}/get-${i}`]);
    assert.equal(r.stdout, '200', `GET ${i}: ${r.stderr}`);
  }
  const post = await curl(['-w', '%{http_code}', '-o', '/dev/null', '-X', 'POST', `http://${outbound}/post`]);
  assert.equal(post.stdout, '502', 'a POST is not sent twice');
  const metrics = (await admin(api.admin, '/metrics')).body;
  assert.equal(metricValue(metrics, 'weft_errors_total', { direction: 'inbound', error: 'WEFT_E_UPSTREAM_RESET' }), 1);
});

test('a caller that sends its request head too slowly gets 408 and is disconnected', async (t) => {
  const { address } = await app(t, (_req, res) => res.end('ok'));
  const dir = await tempDir(t);
  const ca = await makeCa(dir);
  const config = join(dir, 'api.yaml');
  await writeFile(config, `service: api\nidentity:\n  issuer:\n    dir: ${ca}\ninbound:\n  listen: 127.0.0.1:0\n  app: ${address}\n  mtls: permissive\nlimits:\n  headerTimeout: 1s\nadmin:\n  listen: 127.0.0.1:0\n`);
  const api = await startSidecar(t, ['-c', config]);
  const inbound = api.listeners['inbound']!;
  const [host, port] = inbound.split(':') as [string, string];
  const started = Date.now();
  const socket: Socket = connect(Number(port), host);
  let text = '';
  socket.on('data', (d) => (text += d.toString('latin1')));
  socket.write('GET / HTTP/1.1\r\nHost: api\r\n');
  // Trickle a header line every 300 ms: never complete.
  const trickle = setInterval(() => socket.writable && socket.write('X-Slow: 1\r\n'), 300);
  await new Promise((r) => socket.on('close', r));
  clearInterval(trickle);
  const elapsed = Date.now() - started;
  assert.match(text, /^HTTP\/1\.1 408 /, text);
  assert.match(text, /weft-error: WEFT_E_HTTP_408/);
  assert.ok(elapsed >= 1000 && elapsed < 4000, `closed after ${elapsed} ms`);
});

test('a request trickled one byte at a time, body included, is read and answered', async (t) => {
  const { address } = await app(t, (req, res) => {
    let body = '';
    req.setEncoding('latin1');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => res.end(`got ${body}`));
  });
  const { outbound } = await pair(t, address);
  const [host, port] = outbound.split(':') as [string, string];
  const socket = connect(Number(port), host);
  socket.setNoDelay(true);
  t.after(() => socket.destroy());
  let text = '';
  socket.on('data', (d) => (text += d.toString('latin1')));
  const request = 'POST /slow HTTP/1.1\r\nHost: api\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello';
  for (const byte of request) {
    socket.write(byte);
    await new Promise((r) => setTimeout(r, 1));
  }
  await new Promise((r) => socket.on('close', r));
  assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
  assert.ok(text.endsWith('got hello'), text);
});

test('thousands of pipelined requests refused in one write are all answered, and the sidecar survives', async (t) => {
  const { address } = await app(t, (req, res) => res.end(`answer ${req.url}`));
  const { sidecar, inbound } = await plainSidecar(t, address);
  // HTTP/1.1 without Host: each gets a local 400 at once, keeping the connection.
  const n = 4000;
  const r = await raw(inbound, `${'GET / HTTP/1.1\r\n\r\n'.repeat(n)}GET /after HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n`, undefined, 10_000);
  assert.equal(count(r.text, /HTTP\/1\.1 400 Bad Request\r\n/g), n);
  assert.ok(r.text.endsWith('answer /after'), r.text.slice(-200));
  assert.equal(sidecar.proc.child.exitCode, null, sidecar.proc.stderr());
});

test('a caller that pipelines requests but does not read the answers is not served without bound', async (t) => {
  const body = 'z'.repeat(16 * 1024);
  let served = 0;
  const { address } = await app(t, (_req, res) => {
    served++;
    res.writeHead(200, { 'content-length': body.length }).end(body);
  });
  const { inbound } = await plainSidecar(t, address);
  const [host, port] = inbound.split(':') as [string, string];
  const socket = connect(Number(port), host);
  t.after(() => socket.destroy());
  socket.on('error', () => undefined);
  socket.pause(); // never reads
  // 4000 requests would be 64 MB of answers, all buffered by the sidecar if it kept
  // reading requests while its answers pile up unread.
  socket.write('GET / HTTP/1.1\r\nHost: api\r\n\r\n'.repeat(4000));
  let last = -1;
  while (served !== last) {
    last = served;
    await new Promise((r) => setTimeout(r, 500));
  }
  assert.ok(served < 1000, `the app served ${served} requests to a caller that reads nothing`);
});

test('a connection closed while its answers sit unread is destroyed after the idle timeout, not kept forever', async (t) => {
  const body = 'z'.repeat(16 * 1024);
  const { address } = await app(t, (_req, res) => res.writeHead(200, { 'content-length': body.length }).end(body));
  const { sidecar, inbound } = await plainSidecar(t, address, '  idleTimeout: 1s\n');
  const [host, port] = inbound.split(':') as [string, string];
  const socket = connect(Number(port), host);
  t.after(() => socket.destroy());
  socket.on('error', () => undefined);
  socket.pause(); // never reads: the sidecar's writes to it stay buffered
  socket.write('GET / HTTP/1.1\r\nHost: api\r\n\r\n'.repeat(2000));
  const active = async () => metricValue((await admin(sidecar.admin, '/metrics')).body, 'weft_connections_active', { direction: 'inbound' });
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(await active(), 1);
  // The idle timeout closes the connection; its unflushed answers must not keep it open.
  const deadline = Date.now() + 6000;
  while ((await active()) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
  assert.equal(await active(), 0, 'the connection is still open');
});

test('pipelined requests sent before the caller half-closes are all answered, then the connection closes', async (t) => {
  const { address } = await app(t, (req, res) => {
    let body = '';
    req.setEncoding('latin1');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => res.end(`answer ${req.url} ${body}\n`));
  });
  const { inbound } = await plainSidecar(t, address);
  const [host, port] = inbound.split(':') as [string, string];
  /** Writes `data`, shuts down the sending side, collects everything until the sidecar closes. */
  const halfClose = (data: string) =>
    new Promise<{ text: string; ms: number }>((resolve) => {
      const started = Date.now();
      const socket = connect({ port: Number(port), host, allowHalfOpen: true });
      let text = '';
      socket.on('data', (d) => (text += d.toString('latin1')));
      socket.on('error', () => undefined);
      socket.on('close', () => resolve({ text, ms: Date.now() - started }));
      socket.end(data, 'latin1');
    });
  const get = (path: string) => `GET ${path} HTTP/1.1\r\nHost: api\r\n\r\n`;
  // The first request: its end arrives while the sidecar is still connecting to the app.
  const post = await halfClose('POST /0 HTTP/1.1\r\nHost: api\r\nContent-Length: 4\r\n\r\nbody');
  assert.match(post.text, /answer \/0 body\n$/, post.text);
  const all = await halfClose(`${get('/1')}${get('/2')}POST /3 HTTP/1.1\r\nHost: api\r\nContent-Length: 4\r\n\r\nbody`);
  assert.deepEqual([...all.text.matchAll(/answer (\S+ ?\S*)\n/g)].map((m) => m[1]), ['/1 ', '/2 ', '/3 body']);
  // What cannot be completed any more (a partial head, a body cut short) is dropped at once.
  const partialHead = await halfClose(`${get('/1')}GET /2 HTTP/1.1\r\nHo`);
  assert.equal(count(partialHead.text, /answer/g), 1, partialHead.text);
  assert.ok(partialHead.ms < 3000, `closed after ${partialHead.ms} ms`);
  const shortBody = await halfClose(`${get('/1')}POST /2 HTTP/1.1\r\nHost: api\r\nContent-Length: 10\r\n\r\nshort`);
  assert.equal(count(shortBody.text, /answer/g), 1, shortBody.text);
  assert.ok(shortBody.ms < 3000, `closed after ${shortBody.ms} ms`);
});

test('a local reply after a HEAD request on the same connection has its body', async (t) => {
  const { address } = await app(t, (_req, res) => res.writeHead(200, { 'content-length': 5 }).end('hello'));
  const { inbound } = await plainSidecar(t, address, '  headerTimeout: 1s\n');
  // The HEAD is answered, then the next head never completes: 408, whose body must be there.
  const r = await raw(inbound, 'HEAD / HTTP/1.1\r\nHost: api\r\n\r\nGET / HTTP/1.1\r\n', undefined, 5000);
  assert.ok(r.closed);
  const reply = r.text.slice(r.text.indexOf('HTTP/1.1 408'));
  const length = Number(/content-length: (\d+)/.exec(reply)?.[1]);
  assert.equal(reply.slice(reply.indexOf('\r\n\r\n') + 4).length, length, JSON.stringify(r.text));
});

test('a request with two Host headers is refused with 400 before the app', async (t) => {
  let seen = 0;
  const { address } = await app(t, (_req, res) => {
    seen++;
    res.end('ok');
  });
  const { outbound } = await pair(t, address);
  const r = await raw(outbound, 'GET / HTTP/1.1\r\nHost: api\r\nHost: evil\r\n\r\n', (s) => s.includes('\r\n\r\n') && /\n$/.test(s));
  assert.match(r.text, /^HTTP\/1\.1 400 /, r.text);
  assert.match(r.text, /several Host headers/);
  assert.equal(seen, 0);
  const ok = await raw(outbound, 'GET / HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n');
  assert.match(ok.text, /^HTTP\/1\.1 200 /, 'one Host is fine');
});

test('a long poll outlives the idle timeout; a stuck exchange is cut at the stream idle timeout', async (t) => {
  const { address } = await app(t, (req, res) => {
    // /poll answers after 2.5 s of silence; /stuck never answers.
    if (req.url === '/poll') setTimeout(() => res.end('news'), 2500);
  });
  const { inbound } = await plainSidecar(t, address, '  idleTimeout: 1s\n  streamIdleTimeout: 4s\n');
  const poll = await curl(['-w', '\n%{http_code}', `http://${inbound}/poll`]);
  assert.equal(poll.stdout, 'news\n200', 'silence shorter than the stream idle timeout is fine');
  const started = Date.now();
  const stuck = await curl(['-o', '/dev/null', '-w', '%{http_code}', `http://${inbound}/stuck`]);
  const elapsed = Date.now() - started;
  assert.notEqual(stuck.code, 0, 'the stuck exchange is cut (curl sees the connection close)');
  assert.ok(elapsed >= 4000 && elapsed < 8000, `cut after ${elapsed} ms`);
});
