/**
 * `weft demo`: the self-check passes, and the commands the interactive demo prints really
 * do what their comments say (those that do not depend on work landing elsewhere: the
 * authorization denial and `weft migrate status` are printed, not run); SIGTERM stops the
 * whole mesh (sidecar processes and redis-server included), frees every port and removes
 * the demo's folder. The demo uses fixed loopback ports from --base-port, chosen below the
 * kernel's ephemeral range so port-0 listeners of other tests never take them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { access, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { runWeft, startWeft, WEFT_MAIN } from '../helpers/weft.js';

const WEB_ID = 'spiffe://demo.weft.internal/ns/default/svc/web';
/** Offsets from --base-port the demo listens on (admins, apps, web's outbounds, the control plane, sidecar inbounds). */
const OFFSETS = [1, 2, 3, 80, 81, 82, 101, 102, 443, 444, 445, 446];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs one printed command line with sh, as a user pasting it would (`npx weft` runs this build). */
function sh(line: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const command = line.replace(/^npx weft /, `'${process.execPath}' '${WEFT_MAIN}' `);
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', command], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.once('error', reject);
    child.once('close', (code) => (clearTimeout(timer), resolve({ code: code ?? 1, stdout, stderr })));
  });
}

/** Runs `line` until `ok` holds (the mesh converges within seconds), returning the last result. */
async function eventually(line: string, ok: (r: { code: number; stdout: string }) => boolean, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  let last = await sh(line);
  while (!ok(last) && Date.now() < deadline) {
    await sleep(250);
    last = await sh(line);
  }
  return last;
}

/** True when nothing listens on 127.0.0.1:port (we can bind it ourselves). */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** Whether redis-server is installed: the demo then runs Redis as its TCP service, else an echo server. */
async function onPath(program: string): Promise<boolean> {
  return (await sh(`command -v ${program}`)).code === 0;
}

test('weft demo --check passes all its checks', async () => {
  const r = await runWeft(['demo', '--check', '--base-port', '31000'], { timeoutMs: 90_000 });
  assert.equal(r.code, 0, `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  assert.equal(r.stdout.split('\n').filter((l) => /^ok\s/.test(l)).length, 7, r.stdout);
  assert.ok(!/FAIL/.test(r.stdout), r.stdout);
  for (const offset of OFFSETS) assert.ok(await portFree(31000 + offset), `port ${31000 + offset} still in use after --check`);
});

test('weft demo prints commands that work, and SIGTERM stops the whole mesh', async (t) => {
  const base = 31500;
  for (const offset of OFFSETS) assert.ok(await portFree(base + offset), `port ${base + offset} is taken; the demo cannot run`);
  const redis = await onPath('redis-server');
  const demo = startWeft(t, ['demo', '--base-port', String(base)]);
  const pid = demo.child.pid!;
  const children: number[] = [];
  // If the test fails midway the helper SIGKILLs the demo, which cannot stop its children:
  // stop those (by the PIDs recorded below) as well.
  t.after(async () => {
    for (const child of children) if (alive(child)) process.kill(child, 'SIGKILL');
  });

  const text = () => demo.lines.join('\n');
  for (let i = 0; i < 600 && !text().includes('Ctrl-C stops the mesh.'); i++) {
    if (demo.child.exitCode !== null) break;
    await sleep(100);
  }
  assert.ok(text().includes('Ctrl-C stops the mesh.'), `the demo did not come up:\n${text()}\n${demo.stderr()}`);
  const status = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
  children.push(...status.trim().split(/\s+/).filter((s) => s !== '').map(Number));
  assert.equal(children.length, redis ? 4 : 3, `expected three sidecar processes${redis ? ' and redis-server' : ''}, found: ${status}`);
  const dir = /Files and logs in (\S+)/.exec(text())?.[1];
  assert.ok(dir !== undefined && (await exists(dir)), text());
  t.after(() => rm(dir, { recursive: true, force: true })); // a SIGKILLed demo leaves it behind

  const commands = demo.lines.map((l) => l.trim()).filter((l) => /^(curl|npx weft|redis-cli|node -e) /.test(l));
  const webCurl = commands.find((c) => c === `curl -s http://127.0.0.1:${base + 80}/`);
  const plaintext = commands.find((c) => c.startsWith(`curl -s http://127.0.0.1:${base + 445}/`));
  const tcp = commands.find((c) => c.includes(String(base + 102)) && /^(redis-cli|node -e) /.test(c));
  const services = commands.find((c) => c.startsWith('npx weft services '));
  const strict = commands.find((c) => c.startsWith('npx weft apply -f ') && c.includes('/api-strict.yaml '));
  const printedToo = [
    commands.find((c) => c.startsWith('npx weft migrate status ')),
    commands.find((c) => c.startsWith('npx weft apply -f ') && c.includes('/deny-web.yaml ')),
    commands.find((c) => c.startsWith('npx weft delete AuthorizationPolicy deny-web ')),
    commands.find((c) => c.startsWith(`curl -si http://127.0.0.1:${base + 80}/`)),
  ];
  assert.ok(webCurl && plaintext && tcp && services && strict && printedToo.every((c) => c !== undefined), `printed commands:\n${commands.join('\n')}`);
  for (const c of [services, strict, ...printedToo.slice(0, 3)]) assert.match(c!, new RegExp(`--server https://127\\.0\\.0\\.1:${base + 443} --data ${dir}/server$`), c);

  // web's app → api through the mesh: api's app saw web's SPIFFE ID.
  const through = await sh(webCurl);
  assert.equal(through.code, 0, through.stderr);
  const answer = JSON.parse(through.stdout) as { service: string; api: { service: string; caller: string; xfcc: string } };
  assert.equal(answer.service, 'web');
  assert.equal(answer.api.service, 'api');
  assert.equal(answer.api.caller, WEB_ID);
  assert.ok(answer.api.xfcc.endsWith(`URI=${WEB_ID}`), answer.api.xfcc);

  // The TCP service through web's outbound listener.
  const pong = await sh(tcp);
  assert.equal(pong.code, 0, pong.stderr);
  assert.match(pong.stdout.trim(), redis ? /^\+?PONG$/ : /^hi$/, pong.stdout);

  // The catalog lists the three services, each with a passing instance.
  const tcpName = redis ? 'redis' : 'echo';
  const catalog = await eventually(services, (r) => ['api', 'web', tcpName].every((s) => new RegExp(`^${s}\\s+default\\s+1/1\\s+127\\.0\\.0\\.1:\\d+ passing`, 'm').test(r.stdout)));
  assert.equal(catalog.code, 0, catalog.stdout);
  for (const s of ['api', 'web', tcpName]) assert.match(catalog.stdout, new RegExp(`^${s}\\s+default\\s+1/1\\s+127\\.0\\.0\\.1:\\d+ passing`, 'm'));

  // api is permissive: plaintext straight to its inbound port is served, with no caller identity.
  const served = await sh(plaintext);
  assert.match(served.stdout, /"caller":null/, served.stdout);
  assert.match(served.stdout, /exit 0/, served.stdout);

  // api turns strict: the same plaintext call is refused within seconds; web → api still works.
  const applied = await sh(strict);
  assert.equal(applied.code, 0, applied.stderr);
  assert.match(applied.stdout, /^Service default\/api (created|configured)/, applied.stdout);
  const refused = await eventually(plaintext, (r) => !/exit 0/.test(r.stdout));
  const exit = /exit (\d+)/.exec(refused.stdout);
  assert.ok(exit, refused.stdout);
  assert.notEqual(Number(exit[1]), 0, refused.stdout);
  assert.doesNotMatch(refused.stdout, /service|HTTP\//, refused.stdout);
  const still = await sh(webCurl);
  assert.equal((JSON.parse(still.stdout) as { api: { caller: string } }).api.caller, WEB_ID, still.stdout);

  const code = await demo.stop();
  assert.equal(code, 0, `stderr: ${demo.stderr()}`);
  for (const child of children) assert.ok(!alive(child), `child process ${child} outlived the demo`);
  for (const offset of OFFSETS) assert.ok(await portFree(base + offset), `port ${base + offset} still in use after the demo stopped`);
  assert.ok(!(await exists(dir)), `${dir} is still there after the demo stopped`);
});
