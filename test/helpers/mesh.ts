import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { inHost, spawnInHost, type Host } from './netns.js';
import { startSidecar, startWeft, WEFT_MAIN, type WeftProcess } from './weft.js';

/**
 * Helpers for connected-mode tests across network namespaces: a `weft server` on one host,
 * demo apps and connected sidecars on others, weft CLI calls and bounded traffic loops
 * run inside a host.
 */

/** Starts `weft server` on `host` (its API certificate names the host's IP). */
export async function startMeshServer(t: TestContext, host: Host, data: string, extra: string[] = []): Promise<{ proc: WeftProcess; url: string }> {
  const proc = startWeft(t, ['server', '--data', data, '--listen', `${host.ip}:0`, '--server-name', host.ip, ...extra], { prefix: host.exec });
  const ready = await proc.waitFor('server ready');
  return { proc, url: `https://${ready['listen'] as string}` };
}

/** Runs a weft command inside `host`; fails the test when it exits non-zero. */
export async function weftIn(host: Host, args: string[]): Promise<string> {
  const { stdout } = await inHost(host, process.execPath, [WEFT_MAIN, ...args]).catch((err: { stderr?: string; message: string }) => {
    assert.fail(`weft ${args.join(' ')} failed: ${err.stderr ?? err.message}`);
  });
  return stdout;
}

/** A join token for `service` (any number of uses). */
export async function joinToken(host: Host, url: string, data: string, service: string): Promise<string> {
  return (await weftIn(host, ['token', 'create', '--server', url, '--data', data, '--service', service, '--uses', '0'])).trim();
}

/**
 * An HTTP app answering `GET /` with its name (and the caller identity it was told of in
 * `x-forwarded-client-cert`, as header `x-seen-caller`), and `GET /health` with 200 until
 * `POST /fail` makes it 500.
 */
const APP = `
const http = require('node:http');
const [host, port, name] = process.argv.slice(1);
let healthy = true;
http.createServer((req, res) => {
  if (req.url === '/health') { res.writeHead(healthy ? 200 : 500); res.end(); return; }
  if (req.url === '/fail' && req.method === 'POST') { healthy = false; res.end('failing'); return; }
  req.resume();
  res.writeHead(200, { 'x-seen-caller': /URI=([^;,]+)/.exec(req.headers['x-forwarded-client-cert'] ?? '')?.[1] ?? 'plaintext' });
  res.end(name);
}).listen(Number(port), host, () => console.log('listening'));
`;

/** Starts an app on `host`, listening on 127.0.0.1:port. */
export async function startApp(t: TestContext, host: Host, port: number, name: string): Promise<void> {
  const child = spawnInHost(t, host, process.execPath, ['-e', APP, '--', '127.0.0.1', String(port), name]);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const deadline = Date.now() + 10_000;
  while (!out.includes('listening') && child.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.ok(out.includes('listening'), `app ${name} did not start`);
}

/** Starts a connected sidecar on `host`; resolves when it is ready. */
export function connectedSidecar(
  t: TestContext,
  host: Host,
  options: { url: string; service: string; state: string; token?: string; inbound?: number; app?: number; upstreams?: string[]; admin?: number; extra?: string[] },
) {
  const args = ['--server', options.url, '--service', options.service, '--state', options.state, '--admin', `127.0.0.1:${options.admin ?? 0}`];
  if (options.token !== undefined) args.push('--token', options.token);
  if (options.inbound !== undefined) args.push('--inbound', `0.0.0.0:${options.inbound}`, '--app', `127.0.0.1:${options.app!}`);
  for (const u of options.upstreams ?? []) args.push('--upstream', u);
  return startSidecar(t, [...args, ...(options.extra ?? [])], { prefix: host.exec });
}

/** What a traffic loop saw. */
export interface LoadResult {
  ok: number;
  failed: number;
  /** Successful answers by body (which instance answered). */
  bodies: Record<string, number>;
  /** The first few failures, for messages. */
  errors: string[];
}

const LOAD = `
const http = require('node:http');
const [url, durationMs, intervalMs, method] = process.argv.slice(1);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const result = { ok: 0, failed: 0, bodies: {}, errors: [] };
const end = Date.now() + Number(durationMs);
function one() {
  return new Promise((resolve) => {
    const req = http.request(url, { agent, method, timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => {
        if (res.statusCode === 200) { result.ok++; result.bodies[body] = (result.bodies[body] ?? 0) + 1; }
        else { result.failed++; if (result.errors.length < 5) result.errors.push(res.statusCode + ' ' + (res.headers['weft-error'] ?? '') + ' ' + body.slice(0, 200)); }
        resolve();
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => { result.failed++; if (result.errors.length < 5) result.errors.push(e.message); resolve(); });
    req.end();
  });
}
(async () => {
  while (Date.now() < end) {
    await one();
    await new Promise((r) => setTimeout(r, Number(intervalMs)));
  }
  console.log(JSON.stringify(result));
})();
`;

/** Sends requests to `url` from inside `host`, one at a time every `intervalMs`, for `durationMs`. */
export async function load(host: Host, url: string, durationMs: number, intervalMs = 20, method = 'GET'): Promise<LoadResult> {
  const { stdout } = await inHost(host, process.execPath, ['-e', LOAD, '--', url, String(durationMs), String(intervalMs), method], { timeoutMs: durationMs + 30_000 });
  return JSON.parse(stdout) as LoadResult;
}

/** Polls `fn` until `ok` holds (every 200 ms, at most `timeoutMs`); returns how long it took. */
export async function within<T>(what: string, timeoutMs: number, fn: () => Promise<T>, ok: (v: T) => boolean): Promise<number> {
  const start = Date.now();
  let last = await fn();
  while (!ok(last)) {
    if (Date.now() - start > timeoutMs) assert.fail(`${what}: not within ${timeoutMs} ms (last: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 200));
    last = await fn();
  }
  return Date.now() - start;
}

