import type Database from 'better-sqlite3';
import { StoreSchemaError } from './errors.js';
import { retainNative } from './sqlite-retain.js';

/**
 * The SQLite schema as numbered migrations. Migration `i` (0-based) takes the database
 * from version `i` to `i + 1`. Never edit a released migration: append a new one.
 */
const MIGRATIONS: readonly string[] = [
  // 1: resources, the change log and the counters.
  `
  CREATE TABLE resources (
    kind             TEXT    NOT NULL,
    namespace        TEXT    NOT NULL,
    name             TEXT    NOT NULL,
    spec             TEXT    NOT NULL,             -- JSON
    revision         INTEGER NOT NULL,
    created_revision INTEGER NOT NULL,
    PRIMARY KEY (kind, namespace, name)
  ) WITHOUT ROWID;

  -- One row per revision. For a delete, spec/resource_revision/created_revision are the
  -- last value's, so a watcher learns what was removed.
  CREATE TABLE changes (
    revision          INTEGER PRIMARY KEY,
    type              TEXT    NOT NULL CHECK (type IN ('put', 'delete')),
    kind              TEXT    NOT NULL,
    namespace         TEXT    NOT NULL,
    name              TEXT    NOT NULL,
    spec              TEXT    NOT NULL,
    resource_revision INTEGER NOT NULL,
    created_revision  INTEGER NOT NULL
  );

  -- 'revision': the store's revision (last change); 'compacted_before': the change log
  -- holds every revision >= this value.
  CREATE TABLE counters (
    name  TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
  ) WITHOUT ROWID;
  INSERT INTO counters (name, value) VALUES ('revision', 0), ('compacted_before', 1);
  `,
];

/** The schema version this code writes and reads. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/**
 * Brings the database to `SCHEMA_VERSION`. Each step runs in an IMMEDIATE transaction that
 * re-reads the version first, so two processes opening the same new file at once apply
 * each migration once. Throws `StoreSchemaError` for a database from a newer weft.
 */
export function migrate(db: Database.Database, file: string): void {
  db.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)');
  // Statements are kept alive (retainNative): see sqlite-retain.ts.
  const read = retainNative(db.prepare<[], { version: number }>('SELECT version FROM schema_version'));
  const insert = retainNative(db.prepare<[number]>('INSERT INTO schema_version (version) VALUES (?)'));
  const update = retainNative(db.prepare<[number]>('UPDATE schema_version SET version = ?'));
  const current = (): number => read.get()?.version ?? 0;
  for (;;) {
    const done = db
      .transaction((): boolean => {
        const version = current();
        if (version > SCHEMA_VERSION) {
          throw new StoreSchemaError(
            `${file} has schema version ${version}, but this weft knows versions up to ${SCHEMA_VERSION}: ` +
              'run a weft at least as new as the one that last wrote it',
          );
        }
        if (version === SCHEMA_VERSION) return true;
        db.exec(MIGRATIONS[version]!);
        if (version === 0) insert.run(1);
        else update.run(version + 1);
        return false;
      })
      .immediate();
    if (done) return;
  }
}
