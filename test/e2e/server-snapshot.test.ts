/**
 * Snapshots: a sidecar's long poll on `GET /v1/snapshot?after=V` answers within a second
 * of a change that concerns it — a policy applied, an instance that starts or stops
 * passing — with its inbound policy and the healthy endpoints of the services it may call.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runWeft, tempDir } from '../helpers/weft.js';
import { createToken, curl, opensslCsr, startServer } from '../helpers/control.js';

interface Snapshot {
  version: number;
  spiffeId: string;
  inbound: { mtls: string; defaultAction: string; rules: { action: string }[] };
  services: { name: string; identity: string; endpoints: { address: string; port: number }[] }[];
}

test('a long poll hears of policies and endpoints within a second', async (t) => {
  const dir = await tempDir(t);
  const data = join(dir, 'data');
  const server = await startServer(t, data, ['--instance-ttl', '2s']);
  const enroll = async (name: string): Promise<string[]> => {
    const token = await createToken(server.url, data, ['--service', name]);
    const r = await curl(data, ['--data-binary', JSON.stringify({ token, csr: await opensslCsr(dir, name, `spiffe://weft.local/ns/default/svc/${name}`) }), `${server.url}/v1/enroll`]);
    assert.equal(r.status, 200, r.body);
    await writeFile(join(dir, `${name}.pem`), (JSON.parse(r.body) as { certificate: string }).certificate);
    return ['--cert', join(dir, `${name}.pem`), '--key', join(dir, `${name}.key`)];
  };
  const web = await enroll('web');
  const api = await enroll('api');
  const snapshot = async (cert: string[], after = 0) => {
    const r = await curl(data, [...cert, '--max-time', '10', `${server.url}/v1/snapshot?after=${after}`]);
    assert.equal(r.status, 200, r.body);
    return JSON.parse(r.body) as Snapshot;
  };
  /** Starts a long poll, runs `change`, and returns the answer and how long after the change it came. */
  const afterChange = async (cert: string[], after: number, change: () => Promise<void>) => {
    const poll = snapshot(cert, after);
    await new Promise((r) => setTimeout(r, 300)); // the poll is waiting
    const changed = Date.now();
    await change();
    const answer = await poll;
    return { answer, ms: Date.now() - changed };
  };

  const first = await snapshot(web);
  assert.equal(first.spiffeId, 'spiffe://weft.local/ns/default/svc/web');
  assert.equal(first.inbound.mtls, 'permissive', 'the default of a mesh without a Mesh resource');
  assert.deepEqual(first.inbound.rules, []);

  // A policy for web: its long poll answers at once, with the rule.
  await writeFile(join(dir, 'policy.yaml'), 'kind: AuthorizationPolicy\nmetadata: { name: web-in }\nspec:\n  targetRef: { kind: Service, name: web }\n  rules:\n    - { action: deny, from: ["*"] }\n');
  const policy = await afterChange(web, first.version, async () => {
    const r = await runWeft(['apply', '-f', join(dir, 'policy.yaml'), '--server', server.url, '--data', data]);
    assert.equal(r.code, 0, r.stderr);
  });
  assert.ok(policy.ms < 1000, `the policy reached the poll after ${policy.ms} ms`);
  assert.deepEqual(policy.answer.inbound.rules.map((r) => r.action), ['deny']);

  // api registers and passes its check: web hears of the endpoint.
  let id = '';
  const registered = await afterChange(web, policy.answer.version, async () => {
    const r = await curl(data, [...api, '--data-binary', JSON.stringify({ address: '198.18.0.2', port: 8443 }), `${server.url}/v1/catalog/instances`]);
    id = (JSON.parse(r.body) as { id: string }).id;
  });
  // A registration alone is not an endpoint (its health is unknown); the first passing report is.
  assert.deepEqual(registered.answer.services.find((s) => s.name === 'api')!.endpoints, []);
  const passing = await afterChange(web, registered.answer.version, async () => {
    await curl(data, [...api, '-X', 'PUT', '--data-binary', '{"healthy":true}', `${server.url}/v1/catalog/instances/${id}/report`]);
  });
  assert.ok(passing.ms < 1000, `a passing report reached the poll after ${passing.ms} ms`);
  const latest = passing.answer;
  const apiEntry = latest.services.find((s) => s.name === 'api')!;
  assert.equal(apiEntry.identity, 'spiffe://weft.local/ns/default/svc/api');
  assert.deepEqual(apiEntry.endpoints.map((e) => `${e.address}:${e.port}`), ['198.18.0.2:8443']);

  // api's sidecar goes silent: after the 2 s ttl the endpoint leaves web's snapshot.
  const silent = await snapshot(web, latest.version);
  assert.deepEqual(silent.services.find((s) => s.name === 'api')!.endpoints, [], 'the silent instance is no longer an endpoint');

  // A Mesh that forbids permissive makes every inbound strict.
  const mesh = await afterChange(web, silent.version, async () => {
    await writeFile(join(dir, 'mesh.yaml'), 'kind: Mesh\nmetadata: { name: default }\nspec:\n  mtls: { mode: permissive, allowPermissive: false }\n');
    assert.equal((await runWeft(['apply', '-f', join(dir, 'mesh.yaml'), '--server', server.url, '--data', data])).code, 0);
  });
  assert.equal(mesh.answer.inbound.mtls, 'strict');

  const anonymous = await curl(data, [`${server.url}/v1/snapshot`]);
  assert.equal(anonymous.status, 401, 'a snapshot is for the sidecar whose certificate asks');
});
