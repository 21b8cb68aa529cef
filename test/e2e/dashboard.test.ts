/**
 * The dashboard: `weft server` serves its files (allow-listed, strict headers, no traversal),
 * and in headless Chromium (Debian's chromium driven by playwright-core) the dashboard of a
 * running `weft demo` shows its services and edges, an edge's figures follow the traffic, the
 * plaintext edge is marked, and the service and certificate pages render. A screenshot of
 * each page goes to test-output/screenshots/ (gitignored); the paths are printed.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { access, mkdir, readdir, readFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium, type Page } from 'playwright-core';
import { curl, startServer } from '../helpers/control.js';
import { tempDir, WEFT_MAIN } from '../helpers/weft.js';

const CHROMIUM = '/usr/bin/chromium';
/** The demo's ports: base+1 … base+446 (demo.test.ts uses 31000 and 31500). */
const BASE = 29000;
const WEB_APP = BASE + 80;
const SCREENSHOTS = fileURLToPath(new URL('../../../test-output/screenshots/', import.meta.url));
const DASHBOARD_FILES = fileURLToPath(new URL('../../src/dashboard/', import.meta.url));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `promise`, or undefined after `ms` (the timer is cleared, so it never holds the test's process). */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

test('weft server serves the dashboard files: allow-list, content types, CSP, no token, no traversal', async (t) => {
  const data = await tempDir(t);
  const { url } = await startServer(t, data);

  const root = await curl(data, [`${url}/`]);
  assert.equal(root.status, 302);
  assert.match(root.headers, /^location: \/ui\/$/im);

  const index = await curl(data, [`${url}/ui/`]);
  assert.equal(index.status, 200, index.body);
  assert.match(index.headers, /^content-type: text\/html; charset=utf-8$/im);
  assert.match(index.headers, /^cache-control: no-cache$/im);
  assert.match(index.headers, /^x-content-type-options: nosniff$/im);
  const csp = /^content-security-policy: (.+)$/im.exec(index.headers)?.[1] ?? '';
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /connect-src 'self'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|https?:/, csp);
  // The one inline script, the import map, is allowed by its hash, and names the vendor files.
  const importMap = /<script type="importmap">([\s\S]*?)<\/script>/.exec(index.body)?.[1];
  assert.ok(importMap !== undefined, index.body);
  assert.ok(csp.includes(`'sha256-${createHash('sha256').update(importMap).digest('base64')}'`), csp);
  const imports = (JSON.parse(importMap) as { imports: Record<string, string> }).imports;
  assert.deepEqual(Object.keys(imports).sort(), ['htm', 'preact', 'preact/hooks']);

  for (const target of Object.values(imports)) {
    const r = await curl(data, [`${url}/ui/${target.replace(/^\.\//, '')}`]);
    assert.equal(r.status, 200, `${target}: ${r.body.slice(0, 200)}`);
    assert.match(r.headers, /^content-type: text\/javascript; charset=utf-8$/im);
    assert.match(r.body, /\bexport\s*(\{|default\b)/, `${target} is not an ES module`);
  }
  // Every file of the dashboard folder is served (the allow-list is complete), without a token.
  for (const name of await readdir(DASHBOARD_FILES)) {
    const r = await curl(data, [`${url}/ui/${name}`]);
    assert.equal(r.status, 200, `${name}: ${r.body}`);
    assert.equal(r.body, await readFile(join(DASHBOARD_FILES, name), 'utf8'), name);
    assert.match(r.headers, new RegExp(`^content-type: ${name.endsWith('.css') ? 'text/css' : name.endsWith('.html') ? 'text/html' : 'text/javascript'}; charset=utf-8$`, 'im'));
  }
  // Nothing else: not the server's data, not other package files, not through encodings.
  for (const path of ['/ui/../admin-token', '/ui/%2e%2e/admin-token', '/ui/vendor/../app.js', '/ui/vendor/preact.js', '/ui/__proto__', '/ui/app.js.map', '/ui/vendor/', '/uix']) {
    const r = await curl(data, ['--path-as-is', `${url}${path}`]);
    assert.ok(r.status === 404, `${path}: HTTP ${r.status} ${r.body}`);
    assert.doesNotMatch(r.body, /[A-Za-z0-9_-]{40}/, `${path} leaked something`);
  }
  const post = await curl(data, ['-X', 'POST', `${url}/ui/`]);
  assert.equal(post.status, 405);
  // The API still needs the token.
  const api = await curl(data, [`${url}/v1/catalog/services`]);
  assert.equal(api.status, 401);
});

/** `weft demo` as a child process, stopped by PID (SIGTERM; SIGKILL for it and its children after 20 s). */
function startDemo(t: TestContext): { child: ChildProcess; output: () => string; dashboard: Promise<string> } {
  const child = spawn(process.execPath, [WEFT_MAIN, 'demo', '--base-port', String(BASE)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const dashboard = new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      output += `${line}\n`;
      const m = /^\s*(https:\/\/127\.0\.0\.1:\d+\/ui\/#token=\S+)$/.exec(line);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`weft demo exited (${code}) before printing the dashboard URL:\n${output}`)));
  });
  dashboard.catch(() => undefined); // awaited by the test; an exit after a timeout is no unhandled rejection
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.after(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const kids = (await readFile(`/proc/${child.pid!}/task/${child.pid!}/children`, 'utf8').catch(() => '')).trim().split(/\s+/).filter((s) => s !== '').map(Number);
    child.kill('SIGTERM');
    const stopped = (await within(exited.then(() => true), 20_000)) === true;
    if (!stopped) {
      child.kill('SIGKILL');
      for (const pid of kids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
      await exited;
    }
  });
  return { child, output: () => output, dashboard };
}

/** A number attribute of the element with this test id. */
async function figure(page: Page, testId: string, attribute: string): Promise<number> {
  const v = await page.getByTestId(testId).getAttribute(attribute);
  assert.ok(v !== null && v !== '', `${testId} has no ${attribute}`);
  return Number(v);
}

/** GET web's app `/` with up to `parallel` calls in flight, for at most `ms` and `max` calls; resolves with the count. */
async function drive(parallel: number, ms: number, max: number): Promise<number> {
  const deadline = Date.now() + ms;
  let sent = 0;
  const one = () =>
    new Promise<void>((resolve) => {
      const req = request({ host: '127.0.0.1', port: WEB_APP, path: '/', agent: false, timeout: 3000 }, (res) => res.resume().on('end', resolve).on('error', resolve));
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve());
      req.end();
    });
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (Date.now() < deadline && sent < max) {
        sent++;
        await one();
      }
    }),
  );
  return sent;
}

test('the dashboard of weft demo in headless Chromium: graph, live figures, plaintext edge, pages', { timeout: 180_000 }, async (t) => {
  await access(CHROMIUM).catch(() => assert.fail(`${CHROMIUM} is missing: scripts/install-deps.sh installs Debian's chromium`));
  const demo = startDemo(t);
  const url = await within(demo.dashboard, 90_000);
  assert.ok(url !== undefined, `no dashboard URL within 90 s:\n${demo.output()}`);
  const tcp = /\b(redis|echo) +(redis-server|echo app)\b/.exec(demo.output())?.[1];
  assert.ok(tcp !== undefined, demo.output());

  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  t.after(() => browser.close());
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`);
  });
  await mkdir(SCREENSHOTS, { recursive: true });
  const shots: string[] = [];

  // Overview: the token leaves the address bar; the graph shows the demo's services and edges.
  await page.goto(url);
  await page.getByTestId('node-web').waitFor({ timeout: 15_000 });
  assert.ok(!page.url().includes('token='), `the token is still in the address bar: ${page.url()}`);
  for (const n of ['web', 'api', tcp, 'unknown']) await page.getByTestId(`node-${n}`).waitFor({ timeout: 30_000 });
  const webApi = page.getByTestId('edge-web-api');
  const plain = page.getByTestId('edge-unknown-api');
  const tcpEdge = page.getByTestId(`edge-web-${tcp}`);
  await Promise.all([webApi, plain, tcpEdge].map((e) => e.waitFor({ timeout: 30_000 })));
  assert.equal(await webApi.getAttribute('data-tls'), 'true');
  assert.equal(await webApi.getAttribute('data-protocol'), 'http');
  assert.equal(await tcpEdge.getAttribute('data-tls'), 'true');
  assert.equal(await tcpEdge.getAttribute('data-protocol'), 'tcp');
  assert.match((await page.getByTestId(`edge-web-${tcp}-label`).textContent()) ?? '', /conn\/s/);
  // The plaintext edge is marked: the word, a dashed line, a colour other than the mTLS edges'.
  assert.equal(await plain.getAttribute('data-tls'), 'false');
  assert.equal((await page.getByTestId('edge-unknown-api-plaintext').textContent())?.trim(), 'plaintext');
  /** The line's computed dash pattern and colour (the test's TypeScript has no DOM types: the callback runs in the page). */
  type Css = { getComputedStyle(e: unknown): { strokeDasharray: string; stroke: string } };
  const style = (edge: typeof plain) =>
    edge.locator('line').evaluate((l) => {
      const css = (globalThis as unknown as Css).getComputedStyle(l);
      return [css.strokeDasharray, css.stroke];
    });
  const [plainDash, plainColour] = await style(plain);
  const [tlsDash, tlsColour] = await style(webApi);
  assert.notEqual(plainDash, 'none', 'the plaintext edge is not dashed');
  assert.equal(tlsDash, 'none', 'the mTLS edge is dashed');
  assert.notEqual(plainColour, tlsColour);
  assert.equal(await webApi.locator('.lock').count(), 1, 'the mTLS edge has no lock');
  assert.equal(await plain.locator('.lock').count(), 0, 'the plaintext edge has a lock');
  for (const s of ['web', 'api', tcp]) await page.getByTestId(`service-default-${s}`).waitFor();
  assert.match((await page.getByTestId('updated').textContent()) ?? '', /^updated \d+s ago$/);

  // The background traffic shows (≈5 rps); extra traffic through web's app raises web → api's rate.
  const deadline = Date.now() + 30_000;
  while ((await figure(page, 'edge-web-api', 'data-rps')) <= 0 && Date.now() < deadline) await sleep(500);
  const before = await figure(page, 'edge-web-api', 'data-rps');
  const labelBefore = await page.getByTestId('edge-web-api-label').textContent();
  assert.ok(before > 0, 'web → api shows no requests although the demo sends some');
  const sent = await drive(8, 6000, 5000);
  let after = before;
  for (let i = 0; i < 40 && after < before + 10; i++) {
    await sleep(500);
    after = await figure(page, 'edge-web-api', 'data-rps');
  }
  t.diagnostic(`web → api: ${before} rps before, ${after} rps after ${sent} extra requests`);
  assert.ok(after >= before + 10, `web → api: ${before} rps before, ${after} after ${sent} extra requests`);
  assert.notEqual(await page.getByTestId('edge-web-api-label').textContent(), labelBefore);
  shots.push(join(SCREENSHOTS, 'overview.png'));
  await page.screenshot({ path: shots.at(-1)!, fullPage: true });

  // Service page: reached from the graph; mTLS mode, the migration verdict, the edges in.
  await page.getByTestId('node-api').locator('a').click();
  await page.getByTestId('service-title').waitFor();
  assert.equal(await page.getByTestId('service-title').textContent(), 'default/api');
  assert.equal(await page.getByTestId('service-mtls').textContent(), 'permissive');
  assert.match((await page.getByTestId('service-verdict').textContent()) ?? '', /plaintext caller/);
  await page.getByTestId('row-edge-web-api').waitFor();
  await page.getByTestId('row-edge-unknown-api').waitFor();
  assert.match((await page.getByTestId('row-edge-unknown-api').textContent()) ?? '', /plaintext/);
  shots.push(join(SCREENSHOTS, 'service-api.png'));
  await page.screenshot({ path: shots.at(-1)!, fullPage: true });

  // Certificates: the CA and each sidecar's certificate with time left.
  await page.getByRole('link', { name: 'Certificates' }).click();
  await page.getByTestId('ca').waitFor();
  assert.match((await page.getByTestId('ca').textContent()) ?? '', /root/);
  const sidecars = page.getByTestId('sidecar-certificates');
  await sidecars.waitFor({ timeout: 15_000 });
  for (const s of ['web', 'api', tcp]) await sidecars.getByRole('link', { name: `default/${s}`, exact: true }).first().waitFor({ timeout: 15_000 });
  assert.match((await sidecars.getByTestId('time-left').first().textContent()) ?? '', /^\d+h \d+m/);
  shots.push(join(SCREENSHOTS, 'certificates.png'));
  await page.screenshot({ path: shots.at(-1)!, fullPage: true });

  // A wrong token shows the sign-in form with the API's message.
  const other = await context.newPage();
  await other.goto(`${url.replace(/#token=.*$/, '')}#token=wrong`);
  await other.getByTestId('login').waitFor();
  assert.match((await other.getByTestId('login').textContent()) ?? '', /admin token/);
  shots.push(join(SCREENSHOTS, 'sign-in.png'));
  await other.screenshot({ path: shots.at(-1)!, fullPage: true });

  assert.deepEqual(problems.filter((p) => !/status of 401/.test(p)), []);
  for (const s of shots) process.stdout.write(`screenshot: ${s}\n`);
});
