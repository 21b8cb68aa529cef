/**
 * The control plane's `Store` contract: resources by (kind, namespace, name) with revisions,
 * optimistic concurrency, and a watch stream from a revision. `SqliteStore` implements it
 * for one server process, `PostgresStore` for several replicas sharing a database; both
 * pass the same contract suite (test/unit/store-contract.ts).
 *
 * Revisions (etcd-style): one counter per store. Every successful put and delete takes the
 * next revision, across all kinds, so revisions strictly increase and every revision names
 * exactly one change. A resource's `revision` is the revision of its last put;
 * `createdRevision` the revision of the put that created it (kept across updates, reset
 * when a deleted resource is created again).
 */

/** A JSON value: what a resource's `spec` may hold. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** The key of a resource. */
export interface ResourceKey {
  /** PascalCase type name, e.g. `Service`, `HTTPRoute` (`[A-Z][A-Za-z0-9]*`, at most 63 characters). */
  readonly kind: string;
  /** A DNS label (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters), e.g. `default`. */
  readonly namespace: string;
  /** A DNS subdomain (lower case letters, digits, `-` and `.`, at most 253 characters). */
  readonly name: string;
}

/** What a caller writes. */
export interface ResourceInput extends ResourceKey {
  /**
   * Any JSON value (plain objects, arrays, strings, finite numbers, booleans, null), at
   * most 1 MiB once serialised. Reads return a deep-equal value (`-0` reads back as `0`).
   */
  readonly spec: JsonValue;
}

/** A stored resource, as returned by reads and watch events. Deeply frozen. */
export interface StoredResource extends ResourceInput {
  /** The revision of the put that wrote this value. */
  readonly revision: number;
  /** The revision of the put that created the resource. */
  readonly createdRevision: number;
}

/** A change, as delivered by `watch`. */
export interface StoreChangeEvent {
  readonly type: 'put' | 'delete';
  /** The revision of this change. */
  readonly revision: number;
  /**
   * `put`: the value written (its `revision` equals the event's).
   * `delete`: the last value before the delete (its own `revision` is that of its last put;
   * the delete's revision is the event's `revision`).
   */
  readonly resource: StoredResource;
}

/**
 * The last event of a watch that ended on its own (not by its dispose function): the
 * history it needed was compacted (`StoreCompactedError`), the store was closed
 * (`StoreClosedError`), the listener threw (`StoreWatchError`, the listener's error as
 * `cause`), or the implementation lost its source (PostgreSQL: connection). No event follows.
 */
export interface StoreErrorEvent {
  readonly type: 'error';
  readonly error: Error;
}

export type StoreWatchEvent = StoreChangeEvent | StoreErrorEvent;

/**
 * Receives watch events one at a time, in revision order. When it returns a promise, the
 * next event waits until that promise settles (back-pressure); a throw or rejection ends
 * the watch with a `StoreWatchError` event.
 */
export type StoreWatchListener = (event: StoreWatchEvent) => void | Promise<void>;

export interface WriteOptions {
  /**
   * Optimistic concurrency. `0`: the resource must not exist; `n > 0`: its current
   * `revision` must be `n`; absent: unconditional. A mismatch throws `StoreConflictError`
   * and changes nothing.
   */
  readonly expectedRevision?: number;
}

/**
 * The store. Every method is async (the PostgreSQL client is); each write is atomic.
 * Invalid input (key format, spec not JSON, revision not a non-negative integer) rejects
 * with `StoreInvalidError`; any call after `close()` with `StoreClosedError`.
 */
export interface Store {
  /** The resource, or `undefined` when it does not exist. */
  get(kind: string, namespace: string, name: string): Promise<StoredResource | undefined>;

  /** Resources of one kind (of one namespace when given), sorted by namespace then name. */
  list(kind: string, namespace?: string): Promise<StoredResource[]>;

  /** Creates or replaces a resource at the next revision; returns what was stored. */
  put(resource: ResourceInput, options?: WriteOptions): Promise<StoredResource>;

  /**
   * Deletes a resource at the next revision. Resolves `false` (and takes no revision) when
   * it did not exist and `expectedRevision` allowed that (absent or `0`).
   */
  delete(kind: string, namespace: string, name: string, options?: WriteOptions): Promise<boolean>;

  /** The store's current revision: that of the last change (0 for an empty new store). */
  revision(): Promise<number>;

  /**
   * Delivers every change with a revision greater than `fromRevision`, in revision order,
   * each exactly once: first those already stored (catch-up), then new ones as they are
   * committed, with no gap or duplicate between the two. To follow a store: `list` (or
   * read `revision()` first, then list), then `watch(thatRevision)`; keep the last event's
   * revision to resume after a disconnect.
   *
   * Rejects with `StoreCompactedError` when changes after `fromRevision` are no longer in
   * the history (see `compact`): the caller must re-list (which gives a fresh revision)
   * and watch from there. Rejects with `StoreInvalidError` when `fromRevision` is ahead of
   * the store (a revision from another or a restored database: re-list too).
   * Resolves to a function that stops delivery (no event is delivered after it is called).
   */
  watch(fromRevision: number, listener: StoreWatchListener): Promise<() => void>;

  /**
   * Drops the change history before `beforeRevision` (which must not exceed the current
   * revision + 1); resources are untouched. Afterwards `watch(r)` works for
   * `r >= beforeRevision - 1` and fails with `StoreCompactedError` below. A watch that has
   * not yet read the dropped history ends with a `StoreCompactedError` event. Compacting
   * to a lower revision than a previous compaction does nothing. Resolves to the lowest
   * revision still watchable from (the new `beforeRevision - 1`).
   */
  compact(beforeRevision: number): Promise<number>;

  /** Ends every watch (with a `StoreClosedError` event) and releases the database. Idempotent. */
  close(): Promise<void>;
}

/**
 * What replicas of `weft server` share besides resources: heartbeats (state that changes
 * too often for the revision history: every instance reports every few seconds) and
 * leadership (work that must happen once: expiring instances, compaction). Stores
 * implement it next to `Store`. `SqliteStore` serves one process: it always leads and
 * keeps heartbeats in memory. `PostgresStore` shares both between replicas.
 */
export interface Coordination {
  /** Records a heartbeat of `key` now (by the store's clock, so replicas' clocks do not matter). */
  beat(key: string): Promise<void>;

  /** For every key with a heartbeat: milliseconds since its last one (by the store's clock). */
  beats(): Promise<Map<string, number>>;

  /** Forgets `key`'s heartbeat. */
  forget(key: string): Promise<void>;

  /**
   * Whether this process leads `role` now: takes the role when nobody holds it, keeps it
   * while this process lives and its store connection does. Call it before each piece of
   * leader-only work; a false answer means another replica does the work. A replica that
   * dies or loses its connection loses the role within seconds, and another one that
   * calls `lead` then takes it.
   */
  lead(role: string): Promise<boolean>;

  /** Whether the store answers now (a round trip, at most `timeoutMs`). */
  ping(timeoutMs: number): Promise<boolean>;
}
