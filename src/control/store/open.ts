import type { Coordination, Store } from './store.js';
import { SqliteStore } from './sqlite-store.js';

/** A store with its coordination, and what kind it is. */
export type ServerStore = Store & Coordination & { readonly kind: 'sqlite' | 'postgres' };

/**
 * Opens the server's store: PostgreSQL when `url` is given (`postgres://…`, shared by
 * replicas), else SQLite in `dataDir` (one server).
 */
export async function openStore(options: { dataDir: string; url?: string }): Promise<ServerStore> {
  if (options.url !== undefined) {
    const { PostgresStore } = await import('./postgres-store.js');
    return Object.assign(await PostgresStore.open({ url: options.url, applicationName: 'weft-server' }), { kind: 'postgres' as const });
  }
  return Object.assign(SqliteStore.open({ dataDir: options.dataDir }), { kind: 'sqlite' as const });
}
