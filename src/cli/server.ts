import { resolve } from 'node:path';
import { parseHostPort } from '../config/address.js';
import { startServer } from '../control/server.js';
import { WeftError } from '../errors.js';
import { createLogger } from '../obs/log.js';
import { validateTrustDomain } from '../pki/spiffe.js';
import { durationFlag, parseFlags, usageError } from './args.js';
import { readCaSecret } from '../control/shared-secrets.js';

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

const USAGE = `Usage: weft server --data DIR [flags]

  --data DIR             state: store, CA (unless --ca-dir), admin token, audit log   WEFT_DATA
  --listen ADDR          HTTPS API address (default 127.0.0.1:8443)                    WEFT_SERVER_LISTEN
  --trust-domain TD      trust domain of the CA created at first start (default weft.local)
  --ca-dir DIR           sign with this CA directory instead (weft ca init, or an intermediate from Vault)
  --leaf-ttl DURATION    lifetime of the certificates it signs (default 24h)
  --csr-rate N           CSR signings per second, and burst (default 50)
  --server-name NAME     extra DNS name or IP for the API certificate (repeat)
  --instance-ttl DURATION   an instance whose sidecar stops reporting is critical after this (default 15s)
  --instance-deregister DURATION   ... and is removed from the catalog after this (default 10m)
  --migration-window DURATION   \`weft migrate status\` counts callers over this window (default 10m, 1s to 7d)

Several replicas (docs/high-availability.md):
  --store URL            postgres://USER:PASSWORD@HOST:PORT/DB, shared by the replicas     WEFT_STORE
                         (default: SQLite in --data, one server)
  --ca-key-file FILE     the secret the CA key is encrypted with in the store, the same    WEFT_CA_KEY
                         on every replica (\`openssl rand -base64 32\`)
  --replica-id NAME      this replica's name in logs, /ready and metrics (default HOST-PID)

The admin token for operator calls is in DATA/admin-token (created at first start).
See docs/control-plane.md.`;

/** `weft server`: runs the control plane until SIGTERM/SIGINT. */
export async function serverCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags('server', argv, {
    data: { type: 'string' },
    listen: { type: 'string' },
    'trust-domain': { type: 'string', default: 'weft.local' },
    'ca-dir': { type: 'string' },
    'leaf-ttl': { type: 'string', default: '24h' },
    'csr-rate': { type: 'string', default: '50' },
    'server-name': { type: 'string', multiple: true, default: [] },
    'instance-ttl': { type: 'string', default: '15s' },
    'instance-deregister': { type: 'string', default: '10m' },
    'migration-window': { type: 'string', default: '10m' },
    store: { type: 'string' },
    'ca-key-file': { type: 'string' },
    'replica-id': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const data = values.data ?? process.env['WEFT_DATA'];
  if (data === undefined || data === '') throw usageError('server', '--data is required: the directory that holds the server state');
  const listenText = values.listen ?? process.env['WEFT_SERVER_LISTEN'] ?? '127.0.0.1:8443';
  const listen = parseHostPort(listenText);
  if (typeof listen === 'string') throw usageError('server', `--listen: ${listen}`);
  const csrRate = Number(values['csr-rate']);
  if (!Number.isFinite(csrRate) || csrRate < 1) throw usageError('server', '--csr-rate must be a number of signings per second, at least 1');
  const leafTtlMs = durationFlag('--leaf-ttl', values['leaf-ttl']);
  const instanceTtlMs = durationFlag('--instance-ttl', values['instance-ttl']);
  const instanceDeregisterMs = durationFlag('--instance-deregister', values['instance-deregister']);
  if (instanceDeregisterMs <= instanceTtlMs) throw usageError('server', '--instance-deregister must be longer than --instance-ttl');
  const migrationWindowMs = durationFlag('--migration-window', values['migration-window']);
  if (migrationWindowMs < 1000 || migrationWindowMs > 7 * 86_400_000) throw usageError('server', '--migration-window must be between 1s and 7d');
  const trustDomain = values['trust-domain'];
  validateTrustDomain(trustDomain);
  const storeUrl = values.store ?? nonEmpty(process.env['WEFT_STORE']);
  if (storeUrl !== undefined && !/^postgres(ql)?:\/\//.test(storeUrl)) throw usageError('server', `--store must be a postgres:// URL (or absent for SQLite in --data), not ${storeUrl.replace(/\/\/[^@/]*@/, '//…@')}`);
  const caKeySecret = storeUrl !== undefined ? await readCaSecret(values['ca-key-file'], process.env['WEFT_CA_KEY']) : undefined;
  const log = createLogger('server');
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  let stopping: ((signal: string) => void) | null = null;
  let pending: string | null = null;
  function stop(signal: string): void {
    if (stopping !== null) stopping(signal);
    else pending = signal;
  }
  let server;
  try {
    server = await startServer({
      dataDir: resolve(data),
      ...(values['ca-dir'] !== undefined ? { caDir: resolve(values['ca-dir']) } : {}),
      trustDomain,
      listen,
      leafTtlMs,
      csrRate,
      serverNames: values['server-name'],
      instanceTtlMs,
      instanceDeregisterMs,
      migrationWindowMs,
      ...(storeUrl !== undefined ? { storeUrl, caKeySecret: caKeySecret! } : {}),
      ...(values['replica-id'] !== undefined ? { replicaId: values['replica-id'] } : {}),
      log,
    });
  } catch (err) {
    const e = err as WeftError;
    log.fatal({ code: e.code, error: e.message }, 'server cannot start');
    process.stderr.write(`weft server: cannot start: ${e.message}\n`);
    return 1;
  }
  const running = server;
  return new Promise((done) => {
    stopping = (signal) => {
      log.info({ signal }, 'shutting down');
      void running.close().then(() => done(0));
    };
    if (pending !== null) stopping(pending);
  });
}
