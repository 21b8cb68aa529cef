import { WeftError } from '../../errors.js';
import { StoreUnavailableError } from './errors.js';

/** Node.js socket and DNS error codes that mean "cannot reach the server (now)". */
const NETWORK_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH',
  'ENETDOWN', 'EHOSTDOWN', 'ENOTFOUND', 'EAI_AGAIN', 'ENOENT',
]);

/** pg's own messages for a connection that ended or never came. */
const CONNECTION_MESSAGE = /Connection terminated|not queryable|timeout exceeded when trying to connect|Connection ended|connection error/i;

function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * True when `err` means the connection failed or was lost (so the operation may succeed
 * on another connection later): socket errors, pg's "Connection terminated", SQLSTATE
 * class 08 (connection exception), 57P01-57P03 (server shutting down or starting) and
 * 53300 (too many connections), and `StoreUnavailableError`.
 */
export function isConnectionError(err: unknown): boolean {
  if (err instanceof StoreUnavailableError) return true;
  const code = codeOf(err);
  if (code !== undefined) {
    if (NETWORK_CODES.has(code) || code.startsWith('08') || ['57P01', '57P02', '57P03', '53300'].includes(code)) return true;
  }
  return err instanceof Error && CONNECTION_MESSAGE.test(err.message);
}

/** `host:port/database` of a connection URL, without user or password (for messages). */
export function describeDatabase(url: string): string {
  try {
    const parsed = new URL(url);
    const query = parsed.searchParams.get('host');
    const host = decodeURIComponent(query ?? parsed.hostname) || 'localhost';
    const database = decodeURIComponent(parsed.pathname.slice(1)) || '(default database)';
    return `PostgreSQL at ${host}:${parsed.port || '5432'}, database ${database}`;
  } catch {
    return 'PostgreSQL (the URL could not be parsed: postgres://USER:PASSWORD@HOST:PORT/DATABASE)';
  }
}

/** The error for a database that cannot be opened, saying what to fix. */
export function openError(err: unknown, where: string): WeftError {
  if (err instanceof WeftError) return err;
  const code = codeOf(err);
  const detail = err instanceof Error ? err.message : String(err);
  const fail = (what: string): WeftError => new StoreUnavailableError(`cannot open the store on ${where}: ${what}`, { cause: err });
  switch (code) {
    case 'ECONNREFUSED':
      return fail('the connection was refused. Is PostgreSQL running, and listening on that address and port (listen_addresses, port in postgresql.conf)? Check --store.');
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return fail(`the host name does not resolve (${detail}). Check the host in --store.`);
    case 'ENOENT':
      return fail(`there is no socket at that path (${detail}). Is PostgreSQL running, and is the socket directory in --store right?`);
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return fail(`the host cannot be reached (${detail}). Check the address, the routes and the firewalls between this host and PostgreSQL.`);
    case '28P01':
    case '28000':
      return fail(`PostgreSQL refused the login (${detail}). Check the user and password in --store, and that pg_hba.conf admits this host and user.`);
    case '3D000':
      return fail(`${detail}. Create it (createdb, or CREATE DATABASE) or fix the database name in --store.`);
    case '42501':
      return fail(`permission denied (${detail}). The user in --store must be allowed to create tables in the database (CREATE on its schema) to set up weft's tables.`);
    case '53300':
      return fail(`PostgreSQL has no connection slot left (${detail}). Raise max_connections or lower the pool size of the replicas.`);
    default:
      if (/timeout/i.test(detail)) return fail(`PostgreSQL did not answer in time (${detail}). Check the address, the port and the firewalls.`);
      if (/SSL|TLS|certificate/i.test(detail)) return fail(`TLS failed (${detail}). Check sslmode and the certificates in --store.`);
      return fail(`${detail}.`);
  }
}
