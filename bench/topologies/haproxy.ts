import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchContext } from '../lib/context.js';
import { searchPath } from '../lib/env.js';
import { freePort } from '../lib/ports.js';
import { readLog, spawnManaged, tcpAccepts, waitUntil, type ManagedProcess } from '../lib/procs.js';
import { TLS13_SUITES } from './nginx.js';
import { runningPair, type RunningTopology, type StartOptions } from './types.js';

function globalBlock(mode: 'http' | 'tcp'): string {
  return `# written by weft bench
global
  nbthread 1
  maxconn 4000
  ssl-server-verify required

defaults
  mode ${mode}
  timeout connect 5s
  timeout client 60s
  timeout server 60s
${mode === 'http' ? '  timeout http-keep-alive 60s\n  option http-keep-alive\n' : ''}`;
}

/** Config of HAProxy A (client side): plaintext frontend, mTLS to B. */
export function haproxyAConfig(ctx: BenchContext, mode: 'http' | 'tcp', p1: number, p2: number): string {
  const c = ctx.certs;
  const alpn = mode === 'http' ? ' alpn http/1.1' : '';
  return `${globalBlock(mode)}
frontend a
  bind 127.0.0.1:${p1}
  default_backend to_b

backend to_b
${mode === 'http' ? '  http-reuse always\n' : ''}  server b 127.0.0.1:${p2} ssl crt ${c.web.combined} ca-file ${c.bundle} verify required${alpn} ssl-min-ver TLSv1.3 ciphersuites ${TLS13_SUITES}
`;
}

/** Config of HAProxy B (server side): mTLS frontend, plaintext to the backend. */
export function haproxyBConfig(ctx: BenchContext, mode: 'http' | 'tcp', p2: number, backend: number): string {
  const c = ctx.certs;
  return `${globalBlock(mode)}
frontend b
  bind 127.0.0.1:${p2} ssl crt ${c.api.combined} ca-file ${c.bundle} verify required ssl-min-ver TLSv1.3 ciphersuites ${TLS13_SUITES}
${mode === 'http' ? '  option forwardfor\n' : ''}  default_backend to_origin

backend to_origin
${mode === 'http' ? '  http-reuse always\n' : ''}  server origin 127.0.0.1:${backend}
`;
}

/** One HAProxy process (`-db`: foreground, no master; `nbthread 1`). */
export async function launchHaproxy(ctx: BenchContext, name: string, config: string, port: number, cpus: string | null): Promise<ManagedProcess> {
  const unique = ctx.uniqueName(name);
  const dir = join(ctx.work, unique);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'haproxy.cfg');
  writeFileSync(file, config);
  writeFileSync(join(ctx.outDir, 'conf', `${unique}.cfg`), config);
  const logFile = join(ctx.outDir, 'logs', `${unique}.log`);
  const proc = spawnManaged(unique, 'haproxy', ['-db', '-f', file], { cpus, logFile, env: { PATH: searchPath() } });
  try {
    await waitUntil(`${unique} on port ${port}`, () => tcpAccepts(port), { proc, log: () => readLog(logFile), timeoutMs: 10_000 });
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return proc;
}

/** Starts only HAProxy B (the mTLS inbound side), for start-up and idle measurements. */
export async function startHaproxyB(ctx: BenchContext, options: StartOptions): Promise<{ proc: ManagedProcess; port: number }> {
  const p2 = await freePort();
  const proc = await launchHaproxy(ctx, `haproxy-b-${options.mode}`, haproxyBConfig(ctx, options.mode, p2, options.backendPort), p2, ctx.pin.proxyB);
  return { proc, port: p2 };
}

/** HAProxy pair: A (`server … ssl crt … verify required`) → mTLS → B (`bind … ssl … verify required`) → backend. */
export async function startHaproxy(ctx: BenchContext, options: StartOptions): Promise<RunningTopology> {
  const [p1, p2] = [await freePort(), await freePort()];
  const b = await launchHaproxy(ctx, `haproxy-b-${options.mode}`, haproxyBConfig(ctx, options.mode, p2, options.backendPort), p2, ctx.pin.proxyB);
  let a: ManagedProcess;
  try {
    a = await launchHaproxy(ctx, `haproxy-a-${options.mode}`, haproxyAConfig(ctx, options.mode, p1, p2), p1, ctx.pin.proxyA);
  } catch (err) {
    await b.stop();
    throw err;
  }
  return runningPair('haproxy', p1, p2, a, b);
}
