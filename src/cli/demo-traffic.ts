import { httpGet, tcpLine } from './demo-apps.js';
import type { DemoPorts } from './demo-mesh.js';

/** One background loop: what it calls, how often, and what it saw. */
interface Loop {
  readonly name: string;
  readonly everyMs: number;
  /** One call (it bounds its own time); true when it succeeded. */
  readonly call: (n: number) => Promise<boolean>;
}

/** What the loops did so far (for the curious and the tests). */
export interface TrafficCounts {
  readonly [loop: string]: { readonly ok: number; readonly failed: number };
}

/** How long one call of a loop may take. */
const CALL_TIMEOUT_MS = 3000;

/**
 * The traffic `weft demo` keeps flowing so that the dashboard shows a living graph, each
 * loop with at most one call in flight and a timeout on every call:
 * - web: web's app every 200 ms (it calls api through web's sidecar: the web → api mTLS
 *   edge); every 10th call is `/api/fail` (api answers 503) and every 7th `/api/slow?ms=150`;
 * - plaintext: straight to api's inbound port every second, no sidecar on the caller's side
 *   (the `unknown` → api plaintext edge; refused once api is strict);
 * - tcp: a PING to the TCP service through web's outbound TCP listener every 2 s.
 * `stop` ends the loops and resolves when their last calls have ended.
 */
export class DemoTraffic {
  readonly #loops: readonly Loop[];
  readonly #counts = new Map<string, { ok: number; failed: number }>();
  #stop = new AbortController();
  #running: Promise<void>[] = [];

  constructor(options: { ports: DemoPorts; tcpService: 'redis' | 'echo' }) {
    const p = options.ports;
    const expected = options.tcpService === 'redis' ? '+PONG\r\n' : 'PING\r\n';
    this.#loops = [
      {
        name: 'web',
        everyMs: 200,
        call: async (n) => {
          const path = n % 10 === 9 ? '/api/fail' : n % 7 === 6 ? '/api/slow?ms=150' : '/';
          return (await httpGet(p.webApp, path, CALL_TIMEOUT_MS)).status === 200;
        },
      },
      { name: 'plaintext', everyMs: 1000, call: async () => (await httpGet(p.apiInbound, '/plaintext', CALL_TIMEOUT_MS)).status === 200 },
      { name: 'tcp', everyMs: 2000, call: async () => (await tcpLine(p.webToTcp, 'PING\r\n', CALL_TIMEOUT_MS)) === expected },
    ];
  }

  /** Starts the loops (again after a stop). */
  start(): void {
    if (this.#running.length > 0) return;
    this.#stop = new AbortController();
    this.#running = this.#loops.map((loop) => this.#run(loop, this.#stop.signal));
  }

  /** Stops the loops; resolves once no call is in flight any more. */
  async stop(): Promise<void> {
    this.#stop.abort();
    await Promise.all(this.#running);
    this.#running = [];
  }

  /** Successful and failed calls per loop since the start. */
  counts(): TrafficCounts {
    return Object.fromEntries([...this.#counts].map(([k, v]) => [k, { ...v }]));
  }

  async #run(loop: Loop, signal: AbortSignal): Promise<void> {
    const counts = this.#counts.get(loop.name) ?? { ok: 0, failed: 0 };
    this.#counts.set(loop.name, counts);
    for (let n = 0; !signal.aborted; n++) {
      const started = Date.now();
      const ok = await loop.call(n).catch(() => false);
      if (ok) counts.ok++;
      else counts.failed++;
      await sleep(Math.max(0, loop.everyMs - (Date.now() - started)), signal);
    }
  }
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
