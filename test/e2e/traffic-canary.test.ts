// Canary through the control plane: an HTTPRoute applied with `weft apply` splits a
// service 90/10 between the instances registered with version v1 and v2; changing the
// weights to 0/100 moves new requests within a second, with no failed request.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { runWeft, startSidecar, tempDir } from '../helpers/weft.js';
import { createToken, startServer } from '../helpers/control.js';
import { app } from '../helpers/http-pair.js';
import { fire } from '../helpers/traffic.js';

function route(v1: number, v2: number): string {
  return `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: api-canary }
spec:
  parentRefs: [{ kind: Service, name: api }]
  rules:
    - backendRefs:
        - { name: api, subset: { version: v1 }, weight: ${v1} }
        - { name: api, subset: { version: v2 }, weight: ${v2} }
`;
}

test('canary: 90/10 by instance metadata within tolerance, then 0/100 within a second without failures', async (t) => {
  const dir = await tempDir(t);
  const data = join(dir, 'data');
  const server = await startServer(t, data, ['--instance-ttl', '3s']);
  const token = await createToken(server.url, data, ['--service', 'api', '--uses', '0']);
  const webToken = await createToken(server.url, data, ['--service', 'web']);
  for (const version of ['v1', 'v2']) {
    const a = await app(t, (_req, res) => res.end(version));
    await startSidecar(t, ['--server', server.url, '--token', token, '--service', 'api', '--meta', `version=${version}`, '--inbound', '127.0.0.1:0', '--app', a.address, '--state', join(dir, version), '--admin', '127.0.0.1:0']);
  }
  const web = await startSidecar(t, ['--server', server.url, '--token', webToken, '--service', 'web', '--upstream', 'api=127.0.0.1:0', '--state', join(dir, 'web'), '--admin', '127.0.0.1:0']);
  const url = `http://${web.listeners['upstream api']!}`;
  const apply = async (v1: number, v2: number) => {
    const file = join(dir, `route-${v1}-${v2}.yaml`);
    await writeFile(file, route(v1, v2));
    const r = await runWeft(['apply', '-f', file, '--server', server.url, '--data', data]);
    assert.equal(r.code, 0, r.stderr);
  };
  // Both instances registered and passing: round robin over both without a route.
  const deadline = Date.now() + 15_000;
  for (;;) {
    const r = await fire(url, { n: 20, concurrency: 2 });
    if (r.bodies['v1'] !== undefined && r.bodies['v2'] !== undefined) break;
    assert.ok(Date.now() < deadline, `both versions never answered: ${JSON.stringify(r.statuses)} ${JSON.stringify(r.bodies)}`);
    await new Promise((res) => setTimeout(res, 200));
  }

  await apply(90, 10);
  const applied = Date.now() + 5_000;
  for (;;) {
    // The route is in web's snapshot once a v2-heavy mix turns into a v1-heavy one.
    const r = await fire(url, { n: 40, concurrency: 4 });
    if ((r.bodies['v1'] ?? 0) >= 30) break;
    assert.ok(Date.now() < applied, 'the route never reached the caller');
  }
  const n = 2000;
  const split = await fire(url, { n, concurrency: 8 });
  const v2 = split.bodies['v2'] ?? 0;
  // Binomial(2000, 0.1): mean 200, standard deviation 13.4. The bound is 4 standard
  // deviations (146..254): a correct split fails it about once in 15,000 runs.
  t.diagnostic(`90/10: v1 ${split.bodies['v1']}, v2 ${v2} of ${n}`);
  assert.equal(split.statuses[200], n);
  assert.ok(v2 >= 146 && v2 <= 254, `v2 got ${v2} of ${n}`);

  // Shift everything to v2 under steady traffic: no failure, and every request sent a
  // second after `weft apply` returned goes to v2.
  const answers: { at: number; status: number; body: string }[] = [];
  let stop = false;
  const loop = (async () => {
    while (!stop) {
      const r = await fire(url, { n: 1 });
      answers.push({ at: Date.now(), status: r.answers[0]!.status, body: r.answers[0]!.body });
    }
  })();
  await new Promise((r) => setTimeout(r, 300));
  await apply(0, 100);
  const appliedAt = Date.now();
  await new Promise((r) => setTimeout(r, 2_000));
  stop = true;
  await loop;
  const failed = answers.filter((a) => a.status !== 200);
  const late = answers.filter((a) => a.at > appliedAt + 1_000 && a.body !== 'v2');
  const firstAllV2 = answers.find((a, i) => a.at > appliedAt && answers.slice(i).every((b) => b.body === 'v2'));
  t.diagnostic(`${answers.length} requests during the shift; all v2 from ${firstAllV2 === undefined ? 'never' : `${firstAllV2.at - appliedAt} ms`} after apply`);
  assert.equal(failed.length, 0, JSON.stringify(failed.slice(0, 3)));
  assert.equal(late.length, 0, `${late.length} requests went to v1 more than a second after apply`);
});
