import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';

/** Path of the compiled CLI entry point. */
export const WEFT_MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/** A `weft sidecar` (or any weft command) started by a test, with its output collected. */
export interface WeftProcess {
  readonly child: ChildProcess;
  /** Every stdout line so far (JSON log lines). */
  readonly lines: string[];
  readonly stderr: () => string;
  /** Resolves with the exit code (or 128+signal). */
  readonly exited: Promise<number>;
  /** Resolves with the first log entry whose msg is `msg`. */
  waitFor(msg: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** SIGTERM and wait. */
  stop(): Promise<number>;
}

/**
 * Starts `node dist/src/cli/main.js ARGS` (optionally through a prefix such as
 * `ip netns exec NS`), registering its termination with the test context.
 */
export function startWeft(t: TestContext, args: string[], options: { prefix?: string[]; env?: NodeJS.ProcessEnv } = {}): WeftProcess {
  const prefix = options.prefix ?? [];
  const argv = [...prefix, process.execPath, WEFT_MAIN, ...args];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
  const lines: string[] = [];
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const waiters: { msg: string; resolve: (e: Record<string, unknown>) => void }[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    lines.push(line);
    let entry: Record<string, unknown>;
    try {
      entry = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    for (const w of [...waiters]) {
      if (entry['msg'] === w.msg) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(entry);
      }
    }
  });
  const exited = new Promise<number>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 + (signal === 'SIGKILL' ? 9 : 15) : 1)));
  });
  const proc: WeftProcess = {
    child,
    lines,
    stderr: () => stderr,
    exited,
    waitFor(msg, timeoutMs = 15_000) {
      for (const line of lines) {
        try {
          const entry = JSON.parse(line) as Record<string, unknown>;
          if (entry['msg'] === msg) return Promise.resolve(entry);
        } catch {
          // not JSON
        }
      }
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no "${msg}" log line within ${timeoutMs} ms; stderr: ${stderr}; stdout: ${lines.join('\n')}`)), timeoutMs);
        waiters.push({ msg, resolve: (e) => (clearTimeout(timer), resolve(e)) });
        void exited.then((code) => {
          clearTimeout(timer);
          reject(new Error(`weft exited with ${code} before "${msg}"; stderr: ${stderr}; stdout: ${lines.join('\n')}`));
        });
      });
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  return proc;
}

/** Starts a sidecar and waits for readiness; resolves with the process and its bound addresses. */
export async function startSidecar(
  t: TestContext,
  args: string[],
  options: { prefix?: string[]; env?: NodeJS.ProcessEnv } = {},
): Promise<{ proc: WeftProcess; admin: string; listeners: Record<string, string> }> {
  const proc = startWeft(t, ['sidecar', ...args], options);
  const ready = await proc.waitFor('sidecar ready');
  return { proc, admin: ready['admin'] as string, listeners: ready['listeners'] as Record<string, string> };
}

/** Runs a weft command to completion; resolves with its exit code and output. */
export function runWeft(args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [WEFT_MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, stdout, stderr });
    });
  });
}

/** A temporary directory removed after the test. */
export async function tempDir(t: TestContext, prefix = 'weft-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Creates a CA (`weft ca init`) in `dir/ca` for `trustDomain`; returns the folder. */
export async function makeCa(dir: string, trustDomain = 'example.org', name = 'ca'): Promise<string> {
  const out = join(dir, name);
  const r = await runWeft(['ca', 'init', '--out', out, '--trust-domain', trustDomain]);
  if (r.code !== 0) throw new Error(`weft ca init failed: ${r.stderr}`);
  return out;
}

/** Fetches a URL from the admin endpoint (e.g. `/certs`) as text. */
export async function admin(address: string, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://${address}${path}`);
  return { status: res.status, body: await res.text() };
}

/** Value of one Prometheus sample whose labels include all of `labels`, or 0. */
export function metricValue(text: string, name: string, labels: Record<string, string>): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const matches = Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`));
    if (matches) total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}
