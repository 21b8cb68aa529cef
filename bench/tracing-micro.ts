/**
 * Micro-benchmark of the tracer on the request path (docs/tracing.md, "Cost"): nanoseconds
 * per `Tracer.start` + `HopSpan.end` for
 *
 * - sampled:                 a sampled W3C parent → a recorded span (exported in batches to
 *                            a local collector in this process, which answers 200);
 * - unsampled-with-parent:   a traceparent with flag 00 → null, nothing recorded;
 * - new-trace-not-sampled:   no trace header, sampling 0 → a fresh traceparent with flag 00;
 * - b3-sampled:              a sampled B3 single header → a recorded span.
 *
 *   npm run build && node dist/bench/tracing-micro.js [--iterations 200000] [--rounds 5]
 *
 * Bounded: `rounds` × `iterations` per case, in batches of 1000 with a turn of the event loop
 * between them so that the batch exporter runs as it would in a sidecar. Prints the median
 * and range over rounds.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { Tracer, type HeaderGetter, type SpanEnd, type SpanStart } from '../src/obs/tracing.js';
import { aggregate } from './lib/stats.js';

const { values } = parseArgs({
  options: { iterations: { type: 'string', default: '200000' }, rounds: { type: 'string', default: '5' } },
});
const ITERATIONS = Math.min(Math.max(Number(values.iterations), 1000), 5_000_000);
const ROUNDS = Math.min(Math.max(Number(values.rounds), 1), 20);
const BATCH = 1000;

const collector = createServer((req, res) => {
  req.resume();
  req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
});
await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r));
const endpoint = `http://127.0.0.1:${(collector.address() as AddressInfo).port}/v1/traces`;
const log = pino({ level: 'warn' });
const options = { endpoint, headers: {}, service: 'api', namespace: 'default', spiffeId: 'spiffe://bench/ns/default/sa/api', exportDelayMs: 100 };
const on = new Tracer({ ...options, sampling: 1 }, log);
const off = new Tracer({ ...options, sampling: 0 }, log);

const startInfo: SpanStart = { kind: 'inbound', method: 'GET', path: '/items/42?x=1', authority: 'api:8080', protocol: 'http/1.1', peer: 'spiffe://bench/ns/default/sa/web', tls: true, destination: 'api', startTimeMs: 0 };
const endInfo: SpanEnd = { status: 200, error: null, route: 'default/api/0', upstream: '127.0.0.1:9000', attempts: 1, grpcStatus: null, endTimeMs: 0 };

function getter(h: Record<string, string>): HeaderGetter {
  return (name) => h[name] ?? null;
}

const CASES: ReadonlyArray<readonly [string, Tracer, HeaderGetter]> = [
  ['sampled', on, getter({ traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', tracestate: 'rojo=00f067aa0ba902b7' })],
  ['unsampled-with-parent', on, getter({ traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00' })],
  ['new-trace-not-sampled', off, getter({})],
  ['b3-sampled', on, getter({ b3: '4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1' })],
];

async function round(tracer: Tracer, get: HeaderGetter): Promise<number> {
  let busyNs = 0n;
  for (let done = 0; done < ITERATIONS; done += BATCH) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < BATCH; i++) {
      startInfo.startTimeMs = Date.now();
      const hop = tracer.start(get, startInfo);
      if (hop !== null) {
        endInfo.endTimeMs = startInfo.startTimeMs + 1;
        hop.end(endInfo);
      }
    }
    busyNs += process.hrtime.bigint() - t0;
    await new Promise((r) => setImmediate(r));
  }
  return Number(busyNs) / ITERATIONS;
}

console.log(`tracing micro-benchmark: ${ROUNDS} rounds × ${ITERATIONS} start+end per case, Node ${process.version}`);
const results = new Map<string, number[]>();
for (let r = 0; r < ROUNDS; r++) {
  // Interleaved: every case in every round.
  for (const [name, tracer, get] of CASES) {
    const ns = await round(tracer, get);
    results.set(name, [...(results.get(name) ?? []), ns]);
  }
}
for (const [name] of CASES) {
  const a = aggregate(results.get(name)!)!;
  console.log(`${name.padEnd(24)} ${a.median.toFixed(0).padStart(6)} ns per start+end (min ${a.min.toFixed(0)}, max ${a.max.toFixed(0)})`);
}
await Promise.all([on.shutdown(), off.shutdown()]);
collector.closeAllConnections();
collector.close();
