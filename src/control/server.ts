import { createServer, type Server } from 'node:https';
import { mkdir, readFile } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { isIP } from 'node:net';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { formatHostPort, type HostPort } from '../config/address.js';
import { WeftError } from '../errors.js';
import { writeNewCaDir } from '../pki/ca-dir.js';
import { SelfIssuingSource } from '../pki/certificate-source.js';
import { KEY_FILE_MODE, pathExists, writeFileAtomic } from '../pki/files.js';
import { loadIssuerDir, type Issuer } from '../pki/issuer.js';
import { joinPem } from '../pki/pem.js';
import { serviceSpiffeId } from '../pki/spiffe.js';
import { tlsOptions } from '../proxy/tls.js';
import { apiHandler } from './api.js';
import { AuditLog } from './audit.js';
import { TokenBucket } from './rate-limit.js';
import { CsrSigner } from './signer.js';
import { Catalog } from './catalog.js';
import { SnapshotFeed } from './snapshot.js';
import { DEFAULT_WINDOW_MS, MigrationTracker } from './migration.js';
import { SqliteStore } from './store/sqlite-store.js';
import { JoinTokens, TOKEN_NAMESPACE } from './tokens.js';

export interface ServerOptions {
  /** State: the store, the CA (unless `caDir`), the admin token, the audit log. */
  readonly dataDir: string;
  /** A CA directory to sign with (`weft ca init`, or an intermediate from elsewhere). */
  readonly caDir?: string;
  /** Trust domain of a CA created at first start. */
  readonly trustDomain: string;
  readonly listen: HostPort;
  readonly leafTtlMs: number;
  /** CSR signings per second (and burst). */
  readonly csrRate: number;
  /** Extra DNS names and IP addresses for the API's certificate (localhost, 127.0.0.1 and the host name are always in). */
  readonly serverNames: readonly string[];
  /** An instance whose sidecar has not reported for this long is critical. */
  readonly instanceTtlMs: number;
  /** ... and is removed from the catalog after this long. */
  readonly instanceDeregisterMs: number;
  /** The migration view counts callers over this window (default 10 minutes; in memory: a restart starts a new one). */
  readonly migrationWindowMs?: number;
  readonly log: Logger;
}

/** Store revisions of change history kept for watchers (older ones are compacted). */
const HISTORY_KEPT = 1000;

/** A running control plane. */
export interface RunningServer {
  readonly address: HostPort;
  readonly trustDomain: string;
  readonly spiffeId: string;
  close(): Promise<void>;
}

/**
 * Starts `weft server`: opens the store, loads or creates the CA, the admin token and the
 * API's own certificate (renewed like a sidecar's), and serves the HTTPS API.
 */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const { dataDir, log } = options;
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const issuer = await loadOrCreateCa(options);
  const trustDomain = issuer.trustDomain ?? options.trustDomain;
  const adminToken = await loadOrCreateAdminToken(join(dataDir, 'admin-token'));
  const spiffeId = serviceSpiffeId(trustDomain, TOKEN_NAMESPACE, 'weft-server');
  const identity = new SelfIssuingSource({ issuer, spiffeId, ttlMs: options.leafTtlMs, log, hostNames: hostNames(options.serverNames) });
  // Everything opened from here on is closed again if the start fails.
  const opened: { store?: SqliteStore; audit?: AuditLog; https?: Server; sweeper?: NodeJS.Timeout; snapshots?: SnapshotFeed } = {};
  const closeAll = async () => {
    identity.stop();
    opened.snapshots?.stop();
    if (opened.sweeper !== undefined) clearInterval(opened.sweeper);
    if (opened.https !== undefined) {
      const https = opened.https;
      await new Promise<void>((resolve) => {
        https.close(() => resolve());
        https.closeAllConnections();
      });
    }
    await opened.store?.close();
    opened.audit?.close();
  };
  try {
    const audit = (opened.audit = new AuditLog(join(dataDir, 'audit.log')));
    const store = (opened.store = SqliteStore.open({ dataDir }));
    await identity.start();
    const catalog = new Catalog(store, { ttlMs: options.instanceTtlMs, deregisterAfterMs: options.instanceDeregisterMs });
    const snapshots = (opened.snapshots = new SnapshotFeed({ store, catalog, trustDomain, bundlePem: () => joinPem(issuer.bundlePems) }));
    await snapshots.start();
    const migration = new MigrationTracker({ windowMs: options.migrationWindowMs ?? DEFAULT_WINDOW_MS });
    const signer = new CsrSigner({
      issuer,
      leafTtlMs: options.leafTtlMs,
      buckets: { 'join-token': new TokenBucket(options.csrRate), certificate: new TokenBucket(options.csrRate) },
      audit,
    });
    const handler = apiHandler({
      trustDomain,
      signer,
      tokens: new JoinTokens(store),
      audit,
      bundlePem: () => joinPem(issuer.bundlePems),
      adminTokenSha256: createHash('sha256').update(adminToken).digest(),
      serverSpiffeId: spiffeId,
      reportIntervalMs: Math.max(500, Math.floor(options.instanceTtlMs / 3)),
      store,
      catalog,
      snapshots,
      migration,
      log,
    });
    // Client certificates are optional (enrollment has none yet) and checked per route.
    const https = (opened.https = createServer({ ...tlsOptions(identity.get()), requestCert: true, rejectUnauthorized: false }, handler));
    identity.subscribe((bundle) => https.setSecureContext(tlsOptions(bundle)));
    // Once per TTL: drop instances silent past the deregistration time, and notice
    // instances whose silence made them critical (snapshot followers must hear of it).
    let sweeps = 0;
    const sweep = async () => {
      const removed = await catalog.sweep();
      if (removed.length > 0) log.info({ removed }, 'instances removed after reporting nothing');
      await snapshots.recheck();
      migration.prune();
      // About once a minute: drop change history older than the last HISTORY_KEPT revisions
      // (watchers here follow live; one that fell further behind re-lists).
      if (++sweeps % 60 === 0) {
        const revision = await store.revision();
        if (revision > HISTORY_KEPT) await store.compact(revision - HISTORY_KEPT);
      }
    };
    opened.sweeper = setInterval(() => sweep().catch((err: unknown) => log.error({ err }, 'catalog sweep failed')), Math.min(1000, options.instanceTtlMs)).unref();
    const address = await listen(https, options.listen);
    log.info({ listen: formatHostPort(address), trustDomain, spiffeId, data: dataDir }, 'server ready');
    return { address, trustDomain, spiffeId, close: closeAll };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

async function loadOrCreateCa(options: ServerOptions): Promise<Issuer> {
  if (options.caDir !== undefined) return loadIssuerDir(options.caDir);
  const dir = join(options.dataDir, 'ca');
  if (!(await pathExists(join(dir, 'intermediate.key')))) {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeNewCaDir(dir, { trustDomain: options.trustDomain });
    options.log.info({ ca: dir, trustDomain: options.trustDomain }, 'created the CA (root and intermediate)');
  }
  return loadIssuerDir(dir, { role: 'intermediate' });
}

async function loadOrCreateAdminToken(file: string): Promise<string> {
  if (await pathExists(file)) {
    const token = (await readFile(file, 'utf8')).trim();
    if (token === '') throw new WeftError('WEFT_E_ADMIN_TOKEN', `${file} is empty; delete it and restart to create a new admin token`);
    return token;
  }
  const token = randomBytes(32).toString('base64url');
  await writeFileAtomic(file, `${token}\n`, KEY_FILE_MODE);
  return token;
}

function hostNames(extra: readonly string[]): { dnsNames: string[]; ips: string[] } {
  const names = new Set(['localhost', hostname(), ...extra.filter((n) => isIP(n) === 0)]);
  const ips = new Set(['127.0.0.1', '::1', ...extra.filter((n) => isIP(n) !== 0)]);
  return { dnsNames: [...names], ips: [...ips] };
}

function listen(server: Server, address: HostPort): Promise<HostPort> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) =>
      reject(new WeftError('WEFT_E_LISTEN', `the server cannot listen on ${formatHostPort(address)}: ${err.code === 'EADDRINUSE' ? 'the address is already in use' : err.message}`));
    server.once('error', onError);
    server.listen({ host: address.host, port: address.port }, () => {
      server.removeListener('error', onError);
      const a = server.address();
      resolve(typeof a === 'object' && a !== null ? { host: a.address, port: a.port } : address);
    });
  });
}

