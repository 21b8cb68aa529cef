/**
 * A highly available control plane across network namespaces (issue 7, tests 2 to 4):
 * PostgreSQL on one host, three `weft server` replicas on three others, connected
 * sidecars spread over the replicas. A policy applied through one replica reaches sidecars
 * of another within a second; killing the leader under traffic fails no request and
 * another replica takes over the once-only work; a replica cut off from PostgreSQL says it
 * is not ready, its sidecars move on, and it catches up when the cut heals.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { hosts, inHost, requireNetns, type Host } from '../helpers/netns.js';
import { runWeft, startWeft, tempDir } from '../helpers/weft.js';
import { requirePostgres, startPostgres } from '../helpers/postgres.js';
import { connectedSidecar, load, startApp, weftIn, within } from '../helpers/mesh.js';

const APP_PORT = 8080;
const INBOUND = 8443;
const OUT = 9001;
const API_PORT = 8443;

interface Mesh {
  hosts: Host[];
  dir: string;
  replicas: { host: Host; url: string; proc: ReturnType<typeof startWeft>; name: string }[];
  cli: (replica: number) => string[];
  status: (replica: number) => Promise<{ ready: boolean; leader: boolean } | null>;
}

/** PostgreSQL on host 1, replicas r1..r3 on hosts 2..4; hosts 5 and 6 for services. */
async function haMesh(t: TestContext): Promise<Mesh | null> {
  if (!(await requireNetns(t))) return null;
  const all = await hosts(t, 6);
  if (!(await requirePostgres(t))) return null;
  const pg = await startPostgres(t, { prefix: all[0]!.exec, listen: all[0]!.ip, port: 5432 });
  const store = await pg.createDatabase();
  const dir = await tempDir(t);
  await writeFile(join(dir, 'ca-key'), 'an-operator-secret-that-seals-the-ca-key-0123\n');
  await writeFile(join(dir, 'admin-token'), 'the-operators-admin-token-for-all-replicas\n');
  assert.equal((await runWeft(['ca', 'init', '--out', join(dir, 'ca'), '--trust-domain', 'weft.local'])).code, 0);
  const replicas: Mesh['replicas'] = [];
  for (let i = 1; i <= 3; i++) {
    const host = all[i]!;
    const data = join(dir, `r${i}`);
    await inHost(host, 'mkdir', ['-p', data]);
    await writeFile(join(data, 'admin-token'), 'the-operators-admin-token-for-all-replicas\n');
    const proc = startWeft(t, ['server', '--data', data, '--listen', `${host.ip}:${API_PORT}`, '--server-name', host.ip, '--store', store, '--ca-key-file', join(dir, 'ca-key'), '--ca-dir', join(dir, 'ca'), '--replica-id', `r${i}`, '--instance-ttl', '3s'], { prefix: host.exec });
    await proc.waitFor('server ready', 30_000);
    replicas.push({ host, url: `https://${host.ip}:${API_PORT}`, proc, name: `r${i}` });
  }
  const cli = (r: number) => ['--server', replicas[r - 1]!.url, '--admin-token-file', join(dir, 'admin-token'), '--ca-file', join(dir, 'ca', 'bundle.pem')];
  const status = async (r: number) => {
    try {
      const { stdout } = await inHost(replicas[r - 1]!.host, 'curl', ['-sS', '--max-time', '2', '--cacert', join(dir, 'ca', 'bundle.pem'), `${replicas[r - 1]!.url}/ready`]);
      return JSON.parse(stdout) as { ready: boolean; leader: boolean };
    } catch {
      return null;
    }
  };
  return { hosts: all, dir, replicas, cli, status };
}

/** A join token through replica `r` (run inside its host: the API listens on its address). */
async function token(mesh: Mesh, r: number, service: string): Promise<string> {
  return (await weftIn(mesh.replicas[r - 1]!.host, ['token', 'create', '--service', service, '--uses', '0', ...mesh.cli(r)])).trim();
}

/** The sidecar flags naming every replica, `first` first. */
function servers(mesh: Mesh, first: number): string[] {
  const order = [first, ...[1, 2, 3].filter((n) => n !== first)];
  return order.flatMap((n) => ['--server', mesh.replicas[n - 1]!.url]);
}

test('HA: a policy applied through replica 1 reaches a sidecar of replica 3 within a second; killing the leader fails no request', async (t) => {
  const mesh = await haMesh(t);
  if (mesh === null) return;
  const [, , , , apiHost, webHost] = mesh.hosts;
  await startApp(t, apiHost!, APP_PORT, 'api');
  // api follows replica 3, web replica 2.
  await connectedSidecar(t, apiHost!, { url: mesh.replicas[2]!.url, service: 'api', token: await token(mesh, 3, 'api'), state: join(mesh.dir, 'api'), inbound: INBOUND, app: APP_PORT, extra: servers(mesh, 3).slice(2) });
  await connectedSidecar(t, webHost!, { url: mesh.replicas[1]!.url, service: 'web', token: await token(mesh, 2, 'web'), state: join(mesh.dir, 'web'), upstreams: [`api=127.0.0.1:${OUT}`], extra: servers(mesh, 2).slice(2) });
  const viaWeb = `http://127.0.0.1:${OUT}/`;
  await within('web reaches api', 20_000, () => load(webHost!, viaWeb, 300, 10), (r) => r.ok > 0 && r.failed === 0);

  // A deny policy applied through replica 1 reaches api's sidecar, which follows replica 3.
  await writeFile(join(mesh.dir, 'deny.yaml'), 'kind: AuthorizationPolicy\nmetadata: { name: deny-web }\nspec:\n  targetRef: { kind: Service, name: api }\n  rules: [{ action: deny, from: [{ service: web }] }]\n');
  await weftIn(mesh.replicas[0]!.host, ['apply', '-f', join(mesh.dir, 'deny.yaml'), ...mesh.cli(1)]);
  const denyMs = await within('the deny reaches api through another replica', 3000, async () => (await inHost(webHost!, 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', viaWeb])).stdout, (code) => code === '403');
  t.diagnostic(`a policy applied through r1 denied web at api (following r3) after ${denyMs} ms`);
  assert.ok(denyMs < 1000, `took ${denyMs} ms`);
  await weftIn(mesh.replicas[0]!.host, ['delete', 'AuthorizationPolicy', 'deny-web', ...mesh.cli(1)]);
  await within('the policy is gone', 3000, async () => (await inHost(webHost!, 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', viaWeb])).stdout, (code) => code === '200');

  // Kill the leader under steady traffic: no request fails, another replica leads within seconds.
  let leader = 0;
  await within('one replica leads', 10_000, async () => {
    for (const r of [1, 2, 3]) if ((await mesh.status(r))?.leader) leader = r;
    return leader;
  }, (l) => l !== 0);
  const steady = load(webHost!, viaWeb, 15_000, 20);
  await new Promise((r) => setTimeout(r, 2000));
  mesh.replicas[leader - 1]!.proc.child.kill('SIGKILL');
  const started = Date.now();
  const others = [1, 2, 3].filter((r) => r !== leader);
  await within('another replica leads', 15_000, async () => (await Promise.all(others.map((r) => mesh.status(r)))).some((s) => s?.leader === true), (v) => v);
  t.diagnostic(`r${leader} killed; another replica led after ${Date.now() - started} ms`);
  const during = await steady;
  t.diagnostic(`during the leader's death: ${during.ok} requests, ${during.failed} failed`);
  assert.equal(during.failed, 0, during.errors.join('; '));

  // Instance expiry keeps working under the new leader: a second api instance whose sidecar
  // is killed turns critical after the TTL.
  await startApp(t, webHost!, APP_PORT, 'api-2');
  const extra = await connectedSidecar(t, webHost!, { url: mesh.replicas[others[0]! - 1]!.url, service: 'api', token: await token(mesh, others[0]!, 'api'), state: join(mesh.dir, 'api-2'), inbound: INBOUND, app: APP_PORT });
  await within('api-2 passes', 15_000, () => weftIn(mesh.replicas[others[0]! - 1]!.host, ['services', ...mesh.cli(others[0]!)]), (out) => /api\s+default\s+2\/2/.test(out));
  extra.proc.child.kill('SIGKILL');
  await within('the silent instance turns critical', 15_000, () => weftIn(mesh.replicas[others[1]! - 1]!.host, ['services', ...mesh.cli(others[1]!)]), (out) => /api\s+default\s+1\/2/.test(out));
});

test('HA: a replica cut off from PostgreSQL is not ready, its sidecars move on, and it catches up when the cut heals', async (t) => {
  const mesh = await haMesh(t);
  if (mesh === null) return;
  const [pgHost, , , r3Host, apiHost, webHost] = mesh.hosts;
  await startApp(t, apiHost!, APP_PORT, 'api');
  const api = await connectedSidecar(t, apiHost!, { url: mesh.replicas[2]!.url, service: 'api', token: await token(mesh, 3, 'api'), state: join(mesh.dir, 'api'), inbound: INBOUND, app: APP_PORT, extra: servers(mesh, 3).slice(2) });
  await connectedSidecar(t, webHost!, { url: mesh.replicas[2]!.url, service: 'web', token: await token(mesh, 3, 'web'), state: join(mesh.dir, 'web'), upstreams: [`api=127.0.0.1:${OUT}`], extra: servers(mesh, 3).slice(2) });
  const viaWeb = `http://127.0.0.1:${OUT}/`;
  await within('web reaches api', 20_000, () => load(webHost!, viaWeb, 300, 10), (r) => r.ok > 0 && r.failed === 0);

  // Cut r3 (host 4) off from PostgreSQL (host 1) with an nftables drop rule, under traffic.
  const steady = load(webHost!, viaWeb, 12_000, 20);
  await inHost(r3Host!, 'nft', ['add table inet weftcut']);
  t.after(() => inHost(r3Host!, 'nft', ['delete table inet weftcut']).catch(() => {}));
  await inHost(r3Host!, 'nft', ['add chain inet weftcut out { type filter hook output priority 0 ; }']);
  await inHost(r3Host!, 'nft', [`add rule inet weftcut out ip daddr ${pgHost!.ip} tcp dport 5432 drop`]);
  await within('r3 says it is not ready', 10_000, () => mesh.status(3), (s) => s !== null && !s.ready);
  // Its sidecars move to another replica (their /config names the server they follow).
  const following = async () => {
    const { stdout } = await inHost(apiHost!, 'curl', ['-sS', `http://${api.admin}/config`]);
    return (JSON.parse(stdout) as { controlPlane: { server: string; connected: boolean } }).controlPlane;
  };
  await within('api follows another replica', 20_000, following, (c) => c.connected && c.server !== mesh.replicas[2]!.url);
  // A change made meanwhile through r1...
  await writeFile(join(mesh.dir, 'svc.yaml'), 'kind: Service\nmetadata: { name: during-the-cut }\nspec: { protocol: tcp }\n');
  await weftIn(mesh.replicas[0]!.host, ['apply', '-f', join(mesh.dir, 'svc.yaml'), ...mesh.cli(1)]);
  const during = await steady;
  assert.equal(during.failed, 0, during.errors.join('; '));

  // ...is there when the cut heals: r3 is ready again and serves it.
  await inHost(r3Host!, 'nft', ['delete table inet weftcut']);
  await within('r3 is ready again', 30_000, () => mesh.status(3), (s) => s?.ready === true);
  const seen = await weftIn(r3Host!, ['get', 'Service', 'during-the-cut', '-o', 'json', ...mesh.cli(3)]);
  assert.equal((JSON.parse(seen) as { spec: { protocol: string } }).spec.protocol, 'tcp');
});
