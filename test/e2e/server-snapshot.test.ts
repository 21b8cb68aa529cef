/**
 * Snapshots: a sidecar's long poll on `GET /v1/snapshot` (If-None-Match: its hash) answers within a second
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
  hash: string;
  spiffeId: string;
  inbound: { mtls: { mode: string; enforce: boolean }; authorization: { defaultAction: string; policies: { name: string; rules: { action: string }[] }[] } };
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
  const snapshot = async (cert: string[], known = '') => {
    const r = await curl(data, [...cert, '--max-time', '10', ...(known === '' ? [] : ['-H', `If-None-Match: "${known}"`]), `${server.url}/v1/snapshot`]);
    assert.equal(r.status, 200, r.body);
    return JSON.parse(r.body) as Snapshot;
  };
  /** Starts a long poll, runs `change`, and returns the answer and how long after the change it came. */
  const afterChange = async (cert: string[], after: string, change: () => Promise<void>) => {
    const poll = snapshot(cert, after);
    await new Promise((r) => setTimeout(r, 300)); // the poll is waiting
    const changed = Date.now();
    await change();
    const answer = await poll;
    return { answer, ms: Date.now() - changed };
  };

  const first = await snapshot(web);
  assert.equal(first.spiffeId, 'spiffe://weft.local/ns/default/svc/web');
  assert.deepEqual(first.inbound.mtls, { mode: 'permissive', enforce: true }, 'the default of a mesh without a Mesh resource');
  assert.deepEqual(first.inbound.authorization.policies, []);

  // A policy for web: its long poll answers at once, with the rule.
  await writeFile(join(dir, 'policy.yaml'), 'kind: AuthorizationPolicy\nmetadata: { name: web-in }\nspec:\n  targetRef: { kind: Service, name: web }\n  rules:\n    - { action: deny, from: ["*"] }\n');
  const policy = await afterChange(web, first.hash, async () => {
    const r = await runWeft(['apply', '-f', join(dir, 'policy.yaml'), '--server', server.url, '--data', data]);
    assert.equal(r.code, 0, r.stderr);
  });
  assert.ok(policy.ms < 1000, `the policy reached the poll after ${policy.ms} ms`);
  assert.deepEqual(policy.answer.inbound.authorization.policies.map((p) => [p.name, p.rules.map((r) => r.action)]), [['web-in', ['deny']]]);

  // api registers and passes its check: web hears of the endpoint.
  let id = '';
  const registered = await afterChange(web, policy.answer.hash, async () => {
    const r = await curl(data, [...api, '--data-binary', JSON.stringify({ address: '198.18.0.2', port: 8443 }), `${server.url}/v1/catalog/instances`]);
    id = (JSON.parse(r.body) as { id: string }).id;
  });
  // A registration alone is not an endpoint (its health is unknown); the first passing report is.
  assert.deepEqual(registered.answer.services.find((s) => s.name === 'api')!.endpoints, []);
  const passing = await afterChange(web, registered.answer.hash, async () => {
    await curl(data, [...api, '-X', 'PUT', '--data-binary', '{"healthy":true}', `${server.url}/v1/catalog/instances/${id}/report`]);
  });
  assert.ok(passing.ms < 1000, `a passing report reached the poll after ${passing.ms} ms`);
  const latest = passing.answer;
  const apiEntry = latest.services.find((s) => s.name === 'api')!;
  assert.equal(apiEntry.identity, 'spiffe://weft.local/ns/default/svc/api');
  assert.deepEqual(apiEntry.endpoints.map((e) => `${e.address}:${e.port}`), ['198.18.0.2:8443']);

  // api's sidecar goes silent: after the 2 s ttl the endpoint leaves web's snapshot.
  const silent = await snapshot(web, latest.hash);
  assert.deepEqual(silent.services.find((s) => s.name === 'api')!.endpoints, [], 'the silent instance is no longer an endpoint');

  // A Mesh that forbids permissive makes every inbound strict.
  const mesh = await afterChange(web, silent.hash, async () => {
    await writeFile(join(dir, 'mesh.yaml'), 'kind: Mesh\nmetadata: { name: default }\nspec:\n  mtls: { mode: permissive, allowPermissive: false }\n');
    assert.equal((await runWeft(['apply', '-f', join(dir, 'mesh.yaml'), '--server', server.url, '--data', data])).code, 0);
  });
  assert.deepEqual(mesh.answer.inbound.mtls, { mode: 'strict', enforce: true });

  // Nothing changes: the poll waits, then answers 304 (here cut short by curl's timeout).
  const started = Date.now();
  const idle = await curl(data, [...web, '--max-time', '2', '-H', `If-None-Match: "${mesh.answer.hash}"`, `${server.url}/v1/snapshot`]).catch((err: { code?: number }) => err);
  assert.equal((idle as { code?: number }).code, 28, 'curl timed out: the poll was still waiting');
  assert.ok(Date.now() - started >= 1900);

  const anonymous = await curl(data, [`${server.url}/v1/snapshot`]);
  assert.equal(anonymous.status, 401, 'a snapshot is for the sidecar whose certificate asks');
});
