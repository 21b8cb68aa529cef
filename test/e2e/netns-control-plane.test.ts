/**
 * The control plane across network namespaces (issue 4, tests 1 and 4): a server on one
 * host, web and api instances on others, all connected sidecars. Services find each other
 * through the catalog; instances that join receive traffic, instances whose app fails its
 * health check stop receiving it; and traffic keeps flowing while the server is down.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { hosts, inHost, requireNetns } from '../helpers/netns.js';
import { tempDir } from '../helpers/weft.js';
import { connectedSidecar, joinToken, load, startApp, startMeshServer, weftIn, within } from '../helpers/mesh.js';

const APP_PORT = 8080;
const INBOUND = 8443;
const WEB_OUT = 9001;

const SERVICE_API = `kind: Service
metadata: { name: api }
spec:
  protocol: http
  healthCheck: { http: { path: /health }, interval: 1s, timeout: 500ms }
`;

test('web reaches api by name; a new instance gets traffic, a failing one stops getting it', async (t) => {
  if (!(await requireNetns(t))) return;
  const [serverHost, webHost, apiHost1, apiHost2] = await hosts(t, 4);
  const dir = await tempDir(t);
  const data = join(dir, 'data');
  const server = await startMeshServer(t, serverHost!, data, ['--instance-ttl', '3s']);
  await writeFile(join(dir, 'api.yaml'), SERVICE_API);
  await weftIn(serverHost!, ['apply', '-f', join(dir, 'api.yaml'), '--server', server.url, '--data', data]);
  const apiToken = await joinToken(serverHost!, server.url, data, 'api');
  const webToken = await joinToken(serverHost!, server.url, data, 'web');

  await startApp(t, apiHost1!, APP_PORT, 'api-1');
  await startApp(t, apiHost2!, APP_PORT, 'api-2');
  await connectedSidecar(t, apiHost1!, { url: server.url, service: 'api', token: apiToken, state: join(dir, 'api-1'), inbound: INBOUND, app: APP_PORT });
  await connectedSidecar(t, apiHost2!, { url: server.url, service: 'api', token: apiToken, state: join(dir, 'api-2'), inbound: INBOUND, app: APP_PORT });
  await connectedSidecar(t, webHost!, { url: server.url, service: 'web', token: webToken, state: join(dir, 'web'), upstreams: [`api=127.0.0.1:${WEB_OUT}`] });
  const viaWeb = `http://127.0.0.1:${WEB_OUT}/`;
  const spread = () => load(webHost!, viaWeb, 1000, 10);

  // Both instances answer, through mTLS from web (api's app sees web's identity).
  await within('both api instances serve web', 15_000, spread, (r) => r.failed === 0 && (r.bodies['api-1'] ?? 0) > 0 && (r.bodies['api-2'] ?? 0) > 0);
  const { stdout: seen } = await inHost(webHost!, 'curl', ['-sS', '-D', '-', '-o', '/dev/null', viaWeb]);
  assert.match(seen, /x-seen-caller: spiffe:\/\/weft\.local\/ns\/default\/svc\/web/);

  // A third instance registers later (second port on host 1): it receives traffic.
  await startApp(t, apiHost1!, APP_PORT + 1, 'api-3');
  await connectedSidecar(t, apiHost1!, { url: server.url, service: 'api', token: apiToken, state: join(dir, 'api-3'), inbound: INBOUND + 1, app: APP_PORT + 1 });
  const joined = await within('the new instance gets traffic', 10_000, spread, (r) => (r.bodies['api-3'] ?? 0) > 0);
  t.diagnostic(`a new instance received traffic ${joined} ms after its sidecar was ready`);

  // api-2's app starts failing its health check: within a few seconds it gets no traffic.
  await inHost(apiHost2!, 'curl', ['-sS', '-X', 'POST', `http://127.0.0.1:${APP_PORT}/fail`]);
  const left = await within('the failing instance leaves', 8_000, spread, (r) => r.ok > 0 && (r.bodies['api-2'] ?? 0) === 0);
  t.diagnostic(`the failing instance stopped receiving traffic after ${left} ms`);
  const after = await spread();
  assert.equal(after.failed, 0, after.errors.join('; '));
  assert.equal(after.bodies['api-2'] ?? 0, 0);
  const services = await weftIn(serverHost!, ['services', '--server', server.url, '--data', data]);
  assert.match(services, /critical/, services);
});

test('static stability: traffic flows for 60 s without the server; sidecars restart from their last-known-good state and reconnect', async (t) => {
  if (!(await requireNetns(t))) return;
  const [serverHost, webHost, apiHost] = await hosts(t, 3);
  const dir = await tempDir(t);
  const data = join(dir, 'data');
  const server = await startMeshServer(t, serverHost!, data, ['--instance-ttl', '3s']);
  const port = new URL(server.url).port;
  const apiToken = await joinToken(serverHost!, server.url, data, 'api');
  const webToken = await joinToken(serverHost!, server.url, data, 'web');
  await startApp(t, apiHost!, APP_PORT, 'api');
  const api = await connectedSidecar(t, apiHost!, { url: server.url, service: 'api', token: apiToken, state: join(dir, 'api'), inbound: INBOUND, app: APP_PORT });
  const webOptions = { url: server.url, service: 'web', state: join(dir, 'web'), upstreams: [`api=127.0.0.1:${WEB_OUT}`] };
  let web = await connectedSidecar(t, webHost!, { ...webOptions, token: webToken });
  const viaWeb = `http://127.0.0.1:${WEB_OUT}/`;
  await within('web reaches api', 15_000, () => load(webHost!, viaWeb, 300, 10), (r) => r.ok > 0 && r.failed === 0);

  // Kill the server under steady traffic: not one request fails for 60 s.
  const steady = load(webHost!, viaWeb, 62_000, 20);
  await new Promise((r) => setTimeout(r, 1000));
  server.proc.child.kill('SIGKILL');
  await server.proc.exited;
  const during = await steady;
  t.diagnostic(`60 s without the server: ${during.ok} requests, ${during.failed} failed`);
  assert.equal(during.failed, 0, during.errors.join('; '));
  assert.ok(during.ok > 1000, `steady traffic (${during.ok} requests)`);

  // Restart both sidecars while the server is still down: they serve from their state folders.
  assert.equal(await web.proc.stop(), 0);
  web = await connectedSidecar(t, webHost!, webOptions);
  await web.proc.waitFor('the server is unreachable; serving the last-known-good snapshot from the state folder');
  assert.equal(await api.proc.stop(), 0);
  const api2 = await connectedSidecar(t, apiHost!, { url: server.url, service: 'api', state: join(dir, 'api'), inbound: INBOUND, app: APP_PORT });
  const restarted = await load(webHost!, viaWeb, 2000, 20);
  assert.equal(restarted.failed, 0, restarted.errors.join('; '));

  // The server comes back on the same address: both sidecars follow it again, and a change
  // made now reaches web (a second api instance).
  const back = await startMeshServer(t, serverHost!, data, ['--instance-ttl', '3s', '--listen', `${serverHost!.ip}:${port}`]);
  await web.proc.waitFor('following the server', 40_000);
  await api2.proc.waitFor('following the server', 40_000);
  await startApp(t, webHost!, APP_PORT, 'api-on-web-host');
  await connectedSidecar(t, webHost!, { url: back.url, service: 'api', token: apiToken, state: join(dir, 'api-b'), inbound: INBOUND, app: APP_PORT });
  await within('web converges on the new instance', 15_000, () => load(webHost!, viaWeb, 1000, 10), (r) => (r.bodies['api-on-web-host'] ?? 0) > 0 && (r.bodies['api'] ?? 0) > 0);
});
