/**
 * Certificate rotation while traffic flows. A web sidecar calls an api sidecar over mTLS on
 * loopback; both self-issue 20 s certificates, so each renews about every 10 s. Requests
 * run through web's outbound listener the whole time (keep-alive, a fresh connection each,
 * and growing bursts that make web open new mTLS connections to api after every renewal)
 * and not one may fail. A second test swaps watched certificate files under a running
 * sidecar, then writes a broken file that must be ignored.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { createServer, get as httpGet } from 'node:http';
import { connect as tlsConnect } from 'node:tls';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { admin, makeCa, metricValue, runWeft, startSidecar, tempDir } from '../helpers/weft.js';

const APP_BODY = 'api says hello\n';
const LOAD_MS = 60_000;
const MAX_REQUESTS = 20_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Certs {
  serial: string;
  spiffeId: string;
  source: string;
}

async function certs(adminAddress: string): Promise<Certs> {
  const r = await admin(adminAddress, '/certs');
  assert.equal(r.status, 200, r.body);
  return JSON.parse(r.body) as Certs;
}

async function metrics(adminAddress: string): Promise<string> {
  return (await admin(adminAddress, '/metrics')).body;
}

/** How many JSON log lines carry `msg`. */
function countLog(lines: readonly string[], msg: string): number {
  return lines.filter((line) => line.includes(`"msg":${JSON.stringify(msg)}`)).length;
}

/** An inline app: answers every request with APP_BODY and records the caller certificate hashes it is told about. */
async function startApp(t: TestContext): Promise<{ address: string; count: () => number; callerHashes: Set<string> }> {
  let count = 0;
  const callerHashes = new Set<string>();
  const server = createServer((req, res) => {
    count++;
    const hash = /;Hash=([0-9a-f]+);/.exec(String(req.headers['x-forwarded-client-cert'] ?? ''))?.[1];
    if (hash !== undefined) callerHashes.add(hash);
    req.resume();
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(APP_BODY) });
    res.end(APP_BODY);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => (server.close(() => resolve()), server.closeAllConnections())));
  const a = server.address();
  assert.ok(a !== null && typeof a === 'object');
  return { address: `127.0.0.1:${a.port}`, count: () => count, callerHashes };
}

async function issue(ca: string, service: string, out: string, ttl = '1h'): Promise<string> {
  const r = await runWeft(['ca', 'issue', '--issuer', ca, '--service', service, '--ttl', ttl, '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  return out;
}

/** A GET on a connection of its own (agent: false): status and body, or status 0 and the error. */
function getFresh(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = httpGet(url, { agent: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', (err) => resolve({ status: 0, body: err.message }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (err) => resolve({ status: 0, body: err.message }));
  });
}

/** A GET through the shared keep-alive pool of fetch (undici). */
async function getKeepAlive(url: string): Promise<{ status: number; body: string }> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    return { status: res.status, body: await res.text() };
  } catch (err) {
    return { status: 0, body: String((err as Error).cause ?? err) };
  }
}

/** Serial (lowercase hex, as /certs reports it) of the first certificate in PEM text. */
function pemSerial(pem: string): string {
  const block = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pem);
  assert.ok(block, `no certificate in:\n${pem}`);
  return new X509Certificate(block[0]).serialNumber.toLowerCase();
}

/** Serial of the certificate a server presents to a new connection, as `openssl s_client -showcerts` sees it. */
function sClientServerSerial(address: string, clientCert: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const cert = join(clientCert, 'cert.pem');
    const child = spawn('openssl', ['s_client', '-connect', address, '-showcerts', '-cert', cert, '-cert_chain', cert, '-key', join(clientCert, 'key.pem')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('error', reject);
    child.once('close', () => {
      clearTimeout(timer);
      try {
        resolve(pemSerial(out));
      } catch (err) {
        reject(err as Error);
      }
    });
  });
}

/** The current /certs serial of a sidecar and the serial s_client sees, read until no renewal falls in between. */
async function assertServesCurrentCert(adminAddress: string, address: string, clientCert: string): Promise<string> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const before = (await certs(adminAddress)).serial;
    const seen = await sClientServerSerial(address, clientCert);
    const afterSerial = (await certs(adminAddress)).serial;
    if (before !== afterSerial) continue; // a renewal happened meanwhile; look again
    assert.equal(seen, before, 'a new connection must be served with the certificate /certs reports');
    return seen;
  }
  assert.fail('the certificate kept changing during three s_client attempts');
}

test('rotation under load: both sidecars renew several times and no request fails', async (t) => {
  const dir = await tempDir(t);
  const ca = await makeCa(dir);
  const webCert = await issue(ca, 'web', join(dir, 'web-client'));
  const app = await startApp(t);
  const api = await startSidecar(t, ['--service', 'api', '--issuer', ca, '--inbound', '127.0.0.1:0', '--app', app.address, '--ttl', '20s', '--admin', '127.0.0.1:0']);
  const apiInbound = api.listeners['inbound']!;
  const web = await startSidecar(t, ['--service', 'web', '--issuer', ca, '--upstream', `api=127.0.0.1:0=${apiInbound}`, '--ttl', '20s', '--admin', '127.0.0.1:0']);
  const outbound = web.listeners['upstream api'];
  assert.ok(outbound, JSON.stringify(web.listeners));

  const sides = { api: api.admin, web: web.admin };
  const serials: Record<keyof typeof sides, string[]> = { api: [], web: [] };
  const renewalsBefore: Record<keyof typeof sides, number> = { api: 0, web: 0 };
  for (const [name, adminAddress] of Object.entries(sides) as [keyof typeof sides, string][]) {
    serials[name].push((await certs(adminAddress)).serial);
    renewalsBefore[name] = metricValue(await metrics(adminAddress), 'weft_certificate_renewals_total', { result: 'renewed' });
  }
  const initialApiSerial = serials.api[0]!;

  const start = Date.now();
  const deadline = start + LOAD_MS;
  let sent = 0;
  let ok = 0;
  const failures: string[] = [];
  const more = () => Date.now() < deadline && sent < MAX_REQUESTS;
  let failed = 0;
  const check = (kind: string, r: { status: number; body: string }) => {
    if (r.status === 200 && r.body === APP_BODY) ok++;
    else if (++failed <= 20) failures.push(`${kind} at +${Date.now() - start} ms: ${r.status} ${r.body.slice(0, 200)}`);
  };
  const url = `http://${outbound}/`;

  const keepAlive = async () => {
    while (more()) {
      sent++;
      check('keep-alive', await getKeepAlive(`${url}ka`));
      await sleep(10);
    }
  };
  const fresh = async () => {
    while (more()) {
      sent++;
      check('fresh connection', await getFresh(`${url}fresh`));
      await sleep(20);
    }
  };
  // Each burst is one request wider than the last, so web's pool must open a new mTLS
  // connection to api every 2 s, with whatever certificate web holds at that moment.
  const bursts = async () => {
    for (let width = 2; more(); width = Math.min(width + 1, 40)) {
      const batch = Array.from({ length: width }, () => (sent++, getKeepAlive(`${url}burst`)));
      for (const r of await Promise.all(batch)) check('burst', r);
      await sleep(2_000);
    }
  };
  const poll = async () => {
    while (more()) {
      await sleep(1_000);
      for (const [name, adminAddress] of Object.entries(sides) as [keyof typeof sides, string][]) {
        const serial = (await certs(adminAddress)).serial;
        if (serial !== serials[name].at(-1)) serials[name].push(serial);
      }
    }
  };
  await Promise.all([keepAlive(), fresh(), bursts(), poll()]);

  t.diagnostic(`${sent} requests in ${Date.now() - start} ms; serials api=${serials.api.length} web=${serials.web.length}; caller hashes at api=${app.callerHashes.size}`);
  assert.deepEqual(failures, [], `${failed} of ${sent} requests failed (first 20 shown)`);
  assert.equal(ok, sent);
  assert.ok(sent >= 1_000, `only ${sent} requests were sent`);
  for (const name of ['api', 'web'] as const) {
    assert.ok(serials[name].length >= 3, `${name} showed serials ${serials[name].join(', ')}: expected at least two renewals`);
    assert.equal(new Set(serials[name]).size, serials[name].length, `${name} went back to an old serial: ${serials[name].join(', ')}`);
    const text = await metrics(sides[name]);
    const renewed = metricValue(text, 'weft_certificate_renewals_total', { result: 'renewed' });
    assert.ok(renewed - renewalsBefore[name] >= 2, `${name}: weft_certificate_renewals_total{result="renewed"} went from ${renewalsBefore[name]} to ${renewed}`);
    assert.equal(metricValue(text, 'weft_certificate_renewals_total', { result: 'error' }), 0, text);
  }
  // web presented its renewed certificates on the new connections it opened to api.
  assert.ok(app.callerHashes.size >= 3, `api saw only ${app.callerHashes.size} distinct caller certificates`);

  // A new connection to api is served with api's current (renewed) certificate.
  const served = await assertServesCurrentCert(api.admin, apiInbound, webCert);
  assert.notEqual(served, initialApiSerial);
});

test('certificate files: a new set is picked up, a broken one is ignored', async (t) => {
  const dir = await tempDir(t);
  const ca = await makeCa(dir);
  const first = await issue(ca, 'api', join(dir, 'first'));
  const second = await issue(ca, 'api', join(dir, 'second'));
  const client = await issue(ca, 'web', join(dir, 'web'));
  const live = join(dir, 'live');
  await mkdir(live);
  /** Replaces a live file atomically (write a temporary file, then rename it over the old one). */
  const replace = async (name: string, text: string) => {
    await writeFile(join(live, `.${name}.tmp`), text, { mode: 0o600 });
    await rename(join(live, `.${name}.tmp`), join(live, name));
  };
  const install = async (from: string) => {
    // Key first, then certificate: in between the set is inconsistent and must be skipped.
    await replace('key.pem', await readFile(join(from, 'key.pem'), 'utf8'));
    await replace('cert.pem', await readFile(join(from, 'cert.pem'), 'utf8'));
  };
  await replace('bundle.pem', await readFile(join(first, 'bundle.pem'), 'utf8'));
  await install(first);
  const firstSerial = pemSerial(await readFile(join(first, 'cert.pem'), 'utf8'));
  const secondSerial = pemSerial(await readFile(join(second, 'cert.pem'), 'utf8'));
  assert.notEqual(firstSerial, secondSerial);

  const app = await startApp(t);
  const sc = await startSidecar(t, [
    '--service', 'api', '--cert', join(live, 'cert.pem'), '--key', join(live, 'key.pem'), '--bundle', join(live, 'bundle.pem'),
    '--inbound', '127.0.0.1:0', '--app', app.address, '--admin', '127.0.0.1:0',
  ]);
  const inbound = sc.listeners['inbound']!;
  const initial = await certs(sc.admin);
  assert.equal(initial.source, 'files');
  assert.equal(initial.serial, firstSerial);

  // Requests over mTLS, a new connection each, noting the server certificate every one saw.
  const [cert, key, bundle] = await Promise.all(['cert.pem', 'key.pem', 'bundle.pem'].map((f) => readFile(join(client, f), 'utf8')));
  const [host, port] = inbound.split(':') as [string, string];
  const request = () =>
    new Promise<{ ok: boolean; serial: string; detail: string }>((resolve) => {
      const socket = tlsConnect({ host, port: Number(port), cert, key, ca: bundle, checkServerIdentity: () => undefined });
      let received = '';
      let serial = '';
      const timer = setTimeout(() => socket.destroy(new Error('timed out')), 5_000);
      socket.once('secureConnect', () => {
        serial = socket.getPeerX509Certificate()?.serialNumber.toLowerCase() ?? '';
        socket.write('GET / HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n');
      });
      socket.on('data', (d: Buffer) => (received += d.toString()));
      socket.once('error', (err) => (clearTimeout(timer), resolve({ ok: false, serial, detail: err.message })));
      socket.once('close', () => {
        clearTimeout(timer);
        resolve({ ok: received.startsWith('HTTP/1.1 200') && received.endsWith(APP_BODY), serial, detail: received.slice(0, 200) });
      });
    });
  let stop = false;
  const results: { at: number; ok: boolean; serial: string; detail: string }[] = [];
  const loop = (async () => {
    for (let i = 0; i < 2_000 && !stop; i++) {
      results.push({ at: Date.now(), ...(await request()) });
      await sleep(50);
    }
  })();

  try {
    await sleep(500);
    const swappedAt = Date.now();
    await install(second);
    let seen = initial.serial;
    while (seen !== secondSerial && Date.now() - swappedAt < 5_000) {
      await sleep(100);
      seen = (await certs(sc.admin)).serial;
    }
    const took = Date.now() - swappedAt;
    assert.equal(seen, secondSerial, 'the new certificate files were not picked up');
    assert.ok(took <= 3_500, `the new certificate took ${took} ms to appear in /certs`);
    await sc.proc.waitFor('certificate files reloaded', 1_000);
    await sleep(500);
    const afterSwap = Date.now();

    // A broken certificate file: logged, counted, and the last good certificate keeps serving.
    const errorsBefore = metricValue(await metrics(sc.admin), 'weft_certificate_renewals_total', { result: 'error' });
    const unusable = 'certificate files changed but are not usable yet; keeping the current certificate';
    const warningsBefore = countLog(sc.proc.lines, unusable);
    await replace('cert.pem', '-----BEGIN CERTIFICATE-----\nthis is not a certificate\n-----END CERTIFICATE-----\n');
    for (let i = 0; i < 50 && countLog(sc.proc.lines, unusable) === warningsBefore; i++) await sleep(100);
    assert.ok(countLog(sc.proc.lines, unusable) > warningsBefore, `no "${unusable}" log line for the broken file`);
    await sleep(1_500);
    assert.equal((await certs(sc.admin)).serial, secondSerial);
    assert.ok(metricValue(await metrics(sc.admin), 'weft_certificate_renewals_total', { result: 'error' }) > errorsBefore);
    stop = true;
    await loop;

    const failed = results.filter((r) => !r.ok);
    assert.deepEqual(failed, [], `${failed.length} of ${results.length} requests failed`);
    assert.ok(results.length >= 20, `only ${results.length} requests`);
    const late = results.filter((r) => r.at >= afterSwap);
    assert.ok(late.length >= 10, `only ${late.length} requests after the swap`);
    for (const r of late) assert.equal(r.serial, secondSerial, 'new connections after the swap must get the new certificate');
    assert.equal(results[0]!.serial, firstSerial);
    assert.equal(await sClientServerSerial(inbound, client), secondSerial);
  } finally {
    stop = true;
    await loop;
  }
});
