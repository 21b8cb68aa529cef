import type { TestContext } from 'node:test';
import { createServer, request, Agent, type IncomingMessage, type ServerResponse, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startSidecar, type WeftProcess } from './weft.js';

/**
 * Helpers for the traffic-management tests on loopback: backend instances (an app in the
 * test process behind its own inbound sidecar), a caller sidecar started from a YAML
 * file (rewritten and reloaded with SIGHUP), and a bounded request loop.
 */

/** One instance of a backend service: the app's counters and its sidecar's inbound address. */
export interface Instance {
  readonly name: string;
  /** host:port of the instance's inbound sidecar (what callers' endpoints list). */
  readonly address: string;
  readonly admin: string;
  /** Requests the app received. */
  hits: number;
  /** Requests the app is handling now, and the most at once. */
  inFlight: number;
  maxInFlight: number;
  /** The request heads the app saw (last 100). */
  readonly seen: { method: string; url: string; headers: IncomingHttpHeaders }[];
}

/** Answers a request for an instance; the default answers 200 with the instance name. */
export type InstanceHandler = (req: IncomingMessage, res: ServerResponse, instance: Instance) => void;

/** Starts an app and an inbound sidecar (service `service`, self-issued from `ca`) per instance. */
export async function startInstances(t: TestContext, ca: string, service: string, specs: { name: string; handler?: InstanceHandler; extra?: string[] }[]): Promise<Instance[]> {
  return Promise.all(
    specs.map(async (spec) => {
      const instance: Instance = { name: spec.name, address: '', admin: '', hits: 0, inFlight: 0, maxInFlight: 0, seen: [] };
      const handler = spec.handler ?? ((_req, res, i) => res.end(i.name));
      const server = createServer((req, res) => {
        instance.hits++;
        instance.inFlight++;
        instance.maxInFlight = Math.max(instance.maxInFlight, instance.inFlight);
        instance.seen.push({ method: req.method!, url: req.url!, headers: req.headers });
        if (instance.seen.length > 100) instance.seen.shift();
        res.once('close', () => instance.inFlight--);
        req.resume();
        handler(req, res, instance);
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      t.after(() => {
        server.closeAllConnections();
        return new Promise<void>((r) => server.close(() => r()));
      });
      const app = `127.0.0.1:${(server.address() as AddressInfo).port}`;
      const sidecar = await startSidecar(t, ['--service', service, '--issuer', ca, '--inbound', '127.0.0.1:0', '--app', app, '--protocol', 'http', '--admin', '127.0.0.1:0', ...(spec.extra ?? [])]);
      return Object.assign(instance, { address: sidecar.listeners['inbound']!, admin: sidecar.admin });
    }),
  );
}

/** A caller sidecar (service `web`) whose config is `service`, `identity` and the YAML `upstreams` given; `update` rewrites it and reloads. */
export async function startCaller(t: TestContext, dir: string, ca: string, upstreams: string, name = 'web'): Promise<{ proc: WeftProcess; admin: string; url: string; update(next: string): Promise<void> }> {
  const file = join(dir, `${name}.yaml`);
  const write = (u: string) => writeFile(file, `service: ${name}\nidentity:\n  issuer: { dir: ${ca} }\nadmin:\n  listen: 127.0.0.1:0\nupstreams:\n${u}`);
  await write(upstreams);
  const sidecar = await startSidecar(t, ['-c', file]);
  const listener = Object.entries(sidecar.listeners).find(([k]) => k.startsWith('upstream '))![1];
  return {
    proc: sidecar.proc,
    admin: sidecar.admin,
    url: `http://${listener}`,
    async update(next) {
      const applied = sidecar.proc.lines.filter((l) => l.includes('"configuration applied"')).length;
      await write(next);
      sidecar.proc.child.kill('SIGHUP');
      const deadline = Date.now() + 10_000;
      while (sidecar.proc.lines.filter((l) => l.includes('"configuration applied"')).length === applied) {
        if (Date.now() > deadline) throw new Error(`reload not applied: ${sidecar.proc.lines.slice(-5).join('\n')}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
}

/** One answer of a request loop. */
export interface Answer {
  readonly status: number;
  readonly body: string;
  readonly error: string | undefined;
  readonly ms: number;
  readonly headers: IncomingHttpHeaders;
}

/** What a request loop saw. */
export interface Fired {
  readonly answers: Answer[];
  /** Count by status code (0: no answer). */
  readonly statuses: Record<number, number>;
  /** Count of 200 answers by body. */
  readonly bodies: Record<string, number>;
}

/**
 * Sends `n` requests to `url` with at most `concurrency` in flight (keep-alive), bounded
 * by `timeoutMs` in all; each request has a 30 s timeout.
 */
export async function fire(url: string, options: { n: number; concurrency?: number; method?: string; headers?: Record<string, string>; path?: string; timeoutMs?: number }): Promise<Fired> {
  const agent = new Agent({ keepAlive: true, maxSockets: options.concurrency ?? 1 });
  const answers: Answer[] = [];
  const deadline = Date.now() + (options.timeoutMs ?? 120_000);
  let next = 0;
  const one = () =>
    new Promise<Answer>((resolve) => {
      const start = performance.now();
      const req = request(`${url}${options.path ?? '/'}`, { method: options.method ?? 'GET', headers: options.headers, agent, timeout: 30_000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, body, error: undefined, ms: performance.now() - start, headers: res.headers }));
        res.on('error', (e) => resolve({ status: 0, body, error: e.message, ms: performance.now() - start, headers: {} }));
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (e) => resolve({ status: 0, body: '', error: e.message, ms: performance.now() - start, headers: {} }));
      req.end();
    });
  const worker = async () => {
    while (next < options.n && Date.now() < deadline) {
      next++;
      answers.push(await one());
    }
  };
  await Promise.all(Array.from({ length: options.concurrency ?? 1 }, worker));
  agent.destroy();
  const statuses: Record<number, number> = {};
  const bodies: Record<string, number> = {};
  for (const a of answers) {
    statuses[a.status] = (statuses[a.status] ?? 0) + 1;
    if (a.status === 200) bodies[a.body] = (bodies[a.body] ?? 0) + 1;
  }
  return { answers, statuses, bodies };
}

/** The YAML list item of an endpoint with metadata. */
export function endpoint(instance: Instance, metadata: Record<string, string> = {}): string {
  const meta = Object.entries(metadata).map(([k, v]) => `${k}: ${v}`).join(', ');
  return `{ address: "${instance.address}", metadata: { ${meta} } }`;
}

/** The start of a caller's `upstreams` list item: `name`, a loopback listener on port 0, and `endpoints` (YAML). */
export function upstreamYaml(name: string, endpoints: string): string {
  return `  - name: ${name}\n    listen: 127.0.0.1:0\n    endpoints: ${endpoints}\n`;
}
