import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { StoreWatchError } from './errors.js';
import type { StoreChangeEvent, StoreWatchListener } from './store.js';

/**
 * Reads committed changes with a revision greater than `after`, in revision order, at most
 * `limit` of them. Throws `StoreCompactedError` when the first of them is no longer kept.
 */
export type ChangeReader = (after: number, limit: number) => StoreChangeEvent[] | Promise<StoreChangeEvent[]>;

/** Changes read from the log at a time. */
const PAGE = 256;
/** Changes a feed buffers from notifications; beyond, it reads them from the log later. */
const MAX_BUFFERED = 1024;

/**
 * One watch: a cursor (the last revision handed to the queue) that only moves forward, so
 * nothing is delivered twice or skipped. Changes come from two places: `notify`, called
 * by the store after each commit, which appends the change when it directly follows the
 * cursor; and the change log, read a page at a time whenever the store is known to be
 * ahead of the cursor (catch-up at start, after a burst beyond the buffer, or when a
 * notification arrived during a read). Store-independent: SQLite notifies in process;
 * PostgreSQL notifies its own commits and, on a LISTEN/NOTIFY wake-up or a poll, only
 * raises `latest` (`advance`) so the feed reads the log.
 * Requires of the store: a change's revision becomes readable only after every lower one.
 */
export class ChangeFeed {
  #cursor: number;
  #latest: number;
  #queue: StoreChangeEvent[] = [];
  #reading = false;
  #running = false;
  #ended = false;
  #endError: Error | undefined;
  readonly #read: ChangeReader;
  readonly #listener: StoreWatchListener;
  readonly #onEnd: (feed: ChangeFeed) => void;

  /**
   * @param fromRevision deliver changes after this revision
   * @param latestRevision the store's revision when the watch started (catch-up target)
   * @param onEnd called once when the feed ends (disposed or ended by an error)
   */
  constructor(
    fromRevision: number,
    latestRevision: number,
    read: ChangeReader,
    listener: StoreWatchListener,
    onEnd: (feed: ChangeFeed) => void,
  ) {
    this.#cursor = fromRevision;
    this.#latest = latestRevision;
    this.#read = read;
    this.#listener = listener;
    this.#onEnd = onEnd;
    this.#kick();
  }

  /** A change was committed (called in revision order, after the commit). */
  notify(event: StoreChangeEvent): void {
    if (this.#ended) return;
    if (event.revision > this.#latest) this.#latest = event.revision;
    if (!this.#reading && event.revision === this.#cursor + 1 && this.#queue.length < MAX_BUFFERED) {
      this.#queue.push(event);
      this.#cursor = event.revision;
    }
    this.#kick();
  }

  /**
   * The store has committed changes up to `revision` (a wake-up without the changes, e.g.
   * a PostgreSQL notification): the feed reads the log up to there.
   */
  advance(revision: number): void {
    if (this.#ended) return;
    if (revision > this.#latest) this.#latest = revision;
    this.#kick();
  }

  /** True once the feed has ended (disposed or failed). */
  get ended(): boolean {
    return this.#ended;
  }

  /** Stops delivery; no event (not even an error) is delivered afterwards. */
  dispose(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#endError = undefined;
    this.#queue = [];
    this.#onEnd(this);
  }

  /** Ends the feed; the listener receives `error` as its last event. */
  fail(error: Error): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#endError = error;
    this.#queue = [];
    this.#onEnd(this);
    this.#kick();
  }

  #kick(): void {
    if (this.#running) return;
    this.#running = true;
    queueMicrotask(() => void this.#run());
  }

  async #run(): Promise<void> {
    while (!this.#ended) {
      const event = this.#queue.shift();
      if (event === undefined) {
        if (this.#cursor >= this.#latest) break;
        await this.#readPage();
        continue;
      }
      try {
        const result = this.#listener(event);
        if (result !== undefined) await result;
      } catch (err) {
        this.fail(new StoreWatchError(event.revision, err));
      }
    }
    this.#running = false;
    const error = this.#endError;
    if (error !== undefined) {
      this.#endError = undefined;
      try {
        const result = this.#listener({ type: 'error', error });
        if (result !== undefined) await result;
      } catch {
        // The watch has ended already; a listener failing on its last event changes nothing.
      }
    }
  }

  async #readPage(): Promise<void> {
    this.#reading = true;
    let page: StoreChangeEvent[];
    try {
      page = await this.#read(this.#cursor, PAGE);
    } catch (err) {
      this.#reading = false;
      this.fail(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    this.#reading = false;
    if (this.#ended) return;
    for (const event of page) {
      if (event.revision <= this.#cursor) continue;
      this.#queue.push(event);
      this.#cursor = event.revision;
    }
    if (this.#cursor > this.#latest) this.#latest = this.#cursor;
    // Nothing more to read: the revision we were told about is not (or no longer) there.
    if (page.length === 0) this.#latest = this.#cursor;
    // Let I/O run between pages of a long catch-up.
    if (page.length === PAGE) await yieldToEventLoop();
  }
}
