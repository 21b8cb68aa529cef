import type { Logger } from '../../obs/log.js';
import type { HopLabels, SidecarMetrics } from '../../obs/metrics.js';
import type { RequestSeries } from '../../obs/request-metrics.js';
import type { CertificateBundle } from '../../pki/certificate-bundle.js';
import type { ConnectionStats, HopKey, RequestStats, TelemetryReport } from '../../control/telemetry-wire.js';
import { Backoff, sleep } from './backoff.js';
import { refusalMessage, type ServerClient } from './server-client.js';

const DEFAULT_INTERVAL_MS = 2_000;
/** Rows per report (the server's limit); the rest go in the next report. */
const MAX_ROWS = 2_000;
/** The server may ask for another interval within these bounds. */
const MIN_INTERVAL_MS = 500;
const MAX_INTERVAL_MS = 60_000;

/** What was last acknowledged of one request series. */
interface RequestBaseline {
  readonly codes: Map<number, number>;
  readonly buckets: Float64Array;
  sum: number;
  count: number;
}

/** What was last acknowledged of one TCP series. */
interface TcpBaseline {
  opened: number;
  closed: number;
  sent: number;
  received: number;
}

function hopKey(l: HopLabels): HopKey {
  return { direction: l.direction, source: l.source_service, destination: l.service, tls: l.tls === 'true' };
}

/**
 * Sends the sidecar's traffic figures to the control plane (`POST /v1/telemetry`) every
 * interval: per hop and route, the requests by status code and the duration histogram;
 * per hop, TCP connections and bytes; and the certificate in use. Each report holds the
 * differences since the last report the server acknowledged, so a report the server did
 * not get is folded into the next one and nothing is counted twice. Reads the metrics'
 * own series: nothing is added to the request path.
 */
export class TelemetryReporter {
  readonly #client: ServerClient;
  readonly #metrics: SidecarMetrics;
  readonly #log: Logger;
  readonly #instance: () => string | null;
  readonly #certificate: () => CertificateBundle;
  readonly #abort = new AbortController();
  readonly #backoff = new Backoff({ baseMs: 1_000, maxMs: 30_000 });
  readonly #requests = new WeakMap<RequestSeries<HopLabels>, RequestBaseline>();
  readonly #tcp = new WeakMap<object, TcpBaseline>();
  #intervalMs = DEFAULT_INTERVAL_MS;
  #loop: Promise<void> = Promise.resolve();

  constructor(options: { client: ServerClient; metrics: SidecarMetrics; log: Logger; instance: () => string | null; certificate: () => CertificateBundle }) {
    this.#client = options.client;
    this.#metrics = options.metrics;
    this.#log = options.log;
    this.#instance = options.instance;
    this.#certificate = options.certificate;
  }

  start(): void {
    this.#loop = this.#run();
  }

  /** Stops after sending what is left (bounded by `timeoutMs`). */
  async stop(timeoutMs = 1_000): Promise<void> {
    this.#abort.abort();
    await this.#loop;
    await this.#send(timeoutMs).catch(() => undefined);
  }

  async #run(): Promise<void> {
    while (!this.#abort.signal.aborted) {
      await sleep(this.#intervalMs, this.#abort.signal);
      if (this.#abort.signal.aborted) return;
      try {
        await this.#send(Math.min(5_000, this.#intervalMs * 2));
        this.#backoff.reset();
      } catch (err) {
        const delay = this.#backoff.next();
        if (this.#backoff.failures === 1 || this.#backoff.failures % 10 === 0) {
          this.#log.warn({ error: (err as Error).message, retryInMs: delay }, 'cannot send telemetry to the server; the figures are kept for the next report');
        }
        await sleep(delay, this.#abort.signal);
      }
    }
  }

  /** Builds one report, sends it, and on success moves the baselines to what it held. */
  async #send(timeoutMs: number): Promise<void> {
    const commits: (() => void)[] = [];
    const requests = this.#requestRows(commits, MAX_ROWS);
    const connections = this.#tcpRows(commits, MAX_ROWS - requests.length);
    const cert = this.#certificate();
    const report: TelemetryReport = {
      instance: this.#instance(),
      certificate: { spiffeId: cert.spiffeId, notAfter: cert.notAfter.toISOString() },
      requests,
      connections,
    };
    const answer = await this.#client.call('POST', '/v1/telemetry', { body: report, timeoutMs });
    if (answer.status >= 400 && answer.status < 500) {
      // Refused as it is: sending it again would be refused again. Drop it and go on.
      for (const commit of commits) commit();
      this.#log.warn({ error: refusalMessage(answer) }, 'the server refused a telemetry report; its figures are dropped');
      return;
    }
    if (answer.status !== 200) throw new Error(`telemetry refused: ${refusalMessage(answer)}`);
    for (const commit of commits) commit();
    const interval = Number(answer.json?.['intervalMs']);
    if (Number.isFinite(interval)) this.#intervalMs = Math.min(MAX_INTERVAL_MS, Math.max(MIN_INTERVAL_MS, interval));
  }

  #requestRows(commits: (() => void)[], max: number): RequestStats[] {
    const rows: RequestStats[] = [];
    for (const s of this.#metrics.requestSeries()) {
      if (rows.length >= max) break;
      const base = this.#requests.get(s);
      if (base !== undefined && base.count === s.count) continue;
      const codes: Record<string, number> = {};
      for (const [code, n] of s.codes) {
        const d = n - (base?.codes.get(code) ?? 0);
        // Statuses outside 100–599 (an app may send 999) stay in /metrics only.
        if (d > 0 && code >= 100 && code <= 599) codes[String(code)] = d;
      }
      const buckets = Array.from(s.buckets, (n, i) => n - (base?.buckets[i] ?? 0));
      rows.push({ ...hopKey(s.labels), route: s.route, codes, buckets, sum: s.sum - (base?.sum ?? 0) });
      const now: RequestBaseline = { codes: new Map(s.codes), buckets: Float64Array.from(s.buckets), sum: s.sum, count: s.count };
      commits.push(() => this.#requests.set(s, now));
    }
    return rows;
  }

  #tcpRows(commits: (() => void)[], max: number): ConnectionStats[] {
    const rows: ConnectionStats[] = [];
    for (const t of this.#metrics.tcpSeries()) {
      if (rows.length >= max) break;
      const base = this.#tcp.get(t) ?? { opened: 0, closed: 0, sent: 0, received: 0 };
      if (base.opened === t.opened && base.closed === t.closed) continue;
      rows.push({ ...hopKey(t.labels), opened: t.opened - base.opened, closed: t.closed - base.closed, bytesSent: t.sent - base.sent, bytesReceived: t.received - base.received });
      const now = { opened: t.opened, closed: t.closed, sent: t.sent, received: t.received };
      commits.push(() => this.#tcp.set(t, now));
    }
    return rows;
  }
}
