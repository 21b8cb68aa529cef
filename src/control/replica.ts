import { Gauge, Registry } from 'prom-client';

/** What `/ready` and the metrics say about this server replica. */
export interface ReplicaStatus {
  readonly ready: boolean;
  readonly replica: string;
  readonly store: 'sqlite' | 'postgres';
  readonly leader: boolean;
  /** Why it is not ready, when it is not. */
  readonly reason: string | null;
}

/**
 * This replica's view of itself: whether it can serve (its store answers), whether it
 * leads (does the once-only work), and its metrics. The server's tick updates it; the API
 * reads it on every call (a replica cut off from its store answers 503, so sidecars move
 * to another one).
 */
export class ReplicaState {
  readonly registry = new Registry();
  readonly #replica: string;
  readonly #store: 'sqlite' | 'postgres';
  #ready = true;
  #leader = false;
  #reason: string | null = null;
  readonly #readyGauge: Gauge;
  readonly #leaderGauge: Gauge;
  readonly #waiting: Gauge;
  #followers = 0;

  constructor(options: { replica: string; store: 'sqlite' | 'postgres' }) {
    this.#replica = options.replica;
    this.#store = options.store;
    const registers = [this.registry];
    new Gauge({ name: 'weft_server_info', help: 'This server replica: its id and store (value 1).', labelNames: ['replica', 'store'], registers }).set({ replica: this.#replica, store: this.#store }, 1);
    this.#readyGauge = new Gauge({ name: 'weft_server_ready', help: '1 when this replica can serve (its store answers), else 0.', registers });
    this.#leaderGauge = new Gauge({ name: 'weft_server_leader', help: '1 when this replica leads (expires instances, compacts history), else 0.', registers });
    this.#waiting = new Gauge({ name: 'weft_server_snapshot_followers', help: 'Sidecars waiting on a snapshot long poll with this replica (connected sidecars).', registers });
    this.#readyGauge.set(1);
    this.#leaderGauge.set(0);
  }

  get ready(): boolean {
    return this.#ready;
  }

  setReady(ready: boolean, reason: string | null = null): boolean {
    const changed = ready !== this.#ready;
    this.#ready = ready;
    this.#reason = ready ? null : reason;
    this.#readyGauge.set(ready ? 1 : 0);
    return changed;
  }

  setLeader(leader: boolean): boolean {
    const changed = leader !== this.#leader;
    this.#leader = leader;
    this.#leaderGauge.set(leader ? 1 : 0);
    return changed;
  }

  /** Counts a snapshot long poll while it waits. */
  following(delta: 1 | -1): void {
    this.#followers += delta;
    this.#waiting.inc(delta);
  }

  /** Snapshot long polls waiting now (one per connected sidecar). */
  get followers(): number {
    return this.#followers;
  }

  status(): ReplicaStatus {
    return { ready: this.#ready, replica: this.#replica, store: this.#store, leader: this.#leader, reason: this.#reason };
  }
}
