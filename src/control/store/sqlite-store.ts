import { chmodSync, closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { WeftError } from '../../errors.js';
import { ChangeFeed } from './change-feed.js';
import { StoreClosedError, StoreCompactedError, StoreConflictError, StoreInvalidError } from './errors.js';
import { retainNative } from './sqlite-retain.js';
import { migrate } from './sqlite-schema.js';
import type {
  Coordination,
  ResourceInput,
  ResourceKey,
  Store,
  StoreChangeEvent,
  StoredResource,
  StoreWatchListener,
  WriteOptions,
} from './store.js';
import { checkKey, checkKind, checkNamespace, checkResourceInput, checkRevision, expectedRevisionOf, storedResource } from './validate.js';

/** The database file's name inside the data directory. */
export const SQLITE_STORE_FILE = 'weft-store.sqlite';

interface ResourceRow {
  kind: string;
  namespace: string;
  name: string;
  spec: string;
  revision: number;
  created_revision: number;
}

interface ChangeRow extends ResourceRow {
  change_revision: number;
  type: 'put' | 'delete';
}

type KeyParams = [kind: string, namespace: string, name: string];

/** The prepared statements, created once per open database. */
function prepareStatements(db: Database.Database) {
  const statements = {
    get: db.prepare<KeyParams, ResourceRow>(
      'SELECT kind, namespace, name, spec, revision, created_revision FROM resources WHERE kind = ? AND namespace = ? AND name = ?',
    ),
    listKind: db.prepare<[string], ResourceRow>(
      'SELECT kind, namespace, name, spec, revision, created_revision FROM resources WHERE kind = ? ORDER BY namespace, name',
    ),
    listNamespace: db.prepare<[string, string], ResourceRow>(
      'SELECT kind, namespace, name, spec, revision, created_revision FROM resources WHERE kind = ? AND namespace = ? ORDER BY name',
    ),
    upsert: db.prepare<[string, string, string, string, number, number]>(
      `INSERT INTO resources (kind, namespace, name, spec, revision, created_revision) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (kind, namespace, name) DO UPDATE SET spec = excluded.spec, revision = excluded.revision`,
    ),
    remove: db.prepare<KeyParams>('DELETE FROM resources WHERE kind = ? AND namespace = ? AND name = ?'),
    logChange: db.prepare<[number, 'put' | 'delete', string, string, string, string, number, number]>(
      `INSERT INTO changes (revision, type, kind, namespace, name, spec, resource_revision, created_revision)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    // Qualified names: in ORDER BY, SQLite would take \`revision\` for the output alias
    // (the resource's revision), which orders a delete before the puts it follows.
    changesAfter: db.prepare<[number, number], ChangeRow>(
      `SELECT revision AS change_revision, type, kind, namespace, name, spec, resource_revision AS revision, created_revision
       FROM changes WHERE changes.revision > ? ORDER BY changes.revision LIMIT ?`,
    ),
    compactLog: db.prepare<[number]>('DELETE FROM changes WHERE revision < ?'),
    counter: db.prepare<[string], { value: number }>('SELECT value FROM counters WHERE name = ?'),
    setCounter: db.prepare<[number, string]>('UPDATE counters SET value = ? WHERE name = ?'),
  };
  for (const statement of Object.values(statements)) retainNative(statement);
  return statements;
}

function toResource(row: ResourceRow): StoredResource {
  return storedResource(row, row.spec, row.revision, row.created_revision);
}

function toEvent(row: ChangeRow): StoreChangeEvent {
  return Object.freeze({ type: row.type, revision: row.change_revision, resource: toResource(row) });
}

/**
 * Opens the file with better-sqlite3. Its native part is compiled for one Node.js ABI at
 * install time; under another Node major it fails to load, which is reported with the fix.
 */
function openDatabase(file: string): Database.Database {
  try {
    return retainNative(new Database(file, { timeout: 5000 }));
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ERR_DLOPEN_FAILED') {
      throw new WeftError(
        'WEFT_E_SQLITE_NATIVE',
        `better-sqlite3's native module does not load in Node.js ${process.version} (${(err as Error).message.replace(/\s+/g, ' ')}). ` +
          'It was built for another Node.js version: run `npm rebuild better-sqlite3` with this Node.js ' +
          '(after each Node.js major upgrade).',
        { cause: err },
      );
    }
    throw err;
  }
}

export interface SqliteStoreOptions {
  /** Directory for the database file (created, mode 0700, when missing). */
  readonly dataDir: string;
}

/**
 * The `Store` on an embedded SQLite database (`<dataDir>/weft-store.sqlite`, mode 0600,
 * WAL journal) through better-sqlite3. Calls run synchronously inside their promise; each
 * write is one IMMEDIATE transaction that takes the next revision from the `counters`
 * table, checks `expectedRevision`, writes the resource and appends to the change log.
 *
 * Watch delivery is in process: after a commit the store hands the change to the watches
 * opened on this `SqliteStore` object; a watch that is behind reads the change log.
 * Writes made by another process (or another `SqliteStore` on the same file) are not
 * noticed by these watches until this object writes again. One server process owns the
 * database; several replicas need the PostgreSQL store, which notifies across processes
 * (LISTEN/NOTIFY).
 */
export class SqliteStore implements Store, Coordination {
  readonly #db: Database.Database;
  readonly #sql: ReturnType<typeof prepareStatements>;
  readonly #feeds = new Set<ChangeFeed>();
  readonly #put: (resource: ResourceInput, specJson: string, expected: number | undefined) => StoreChangeEvent;
  readonly #delete: (key: ResourceKey, expected: number | undefined) => StoreChangeEvent | null;
  readonly #compact: (beforeRevision: number) => number;
  readonly #changesAfter: (after: number, limit: number) => StoreChangeEvent[];
  #closed = false;

  /** Opens (creating and migrating when needed) the store in `options.dataDir`. */
  static open(options: SqliteStoreOptions): SqliteStore {
    return new SqliteStore(options);
  }

  private constructor(options: SqliteStoreOptions) {
    mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
    const file = join(options.dataDir, SQLITE_STORE_FILE);
    // Create the file with mode 0600 before SQLite does (it would use the umask); the
    // -wal and -shm files SQLite creates take the database file's permissions.
    closeSync(openSync(file, 'a', 0o600));
    chmodSync(file, 0o600);
    const db = openDatabase(file);
    try {
      // exec, not pragma(): pragma() prepares a statement that would become garbage.
      db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL');
      migrate(db, file);
      this.#sql = prepareStatements(db);
    } catch (err) {
      db.close();
      throw err;
    }
    this.#db = db;

    const sql = this.#sql;
    const nextRevision = (): number => {
      const next = sql.counter.get('revision')!.value + 1;
      sql.setCounter.run(next, 'revision');
      return next;
    };

    this.#put = db.transaction((resource: ResourceInput, specJson: string, expected: number | undefined) => {
      const { kind, namespace, name } = resource;
      const current = sql.get.get(kind, namespace, name);
      const currentRevision = current?.revision ?? 0;
      if (expected !== undefined && expected !== currentRevision) {
        throw new StoreConflictError(resource, expected, currentRevision);
      }
      const revision = nextRevision();
      const createdRevision = current?.created_revision ?? revision;
      sql.upsert.run(kind, namespace, name, specJson, revision, createdRevision);
      sql.logChange.run(revision, 'put', kind, namespace, name, specJson, revision, createdRevision);
      return Object.freeze({
        type: 'put' as const,
        revision,
        resource: storedResource(resource, specJson, revision, createdRevision),
      });
    }).immediate;

    this.#delete = db.transaction((key: ResourceKey, expected: number | undefined) => {
      const current = sql.get.get(key.kind, key.namespace, key.name);
      const currentRevision = current?.revision ?? 0;
      if (expected !== undefined && expected !== currentRevision) {
        throw new StoreConflictError(key, expected, currentRevision);
      }
      if (current === undefined) return null;
      const revision = nextRevision();
      sql.remove.run(key.kind, key.namespace, key.name);
      sql.logChange.run(
        revision, 'delete', current.kind, current.namespace, current.name, current.spec, current.revision, current.created_revision,
      );
      return Object.freeze({ type: 'delete' as const, revision, resource: toResource(current) });
    }).immediate;

    this.#compact = db.transaction((beforeRevision: number) => {
      const revision = sql.counter.get('revision')!.value;
      if (beforeRevision > revision + 1) {
        throw new StoreInvalidError(
          `cannot compact before revision ${beforeRevision}: the store is at revision ${revision}; ` +
            `compact before at most revision ${revision + 1}`,
        );
      }
      const compactedBefore = sql.counter.get('compacted_before')!.value;
      if (beforeRevision <= compactedBefore) return compactedBefore;
      sql.compactLog.run(beforeRevision);
      sql.setCounter.run(beforeRevision, 'compacted_before');
      return beforeRevision;
    }).immediate;

    // Both reads see the same state, even with a compaction by another connection.
    this.#changesAfter = db.transaction((after: number, limit: number) => {
      this.#checkWatchable(after);
      return sql.changesAfter.all(after, limit).map(toEvent);
    }).deferred;
  }

  async get(kind: string, namespace: string, name: string): Promise<StoredResource | undefined> {
    this.#checkOpen();
    checkKey(kind, namespace, name);
    const row = this.#sql.get.get(kind, namespace, name);
    return row === undefined ? undefined : toResource(row);
  }

  async list(kind: string, namespace?: string): Promise<StoredResource[]> {
    this.#checkOpen();
    checkKind(kind);
    if (namespace === undefined) return this.#sql.listKind.all(kind).map(toResource);
    checkNamespace(namespace);
    return this.#sql.listNamespace.all(kind, namespace).map(toResource);
  }

  async put(resource: ResourceInput, options?: WriteOptions): Promise<StoredResource> {
    this.#checkOpen();
    const specJson = checkResourceInput(resource);
    const expected = expectedRevisionOf(options);
    const event = this.#put(resource, specJson, expected);
    this.#notify(event);
    return event.resource;
  }

  async delete(kind: string, namespace: string, name: string, options?: WriteOptions): Promise<boolean> {
    this.#checkOpen();
    checkKey(kind, namespace, name);
    const expected = expectedRevisionOf(options);
    const event = this.#delete({ kind, namespace, name }, expected);
    if (event === null) return false;
    this.#notify(event);
    return true;
  }

  async revision(): Promise<number> {
    this.#checkOpen();
    return this.#sql.counter.get('revision')!.value;
  }

  async watch(fromRevision: number, listener: StoreWatchListener): Promise<() => void> {
    this.#checkOpen();
    checkRevision(fromRevision, 'fromRevision');
    if (typeof listener !== 'function') throw new StoreInvalidError('watch needs a listener function');
    // One synchronous block: the revision read here and the feed's registration happen
    // with no write in between, so the feed's catch-up target is exact.
    const revision = this.#sql.counter.get('revision')!.value;
    if (fromRevision > revision) {
      throw new StoreInvalidError(
        `cannot watch from revision ${fromRevision}: the store is at revision ${revision}. ` +
          'The revision came from another or a restored database: list the resources again and watch from the list.',
      );
    }
    this.#checkWatchable(fromRevision);
    const feed = new ChangeFeed(fromRevision, revision, this.#readChanges, listener, (ended) => this.#feeds.delete(ended));
    this.#feeds.add(feed);
    return () => feed.dispose();
  }

  async compact(beforeRevision: number): Promise<number> {
    this.#checkOpen();
    checkRevision(beforeRevision, 'beforeRevision');
    return this.#compact(beforeRevision) - 1;
  }

  // Coordination: one process, so it always leads; heartbeats live in memory (a restarted
  // server has none, and the catalog ages instances from its start).
  readonly #beats = new Map<string, number>();

  async beat(key: string): Promise<void> {
    this.#checkOpen();
    this.#beats.set(key, performance.now());
  }

  async beats(): Promise<Map<string, number>> {
    this.#checkOpen();
    const now = performance.now();
    return new Map([...this.#beats].map(([k, at]) => [k, now - at]));
  }

  async forget(key: string): Promise<void> {
    this.#beats.delete(key);
  }

  async lead(_role: string): Promise<boolean> {
    this.#checkOpen();
    return true;
  }

  async ping(_timeoutMs: number): Promise<boolean> {
    return !this.#closed;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const error = new StoreClosedError();
    for (const feed of [...this.#feeds]) feed.fail(error);
    this.#db.close();
  }

  #checkOpen(): void {
    if (this.#closed) throw new StoreClosedError();
  }

  #checkWatchable(after: number): void {
    const compactedBefore = this.#sql.counter.get('compacted_before')!.value;
    if (after + 1 < compactedBefore) throw new StoreCompactedError(after, compactedBefore - 1);
  }

  readonly #readChanges = (after: number, limit: number): StoreChangeEvent[] => {
    if (this.#closed) throw new StoreClosedError();
    return this.#changesAfter(after, limit);
  };

  #notify(event: StoreChangeEvent): void {
    for (const feed of this.#feeds) feed.notify(event);
  }
}
