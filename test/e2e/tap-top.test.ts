/**
 * Live tap and top through the control plane, with real connected sidecars: `weft tap api`
 * prints each request api's sidecar serves, with the caller, route and status, within a
 * second of the request; `--path`/`--method` filter at the sidecar; `weft top --once`
 * shows the route's rate, success and latency from the sidecars' telemetry.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { runWeft, startSidecar, tempDir, WEFT_MAIN } from '../helpers/weft.js';
import { createToken, startServer } from '../helpers/control.js';
import { app } from '../helpers/http-pair.js';

const WEB_ID = 'spiffe://weft.local/ns/default/svc/web';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A running `weft tap`: its JSON lines as they arrive, each with the time it arrived. */
interface Tap {
  readonly child: ChildProcess;
  readonly lines: { at: number; line: Record<string, unknown> }[];
  readonly started: Promise<Record<string, unknown>>;
  readonly exited: Promise<number>;
}

function startTap(t: TestContext, args: string[]): Tap {
  const child = spawn(process.execPath, [WEFT_MAIN, 'tap', ...args, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Tap['lines'] = [];
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number>((resolve) => child.once('exit', (code) => resolve(code ?? 1)));
  const started = new Promise<Record<string, unknown>>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (text) => {
      const line = JSON.parse(text) as Record<string, unknown>;
      lines.push({ at: Date.now(), line });
      if (line['type'] === 'started') resolve(line);
    });
    void exited.then((code) => reject(new Error(`weft tap exited with ${code}: ${stderr}`)));
  });
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGTERM');
  });
  return { child, lines, started, exited };
}

test('weft tap shows each request within a second, filtered at the sidecar; weft top shows the route', async (t) => {
  const dir = await tempDir(t);
  const data = join(dir, 'data');
  const server = await startServer(t, data);
  const flags = ['--server', server.url, '--data', data];
  const apiToken = await createToken(server.url, data, ['--service', 'api']);
  const webToken = await createToken(server.url, data, ['--service', 'web']);
  const a = await app(t, (req, res) => {
    res.statusCode = req.url!.startsWith('/missing') ? 404 : 200;
    res.end('api');
  });
  await startSidecar(t, ['--server', server.url, '--token', apiToken, '--service', 'api', '--inbound', '127.0.0.1:0', '--app', a.address, '--state', join(dir, 'api'), '--admin', '127.0.0.1:0']);
  const web = await startSidecar(t, ['--server', server.url, '--token', webToken, '--service', 'web', '--upstream', 'api=127.0.0.1:0', '--state', join(dir, 'web'), '--admin', '127.0.0.1:0']);
  const url = `http://${web.listeners['upstream api']!}`;
  const routeFile = join(dir, 'route.yaml');
  await writeFile(routeFile, 'kind: HTTPRoute\nmetadata: { name: api }\nspec:\n  parentRefs: [{ kind: Service, name: api }]\n  rules:\n    - backendRefs: [{ name: api }]\n');
  assert.equal((await runWeft(['apply', '-f', routeFile, ...flags])).code, 0);
  // api registered and passing, and the route reached web: requests get through.
  const deadline = Date.now() + 20_000;
  while ((await fetch(`${url}/warmup`).then((r) => r.status).catch(() => 0)) !== 200) {
    assert.ok(Date.now() < deadline, 'api never became reachable through web');
    await sleep(200);
  }

  const all = startTap(t, ['api', ...flags, '--count', '6', '--timeout', '30s']);
  const filtered = startTap(t, ['api', ...flags, '--path', '/missing', '--method', 'GET', '--count', '1', '--timeout', '30s']);
  const [started] = await Promise.all([all.started, filtered.started]);
  assert.equal(started['sidecars'], 1, 'one api sidecar follows the tap');
  await sleep(300); // the sidecar's long poll hands it the new sessions

  const sent: { path: string; at: number; status: number }[] = [];
  for (const path of ['/a', '/b?secret=1', '/missing/x', '/c', '/d', '/e']) {
    const at = Date.now();
    const r = await fetch(`${url}${path}`);
    await r.text();
    sent.push({ path: path.split('?')[0]!, at, status: r.status });
    await sleep(50);
  }
  assert.equal(await all.exited, 0, 'tap --count 6 ends after six requests');
  assert.equal(await filtered.exited, 0);

  const requests = all.lines.filter((l) => l.line['type'] === 'request');
  assert.deepEqual(
    requests.map((l) => [l.line['path'], l.line['status']]),
    sent.map((s) => [s.path, s.status]),
    'every request, in order, with its status; the query string is not shown',
  );
  for (const [i, l] of requests.entries()) {
    const delay = l.at - sent[i]!.at;
    assert.ok(delay < 1000, `request ${sent[i]!.path} reached the tap ${delay} ms after it was sent`);
    assert.deepEqual([l.line['direction'], l.line['source'], l.line['sourceIdentity'], l.line['destination'], l.line['tls'], l.line['method']], ['inbound', 'web', WEB_ID, 'api', true, 'GET']);
    assert.equal(typeof l.line['latencyMs'], 'number');
  }
  t.diagnostic(`tap delays: ${requests.map((l, i) => l.at - sent[i]!.at).join(', ')} ms`);
  const only = filtered.lines.filter((l) => l.line['type'] === 'request').map((l) => [l.line['path'], l.line['status']]);
  assert.deepEqual(only, [['/missing/x', 404]], 'the filtered tap saw only the matching request');

  // top: web → api on the route, from web's outbound telemetry (sent every 2 s).
  let table = '';
  const topDeadline = Date.now() + 10_000;
  for (;;) {
    const r = await runWeft(['top', '--once', '--window', '30s', ...flags]);
    assert.equal(r.code, 0, r.stderr);
    table = r.stdout;
    if (/web\s+api\s+default\/api\/0/.test(table) || Date.now() > topDeadline) break;
    await sleep(500);
  }
  t.diagnostic(table);
  const row = table.split('\n').find((l) => /web\s+api\s+default\/api\/0/.test(l));
  assert.ok(row !== undefined, `a web → api row for the route in:\n${table}`);
  assert.match(row, /\d+(\.\d+)?%/, 'the row shows a success rate');
});
