import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { createHash, timingSafeEqual } from 'node:crypto';
import { isWeftError } from '../errors.js';
import { parseCsr } from '../pki/csr.js';
import { bundlePins } from '../pki/pin.js';
import { parseServiceSpiffeId, serviceSpiffeId } from '../pki/spiffe.js';
import { registrationProblem, type Catalog } from './catalog.js';
import type { SnapshotFeed } from './snapshot.js';
import type { ReplicaState } from './replica.js';
import { parseCallers, serviceModes, type MigrationTracker } from './migration.js';
import { parseDuration } from '../duration.js';
import { nameProblem } from '../config/names.js';
import { peerSpiffeId } from '../proxy/tls.js';
import type { AuditLog } from './audit.js';
import { SignRefused, type CsrSigner } from './signer.js';
import { TokenRefused, type JoinTokens } from './tokens.js';
import type { Logger } from 'pino';
import type { IssuedLeaf } from '../pki/issuer.js';
import { RESERVED_NAMESPACE } from '../config/names.js';
import { ConfigError, crossCheck, RESOURCE_KINDS, validateResource, type NormalizedResource } from './resources.js';
import type { ConfigProblem } from '../config/problems.js';
import type { JsonValue, Store } from './store/store.js';
import { StoreConflictError } from './store/errors.js';
import type { ServerMetrics } from './server-metrics.js';
import type { TapBroker } from './tap-broker.js';
import type { TelemetryStore } from './telemetry.js';
import type { CertificatesAnswer } from './telemetry-wire.js';
import { telemetryRoute } from './telemetry-api.js';
import { dashboardRoute } from './dashboard-route.js';

/** What the API serves from. */
export interface ApiDeps {
  readonly trustDomain: string;
  readonly signer: CsrSigner;
  readonly tokens: JoinTokens;
  readonly audit: AuditLog;
  /** The trust bundle (roots) sidecars verify each other with. */
  readonly bundlePem: () => string;
  /** SHA-256 of the operator's admin token. */
  readonly adminTokenSha256: Buffer;
  /** The server's own SPIFFE ID (sidecars check it on the API's certificate). */
  readonly serverSpiffeId: string;
  /** How often a sidecar should report its instance (a third of the instance TTL). */
  readonly reportIntervalMs: number;
  readonly store: Store;
  readonly catalog: Catalog;
  readonly snapshots: SnapshotFeed;
  /** Readiness, leadership and metrics of this replica. */
  readonly replica: ReplicaState;
  /** Callers per service from the sidecars' reports (the migration view). */
  readonly migration: MigrationTracker;
  /** What the sidecars report every 2 s (top, topology, their certificates). */
  readonly telemetry: TelemetryStore;
  /** Live tap sessions. */
  readonly tap: TapBroker;
  /** The control plane's own metrics (snapshot pushes, CSRs, telemetry reports). */
  readonly metrics: ServerMetrics;
  /** The CA certificates this server signs with and trusts (for `/v1/certificates`). */
  readonly caCertificates: () => CertificatesAnswer['ca'];
  readonly log: Logger;
}

/** An answer other than 200, as JSON `{ error: { code, message } }`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
    /** For invalid resources: every problem, with its path. */
    readonly problems?: readonly ConfigProblem[],
  ) {
    super(message);
  }
}

const MAX_BODY = 64 * 1024;
/** A report may list up to 1000 callers. */
const MAX_REPORT_BODY = 1024 * 1024;
const MAX_TOKEN_TTL_MS = 30 * 86_400_000;
/** How long a snapshot long poll waits for a change before answering 304. */
const SNAPSHOT_POLL_MS = 30_000;

/**
 * The control plane's HTTPS API (version 1):
 *
 * | route | who | what |
 * |---|---|---|
 * | `GET /ready` | anyone | 200 or 503 `{ready, replica, store, leader, reason}` |
 * | `GET /metrics` | anyone | the replica's Prometheus metrics |
 * | `GET /v1/ca/bundle` | anyone | the trust bundle (PEM) |
 * | `GET /v1/ca` | anyone | `{trustDomain, bundle, serverSpiffeId}` (what an enrolling sidecar checks against its token's pin) |
 * | `POST /v1/enroll` `{token, csr}` | a join token | signs the CSR for the token's service |
 * | `POST /v1/renew` `{csr}` | a client certificate from this CA | signs a CSR for the caller's own SPIFFE ID |
 * | `POST /v1/tokens` `{service, namespace?, ttl?, uses?}` | the admin token | creates a join token |
 * | `DELETE /v1/tokens/ID` | the admin token | revokes a join token |
 * | `GET /v1/snapshot` (`If-None-Match: "HASH"`) | a client certificate | the caller's snapshot; a long poll while it is still HASH (304 after 30 s) |
 * | `POST /v1/catalog/instances` `{address, port, metadata?}` | a client certificate | registers an instance of the caller's service |
 * | `PUT /v1/catalog/instances/ID/report` `{healthy, reason?, callers?}` | a client certificate (same service) | health, and callers since the last report (see catalogRoute) |
 * | `DELETE /v1/catalog/instances/ID` | a client certificate (same service) | deregisters |
 * | `GET /v1/catalog/services` | the admin token | the catalog with health |
 * | `GET /v1/migration[?service=NAME][&namespace=NS]` | the admin token | per service: mTLS mode, callers in the window, verdict (control/migration.ts) |
 * | `POST /v1/apply`, `/v1/resources…` | the admin token | resources (see resourceRoute) |
 * | `POST /v1/telemetry`, `/v1/tap…`, `GET /v1/top`, `/v1/topology`, `/v1/certificates` | see telemetryRoute (control/telemetry-api.ts) | telemetry, live taps, top |
 * | `GET /`, `/ui/…` | anyone | the dashboard's static files (control/dashboard-route.ts; its API calls need the admin token) |
 */
export function apiHandler(deps: ApiDeps): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    route(deps, req, res).catch((err: unknown) => {
      // A replica that lost its store fails calls it cannot serve with 503: try another one.
      const e = !deps.replica.ready && !(err instanceof ApiError) ? notReady(deps) : apiError(err);
      if (e.status >= 500) deps.log.error({ err, method: req.method, path: req.url }, 'API request failed');
      send(res, e.status, { error: { code: e.code, message: e.message, ...(e.problems ? { problems: e.problems } : {}) } }, e.headers);
    });
  };
}

/** What an error becomes on the wire; unexpected errors are logged, not shown. */
function apiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof SignRefused) return new ApiError(err.status, err.code, err.message, err.retryAfterSeconds !== undefined ? { 'retry-after': String(err.retryAfterSeconds) } : {});
  if (err instanceof TokenRefused) return new ApiError(401, err.code, err.message);
  if (err instanceof StoreConflictError) return new ApiError(409, err.code, err.message);
  if (err instanceof URIError) return new ApiError(400, 'WEFT_E_BAD_REQUEST', 'malformed percent-encoding in the path');
  if (isWeftError(err)) return new ApiError(400, err.code, err.message);
  return new ApiError(500, 'WEFT_E_INTERNAL', 'internal error (see the server log)');
}

async function route(deps: ApiDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  const remote = req.socket.remoteAddress;
  const is = (method: string, p: string) => req.method === method && path === p;
  if (is('GET', '/ready')) {
    const status = deps.replica.status();
    send(res, status.ready ? 200 : 503, status);
    return;
  }
  if (is('GET', '/metrics')) {
    res.writeHead(200, { 'content-type': deps.replica.registry.contentType }).end(await deps.replica.registry.metrics());
    return;
  }
  if (await dashboardRoute(req, res, path ?? '/')) return; // the dashboard's static files (control/dashboard-route.ts)
  if (!deps.replica.ready && path !== '/v1/ca/bundle' && path !== '/v1/ca') throw notReady(deps);
  if (is('GET', '/v1/ca/bundle')) {
    res.writeHead(200, { 'content-type': 'application/x-pem-file' }).end(deps.bundlePem());
    return;
  }
  if (is('GET', '/v1/ca')) {
    send(res, 200, { trustDomain: deps.trustDomain, bundle: deps.bundlePem(), serverSpiffeId: deps.serverSpiffeId });
    return;
  }
  if (is('POST', '/v1/enroll')) {
    const body = await jsonBody(req);
    const token = stringField(body, 'token');
    const csr = parseCsr(stringField(body, 'csr')); // a malformed request does not spend the token
    deps.signer.admit('join-token');
    let grant;
    try {
      grant = await deps.tokens.consume(token);
    } catch (err) {
      if (err instanceof TokenRefused) deps.metrics.csr('join-token', 'refused');
      if (err instanceof TokenRefused) deps.audit.record({ event: 'csr.refused', via: 'join-token', remote, reason: err.message, ...(err.tokenId !== undefined ? { tokenId: err.tokenId } : {}) });
      throw err;
    }
    const allowed = serviceSpiffeId(deps.trustDomain, grant.namespace, grant.service);
    sendLeaf(deps, res, await deps.signer.sign(csr, { allowedSpiffeId: allowed, via: 'join-token', remote, tokenId: grant.tokenId }));
    return;
  }
  if (is('POST', '/v1/renew')) {
    const caller = callerService(deps, req);
    const csr = parseCsr(stringField(await jsonBody(req), 'csr'));
    deps.signer.admit('certificate');
    sendLeaf(deps, res, await deps.signer.sign(csr, { allowedSpiffeId: caller.spiffeId, via: 'certificate', remote }));
    return;
  }
  if (is('POST', '/v1/tokens')) {
    requireAdmin(deps, req);
    const body = await jsonBody(req);
    const service = stringField(body, 'service');
    const namespace = optionalString(body, 'namespace') ?? 'default';
    if (namespace === RESERVED_NAMESPACE) throw new ApiError(400, 'WEFT_E_BAD_REQUEST', `the namespace ${RESERVED_NAMESPACE} is the control plane's own`);
    const ttlMs = parseDuration(optionalString(body, 'ttl') ?? '1h');
    if (ttlMs < 1000 || ttlMs > MAX_TOKEN_TTL_MS) throw new ApiError(400, 'WEFT_E_BAD_REQUEST', '"ttl" must be between 1s and 30d');
    const uses = body['uses'] === undefined ? 1 : body['uses'];
    if (uses !== null && (typeof uses !== 'number' || !Number.isInteger(uses) || uses < 1)) {
      throw new ApiError(400, 'WEFT_E_BAD_REQUEST', '"uses" must be a positive integer, or null for unlimited');
    }
    for (const problem of [nameProblem('"service"', service), nameProblem('"namespace"', namespace)]) {
      if (problem !== null) throw new ApiError(400, 'WEFT_E_BAD_REQUEST', problem);
    }
    const spiffeId = serviceSpiffeId(deps.trustDomain, namespace, service);
    const created = await deps.tokens.create({ service, namespace, ttlMs, uses });
    deps.audit.record({ event: 'token.created', via: 'admin', remote, spiffeId, tokenId: created.tokenId });
    const pin = bundlePins(deps.bundlePem())[0]!;
    send(res, 201, { token: `${created.token}.${pin}`, tokenId: created.tokenId, spiffeId, expiresAt: created.expiresAt.toISOString(), uses });
    return;
  }
  const revoke = /^\/v1\/tokens\/([0-9a-f]{16})$/.exec(path ?? '');
  if (revoke !== null && req.method === 'DELETE') {
    requireAdmin(deps, req);
    if (!(await deps.tokens.revoke(revoke[1]!))) throw new ApiError(404, 'WEFT_E_NOT_FOUND', `no join token ${revoke[1]!}`);
    deps.audit.record({ event: 'token.revoked', via: 'admin', remote, tokenId: revoke[1]! });
    send(res, 200, { deleted: true });
    return;
  }
  if (is('GET', '/v1/snapshot')) {
    const caller = callerService(deps, req);
    const known = /^"?([A-Za-z0-9_-]{1,64})"?$/.exec(req.headers['if-none-match'] ?? '')?.[1] ?? null;
    const deadline = Date.now() + SNAPSHOT_POLL_MS;
    for (;;) {
      const seen = deps.snapshots.version;
      const snapshot = await deps.snapshots.build(caller.namespace, caller.service);
      if (snapshot.hash !== known) {
        deps.metrics.snapshotPushes.inc();
        send(res, 200, snapshot, { etag: `"${snapshot.hash}"` });
        return;
      }
      const left = deadline - Date.now();
      deps.replica.following(1);
      const moved = await deps.snapshots.wait(seen, left).finally(() => deps.replica.following(-1));
      if (!deps.replica.ready) throw notReady(deps);
      if (left <= 0 || !moved || req.socket.destroyed) {
        if (!req.socket.destroyed) res.writeHead(304, { etag: `"${snapshot.hash}"` }).end();
        return;
      }
    }
  }
  if (await telemetryRoute(deps, req, res, path ?? '')) return;
  if (path === '/v1/migration') {
    await migrationRoute(deps, req, res);
    return;
  }
  if (path?.startsWith('/v1/catalog/')) {
    await catalogRoute(deps, req, res, path);
    return;
  }
  if (path?.startsWith('/v1/resources') || is('POST', '/v1/apply')) {
    requireAdmin(deps, req);
    await resourceRoute(deps, req, res, path ?? '');
    return;
  }
  throw new ApiError(404, 'WEFT_E_NOT_FOUND', `no route ${req.method ?? ''} ${path ?? ''}`);
}

/**
 * Resources: `POST /v1/apply {resources: [...]}` validates every resource first (all the
 * problems at once, nothing stored when there is one), then stores them in order;
 * `PUT /v1/resources` one resource, with `If-Match: REVISION` or `If-None-Match: *` for
 * compare-and-set (409 on conflict); `GET /v1/resources/KIND[?namespace=NS]`,
 * `GET|DELETE /v1/resources/KIND/NAMESPACE/NAME`.
 */
async function resourceRoute(deps: ApiDeps, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
  if (req.method === 'POST' && path === '/v1/apply') {
    const body = await jsonBody(req);
    const list = body['resources'];
    if (!Array.isArray(list) || list.length === 0) throw new ApiError(400, 'WEFT_E_BAD_REQUEST', '"resources" must be a non-empty array');
    const valid: NormalizedResource[] = [];
    const problems: ConfigProblem[] = [];
    list.forEach((raw, i) => {
      try {
        const r = validateResource(raw);
        valid.push(r);
        problems.push(...crossCheck(r, deps).map((p) => ({ ...p, path: `resources.${i}.${p.path}` })));
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        problems.push(...err.problems.map((p) => ({ ...p, path: `resources.${i}${p.path === '' ? '' : `.${p.path}`}` })));
      }
    });
    if (problems.length > 0) throw invalid(problems);
    const applied = [];
    for (const r of valid) {
      const stored = await deps.store.put({ kind: r.kind, namespace: r.namespace, name: r.name, spec: r.spec as unknown as JsonValue });
      applied.push({ kind: r.kind, namespace: r.namespace, name: r.name, revision: stored.revision, created: stored.createdRevision === stored.revision });
    }
    send(res, 200, { applied });
    return;
  }
  if (req.method === 'PUT' && path === '/v1/resources') {
    let r: NormalizedResource;
    try {
      r = validateResource(await jsonBody(req));
    } catch (err) {
      if (err instanceof ConfigError) throw invalid([...err.problems]);
      throw err;
    }
    const problems = crossCheck(r, deps);
    if (problems.length > 0) throw invalid(problems);
    send(res, 200, await deps.store.put({ kind: r.kind, namespace: r.namespace, name: r.name, spec: r.spec as unknown as JsonValue }, expectedRevision(req)));
    return;
  }
  const parts = path.split('/').slice(3).map(decodeURIComponent); // after /v1/resources
  const [kind, namespace, name] = parts;
  if (kind === undefined || !(RESOURCE_KINDS as readonly string[]).includes(kind) || parts.length === 2 || parts.length > 3) {
    throw new ApiError(404, 'WEFT_E_NOT_FOUND', `unknown resource path ${path}; kinds are ${RESOURCE_KINDS.join(', ')}`);
  }
  if (req.method === 'GET' && namespace === undefined) {
    const ns = new URL(req.url ?? '/', 'https://x').searchParams.get('namespace');
    send(res, 200, { items: await deps.store.list(kind, ns ?? undefined) });
    return;
  }
  if (namespace === undefined || name === undefined) throw new ApiError(404, 'WEFT_E_NOT_FOUND', `no route ${req.method ?? ''} ${path}`);
  if (req.method === 'GET') {
    const found = await deps.store.get(kind, namespace, name);
    if (found === undefined) throw new ApiError(404, 'WEFT_E_NOT_FOUND', `${kind} ${namespace}/${name} does not exist`);
    send(res, 200, found);
    return;
  }
  if (req.method === 'DELETE') {
    if (!(await deps.store.delete(kind, namespace, name, expectedRevision(req)))) throw new ApiError(404, 'WEFT_E_NOT_FOUND', `${kind} ${namespace}/${name} does not exist`);
    send(res, 200, { deleted: true });
    return;
  }
  throw new ApiError(405, 'WEFT_E_METHOD', `${req.method ?? ''} is not allowed on ${path}`);
}

/**
 * The catalog. Sidecars (client certificate: the instance's service is the certificate's):
 * `POST /v1/catalog/instances {address, port, metadata?}` → `{id}`;
 * `PUT /v1/catalog/instances/ID/report {healthy, reason?, callers?}` (404: register again;
 * `callers`: at most 1000 `{identity, address, tls, requests, connections, wouldReject}`,
 * counts since the previous report, for the migration view; a bad entry is a 400 and
 * nothing of the report is kept);
 * `DELETE /v1/catalog/instances/ID`. Operators (admin token): `GET /v1/catalog/services`.
 */
async function catalogRoute(deps: ApiDeps, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
  if (req.method === 'GET' && path === '/v1/catalog/services') {
    requireAdmin(deps, req);
    send(res, 200, { services: await deps.catalog.services() });
    return;
  }
  const { namespace, service } = callerService(deps, req);
  if (req.method === 'POST' && path === '/v1/catalog/instances') {
    const body = await jsonBody(req);
    const problem = registrationProblem(body);
    if (problem !== null) throw new ApiError(400, 'WEFT_E_BAD_REQUEST', problem);
    const id = await deps.catalog.register({ service, namespace, address: body['address'] as string, port: body['port'] as number, metadata: (body['metadata'] ?? {}) as Record<string, string> });
    send(res, 200, { id, service, namespace, reportIntervalMs: deps.reportIntervalMs });
    return;
  }
  const m = /^\/v1\/catalog\/instances\/([a-z0-9-]+)(\/report)?$/.exec(path);
  if (m !== null && req.method === 'PUT' && m[2] === '/report') {
    const body = await jsonBody(req, MAX_REPORT_BODY);
    if (typeof body['healthy'] !== 'boolean') throw new ApiError(400, 'WEFT_E_BAD_REQUEST', '"healthy" must be true or false');
    const callers = parseCallers(body['callers']);
    const ok = await deps.catalog.report(namespace, m[1]!, service, body['healthy'], typeof body['reason'] === 'string' ? body['reason'].slice(0, 200) : null);
    if (!ok) throw new ApiError(404, 'WEFT_E_NOT_FOUND', `instance ${m[1]!} of ${service} is not registered; register again`);
    deps.migration.record(namespace, service, callers);
    send(res, 200, { ok: true });
    return;
  }
  if (m !== null && req.method === 'DELETE' && m[2] === undefined) {
    if (!(await deps.catalog.deregister(namespace, m[1]!, service))) throw new ApiError(404, 'WEFT_E_NOT_FOUND', `instance ${m[1]!} of ${service} is not registered`);
    send(res, 200, { deleted: true });
    return;
  }
  throw new ApiError(404, 'WEFT_E_NOT_FOUND', `no route ${req.method ?? ''} ${path}`);
}

/**
 * `GET /v1/migration` (admin token): the migration status of every service known by a
 * Service resource, a registration or its callers; `?namespace=NS` only that namespace's;
 * `?service=NAME[&namespace=NS]` one service (namespace default `default`; 404 if unknown).
 */
async function migrationRoute(deps: ApiDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  requireAdmin(deps, req);
  if (req.method !== 'GET') throw new ApiError(405, 'WEFT_E_METHOD', `${req.method ?? ''} is not allowed on /v1/migration (GET)`);
  const query = new URL(req.url ?? '/', 'https://x').searchParams;
  const service = query.get('service');
  const namespace = query.get('namespace') ?? (service !== null ? 'default' : null);
  for (const problem of [service === null ? null : nameProblem('"service"', service), namespace === null ? null : nameProblem('"namespace"', namespace)]) {
    if (problem !== null) throw new ApiError(400, 'WEFT_E_BAD_REQUEST', problem);
  }
  const all = await serviceModes(deps.store, deps.catalog, deps.migration.tracked());
  const chosen = all.filter((s) => (namespace === null || s.namespace === namespace) && (service === null || s.service === service));
  if (service !== null && chosen.length === 0) {
    const known = all.filter((s) => s.namespace === namespace).map((s) => s.service);
    throw new ApiError(
      404,
      'WEFT_E_NOT_FOUND',
      `no service ${service} in namespace ${namespace ?? 'default'}: it has no Service resource and no registered instance (${known.length > 0 ? `known there: ${known.join(', ')}` : 'that namespace has no service'})`,
    );
  }
  const status = deps.migration.status(chosen);
  if (deps.replica.status().store !== 'postgres') {
    send(res, 200, status);
    return;
  }
  // With replicas each one counts only the reports of the sidecars that follow it: it
  // cannot tell that no plaintext caller is left, so it never says "ready".
  send(res, 200, {
    ...status,
    scope: 'replica',
    services: status.services.map((v) =>
      v.mode === 'strict' || !v.ready ? v : { ...v, ready: false, verdict: `${v.verdict} on this replica (${deps.replica.status().replica}); other replicas' sidecars are not counted` },
    ),
  });
}

function notReady(deps: ApiDeps): ApiError {
  return new ApiError(503, 'WEFT_E_NOT_READY', `this server replica (${deps.replica.status().replica}) cannot reach its store; use another replica`, { 'retry-after': '1' });
}

/** Compare-and-set from the request's conditional headers. */
function expectedRevision(req: IncomingMessage): { expectedRevision?: number } {
  if (req.headers['if-none-match'] === '*') return { expectedRevision: 0 };
  const match = req.headers['if-match'];
  if (match === undefined) return {};
  const n = Number(String(match).replace(/"/g, ''));
  if (!Number.isInteger(n) || n < 1) throw new ApiError(400, 'WEFT_E_BAD_REQUEST', 'If-Match must be the revision the resource is expected to have');
  return { expectedRevision: n };
}

function invalid(problems: ConfigProblem[]): ApiError {
  const e = new ConfigError(problems);
  return new ApiError(400, e.code, e.message, {}, problems);
}

/**
 * The service calling with its certificate: verified against the bundle, a weft service
 * ID, in this server's trust domain (a CA without a name constraint could vouch for others).
 */
export function callerService(deps: ApiDeps, req: IncomingMessage): { spiffeId: string; namespace: string; service: string } {
  const socket = req.socket as TLSSocket;
  const spiffeId = socket.authorized ? peerSpiffeId(socket) : null;
  if (spiffeId === null) throw new ApiError(401, 'WEFT_E_UNAUTHENTICATED', 'this call needs the client certificate this CA issued to the sidecar');
  let parsed;
  try {
    parsed = parseServiceSpiffeId(spiffeId);
  } catch {
    throw new ApiError(403, 'WEFT_E_FORBIDDEN', `${spiffeId} is not a weft service identity`);
  }
  if (parsed.trustDomain !== deps.trustDomain) throw new ApiError(403, 'WEFT_E_FORBIDDEN', `${spiffeId} is not in this mesh's trust domain (${deps.trustDomain})`);
  return { spiffeId, namespace: parsed.namespace, service: parsed.service };
}

function sendLeaf(deps: ApiDeps, res: ServerResponse, leaf: IssuedLeaf): void {
  send(res, 200, { spiffeId: leaf.spiffeId, certificate: leaf.certPem, bundle: deps.bundlePem(), notAfter: leaf.notAfter.toISOString() });
}

/** Throws a 401 unless the request carries the admin token. */
export function requireAdmin(deps: ApiDeps, req: IncomingMessage): void {
  const header = req.headers.authorization ?? '';
  const token = header.startsWith('Bearer ') ? header.slice(7) : '';
  const actual = createHash('sha256').update(token).digest();
  if (token === '' || !timingSafeEqual(actual, deps.adminTokenSha256)) {
    throw new ApiError(401, 'WEFT_E_UNAUTHENTICATED', 'this call needs the admin token (Authorization: Bearer …; `weft server` wrote it to DATA/admin-token)');
  }
}

/** The request body as a JSON object (at most `maxBytes`: 413 beyond; 400 when not a JSON object). */
export async function jsonBody(req: IncomingMessage, maxBytes = MAX_BODY): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) throw new ApiError(413, 'WEFT_E_TOO_LARGE', `request body larger than ${maxBytes} bytes`);
    chunks.push(chunk as Buffer);
  }
  let value: unknown;
  try {
    value = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new ApiError(400, 'WEFT_E_BAD_REQUEST', 'the request body is not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ApiError(400, 'WEFT_E_BAD_REQUEST', 'the request body must be a JSON object');
  return value as Record<string, unknown>;
}

function stringField(body: Record<string, unknown>, name: string): string {
  const v = body[name];
  if (typeof v !== 'string' || v === '') throw new ApiError(400, 'WEFT_E_BAD_REQUEST', `"${name}" is required (a string)`);
  return v;
}

function optionalString(body: Record<string, unknown>, name: string): string | undefined {
  const v = body[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new ApiError(400, 'WEFT_E_BAD_REQUEST', `"${name}" must be a string`);
  return v;
}

/** Answers with `body` as JSON (destroys the response when headers went already). */
export function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(`${JSON.stringify(body)}\n`);
}
