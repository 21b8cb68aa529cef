import { createHash } from 'node:crypto';
import type pg from 'pg';
import { StoreSchemaError } from './errors.js';

/**
 * The PostgreSQL schema as numbered migrations. Migration `i` (0-based) takes the database
 * from version `i` to `i + 1`. Never edit a released migration: append a new one. Tables
 * are prefixed `weft_` so the database may be shared with other applications.
 */
const MIGRATIONS: readonly string[] = [
  // 1: resources, the change log, the counters and the heartbeats.
  `
  CREATE TABLE weft_resources (
    kind             text   NOT NULL,
    namespace        text   NOT NULL,
    name             text   NOT NULL,
    spec             text   NOT NULL,             -- JSON text, kept byte for byte (key order)
    revision         bigint NOT NULL,
    created_revision bigint NOT NULL,
    PRIMARY KEY (kind, namespace, name)
  );

  -- One row per revision. For a delete, spec/resource_revision/created_revision are the
  -- last value's, so a watcher learns what was removed.
  CREATE TABLE weft_changes (
    revision          bigint PRIMARY KEY,
    type              text   NOT NULL CHECK (type IN ('put', 'delete')),
    kind              text   NOT NULL,
    namespace         text   NOT NULL,
    name              text   NOT NULL,
    spec              text   NOT NULL,
    resource_revision bigint NOT NULL,
    created_revision  bigint NOT NULL
  );

  -- 'revision': the store's revision (last change); every write locks this row first, so
  -- writers commit in revision order. 'compacted_before': the change log holds every
  -- revision >= this value.
  CREATE TABLE weft_counters (
    name  text   PRIMARY KEY,
    value bigint NOT NULL
  );
  INSERT INTO weft_counters (name, value) VALUES ('revision', 0), ('compacted_before', 1);

  -- Heartbeats, by the database's clock; outside the revision history.
  CREATE TABLE weft_heartbeats (
    key text        PRIMARY KEY,
    at  timestamptz NOT NULL
  );
  `,
];

/** The schema version this code writes and reads. */
export const PG_SCHEMA_VERSION = MIGRATIONS.length;

/**
 * A 64-bit advisory lock key (a signed decimal string, for `pg_advisory_lock(bigint)`)
 * derived from a name: SHA-256 of `weft:<name>`, first 8 bytes.
 */
export function advisoryKey(name: string): string {
  return createHash('sha256').update(`weft:${name}`).digest().readBigInt64BE(0).toString();
}

/** The advisory lock that serialises migrations between replicas. */
const MIGRATION_LOCK = advisoryKey('schema-migration');

/**
 * Brings the database to `PG_SCHEMA_VERSION` in one transaction that first takes a
 * transaction-level advisory lock, so replicas opening a new database at once wait for
 * each other and each migration runs once (DDL is transactional in PostgreSQL: a failed
 * migration leaves nothing behind). Throws `StoreSchemaError` for a database from a
 * newer weft. `describe` names the database in messages.
 */
export async function migratePostgres(client: pg.ClientBase, describe: string): Promise<void> {
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await client.query('CREATE TABLE IF NOT EXISTS weft_schema_version (version integer NOT NULL)');
    const rows = (await client.query<{ version: number }>('SELECT version FROM weft_schema_version')).rows;
    const version = rows[0]?.version ?? 0;
    if (version > PG_SCHEMA_VERSION) {
      throw new StoreSchemaError(
        `${describe} has weft schema version ${version}, but this weft knows versions up to ${PG_SCHEMA_VERSION}: ` +
          'run a weft at least as new as the one that last wrote it (upgrade every replica)',
      );
    }
    for (let v = version; v < PG_SCHEMA_VERSION; v++) await client.query(MIGRATIONS[v]!);
    if (version === 0) await client.query('INSERT INTO weft_schema_version (version) VALUES ($1)', [PG_SCHEMA_VERSION]);
    else if (version < PG_SCHEMA_VERSION) await client.query('UPDATE weft_schema_version SET version = $1', [PG_SCHEMA_VERSION]);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  }
}
