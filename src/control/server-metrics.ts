import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Store } from './store/store.js';

/** Store call duration buckets in seconds: from 0.1 ms (SQLite in memory) to seconds (a slow PostgreSQL). */
export const STORE_DURATION_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/**
 * The control plane's own metrics (besides those of ReplicaState), on the replica's
 * registry: snapshot pushes, CSR outcomes, store call durations, telemetry reports and
 * open tap sessions. `weft_server_sidecars_connected` reads the snapshot long polls that
 * wait now (one per connected sidecar).
 */
export class ServerMetrics {
  /** `GET /v1/snapshot` answered 200 (a new snapshot for that sidecar). */
  readonly snapshotPushes: Counter;
  /** `POST /v1/telemetry` reports accepted. */
  readonly telemetryReports: Counter;
  readonly #csr: Counter<'via' | 'result'>;
  readonly #storeDuration: Histogram<'operation'>;

  constructor(registry: Registry, sources: { sidecarsConnected: () => number; tapSessions: () => number }) {
    const registers = [registry];
    this.snapshotPushes = new Counter({ name: 'weft_server_snapshot_pushes_total', help: 'Snapshot long polls answered with a new snapshot (200 of /v1/snapshot).', registers });
    this.telemetryReports = new Counter({ name: 'weft_server_telemetry_reports_total', help: 'Telemetry reports accepted from sidecars (POST /v1/telemetry).', registers });
    this.#csr = new Counter({ name: 'weft_server_csr_total', help: 'Certificate signing requests by way in (join-token, certificate) and result (signed, refused).', labelNames: ['via', 'result'], registers });
    for (const via of ['join-token', 'certificate']) for (const result of ['signed', 'refused']) this.#csr.inc({ via, result }, 0);
    this.#storeDuration = new Histogram({
      name: 'weft_server_store_operation_duration_seconds',
      help: 'Duration of calls to the store (get, list, put, delete, beat, ping, …), seconds.',
      labelNames: ['operation'],
      buckets: STORE_DURATION_BUCKETS,
      registers,
    });
    new Gauge({
      name: 'weft_server_sidecars_connected',
      help: 'Sidecars connected to this replica now (waiting on a snapshot long poll).',
      registers,
      collect() {
        this.set(sources.sidecarsConnected());
      },
    });
    new Gauge({
      name: 'weft_server_tap_sessions',
      help: 'Live tap sessions open on this replica (weft tap clients).',
      registers,
      collect() {
        this.set(sources.tapSessions());
      },
    });
  }

  /** Counts one CSR outcome. */
  csr(via: 'join-token' | 'certificate', result: 'signed' | 'refused'): void {
    this.#csr.inc({ via, result });
  }

  /**
   * The store with every method call timed into `weft_server_store_operation_duration_seconds`
   * (label: the method's name). Properties pass through; methods keep their `this`.
   */
  timeStore<S extends Store>(store: S): S {
    const histogram = this.#storeDuration;
    const wrapped = new Map<PropertyKey, unknown>();
    return new Proxy(store, {
      get(target, prop) {
        const value: unknown = Reflect.get(target, prop, target);
        if (typeof value !== 'function' || typeof prop !== 'string' || prop === 'constructor') return value;
        let fn = wrapped.get(prop);
        if (fn === undefined) {
          const method = value as (...args: unknown[]) => unknown;
          const child = histogram.labels({ operation: prop });
          fn = (...args: unknown[]) => {
            const end = child.startTimer();
            let result: unknown;
            try {
              result = method.apply(target, args);
            } catch (err) {
              end();
              throw err;
            }
            if (result instanceof Promise) return result.finally(end);
            end();
            return result;
          };
          wrapped.set(prop, fn);
        }
        return fn;
      },
    });
  }
}
