import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, rename, readFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer as createNetServer, type Server as NetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { admin, makeCa, metricValue, runWeft, startSidecar, type WeftProcess } from '../helpers/weft.js';
import { loadIssuerDir, issueLeaf } from '../../src/pki/issuer.js';

// Every case starts a real `weft sidecar` and checks that bad input stops it (or, on
// reload, is refused) with a message that names the problem and says what to fix.

let work = '';
let ca = '';
let otherCa = '';
/** A client certificate for spiffe://example.org/ns/default/svc/web. */
let web = { cert: '', key: '' };

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'weft-bad-input-'));
  ca = await makeCa(work, 'example.org', 'ca');
  otherCa = await makeCa(work, 'example.org', 'other-ca');
  const r = await runWeft(['ca', 'issue', '--issuer', ca, '--service', 'web', '--out', join(work, 'web')]);
  assert.equal(r.code, 0, r.stderr);
  web = { cert: await readFile(join(work, 'web', 'cert.pem'), 'utf8'), key: await readFile(join(work, 'web', 'key.pem'), 'utf8') };
});

after(async () => {
  if (work !== '') await rm(work, { recursive: true, force: true });
});

/** Writes `text` to `path` atomically (a watcher never sees a half-written file). */
async function writeAtomic(path: string, text: string): Promise<void> {
  await writeFile(`${path}.tmp`, text);
  await rename(`${path}.tmp`, path);
}

/** Runs `weft sidecar ARGS`, which must fail to start; returns its stderr. */
async function mustNotStart(args: string[]): Promise<string> {
  const r = await runWeft(['sidecar', ...args], { timeoutMs: 20_000 });
  assert.notEqual(r.code, 0, `weft sidecar ${args.join(' ')} started; stdout: ${r.stdout}`);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^weft sidecar: cannot start: /);
  return r.stderr;
}

function listenOn(server: NetServer | HttpServer): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const a = server.address();
      resolve(typeof a === 'object' && a !== null ? a.port : 0);
    });
  });
}

function closeServer(server: NetServer | HttpServer): Promise<void> {
  return new Promise((resolve) => {
    if ('closeAllConnections' in server) server.closeAllConnections();
    server.close(() => resolve());
  });
}

/** GET over mTLS with the web client certificate, on a fresh connection. */
function meshGet(address: string, path: string): Promise<{ status: number; body: string; error: string | undefined }> {
  const i = address.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: address.slice(0, i), port: Number(address.slice(i + 1)), path, cert: web.cert, key: web.key, rejectUnauthorized: false, agent: false, timeout: 5_000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, error: res.headers['weft-error'] as string | undefined }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** Resolves with the first log entry with `msg` logged at or after line `from` (bounded wait). */
async function logAfter(proc: WeftProcess, msg: string, from: number, timeoutMs = 10_000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 400 && Date.now() < deadline; i++) {
    for (const line of proc.lines.slice(from)) {
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        if (entry['msg'] === msg) return entry;
      } catch {
        // not JSON
      }
    }
    if (proc.child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no "${msg}" log line after line ${from} within ${timeoutMs} ms; stderr: ${proc.stderr()}; stdout: ${proc.lines.slice(from).join('\n')}`);
}

test('an unknown field is reported with its path and file:line:col, and what to do', async () => {
  const file = join(work, 'unknown-field.yaml');
  await writeFile(
    file,
    ['service: api', 'identity:', `  issuer: { dir: ${ca} }`, 'inbound:', '  lissten: 127.0.0.1:0', '  app: 127.0.0.1:9', 'admin: { listen: 127.0.0.1:0 }', ''].join('\n'),
  );
  const stderr = await mustNotStart(['-c', file]);
  // The typo is named, located at the key (line 5, column 3) and explained.
  assert.match(stderr, new RegExp(`${file.replace(/[.]/g, '\\.')}:5:3 inbound\\.lissten: unknown field "lissten"; check its spelling`));
  // The consequence (the real field is now missing) is reported in the same error.
  assert.match(stderr, /invalid configuration \(2 problems\)/);
  assert.match(stderr, /inbound\.listen: missing required field "listen".*add it/);
});

test('wrong types are all reported in one error', async () => {
  const file = join(work, 'wrong-types.yaml');
  await writeFile(
    file,
    [
      'service: api',
      'identity:',
      `  issuer: { dir: ${ca} }`,
      'inbound:',
      '  listen: 127.0.0.1:0',
      '  app: 127.0.0.1:9',
      '  mtls: strictt',
      'limits: { maxHeaders: "many" }',
      'admin: { listen: 127.0.0.1:0 }',
      '',
    ].join('\n'),
  );
  const stderr = await mustNotStart(['-c', file]);
  assert.match(stderr, /invalid configuration \(2 problems\)/);
  assert.match(stderr, new RegExp(`${file.replace(/[.]/g, '\\.')}:7:9 inbound\\.mtls: mtls must be strict or permissive \\(got "strictt"\\)`));
  assert.match(stderr, new RegExp(`${file.replace(/[.]/g, '\\.')}:8:23 limits\\.maxHeaders: .*expected number.*\\(got "many"\\)`));
});

test('a missing config file names the path and the -c flag', async () => {
  const stderr = await mustNotStart(['-c', '/nonexistent.yaml']);
  assert.match(stderr, /\/nonexistent\.yaml: cannot read the config file: ENOENT; check the path given to -c/);
});

test('a missing issuer directory says how to create one', async () => {
  const stderr = await mustNotStart(['--service', 'api', '--issuer', '/nonexistent', '--admin', '127.0.0.1:0']);
  assert.match(stderr, /"\/nonexistent" is not a weft CA directory: it needs intermediate\.pem and intermediate\.key/);
  assert.match(stderr, /create one with `weft ca init --out \/nonexistent --trust-domain TD`/);
});

test('missing issuer files name the file and what to pass', async () => {
  const stderr = await mustNotStart(['--service', 'api', '--issuer-cert', '/nonexistent/intermediate.pem', '--issuer-key', join(ca, 'intermediate.key'), '--admin', '127.0.0.1:0']);
  assert.match(stderr, /\/nonexistent\/intermediate\.pem/);
});

test('an inbound address in use is reported as such', async (t) => {
  const blocker = createNetServer();
  const port = await listenOn(blocker);
  t.after(() => closeServer(blocker));
  const stderr = await mustNotStart(['--service', 'api', '--issuer', ca, '--inbound', `127.0.0.1:${port}`, '--app', '127.0.0.1:9', '--admin', '127.0.0.1:0']);
  assert.match(stderr, new RegExp(`inbound cannot listen on 127\\.0\\.0\\.1:${port}: the address is already in use; choose another address or stop what holds it`));
});

test('an expired certificate file is refused with its expiry and what to do', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'weft-expired-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const issuer = await loadIssuerDir(ca);
  const leaf = await issueLeaf(issuer, { spiffeId: 'spiffe://example.org/ns/default/svc/api', ttlMs: 3_600_000, now: new Date(Date.now() - 2 * 3_600_000) });
  assert.ok(leaf.notAfter.getTime() < Date.now(), 'the test certificate must already be expired');
  await writeFile(join(dir, 'cert.pem'), leaf.certPem);
  await writeFile(join(dir, 'key.pem'), leaf.keyPem, { mode: 0o600 });
  const stderr = await mustNotStart([
    '--service', 'api',
    '--cert', join(dir, 'cert.pem'), '--key', join(dir, 'key.pem'), '--bundle', join(ca, 'bundle.pem'),
    '--inbound', '127.0.0.1:0', '--app', '127.0.0.1:9', '--admin', '127.0.0.1:0',
  ]);
  assert.match(stderr, /cert\.pem does not verify against .*bundle\.pem: .*expired at /);
  assert.match(stderr, /renew it or fix the trust bundle/);
});

test('a certificate from another CA does not verify against the bundle', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'weft-foreign-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const r = await runWeft(['ca', 'issue', '--issuer', otherCa, '--service', 'api', '--out', dir]);
  assert.equal(r.code, 0, r.stderr);
  // Control: the same certificate with its own CA's bundle starts.
  const good = await startSidecar(t, ['--service', 'api', '--cert', join(dir, 'cert.pem'), '--key', join(dir, 'key.pem'), '--bundle', join(otherCa, 'bundle.pem'), '--admin', '127.0.0.1:0']);
  assert.equal(await good.proc.stop(), 0);
  const stderr = await mustNotStart(['--service', 'api', '--cert', join(dir, 'cert.pem'), '--key', join(dir, 'key.pem'), '--bundle', join(ca, 'bundle.pem'), '--admin', '127.0.0.1:0']);
  assert.match(stderr, /cert\.pem does not verify against .*\/ca\/bundle\.pem: /);
  assert.match(stderr, /the bundle lacks the root CA/);
});

test('a rejected reload keeps the running configuration; a valid one applies', async (t) => {
  const app = createHttpServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`hello from app ${req.url}`);
  });
  const appPort = await listenOn(app);
  t.after(() => closeServer(app));
  const blocker = createNetServer();
  const busyPort = await listenOn(blocker);
  t.after(() => closeServer(blocker));

  const dir = await mkdtemp(join(tmpdir(), 'weft-reload-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'sidecar.yaml');
  const base = ['service: api', 'identity:', `  issuer: { dir: ${ca} }`, 'admin: { listen: 127.0.0.1:0 }'];
  const inbound = ['inbound:', '  listen: 127.0.0.1:0', `  app: 127.0.0.1:${appPort}`];
  await writeAtomic(file, [...base, ...inbound, ''].join('\n'));

  const { proc, admin: adminAddr, listeners } = await startSidecar(t, ['-c', file]);
  const inboundAddr = listeners['inbound']!;
  assert.ok(inboundAddr, `no inbound listener in ${JSON.stringify(listeners)}`);
  const first = await meshGet(inboundAddr, '/one');
  assert.equal(first.status, 200);
  assert.equal(first.body, 'hello from app /one');
  const config1 = JSON.parse((await admin(adminAddr, '/config')).body) as { version: number; config: { inbound: { mtls: string; allow?: string[] } } };
  assert.equal(config1.version, 1);

  // 1. An invalid file (unknown field + bad value), picked up by the file watch alone.
  let mark = proc.lines.length;
  await writeAtomic(file, [...base, ...inbound, '  mtls: strictt', '  lissten: 127.0.0.1:1', ''].join('\n'));
  const rejected = await logAfter(proc, 'configuration rejected; the running configuration keeps serving', mark);
  assert.match(String(rejected['error']), /inbound\.lissten: unknown field "lissten"/);
  assert.match(String(rejected['error']), /inbound\.mtls: mtls must be strict or permissive/);
  assert.equal(proc.child.exitCode, null, 'the sidecar must keep running');
  const during = await meshGet(inboundAddr, '/two');
  assert.equal(during.status, 200);
  assert.equal(during.body, 'hello from app /two');
  let metrics = (await admin(adminAddr, '/metrics')).body;
  assert.ok(metricValue(metrics, 'weft_config_reloads_total', { result: 'rejected' }) >= 1, metrics);
  assert.equal(metricValue(metrics, 'weft_config_reloads_total', { result: 'applied' }), 0);
  const config2 = JSON.parse((await admin(adminAddr, '/config')).body) as { version: number; lastReloadError: string | null; config: { inbound: { mtls: string } } };
  assert.equal(config2.version, 1);
  assert.equal(config2.config.inbound.mtls, 'strict');
  assert.match(config2.lastReloadError ?? '', /lissten/);

  // 2. A valid change: only another caller is allowed, so web now gets 403.
  mark = proc.lines.length;
  await writeAtomic(file, [...base, ...inbound, '  allow: [spiffe://example.org/ns/default/svc/billing]', ''].join('\n'));
  const applied = await logAfter(proc, 'configuration applied', mark);
  assert.ok(Number(applied['version']) >= 2);
  const denied = await meshGet(inboundAddr, '/three');
  assert.equal(denied.status, 403);
  assert.equal(denied.error, 'WEFT_E_FORBIDDEN');
  metrics = (await admin(adminAddr, '/metrics')).body;
  assert.ok(metricValue(metrics, 'weft_config_reloads_total', { result: 'applied' }) >= 1, metrics);
  const config3 = JSON.parse((await admin(adminAddr, '/config')).body) as { version: number; lastReloadError: string | null };
  assert.ok(config3.version >= 2);
  assert.equal(config3.lastReloadError, null);

  // 3. A reload adding an upstream on a port in use is rejected (SIGHUP); the allow-list stays.
  await new Promise((r) => setTimeout(r, 1_100)); // let any pending watch reload of step 2 finish first
  mark = proc.lines.length;
  const versionBefore = (JSON.parse((await admin(adminAddr, '/config')).body) as { version: number }).version;
  await writeAtomic(
    file,
    [...base, ...inbound, 'upstreams:', '  - name: db', `    listen: 127.0.0.1:${busyPort}`, '    endpoints: [127.0.0.1:9]', ''].join('\n'),
  );
  proc.child.kill('SIGHUP');
  const busy = await logAfter(proc, 'configuration rejected; the running configuration keeps serving', mark);
  assert.match(String(busy['error']), new RegExp(`upstream db cannot listen on 127\\.0\\.0\\.1:${busyPort}: the address is already in use`));
  const still = await meshGet(inboundAddr, '/four');
  assert.equal(still.status, 403, 'the previous configuration (with its allow-list) keeps serving');
  const config4 = JSON.parse((await admin(adminAddr, '/config')).body) as { version: number; addresses: { listeners: Record<string, string> } };
  assert.equal(config4.version, versionBefore);
  assert.deepEqual(Object.keys(config4.addresses.listeners), ['inbound']);
  assert.equal(proc.child.exitCode, null);
  assert.equal(await proc.stop(), 0);
});
