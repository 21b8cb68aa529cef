import { watchFile, unwatchFile } from 'node:fs';
import { loadConfig } from '../config/load.js';
import { sidecarConfigSchema, type SidecarConfig } from '../config/sidecar-schema.js';
import { createLogger } from '../obs/log.js';
import { Sidecar } from '../sidecar/sidecar.js';
import { startConnectedSidecar } from '../sidecar/connected.js';
import { parseSidecarFlags, sidecarOverrides, SIDECAR_USAGE } from './sidecar-flags.js';

/**
 * `weft sidecar`: runs until SIGTERM/SIGINT (drain, exit 0). SIGHUP or a change to the
 * config file reloads; an invalid reload is logged with every problem and the running
 * configuration keeps serving. Returns 1 when the sidecar cannot start.
 */
export async function sidecarCommand(argv: string[]): Promise<number> {
  const flags = parseSidecarFlags(argv);
  if (flags.help) {
    process.stdout.write(`${SIDECAR_USAGE}\n`);
    return 0;
  }
  const { overrides, sources } = sidecarOverrides(flags, process.env);
  const file = flags.config ?? process.env['WEFT_CONFIG'];
  const load = (): Promise<SidecarConfig> => loadConfig(sidecarConfigSchema, { file, overrides, overrideSources: sources });
  const log = createLogger('sidecar');
  // Handlers go in before start: "sidecar ready" is logged inside start, and a signal
  // sent on that line must not hit the default action (immediate death, no drain).
  let pendingStop: string | null = null;
  let onSignal = (signal: string) => {
    if (signal !== 'SIGHUP') pendingStop ??= signal;
  };
  process.on('SIGHUP', () => onSignal('SIGHUP'));
  process.once('SIGTERM', () => onSignal('SIGTERM'));
  process.once('SIGINT', () => onSignal('SIGINT'));
  let sidecar: Sidecar;
  let shutdown: () => Promise<void>;
  const starting = new AbortController();
  try {
    const connected = (await load()).server !== undefined;
    if (connected) {
      onSignal = (signal: string) => {
        if (signal === 'SIGHUP') return;
        pendingStop ??= signal;
        starting.abort(); // stop waiting for the server
      };
      const session = await startConnectedSidecar({ load, log, signal: starting.signal });
      sidecar = session.sidecar;
      shutdown = () => session.shutdown();
    } else {
      const s = await Sidecar.start({ load, log });
      sidecar = s;
      shutdown = () => s.shutdown();
    }
  } catch (err) {
    const e = err as Error & { code?: string };
    log.fatal({ code: e.code, error: e.message }, 'sidecar cannot start');
    process.stderr.write(`weft sidecar: cannot start: ${e.message}\n`);
    return 1;
  }
  const reload = (why: string) => {
    log.info({ trigger: why }, 'reloading configuration');
    void sidecar.reload();
  };
  if (file !== undefined) watchFile(file, { interval: 500, persistent: false }, () => reload('config file changed'));
  return new Promise((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, 'shutting down');
      if (file !== undefined) unwatchFile(file);
      void shutdown().then(() => resolve(0));
    };
    onSignal = (signal) => (signal === 'SIGHUP' ? reload('SIGHUP') : stop(signal));
    if (pendingStop !== null) stop(pendingStop);
  });
}
