/**
 * The catalog of `weft server`: instances register with the certificate they enrolled for
 * (their service is the certificate's), report the app's health, turn critical when the
 * app fails or their sidecar stops reporting, survive a server restart as registrations,
 * and are listed by `weft services`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runWeft, tempDir } from '../helpers/weft.js';
import { createToken, curl, opensslCsr, startServer } from '../helpers/control.js';

test('instances register with their certificate, report health, expire, and survive a restart', async (t) => {
  const dir = await tempDir(t);
  const data = join(dir, 'data');
  const flags = ['--instance-ttl', '2s', '--instance-deregister', '5s'];
  let server = await startServer(t, data, flags);

  /** Enrolls `name` for `service` and returns curl's client-certificate flags. */
  const enroll = async (name: string, service: string): Promise<string[]> => {
    const token = await createToken(server.url, data, ['--service', service]);
    const csr = await opensslCsr(dir, name, `spiffe://weft.local/ns/default/svc/${service}`);
    const r = await curl(data, ['--data-binary', JSON.stringify({ token, csr }), `${server.url}/v1/enroll`]);
    assert.equal(r.status, 200, r.body);
    await writeFile(join(dir, `${name}.pem`), (JSON.parse(r.body) as { certificate: string }).certificate);
    return ['--cert', join(dir, `${name}.pem`), '--key', join(dir, `${name}.key`)];
  };
  const api1 = await enroll('api1', 'api');
  const api2 = await enroll('api2', 'api');
  const web = await enroll('web', 'web');
  const register = async (cert: string[], body: unknown) => {
    const r = await curl(data, [...cert, '--data-binary', JSON.stringify(body), `${server.url}/v1/catalog/instances`]);
    assert.equal(r.status, 200, r.body);
    return (JSON.parse(r.body) as { id: string; service: string }).id;
  };
  const report = (cert: string[], id: string, body: unknown) => curl(data, [...cert, '-X', 'PUT', '--data-binary', JSON.stringify(body), `${server.url}/v1/catalog/instances/${id}/report`]);
  const services = async () => {
    const r = await runWeft(['services', '--server', server.url, '--data', data, '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as { service: string; passing: number; instances: { id: string; address: string; health: string; reason: string | null; metadata: Record<string, string> }[] }[];
  };
  const api = async () => (await services()).find((s) => s.service === 'api')!;

  const id1 = await register(api1, { address: '198.18.0.2', port: 8443, metadata: { version: 'v1' } });
  const id2 = await register(api2, { address: '198.18.0.3', port: 8443, metadata: { version: 'v2' } });
  assert.match(id1, /^api-[0-9a-f]{12}$/);
  assert.deepEqual((await api()).instances.map((i) => i.health), ['unknown', 'unknown'], 'no traffic before the first report');
  assert.equal((await report(api1, id1, { healthy: true })).status, 200);
  assert.equal((await report(api2, id2, { healthy: true })).status, 200);
  assert.equal((await api()).passing, 2);

  // The service comes from the certificate, never from the body: web cannot report for api.
  assert.equal((await report(web, id1, { healthy: false })).status, 404);
  const anonymous = await curl(data, ['--data-binary', JSON.stringify({ address: '198.18.0.9', port: 1 }), `${server.url}/v1/catalog/instances`]);
  assert.equal(anonymous.status, 401);
  const bad = await curl(data, [...api1, '--data-binary', JSON.stringify({ address: 'api.local', port: 70000 }), `${server.url}/v1/catalog/instances`]);
  assert.equal(bad.status, 400);

  // The app of api2 fails its check: api has one healthy instance, and says why.
  assert.equal((await report(api2, id2, { healthy: false, reason: 'GET /healthz: 503' })).status, 200);
  let now = await api();
  assert.equal(now.passing, 1);
  assert.equal(now.instances.find((i) => i.id === id2)!.reason, 'GET /healthz: 503');
  const table = await runWeft(['services', '--server', server.url, '--data', data]);
  assert.match(table.stdout, /^api\s+default\s+1\/2\s+198\.18\.0\.2:8443 passing \(v1\), 198\.18\.0\.3:8443 critical \(v2\): GET \/healthz: 503$/m);

  // api1's sidecar goes silent: after the 2 s ttl it is critical too. An instance that
  // never reports at all is removed after the 5 s deregistration time.
  const ghost = await register(api2, { address: '198.18.0.4', port: 8443 });
  await new Promise((r) => setTimeout(r, 2500));
  now = await api();
  assert.equal(now.passing, 0);
  assert.match(now.instances.find((i) => i.id === id1)!.reason ?? '', /no report from its sidecar/);
  assert.equal((await report(api1, id1, { healthy: true })).status, 200);
  assert.equal((await report(api2, id2, { healthy: false, reason: 'GET /healthz: 503' })).status, 200);
  assert.equal((await api()).passing, 1, 'a report brings it back');
  assert.ok((await api()).instances.some((i) => i.id === ghost));
  // Keep api1 and api2 reporting, as their sidecars would, while the silent one ages out
  // (5 s after it registered, noticed by the once-a-second sweep).
  const deadline = Date.now() + 9000;
  let ghostGone = false;
  while (!ghostGone && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 500));
    assert.equal((await report(api1, id1, { healthy: true })).status, 200);
    assert.equal((await report(api2, id2, { healthy: true })).status, 200);
    ghostGone = !(await api()).instances.some((i) => i.id === ghost);
  }
  assert.ok(ghostGone, 'the silent instance was removed');

  // Restart: registrations and their last health are kept (a control plane restart must not
  // empty the mesh); an instance whose sidecar stays silent for a TTL after the start
  // turns critical, one that reports stays passing.
  assert.equal(await server.proc.stop(), 0);
  server = await startServer(t, data, flags);
  now = await api();
  assert.deepEqual(now.instances.map((i) => i.health).sort(), ['passing', 'passing']);
  const silentUntil = Date.now() + 3500;
  while (Date.now() < silentUntil) {
    assert.equal((await report(api1, id1, { healthy: true })).status, 200);
    await new Promise((r) => setTimeout(r, 500));
  }
  assert.deepEqual((await api()).instances.map((i) => [i.id, i.health]).sort(), [[id1, 'passing'], [id2, 'critical']].sort());

  const gone = await curl(data, [...api2, '-X', 'DELETE', `${server.url}/v1/catalog/instances/${id2}`]);
  assert.equal(gone.status, 200);
  assert.deepEqual((await api()).instances.map((i) => i.id), [id1]);
  assert.equal((await report(api2, id2, { healthy: true })).status, 404, 'a deregistered instance must register again');
});
