/** A value that changes over time: certificates, snapshots, endpoint sets. */
export interface Watch<T> {
  /** The current value. */
  get(): T;
  /** Calls `fn` after every change; returns a function that stops the calls. */
  subscribe(fn: (value: T) => void): () => void;
}

/** A Watch whose owner sets the value. Subscribers run synchronously, in order, on set. */
export class WatchedValue<T> implements Watch<T> {
  #value: T;
  readonly #subscribers = new Set<(value: T) => void>();

  constructor(initial: T) {
    this.#value = initial;
  }

  get(): T {
    return this.#value;
  }

  set(value: T): void {
    this.#value = value;
    for (const fn of this.#subscribers) fn(value);
  }

  subscribe(fn: (value: T) => void): () => void {
    this.#subscribers.add(fn);
    return () => this.#subscribers.delete(fn);
  }
}
