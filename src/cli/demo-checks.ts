import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { httpGet, tcpLine } from './demo-apps.js';
import type { DemoMesh } from './demo-mesh.js';

/**
 * What `weft demo` waits for before printing, and the checks behind `weft demo --check`:
 * the effects the printed commands are meant to show, observed from outside the sidecars.
 */

/** One check's outcome, with what was seen when it failed. */
interface CheckResult {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

/** web's app → web's sidecar → api's sidecar → api's app: 200, and api saw web's SPIFFE ID. */
async function webReachesApi(mesh: DemoMesh): Promise<{ ok: boolean; detail: string }> {
  const r = await httpGet(mesh.ports.webApp);
  let caller: unknown = null;
  try {
    caller = (JSON.parse(r.body) as { api?: { caller?: unknown } }).api?.caller ?? null;
  } catch {
    // not JSON: reported below
  }
  return { ok: r.status === 200 && caller === mesh.spiffeId('web'), detail: `HTTP ${r.status}: ${r.body.trim() || '(no answer)'}` };
}

/** The TCP service through web's outbound listener: Redis answers PING with +PONG, the echo service with PING. */
async function tcpThroughMesh(mesh: DemoMesh): Promise<{ ok: boolean; detail: string }> {
  const reply = await tcpLine(mesh.ports.webToTcp, 'PING\r\n');
  const expected = mesh.tcp.name === 'redis' ? '+PONG\r\n' : 'PING\r\n';
  return { ok: reply === expected, detail: `got ${JSON.stringify(reply)}, expected ${JSON.stringify(expected)}` };
}

/** Plaintext straight to api's inbound port (no sidecar on the caller's side). */
async function plaintextToApi(mesh: DemoMesh): Promise<{ served: boolean; refused: boolean; detail: string }> {
  const r = await httpGet(mesh.ports.apiInbound);
  return { served: r.status === 200 && r.body.includes('"caller":null'), refused: r.status === 0, detail: r.status === 0 ? 'no HTTP answer' : `HTTP ${r.status}: ${r.body.trim()}` };
}

/** Calls `fn` until `ok(result)` or the timeout; returns the last result. */
async function eventually<T>(fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs: number, halted: () => boolean = () => false): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = await fn();
  while (!ok(last) && Date.now() < deadline && !halted()) {
    await new Promise((r) => setTimeout(r, 250));
    last = await fn();
  }
  return last;
}

/**
 * Waits until web reaches api and the TCP service through the mesh (the sidecars have
 * registered, reported healthy, and web's snapshot carries their endpoints). Returns null
 * when they do, else what was last seen.
 */
export async function waitForTraffic(mesh: DemoMesh, timeoutMs: number): Promise<string | null> {
  const deadline = Date.now() + timeoutMs;
  const halted = () => mesh.halted;
  const api = await eventually(() => webReachesApi(mesh), (r) => r.ok, timeoutMs, halted);
  if (!api.ok) return `web → api: ${api.detail}`;
  const tcp = await eventually(() => tcpThroughMesh(mesh), (r) => r.ok, Math.max(1000, deadline - Date.now()), halted);
  return tcp.ok ? null : `web → ${mesh.tcp.name}: ${tcp.detail}`;
}

/** Runs `weft ARGS` as a child process, as a user would; resolves with its exit code and output. */
function runWeft(args: string[]): Promise<{ code: number; output: string }> {
  const main = fileURLToPath(new URL('./main.js', import.meta.url));
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('WEFT_')));
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [main, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.once('error', (err) => resolve({ code: 1, output: err.message }));
    child.once('close', (code) => resolve({ code: code ?? 1, output: output.trim() }));
  });
}

/**
 * The checks of `weft demo --check`, in order, each printed as `ok` or `FAIL` (with what
 * was seen). Turning api strict is part of them: run them on a fresh mesh. True when all pass.
 */
export async function runChecks(mesh: DemoMesh, out: NodeJS.WritableStream): Promise<boolean> {
  const results: CheckResult[] = [];
  const record = (name: string, ok: boolean, detail: string) => {
    results.push({ name, ok, detail });
    out.write(ok ? `ok   ${name}\n` : `FAIL ${name}\n       ${detail}\n`);
  };
  const web = mesh.spiffeId('web');
  const tcp = mesh.tcp.name;

  const first = await webReachesApi(mesh);
  record(`web → api through the mesh: 200, api sees ${web}`, first.ok, first.detail);
  const pong = await tcpThroughMesh(mesh);
  record(`${tcp} (TCP) through web's outbound listener, over mTLS`, pong.ok, pong.detail);
  const wanted = ['api', 'web', tcp];
  const catalog = await eventually(() => mesh.services().catch(() => []), (s) => wanted.every((n) => s.some((e) => e.service === n && e.passing > 0)), 10_000);
  const missing = wanted.filter((n) => !catalog.some((e) => e.service === n && e.passing > 0));
  record(`weft services: ${wanted.join(', ')} passing`, missing.length === 0, `not passing: ${missing.join(', ')}; catalog: ${JSON.stringify(catalog)}`);
  const permissive = await plaintextToApi(mesh);
  record('api is permissive: plaintext to its inbound port is served (no caller identity)', permissive.served, permissive.detail);

  const applied = await runWeft(['apply', '-f', mesh.file('api-strict.yaml'), '--server', mesh.serverUrl, '--data', mesh.data]);
  record('weft apply -f api-strict.yaml', applied.code === 0, `exit ${applied.code}: ${applied.output}`);
  const strict = await eventually(() => plaintextToApi(mesh), (r) => r.refused, 10_000);
  record('api is strict: plaintext to its inbound port is refused', strict.refused, strict.detail);
  const still = await webReachesApi(mesh);
  record(`api is strict: web → api still 200, api sees ${web}`, still.ok, still.detail);

  const failed = results.filter((r) => !r.ok).length;
  out.write(failed === 0 ? `all ${results.length} checks passed\n` : `${failed} of ${results.length} checks failed\n`);
  return failed === 0;
}
