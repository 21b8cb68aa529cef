import type { TestContext } from 'node:test';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { performServerHandshake, type ServerHttp2Session } from 'node:http2';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { makeCa, startSidecar, tempDir } from './weft.js';

/** An app in the test process, closed after the test. */
export async function app(t: TestContext, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ server: Server; address: string }> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  server.closeIdleConnections();
  return { server, address: `127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/** A port nobody listens on (bound then released). */
export async function deadPort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** api sidecar in front of `appAddress`, web sidecar with an upstream `api` to the given endpoints (default: api's inbound). */
export async function pair(t: TestContext, appAddress: string, endpoints?: (apiInbound: string) => string[]) {
  const dir = await tempDir(t);
  const ca = await makeCa(dir);
  const api = await startSidecar(t, ['--service', 'api', '--issuer', ca, '--inbound', '127.0.0.1:0', '--app', appAddress, '--admin', '127.0.0.1:0']);
  const apiInbound = api.listeners['inbound']!;
  const eps = endpoints ? endpoints(apiInbound) : [apiInbound];
  const web = await startSidecar(t, ['--service', 'web', '--issuer', ca, '--upstream', `api=127.0.0.1:0=${eps.join(',')}`, '--admin', '127.0.0.1:0']);
  return { api, web, outbound: web.listeners['upstream api']! };
}


const H2_PREFACE = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';

/**
 * An app speaking HTTP/1.1 and h2c on one port (the first bytes decide), closed after the
 * test. `answer` gets each request's HTTP version, path and headers and returns the body
 * of its 200 answer. Resolves with the app's `host:port`.
 */
export async function dualProtocolApp(t: TestContext, answer: (version: string, path: string, headers: IncomingHttpHeaders) => string): Promise<string> {
  const h1 = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end(answer(req.httpVersion, req.url ?? '', req.headers)));
  });
  const sessions = new Set<ServerHttp2Session>();
  const sockets = new Set<Socket>();
  const server = createNetServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.once('data', (chunk: Buffer) => {
      socket.pause();
      socket.unshift(chunk);
      if (chunk.toString('latin1').startsWith(H2_PREFACE.slice(0, Math.min(chunk.length, H2_PREFACE.length)))) {
        const session = performServerHandshake(socket);
        sessions.add(session);
        session.once('close', () => sessions.delete(session));
        session.on('error', () => {});
        session.on('stream', (stream, headers) => {
          stream.on('error', () => {});
          stream.resume();
          stream.respond({ ':status': 200 });
          stream.end(answer('2', String(headers[':path']), headers as IncomingHttpHeaders));
        });
      } else {
        h1.emit('connection', socket);
        socket.resume();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => {
    for (const s of sessions) s.destroy();
    for (const s of sockets) s.destroy();
    h1.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}
