import { after, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import { isWeftError } from '../../src/errors.js';
import { StoreConflictError } from '../../src/control/store/errors.js';
import { PG_SCHEMA_VERSION } from '../../src/control/store/postgres-schema.js';
import { PostgresStore, type PostgresStoreOptions } from '../../src/control/store/postgres-store.js';
import type { JsonValue, ResourceInput, StoredResource, StoreWatchEvent } from '../../src/control/store/store.js';
import { postgresUnavailable, requirePostgres, startPostgres, type PostgresServer } from '../helpers/postgres.js';
import { runStoreContract } from './store-contract.js';

/** One private server for this file (stopped by the root `after`); every harness gets its own database. */
const unavailable = await postgresUnavailable();
const server: PostgresServer | undefined = unavailable === null ? await startPostgres({ after }) : undefined;

if (unavailable !== null) {
  test('PostgresStore: the contract suite needs PostgreSQL', async (t) => {
    await requirePostgres(t);
  });
} else {
  runStoreContract('PostgresStore', async () => {
    const pg = server!;
    const url = await pg.createDatabase();
    return {
      open: () => PostgresStore.open({ url }),
      cleanup: () => pg.dropDatabase(url),
    };
  });
}

/** The PostgreSQL-only behaviour: several stores (replicas) on one database, connection loss, open errors. */
function pgTest(title: string, fn: (t: TestContext, pg: PostgresServer, url: string, open: (name: string, options?: Partial<PostgresStoreOptions>) => Promise<PostgresStore>) => Promise<void>): void {
  test(`PostgresStore: ${title}`, async (t) => {
    if (!(await requirePostgres(t))) return;
    const pg = server!;
    const url = await pg.createDatabase();
    const stores: PostgresStore[] = [];
    t.after(async () => {
      for (const store of stores) await store.close();
      await pg.dropDatabase(url);
    });
    const open = async (name: string, options: Partial<PostgresStoreOptions> = {}): Promise<PostgresStore> => {
      const store = await PostgresStore.open({ url, applicationName: name, ...options });
      stores.push(store);
      return store;
    };
    await fn(t, pg, url, open);
  });
}

const svc = (name: string, spec: JsonValue): ResourceInput => ({ kind: 'Service', namespace: 'default', name, spec });

/** Ends every backend of `applicationName` (as if its connections dropped); resolves to how many. */
async function terminate(pg: PostgresServer, applicationName: string): Promise<number> {
  const rows = await pg.query<{ ok: boolean }>(
    'SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1',
    [applicationName],
  );
  return rows.filter((r) => r.ok).length;
}

async function eventually(check: () => Promise<boolean>, what: () => string, ms = 5000): Promise<number> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > ms) throw new Error(`timed out after ${ms} ms waiting for ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return Date.now() - start;
}

function summary(events: StoreWatchEvent[]): string {
  return JSON.stringify(events.map((e) => (e.type === 'error' ? String(e.error) : e.revision)));
}

pgTest('three replicas opening a new database at once create the schema once', async (_t, pg, url, open) => {
  const stores = await Promise.all(['one', 'two', 'three'].map((n) => open(`weft-${n}`)));
  await stores[0]!.put(svc('a', 1));
  assert.equal((await stores[2]!.get('Service', 'default', 'a'))?.spec, 1);
  const db = url.split('/').pop()!;
  assert.deepEqual(await pg.query('SELECT version FROM weft_schema_version', [], db), [{ version: PG_SCHEMA_VERSION }]);
});

pgTest('concurrent conditional writes through two stores: exactly one wins, the other conflicts, nothing half-written', async (_t, pg, url, open) => {
  const one = await open('weft-one');
  const two = await open('weft-two');
  let current = await one.put(svc('web', 'base'));
  for (let round = 0; round < 25; round++) {
    const results = await Promise.allSettled([
      one.put(svc('web', `one-${round}`), { expectedRevision: current.revision }),
      two.put(svc('web', `two-${round}`), { expectedRevision: current.revision }),
      one.put(svc('web', `one-b-${round}`), { expectedRevision: current.revision }),
      two.put(svc('web', `two-b-${round}`), { expectedRevision: current.revision }),
    ]);
    const won = results.filter((r): r is PromiseFulfilledResult<StoredResource> => r.status === 'fulfilled');
    assert.equal(won.length, 1, `round ${round}: one winner`);
    for (const r of results) if (r.status === 'rejected') assert.ok(r.reason instanceof StoreConflictError, String(r.reason));
    current = won[0]!.value;
    assert.deepEqual(await two.get('Service', 'default', 'web'), current);
  }
  // Unconditional writes from both interleave with distinct, gap-free revisions.
  await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? one : two).put(svc(`s${i % 4}`, i))));
  const db = url.split('/').pop()!;
  const [log] = await pg.query<{ n: string; lo: string; hi: string }>('SELECT count(*) AS n, min(revision) AS lo, max(revision) AS hi FROM weft_changes', [], db);
  const revision = await one.revision();
  assert.equal(revision, 1 + 25 + 20);
  assert.deepEqual([Number(log!.n), Number(log!.lo), Number(log!.hi)], [revision, 1, revision], 'one change per revision, no gap');
  const stale = await pg.query('SELECT r.name FROM weft_resources r JOIN weft_changes c ON c.revision = r.revision WHERE c.name <> r.name OR c.spec <> r.spec', [], db);
  assert.deepEqual(stale, [], 'every resource matches the change that wrote it');
});

pgTest('a change written through one replica reaches a watch on another within a second (LISTEN/NOTIFY)', async (_t, _pg, _url, open) => {
  const writer = await open('weft-writer');
  // A long poll interval: only a notification can deliver within the second.
  const reader = await open('weft-reader', { pollIntervalMs: 60_000 });
  const seen: number[] = [];
  const dispose = await reader.watch(0, (e) => void (e.type !== 'error' && seen.push(e.revision)));
  for (let i = 1; i <= 5; i++) {
    const written = await writer.put(svc('a', i));
    const ms = await eventually(async () => seen.includes(written.revision), () => `revision ${written.revision} on the other replica`, 1000);
    assert.ok(ms < 1000, `${ms} ms`);
  }
  dispose();
  assert.deepEqual(seen, [1, 2, 3, 4, 5]);
});

pgTest('a watch survives the loss of every connection of its replica and catches up by revision', async (_t, pg, _url, open) => {
  const writer = await open('weft-writer');
  const reader = await open('weft-reader', { pollIntervalMs: 500 });
  const events: StoreWatchEvent[] = [];
  const dispose = await reader.watch(0, (e) => void events.push(e));
  await writer.put(svc('a', 1));
  await eventually(async () => events.length === 1, () => 'the first change');
  for (let round = 0; round < 3; round++) {
    assert.ok((await terminate(pg, 'weft-reader')) >= 1, 'the reader had connections');
    // Written while the reader has no session: its notifications are lost.
    await writer.put(svc('a', `lost-${round}`));
    await writer.delete('Service', 'default', 'a');
    await writer.put(svc('a', `after-${round}`));
    const want = await writer.revision();
    await eventually(async () => events.some((e) => e.type !== 'error' && e.revision === want), () => `revision ${want} after the loss: ${summary(events)}`);
  }
  dispose();
  assert.deepEqual(events.filter((e) => e.type === 'error'), [], 'no error event');
  assert.deepEqual(events.map((e) => (e.type === 'error' ? -1 : e.revision)), Array.from({ length: 10 }, (_, i) => i + 1));
  assert.equal((await reader.get('Service', 'default', 'a'))?.spec, 'after-2', 'the reader queries again');
});

pgTest('leadership: exactly one replica leads a role; it moves when the leader closes or loses its connection', async (_t, pg, _url, open) => {
  const one = await open('weft-one');
  const two = await open('weft-two');
  const answers = await Promise.all([one.lead('expiry'), two.lead('expiry')]);
  assert.deepEqual(answers.filter(Boolean).length, 1, `exactly one leads: ${answers}`);
  const [leader, other] = answers[0] ? [one, two] : [two, one];
  assert.equal(await leader.lead('expiry'), true, 'the leader keeps the role');
  assert.equal(await other.lead('expiry'), false);
  assert.equal(await other.lead('compaction'), true, 'roles are independent');

  // The leader's session is cut: the role is free at once (the server ended its session).
  await terminate(pg, answers[0] ? 'weft-one' : 'weft-two');
  const ms = await eventually(() => other.lead('expiry'), () => 'the other replica to lead');
  assert.ok(ms < 3000, `${ms} ms`);
  assert.equal(await leader.lead('expiry'), false, 'the old leader reconnects and finds the role taken');

  // The new leader closes: the old one takes the role back.
  await other.close();
  assert.equal(await leader.lead('expiry'), true);
  assert.equal(await leader.lead('compaction'), true);
});

pgTest('heartbeats are shared by the replicas and aged by the database clock', async (_t, _pg, _url, open) => {
  const one = await open('weft-one');
  const two = await open('weft-two');
  await one.beat('instance-1');
  await two.beat('instance-2');
  const beats = await one.beats();
  assert.deepEqual([...beats.keys()].sort(), ['instance-1', 'instance-2']);
  for (const age of beats.values()) assert.ok(age >= 0 && age < 2000, `age ${age}`);
  await two.forget('instance-1');
  assert.deepEqual([...(await one.beats()).keys()], ['instance-2']);
});

test('PostgresStore: a PostgreSQL restart: pings fail and calls reject with WEFT_E_STORE while it is down; watches continue after', async (t) => {
  if (!(await requirePostgres(t))) return;
  const pg = await startPostgres(t);
  const url = await pg.createDatabase('restart');
  const store = await PostgresStore.open({ url, timeoutMs: 1000, pollIntervalMs: 250 });
  t.after(() => store.close());
  const events: StoreWatchEvent[] = [];
  await store.watch(0, (e) => void events.push(e));
  await store.put(svc('a', 1));
  assert.equal(await store.lead('expiry'), true);

  await pg.kill();
  assert.equal(await store.ping(500), false);
  await assert.rejects(store.put(svc('a', 2)), (err: unknown) => isWeftError(err, 'WEFT_E_STORE') && /PostgreSQL at .*restart/.test(err.message));
  assert.equal(await store.lead('expiry'), false, 'no leader without the database');

  await pg.start();
  await eventually(() => store.ping(500), () => 'ping after the restart', 10_000);
  const other = await PostgresStore.open({ url });
  t.after(() => other.close());
  await other.put(svc('b', 2));
  await store.put(svc('a', 3));
  await eventually(async () => events.length >= 3, () => `changes after the restart: ${summary(events)}`, 10_000);
  assert.deepEqual(events.map((e) => (e.type === 'error' ? 'error' : e.revision)), [1, 2, 3]);
  assert.equal(await store.lead('expiry'), true, 'leads again');
});

pgTest('open refuses a database from a newer weft, unchanged', async (_t, pg, url) => {
  const db = url.split('/').pop()!;
  await (await PostgresStore.open({ url })).close();
  await pg.query('UPDATE weft_schema_version SET version = $1', [PG_SCHEMA_VERSION + 1], db);
  await assert.rejects(PostgresStore.open({ url }), (err: unknown) =>
    isWeftError(err, 'WEFT_E_STORE_SCHEMA') && /schema version 2, but this weft knows versions up to 1/.test(err.message));
});

test('PostgresStore: open says what to fix when the database refuses or is missing', async (t) => {
  if (!(await requirePostgres(t))) return;
  const pg = server!;
  const missing = pg.socketUrl.replace(/\/postgres$/, '/no_such_db');
  await assert.rejects(PostgresStore.open({ url: missing }), (err: unknown) =>
    isWeftError(err, 'WEFT_E_STORE') && /database no_such_db.*does not exist.*createdb/.test(err.message));
  const port = await closedPort();
  await assert.rejects(PostgresStore.open({ url: `postgres://weft:secret@127.0.0.1:${port}/weft` }), (err: unknown) => {
    assert.ok(isWeftError(err, 'WEFT_E_STORE'), String(err));
    assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port}.*refused.*Is PostgreSQL running`));
    assert.doesNotMatch(err.message, /secret/, 'no password in messages');
    return true;
  });
  await assert.rejects(PostgresStore.open({ url: '' }), (err: unknown) => isWeftError(err, 'WEFT_E_STORE_INVALID'));
});

async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as AddressInfo).port;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}
