// End to end in TCP mode across two network namespaces: redis-cli on host A talks to
// redis-server on host B through web's outbound listener and redis's inbound sidecar; the
// hop between the hosts is mTLS. A packet capture on B's link proves the key and value
// never cross it readably, and a plaintext control proves the check can fail.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { makeCa, metricValue, startSidecar, tempDir } from '../helpers/weft.js';
import { capture, inHost, marker, packetsBetweenHosts, requireNetns, spawnInHost, twoHosts, type Host } from '../helpers/netns.js';

const WEB_ID = 'spiffe://example.org/ns/default/svc/web';

/**
 * Starts redis-server inside `host` and waits (bounded) until it answers PING. Bound to a
 * non-loopback address, protected mode would refuse the other host's (password-less) client.
 */
async function startRedis(t: TestContext, host: Host, bind: string, port: number): Promise<void> {
  const args = ['--port', String(port), '--bind', bind, '--save', '', '--appendonly', 'no'];
  if (bind !== '127.0.0.1') args.push('--protected-mode', 'no');
  const child = spawnInHost(t, host, 'redis-server', args);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const deadline = Date.now() + 10_000;
  for (let i = 0; i < 100 && Date.now() < deadline && child.exitCode === null; i++) {
    const pong = await inHost(host, 'redis-cli', ['-h', bind, '-p', String(port), 'ping'], { timeoutMs: 2_000 }).then(
      (r) => r.stdout.trim(),
      () => '',
    );
    if (pong === 'PONG') return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`redis-server on ${bind}:${port} did not answer PING: ${out}`);
}

/** redis-cli inside `host`; returns its trimmed output. */
async function redis(host: Host, addr: string, port: number, ...command: string[]): Promise<string> {
  const { stdout } = await inHost(host, 'redis-cli', ['-h', addr, '-p', String(port), ...command], { timeoutMs: 10_000 });
  return stdout.trim();
}

test('redis-cli on host A reaches redis-server on host B over mTLS in TCP mode', async (t) => {
  if (!(await requireNetns(t))) return;
  const dir = await tempDir(t);
  const ca = await makeCa(dir, 'example.org');
  const { a, b } = await twoHosts(t);

  await startRedis(t, b, '127.0.0.1', 6379);
  const redisSidecar = await startSidecar(
    t,
    ['--service', 'redis', '--protocol', 'tcp', '--issuer', ca, '--inbound', `${b.ip}:6443`, '--app', '127.0.0.1:6379', '--admin', '127.0.0.1:0'],
    { prefix: b.exec },
  );
  const web = await startSidecar(t, ['--service', 'web', '--issuer', ca, '--upstream', `redis=127.0.0.1:6380=${b.ip}:6443=tcp`, '--admin', '127.0.0.1:0'], {
    prefix: a.exec,
  });
  assert.equal(web.listeners['upstream redis'], '127.0.0.1:6380');

  const key = marker('key');
  const value = marker('value');
  let set = '';
  let get = '';
  const text = await capture(t, b, join(dir, 'mtls.pcap'), 'tcp port 6443', async () => {
    set = await redis(a, '127.0.0.1', 6380, 'SET', key, value);
    get = await redis(a, '127.0.0.1', 6380, 'GET', key);
  });

  assert.equal(set, 'OK');
  assert.equal(get, value);
  // The value really is stored on host B's redis-server.
  assert.equal(await redis(b, '127.0.0.1', 6379, 'GET', key), value);

  assert.ok(packetsBetweenHosts(text, 6443) >= 10, `too few packets captured on port 6443:\n${text.slice(0, 2000)}`);
  assert.ok(!text.includes(value), 'the value crossed the link in the clear');
  assert.ok(!text.includes(key), 'the key name crossed the link in the clear');

  // B's sidecar counted both redis-cli connections as inbound mTLS from web.
  const { stdout: metrics } = await inHost(b, 'curl', ['-sS', '--max-time', '5', `http://${redisSidecar.admin}/metrics`]);
  const inbound = metricValue(metrics, 'weft_connections_total', { direction: 'inbound', service: 'redis', source_identity: WEB_ID, tls: 'true' });
  assert.ok(inbound >= 2, `weft_connections_total{direction="inbound",source_identity="${WEB_ID}",tls="true"} is ${inbound}:\n${metrics}`);
});

test('plaintext control: redis traffic sent directly across the link is readable in the capture', async (t) => {
  if (!(await requireNetns(t))) return;
  const dir = await tempDir(t);
  const { a, b } = await twoHosts(t);

  await startRedis(t, b, b.ip, 6390);
  const key = marker('key');
  const value = marker('value');
  let set = '';
  let get = '';
  const text = await capture(t, b, join(dir, 'plain.pcap'), 'tcp port 6390', async () => {
    set = await redis(a, b.ip, 6390, 'SET', key, value);
    get = await redis(a, b.ip, 6390, 'GET', key);
  });

  assert.equal(set, 'OK');
  assert.equal(get, value);
  assert.ok(packetsBetweenHosts(text, 6390) >= 10, `too few packets captured on port 6390:\n${text.slice(0, 2000)}`);
  assert.ok(text.includes(value), 'the value should be visible in a plaintext capture');
  assert.ok(text.includes(key), 'the key should be visible in a plaintext capture');
});
