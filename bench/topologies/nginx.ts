import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchContext } from '../lib/context.js';
import { searchPath } from '../lib/env.js';
import { freePort } from '../lib/ports.js';
import { readLog, spawnManaged, tcpAccepts, waitUntil, type ManagedProcess } from '../lib/procs.js';
import { runningPair, type RunningTopology, type StartOptions } from './types.js';

/**
 * TLS 1.3 suites in weft's order (src/proxy/tls.ts), so every pair negotiates the same cipher
 * (TLS_AES_128_GCM_SHA256) instead of OpenSSL's default AES-256 first.
 */
export const TLS13_SUITES = 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256';

/** Bodies the origin answers: /small is 100 bytes, /1k is 1024 bytes. */
export const BODIES = {
  small: 'weft-bench-small-'.padEnd(100, 'x'),
  k1: 'weft-bench-1k-'.padEnd(1024, 'y'),
} as const;

/** One nginx process (`master_process off`: the single process does the work, one PID to measure). */
export interface NginxInstance {
  readonly proc: ManagedProcess;
  readonly dir: string;
  readonly confFile: string;
}

function mainBlock(dir: string, extra = ''): string {
  return `# written by weft bench
${extra}worker_processes 1;
master_process off;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
`;
}

function httpCommon(dir: string): string {
  return `  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  default_type text/plain;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
`;
}

/**
 * Whether nginx can run the L4 (`stream {}`) pairs: `load` is the `load_module` line to add
 * (empty when stream is built in), `error` says what is missing.
 */
export function streamModule(): { load: string; error: string | null } {
  let v = '';
  try {
    v = execFileSync('/bin/sh', ['-c', 'nginx -V 2>&1'], { encoding: 'utf8', env: { ...process.env, PATH: searchPath() } });
  } catch {
    return { load: '', error: 'nginx -V failed' };
  }
  if (/--with-stream(\s|$)/.test(v)) return { load: '', error: null };
  if (!/--with-stream=dynamic/.test(v)) return { load: '', error: 'this nginx is built without the stream module' };
  const modules = /--modules-path=(\S+)/.exec(v)?.[1] ?? '/usr/lib/nginx/modules';
  const so = join(modules, 'ngx_stream_module.so');
  if (!existsSync(so)) return { load: '', error: `nginx's stream module ${so} is not installed (Debian/Ubuntu: apt-get install libnginx-mod-stream; scripts/install-bench-deps.sh)` };
  return { load: `load_module ${so};\n`, error: null };
}

/** The parts of the context an nginx launch needs. */
export type LaunchContext = Pick<BenchContext, 'work' | 'outDir' | 'uniqueName'>;

/** Starts nginx with `conf(dir)` pinned to `cpus` and waits until every port in `ports` accepts. */
export async function launchNginx(ctx: LaunchContext, name: string, conf: (dir: string) => string, ports: readonly number[], cpus: string | null): Promise<NginxInstance> {
  const unique = ctx.uniqueName(name);
  const dir = join(ctx.work, unique);
  mkdirSync(dir, { recursive: true });
  const confFile = join(dir, 'nginx.conf');
  const text = conf(dir);
  writeFileSync(confFile, text);
  writeFileSync(join(ctx.outDir, 'conf', `${unique}.conf`), text);
  const logFile = join(ctx.outDir, 'logs', `${unique}.log`);
  const proc = spawnManaged(unique, 'nginx', ['-p', dir, '-c', confFile, '-e', join(dir, 'error.log')], {
    cpus,
    logFile,
    env: { PATH: searchPath() },
  });
  const log = () => `${readLog(logFile)}${readLog(join(dir, 'error.log'))}`;
  try {
    for (const port of ports) await waitUntil(`${unique} on port ${port}`, () => tcpAccepts(port), { proc, log, timeoutMs: 10_000 });
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return { proc, dir, confFile };
}

/** The shared origin: `return 200` with a 100 B body on /small and 1 KiB on /1k. */
export async function startOrigin(ctx: LaunchContext & Pick<BenchContext, 'pin'>, port: number): Promise<NginxInstance> {
  return launchNginx(
    ctx,
    'origin-nginx',
    (dir) => `${mainBlock(dir)}http {
${httpCommon(dir)}  server {
    listen 127.0.0.1:${port} backlog=4096;
    location = /small { return 200 "${BODIES.small}"; }
    location = /1k { return 200 "${BODIES.k1}"; }
    location / { return 200 "ok"; }
  }
}
`,
    [port],
    ctx.pin.origin,
  );
}

function clientTls(ctx: BenchContext, prefix: 'proxy_'): string {
  const c = ctx.certs;
  return `    ${prefix}ssl_certificate ${c.web.cert};
    ${prefix}ssl_certificate_key ${c.web.key};
    ${prefix}ssl_trusted_certificate ${c.bundle};
    ${prefix}ssl_verify on;
    ${prefix}ssl_verify_depth 3;
    # nginx checks the peer's DNS name (falling back to the subject CN, "api"): it cannot
    # check a URI SAN, so the SPIFFE ID is not verified; the chain to the bundle is.
    ${prefix}ssl_name api;
    ${prefix}ssl_protocols TLSv1.3;
    ${prefix}ssl_session_reuse on;
    ${prefix}ssl_conf_command Ciphersuites ${TLS13_SUITES};
`;
}

function serverTls(ctx: BenchContext): string {
  const c = ctx.certs;
  return `    ssl_certificate ${c.api.cert};
    ssl_certificate_key ${c.api.key};
    ssl_client_certificate ${c.bundle};
    ssl_verify_client on;
    ssl_verify_depth 3;
    ssl_protocols TLSv1.3;
    ssl_prefer_server_ciphers on;
    ssl_conf_command Ciphersuites ${TLS13_SUITES};
`;
}

/** Config of nginx A (client side) for `mode`. */
export function nginxAConfig(ctx: BenchContext, dir: string, mode: 'http' | 'tcp', p1: number, p2: number, streamLoad: string): string {
  if (mode === 'tcp') {
    return `${mainBlock(dir, streamLoad)}stream {
  server {
    listen 127.0.0.1:${p1} backlog=4096;
    proxy_pass 127.0.0.1:${p2};
    proxy_ssl on;
${clientTls(ctx, 'proxy_')}  }
}
`;
  }
  return `${mainBlock(dir)}http {
${httpCommon(dir)}${keepaliveUpstream('upstream_b', p2)}  server {
    listen 127.0.0.1:${p1} backlog=4096;
    location / {
      proxy_pass https://upstream_b;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
${clientTls(ctx, 'proxy_')}    }
  }
}
`;
}

/** Config of nginx B (server side, mTLS inbound) for `mode`, forwarding to `backend`. */
export function nginxBConfig(ctx: BenchContext, dir: string, mode: 'http' | 'tcp', p2: number, backend: number, streamLoad: string): string {
  if (mode === 'tcp') {
    return `${mainBlock(dir, streamLoad)}stream {
  server {
    listen 127.0.0.1:${p2} ssl backlog=4096;
${serverTls(ctx)}    proxy_pass 127.0.0.1:${backend};
  }
}
`;
  }
  return `${mainBlock(dir)}http {
${httpCommon(dir)}${keepaliveUpstream('origin', backend)}  server {
    listen 127.0.0.1:${p2} ssl backlog=4096;
${serverTls(ctx)}    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto https;
    }
  }
}
`;
}

/** Starts only nginx B (the mTLS inbound side), for start-up and idle measurements. */
export async function startNginxB(ctx: BenchContext, options: StartOptions): Promise<{ instance: NginxInstance; port: number }> {
  const stream = options.mode === 'tcp' ? streamModule() : { load: '', error: null };
  if (stream.error) throw new Error(stream.error);
  const p2 = await freePort();
  const instance = await launchNginx(ctx, `nginx-b-${options.mode}`, (dir) => nginxBConfig(ctx, dir, options.mode, p2, options.backendPort, stream.load), [p2], ctx.pin.proxyB);
  return { instance, port: p2 };
}

/**
 * nginx pair: A (`proxy_pass https://…` with a client certificate, or `stream` with
 * `proxy_ssl on`) → mTLS → B (`ssl_verify_client on`) → backend.
 */
export async function startNginx(ctx: BenchContext, options: StartOptions): Promise<RunningTopology> {
  const stream = options.mode === 'tcp' ? streamModule() : { load: '', error: null };
  if (stream.error) throw new Error(stream.error);
  const [p1, p2] = [await freePort(), await freePort()];
  const b = await launchNginx(ctx, `nginx-b-${options.mode}`, (dir) => nginxBConfig(ctx, dir, options.mode, p2, options.backendPort, stream.load), [p2], ctx.pin.proxyB);
  let a: NginxInstance;
  try {
    a = await launchNginx(ctx, `nginx-a-${options.mode}`, (dir) => nginxAConfig(ctx, dir, options.mode, p1, p2, stream.load), [p1], ctx.pin.proxyA);
  } catch (err) {
    await b.proc.stop();
    throw err;
  }
  return runningPair('nginx', p1, p2, a.proc, b.proc);
}

/** An http{} upstream block with the same keep-alive pool on every hop. */
function keepaliveUpstream(name: string, port: number): string {
  return `  upstream ${name} {
    server 127.0.0.1:${port};
    keepalive 64;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
  }
`;
}
