/**
 * Several `weft server` replicas on one PostgreSQL database (issue 7, tests 5 and 6, on
 * loopback): they share resources, the catalog, the CA (its key sealed in the database)
 * and the admin token; concurrent compare-and-set applies through two replicas have one
 * winner and one clear conflict; every replica restarts with everything intact.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { runWeft, startWeft, tempDir } from '../helpers/weft.js';
import { requirePostgres, startPostgres } from '../helpers/postgres.js';
import { curl } from '../helpers/control.js';

const run = promisify(execFile);

/** Starts a replica on loopback; resolves with its URL and process. */
async function replica(t: TestContext, dir: string, name: string, store: string, extra: string[] = []) {
  const data = join(dir, name);
  const proc = startWeft(t, ['server', '--data', data, '--listen', '127.0.0.1:0', '--store', store, '--ca-key-file', join(dir, 'ca-key'), '--replica-id', name, '--ca-dir', join(dir, 'ca'), ...extra]);
  const ready = await proc.waitFor('server ready');
  return { proc, url: `https://${ready['listen'] as string}`, data };
}

test('replicas share resources, catalog, CA and admin token; CAS conflicts are clear; a restart of every replica loses nothing', async (t) => {
  if (!(await requirePostgres(t))) return;
  const pg = await startPostgres(t);
  const store = await pg.createDatabase();
  const dir = await tempDir(t);
  await writeFile(join(dir, 'ca-key'), 'k'.repeat(8) + 'test-secret-for-the-ca-key-0123456789\n');
  assert.equal((await runWeft(['ca', 'init', '--out', join(dir, 'ca'), '--trust-domain', 'weft.local'])).code, 0);
  await writeFile(join(dir, 'admin-token'), 'the-operators-admin-token-for-all-replicas\n');
  const cli = (r: { url: string }) => ['--server', r.url, '--admin-token-file', join(dir, 'admin-token'), '--ca-file', join(dir, 'ca', 'bundle.pem')];
  // The first replica stores the admin token's hash from its data folder; the others adopt it.
  await run('mkdir', ['-p', join(dir, 'r1')]);
  await writeFile(join(dir, 'r1', 'admin-token'), await readFile(join(dir, 'admin-token')));
  let r1 = await replica(t, dir, 'r1', store);
  let r2 = await replica(t, dir, 'r2', store);

  // Apply through r1, read through r2.
  await writeFile(join(dir, 'api.yaml'), 'kind: Service\nmetadata: { name: api }\nspec: { protocol: http }\n');
  assert.equal((await runWeft(['apply', '-f', join(dir, 'api.yaml'), ...cli(r1)])).code, 0);
  const read = await runWeft(['get', 'Service', 'api', '-o', 'json', ...cli(r2)]);
  assert.equal(read.code, 0, read.stderr);
  const revision = (JSON.parse(read.stdout) as { metadata: { revision: number } }).metadata.revision;

  // Concurrent compare-and-set through both replicas: exactly one wins, the other gets 409.
  const body = (protocol: string) => JSON.stringify({ kind: 'Service', metadata: { name: 'api' }, spec: { protocol } });
  const token = (await readFile(join(dir, 'admin-token'), 'utf8')).trim();
  const put = (r: { url: string }, protocol: string) =>
    curl(dir, ['-X', 'PUT', '-H', `authorization: Bearer ${token}`, '-H', `if-match: ${revision}`, '--data-binary', body(protocol), `${r.url}/v1/resources`]);
  const [a, b] = await Promise.all([put(r1, 'tcp'), put(r2, 'http')]);
  assert.deepEqual([a.status, b.status].sort(), [200, 409], `${a.body} ${b.body}`);
  const loser = a.status === 409 ? a : b;
  assert.match(loser.body, /WEFT_E_CONFLICT|revision/i);

  // The CA key is in the database, sealed: no private key in plaintext anywhere in it.
  const tables = (await run('pg_dump', ['--data-only', store], { maxBuffer: 64 * 1024 * 1024 })).stdout;
  assert.ok(tables.includes('CertificateAuthority'), 'the CA is in the store');
  assert.ok(!tables.includes('PRIVATE KEY'), 'no private key in plaintext in the database');

  // Restart every replica: resources and the CA are intact (same bundle, same admin token).
  assert.equal(await r1.proc.stop(), 0);
  assert.equal(await r2.proc.stop(), 0);
  r2 = await replica(t, dir, 'r2', store);
  r1 = await replica(t, dir, 'r1', store);
  const after = await runWeft(['get', 'Service', 'api', '-o', 'json', ...cli(r1)]);
  assert.equal(after.code, 0, after.stderr);
  assert.ok((JSON.parse(after.stdout) as { metadata: { revision: number } }).metadata.revision > revision);
  const bundle = await curl(dir, [`${r2.url}/v1/ca/bundle`]);
  assert.equal(bundle.body, await readFile(join(dir, 'ca', 'bundle.pem'), 'utf8'));
  const ready = await curl(dir, [`${r1.url}/ready`]);
  assert.equal(ready.status, 200);
  assert.equal((JSON.parse(ready.body) as { store: string }).store, 'postgres');
});
