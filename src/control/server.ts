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
import { openStore, type ServerStore } from './store/open.js';
import { ReplicaState } from './replica.js';
import { loadOrCreateSharedCa, sharedAdminTokenHash } from './shared-secrets.js';
import { JoinTokens, TOKEN_NAMESPACE } from './tokens.js';
import { ServerMetrics } from './server-metrics.js';
import { TelemetryStore } from './telemetry.js';
import { TapBroker } from './tap-broker.js';
import { certificateInfo } from '../pki/cert-info.js';
import type { CertificatesAnswer } from './telemetry-wire.js';

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
  /** A PostgreSQL URL: the store shared with other replicas (default: SQLite in dataDir). */
  readonly storeUrl?: string;
  /** With a shared store: the secret the CA key is encrypted with (the same on every replica). */
  readonly caKeySecret?: string;
  /** This replica's name in logs, /ready and metrics (default: host name and process id). */
  readonly replicaId?: string;
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
  // Everything opened from here on is closed again if the start fails.
  const opened: { store?: ServerStore; audit?: AuditLog; https?: Server; ticker?: NodeJS.Timeout; snapshots?: SnapshotFeed; identity?: SelfIssuingSource } = {};
  /** The API's TCP connections, destroyed at close. */
  const sockets = new Set<import('node:net').Socket>();
  const closeAll = async () => {
    opened.identity?.stop();
    opened.snapshots?.stop();
    if (opened.ticker !== undefined) clearInterval(opened.ticker);
    if (opened.https !== undefined) {
      const https = opened.https;
      await new Promise<void>((resolve) => {
        https.close(() => resolve());
        // Every TCP connection, also one still in its TLS handshake (which closeAllConnections
        // does not know yet, and whose long poll would then hold the server open for good).
        for (const socket of sockets) socket.destroy();
        https.closeAllConnections();
      });
    }
    await opened.store?.close();
    opened.audit?.close();
  };
  try {
    const rawStore = (opened.store = await openStore({ dataDir, ...(options.storeUrl !== undefined ? { url: options.storeUrl } : {}) }));
    const replica = new ReplicaState({ replica: options.replicaId ?? `${hostname()}-${process.pid}`, store: rawStore.kind });
    const tap = new TapBroker();
    const metrics = new ServerMetrics(replica.registry, { sidecarsConnected: () => replica.followers, tapSessions: () => tap.sessionCount });
    // Every store call is timed (weft_server_store_operation_duration_seconds).
    const store = metrics.timeStore(rawStore);
    const shared = store.kind === 'postgres';
    if (shared && options.caKeySecret === undefined) throw new WeftError('WEFT_E_CA_KEY', 'a shared store needs the CA key secret (--ca-key-file or WEFT_CA_KEY)');
    const issuer = shared
      ? await loadOrCreateSharedCa(store, { secret: options.caKeySecret!, ...(options.caDir !== undefined ? { caDir: options.caDir } : {}), dataDir, trustDomain: options.trustDomain, log })
      : await loadOrCreateCa(options);
    const trustDomain = issuer.trustDomain ?? options.trustDomain;
    const adminTokenSha256 = shared
      ? await sharedAdminTokenHash(store, { file: join(dataDir, 'admin-token'), log })
      : createHash('sha256').update(await loadOrCreateAdminToken(join(dataDir, 'admin-token'))).digest();
    const spiffeId = serviceSpiffeId(trustDomain, TOKEN_NAMESPACE, 'weft-server');
    const identity = (opened.identity = new SelfIssuingSource({ issuer, spiffeId, ttlMs: options.leafTtlMs, log, hostNames: hostNames(options.serverNames) }));
    const audit = (opened.audit = new AuditLog(join(dataDir, 'audit.log')));
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
      count: (via, result) => metrics.csr(via, result),
    });
    const handler = apiHandler({
      trustDomain,
      signer,
      tokens: new JoinTokens(store),
      audit,
      bundlePem: () => joinPem(issuer.bundlePems),
      adminTokenSha256,
      serverSpiffeId: spiffeId,
      reportIntervalMs: Math.max(500, Math.floor(options.instanceTtlMs / 3)),
      store,
      catalog,
      snapshots,
      migration,
      telemetry: new TelemetryStore(),
      tap,
      metrics,
      caCertificates: caCertificates(issuer),
      replica,
      log,
    });
    // Client certificates are optional (enrollment has none yet) and checked per route.
    const https = (opened.https = createServer({ ...tlsOptions(identity.get()), requestCert: true, rejectUnauthorized: false }, handler));
    https.on('connection', (socket: import('node:net').Socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
    });
    identity.subscribe((bundle) => https.setSecureContext(tlsOptions(bundle)));
    opened.ticker = startTicker({ store, catalog, snapshots, migration, replica, log, intervalMs: Math.min(1000, options.instanceTtlMs) });
    const address = await listen(https, options.listen);
    log.info({ listen: formatHostPort(address), trustDomain, spiffeId, data: dataDir, store: store.kind, replica: replica.status().replica }, 'server ready');
    return { address, trustDomain, spiffeId, close: closeAll };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

/**
 * Once a second: is the store there (readiness: a replica cut off answers 503 and ends its
 * long polls, so its sidecars move to another replica), does this replica lead, and if it
 * does, the once-only work: expiring silent instances, and about once a minute compacting
 * the change history to the last HISTORY_KEPT revisions.
 */
function startTicker(deps: { store: ServerStore; catalog: Catalog; snapshots: SnapshotFeed; migration: MigrationTracker; replica: ReplicaState; log: Logger; intervalMs: number }): NodeJS.Timeout {
  const { store, replica, log } = deps;
  let ticks = 0;
  let running = false;
  const tick = async () => {
    const ok = await store.ping(Math.max(500, deps.intervalMs - 100)).catch(() => false);
    if (replica.setReady(ok, ok ? null : 'the store does not answer')) {
      if (ok) log.info('the store answers again: ready');
      else log.error('the store does not answer: not ready (sidecars move to another replica)');
      if (!ok) deps.snapshots.wakeAll();
    }
    if (!ok) {
      replica.setLeader(false);
      return;
    }
    const leads = await store.lead('weft-server');
    if (replica.setLeader(leads)) log.info({ leader: leads }, leads ? 'this replica leads' : 'this replica no longer leads');
    deps.migration.prune();
    if (!leads) return;
    const removed = await deps.catalog.sweep();
    if (removed.length > 0) log.info({ removed }, 'instances removed after reporting nothing');
    if (++ticks % 60 === 0) {
      const revision = await store.revision();
      if (revision > HISTORY_KEPT) await store.compact(revision - HISTORY_KEPT);
    }
  };
  return setInterval(() => {
    if (running) return; // a slow store: never two ticks at once
    running = true;
    tick()
      .catch((err: unknown) => log.error({ err }, 'server tick failed'))
      .finally(() => (running = false));
  }, deps.intervalMs).unref();
}

/** The CA certificates of `issuer` for `/v1/certificates`: its chain (intermediates), then the roots it trusts. */
function caCertificates(issuer: Issuer): () => CertificatesAnswer['ca'] {
  const seen = new Set<string>();
  const list: { subject: string; role: 'root' | 'intermediate'; notAfter: string }[] = [];
  const add = (pem: string, role: 'root' | 'intermediate') => {
    const info = certificateInfo(pem);
    if (seen.has(info.fingerprint256)) return;
    seen.add(info.fingerprint256);
    list.push({ subject: info.subject, role, notAfter: info.notAfter.toISOString() });
  };
  for (const pem of issuer.bundlePems) add(pem, 'root');
  for (const pem of issuer.chainPems.length > 0 ? issuer.chainPems : [issuer.certPem]) add(pem, 'intermediate');
  const ordered = [...list.filter((c) => c.role === 'intermediate'), ...list.filter((c) => c.role === 'root')];
  return () => ordered;
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

