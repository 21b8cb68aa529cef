import pg from 'pg';
import { WeftError } from '../../errors.js';
import { ChangeFeed } from './change-feed.js';
import {
  StoreClosedError,
  StoreCompactedError,
  StoreConflictError,
  StoreInvalidError,
  StoreUnavailableError,
} from './errors.js';
import { describeDatabase, isConnectionError, openError } from './postgres-errors.js';
import { advisoryKey, migratePostgres } from './postgres-schema.js';
import { destroyClient, PgSession, withDeadline } from './postgres-session.js';
import type {
  Coordination,
  ResourceInput,
  Store,
  StoreChangeEvent,
  StoredResource,
  StoreWatchListener,
  WriteOptions,
} from './store.js';
import { checkKey, checkKind, checkNamespace, checkResourceInput, checkRevision, expectedRevisionOf, storedResource } from './validate.js';

/** The LISTEN/NOTIFY channel; the payload is the committed revision (a wake-up only). */
const CHANNEL = 'weft_changes';

/** Reconnect delays for the session and for watches reading through an outage. */
const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 5000;

export interface PostgresStoreOptions {
  /** `postgres://USER:PASSWORD@HOST:PORT/DATABASE[?sslmode=...]` (libpq-style URL, parsed by `pg`). */
  readonly url: string;
  /** Most pooled connections for queries (default 10); the store uses one more for LISTEN and locks. */
  readonly poolSize?: number;
  /** Bound on each operation, including waiting for a connection (default 10000 ms). */
  readonly timeoutMs?: number;
  /** Watches also poll the revision this often, in case a notification was lost (default 2000 ms). */
  readonly pollIntervalMs?: number;
  /** `application_name` in pg_stat_activity (default `weft`). */
  readonly applicationName?: string;
}

interface ResourceRow {
  kind: string;
  namespace: string;
  name: string;
  spec: string;
  revision: string;
  created_revision: string;
}

/** A change joined with the resource value it wrote (or the last one before a delete). */
interface ChangeRow extends ResourceRow {
  compacted_before: string;
  change_revision: string | null;
  type: 'put' | 'delete';
}

const COLUMNS = 'kind, namespace, name, spec, revision, created_revision';
const SQL = {
  get: `SELECT ${COLUMNS} FROM weft_resources WHERE kind = $1 AND namespace = $2 AND name = $3`,
  listKind: `SELECT ${COLUMNS} FROM weft_resources WHERE kind = $1 ORDER BY namespace COLLATE "C", name COLLATE "C"`,
  listNamespace: `SELECT ${COLUMNS} FROM weft_resources WHERE kind = $1 AND namespace = $2 ORDER BY name COLLATE "C"`,
  // Locks the counter row until commit: writers queue here, so commit order is revision order.
  nextRevision: `UPDATE weft_counters SET value = value + 1 WHERE name = 'revision' RETURNING value`,
  current: `SELECT ${COLUMNS} FROM weft_resources WHERE kind = $1 AND namespace = $2 AND name = $3`,
  put: `
    WITH upsert AS (
      INSERT INTO weft_resources (kind, namespace, name, spec, revision, created_revision)
      VALUES ($1, $2, $3, $4, $5, $6)
      ON CONFLICT (kind, namespace, name)
      DO UPDATE SET spec = excluded.spec, revision = excluded.revision, created_revision = excluded.created_revision
      RETURNING 1
    ), change AS (
      INSERT INTO weft_changes (revision, type, kind, namespace, name, spec, resource_revision, created_revision)
      VALUES ($5, 'put', $1, $2, $3, $4, $5, $6)
      RETURNING 1
    )
    SELECT pg_notify('${CHANNEL}', $5::text) FROM upsert, change`,
  delete: `
    WITH gone AS (
      DELETE FROM weft_resources WHERE kind = $1 AND namespace = $2 AND name = $3 RETURNING 1
    ), change AS (
      INSERT INTO weft_changes (revision, type, kind, namespace, name, spec, resource_revision, created_revision)
      VALUES ($4, 'delete', $1, $2, $3, $5, $6, $7)
      RETURNING 1
    )
    SELECT pg_notify('${CHANNEL}', $4::text) FROM gone, change`,
  counters: `SELECT
      (SELECT value FROM weft_counters WHERE name = 'revision') AS revision,
      (SELECT value FROM weft_counters WHERE name = 'compacted_before') AS compacted_before`,
  revision: `SELECT value FROM weft_counters WHERE name = 'revision'`,
  lockCompaction: `SELECT value FROM weft_counters WHERE name = 'compacted_before' FOR UPDATE`,
  compactLog: 'DELETE FROM weft_changes WHERE revision < $1',
  setCompacted: `UPDATE weft_counters SET value = $1 WHERE name = 'compacted_before'`,
  // One statement, one snapshot: the compaction mark and the changes agree.
  changesAfter: `
    SELECT c.value AS compacted_before, ch.revision AS change_revision, ch.type, ch.kind, ch.namespace, ch.name,
           ch.spec, ch.resource_revision AS revision, ch.created_revision
    FROM weft_counters c
    LEFT JOIN LATERAL (
      SELECT * FROM weft_changes WHERE revision > $1 ORDER BY revision LIMIT $2
    ) ch ON true
    WHERE c.name = 'compacted_before'
    ORDER BY ch.revision`,
  beat: `INSERT INTO weft_heartbeats (key, at) VALUES ($1, clock_timestamp())
         ON CONFLICT (key) DO UPDATE SET at = excluded.at`,
  beats: `SELECT key, GREATEST(0, EXTRACT(EPOCH FROM clock_timestamp() - at) * 1000)::float8 AS age_ms FROM weft_heartbeats`,
  forget: 'DELETE FROM weft_heartbeats WHERE key = $1',
  tryLock: 'SELECT pg_try_advisory_lock($1) AS locked',
} as const;

/** Returned by a transaction body to roll back instead of committing. */
const ROLLBACK = Symbol('rollback');

function toResource(row: ResourceRow): StoredResource {
  return storedResource(row, row.spec, Number(row.revision), Number(row.created_revision));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/**
 * The `Store` and `Coordination` on PostgreSQL (the `pg` client), for several replicas of
 * `weft server` sharing one database. Queries run on a pool; one dedicated session
 * LISTENs for changes and holds the advisory locks of leadership.
 *
 * Revisions: every write is one transaction that first increments the `revision` row of
 * `weft_counters` (`UPDATE … RETURNING`), which locks it until commit: writers from every
 * replica queue there, so commit order is revision order and a revision becomes visible
 * only after every lower one. The write then reads the resource, checks
 * `expectedRevision` (a conflict rolls back: no revision taken), writes it and its row in
 * `weft_changes`, and `pg_notify`s the revision, delivered at commit.
 *
 * Watches read `weft_changes` after their cursor; notifications only wake them (the
 * table is the truth), and the store also polls the revision every `pollIntervalMs`, so
 * a lost notification delays a change, never loses it. Connection loss: a watch does not
 * end; it waits (retrying with back-off) and continues from its cursor once the database
 * answers again. Other calls reject with `StoreUnavailableError` (`WEFT_E_STORE`).
 */
export class PostgresStore implements Store, Coordination {
  readonly #pool: pg.Pool;
  readonly #config: pg.ClientConfig;
  readonly #describe: string;
  readonly #timeoutMs: number;
  readonly #feeds = new Set<ChangeFeed>();
  #session: PgSession | undefined;
  #connecting: Promise<PgSession> | undefined;
  /** The highest revision known committed (own commits, notifications, polls). */
  #known = 0;
  #poll: NodeJS.Timeout | undefined;
  #polling = false;
  #reconnectDelay = RETRY_MIN_MS;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #closed = false;

  /**
   * Connects, creates or migrates weft's tables (safe from several replicas at once) and
   * starts listening. Rejects with `StoreUnavailableError` (`WEFT_E_STORE`) saying what
   * to fix when the database cannot be reached or refuses, `StoreSchemaError` when a newer
   * weft wrote it.
   */
  static async open(options: PostgresStoreOptions): Promise<PostgresStore> {
    const store = new PostgresStore(options);
    try {
      await store.#start();
    } catch (err) {
      await store.close().catch(() => {});
      throw openError(err, store.#describe);
    }
    return store;
  }

  private constructor(options: PostgresStoreOptions) {
    if (typeof options?.url !== 'string' || options.url === '') {
      throw new StoreInvalidError('the PostgreSQL store needs a URL: postgres://USER:PASSWORD@HOST:PORT/DATABASE');
    }
    this.#describe = describeDatabase(options.url);
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    const keepalive = 10;
    this.#config = {
      connectionString: options.url,
      application_name: options.applicationName ?? 'weft',
      connectionTimeoutMillis: this.#timeoutMs,
      keepAlive: true,
      keepAliveInitialDelayMillis: keepalive * 1000,
      // Server side: notice a vanished replica within ~20 s (its session's locks are then
      // released), and never let a transaction of a stuck replica hold the revision lock.
      options: `-c tcp_keepalives_idle=${keepalive} -c tcp_keepalives_interval=3 -c tcp_keepalives_count=3 ` +
        `-c tcp_user_timeout=${keepalive * 2000} -c idle_in_transaction_session_timeout=${Math.max(this.#timeoutMs * 3, 30_000)}`,
    };
    this.#pool = new pg.Pool({ ...this.#config, max: options.poolSize ?? 10, idleTimeoutMillis: 30_000 });
    // An idle pooled connection that fails is dropped by the pool; without a listener the
    // 'error' event would end the process.
    this.#pool.on('error', () => {});
    const interval = options.pollIntervalMs ?? 2000;
    this.#poll = setInterval(() => void this.#pollOnce(), interval);
    this.#poll.unref();
  }

  async #start(): Promise<void> {
    const client = await this.#pool.connect();
    try {
      await migratePostgres(client, this.#describe);
      client.release();
    } catch (err) {
      client.release(true);
      throw err;
    }
    await this.#ensureSession();
    this.#known = await this.revision();
  }

  async get(kind: string, namespace: string, name: string): Promise<StoredResource | undefined> {
    this.#checkOpen();
    checkKey(kind, namespace, name);
    const rows = await this.#query<ResourceRow>(SQL.get, [kind, namespace, name]);
    return rows[0] === undefined ? undefined : toResource(rows[0]);
  }

  async list(kind: string, namespace?: string): Promise<StoredResource[]> {
    this.#checkOpen();
    checkKind(kind);
    if (namespace === undefined) return (await this.#query<ResourceRow>(SQL.listKind, [kind])).map(toResource);
    checkNamespace(namespace);
    return (await this.#query<ResourceRow>(SQL.listNamespace, [kind, namespace])).map(toResource);
  }

  async put(resource: ResourceInput, options?: WriteOptions): Promise<StoredResource> {
    this.#checkOpen();
    const specJson = checkResourceInput(resource);
    const expected = expectedRevisionOf(options);
    const { kind, namespace, name } = resource;
    const event = await this.#transaction(async (client): Promise<StoreChangeEvent> => {
      const revision = Number((await client.query<{ value: string }>(SQL.nextRevision)).rows[0]!.value);
      const current = (await client.query<ResourceRow>(SQL.current, [kind, namespace, name])).rows[0];
      const currentRevision = current === undefined ? 0 : Number(current.revision);
      if (expected !== undefined && expected !== currentRevision) throw new StoreConflictError(resource, expected, currentRevision);
      const createdRevision = current === undefined ? revision : Number(current.created_revision);
      await client.query(SQL.put, [kind, namespace, name, specJson, revision, createdRevision]);
      return Object.freeze({ type: 'put' as const, revision, resource: storedResource(resource, specJson, revision, createdRevision) });
    });
    this.#committed(event!);
    return event!.resource;
  }

  async delete(kind: string, namespace: string, name: string, options?: WriteOptions): Promise<boolean> {
    this.#checkOpen();
    checkKey(kind, namespace, name);
    const expected = expectedRevisionOf(options);
    const key = { kind, namespace, name };
    const event = await this.#transaction(async (client): Promise<StoreChangeEvent | typeof ROLLBACK> => {
      const revision = Number((await client.query<{ value: string }>(SQL.nextRevision)).rows[0]!.value);
      const current = (await client.query<ResourceRow>(SQL.current, [kind, namespace, name])).rows[0];
      const currentRevision = current === undefined ? 0 : Number(current.revision);
      if (expected !== undefined && expected !== currentRevision) throw new StoreConflictError(key, expected, currentRevision);
      if (current === undefined) return ROLLBACK; // nothing to delete: no revision taken
      await client.query(SQL.delete, [kind, namespace, name, revision, current.spec, current.revision, current.created_revision]);
      return Object.freeze({ type: 'delete' as const, revision, resource: toResource(current) });
    });
    if (event === undefined) return false;
    this.#committed(event);
    return true;
  }

  async revision(): Promise<number> {
    this.#checkOpen();
    return Number((await this.#query<{ value: string }>(SQL.revision))[0]!.value);
  }

  async watch(fromRevision: number, listener: StoreWatchListener): Promise<() => void> {
    this.#checkOpen();
    checkRevision(fromRevision, 'fromRevision');
    if (typeof listener !== 'function') throw new StoreInvalidError('watch needs a listener function');
    const row = (await this.#query<{ revision: string; compacted_before: string }>(SQL.counters))[0]!;
    this.#checkOpen();
    const revision = Number(row.revision);
    if (fromRevision > revision) {
      throw new StoreInvalidError(
        `cannot watch from revision ${fromRevision}: the store is at revision ${revision}. ` +
          'The revision came from another or a restored database: list the resources again and watch from the list.',
      );
    }
    const compactedBefore = Number(row.compacted_before);
    if (fromRevision + 1 < compactedBefore) throw new StoreCompactedError(fromRevision, compactedBefore - 1);
    // Synchronous from here: a change committed after the read above either raised
    // #known already (its notification or our own commit came during the await) or will
    // reach the feed once it is registered.
    if (revision > this.#known) this.#known = revision;
    let feed: ChangeFeed | undefined = undefined;
    const read = (after: number, limit: number) => this.#readChanges(after, limit, () => feed?.ended ?? false);
    feed = new ChangeFeed(fromRevision, this.#known, read, listener, (ended) => this.#feeds.delete(ended));
    this.#feeds.add(feed);
    const started = feed;
    return () => started.dispose();
  }

  async compact(beforeRevision: number): Promise<number> {
    this.#checkOpen();
    checkRevision(beforeRevision, 'beforeRevision');
    const compacted = await this.#transaction(async (client) => {
      const compactedBefore = Number((await client.query<{ value: string }>(SQL.lockCompaction)).rows[0]!.value);
      const revision = Number((await client.query<{ value: string }>(SQL.revision)).rows[0]!.value);
      if (beforeRevision > revision + 1) {
        throw new StoreInvalidError(
          `cannot compact before revision ${beforeRevision}: the store is at revision ${revision}; ` +
            `compact before at most revision ${revision + 1}`,
        );
      }
      if (beforeRevision <= compactedBefore) return compactedBefore;
      await client.query(SQL.compactLog, [beforeRevision]);
      await client.query(SQL.setCompacted, [beforeRevision]);
      return beforeRevision;
    });
    return compacted! - 1;
  }

  /** Records a heartbeat of `key` by the database's clock. */
  async beat(key: string): Promise<void> {
    this.#checkOpen();
    await this.#query(SQL.beat, [key]);
  }

  async beats(): Promise<Map<string, number>> {
    this.#checkOpen();
    const rows = await this.#query<{ key: string; age_ms: number }>(SQL.beats);
    return new Map(rows.map((r) => [r.key, r.age_ms]));
  }

  async forget(key: string): Promise<void> {
    this.#checkOpen();
    await this.#query(SQL.forget, [key]);
  }

  /**
   * Leads `role` while this store's session holds the advisory lock
   * `pg_try_advisory_lock(hash('lead:' + role))`. Each call makes a round trip on the
   * session (so a lost connection is noticed); a lost session is reconnected once and the
   * lock tried again. Resolves false when another session holds the role or the database
   * cannot be reached (this replica then must not do the work).
   */
  async lead(role: string): Promise<boolean> {
    this.#checkOpen();
    if (typeof role !== 'string' || role === '') throw new StoreInvalidError('lead needs a role name');
    for (let attempt = 0; attempt < 2; attempt++) {
      let session: PgSession;
      try {
        session = await this.#ensureSession();
      } catch (err) {
        if (err instanceof StoreClosedError) throw err;
        return false;
      }
      try {
        if (session.held.has(role)) {
          await session.query('SELECT 1', [], this.#timeoutMs, this.#describe);
          return true;
        }
        const rows = await session.query<{ locked: boolean }>(SQL.tryLock, [advisoryKey(`lead:${role}`)], this.#timeoutMs, this.#describe);
        if (rows[0]?.locked !== true) return false;
        session.held.add(role);
        return true;
      } catch (err) {
        if (!(err instanceof StoreUnavailableError)) throw this.#wrap(err);
        // The session is lost (and with it any role): connect again and try once more.
      }
    }
    return false;
  }

  /** Whether a `SELECT 1` on the pool completes within `timeoutMs`. */
  async ping(timeoutMs: number): Promise<boolean> {
    if (this.#closed) return false;
    try {
      await this.#withClient((client) => client.query('SELECT 1'), timeoutMs);
      return true;
    } catch {
      return false;
    }
  }

  /** Ends every watch (with `StoreClosedError`), the session (releasing its roles) and the pool. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#poll);
    clearTimeout(this.#reconnectTimer);
    const error = new StoreClosedError();
    for (const feed of [...this.#feeds]) feed.fail(error);
    const connecting = this.#connecting;
    const session = this.#session;
    this.#session = undefined;
    await session?.end();
    await connecting?.then((s) => s.end(), () => {});
    await this.#pool.end().catch(() => {});
  }

  #checkOpen(): void {
    if (this.#closed) throw new StoreClosedError();
  }

  /** A pooled client for `fn`, at most `timeoutMs` in all; past it the connection is closed. */
  async #withClient<T>(fn: (client: pg.PoolClient) => Promise<T>, timeoutMs = this.#timeoutMs): Promise<T> {
    const started = Date.now();
    const acquiring = this.#pool.connect();
    let client: pg.PoolClient;
    try {
      client = await withDeadline(acquiring, timeoutMs, this.#describe, () => {
        acquiring.then((late) => late.release(), () => {});
      });
    } catch (err) {
      if (this.#closed) throw new StoreClosedError();
      throw this.#wrap(err);
    }
    let broken = false;
    try {
      return await withDeadline(fn(client), Math.max(1, timeoutMs - (Date.now() - started)), this.#describe, () => {
        broken = true;
        destroyClient(client);
      });
    } catch (err) {
      if (isConnectionError(err)) broken = true;
      throw this.#wrap(err);
    } finally {
      client.release(broken ? true : undefined);
    }
  }

  /** One query on the pool; retried once on another connection when the first one was lost. */
  async #query<R extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<R[]> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#withClient(async (client) => (await client.query<R>(sql, params)).rows);
      } catch (err) {
        if (attempt > 0 || !(err instanceof StoreUnavailableError) || /did not answer/.test(err.message)) throw err;
        this.#checkOpen();
      }
    }
  }

  /**
   * Runs `body` in a transaction; commits unless it returns `ROLLBACK` (then resolves
   * undefined) or throws. Retried once when the connection was lost before BEGIN
   * completed (nothing was sent); a loss later is reported (the write may or may not have
   * committed when COMMIT itself was lost).
   */
  async #transaction<T>(body: (client: pg.PoolClient) => Promise<T | typeof ROLLBACK>): Promise<T | undefined> {
    for (let attempt = 0; ; attempt++) {
      let begun = false;
      try {
        return await this.#withClient(async (client) => {
          await client.query('BEGIN');
          begun = true;
          let result: T | typeof ROLLBACK;
          try {
            result = await body(client);
          } catch (err) {
            await client.query('ROLLBACK').catch(() => {});
            throw err;
          }
          await client.query(result === ROLLBACK ? 'ROLLBACK' : 'COMMIT');
          return result === ROLLBACK ? undefined : result;
        });
      } catch (err) {
        if (begun || attempt > 0 || !(err instanceof StoreUnavailableError) || /did not answer/.test(err.message)) throw err;
        this.#checkOpen();
      }
    }
  }

  /** Maps a failure to a WeftError: closed, unavailable (connection), or another database error. */
  #wrap(err: unknown): Error {
    if (err instanceof WeftError) return err;
    if (this.#closed) return new StoreClosedError();
    if (isConnectionError(err)) {
      return new StoreUnavailableError(`lost the connection to ${this.#describe} (${String(err)}); retry once it is reachable`, { cause: err });
    }
    return new WeftError('WEFT_E_STORE', `${this.#describe} failed: ${String(err)}`, { cause: err });
  }

  /** After a commit: hand the change to this store's watches (others learn of it by NOTIFY). */
  #committed(event: StoreChangeEvent): void {
    if (event.revision > this.#known) this.#known = event.revision;
    for (const feed of this.#feeds) feed.notify(event);
  }

  /** A revision is committed (notification or poll): watches behind it read the log. */
  #wake(revision: number): void {
    if (!Number.isSafeInteger(revision)) return;
    if (revision > this.#known) this.#known = revision;
    for (const feed of this.#feeds) feed.advance(revision);
  }

  /** Reads changes for a watch; through an outage it waits and retries (until the watch or the store ends). */
  async #readChanges(after: number, limit: number, ended: () => boolean): Promise<StoreChangeEvent[]> {
    for (let delay = RETRY_MIN_MS; ; delay = Math.min(delay * 2, RETRY_MAX_MS)) {
      if (this.#closed) throw new StoreClosedError();
      try {
        const rows = await this.#query<ChangeRow>(SQL.changesAfter, [after, limit]);
        const compactedBefore = Number(rows[0]!.compacted_before);
        if (after + 1 < compactedBefore) throw new StoreCompactedError(after, compactedBefore - 1);
        return rows
          .filter((row) => row.change_revision !== null)
          .map((row) => Object.freeze({ type: row.type, revision: Number(row.change_revision), resource: toResource(row) }));
      } catch (err) {
        if (!(err instanceof StoreUnavailableError) || this.#closed) throw err;
        if (ended()) return [];
        await sleep(delay);
      }
    }
  }

  /** The session, connecting a new one when there is none (one attempt at a time). */
  async #ensureSession(): Promise<PgSession> {
    this.#checkOpen();
    if (this.#session !== undefined && !this.#session.lost) return this.#session;
    this.#connecting ??= this.#connectSession().finally(() => (this.#connecting = undefined));
    return this.#connecting;
  }

  async #connectSession(): Promise<PgSession> {
    const session = await PgSession.connect(
      this.#config,
      CHANNEL,
      this.#timeoutMs,
      this.#describe,
      (payload) => this.#wake(Number(payload)),
      (lost) => this.#sessionLost(lost),
    );
    if (this.#closed) {
      await session.end();
      throw new StoreClosedError();
    }
    this.#session = session;
    this.#reconnectDelay = RETRY_MIN_MS;
    // Notifications sent while no session listened are gone: catch up by revision.
    if (this.#feeds.size > 0) void this.revision().then((r) => this.#wake(r), () => {});
    return session;
  }

  #sessionLost(session: PgSession): void {
    if (this.#session === session) this.#session = undefined;
    this.#scheduleReconnect();
  }

  /** Reconnects the session soon (watches need its notifications), backing off while it fails. */
  #scheduleReconnect(): void {
    if (this.#closed || this.#reconnectTimer !== undefined) return;
    const delay = this.#reconnectDelay;
    this.#reconnectDelay = Math.min(delay * 2, RETRY_MAX_MS);
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      this.#ensureSession().catch(() => this.#scheduleReconnect());
    }, delay);
    this.#reconnectTimer.unref();
  }

  /** The safety net: checks the session and, with watches open, wakes them to the current revision. */
  async #pollOnce(): Promise<void> {
    if (this.#closed || this.#polling) return;
    this.#polling = true;
    try {
      const session = await this.#ensureSession();
      const rows = await session.query<{ value: string }>(SQL.revision, [], this.#timeoutMs, this.#describe);
      if (this.#feeds.size > 0) this.#wake(Number(rows[0]!.value));
    } catch {
      // Lost or unreachable: the session reconnects; watches wait.
    } finally {
      this.#polling = false;
    }
  }
}
