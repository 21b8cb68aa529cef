import type { TestContext } from 'node:test';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
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

