import { isIP } from 'node:net';
import type { HostPort } from '../../config/address.js';
import type { HealthCheckSpec } from '../../control/resources.js';
import type { Logger } from '../../obs/log.js';
import type { CallerTally } from '../../proxy/caller-tally.js';
import { Backoff, sleep } from './backoff.js';
import { checkApp, type AppHealth } from './health-check.js';
import { refusalMessage, type ServerClient } from './server-client.js';


const DEFAULT_INTERVAL_MS = 10_000;
const DEFAULT_TIMEOUT_MS = 2_000;

/**
 * Keeps this instance in the catalog: registers it (address, mTLS port, metadata), checks
 * the app on the service's health check interval, and reports the result (with the caller
 * counts) every report interval the server asked for, and at once when the app's health
 * changes. A 404 on a report (the server forgot the instance) registers again. `stop`
 * deregisters, so callers stop sending before the sidecar drains.
 */
export class InstanceReporter {
  readonly #client: ServerClient;
  readonly #log: Logger;
  readonly #app: HostPort;
  readonly #port: () => number;
  readonly #advertise: string | undefined;
  readonly #metadata: Readonly<Record<string, string>>;
  readonly #healthCheck: () => HealthCheckSpec | null;
  readonly #callers: CallerTally | null;
  readonly #abort = new AbortController();
  #backoff = new Backoff({ baseMs: 250, maxMs: 5_000 });
  #id: string | null = null;
  #reportIntervalMs = 5_000;
  #health: AppHealth = { healthy: false, reason: 'not checked yet' };
  #wake: (() => void) | null = null;
  #checked: () => void = () => {};
  readonly #firstCheck = new Promise<void>((resolve) => (this.#checked = resolve));
  #loops: Promise<unknown> = Promise.resolve();

  constructor(options: {
    client: ServerClient;
    log: Logger;
    app: HostPort;
    port: () => number;
    advertise?: string;
    metadata: Readonly<Record<string, string>>;
    healthCheck: () => HealthCheckSpec | null;
    callers: CallerTally | null;
  }) {
    this.#client = options.client;
    this.#log = options.log;
    this.#app = options.app;
    this.#port = options.port;
    this.#advertise = options.advertise;
    this.#metadata = options.metadata;
    this.#healthCheck = options.healthCheck;
    this.#callers = options.callers;
  }

  /** The catalog's id of this instance, or null before it registered. */
  get id(): string | null {
    return this.#id;
  }

  /** Starts checking and reporting in the background. */
  start(): void {
    this.#loops = Promise.all([this.#checkLoop(), this.#reportLoop()]);
  }

  /** Stops, and deregisters the instance (best effort, within `timeoutMs`). */
  async stop(timeoutMs = 2000): Promise<void> {
    this.#abort.abort();
    this.#wake?.();
    await this.#loops;
    if (this.#id === null) return;
    try {
      const answer = await this.#client.call('DELETE', `/v1/catalog/instances/${this.#id}`, { timeoutMs });
      if (answer.status === 200) this.#log.info({ instance: this.#id }, 'deregistered from the catalog');
    } catch (err) {
      this.#log.warn({ error: (err as Error).message }, 'could not deregister (the server will expire the instance)');
    }
  }

  async #checkLoop(): Promise<void> {
    while (!this.#abort.signal.aborted) {
      const spec = this.#healthCheck();
      const health = await checkApp(this.#app, spec, spec?.timeout ?? DEFAULT_TIMEOUT_MS);
      if (health.healthy !== this.#health.healthy) {
        this.#log.info({ healthy: health.healthy, reason: health.reason }, 'app health changed');
        this.#health = health;
        this.#wake?.(); // report now
      }
      this.#health = health;
      this.#checked();
      await sleep(spec?.interval ?? DEFAULT_INTERVAL_MS, this.#abort.signal);
    }
  }

  async #reportLoop(): Promise<void> {
    // The first report waits for the first check, so that it carries a real result.
    await Promise.race([this.#firstCheck, sleep(DEFAULT_TIMEOUT_MS * 2, this.#abort.signal)]);
    while (!this.#abort.signal.aborted) {
      let delay: number;
      try {
        if (this.#id === null) await this.#register();
        await this.#report();
        this.#backoff.reset();
        delay = this.#reportIntervalMs;
      } catch (err) {
        delay = this.#backoff.next();
        if (this.#backoff.failures === 1 || this.#backoff.failures % 10 === 0) {
          this.#log.warn({ error: (err as Error).message, retryInMs: delay }, 'cannot report to the server; traffic keeps flowing with the last configuration');
        }
      }
      if (this.#abort.signal.aborted) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, delay);
        this.#wake = done;
        this.#abort.signal.addEventListener('abort', done, { once: true });
        const signal = this.#abort.signal;
        function done() {
          clearTimeout(timer);
          signal.removeEventListener('abort', done);
          resolve();
        }
      });
      this.#wake = null;
    }
  }

  async #register(): Promise<void> {
    let address = this.#advertise;
    if (address === undefined) {
      // The address this host uses toward the server is the one callers can most likely use too.
      const probe = await this.#client.call('GET', '/v1/ca', { timeoutMs: 5000 });
      address = probe.localAddress ?? undefined;
      if (address === undefined || isIP(address) === 0) throw new Error('cannot tell this host\'s address; set --advertise');
    }
    const answer = await this.#client.call('POST', '/v1/catalog/instances', { body: { address, port: this.#port(), metadata: this.#metadata } });
    if (answer.status !== 200) throw new Error(`registration refused: ${refusalMessage(answer)}`);
    this.#id = String(answer.json?.['id']);
    const interval = Number(answer.json?.['reportIntervalMs']);
    if (Number.isFinite(interval) && interval >= 100) {
      this.#reportIntervalMs = interval;
      // Retries must come back within the instance TTL (three intervals) to keep it passing.
      this.#backoff = new Backoff({ baseMs: Math.min(250, interval), maxMs: interval });
    }
    this.#log.info({ instance: this.#id, address: `${address}:${this.#port()}`, reportIntervalMs: this.#reportIntervalMs }, 'registered in the catalog');
  }

  async #report(): Promise<void> {
    const callers = this.#callers?.take() ?? [];
    let answer;
    try {
      answer = await this.#put(callers);
    } catch (err) {
      this.#callers?.giveBack(callers);
      throw err;
    }
    if (answer.status === 400 && callers.length > 0) {
      // The server refused the report (its caller counts, most likely): drop the counts,
      // never the heartbeat: report the health again at once without them.
      this.#log.warn({ error: refusalMessage(answer) }, 'the server refused the caller counts; they are dropped');
      answer = await this.#put([]);
    }
    if (answer.status === 404) {
      this.#id = null; // the server forgot us (deregistered after a long silence): register again
      throw new Error('the server no longer knows this instance; registering again');
    }
    if (answer.status !== 200) throw new Error(`report refused: ${refusalMessage(answer)}`);
  }

  #put(callers: readonly unknown[]) {
    return this.#client.call('PUT', `/v1/catalog/instances/${this.#id!}/report`, {
      body: { healthy: this.#health.healthy, reason: this.#health.reason, ...(callers.length > 0 ? { callers } : {}) },
      // A replica that hangs (its store cut off) must not delay the heartbeat past the
      // TTL (three intervals): give up on it after one interval and try the next one.
      timeoutMs: Math.max(1000, Math.min(5000, this.#reportIntervalMs)),
    });
  }
}
