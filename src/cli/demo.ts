import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WeftError } from '../errors.js';
import { parseFlags } from './args.js';
import { runChecks, waitForTraffic } from './demo-checks.js';
import { DEMO_PORT_OFFSETS, DEMO_TRUST_DOMAIN, DemoMesh, demoPorts, pickTcpService } from './demo-mesh.js';
import { DemoTraffic } from './demo-traffic.js';

const USAGE = `Usage: weft demo [--base-port 18000] [--check] [--no-traffic]

Runs a local mesh on loopback: a control plane, three services (web, api, and Redis when
redis-server is installed, else a TCP echo service) and their connected sidecars, on fixed
ports from --base-port (base+1 … base+446), with background traffic through it. Prints the
dashboard's address and commands to try; Ctrl-C stops it all.

  --base-port N   first port of the range (default 18000; base+446 must stay below 32768)
  --check         run the checks itself, print ok/FAIL for each, exit 0 when all pass
  --no-traffic    no background traffic (web → api every 200 ms, a plaintext caller of api
                  every second, the TCP service every 2 s)`;

/** The highest port the demo uses stays below the kernel's ephemeral range (32768 on Linux). */
const MAX_BASE = 32767 - Math.max(...Object.values(DEMO_PORT_OFFSETS));

/** How long the mesh may take from "sidecars ready" to traffic flowing through it. */
const TRAFFIC_TIMEOUT_MS = 30_000;

/**
 * `weft demo`: a control plane in this process, the demo apps, and a connected `weft
 * sidecar` process per service; waits until web reaches api and the TCP service through the
 * mesh, starts the background traffic (DemoTraffic, unless `--no-traffic`), then prints the
 * dashboard's URL (admin token in the fragment) and commands to try, and runs until
 * SIGINT/SIGTERM. `--check` runs the checks itself, without the traffic, and exits 0 when all pass. Everything lives in a temporary folder that
 * is removed at the end.
 */
export async function demoCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags('demo', argv, { 'base-port': { type: 'string', default: '18000' }, check: { type: 'boolean', default: false }, 'no-traffic': { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const base = Number(values['base-port']);
  if (!Number.isInteger(base) || base < 1024 || base > MAX_BASE) {
    throw new WeftError('WEFT_E_USAGE', `--base-port must be a whole number from 1024 to ${MAX_BASE} (the demo uses base+1 … base+446, below the ephemeral ports from 32768)`);
  }
  const stop = stopSignal();
  const mesh = new DemoMesh({ dir: await mkdtemp(join(tmpdir(), 'weft-demo-')), ports: demoPorts(base), tcp: await pickTcpService() });
  const traffic = new DemoTraffic({ ports: mesh.ports, tcpService: mesh.tcp.name });
  let failed = false;
  try {
    process.stdout.write(`starting the demo mesh (control plane, web, api, ${mesh.tcp.name}, their sidecars)…\n`);
    const starting = bringUp(mesh);
    const up = await Promise.race([starting, stop.received.then(() => 'stopped' as const)]);
    if (up === 'stopped') {
      process.stdout.write('stopping the demo mesh…\n');
      mesh.halt();
      await starting.catch(() => undefined); // it ends with WEFT_E_STOPPED once halted
      return 0;
    }
    if (values.check) {
      failed = !(await runChecks(mesh, process.stdout));
      if (failed) process.stdout.write(`the logs are kept in ${mesh.file('logs')}\n`);
      return failed ? 1 : 0;
    }
    if (!values['no-traffic']) traffic.start();
    const token = (await readFile(join(mesh.data, 'admin-token'), 'utf8')).trim();
    process.stdout.write(instructions(mesh, token, !values['no-traffic']));
    await stop.received;
    process.stdout.write('\nstopping the demo mesh…\n');
    return 0;
  } catch (err) {
    failed = !mesh.halted;
    throw err;
  } finally {
    stop.dispose();
    await traffic.stop();
    await mesh.stop({ keepLogs: failed });
  }
}

/** Starts the mesh and waits for traffic; throws WEFT_E_DEMO when it does not flow. */
async function bringUp(mesh: DemoMesh): Promise<'up'> {
  await mesh.start();
  const problem = await waitForTraffic(mesh, TRAFFIC_TIMEOUT_MS);
  if (mesh.halted) throw new WeftError('WEFT_E_STOPPED', 'the demo is stopping');
  if (problem !== null) throw new WeftError('WEFT_E_DEMO', `the demo mesh came up but traffic does not flow through it (${problem}); the logs are kept in ${mesh.file('logs')}`);
  return 'up';
}

/** SIGINT/SIGTERM, caught from the start so that a Ctrl-C while starting still stops what was started. */
function stopSignal(): { received: Promise<void>; dispose: () => void } {
  let onSignal = () => {};
  const received = new Promise<void>((resolve) => (onSignal = resolve));
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    received,
    dispose: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

/** The TCP service's copy-paste command through web's outbound listener. */
function tcpCommand(mesh: DemoMesh): string {
  const port = mesh.ports.webToTcp;
  if (mesh.tcp.redisCli) return `redis-cli -p ${port} ping`;
  if (mesh.tcp.name === 'redis') return `node -e "const s=require('net').connect(${port},'127.0.0.1',()=>s.write('PING\\r\\n'));s.on('data',d=>{process.stdout.write(d);s.end()})"`;
  return `node -e "const s=require('net').connect(${port},'127.0.0.1',()=>s.end('hi\\n'));s.pipe(process.stdout)"`;
}

/** One line of the demo's layout: service, what runs, its loopback address (aligned). */
function row(service: string, what: string, port: number): string {
  return `${service.padEnd(6)} ${what.padEnd(12)} 127.0.0.1:${port}`;
}

/** The dashboard's address with the admin token in the fragment (the browser keeps it out of requests and logs). */
export function dashboardUrl(serverUrl: string, token: string): string {
  return `${serverUrl}/ui/#token=${encodeURIComponent(token)}`;
}

/** What to try, with the exact ports, files and `--server … --data …` flags of this run. */
function instructions(mesh: DemoMesh, token: string, traffic: boolean): string {
  const p = mesh.ports;
  const flags = mesh.clientFlags;
  const tcp = mesh.tcp.name;
  const tcpApp = tcp === 'redis' ? 'redis-server' : 'echo app';
  return `
weft demo mesh is up: a control plane, three services, their sidecars (trust domain ${DEMO_TRUST_DOMAIN})

  control plane       ${mesh.serverUrl}  (in this process; data in ${mesh.data})
  ${row('web', 'app', p.webApp)}  ← sidecar mTLS :${p.webInbound}, admin :${p.webAdmin}; calls api at 127.0.0.1:${p.webToApi}, ${tcp} at 127.0.0.1:${p.webToTcp}
  ${row('api', 'app', p.apiApp)}  ← sidecar mTLS :${p.apiInbound}, admin :${p.apiAdmin}
  ${row(tcp, tcpApp, p.tcpApp)}  ← sidecar mTLS :${p.tcpInbound}, admin :${p.tcpAdmin} (Service protocol: tcp)
  The Mesh is permissive (plaintext callers are still served): ${mesh.file('mesh.yaml')}
  Files and logs in ${mesh.dir} (removed when the demo stops)

Dashboard (the control plane's CA is the demo's own: your browser warns about the certificate):
  ${dashboardUrl(mesh.serverUrl, token)}
  ${traffic ? `Background traffic: web → api every 200 ms (some /fail and /slow), a plaintext caller of api every second, ${tcp} every 2 s (--no-traffic: none)` : 'No background traffic (--no-traffic): the graph shows what you send.'}

Try:
  # web's app calls api through its sidecar; api sees web's SPIFFE ID (x-forwarded-client-cert)
  curl -s http://127.0.0.1:${p.webApp}/
  # ${tcp} through web's outbound listener, carried over mTLS to ${tcp}'s sidecar
  ${tcpCommand(mesh)}
  # the catalog: each sidecar registered its instance and reports its app's health
  npx weft services ${flags}
  # api is permissive: a plaintext caller gets through (api sees no identity: "caller":null)
  curl -s http://127.0.0.1:${p.apiInbound}/ ; echo "exit $?"
  # who still calls without mTLS: the plaintext caller shows up once api's sidecar reported (every 2 s)
  npx weft migrate status ${flags}
  # make api strict: a few seconds later the same plaintext call is refused, and web → api still works
  npx weft apply -f ${mesh.file('api-strict.yaml')} ${flags}
  curl -s http://127.0.0.1:${p.apiInbound}/ ; echo "exit $?"
  curl -s http://127.0.0.1:${p.webApp}/
  # deny web at api: web's call gets 403 with weft-error: WEFT_E_AUTHZ_DENIED; then undo it
  npx weft apply -f ${mesh.file('deny-web.yaml')} ${flags}
  curl -si http://127.0.0.1:${p.webApp}/
  npx weft delete AuthorizationPolicy deny-web ${flags}
  # what a sidecar knows: its certificate from the control plane, its counters
  curl -s http://127.0.0.1:${p.apiAdmin}/certs
  curl -s http://127.0.0.1:${p.apiAdmin}/metrics | grep '^weft_requests_total'

Ctrl-C stops the mesh.
`;
}
