// TCP mode carries a half-close: a client that sends its request and then shuts down its
// write side (redis-cli --pipe, nc -N, HTTP/1.0-style protocols) still gets the whole reply.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type AddressInfo } from 'node:net';
import { makeCa, startSidecar, tempDir } from '../helpers/weft.js';

test('a client half-close reaches the server and the reply still comes back', async (t) => {
  // The server answers only after the client has finished sending (FIN).
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    let got = '';
    socket.on('data', (d: Buffer) => (got += d.toString()));
    socket.on('end', () => socket.end(`received ${got.length} bytes: ${got.toUpperCase()}`));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  const app = `127.0.0.1:${(server.address() as AddressInfo).port}`;

  const dir = await tempDir(t);
  const ca = await makeCa(dir);
  const api = await startSidecar(t, ['--service', 'api', '--protocol', 'tcp', '--issuer', ca, '--inbound', '127.0.0.1:0', '--app', app, '--admin', '127.0.0.1:0']);
  const web = await startSidecar(t, ['--service', 'web', '--issuer', ca, '--upstream', `api=127.0.0.1:0=${api.listeners['inbound']}=tcp`, '--admin', '127.0.0.1:0']);
  const [host, port] = web.listeners['upstream api']!.split(':');

  const reply = await new Promise<string>((resolve, reject) => {
    const socket = connect({ host, port: Number(port), allowHalfOpen: true });
    let out = '';
    socket.on('data', (d: Buffer) => (out += d.toString()));
    socket.on('end', () => resolve(out));
    socket.on('error', reject);
    socket.setTimeout(10_000, () => socket.destroy(new Error(`no reply within 10 s; got "${out}"`)));
    socket.end('ping through the mesh');
  });
  assert.equal(reply, 'received 21 bytes: PING THROUGH THE MESH');
});
