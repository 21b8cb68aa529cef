/**
 * A private PostgreSQL server for tests, from the binaries of Debian's `postgresql`
 * package (scripts/install-deps.sh): `initdb` into a temp directory, trust authentication
 * (local connections and 127.0.0.1, ::1, 198.18.0.0/15: test hosts only), fsync off (a
 * killed server loses nothing; only an OS crash would). The server is a child process
 * stopped by its PID after the test; its directory is removed.
 *
 *   if (!(await requirePostgres(t))) return;
 *   const pg = await startPostgres(t);
 *   const url = await pg.createDatabase();   // a fresh database; dropDatabase(url) after
 *
 * One server per test file is enough (`startPostgres({ after })` with node:test's `after`);
 * each test creates its own database.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { TestContext } from 'node:test';
import { requireOrSkip } from './require.js';
import pg from 'pg';

const run = promisify(execFile);

/** Where Debian installs PostgreSQL's server binaries (one directory per major version). */
const PG_LIB = '/usr/lib/postgresql';

/** Something that runs clean-up after the test (a TestContext, or node:test's `after`). */
export interface AfterHook {
  after(fn: () => Promise<void>): void;
}

export interface PostgresOptions {
  /** Command prefix for the server process, e.g. `['ip', 'netns', 'exec', NS]`. */
  readonly prefix?: string[];
  /** An IP address to listen on besides the unix socket (e.g. a test host's `198.18.0.x`). */
  readonly listen?: string;
  /** The TCP port (default: 5432 inside a prefix, else a free port when `listen` is set). */
  readonly port?: number;
}

/** A running private server. */
export interface PostgresServer {
  /** `postgres://postgres@HOST:PORT/postgres`: HOST is `listen` when given, else the unix socket directory. */
  readonly url: string;
  /** The same server through its unix socket (reachable from any network namespace). */
  readonly socketUrl: string;
  /** The major version, e.g. 15. */
  readonly version: number;
  /** Creates a fresh, empty database (a random name when none is given); resolves to its URL (on `url`'s host). */
  createDatabase(name?: string): Promise<string>;
  /** Drops a database (by name or URL), ending its connections first. */
  dropDatabase(nameOrUrl: string): Promise<void>;
  /** Runs SQL as the superuser in `database` (default `postgres`), through the socket. */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[], database?: string): Promise<R[]>;
  /** Fast shutdown (SIGINT): ends sessions, waits for the server to exit. Idempotent. */
  stop(): Promise<void>;
  /** Crash: SIGKILL to the server and its backends (its process group). Idempotent. */
  kill(): Promise<void>;
  /** Starts the server again on the same data (after `stop` or `kill`). */
  start(): Promise<void>;
}

/** The newest PostgreSQL bin directory under /usr/lib/postgresql, or undefined. */
function findBinDir(): { bin: string; version: number } | undefined {
  if (!existsSync(PG_LIB)) return undefined;
  const versions = readdirSync(PG_LIB)
    .map(Number)
    .filter((v) => Number.isInteger(v) && existsSync(join(PG_LIB, String(v), 'bin', 'postgres')))
    .sort((a, b) => b - a);
  const version = versions[0];
  return version === undefined ? undefined : { bin: join(PG_LIB, String(version), 'bin'), version };
}

/** The uid/gid to run the server as: `postgres` when we are root (PostgreSQL refuses root), else ourselves. */
async function serverUser(): Promise<{ uid: number; gid: number } | string> {
  if (process.getuid?.() !== 0) return { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
  try {
    const { stdout } = await run('id', ['-u', 'postgres']);
    const { stdout: gid } = await run('id', ['-g', 'postgres']);
    return { uid: Number(stdout.trim()), gid: Number(gid.trim()) };
  } catch {
    return 'there is no `postgres` user to run the server as (PostgreSQL refuses to run as root)';
  }
}

/**
 * Why a private PostgreSQL cannot be run here, or null when it can. Under CI=true a test
 * must fail instead of skipping.
 */
export async function postgresUnavailable(): Promise<string | null> {
  if (findBinDir() === undefined) return `PostgreSQL is not installed (no ${PG_LIB}/<version>/bin/postgres): run scripts/install-deps.sh`;
  const user = await serverUser();
  if (typeof user === 'string') return user;
  if (process.getuid?.() === 0) {
    try {
      await run('setpriv', ['--version']);
    } catch {
      return 'setpriv (util-linux) is missing: it starts the server as the postgres user';
    }
  }
  return null;
}

/** Skips the test (or fails it under CI=true) when PostgreSQL is unavailable; true if it may go on. */
export async function requirePostgres(t: TestContext): Promise<boolean> {
  return requireOrSkip(t, 'PostgreSQL is', await postgresUnavailable());
}

async function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

function databaseName(nameOrUrl: string): string {
  if (!nameOrUrl.includes('://')) return nameOrUrl;
  return decodeURIComponent(new URL(nameOrUrl).pathname.slice(1));
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** Waits until the process exits (or has exited). */
function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/**
 * Starts a private PostgreSQL server; it is stopped and its data removed after the test
 * (`hook.after`). Throws when PostgreSQL is unavailable (call `requirePostgres` first to
 * skip instead outside CI).
 */
export async function startPostgres(hook: AfterHook, options: PostgresOptions = {}): Promise<PostgresServer> {
  const why = await postgresUnavailable();
  if (why !== null) throw new Error(`cannot start PostgreSQL: ${why}`);
  const { bin, version } = findBinDir()!;
  const user = (await serverUser()) as { uid: number; gid: number };
  const asRoot = process.getuid?.() === 0;

  const base = await mkdtemp(join(tmpdir(), 'weft-pg-'));
  let child: ChildProcess | undefined;
  let log = '';
  hook.after(async () => {
    if (child !== undefined) {
      child.kill('SIGINT');
      const timer = setTimeout(() => killGroup('SIGKILL'), 5000);
      await exited(child);
      clearTimeout(timer);
    }
    await rm(base, { recursive: true, force: true });
  });
  const data = join(base, 'data');
  if (asRoot) await chown(base, user.uid, user.gid);

  // initdb as the server's user.
  await new Promise<void>((resolve, reject) => {
    const init = spawn(
      join(bin, 'initdb'),
      ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync', '--no-instructions'],
      { stdio: ['ignore', 'pipe', 'pipe'], uid: user.uid, gid: user.gid, cwd: base },
    );
    let out = '';
    init.stdout.on('data', (d: Buffer) => (out += d.toString()));
    init.stderr.on('data', (d: Buffer) => (out += d.toString()));
    init.once('error', reject);
    init.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`initdb failed (${code}): ${out}`))));
  });
  const hba = [
    'local all all trust',
    'host all all 127.0.0.1/32 trust',
    'host all all ::1/128 trust',
    'host all all 198.18.0.0/15 trust',
    '',
  ].join('\n');
  await writeFile(join(data, 'pg_hba.conf'), hba);
  if (asRoot) await chown(join(data, 'pg_hba.conf'), user.uid, user.gid);

  const inPrefix = (options.prefix?.length ?? 0) > 0;
  const port = options.port ?? (options.listen !== undefined && !inPrefix ? await freePort(options.listen) : 5432);
  const args = [
    '-D', data,
    '-k', base,
    '-p', String(port),
    '-c', `listen_addresses=${options.listen ?? ''}`,
    '-c', 'fsync=off',
    '-c', 'full_page_writes=off',
    '-c', 'max_connections=300',
    '-c', 'shared_buffers=32MB',
    '-c', 'log_min_messages=warning',
  ];
  // setpriv execs (no fork), so the PID we hold is the postmaster's, also behind `ip netns exec`.
  const command = [
    ...(options.prefix ?? []),
    ...(asRoot ? ['setpriv', `--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups'] : []),
    join(bin, 'postgres'),
    ...args,
  ];

  const socketUrl = `postgres://postgres@${encodeURIComponent(base)}:${port}/postgres`;
  const url = options.listen !== undefined ? `postgres://postgres@${options.listen.includes(':') ? `[${options.listen}]` : options.listen}:${port}/postgres` : socketUrl;
  const withDatabase = (target: string, name: string): string => target.replace(/\/postgres$/, `/${encodeURIComponent(name)}`);

  function killGroup(signal: NodeJS.Signals): void {
    const pid = child?.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, signal); // the server's own process group (spawned detached)
    } catch {
      // already gone
    }
  }

  async function start(): Promise<void> {
    if (child !== undefined && child.exitCode === null && child.signalCode === null) return;
    log = '';
    // detached: the server leads its own process group, so kill() also reaches its backends.
    const proc = spawn(command[0]!, command.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], detached: true, cwd: base });
    child = proc;
    proc.stderr!.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-16384)));
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        throw new Error(`PostgreSQL exited at start (${proc.exitCode ?? proc.signalCode}): ${log}`);
      }
      const client = new pg.Client({ connectionString: socketUrl });
      client.on('error', () => {});
      try {
        await client.connect();
        await client.query('SELECT 1');
        await client.end();
        return;
      } catch (err) {
        await client.end().catch(() => {});
        if (Date.now() > deadline) throw new Error(`PostgreSQL did not accept connections within 30 s (${String(err)}): ${log}`);
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    }
  }

  async function query<R extends pg.QueryResultRow>(sql: string, params: unknown[] = [], database = 'postgres'): Promise<R[]> {
    const client = new pg.Client({ connectionString: withDatabase(socketUrl, database) });
    client.on('error', () => {});
    await client.connect();
    try {
      return (await client.query<R>(sql, params)).rows;
    } finally {
      await client.end().catch(() => {});
    }
  }

  await start();

  return {
    url,
    socketUrl,
    version,
    async createDatabase(name?: string): Promise<string> {
      const db = name ?? `weft_${randomBytes(6).toString('hex')}`;
      // FILE_COPY (PostgreSQL 15's default is WAL_LOG): with fsync off, copying template1's files is faster.
      await query(`CREATE DATABASE ${quoteIdent(db)}${version >= 15 ? ' STRATEGY FILE_COPY' : ''}`);
      return withDatabase(url, db);
    },
    async dropDatabase(nameOrUrl: string): Promise<void> {
      if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
      await query(`DROP DATABASE IF EXISTS ${quoteIdent(databaseName(nameOrUrl))} WITH (FORCE)`);
    },
    query,
    async stop(): Promise<void> {
      if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGINT');
      await exited(child);
    },
    async kill(): Promise<void> {
      if (child === undefined) return;
      const alive = child.exitCode === null && child.signalCode === null;
      killGroup('SIGKILL');
      if (alive) await exited(child);
    },
    start,
  };
}
