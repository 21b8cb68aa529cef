import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { access, constants, mkdir, rm, writeFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { parseAllDocuments } from 'yaml';
import { startServer, type RunningServer } from '../control/server.js';
import { WeftError } from '../errors.js';
import { serviceSpiffeId } from '../pki/spiffe.js';
import { ApiClient, refusal } from './api-client.js';
import { apiApp, closeListener, echoServer, listenOn, waitForPort, webApp, type DemoListener } from './demo-apps.js';

/** Appended to "address in use" errors. */
const PORT_HINT = '; try another range: weft demo --base-port 28000';

/** The demo mesh's trust domain. */
export const DEMO_TRUST_DOMAIN = 'demo.weft.internal';

/** The demo's fixed loopback ports, as offsets from --base-port (all below the kernel's ephemeral range for the default base). */
export const DEMO_PORT_OFFSETS = {
  webAdmin: 1,
  apiAdmin: 2,
  tcpAdmin: 3,
  webApp: 80,
  apiApp: 81,
  tcpApp: 82,
  webToApi: 101,
  webToTcp: 102,
  server: 443,
  webInbound: 444,
  apiInbound: 445,
  tcpInbound: 446,
} as const;

/** The demo's ports for one --base-port. */
export type DemoPorts = { readonly [K in keyof typeof DEMO_PORT_OFFSETS]: number };

/** Ports from a base port. */
export function demoPorts(base: number): DemoPorts {
  return Object.fromEntries(Object.entries(DEMO_PORT_OFFSETS).map(([k, offset]) => [k, base + offset])) as DemoPorts;
}

/** The demo's resources, applied at start and kept in DIR/mesh.yaml for the curious. */
function meshYaml(tcpService: string): string {
  return `# Applied by weft demo at start (weft apply -f mesh.yaml does the same).
# Permissive: plaintext callers are still served next to mTLS ones, the state of a mesh
# whose callers are migrating. api-strict.yaml ends that for api.
kind: Mesh
metadata: { name: default }
spec:
  trustDomain: ${DEMO_TRUST_DOMAIN}
  mtls: { mode: permissive, allowPermissive: true }
  authorization: { defaultAction: allow }
---
kind: Service
metadata: { name: api }
spec:
  protocol: http   # declared: no protocol detection on api's listeners
---
kind: Service
metadata: { name: ${tcpService} }
spec:
  protocol: tcp
`;
}

const API_STRICT_YAML = `# api accepts mutual TLS only: plaintext callers are refused.
kind: Service
metadata: { name: api }
spec:
  protocol: http
  mtls: { mode: strict }
`;

const DENY_WEB_YAML = `# api refuses calls from web (403, weft-error: WEFT_E_AUTHZ_DENIED).
kind: AuthorizationPolicy
metadata: { name: deny-web }
spec:
  targetRef: { kind: Service, name: api }
  rules:
    - action: deny
      from: [{ service: web }]
`;

/** Which TCP service the demo runs: Redis when redis-server is installed, else an echo server. */
export interface TcpService {
  readonly name: 'redis' | 'echo';
  /** redis-cli is installed (to print `redis-cli -p PORT ping`). */
  readonly redisCli: boolean;
}

/**
 * The demo mesh: a control plane in this process (data in DIR/server), the demo apps in this
 * process, redis-server when installed, and one `weft sidecar` child process per service.
 * `stop` ends what it started (child processes by PID) and removes DIR; after `stop`,
 * nothing more is started.
 */
export class DemoMesh {
  readonly dir: string;
  readonly ports: DemoPorts;
  readonly tcp: TcpService;
  readonly #children: ChildProcess[] = [];
  readonly #listeners: DemoListener[] = [];
  #server: RunningServer | null = null;
  #serverLog: ReturnType<typeof pino.destination> | null = null;
  #client: ApiClient | null = null;
  #stopping = false;

  constructor(options: { dir: string; ports: DemoPorts; tcp: TcpService }) {
    this.dir = options.dir;
    this.ports = options.ports;
    this.tcp = options.tcp;
  }

  /** The server's data folder (admin token, CA). */
  get data(): string {
    return join(this.dir, 'server');
  }

  get serverUrl(): string {
    return `https://127.0.0.1:${this.ports.server}`;
  }

  /** `--server URL --data DIR`, for the operator commands the demo prints and runs. */
  get clientFlags(): string {
    return `--server ${this.serverUrl} --data ${this.data}`;
  }

  /** A file the demo wrote into its folder (mesh.yaml, api-strict.yaml, deny-web.yaml). */
  file(name: string): string {
    return join(this.dir, name);
  }

  /** SPIFFE ID of a demo service. */
  spiffeId(service: string): string {
    return serviceSpiffeId(DEMO_TRUST_DOMAIN, 'default', service);
  }

  /** Starts everything; resolves when every sidecar is ready (not yet when traffic flows: see the caller). */
  async start(): Promise<void> {
    await mkdir(join(this.dir, 'logs'), { recursive: true });
    await this.#writeFiles();
    await this.#startControlPlane();
    await this.#apply(meshYaml(this.tcp.name));
    await this.#startApps();
    const [api, web, tcp] = await Promise.all(['api', 'web', this.tcp.name].map((s) => this.#joinToken(s)));
    this.#checkNotHalted();
    const p = this.ports;
    const connected = (service: string, token: string, inbound: number, app: number, adminPort: number) => [
      '--server', this.serverUrl, '--token', token, '--service', service, '--state', join(this.dir, 'state', service),
      '--inbound', `127.0.0.1:${inbound}`, '--app', `127.0.0.1:${app}`, '--admin', `127.0.0.1:${adminPort}`, '--drain-timeout', '2s',
    ];
    await Promise.all([
      this.#startSidecar('api', connected('api', api!, p.apiInbound, p.apiApp, p.apiAdmin)),
      this.#startSidecar(this.tcp.name, connected(this.tcp.name, tcp!, p.tcpInbound, p.tcpApp, p.tcpAdmin)),
      this.#startSidecar('web', [
        ...connected('web', web!, p.webInbound, p.webApp, p.webAdmin),
        '--upstream', `api=127.0.0.1:${p.webToApi}`, '--upstream', `${this.tcp.name}=127.0.0.1:${p.webToTcp}`,
      ]),
    ]);
  }

  /**
   * Stops starting things and asks every child process to stop (SIGTERM by PID), so that a
   * `start` still running ends soon (with an error); `stop` then waits for them.
   */
  halt(): void {
    this.#stopping = true;
    for (const child of this.#children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  }

  /** True once `halt` or `stop` was called. */
  get halted(): boolean {
    return this.#stopping;
  }

  /**
   * Stops the sidecars (they deregister first), redis, the apps and the control plane;
   * removes DIR, or with `keepLogs` everything in it but the logs (to look at after a failure).
   */
  async stop(options: { keepLogs?: boolean } = {}): Promise<void> {
    this.#stopping = true;
    // Sidecars first (they deregister, then drain), then what they front.
    const sidecars = this.#children.filter((c) => c.spawnfile === process.execPath);
    await Promise.all(sidecars.map((c) => stopChild(c)));
    await Promise.all(this.#children.map((c) => stopChild(c)));
    await Promise.all(this.#listeners.map((l) => closeListener(l)));
    await this.#server?.close();
    this.#client = null;
    this.#serverLog?.end();
    if (options.keepLogs !== true) await rm(this.dir, { recursive: true, force: true });
    else for (const name of ['server', 'state']) await rm(join(this.dir, name), { recursive: true, force: true });
  }

  /** The PIDs of the child processes (sidecars, redis-server). */
  pids(): number[] {
    return this.#children.map((c) => c.pid).filter((pid): pid is number => pid !== undefined);
  }

  /** The catalog as the API gives it. */
  async services(): Promise<{ service: string; passing: number }[]> {
    const answer = await this.#api().call('GET', '/v1/catalog/services');
    if (answer.status !== 200) throw refusal(answer);
    return answer.json['services'] as { service: string; passing: number }[];
  }

  #checkNotHalted(): void {
    if (this.#stopping) throw new WeftError('WEFT_E_STOPPED', 'the demo is stopping');
  }

  async #writeFiles(): Promise<void> {
    await writeFile(this.file('mesh.yaml'), meshYaml(this.tcp.name));
    await writeFile(this.file('api-strict.yaml'), API_STRICT_YAML);
    await writeFile(this.file('deny-web.yaml'), DENY_WEB_YAML);
  }

  async #startControlPlane(): Promise<void> {
    this.#serverLog = pino.destination({ dest: join(this.dir, 'logs', 'server.log'), sync: true });
    const log = pino({ base: { component: 'server' }, timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: (label) => ({ level: label }) } }, this.#serverLog);
    this.#checkNotHalted();
    this.#server = await startServer({
      dataDir: this.data,
      trustDomain: DEMO_TRUST_DOMAIN,
      listen: { host: '127.0.0.1', port: this.ports.server },
      leafTtlMs: 24 * 3_600_000,
      csrRate: 50,
      serverNames: [],
      instanceTtlMs: 6_000, // sidecars report every 2 s: the migration view follows quickly
      instanceDeregisterMs: 600_000,
      log,
    }).catch((err: unknown) => {
      throw err instanceof WeftError && err.code === 'WEFT_E_LISTEN' ? new WeftError(err.code, `${err.message}${PORT_HINT}`) : err;
    });
  }

  #api(): ApiClient {
    if (this.#client === null) throw new WeftError('WEFT_E_DEMO', 'the demo control plane is not running');
    return this.#client;
  }

  async #apply(yamlText: string): Promise<void> {
    this.#client ??= await ApiClient.fromFlags({ server: this.serverUrl, 'admin-token-file': join(this.data, 'admin-token'), 'ca-file': join(this.data, 'ca', 'bundle.pem') });
    const resources = parseAllDocuments(yamlText).map((d) => d.toJS() as unknown);
    const answer = await this.#api().call('POST', '/v1/apply', { resources });
    if (answer.status !== 200) throw refusal(answer);
  }

  async #joinToken(service: string): Promise<string> {
    const answer = await this.#api().call('POST', '/v1/tokens', { service, namespace: 'default', ttl: '1h', uses: 1 });
    if (answer.status !== 201) throw refusal(answer);
    return answer.json['token'] as string;
  }

  async #startApps(): Promise<void> {
    const p = this.ports;
    this.#listeners.push(await listenOn(apiApp(), p.apiApp, 'api app'));
    this.#listeners.push(await listenOn(webApp({ apiPort: p.webToApi, spiffeId: this.spiffeId('web') }), p.webApp, 'web app'));
    if (this.tcp.name === 'redis') await this.#startRedis();
    else this.#listeners.push(await listenOn(echoServer(), p.tcpApp, 'TCP echo service'));
  }

  async #startRedis(): Promise<void> {
    const port = this.ports.tcpApp;
    const child = this.#spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'], 'redis');
    const up = await waitForPort(port, 10_000, () => child.exitCode !== null || child.signalCode !== null);
    if (!up) throw new WeftError('WEFT_E_DEMO', `redis-server did not start on 127.0.0.1:${port} (see ${join(this.dir, 'logs', 'redis.log')})${PORT_HINT}`);
  }

  /** Starts `weft sidecar ARGS`; resolves on its "sidecar ready" log line. */
  #startSidecar(service: string, args: string[]): Promise<void> {
    const main = fileURLToPath(new URL('./main.js', import.meta.url));
    const child = this.#spawn(process.execPath, [main, 'sidecar', ...args], service);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    return new Promise((resolve, reject) => {
      let ready = false;
      createInterface({ input: child.stdout! }).on('line', (line) => {
        if (ready || !line.includes('"sidecar ready"')) return;
        ready = true;
        resolve();
      });
      child.once('exit', (code) => {
        if (!ready) reject(new WeftError('WEFT_E_DEMO', `the ${service} sidecar exited (code ${code}): ${stderr.trim()}${/in use/.test(stderr) ? PORT_HINT : ` (its log is kept in ${join(this.dir, 'logs', `${service}.log`)})`}`));
        else if (!this.#stopping) process.stderr.write(`weft demo: the ${service} sidecar exited (code ${code}); see ${join(this.dir, 'logs', `${service}.log`)}\n`);
      });
    });
  }

  /** Spawns a child process with its output in DIR/logs/NAME.log; refused once the demo is stopping. */
  #spawn(command: string, args: string[], name: string): ChildProcess {
    this.#checkNotHalted();
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('WEFT_') || k === 'WEFT_LOG_LEVEL'));
    // Own process group: a Ctrl-C in the terminal reaches the demo only, which stops each child by PID, in order.
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env, detached: true });
    this.#children.push(child);
    const log = createWriteStream(join(this.dir, 'logs', `${name}.log`));
    child.stdout!.pipe(log);
    child.stderr!.pipe(log, { end: false });
    child.once('error', (err) => process.stderr.write(`weft demo: cannot run ${command}: ${err.message}\n`));
    return child;
  }
}

/** Which TCP service this machine can run. */
export async function pickTcpService(): Promise<TcpService> {
  if (await onPath('redis-server')) return { name: 'redis', redisCli: await onPath('redis-cli') };
  return { name: 'echo', redisCli: false };
}

async function onPath(program: string): Promise<boolean> {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (dir === '') continue;
    try {
      await access(join(dir, program), constants.X_OK);
      return true;
    } catch {
      // not in this folder
    }
  }
  return false;
}

/** SIGTERM to one child (by its PID), SIGKILL if it is still there after 10 s. */
function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => (clearTimeout(timer), resolve()));
    child.kill('SIGTERM');
  });
}
