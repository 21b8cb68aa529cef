import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCa, runWeft, startWeft } from '../helpers/weft.js';

// `weft run`: starts the sidecar, waits for it, starts the app, relays exit codes and
// signals, drains on SIGTERM, and stops the app when the sidecar dies.

let work = '';
let ca = '';
let web = { cert: '', key: '' };

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'weft-launcher-'));
  ca = await makeCa(work);
  const r = await runWeft(['ca', 'issue', '--issuer', ca, '--service', 'web', '--out', join(work, 'web')]);
  assert.equal(r.code, 0, r.stderr);
  web = { cert: await readFile(join(work, 'web', 'cert.pem'), 'utf8'), key: await readFile(join(work, 'web', 'key.pem'), 'utf8') };
});

after(async () => {
  if (work !== '') await rm(work, { recursive: true, force: true });
});

/** A loopback port that was free a moment ago. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a !== null ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** PIDs of the direct children of `pid` (from /proc). */
async function childrenOf(pid: number): Promise<number[]> {
  const out: number[] = [];
  const tasks = await readdir(`/proc/${pid}/task`).catch(() => [] as string[]);
  for (const task of tasks) {
    const text = await readFile(`/proc/${pid}/task/${task}/children`, 'utf8').catch(() => '');
    for (const p of text.trim().split(/\s+/)) if (p !== '') out.push(Number(p));
  }
  return out;
}

async function cmdline(pid: number): Promise<string> {
  return (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).replace(/\0/g, ' ').trim();
}

/** True while `pid` exists and is not a zombie. */
async function alive(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  if (stat === '') return false;
  return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
}

/** Polls (bounded) until `pred` holds; returns whether it did. */
async function until(pred: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 1000 && Date.now() < deadline; i++) {
    if (await pred()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return pred();
}

/**
 * Finds `weft run`'s sidecar and app children (waiting for both to exist), and registers
 * their SIGKILL after the test, in case weft run itself is killed and orphans them.
 */
async function launchedChildren(t: { after: (fn: () => Promise<void>) => void }, runPid: number, appMatch: string): Promise<{ sidecar: number; app: number }> {
  let found: { sidecar: number; app: number } | null = null;
  await until(async () => {
    let sidecar = 0;
    let app = 0;
    for (const pid of await childrenOf(runPid)) {
      const cmd = await cmdline(pid);
      if (/ sidecar /.test(` ${cmd} `)) sidecar = pid;
      else if (cmd.includes(appMatch)) app = pid;
    }
    if (sidecar !== 0 && app !== 0) found = { sidecar, app };
    return found !== null;
  }, 10_000);
  assert.ok(found, `weft run (${runPid}) should have a sidecar and an app child`);
  const pids: { sidecar: number; app: number } = found;
  t.after(async () => {
    for (const [pid, match] of [[pids.sidecar, 'sidecar'], [pids.app, appMatch]] as const) {
      if ((await alive(pid)) && (await cmdline(pid)).includes(match)) process.kill(pid, 'SIGKILL');
    }
  });
  return pids;
}

function meshGet(address: string, path: string): Promise<{ status: number; body: string }> {
  const i = address.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: address.slice(0, i), port: Number(address.slice(i + 1)), path, cert: web.cert, key: web.key, rejectUnauthorized: false, agent: false, timeout: 10_000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}

test('weft run exits with the app exit code', async () => {
  const common = ['run', '--service', 'job', '--issuer', ca, '--admin', '127.0.0.1:0', '--'];
  const [seven, zero, missing] = await Promise.all([
    runWeft([...common, 'sh', '-c', 'exit 7']),
    runWeft([...common, 'true']),
    runWeft([...common, 'weft-no-such-command-xyz', '--flag']),
  ]);
  assert.equal(seven.code, 7, seven.stderr);
  assert.match(seven.stdout, /"msg":"sidecar ready"/, 'the sidecar log is relayed on stdout');
  assert.equal(zero.code, 0, zero.stderr);
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /weft run: cannot start weft-no-such-command-xyz: .*ENOENT/);
  assert.match(missing.stderr, /check the command after --/);
});

test('weft run without a command, or with a sidecar that cannot start, does not start the app', async () => {
  const none = await runWeft(['run', '--service', 'job', '--issuer', ca, '--admin', '127.0.0.1:0']);
  assert.notEqual(none.code, 0);
  assert.match(none.stderr, /no app command: put it after --/);
  const marker = join(work, 'app-ran');
  const broken = await runWeft(['run', '--service', 'job', '--issuer', '/nonexistent', '--admin', '127.0.0.1:0', '--', 'sh', '-c', `touch ${marker}`]);
  assert.equal(broken.code, 1);
  assert.match(broken.stderr, /weft sidecar: cannot start: "\/nonexistent" is not a weft CA directory/);
  assert.match(broken.stderr, /the sidecar did not start .*the app was not started/);
  await assert.rejects(readFile(marker), 'the app must not have run');
});

test('the app starts only after the sidecar is ready', async () => {
  const adminPort = await freePort();
  const r = await runWeft([
    'run', '--service', 'job', '--issuer', ca, '--admin', `127.0.0.1:${adminPort}`, '--',
    'sh', '-c', `curl -sS -f --max-time 5 http://127.0.0.1:${adminPort}/ready && curl -sS -f --max-time 5 http://127.0.0.1:${adminPort}/certs`,
  ]);
  assert.equal(r.code, 0, `the app did not find the sidecar ready: ${r.stderr}`);
  assert.match(r.stdout, /^ready$/m);
  assert.match(r.stdout, /"spiffeId": "spiffe:\/\/example\.org\/ns\/default\/svc\/job"/);
});

test('SIGTERM drains in-flight requests, then stops the app, and exits with its code', async (t) => {
  const appPort = await freePort();
  const appSource = `
    const http = require('node:http');
    const body = 'x'.repeat(65536) + 'END';
    let pending = 0;
    const server = http.createServer((req, res) => {
      pending++;
      res.on('close', () => pending--);
      if (req.url === '/slow') setTimeout(() => res.end(body), 2000);
      else res.end('fast');
    });
    server.listen(${appPort}, '127.0.0.1', () => console.log(JSON.stringify({ msg: 'app listening' })));
    // Exits at once: a request still in flight here would be cut off.
    process.on('SIGTERM', () => {
      console.log(JSON.stringify({ msg: 'app got SIGTERM', pending }));
      server.close();
      process.exit(0);
    });`;
  const run = startWeft(t, [
    'run', '--service', 'api', '--issuer', ca, '--inbound', '127.0.0.1:0', '--app', `127.0.0.1:${appPort}`, '--admin', '127.0.0.1:0', '--drain-timeout', '10s',
    '--', process.execPath, '-e', appSource,
  ]);
  const ready = await run.waitFor('sidecar ready');
  const inbound = (ready['listeners'] as Record<string, string>)['inbound']!;
  assert.ok(inbound);
  await run.waitFor('app listening');
  await launchedChildren(t, run.child.pid!, '-e');
  assert.deepEqual(await meshGet(inbound, '/fast'), { status: 200, body: 'fast' });

  const started = Date.now();
  const slow = meshGet(inbound, '/slow');
  let slowDone = false;
  void slow.then(() => (slowDone = true), () => (slowDone = true));
  await new Promise((r) => setTimeout(r, 300));
  run.child.kill('SIGTERM');

  // New connections are refused while the slow request is still in flight.
  let refusedWhileInFlight = false;
  for (let i = 0; i < 30 && !slowDone; i++) {
    await new Promise((r) => setTimeout(r, 50));
    try {
      await meshGet(inbound, '/fast');
    } catch {
      refusedWhileInFlight = !slowDone;
      break;
    }
  }
  assert.ok(refusedWhileInFlight, 'a new connection after SIGTERM should fail while the slow request drains');

  const res = await slow;
  assert.equal(res.status, 200);
  assert.equal(res.body.length, 65536 + 3);
  assert.ok(res.body.endsWith('END'));
  assert.ok(Date.now() - started >= 1_900, 'the slow request took its full time');
  assert.equal(await Promise.race([run.exited, new Promise((r) => setTimeout(() => r('timeout'), 15_000))]), 0);
  // The app was told to stop only after the drain: nothing was in flight when SIGTERM came.
  const sigterm = await run.waitFor('app got SIGTERM', 1_000);
  assert.equal(sigterm['pending'], 0);
  await assert.rejects(meshGet(inbound, '/fast'), 'nothing listens after exit');
});

test('when the sidecar dies, weft run stops the app and exits non-zero', async (t) => {
  const run = startWeft(t, ['run', '--service', 'job', '--issuer', ca, '--admin', '127.0.0.1:0', '--', 'sleep', '30']);
  await run.waitFor('sidecar ready');
  const { sidecar, app } = await launchedChildren(t, run.child.pid!, 'sleep');
  assert.match(await cmdline(app), /^sleep 30$/);
  const killedAt = Date.now();
  process.kill(sidecar, 'SIGKILL');
  const code = await Promise.race([run.exited, new Promise<string>((r) => setTimeout(() => r('timeout'), 8_000))]);
  assert.notEqual(code, 'timeout', 'weft run should exit within a few seconds');
  assert.notEqual(code, 0);
  assert.ok(Date.now() - killedAt < 8_000);
  assert.match(run.stderr(), /weft run: the sidecar exited unexpectedly \(SIGKILL\); stopping the app/);
  assert.ok(await until(async () => !(await alive(app)), 5_000), 'the app (sleep) should be gone');
});
