// A reload that tightens inbound policy applies to connections that are already open,
// not only to new ones: a keep-alive plaintext caller of a permissive listener is cut off
// when the listener goes strict.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { makeCa, startSidecar, tempDir } from '../helpers/weft.js';

function config(ca: string, app: string, mtls: 'strict' | 'permissive'): string {
  return `service: api\nidentity:\n  issuer: { dir: ${ca} }\ninbound:\n  listen: 127.0.0.1:0\n  app: ${app}\n  mtls: ${mtls}\nadmin:\n  listen: 127.0.0.1:0\n`;
}

/** An app answering 200 "ok", closed after the test; resolves with its address. */
async function okApp(t: TestContext): Promise<string> {
  const app: Server = createServer((_req, res) => res.end('ok'));
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => app.close(() => r())));
  return `127.0.0.1:${(app.address() as AddressInfo).port}`;
}

/** A sidecar started from a YAML file in front of an "ok" app; `rewrite` changes its mtls mode in the file. */
async function sidecarFromFile(t: TestContext, mtls: 'strict' | 'permissive') {
  const dir = await tempDir(t);
  const ca = await makeCa(dir);
  const appAddress = await okApp(t);
  const file = join(dir, 'sidecar.yaml');
  await writeFile(file, config(ca, appAddress, mtls));
  const started = await startSidecar(t, ['-c', file]);
  return { ...started, rewrite: (next: 'strict' | 'permissive') => writeFile(file, config(ca, appAddress, next)) };
}

test('going strict on reload closes open plaintext keep-alive connections', async (t) => {
  const { proc, listeners, rewrite } = await sidecarFromFile(t, 'permissive');
  const inbound = listeners['inbound']!;

  const agent = new Agent({ connections: 1, keepAliveTimeout: 60_000 });
  t.after(() => agent.destroy());
  const first = await request(`http://${inbound}/`, { dispatcher: agent });
  assert.equal(first.statusCode, 200);
  assert.equal(await first.body.text(), 'ok');

  // Same listen address (port 0 is kept as written): the reload reuses the socket.
  await rewrite('strict');
  proc.child.kill('SIGHUP');
  await proc.waitFor('configuration applied');

  // The same client, same pooled connection if it were still open: refused now.
  await assert.rejects(
    (async () => {
      const res = await request(`http://${inbound}/`, { dispatcher: agent, headersTimeout: 5_000 });
      await res.body.text();
      if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`);
    })(),
  );
});

test('POST /drain/inbound needs x-weft-admin; afterwards a reload does not bind inbound again', async (t) => {
  const { proc, admin, listeners } = await sidecarFromFile(t, 'strict');

  const refused = await fetch(`http://${admin}/drain/inbound`, { method: 'POST' });
  assert.equal(refused.status, 403, 'a plain POST (what a web page can send) is refused');
  assert.equal((await fetch(`http://${admin}/ready`)).status, 200);

  const drained = await fetch(`http://${admin}/drain/inbound`, { method: 'POST', headers: { 'x-weft-admin': '1' } });
  assert.equal(drained.status, 200);
  assert.equal((await fetch(`http://${admin}/ready`)).status, 503);

  proc.child.kill('SIGHUP');
  await proc.waitFor('configuration applied');
  const config2 = JSON.parse(await (await fetch(`http://${admin}/config`)).text()) as { addresses: { listeners: Record<string, string> } };
  assert.equal(config2.addresses.listeners['inbound'], undefined, `inbound rebound at ${listeners['inbound']}`);
});
