/**
 * Issue 4, tests 2 and 3, across network namespaces with connected sidecars: the
 * permissive-to-strict migration of one service, step by step, and authorization
 * policies pushed by the server.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { hosts, inHost, requireNetns, type Host } from '../helpers/netns.js';
import { metricValue, tempDir } from '../helpers/weft.js';
import { connectedSidecar, joinToken, load, startApp, startMeshServer, weftIn, within } from '../helpers/mesh.js';

const APP_PORT = 8080;
const INBOUND = 8443;
const OUT = 9001;

/** Runs curl inside a host; resolves with the status (0 when the connection failed) and the weft-error header. */
async function curlIn(host: Host, args: string[]): Promise<{ status: number; error: string | null }> {
  try {
    const { stdout } = await inHost(host, 'curl', ['-sS', '--max-time', '5', '-o', '/dev/null', '-D', '-', ...args]);
    return { status: Number(/^HTTP\/\S+ (\d+)/.exec(stdout)?.[1] ?? 0), error: /weft-error: (\S+)/i.exec(stdout)?.[1] ?? null };
  } catch {
    return { status: 0, error: null };
  }
}

test('migration: the plaintext caller is named, joins the mesh, the verdict turns ready, api goes strict with zero failed requests', async (t) => {
  if (!(await requireNetns(t))) return;
  const [serverHost, apiHost, webHost, legacyHost] = await hosts(t, 4);
  const dir = await tempDir(t);
  const data = join(dir, 'data');
  const server = await startMeshServer(t, serverHost!, data, ['--instance-ttl', '3s', '--migration-window', '4s']);
  const cli = ['--server', server.url, '--data', data];
  const status = async () => JSON.parse(await weftIn(serverHost!, ['migrate', 'status', 'api', '-o', 'json', ...cli])) as { services: { mode: string; verdict: string; ready: boolean }[] };

  await startApp(t, apiHost!, APP_PORT, 'api');
  await connectedSidecar(t, apiHost!, { url: server.url, service: 'api', token: await joinToken(serverHost!, server.url, data, 'api'), state: join(dir, 'api'), inbound: INBOUND, app: APP_PORT });
  await connectedSidecar(t, webHost!, { url: server.url, service: 'web', token: await joinToken(serverHost!, server.url, data, 'web'), state: join(dir, 'web'), upstreams: [`api=127.0.0.1:${OUT}`] });
  const viaWeb = `http://127.0.0.1:${OUT}/`;
  const direct = `http://${apiHost!.ip}:${INBOUND}/`;
  await within('web reaches api', 15_000, () => load(webHost!, viaWeb, 300, 10), (r) => r.ok > 0 && r.failed === 0);

  // api is permissive (the mesh default): one mesh caller (web) and one plaintext caller (legacy).
  assert.equal((await curlIn(legacyHost!, [direct])).status, 200, 'plaintext is served while api is permissive');
  await within('the plaintext caller is named', 10_000, status, (s) => /1 plaintext caller: 198\.18\.0\.4/.test(s.services[0]!.verdict));
  const table = await weftIn(serverHost!, ['migrate', 'status', 'api', ...cli]);
  assert.match(table, /permissive/);
  assert.match(table, /198\.18\.0\.4/);

  // The caller joins the mesh: its own sidecar, calling api by name.
  await connectedSidecar(t, legacyHost!, { url: server.url, service: 'legacy', token: await joinToken(serverHost!, server.url, data, 'legacy'), state: join(dir, 'legacy'), upstreams: [`api=127.0.0.1:${OUT}`] });
  await within('legacy reaches api through the mesh', 15_000, () => load(legacyHost!, viaWeb, 300, 10), (r) => r.ok > 0 && r.failed === 0);
  await within('the verdict turns ready for strict', 15_000, async () => {
    await load(legacyHost!, viaWeb, 200, 20);
    await load(webHost!, viaWeb, 200, 20);
    return status();
  }, (s) => s.services[0]!.ready && s.services[0]!.verdict === 'ready for strict');

  // api goes strict under steady mesh traffic from both callers: not one request fails.
  const steadyWeb = load(webHost!, viaWeb, 6000, 10);
  const steadyLegacy = load(legacyHost!, viaWeb, 6000, 10);
  await new Promise((r) => setTimeout(r, 1500));
  await writeFile(join(dir, 'strict.yaml'), 'kind: Service\nmetadata: { name: api }\nspec:\n  mtls: { mode: strict }\n');
  await weftIn(serverHost!, ['apply', '-f', join(dir, 'strict.yaml'), ...cli]);
  const [web, legacy] = await Promise.all([steadyWeb, steadyLegacy]);
  t.diagnostic(`during the switch: web ${web.ok} ok / ${web.failed} failed, legacy ${legacy.ok} ok / ${legacy.failed} failed`);
  assert.equal(web.failed + legacy.failed, 0, [...web.errors, ...legacy.errors].join('; '));
  assert.ok(web.ok > 100 && legacy.ok > 100);
  // Plaintext is refused now; mesh traffic continues.
  assert.equal((await curlIn(legacyHost!, [direct])).status, 0, 'plaintext is refused once api is strict');
  assert.equal((await status()).services[0]!.mode, 'strict');
  assert.equal((await load(webHost!, viaWeb, 500, 10)).failed, 0);
});

test('authorization: deny, path and method rules, audit; a policy change applies within a second without dropping connections', async (t) => {
  if (!(await requireNetns(t))) return;
  const [serverHost, apiHost, webHost] = await hosts(t, 3);
  const dir = await tempDir(t);
  const data = join(dir, 'data');
  const server = await startMeshServer(t, serverHost!, data, ['--instance-ttl', '3s']);
  const cli = ['--server', server.url, '--data', data];
  await startApp(t, apiHost!, APP_PORT, 'api');
  const api = await connectedSidecar(t, apiHost!, { url: server.url, service: 'api', token: await joinToken(serverHost!, server.url, data, 'api'), state: join(dir, 'api'), inbound: INBOUND, app: APP_PORT, admin: 15000 });
  await connectedSidecar(t, webHost!, { url: server.url, service: 'web', token: await joinToken(serverHost!, server.url, data, 'web'), state: join(dir, 'web'), upstreams: [`api=127.0.0.1:${OUT}`] });
  const base = `http://127.0.0.1:${OUT}`;
  await within('web reaches api', 15_000, () => load(webHost!, `${base}/`, 300, 10), (r) => r.ok > 0 && r.failed === 0).catch((err: Error) => {
    throw new Error(`${err.message}; api sidecar: ${api.proc.lines.slice(-5).join('\n')}`);
  });
  const apiMetrics = async () => (await inHost(apiHost!, 'curl', ['-sS', `http://${api.admin}/metrics`])).stdout;
  const inboundConnections = async () => metricValue(await apiMetrics(), 'weft_connections_total', { direction: 'inbound', service: 'api', source_identity: 'spiffe://weft.local/ns/default/svc/web', tls: 'true' });
  const connectionsBefore = await inboundConnections();

  /** Applies a policy, then measures how long until web sees `expected` for `path` (method GET unless given). */
  const applyAndWait = async (name: string, yaml: string, path: string, expected: number, method = 'GET') => {
    await writeFile(join(dir, `${name}.yaml`), yaml);
    await weftIn(serverHost!, ['apply', '-f', join(dir, `${name}.yaml`), ...cli]);
    return within(`${name} takes effect`, 3000, () => curlIn(webHost!, ['-X', method, `${base}${path}`]), (r) => r.status === expected);
  };
  const policy = (rules: string) => `kind: AuthorizationPolicy\nmetadata: { name: api-in }\nspec:\n  targetRef: { kind: Service, name: api }\n  rules:\n${rules}`;

  // A deny rule for web: 403 with the weft-error code, within a second.
  const denyMs = await applyAndWait('deny', policy('    - { action: deny, from: [{ service: web }] }\n'), '/', 403);
  t.diagnostic(`the deny rule took effect after ${denyMs} ms`);
  assert.ok(denyMs < 1000, `deny took ${denyMs} ms`);
  assert.equal((await curlIn(webHost!, [`${base}/`])).error, 'WEFT_E_AUTHZ_DENIED');

  // Only GET /public/*: GET /public/x passes, POST /public/x and GET /private are denied.
  const publicOnly = policy('    - { action: allow, from: [{ service: web }], to: { paths: [{ prefix: /public/ }], methods: [GET] } }\n    - { action: deny, from: ["*"] }\n');
  const allowMs = await applyAndWait('public', publicOnly, '/public/x', 200);
  assert.ok(allowMs < 1000, `the allow rule took ${allowMs} ms`);
  // (no body: a refused request whose body was not read ends its connection, as in any HTTP server)
  assert.equal((await curlIn(webHost!, ['-X', 'POST', `${base}/public/x`])).status, 403);
  assert.equal((await curlIn(webHost!, [`${base}/private`])).status, 403);

  // audit: a would-be denial is let through and counted.
  const auditBefore = metricValue(await apiMetrics(), 'weft_authz_decisions_total', { direction: 'inbound', service: 'api', decision: 'audit' });
  await applyAndWait('audit', policy('    - { action: audit, from: [{ service: web }], to: { methods: [POST] } }\n'), '/x', 200, 'POST');
  for (let i = 0; i < 3; i++) assert.equal((await curlIn(webHost!, ['-X', 'POST', '-d', 'x', `${base}/x`])).status, 200);
  const audited = metricValue(await apiMetrics(), 'weft_authz_decisions_total', { direction: 'inbound', service: 'api', decision: 'audit' }) - auditBefore;
  assert.ok(audited >= 4, `audit counted ${audited} would-be denials`);

  // Every policy change reused web's pooled mTLS connection to api: none was dropped or opened.
  assert.equal(await inboundConnections(), connectionsBefore, 'policy changes dropped no connection');
});
