import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { isWeftError } from '../../src/errors.js';
import { loadOrCreateSharedCa, readCaSecret, seal, sharedAdminTokenHash, unseal } from '../../src/control/shared-secrets.js';
import { SqliteStore } from '../../src/control/store/sqlite-store.js';

const SECRET = 'a-secret-long-enough-to-seal-the-ca-key-0123';
const log = pino({ level: 'silent' });

test('seal and unseal: the right secret opens, a wrong one is refused with WEFT_E_CA_KEY, nothing readable is kept', () => {
  const sealed = seal('-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n', SECRET);
  assert.ok(!JSON.stringify(sealed).includes('PRIVATE KEY'));
  assert.equal(unseal(sealed, SECRET), '-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n');
  assert.throws(() => unseal(sealed, `${SECRET}x`), (err: unknown) => isWeftError(err, 'WEFT_E_CA_KEY'));
  assert.throws(() => unseal({ ...sealed, tag: Buffer.alloc(16).toString('base64') }, SECRET), (err: unknown) => isWeftError(err, 'WEFT_E_CA_KEY'));
  assert.notDeepEqual(seal('same', SECRET), seal('same', SECRET), 'a fresh salt and IV each time');
});

test('the CA key secret must be given and long enough', async () => {
  await assert.rejects(readCaSecret(undefined, undefined), /--ca-key-file FILE or WEFT_CA_KEY/);
  await assert.rejects(readCaSecret(undefined, 'short'), /at least 32/);
  assert.equal(await readCaSecret(undefined, ` ${SECRET}\n`), SECRET);
});

test('replicas on one store agree on one CA and one admin token', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'weft-shared-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const store = SqliteStore.open({ dataDir: join(dir, 'store') });
  t.after(() => store.close());
  const [a, b] = await Promise.all([
    loadOrCreateSharedCa(store, { secret: SECRET, dataDir: join(dir, 'r1'), trustDomain: 'example.org', log }),
    loadOrCreateSharedCa(store, { secret: SECRET, dataDir: join(dir, 'r2'), trustDomain: 'example.org', log }),
  ]);
  assert.equal(a.certPem, b.certPem, 'one CA for both');
  assert.equal(a.trustDomain, 'example.org');
  await assert.rejects(loadOrCreateSharedCa(store, { secret: `${SECRET}-other`, dataDir: join(dir, 'r3'), trustDomain: 'example.org', log }), /cannot be decrypted/);
  const h1 = await sharedAdminTokenHash(store, { file: join(dir, 'r1', 'admin-token'), log });
  const h2 = await sharedAdminTokenHash(store, { file: join(dir, 'r2', 'admin-token'), log });
  assert.deepEqual(h1, h2);
  assert.ok((await readFile(join(dir, 'r1', 'admin-token'), 'utf8')).length > 20, 'the first replica wrote the token it stored');
});
