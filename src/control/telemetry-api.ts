import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { nameProblem } from '../config/names.js';
import { parseDuration } from '../duration.js';
import { isWeftError } from '../errors.js';
import { ApiError, callerService, jsonBody, requireAdmin, send, type ApiDeps } from './api.js';
import { serviceModes } from './migration.js';
import { MAX_WINDOW_MS } from './telemetry.js';
import {
  DURATION_BUCKETS,
  UNKNOWN,
  type CertificatesAnswer,
  type ConnectionStats,
  type RequestStats,
  type TapEvent,
  type TapLine,
  type TelemetryReport,
  type TopologyAnswer,
  type TopologyService,
} from './telemetry-wire.js';

/** How often sidecars should report (the answer to every report). */
export const TELEMETRY_INTERVAL_MS = 2000;
/** Largest report body. */
export const MAX_TELEMETRY_BODY = 1024 * 1024;
/** Most rows (requests + connections) in one report. */
export const MAX_TELEMETRY_ROWS = 2000;
/** Most events in one `POST /v1/tap/events`. */
export const MAX_TAP_EVENTS = 1000;
/** How long a tap sessions long poll waits for a change before answering 304. */
export const TAP_POLL_MS = 30_000;
const DEFAULT_WINDOW_MS = 10_000;

/**
 * Telemetry, tap and top routes (src/control/telemetry-wire.ts is the contract). Returns
 * false when `path` is none of them.
 *
 * | route | who | what |
 * |---|---|---|
 * | `POST /v1/telemetry` | a client certificate | a TelemetryReport of the caller's service → `{intervalMs}` |
 * | `GET /v1/tap/sessions` (`If-None-Match`) | a client certificate | the tap sessions of the caller's service; long poll (304 after 30 s) |
 * | `POST /v1/tap/events` `{events}` | a client certificate | requests seen by a tapped sidecar of the caller's service |
 * | `GET /v1/tap?service=S[&namespace=NS][&path=P][&method=M]` | the admin token | NDJSON: a `started` line, then one `request` line per event |
 * | `GET /v1/top[?window=10s][&namespace=NS]` | the admin token | TopAnswer |
 * | `GET /v1/topology[?window=10s][&namespace=NS]` | the admin token | TopologyAnswer |
 * | `GET /v1/certificates` | the admin token | CertificatesAnswer |
 */
export async function telemetryRoute(deps: ApiDeps, req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean> {
  const method = req.method ?? '';
  const only = (allowed: string) => {
    if (method !== allowed) throw new ApiError(405, 'WEFT_E_METHOD', `${method} is not allowed on ${path} (${allowed})`);
  };
  switch (path) {
    case '/v1/telemetry': {
      only('POST');
      const caller = callerService(deps, req);
      const report = parseReport(await jsonBody(req, MAX_TELEMETRY_BODY), caller);
      deps.telemetry.record(caller.namespace, caller.service, report, Date.now());
      deps.metrics.telemetryReports.inc();
      send(res, 200, { intervalMs: TELEMETRY_INTERVAL_MS });
      return true;
    }
    case '/v1/tap/sessions': {
      only('GET');
      const caller = callerService(deps, req);
      const known = /^"?([A-Za-z0-9_-]{1,64})"?$/.exec(req.headers['if-none-match'] ?? '')?.[1] ?? null;
      const gone = new AbortController();
      const onClose = () => gone.abort();
      req.socket.once('close', onClose);
      res.once('close', onClose);
      if (req.socket.destroyed) gone.abort();
      try {
        const answer = await deps.tap.wait(caller.namespace, caller.service, known, TAP_POLL_MS, sidecarKey(req, caller.spiffeId), gone.signal);
        if (req.socket.destroyed) return true;
        if (answer === null) {
          res.writeHead(304, { etag: `"${deps.tap.sessions(caller.namespace, caller.service).version}"` }).end();
        } else {
          send(res, 200, answer, { etag: `"${answer.version}"` });
        }
      } finally {
        req.socket.removeListener('close', onClose);
      }
      return true;
    }
    case '/v1/tap/events': {
      only('POST');
      const caller = callerService(deps, req);
      const body = await jsonBody(req, MAX_TELEMETRY_BODY);
      const events = parseTapEvents(body['events'], caller);
      send(res, 200, { delivered: deps.tap.deliver(caller.namespace, caller.service, events) });
      return true;
    }
    case '/v1/tap':
      only('GET');
      requireAdmin(deps, req);
      await tapStream(deps, req, res);
      return true;
    case '/v1/top': {
      only('GET');
      requireAdmin(deps, req);
      const q = queryOf(req);
      const now = Date.now();
      deps.telemetry.prune(now);
      send(res, 200, deps.telemetry.top(windowOf(q), now, namespaceOf(q)));
      return true;
    }
    case '/v1/topology': {
      only('GET');
      requireAdmin(deps, req);
      const q = queryOf(req);
      send(res, 200, await topology(deps, windowOf(q), namespaceOf(q)));
      return true;
    }
    case '/v1/certificates': {
      only('GET');
      requireAdmin(deps, req);
      const now = Date.now();
      deps.telemetry.prune(now);
      const answer: CertificatesAnswer = {
        ca: deps.caCertificates(),
        sidecars: deps.telemetry.certificates(now).map((c) => ({
          namespace: c.namespace,
          service: c.service,
          instance: c.instance,
          spiffeId: c.spiffeId,
          notAfter: c.notAfter,
          reportedAt: new Date(c.reportedAtMs).toISOString(),
        })),
      };
      send(res, 200, answer);
      return true;
    }
    default:
      return false;
  }
}

/** `GET /v1/tap`: a session on one service, streamed as NDJSON until the client goes. */
async function tapStream(deps: ApiDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const q = queryOf(req);
  const service = q.get('service');
  if (service === null) throw bad('"service" is required: GET /v1/tap?service=NAME[&namespace=NS][&path=/prefix][&method=GET]');
  const namespace = q.get('namespace') ?? 'default';
  for (const problem of [nameProblem('"service"', service), nameProblem('"namespace"', namespace)]) {
    if (problem !== null) throw bad(problem);
  }
  const path = q.get('path');
  if (path !== null && (!path.startsWith('/') || path.length > 2048 || /\s/.test(path) || path.includes('\0'))) throw bad(`"path" must be a path prefix starting with "/" (at most 2048 characters, no spaces), got "${path.slice(0, 100)}"`);
  const methodText = q.get('method');
  if (methodText !== null && !/^[A-Za-z]{1,20}$/.test(methodText)) throw bad(`"method" must be an HTTP method (letters only, such as GET), got "${methodText.slice(0, 40)}"`);
  const method = methodText === null ? null : methodText.toUpperCase();
  const sidecars = deps.tap.sidecars(namespace, service);
  const session = deps.tap.open(namespace, service, { path, method });
  const end = () => session.close();
  req.socket.once('close', end);
  res.once('close', end);
  try {
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
    res.flushHeaders();
    const started: TapLine = { type: 'started', service, namespace, sidecars };
    res.write(`${JSON.stringify(started)}\n`);
    for (;;) {
      const event = await session.next();
      if (event === null || res.destroyed) return;
      const { sessions: _sessions, ...rest } = event;
      const line: TapLine = { type: 'request', ...rest };
      if (!res.write(`${JSON.stringify(line)}\n`)) {
        // A slow client: wait for it to drain while the session's queue bounds what waits.
        await new Promise<void>((resolve) => {
          const done = () => {
            res.removeListener('drain', done);
            res.removeListener('close', done);
            resolve();
          };
          res.once('drain', done);
          res.once('close', done);
        });
      }
    }
  } finally {
    req.socket.removeListener('close', end);
    session.close();
    if (!res.writableEnded && !res.destroyed) res.end();
  }
}

async function topology(deps: ApiDeps, windowMs: number, options: { namespace?: string }): Promise<TopologyAnswer> {
  const now = Date.now();
  deps.telemetry.prune(now);
  const seen = deps.telemetry.services(now);
  const [catalog, modes] = await Promise.all([deps.catalog.services(), serviceModes(deps.store, deps.catalog, seen)]);
  const counts = new Map(catalog.map((s) => [`${s.namespace}/${s.service}`, { instances: s.instances.length, passing: s.passing }]));
  const services: TopologyService[] = modes
    .filter((m) => options.namespace === undefined || m.namespace === options.namespace)
    .map((m) => {
      const c = counts.get(`${m.namespace}/${m.service}`);
      return { namespace: m.namespace, service: m.service, instances: c?.instances ?? 0, passing: c?.passing ?? 0, mtls: m.mtls.mode };
    });
  const edges = deps.telemetry.edges(windowMs, now, options);
  return { windowSeconds: Math.max(1, Math.ceil(windowMs / 1000)), generatedAt: new Date(now).toISOString(), services, edges };
}

/** A stable key for the sidecar polling: its certificate (each sidecar has its own key pair). */
function sidecarKey(req: IncomingMessage, spiffeId: string): string {
  const cert = (req.socket as TLSSocket).getPeerCertificate?.();
  return cert?.fingerprint256 ?? `${spiffeId} ${req.socket.remoteAddress ?? ''}`;
}

function queryOf(req: IncomingMessage): URLSearchParams {
  return new URL(req.url ?? '/', 'https://x').searchParams;
}

function windowOf(q: URLSearchParams): number {
  const text = q.get('window');
  if (text === null) return DEFAULT_WINDOW_MS;
  let ms: number;
  try {
    ms = parseDuration(text);
  } catch (err) {
    if (isWeftError(err)) throw bad(`"window" must be a duration between 1s and 60s (such as 10s), got "${text.slice(0, 40)}"`);
    throw err;
  }
  if (ms < 1000 || ms > MAX_WINDOW_MS) throw bad(`"window" must be between 1s and 60s (the server keeps 60 s of telemetry), got "${text}"`);
  return ms;
}

function namespaceOf(q: URLSearchParams): { namespace?: string } {
  const ns = q.get('namespace');
  if (ns === null) return {};
  const problem = nameProblem('"namespace"', ns);
  if (problem !== null) throw bad(problem);
  return { namespace: ns };
}

function bad(message: string): ApiError {
  return new ApiError(400, 'WEFT_E_BAD_REQUEST', message);
}

type Caller = { spiffeId: string; namespace: string; service: string };
type Obj = Record<string, unknown>;

function object(v: unknown, at: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(`${at} must be an object`);
  return v as Obj;
}

function count(o: Obj, field: string, at: string): number {
  const v = o[field];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw bad(`${at}.${field} must be a non-negative integer (a count since the previous report), got ${JSON.stringify(v) ?? 'nothing'}`);
  return v;
}

function boolean(o: Obj, field: string, at: string): boolean {
  const v = o[field];
  if (typeof v !== 'boolean') throw bad(`${at}.${field} must be true or false`);
  return v;
}

function text(o: Obj, field: string, at: string, max: number): string {
  const v = o[field];
  if (typeof v !== 'string' || v === '' || v.length > max) throw bad(`${at}.${field} must be a non-empty string of at most ${max} characters`);
  return v;
}

function nullableText(o: Obj, field: string, at: string, max: number): string | null {
  return o[field] === null ? null : text(o, field, at, max);
}

/**
 * The hop fields of a row or event: direction, source, destination (service names, or
 * `unknown` for a source), tls; the caller's service must be the hop's own side (inbound:
 * the destination; outbound: the source).
 */
function hop(o: Obj, at: string, caller: Caller): { direction: 'inbound' | 'outbound'; source: string; destination: string; tls: boolean } {
  const direction = o['direction'];
  if (direction !== 'inbound' && direction !== 'outbound') throw bad(`${at}.direction must be "inbound" or "outbound"`);
  const source = text(o, 'source', at, 63);
  const destination = text(o, 'destination', at, 63);
  for (const [field, value] of [
    ['source', source],
    ['destination', destination],
  ] as const) {
    const problem = nameProblem(`${at}.${field}`, value);
    if (problem !== null) throw bad(`${problem} (a service name, or "${UNKNOWN}")`);
  }
  const own = direction === 'inbound' ? destination : source;
  if (own !== caller.service) {
    throw bad(`${at}: an ${direction} row's ${direction === 'inbound' ? 'destination' : 'source'} must be the reporting service "${caller.service}" (from its certificate), got "${own}"`);
  }
  return { direction, source, destination, tls: boolean(o, 'tls', at) };
}

/** Validates a TelemetryReport from untrusted JSON; throws a 400 naming the field at fault. */
export function parseReport(body: Obj, caller: Caller): TelemetryReport {
  const instance = body['instance'];
  if (instance !== null && (typeof instance !== 'string' || !/^[a-z0-9-]{1,128}$/.test(instance))) throw bad('"instance" must be the catalog instance id (lowercase letters, digits, "-") or null');
  let certificate: TelemetryReport['certificate'] = null;
  if (body['certificate'] !== null) {
    const c = object(body['certificate'], '"certificate"');
    const spiffeId = text(c, 'spiffeId', '"certificate"', 2048);
    if (spiffeId !== caller.spiffeId) throw bad(`"certificate".spiffeId must be the caller's own SPIFFE ID ${caller.spiffeId}, got ${spiffeId.slice(0, 200)}`);
    const notAfter = text(c, 'notAfter', '"certificate"', 40);
    if (Number.isNaN(Date.parse(notAfter))) throw bad(`"certificate".notAfter must be an ISO 8601 time, got "${notAfter}"`);
    certificate = { spiffeId, notAfter: new Date(notAfter).toISOString() };
  }
  const requestsRaw = body['requests'];
  const connectionsRaw = body['connections'];
  if (!Array.isArray(requestsRaw)) throw bad('"requests" must be an array (empty when there were none)');
  if (!Array.isArray(connectionsRaw)) throw bad('"connections" must be an array (empty when there were none)');
  const rows = requestsRaw.length + connectionsRaw.length;
  if (rows > MAX_TELEMETRY_ROWS) throw bad(`a report may hold at most ${MAX_TELEMETRY_ROWS} rows (requests + connections), got ${rows}: report more often or fold rare routes into "-"`);
  const requests = requestsRaw.map((raw: unknown, i): RequestStats => {
    const at = `"requests[${i}]"`;
    const o = object(raw, at);
    const h = hop(o, at, caller);
    const route = text(o, 'route', at, 256);
    if ([...route].some((ch) => ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f)) throw bad(`${at}.route must not contain control characters`);
    const codesRaw = object(o['codes'], `${at}.codes`);
    const entries = Object.entries(codesRaw);
    if (entries.length > 100) throw bad(`${at}.codes has ${entries.length} status codes, at most 100`);
    const codes: Record<string, number> = {};
    for (const [code] of entries) {
      if (!/^[1-5][0-9][0-9]$/.test(code)) throw bad(`${at}.codes: "${code.slice(0, 20)}" is not an HTTP status code (100–599)`);
      codes[code] = count(codesRaw, code, `${at}.codes`);
    }
    const bucketsRaw = o['buckets'];
    if (!Array.isArray(bucketsRaw) || bucketsRaw.length !== DURATION_BUCKETS.length + 1) {
      throw bad(`${at}.buckets must be an array of ${DURATION_BUCKETS.length + 1} counts (one per DURATION_BUCKETS bound, then +Inf)`);
    }
    const buckets = bucketsRaw.map((_: unknown, b) => count(bucketsRaw as unknown as Obj, String(b), `${at}.buckets`));
    const sum = o['sum'];
    if (typeof sum !== 'number' || !Number.isFinite(sum) || sum < 0) throw bad(`${at}.sum must be a non-negative number of seconds`);
    return { ...h, route, codes, buckets, sum };
  });
  const connections = connectionsRaw.map((raw: unknown, i): ConnectionStats => {
    const at = `"connections[${i}]"`;
    const o = object(raw, at);
    return { ...hop(o, at, caller), opened: count(o, 'opened', at), closed: count(o, 'closed', at), bytesSent: count(o, 'bytesSent', at), bytesReceived: count(o, 'bytesReceived', at) };
  });
  return { instance: instance as string | null, certificate, requests, connections };
}

/** Validates the events of `POST /v1/tap/events`; throws a 400 naming the field at fault. */
export function parseTapEvents(raw: unknown, caller: Caller): TapEvent[] {
  if (!Array.isArray(raw)) throw bad('"events" must be an array of tap events');
  if (raw.length > MAX_TAP_EVENTS) throw bad(`at most ${MAX_TAP_EVENTS} events per post, got ${raw.length}: post more often`);
  return raw.map((r: unknown, i): TapEvent => {
    const at = `"events[${i}]"`;
    const o = object(r, at);
    const h = hop(o, at, caller);
    const sessions = o['sessions'];
    if (!Array.isArray(sessions) || sessions.length === 0 || sessions.length > 100 || sessions.some((s) => typeof s !== 'string' || !/^[0-9a-f]{1,64}$/.test(s))) {
      throw bad(`${at}.sessions must list the ids of the sessions the event matched (1 to 100)`);
    }
    const time = text(o, 'time', at, 40);
    if (Number.isNaN(Date.parse(time))) throw bad(`${at}.time must be an ISO 8601 time`);
    const protocol = o['protocol'];
    if (protocol !== 'http/1.1' && protocol !== 'http/1.0' && protocol !== 'h2') throw bad(`${at}.protocol must be "http/1.1", "http/1.0" or "h2"`);
    const method = text(o, 'method', at, 20);
    if (!/^[A-Z]+$/.test(method)) throw bad(`${at}.method must be an upper-case HTTP method`);
    const path = text(o, 'path', at, 8192);
    const status = o['status'];
    if (typeof status !== 'number' || !Number.isInteger(status) || status < 100 || status > 599) throw bad(`${at}.status must be an HTTP status code (100–599)`);
    const latencyMs = o['latencyMs'];
    if (typeof latencyMs !== 'number' || !Number.isFinite(latencyMs) || latencyMs < 0) throw bad(`${at}.latencyMs must be a non-negative number`);
    const attempts = count(o, 'attempts', at);
    return {
      ...h,
      sessions: sessions as string[],
      time,
      sourceIdentity: text(o, 'sourceIdentity', at, 2048),
      protocol,
      method,
      path,
      authority: nullableText(o, 'authority', at, 1024),
      route: text(o, 'route', at, 256),
      status,
      error: nullableText(o, 'error', at, 100),
      latencyMs,
      upstream: nullableText(o, 'upstream', at, 300),
      attempts,
      traceId: nullableText(o, 'traceId', at, 64),
    };
  });
}
