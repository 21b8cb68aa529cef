/**
 * `weft demo`: the self-check passes, and the curl commands the interactive demo prints
 * really do what their comments say; SIGTERM stops the whole mesh (its sidecar processes
 * included) and frees every port. The demo uses fixed loopback ports from --base-port,
 * chosen below the kernel's ephemeral range so port-0 listeners of other tests never take them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { runWeft, startWeft } from '../helpers/weft.js';

const WEB_ID = 'spiffe://demo.weft.internal/ns/default/svc/web';
/** Offsets from --base-port the demo listens on (apps, sidecar inbounds, outbound, admins). */
const OFFSETS = [1, 2, 80, 81, 101, 443, 444];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs one printed command line with sh, as a user pasting it would. */
function sh(line: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', line], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.once('error', reject);
    child.once('close', (code) => (clearTimeout(timer), resolve({ code: code ?? 1, stdout, stderr })));
  });
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

test('weft demo --check passes all its checks', async () => {
  const r = await runWeft(['demo', '--check', '--base-port', '31000'], { timeoutMs: 60_000 });
  assert.equal(r.code, 0, `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  const lines = r.stdout.split('\n').filter((l) => l.trim() !== '');
  assert.equal(lines.filter((l) => /^ok\s/.test(l)).length, 5, r.stdout);
  assert.ok(!/FAIL/.test(r.stdout), r.stdout);
  for (const offset of OFFSETS) assert.ok(await portFree(31000 + offset), `port ${31000 + offset} still in use after --check`);
});

test('weft demo prints curl commands that work, and SIGTERM stops the whole mesh', async (t) => {
  const base = 31500;
  for (const offset of OFFSETS) assert.ok(await portFree(base + offset), `port ${base + offset} is taken; the demo cannot run`);
  const demo = startWeft(t, ['demo', '--base-port', String(base)]);
  const pid = demo.child.pid!;
  const children: number[] = [];
  // If the test fails midway the helper SIGKILLs the demo, which cannot stop its sidecars:
  // stop those (by the PIDs recorded below) as well.
  t.after(async () => {
    for (const child of children) if (alive(child)) process.kill(child, 'SIGKILL');
  });

  const text = () => demo.lines.join('\n');
  for (let i = 0; i < 300 && !text().includes('Ctrl-C stops the mesh.'); i++) {
    if (demo.child.exitCode !== null) break;
    await sleep(100);
  }
  assert.ok(text().includes('Ctrl-C stops the mesh.'), `the demo did not come up:\n${text()}\n${demo.stderr()}`);
  const status = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
  children.push(...status.trim().split(/\s+/).filter((s) => s !== '').map(Number));
  assert.equal(children.length, 2, `expected the demo to run two sidecar processes, found: ${status}`);

  const commands = demo.lines.map((l) => l.trim()).filter((l) => l.startsWith('curl '));
  const webToApi = commands.find((c) => c.includes(`127.0.0.1:${base + 101}/`));
  const plaintext = commands.find((c) => c.startsWith(`curl -s http://127.0.0.1:${base + 444}/`));
  const intruder = commands.find((c) => c.includes('--cert') && c.includes(`https://127.0.0.1:${base + 444}/`));
  assert.ok(webToApi && plaintext && intruder, `printed commands:\n${commands.join('\n')}`);

  // web → api through web's outbound port: api's app sees web's SPIFFE ID.
  const through = await sh(webToApi);
  assert.equal(through.code, 0, through.stderr);
  const answer = JSON.parse(through.stdout) as { service: string; caller: string; xfcc: string };
  assert.equal(answer.service, 'api');
  assert.equal(answer.caller, WEB_ID);
  assert.ok(answer.xfcc.endsWith(`URI=${WEB_ID}`), answer.xfcc);

  // Plaintext to api's strict mTLS port: curl fails and prints no response.
  const plain = await sh(plaintext);
  const exit = /exit (\d+)/.exec(plain.stdout);
  assert.ok(exit, plain.stdout);
  assert.notEqual(Number(exit[1]), 0, plain.stdout);
  assert.doesNotMatch(plain.stdout, /service|HTTP\//, plain.stdout);

  // A certificate from the same CA for a service api does not allow: 403.
  const denied = await sh(intruder);
  assert.match(denied.stdout, /^HTTP\/1\.1 403/, denied.stdout);
  assert.match(denied.stdout, /^weft-error: WEFT_E_FORBIDDEN\r?$/im, denied.stdout);

  const code = await demo.stop();
  assert.equal(code, 0, `stderr: ${demo.stderr()}`);
  for (const child of children) assert.ok(!alive(child), `sidecar process ${child} outlived the demo`);
  for (const offset of OFFSETS) assert.ok(await portFree(base + offset), `port ${base + offset} still in use after the demo stopped`);
});
