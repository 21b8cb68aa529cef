import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { request } from 'node:http';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';
import { WeftError } from '../errors.js';
import { parseSidecarFlags, SIDECAR_USAGE } from './sidecar-flags.js';

const RUN_USAGE = `weft run [sidecar flags] -- CMD [ARGS...]

Starts \`weft sidecar\` with the given flags, waits until it is ready, then starts CMD.
SIGTERM/SIGINT: the sidecar drains its inbound listener, then the app gets the signal.
When the app exits, the sidecar drains and stops, and weft run exits with the app's code.
If the sidecar dies first, the app is stopped and weft run exits 1.

${SIDECAR_USAGE.split('\n').slice(1).join('\n')}`;

/** How long the app gets after SIGTERM before SIGKILL when the sidecar has died. */
const APP_KILL_GRACE_MS = 10_000;

/** `weft run`: the launcher. Resolves with the exit code to use. */
export async function runCommand(argv: string[]): Promise<number> {
  const dash = argv.indexOf('--');
  const sidecarArgs = dash === -1 ? argv : argv.slice(0, dash);
  const command = dash === -1 ? [] : argv.slice(dash + 1);
  const flags = parseSidecarFlags(sidecarArgs);
  if (flags.help) {
    process.stdout.write(`${RUN_USAGE}\n`);
    return 0;
  }
  if (command.length === 0) throw new WeftError('WEFT_E_USAGE', `no app command: put it after --, e.g. weft run --service api ... -- node server.js\n\n${RUN_USAGE}`);

  const main = fileURLToPath(new URL('./main.js', import.meta.url));
  const sidecar = spawn(process.execPath, [main, 'sidecar', ...sidecarArgs], { stdio: ['ignore', 'pipe', 'inherit'] });
  // Signals are handled from the first moment: one that arrives before the app runs
  // stops the sidecar and the app is never started.
  let app: ChildProcess | null = null;
  let admin: string | null = null;
  let early: NodeJS.Signals | null = null;
  let stopping = false;
  const forward = (signal: NodeJS.Signals) => {
    if (app === null || admin === null) {
      early ??= signal;
      sidecar.kill('SIGTERM');
      return;
    }
    const target = app;
    if (stopping) {
      target.kill(signal);
      return;
    }
    stopping = true;
    // Drain inbound first so requests in flight to the app complete, then tell the app.
    void drainInbound(admin).finally(() => target.kill(signal));
  };
  process.on('SIGTERM', () => forward('SIGTERM'));
  process.on('SIGINT', () => forward('SIGINT'));

  admin = await waitForReady(sidecar);
  if (early !== null) {
    await exitOf(sidecar);
    process.stderr.write(`weft run: ${early} before the app started; the app was not started\n`);
    return 128 + (constants.signals[early] ?? 0);
  }
  if (admin === null) {
    process.stderr.write(`weft run: the sidecar did not start (exit ${sidecar.exitCode ?? sidecar.signalCode}); the app was not started\n`);
    return 1;
  }

  app = spawn(command[0]!, command.slice(1), { stdio: 'inherit' });
  const started = app;
  let sidecarExited = false;

  sidecar.once('exit', (code, signal) => {
    sidecarExited = true;
    if (started.exitCode !== null || started.signalCode !== null) return;
    process.stderr.write(`weft run: the sidecar exited unexpectedly (${signal ?? `code ${code}`}); stopping the app\n`);
    started.kill('SIGTERM');
    setTimeout(() => started.kill('SIGKILL'), APP_KILL_GRACE_MS).unref();
  });

  const appResult = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>((resolve) => {
    started.once('error', (error) => resolve({ code: null, signal: null, error }));
    started.once('exit', (code, signal) => resolve({ code, signal }));
  });
  if (appResult.error) process.stderr.write(`weft run: cannot start ${command[0]}: ${appResult.error.message}; check the command after -- (it must exist, be on PATH and be executable)\n`);

  if (sidecarExited) return 1;
  sidecar.kill('SIGTERM');
  await exitOf(sidecar);
  if (appResult.error) return 127;
  if (appResult.signal) return 128 + (constants.signals[appResult.signal] ?? 0);
  return appResult.code ?? 1;
}

/** Relays the sidecar's log lines and resolves with its admin address once it logs "sidecar ready" (null if it exits first). */
function waitForReady(sidecar: ChildProcess): Promise<string | null> {
  return new Promise((resolve) => {
    let admin: string | null = null;
    const lines = createInterface({ input: sidecar.stdout! });
    lines.on('line', (line) => {
      process.stdout.write(`${line}\n`);
      if (admin !== null) return;
      try {
        const entry = JSON.parse(line) as { msg?: string; admin?: string };
        if (entry.msg === 'sidecar ready' && entry.admin) {
          admin = entry.admin;
          resolve(admin);
        }
      } catch {
        // not a JSON log line; relayed as is
      }
    });
    sidecar.once('exit', () => resolve(admin));
  });
}

function drainInbound(admin: string): Promise<void> {
  const [host, port] = splitAdmin(admin);
  return new Promise((resolve) => {
    const req = request({ host, port, method: 'POST', path: '/drain/inbound', headers: { 'x-weft-admin': '1' } }, (res) => {
      res.resume();
      res.once('end', () => resolve());
    });
    req.once('error', () => resolve());
    req.end();
  });
}

function splitAdmin(admin: string): [string, number] {
  const i = admin.lastIndexOf(':');
  return [admin.slice(0, i).replace(/^\[|\]$/g, ''), Number(admin.slice(i + 1))];
}

function exitOf(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}
