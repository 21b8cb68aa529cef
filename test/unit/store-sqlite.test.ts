import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { isWeftError } from '../../src/errors.js';
import { SqliteStore, SQLITE_STORE_FILE } from '../../src/control/store/sqlite-store.js';
import { retainNative } from '../../src/control/store/sqlite-retain.js';
import { SCHEMA_VERSION } from '../../src/control/store/sqlite-schema.js';
import { runStoreContract } from './store-contract.js';

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'weft-store-'));
}

runStoreContract('SqliteStore', async () => {
  const dir = await tempDir();
  return {
    open: async () => SqliteStore.open({ dataDir: join(dir, 'data') }),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});

/** A temp dir removed after the test. */
async function withDir(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await tempDir();
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('SqliteStore: creates the data directory and a 0600 database file in WAL mode', async (t) => {
  const dataDir = join(await withDir(t), 'nested', 'data');
  const store = SqliteStore.open({ dataDir });
  await store.put({ kind: 'Service', namespace: 'default', name: 'web', spec: { port: 1 } });
  const file = join(dataDir, SQLITE_STORE_FILE);
  assert.equal((await stat(file)).mode & 0o777, 0o600);
  assert.equal((await stat(dataDir)).mode & 0o777, 0o700);
  assert.equal((await stat(`${file}-wal`)).mode & 0o777, 0o600);
  const db = retainNative(new Database(file, { readonly: true }));
  try {
    assert.deepEqual(retainNative(db.prepare('PRAGMA journal_mode')).get(), { journal_mode: 'wal' });
    assert.deepEqual(retainNative(db.prepare('SELECT version FROM schema_version')).all(), [{ version: SCHEMA_VERSION }]);
  } finally {
    db.close();
  }
  await store.close();
});

test('SqliteStore: opening the same new database twice at once migrates it once', async (t) => {
  const dataDir = await withDir(t);
  const stores = [SqliteStore.open({ dataDir }), SqliteStore.open({ dataDir })];
  await stores[0]!.put({ kind: 'Service', namespace: 'default', name: 'a', spec: 1 });
  await stores[1]!.put({ kind: 'Service', namespace: 'default', name: 'b', spec: 2 });
  assert.equal((await stores[0]!.list('Service')).length, 2);
  for (const store of stores) await store.close();
  const again = SqliteStore.open({ dataDir });
  assert.equal(await again.revision(), 2);
  await again.close();
  const db = retainNative(new Database(join(dataDir, SQLITE_STORE_FILE), { readonly: true }));
  assert.deepEqual(retainNative(db.prepare('SELECT count(*) AS n FROM schema_version')).get(), { n: 1 });
  db.close();
});

test('SqliteStore: a database from a newer weft is refused, not changed', async (t) => {
  const dataDir = await withDir(t);
  await SqliteStore.open({ dataDir }).close();
  const file = join(dataDir, SQLITE_STORE_FILE);
  const db = retainNative(new Database(file));
  retainNative(db.prepare('UPDATE schema_version SET version = ?')).run(SCHEMA_VERSION + 1);
  db.close();
  assert.throws(
    () => SqliteStore.open({ dataDir }),
    (err: unknown) => isWeftError(err, 'WEFT_E_STORE_SCHEMA') && /schema version 2, but this weft knows versions up to 1/.test(err.message),
  );
});

test('SqliteStore: a slow watcher reading catch-up in pages ends with WEFT_E_COMPACTED when compaction passes it', async (t) => {
  const store = SqliteStore.open({ dataDir: await withDir(t) });
  t.after(() => store.close());
  for (let i = 1; i <= 600; i++) await store.put({ kind: 'Service', namespace: 'default', name: 'a', spec: i });
  const revisions: number[] = [];
  let error: Error | undefined;
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let ended!: () => void;
  const done = new Promise<void>((resolve) => (ended = resolve));
  await store.watch(0, async (event) => {
    if (event.type === 'error') {
      error = event.error;
      ended();
      return;
    }
    revisions.push(event.revision);
    if (event.revision === 1) await gate;
  });
  for (let i = 0; i < 1000 && revisions.length === 0; i++) await new Promise((resolve) => setImmediate(resolve));
  await store.compact(601);
  release();
  await done;
  assert.ok(isWeftError(error, 'WEFT_E_COMPACTED'), String(error));
  assert.ok(revisions.length > 1 && revisions.length < 600, `delivered ${revisions.length}`);
  assert.deepEqual(revisions, Array.from({ length: revisions.length }, (_, i) => i + 1));
});
