import { after, test } from 'node:test';
import { PostgresStore } from '../../src/control/store/postgres-store.js';
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
