/**
 * An open-loop HTTP/1.1 load generator corrected for coordinated omission (what wrk2 does,
 * which Debian does not package). Request i is due at t0 + i/rate whatever happened to the
 * earlier ones; a due request waits in FIFO order for a free keep-alive connection, and its
 * latency is measured from its INTENDED send time, so a stalled server is charged for every
 * request it kept from being sent, not only for the few that were on the wire.
 *
 * Transport: raw HTTP/1.1 on `node:net` sockets with a minimal response parser (status line,
 * headers, Content-Length / chunked / until-close bodies; no pipelining). Not undici's Pool:
 * its own queue would decide when a request reaches a socket, hiding the send time this tool
 * must control, and it costs nearly twice the CPU per request (figures below); here a request
 * is one prebuilt Buffer written to an idle socket.
 *
 * Scheduling: `worker` (default) — a worker thread sleeps with Atomics.wait until the next
 * due time and wakes this thread, which sends everything due; `timer` — a 1 ms setInterval
 * does the same, cheaper but ~0.5 ms late on average, like wrk2's millisecond timers. Both
 * also send after every response. A setImmediate polling loop was rejected: it keeps a core
 * busy, and on this 2-core machine its p90 was worse than the worker's. The delay between
 * due time and write is reported as `sendLagUs`.
 *
 * Self-overhead, measured against a trivial local node:http server (`res.end('ok')`) on this
 * 2-core VM (load ~0.6), 1000 req/s, 10 s, 64 connections, 2 s warm-up, 3 runs each:
 *   worker: latency p50 196-224 µs, p90 287-315 µs, p99 0.67-1.6 ms; send lag p50 24-30 µs,
 *           p99 0.18-0.44 ms; generator CPU ~19 % of one core
 *   timer:  latency p50 667-727 µs, p90 1.13-1.20 ms, p99 1.27-1.54 ms; send lag p50 ~560 µs,
 *           p99 ~1.1 ms; CPU ~14 %
 *   reference, wrk -t1 -c1 (closed loop, hot, ~9,400 req/s): p50 102 µs, p90 157 µs, p99 1.4 ms
 * so the worker scheduler adds ~25 µs at the median; the p99 is the VM's noise (wrk's too).
 * Generator and server pinned together to one core (as bench/ pins them on 2 cores), with
 * other load on the machine (~4): worker p50 ~185 µs, p90 ~0.5 ms, p99 ~2.2 ms; timer p50
 * ~720 µs, p90 ~1.2 ms, p99 2.0-2.8 ms.
 * Per request, on one connection, this raw client costs ~76 µs of CPU and ~164 µs round trip
 * against undici's Pool's ~138 µs and ~244 µs. Up to 10,000 req/s were sustained (server
 * and generator sharing the 2 cores); at 10,000 req/s the generator used ~65 % of a core.
 *
 * CLI: `node dist/bench/lib/open-loop.js --url http://127.0.0.1:PORT/path --rate 1000
 *   --duration 10s --connections 64 [--warmup 2s] [--header 'k: v']... [--scheduler timer]`
 * prints one JSON line (an {@link OpenLoopResult}) on stdout; exit status 2 on bad arguments
 * or when the target cannot be reached.
 */
import net from 'node:net';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { parseDuration } from '../../src/duration.js';
import { Histogram } from './histogram.js';

/** How due requests are found and sent; see the module comment. */
export type OpenLoopScheduler = 'worker' | 'timer';

/** What {@link runOpenLoop} does. */
export interface OpenLoopOptions {
  /** Target, `http://host:port/path?query`; https is not supported. */
  url: string | URL;
  /** Requests per second, > 0; request i is due at t0 + i/rate. */
  rate: number;
  /** Length of the measured window in ms, after the warm-up. */
  durationMs: number;
  /** Size of the keep-alive connection pool, opened before t0 and kept at that size. */
  connections: number;
  /** Requests due in the first `warmupMs` are sent but not counted (default 0). */
  warmupMs?: number;
  /** Extra request headers; a `host` given here replaces the one from the URL. */
  headers?: ReadonlyArray<readonly [string, string]>;
  /** After the last request is due, wait at most this long for the rest (default 5000). */
  drainTimeoutMs?: number;
  /** Give up (reject) if no connection is open after this long (default 5000). */
  connectTimeoutMs?: number;
  /** A request written more than this after its due time counts as `late` (default 5). */
  lateThresholdMs?: number;
  /** Default `worker`. */
  scheduler?: OpenLoopScheduler;
}

/** Latency percentiles in whole µs. */
export interface LatencySummary {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

/**
 * Outcome of a run. Only requests due inside the measured window count; each of them ends
 * up in exactly one of `completed` and `errors`, so `intended = completed + errors`.
 */
export interface OpenLoopResult {
  /** The target rate, req/s. */
  rate: number;
  /** The measured window, s. */
  durationS: number;
  /** Requests due in the window (rate × duration). */
  intended: number;
  /** Responses with a status below 400; only these are in `latencyUs`. */
  completed: number;
  /** Status >= 400, connection failures, and requests unanswered when the drain time ran out. */
  errors: number;
  /**
   * Requests written more than `lateThresholdMs` after their due time: no connection was free
   * (slow server or small pool) or the generator fell behind. Their latency still counts from
   * the due time; a high count at a rate the server should sustain means the pool is too small.
   */
  late: number;
  /** Due time → end of response, for the completed requests. */
  latencyUs: LatencySummary;
  /** completed / max(duration, due time of the first counted request → last response), req/s. */
  achievedRate: number;
  /** Diagnostic: due time → write to the socket, for every counted request that was written. */
  sendLagUs: { p50: number; p99: number; max: number };
}

/**
 * Runs one open-loop load test and resolves with its result once every counted request is
 * answered or the drain time is over; all sockets and timers are gone by then. Rejects on
 * invalid options or when no connection can be opened.
 */
export async function runOpenLoop(options: OpenLoopOptions): Promise<OpenLoopResult> {
  const run = new Run(checkOptions(options));
  return run.start();
}

interface Settings {
  host: string;
  port: number;
  request: Buffer;
  rate: number;
  durationMs: number;
  connections: number;
  warmupMs: number;
  drainTimeoutMs: number;
  connectTimeoutMs: number;
  lateThresholdMs: number;
  scheduler: OpenLoopScheduler;
}

function checkOptions(o: OpenLoopOptions): Settings {
  const url = new URL(o.url);
  if (url.protocol !== 'http:') throw new Error(`only http:// URLs are supported, got ${url.href}`);
  const positive = (name: string, v: number) => {
    if (!(Number.isFinite(v) && v > 0)) throw new Error(`${name} must be a number > 0, got ${v}`);
    return v;
  };
  const nonNegative = (name: string, v: number) => {
    if (!(Number.isFinite(v) && v >= 0)) throw new Error(`${name} must be a number >= 0, got ${v}`);
    return v;
  };
  if (!Number.isInteger(o.connections) || o.connections < 1 || o.connections > 10_000) {
    throw new Error(`connections must be an integer in 1..10000, got ${o.connections}`);
  }
  const scheduler = o.scheduler ?? 'worker';
  if (scheduler !== 'worker' && scheduler !== 'timer') throw new Error(`scheduler must be worker or timer, got ${String(scheduler)}`);
  const extra = o.headers ?? [];
  for (const [k, v] of extra) {
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(k) || /[\r\n]/.test(v)) throw new Error(`invalid header ${JSON.stringify(`${k}: ${v}`)}`);
  }
  const lines = [`GET ${url.pathname}${url.search} HTTP/1.1`];
  if (!extra.some(([k]) => k.toLowerCase() === 'host')) lines.push(`host: ${url.host}`);
  for (const [k, v] of extra) lines.push(`${k}: ${v.trim()}`);
  return {
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: url.port === '' ? 80 : Number(url.port),
    request: Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'),
    rate: positive('rate', o.rate),
    durationMs: positive('durationMs', o.durationMs),
    connections: o.connections,
    warmupMs: nonNegative('warmupMs', o.warmupMs ?? 0),
    drainTimeoutMs: nonNegative('drainTimeoutMs', o.drainTimeoutMs ?? 5000),
    connectTimeoutMs: positive('connectTimeoutMs', o.connectTimeoutMs ?? 5000),
    lateThresholdMs: nonNegative('lateThresholdMs', o.lateThresholdMs ?? 5),
    scheduler,
  };
}

/** One run: the schedule, the pool and the counters. Times are performance.now() ms. */
class Run {
  private readonly s: Settings;
  private readonly intervalMs: number;
  /** Requests 0..total-1 are sent; the first `warmupCount` are not counted. */
  private readonly total: number;
  private readonly warmupCount: number;
  private readonly pool: Conn[] = [];
  /** Connected connections with no request, in the order they became free. */
  private readonly idle: Conn[] = [];
  private readonly latency = new Histogram();
  private readonly sendLag = new Histogram();
  private t0 = 0;
  private started = false;
  private stopped = false;
  /** Index of the next request to send: requests next..due-1 are the FIFO queue. */
  private next = 0;
  private inflight = 0;
  private completed = 0;
  private errors = 0;
  private late = 0;
  private lastResponse = 0;
  /** Stops the scheduler's wake-ups; null once stopped. */
  private stopTicker: (() => void) | null = null;
  private deadline: NodeJS.Timeout | null = null;
  private done: (result: OpenLoopResult) => void = () => {};

  constructor(settings: Settings) {
    this.s = settings;
    this.intervalMs = 1000 / settings.rate;
    this.warmupCount = Math.round((settings.rate * settings.warmupMs) / 1000);
    this.total = this.warmupCount + Math.round((settings.rate * settings.durationMs) / 1000);
  }

  async start(): Promise<OpenLoopResult> {
    for (let i = 0; i < this.s.connections; i++) {
      const conn = new Conn(this);
      this.pool.push(conn);
      this.connect(conn);
    }
    await this.waitForPool();
    let clock: WorkerClock | null = null;
    try {
      if (this.s.scheduler === 'worker') clock = await WorkerClock.create();
    } catch (err) {
      this.closePool();
      throw err;
    }
    return new Promise((resolve) => {
      this.done = resolve;
      this.started = true;
      // The worker clock counts on hrtime, this thread on performance.now(): take both together.
      const t0Hr = process.hrtime.bigint();
      this.t0 = performance.now();
      const endMs = (this.total * 1000) / this.s.rate;
      this.deadline = setTimeout(() => this.finish(), endMs + this.s.drainTimeoutMs);
      const pump = () => this.pump();
      if (clock !== null) {
        this.stopTicker = clock.start(t0Hr, this.intervalMs, this.total, pump);
      } else {
        const interval = setInterval(pump, 1);
        this.stopTicker = () => clearInterval(interval);
      }
      this.pump();
    });
  }

  /** Resolves once the whole pool is connected; rejects if none is by the connect timeout. */
  private waitForPool(): Promise<void> {
    return new Promise((resolve, reject) => {
      const started = performance.now();
      const check = setInterval(() => {
        if (this.idle.length === this.s.connections) {
          clearInterval(check);
          resolve();
        } else if (performance.now() - started >= this.s.connectTimeoutMs) {
          clearInterval(check);
          if (this.idle.length > 0) return resolve();
          this.closePool();
          reject(new Error(`cannot connect to ${this.s.host}:${this.s.port} within ${this.s.connectTimeoutMs} ms`));
        }
      }, 5);
    });
  }

  /** Before the run starts: gives up on the pool. */
  private closePool(): void {
    this.stopped = true;
    for (const c of this.pool) c.destroy();
  }

  private connect(conn: Conn): void {
    const socket = net.connect({ host: this.s.host, port: this.s.port });
    socket.setNoDelay(true);
    conn.attach(socket);
  }

  /** Sends, oldest first, every due request that a free connection can take. */
  private pump(): void {
    if (!this.started || this.stopped) return;
    const now = performance.now();
    const due = Math.min(this.total, Math.floor((now - this.t0) / this.intervalMs) + 1);
    while (this.next < due) {
      const conn = this.idle.shift();
      if (conn === undefined) break;
      const i = this.next++;
      const lagMs = now - this.dueAt(i);
      if (i >= this.warmupCount) {
        this.sendLag.record(lagMs * 1000);
        if (lagMs > this.s.lateThresholdMs) this.late++;
      }
      this.inflight++;
      conn.send(i, this.s.request);
    }
    if (this.next === this.total) {
      this.stopClock();
      if (this.inflight === 0) this.finish();
    }
  }

  private dueAt(i: number): number {
    return this.t0 + i * this.intervalMs;
  }

  /** `conn` is connected and free. */
  onIdle(conn: Conn): void {
    this.idle.push(conn);
    this.pump();
  }

  /** Request `i` got a complete response with `status`. */
  onResponse(i: number, status: number): void {
    this.inflight--;
    if (i < this.warmupCount) return;
    if (status >= 400) {
      this.errors++;
      return;
    }
    const now = performance.now();
    this.completed++;
    this.latency.record((now - this.dueAt(i)) * 1000);
    this.lastResponse = now;
  }

  /** `conn` closed; `i` is the request it was carrying, or -1. */
  onClose(conn: Conn, i: number, hadConnected: boolean): void {
    const at = this.idle.indexOf(conn);
    if (at >= 0) this.idle.splice(at, 1);
    if (i >= 0) {
      this.inflight--;
      if (i >= this.warmupCount) this.errors++;
    }
    if (this.stopped) return;
    // Reconnect at once after a working connection closed; back off after a failed connect.
    if (hadConnected) this.connect(conn);
    else conn.retry = setTimeout(() => this.connect(conn), 100);
    if (this.started) this.pump();
  }

  private stopClock(): void {
    this.stopTicker?.();
    this.stopTicker = null;
  }

  private finish(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.stopClock();
    if (this.deadline !== null) clearTimeout(this.deadline);
    // Whatever is still queued or on the wire failed to make it in time.
    this.errors += this.total - Math.max(this.next, this.warmupCount);
    for (const conn of this.pool) {
      if (conn.current >= this.warmupCount) this.errors++;
      conn.destroy();
    }
    const h = this.latency;
    const durationS = this.s.durationMs / 1000;
    const windowS = Math.max(durationS, (this.lastResponse - this.dueAt(this.warmupCount)) / 1000);
    this.done({
      rate: this.s.rate,
      durationS,
      intended: this.total - this.warmupCount,
      completed: this.completed,
      errors: this.errors,
      late: this.late,
      latencyUs: {
        p50: h.percentile(50),
        p90: h.percentile(90),
        p99: h.percentile(99),
        p999: h.percentile(99.9),
        max: h.max,
        mean: Math.round(h.mean),
      },
      achievedRate: Math.round((this.completed / windowS) * 10) / 10,
      sendLagUs: { p50: this.sendLag.percentile(50), p99: this.sendLag.percentile(99), max: this.sendLag.max },
    });
  }
}

/**
 * A worker thread that sleeps with Atomics.wait (sub-millisecond, unlike timers) until the
 * next request is due and then wakes the main thread with a message. At most one wake-up is
 * outstanding: while the main thread has not taken the last one, later due times are left to
 * it (`pump` sends everything due when it runs), so a busy main thread is never flooded.
 */
class WorkerClock {
  // flags[0]: futex word, always 0; flags[1]: a wake-up is outstanding; flags[2]: stop.
  private static readonly source = `
    const { parentPort, workerData } = require('node:worker_threads');
    const flags = new Int32Array(workerData);
    // At most 2000 wake-ups a second (each costs both threads a context switch): at higher
    // rates requests go out in small batches, and responses trigger sends in between anyway.
    const GAP_NS = 500e3;
    parentPort.once('message', ({ t0, intervalNs, total }) => {
      // Atomics.wait returns ~0.1 ms late here: wake that much early (running mean) and poll
      // the clock for the rest, but poll at most 1/8 of the time, to leave the CPU to the
      // system under test.
      const leadMax = Math.max(intervalNs, GAP_NS) / 8;
      let early = 0;
      let i = 0; // first request not yet signalled
      let next = 0; // ns after t0 of the next wake-up
      while (i < total && Atomics.load(flags, 2) === 0) {
        const elapsed = Number(process.hrtime.bigint() - t0);
        const wait = next - elapsed;
        const lead = Math.min(early, leadMax);
        if (wait > lead) {
          Atomics.wait(flags, 0, 0, (wait - lead) / 1e6);
          const over = Number(process.hrtime.bigint() - t0) - elapsed - (wait - lead);
          early += (Math.min(Math.max(over, 0), 1e6) - early) / 8;
          continue;
        }
        if (wait > 0) continue;
        i = Math.floor(elapsed / intervalNs) + 1;
        next = Math.max(i * intervalNs, elapsed + GAP_NS);
        if (Atomics.compareExchange(flags, 1, 0, 1) === 0) parentPort.postMessage(0);
      }
      parentPort.close();
    });`;

  private constructor(
    private readonly worker: Worker,
    private readonly flags: Int32Array,
  ) {}

  /** Starts the thread; resolves once it runs. */
  static async create(): Promise<WorkerClock> {
    const sab = new SharedArrayBuffer(12);
    const worker = new Worker(WorkerClock.source, { eval: true, workerData: sab });
    await once(worker, 'online');
    return new WorkerClock(worker, new Int32Array(sab));
  }

  /** Calls `tick` when request i (< total) is due at t0 + i × interval; returns a stop function. */
  start(t0: bigint, intervalMs: number, total: number, tick: () => void): () => void {
    this.worker.on('message', () => {
      Atomics.store(this.flags, 1, 0); // before tick reads the clock: nothing due is missed
      tick();
    });
    this.worker.postMessage({ t0, intervalNs: intervalMs * 1e6, total });
    return () => {
      Atomics.store(this.flags, 2, 1);
      Atomics.notify(this.flags, 0);
      this.worker.removeAllListeners('message');
      void this.worker.terminate();
    };
  }
}

const enum State {
  Head,
  Length,
  ChunkSize,
  ChunkData,
  ChunkEnd,
  Trailers,
  UntilClose,
}

const MAX_HEAD = 64 * 1024;

/** One keep-alive connection of the pool and its response parser. */
class Conn {
  /** Index of the request on the wire, or -1. */
  current = -1;
  retry: NodeJS.Timeout | null = null;
  private socket: net.Socket | null = null;
  private connected = false;
  private state = State.Head;
  private pending: Buffer | null = null;
  private remaining = 0;
  private status = 0;
  private closeAfter = false;

  constructor(private readonly run: Run) {}

  attach(socket: net.Socket): void {
    this.retry = null;
    this.socket = socket;
    this.connected = false;
    this.resetParser();
    socket.on('connect', () => {
      this.connected = true;
      this.run.onIdle(this);
    });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => {
      if (this.current >= 0 && this.state === State.UntilClose) this.finishResponse();
    });
    socket.on('error', () => {}); // 'close' follows and does the accounting
    socket.on('close', () => {
      if (this.socket !== socket) return;
      const i = this.current;
      this.current = -1;
      this.socket = null;
      this.run.onClose(this, i, this.connected);
    });
  }

  send(i: number, request: Buffer): void {
    this.current = i;
    this.socket?.write(request);
  }

  destroy(): void {
    if (this.retry !== null) clearTimeout(this.retry);
    this.retry = null;
    this.current = -1; // the run has done its accounting
    this.socket?.destroy();
  }

  private resetParser(): void {
    this.state = State.Head;
    this.pending = null;
    this.remaining = 0;
    this.status = 0;
    this.closeAfter = false;
  }

  private onData(chunk: Buffer): void {
    const buf = this.pending === null ? chunk : Buffer.concat([this.pending, chunk]);
    this.pending = null;
    let off = 0;
    while (off < buf.length) {
      if (this.current < 0) return this.fail(); // bytes nobody asked for
      switch (this.state) {
        case State.Head: {
          const end = buf.indexOf('\r\n\r\n', off, 'latin1');
          if (end < 0) return this.keep(buf, off);
          if (!this.parseHead(buf.toString('latin1', off, end))) return this.fail();
          off = end + 4;
          if (this.state === State.Head && this.status >= 200) {
            return this.finishResponse(off < buf.length); // no pipelining: nothing may follow
          }
          break;
        }
        case State.Length:
        case State.ChunkData:
        case State.ChunkEnd: {
          const take = Math.min(this.remaining, buf.length - off);
          off += take;
          this.remaining -= take;
          if (this.remaining > 0) return;
          if (this.state === State.ChunkData) {
            this.state = State.ChunkEnd;
            this.remaining = 2;
          } else if (this.state === State.ChunkEnd) {
            this.state = State.ChunkSize;
          } else {
            return this.finishResponse(off < buf.length);
          }
          break;
        }
        case State.ChunkSize: {
          const eol = buf.indexOf('\r\n', off, 'latin1');
          if (eol < 0) return this.keep(buf, off);
          const hex = buf.toString('latin1', off, eol).split(';')[0]!.trim();
          if (!/^[0-9a-fA-F]{1,12}$/.test(hex)) return this.fail();
          const size = parseInt(hex, 16);
          off = eol + 2;
          if (size === 0) this.state = State.Trailers;
          else {
            this.state = State.ChunkData;
            this.remaining = size;
          }
          break;
        }
        case State.Trailers: {
          const eol = buf.indexOf('\r\n', off, 'latin1');
          if (eol < 0) return this.keep(buf, off);
          const blank = eol === off; // the empty line that ends the trailer section
          off = eol + 2;
          if (blank) {
            return this.finishResponse(off < buf.length);
          }
          break;
        }
        case State.UntilClose:
          return; // the body ends with the connection ('end')
      }
    }
  }

  /** Keeps the unparsed tail for the next chunk, within bounds. */
  private keep(buf: Buffer, off: number): void {
    if (buf.length - off > MAX_HEAD) return this.fail();
    this.pending = buf.subarray(off);
  }

  /**
   * Parses a response head into `status` and the next state; State.Head with status >= 200
   * means a response without a body. False on anything malformed.
   */
  private parseHead(head: string): boolean {
    const lines = head.split('\r\n');
    const m = /^HTTP\/1\.([01]) (\d{3})/.exec(lines[0] ?? '');
    if (m === null) return false;
    const status = Number(m[2]);
    let length = -1;
    let chunked = false;
    let close = m[1] === '0';
    for (let k = 1; k < lines.length; k++) {
      const line = lines[k]!;
      const colon = line.indexOf(':');
      if (colon <= 0) return false;
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim().toLowerCase();
      if (name === 'content-length') {
        if (!/^\d{1,15}$/.test(value)) return false;
        length = Number(value);
      } else if (name === 'transfer-encoding') {
        chunked = value.split(',').pop()?.trim() === 'chunked';
      } else if (name === 'connection') {
        const tokens = value.split(',').map((t) => t.trim());
        if (tokens.includes('close')) close = true;
        else if (tokens.includes('keep-alive')) close = false;
      }
    }
    this.status = status;
    if (status < 200) {
      // Interim response (100 Continue, 103 Early Hints): the real one follows. 101 would
      // switch protocols, which a GET from this tool never asks for.
      return status !== 101;
    }
    this.closeAfter = close;
    if (status === 204 || status === 304) this.state = State.Head;
    else if (chunked) this.state = State.ChunkSize;
    else if (length > 0) {
      this.state = State.Length;
      this.remaining = length;
    } else if (length === 0) this.state = State.Head;
    else {
      this.state = State.UntilClose;
      this.closeAfter = true;
    }
    return true;
  }

  /** Hands the response to the run; `garbage`: bytes followed it, so the connection goes. */
  private finishResponse(garbage = false): void {
    const i = this.current;
    const status = this.status;
    const close = this.closeAfter || garbage;
    this.current = -1;
    this.resetParser();
    this.run.onResponse(i, status);
    if (close) this.socket?.destroy(); // 'close' reconnects
    else this.run.onIdle(this);
  }

  /** Protocol error: drop the connection; the request on it (if any) counts as an error. */
  private fail(): void {
    this.pending = null;
    this.socket?.destroy();
  }
}

function parseSeconds(name: string, text: string): number {
  // A bare number is seconds, as in wrk; otherwise 500ms, 10s, 1m...
  if (/^\d+(\.\d+)?$/.test(text.trim())) return Number(text) * 1000;
  try {
    return parseDuration(text);
  } catch {
    throw new Error(`--${name}: "${text}" is not a duration (e.g. 500ms, 10s, 1m)`);
  }
}

/** CLI entry point; `args` are the arguments after the script name. */
export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      url: { type: 'string' },
      rate: { type: 'string' },
      duration: { type: 'string', default: '10s' },
      connections: { type: 'string', default: '64' },
      warmup: { type: 'string', default: '0s' },
      header: { type: 'string', multiple: true, default: [] },
      scheduler: { type: 'string', default: 'worker' },
    },
  });
  if (values.url === undefined || values.rate === undefined) throw new Error('--url and --rate are required');
  const headers = values.header.map((h): [string, string] => {
    const colon = h.indexOf(':');
    if (colon <= 0) throw new Error(`--header must look like 'name: value', got ${JSON.stringify(h)}`);
    return [h.slice(0, colon).trim(), h.slice(colon + 1).trim()];
  });
  const result = await runOpenLoop({
    url: values.url,
    rate: Number(values.rate),
    durationMs: parseSeconds('duration', values.duration),
    connections: Number(values.connections),
    warmupMs: parseSeconds('warmup', values.warmup),
    headers,
    scheduler: values.scheduler as OpenLoopScheduler,
  });
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

function isEntryPoint(): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return realpathSync(entry) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`open-loop: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 2;
  });
}
