import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request, type IncomingMessage } from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { Agent, request as undiciRequest } from 'undici';
import { admin, metricValue } from '../helpers/weft.js';
import { app, deadPort, pair } from '../helpers/http-pair.js';

test('request and response bodies stream through both sidecars intact', async (t) => {
  const size = 5 * 1024 * 1024;
  const { address } = await app(t, (req, res) => {
    const hash = createHash('sha256');
    let n = 0;
    req.on('data', (c: Buffer) => {
      hash.update(c);
      n += c.length;
    });
    req.on('end', () => {
      res.writeHead(200, { 'x-received-bytes': String(n), 'x-received-sha256': hash.digest('hex') });
      // A streamed (chunked) response of `size` bytes.
      let sent = 0;
      const chunk = Buffer.alloc(64 * 1024, 7);
      const pump = () => {
        while (sent < size) {
          sent += chunk.length;
          if (!res.write(chunk)) return res.once('drain', pump);
        }
        res.end();
      };
      pump();
    });
  });
  const { outbound } = await pair(t, address);
  const body = randomBytes(size);
  const res = await undiciRequest(`http://${outbound}/upload`, { method: 'POST', body: Readable.from((async function* () {
    for (let i = 0; i < body.length; i += 100_000) yield body.subarray(i, i + 100_000);
  })()) });
  assert.equal(res.statusCode, 200);
  assert.equal(res.headers['x-received-bytes'], String(size));
  assert.equal(res.headers['x-received-sha256'], createHash('sha256').update(body).digest('hex'));
  let received = 0;
  for await (const chunk of res.body) received += (chunk as Buffer).length;
  assert.equal(received, size);
});

test('keep-alive: many requests share pooled connections on every hop', async (t) => {
  const { address } = await app(t, (_req, res) => res.end('ok'));
  const { api, outbound } = await pair(t, address);
  const agent = new Agent({ connections: 1 });
  t.after(() => agent.close());
  for (let i = 0; i < 50; i++) {
    const res = await undiciRequest(`http://${outbound}/`, { dispatcher: agent });
    assert.equal(await res.body.text(), 'ok');
  }
  const metrics = (await admin(api.admin, '/metrics')).body;
  assert.equal(metricValue(metrics, 'weft_requests_total', { direction: 'inbound', code: '200' }), 50);
  const conns = metricValue(metrics, 'weft_connections_total', { direction: 'inbound', source_identity: 'spiffe://example.org/ns/default/svc/web' });
  assert.ok(conns >= 1 && conns <= 2, `sidecar-to-sidecar connections should be pooled, saw ${conns}`);
});

test('hop-by-hop headers do not cross; the app sees forwarding headers', async (t) => {
  let seen: IncomingMessage['headers'] = {};
  const { address } = await app(t, (req, res) => {
    seen = req.headers;
    res.writeHead(200, { Connection: 'x-app-hop', 'x-app-hop': 'secret', 'x-app-end': 'kept' });
    res.end('ok');
  });
  const { outbound } = await pair(t, address);
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: Number(outbound.split(':')[1]), path: '/', headers: { Connection: 'keep-alive, x-client-hop', 'x-client-hop': 'secret', 'x-client-end': 'kept' } }, resolve);
    req.on('error', reject);
    req.end();
  });
  res.resume();
  assert.equal(seen['x-client-hop'], undefined);
  assert.equal(seen['x-client-end'], 'kept');
  assert.equal(seen['x-forwarded-proto'], 'https');
  assert.match(String(seen['x-forwarded-client-cert']), /URI=spiffe:\/\/example\.org\/ns\/default\/svc\/web$/);
  assert.equal(res.headers['x-app-hop'], undefined);
  assert.equal(res.headers['x-app-end'], 'kept');
});

test('upgrades (WebSocket handshake) pass through and become a two-way byte stream', async (t) => {
  const { server, address } = await app(t, (_req, res) => res.end('not an upgrade'));
  let closedByPeer = false;
  server.on('upgrade', (req, socket) => {
    assert.equal(req.headers['upgrade'], 'websocket');
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nx-identity: ' + String(req.headers['x-forwarded-client-cert']) + '\r\n\r\n');
    socket.on('data', (d: Buffer) => socket.write(Buffer.from(d.toString('utf8').toUpperCase())));
    // Like a WebSocket server: when the client goes away, close our side (the close travels back through both sidecars).
    socket.on('end', () => {
      closedByPeer = true;
      socket.end();
    });
  });
  const { outbound } = await pair(t, address);
  const { res, socket } = await new Promise<{ res: IncomingMessage; socket: import('node:net').Socket }>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: Number(outbound.split(':')[1]), path: '/ws', headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': randomBytes(16).toString('base64') } });
    req.on('upgrade', (r, s) => resolve({ res: r, socket: s }));
    req.on('response', (r) => reject(new Error(`no upgrade: ${r.statusCode}`)));
    req.on('error', reject);
    req.end();
  });
  assert.equal(res.statusCode, 101);
  assert.match(String(res.headers['x-identity']), /URI=spiffe:\/\/example\.org\/ns\/default\/svc\/web/);
  const echoed = await new Promise<string>((resolve) => {
    let got = '';
    socket.on('data', (d: Buffer) => {
      got += d.toString();
      if (got.length >= 11) resolve(got);
    });
    socket.write('hello mesh!');
  });
  assert.equal(echoed, 'HELLO MESH!');
  socket.destroy();
  const deadline = Date.now() + 5000;
  while (!closedByPeer && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.ok(closedByPeer, 'closing the client side reaches the app through both sidecars');
});

test('an endpoint that refuses connections is skipped; with none left the caller gets 503', async (t) => {
  const { address } = await app(t, (_req, res) => res.end('ok'));
  const dead = await deadPort();
  const { outbound } = await pair(t, address, (apiInbound) => [`127.0.0.1:${dead}`, apiInbound]);
  for (let i = 0; i < 10; i++) {
    const res = await undiciRequest(`http://${outbound}/`, { dispatcher: new Agent({ pipelining: 0 }) });
    assert.equal(res.statusCode, 200, `request ${i}`);
    await res.body.text();
  }
  const allDead = await pair(t, address, () => [`127.0.0.1:${dead}`]);
  const res = await undiciRequest(`http://${allDead.outbound}/`);
  assert.equal(res.statusCode, 503);
  assert.equal(res.headers['weft-error'], 'WEFT_E_UPSTREAM_CONNECT');
  await res.body.text();
});

test('an app that is down gives 503 from the inbound sidecar, counted in metrics', async (t) => {
  const dead = await deadPort();
  const { api, outbound } = await pair(t, `127.0.0.1:${dead}`);
  const res = await undiciRequest(`http://${outbound}/`);
  assert.equal(res.statusCode, 503);
  assert.equal(res.headers['weft-error'], 'WEFT_E_UPSTREAM_CONNECT');
  await res.body.text();
  const metrics = (await admin(api.admin, '/metrics')).body;
  assert.equal(metricValue(metrics, 'weft_errors_total', { direction: 'inbound', error: 'WEFT_E_UPSTREAM_CONNECT' }), 1);
  assert.equal(metricValue(metrics, 'weft_requests_total', { direction: 'inbound', code: '503' }), 1);
});
