import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchContext } from '../lib/context.js';
import { freePort } from '../lib/ports.js';
import { httpStatus, readLog, spawnManaged, waitUntil, type ManagedProcess } from '../lib/procs.js';
import { runningPair, type RunningTopology, type StartOptions } from './types.js';

/** A started `weft sidecar` and its fixed admin address. */
export interface WeftSidecar {
  readonly proc: ManagedProcess;
  readonly admin: string;
  readonly logFile: string;
}

/**
 * Spawns `weft sidecar ARGS --admin 127.0.0.1:ADMIN --ttl 24h` with `WEFT_LOG_LEVEL=warn` and the access log off,
 * pinned to `cpus`, without waiting. `/ready` on the admin port says when it is ready.
 */
export function spawnSidecar(ctx: BenchContext, name: string, args: readonly string[], adminPort: number, cpus: string | null): WeftSidecar {
  const unique = ctx.uniqueName(name);
  const dir = join(ctx.work, unique);
  mkdirSync(dir, { recursive: true });
  const logFile = join(ctx.outDir, 'logs', `${unique}.log`);
  const admin = `127.0.0.1:${adminPort}`;
  const proc = spawnManaged(unique, process.execPath, [ctx.weftMain, 'sidecar', ...args, '--issuer', ctx.certs.caDir, '--ttl', '24h', '--admin', admin, '--drain-timeout', '1s'], {
    cpus,
    logFile,
    cwd: dir,
    // The access log is off (nginx and HAProxy run without one too); WEFT_BENCH_ACCESS_LOG=stdout measures it on.
    env: { WEFT_LOG_LEVEL: 'warn', WEFT_ACCESS_LOG: process.env['WEFT_BENCH_ACCESS_LOG'] ?? 'off' },
  });
  return { proc, admin, logFile };
}

/** Waits until the sidecar's `/ready` answers 200 (polled every `intervalMs`). */
export async function waitReady(sidecar: WeftSidecar, intervalMs = 10, timeoutMs = 20_000): Promise<void> {
  await waitUntil(`${sidecar.proc.name} /ready`, async () => (await httpStatus(`http://${sidecar.admin}/ready`, 1000)) === 200, {
    proc: sidecar.proc,
    log: () => readLog(sidecar.logFile),
    intervalMs,
    timeoutMs,
  });
}

/** Arguments of the api (server side) sidecar: mTLS inbound on `p2` in front of `backend`. */
export function apiArgs(mode: 'http' | 'tcp', p2: number, backend: number): string[] {
  return ['--service', 'api', '--inbound', `127.0.0.1:${p2}`, '--app', `127.0.0.1:${backend}`, '--protocol', mode];
}

/** Arguments of the web (client side) sidecar: an upstream `api` listening on `p1`, calling `p2`. */
export function webArgs(mode: 'http' | 'tcp', p1: number, p2: number): string[] {
  return ['--service', 'web', '--upstream', `api=127.0.0.1:${p1}=127.0.0.1:${p2}${mode === 'tcp' ? '=tcp' : ''}`];
}

/**
 * weft pair: client → web sidecar's outbound listener → mTLS → api sidecar's inbound → backend.
 * Both self-issue their certificates from the benchmark's CA folder.
 */
export async function startWeft(ctx: BenchContext, options: StartOptions): Promise<RunningTopology> {
  const [p1, p2, adminA, adminB] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const b = spawnSidecar(ctx, `weft-api-${options.mode}`, apiArgs(options.mode, p2, options.backendPort), adminB, ctx.pin.proxyB);
  const a = spawnSidecar(ctx, `weft-web-${options.mode}`, webArgs(options.mode, p1, p2), adminA, ctx.pin.proxyA);
  try {
    await Promise.all([waitReady(b), waitReady(a)]);
  } catch (err) {
    await Promise.all([a.proc.stop(), b.proc.stop()]);
    throw err;
  }
  return runningPair('weft', p1, p2, a.proc, b.proc, { inboundConnections: () => inboundConnections(b.admin) });
}

/** Sum of `weft_connections_total{direction="inbound"}` on a sidecar's /metrics, or null. */
export async function inboundConnections(admin: string): Promise<number | null> {
  try {
    const res = await fetch(`http://${admin}/metrics`);
    const text = await res.text();
    let total = 0;
    for (const line of text.split('\n')) {
      if (line.startsWith('weft_connections_total{') && line.includes('direction="inbound"')) total += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
    return total;
  } catch {
    return null;
  }
}
