/**
 * Resources on `weft server`: `weft apply` of a multi-document file, `get`, `delete`;
 * invalid files rejected whole with every problem at file:line:col and nothing stored;
 * the API validates too and does compare-and-set with If-Match; a restart keeps them.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runWeft, tempDir } from '../helpers/weft.js';
import { run, startServer as startControl } from '../helpers/control.js';

const startServer = (t: TestContext, data: string) => startControl(t, data, ['--trust-domain', 'example.org']);

const MESH_FILE = `kind: Mesh
metadata: { name: default }
spec:
  trustDomain: example.org
  mtls: { mode: permissive }
---
kind: Service
metadata: { name: api, namespace: shop }
spec:
  protocol: http
  mtls: { mode: strict }
  healthCheck: { http: { path: /healthz }, interval: 5s }
---
kind: AuthorizationPolicy
metadata: { name: api-callers, namespace: shop }
spec:
  targetRef: { kind: Service, name: api }
  rules:
    - action: allow
      from: [{ service: web }]
      to: { paths: [{ prefix: /public/ }], methods: [GET] }
    - action: deny
      from: ["*"]
`;

const BAD_FILE = `kind: Service
metadata: { name: api, namespace: shop }
spec:
  protocol: udp
  colour: blue
---
kind: AuthorizationPolicy
metadata: { name: api-callers, namespace: shop }
spec:
  targetRef: { kind: Service, name: api }
  rules:
    - action: maybe
      from: []
`;

test('apply, get and delete resources; invalid files are rejected whole with every problem located', async (t) => {
  const dir = await tempDir(t);
  const data = join(dir, 'data');
  const { url } = await startServer(t, data);
  const weft = (args: string[]) => runWeft([...args, '--server', url, '--data', data]);
  await writeFile(join(dir, 'mesh.yaml'), MESH_FILE);

  const applied = await weft(['apply', '-f', join(dir, 'mesh.yaml')]);
  assert.equal(applied.code, 0, applied.stderr);
  assert.match(applied.stdout, /^Mesh weft-system\/default created \(revision \d+\)$/m);
  assert.match(applied.stdout, /^Service shop\/api created/m);
  assert.match(applied.stdout, /^AuthorizationPolicy shop\/api-callers created/m);

  const got = await weft(['get', 'Service', 'api', '-n', 'shop', '-o', 'json']);
  assert.equal(got.code, 0, got.stderr);
  const service = JSON.parse(got.stdout) as { kind: string; metadata: { revision: number }; spec: { protocol: string; mtls: { mode: string }; healthCheck: { interval: number } } };
  assert.equal(service.kind, 'Service');
  assert.equal(service.spec.mtls.mode, 'strict');
  assert.equal(service.spec.healthCheck.interval, 5000);
  const list = await weft(['get', 'AuthorizationPolicy']);
  assert.match(list.stdout, /name: api-callers/);

  const again = await weft(['apply', '-f', dir]);
  assert.match(again.stdout, /^Service shop\/api configured/m, 'applying the folder again updates in place');

  const before = JSON.parse((await weft(['get', 'Service', 'api', '-n', 'shop', '-o', 'json'])).stdout) as typeof service;
  // An invalid file: every problem of every document, with file:line:col; nothing stored.
  await writeFile(join(dir, 'bad.yml'), BAD_FILE);
  const bad = await weft(['apply', '-f', join(dir, 'bad.yml')]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /invalid configuration \(4 problems\)/, bad.stderr);
  assert.match(bad.stderr, /bad\.yml:4:13 spec\.protocol: protocol must be http, http2, grpc or tcp/);
  assert.match(bad.stderr, /bad\.yml:5:3 spec\.colour: unknown field "colour"/);
  assert.match(bad.stderr, /bad\.yml:12:15 spec\.rules\.0\.action: action must be allow, deny or audit/);
  assert.match(bad.stderr, /bad\.yml:13:13 spec\.rules\.0\.from: a rule needs at least one source/);
  const unchanged = JSON.parse((await weft(['get', 'Service', 'api', '-n', 'shop', '-o', 'json'])).stdout) as typeof service;
  assert.equal(unchanged.metadata.revision, before.metadata.revision, 'the rejected file changed nothing');
  assert.equal(unchanged.spec.protocol, 'http');

  const deleted = await weft(['delete', 'AuthorizationPolicy', 'api-callers', '-n', 'shop']);
  assert.equal(deleted.code, 0, deleted.stderr);
  const gone = await weft(['get', 'AuthorizationPolicy', 'api-callers', '-n', 'shop']);
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /does not exist/);
  const unknownKind = await weft(['get', 'Pods']);
  assert.equal(unknownKind.code, 2);
  assert.match(unknownKind.stderr, /KIND must be one of Mesh, Service, AuthorizationPolicy/);
});

test('the API validates resources itself and does compare-and-set with If-Match; a restart keeps them', async (t) => {
  const dir = await tempDir(t);
  const data = join(dir, 'data');
  const first = await startServer(t, data);
  const { readFile } = await import('node:fs/promises');
  const token = (await readFile(join(data, 'admin-token'), 'utf8')).trim();
  const curl = async (url: string, args: string[]) => {
    const { stdout } = await run('curl', ['-sS', '--cacert', join(data, 'ca', 'bundle.pem'), '-H', `authorization: Bearer ${token}`, '-w', '\n%{http_code}', ...args, url]);
    const cut = stdout.lastIndexOf('\n');
    return { status: Number(stdout.slice(cut + 1)), json: JSON.parse(stdout.slice(0, cut)) as Record<string, unknown> };
  };
  const put = (base: string, body: unknown, headers: string[] = []) => curl(`${base}/v1/resources`, ['-X', 'PUT', ...headers.flatMap((h) => ['-H', h]), '--data-binary', JSON.stringify(body)]);
  const svc = (protocol: string) => ({ kind: 'Service', metadata: { name: 'db' }, spec: { protocol } });

  const created = await put(first.url, svc('tcp'), ['if-none-match: *']);
  assert.equal(created.status, 200, JSON.stringify(created.json));
  const revision = created.json['revision'] as number;
  assert.equal((await put(first.url, svc('tcp'), ['if-none-match: *'])).status, 409, 'create-only on an existing resource conflicts');
  assert.equal((await put(first.url, svc('http'), [`if-match: ${revision}`])).status, 200);
  const stale = await put(first.url, svc('tcp'), [`if-match: ${revision}`]);
  assert.equal(stale.status, 409, 'a stale revision conflicts');
  assert.match(String((stale.json['error'] as { message: string }).message), /revision/);

  const invalid = await put(first.url, { kind: 'Service', metadata: { name: 'DB' }, spec: { protocol: 'smtp' } });
  assert.equal(invalid.status, 400);
  const problems = (invalid.json['error'] as { problems: { path: string }[] }).problems.map((p) => p.path).sort();
  assert.deepEqual(problems, ['metadata.name', 'spec.protocol']);
  const wrongMesh = await put(first.url, { kind: 'Mesh', metadata: { name: 'default' }, spec: { trustDomain: 'other.org' } });
  assert.equal(wrongMesh.status, 400);
  assert.match(String((wrongMesh.json['error'] as { message: string }).message), /trust domain is example\.org, not other\.org/);
  const noAdmin = await run('curl', ['-sS', '--cacert', join(data, 'ca', 'bundle.pem'), '-o', '/dev/null', '-w', '%{http_code}', `${first.url}/v1/resources/Service`]);
  assert.equal(noAdmin.stdout, '401');

  assert.equal(await first.proc.stop(), 0);
  const second = await startServer(t, data);
  const kept = await curl(`${second.url}/v1/resources/Service/default/db`, []);
  assert.equal(kept.status, 200);
  assert.deepEqual(kept.json['spec'], { protocol: 'http' });
});

test('operator commands take the server and credentials from ~/.config/weft/cli.yaml; flags and variables win', async (t) => {
  const dir = await tempDir(t);
  const data = join(dir, 'data');
  const server = await startControl(t, data);
  const config = join(dir, 'cli.yaml');
  await writeFile(config, `server: ${server.url}\nadminTokenFile: ${join(data, 'admin-token')}\ncaFile: ${join(data, 'ca', 'bundle.pem')}\n`);
  const env = { WEFT_CLI_CONFIG: config };
  const listed = await runWeft(['get', 'Service'], { env });
  assert.equal(listed.code, 0, listed.stderr);
  // A flag naming another server does not send the file's admin token there.
  const other = await runWeft(['get', 'Service', '--server', 'https://127.0.0.1:1'], { env });
  assert.equal(other.code, 2);
  assert.match(other.stderr, /the admin token is needed/);
  await writeFile(config, 'server: [not, a, string]\n');
  const bad = await runWeft(['get', 'Service'], { env });
  assert.match(bad.stderr, /cli\.yaml: expected a mapping of server, data, adminToken, adminTokenFile, caFile to strings/);
});
