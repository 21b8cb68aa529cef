import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { mkdtemp, mkdir, rm, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { WeftError } from '../errors.js';
import { createRoot, createIntermediate } from '../pki/ca.js';
import { loadIssuer, issueLeaf } from '../pki/issuer.js';
import { serviceSpiffeId } from '../pki/spiffe.js';

const TRUST_DOMAIN = 'demo.weft.internal';

/** The demo's fixed loopback ports, derived from --base-port. */
function ports(base: number) {
  return {
    webApp: base + 80,
    apiApp: base + 81,
    webInbound: base + 443,
    apiInbound: base + 444,
    webToApi: base + 101,
    webAdmin: base + 1,
    apiAdmin: base + 2,
  };
}

/**
 * `weft demo`: a CA, two demo apps (web and api) on loopback, each behind its own
 * `weft sidecar` process, web calling api over mTLS through its outbound listener. Prints
 * curl commands that show identities at work, then runs until Ctrl-C. `--check` runs
 * those checks itself and exits 0 when all pass.
 */
export async function demoCommand(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ args: argv, options: { 'base-port': { type: 'string', default: '18000' }, check: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, strict: true }));
  } catch (err) {
    throw new WeftError('WEFT_E_USAGE', `${(err as Error).message}; usage: weft demo [--base-port N] [--check]`);
  }
  if (values.help) {
    process.stdout.write('weft demo [--base-port 18000] [--check]\n  Runs a two-service mesh on loopback ports base+1..base+444.\n');
    return 0;
  }
  const base = Number(values['base-port']);
  if (!Number.isInteger(base) || base < 1024 || base > 65000) throw new WeftError('WEFT_E_USAGE', '--base-port must be a whole number from 1024 to 65000');
  const p = ports(base);
  const dir = await mkdtemp(join(tmpdir(), 'weft-demo-'));
  const children: ChildProcess[] = [];
  const servers: Server[] = [];
  const cleanup = async () => {
    await Promise.all(children.map((c) => stopChild(c)));
    for (const s of servers) s.close();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await writeDemoPki(dir);
    servers.push(await listen(apiApp(), p.apiApp), await listen(webApp(p.webToApi), p.webApp));
    const sidecar = (args: string[]) => startSidecar(args, children);
    await Promise.all([
      sidecar(['--service', 'api', '--issuer', join(dir, 'ca'), '--inbound', `127.0.0.1:${p.apiInbound}`, '--app', `127.0.0.1:${p.apiApp}`,
        '--allow', serviceSpiffeId(TRUST_DOMAIN, 'default', 'web'), '--admin', `127.0.0.1:${p.apiAdmin}`, '--ttl', '1h']),
      sidecar(['--service', 'web', '--issuer', join(dir, 'ca'), '--inbound', `127.0.0.1:${p.webInbound}`, '--app', `127.0.0.1:${p.webApp}`,
        '--upstream', `api=127.0.0.1:${p.webToApi}=127.0.0.1:${p.apiInbound}`, '--admin', `127.0.0.1:${p.webAdmin}`, '--ttl', '1h']),
    ]);
    if (values.check) {
      const ok = await runChecks(dir, p);
      await cleanup();
      return ok ? 0 : 1;
    }
    process.stdout.write(instructions(dir, p));
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    process.stdout.write('\nstopping the demo mesh…\n');
    await cleanup();
    return 0;
  } catch (err) {
    await cleanup();
    throw err;
  }
}

async function writeDemoPki(dir: string): Promise<void> {
  const root = await createRoot({ trustDomain: TRUST_DOMAIN });
  const rootIssuer = await loadIssuer({ certPem: root.certPem, keyPem: root.keyPem });
  const inter = await createIntermediate({ root: rootIssuer, trustDomain: TRUST_DOMAIN });
  await mkdir(join(dir, 'ca'));
  await writeFile(join(dir, 'ca', 'intermediate.pem'), inter.certPem);
  await writeFile(join(dir, 'ca', 'intermediate.key'), inter.keyPem, { mode: 0o600 });
  await writeFile(join(dir, 'ca', 'bundle.pem'), root.certPem);
  // A workload of the same mesh that api's allow-list does not admit.
  const issuer = await loadIssuer({ certPem: inter.certPem, keyPem: inter.keyPem, bundlePem: root.certPem });
  const other = await issueLeaf(issuer, { spiffeId: serviceSpiffeId(TRUST_DOMAIN, 'default', 'intruder'), ttlMs: 3_600_000 });
  await mkdir(join(dir, 'intruder'));
  await writeFile(join(dir, 'intruder', 'cert.pem'), other.certPem);
  await writeFile(join(dir, 'intruder', 'key.pem'), other.keyPem, { mode: 0o600 });
  await chmod(join(dir, 'intruder', 'key.pem'), 0o600);
}

/** api: answers with the identity its sidecar vouched for. */
function apiApp(): Server {
  return createServer((req, res) => {
    const xfcc = req.headers['x-forwarded-client-cert'];
    const caller = typeof xfcc === 'string' ? (/URI=([^;,]+)/.exec(xfcc)?.[1] ?? null) : null;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(`${JSON.stringify({ service: 'api', path: req.url, caller, xfcc: xfcc ?? null })}\n`);
  });
}

/** web: calls api through its sidecar's local outbound port and wraps the answer. */
function webApp(apiPort: number): Server {
  return createServer((req, res) => {
    const upstream = httpRequest({ host: '127.0.0.1', port: apiPort, path: '/from-web' }, (r) => {
      let body = '';
      r.setEncoding('utf8');
      r.on('data', (c: string) => (body += c));
      r.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(`${JSON.stringify({ service: 'web', api: JSON.parse(body) as unknown })}\n`);
      });
    });
    upstream.on('error', (err) => {
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`web could not reach api: ${err.message}\n`);
    });
    upstream.end();
    req.resume();
  });
}

function listen(server: Server, port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new WeftError('WEFT_E_LISTEN', `demo app cannot listen on 127.0.0.1:${port}: ${err.code}; try weft demo --base-port 28000`)));
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

function startSidecar(args: string[], children: ChildProcess[]): Promise<void> {
  const main = fileURLToPath(new URL('./main.js', import.meta.url));
  const child = spawn(process.execPath, [main, 'sidecar', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, WEFT_LOG_LEVEL: 'info' } });
  children.push(child);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    // The sidecar's log stays out of the demo's output; readiness is its "sidecar ready" line.
    lines.on('line', (line) => {
      if (line.includes('"sidecar ready"')) resolve();
    });
    child.once('exit', (code) => reject(new WeftError('WEFT_E_DEMO', `a demo sidecar exited (code ${code}): ${stderr.trim()}`)));
  });
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

function instructions(dir: string, p: ReturnType<typeof ports>): string {
  const web = serviceSpiffeId(TRUST_DOMAIN, 'default', 'web');
  return `
weft demo mesh is up (trust domain ${TRUST_DOMAIN}; files in ${dir})

  web app  127.0.0.1:${p.webApp}  ← web sidecar (mTLS :${p.webInbound}, admin :${p.webAdmin}), outbound api → 127.0.0.1:${p.webToApi}
  api app  127.0.0.1:${p.apiApp}  ← api sidecar (mTLS :${p.apiInbound}, admin :${p.apiAdmin}), allows only ${web}

Try:
  # web's app calls api through its local port; api sees web's SPIFFE ID in x-forwarded-client-cert
  curl -s http://127.0.0.1:${p.webToApi}/hello
  curl -s http://127.0.0.1:${p.webApp}/
  # api's public port is strict mTLS: plaintext and certificate-less clients are refused
  curl -s http://127.0.0.1:${p.apiInbound}/ ; echo "exit $?"
  curl -sk https://127.0.0.1:${p.apiInbound}/ ; echo "exit $?"
  # a certificate from the same CA, but a service api does not allow: 403
  # (-k: curl cannot check SPIFFE IDs; the sidecars check each other's)
  curl -sk --cert ${dir}/intruder/cert.pem --key ${dir}/intruder/key.pem https://127.0.0.1:${p.apiInbound}/ -i
  # what each sidecar knows
  curl -s http://127.0.0.1:${p.apiAdmin}/metrics | grep '^weft_requests_total'
  curl -s http://127.0.0.1:${p.webAdmin}/certs

Ctrl-C stops the mesh.
`;
}

/** The checks behind `--check`: what the printed curl commands are meant to show. */
async function runChecks(dir: string, p: ReturnType<typeof ports>): Promise<boolean> {
  const { readFile } = await import('node:fs/promises');
  const web = serviceSpiffeId(TRUST_DOMAIN, 'default', 'web');
  const results: [string, boolean][] = [];
  const through = await get({ port: p.webToApi, path: '/hello' });
  results.push([`web → api over mTLS, api sees ${web}`, through.status === 200 && (JSON.parse(through.body) as { caller: string }).caller === web]);
  const viaApp = await get({ port: p.webApp, path: '/' });
  results.push(['web app → api through its sidecar', viaApp.status === 200 && viaApp.body.includes(web)]);
  const plain = await get({ port: p.apiInbound, path: '/' });
  results.push(['plaintext to api mTLS port refused', plain.status === 0]);
  const noCert = await get({ port: p.apiInbound, path: '/', tls: {} });
  results.push(['TLS without a client certificate refused', noCert.status === 0]);
  const intruder = await get({
    port: p.apiInbound,
    path: '/',
    tls: { cert: await readFile(join(dir, 'intruder', 'cert.pem'), 'utf8'), key: await readFile(join(dir, 'intruder', 'key.pem'), 'utf8') },
  });
  results.push(['caller off the allow-list gets 403', intruder.status === 403]);
  for (const [name, ok] of results) process.stdout.write(`${ok ? 'ok  ' : 'FAIL'} ${name}\n`);
  return results.every(([, ok]) => ok);
}

function get(opts: { port: number; path: string; tls?: { cert?: string; key?: string } }): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const options = { host: '127.0.0.1', port: opts.port, path: opts.path, timeout: 5000 };
    const onResponse = (res: import('node:http').IncomingMessage) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    };
    const req = opts.tls ? httpsRequest({ ...options, ...opts.tls, rejectUnauthorized: false }, onResponse) : httpRequest(options, onResponse);
    req.on('error', () => resolve({ status: 0, body: '' }));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}
