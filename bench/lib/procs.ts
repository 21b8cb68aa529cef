import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { request } from 'node:http';

/** How a managed process ended. */
export interface ExitInfo {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A child process started by the benchmark; killed by PID when the runner exits for any reason. */
export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Resolves when the process has exited. */
  readonly exited: Promise<ExitInfo>;
  /** True until the process has exited. */
  running(): boolean;
  /** Captured stdout (only with `capture: true`; bounded to the last 4 MiB). */
  stdout(): string;
  /** Captured stderr (only with `capture: true`; bounded). */
  stderr(): string;
  /** Sends `signal` (default SIGTERM), waits up to `graceMs`, then SIGKILL; resolves once exited. */
  stop(graceMs?: number): Promise<ExitInfo>;
}

/** Options for {@link spawnManaged}. */
export interface SpawnOptions {
  /** `taskset -c` CPU list, or null for no pinning. */
  readonly cpus?: string | null;
  readonly env?: NodeJS.ProcessEnv;
  /** Append stdout and stderr to this file (ignored with `capture`). */
  readonly logFile?: string | null;
  /** Collect stdout/stderr in memory instead. */
  readonly capture?: boolean;
  /** Signal used by `stop()` first (default SIGTERM). */
  readonly stopSignal?: NodeJS.Signals;
  /** Kill the process (SIGKILL) if it still runs after this many ms. */
  readonly timeoutMs?: number;
  /** Working directory. */
  readonly cwd?: string;
}

const live = new Set<ManagedProcess>();
let cleanupInstalled = false;
const CAPTURE_LIMIT = 4 * 1024 * 1024;

/**
 * Spawns `command args` (through `taskset -c CPUS` when pinned: taskset execs, so the PID is
 * the command's own) and registers it for clean-up. The caller must have called
 * {@link installCleanup} first.
 */
export function spawnManaged(name: string, command: string, args: readonly string[], options: SpawnOptions = {}): ManagedProcess {
  if (!cleanupInstalled) throw new Error('installCleanup() must run before any process is started');
  const argv = options.cpus ? ['taskset', '-c', options.cpus, command, ...args] : [command, ...args];
  let fd: number | null = null;
  if (!options.capture && options.logFile) fd = openSync(options.logFile, 'a');
  const stdio: ['ignore', number | 'pipe' | 'ignore', number | 'pipe' | 'ignore'] = options.capture
    ? ['ignore', 'pipe', 'pipe']
    : fd !== null
      ? ['ignore', fd, fd]
      : ['ignore', 'ignore', 'ignore'];
  const child = spawn(argv[0]!, argv.slice(1), { stdio, env: { ...process.env, ...options.env }, ...(options.cwd ? { cwd: options.cwd } : {}) });
  if (fd !== null) closeSync(fd);
  let out = '';
  let err = '';
  if (options.capture) {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.length > CAPTURE_LIMIT) out = out.slice(-CAPTURE_LIMIT);
    });
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.length > CAPTURE_LIMIT) err = err.slice(-CAPTURE_LIMIT);
    });
  }
  let done = false;
  let spawnError: Error | null = null;
  const exited = new Promise<ExitInfo>((resolve) => {
    child.once('error', (e) => {
      spawnError = e;
      done = true;
      resolve({ code: 127, signal: null });
    });
    child.once('exit', (code, signal) => {
      done = true;
      resolve({ code, signal });
    });
  });
  if (child.pid === undefined) {
    // spawn failed synchronously (ENOENT is reported through 'error').
    done = true;
  }
  let timer: NodeJS.Timeout | null = null;
  const proc: ManagedProcess = {
    name,
    pid: child.pid ?? -1,
    child,
    exited,
    running: () => !done,
    stdout: () => out,
    stderr: () => (spawnError ? `${err}${spawnError.message}` : err),
    async stop(graceMs = 3000) {
      if (!done && child.pid !== undefined) {
        try {
          process.kill(child.pid, options.stopSignal ?? 'SIGTERM');
        } catch {
          // already gone
        }
        const t = setTimeout(() => {
          if (!done && child.pid !== undefined) {
            try {
              process.kill(child.pid, 'SIGKILL');
            } catch {
              // already gone
            }
          }
        }, graceMs);
        await exited;
        clearTimeout(t);
      }
      return exited;
    },
  };
  if (options.timeoutMs !== undefined) {
    timer = setTimeout(() => {
      if (!done && child.pid !== undefined) {
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }, options.timeoutMs);
    timer.unref();
  }
  live.add(proc);
  void exited.then(() => {
    if (timer) clearTimeout(timer);
    live.delete(proc);
  });
  return proc;
}

/** SIGKILLs every process still running (by PID), synchronously. Returns how many were signalled. */
export function killAll(): number {
  let n = 0;
  for (const p of live) {
    if (p.running() && p.pid > 0) {
      try {
        process.kill(p.pid, 'SIGKILL');
        n++;
      } catch {
        // already gone
      }
    }
  }
  return n;
}

/** Processes that are still running (for diagnostics). */
export function runningProcesses(): readonly ManagedProcess[] {
  return [...live].filter((p) => p.running());
}

/**
 * Registers the clean-up that kills every managed process on exit, on SIGINT/SIGTERM/SIGHUP
 * and on an uncaught error. `onSignal` runs (synchronously) before the process exits on a signal.
 */
export function installCleanup(onSignal: () => void = () => {}): void {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  process.on('exit', () => {
    killAll();
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      const n = killAll();
      process.stderr.write(`\nweft bench: ${sig}: killed ${n} process(es); exiting\n`);
      try {
        onSignal();
      } finally {
        process.exit(sig === 'SIGINT' ? 130 : 143);
      }
    });
  }
  process.on('uncaughtException', (err) => {
    killAll();
    process.stderr.write(`weft bench: uncaught error: ${err.stack ?? err.message}\n`);
    try {
      onSignal();
    } finally {
      process.exit(1);
    }
  });
}

/** CPU time (user + system) of a process in clock ticks, from /proc/PID/stat (all threads). */
export function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may contain spaces and parentheses).
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); utime is field 14, stime field 15.
  return Number(fields[11]) + Number(fields[12]);
}

/** Resident memory of a process in bytes: current (VmRSS) and peak (VmHWM), from /proc/PID/status. */
export function memory(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status);
    return m ? Number(m[1]) * 1024 : Number.NaN;
  };
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** True when a TCP connection to 127.0.0.1:port is accepted. */
export function tcpAccepts(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ port, host });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Status of `GET url` (no keep-alive), or 0 when the connection fails. */
export function httpStatus(url: string, timeoutMs = 1000): Promise<number> {
  return new Promise((resolve) => {
    const req = request(url, { agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.once('timeout', () => req.destroy(new Error('timeout')));
    req.once('error', () => resolve(0));
    req.end();
  });
}

/**
 * Polls `probe` every `intervalMs` until it returns true; rejects after `timeoutMs` or as soon
 * as `proc` (when given) exits, with its log tail in the message.
 */
export async function waitUntil(
  what: string,
  probe: () => Promise<boolean>,
  options: { timeoutMs?: number; intervalMs?: number; proc?: ManagedProcess; log?: () => string } = {},
): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 10_000);
  const interval = options.intervalMs ?? 5;
  while (Date.now() < deadline) {
    if (options.proc && !options.proc.running()) {
      const info = await options.proc.exited;
      throw new Error(`${what}: process exited (code ${info.code}, signal ${info.signal}) before it was ready${tail(options.log)}`);
    }
    if (await probe()) return;
    await sleep(interval);
  }
  throw new Error(`${what}: not ready within ${options.timeoutMs ?? 10_000} ms${tail(options.log)}`);
}

function tail(log: (() => string) | undefined): string {
  if (!log) return '';
  let text = '';
  try {
    text = log();
  } catch {
    return '';
  }
  return text ? `; log:\n${text.slice(-2000)}` : '';
}

/** Reads a log file's text, or '' when it does not exist. */
export function readLog(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
