import { randomBytes } from 'node:crypto';
import type { TapEvent, TapSession, TapSessions } from './telemetry-wire.js';

/**
 * Live taps: an operator's `GET /v1/tap` opens a session on one service; the sidecars of
 * that service learn the set of sessions by long-polling `GET /v1/tap/sessions` (`wait`),
 * and post the requests that match (`deliver`), which are fanned out to the sessions each
 * event names. Nothing is stored: a session holds at most `queueLimit` undelivered events
 * (beyond that, events are dropped and counted) and ends with its client.
 */

/** Undelivered events a session holds by default before it drops. */
export const DEFAULT_QUEUE_LIMIT = 1000;
/** A sidecar counts as following a service's taps this long after its last long poll ended. */
export const SIDECAR_GRACE_MS = 5000;

/** What a session matches: a path prefix and a method, each optional. */
export interface TapFilter {
  readonly path: string | null;
  readonly method: string | null;
}

/** One operator's tap on a service: its events in arrival order, until `close()`. */
export class TapSubscription {
  readonly id: string;
  readonly filter: TapFilter;
  readonly #limit: number;
  readonly #queue: TapEvent[] = [];
  readonly #onClose: () => void;
  #waiter: ((event: TapEvent | null) => void) | null = null;
  #closed = false;
  #dropped = 0;

  /** @internal created by TapBroker.open */
  constructor(id: string, filter: TapFilter, limit: number, onClose: () => void) {
    this.id = id;
    this.filter = filter;
    this.#limit = limit;
    this.#onClose = onClose;
  }

  /** Events dropped because the client did not keep up. */
  get dropped(): number {
    return this.#dropped;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The next event, waiting for one; null once closed. */
  next(): Promise<TapEvent | null> {
    const event = this.#queue.shift();
    if (event !== undefined) return Promise.resolve(event);
    if (this.#closed) return Promise.resolve(null);
    return new Promise((resolve) => (this.#waiter = resolve));
  }

  /** The events as an async iterable (ends when the session closes). */
  async *[Symbol.asyncIterator](): AsyncGenerator<TapEvent, void, undefined> {
    for (let e = await this.next(); e !== null; e = await this.next()) yield e;
  }

  /** Ends the session: the broker forgets it (its sidecars learn so), `next` resolves null. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue.length = 0;
    this.#waiter?.(null);
    this.#waiter = null;
    this.#onClose();
  }

  /** @internal queues an event (or hands it to a waiting `next`); false when dropped. */
  push(event: TapEvent): boolean {
    if (this.#closed) return false;
    if (this.#waiter !== null) {
      const w = this.#waiter;
      this.#waiter = null;
      w(event);
      return true;
    }
    if (this.#queue.length >= this.#limit) {
      this.#dropped++;
      return false;
    }
    this.#queue.push(event);
    return true;
  }
}

interface ServiceTaps {
  readonly sessions: Map<string, TapSubscription>;
  version: string;
  readonly waiters: Set<() => void>;
  /** Sidecars (by a key the caller chooses: the client certificate's fingerprint) → waiting polls now. */
  readonly polling: Map<string, number>;
  /** Sidecar → when its last poll ended (ms). */
  readonly lastPoll: Map<string, number>;
}

/** Tap sessions per (namespace, service), in memory (see the module comment). */
export class TapBroker {
  readonly #services = new Map<string, ServiceTaps>();
  readonly #boot = randomBytes(4).toString('hex');
  readonly #limit: number;
  readonly #now: () => number;
  #seq = 0;
  #open = 0;

  constructor(options: { queueLimit?: number; now?: () => number } = {}) {
    this.#limit = options.queueLimit ?? DEFAULT_QUEUE_LIMIT;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Open sessions, all services together. */
  get sessionCount(): number {
    return this.#open;
  }

  /** The sessions of a service now, with their version. */
  sessions(namespace: string, service: string): TapSessions {
    const taps = this.#services.get(key(namespace, service));
    if (taps === undefined) return { version: `${this.#boot}-0`, sessions: [] };
    return { version: taps.version, sessions: [...taps.sessions.values()].map((s): TapSession => ({ id: s.id, path: s.filter.path, method: s.filter.method })) };
  }

  /**
   * The long poll of a sidecar (`sidecar`: a stable key for it): resolves with the sessions
   * as soon as their version is not `knownVersion` (at once if it is not now), or null after
   * `timeoutMs` or when `signal` aborts (the client went).
   */
  async wait(namespace: string, service: string, knownVersion: string | null, timeoutMs: number, sidecar: string, signal?: AbortSignal): Promise<TapSessions | null> {
    const taps = this.#entry(namespace, service);
    const now = this.sessions(namespace, service);
    if (now.version !== knownVersion || signal?.aborted === true || timeoutMs <= 0) {
      taps.lastPoll.set(sidecar, this.#now());
      return now.version !== knownVersion ? now : null;
    }
    taps.polling.set(sidecar, (taps.polling.get(sidecar) ?? 0) + 1);
    try {
      const changed = await new Promise<boolean>((resolve) => {
        const done = (value: boolean) => {
          clearTimeout(timer);
          taps.waiters.delete(wake);
          signal?.removeEventListener('abort', abort);
          resolve(value);
        };
        const wake = () => done(true);
        const abort = () => done(false);
        const timer = setTimeout(() => done(false), timeoutMs);
        taps.waiters.add(wake);
        signal?.addEventListener('abort', abort, { once: true });
      });
      return changed ? this.sessions(namespace, service) : null;
    } finally {
      const left = (taps.polling.get(sidecar) ?? 1) - 1;
      if (left > 0) taps.polling.set(sidecar, left);
      else taps.polling.delete(sidecar);
      taps.lastPoll.set(sidecar, this.#now());
      this.#forgetIfIdle(namespace, service);
    }
  }

  /** Sidecars following this service's taps: long-polling now, or within SIDECAR_GRACE_MS. */
  sidecars(namespace: string, service: string): number {
    const taps = this.#services.get(key(namespace, service));
    if (taps === undefined) return 0;
    const now = this.#now();
    const seen = new Set(taps.polling.keys());
    for (const [sidecar, at] of taps.lastPoll) {
      if (now - at <= SIDECAR_GRACE_MS) seen.add(sidecar);
      else taps.lastPoll.delete(sidecar);
    }
    return seen.size;
  }

  /** Opens a session on a service; its sidecars are woken to learn it. */
  open(namespace: string, service: string, filter: TapFilter): TapSubscription {
    const taps = this.#entry(namespace, service);
    const id = randomBytes(8).toString('hex');
    const sub = new TapSubscription(id, filter, this.#limit, () => {
      if (taps.sessions.delete(id)) {
        this.#open--;
        this.#changed(taps);
        this.#forgetIfIdle(namespace, service);
      }
    });
    taps.sessions.set(id, sub);
    this.#open++;
    this.#changed(taps);
    return sub;
  }

  /**
   * Events posted by a sidecar of `namespace/service`: each goes to the sessions of that
   * service it names and matches (unknown ids are ignored). Returns how many deliveries
   * were queued (an event for two sessions counts twice; dropped ones do not count).
   */
  deliver(namespace: string, service: string, events: readonly TapEvent[]): number {
    const taps = this.#services.get(key(namespace, service));
    if (taps === undefined) return 0;
    let delivered = 0;
    for (const event of events) {
      for (const id of new Set(event.sessions)) {
        const sub = taps.sessions.get(id);
        if (sub !== undefined && matches(sub.filter, event) && sub.push(event)) delivered++;
      }
    }
    return delivered;
  }

  #entry(namespace: string, service: string): ServiceTaps {
    const k = key(namespace, service);
    let taps = this.#services.get(k);
    if (taps === undefined) {
      this.#services.set(k, (taps = { sessions: new Map(), version: `${this.#boot}-0`, waiters: new Set(), polling: new Map(), lastPoll: new Map() }));
    }
    return taps;
  }

  #changed(taps: ServiceTaps): void {
    taps.version = `${this.#boot}-${++this.#seq}`;
    for (const wake of [...taps.waiters]) wake();
  }

  /**
   * Drops a service's entry when nothing refers to it: no session, no poll now or within
   * SIDECAR_GRACE_MS. (A sidecar that knew a forgotten version gets the empty set at once
   * on its next poll, then waits on that.)
   */
  #forgetIfIdle(namespace: string, service: string): void {
    const k = key(namespace, service);
    const taps = this.#services.get(k);
    if (taps === undefined || taps.sessions.size > 0 || taps.polling.size > 0 || taps.waiters.size > 0) return;
    if (this.sidecars(namespace, service) > 0) return;
    this.#services.delete(k);
  }
}

/** Whether an event is one a session asked for (the sidecar matched already; checked again here). */
function matches(filter: TapFilter, event: TapEvent): boolean {
  return (filter.method === null || event.method === filter.method) && (filter.path === null || event.path.startsWith(filter.path));
}

function key(namespace: string, service: string): string {
  return `${namespace}/${service}`;
}
