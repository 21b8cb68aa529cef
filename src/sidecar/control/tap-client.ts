import type { Logger } from '../../obs/log.js';
import type { HopLabels } from '../../obs/metrics.js';
import type { RequestRecord, TapSink } from '../../obs/request-record.js';
import type { TapEvent, TapSession } from '../../control/telemetry-wire.js';
import { Backoff, sleep } from './backoff.js';
import { refusalMessage, type ServerClient } from './server-client.js';

/** Tap events go out in batches at this pace while a session is active. */
const FLUSH_MS = 100;
/** Events waiting to be sent beyond this are dropped (and counted in the log). */
const MAX_QUEUED = 2_000;
/** Events per post (the server's limit). */
const MAX_PER_POST = 1_000;
/** Methods the server accepts in an event (a request head that failed to parse has `-`). */
const METHOD = /^[A-Z]{1,20}$/;
const POLL_TIMEOUT_MS = 40_000;

/**
 * Feeds live taps (`weft tap`): follows this service's tap sessions on the control plane
 * (`GET /v1/tap/sessions`, a long poll), and while any is active, turns each finished
 * request that matches a session's method and path prefix into a TapEvent, sent in batches
 * every 100 ms (`POST /v1/tap/events`). With no session, `active` is false and the request
 * path does nothing for taps.
 */
export class TapClient implements TapSink {
  readonly #client: ServerClient;
  readonly #log: Logger;
  readonly #abort = new AbortController();
  readonly #backoff = new Backoff({ baseMs: 1_000, maxMs: 15_000 });
  #sessions: readonly TapSession[] = [];
  #version = '';
  #queue: TapEvent[] = [];
  #dropped = 0;
  #timer: NodeJS.Timeout | null = null;
  /** A post is in flight: the next batch waits for it. */
  #posting = false;
  #loop: Promise<void> = Promise.resolve();
  active = false;

  constructor(options: { client: ServerClient; log: Logger }) {
    this.#client = options.client;
    this.#log = options.log;
  }

  start(): void {
    this.#loop = this.#follow();
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    this.active = false;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#loop;
  }

  offer(hop: HopLabels, r: RequestRecord): void {
    let ids: string[] | null = null;
    const path = r.path;
    for (const s of this.#sessions) {
      if (s.method !== null && s.method !== r.method) continue;
      if (s.path !== null && !path.startsWith(s.path)) continue;
      (ids ??= []).push(s.id);
    }
    // Only requests the server can show: a method, a real status (an app may send 999).
    if (ids === null || !METHOD.test(r.method) || r.status < 100 || r.status > 599) return;
    if (this.#queue.length >= MAX_QUEUED) {
      this.#dropped++;
      return;
    }
    this.#queue.push({
      sessions: ids,
      time: new Date(performance.timeOrigin + r.start).toISOString(),
      direction: hop.direction,
      source: hop.source_service,
      sourceIdentity: hop.source_identity,
      destination: hop.service,
      tls: hop.tls === 'true',
      protocol: r.protocol,
      method: r.method,
      path: path === '' ? '/' : path.slice(0, 8192),
      authority: r.authority === null || r.authority === '' ? null : r.authority.slice(0, 1024),
      route: r.route,
      status: r.status,
      error: r.error,
      latencyMs: Math.round((r.end - r.start) * 1000) / 1000,
      upstream: r.upstream,
      attempts: r.attempts,
      traceId: r.trace?.traceId ?? null,
    });
    if (!this.#posting) this.#timer ??= setTimeout(this.#flush, FLUSH_MS);
  }

  readonly #flush = (): void => {
    this.#timer = null;
    if (this.#dropped > 0) {
      this.#log.warn({ dropped: this.#dropped }, 'tap events dropped: the server does not keep up');
      this.#dropped = 0;
    }
    if (this.#queue.length === 0 || this.#abort.signal.aborted) return;
    const events = this.#queue.splice(0, MAX_PER_POST);
    this.#posting = true;
    this.#client
      .call('POST', '/v1/tap/events', { body: { events }, timeoutMs: 5_000 })
      .then((answer) => {
        if (answer.status !== 200) this.#log.warn({ error: refusalMessage(answer) }, 'tap events refused by the server');
      })
      .catch((err: unknown) => this.#log.warn({ error: (err as Error).message }, 'cannot send tap events to the server'))
      .finally(() => {
        this.#posting = false;
        // What came in meanwhile goes next (at the usual pace).
        if (this.#queue.length > 0) this.#timer ??= setTimeout(this.#flush, FLUSH_MS);
      });
  };

  async #follow(): Promise<void> {
    while (!this.#abort.signal.aborted) {
      try {
        const headers: Record<string, string> = this.#version === '' ? {} : { 'if-none-match': `"${this.#version}"` };
        const answer = await this.#client.call('GET', '/v1/tap/sessions', { headers, timeoutMs: POLL_TIMEOUT_MS, signal: this.#abort.signal });
        if (answer.status === 304) continue;
        if (answer.status !== 200 || answer.json === null) throw new Error(`tap sessions refused: ${refusalMessage(answer)}`);
        this.#version = String(answer.json['version'] ?? '');
        this.#sessions = (answer.json['sessions'] as TapSession[] | undefined) ?? [];
        this.active = this.#sessions.length > 0;
        this.#backoff.reset();
      } catch (err) {
        if (this.#abort.signal.aborted) return;
        // Without the server, no tap can be listening: stop collecting.
        this.#sessions = [];
        this.active = false;
        const delay = this.#backoff.next();
        if (this.#backoff.failures === 1 || this.#backoff.failures % 10 === 0) this.#log.debug({ error: (err as Error).message, retryInMs: delay }, 'cannot follow tap sessions');
        await sleep(delay, this.#abort.signal);
      }
    }
  }
}
