import type { Snapshot } from '../../control/snapshot.js';
import type { Logger } from '../../obs/log.js';
import { Backoff, sleep } from './backoff.js';
import { refusalMessage, type ServerClient } from './server-client.js';

/** The server's long poll waits 30 s; the client allows a little more. */
const POLL_TIMEOUT_MS = 40_000;

/**
 * Follows this sidecar's snapshot: a long poll (`GET /v1/snapshot`, If-None-Match: the
 * hash being served) that answers when the server's view of this sidecar changes. Each
 * new snapshot goes to `apply`; errors (server down, refusals) are retried with backoff
 * and jitter while the current snapshot keeps serving.
 */
export class SnapshotFollower {
  readonly #client: ServerClient;
  readonly #log: Logger;
  readonly #apply: (snapshot: Snapshot) => Promise<void>;
  readonly #abort = new AbortController();
  /** At most 10 s between attempts: a returning server is followed again quickly; jitter spreads the fleet. */
  readonly #backoff = new Backoff({ baseMs: 250, maxMs: 10_000 });
  #hash: string;
  #connected = false;
  /** The hash of a snapshot `apply` refused (not fetched again until the server moves on). */
  #rejected: string | null = null;
  #lastContact: Date | null = null;
  #loop: Promise<void> = Promise.resolve();

  constructor(options: { client: ServerClient; log: Logger; current: Snapshot; apply: (snapshot: Snapshot) => Promise<void> }) {
    this.#client = options.client;
    this.#log = options.log;
    this.#apply = options.apply;
    this.#hash = options.current.hash;
  }

  start(): void {
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#loop;
  }

  /** Whether the last poll reached the server, and when it last did. */
  status(): { connected: boolean; server: string; lastContact: string | null; snapshot: string } {
    return { connected: this.#connected, server: this.#client.url, lastContact: this.#lastContact?.toISOString() ?? null, snapshot: this.#hash };
  }

  async #run(): Promise<void> {
    while (!this.#abort.signal.aborted) {
      try {
        // Until the server has answered once (at start, after losing it) the request does
        // not wait: the sidecar learns at once that it is connected and what it missed.
        // A snapshot this sidecar rejected is not asked for again until the server has another.
        const known = this.#rejected ?? this.#hash;
        const headers: Record<string, string> = this.#connected ? { 'if-none-match': `"${known}"` } : {};
        const answer = await this.#client.call('GET', '/v1/snapshot', { headers, timeoutMs: POLL_TIMEOUT_MS, signal: this.#abort.signal });
        if (this.#abort.signal.aborted) return;
        if (answer.status === 304) {
          this.#contact();
          continue;
        }
        if (answer.status !== 200 || answer.json === null) throw new Error(`snapshot refused: ${refusalMessage(answer)}`);
        this.#contact();
        const snapshot = answer.json as unknown as Snapshot;
        if (snapshot.hash === this.#hash || snapshot.hash === this.#rejected) continue;
        try {
          await this.#apply(snapshot);
        } catch (err) {
          this.#rejected = snapshot.hash;
          this.#log.error({ error: (err as Error).message, snapshot: snapshot.hash, serving: this.#hash }, "the server's snapshot was rejected; the current one keeps serving");
          continue;
        }
        this.#hash = snapshot.hash;
        this.#rejected = null;
      } catch (err) {
        if (this.#abort.signal.aborted) return; // stop() ended the long poll
        const was = this.#connected;
        this.#connected = false;
        const delay = this.#backoff.next();
        if (was || this.#backoff.failures === 1 || this.#backoff.failures % 10 === 0) {
          this.#log.warn({ error: (err as Error).message, retryInMs: delay, snapshot: this.#hash }, 'lost the server; serving the last-known-good configuration');
        }
        await sleep(delay, this.#abort.signal);
      }
    }
  }

  #contact(): void {
    if (!this.#connected) this.#log.info({ server: this.#client.url, snapshot: this.#hash }, 'following the server');
    this.#connected = true;
    this.#lastContact = new Date();
    this.#backoff.reset();
  }
}
