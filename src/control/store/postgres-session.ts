import pg from 'pg';
import { StoreUnavailableError } from './errors.js';
import { isConnectionError } from './postgres-errors.js';

/** Closes a pg client's socket at once (a lost network would make `end()` wait for TCP). */
export function destroyClient(client: pg.ClientBase): void {
  (client as unknown as { connection?: { stream?: { destroy?: () => void } } }).connection?.stream?.destroy?.();
}

/** Runs `promise` with a deadline: past `ms`, calls `onTimeout` and rejects with `StoreUnavailableError`. */
export async function withDeadline<T>(promise: Promise<T>, ms: number, what: string, onTimeout: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout();
      reject(new StoreUnavailableError(`${what} did not answer within ${ms} ms; check that PostgreSQL is up and reachable`));
    }, ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The store's one dedicated PostgreSQL session: it LISTENs for change notifications and
 * holds the advisory locks of leadership (session-level locks end with the session: a
 * replica that dies or loses its connection loses its roles). Once lost (error, end, a
 * query past its deadline) it stays lost: the store connects a new one.
 */
export class PgSession {
  readonly #client: pg.Client;
  readonly #onLost: (session: PgSession) => void;
  #lost = false;
  /** The roles this session holds (`pg_try_advisory_lock` succeeded). */
  readonly held = new Set<string>();

  private constructor(client: pg.Client, onLost: (session: PgSession) => void) {
    this.#client = client;
    this.#onLost = onLost;
  }

  /**
   * Connects and LISTENs on `channel`; `onNotify` receives each payload; `onLost` is
   * called once when the session is lost.
   */
  static async connect(
    config: pg.ClientConfig,
    channel: string,
    timeoutMs: number,
    describe: string,
    onNotify: (payload: string) => void,
    onLost: (session: PgSession) => void,
  ): Promise<PgSession> {
    const client = new pg.Client(config);
    const session = new PgSession(client, onLost);
    client.on('error', () => session.#lose());
    client.on('end', () => session.#lose());
    client.on('notification', (message) => {
      if (!session.#lost && message.channel === channel && message.payload !== undefined) onNotify(message.payload);
    });
    try {
      await withDeadline(client.connect(), timeoutMs, describe, () => destroyClient(client));
      await session.query(`LISTEN ${channel}`, [], timeoutMs, describe);
    } catch (err) {
      session.#lose();
      throw err instanceof StoreUnavailableError ? err : new StoreUnavailableError(`${describe}: ${String(err)}`, { cause: err });
    }
    return session;
  }

  get lost(): boolean {
    return this.#lost;
  }

  /** A query on the session, at most `timeoutMs`; a connection failure or timeout loses the session. */
  async query<R extends pg.QueryResultRow>(sql: string, params: unknown[], timeoutMs: number, describe: string): Promise<R[]> {
    if (this.#lost) throw new StoreUnavailableError(`the connection to ${describe} was lost`);
    try {
      const result = await withDeadline(this.#client.query<R>(sql, params), timeoutMs, describe, () => this.#lose());
      return result.rows;
    } catch (err) {
      if (err instanceof StoreUnavailableError) throw err;
      if (isConnectionError(err)) {
        this.#lose();
        throw new StoreUnavailableError(`lost the connection to ${describe} (${String(err)})`, { cause: err });
      }
      throw err;
    }
  }

  /** Ends the session (releasing its locks). */
  async end(): Promise<void> {
    if (this.#lost) return;
    this.#lost = true;
    this.held.clear();
    await withDeadline(this.#client.end(), 2000, 'closing the session', () => destroyClient(this.#client)).catch(() => {});
  }

  #lose(): void {
    if (this.#lost) return;
    this.#lost = true;
    this.held.clear();
    destroyClient(this.#client);
    this.#client.end().catch(() => {});
    this.#onLost(this);
  }
}
