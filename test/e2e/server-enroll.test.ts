/**
 * `weft server` as a CA signer: a join token from `weft token create` enrolls one service
 * (openssl makes the key and CSR, curl calls the API); tokens are single-use and scoped to
 * their service; a sidecar renews with its certificate; signing is rate limited; every
 * issuance and refusal is audited; the CA and token state survive a restart.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runWeft, tempDir } from '../helpers/weft.js';
import { createToken, curl, opensslCsr, run, startServer } from '../helpers/control.js';

const WEB = 'spiffe://weft.local/ns/default/svc/web';

test('a join token enrolls its service once; the certificate verifies with openssl; refusals are audited', async (t) => {
  const dir = await tempDir(t);
  const data = join(dir, 'data');
  const { url } = await startServer(t, data);
  const token = await createToken(url, data, ['--service', 'web']);
  assert.match(token, /^wft\.[0-9a-f]{16}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/);

  const csr = await opensslCsr(dir, 'web', WEB);
  const enroll = (body: unknown) => curl(data, ['-H', 'content-type: application/json', '--data-binary', JSON.stringify(body), `${url}/v1/enroll`]);
  const ok = await enroll({ token, csr });
  assert.equal(ok.status, 200, ok.body);
  const answer = JSON.parse(ok.body) as { spiffeId: string; certificate: string; bundle: string; notAfter: string };
  assert.equal(answer.spiffeId, WEB);
  await writeFile(join(dir, 'web.pem'), answer.certificate);
  await writeFile(join(dir, 'bundle.pem'), answer.bundle);
  const verified = await run('openssl', ['verify', '-x509_strict', '-purpose', 'sslclient', '-CAfile', 'bundle.pem', '-untrusted', 'web.pem', 'web.pem'], { cwd: dir });
  assert.match(verified.stdout, /web\.pem: OK/);
  // The certificate certifies the key openssl made (the server never saw it).
  const certKey = await run('openssl', ['x509', '-in', 'web.pem', '-noout', '-pubkey'], { cwd: dir });
  const ownKey = await run('openssl', ['pkey', '-in', 'web.key', '-pubout'], { cwd: dir });
  assert.equal(certKey.stdout, ownKey.stdout);

  const again = await enroll({ token, csr });
  assert.equal(again.status, 401, 'a one-use token enrolls once');
  assert.match(again.body, /used up/);

  const other = await createToken(url, data, ['--service', 'web', '--uses', '2']);
  const admin = await enroll({ token: other, csr: await opensslCsr(dir, 'admin', 'spiffe://weft.local/ns/default/svc/admin') });
  assert.equal(admin.status, 403, 'a token for web cannot enroll admin');
  assert.match(admin.body, /WEFT_E_IDENTITY_MISMATCH/);
  const revoked = await runWeft(['token', 'revoke', other, '--server', url, '--data', data]);
  assert.equal(revoked.code, 0, revoked.stderr);
  assert.equal((await enroll({ token: other, csr })).status, 401, 'a revoked token enrolls no one');
  const third = await createToken(url, data, ['--service', 'web', '--uses', '2']);
  const [prefix, id, secret, pin] = third.split('.');
  const forged = await enroll({ token: [prefix, id, `${secret!.slice(0, -4)}AAAA`, pin].join('.'), csr });
  assert.equal(forged.status, 401);
  const garbage = await enroll({ token: third, csr: 'not a csr' });
  assert.equal(garbage.status, 400);

  const reserved = await curl(data, ['-H', `authorization: Bearer ${(await readFile(join(data, 'admin-token'), 'utf8')).trim()}`, '--data-binary', '{"service":"weft-server","namespace":"weft-system"}', `${url}/v1/tokens`]);
  assert.equal(reserved.status, 400, 'no token for the control plane\'s own identity');
  const wrongAdmin = await curl(data, ['-H', 'authorization: Bearer nope', '--data-binary', '{"service":"web"}', `${url}/v1/tokens`]);
  assert.equal(wrongAdmin.status, 401);
  const noAdmin = await curl(data, ['--data-binary', '{"service":"web"}', `${url}/v1/tokens`]);
  assert.equal(noAdmin.status, 401);
  for (const answer of [ok, again, admin, forged, garbage, wrongAdmin, noAdmin]) {
    assert.ok(!/PRIVATE KEY/.test(answer.body), 'no API answer carries a private key');
  }

  const audit = (await readFile(join(data, 'audit.log'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const signed = audit.filter((e) => e['event'] === 'csr.signed');
  assert.equal(signed.length, 1);
  assert.equal(signed[0]!['spiffeId'], WEB);
  assert.match(String(signed[0]!['serial']), /^[0-9a-f]+$/);
  assert.ok(audit.filter((e) => e['event'] === 'csr.refused').length >= 3, JSON.stringify(audit));
  assert.equal(audit.filter((e) => e['event'] === 'token.created').length, 3);
  assert.equal(audit.filter((e) => e['event'] === 'token.revoked').length, 1);
  const text = await readFile(join(data, 'audit.log'), 'utf8');
  assert.ok(!text.includes(token.split('.')[2]!) && !text.includes(other.split('.')[2]!), 'token secrets never reach the audit log');
});

test('a sidecar renews with its own certificate, only for its own identity, within the rate limit', async (t) => {
  const dir = await tempDir(t);
  const data = join(dir, 'data');
  const { url } = await startServer(t, data, ['--csr-rate', '3']);
  const token = await createToken(url, data, ['--service', 'web']);
  const csr = await opensslCsr(dir, 'web', WEB);
  const first = await curl(data, ['--data-binary', JSON.stringify({ token, csr }), `${url}/v1/enroll`]);
  assert.equal(first.status, 200, first.body);
  await writeFile(join(dir, 'web.pem'), (JSON.parse(first.body) as { certificate: string }).certificate);
  const mtls = ['--cert', join(dir, 'web.pem'), '--key', join(dir, 'web.key')];

  const anonymous = await curl(data, ['--data-binary', JSON.stringify({ csr }), `${url}/v1/renew`]);
  assert.equal(anonymous.status, 401, 'renewal needs a client certificate');
  const renewed = await curl(data, [...mtls, '--data-binary', JSON.stringify({ csr: await opensslCsr(dir, 'web2', WEB) }), `${url}/v1/renew`]);
  assert.equal(renewed.status, 200, renewed.body);
  const other = await curl(data, [...mtls, '--data-binary', JSON.stringify({ csr: await opensslCsr(dir, 'db', 'spiffe://weft.local/ns/default/svc/db') }), `${url}/v1/renew`]);
  assert.equal(other.status, 403, 'a certificate renews only its own identity');

  // 3 per second: a burst of 8 meets 429 with Retry-After.
  const burst = await Promise.all(Array.from({ length: 8 }, () => curl(data, [...mtls, '--data-binary', JSON.stringify({ csr }), `${url}/v1/renew`])));
  const limited = burst.filter((r) => r.status === 429);
  assert.ok(limited.length >= 3, `expected 429s in a burst of 8 at 3/s, got ${burst.map((r) => r.status).join(',')}`);
  assert.match(limited[0]!.headers, /^retry-after: \d+\r?$/im);
});

test('under concurrent use, a one-use token enrolls exactly once', async (t) => {
  const dir = await tempDir(t);
  const data = join(dir, 'data');
  const { url } = await startServer(t, data);
  const csr = await opensslCsr(dir, 'web', WEB);
  const token = await createToken(url, data, ['--service', 'web']);
  const racers = await Promise.all(Array.from({ length: 8 }, () => curl(data, ['--data-binary', JSON.stringify({ token, csr }), `${url}/v1/enroll`])));
  assert.deepEqual(racers.map((r) => r.status).sort(), [200, 401, 401, 401, 401, 401, 401, 401], 'exactly one concurrent enrollment wins');
});

test('a restart keeps the CA, the admin token and the tokens already spent', async (t) => {
  const dir = await tempDir(t);
  const data = join(dir, 'data');
  const first = await startServer(t, data);
  const bundle = await readFile(join(data, 'ca', 'bundle.pem'), 'utf8');
  const token = await createToken(first.url, data, ['--service', 'web']);
  const csr = await opensslCsr(dir, 'web', WEB);
  assert.equal((await curl(data, ['--data-binary', JSON.stringify({ token, csr }), `${first.url}/v1/enroll`])).status, 200);
  assert.equal(await first.proc.stop(), 0);

  const second = await startServer(t, data);
  assert.equal(await readFile(join(data, 'ca', 'bundle.pem'), 'utf8'), bundle, 'the same CA');
  const served = await curl(data, [`${second.url}/v1/ca/bundle`]);
  assert.equal(served.body, bundle);
  const reuse = await curl(data, ['--data-binary', JSON.stringify({ token, csr }), `${second.url}/v1/enroll`]);
  assert.equal(reuse.status, 401, 'a spent token stays spent');
  await createToken(second.url, data, ['--service', 'api']); // the admin token still works
});

test('weft token create says what is wrong: a missing file, a wrong admin token, an unreachable server', async (t) => {
  const dir = await tempDir(t);
  const data = join(dir, 'data');
  const { url } = await startServer(t, data);
  const missing = await runWeft(['token', 'create', '--service', 'web', '--server', url, '--admin-token-file', join(dir, 'nope')]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /cannot read the admin token from .*nope \(ENOENT\)/);
  await writeFile(join(dir, 'wrong'), 'not-the-token\n');
  const wrong = await runWeft(['token', 'create', '--service', 'web', '--server', url, '--admin-token-file', join(dir, 'wrong'), '--ca-file', join(data, 'ca', 'bundle.pem')]);
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /the server refused: this call needs the admin token/);
  const badName = await runWeft(['token', 'create', '--service', 'Not_A_Name', '--server', url, '--data', data]);
  assert.equal(badName.code, 1);
  assert.match(badName.stderr, /the server refused/);
  const down = await runWeft(['token', 'create', '--service', 'web', '--server', 'https://127.0.0.1:1', '--data', data]);
  assert.equal(down.code, 1);
  assert.match(down.stderr, /cannot reach the server at https:\/\/127\.0\.0\.1:1/);
});
